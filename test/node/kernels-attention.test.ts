// Attention CPU twin: causal grouped-query attention over a KV cache, against a hand-worked case
// and against the textbook matrix formulation (repeat K/V per query head, S = QKᵀ/√d with a causal
// −inf mask, P = softmax(S), Z = PV) on seeded random inputs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attention } from '../../kernels/attention/attention.cpu.ts';
import { Rng } from '../../src/engine/random.ts';

test('attention: hand-worked single head, two positions', () => {
  // d_head 2; keys k0 = [1, 0], k1 = [0, 1]; values v0 = [1, 2], v1 = [3, 4]
  const k = Float32Array.of(1, 0, 0, 1), v = Float32Array.of(1, 2, 3, 4);
  const q = Float32Array.of(2, 0, /* pos 1 */ 0, Math.SQRT2 * Math.log(3));
  const z = new Float32Array(4), scores = new Float32Array(4), pattern = new Float32Array(4);
  attention(z, q, k, v, { nq: 2, start: 0, nHeads: 1, nKvHeads: 1, dHead: 2 }, scores, pattern);
  // position 0 sees only key 0: z = v0
  assert.deepEqual([...z.subarray(0, 2)], [1, 2]);
  assert.equal(scores[1], -Infinity);
  assert.equal(pattern[1], 0);
  assert.ok(Math.abs(scores[0]! - 2 / Math.SQRT2) < 1e-6);
  // position 1: scores [0, ln 3] → pattern [1/4, 3/4]
  assert.ok(Math.abs(pattern[2]! - 0.25) < 1e-6 && Math.abs(pattern[3]! - 0.75) < 1e-6, `${pattern}`);
  assert.ok(Math.abs(z[2]! - 2.5) < 1e-5 && Math.abs(z[3]! - 3.5) < 1e-5, `${z}`);
});

/** The textbook formulation, in f64, one head at a time over full matrices. */
function naiveAttention(q: Float32Array, k: Float32Array, v: Float32Array, nq: number, start: number, nHeads: number, nKv: number, d: number) {
  const kLen = start + nq;
  const z = new Float64Array(nq * nHeads * d), P = new Float64Array(nHeads * nq * kLen), S = new Float64Array(nHeads * nq * kLen);
  for (let h = 0; h < nHeads; h++) {
    const g = Math.floor((h * nKv) / nHeads); // repeat_kv: query head h reads kv head h·nKv/nHeads
    for (let t = 0; t < nq; t++) {
      const row = new Float64Array(kLen);
      for (let j = 0; j < kLen; j++) {
        if (j > start + t) { row[j] = -Infinity; continue; }
        let s = 0;
        for (let i = 0; i < d; i++) s += q[(t * nHeads + h) * d + i]! * k[(j * nKv + g) * d + i]!;
        row[j] = s / Math.sqrt(d);
      }
      for (let j = 0; j < kLen; j++) {
        S[(h * nq + t) * kLen + j] = row[j]!;
        let denom = 0;
        for (let m = 0; m < kLen; m++) denom += Math.exp(row[m]! - row[j]!);
        P[(h * nq + t) * kLen + j] = row[j] === -Infinity ? 0 : 1 / denom;
      }
      for (let i = 0; i < d; i++) {
        let s = 0;
        for (let j = 0; j < kLen; j++) s += P[(h * nq + t) * kLen + j]! * v[(j * nKv + g) * d + i]!;
        z[(t * nHeads + h) * d + i] = s;
      }
    }
  }
  return { z, P, S };
}

test('attention agrees with the matrix formulation: GQA, odd sizes, chunks after a cached prefix, large values', () => {
  const rng = new Rng(21);
  const cases = [
    // nq, start, nHeads, nKv, dHead, scale
    [1, 0, 1, 1, 2, 1],
    [7, 0, 4, 2, 6, 1],
    [3, 10, 6, 3, 10, 3],
    [1, 37, 8, 1, 16, 1],
    [5, 4, 3, 3, 8, 20], // large scores: softmax must subtract the row max
  ] as const;
  for (const [nq, start, nHeads, nKv, dHead, scale] of cases) {
    const kLen = start + nq;
    const gauss = (n: number) => Float32Array.from({ length: n }, () => rng.gaussian() * scale);
    const q = gauss(nq * nHeads * dHead);
    // the cache is larger than kLen: positions past kLen must be ignored
    const k = gauss((kLen + 3) * nKv * dHead), v = gauss((kLen + 3) * nKv * dHead);
    const z = new Float32Array(nq * nHeads * dHead);
    const scores = new Float32Array(nHeads * nq * kLen), pattern = new Float32Array(nHeads * nq * kLen);
    attention(z, q, k, v, { nq, start, nHeads, nKvHeads: nKv, dHead }, scores, pattern);
    const want = naiveAttention(q, k, v, nq, start, nHeads, nKv, dHead);
    const what = `nq=${nq} start=${start} heads=${nHeads}/${nKv} d=${dHead}`;
    for (let i = 0; i < z.length; i++) assert.ok(Math.abs(z[i]! - want.z[i]!) <= 1e-5 * scale * 4, `${what} z[${i}]: ${z[i]} vs ${want.z[i]}`);
    for (let i = 0; i < pattern.length; i++) {
      assert.ok(Math.abs(pattern[i]! - want.P[i]!) <= 1e-5, `${what} pattern[${i}]`);
      if (want.S[i] === -Infinity) assert.equal(scores[i], -Infinity, `${what} scores[${i}] masked`);
      else assert.ok(Math.abs(scores[i]! - want.S[i]!) <= 1e-5 * Math.max(1, Math.abs(want.S[i]!)), `${what} scores[${i}]`);
    }
    // without the optional outputs, the same z
    const z2 = new Float32Array(z.length);
    attention(z2, q, k, v, { nq, start, nHeads, nKvHeads: nKv, dHead });
    assert.deepEqual(z2, z, `${what}: z does not depend on recording`);
  }
});
