// softmax on every backend. Tolerance: rtol 2e-5, atol 1e-30. WGSL's exp is accurate to
// 3 + 2·|x| ULP: ≤ 1.1e-5 relative for the arguments x − max ≥ −87 whose results are normal f32
// (smaller results are below 1e-30, where GPUs may flush denormals); the f32 sum (strided, then a
// tree) and 1/sum add ~1e-6. −inf entries must be exactly 0 and an all −inf row all zeros.
import { expect } from 'chai';
import { softmax } from './softmax.cpu.ts';
import { encodeSoftmax, prepareSoftmax } from './softmax.gpu.ts';
import { compare, gpuOrSkip, seededValues } from '../../test/support/gpu.ts';
import { packF32, readF32, submitChecked } from '../../test/support/gpu-trial.ts';
import type { GpuContext } from '../../src/engine/gpu/context.ts';

type Backend = 'cpu' | 'webgpu';
const BACKENDS: Backend[] = ['cpu', 'webgpu'];
const RTOL = 2e-5, ATOL = 1e-30;

async function run(backend: Backend, ctx: GpuContext | null, x: Float32Array, rows: number, cols: number): Promise<Float32Array> {
  if (backend === 'cpu') {
    const y = x.slice();
    softmax(y, rows, cols);
    return y;
  }
  const g = ctx!;
  await prepareSoftmax(g);
  const { refs: [, rx] } = packF32(g, [new Float32Array(2), x]);
  const [r] = await submitChecked(g, (step) => {
    encodeSoftmax(g, step, rx!, rows, cols);
    return [readF32(step, rx!, rows * cols)];
  });
  return new Float32Array(r!);
}

/** f64 definition: the reference for the CPU twin itself. */
function definition(x: Float32Array, rows: number, cols: number): Float32Array {
  const y = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) {
    const row = Array.from(x.subarray(r * cols, (r + 1) * cols));
    const m = Math.max(...row);
    if (m === -Infinity) continue;
    const e = row.map((v) => Math.exp(v - m)), s = e.reduce((a, b) => a + b, 0);
    e.forEach((v, i) => { y[r * cols + i] = v / s; });
  }
  return y;
}

/** Seeded logits with −inf masks: ~30% of entries, one whole row, and a row with one survivor. */
function maskedLogits(rows: number, cols: number, seed: number, scale: number): Float32Array {
  const x = seededValues(rows * cols, seed, scale), coin = seededValues(rows * cols, seed + 1);
  for (let i = 0; i < x.length; i++) if (coin[i]! > 0.5) x[i] = -Infinity;
  if (rows > 1) x.fill(-Infinity, cols, 2 * cols);
  if (rows > 2) { x.fill(-Infinity, 2 * cols, 3 * cols); x[2 * cols + Math.floor(cols / 2)] = 7; }
  return x;
}

describe('softmax', () => {
  for (const backend of BACKENDS) {
    it(`[${backend}] seeded trial: odd sizes, large magnitudes, −inf masks, all −inf rows`, async function () {
      const ctx = backend === 'webgpu' ? await gpuOrSkip(this) : null;
      for (const [rows, cols, seed, scale] of [[7, 257, 41, 10], [5, 3001, 42, 30], [9, 1, 43, 1], [300, 13, 44, 100]] as const) {
        const x = maskedLogits(rows, cols, seed, scale);
        const got = await run(backend, ctx, x, rows, cols);
        const want = backend === 'cpu' ? definition(x, rows, cols) : await run('cpu', null, x, rows, cols);
        const { worst, at } = compare(got, want, ATOL, RTOL);
        expect(worst, `${backend} ${rows}x${cols}: element ${at}: ${got[at]} vs ${want[at]} (x ${x[at]})`).to.be.at.most(1);
        for (let i = 0; i < x.length; i++) if (x[i] === -Infinity && got[i] !== 0) expect.fail(`masked entry ${i} is ${got[i]}, not 0`);
        if (rows > 1) expect(Array.from(got.subarray(cols, 2 * cols)).every((v) => v === 0), 'all −inf row → zeros').to.equal(true);
      }
    });

    it(`[${backend}] fixed small case`, async function () {
      const ctx = backend === 'webgpu' ? await gpuOrSkip(this) : null;
      const I = -Infinity;
      const got = await run(backend, ctx, new Float32Array([1, 2, 3, 0, I, 0, I, 5, I, I, I, I, 1000, 0, 0, 1000]), 4, 4);
      // row 0: e^(x−3) / Σ; row 1: masked entries 0, e^0 and e^5 share; row 2: all −inf → zeros;
      // row 3: e^−1000 underflows to 0
      const want = [0.087144318, 0.23688282, 0.6439142, 0.032058604, 0, 0.0066928509, 0, 0.99330715, 0, 0, 0, 0, 0.5, 0, 0, 0.5];
      const { worst, at } = compare(got, want, 1e-7, RTOL);
      expect(worst, `element ${at}: ${got[at]} vs ${want[at]}`).to.be.at.most(1);
    });
  }
});
