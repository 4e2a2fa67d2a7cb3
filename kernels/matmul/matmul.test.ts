// Matrix product with weights in every stored type, on every backend. Weights are seeded random
// values quantized by the TypeScript quantizer of each type; rows are odd in number and, for
// Q4_0, Q5_0, Q8_0, Q3_K, Q6_K, F16, BF16, not a multiple of 4 bytes long.
//
// Tolerance. Every backend decodes the same weight values exactly (the products that dequantize
// are exact in f32); what differs is the order and precision of the k-term sum: the CPU twin sums
// in f64 and rounds once, the GPU sums in f32 in its own order (decode: vec4 lanes, units per
// lane, a tree over lanes; prefill: runs of 8 terms added in turn to a running sum). Round-off of
// a sum is bounded by a multiple of u·S, with u = 2^-24 and S = Σ_e |w_e·x_e|; with random
// rounding it grows like sqrt(k). So each output must satisfy
//   |gpu - cpu| <= 2 · sqrt(k) · 2^-24 · S
// The worst measured in SwiftShader is 1.06 of that, in a prefill of one short unit (F32, k = 23,
// 6700 outputs), where the sqrt(k) law is weakest; rows of 96 or more stay under 0.6 (printed
// after the run). The rigorous worst-case bound, k·u·S, would let a wrong weight through at large
// k; this one rejects a single wrong element of a 768-long row (an error near S/768) by a factor
// of about 400.
import { expect } from 'chai';
import { getTensorType, ALL_TENSOR_TYPES } from '../../src/formats/quant/index.ts';
import { byteSize, type Tensor, type TensorTypeName } from '../../src/formats/tensor.ts';
import { uploadTensor, destroyTensor } from '../../src/engine/gpu/tensor.ts';
import type { GpuLayout } from '../../src/engine/gpu/layout.ts';
import { GpuContext } from '../../src/engine/gpu/context.ts';
import { gpuOrSkip, seededValues } from '../../test/support/gpu.ts';
import { matmul } from './matmul.cpu.ts';
import { encodeMatmul, prepareMatmul, xNeedsCopy, forceMatvecPlan, PREFILL_TILE, type MatvecPlan } from './matmul.gpu.ts';

const U = 2 ** -24;
const TOL = 2;
const BACKENDS = ['cpu', 'webgpu'] as const;
type Backend = (typeof BACKENDS)[number];

/** Row length for a type's trial: three super-blocks (k-quants), five blocks (legacy), 96 (float). */
function colsFor(type: TensorTypeName): number {
  const bs = getTensorType(type).blockSize;
  return bs === 256 ? 768 : bs === 64 ? 192 : bs === 32 ? 160 : 96;
}

function randomTensor(type: TensorTypeName, m: number, k: number, seed: number, scale = 1): Tensor {
  const t = getTensorType(type);
  const values = seededValues(m * k, seed, scale);
  const data = new Uint8Array(m * byteSize(t, k));
  t.quantize(values, 0, data, 0, m * k);
  return { name: `w.${type}`, type, shape: [m, k], data };
}

/** The product of the dequantized weights in f64 (ref), and S = Σ|w·x| per output (the error scale). */
function reference(w: Tensor, x: Float32Array, n: number): { ref: Float64Array; mag: Float64Array } {
  const [m, k] = w.shape as [number, number];
  const deq = new Float32Array(m * k);
  getTensorType(w.type).dequantize(w.data, 0, deq, 0, m * k);
  const ref = new Float64Array(n * m), mag = new Float64Array(n * m);
  for (let t = 0; t < n; t++) {
    for (let j = 0; j < m; j++) {
      let s = 0, a = 0;
      for (let e = 0; e < k; e++) {
        const p = deq[j * k + e]! * x[t * k + e]!;
        s += p;
        a += Math.abs(p);
      }
      ref[t * m + j] = s;
      mag[t * m + j] = a;
    }
  }
  return { ref, mag };
}

/**
 * out = x · wᵀ on the GPU, with x and out at non-zero offsets inside buffers whose other elements
 * are ±inf / NaN, so a read outside x's rows or a missed write shows in the result, and a write
 * outside out fails the trial.
 */
async function gpuMatmul(
  ctx: GpuContext, w: Tensor, x: Float32Array, n: number,
  { maxPartBytes, xOff = 3, plan, repack = false }: { maxPartBytes?: number; xOff?: number; plan?: MatvecPlan; repack?: boolean } = {},
): Promise<{ out: Float32Array; dispatches: number; parts: number; layout: GpuLayout }> {
  const [m, k] = w.shape as [number, number];
  const g = uploadTensor(ctx, w, maxPartBytes, { repack });
  await prepareMatmul(ctx, g.layout);
  const outOff = 5;
  const xs = new Float32Array(xOff + x.length + 67).fill(Infinity);
  xs.set(x, xOff);
  if (xOff > 0) xs[0] = -Infinity;
  const xb = ctx.upload(xs);
  const ob = ctx.buffer((outOff + n * m + 7) * 4);
  ctx.write(ob, 0, new Float32Array(outOff + n * m + 7).fill(NaN));
  copySeen.add(xNeedsCopy({ buffer: xb, offset: xOff }, k));
  const before = ctx.stats.dispatches;
  const step = ctx.begin('matmul test');
  forceMatvecPlan(ctx, plan);
  try {
    encodeMatmul(ctx, step, { buffer: ob, offset: outOff }, { buffer: xb, offset: xOff }, g, n);
  } finally {
    forceMatvecPlan(ctx, undefined);
  }
  const dispatches = ctx.stats.dispatches - before;
  const read = step.read(ob, 0, (outOff + n * m + 7) * 4);
  await step.submit();
  const all = new Float32Array(await read);
  const out = all.slice(outOff, outOff + n * m);
  const guards = [...all.subarray(0, outOff), ...all.subarray(outOff + n * m)];
  expect(guards.every(Number.isNaN), `${w.type} [${m}, ${k}] n=${n}: written outside out: ${guards}`).to.equal(true);
  const parts = g.parts.length;
  destroyTensor(g);
  xb.destroy();
  ctx.release(ob);
  return { out, dispatches, parts, layout: g.layout };
}

/** Worst |a - b| / (sqrt(k)·u·S) over all outputs, and where. */
function worstRatio(a: Float32Array, b: ArrayLike<number>, mag: Float64Array, k: number): { worst: number; at: number } {
  let worst = 0, at = -1;
  for (let i = 0; i < a.length; i++) {
    const r = Math.abs(a[i]! - b[i]!) / (Math.sqrt(k) * U * mag[i]! + 1e-30);
    if (!(r <= worst)) { worst = r; at = i; }   // NaN counts as worst
  }
  return { worst, at };
}

/** The first index where a and b differ in their bits, or -1. */
function firstBitDifference(a: Float32Array, b: Float32Array): number {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  if (ua.length !== ub.length) return 0;
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return i;
  return -1;
}

const measured = new Map<string, number>();

// The shared device as a context that does not use subgroups (the decode kernel's fallback build).
const plainContexts = new WeakMap<GpuContext, GpuContext>();
function noSubgroups(shared: GpuContext): GpuContext {
  let c = plainContexts.get(shared);
  if (!c) { c = new GpuContext(shared.device, { ...shared.caps, subgroups: false }); plainContexts.set(shared, c); }
  return c;
}
const copySeen = new Set<boolean>();

/**
 * One trial on one backend. cpu: the twin (type.dot) against the f64 product of dequantize();
 * webgpu: the GPU against the twin.
 */
async function trial(
  backend: Backend, test: Mocha.Context, type: TensorTypeName,
  { m = 37, k = colsFor(type), n, seed, wScale = 1, xScale = 1, maxPartBytes, xOff, ctx: given, plan, repack }:
  { m?: number; k?: number; n: number; seed: number; wScale?: number; xScale?: number; maxPartBytes?: number; xOff?: number;
    ctx?: GpuContext; plan?: MatvecPlan; repack?: GpuLayout },
): Promise<{ dispatches: number; parts: number }> {
  const w = randomTensor(type, m, k, seed, wScale);
  const x = seededValues(n * k, seed + 1, xScale);
  const { ref, mag } = reference(w, x, n);
  const cpu = new Float32Array(n * m);
  matmul(cpu, x, w, n);
  let got: Float32Array = cpu, spec: ArrayLike<number> = ref, dispatches = 0, parts = 0;
  if (backend === 'webgpu') {
    const ctx = given ?? await gpuOrSkip(test);
    let layout: GpuLayout;
    ({ out: got, dispatches, parts, layout } = await gpuMatmul(ctx, w, x, n, { maxPartBytes, xOff, plan, repack: !!repack }));
    spec = cpu;
    if (repack) {
      // the layout the upload chose, and the stored layout's result bit for bit (see REPACKED)
      expect(layout, `${type} [${m}, ${k}] uploaded with repack`).to.equal(repack);
      const plain = await gpuMatmul(ctx, w, x, n, { maxPartBytes, xOff, plan });
      expect(plain.layout).to.equal(type);
      const at = firstBitDifference(got, plain.out);
      expect(at, `${repack} vs ${type} [${m}, ${k}] n=${n}: output ${at} is ${got[at]}, the stored layout gives ${plain.out[at]}`).to.equal(-1);
    }
  }
  const { worst, at } = worstRatio(got, spec, mag, k);
  const tag = `${backend} ${repack ?? type}`;
  measured.set(tag, Math.max(measured.get(tag) ?? 0, worst));
  const how = given ? ` (subgroups ${given.caps.subgroups})` : '';
  expect(worst, `${type} [${m}, ${k}] n=${n}${plan ? ` plan ${JSON.stringify(plan)}` : ''}${how}: output ${at} (token ${Math.floor(at / m)}, row ${at % m}) is ${got[at]}, expected ${spec[at]} (S = ${mag[at]})`).to.be.at.most(TOL);
  return { dispatches, parts };
}

describe('matmul', () => {
  after(() => {
    if (measured.has('webgpu Q4_0')) expect([...copySeen].sort(), 'x read in place and realigned').to.deep.equal([false, true]);
    const rows = [...measured].map(([k, v]) => `${k} ${v.toFixed(2)}`);
    if (rows.length) console.log(`matmul: worst |err| / (sqrt(k)·2^-24·S) per backend and type (limit ${TOL}): ${rows.join(', ')}`);
  });

  for (const backend of BACKENDS) {
    const wg = backend === 'webgpu' ? ' [webgpu]' : '';
    for (const t of ALL_TENSOR_TYPES) {
      const type = t.name;
      it(`${type}: 37 x ${colsFor(type)}, decode (n = 1) and prefill (n = 5), ordinary and large magnitudes${wg}`, async function () {
        // x read in place (offset 4, 8) and realigned by a copy (offset 3)
        await trial(backend, this, type, { n: 1, seed: 11 + t.blockBytes });
        await trial(backend, this, type, { n: 1, seed: 17 + t.blockBytes, xOff: 4 });
        await trial(backend, this, type, { n: 5, seed: 23 + t.blockBytes });
        // |w| up to ~5e4 (inside f16's range), |x| up to ~5e6: sums near 1e13
        await trial(backend, this, type, { n: 5, seed: 31 + t.blockBytes, wScale: 100, xScale: 1e4, xOff: 8 });
      });
    }

    it(`F32, F16, BF16 rows not a multiple of 32 (k = 172, 67: a partial last unit; 134-byte rows)${wg}`, async function () {
      await trial(backend, this, 'F32', { k: 172, n: 5, seed: 5 });
      await trial(backend, this, 'F32', { k: 172, n: 5, seed: 4, xOff: 4 });
      await trial(backend, this, 'F16', { k: 67, n: 1, seed: 6 });
      await trial(backend, this, 'BF16', { k: 67, n: 5, seed: 7 });
      await trial(backend, this, 'F16', { m: 3, k: 1, n: 2, seed: 8 });
    });

    if (backend === 'webgpu') {
      // The decode kernel (matvec.wgsl) in both of its builds: with subgroups (teams sum by
      // shuffles; a team wider than the device's subgroups meets in workgroup memory) and without
      // (the same device with subgroups turned off in the caps). 37 rows: the last team of 4 rows
      // has one; rows long enough that every lane of a team of 4 takes several units, float rows
      // with a partial last unit; the default split, and the weight in 3 parts.
      const plans: MatvecPlan[] = [{ team: 4, rows: 4, wg: 128 }, { team: 32, rows: 2, wg: 128 }];
      for (const t of ALL_TENSOR_TYPES) {
        const type = t.name;
        const k = t.blockSize === 1 ? 300 : t.blockSize === 32 ? 480 : t.blockSize === 64 ? 192 : 768;
        it(`${type}: decode kernel, 37 x ${k}, teams of 4 and 32 lanes, subgroups and workgroup memory, 3 parts${wg}`, async function () {
          const shared = await gpuOrSkip(this);
          if (!shared.caps.subgroups) console.warn('matmul: this adapter has no subgroups; the subgroup build is not tested');
          const rowBytes = byteSize(getTensorType(type), k);
          for (const ctx of shared.caps.subgroups ? [shared, noSubgroups(shared)] : [shared]) {
            for (const plan of plans) await trial(backend, this, type, { k, n: 1, seed: 50 + plan.team, ctx, plan, xOff: 4 });
            const r = await trial(backend, this, type, { k, n: 1, seed: 60, ctx, maxPartBytes: 13 * rowBytes + 5 });
            expect(r.parts).to.equal(3);
            expect(r.dispatches).to.equal(3);
          }
        });
      }
    }

    it(`long rows (Q4_0 37 x 9632, n = 1; Q4_K 37 x 4096, n = 11)${wg}`, async function () {
      await trial(backend, this, 'Q4_0', { k: 9632, n: 1, seed: 9 });
      await trial(backend, this, 'Q4_K', { k: 4096, n: 11, seed: 10, xOff: 0 });
    });

    // The prefill kernel's tiles (PREFILL_TILE: BM rows x BN tokens): n inside one token tile and
    // one past it; m = BM + 36, so the second row tile is partial; rows of one unit (whole or
    // partial) and of 64; x in place at an offset and realigned (k = 67: a row stride of 68).
    const { rows: BM, tokens: BN } = PREFILL_TILE;
    it(`prefill tiles: n = 3 and ${BN + 3}, m = ${BM + 36}, k = 32, 23, 67 and 2048, x in place and realigned${wg}`, async function () {
      const m = BM + 36;
      for (const n of [3, BN + 3]) {
        await trial(backend, this, 'Q4_0', { m, k: 32, n, seed: 90 + n, xOff: 0 });
        await trial(backend, this, 'F32', { m, k: 23, n, seed: 91 + n, xOff: 0 });
        await trial(backend, this, 'F16', { m, k: 67, n, seed: 92 + n, xOff: 4 });
        await trial(backend, this, 'Q4_K', { m, k: 2048, n, seed: 93 + n, xOff: 8 });
        await trial(backend, this, 'Q5_1', { m, k: 2048, n, seed: 94 + n, xOff: 3 });
      }
    });

    it(`prefill tiles and parts: ${BM + 36} rows in parts of 40, 40, 20 (yOff > 0, m > a part's rows), n = ${BN + 3}${wg}`, async function () {
      for (const type of ['Q8_0', 'BF16'] as const) {
        const rowBytes = byteSize(getTensorType(type), colsFor(type));
        const r = await trial(backend, this, type, { m: BM + 36, n: BN + 3, seed: 96, maxPartBytes: 40 * rowBytes + 5 });
        if (backend === 'webgpu') {
          expect(r.parts).to.equal(3);
          expect(r.dispatches).to.equal(3);
        }
      }
    });

    it(`a weight split into 3 parts: one dispatch per part, every output column right${wg}`, async function () {
      for (const type of ['Q4_0', 'Q6_K', 'F16'] as const) {
        const rowBytes = byteSize(getTensorType(type), colsFor(type));
        for (const n of [1, 5]) {
          const r = await trial(backend, this, type, { n, seed: 40 + n, maxPartBytes: 13 * rowBytes + 5 });
          if (backend === 'webgpu') {
            expect(r.parts).to.equal(3);      // rows 13 + 13 + 11
            expect(r.dispatches).to.equal(3);
          }
        }
      }
    });
  }

  // The repacked layouts (src/engine/gpu/layout.ts): Q4_0 and Q8_0 rows of whole 256-element groups
  // uploaded as Q4_0_X8 / Q8_0_X8, checked against the twin with the same bound and against the
  // stored layout's upload of the same tensor BIT FOR BIT: both decoders give every element the
  // same f32 value (the same product), and the kernels visit the same 32-element units in the same
  // order with the same sums inside each, only the bytes they load differ. Row lengths that are
  // not whole groups keep the stored layout.
  describe('repacked layouts (Q4_0_X8, Q8_0_X8)', () => {
    const REPACKED = { Q4_0: 'Q4_0_X8', Q8_0: 'Q8_0_X8' } as const;
    for (const type of ['Q4_0', 'Q8_0'] as const) {
      const rp = REPACKED[type];
      it(`[webgpu] ${type} → ${rp}: 37 x 768 decode and prefill, large magnitudes, long rows`, async function () {
        await trial('webgpu', this, type, { k: 768, n: 1, seed: 201, repack: rp });
        await trial('webgpu', this, type, { k: 768, n: 1, seed: 202, xOff: 4, repack: rp });
        await trial('webgpu', this, type, { k: 768, n: 5, seed: 203, repack: rp });
        await trial('webgpu', this, type, { k: 256, n: 5, seed: 204, wScale: 100, xScale: 1e4, xOff: 8, repack: rp });
        await trial('webgpu', this, type, { k: 8192, n: 1, seed: 205, repack: rp });
      });

      it(`[webgpu] ${type} → ${rp}: decode kernel, teams of 4 and 32 lanes, subgroups and workgroup memory, 3 parts`, async function () {
        const shared = await gpuOrSkip(this);
        const k = 1024, rowBytes = byteSize(getTensorType(type), k);
        for (const ctx of shared.caps.subgroups ? [shared, noSubgroups(shared)] : [shared]) {
          for (const plan of [{ team: 4, rows: 4, wg: 128 }, { team: 32, rows: 2, wg: 128 }]) {
            await trial('webgpu', this, type, { k, n: 1, seed: 210 + plan.team, ctx, plan, xOff: 4, repack: rp });
          }
          const r = await trial('webgpu', this, type, { k, n: 1, seed: 220, ctx, maxPartBytes: 13 * rowBytes + 5, repack: rp });
          expect(r.parts).to.equal(3);
          expect(r.dispatches).to.equal(3);
        }
      });

      it(`[webgpu] ${type} → ${rp}: prefill tiles (n = 3 and ${PREFILL_TILE.tokens + 3}, m = ${PREFILL_TILE.rows + 36}: partial row and token tiles), 3 parts`, async function () {
        const m = PREFILL_TILE.rows + 36;
        for (const n of [3, PREFILL_TILE.tokens + 3]) await trial('webgpu', this, type, { m, k: 512, n, seed: 230 + n, xOff: 3, repack: rp });
        const rowBytes = byteSize(getTensorType(type), 256);
        const r = await trial('webgpu', this, type, { m, k: 256, n: PREFILL_TILE.tokens + 3, seed: 240, maxPartBytes: 40 * rowBytes + 5, repack: rp });
        expect(r.parts).to.equal(3);
        expect(r.dispatches).to.equal(3);
      });

      it(`[webgpu] ${type} rows not whole groups of 256 (k = 160, 288) keep the stored layout with repack on`, async function () {
        for (const k of [160, 288]) {
          for (const n of [1, 5]) await trial('webgpu', this, type, { k, n, seed: 250 + k + n, repack: type });
        }
      });
    }
  });

  it('[webgpu] a 2-D workgroup grid when the rows need more workgroups than one dimension holds', async function () {
    const shared = await gpuOrSkip(this);
    // the same device with the per-dimension limit lowered to 3: 257 rows make 9 decode workgroups
    // of 32 rows, laid out 3 x 3, and 5 prefill tiles of 64, laid out 3 x 2 with one left over;
    // n = BN + 3 adds a second, partial token tile
    const ctx = new GpuContext(shared.device, { ...shared.caps, maxComputeWorkgroupsPerDimension: 3 });
    const w = randomTensor('Q4_0', 257, 160, 77);
    for (const n of [1, 5, PREFILL_TILE.tokens + 3]) {
      const x = seededValues(n * 160, 78);
      const cpu = new Float32Array(n * 257);
      matmul(cpu, x, w, n);
      const { out } = await gpuMatmul(ctx, w, x, n, { xOff: 4 * n });
      const { mag } = reference(w, x, n);
      const { worst, at } = worstRatio(out, cpu, mag, 160);
      expect(worst, `output ${at}: ${out[at]} vs ${cpu[at]}`).to.be.at.most(TOL);
    }
  });

  it('[webgpu] fixed case: one Q4_0 block and f16 subnormals, exact', async function () {
    const ctx = await gpuOrSkip(this);
    // Q4_0 row: d = 0.5 (f16 0x3800), byte j holds q = j (low) and 15 - j (high):
    // values (j - 8)/2 for j < 16, (7 - j')/2 for element 16 + j'
    const q4 = new Uint8Array(18);
    q4[0] = 0x00; q4[1] = 0x38;
    for (let j = 0; j < 16; j++) q4[2 + j] = j | ((15 - j) << 4);
    const x = Float32Array.from({ length: 32 }, (_, e) => e + 1);
    let expected = 0;
    for (let e = 0; e < 32; e++) expected += (e < 16 ? (e - 8) / 2 : (7 - (e - 16)) / 2) * (e + 1);
    const { out } = await gpuMatmul(ctx, { name: 'q4', type: 'Q4_0', shape: [1, 32], data: q4 }, x, 1);
    expect(out[0]).to.equal(expected);
    // F16 rows [h, 0, 0, 0] times x = [1, 0, 0, 0]: each output is the f16 value itself
    const halves = [0x0001, 0x03ff, 0x8001, 0x7bff, 0x3c00, 0xc000, 0x0400];
    const values = [2 ** -24, 1023 * 2 ** -24, -(2 ** -24), 65504, 1, -2, 2 ** -14];
    const f16 = new Uint16Array(halves.length * 4);
    halves.forEach((h, i) => { f16[4 * i] = h; });
    const r = await gpuMatmul(ctx, { name: 'f16', type: 'F16', shape: [halves.length, 4], data: new Uint8Array(f16.buffer) }, new Float32Array([1, 0, 0, 0]), 1);
    expect(Array.from(r.out)).to.deep.equal(values);
  });
});
