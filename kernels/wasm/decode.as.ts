// AssemblyScript: one weight row, decoded into a per-thread row buffer in the form the dot
// products read (block layouts: src/formats/quant/{legacy,kquants,kquants16}.ts).
//
//   32-blocks (Q4_0 Q4_1 Q5_0 Q5_1 Q8_0):  wq i16 [k] the integer levels (q, or q − 8 / q − 16),
//       then wd f32 [k/32] the scale d, then wm f32 [k/32] the min m (Q4_1, Q5_1; else unused).
//       value = d·wq + m. In the relaxed-SIMD build the 4- and 5-bit types store instead the
//       unsigned q as bytes, 32 per block at the start of its place (common.as.ts narrowKind):
//       value = d·(q − levelOffset) + m
//   256-blocks (Q2_K..Q6_K, Q8_K):  wq i16 [k] = level × its sub-block's integer scale, then
//       wd f32 [k/256] = d, wdm f32 [k/256] = dmin, wmin i16 [k/16] = each 16's integer min.
//       value = d·wq − dmin·wmin. In the relaxed build Q4_K and Q5_K keep instead, in wq's place,
//       the levels as bytes [k] (in element order) then each 32's scale as i32 [k/32].
//   float types (F16 BF16 Q8_G64):  f32 [k], the dequantized values.
// Each row is decoded once per call and then multiplied with every token row (prefill), so
// decoding costs once per weight, not once per product.

import { f16, f16x4, narrowK, narrowKind } from './common.as';
import { K_Q4_0, K_Q4_1, K_Q5_0, K_Q5_1, K_Q8_0, K_Q2_K, K_Q3_K, K_Q4_K, K_Q5_K, K_Q6_K, K_Q8_K, K_F16, K_BF16, K_Q8_G64 } from './kinds.as';

/** The unsigned levels of elements 0..15 (`lo`) and 16..31 (`hi`) of a narrow kind, as bytes. */
@inline function put32u8(dst: usize, lo: v128, hi: v128): void {
  v128.store(dst, lo);
  v128.store(dst, hi, 16);
}

/** Stores 32 levels, elements 0..15 in `lo` and 16..31 in `hi` (i8x16 each), widened to i16. */
@inline function put32(dst: usize, lo: v128, hi: v128, signed: bool): void {
  if (signed) {
    v128.store(dst, i16x8.extend_low_i8x16_s(lo));
    v128.store(dst, i16x8.extend_high_i8x16_s(lo), 16);
    v128.store(dst, i16x8.extend_low_i8x16_s(hi), 32);
    v128.store(dst, i16x8.extend_high_i8x16_s(hi), 48);
  } else {
    v128.store(dst, i16x8.extend_low_i8x16_u(lo));
    v128.store(dst, i16x8.extend_high_i8x16_u(lo), 16);
    v128.store(dst, i16x8.extend_low_i8x16_u(hi), 32);
    v128.store(dst, i16x8.extend_high_i8x16_u(hi), 48);
  }
}

/** 16 levels (i8x16, unsigned 0..63 or signed) times an integer scale, as i16. */
@inline function put16Scaled(dst: usize, v: v128, scale: i32, signed: bool): void {
  const s = i16x8.splat(<i16>scale);
  if (signed) {
    v128.store(dst, i16x8.mul(i16x8.extend_low_i8x16_s(v), s));
    v128.store(dst, i16x8.mul(i16x8.extend_high_i8x16_s(v), s), 16);
  } else {
    v128.store(dst, i16x8.mul(i16x8.extend_low_i8x16_u(v), s));
    v128.store(dst, i16x8.mul(i16x8.extend_high_i8x16_u(v), s), 16);
  }
}

/**
 * Q6_K: the signed levels (q − 32) of 16 elements l.. of quarter j (0..3: elements l, l + 32,
 * l + 64, l + 96 of a 128-half), from ql bytes A = ql[l..], B = ql[l + 32..] and qh bytes H.
 */
@inline export function q6Levels(A: v128, B: v128, H: v128, j: i32): v128 {
  return i8x16.sub(q6Unsigned(A, B, H, j), i8x16.splat(32));
}

/** Q6_K: q6Levels before the offset: q in 0..63. */
@inline export function q6Unsigned(A: v128, B: v128, H: v128, j: i32): v128 {
  const low = i8x16.splat(15), three = i8x16.splat(3);
  if (j == 0) return v128.or(v128.and(A, low), i8x16.shl(v128.and(H, three), 4));
  if (j == 1) return v128.or(v128.and(B, low), i8x16.shl(v128.and(i8x16.shr_u(H, 2), three), 4));
  if (j == 2) return v128.or(i8x16.shr_u(A, 4), i8x16.shl(v128.and(i8x16.shr_u(H, 4), three), 4));
  return v128.or(i8x16.shr_u(B, 4), i8x16.shl(i8x16.shr_u(H, 6), 4));
}

/**
 * Q4_K / Q5_K: the unsigned levels (0..15, Q5_K 0..31) of 16 elements of the super-block at p:
 * elements 64c + 16j .. 64c + 16j + 15 (j 0..3; j = 0, 1 are sub-block 2c, the low nibbles of
 * qs bytes 32c.., j = 2, 3 sub-block 2c + 1, their high nibbles; Q5_K's fifth bit is bit 2c or
 * 2c + 1 of qh bytes 16(j & 1)..).
 */
@inline export function levelsK(p: usize, five: bool, c: i32, j: i32): v128 {
  const q = v128.load(p + (five ? 48 : 16) + (<usize>c << 5) + (<usize>(j & 1) << 4));
  const v = j < 2 ? v128.and(q, i8x16.splat(15)) : i8x16.shr_u(q, 4);
  if (!five) return v;
  const bit = i8x16.splat(<i8>(<i32>(j < 2 ? 1 : 2) << (2 * c)));
  const h = v128.load(p + 16 + (<usize>(j & 1) << 4));
  return v128.or(v, v128.and(i8x16.eq(v128.and(h, bit), bit), i8x16.splat(16)));
}

/** The fifth bit of 16 Q5 values: bit j of the bytes `sel` picked from qh, as 0 or 0x10 per byte. */
@inline function fifthBits(qh: u32, sel: v128): v128 {
  const bytes = i8x16.swizzle(i32x4.splat(qh), sel);
  const bit = i8x16(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
  return v128.and(i8x16.eq(v128.and(bytes, bit), bit), i8x16.splat(0x10));
}

/**
 * A 32-block row: `nb` blocks at w → block b's 32 levels (64 bytes) at dst + b·stride (stride 64:
 * the row's wq; 128: two rows side by side, matmul.as.ts rows2Q8), its scale d at wd + 4b and its
 * min m at wm + 4b (see the top of this file).
 */
export function decodeLegacy(kind: i32, w: usize, nb: i32, dst0: usize, stride: usize, wd: usize, wm: usize): void {
  const low = i8x16.splat(15);
  for (let b = 0; b < nb; b++) {
    const dst = dst0 + <usize>b * stride;
    const sb = <usize>b << 2;
    if (kind == K_Q4_0) {
      const p = w + <usize>b * 18;
      const qs = v128.load(p, 2);
      if (narrowKind(kind)) put32u8(dst, v128.and(qs, low), i8x16.shr_u(qs, 4));
      else put32(dst, i8x16.sub(v128.and(qs, low), i8x16.splat(8)), i8x16.sub(i8x16.shr_u(qs, 4), i8x16.splat(8)), true);
      store<f32>(wd + sb, f16(load<u16>(p)));
    } else if (kind == K_Q4_1) {
      const p = w + <usize>b * 20;
      const qs = v128.load(p, 4);
      if (narrowKind(kind)) put32u8(dst, v128.and(qs, low), i8x16.shr_u(qs, 4));
      else put32(dst, v128.and(qs, low), i8x16.shr_u(qs, 4), false);
      store<f32>(wd + sb, f16(load<u16>(p)));
      store<f32>(wm + sb, f16(load<u16>(p, 2)));
    } else if (kind == K_Q5_0) {
      const p = w + <usize>b * 22;
      const qh = load<u32>(p, 2);
      const qs = v128.load(p, 6);
      const lo = v128.or(v128.and(qs, low), fifthBits(qh, i8x16(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)));
      const hi = v128.or(i8x16.shr_u(qs, 4), fifthBits(qh, i8x16(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3)));
      if (narrowKind(kind)) put32u8(dst, lo, hi);
      else put32(dst, i8x16.sub(lo, i8x16.splat(16)), i8x16.sub(hi, i8x16.splat(16)), true);
      store<f32>(wd + sb, f16(load<u16>(p)));
    } else if (kind == K_Q5_1) {
      const p = w + <usize>b * 24;
      const qh = load<u32>(p, 4);
      const qs = v128.load(p, 8);
      const lo = v128.or(v128.and(qs, low), fifthBits(qh, i8x16(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)));
      const hi = v128.or(i8x16.shr_u(qs, 4), fifthBits(qh, i8x16(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3)));
      if (narrowKind(kind)) put32u8(dst, lo, hi);
      else put32(dst, lo, hi, false);
      store<f32>(wd + sb, f16(load<u16>(p)));
      store<f32>(wm + sb, f16(load<u16>(p, 2)));
    } else {   // K_Q8_0
      const p = w + <usize>b * 34;
      put32(dst, v128.load(p, 2), v128.load(p, 18), true);
      store<f32>(wd + sb, f16(load<u16>(p)));
    }
  }
}

/**
 * get_scale_min_k4 (Q4_K, Q5_K) for all eight sub-blocks of the super-block at p at once, from the
 * 12 scale bytes as three words: the 6-bit scales (`mins` false) or mins as byte j of the result.
 */
@inline export function scalesK(p: usize, mins: bool): u64 {
  const A = load<u32>(p, 4), B = load<u32>(p, 8), C = load<u32>(p, 12);
  const lo = mins ? B & 0x3f3f3f3f : A & 0x3f3f3f3f;
  const hi = mins ? ((C >> 4) & 0x0f0f0f0f) | (((B >> 6) & 0x03030303) << 4) : (C & 0x0f0f0f0f) | (((A >> 6) & 0x03030303) << 4);
  return <u64>lo | (<u64>hi << 32);
}

/** Q3_K's 6-bit scale of sub-block j (0..15), minus 32. */
@inline function q3Scale(p: usize, j: i32): i32 {
  const low = j < 8 ? <i32>load<u8>(p + 96 + <usize>j) & 15 : <i32>load<u8>(p + 96 + <usize>(j - 8)) >> 4;
  const high = (<i32>load<u8>(p + 104 + <usize>(j & 3)) >> (2 * (j >> 2))) & 3;
  return (low | (high << 4)) - 32;
}

/** A 256-block row: `nsb` super-blocks at w → wq, wd, wdm, wmin in buf (see the top of this file). */
export function decodeK(kind: i32, w: usize, nsb: i32, buf: usize): void {
  const k = nsb << 8;
  const wd = buf + (<usize>k << 1);
  const wdm = wd + (<usize>nsb << 2);
  const wmin = wdm + (<usize>nsb << 2);
  const three = i8x16.splat(3);
  for (let b = 0; b < nsb; b++) {
    const dst = buf + (<usize>b << 9);          // 256 i16
    const mins = wmin + (<usize>b << 5);        // 16 i16
    const sb = <usize>b << 2;
    if (kind == K_Q4_K || kind == K_Q5_K) {
      const five = kind == K_Q5_K;
      const p = w + <usize>b * (five ? 176 : 144);
      const scales = scalesK(p, false), mn = scalesK(p, true);
      for (let c = 0; c < 4; c++) {
        const s1 = <i32>(scales >> (16 * c)) & 0xff, s2 = <i32>(scales >> (16 * c + 8)) & 0xff;
        const m1 = <i16>((mn >> (16 * c)) & 0xff), m2 = <i16>((mn >> (16 * c + 8)) & 0xff);
        const la = levelsK(p, five, c, 0), lb = levelsK(p, five, c, 1), ha = levelsK(p, five, c, 2), hb = levelsK(p, five, c, 3);
        if (narrowK(kind)) {
          // bytes at byte 256b + 64c; the two sub-blocks' scales at k + 4·(8b + 2c)
          const e = buf + (<usize>b << 8) + (<usize>c << 6);
          v128.store(e, la); v128.store(e, lb, 16);
          v128.store(e, ha, 32); v128.store(e, hb, 48);
          const sc = buf + <usize>k + (<usize>(8 * b + 2 * c) << 2);
          store<i32>(sc, s1); store<i32>(sc, s2, 4);
        } else {
          const e = dst + (<usize>c << 7);   // element 64c
          put16Scaled(e, la, s1, false);
          put16Scaled(e + 32, lb, s1, false);
          put16Scaled(e + 64, ha, s2, false);
          put16Scaled(e + 96, hb, s2, false);
        }
        const g = mins + (<usize>c << 3);     // 16-groups 4c .. 4c+3
        store<i16>(g, m1); store<i16>(g, m1, 2);
        store<i16>(g, m2, 4); store<i16>(g, m2, 6);
      }
      store<f32>(wd + sb, f16(load<u16>(p)));
      store<f32>(wdm + sb, f16(load<u16>(p, 2)));
    } else if (kind == K_Q6_K) {
      const p = w + <usize>b * 210;
      for (let h = 0; h < 2; h++) {
        const ql = p + (<usize>h << 6), qh = p + 128 + (<usize>h << 5), sc = p + 192 + (<usize>h << 3);
        for (let half = 0; half < 2; half++) {       // l in 0..15, then 16..31
          const o = <usize>half << 4;
          const A = v128.load(ql + o), B = v128.load(ql + o, 32), H = v128.load(qh + o);
          const e = dst + (<usize>h << 8) + (o << 1);   // element 128h + l
          put16Scaled(e, q6Levels(A, B, H, 0), <i32>load<i8>(sc + o / 16), true);
          put16Scaled(e + 64, q6Levels(A, B, H, 1), <i32>load<i8>(sc + o / 16 + 2), true);
          put16Scaled(e + 128, q6Levels(A, B, H, 2), <i32>load<i8>(sc + o / 16 + 4), true);
          put16Scaled(e + 192, q6Levels(A, B, H, 3), <i32>load<i8>(sc + o / 16 + 6), true);
        }
      }
      store<f32>(wd + sb, f16(load<u16>(p, 208)));
      store<f32>(wdm + sb, 0);
    } else if (kind == K_Q3_K) {
      const p = w + <usize>b * 110;
      for (let j = 0; j < 16; j++) {
        const p0 = <usize>(16 * (j & 1));
        const Q = v128.load(p + 32 + <usize>(32 * (j >> 3)) + p0);
        const hbit = i8x16.splat(<i8>(<i32>1 << (j >> 1)));
        const unset = i8x16.eq(v128.and(v128.load(p + p0), hbit), i8x16.splat(0));
        const q = i8x16.sub(v128.and(i8x16.shr_u(Q, 2 * ((j >> 1) & 3)), three), v128.and(unset, i8x16.splat(4)));
        put16Scaled(dst + (<usize>j << 5), q, q3Scale(p, j), true);
      }
      store<f32>(wd + sb, f16(load<u16>(p, 108)));
      store<f32>(wdm + sb, 0);
    } else if (kind == K_Q2_K) {
      const p = w + <usize>b * 84;
      for (let j = 0; j < 16; j++) {
        const sc = <i32>load<u8>(p + <usize>j);
        const Q = v128.load(p + 16 + <usize>(32 * (j >> 3) + 16 * (j & 1)));
        put16Scaled(dst + (<usize>j << 5), v128.and(i8x16.shr_u(Q, 2 * ((j >> 1) & 3)), three), sc & 15, false);
        store<i16>(mins + (<usize>j << 1), <i16>(sc >> 4));
      }
      store<f32>(wd + sb, f16(load<u16>(p, 80)));
      store<f32>(wdm + sb, f16(load<u16>(p, 82)));
    } else {   // K_Q8_K
      const p = w + <usize>b * 292;
      for (let j = 0; j < 16; j++) put16Scaled(dst + (<usize>j << 5), v128.load(p + 4 + (<usize>j << 4)), 1, true);
      store<f32>(wd + sb, load<f32>(p));
      store<f32>(wdm + sb, 0);
    }
  }
}

/** A row of a type whose products use f32 activations (F16, BF16, Q8_G64) → f32 [k] in buf. */
export function decodeFloat(kind: i32, w: usize, k: i32, buf: usize): void {
  if (kind == K_F16) {
    let i = 0;
    for (; i + 8 <= k; i += 8) {
      const h = v128.load(w + (<usize>i << 1));
      v128.store(buf + (<usize>i << 2), f16x4(i32x4.extend_low_i16x8_u(h)));
      v128.store(buf + (<usize>i << 2), f16x4(i32x4.extend_high_i16x8_u(h)), 16);
    }
    for (; i < k; i++) store<f32>(buf + (<usize>i << 2), f16(load<u16>(w + (<usize>i << 1))));
  } else if (kind == K_BF16) {
    let i = 0;
    for (; i + 8 <= k; i += 8) {
      const h = v128.load(w + (<usize>i << 1));
      v128.store(buf + (<usize>i << 2), i32x4.shl(i32x4.extend_low_i16x8_u(h), 16));
      v128.store(buf + (<usize>i << 2), i32x4.shl(i32x4.extend_high_i16x8_u(h), 16), 16);
    }
    for (; i < k; i++) store<u32>(buf + (<usize>i << 2), <u32>load<u16>(w + (<usize>i << 1)) << 16);
  } else {   // K_Q8_G64: [s f32][64 × int8], value = s·q rounded once to f32 (as its dequantize)
    for (let b = 0; b < k; b += 64) {
      const p = w + <usize>(b / 64) * 68;
      const s = f32x4.splat(load<f32>(p));
      for (let j = 0; j < 64; j += 16) {
        const q = v128.load(p + 4 + <usize>j);
        const lo = i16x8.extend_low_i8x16_s(q), hi = i16x8.extend_high_i8x16_s(q);
        const o = buf + (<usize>(b + j) << 2);
        v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)), s));
        v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)), s), 16);
        v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)), s), 32);
        v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)), s), 48);
      }
    }
  }
}
