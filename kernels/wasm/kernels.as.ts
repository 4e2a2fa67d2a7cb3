// AssemblyScript entry of the WebAssembly kernels (built by kernels/wasm/build.mjs into
// kernels/wasm/build/kernels{,-shared}.wasm). Exports the kernels, the constants TypeScript reads
// (kinds.as.ts), and `run`, which executes one slice of the job described in the control block:
// the main thread and each worker call it with their own slice index (kernels/wasm/pool.ts).

import { CTL_ARGS, CTL_NEXT, CTL_OP, OP_ATTENTION, OP_LENS_ROWS, OP_MATMUL_F32, OP_MATMUL_K, OP_MATMUL_Q8 } from './kinds.as';
import { matmulF32, matmulK, matmulQ8 } from './matmul.as';
import { attention } from './attention.as';
import { lensRows } from './lens.as';

export * from './kinds.as';
export { quantizeQ8_0, quantizeQ8_K, roundToF16, roundToBf16, permuteQ4, interleaveQ8, interleaveQ8K, narrowQ8K } from './quantize.as';
export { matmulF32, matmulK, matmulQ8 } from './matmul.as';
export { attention } from './attention.as';
export { lensRows } from './lens.as';
export { siluMul, rmsnorm } from './elementwise.as';
export { f16Table } from './common.as';

@inline function arg(ctl: usize, i: i32): i32 {
  return load<i32>(ctl + (<usize>(CTL_ARGS + i) << 2));
}

/** Items [from, to) of `count` that slice s of n takes: contiguous, as even as integers allow. */
@inline function from(count: i32, s: i32, n: i32): i32 {
  return <i32>((<i64>count * <i64>s) / <i64>n);
}

/** Rows r0..r1 of the matrix product described in the control block, with slice s's row buffer. */
function matmulRows(ctl: usize, op: i32, s: i32, r0: i32, r1: i32): void {
  const kind = arg(ctl, 0), w = <usize>arg(ctl, 1), rowBytes = arg(ctl, 2);
  const x = <usize>arg(ctl, 3), xd = <usize>arg(ctl, 4), xs = <usize>arg(ctl, 5), out = <usize>arg(ctl, 6);
  const rows = arg(ctl, 7), m = arg(ctl, 8), k = arg(ctl, 9);
  const buf = <usize>arg(ctl, 10) + <usize>s * <usize>arg(ctl, 11);
  if (op == OP_MATMUL_Q8) matmulQ8(kind, w, rowBytes, x, xd, xs, out, rows, m, k, r0, r1, buf, <usize>arg(ctl, 12), <usize>arg(ctl, 13), <usize>arg(ctl, 14), <usize>arg(ctl, 15));
  else if (op == OP_MATMUL_K) matmulK(kind, w, rowBytes, x, xd, xs, out, rows, m, k, r0, r1, buf, <usize>arg(ctl, 12), <usize>arg(ctl, 14), <usize>arg(ctl, 15));
  else matmulF32(kind, w, rowBytes, x, out, rows, m, k, r0, r1, buf);
}

/**
 * Runs slice `s` of `n` of the job in the control block at `ctl`. Matrix products split the
 * weight rows into chunks (about 8 per thread, whole groups of 8 rows) that the threads take one
 * after the other from a shared counter until none is left: a thread slowed down by other work on
 * its core takes fewer, instead of making every other thread wait for its fixed share. Attention
 * splits the heads evenly, the lens rows its rows. Each thread decodes into its own row buffer (buffer base + s · stride).
 * Rows are independent and each is computed the same way whoever takes it, so the results do not
 * depend on the split.
 */
export function run(ctl: usize, s: i32, n: i32): void {
  const op = load<i32>(ctl + (<usize>CTL_OP << 2));
  if (op == OP_MATMUL_Q8 || op == OP_MATMUL_K || op == OP_MATMUL_F32) {
    const m = arg(ctl, 8);
    if (ASC_FEATURE_THREADS) {   // (a constant: the single-threaded build has no atomics)
      if (n > 1) {
        const chunk = max(8, ((m + 8 * n - 1) / (8 * n) + 7) & ~7);
        const counter = ctl + (<usize>CTL_NEXT << 2);
        for (;;) {
          const r0 = atomic.add<i32>(counter, 1) * chunk;
          if (r0 >= m) break;
          matmulRows(ctl, op, s, r0, min(m, r0 + chunk));
        }
        return;
      }
    }
    matmulRows(ctl, op, s, 0, m);
  } else if (op == OP_ATTENTION) {
    // heads h0 .. h0+hn−1 of this job, split over the slices
    const h0 = arg(ctl, 15), hn = arg(ctl, 16);
    const row = <usize>arg(ctl, 13) + <usize>s * <usize>arg(ctl, 14);
    attention(<usize>arg(ctl, 0), <usize>arg(ctl, 1), <usize>arg(ctl, 2), <usize>arg(ctl, 3), arg(ctl, 4), arg(ctl, 5), arg(ctl, 6),
      arg(ctl, 7), arg(ctl, 8), reinterpret<f32>(arg(ctl, 9)), <usize>arg(ctl, 10), <usize>arg(ctl, 11), arg(ctl, 12), row,
      h0 + from(hn, s, n), h0 + from(hn, s + 1, n));
  } else if (op == OP_LENS_ROWS) {
    const rows = arg(ctl, 9);
    lensRows(<usize>arg(ctl, 0), arg(ctl, 1), arg(ctl, 2), arg(ctl, 3), <usize>arg(ctl, 4), <usize>arg(ctl, 5), <usize>arg(ctl, 6),
      <usize>arg(ctl, 7), <usize>arg(ctl, 8), from(rows, s, n), from(rows, s + 1, n));
  }
}
