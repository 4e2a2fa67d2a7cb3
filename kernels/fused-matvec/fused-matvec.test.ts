// Fused decode products against the CPU twins composed: rmsnorm.cpu → matmul.cpu (→ siluMul /
// add). Seeded weights quantized by each type's TypeScript quantizer, odd row counts, rows with a
// partial last unit (F32, k = 100), mixed types in one dispatch, a weight in several parts, the
// subgroup build and the workgroup-memory build, large magnitudes, x at an offset inside a buffer
// whose other elements are ±inf (a stray read shows).
//
// Tolerance, per output, with S = Σ_e |W[r,e]·x̂_e| (x̂ the CPU twin's normed x) and u = 2^-24:
//   product (split, add):  |gpu − cpu| ≤ 3·sqrt(k)·u·S (+ 2u·|out| for add: the final sum rounds)
// matmul.test.ts's bound is 2·sqrt(k)·u·S for the product alone (f32 sums in another order than
// the twin's f64); the folded norm adds the error of 1/rms: a sum of k squares in f32 (about
// sqrt(k)·u relative, half of it through the square root) and the rounding of (x·inv)·weight,
// so one more sqrt(k)·u·S. swiglu: silu(g)·u with g, u each within that bound, propagated
// (|silu'| ≤ 1.1), plus silu-mul.test.ts's 2e-5 relative for WGSL's exp.
// rope (q and k rotated as they are written): each rotated output mixes a pair's two products,
// each within the bound above, and the rotation rounds a few times more: the sum of the pair's
// product bounds plus 4u·(|a| + |b|) for the twin's unrotated products a, b.
// Only the GPU is checked here: the CPU side IS the composition of the twins (each has its test).
import { expect } from 'chai';
import { getTensorType } from '../../src/formats/quant/index.ts';
import { byteSize, type Tensor, type TensorTypeName } from '../../src/formats/tensor.ts';
import { uploadTensor, destroyTensor, type GpuTensor } from '../../src/engine/gpu/tensor.ts';
import type { GpuLayout } from '../../src/engine/gpu/layout.ts';
import { GpuContext } from '../../src/engine/gpu/context.ts';
import { gpuOrSkip, seededValues } from '../../test/support/gpu.ts';
import { submitChecked } from '../../test/support/gpu-trial.ts';
import { matmul } from '../matmul/matmul.cpu.ts';
import { rmsnorm } from '../rmsnorm/rmsnorm.cpu.ts';
import { siluMul } from '../silu-mul/silu-mul.cpu.ts';
import { add } from '../add/add.cpu.ts';
import { rope, RopeTable } from '../rope/rope.cpu.ts';
import { encodeFusedMatvec, fusedMatvecUnsupported, prepareFusedMatvec, type FusedMode } from './fused-matvec.gpu.ts';

const U = 2 ** -24;
const TOL = 3;
const EPS = 1e-5;

function randomTensor(type: TensorTypeName, m: number, k: number, seed: number, scale = 1): Tensor {
  const t = getTensorType(type);
  const values = seededValues(m * k, seed, scale);
  const data = new Uint8Array(m * byteSize(t, k));
  t.quantize(values, 0, data, 0, m * k);
  return { name: `w${seed}.${type}`, type, shape: [m, k], data };
}

/** S = Σ|w·x| per row of w (the error scale of a product). */
function magnitudes(w: Tensor, x: Float32Array): Float64Array {
  const [m, k] = w.shape as [number, number];
  const deq = new Float32Array(m * k);
  getTensorType(w.type).dequantize(w.data, 0, deq, 0, m * k);
  const mag = new Float64Array(m);
  for (let r = 0; r < m; r++) for (let e = 0; e < k; e++) mag[r] += Math.abs(deq[r * k + e]! * x[e]!);
  return mag;
}

const plainContexts = new WeakMap<GpuContext, GpuContext>();
function noSubgroups(shared: GpuContext): GpuContext {
  let c = plainContexts.get(shared);
  if (!c) { c = new GpuContext(shared.device, { ...shared.caps, subgroups: false }); plainContexts.set(shared, c); }
  return c;
}

const measured: number[] = [];

interface Trial {
  mode: FusedMode; types: TensorTypeName[]; m: number[]; k: number; norm: boolean; seed: number; xScale?: number; maxPartBytes?: number;
  /** Upload with uploadTensor's repack: each matrix must come out in `repack[i]`, and the outputs
   *  must equal those of the stored layouts bit for bit (matmul.test.ts says why). */
  repack?: GpuLayout[];
  /** split: RoPE on outputs 0 and 1 (rows of dHead) at this position. */
  rope?: { dHead: number; position: number; table: RopeTable };
}

/** The fused dispatch on the GPU: its outputs, dispatches and the weights' layouts. */
async function gpuFused(
  ctx: GpuContext, t: Trial, weights: Tensor[], x: Float32Array, nw: Float32Array, resid: Float32Array, lengths: number[], repack: boolean,
): Promise<{ outs: Float32Array[]; dispatches: number; layouts: GpuLayout[] }> {
  const { mode, k, norm } = t;
  const g: GpuTensor[] = weights.map((w) => uploadTensor(ctx, w, t.maxPartBytes, { repack }));
  const f = { mode, weights: g, norm, ...(t.rope ? { rope: { dHead: t.rope.dHead } } : {}) };
  expect(fusedMatvecUnsupported(ctx, f)).to.equal(null);
  await prepareFusedMatvec(ctx, f);
  const xOff = 8;
  const xs = new Float32Array(xOff + k + 40).fill(Infinity);
  xs.set(x, xOff);
  xs[0] = -Infinity;
  const xb = ctx.upload(xs, 'x'), nb = ctx.upload(nw, 'norm weight');
  const outs = lengths.map((len, i) => {
    const init = new Float32Array(len + 9).fill(NaN);
    if (mode === 'add') init.set(resid, 5);
    return { buffer: ctx.upload(init, `out ${i}`), offset: 5 };
  });
  const before = ctx.stats.dispatches;
  const reads = await submitChecked(ctx, (step) => {
    encodeFusedMatvec(ctx, step, f, { buffer: xb, offset: xOff }, outs, norm ? { weight: { buffer: nb, offset: 0 }, eps: EPS } : undefined,
      t.rope ? { table: t.rope.table, position: t.rope.position } : undefined);
    return outs.map((o, i) => step.read(o.buffer, o.offset * 4, lengths[i]! * 4));
  });
  const dispatches = ctx.stats.dispatches - before;
  for (const w of g) destroyTensor(w);
  for (const b of [xb, nb, ...outs.map((o) => o.buffer)]) b.destroy();
  return { outs: reads.map((r) => new Float32Array(r)), dispatches, layouts: g.map((w) => w.layout) };
}

async function trial(ctx: GpuContext, t: Trial): Promise<{ dispatches: number }> {
  const { mode, k, norm, seed } = t;
  const weights = t.types.map((type, i) => randomTensor(type, t.m[i]!, k, seed + 10 * i));
  const x = seededValues(k, seed + 100, t.xScale ?? 1);
  const nw = seededValues(k, seed + 200, 0.5).map((v) => 1 + v);
  const resid = seededValues(t.m[0]!, seed + 300, 3);
  // ---- the CPU twins, composed ----
  const xh = new Float32Array(k);
  if (norm) rmsnorm(xh, x, nw, 1, k, EPS); else xh.set(x);
  const prods = weights.map((w) => { const o = new Float32Array(w.shape[0]!); matmul(o, xh, w, 1); return o; });
  const mags = weights.map((w) => magnitudes(w, xh));
  let want: Float32Array[];
  if (mode === 'split' && t.rope) {
    const { dHead, position, table } = t.rope;
    want = prods.map((o, i) => {
      if (i > 1) return o;
      const r = o.slice();
      rope(r, 1, o.length / dHead, dHead, position, table);
      return r;
    });
  } else if (mode === 'split') want = prods;
  else if (mode === 'swiglu') { const o = new Float32Array(t.m[0]!); siluMul(o, prods[0]!, prods[1]!); want = [o]; }
  else { const o = new Float32Array(t.m[0]!); add(o, resid, prods[0]!); want = [o]; }
  // ---- the GPU ----
  const lengths = want.map((o) => o.length);
  const { outs: got, dispatches, layouts } = await gpuFused(ctx, t, weights, x, nw, resid, lengths, !!t.repack);
  const tag = `${mode} ${(t.repack ?? t.types).join('+')} [${t.m}] x ${k}${norm ? ' norm' : ''}${t.rope ? ` rope d_head ${t.rope.dHead} at ${t.rope.position}` : ''} (subgroups ${ctx.caps.subgroups})`;
  if (t.repack) {
    expect(layouts, tag).to.deep.equal(t.repack);
    const plain = await gpuFused(ctx, t, weights, x, nw, resid, lengths, false);
    expect(plain.layouts).to.deep.equal(t.types);
    got.forEach((o, i) => {
      const a = new Uint32Array(o.buffer), b = new Uint32Array(plain.outs[i]!.buffer);
      const at = a.findIndex((v, j) => v !== b[j]);
      expect(at, `${tag}: output ${i} row ${at} is ${o[at]}, the stored layouts give ${plain.outs[i]![at]}`).to.equal(-1);
    });
  }
  // ---- compare ----
  got.forEach((out, i) => {
    const w = want[i]!;
    for (let j = 0; j < w.length; j++) {
      let bound: number;
      if (mode === 'swiglu') {
        const eg = Math.sqrt(k) * U * mags[0]![j]!, eu = Math.sqrt(k) * U * mags[1]![j]!;
        const gv = prods[0]![j]!, uv = prods[1]![j]!, silu = gv / (1 + Math.exp(-gv));
        bound = TOL * (1.1 * eg * (Math.abs(uv) + TOL * eu) + Math.abs(silu) * eu) + 2e-5 * Math.abs(w[j]!) + 1e-30;
      } else if (t.rope && i < 2) {
        const pj = j ^ 1;
        bound = TOL * Math.sqrt(k) * U * (mags[i]![j]! + mags[i]![pj]!) + 4 * U * (Math.abs(prods[i]![j]!) + Math.abs(prods[i]![pj]!)) + 1e-30;
      } else {
        bound = TOL * Math.sqrt(k) * U * mags[i]![j]! + (mode === 'add' ? 2 * U * Math.abs(w[j]!) : 0) + 1e-30;
      }
      const err = Math.abs(out[j]! - w[j]!);
      measured.push(err / bound);
      if (!(err <= bound)) expect.fail(`${tag}: output ${i} row ${j} is ${out[j]}, the twins give ${w[j]} (bound ${bound})`);
    }
  });
  return { dispatches };
}

describe('fused-matvec', () => {
  after(() => {
    if (measured.length) console.log(`fused-matvec: worst |err| / bound over all outputs (limit 1): ${Math.max(...measured).toFixed(3)}`);
  });

  /** The shared context, and the same device without subgroups when it has them. */
  async function contexts(test: Mocha.Context): Promise<GpuContext[]> {
    const shared = await gpuOrSkip(test);
    if (!shared.caps.subgroups) console.warn('fused-matvec: this adapter has no subgroups; the subgroup build is not tested');
    return shared.caps.subgroups ? [shared, noSubgroups(shared)] : [shared];
  }

  it('[webgpu] RMSNorm + q, k, v in one dispatch: float rows with a partial unit, quantized, mixed types', async function () {
    for (const ctx of await contexts(this)) {
      for (const t of [
        { types: ['F32', 'F32', 'F32'], m: [37, 13, 13], k: 100, seed: 1 },
        { types: ['Q4_0', 'Q4_0', 'Q4_0'], m: [67, 19, 19], k: 160, seed: 2 },
        { types: ['Q4_K', 'Q8_0', 'Q6_K'], m: [41, 9, 9], k: 256, seed: 3, xScale: 100 },
      ] as const) {
        const r = await trial(ctx, { mode: 'split', types: [...t.types], m: [...t.m], k: t.k, norm: true, seed: t.seed, xScale: 'xScale' in t ? t.xScale : 1 });
        expect(r.dispatches).to.equal(1);
      }
      // without the norm (the layer's attn_norm is hooked), and two matrices (gate, up unfused act)
      await trial(ctx, { mode: 'split', types: ['Q8_0', 'Q8_0', 'F16'], m: [33, 17, 17], k: 96, norm: false, seed: 4 });
      await trial(ctx, { mode: 'split', types: ['BF16', 'BF16'], m: [55, 55], k: 68, norm: true, seed: 5 });
    }
  });

  // RoPE at the write: R rows per team is raised to 2 for small matrices (a team holds whole
  // pairs), so these cover R = 2 and the plan's 4 (q of 4096 rows), both reductions, positions
  // 0, far out and with llama3 frequency scaling, and the repacked layout.
  it('[webgpu] q, k, v with RoPE on q and k as they are written: small and large q, GQA, positions, llama3 scaling', async function () {
    const table = (dHead: number, llama3 = false) => new RopeTable({ dHead, theta: llama3 ? 500000 : 10000, freqFactors: null,
      scaling: llama3 ? { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 8192 } : null });
    for (const ctx of await contexts(this)) {
      for (const t of [
        { types: ['F32', 'F32', 'F32'], m: [48, 16, 16], k: 100, norm: true, seed: 41, rope: { dHead: 8, position: 0, table: table(8) } },
        { types: ['Q4_0', 'Q8_0', 'Q8_0'], m: [96, 32, 32], k: 160, norm: false, seed: 42, rope: { dHead: 16, position: 37, table: table(16) } },
        { types: ['Q4_K', 'Q6_K', 'Q4_K'], m: [128, 64, 64], k: 256, norm: true, seed: 43, xScale: 50, rope: { dHead: 64, position: 5000, table: table(64, true) } },
        { types: ['Q8_0', 'Q8_0'], m: [4096, 512], k: 64, norm: true, seed: 44, rope: { dHead: 128, position: 3, table: table(128, true) } },
      ] as const) {
        const r = await trial(ctx, { mode: 'split', types: [...t.types], m: [...t.m], k: t.k, norm: t.norm, seed: t.seed, xScale: 'xScale' in t ? t.xScale : 1, rope: t.rope });
        expect(r.dispatches).to.equal(1);
      }
      await trial(ctx, { mode: 'split', types: ['Q4_0', 'Q4_0', 'Q4_0'], m: [64, 16, 16], k: 512, norm: true, seed: 45,
        repack: ['Q4_0_X8', 'Q4_0_X8', 'Q4_0_X8'], rope: { dHead: 16, position: 9, table: table(16) } });
    }
  });

  it('[webgpu] RMSNorm + gate, up and SiLU·mul in one dispatch, with and without the norm', async function () {
    for (const ctx of await contexts(this)) {
      await trial(ctx, { mode: 'swiglu', types: ['F32', 'F32'], m: [83, 83], k: 100, norm: true, seed: 6 });
      await trial(ctx, { mode: 'swiglu', types: ['Q4_0', 'Q8_0'], m: [129, 129], k: 192, norm: true, seed: 7, xScale: 30 });
      await trial(ctx, { mode: 'swiglu', types: ['Q5_K', 'Q5_K'], m: [21, 21], k: 256, norm: false, seed: 8 });
    }
  });

  it('[webgpu] residual add folded into the product (o and down projections), a weight in 3 parts', async function () {
    for (const ctx of await contexts(this)) {
      await trial(ctx, { mode: 'add', types: ['Q4_0'], m: [53], k: 160, norm: false, seed: 9 });
      await trial(ctx, { mode: 'add', types: ['F32'], m: [29], k: 36, norm: false, seed: 10, xScale: 1000 });
      const rowBytes = byteSize(getTensorType('Q8_0'), 96);
      const r = await trial(ctx, { mode: 'add', types: ['Q8_0'], m: [37], k: 96, norm: false, seed: 11, maxPartBytes: 13 * rowBytes + 5 });
      expect(r.dispatches).to.equal(3);
    }
  });

  it('[webgpu] final norm + unembedding: one matrix in 3 parts, one dispatch each', async function () {
    for (const ctx of await contexts(this)) {
      const rowBytes = byteSize(getTensorType('Q6_K'), 256);
      const r = await trial(ctx, { mode: 'split', types: ['Q6_K'], m: [37], k: 256, norm: true, seed: 12, maxPartBytes: 13 * rowBytes + 5 });
      expect(r.dispatches).to.equal(3);
    }
  });

  // Q4_0 and Q8_0 rows of whole 256-element groups in their repacked layouts (Q4_0_X8, Q8_0_X8),
  // alone and beside a stored layout in one dispatch, in every mode: the same bound against the
  // twins, and bit for bit the result of the stored layouts (trial's `repack`).
  it('[webgpu] repacked Q4_0 / Q8_0: q, k, v, swiglu, gate and up, residual add, 3 parts; rows not whole groups stay stored', async function () {
    for (const ctx of await contexts(this)) {
      await trial(ctx, { mode: 'split', types: ['Q4_0', 'Q4_0', 'Q4_0'], m: [67, 19, 19], k: 512, norm: true, seed: 21, repack: ['Q4_0_X8', 'Q4_0_X8', 'Q4_0_X8'] });
      await trial(ctx, { mode: 'split', types: ['Q8_0', 'Q4_K', 'Q4_0'], m: [41, 9, 9], k: 256, norm: false, seed: 22, xScale: 100, repack: ['Q8_0_X8', 'Q4_K', 'Q4_0_X8'] });
      await trial(ctx, { mode: 'swiglu', types: ['Q4_0', 'Q8_0'], m: [129, 129], k: 768, norm: true, seed: 23, xScale: 30, repack: ['Q4_0_X8', 'Q8_0_X8'] });
      await trial(ctx, { mode: 'swiglu', types: ['Q8_0', 'Q8_0'], m: [21, 21], k: 256, norm: false, seed: 24, repack: ['Q8_0_X8', 'Q8_0_X8'] });
      await trial(ctx, { mode: 'split', types: ['Q4_0', 'Q4_0'], m: [55, 55], k: 1024, norm: true, seed: 25, repack: ['Q4_0_X8', 'Q4_0_X8'] });
      await trial(ctx, { mode: 'add', types: ['Q4_0'], m: [53], k: 2048, norm: false, seed: 26, repack: ['Q4_0_X8'] });
      for (const [type, layout] of [['Q8_0', 'Q8_0_X8'], ['Q4_0', 'Q4_0_X8']] as const) {
        const rowBytes = byteSize(getTensorType(type), 512);
        // one matrix in 3 parts, one dispatch each: the residual add and the final norm + unembedding
        let r = await trial(ctx, { mode: 'add', types: [type], m: [37], k: 512, norm: false, seed: 27, maxPartBytes: 13 * rowBytes + 5, repack: [layout] });
        expect(r.dispatches).to.equal(3);
        r = await trial(ctx, { mode: 'split', types: [type], m: [37], k: 512, norm: true, seed: 28, maxPartBytes: 13 * rowBytes + 5, repack: [layout] });
        expect(r.dispatches).to.equal(3);
      }
      // rows of 160 and 288 elements: not whole groups, so the stored layout with repack on
      await trial(ctx, { mode: 'split', types: ['Q4_0', 'Q8_0', 'Q8_0'], m: [33, 17, 17], k: 288, norm: true, seed: 29, repack: ['Q4_0', 'Q8_0', 'Q8_0'] });
      await trial(ctx, { mode: 'add', types: ['Q8_0'], m: [29], k: 160, norm: false, seed: 30, repack: ['Q8_0'] });
    }
  });

  it('[webgpu] fixed small case: norm of [3, 4, 0, 0] times identity rows, silu of exact values', async function () {
    const ctx = await gpuOrSkip(this);
    // x = [3, 4, 0, 0, ...] over k = 32: rms = sqrt(25/32 + eps); W rows e_0, e_1 (F32)
    const k = 32, eps = 0;
    const rows = (idx: number[]) => {
      const v = new Float32Array(idx.length * k);
      idx.forEach((c, r) => { v[r * k + c] = 1; });
      return uploadTensor(ctx, { name: 'eye', type: 'F32', shape: [idx.length, k], data: new Uint8Array(v.buffer) });
    };
    const gate = rows([0, 1]), up = rows([1, 0]);
    const f = { mode: 'swiglu' as const, weights: [gate, up], norm: true };
    await prepareFusedMatvec(ctx, f);
    const x = new Float32Array(k); x[0] = 3; x[1] = 4;
    const nw = new Float32Array(k).fill(1);
    const xb = ctx.upload(x), nb = ctx.upload(nw), ob = ctx.upload(new Float32Array(4).fill(NaN));
    const [r] = await submitChecked(ctx, (step) => {
      encodeFusedMatvec(ctx, step, f, { buffer: xb, offset: 0 }, [{ buffer: ob, offset: 0 }], { weight: { buffer: nb, offset: 0 }, eps });
      return [step.read(ob, 0, 8)];
    });
    const inv = 1 / Math.sqrt(25 / 32);
    const a = 3 * inv, b = 4 * inv;   // x̂ = [a, b]: out = [silu(a)·b, silu(b)·a]
    const want = [a / (1 + Math.exp(-a)) * b, b / (1 + Math.exp(-b)) * a];
    const got = new Float32Array(r!);
    for (let i = 0; i < 2; i++) expect(Math.abs(got[i]! - want[i]!), `${got[i]} vs ${want[i]}`).to.be.below(1e-5 * Math.abs(want[i]!));
    for (const b2 of [xb, nb, ob]) b2.destroy();
    destroyTensor(gate); destroyTensor(up);
  });

  it('[webgpu] refuses what cannot be fused', async function () {
    const ctx = await gpuOrSkip(this);
    const a = uploadTensor(ctx, randomTensor('F32', 5, 6, 1));
    const b = uploadTensor(ctx, randomTensor('F32', 5, 8, 2));
    expect(fusedMatvecUnsupported(ctx, { mode: 'split', weights: [a], norm: true })).to.match(/vec4/);
    expect(fusedMatvecUnsupported(ctx, { mode: 'swiglu', weights: [b], norm: true })).to.match(/gate and up/);
    expect(fusedMatvecUnsupported(ctx, { mode: 'split', weights: [a, b], norm: true })).to.match(/rows of 8/);
    const split = uploadTensor(ctx, randomTensor('F32', 5, 8, 3), 2 * 32);
    expect(fusedMatvecUnsupported(ctx, { mode: 'split', weights: [b, split], norm: true })).to.match(/split in 3 bindings/);
    const tight = new GpuContext(ctx.device, { ...ctx.caps, maxStorageBuffersPerShaderStage: 7 });
    expect(fusedMatvecUnsupported(tight, { mode: 'split', weights: [b, b, b], norm: true })).to.match(/8 storage bindings/);
    // RoPE: split products of q and k only, even d_head, rows of whole heads
    expect(fusedMatvecUnsupported(ctx, { mode: 'add', weights: [b], norm: false, rope: { dHead: 4 } })).to.match(/split products of q and k/);
    expect(fusedMatvecUnsupported(ctx, { mode: 'split', weights: [b], norm: false, rope: { dHead: 4 } })).to.match(/split products of q and k/);
    expect(fusedMatvecUnsupported(ctx, { mode: 'split', weights: [b, b], norm: false, rope: { dHead: 3 } })).to.match(/d_head 3/);
    expect(fusedMatvecUnsupported(ctx, { mode: 'split', weights: [b, b], norm: false, rope: { dHead: 512 } })).to.match(/d_head 512/);
    expect(fusedMatvecUnsupported(ctx, { mode: 'split', weights: [b, b], norm: false, rope: { dHead: 2 } })).to.match(/5 rows, not whole heads of 2/);
    for (const t of [a, b, split]) destroyTensor(t);
  });
});
