// Which build of the WebAssembly kernels a model loads with (kernels/wasm/calibrate.ts): the rule
// that picks between the two builds' timings, the weight type a model is timed on, and that Node
// 20 (no relaxed SIMD without a flag) has nothing to choose. The timing itself runs in Chromium:
// test/browser/fast-kernels.test.ts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseBuild, pickRelaxed } from '../../kernels/wasm/calibrate.ts';
import { relaxedSimdSupported } from '../../kernels/wasm/load.ts';
import { mainWeightType } from '../../src/engine/weights.ts';
import type { ModelFile } from '../../src/formats/model.ts';

test('the relaxed build stays unless the plain one is more than 5% faster', () => {
  assert.equal(pickRelaxed(10, 11), true);
  assert.equal(pickRelaxed(10, 10), true);
  assert.equal(pickRelaxed(10, 9.6), true);
  assert.equal(pickRelaxed(10, 9.4), false);
  assert.equal(pickRelaxed(10, 5), false);
});

test('a model is timed on the type that holds most of its bytes', () => {
  const t = (type: string, byteLength: number) => ({ name: type, fileName: type, type, shape: [1], source: 0, offset: 0, byteLength });
  const model = (tensors: ReturnType<typeof t>[]) => ({ tensors } as unknown as ModelFile);
  // a Q4_0 file keeps its norms in F32 and, often, its output matrix in Q6_K
  assert.equal(mainWeightType(model([t('F32', 10), t('Q6_K', 300), t('Q4_0', 200), t('Q4_0', 200)])), 'Q4_0');
  assert.equal(mainWeightType(model([t('F32', 5)])), 'F32');
});

test('Node 20 has no relaxed SIMD without a flag: nothing to choose', async () => {
  if (relaxedSimdSupported()) return assert.ok(true, 'this Node has relaxed SIMD; the browser test covers the choice');
  assert.equal(await chooseBuild('Q4_0'), null);
});
