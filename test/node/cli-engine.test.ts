// The engine commands end to end: logits, generate, trace (.npz read back by numpy when it is
// installed, and always by an independent zip/npy parse), bench.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateRawSync } from 'node:zlib';
import { rowNorm } from '../../src/engine/hooks.ts';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
const models = resolve(root, '../shared/models');
const bin = join(root, 'src/cli/glassbox.mjs');
const GGUF = join(models, 'tinystories-260k/stories260K.gguf');
const golden = JSON.parse(readFileSync(join(models, 'tinystories-260k/stories260K_greedy_ref.json'), 'utf8'));

function glassbox(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [bin, ...args], { cwd: root, maxBuffer: 256 << 20 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** Reads an .npz independently of src/cli/npz.ts: zip central directory, then each .npy header. */
function readNpz(bytes: Uint8Array): Map<string, { shape: number[]; data: Float32Array }> {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let eocd = bytes.length - 22;
  while (dv.getUint32(eocd, true) !== 0x06054b50) eocd--;
  const count = dv.getUint16(eocd + 10, true);
  let p = dv.getUint32(eocd + 16, true);
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (let i = 0; i < count; i++) {
    const method = dv.getUint16(p + 10, true), size = dv.getUint32(p + 20, true);
    const nameLen = dv.getUint16(p + 28, true), extra = dv.getUint16(p + 30, true), comment = dv.getUint16(p + 32, true);
    const local = dv.getUint32(p + 42, true);
    const name = new TextDecoder().decode(bytes.subarray(p + 46, p + 46 + nameLen));
    const start = local + 30 + dv.getUint16(local + 26, true) + dv.getUint16(local + 28, true);
    let file = bytes.subarray(start, start + size);
    if (method === 8) file = inflateRawSync(file);
    assert.deepEqual([...file.subarray(0, 6)], [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);
    const hlen = file[8]! | (file[9]! << 8);
    const header = new TextDecoder().decode(file.subarray(10, 10 + hlen));
    assert.match(header, /'descr': '<f4'/);
    const shape = /'shape': \(([^)]*)\)/.exec(header)![1]!.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
    const body = new Uint8Array(file.subarray(10 + hlen)); // a copy: Buffer.slice would be a view
    out.set(name.replace(/\.npy$/, ''), { shape, data: new Float32Array(body.buffer, 0, body.byteLength / 4) });
    p += 46 + nameLen + extra + comment;
  }
  return out;
}

function hasNumpy(): boolean {
  try { execFileSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' }); return true; } catch { return false; }
}

test('logits --top 5 --all matches the golden top-5 of the first positions', async () => {
  const ids = golden.token_ids.slice(0, 8) as number[];
  const r = await glassbox('logits', GGUF, '--tokens', ids.join(','), '--top', '5', '--all', '--json');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.deepEqual(j.tokens, ids);
  assert.equal(j.top.length, ids.length);
  assert.equal(j.top[0][0].id, 403);
  assert.ok(Math.abs(j.top[0][0].logit - 17.0235) < 1e-3);
  for (const row of j.top) {
    assert.equal(row.length, 5);
    assert.ok(row[0].prob > 0 && row[0].prob <= 1 && row[0].logit >= row[1].logit);
  }
});

test('logits without --top prints one full vocabulary row (the last position)', async () => {
  const r = await glassbox('logits', GGUF, '--tokens', '1,403', '--json');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.logits.length, 1);
  assert.equal(j.logits[0].length, 512);
});

test('generate at temperature 0 reproduces the golden greedy ids; a seed reproduces sampled text', async () => {
  const r = await glassbox('generate', GGUF, '--tokens', '1', '--max-tokens', '40', '--temperature', '0', '--ignore-eos', '--json');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.deepEqual(j.ids, golden.token_ids.slice(0, 41));
  assert.equal(j.generated.length, 40);
  assert.ok(j.text.startsWith('Once upon a time'));
  const a = await glassbox('generate', GGUF, '--prompt', 'Once upon a time', '--max-tokens', '30', '--temperature', '0.9', '--seed', '42', '--json');
  const b = await glassbox('generate', GGUF, '--prompt', 'Once upon a time', '--max-tokens', '30', '--temperature', '0.9', '--seed', '42', '--json');
  assert.equal(a.code, 0, a.stderr);
  assert.deepEqual(JSON.parse(a.stdout).ids, JSON.parse(b.stdout).ids);
});

test('generate takes the whole sampler chain from flags, the same as the engine; a bad order is refused before any text', async () => {
  const flags = ['--max-tokens', '24', '--temperature', '1.1', '--top-k', '50', '--top-p', '0.95', '--min-p', '0', '--dry-multiplier', '0.8',
    '--xtc-probability', '0.5', '--xtc-threshold', '0.05', '--presence-penalty', '0.2', '--seed', '7', '--ignore-eos', '--json'];
  const r = await glassbox('generate', GGUF, '--tokens', '1', ...flags);
  assert.equal(r.code, 0, r.stderr);
  const ids = JSON.parse(r.stdout).generated as number[];
  // the engine given the same options (DRY's breakers as this tokenizer spells them)
  const { loadModel } = await import('../../src/cli/load.ts');
  const { generateAsync } = await import('../../src/engine/generate.ts');
  const m = await loadModel(GGUF, undefined, 'cpu');
  const tok = m.tokenizer!;
  const want: number[] = [];
  for await (const id of generateAsync(m.session, [1], {
    maxTokens: 24, temperature: 1.1, topK: 50, topP: 0.95, minP: 0, dryMultiplier: 0.8, xtcProbability: 0.5, xtcThreshold: 0.05,
    presencePenalty: 0.2, seed: 7, stopAtEos: false, drySequenceBreakers: ['\n', ':', '"', '*'].map((b) => tok.encode(b, { bos: false })).filter((x) => x.length > 0),
  })) want.push(id);
  assert.deepEqual(ids, want);
  const bad = await glassbox('generate', GGUF, '--prompt', 'Once', '--max-tokens', '5', '--sampler-order', 'top_k,bogus');
  assert.notEqual(bad.code, 0);
  assert.equal(bad.stdout, '');
  assert.match(bad.stderr, /order has an unknown stage 'bogus'/);
});

test('trace writes an .npz with the requested hooks (numpy opens it) and a .json', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'glassbox-trace-'));
  try {
    const npz = join(dir, 't.npz');
    const r = await glassbox('trace', GGUF, '--prompt', 'Once upon a time', '--hooks', 'blocks.*.attn.hook_pattern,hook_logits', '--out', npz, '--json');
    assert.equal(r.code, 0, r.stderr);
    const arrays = readNpz(readFileSync(npz));
    const nPos = arrays.get('hook_tokens')!.shape[0]!;
    assert.equal(nPos, 5); // BOS + 4 tokens
    for (let i = 0; i < 5; i++) assert.deepEqual(arrays.get(`blocks.${i}.attn.hook_pattern`)!.shape, [8, nPos, nPos]);
    assert.deepEqual(arrays.get('hook_logits')!.shape, [nPos, 512]);
    assert.ok(!arrays.has('blocks.0.hook_resid_pre'));
    const row = arrays.get('blocks.0.attn.hook_pattern')!.data.subarray(0, nPos * nPos);
    for (let q = 0; q < nPos; q++) {
      let s = 0;
      for (let k = 0; k < nPos; k++) s += row[q * nPos + k]!;
      assert.ok(Math.abs(s - 1) < 1e-5);
    }
    if (hasNumpy()) {
      const py = `import numpy as np; z = np.load(${JSON.stringify(npz)}); print(z['blocks.2.attn.hook_pattern'].shape, z['hook_logits'].dtype)`;
      assert.equal(execFileSync('python3', ['-c', py], { encoding: 'utf8' }).trim(), `(8, ${nPos}, ${nPos}) float32`);
    } else {
      console.log('numpy not installed: the .npz was checked by the independent parser only');
    }
    const json = join(dir, 't.json');
    const rj = await glassbox('trace', GGUF, '--tokens', '1,403,407', '--hooks', 'blocks.0.hook_resid_post', '--out', json);
    assert.equal(rj.code, 0, rj.stderr);
    const j = JSON.parse(readFileSync(json, 'utf8'));
    assert.deepEqual(j.activations['blocks.0.hook_resid_post'].shape, [3, 64]);
    assert.equal(j.activations['blocks.0.hook_resid_post'].data.length, 3 * 64);
    // a hook's norms alone: one float a position, the norms of the rows above
    const normed = join(dir, 'n.json');
    const rn = await glassbox('trace', GGUF, '--tokens', '1,403,407', '--hooks', 'blocks.0.hook_resid_post:norm', '--out', normed);
    assert.equal(rn.code, 0, rn.stderr);
    const jn = JSON.parse(readFileSync(normed, 'utf8'));
    assert.deepEqual(jn.activations['blocks.0.hook_resid_post:norm'].shape, [3]);
    const rows: number[] = j.activations['blocks.0.hook_resid_post'].data;
    for (let p = 0; p < 3; p++) assert.equal(jn.activations['blocks.0.hook_resid_post:norm'].data[p], rowNorm(rows, p * 64, (p + 1) * 64), `position ${p}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bench prints the JSON shape of DESIGN.md', async () => {
  const r = await glassbox('bench', GGUF, '--prompt-tokens', '16', '--gen-tokens', '4', '--json');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  for (const k of ['backend', 'threads', 'prefill_tok_s', 'prefill_cold_tok_s', 'decode_tok_s', 'peak_rss_mb', 'start_rss_mb']) assert.ok(k in j, k);
  assert.equal(j.backend, 'cpu');
  assert.ok(j.prefill_tok_s > 0 && j.prefill_cold_tok_s > 0 && j.decode_tok_s > 0 && j.peak_rss_mb > 0);
  assert.ok(j.start_rss_mb > 0 && j.start_rss_mb < j.peak_rss_mb, `the RSS at start (${j.start_rss_mb} MB) is part of the peak (${j.peak_rss_mb} MB)`);
});

test('a prompt longer than the context fails with both lengths named', async () => {
  const ids = Array.from({ length: 2049 }, () => 400).join(',');
  const r = await glassbox('logits', GGUF, '--tokens', ids);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /2049/);
  assert.match(r.stderr, /2048/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
});
