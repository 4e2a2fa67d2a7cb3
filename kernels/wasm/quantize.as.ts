// AssemblyScript: activation rounding before a weight product, as llama.cpp's CPU backend does it
// (the readable twin: kernels/matmul/activation-quant.cpu.ts; same formulas, same rounding).
//
// The 8-bit forms keep each value as an i16 (two bytes instead of one) so that the products need
// no widening in the inner loops: i32x4.dot_i16x8_s multiplies and pairs them in one step.
//   Q8_0 / Q8_1 (32 per block): xq i16 [len], xd f32 [len/32] = f16(max|x|/127),
//                               xs f32 [len/32] = f16(d·Σq) with d before its f16 rounding (Q8_1's s)
//   Q8_K (256 per block):       xq i16 [len], xd f32 [len/256] = 1/iscale,
//                               xbs i16 [len/16] = Σq over each 16 (ggml's bsums)

import { f16, f32ToF16, groupedTokens, hmax, hsumI32, narrowKind, roundF16 } from './common.as';

/** x f32 [len] (len a multiple of 32) → Q8_0 blocks with Q8_1's sums (x86 ggml: q = round-half-even(x·127/max|x|)). */
export function quantizeQ8_0(x: usize, len: i32, xq: usize, xd: usize, xs: usize): void {
  for (let b = 0; b < len; b += 32) {
    const p = x + (<usize>b << 2);
    let m = f32x4.max(f32x4.abs(v128.load(p)), f32x4.abs(v128.load(p, 16)));
    m = f32x4.max(m, f32x4.max(f32x4.abs(v128.load(p, 32)), f32x4.abs(v128.load(p, 48))));
    m = f32x4.max(m, f32x4.max(f32x4.abs(v128.load(p, 64)), f32x4.abs(v128.load(p, 80))));
    m = f32x4.max(m, f32x4.max(f32x4.abs(v128.load(p, 96)), f32x4.abs(v128.load(p, 112))));
    const amax = hmax(m);
    const d: f32 = amax / 127.0;
    const id = f32x4.splat(amax != 0 ? <f32>127.0 / amax : 0);
    const q = xq + (<usize>b << 1);
    let sum = i32x4.splat(0);
    for (let g = 0; g < 8; g += 2) {
      const q0 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(p + (<usize>g << 4)), id)));
      const q1 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(p + (<usize>g << 4), 16), id)));
      sum = i32x4.add(sum, i32x4.add(q0, q1));
      v128.store(q + (<usize>g << 3), i16x8.narrow_i32x4_s(q0, q1));
    }
    const blk = <usize>(b >> 5) << 2;
    store<f32>(xd + blk, f16(f32ToF16(d)));
    store<f32>(xs + blk, f16(f32ToF16(d * <f32>hsumI32(sum))));
  }
}

/** x f32 [len] (len a multiple of 256) → Q8_K blocks (quantize_row_q8_K_ref). */
export function quantizeQ8_K(x: usize, len: i32, xq: usize, xd: usize, xbs: usize): void {
  for (let b = 0; b < len; b += 256) {
    const p = x + (<usize>b << 2);
    const q = xq + (<usize>b << 1);
    const bs = xbs + (<usize>(b >> 4) << 1);
    let m = f32x4.splat(0);
    for (let j = 0; j < 256; j += 4) m = f32x4.max(m, f32x4.abs(v128.load(p + (<usize>j << 2))));
    const amax = hmax(m);
    if (amax == 0) {
      for (let j = 0; j < 512; j += 16) v128.store(q + <usize>j, i32x4.splat(0));
      for (let j = 0; j < 32; j += 16) v128.store(bs + <usize>j, i32x4.splat(0));
      store<f32>(xd + (<usize>(b >> 8) << 2), 0);
      continue;
    }
    // the value of largest magnitude, the first one on ties (its sign matters)
    let max: f32 = 0;
    for (let j = 0; j < 256; j++) {
      const v = load<f32>(p + (<usize>j << 2));
      if (abs<f32>(v) == amax) { max = v; break; }
    }
    const iscale: f32 = <f32>-127.0 / max;
    const vs = f32x4.splat(iscale);
    const top = i32x4.splat(127);
    for (let j = 0; j < 256; j += 16) {
      const pj = p + (<usize>j << 2);
      const q0 = i32x4.min_s(i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(pj), vs))), top);
      const q1 = i32x4.min_s(i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(pj, 16), vs))), top);
      const q2 = i32x4.min_s(i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(pj, 32), vs))), top);
      const q3 = i32x4.min_s(i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(pj, 48), vs))), top);
      v128.store(q + (<usize>j << 1), i16x8.narrow_i32x4_s(q0, q1));
      v128.store(q + (<usize>j << 1), i16x8.narrow_i32x4_s(q2, q3), 16);
      store<i16>(bs + (<usize>(j >> 4) << 1), <i16>hsumI32(i32x4.add(i32x4.add(q0, q1), i32x4.add(q2, q3))));
    }
    store<f32>(xd + (<usize>(b >> 8) << 2), <f32>1.0 / iscale);
  }
}

/** out[i] = x[i] rounded to f16 (F16 weights: ggml converts the activations to f16). */
export function roundToF16(x: usize, out: usize, len: i32): void {
  for (let i = 0; i < len; i++) store<f32>(out + (<usize>i << 2), roundF16(load<f32>(x + (<usize>i << 2))));
}

/** out[i] = x[i] rounded to bf16, nearest even, NaN quieted (half.ts f32ToBf16). */
export function roundToBf16(x: usize, out: usize, len: i32): void {
  for (let i = 0; i < len; i++) {
    const b = load<u32>(x + (<usize>i << 2));
    const h: u32 = (b & 0x7fffffff) > 0x7f800000 ? ((b >> 16) | 0x40) & 0xffff : ((b + 0x7fff + ((b >> 16) & 1)) >> 16) & 0xffff;
    store<u32>(out + (<usize>i << 2), h << 16);
  }
}

/** Σ of the 32 i16 levels of one block (|q| ≤ 127: the i16 adds cannot overflow). */
@inline function blockSum(v0: v128, v1: v128, v2: v128, v3: v128): i32 {
  return hsumI32(i32x4.extadd_pairwise_i16x8_s(i16x8.add(i16x8.add(v0, v1), i16x8.add(v2, v3))));
}

/**
 * For matrix-vector products with Q4_0 / Q4_1 weights (matmul.as.ts rows4DirectQ4): the Q8
 * levels of each block of 32 reordered to match the nibbles of the weight bytes read as eight
 * i16 lanes (lane l holds values 2l, 2l+1 in its low byte's and high byte's low nibbles and
 * 2l+16, 2l+17 in their high nibbles): [x0 x2 … x14][x1 x3 … x15][x16 x18 … x30][x17 … x31];
 * and 8 × the integer sum of each block (Q4_0's q − 8 is applied as −8·Σx). The relaxed build
 * stores the levels as i8 in their own order instead (32 bytes a block).
 */
export function permuteQ4(xq: usize, len: i32, xp: usize, xsum: usize): void {
  for (let b = 0; b < len; b += 32) {
    const src = xq + (<usize>b << 1);
    const v0 = v128.load(src), v1 = v128.load(src, 16), v2 = v128.load(src, 32), v3 = v128.load(src, 48);
    store<i32>(xsum + (<usize>(b >> 5) << 2), blockSum(v0, v1, v2, v3) << 3);
    if (ASC_FEATURE_RELAXED_SIMD) {
      // the relaxed build reads the nibbles as bytes: the levels as i8, in their own order
      const dst = xp + <usize>b;
      v128.store(dst, i8x16.narrow_i16x8_s(v0, v1));
      v128.store(dst, i8x16.narrow_i16x8_s(v2, v3), 16);
      continue;
    }
    const dst = xp + (<usize>b << 1);
    v128.store(dst, i16x8.shuffle(v0, v1, 0, 2, 4, 6, 8, 10, 12, 14));
    v128.store(dst, i16x8.shuffle(v0, v1, 1, 3, 5, 7, 9, 11, 13, 15), 16);
    v128.store(dst, i16x8.shuffle(v2, v3, 0, 2, 4, 6, 8, 10, 12, 14), 32);
    v128.store(dst, i16x8.shuffle(v2, v3, 1, 3, 5, 7, 9, 11, 13, 15), 48);
  }
}

/**
 * For matrix products with several tokens (matmul.as.ts rows2Q8): the Q8 levels and scales of
 * each group of four tokens (rows 4g..4g+3 of xq, xd, xs; len = k, tokens n; of the n % 4 left
 * over, two or three make a last group padded with copies of the last token, one is not copied:
 * common.as.ts groupedTokens) interleaved block by block, at xi + g·288·nb (nb = k/32): levels [nb][4][32]
 * i16, then d [nb][4] f32, then s [nb][4] f32. For the weights of a narrow kind (the relaxed
 * build, common.as.ts narrowKind) the levels are i8 instead, [nb][4][32] in the first half of
 * their place, and the second half holds each block's integer sum Σq, [nb][4] i32 (the offset of
 * the unsigned weight levels comes off as levelOffset·Σq).
 */
export function interleaveQ8(xq: usize, xd: usize, xs: usize, n: i32, k: i32, xi: usize, kind: i32): void {
  const nb = k >> 5;
  const group = <usize>nb * 288;
  const narrow = narrowKind(kind);
  const grouped = groupedTokens(n);
  for (let g = 0; g < grouped; g += 4) {
    const base = xi + <usize>(g >> 2) * group;
    for (let t = 0; t < 4; t++) {
      const tok = min(g + t, n - 1);                    // a padded group repeats the last token
      const src = xq + (<usize>tok * <usize>k << 1);
      if (narrow) {
        const dst = base + (<usize>t << 5), sums = base + (<usize>nb << 7) + (<usize>t << 2);
        for (let b = 0; b < nb; b++) {
          const sp = src + (<usize>b << 6), dp = dst + (<usize>b << 7);
          const v0 = v128.load(sp), v1 = v128.load(sp, 16), v2 = v128.load(sp, 32), v3 = v128.load(sp, 48);
          // |q| ≤ 127: narrowing saturates nothing
          v128.store(dp, i8x16.narrow_i16x8_s(v0, v1));
          v128.store(dp, i8x16.narrow_i16x8_s(v2, v3), 16);
          store<i32>(sums + (<usize>b << 4), blockSum(v0, v1, v2, v3));
        }
      } else {
        const dst = base + (<usize>t << 6);
        for (let b = 0; b < nb; b++) {
          const sp = src + (<usize>b << 6), dp = dst + (<usize>b << 8);
          v128.store(dp, v128.load(sp)); v128.store(dp, v128.load(sp, 16), 16);
          v128.store(dp, v128.load(sp, 32), 32); v128.store(dp, v128.load(sp, 48), 48);
        }
      }
      const ds = (<usize>tok * <usize>nb) << 2;
      const dd = base + (<usize>nb << 8) + (<usize>t << 2), sd = dd + (<usize>nb << 4);
      for (let b = 0; b < nb; b++) {
        store<f32>(dd + (<usize>b << 4), load<f32>(xd + ds + (<usize>b << 2)));
        store<f32>(sd + (<usize>b << 4), load<f32>(xs + ds + (<usize>b << 2)));
      }
    }
  }
}

/**
 * For matrix products with several tokens and 256-block weights read as i16 levels (matmul.as.ts
 * rows2K): the Q8_K levels of each group of four tokens (rows 4g..4g+3 of xq, len k; of the n % 4
 * left over, two or three make a last group padded with the last token, one is not copied:
 * common.as.ts groupedTokens) interleaved 8 at a time, so one pointer walks all four: at
 * xi + 8k·g, unit u (levels 8u..8u+7) of token t lies at 64u + 16t. Scales and sums stay in xd, xbs.
 */
export function interleaveQ8K(xq: usize, n: i32, k: i32, xi: usize): void {
  const rowBytes = <usize>k << 1;
  const grouped = groupedTokens(n);
  for (let g = 0; g < grouped; g += 4) {
    // a padded last group repeats the last token
    const s0 = xq + <usize>g * rowBytes, last = xq + <usize>(n - 1) * rowBytes, dst = xi + <usize>g * rowBytes;
    const s1 = g + 1 < n ? s0 + rowBytes : last, s2 = g + 2 < n ? s0 + 2 * rowBytes : last, s3 = g + 3 < n ? s0 + 3 * rowBytes : last;
    for (let u: usize = 0; u < rowBytes; u += 16) {
      const d = dst + (u << 2);
      v128.store(d, v128.load(s0 + u));
      v128.store(d, v128.load(s1 + u), 16);
      v128.store(d, v128.load(s2 + u), 32);
      v128.store(d, v128.load(s3 + u), 48);
    }
  }
}

/**
 * For Q4_K / Q5_K weights in the relaxed build (matmul.as.ts rowK, rowKDirect), and its Q6_K
 * matrix-vector products (rowKDirect): the Q8_K levels (i16, |q| ≤ 127)
 * as i8, in element order (the order of the weights' levels there: each super-block's lanes are
 * added up exactly, so the lanes' layout does not matter).
 */
export function narrowQ8K(xq: usize, len: i32, xn: usize): void {
  for (let i = 0; i < len; i += 16) {
    const src = xq + (<usize>i << 1);
    v128.store(xn + <usize>i, i8x16.narrow_i16x8_s(v128.load(src), v128.load(src, 16)));
  }
}
