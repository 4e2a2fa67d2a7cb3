// attention on every backend: prefill (start 0), decode against a cache of 40 positions, a chunk
// after a prefix, a 700-key row (11 tiles of 64), d_head above the workgroup size; GQA groups of
// 3 and 2; with no capture (flash kernel) and with scores/pattern (capture kernel), operands
// packed into shared buffers at odd offsets.
//
// Tolerance, derived per element from f32 error bounds rather than one number, because with large
// magnitudes a score's rounding error grows with Σ|q_i·k_i|, not with |score|:
//   scores:  |Δs_j| ≤ D_j = (d_head + 2)·2⁻²⁴·Σ_i |q_i·k_ji| / sqrt(d_head) + 2⁻²⁴·|s_j| (a
//            recursively summed f32 dot product; the CPU rounds its f64 dot once);
//   pattern: to first order Δp_j = p_j·(Δs_j − Σ_i p_i·Δs_i), so
//            |Δp_j| ≤ p_j·(expm1((1 − p_j)·D_j + Σ_{i≠j} p_i·D_i) + 4e-5) + 1e-30, where 4e-5
//            covers exp's 3 + 2|x| ULP (≤ 1.1e-5 wherever the result is above 1e-30) in the
//            numerator and the sum, and 1/Σ;
//   z:       |Δz_i| ≤ Σ_j bound(p_j)·|v_ji| + (k_len + 16·tiles)·2⁻²⁴·Σ_j p_j·|v_ji| + 1e-30 (the
//            f32 sum over keys, and the flash kernel's per-tile rescaling by e^(m − m')).
// With inputs of unit scale these come to ~1e-5 relative; they widen only where an outlier q·k
// product makes f32 itself uncertain (the test measures the GPU at ≲ 1/10 of the bounds).
import { expect } from 'chai';
import { attention, type AttentionShape } from './attention.cpu.ts';
import { encodeAttention, prepareAttention } from './attention.gpu.ts';
import { gpuOrSkip, seededValues } from '../../test/support/gpu.ts';
import { packF32, readF32, submitChecked } from '../../test/support/gpu-trial.ts';
import type { GpuContext } from '../../src/engine/gpu/context.ts';

type Backend = 'cpu' | 'webgpu';
const BACKENDS: Backend[] = ['cpu', 'webgpu'];
const U = 2 ** -24;

interface Inputs { q: Float32Array; k: Float32Array; v: Float32Array; capacity: number }
interface Outputs { z: Float32Array; scores: Float32Array | null; pattern: Float32Array | null }

async function run(backend: Backend, ctx: GpuContext | null, s: AttentionShape, x: Inputs, capture: 'none' | 'scores' | 'pattern' | 'both'): Promise<Outputs> {
  const { nq, start, nHeads, dHead } = s;
  const kLen = start + nq, zLen = nq * nHeads * dHead, sLen = nHeads * nq * kLen;
  const wantS = capture === 'scores' || capture === 'both', wantP = capture === 'pattern' || capture === 'both';
  if (backend === 'cpu') {
    const z = new Float32Array(zLen), scores = wantS ? new Float32Array(sLen) : null, pattern = wantP ? new Float32Array(sLen) : null;
    attention(z, x.q, x.k, x.v, s, scores, pattern);
    return { z, scores, pattern };
  }
  const g = ctx!;
  await prepareAttention(g);
  // q, z and the captures share one "activation" buffer; k and v one "cache" buffer (capacity rows)
  const act = packF32(g, [x.q, new Float32Array(zLen), new Float32Array(wantS ? sLen : 0), new Float32Array(wantP ? sLen : 0)]);
  const cache = packF32(g, [x.k, x.v], 5);
  const [rq, rz, rs, rp] = act.refs as [typeof act.refs[0], typeof act.refs[0], typeof act.refs[0], typeof act.refs[0]];
  const reads = await submitChecked(g, (step) => {
    encodeAttention(g, step, rz, rq, cache.refs[0]!, cache.refs[1]!, s, wantS ? rs : null, wantP ? rp : null);
    return [readF32(step, rz, zLen), ...(wantS ? [readF32(step, rs, sLen)] : []), ...(wantP ? [readF32(step, rp, sLen)] : [])];
  });
  act.buffer.destroy(); cache.buffer.destroy();
  return {
    z: new Float32Array(reads[0]!),
    scores: wantS ? new Float32Array(reads[1]!) : null,
    pattern: wantP ? new Float32Array(reads[wantS ? 2 : 1]!) : null,
  };
}

/** The f64 definition: the reference for the CPU twin itself. */
function definition(s: AttentionShape, x: Inputs): Outputs {
  const { nq, start, nHeads, nKvHeads, dHead } = s, kLen = start + nq, group = nHeads / nKvHeads;
  const z = new Float32Array(nq * nHeads * dHead), scores = new Float32Array(nHeads * nq * kLen), pattern = new Float32Array(scores.length);
  for (let h = 0; h < nHeads; h++) for (let t = 0; t < nq; t++) {
    const row = (h * nq + t) * kLen, sc: number[] = [];
    for (let j = 0; j < kLen; j++) {
      let dot = 0;
      for (let i = 0; i < dHead; i++) dot += x.q[(t * nHeads + h) * dHead + i]! * x.k[(j * nKvHeads + Math.floor(h / group)) * dHead + i]!;
      sc.push(j <= start + t ? dot / Math.sqrt(dHead) : -Infinity);
    }
    const m = Math.max(...sc), e = sc.map((v) => Math.exp(v - m)), sum = e.reduce((a, b) => a + b, 0);
    for (let j = 0; j < kLen; j++) { scores[row + j] = sc[j]!; pattern[row + j] = e[j]! / sum; }
    for (let i = 0; i < dHead; i++) {
      let acc = 0;
      for (let j = 0; j < kLen; j++) acc += (e[j]! / sum) * x.v[(j * nKvHeads + Math.floor(h / group)) * dHead + i]!;
      z[(t * nHeads + h) * dHead + i] = acc;
    }
  }
  return { z, scores, pattern };
}

/** Checks got against want with the per-element bounds of the header. */
function expectWithinBounds(tag: string, s: AttentionShape, x: Inputs, got: Outputs, want: Outputs): void {
  const { nq, start, nHeads, nKvHeads, dHead } = s, kLen = start + nq, group = nHeads / nKvHeads;
  const fail = (what: string, at: number, a: number, b: number, bound: number) =>
    expect.fail(`${tag}: ${what}[${at}] = ${a}, want ${b} (bound ${bound.toExponential(2)})`);
  const p = definition(s, x).pattern!;   // exact probabilities weigh the z bound
  for (let h = 0; h < nHeads; h++) for (let t = 0; t < nq; t++) {
    const kvh = Math.floor(h / group), qo = (t * nHeads + h) * dHead, row = (h * nq + t) * kLen, seen = start + t + 1;
    const D: number[] = [];
    for (let j = 0; j < seen; j++) {
      let abs = 0, dot = 0;
      for (let i = 0; i < dHead; i++) { const prod = x.q[qo + i]! * x.k[(j * nKvHeads + kvh) * dHead + i]!; abs += Math.abs(prod); dot += prod; }
      D.push((dHead + 2) * U * abs / Math.sqrt(dHead) + U * Math.abs(dot / Math.sqrt(dHead)));
    }
    let S = 0;
    for (let j = 0; j < seen; j++) S += p[row + j]! * D[j]!;
    const pBound = D.map((d, j) => { const pj = p[row + j]!; return pj * (Math.expm1((1 - pj) * d + (S - pj * d)) + 4e-5) + 1e-30; });
    if (got.scores && want.scores) for (let j = 0; j < kLen; j++) {
      const a = got.scores[row + j]!, b = want.scores[row + j]!;
      if (j >= seen ? a !== -Infinity || b !== -Infinity : !(Math.abs(a - b) <= D[j]!)) fail('scores', row + j, a, b, D[j] ?? 0);
    }
    if (got.pattern && want.pattern) for (let j = 0; j < kLen; j++) {
      const a = got.pattern[row + j]!, b = want.pattern[row + j]!;
      if (j >= seen ? a !== 0 || b !== 0 : !(Math.abs(a - b) <= pBound[j]!)) fail('pattern', row + j, a, b, pBound[j] ?? 0);
    }
    const tiles = Math.ceil(seen / 64);
    for (let i = 0; i < dHead; i++) {
      let w = 0, dz = 0;
      for (let j = 0; j < seen; j++) {
        const vj = Math.abs(x.v[(j * nKvHeads + kvh) * dHead + i]!);
        w += p[row + j]! * vj;
        dz += pBound[j]! * vj;
      }
      const bound = dz + (kLen + 16 * tiles) * U * w + 1e-30, a = got.z[qo + i]!, b = want.z[qo + i]!;
      if (!(Math.abs(a - b) <= bound)) fail('z', qo + i, a, b, bound);
    }
  }
}

interface Case { name: string; shape: AttentionShape; capacity: number; seed: number; scale: number }
const CASES: Case[] = [
  { name: 'prefill', shape: { nq: 7, start: 0, nHeads: 6, nKvHeads: 2, dHead: 10 }, capacity: 7, seed: 61, scale: 1 },
  { name: 'decode at 39 (cache of 40)', shape: { nq: 1, start: 39, nHeads: 6, nKvHeads: 3, dHead: 10 }, capacity: 48, seed: 62, scale: 3 },
  { name: 'chunk after a prefix, d_head > WG', shape: { nq: 5, start: 40, nHeads: 2, nKvHeads: 1, dHead: 130 }, capacity: 45, seed: 63, scale: 0.3 },
  { name: 'long row, 700 keys', shape: { nq: 2, start: 698, nHeads: 4, nKvHeads: 2, dHead: 16 }, capacity: 701, seed: 64, scale: 1 },
];

function inputs(c: Case): Inputs {
  const { nq, nHeads, nKvHeads, dHead } = c.shape, kv = c.capacity * nKvHeads * dHead;
  return { q: seededValues(nq * nHeads * dHead, c.seed, c.scale), k: seededValues(kv, c.seed + 1, c.scale), v: seededValues(kv, c.seed + 2, 10), capacity: c.capacity };
}

describe('attention', () => {
  for (const backend of BACKENDS) {
    it(`[${backend}] seeded trial: prefill, decode, long rows, GQA, with and without captures`, async function () {
      const ctx = backend === 'webgpu' ? await gpuOrSkip(this) : null;
      for (const c of CASES) {
        const x = inputs(c);
        const want = backend === 'cpu' ? definition(c.shape, x) : await run('cpu', null, c.shape, x, 'both');
        for (const capture of ['none', 'both', 'pattern', 'scores'] as const) {
          const got = await run(backend, ctx, c.shape, x, capture);
          expectWithinBounds(`${backend} ${c.name} capture=${capture}`, c.shape, x, got, want);
        }
      }
    });

    it(`[${backend}] fixed small case`, async function () {
      const ctx = backend === 'webgpu' ? await gpuOrSkip(this) : null;
      // 2 queries, 1 head, d_head 2 (scale 1/sqrt 2), keys (1,0),(0,1); q0 = (sqrt 2, 0) sees key 0
      // only; q1 = (0, 2·sqrt 2) scores (0, 2) → pattern (1/(1+e²), e²/(1+e²)) = (0.11920292, 0.88079708)
      const s: AttentionShape = { nq: 2, start: 0, nHeads: 1, nKvHeads: 1, dHead: 2 };
      const x: Inputs = { q: new Float32Array([Math.SQRT2, 0, 0, 2 * Math.SQRT2]), k: new Float32Array([1, 0, 0, 1]), v: new Float32Array([10, 1, -10, 3]), capacity: 2 };
      const got = await run(backend, ctx, s, x, 'both');
      const close = (a: Float32Array, b: number[]) => a.forEach((v, i) => expect(v, `${i}`).to.be.closeTo(b[i]!, 1e-5 * (1 + Math.abs(b[i]!))));
      close(got.scores!.map((v) => (v === -Infinity ? -1e9 : v)), [1, -1e9, 0, 2]);
      close(got.pattern!, [1, 0, 0.11920292, 0.88079708]);
      close(got.z, [10, 1, 10 * 0.11920292 - 10 * 0.88079708, 0.11920292 + 3 * 0.88079708]);
    });
  }
});
