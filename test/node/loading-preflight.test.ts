// The preflight: sizes from the catalog before download and from the tensor table after, against
// numbers worked out by hand, and the refusals in plain words.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { preflight, sizesFromModel, WASM_MAX_BYTES } from '../../src/worker/loading/preflight.ts';
import { validateCatalog, findEntry } from '../../src/worker/loading/catalog.ts';
import { openModel } from '../../src/formats/open.ts';
import { fileSource } from '../../src/formats/node-source.ts';
import { weightBytes } from '../../src/formats/load.ts';
import type { GpuCaps } from '../../src/engine/gpu/device.ts';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
const { catalog } = validateCatalog(JSON.parse(readFileSync(resolve(root, 'public/models.json'), 'utf8')));
const GiB = 2 ** 30, MiB = 2 ** 20;
const gpu = (binding: number): GpuCaps => ({
  adapter: 'test', isFallback: false, maxStorageBufferBindingSize: binding, maxBufferSize: binding,
  maxComputeWorkgroupStorageSize: 16384, maxComputeInvocationsPerWorkgroup: 256, maxComputeWorkgroupsPerDimension: 65535,
  maxStorageBuffersPerShaderStage: 8, minUniformBufferOffsetAlignment: 256, shaderF16: false, subgroups: false,
});

test('preflight: the default model fits anywhere; sizes from the catalog', () => {
  const r = preflight(findEntry(catalog, 'stories15M')!, { memoryBytes: 2 * GiB, gpu: gpu(128 * MiB) });
  assert.equal(r.downloadBytes, 26671328);
  assert.equal(r.weightBytes, 26671328);
  // 2 (k, v) × 6 layers × 6 kv heads × 48 dims × 4 bytes × 1000 positions
  assert.equal(r.kvBytesPer1kTokens, 2 * 6 * 6 * 48 * 4 * 1000);
  assert.equal(r.fitsCpu, true);
  assert.equal(r.fitsGpu, true);
  assert.match(r.reasons[0]!, /downloads 25\.4 MiB/);
  // already cached: nothing to download
  const cached = preflight(findEntry(catalog, 'stories15M')!, { memoryBytes: 2 * GiB }, { cachedUrls: findEntry(catalog, 'stories15M')!.files.map((f) => f.url) });
  assert.equal(cached.downloadBytes, 0);
  assert.match(cached.reasons.join(' '), /already in the browser's cache/);
  assert.match(cached.reasons.join(' '), /no WebGPU adapter/);
  // a llama2.c entry downloads its tokenizer too, but only the model counts as weights
  const bin = preflight(findEntry(catalog, 'stories15M-bin')!, { memoryBytes: 8 * GiB });
  assert.equal(bin.downloadBytes, 60816028 + 433869);
  assert.equal(bin.weightBytes, 60816028);
  assert.match(bin.reasons[0]!, /in 2 files/);
});

test('preflight: a 1.3 GB model on a small device is refused, in words', () => {
  const q8 = findEntry(catalog, 'llama-3.2-1b-instruct-q8_0')!;
  const small = preflight(q8, { memoryBytes: 2 * GiB });
  assert.equal(small.fitsCpu, false);
  assert.match(small.reasons.join(' '), /needs about 1\.\d+ GiB .*more than half of the 2\.00 GiB of memory this device reports/);
  // Llama 3.2 1B: 2 × 16 layers × 8 kv heads × 64 dims × 4 bytes per position
  assert.equal(small.kvBytesPer1kTokens, 2 * 16 * 8 * 64 * 4 * 1000);
  const big = preflight(q8, { memoryBytes: 8 * GiB, gpu: gpu(128 * MiB) });
  assert.equal(big.fitsCpu, true);
  assert.equal(big.fitsGpu, true);
  // the embedding (128256 × 2048 at ~8.5 bits) is larger than one binding: split, not refused
  assert.match(big.reasons.join(' '), /the GPU's largest buffer binding is 128\.0 MiB; the token embedding \(\d+\.\d MiB\) will be split/);
});

test('preflight: past the WebAssembly limit, and rows wider than a GPU binding', () => {
  const r = preflight({ downloadBytes: 5 * GiB, weightBytes: 5 * GiB }, { memoryBytes: 64 * GiB });
  assert.equal(r.fitsCpu, false);
  assert.ok(r.weightBytes > WASM_MAX_BYTES);
  assert.match(r.reasons.join(' '), /needs 5\.00 GiB of weights; the WebAssembly engine holds at most 4 GiB/);
  const narrow = preflight(findEntry(catalog, 'stories15M')!, { memoryBytes: 8 * GiB, gpu: gpu(256) });
  assert.equal(narrow.fitsGpu, false);
  assert.equal(narrow.fitsCpu, true);
  assert.match(narrow.reasons.join(' '), /one row of the token embedding takes .* but the GPU binds at most 256 B, so the CPU engine runs it/);
});

test('preflight: exact sizes from the tensor table of stories260K.gguf', async () => {
  const src = await fileSource(resolve(root, '../shared/models/tinystories-260k/stories260K.gguf'));
  try {
    const model = await openModel([src]);
    const s = sizesFromModel(model);
    assert.equal(s.weightBytes, weightBytes(model));
    assert.equal(s.downloadBytes, 0);
    // the largest tensor is the f32 token embedding [512, 64]: 131072 bytes, rows of 256
    assert.deepEqual(s.largest, { name: 'embed.weight', bytes: 512 * 64 * 4, rowBytes: 64 * 4 });
    const r = preflight(model, { memoryBytes: GiB, gpu: gpu(64 * 1024) });
    assert.equal(r.kvBytesPer1kTokens, 2 * 5 * 4 * 8 * 4 * 1000);
    assert.equal(r.fitsCpu, true);
    assert.equal(r.fitsGpu, true);
    assert.match(r.reasons.join(' '), /embed\.weight \(128\.0 KiB\) will be split/);
  } finally {
    await src.close?.();
  }
});
