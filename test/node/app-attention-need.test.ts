// What an attention cell asks the engine to record (src/app/compute.ts needOf): the summary of
// every layer only where it is drawn (the overview). The heads view's statistics come from the
// shown layer's pattern (on the page for a short prompt, with the pooled tiles for a long one
// sorted by a statistic), so a keystroke does not pay for a summary of every layer, nor a long
// prompt for a run from position 0.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attentionIsLong, needOf } from '../../src/app/compute.ts';
import type { ModelInfo } from '../../src/engine/api.ts';

const tiny = { config: { nLayers: 22, nHeads: 32 } } as unknown as ModelInfo;   // TinyLlama's shape
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
