// AssemblyScript: the element-wise kernels.
// - The SwiGLU activation, out = silu(gate) · up = gate / (1 + e^−gate) · up (the twin:
//   kernels/silu-mul/silu-mul.cpu.ts, which works in f64 and rounds once; here f32 lanes, within a
//   few f32 ulps of it). A weight product's activations are millions of values in prefill, and
//   Math.exp one at a time took a tenth of a small model's prefill.
// - RMSNorm, out = (x · (1/rms)) · weight (the twin: kernels/rmsnorm/rmsnorm.cpu.ts), with the
//   twin's f64 arithmetic in the twin's order, so that the results are the same bits: the sum of
//   squares one value after another (each square is exact in f64), the products two lanes at a time
//   in f64x2, each output rounded to f32 once.

import { exp4, widen } from './common.as';

@inline function silu4(g: v128, u: v128): v128 {
  return f32x4.mul(f32x4.div(g, f32x4.add(f32x4.splat(1.0), exp4(f32x4.neg(g)))), u);
}

/** out[i] = silu(gate[i]) · up[i] for i < n; out may be gate or up. */
export function siluMul(out: usize, gate: usize, up: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, silu4(v128.load(gate + o), v128.load(up + o)));
  }
  for (; i < n; i++) {
    // the same lanes' arithmetic on one value (the other lanes are ignored)
    const o = <usize>i << 2;
    store<f32>(out + o, f32x4.extract_lane(silu4(f32x4.splat(load<f32>(gate + o)), f32x4.splat(load<f32>(up + o))), 0));
  }
}

/** out [n, d] = x [n, d] / rms(x) · weight [d] (rms over each row, eps inside the root); out may be x. */
export function rmsnorm(out: usize, x: usize, weight: usize, n: i32, d: i32, eps: f64): void {
  for (let r = 0; r < n; r++) {
    const xr = x + (<usize>r * <usize>d << 2), or = out + (<usize>r * <usize>d << 2);
    let ss: f64 = 0;
    for (let i = 0; i < d; i++) {
      const v = <f64>load<f32>(xr + (<usize>i << 2));
      ss += v * v;
    }
    const inv: f64 = 1 / Math.sqrt(ss / <f64>d + eps);
    const I = f64x2.splat(inv);
    let i = 0;
    for (; i + 4 <= d; i += 4) {
      const o = <usize>i << 2;
      const xv = v128.load(xr + o), wv = v128.load(weight + o);
      const lo = f32x4.demote_f64x2_zero(f64x2.mul(f64x2.mul(widen(xv, false), I), widen(wv, false)));
      const hi = f32x4.demote_f64x2_zero(f64x2.mul(f64x2.mul(widen(xv, true), I), widen(wv, true)));
      v128.store(or + o, i32x4.shuffle(lo, hi, 0, 1, 4, 5));
    }
    for (; i < d; i++) {
      const o = <usize>i << 2;
      store<f32>(or + o, <f32>(<f64>load<f32>(xr + o) * inv * <f64>load<f32>(weight + o)));
    }
  }
}
