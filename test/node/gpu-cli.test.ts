// `--backend webgpu` on the command line. WebGPU in Node comes from the optional `webgpu` package
// (Dawn), which is not a dependency: without it the CLI must say how to install it; with it (and
// an adapter), the logits must be the CPU's. The browser suite (test/browser/gpu-*.test.ts) is
// where the WebGPU engine itself is tested.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
const model = resolve(root, '../shared/models/tinystories-260k/stories260K.gguf');
const bin = join(root, 'src/cli/glassbox.mjs');

function glassbox(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [bin, ...args], { cwd: root, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

async function hasDawn(): Promise<boolean> {
  const name = 'webgpu';
  try { await import(name); return true; } catch { return false; }
}

test('logits --backend webgpu: the CPU\'s numbers, or a clear message when WebGPU is missing', async () => {
  const args = ['logits', model, '--tokens', '1,403,407', '--top', '3', '--json'];
  const r = await glassbox(...args, '--backend', 'webgpu');
  if (!(await hasDawn())) {
    assert.equal(r.code, 2);
    assert.match(r.stderr, /WebGPU in Node needs the 'webgpu' package: npm install --no-save webgpu/);
    return;
  }
  if (r.code !== 0) {
    // the package is there but no adapter (no GPU, no SwiftShader ICD): a usage error naming why
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--backend webgpu: .*(adapter|WebGPU)/);
    return;
  }
  const cpu = JSON.parse((await glassbox(...args)).stdout);
  const gpu = JSON.parse(r.stdout);
  assert.deepEqual(gpu.top[0].map((e: { id: number }) => e.id), cpu.top[0].map((e: { id: number }) => e.id));
  gpu.top[0].forEach((e: { logit: number }, i: number) => assert.ok(Math.abs(e.logit - cpu.top[0][i].logit) < 1e-4));
});

test('--backend takes cpu or webgpu only', async () => {
  const r = await glassbox('logits', model, '--tokens', '1', '--backend', 'metal');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--backend: 'metal' is not a backend/);
});
