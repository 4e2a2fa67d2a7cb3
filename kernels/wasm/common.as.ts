// AssemblyScript (compiled by kernels/wasm/build.mjs, not by tsc): helpers shared by the kernels.
//
// The module has NO data segment and allocates nothing: it imports the weight arena's memory
// (one WebAssembly.Memory, shared with the worker threads) and every pointer it is given is a
// byte offset into that memory. A data segment would be written into the arena at instantiation,
// over the weights, by every thread; build.mjs checks that there is none. That is why exp is
// written here (AssemblyScript's Mathf.exp reads a table from a data segment).

import { K_Q4_0, K_Q4_1, K_Q5_0, K_Q5_1, K_Q4_K, K_Q5_K } from './kinds.as';

/** f16 bits → f32, exactly as src/formats/quant/half.ts's table (NaN payloads kept). */
@inline export function f16(h: u32): f32 {
  const o = (h & 0x7fff) << 13;
  let v = reinterpret<f32>(o) * reinterpret<f32>(0x77800000);   // × 2^112 rebiases the exponent (subnormals too)
  if ((h & 0x7c00) == 0x7c00) v = reinterpret<f32>(o | 0x7f800000);   // inf, NaN
  return reinterpret<f32>(reinterpret<u32>(v) | ((h & 0x8000) << 16));
}

/**
 * Writes f16()'s value of every f16 bit pattern (65536 f32, 256 KB) at tbl: the matrix-vector
 * kernels look their block scales up there (kernels/wasm/runtime.ts makes one per memory).
 */
export function f16Table(tbl: usize): void {
  for (let h: u32 = 0; h < 65536; h++) store<f32>(tbl + (<usize>h << 2), f16(h));
}

/** Four f16 values (the low 16 bits of each i32 lane) → f32x4, as f16(). */
@inline export function f16x4(h: v128): v128 {
  const o = i32x4.shl(v128.and(h, i32x4.splat(0x7fff)), 13);
  const v = f32x4.mul(o, f32x4.splat(reinterpret<f32>(0x77800000)));
  const special = i32x4.eq(v128.and(h, i32x4.splat(0x7c00)), i32x4.splat(0x7c00));
  const w = v128.bitselect(v128.or(o, i32x4.splat(0x7f800000)), v, special);
  return v128.or(w, i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16));
}

/** f32 → f16 bits, round to nearest even (half.ts f32ToF16). */
export function f32ToF16(x: f32): u32 {
  const b = reinterpret<u32>(x);
  const sign = (b >> 16) & 0x8000;
  const exp = (b >> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp == 0xff) return sign | (mant ? 0x7e00 : 0x7c00);
  if (exp > 112) {
    if (exp - 112 >= 31) return sign | 0x7c00;
    let h = ((exp - 112) << 10) | (mant >> 13);
    const rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return sign | (h > 0x7c00 ? 0x7c00 : h);
  }
  const shift = 126 - exp;
  if (shift > 24) return sign;
  const m24 = mant | 0x800000;
  let h = m24 >> shift;
  const rem = m24 & ((<u32>1 << shift) - 1);
  const halfway = <u32>1 << (shift - 1);
  if (rem > halfway || (rem == halfway && (h & 1))) h++;
  return sign | h;
}

/** x rounded to f16 and back. */
@inline export function roundF16(x: f32): f32 {
  return f16(f32ToF16(x));
}

/** Whether rows of this 32-block type are decoded to unsigned bytes for the relaxed dot product (kinds.as.ts RELAXED). */
@inline export function narrowKind(kind: i32): bool {
  return ASC_FEATURE_RELAXED_SIMD && (kind == K_Q4_0 || kind == K_Q4_1 || kind == K_Q5_0 || kind == K_Q5_1);
}

/**
 * Whether rows of this 256-block type keep their unsigned levels as bytes, with each sub-block's
 * integer scale apart, for the relaxed dot product (the relaxed build; Q4_K and Q5_K: levels 0..31).
 */
@inline export function narrowK(kind: i32): bool {
  return ASC_FEATURE_RELAXED_SIMD && (kind == K_Q4_K || kind == K_Q5_K);
}

/** What the unsigned levels of a narrow kind exceed the signed ones by: Q4_0 q − 8, Q5_0 q − 16. */
@inline export function levelOffset(kind: i32): i32 {
  return kind == K_Q4_0 ? 8 : kind == K_Q5_0 ? 16 : 0;
}

/**
 * How many of n tokens the four-token passes of a product with several tokens take (matmul.as.ts
 * rows2Q8, rows2K; quantize.as.ts interleaveQ8, interleaveQ8K): the whole groups of four, and a
 * last group padded with copies of the last token when two or three are left over of at least
 * four (a padded group costs less than two or three lone tokens; one lone token costs less than a
 * group; fewer than four tokens are not interleaved: kernels.ts). The rest go one at a time.
 * Every lane is computed the same way in either pass, so the results do not depend on it.
 */
@inline export function groupedTokens(n: i32): i32 {
  return n >= 4 && (n & 3) >= 2 ? (n + 3) & ~3 : n & ~3;
}

/** Sum of the four lanes, in one fixed order (every kernel's result must not depend on tiling). */
@inline export function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

@inline export function hsumI32(v: v128): i32 {
  return (i32x4.extract_lane(v, 0) + i32x4.extract_lane(v, 1)) + (i32x4.extract_lane(v, 2) + i32x4.extract_lane(v, 3));
}

@inline export function hmax(v: v128): f32 {
  return max(max(f32x4.extract_lane(v, 0), f32x4.extract_lane(v, 1)), max(f32x4.extract_lane(v, 2), f32x4.extract_lane(v, 3)));
}

/**
 * e^x in f64 (the twins use Math.exp in f64): x = n·ln2 + r with |r| ≤ ln2/2, e^r by its Taylor
 * series to degree 10 (error below 1e-13 relative), 2^n put into the exponent bits.
 */
export function exp64(x: f64): f64 {
  if (x > 709.0) return Infinity;
  if (x < -745.0) return 0;                               // also −inf: e^−inf = 0
  if (x != x) return x;
  const n = Math.floor(x * 1.4426950408889634 + 0.5);
  const p = f64x2.extract_lane(expPoly(f64x2.splat(x), f64x2.splat(n)), 0);
  const e = <i64>n;
  if (e < -1022) {
    // subnormal result: scale in two steps
    return p * reinterpret<f64>(<i64>(e + 1022 + 1023) << 52) * reinterpret<f64>(<i64>1 << 52);   // × 2^(e+1022) × 2^−1022
  }
  return p * reinterpret<f64>((e + 1023) << 52);
}

/** e^r for r = x − n·ln2 (n = ⌊x·log2 e + 0.5⌉, so |r| ≤ ln2/2), per f64 lane: exp64's polynomial. */
@inline function expPoly(x: v128, n: v128): v128 {
  const r = f64x2.sub(f64x2.sub(x, f64x2.mul(n, f64x2.splat(0.6931471803691238))), f64x2.mul(n, f64x2.splat(1.9082149292705877e-10)));   // ln2 split in two for exactness
  let p = f64x2.splat(1.0 / 3628800.0);
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 362880.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 40320.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 5040.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 720.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 120.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 24.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 6.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(0.5));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0));
  return f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0));
}

/**
 * exp64 of two f64 lanes (the same bits), for x in [−708, 709] (no subnormal or infinite result;
 * the caller checks, and takes exp64 for the rest).
 */
@inline export function exp64x2(x: v128): v128 {
  const n = f64x2.floor(f64x2.add(f64x2.mul(x, f64x2.splat(1.4426950408889634)), f64x2.splat(0.5)));
  const e = i64x2.extend_low_i32x4_s(i32x4.trunc_sat_f64x2_s_zero(n));
  return f64x2.mul(expPoly(x, n), i64x2.shl(i64x2.add(e, i64x2.splat(1023)), 52));
}

/** e^x in f32 lanes: x = n·ln2 + r, |r| ≤ ln2/2, e^r by its Taylor series to degree 7, 2^n into the exponent. */
@inline export function exp4(x: v128): v128 {
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

/** The f32 lanes 0, 1 (`hi` false) or 2, 3 of v as f64x2. */
@inline export function widen(v: v128, hi: bool): v128 {
  return f64x2.promote_low_f32x4(hi ? i32x4.shuffle(v, v, 2, 3, 0, 1) : v);
}
