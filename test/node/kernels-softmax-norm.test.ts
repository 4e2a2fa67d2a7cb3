// CPU twins of softmax, rmsnorm, silu-mul, add: a hand-worked case each, and agreement with a
// deliberately different (naive) formulation on seeded random inputs with odd sizes, large
// magnitudes and −inf masks.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { softmax } from '../../kernels/softmax/softmax.cpu.ts';
import { rmsnorm } from '../../kernels/rmsnorm/rmsnorm.cpu.ts';
import { siluMul } from '../../kernels/silu-mul/silu-mul.cpu.ts';
import { add } from '../../kernels/add/add.cpu.ts';
import { Rng } from '../../src/engine/random.ts';

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, rel: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    if (a === e) continue;
    const tol = rel * Math.max(1, Math.abs(e));
    assert.ok(Math.abs(a - e) <= tol, `${what}[${i}]: ${a} vs ${e}`);
  }
}

function randomArray(rng: Rng, n: number, scale: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.gaussian() * scale;
  return out;
}

test('softmax: hand-worked rows, including a masked entry and an all-masked row', () => {
  const x = Float32Array.of(0, Math.log(3), -Infinity, /* row 2 */ -Infinity, -Infinity, -Infinity, /* row 3 */ 1000, 1000, 999);
  softmax(x, 3, 3);
  close(x.subarray(0, 3), [0.25, 0.75, 0], 1e-7, 'row 1');
  assert.deepEqual([...x.subarray(3, 6)], [0, 0, 0], 'an all −inf row is zeros, not NaN');
  const e = Math.exp(-1);
  close(x.subarray(6), [1 / (2 + e), 1 / (2 + e), e / (2 + e)], 1e-7, 'large logits do not overflow');
});

test('softmax agrees with 1 / Σ exp(x_j − x_i) on random rows (odd sizes, large values, −inf masks)', () => {
  const rng = new Rng(7);
  for (const [rows, cols, scale] of [[3, 1, 1], [5, 17, 3], [4, 129, 60], [2, 1001, 25]] as const) {
    const x = randomArray(rng, rows * cols, scale);
    for (let i = 0; i < x.length; i++) if (rng.next() < 0.2) x[i] = -Infinity;
    for (let r = 0; r < rows; r++) x[r * cols] = rng.gaussian() * scale; // at least one live entry per row
    const want = new Float64Array(x.length);
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < cols; i++) {
        let s = 0;
        for (let j = 0; j < cols; j++) s += Math.exp(x[r * cols + j]! - x[r * cols + i]!);
        want[r * cols + i] = x[r * cols + i] === -Infinity ? 0 : 1 / s;
      }
    }
    softmax(x, rows, cols);
    close(x, want, 1e-6, `softmax ${rows}×${cols}`);
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let i = 0; i < cols; i++) s += x[r * cols + i]!;
      assert.ok(Math.abs(s - 1) < 1e-5, `row ${r} sums to ${s}`);
    }
  }
});

test('rmsnorm: hand-worked case with eps inside the square root, scale = rms, normalized before weight', () => {
  // x = [3, 4]: mean(x²) = 12.5, eps 0.5 → rms = sqrt(13) 
  const x = Float32Array.of(3, 4), w = Float32Array.of(2, -1);
  const out = new Float32Array(2), scale = new Float32Array(1), normed = new Float32Array(2);
  rmsnorm(out, x, w, 1, 2, 0.5, scale, normed);
  const rms = Math.sqrt(13);
  close(scale, [rms], 1e-7, 'scale');
  close(normed, [3 / rms, 4 / rms], 1e-7, 'normalized');
  close(out, [6 / rms, -4 / rms], 1e-7, 'out');
});

test('rmsnorm agrees with a naive formulation on random rows (odd sizes, large values), in place too', () => {
  const rng = new Rng(11);
  for (const [n, d, scale, eps] of [[1, 1, 1, 1e-5], [3, 7, 1e3, 1e-6], [5, 173, 0.01, 1e-5], [2, 1025, 5e4, 1e-5]] as const) {
    const x = randomArray(rng, n * d, scale), w = randomArray(rng, d, 1);
    const want = new Float64Array(n * d), wantScale = new Float64Array(n);
    for (let r = 0; r < n; r++) {
      const row = [...x.subarray(r * d, (r + 1) * d)];
      const ms = row.reduce((s, v) => s + v * v, 0) / d;
      wantScale[r] = Math.sqrt(ms + eps);
      row.forEach((v, i) => { want[r * d + i] = (v / wantScale[r]!) * w[i]!; });
    }
    const out = new Float32Array(n * d), sc = new Float32Array(n);
    rmsnorm(out, x, w, n, d, eps, sc);
    close(out, want, 1e-5, `rmsnorm ${n}×${d}`);
    close(sc, wantScale, 1e-6, `scale ${n}×${d}`);
    rmsnorm(x, x, w, n, d, eps);
    assert.deepEqual(x, out, 'in place gives the same result');
  }
});

test('siluMul and add: hand-worked values and random agreement', () => {
  const g = Float32Array.of(0, 1, -2, 30, -30), u = Float32Array.of(5, 2, 1, 1, 1);
  const out = new Float32Array(5);
  siluMul(out, g, u);
  close(out, [0, 2 / (1 + Math.exp(-1)), -2 / (1 + Math.exp(2)), 30, -30 / (1 + Math.exp(30))], 1e-7, 'silu');
  const rng = new Rng(3);
  const n = 997;
  const a = randomArray(rng, n, 20), b = randomArray(rng, n, 20);
  const s = new Float32Array(n);
  siluMul(s, a, b);
  close(s, [...a].map((v, i) => (v * b[i]!) / (1 + Math.exp(-v))), 1e-6, 'silu random');
  add(s, a, b);
  close(s, [...a].map((v, i) => v + b[i]!), 1e-7, 'add');
  add(a, a, b);
  assert.deepEqual(a, s, 'add in place');
});
