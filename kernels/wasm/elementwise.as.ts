// AssemblyScript: the SwiGLU activation, out = silu(gate) · up = gate / (1 + e^−gate) · up (the
// twin: kernels/silu-mul/silu-mul.cpu.ts, which works in f64 and rounds once; here f32 lanes,
// within a few f32 ulps of it). A weight product's activations are millions of values in prefill,
// and Math.exp one at a time took a tenth of a small model's prefill.

/** e^x in f32 lanes: x = n·ln2 + r, |r| ≤ ln2/2, e^r by its Taylor series to degree 7, 2^n into the exponent. */
@inline function exp4(x: v128): v128 {
  const xc = f32x4.max(f32x4.min(x, f32x4.splat(88.0)), f32x4.splat(-87.0));
  const n = f32x4.nearest(f32x4.mul(xc, f32x4.splat(1.4426950408889634)));
  const r = f32x4.sub(f32x4.sub(xc, f32x4.mul(n, f32x4.splat(0.693145751953125))), f32x4.mul(n, f32x4.splat(1.428606765330187e-6)));
  let p = f32x4.splat(1.0 / 5040.0);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 720.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 120.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 24.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 6.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(0.5));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0));
  const e = f32x4.mul(p, i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(127)), 23));
  // beyond the clamp: +inf above, 0 below (NaN stays NaN through the comparisons' false)
  const big = v128.bitselect(f32x4.splat(Infinity), e, f32x4.gt(x, f32x4.splat(88.0)));
  return v128.bitselect(f32x4.splat(0), big, f32x4.lt(x, f32x4.splat(-87.0)));
}

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
