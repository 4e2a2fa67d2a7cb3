// The command line end to end: real processes, real files, JSON as DESIGN.md specifies it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
const models = resolve(root, '../shared/models');
const bin = join(root, 'src/cli/glassbox.mjs');

function glassbox(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [bin, ...args], { cwd: root, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

test('inspect --json describes stories260K.gguf', async () => {
  const r = await glassbox('inspect', join(models, 'tinystories-260k/stories260K.gguf'), '--json');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.format, 'gguf');
  assert.equal(j.config.nLayers, 5);
  assert.equal(j.config.dModel, 64);
  assert.equal(j.config.nKvHeads, 4);
  assert.equal(j.config.vocabSize, 512);
  // embed, 9 per block, final norm, and output.weight: this GGUF stores the (equal) classifier separately
  assert.equal(j.tensors.length, 1 + 5 * 9 + 1 + 1);
  const wq = j.tensors.find((t: { name: string }) => t.name === 'blocks.0.attn.wq');
  assert.deepEqual(wq.shape, [64, 64]);
  assert.equal(wq.type, 'F32');
  assert.equal(j.tokenizer.kind, 'spm');
  assert.equal(j.tokenizer.vocab_size, 512);
});

test('inspect reads the llama2.c checkpoint with its tokenizer.bin', async () => {
  const r = await glassbox('inspect', join(models, 'tinystories-260k/stories260K.bin'),
    '--tokenizer', join(models, 'tinystories-260k/tok512.bin'), '--json');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.format, 'llama2c');
  assert.equal(j.config.nCtx, 512);
  assert.equal(j.tokenizer.vocab_size, 512);
});

test('tokenize --json from a tokenizer.json alone gives ids and pieces', async () => {
  const r = await glassbox('tokenize', join(models, 'llama3-tokenizer/tokenizer.json'), '--text', 'Hello world', '--bos', '--json');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.deepEqual(j.ids, [128000, 9906, 1917]);
  assert.equal(j.pieces.length, 3);
});

test('tokenize from the vocab-only GGUF matches llama.cpp (no BOS unless asked)', async () => {
  const r = await glassbox('tokenize', join(models, 'llamacpp-vocab/ggml-vocab-llama-spm.gguf'), '--text', 'Hello world', '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout).ids, [15043, 3186]);
  const withBos = await glassbox('tokenize', join(models, 'llamacpp-vocab/ggml-vocab-llama-spm.gguf'), '--text', 'Hello world', '--bos', '--json');
  assert.deepEqual(JSON.parse(withBos.stdout).ids, [1, 15043, 3186]);
});

test('errors are one line on stderr with a non-zero exit', async () => {
  const missing = await glassbox('inspect', '/nonexistent/model.gguf');
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr.trim(), /^glassbox inspect: .*model\.gguf.*$/);
  assert.equal(missing.stderr.trim().split('\n').length, 1);
  const badFlag = await glassbox('tokenize', join(models, 'llama3-tokenizer/tokenizer.json'), '--bogus');
  assert.equal(badFlag.code, 2);
  const unknown = await glassbox('frobnicate');
  assert.equal(unknown.code, 2);
});

test('synth writes a GGUF that inspect reads back with the requested type', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'glassbox-cli-'));
  try {
    const out = join(dir, 'tiny.gguf');
    const s = await glassbox('synth', '--shape', 'stories260K', '--type', 'Q8_0', '--seed', '7', '--out', out);
    assert.equal(s.code, 0, s.stderr);
    assert.ok(existsSync(out));
    const r = await glassbox('inspect', out, '--json');
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.config.nLayers, 5);
    assert.ok(j.types.some((t: { type: string }) => t.type === 'Q8_0'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
