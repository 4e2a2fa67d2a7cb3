// poolAttention: one layer's causal pattern [heads, n, n] max- or mean-pooled into B × B bins,
// checked against hand-computed values and a straightforward re-computation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { poolAttention } from '../../src/engine/slices.ts';
import { AttentionSummarizer } from '../../src/engine/attention-summary.ts';

/** A causal [n, n] pattern from rows (row q has q + 1 values). */
function causal(rows: number[][]): Float32Array {
  const n = rows.length, d = new Float32Array(n * n);
  rows.forEach((r, q) => r.forEach((v, k) => { d[q * n + k] = v; }));
  return d;
}

test('4 positions into 2 bins: max and mean of the causal entries, NaN above the diagonal', () => {
  const d = causal([[1], [0.25, 0.75], [0.5, 0.25, 0.25], [0.125, 0.125, 0.25, 0.5]]);
  // bins {0,1}, {2,3}. cell (0,0): entries 1, .25, .75 (q0k0, q1k0, q1k1) → max 1, mean 2/3.
  // cell (1,0): q2k0 .5, q2k1 .25, q3k0 .125, q3k1 .125 → max .5, mean 1/4.
  // cell (1,1): q2k2 .25, q3k2 .25, q3k3 .5 (q2k3 is masked, not a zero that counts) → max .5, mean 1/3.
  const max = poolAttention(d, 1, 4, 2, 'max');
  assert.deepEqual([...max], [1, NaN, 0.5, 0.5]);
  const mean = poolAttention(d, 1, 4, 2, 'mean');
  assert.ok(Number.isNaN(mean[1]));
  for (const [i, v] of [[0, 2 / 3], [2, 1 / 4], [3, 1 / 3]] as const) assert.ok(Math.abs(mean[i]! - v) < 1e-7, `mean[${i}] ${mean[i]} vs ${v}`);
});

test('non-divisible sizes: 5 positions into 2 bins split {0,1,2}, {3,4}; heads pooled separately', () => {
  const a = causal([[1], [0.9, 0.1], [0.2, 0.3, 0.5], [0.1, 0.1, 0.1, 0.7], [0.05, 0.05, 0.6, 0.2, 0.1]]);
  const b = a.map((v) => v / 2);
  const both = new Float32Array(50); both.set(a); both.set(b, 25);
  const max = poolAttention(both, 2, 5, 2, 'max');
  // head 0: (0,0) max of q0..2,k0..2 causal = 1; (1,0) q3,4 × k0..2 = .6; (1,1) q3k3 .7, q4k3 .2, q4k4 .1 → .7
  assert.deepEqual([...max.subarray(0, 4)].map((v) => Math.round(v * 1e6) / 1e6), [1, NaN, 0.6, 0.7]);
  assert.deepEqual([...max.subarray(4)].map((v) => Math.round(v * 1e6) / 1e6), [0.5, NaN, 0.3, 0.35]);
});

/** A seeded causal softmax-like pattern [heads, n, n]. */
function seeded(nHeads: number, n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const d = new Float32Array(nHeads * n * n);
  for (let h = 0; h < nHeads; h++) for (let q = 0; q < n; q++) {
    let sum = 0;
    for (let k = 0; k <= q; k++) { const v = rnd() ** 4; d[(h * n + q) * n + k] = v; sum += v; }
    for (let k = 0; k <= q; k++) d[(h * n + q) * n + k]! /= sum;
  }
  return d;
}

test('max equals a brute-force max over each bin; mean equals the summary thumbnails (37 positions, 6 bins)', () => {
  const H = 3, n = 37, B = 6, d = seeded(H, n, 11);
  const start = (b: number) => Math.ceil((b * n) / B);
  const max = poolAttention(d, H, n, B, 'max');
  for (let h = 0; h < H; h++) for (let qb = 0; qb < B; qb++) for (let kb = 0; kb < B; kb++) {
    let m = -Infinity;
    for (let q = start(qb); q < start(qb + 1); q++) for (let k = start(kb); k < Math.min(start(kb + 1), q + 1); k++) m = Math.max(m, d[(h * n + q) * n + k]!);
    const got = max[(h * B + qb) * B + kb]!;
    if (m === -Infinity) assert.ok(Number.isNaN(got), `(${h},${qb},${kb}) has no causal entry`);
    else assert.equal(got, Math.fround(m));
  }
  const acc = new AttentionSummarizer(1, H, n, B);
  for (let h = 0; h < H; h++) for (let q = 0; q < n; q++) acc.row(0, h, q, d.subarray((h * n + q) * n, (h * n + q) * n + q + 1));
  const thumbs = acc.result().thumbs, mean = poolAttention(d, H, n, B, 'mean');
  for (let i = 0; i < mean.length; i++) {
    if (Number.isNaN(thumbs[i]!)) assert.ok(Number.isNaN(mean[i]!));
    else assert.ok(Math.abs(mean[i]! - thumbs[i]!) < 1e-6, `${i}: ${mean[i]} vs ${thumbs[i]}`);
  }
});

test('B = n is the pattern itself (NaN above the diagonal); bad sizes are refused', () => {
  const d = seeded(2, 9, 5), p = poolAttention(d, 2, 9, 9, 'max');
  for (let i = 0; i < d.length; i++) {
    const q = Math.floor(i / 9) % 9, k = i % 9;
    if (k > q) assert.ok(Number.isNaN(p[i]!)); else assert.equal(p[i], d[i]);
  }
  assert.throws(() => poolAttention(d, 2, 9, 10), RangeError);
  assert.throws(() => poolAttention(d, 3, 9, 3), RangeError);
});
