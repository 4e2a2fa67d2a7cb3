// The WebAssembly SIMD kernels behind the twins' signatures (kernels/cpu.ts CpuKernels): matmul for
// every tensor type, attention and the logit lens's reduction of rows of logits (lensRows: an exp
// and a comparison per value of a vocabulary row) run in WebAssembly, split over threads when the
// memory is shared, and SwiGLU (an exp per value) and RMSNorm (the twin's bits); the light
// element-wise ops (embedding, RoPE, residual add) stay the twins, which run on the same arrays
// (they live in the arena: `space`).
//
// Numerics. F32 weights: f32 lanes. F16, BF16 with activationQuant 'llamacpp': the activations are
// rounded to f16 / bf16 first, as the twin does; Q8_G64: f32 activations. The quantized ggml
// types with activationQuant 'llamacpp' (the CPU default): the activations are quantized to Q8_0
// or Q8_K blocks and multiplied as integers (quantize.as.ts, matmul.as.ts); with 'none' (exact
// f32 activations) they use the twin, which is the only exact path. Results equal the twins' up
// to f32 summation order (test/node/fast-kernels.test.ts).
//
// Memory. Arrays that lie in the arena are used in place; others (a plain Float32Array, the
// logits, captured attention) are copied through the session's staging area, in pieces that fit.
// Everything is allocated when the kernel set is made, so no call grows the memory.

import { matmul as twinMatmul } from '../matmul/matmul.cpu.ts';
import { attention as twinAttention, type AttentionShape } from '../attention/attention.cpu.ts';
import { siluMul as twinSiluMul } from '../silu-mul/silu-mul.cpu.ts';
import { rmsnorm as twinRmsnorm } from '../rmsnorm/rmsnorm.cpu.ts';
import { lensRows as twinLensRows, MAX_TOP_K, type LensRowsResult } from '../argmax/argmax.cpu.ts';
import type { ActivationQuant } from '../matmul/activation-quant.cpu.ts';
import { JS_KERNELS, type CpuKernels, type FloatSpace } from '../cpu.ts';
import { getTensorType } from '../../src/formats/quant/index.ts';
import { byteSize, type Tensor, type TensorTypeName } from '../../src/formats/tensor.ts';
import type { WasmRuntime } from './runtime.ts';
import type { ThreadPool } from './pool.ts';

export interface WasmKernelOptions {
  /** Most token rows per call (the session's chunk size); larger calls run in pieces. */
  maxRows: number;
  /** Longest row of a weight matrix (its k). Longer rows fall back to the twin. */
  maxK: number;
  /** Widest product output (its m: d_ffn, the vocabulary). */
  maxOut: number;
  /** Most keys attention sees (the context length). */
  maxPositions: number;
  /** Threads (1: this one only; more need a shared memory). */
  threads: number;
}

/** A kernel set plus what its owner manages. */
export interface WasmKernelSet extends CpuKernels {
  readonly name: 'wasm';
  readonly threads: number;
  /** Calls that went to the twin because an array did not fit the scratch (tests expect 0). */
  readonly fallbacks: number;
  /** Jobs that ran on more than one thread. */
  readonly threadedJobs: number;
  /** Starts the worker threads and resolves when they are ready. */
  ready(): Promise<void>;
  /** Frees the scratch (also done when the set is garbage-collected). */
  dispose(): void;
}

const FLOAT_INPUT: ReadonlySet<TensorTypeName> = new Set(['F32', 'F16', 'BF16', 'Q8_G64']);
const K_TYPES: ReadonlySet<TensorTypeName> = new Set(['Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K', 'Q8_K']);
/** Below this many multiply-adds a job stays on one thread (waking workers costs ~10 µs). */
const THREAD_MIN_WORK = 1 << 18;

const freeScratch = new FinalizationRegistry<() => void>((release) => release());

/** A kernel set with its own scratch in `rt`'s memory. */
export function wasmKernels(rt: WasmRuntime, o: WasmKernelOptions): WasmKernelSet {
  const { exports: x, c, heap } = rt;
  const R = Math.max(1, o.maxRows), K = Math.max(32, o.maxK), T = Math.max(1, Math.min(o.threads, c.CTL_MAX_WORKERS + 1));
  const P = Math.max(1, o.maxPositions);
  const stageFloats = Math.max(o.maxOut, R * K, 2 * R * Math.min(P, 4096), 1 << 16);
  const rowStride = 16 * K + 256;   // four decoded f32 rows (matmul.as.ts matmulF32), or one 8-bit row with its scales
  // the scratch: [x in: R·K f32][xq: R·K i16][xd, xs: R·K/32 f32 each][row buffers][attention rows][stage]
  // [lens rows' results: ids, values (R·MAX_TOP_K each), sums, ranks, target values (R each)]
  const sizes = { xin: 4 * R * K, xq: 2 * R * K, xd: 4 * R * Math.ceil(K / 32), xs: 4 * R * Math.ceil(K / 32), rows: T * rowStride, att: 4 * T * P, stage: 4 * stageFloats, lens: 4 * R * (2 * MAX_TOP_K + 3) };
  const at: Record<keyof typeof sizes, number> = { xin: 0, xq: 0, xd: 0, xs: 0, rows: 0, att: 0, stage: 0, lens: 0 };
  const blocks: [number, number][] = [];
  for (const key of Object.keys(sizes) as (keyof typeof sizes)[]) {
    at[key] = heap.alloc(sizes[key]);
    blocks.push([at[key], sizes[key]]);
  }
  const f16Table = rt.f16Table();   // shared by every kernel set on this memory, never released
  const space = arenaSpace(rt);
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    for (const [off, n] of blocks) heap.release(off, n);
    space.releaseAll();
  };

  const f32 = (offset: number, n: number) => new Float32Array(rt.memory.buffer, offset, n);
  let fallbacks = 0, threadedJobs = 0;
  // the runtime's pool (shared by every kernel set on this memory; it grows to the most threads asked)
  let pool: ThreadPool | null = null;
  const slicesFor = (work: number, items: number) => {
    pool = T > 1 && work >= THREAD_MIN_WORK ? rt.threads(T) : null;
    return pool ? Math.min(T, items) : 1;
  };
  /** Writes op and arguments into the control block. */
  const job = (op: number, args: number[]) => {
    const w = rt.words();
    w[c.CTL_OP] = op;
    for (let i = 0; i < args.length; i++) w[c.CTL_ARGS + i] = args[i]!;
  };

  function matmul(out: Float32Array, xs: Float32Array, w: Tensor, n: number, activationQuant: ActivationQuant = 'none'): void {
    const [m, k] = w.shape as [number, number];
    const type = w.type;
    const floatInput = FLOAT_INPUT.has(type);
    const oIn = rt.holds(out);
    if ((!floatInput && activationQuant !== 'llamacpp') || k > K || (!oIn && m > stageFloats)) {
      if (floatInput || activationQuant === 'llamacpp') fallbacks++;   // 'none' on quantized weights is the twin by design
      twinMatmul(out, xs, w, n, activationQuant);
      return;
    }
    const wOff = rt.offsetOf(w);
    const rowBytes = byteSize(getTensorType(type), k);
    const xIn = rt.holds(xs);
    const per = Math.min(R, oIn ? R : Math.floor(stageFloats / m));
    const round = activationQuant === 'llamacpp' && (type === 'F16' || type === 'BF16');
    for (let t0 = 0; t0 < n; t0 += per) {
      const rows = Math.min(per, n - t0), len = rows * k;
      let xp = xs.byteOffset + 4 * t0 * k;
      if (!xIn) { f32(at.xin, len).set(xs.subarray(t0 * k, t0 * k + len)); xp = at.xin; }
      let op: number, xa: number, narrowK = false;
      if (floatInput) {
        op = c.OP_MATMUL_F32;
        xa = xp;
        if (round) {
          if (type === 'F16') x.roundToF16(xp, at.xin, len); else x.roundToBf16(xp, at.xin, len);
          xa = at.xin;
        }
      } else if (K_TYPES.has(type)) {
        op = c.OP_MATMUL_K;
        x.quantizeQ8_K(xp, len, at.xq, at.xd, at.xs);
        xa = at.xq;
        narrowK = c.RELAXED === 1 && (type === 'Q4_K' || type === 'Q5_K');
      } else {
        op = c.OP_MATMUL_Q8;
        x.quantizeQ8_0(xp, len, at.xq, at.xd, at.xs);
        xa = at.xq;
      }
      // Q4 matrix-vector products read the levels reordered (matmul.as.ts rows4DirectQ4), put
      // where the staged f32 rows were (they are quantized already)
      let xperm = 0, xsum = 0, xi = 0;
      // Q4_K / Q5_K in the relaxed build read the levels as i8 (quantize.as.ts narrowQ8K), put
      // where the staged f32 rows were (argument 12, as xperm below)
      // (and Q6_K's matrix-vector products there: matmul.as.ts rowKDirect)
      if (narrowK || (c.RELAXED === 1 && type === 'Q6_K' && rows < 4)) {
        xperm = at.xin;
        x.narrowQ8K(at.xq, len, xperm);
      }
      if (rows < 4 && (type === 'Q4_0' || type === 'Q4_1')) {
        xperm = at.xin;
        xsum = at.xin + 2 * len;
        x.permuteQ4(at.xq, len, xperm, xsum);
      }
      // products with several tokens read them four at a time, interleaved (matmul.as.ts rows2Q8,
      // rows2K; the relaxed build's Q4_K / Q5_K read the narrowed levels instead)
      if (rows >= 4 && op === c.OP_MATMUL_Q8) {
        xi = at.xin;
        x.interleaveQ8(at.xq, at.xd, at.xs, rows, k, xi, c.kind[type]);
      } else if (rows >= 4 && op === c.OP_MATMUL_K && !narrowK) {
        xi = at.xin;
        x.interleaveQ8K(at.xq, rows, k, xi);
      }
      const op0 = oIn ? out.byteOffset + 4 * t0 * m : at.stage;
      const slices = slicesFor(m * k * rows, m);
      job(op, [c.kind[type], wOff, rowBytes, xa, at.xd, at.xs, op0, rows, m, k, at.rows, rowStride, xperm, xsum, f16Table, xi]);
      if (rt.run(slices, pool) > 1) threadedJobs++;
      if (!oIn) out.set(f32(at.stage, rows * m), t0 * m);
    }
  }

  function attention(z: Float32Array | null, q: Float32Array, kCache: Float32Array, vCache: Float32Array, s: AttentionShape,
    scores: Float32Array | null = null, pattern: Float32Array | null = null): void {
    const { nq, start, nHeads, nKvHeads, dHead } = s;
    const kLen = start + nq;
    const qLen = nq * nHeads * dHead, kvLen = kLen * nKvHeads * dHead;
    // staged pieces: q, z (unless in the arena), the cache rows (unless in the arena), then
    // the captured rows of as many heads at a time as fit
    let top = at.stage;
    const stage = (a: Float32Array, n: number, copyIn: boolean): number => {
      if (rt.holds(a)) return a.byteOffset;
      const p = top;
      top += 4 * n;
      if (top > at.stage + 4 * stageFloats) return -1;
      if (copyIn) f32(p, n).set(a.subarray(0, n));
      return p;
    };
    const qp = stage(q, qLen, true), zp = z ? stage(z, qLen, false) : 0;
    const kp = stage(kCache, kvLen, true), vp = stage(vCache, kvLen, true);
    const perHead = nq * kLen;
    // captured rows: used in place when every requested array is in the arena, else all staged,
    // as many heads at a time as fit
    const wanted = [scores, pattern].filter((a): a is Float32Array => a !== null);
    const inPlace = wanted.every((a) => rt.holds(a));
    const headsPer = inPlace ? nHeads : Math.floor((at.stage + 4 * stageFloats - top) / (4 * perHead * wanted.length));
    if (qp < 0 || zp < 0 || kp < 0 || vp < 0 || headsPer < 1 || (!pattern && kLen > P)) {
      fallbacks++;
      twinAttention(z, q, kCache, vCache, s, scores, pattern);
      return;
    }
    const scaleBits = new Int32Array(Float32Array.of(1 / Math.sqrt(dHead)).buffer)[0]!;
    for (let h0 = 0; h0 < nHeads; h0 += headsPer) {
      const hn = Math.min(headsPer, nHeads - h0);
      const sp = !scores ? 0 : inPlace ? scores.byteOffset : top;
      const pp = !pattern ? 0 : inPlace ? pattern.byteOffset : top + (scores ? 4 * hn * perHead : 0);
      const slices = slicesFor(hn * nq * kLen * dHead, hn);
      job(c.OP_ATTENTION, [zp, qp, kp, vp, nq, start, nHeads, nKvHeads, dHead, scaleBits, sp, pp, inPlace ? 0 : h0, at.att, 4 * P, h0, hn]);
      if (rt.run(slices, pool) > 1) threadedJobs++;
      if (!inPlace) {
        if (scores) scores.set(f32(sp, hn * perHead), h0 * perHead);
        if (pattern) pattern.set(f32(pp, hn * perHead), h0 * perHead);
      }
    }
    if (z && !rt.holds(z)) z.set(f32(zp, qLen));
  }

  function siluMul(out: Float32Array, gate: Float32Array, up: Float32Array, n: number = out.length): void {
    if (rt.holds(out) && rt.holds(gate) && rt.holds(up)) x.siluMul(out.byteOffset, gate.byteOffset, up.byteOffset, n);
    else twinSiluMul(out, gate, up, n);
  }

  function rmsnorm(out: Float32Array, xs: Float32Array, weight: Float32Array, n: number, d: number, eps: number,
    scale: Float32Array | null = null, normalized: Float32Array | null = null): void {
    // the hooks' intermediate results (recorded only when asked for) come from the twin
    if (scale || normalized || !rt.holds(out) || !rt.holds(xs) || (!rt.holds(weight) && d > K)) {
      twinRmsnorm(out, xs, weight, n, d, eps, scale, normalized);
      return;
    }
    let wp = weight.byteOffset;
    if (!rt.holds(weight)) {
      // the norm weights are plain arrays (src/engine/weights.ts): d floats through the x staging area
      f32(at.xin, d).set(weight);
      wp = at.xin;
    }
    x.rmsnorm(out.byteOffset, xs.byteOffset, wp, n, d, eps);
  }

  /**
   * The twin's lensRows on rows of logits that lie in the arena (the output head writes them
   * there), R rows at a time, split over the threads by rows; anything else (rows outside the
   * arena, k over MAX_TOP_K) is the twin's. Ids, values, ranks and target values are the twin's
   * exactly, the sums within about 1e-6 (lens.as.ts).
   */
  function lensRows(x: Float32Array, rows: number, cols: number, k: number, target: number | null, offset = 0): LensRowsResult {
    if (!rt.holds(x) || !Number.isInteger(k) || k < 1 || k > MAX_TOP_K || (target !== null && !(target >= 0 && target < cols))) {
      return twinLensRows(x, rows, cols, k, target, offset);
    }
    const out: LensRowsResult = {
      ids: new Uint32Array(rows * k), values: new Float32Array(rows * k), sums: new Float32Array(rows),
      ranks: new Uint32Array(rows), targetValues: new Float32Array(rows),
    };
    const ids = at.lens, vals = ids + 4 * R * MAX_TOP_K, sums = vals + 4 * R * MAX_TOP_K, ranks = sums + 4 * R, tvals = ranks + 4 * R;
    for (let r0 = 0; r0 < rows; r0 += R) {
      const b = Math.min(R, rows - r0);
      const slices = slicesFor(b * cols * 8, b);
      job(c.OP_LENS_ROWS, [x.byteOffset + 4 * (offset + r0 * cols), cols, k, target ?? -1, ids, vals, sums, ranks, tvals, b]);
      if (rt.run(slices, pool) > 1) threadedJobs++;
      const buf = rt.memory.buffer;
      out.ids.set(new Uint32Array(buf, ids, b * k), r0 * k);
      out.values.set(new Float32Array(buf, vals, b * k), r0 * k);
      out.sums.set(new Float32Array(buf, sums, b), r0);
      out.ranks.set(new Uint32Array(buf, ranks, b), r0);
      out.targetValues.set(new Float32Array(buf, tvals, b), r0);
    }
    return out;
  }

  const set: WasmKernelSet = {
    ...JS_KERNELS,
    name: 'wasm',
    space,
    matmul,
    attention,
    siluMul,
    rmsnorm,
    lensRows,
    threads: T,
    get fallbacks() { return fallbacks; },
    get threadedJobs() { return threadedJobs; },
    async ready() {
      if (T > 1) await rt.threads(T)?.ready();
    },
    dispose: release,
  };
  freeScratch.register(set, release);
  return set;
}

/** A FloatSpace in the runtime's memory (RunState's arrays and KV cache), with live views after growth. */
function arenaSpace(rt: WasmRuntime): FloatSpace & { releaseAll(): void } {
  const live = new Map<Float32Array, { offset: number; n: number }>();
  const find = (a: Float32Array) => live.get(a);
  return {
    alloc(n: number): Float32Array {
      const offset = rt.heap.alloc(4 * Math.max(1, n));
      const a = new Float32Array(rt.memory.buffer, offset, n);
      a.fill(0);
      live.set(a, { offset, n });
      return a;
    },
    free(a: Float32Array): void {
      const e = find(a);
      if (!e) return;
      live.delete(a);
      rt.heap.release(e.offset, 4 * Math.max(1, e.n));
    },
    current(a: Float32Array): Float32Array {
      if (a.buffer === rt.memory.buffer) return a;
      const e = find(a);
      if (!e) return a;
      const b = new Float32Array(rt.memory.buffer, e.offset, e.n);
      live.delete(a);
      live.set(b, e);
      return b;
    },
    releaseAll(): void {
      for (const e of live.values()) rt.heap.release(e.offset, 4 * Math.max(1, e.n));
      live.clear();
    },
  };
}
