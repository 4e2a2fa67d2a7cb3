// rope on every backend. Tolerance per element: |got − want| ≤ 4·2⁻²⁴·(|x0| + |x1|) of its pair.
// Both twins rotate by the same f32 cos/sin (the table is the CPU twin's); the CPU evaluates
// x0·c − x1·s in f64 and rounds once, the GPU rounds each product and the sum in f32 (or fuses
// them): a few ULP of the larger term, which can exceed the result when the two terms cancel,
// hence a bound on the pair's magnitude rather than a relative one.
import { expect } from 'chai';
import { rope, ropeFrequencies, RopeTable, type RopeParams } from './rope.cpu.ts';
import { encodeRope, encodeRopeQK, prepareRope, prepareRopeQK, uploadRopeTable } from './rope.gpu.ts';
import { gpuOrSkip, seededValues } from '../../test/support/gpu.ts';
import { packF32, readF32, submitChecked } from '../../test/support/gpu-trial.ts';
import type { GpuContext } from '../../src/engine/gpu/context.ts';

type Backend = 'cpu' | 'webgpu';
const BACKENDS: Backend[] = ['cpu', 'webgpu'];
const ULPS = 4 * 2 ** -24;

interface Case { n: number; heads: number; dHead: number; start: number; params: RopeParams; seed: number }

async function run(backend: Backend, ctx: GpuContext | null, c: Case, x: Float32Array): Promise<Float32Array> {
  const table = new RopeTable(c.params);
  if (backend === 'cpu') {
    const y = x.slice();
    rope(y, c.n, c.heads, c.dHead, c.start, table);
    return y;
  }
  const g = ctx!;
  await prepareRope(g);
  const tbuf = uploadRopeTable(g, table, c.start + c.n);
  const { refs: [, rx] } = packF32(g, [new Float32Array(5), x]);   // x at an odd offset, after another tensor
  const [r] = await submitChecked(g, (step) => {
    encodeRope(g, step, rx!, c.n, c.heads, c.dHead, c.start, tbuf);
    return [readF32(step, rx!, x.length)];
  });
  tbuf.destroy();
  return new Float32Array(r!);
}

/** f64 definition with Math.cos/sin of the angle (not the table): the reference for the CPU twin. */
function definition(c: Case, x: Float32Array): Float32Array {
  const freqs = ropeFrequencies(c.params), half = c.dHead / 2, y = new Float32Array(x.length);
  for (let t = 0; t < c.n; t++) for (let h = 0; h < c.heads; h++) for (let i = 0; i < half; i++) {
    const o = (t * c.heads + h) * c.dHead + 2 * i, a = (c.start + t) * freqs[i]!;
    y[o] = x[o]! * Math.cos(a) - x[o + 1]! * Math.sin(a);
    y[o + 1] = x[o]! * Math.sin(a) + x[o + 1]! * Math.cos(a);
  }
  return y;
}

function expectClose(tag: string, got: Float32Array, want: Float32Array, x: Float32Array): void {
  expect(got.length).to.equal(want.length);
  for (let k = 0; k < got.length; k++) {
    const pair = k - (k % 2);
    const bound = ULPS * (Math.abs(x[pair]!) + Math.abs(x[pair + 1]!)) + 1e-30;
    if (!(Math.abs(got[k]! - want[k]!) <= bound)) expect.fail(`${tag}: element ${k}: ${got[k]} vs ${want[k]} (bound ${bound})`);
  }
}

describe('rope', () => {
  for (const backend of BACKENDS) {
    it(`[${backend}] seeded trial: odd sizes, large magnitudes and positions, llama3 / linear / rope_freqs`, async function () {
      const ctx = backend === 'webgpu' ? await gpuOrSkip(this) : null;
      const factors = seededValues(8, 31).map((v) => 1 + Math.abs(v) * 3);
      const cases: Case[] = [
        { n: 7, heads: 6, dHead: 10, start: 0, seed: 32, params: { dHead: 10, theta: 10000, scaling: null, freqFactors: null } },
        { n: 3, heads: 3, dHead: 64, start: 5000, seed: 33, params: { dHead: 64, theta: 500000, freqFactors: null,
          scaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 8192 } } },
        { n: 5, heads: 2, dHead: 16, start: 17, seed: 34, params: { dHead: 16, theta: 10000, freqFactors: factors,
          scaling: { type: 'linear', factor: 2 } } },
        { n: 40, heads: 1, dHead: 2, start: 1, seed: 35, params: { dHead: 2, theta: 10000, scaling: null, freqFactors: null } },
      ];
      for (const c of cases) {
        const x = seededValues(c.n * c.heads * c.dHead, c.seed, 10);
        const got = await run(backend, ctx, c, x);
        const want = backend === 'cpu' ? definition(c, x) : await run('cpu', null, c, x);
        expectClose(`${backend} n=${c.n} heads=${c.heads} dHead=${c.dHead} start=${c.start}`, got, want, x);
      }
    });

    it(`[${backend}] fixed small case`, async function () {
      const ctx = backend === 'webgpu' ? await gpuOrSkip(this) : null;
      // dHead 4, theta 10000: freqs 1 and 0.01; position 1 turns pair 0 by 1 rad, pair 1 by 0.01 rad
      const c: Case = { n: 1, heads: 1, dHead: 4, start: 1, seed: 0, params: { dHead: 4, theta: 10000, scaling: null, freqFactors: null } };
      const got = await run(backend, ctx, c, new Float32Array([1, 0, 0, 1]));
      expectClose('fixed', got, new Float32Array([0.5403023, 0.84147098, -0.0099998333, 0.99995]), new Float32Array([1, 1, 1, 1]));
    });

    it(`[${backend}] refuses a table too short and an odd d_head`, async function () {
      if (backend === 'cpu') return;   // the CPU table grows on demand
      const g = await gpuOrSkip(this);
      await prepareRope(g);
      const table = uploadRopeTable(g, new RopeTable({ dHead: 4, theta: 10000, scaling: null, freqFactors: null }), 8);
      const x = { buffer: g.buffer(64 * 4), offset: 0 };
      const step = g.begin();
      expect(() => encodeRope(g, step, x, 2, 1, 4, 7, table)).to.throw(/positions up to 8.*holds 8/);
      expect(() => encodeRope(g, step, x, 1, 1, 5, 0, table)).to.throw(/odd/);
      await step.submit();
    });
  }

  // q and k in one dispatch (the forward pass's path): the same numbers as two rope calls, so the
  // same tolerance against the CPU twin applied to each; q and k in one buffer (GQA: fewer k heads)
  it('[webgpu] q and k in one dispatch equal the twin on each', async function () {
    const g = await gpuOrSkip(this);
    await prepareRopeQK(g);
    const params: RopeParams = { dHead: 12, theta: 500000, freqFactors: null,
      scaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 8192 } };
    for (const [n, qHeads, kHeads, start] of [[1, 9, 3, 77], [5, 7, 7, 0], [3, 4, 1, 300]] as const) {
      const table = new RopeTable(params);
      const q = seededValues(n * qHeads * 12, 40 + n, 10), k = seededValues(n * kHeads * 12, 50 + n, 10);
      const tbuf = uploadRopeTable(g, table, start + n);
      const { refs: [rq, rk] } = packF32(g, [q, k]);
      const [gq, gk] = await submitChecked(g, (step) => {
        encodeRopeQK(g, step, rq!, rk!, n, qHeads, kHeads, 12, start, tbuf);
        return [readF32(step, rq!, q.length), readF32(step, rk!, k.length)];
      });
      tbuf.destroy();
      const wq = q.slice(), wk = k.slice();
      rope(wq, n, qHeads, 12, start, table);
      rope(wk, n, kHeads, 12, start, table);
      expectClose(`q n=${n}`, new Float32Array(gq!), wq, q);
      expectClose(`k n=${n}`, new Float32Array(gk!), wk, k);
    }
  });
});
