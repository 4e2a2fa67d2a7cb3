// What the cells ask the engine to record (src/app/compute.ts needOf). The attention cell asks for
// the summary of every layer only where it is drawn (the overview). The heads view's statistics
// come from the shown layer's pattern (on the page for a short prompt, with the pooled tiles for a
// long one sorted by a statistic), so a keystroke does not pay for a summary of every layer, nor a
// long prompt for a run from position 0. The activations and embeddings cells capture their
// per-layer hooks for every layer while that fits ALL_LAYERS_BYTES, so a layer change costs no run
// (past it, the activations cell records every layer's norms and a group of layers' rows);
// the attention cell, past every layer's pattern, the queries its rows are recomputed from (every
// layer's, or a group of layers' on a longer prompt).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ALL_LAYERS_BYTES, BLOCK_ROWS_BYTES, attentionIsLong, needOf } from '../../src/app/compute.ts';
import type { ModelInfo } from '../../src/engine/api.ts';

const tiny = { config: { nLayers: 22, nHeads: 32, dModel: 2048, dFfn: 5632 } } as unknown as ModelInfo;   // TinyLlama's shape
const tinyCpu = { ...tiny, backend: 'cpu' } as ModelInfo;
const short = 145, long = 1000;

test('a short prompt asks for the every-layer summary only for the overview', () => {
  assert.equal(attentionIsLong(32, short), false);
  const settings: Record<string, string>[] = [{}, { view: 'heads' }, { view: 'heads', sort: 'entropy' }, { view: 'heatmap', sort: 'prev' }, { view: 'lines' }, { view: 'from' }];
  for (const s of settings) {
    assert.equal(needOf('attention', s, tiny, short).summary, false, JSON.stringify(s));
  }
  assert.equal(needOf('attention', { view: 'overview' }, tiny, short).summary, true);
  // every layer's pattern is captured (a layer change costs no run)
  assert.deepEqual(needOf('attention', { layer: 3 }, tiny, short).capture, ['blocks.*.attn.hook_pattern']);
});

test('a long prompt asks for it only for the overview too (pooled heads sorted by a statistic bring their layer\'s)', () => {
  assert.equal(attentionIsLong(32, long), true);
  assert.equal(needOf('attention', {}, tiny, long).summary, false);
  assert.equal(needOf('attention', { sort: 'index' }, tiny, long).summary, false);
  assert.equal(needOf('attention', { sort: 'entropy' }, tiny, long).summary, false);
  assert.equal(needOf('attention', { view: 'heatmap', sort: 'prev' }, tiny, long).summary, false);
  assert.equal(needOf('attention', { view: 'overview' }, tiny, long).summary, true);
  assert.deepEqual(needOf('attention', { layer: 3 }, tiny, long).capture, ['blocks.3.attn.hook_pattern']);
});

test("past every layer's pattern, a CPU session records every layer's queries while they fit, else a group of layers': a layer change within them runs no prompt from position 0", () => {
  const cpu = { ...tiny, backend: 'cpu', config: { ...tiny.config, dHead: 64 } } as ModelInfo;
  const gpu = { ...cpu, backend: 'webgpu' } as ModelInfo;
  assert.deepEqual(needOf('attention', { layer: 3 }, cpu, short).capture, ['blocks.*.attn.hook_pattern']);
  assert.ok(22 * 400 * 2048 * 4 <= ALL_LAYERS_BYTES && 22 * long * 2048 * 4 > ALL_LAYERS_BYTES);
  assert.deepEqual(needOf('attention', { layer: 3 }, cpu, 400).capture, ['blocks.3.attn.hook_pattern', 'blocks.*.attn.hook_rot_q']);
  // past that, a group of as many consecutive layers as fit, fixed by the layer: 1,000 TinyLlama
  // positions take 8 MB of queries a layer, so 12 of the 22 (layers 0–11, then 10–21)
  const group = (from: number, n: number) => Array.from({ length: n }, (_, i) => `blocks.${from + i}.attn.hook_rot_q`);
  assert.equal(Math.floor(ALL_LAYERS_BYTES / (long * 2048 * 4)), 12);
  assert.deepEqual(needOf('attention', { layer: 3 }, cpu, long).capture, ['blocks.3.attn.hook_pattern', ...group(0, 12)]);
  assert.deepEqual(needOf('attention', { layer: 11 }, cpu, long).capture.slice(1), group(0, 12));
  assert.deepEqual(needOf('attention', { layer: 12 }, cpu, long).capture, ['blocks.12.attn.hook_pattern', ...group(10, 12)]);
  assert.deepEqual(needOf('attention', { layer: 21 }, cpu, long).capture.slice(1), group(10, 12));
  // too long for two layers' queries: none (the shown layer's pattern is recorded itself)
  assert.deepEqual(needOf('attention', { layer: 3 }, cpu, 8000).capture, ['blocks.3.attn.hook_pattern']);
  // on WebGPU the KV cache is on the GPU: the session cannot recompute rows from it
  assert.deepEqual(needOf('attention', { layer: 3 }, gpu, 400).capture, ['blocks.3.attn.hook_pattern']);
});

test('the activations cell captures its layer\'s FFN activations and residual for every layer while they fit', () => {
  const fits = (width: number, n: number) => 22 * n * width * 4 <= ALL_LAYERS_BYTES;
  assert.ok(fits(5632, short) && !fits(5632, 400) && fits(2048, 400) && !fits(2048, long));
  assert.deepEqual(needOf('activations', { layer: 3 }, tinyCpu, short).capture,
    ['blocks.*.hook_resid_pre:norm', 'blocks.*.hook_attn_out:norm', 'blocks.*.hook_ffn_out:norm',
      'blocks.*.hook_resid_pre', 'blocks.*.hook_attn_out', 'blocks.*.hook_ffn_out', 'blocks.*.hook_resid_post', 'blocks.*.ffn.hook_act']);
  assert.deepEqual(needOf('activations', { layer: 3 }, tinyCpu, 400).capture.slice(-2), ['blocks.*.hook_resid_post', 'blocks.3.ffn.hook_act']);
  assert.deepEqual(needOf('activations', { layer: 3 }, tinyCpu, long).capture.slice(-2), ['blocks.3.hook_resid_post', 'blocks.3.ffn.hook_act']);
  // the residual and sublayer outputs: every layer's rows of the three while they fit
  // BLOCK_ROWS_BYTES (992 positions); then every layer's residual rows (to 2,978 positions) and
  // the sublayer outputs' norms; then the residual rows of a group of layers (4,000 positions: 16)
  // and every norm
  const hooks = ['hook_resid_pre', 'hook_attn_out', 'hook_ffn_out'];
  const norms = hooks.map((h) => `blocks.*.${h}:norm`);
  const group = (from: number, n: number) => Array.from({ length: n }, (_, i) => `blocks.${from + i}.hook_resid_pre`);
  assert.ok(22 * 3 * 992 * 2048 * 4 <= BLOCK_ROWS_BYTES && 22 * 3 * 993 * 2048 * 4 > BLOCK_ROWS_BYTES);
  assert.ok(22 * 2978 * 2048 * 4 <= BLOCK_ROWS_BYTES && 22 * 2979 * 2048 * 4 > BLOCK_ROWS_BYTES);
  assert.deepEqual(needOf('activations', { layer: 3 }, tinyCpu, 992).capture.slice(0, 6), [...norms, ...hooks.map((h) => `blocks.*.${h}`)]);
  assert.deepEqual(needOf('activations', { layer: 3 }, tinyCpu, 993).capture.slice(0, 4), [...norms, 'blocks.*.hook_resid_pre']);
  assert.deepEqual(needOf('activations', { layer: 3 }, tinyCpu, 2978).capture.slice(0, 4), [...norms, 'blocks.*.hook_resid_pre']);
  assert.deepEqual(needOf('activations', { layer: 3 }, tinyCpu, 4000).capture.slice(0, 3 + 16), [...norms, ...group(0, 16)]);
  assert.deepEqual(needOf('activations', { layer: 20 }, tinyCpu, 4000).capture.slice(0, 3 + 16), [...norms, ...group(6, 16)]);
  assert.deepEqual(needOf('activations', { layer: 15 }, tinyCpu, 12000).capture.slice(0, 3 + 5), [...norms, ...group(15, 5)]);
  // on WebGPU the session recomputes no layer from the rows: the norms alone, at any length
  const tinyGpu = { ...tinyCpu, backend: 'webgpu' } as ModelInfo;
  assert.deepEqual(needOf('activations', { layer: 3 }, tinyGpu, short).capture, [...norms, 'blocks.*.hook_resid_post', 'blocks.*.ffn.hook_act']);
  // a histogram of another hook is captured as named
  assert.deepEqual(needOf('activations', { layer: 3, hook: 'blocks.5.attn.hook_z' }, tinyCpu, short).capture.slice(-2), ['blocks.5.attn.hook_z', 'blocks.*.ffn.hook_act']);
});

test('the embeddings cell captures the residual of every layer while it fits', () => {
  assert.deepEqual(needOf('embeddings', { layer: 4 }, tiny, short).capture, ['blocks.*.hook_resid_post']);
  assert.deepEqual(needOf('embeddings', {}, tiny, long).capture, ['blocks.21.hook_resid_post']);
  assert.equal(needOf('embeddings', { layer: 'all' }, tiny, long).capture.length, 22);
});
