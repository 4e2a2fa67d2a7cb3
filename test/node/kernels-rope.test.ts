// RoPE CPU twin: adjacent-pair rotation, frequencies (plain, linear, llama3, GGUF rope_freqs), and
// agreement with a naive complex-number formulation that computes every angle directly.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rope, RopeTable, ropeFrequencies } from '../../kernels/rope/rope.cpu.ts';
import { llama3RopeFactors } from '../../src/formats/gguf.ts';
import { Rng } from '../../src/engine/random.ts';

test('rope: hand-worked rotation of adjacent pairs', () => {
  // d_head 4, theta 100: freq = [1, 100^(-1/2) = 0.1]
  const table = new RopeTable({ dHead: 4, theta: 100, scaling: null, freqFactors: null });
  assert.deepEqual([...table.freqs], [1, 0.1]);
  // one head at position 2: pair 0 turns by 2 rad, pair 1 by 0.2 rad
  const x = Float32Array.of(1, 0, 0, 1);
  rope(x, 1, 1, 4, 2, table);
  const want = [Math.cos(2), Math.sin(2), -Math.sin(0.2), Math.cos(0.2)];
  for (let i = 0; i < 4; i++) assert.ok(Math.abs(x[i]! - want[i]!) < 1e-7, `x[${i}] = ${x[i]}, want ${want[i]}`);
  // position 0 is the identity
  const y = Float32Array.of(0.3, -0.7, 5, 6);
  rope(y, 1, 1, 4, 0, table);
  assert.deepEqual([...y], [...Float32Array.of(0.3, -0.7, 5, 6)]);
});

test('rope agrees with (x0 + i·x1)·e^{i·pos·θ^(−2j/d)} on random heads, odd positions, large values', () => {
  const rng = new Rng(5);
  for (const [n, nHeads, dHead, start, theta, scale] of [[3, 1, 2, 0, 10000, 1], [5, 3, 8, 7, 10000, 100], [2, 4, 64, 4093, 500000, 1e4], [1, 7, 6, 131000, 10000, 1]] as const) {
    const table = new RopeTable({ dHead, theta, scaling: null, freqFactors: null });
    const x = new Float32Array(n * nHeads * dHead);
    for (let i = 0; i < x.length; i++) x[i] = rng.gaussian() * scale;
    const want = new Float64Array(x.length);
    for (let t = 0; t < n; t++) {
      for (let h = 0; h < nHeads; h++) {
        for (let j = 0; j < dHead / 2; j++) {
          const o = (t * nHeads + h) * dHead + 2 * j;
          const angle = (start + t) * Math.pow(theta, (-2 * j) / dHead);
          const re = Math.cos(angle), im = Math.sin(angle);
          want[o] = x[o]! * re - x[o + 1]! * im;
          want[o + 1] = x[o]! * im + x[o + 1]! * re;
        }
      }
    }
    rope(x, n, nHeads, dHead, start, table);
    for (let i = 0; i < x.length; i++) {
      assert.ok(Math.abs(x[i]! - want[i]!) <= 1e-6 * scale * 4, `n=${n} d=${dHead} start=${start} [${i}]: ${x[i]} vs ${want[i]}`);
    }
  }
});

test('rope frequencies: linear scaling divides, llama3 scaling equals the GGUF rope_freqs factors', () => {
  const base = ropeFrequencies({ dHead: 64, theta: 500000, scaling: null, freqFactors: null });
  const linear = ropeFrequencies({ dHead: 64, theta: 500000, scaling: { type: 'linear', factor: 4 }, freqFactors: null });
  for (let i = 0; i < 32; i++) assert.ok(Math.abs(linear[i]! - base[i]! / 4) < 1e-15);

  const s = { type: 'llama3' as const, factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 8192 };
  const llama3 = ropeFrequencies({ dHead: 64, theta: 500000, scaling: s, freqFactors: null });
  // independent implementation: the factors the GGUF reader computes, as convert_hf_to_gguf.py does
  const factors = llama3RopeFactors(64, 500000, s);
  const fromFactors = ropeFrequencies({ dHead: 64, theta: 500000, scaling: s, freqFactors: factors });
  let kept = 0, divided = 0, blended = 0;
  for (let i = 0; i < 32; i++) {
    assert.ok(Math.abs(llama3[i]! - fromFactors[i]!) <= 1e-6 * base[i]!, `freq ${i}: ${llama3[i]} vs ${fromFactors[i]}`);
    const r = base[i]! / llama3[i]!;
    if (Math.abs(r - 1) < 1e-12) kept++; else if (Math.abs(r - 32) < 1e-9) divided++; else blended++;
  }
  // high frequencies kept, low ones divided by the factor, a band in between blended
  assert.ok(kept > 0 && divided > 0 && blended > 0, `kept ${kept}, divided ${divided}, blended ${blended}`);
  assert.equal(base[0], llama3[0]);
});

test('rope table grows on demand and keeps earlier rows', () => {
  const table = new RopeTable({ dHead: 8, theta: 10000, scaling: null, freqFactors: null });
  table.ensure(3);
  const early = table.cos.slice(0, 3 * 4);
  table.ensure(1000);
  assert.deepEqual(table.cos.slice(0, 12), early);
  assert.ok(table.cos.length >= 1000 * 4 && table.cos.length < 4 * 4 * 1000);
  assert.ok(Math.abs(table.sin[999 * 4 + 1]! - Math.sin(999 * Math.pow(10000, -2 / 8))) < 1e-7);
});
