// Which build of the kernels runs faster on this machine: relaxed SIMD or plain.
//
// The relaxed build's 8-bit dot product (i32x4.relaxed_dot_i8x16_i7x16_add_s) is one instruction
// where the CPU has AVX-VNNI and a sequence of several where it has not. So the relaxed build
// prefilled TinyLlama Q4_0 in Chromium 50% faster on an Intel Xeon with AVX-VNNI, and 10–30% slower
// on an AMD EPYC without it (BENCHMARKS.md). Both builds give the same bits
// (test/browser/fast-kernels.test.ts), so the faster one may be taken. Before a model's weights
// are loaded (src/engine/weights.ts), this times the two builds on a small matrix of the model's
// weight type: a four-token product and four one-token products (prefill and decode), four times
// a round, on one thread, alternated, best of several rounds after a warm-up long enough for the
// engine to have optimized both. It runs only where relaxed SIMD is on offer and for the types the two builds
// multiply differently; the answer is kept per type for the page (or worker).

import { WeightArena } from '../../src/engine/arena.ts';
import { byteSize, type Tensor, type TensorTypeName } from '../../src/formats/tensor.ts';
import { getTensorType } from '../../src/formats/quant/index.ts';
import { loadWasmModule, preferRelaxedSimd, relaxedSimdSupported, usesRelaxedSimd } from './load.ts';
import { WasmRuntime } from './runtime.ts';
import { wasmKernels, type WasmKernelSet } from './kernels.ts';

/** The weight types whose products differ between the builds, and where their f16 scales lie. */
const SCALES: Partial<Record<TensorTypeName, number[]>> = { Q4_0: [0], Q4_1: [0, 2], Q5_0: [0], Q5_1: [0, 2], Q4_K: [0, 2], Q5_K: [0, 2] };

// a round takes a few ms (browsers without cross-origin isolation give performance.now() in 0.1 ms steps)
const ROWS = 512, K = 2048, TOKENS = 4, REPEAT = 4;
const WARM_MS = 60, ROUNDS = 5;
/** The plain build is taken when it is faster by more than this (the relaxed one stays the default). */
const MARGIN = 0.05;

export interface BuildChoice {
  type: TensorTypeName;
  relaxed: boolean;
  /** The best round of each build, ms (four times a four-token product and four one-token products). */
  relaxedMs: number;
  plainMs: number;
}

const chosen = new Map<TensorTypeName, BuildChoice>();
let failure: string | null = null;
let last: BuildChoice | null = null;

/** Why the last timing gave no choice (the build that was preferred stays), or null. */
export function buildFailure(): string | null {
  return failure;
}

/** The relaxed build unless the plain one took less than (1 − MARGIN) of its time. */
export function pickRelaxed(relaxedMs: number, plainMs: number): boolean {
  return !(plainMs < relaxedMs * (1 - MARGIN));
}

/** The choice made for `type` on this page, if any. */
export function buildChoice(type: TensorTypeName): BuildChoice | null {
  return chosen.get(type) ?? null;
}

/** The last choice made on this page (the build a model loaded since was given), if any. */
export function lastBuildChoice(): BuildChoice | null {
  return last;
}

/**
 * Sets the build the next kernel modules are loaded from (preferRelaxedSimd) to the faster one
 * for weights of `type`, timing both the first time; null when there is nothing to choose (no
 * relaxed SIMD here, or a type both builds multiply alike). A build that fails to load is not
 * chosen.
 */
export async function chooseBuild(type: TensorTypeName): Promise<BuildChoice | null> {
  const scales = SCALES[type];
  if (!scales || !relaxedSimdSupported()) return null;
  const known = chosen.get(type);
  if (known) {
    preferRelaxedSimd(known.relaxed);
    return (last = known);
  }
  const wanted = usesRelaxedSimd();
  const setups: { ks: WasmKernelSet; run: () => number }[] = [];
  try {
    for (const relaxed of [true, false]) {
      preferRelaxedSimd(relaxed);
      if (!(await loadWasmModule('plain'))) {
        failure = `the ${relaxed ? 'relaxed' : 'plain'} build does not load`;
        preferRelaxedSimd(wanted);
        return null;
      }
      setups.push(await setup(type, scales));
    }
    const best = [Infinity, Infinity];
    for (const [i, s] of setups.entries()) {
      const t0 = performance.now();
      while (performance.now() - t0 < WARM_MS) s.run();          // until both are optimized code
      best[i] = s.run();
    }
    for (let r = 0; r < ROUNDS; r++) setups.forEach((s, i) => { best[i] = Math.min(best[i]!, s.run()); });
    const choice = { type, relaxed: pickRelaxed(best[0]!, best[1]!), relaxedMs: best[0]!, plainMs: best[1]! };
    chosen.set(type, choice);
    failure = null;
    preferRelaxedSimd(choice.relaxed);
    return (last = choice);
  } catch (e) {
    failure = `timing the two builds failed: ${e instanceof Error ? e.message : String(e)}`;
    preferRelaxedSimd(wanted);
    return null;
  } finally {
    for (const s of setups) s.ks.dispose();
  }
}

/** A kernel set of the build preferred now on its own small arena, with a [ROWS, K] matrix of
 *  random bytes and valid scales, and one timed round. */
async function setup(type: TensorTypeName, scales: number[]): Promise<{ ks: WasmKernelSet; run: () => number }> {
  const tt = getTensorType(type), bytes = byteSize(tt, ROWS * K);
  const arena = new WeightArena(bytes + (1 << 16), { shared: false });
  if (!(await WasmRuntime.preload(arena))) throw new Error(WasmRuntime.failure(arena) ?? 'no kernels');
  const offset = arena.alloc(bytes);
  // the kernels' scratch may grow the (non-shared) memory: every view is taken after it
  const ks = wasmKernels(WasmRuntime.of(arena)!, { maxRows: TOKENS, maxK: K, maxOut: ROWS, maxPositions: 16, threads: 1 });
  const io = ks.space.alloc(TOKENS * (K + ROWS)), x = io.subarray(0, TOKENS * K), out = io.subarray(TOKENS * K);
  const data = arena.bytes(offset, bytes);
  let seed = 0x9e3779b9;
  const next = () => { seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0; return seed; };
  for (let i = 0; i < bytes; i++) data[i] = next() & 255;
  for (let o = 0; o < bytes; o += tt.blockBytes) {
    for (const at of scales) { data[o + at] = next() & 255; data[o + at + 1] = 0x1c | (next() & 1); }   // f16 scales of about 0.004–0.008
  }
  const w: Tensor = { name: `calibration ${type}`, type, shape: [ROWS, K], data };
  for (let i = 0; i < x.length; i++) x[i] = (next() / 2 ** 31) - 1;
  const run = () => {
    const t0 = performance.now();
    for (let r = 0; r < REPEAT; r++) {
      ks.matmul(out, x, w, TOKENS, 'llamacpp');
      for (let t = 0; t < TOKENS; t++) ks.matmul(out, x, w, 1, 'llamacpp');
    }
    return performance.now() - t0;
  };
  return { ks, run };
}
