// The forward pass on the WebAssembly kernels (the default CPU path) against the same pass on the
// readable twins, on random-weight models; 1, 2 and 3 threads give identical bits; a non-shared
// weight memory that grows (scratch, then the KV cache) gives the same results as one run from
// scratch.
//
// How close the two passes are. With exact activations (F32, and F16 with activationQuant
// 'none') they differ by f32 round-off only. With llama.cpp's activation rounding (the default for
// quantized weights) the first products see identical rounded activations and agree to round-off,
// but a later activation that lies within round-off of a rounding boundary can round the other way
// in one pass (a "flip", as in test/node/parity-llamacpp.test.ts), so the logits are compared with
// a bound of a few percent, which still catches any wrong product.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Session } from '../../src/engine/session.ts';
import { loadModelWeights } from '../../src/engine/weights.ts';
import { openModel } from '../../src/formats/open.ts';
import { bytesSource } from '../../src/formats/source.ts';
import { synthModel } from '../../src/formats/synth.ts';
import type { TensorTypeName } from '../../src/formats/tensor.ts';
import { randomTokens, randomWeights, tinyConfig } from './engine-fixtures.ts';

/** Big enough that the products are split over threads (work ≥ 2^18 multiply-adds). */
const config = tinyConfig({ dModel: 256, dFfn: 512, nHeads: 8, nKvHeads: 2, dHead: 32, vocabSize: 700, nCtx: 160, nLayers: 2 });

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let scale = 0, d = 0;
  for (let i = 0; i < a.length; i++) { scale = Math.max(scale, Math.abs(b[i]!)); d = Math.max(d, Math.abs(a[i]! - b[i]!)); }
  return d / Math.max(scale, 1e-30);
}

const CASES: [TensorTypeName, 'none' | undefined][] = [['F32', undefined], ['F16', 'none'], ['F16', undefined], ['Q8_0', undefined], ['Q4_0', undefined], ['Q4_K', undefined], ['Q6_K', undefined]];

for (const [type, activationQuant] of CASES) {
  const exact = type === 'F32' || activationQuant === 'none';
  test(`${type}${activationQuant ? ` (activationQuant ${activationQuant})` : ''}: WebAssembly kernels vs the twins; threads change no bit`, async () => {
    const weights = randomWeights(config, type, 3);
    const tokens = randomTokens(23, config.vocabSize, 9);
    // layer 0's Q, K, V: products of identically rounded activations (the normed embeddings)
    const first = ['blocks.0.attn.hook_q', 'blocks.0.attn.hook_k', 'blocks.0.attn.hook_v'];
    const capture = [...first, 'blocks.*.attn.hook_pattern', 'blocks.*.hook_resid_post', 'blocks.1.ffn.hook_act'];
    const aq = activationQuant ? { activationQuant } : {};
    const js = new Session(weights, { kernels: 'js', ...aq });
    assert.equal(js.cpuKernels.name, 'js');
    assert.equal(js.cpuKernels.detail, 'JavaScript kernels, 1 thread');
    const want = js.run(tokens, { capture, logits: 'all' });
    const runs = [];
    for (const threads of [1, 2, 3]) {
      const s = new Session(weights, { threads, chunkSize: 16, ...aq });      // two chunks: 16 + 7 positions
      assert.equal(s.cpuKernels.name, 'wasm', String(s.cpuKernels.reason));
      // Node 20 runs the plain build (load.ts: relaxed SIMD only where the engine has it unflagged)
      assert.equal(s.cpuKernels.detail, `WebAssembly SIMD kernels, ${threads} thread${threads > 1 ? 's' : ''}`);
      await s.ready();
      runs.push(s.run(tokens, { capture, logits: 'all' }));
    }
    const got = runs[0]!;
    for (const name of want.trace.keys()) {
      if (!exact && !first.includes(name)) continue;
      const d = maxRelDiff(got.trace.get(name)!.data, want.trace.get(name)!.data);
      assert.ok(d < 2e-4, `${type} ${name}: ${d}`);      // sharp attention rows magnify the f32 scores' round-off
    }
    const dl = maxRelDiff(got.logits, want.logits);
    assert.ok(dl < (exact ? 1e-4 : 0.05), `${type} logits: ${dl}`);
    for (const r of runs.slice(1)) {
      assert.deepEqual(r.logits, got.logits, `${type}: threads change the logits`);
      for (const name of got.trace.keys()) assert.deepEqual(r.trace.get(name)!.data, got.trace.get(name)!.data, name);
    }
  });
}

test('a non-shared weight memory that grows: generation one token at a time equals one prefill, bit for bit', async () => {
  const synth = synthModel({ config, type: 'Q8_0', seed: 5, format: 'gguf' });
  const weights = await loadModelWeights(await openModel([bytesSource(synth.files[0]!.bytes, 'm.gguf')]), { shared: false });
  const tokens = randomTokens(150, config.vocabSize, 2);    // the KV cache grows 64 → 128 → 160
  const step = new Session(weights, { threads: 4 });
  assert.equal(step.cpuKernels.threads, 1);
  assert.match(String(step.cpuKernels.reason), /not shared/);
  assert.match(step.cpuKernels.detail, /, 1 thread$/);
  const rows: Float32Array[] = [];
  for (let n = 1; n <= tokens.length; n += 37) rows.push(step.run(tokens.slice(0, n)).logits.slice());
  const all = new Session(weights).run(tokens, { logits: 'all' }).logits;
  let i = 0;
  for (let n = 1; n <= tokens.length; n += 37, i++) {
    assert.deepEqual(rows[i], all.subarray((n - 1) * config.vocabSize, n * config.vocabSize), `position ${n - 1}`);
  }
});
