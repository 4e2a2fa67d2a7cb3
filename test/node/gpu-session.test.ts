// The backend-independent parts of the WebGPU work, on the CPU: runAsync and generateAsync give
// what run and generate give (the WebGPU tests compare the GPU with these), logits: 'top' orders
// like the sampler, and the weight upload splits by whole rows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { openModel } from '../../src/formats/open.ts';
import { fileSource } from '../../src/formats/node-source.ts';
import { loadModelWeights, type ModelWeights } from '../../src/engine/weights.ts';
import { Session } from '../../src/engine/session.ts';
import { topOf } from '../../src/engine/top.ts';
import { generate, generateAsync } from '../../src/engine/generate.ts';
import { chooseBackend } from '../../src/engine/backend.ts';
import { uploadTensor } from '../../src/engine/gpu/tensor.ts';
import { gpuWeightsPreflight } from '../../src/engine/gpu/weights.ts';
import type { GpuContext } from '../../src/engine/gpu/context.ts';
import type { GpuCaps } from '../../src/engine/gpu/device.ts';
import { UsageError } from '../../src/engine/errors.ts';

const path = fileURLToPath(new URL('../../../shared/models/tinystories-260k/stories260K.gguf', import.meta.url));
let cached: Promise<ModelWeights> | null = null;
const weights = () => (cached ??= (async () => {
  const src = await fileSource(path);
  try { return await loadModelWeights(await openModel([src])); } finally { await (src as { close?: () => Promise<void> }).close?.(); }
})());

async function collect(it: AsyncIterable<number>): Promise<number[]> {
  const out: number[] = [];
  for await (const id of it) out.push(id);
  return out;
}

test('generateAsync gives generate\'s tokens: greedy, top-k sampling (top logits only) and with a repetition penalty (whole rows)', async () => {
  const w = await weights();
  for (const opts of [
    { maxTokens: 30, temperature: 0, stopAtEos: false },
    { maxTokens: 30, temperature: 0.9, topK: 12, topP: 0.9, minP: 0.02, seed: 3, stopAtEos: false },
    { maxTokens: 30, temperature: 0.7, topK: 40, repeatPenalty: 1.3, seed: 5, stopAtEos: false },
    // the chain's other stages: each must either see the whole row or come after top-k
    { maxTokens: 20, temperature: 0, typicalP: 0.5, stopAtEos: false },
    { maxTokens: 20, temperature: 1.1, topK: 20, xtcProbability: 0.5, xtcThreshold: 0.05, seed: 7, stopAtEos: false },
    { maxTokens: 20, temperature: 0.8, topK: 30, topP: 0.5, order: ['top_p', 'top_k', 'temperature'], seed: 8, stopAtEos: false },
    { maxTokens: 20, temperature: 0.8, topK: 30, topNSigma: 1, seed: 9, stopAtEos: false },
    { maxTokens: 20, temperature: 0.8, topK: 30, dryMultiplier: 0.8, seed: 10, stopAtEos: false },
  ]) {
    assert.deepEqual(await collect(generateAsync(new Session(w), [1], opts)), [...generate(new Session(w), [1], opts)], JSON.stringify(opts));
  }
});

test("logits: 'top' returns the top-k of the last row, largest first, lowest id first on ties", async () => {
  const w = await weights();
  const tokens = [1, 403, 407, 261];
  const full = new Session(w).run(tokens).logits;
  const r = new Session(w).run(tokens, { logits: 'top', topK: 5 });
  assert.equal(r.logits.length, 0);
  const order = [...full.keys()].sort((a, b) => full[b]! - full[a]! || a - b).slice(0, 5);
  assert.deepEqual([...r.top!.ids], order);
  assert.deepEqual([...r.top!.logits!], order.map((i) => full[i]!));
  assert.deepEqual([...topOf(Float32Array.of(1, 3, 3, -Infinity, 3, 2), 3).ids], [1, 2, 4]);
  assert.deepEqual([...topOf(Float32Array.of(1, 3, 3, -Infinity, 3, 2), 5).ids], [1, 2, 4, 5, 0]);
  assert.throws(() => new Session(w).run(tokens, { logits: 'top', topK: 65 }), UsageError);
});

test('runAsync on the CPU is run; a CPU backend keeps its reason', async () => {
  const w = await weights();
  const b = await chooseBackend({ prefer: 'cpu' });
  assert.equal(b.kind, 'cpu');
  const s = new Session(w, { backend: b });
  assert.equal(s.backend, 'cpu');
  assert.equal(s.backendReason, 'the CPU was asked for');
  await s.ready();
  const a = await s.runAsync([1, 403], { capture: 'blocks.0.hook_resid_post' });
  const c = new Session(w).run([1, 403], { capture: 'blocks.0.hook_resid_post' });
  assert.deepEqual(a.logits, c.logits);
  assert.deepEqual(a.trace.get('blocks.0.hook_resid_post'), c.trace.get('blocks.0.hook_resid_post'));
});

test('uploadTensor splits by whole rows under the part limit; the preflight names what does not fit', async () => {
  const w = await weights();
  const uploads: number[] = [];
  const caps = { maxStorageBufferBindingSize: 1 << 30, maxBufferSize: 1 << 30 } as GpuCaps;
  const ctx = { caps, upload: (data: ArrayBufferView) => { uploads.push(data.byteLength); return { size: data.byteLength } as GPUBuffer; } } as unknown as GpuContext;
  const t = uploadTensor(ctx, w.embed, 40000);                  // [512, 64] f32: 256-byte rows
  assert.equal(t.rowBytes, 256);
  assert.deepEqual(t.parts.map((p) => [p.firstRow, p.rows]), [[0, 156], [156, 156], [312, 156], [468, 44]]);
  assert.deepEqual(uploads, [39936, 39936, 39936, 11264]);
  const norm = uploadTensor(ctx, { name: 'norm', type: 'F32', shape: [64], data: new Uint8Array(w.finalNorm.buffer, w.finalNorm.byteOffset, 256) });
  assert.equal(norm.parts.length, 1);
  assert.throws(() => uploadTensor(ctx, w.embed, 200), /one row takes 256 bytes/);
  assert.equal(gpuWeightsPreflight(w, caps), null);
  assert.match(gpuWeightsPreflight(w, { ...caps, maxStorageBufferBindingSize: 1024 })!, /2048 bytes but the adapter binds at most 1024/);
  assert.match(gpuWeightsPreflight(w, caps, { budgetBytes: 1000 })!, /MiB on the GPU but only/);
});
