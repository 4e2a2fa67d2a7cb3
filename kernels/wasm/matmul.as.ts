// AssemblyScript: out = x · Wᵀ for rows r0..r1 of W (the twin: kernels/matmul/matmul.cpu.ts).
//
// Several tokens (prefill): each weight row is decoded once into the thread's row buffer
// (decode.as.ts), then multiplied with every token row, two rows and four tokens per pass (each
// activation load serves both rows; two or three tokens left over make a last pass padded with the
// last token, one goes alone: common.as.ts groupedTokens). Fewer than four tokens (decode): the weights are read in place (the
// 32-block types four rows at a time; Q4_K, Q5_K, Q6_K one row at a time; decoding first would
// cost as much as the product). The quantized types multiply 8-bit activations (quantize.as.ts) with
// integer levels, as llama.cpp does: per block an exact integer sum, then one float multiply-add
// by the two scales.
//
// Every output element is computed by the same operations in the same order whichever tile its
// token falls in and whichever thread gets its row: the four-token pass and the one-token pass
// are the same code per token, and threads split whole rows. So results never depend on the
// number of threads or tokens (prefix reuse and threading are bit-exact).

import { f16, groupedTokens, hsum, hsumI32, levelOffset, narrowK, narrowKind } from './common.as';
import { decodeFloat, decodeK, decodeLegacy, levelsK, q6Levels, q6Unsigned, scalesK } from './decode.as';
import { K_F32, K_Q2_K, K_Q3_K, K_Q4_0, K_Q4_1, K_Q4_K, K_Q5_0, K_Q5_1, K_Q5_K, K_Q6_K, K_Q8_0 } from './kinds.as';

/** Σ of 32 products of i16 levels W0..W3 with 32 i16 activations at x, as i32x4 partial sums. */
@inline function dot32(W0: v128, W1: v128, W2: v128, W3: v128, x: usize): v128 {
  let s = i32x4.dot_i16x8_s(W0, v128.load(x));
  s = i32x4.add(s, i32x4.dot_i16x8_s(W1, v128.load(x, 16)));
  s = i32x4.add(s, i32x4.dot_i16x8_s(W2, v128.load(x, 32)));
  return i32x4.add(s, i32x4.dot_i16x8_s(W3, v128.load(x, 48)));
}

/** dot32 with the activations already loaded (shared by several rows). */
@inline function dot32x(W0: v128, W1: v128, W2: v128, W3: v128, X0: v128, X1: v128, X2: v128, X3: v128): v128 {
  let s = i32x4.dot_i16x8_s(W0, X0);
  s = i32x4.add(s, i32x4.dot_i16x8_s(W1, X1));
  s = i32x4.add(s, i32x4.dot_i16x8_s(W2, X2));
  return i32x4.add(s, i32x4.dot_i16x8_s(W3, X3));
}

@inline function scaled(acc: v128, isum: v128, scale: f32): v128 {
  return f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(scale)));
}

// ------------------------------------------------------------------------------ 32-blocks × Q8_0

/** [Σ a, Σ b, Σ c, Σ d] of four i32x4 (a 4×4 transpose folded into the adds). */
@inline function hsum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = i32x4.add(i32x4.shuffle(a, b, 0, 4, 1, 5), i32x4.shuffle(a, b, 2, 6, 3, 7));
  const cd = i32x4.add(i32x4.shuffle(c, d, 0, 4, 1, 5), i32x4.shuffle(c, d, 2, 6, 3, 7));
  return i32x4.add(i32x4.shuffle(ab, cd, 0, 1, 4, 5), i32x4.shuffle(ab, cd, 2, 3, 6, 7));
}

/** Rows i (accA) and i + 1 (accB, when `two`) of four tokens (a lane each, `step` bytes apart) at
 *  po; only the first `lanes` tokens when the group was padded (groupedTokens). */
@inline function store2x4(po: usize, step: usize, accA: v128, accB: v128, two: bool, lanes: i32 = 4): void {
  store<f32>(po, f32x4.extract_lane(accA, 0));
  if (lanes > 1) store<f32>(po + step, f32x4.extract_lane(accA, 1));
  if (lanes > 2) store<f32>(po + 2 * step, f32x4.extract_lane(accA, 2));
  if (lanes > 3) store<f32>(po + 3 * step, f32x4.extract_lane(accA, 3));
  if (two) {
    store<f32>(po, f32x4.extract_lane(accB, 0), 4);
    if (lanes > 1) store<f32>(po + step, f32x4.extract_lane(accB, 1), 4);
    if (lanes > 2) store<f32>(po + 2 * step, f32x4.extract_lane(accB, 2), 4);
    if (lanes > 3) store<f32>(po + 3 * step, f32x4.extract_lane(accB, 3), 4);
  }
}

/**
 * rows2Q8's groups of four tokens for a narrow kind in the relaxed build (common.as.ts narrowKind):
 * the rows' levels are unsigned bytes (32 per block at buf + 128·b + 64·r) and the activations
 * i8, interleaved with each block's Σq (quantize.as.ts interleaveQ8), so 16 products take one
 * i32x4.relaxed_dot_i8x16_i7x16_add_s. The weights are the 7-bit operand (0..31: every engine
 * computes the same exact sum), and Σ (q_w − offset)·q_x = Σ q_w·q_x − offset·Σ q_x. Each block's
 * integer sum equals rows2Q8's, and the float steps are the same in the same order, so the outputs
 * are bit-identical to the build without relaxed SIMD.
 */
@inline function rows2Narrow(kind: i32, buf: usize, nb: i32, xi: usize, n: i32, out: usize, m: i32, i: i32, two: bool, withMin: bool): void {
  const wd = buf + (<usize>nb << 7), wm = wd + (<usize>nb << 3);
  const group = <usize>nb * 288;
  const step = <usize>m << 2;
  const zero = i32x4.splat(0);
  const shift = kind == K_Q4_0 ? 3 : 4;   // levelOffset: 8 or 16 (unused for Q4_1, Q5_1)
  const grouped = groupedTokens(n);
  for (let t = 0; t < grouped; t += 4) {
    let x = xi + <usize>(t >> 2) * group;
    const end = x + (<usize>nb << 7);
    let sq = end, dx = x + (<usize>nb << 8), sx = dx + (<usize>nb << 4);
    let w = buf, da = wd, ma = wm;
    let accA = f32x4.splat(0), accB = f32x4.splat(0), mA = f32x4.splat(0), mB = f32x4.splat(0);
    for (; x < end; x += 128) {
      const A0 = v128.load(w), A1 = v128.load(w, 16), B0 = v128.load(w, 64), B1 = v128.load(w, 80);
      let X0 = v128.load(x), X1 = v128.load(x, 16);
      const a0 = i32x4.relaxed_dot_i8x16_i7x16_add_s(X1, A1, i32x4.relaxed_dot_i8x16_i7x16_add_s(X0, A0, zero));
      const b0 = i32x4.relaxed_dot_i8x16_i7x16_add_s(X1, B1, i32x4.relaxed_dot_i8x16_i7x16_add_s(X0, B0, zero));
      X0 = v128.load(x, 32); X1 = v128.load(x, 48);
      const a1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(X1, A1, i32x4.relaxed_dot_i8x16_i7x16_add_s(X0, A0, zero));
      const b1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(X1, B1, i32x4.relaxed_dot_i8x16_i7x16_add_s(X0, B0, zero));
      X0 = v128.load(x, 64); X1 = v128.load(x, 80);
      const a2 = i32x4.relaxed_dot_i8x16_i7x16_add_s(X1, A1, i32x4.relaxed_dot_i8x16_i7x16_add_s(X0, A0, zero));
      const b2 = i32x4.relaxed_dot_i8x16_i7x16_add_s(X1, B1, i32x4.relaxed_dot_i8x16_i7x16_add_s(X0, B0, zero));
      X0 = v128.load(x, 96); X1 = v128.load(x, 112);
      const a3 = i32x4.relaxed_dot_i8x16_i7x16_add_s(X1, A1, i32x4.relaxed_dot_i8x16_i7x16_add_s(X0, A0, zero));
      const b3 = i32x4.relaxed_dot_i8x16_i7x16_add_s(X1, B1, i32x4.relaxed_dot_i8x16_i7x16_add_s(X0, B0, zero));
      let ia = hsum4(a0, a1, a2, a3), ib = hsum4(b0, b1, b2, b3);
      if (kind == K_Q4_0 || kind == K_Q5_0) {
        const S = i32x4.shl(v128.load(sq), shift);
        ia = i32x4.sub(ia, S);
        ib = i32x4.sub(ib, S);
      }
      const D = v128.load(dx);
      accA = f32x4.add(accA, f32x4.mul(f32x4.convert_i32x4_s(ia), f32x4.mul(v128.load32_splat(da), D)));
      accB = f32x4.add(accB, f32x4.mul(f32x4.convert_i32x4_s(ib), f32x4.mul(v128.load32_splat(da + (<usize>nb << 2)), D)));
      if (withMin) {
        const S = v128.load(sx);
        mA = f32x4.add(mA, f32x4.mul(v128.load32_splat(ma), S));
        mB = f32x4.add(mB, f32x4.mul(v128.load32_splat(ma + (<usize>nb << 2)), S));
      }
      w += 128; sq += 16; dx += 16; sx += 16; da += 4; ma += 4;
    }
    if (withMin) { accA = f32x4.add(accA, mA); accB = f32x4.add(accB, mB); }
    store2x4(out + ((<usize>t * <usize>m + <usize>i) << 2), step, accA, accB, two, min(4, n - t));
  }
}

/**
 * Rows i and i + 1, decoded side by side in buf (decodeLegacy with stride 128: block b of row r at
 * buf + 128·b + 64·r; scales wd [2][nb], then mins wm [2][nb]), times the Q8 activations of
 * tokens 0..n−1 → out[t·m + i], out[t·m + i + 1]. With `two` false only row i is ours (the last of
 * an odd share: buf holds it twice) and only it is stored.
 * Per token and block: the exact integer sum Σ wq·xq, times (d_w · d_x), added to a running f32
 * sum in block order (plus m_w · s_x for the types with a min). Four tokens go through one
 * vector, a lane each, reading the activations interleaved by quantize.as.ts interleaveQ8 (at xi:
 * per group of four tokens, levels [nb][4][32] i16, then d [nb][4], then s [nb][4] f32) so that
 * every load is a fixed offset from two pointers; the two rows share those loads (2 rows × 4
 * tokens: eight i32x4 sums live, as many as the registers hold without spilling). The lone tokens
 * do the same in scalars from xq, xd, xs.
 */
@inline function rows2Q8(kind: i32, buf: usize, nb: i32, xq: usize, xd: usize, xs: usize, xi: usize, n: i32, out: usize, m: i32, i: i32, two: bool, withMin: bool): void {
  const wd = buf + (<usize>nb << 7), wm = wd + (<usize>nb << 3);
  const group = <usize>nb * 288;
  const step = <usize>m << 2;
  let t = 0;
  if (ASC_FEATURE_RELAXED_SIMD) {
    if (narrowKind(kind)) {
      rows2Narrow(kind, buf, nb, xi, n, out, m, i, two, withMin);
      t = groupedTokens(n);
    }
  }
  const grouped = groupedTokens(n);
  for (; t < grouped; t += 4) {
    let x = xi + <usize>(t >> 2) * group;
    let dx = x + (<usize>nb << 8), sx = dx + (<usize>nb << 4);
    let w = buf, da = wd, ma = wm;
    const end = x + (<usize>nb << 8);
    let accA = f32x4.splat(0), accB = f32x4.splat(0), mA = f32x4.splat(0), mB = f32x4.splat(0);
    for (; x < end; x += 256) {
      let A = v128.load(w), B = v128.load(w, 64);
      let X = v128.load(x);
      let a0 = i32x4.dot_i16x8_s(A, X), b0 = i32x4.dot_i16x8_s(B, X);
      X = v128.load(x, 64);
      let a1 = i32x4.dot_i16x8_s(A, X), b1 = i32x4.dot_i16x8_s(B, X);
      X = v128.load(x, 128);
      let a2 = i32x4.dot_i16x8_s(A, X), b2 = i32x4.dot_i16x8_s(B, X);
      X = v128.load(x, 192);
      let a3 = i32x4.dot_i16x8_s(A, X), b3 = i32x4.dot_i16x8_s(B, X);
      // the other three eighths of the block (a loop: unrolled, the compiler hoists every load and spills)
      for (let j: usize = 16; j < 64; j += 16) {
        const wj = w + j, xj = x + j;
        A = v128.load(wj); B = v128.load(wj, 64);
        X = v128.load(xj);
        a0 = i32x4.add(a0, i32x4.dot_i16x8_s(A, X)); b0 = i32x4.add(b0, i32x4.dot_i16x8_s(B, X));
        X = v128.load(xj, 64);
        a1 = i32x4.add(a1, i32x4.dot_i16x8_s(A, X)); b1 = i32x4.add(b1, i32x4.dot_i16x8_s(B, X));
        X = v128.load(xj, 128);
        a2 = i32x4.add(a2, i32x4.dot_i16x8_s(A, X)); b2 = i32x4.add(b2, i32x4.dot_i16x8_s(B, X));
        X = v128.load(xj, 192);
        a3 = i32x4.add(a3, i32x4.dot_i16x8_s(A, X)); b3 = i32x4.add(b3, i32x4.dot_i16x8_s(B, X));
      }
      const D = v128.load(dx);
      accA = f32x4.add(accA, f32x4.mul(f32x4.convert_i32x4_s(hsum4(a0, a1, a2, a3)), f32x4.mul(v128.load32_splat(da), D)));
      accB = f32x4.add(accB, f32x4.mul(f32x4.convert_i32x4_s(hsum4(b0, b1, b2, b3)), f32x4.mul(v128.load32_splat(da + (<usize>nb << 2)), D)));
      if (withMin) {
        const S = v128.load(sx);
        mA = f32x4.add(mA, f32x4.mul(v128.load32_splat(ma), S));
        mB = f32x4.add(mB, f32x4.mul(v128.load32_splat(ma + (<usize>nb << 2)), S));
      }
      w += 128; dx += 16; sx += 16; da += 4; ma += 4;
    }
    if (withMin) { accA = f32x4.add(accA, mA); accB = f32x4.add(accB, mB); }
    store2x4(out + ((<usize>t * <usize>m + <usize>i) << 2), step, accA, accB, two, min(4, n - t));
  }
  const xStride = <usize>nb << 6, sStride = <usize>nb << 2;
  const ours = two ? 2 : 1;
  for (; t < n; t++) {
    const x0 = xq + <usize>t * xStride, d0 = xd + <usize>t * sStride, s0 = xs + <usize>t * sStride;
    for (let r = 0; r < ours; r++) {
      const rd = wd + (<usize>r * <usize>nb << 2), rm = wm + (<usize>r * <usize>nb << 2), wr = buf + (<usize>r << 6);
      let acc: f32 = 0, macc: f32 = 0;
      let b = 0;
      // four blocks' exact integer sums from one transpose-add, then the float steps block by
      // block in order (the same operations as one block at a time)
      for (; b + 4 <= nb; b += 4) {
        const S = hsum4(loneDot(kind, wr, x0, b), loneDot(kind, wr, x0, b + 1), loneDot(kind, wr, x0, b + 2), loneDot(kind, wr, x0, b + 3));
        const so = <usize>b << 2;
        acc += <f32>i32x4.extract_lane(S, 0) * (load<f32>(rd + so) * load<f32>(d0 + so));
        acc += <f32>i32x4.extract_lane(S, 1) * (load<f32>(rd + so, 4) * load<f32>(d0 + so, 4));
        acc += <f32>i32x4.extract_lane(S, 2) * (load<f32>(rd + so, 8) * load<f32>(d0 + so, 8));
        acc += <f32>i32x4.extract_lane(S, 3) * (load<f32>(rd + so, 12) * load<f32>(d0 + so, 12));
        if (withMin) {
          macc += load<f32>(rm + so) * load<f32>(s0 + so);
          macc += load<f32>(rm + so, 4) * load<f32>(s0 + so, 4);
          macc += load<f32>(rm + so, 8) * load<f32>(s0 + so, 8);
          macc += load<f32>(rm + so, 12) * load<f32>(s0 + so, 12);
        }
      }
      for (; b < nb; b++) {
        const so = <usize>b << 2;
        acc += <f32>hsumI32(loneDot(kind, wr, x0, b)) * (load<f32>(rd + so) * load<f32>(d0 + so));
        if (withMin) macc += load<f32>(rm + so) * load<f32>(s0 + so);
      }
      store<f32>(out + ((<usize>t * <usize>m + <usize>(i + r)) << 2), withMin ? acc + macc : acc);
    }
  }
}

/** rows2Q8's lone tokens: block b of the decoded row at wr (stride 128) times the token's levels
 *  at x0, as i32x4 partial sums (their total is the block's exact integer sum). */
@inline function loneDot(kind: i32, wr: usize, x0: usize, b: i32): v128 {
  const w = wr + (<usize>b << 7), x = x0 + (<usize>b << 6);
  if (narrowKind(kind)) {
    // the unsigned byte levels widened, less their offset: the same integers as the i16 rows
    const lo = v128.load(w), hi = v128.load(w, 16), off = i16x8.splat(<i16>levelOffset(kind));
    return dot32(i16x8.sub(i16x8.extend_low_i8x16_u(lo), off), i16x8.sub(i16x8.extend_high_i8x16_u(lo), off),
      i16x8.sub(i16x8.extend_low_i8x16_u(hi), off), i16x8.sub(i16x8.extend_high_i8x16_u(hi), off), x);
  }
  return dot32(v128.load(w), v128.load(w, 16), v128.load(w, 32), v128.load(w, 48), x);
}

/** The fifth bit of 16 Q5 values (bit j of the qh bytes `sel` picks), as 0 or 0x10 per byte. */
@inline function fifth(qh: u32, sel: v128): v128 {
  const bit = i8x16(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
  return v128.and(i8x16.eq(v128.and(i8x16.swizzle(i32x4.splat(qh), sel), bit), bit), i8x16.splat(0x10));
}

/** Levels of elements 0..15 (lo) and 16..31 (hi) of the 32-block at p: the first i8x16 (decode.as.ts's values). */
@inline function levelsLo(kind: i32, qs: v128, qh: u32): v128 {
  if (kind == K_Q8_0) return qs;
  let q = v128.and(qs, i8x16.splat(15));
  if (kind == K_Q5_0 || kind == K_Q5_1) q = v128.or(q, fifth(qh, i8x16(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)));
  if (kind == K_Q4_0) q = i8x16.sub(q, i8x16.splat(8));
  if (kind == K_Q5_0) q = i8x16.sub(q, i8x16.splat(16));
  return q;
}

/** The second i8x16 of levels (elements 16..31); for Q8_0 `qs2` holds them. */
@inline function levelsHi(kind: i32, qs: v128, qs2: v128, qh: u32): v128 {
  if (kind == K_Q8_0) return qs2;
  let q = i8x16.shr_u(qs, 4);
  if (kind == K_Q5_0 || kind == K_Q5_1) q = v128.or(q, fifth(qh, i8x16(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3)));
  if (kind == K_Q4_0) q = i8x16.sub(q, i8x16.splat(8));
  if (kind == K_Q5_0) q = i8x16.sub(q, i8x16.splat(16));
  return q;
}

@inline function blockBytes(kind: i32): usize {
  return kind == K_Q4_0 ? 18 : kind == K_Q4_1 ? 20 : kind == K_Q5_0 ? 22 : kind == K_Q5_1 ? 24 : 34;
}

@inline function qsOffset(kind: i32): usize {
  return kind == K_Q4_0 ? 2 : kind == K_Q4_1 ? 4 : kind == K_Q5_0 ? 6 : kind == K_Q5_1 ? 8 : 2;
}

/** Σ over the block at p of its 32 levels times the 32 activations X0..X3 (i32x4 partial sums). */
@inline function blockDotX(kind: i32, p: usize, X0: v128, X1: v128, X2: v128, X3: v128): v128 {
  const signed = kind == K_Q4_0 || kind == K_Q5_0 || kind == K_Q8_0;
  const qs = v128.load(p + qsOffset(kind));
  const qs2 = kind == K_Q8_0 ? v128.load(p, 18) : qs;
  const qh: u32 = kind == K_Q5_0 ? load<u32>(p, 2) : kind == K_Q5_1 ? load<u32>(p, 4) : 0;
  const lo = levelsLo(kind, qs, qh), hi = levelsHi(kind, qs, qs2, qh);
  const W0 = signed ? i16x8.extend_low_i8x16_s(lo) : i16x8.extend_low_i8x16_u(lo);
  const W1 = signed ? i16x8.extend_high_i8x16_s(lo) : i16x8.extend_high_i8x16_u(lo);
  const W2 = signed ? i16x8.extend_low_i8x16_s(hi) : i16x8.extend_low_i8x16_u(hi);
  const W3 = signed ? i16x8.extend_high_i8x16_s(hi) : i16x8.extend_high_i8x16_u(hi);
  return dot32x(W0, W1, W2, W3, X0, X1, X2, X3);
}

/** Σ over the block at p of its 32 levels times the 32 activations at x (i32x4 partial sums). */
@inline function blockDot(kind: i32, p: usize, x: usize): v128 {
  return blockDotX(kind, p, v128.load(x), v128.load(x, 16), v128.load(x, 32), v128.load(x, 48));
}

/**
 * The f16 at p, p + step, p + 2·step, p + 3·step as f32x4, looked up in the f16 → f32 table at
 * `tbl` (f16Table: f16()'s values, NaN payloads included; a lookup costs less than converting).
 */
@inline function scales4(p: usize, step: usize, tbl: usize): v128 {
  let v = f32x4.splat(load<f32>(tbl + (<usize>load<u16>(p) << 2)));
  v = f32x4.replace_lane(v, 1, load<f32>(tbl + (<usize>load<u16>(p + step) << 2)));
  v = f32x4.replace_lane(v, 2, load<f32>(tbl + (<usize>load<u16>(p + 2 * step) << 2)));
  return f32x4.replace_lane(v, 3, load<f32>(tbl + (<usize>load<u16>(p + 3 * step) << 2)));
}

/**
 * Reading ahead. Four rows read side by side are four interleaved streams, which the hardware
 * prefetchers follow badly when the rows are short (they are still learning a stream when it
 * ends): 4.8 GB/s for Q4_0 rows of 1152 bytes from DRAM on this machine (AMD EPYC), 3.8 for 576.
 * So, while rows i..i+3 are multiplied, block b's share of the next four rows' bytes (contiguous
 * in memory: 4·blockBytes per block) is read and discarded: one forward stream that the
 * prefetchers follow, after which the four rows come from the cache (7.1 and 8.4 GB/s). Rows
 * longer than READ_AHEAD_MAX are streamed well as they are, and reading ahead slows them (Q4_0
 * rows of 3168 bytes: 6.6 → 5.7 GB/s; Q8_0 rows of 4352: 9.2 → 6.7; rows of 2176–2304 are even).
 * Loads every ≤ 48 bytes touch every 64-byte line; their values go into `sink`, stored into the
 * thread's row buffer (so that no compiler drops the loads; nothing reads it).
 */
const READ_AHEAD_MAX: usize = 2304;

@inline function touch(kind: i32, sink: v128, t: usize): v128 {
  if (kind == K_Q8_0) return v128.or(sink, v128.or(v128.load(t), v128.or(v128.load(t, 45), v128.load(t, 90))));   // 136 bytes
  return v128.or(sink, v128.or(v128.load(t), v128.load(t + (blockBytes(kind) << 1))));                          // 72..96 bytes
}

/**
 * Token t times rows i..i+3 read straight from the weights, for matrix-vector products (decode),
 * where decoding into the row buffer first would cost as much as the product: the four rows
 * share the activation loads and one float multiply-add, a lane each. Per row and block the same
 * operations in the same order as rows2Q8's lone-token path, so the results are identical. `next`:
 * the bytes to read ahead when `ahead` (see READ_AHEAD_MAX).
 */
@inline function rows4Direct(kind: i32, w: usize, rowBytes: usize, nb: i32, xq: usize, xd: usize, xs: usize, t: i32, out: usize, m: i32, i: i32,
  next: usize, sink: v128, tbl: usize, ahead: bool): v128 {
  const withMin = kind == K_Q4_1 || kind == K_Q5_1;
  const bb = blockBytes(kind);
  // pointers stepped block by block (fewer live values in the loop than indices)
  let x = xq + <usize>t * (<usize>nb << 6), d = xd + <usize>t * (<usize>nb << 2), s = xs + <usize>t * (<usize>nb << 2);
  let acc = f32x4.splat(0), macc = f32x4.splat(0);
  let p = w + <usize>i * rowBytes, a = next;
  const stop = p + <usize>nb * bb;
  for (; p < stop; p += bb) {
    if (ahead) {
      sink = touch(kind, sink, a);
      a += bb << 2;
    }
    const X0 = v128.load(x), X1 = v128.load(x, 16), X2 = v128.load(x, 32), X3 = v128.load(x, 48);
    const isum = hsum4(blockDotX(kind, p, X0, X1, X2, X3), blockDotX(kind, p + rowBytes, X0, X1, X2, X3),
      blockDotX(kind, p + 2 * rowBytes, X0, X1, X2, X3), blockDotX(kind, p + 3 * rowBytes, X0, X1, X2, X3));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.mul(scales4(p, rowBytes, tbl), v128.load32_splat(d))));
    if (withMin) macc = f32x4.add(macc, f32x4.mul(scales4(p + 2, rowBytes, tbl), v128.load32_splat(s)));
    x += 64; d += 4; s += 4;
  }
  const r = withMin ? f32x4.add(acc, macc) : acc;
  const po = out + ((<usize>t * <usize>m + <usize>i) << 2);
  v128.store(po, r);
  return sink;
}

/** Token t times row i read straight from the weights (the rows left over from rows4Direct). */
@inline function rowDirect(kind: i32, w: usize, nb: i32, xq: usize, xd: usize, xs: usize, t: i32, out: usize, m: i32, i: i32): void {
  const withMin = kind == K_Q4_1 || kind == K_Q5_1;
  const x0 = xq + <usize>t * (<usize>nb << 6), d0 = xd + <usize>t * (<usize>nb << 2), s0 = xs + <usize>t * (<usize>nb << 2);
  let acc: f32 = 0, macc: f32 = 0;
  for (let b = 0; b < nb; b++) {
    const p = w + <usize>b * blockBytes(kind), o = <usize>b << 6, so = <usize>b << 2;
    acc += <f32>hsumI32(blockDot(kind, p, x0 + o)) * (f16(load<u16>(p)) * load<f32>(d0 + so));
    if (withMin) macc += f16(load<u16>(p, 2)) * load<f32>(s0 + so);
  }
  store<f32>(out + ((<usize>t * <usize>m + <usize>i) << 2), withMin ? acc + macc : acc);
}

/**
 * Q4_0 / Q4_1 matrix-vector: the weight bytes read as i16 lanes give the nibbles in place with a
 * mask and a shift each (no widening), against activations reordered to match (quantize.as.ts
 * permuteQ4); Q4_0's −8 comes off as −8·Σx. The integer sums equal the other paths' exactly,
 * and the float operations are theirs, so the results are identical.
 */
@inline function nibbleDot(p: usize, X0: v128, X1: v128, X2: v128, X3: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    // the nibbles as unsigned bytes (elements 0..15, then 16..31) against i8 activations in their
    // own order (X0, X1; permuteQ4 in the relaxed build): two relaxed dot products
    const q = v128.load(p);
    const lo = v128.and(q, i8x16.splat(15)), hi = i8x16.shr_u(q, 4);
    return i32x4.relaxed_dot_i8x16_i7x16_add_s(X1, hi, i32x4.relaxed_dot_i8x16_i7x16_add_s(X0, lo, i32x4.splat(0)));
  }
  const qs = v128.load(p);
  const mask = i16x8.splat(0x000f);
  let s = i32x4.dot_i16x8_s(v128.and(qs, mask), X0);
  s = i32x4.add(s, i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(qs, 8), mask), X1));
  s = i32x4.add(s, i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(qs, 4), mask), X2));
  return i32x4.add(s, i32x4.dot_i16x8_s(i16x8.shr_u(qs, 12), X3));
}

@inline function rows4DirectQ4(kind: i32, w: usize, rowBytes: usize, nb: i32, xp: usize, xsum: usize, xd: usize, xs: usize, t: i32, out: usize, m: i32, i: i32,
  next: usize, sink: v128, tbl: usize, ahead: bool): v128 {
  const one = kind == K_Q4_1;
  const bb: usize = one ? 20 : 18, qo: usize = one ? 4 : 2;
  // the activations' bytes per block: 64 (i16, permuted) or, in the relaxed build, 32 (i8)
  const xb: usize = ASC_FEATURE_RELAXED_SIMD ? 32 : 64;
  let x = xp + <usize>t * <usize>nb * xb, d = xd + <usize>t * (<usize>nb << 2), s = xs + <usize>t * (<usize>nb << 2);
  let sum = xsum + <usize>t * (<usize>nb << 2);
  let acc = f32x4.splat(0), macc = f32x4.splat(0);
  let p = w + <usize>i * rowBytes, a = next;
  const stop = p + <usize>nb * bb;
  for (; p < stop; p += bb) {
    if (ahead) {
      sink = touch(kind, sink, a);
      a += bb << 2;
    }
    const X0 = v128.load(x), X1 = v128.load(x, 16);
    const X2 = ASC_FEATURE_RELAXED_SIMD ? X0 : v128.load(x, 32), X3 = ASC_FEATURE_RELAXED_SIMD ? X1 : v128.load(x, 48);
    let isum = hsum4(nibbleDot(p + qo, X0, X1, X2, X3), nibbleDot(p + rowBytes + qo, X0, X1, X2, X3),
      nibbleDot(p + 2 * rowBytes + qo, X0, X1, X2, X3), nibbleDot(p + 3 * rowBytes + qo, X0, X1, X2, X3));
    if (!one) isum = i32x4.sub(isum, v128.load32_splat(sum));   // 8·Σx (permuteQ4)
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.mul(scales4(p, rowBytes, tbl), v128.load32_splat(d))));
    if (one) macc = f32x4.add(macc, f32x4.mul(scales4(p + 2, rowBytes, tbl), v128.load32_splat(s)));
    x += xb; d += 4; s += 4; sum += 4;
  }
  v128.store(out + ((<usize>t * <usize>m + <usize>i) << 2), one ? f32x4.add(acc, macc) : acc);
  return sink;
}

@inline function rowsQ8(kind: i32, w: usize, rowBytes: i32, xq: usize, xd: usize, xs: usize, out: usize, n: i32, m: i32, k: i32, r0: i32, r1: i32, buf: usize,
  xp: usize, xsum: usize, tbl: usize, xi: usize): void {
  const nb = k >> 5;
  const rb = <usize>rowBytes;
  if (n < 4) {
    // matrix-vector: four rows at a time, straight from the weights; short rows read the next
    // four ahead, whichever thread gets them (the matrix's last group reads itself again:
    // nothing beyond row m − 1 is touched)
    let sink = i32x4.splat(0);
    let i = r0;
    const q4 = (kind == K_Q4_0 || kind == K_Q4_1) && xp != 0;
    if (rb <= READ_AHEAD_MAX) {
      for (; i + 4 <= r1; i += 4) {
        const next = w + <usize>(i + 8 <= m ? i + 4 : i) * rb;
        for (let t = 0; t < n; t++) {
          if (q4) sink = rows4DirectQ4(kind, w, rb, nb, xp, xsum, xd, xs, t, out, m, i, next, sink, tbl, true);
          else sink = rows4Direct(kind, w, rb, nb, xq, xd, xs, t, out, m, i, next, sink, tbl, true);
        }
      }
    } else {
      for (; i + 4 <= r1; i += 4) {
        for (let t = 0; t < n; t++) {
          if (q4) rows4DirectQ4(kind, w, rb, nb, xp, xsum, xd, xs, t, out, m, i, 0, sink, tbl, false);
          else rows4Direct(kind, w, rb, nb, xq, xd, xs, t, out, m, i, 0, sink, tbl, false);
        }
      }
    }
    for (; i < r1; i++) for (let t = 0; t < n; t++) rowDirect(kind, w + <usize>i * rb, nb, xq, xd, xs, t, out, m, i);
    v128.store(buf, sink);
    return;
  }
  // two rows at a time, decoded side by side (the last row of an odd share is decoded twice)
  const wd = buf + (<usize>nb << 7), wm = wd + (<usize>nb << 3);
  for (let i = r0; i < r1; i += 2) {
    const two = i + 1 < r1;
    const row = w + <usize>i * rb;
    decodeLegacy(kind, row, nb, buf, 128, wd, wm);
    decodeLegacy(kind, two ? row + rb : row, nb, buf + 64, 128, wd + (<usize>nb << 2), wm + (<usize>nb << 2));
    rows2Q8(kind, buf, nb, xq, xd, xs, xi, n, out, m, i, two, kind == K_Q4_1 || kind == K_Q5_1);
  }
}

/** Weights of a 32-block type (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) × Q8_0/Q8_1 activations, rows r0..r1. */
export function matmulQ8(kind: i32, w: usize, rowBytes: i32, xq: usize, xd: usize, xs: usize, out: usize, n: i32, m: i32, k: i32, r0: i32, r1: i32, buf: usize,
  xp: usize, xsum: usize, tbl: usize, xi: usize): void {
  // one copy of the loop per type, so that the decoder's type test is not in the inner loop
  if (kind == K_Q4_0) rowsQ8(K_Q4_0, w, rowBytes, xq, xd, xs, out, n, m, k, r0, r1, buf, xp, xsum, tbl, xi);
  else if (kind == K_Q8_0) rowsQ8(K_Q8_0, w, rowBytes, xq, xd, xs, out, n, m, k, r0, r1, buf, 0, 0, tbl, xi);
  else if (kind == K_Q4_1) rowsQ8(K_Q4_1, w, rowBytes, xq, xd, xs, out, n, m, k, r0, r1, buf, xp, xsum, tbl, xi);
  else if (kind == K_Q5_0) rowsQ8(K_Q5_0, w, rowBytes, xq, xd, xs, out, n, m, k, r0, r1, buf, 0, 0, tbl, xi);
  else rowsQ8(K_Q5_1, w, rowBytes, xq, xd, xs, out, n, m, k, r0, r1, buf, 0, 0, tbl, xi);
}

// ----------------------------------------------------------------------------- 256-blocks × Q8_K

@inline function minSum(wmin: usize, bs: usize): v128 {
  return i32x4.add(i32x4.dot_i16x8_s(v128.load(wmin), v128.load(bs)), i32x4.dot_i16x8_s(v128.load(wmin, 16), v128.load(bs, 16)));
}

/** minSum of one row's mins against four tokens' group sums (b0, b0 + step, ...), a token a lane. */
@inline function minSums4(wmin: usize, b0: usize, step: usize): v128 {
  return hsum4(minSum(wmin, b0), minSum(wmin, b0 + step), minSum(wmin, b0 + 2 * step), minSum(wmin, b0 + 3 * step));
}

/**
 * One super-block's step of a (row, token)'s float sum, the same in every path: the exact integer
 * sum of the super-block (its lanes added up: no lane layout shows in the result) times d·dx,
 * then (withMin) the exact sum of the mins against the token's 16-group sums times −dmin·dx.
 * superK1 takes one token; superK4 four, a lane each, with the same operations per lane.
 */
@inline function superK1(acc: f32, isum: i32, dw: f32, dx: f32, withMin: bool, dm: f32, msum: i32): f32 {
  acc = acc + <f32>isum * (dw * dx);
  if (withMin) acc = acc + <f32>msum * -(dm * dx);
  return acc;
}

@inline function superK4(acc: v128, isums: v128, dw: f32, DX: v128, withMin: bool, dm: f32, msums: v128): v128 {
  acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(isums), f32x4.mul(f32x4.splat(dw), DX)));
  if (withMin) acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(msums), f32x4.neg(f32x4.mul(f32x4.splat(dm), DX))));
  return acc;
}

/** Four tokens' activation scales (a lane each) of super-block so (bytes) at d0, d0 + step, ... */
@inline function dx4(d0: usize, step: usize, so: usize): v128 {
  const p = d0 + so;
  return f32x4(load<f32>(p), load<f32>(p + step), load<f32>(p + 2 * step), load<f32>(p + 3 * step));
}

/** One super-block's integer sums of the decoded levels at w against token activations at x:
 *  i16 levels × i16 activations (512 bytes each), or, `narrow`, the relaxed build's bytes (256
 *  each) with each 32's scale at s, two relaxed dot products per 32. */
@inline function isumK(w: usize, x: usize, s: usize, narrow: bool): v128 {
  let i0 = i32x4.splat(0);
  if (ASC_FEATURE_RELAXED_SIMD) {
    if (narrow) {
      for (let u: usize = 0; u < 256; u += 32) {
        const d = i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(x + u, 16), v128.load(w + u, 16),
          i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(x + u), v128.load(w + u), i32x4.splat(0)));
        i0 = i32x4.add(i0, i32x4.mul(d, v128.load32_splat(s + (u >> 3))));
      }
    }
  }
  if (!narrow) {
    for (let g: usize = 0; g < 512; g += 16) i0 = i32x4.add(i0, i32x4.dot_i16x8_s(v128.load(w + g), v128.load(x + g)));
  }
  return i0;
}

/**
 * Row i (decoded in buf by decodeK) times the Q8_K activations of tokens 0..n−1 → out[t·m + i],
 * four tokens at a time (sharing each load of the levels; their float sums a lane each), then one
 * at a time. Every path of the 256-block types (this one, rows2K, rowKDirect) adds up each
 * super-block's integer lanes into one exact sum before the float steps (superK1 / superK4, the
 * same operations per token), so no lane layout shows in the result: outputs do not depend on the
 * number of tokens, the path or the build. `narrow` (Q4_K / Q5_K in the relaxed build,
 * common.as.ts narrowK): the levels as bytes and each 32's integer scale apart, times the
 * activations as i8 (quantize.as.ts narrowQ8K), both in element order: per 32 elements two
 * relaxed dot products, times the scale in i32: the same exact integers as the i16 path.
 */
@inline function rowK(buf: usize, nsb: i32, xq: usize, xd: usize, xbs: usize, n: i32, out: usize, m: i32, i: i32, withMin: bool, narrow: bool, t0: i32): void {
  const k = nsb << 8;
  const sc = buf + <usize>k;   // narrow: each 32's scale (i32)
  const wd = buf + (<usize>k << 1), wdm = wd + (<usize>nsb << 2), wmin = wdm + (<usize>nsb << 2);
  const sbBytes: usize = narrow ? 256 : 512;   // one super-block of levels or activations
  const xStride = <usize>nsb * sbBytes, dStride = <usize>nsb << 2, bStride = <usize>nsb << 5;
  let t = t0;
  for (; t + 4 <= n; t += 4) {
    const x0 = xq + <usize>t * xStride, x1 = x0 + xStride, x2 = x1 + xStride, x3 = x2 + xStride;
    const d0 = xd + <usize>t * dStride;
    const b0 = xbs + <usize>t * bStride;
    let acc = f32x4.splat(0);   // tokens t .. t + 3, a lane each
    for (let sb = 0; sb < nsb; sb++) {
      const o = <usize>sb * sbBytes, w = buf + o, s = sc + (<usize>sb << 5);
      let i0 = i32x4.splat(0), i1 = i32x4.splat(0), i2 = i32x4.splat(0), i3 = i32x4.splat(0);
      if (ASC_FEATURE_RELAXED_SIMD) {
        if (narrow) {
          for (let u: usize = 0; u < 256; u += 32) {
            const W0 = v128.load(w + u), W1 = v128.load(w + u, 16), S = v128.load32_splat(s + (u >> 3)), e = o + u, z = i32x4.splat(0);
            i0 = i32x4.add(i0, i32x4.mul(i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(x0 + e, 16), W1, i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(x0 + e), W0, z)), S));
            i1 = i32x4.add(i1, i32x4.mul(i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(x1 + e, 16), W1, i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(x1 + e), W0, z)), S));
            i2 = i32x4.add(i2, i32x4.mul(i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(x2 + e, 16), W1, i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(x2 + e), W0, z)), S));
            i3 = i32x4.add(i3, i32x4.mul(i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(x3 + e, 16), W1, i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(x3 + e), W0, z)), S));
          }
        }
      }
      if (!narrow) {
        for (let g: usize = 0; g < 512; g += 16) {
          const W = v128.load(w + g);
          i0 = i32x4.add(i0, i32x4.dot_i16x8_s(W, v128.load(x0 + o + g)));
          i1 = i32x4.add(i1, i32x4.dot_i16x8_s(W, v128.load(x1 + o + g)));
          i2 = i32x4.add(i2, i32x4.dot_i16x8_s(W, v128.load(x2 + o + g)));
          i3 = i32x4.add(i3, i32x4.dot_i16x8_s(W, v128.load(x3 + o + g)));
        }
      }
      const so = <usize>sb << 2, mo = <usize>sb << 5, dw = load<f32>(wd + so), dm = withMin ? load<f32>(wdm + so) : 0, wmn = wmin + mo;
      const ms = withMin ? minSums4(wmn, b0 + mo, bStride) : i32x4.splat(0);
      acc = superK4(acc, hsum4(i0, i1, i2, i3), dw, dx4(d0, dStride, so), withMin, dm, ms);
    }
    store2x4(out + ((<usize>t * <usize>m + <usize>i) << 2), <usize>m << 2, acc, acc, false);
  }
  for (; t < n; t++) {
    const x0 = xq + <usize>t * xStride, d0 = xd + <usize>t * dStride, b0 = xbs + <usize>t * bStride;
    let acc: f32 = 0;
    for (let sb = 0; sb < nsb; sb++) {
      const o = <usize>sb * sbBytes, so = <usize>sb << 2, mo = <usize>sb << 5;
      const isum = hsumI32(isumK(buf + o, x0 + o, sc + (<usize>sb << 5), narrow));
      const msum = withMin ? hsumI32(minSum(wmin + mo, b0 + mo)) : 0;
      acc = superK1(acc, isum, load<f32>(wd + so), load<f32>(d0 + so), withMin, withMin ? load<f32>(wdm + so) : 0, msum);
    }
    store<f32>(out + ((<usize>t * <usize>m + <usize>i) << 2), acc);
  }
}

/** Σ over 16 elements of unsigned (or signed) byte levels v times the i16 activations at x. */
@inline function dot16(v: v128, x: usize, signed: bool): v128 {
  const lo = signed ? i16x8.extend_low_i8x16_s(v) : i16x8.extend_low_i8x16_u(v);
  const hi = signed ? i16x8.extend_high_i8x16_s(v) : i16x8.extend_high_i8x16_u(v);
  return i32x4.add(i32x4.dot_i16x8_s(lo, v128.load(x)), i32x4.dot_i16x8_s(hi, v128.load(x, 16)));
}

/**
 * Chunk c (elements 64c .. 64c + 63: sub-blocks 2c and 2c + 1) of a Q4_K / Q5_K super-block at p
 * against the activations at x (i16, element 64c; in the relaxed build's narrow form: i8 in
 * element order), each sub-block's integer sum times its scale (sc: the eight 6-bit scales as
 * bytes, lanes 0..7 of a v128), in the lanes of an i32x4 (their sum is what counts).
 */
@inline function chunkK(p: usize, five: bool, narrow: bool, c: i32, x: usize, sc: v128): v128 {
  const zero = i32x4.splat(0);
  const la = levelsK(p, five, c, 0), lb = levelsK(p, five, c, 1), ha = levelsK(p, five, c, 2), hb = levelsK(p, five, c, 3);
  let s1 = zero, s2 = zero;
  if (ASC_FEATURE_RELAXED_SIMD) {
    if (narrow) {
      s1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(x, 16), lb, i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(x), la, zero));
      s2 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(x, 48), hb, i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(x, 32), ha, zero));
    }
  }
  if (!narrow) {
    s1 = i32x4.add(dot16(la, x, false), dot16(lb, x + 32, false));
    s2 = i32x4.add(dot16(ha, x + 64, false), dot16(hb, x + 96, false));
  }
  // byte 2c (2c + 1) of sc into every i32 lane (the swizzle zeroes lanes for indices ≥ 16)
  const z: u8 = 0xff, j1 = <u8>(2 * c), j2 = <u8>(2 * c + 1);
  const sc1 = i8x16.swizzle(sc, i8x16(j1, z, z, z, j1, z, z, z, j1, z, z, z, j1, z, z, z));
  const sc2 = i8x16.swizzle(sc, i8x16(j2, z, z, z, j2, z, z, z, j2, z, z, z, j2, z, z, z));
  return i32x4.add(i32x4.mul(s1, sc1), i32x4.mul(s2, sc2));
}

/** i0 plus the four quarters' sums of 16 Q6_K elements (s0..s3) times their scales (i8 at c, c + 2, c + 4, c + 6). */
@inline function q6Scaled(i0: v128, s0: v128, s1: v128, s2: v128, s3: v128, c: usize): v128 {
  return i32x4.add(i0, i32x4.add(
    i32x4.add(i32x4.mul(s0, i32x4.splat(<i32>load<i8>(c))), i32x4.mul(s1, i32x4.splat(<i32>load<i8>(c, 2)))),
    i32x4.add(i32x4.mul(s2, i32x4.splat(<i32>load<i8>(c, 4))), i32x4.mul(s3, i32x4.splat(<i32>load<i8>(c, 6))))));
}

/**
 * One row of Q4_K, Q5_K or Q6_K times token t's Q8_K activations, read in place (decode: no row
 * buffer to write and read back). Each sub-block's integer sum is multiplied by its scale in i32
 * and the super-block's lanes are added up exactly, then superK1 (rowK's float steps): the result
 * is bit-identical to decodeK + rowK (in the relaxed build the levels as bytes against the
 * narrowQ8K activations, one relaxed dot product per 16).
 */
@inline function rowKDirect(kind: i32, row: usize, nsb: i32, xq: usize, xd: usize, xbs: usize, xn: usize, t: i32, out: usize, m: i32, i: i32, tbl: usize): void {
  const k = nsb << 8;
  const narrow = narrowK(kind);
  const x0 = narrow ? xn + <usize>t * <usize>k : xq + <usize>t * (<usize>k << 1);
  const d0 = xd + <usize>t * (<usize>nsb << 2), b0 = xbs + <usize>t * (<usize>nsb << 5);
  let acc: f32 = 0;
  for (let sb = 0; sb < nsb; sb++) {
    const dx = load<f32>(d0 + (<usize>sb << 2));
    if (kind == K_Q6_K) {
      let i0 = i32x4.splat(0);
      const p = row + <usize>sb * 210, x = x0 + (<usize>sb << 9);
      let offset = 0;
      if (ASC_FEATURE_RELAXED_SIMD && xn != 0) {
        // the relaxed build, activations as i8 at xn: the unsigned levels q (0..63, the 7-bit
        // operand) in one relaxed dot product per 16, and Σ (q − 32)·x = Σ q·x − 32·Σ x, the Σ x
        // of each 16 being Q8_K's group sums (the scale of a 16 is the scale of its group)
        const xb = xn + <usize>t * <usize>k + (<usize>sb << 8), z = i32x4.splat(0);
        for (let h = 0; h < 2; h++) {
          const ql = p + (<usize>h << 6), qh = p + 128 + (<usize>h << 5), sc = p + 192 + (<usize>h << 3);
          for (let half = 0; half < 2; half++) {
            const o = <usize>half << 4;
            const A = v128.load(ql + o), B = v128.load(ql + o, 32), H = v128.load(qh + o);
            const e = xb + (<usize>h << 7) + o;   // element 128h + 16·half, as i8
            const s0 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(e), q6Unsigned(A, B, H, 0), z);
            const s1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(e, 32), q6Unsigned(A, B, H, 1), z);
            const s2 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(e, 64), q6Unsigned(A, B, H, 2), z);
            const s3 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(e, 96), q6Unsigned(A, B, H, 3), z);
            i0 = q6Scaled(i0, s0, s1, s2, s3, sc + (o >> 4));
          }
        }
        const scales = v128.load(p + 192), bs = b0 + (<usize>sb << 5);
        offset = 32 * hsumI32(i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(scales), v128.load(bs)),
          i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(scales), v128.load(bs, 16))));
      } else for (let h = 0; h < 2; h++) {
        const ql = p + (<usize>h << 6), qh = p + 128 + (<usize>h << 5), sc = p + 192 + (<usize>h << 3);
        for (let half = 0; half < 2; half++) {
          const o = <usize>half << 4;
          const A = v128.load(ql + o), B = v128.load(ql + o, 32), H = v128.load(qh + o);
          const e = x + (<usize>h << 8) + (o << 1);   // element 128h + 16·half, as i16
          const s0 = dot16(q6Levels(A, B, H, 0), e, true), s1 = dot16(q6Levels(A, B, H, 1), e + 64, true);
          const s2 = dot16(q6Levels(A, B, H, 2), e + 128, true), s3 = dot16(q6Levels(A, B, H, 3), e + 192, true);
          i0 = q6Scaled(i0, s0, s1, s2, s3, sc + (o >> 4));
        }
      }
      acc = superK1(acc, hsumI32(i0) - offset, load<f32>(tbl + (<usize>load<u16>(p, 208) << 2)), dx, false, 0, 0);
    } else {
      const five = kind == K_Q5_K;
      const p = row + <usize>sb * (five ? 176 : 144);
      // the eight sub-blocks' scales (sc) and mins (mn) as bytes 0..7
      const sc = i64x2.splat(<i64>scalesK(p, false)), mn = scalesK(p, true);
      const mnLo = <u32>mn, mnHi = <u32>(mn >> 32);
      const x = narrow ? x0 + (<usize>sb << 8) : x0 + (<usize>sb << 9);
      const xc: usize = narrow ? 64 : 128;
      const i0 = i32x4.add(i32x4.add(chunkK(p, five, narrow, 0, x, sc), chunkK(p, five, narrow, 1, x + xc, sc)),
        i32x4.add(chunkK(p, five, narrow, 2, x + 2 * xc, sc), chunkK(p, five, narrow, 3, x + 3 * xc, sc)));
      // rowK's wmin: each sub-block's min twice (one per 16-group), as i16
      const z: u8 = 0xff;
      const pairs = i8x16(0, z, 0, z, 1, z, 1, z, 2, z, 2, z, 3, z, 3, z);
      const w0 = i8x16.swizzle(i32x4.splat(mnLo), pairs), w1 = i8x16.swizzle(i32x4.splat(mnHi), pairs);
      const bs = b0 + (<usize>sb << 5);
      const ms = i32x4.add(i32x4.dot_i16x8_s(w0, v128.load(bs)), i32x4.dot_i16x8_s(w1, v128.load(bs, 16)));
      acc = superK1(acc, hsumI32(i0), load<f32>(tbl + (<usize>load<u16>(p) << 2)), dx, true, load<f32>(tbl + (<usize>load<u16>(p, 2) << 2)), hsumI32(ms));
    }
  }
  store<f32>(out + ((<usize>t * <usize>m + <usize>i) << 2), acc);
}

/**
 * Rows i and i + 1 (decoded in bufA and bufB as i16 levels: every 256-block type but the relaxed
 * build's Q4_K / Q5_K) times four tokens at a time, read through one pointer from their
 * interleaved copy at xi (quantize.as.ts interleaveQ8K): each load of the activations serves both
 * rows (eight integer sums in flight). Then the tokens left over one at a time (rowK, from xq).
 * Each (row, token) gets the same exact super-block sums and superK4's per-lane steps, so the
 * outputs are rowK's bits.
 */
@inline function rows2K(bufA: usize, bufB: usize, nsb: i32, xq: usize, xi: usize, xd: usize, xbs: usize, n: i32, out: usize, m: i32, i: i32, withMin: bool): void {
  const k = nsb << 8;
  const wdA = bufA + (<usize>k << 1), wdmA = wdA + (<usize>nsb << 2), wminA = wdmA + (<usize>nsb << 2);
  const wdB = bufB + (<usize>k << 1), wdmB = wdB + (<usize>nsb << 2), wminB = wdmB + (<usize>nsb << 2);
  const xStride = <usize>k << 1, dStride = <usize>nsb << 2, bStride = <usize>nsb << 5;
  // a padded last group (groupedTokens): its extra lanes read the last token's levels (interleaveQ8K)
  // and whatever scales follow the real tokens' in xd, xbs; they are not stored
  const grouped = groupedTokens(n);
  let t = 0;
  for (; t < grouped; t += 4) {
    const xg = xi + <usize>t * xStride;   // this group's four tokens, interleaved
    const d0 = xd + <usize>t * dStride;
    const b0 = xbs + <usize>t * bStride;
    let accA = f32x4.splat(0), accB = f32x4.splat(0);   // rows i, i + 1: tokens t .. t + 3, a lane each
    for (let sb = 0; sb < nsb; sb++) {
      const o = <usize>sb << 9;
      let i0 = i32x4.splat(0), i1 = i32x4.splat(0), i2 = i32x4.splat(0), i3 = i32x4.splat(0);
      let j0 = i32x4.splat(0), j1 = i32x4.splat(0), j2 = i32x4.splat(0), j3 = i32x4.splat(0);
      let pa = bufA + o, pb = bufB + o, px = xg + (o << 2);
      const end = pa + 512;
      for (; pa < end; pa += 16) {
        const A = v128.load(pa), B = v128.load(pb);
        let X = v128.load(px);
        i0 = i32x4.add(i0, i32x4.dot_i16x8_s(A, X)); j0 = i32x4.add(j0, i32x4.dot_i16x8_s(B, X));
        X = v128.load(px, 16);
        i1 = i32x4.add(i1, i32x4.dot_i16x8_s(A, X)); j1 = i32x4.add(j1, i32x4.dot_i16x8_s(B, X));
        X = v128.load(px, 32);
        i2 = i32x4.add(i2, i32x4.dot_i16x8_s(A, X)); j2 = i32x4.add(j2, i32x4.dot_i16x8_s(B, X));
        X = v128.load(px, 48);
        i3 = i32x4.add(i3, i32x4.dot_i16x8_s(A, X)); j3 = i32x4.add(j3, i32x4.dot_i16x8_s(B, X));
        pb += 16; px += 64;
      }
      const so = <usize>sb << 2, mo = <usize>sb << 5;
      const dwA = load<f32>(wdA + so), dmA = withMin ? load<f32>(wdmA + so) : 0;
      const dwB = load<f32>(wdB + so), dmB = withMin ? load<f32>(wdmB + so) : 0;
      const DX = dx4(d0, dStride, so);
      let msA = i32x4.splat(0), msB = msA;
      if (withMin) {
        msA = minSums4(wminA + mo, b0 + mo, bStride);
        msB = minSums4(wminB + mo, b0 + mo, bStride);
      }
      accA = superK4(accA, hsum4(i0, i1, i2, i3), dwA, DX, withMin, dmA, msA);
      accB = superK4(accB, hsum4(j0, j1, j2, j3), dwB, DX, withMin, dmB, msB);
    }
    store2x4(out + ((<usize>t * <usize>m + <usize>i) << 2), <usize>m << 2, accA, accB, true, min(4, n - t));
  }
  rowK(bufA, nsb, xq, xd, xbs, n, out, m, i, withMin, false, t);
  rowK(bufB, nsb, xq, xd, xbs, n, out, m, i + 1, withMin, false, t);
}

/**
 * rows2K for the relaxed build's Q4_K / Q5_K (decoded as bytes and each 32's scale, rowK's narrow
 * form): rows i and i + 1 times four tokens at a time, each load of the activations serving both
 * rows; then the tokens left over one at a time (rowK). Exact super-block sums and superK4, as
 * every k-quant path: the outputs are rowK's bits.
 */
@inline function rows2KNarrow(bufA: usize, bufB: usize, nsb: i32, xn: usize, xd: usize, xbs: usize, n: i32, out: usize, m: i32, i: i32, withMin: bool): void {
  const k = nsb << 8;
  const scA = bufA + <usize>k, scB = bufB + <usize>k;
  const wdA = bufA + (<usize>k << 1), wdmA = wdA + (<usize>nsb << 2), wminA = wdmA + (<usize>nsb << 2);
  const wdB = bufB + (<usize>k << 1), wdmB = wdB + (<usize>nsb << 2), wminB = wdmB + (<usize>nsb << 2);
  const xStride = <usize>k, dStride = <usize>nsb << 2, bStride = <usize>nsb << 5;
  let t = 0;
  if (ASC_FEATURE_RELAXED_SIMD) {
    // a padded last group (groupedTokens) reads past the real tokens' activations; its extra
    // lanes are not stored
    const grouped = groupedTokens(n);
    for (; t < grouped; t += 4) {
      const x0 = xn + <usize>t * xStride, x1 = x0 + xStride, x2 = x1 + xStride, x3 = x2 + xStride;
      const d0 = xd + <usize>t * dStride;
      const b0 = xbs + <usize>t * bStride;
      let accA = f32x4.splat(0), accB = f32x4.splat(0);
      for (let sb = 0; sb < nsb; sb++) {
        const o = <usize>sb << 8, s = <usize>sb << 5;
        let i0 = i32x4.splat(0), i1 = i32x4.splat(0), i2 = i32x4.splat(0), i3 = i32x4.splat(0);
        let j0 = i32x4.splat(0), j1 = i32x4.splat(0), j2 = i32x4.splat(0), j3 = i32x4.splat(0);
        for (let u: usize = 0; u < 256; u += 32) {
          const e = o + u, z = i32x4.splat(0);
          const A0 = v128.load(bufA + e), A1 = v128.load(bufA + e, 16), SA = v128.load32_splat(scA + s + (u >> 3));
          const B0 = v128.load(bufB + e), B1 = v128.load(bufB + e, 16), SB = v128.load32_splat(scB + s + (u >> 3));
          let X0 = v128.load(x0 + e), X1 = v128.load(x0 + e, 16);
          i0 = i32x4.add(i0, i32x4.mul(i32x4.relaxed_dot_i8x16_i7x16_add_s(X1, A1, i32x4.relaxed_dot_i8x16_i7x16_add_s(X0, A0, z)), SA));
          j0 = i32x4.add(j0, i32x4.mul(i32x4.relaxed_dot_i8x16_i7x16_add_s(X1, B1, i32x4.relaxed_dot_i8x16_i7x16_add_s(X0, B0, z)), SB));
          X0 = v128.load(x1 + e); X1 = v128.load(x1 + e, 16);
          i1 = i32x4.add(i1, i32x4.mul(i32x4.relaxed_dot_i8x16_i7x16_add_s(X1, A1, i32x4.relaxed_dot_i8x16_i7x16_add_s(X0, A0, z)), SA));
          j1 = i32x4.add(j1, i32x4.mul(i32x4.relaxed_dot_i8x16_i7x16_add_s(X1, B1, i32x4.relaxed_dot_i8x16_i7x16_add_s(X0, B0, z)), SB));
          X0 = v128.load(x2 + e); X1 = v128.load(x2 + e, 16);
          i2 = i32x4.add(i2, i32x4.mul(i32x4.relaxed_dot_i8x16_i7x16_add_s(X1, A1, i32x4.relaxed_dot_i8x16_i7x16_add_s(X0, A0, z)), SA));
          j2 = i32x4.add(j2, i32x4.mul(i32x4.relaxed_dot_i8x16_i7x16_add_s(X1, B1, i32x4.relaxed_dot_i8x16_i7x16_add_s(X0, B0, z)), SB));
          X0 = v128.load(x3 + e); X1 = v128.load(x3 + e, 16);
          i3 = i32x4.add(i3, i32x4.mul(i32x4.relaxed_dot_i8x16_i7x16_add_s(X1, A1, i32x4.relaxed_dot_i8x16_i7x16_add_s(X0, A0, z)), SA));
          j3 = i32x4.add(j3, i32x4.mul(i32x4.relaxed_dot_i8x16_i7x16_add_s(X1, B1, i32x4.relaxed_dot_i8x16_i7x16_add_s(X0, B0, z)), SB));
        }
        const so = <usize>sb << 2, mo = <usize>sb << 5;
        const DX = dx4(d0, dStride, so);
        let msA = i32x4.splat(0), msB = msA;
        if (withMin) {
          msA = minSums4(wminA + mo, b0 + mo, bStride);
          msB = minSums4(wminB + mo, b0 + mo, bStride);
        }
        accA = superK4(accA, hsum4(i0, i1, i2, i3), load<f32>(wdA + so), DX, withMin, withMin ? load<f32>(wdmA + so) : 0, msA);
        accB = superK4(accB, hsum4(j0, j1, j2, j3), load<f32>(wdB + so), DX, withMin, withMin ? load<f32>(wdmB + so) : 0, msB);
      }
      store2x4(out + ((<usize>t * <usize>m + <usize>i) << 2), <usize>m << 2, accA, accB, true, min(4, n - t));
    }
  }
  rowK(bufA, nsb, xn, xd, xbs, n, out, m, i, withMin, true, t);
  rowK(bufB, nsb, xn, xd, xbs, n, out, m, i + 1, withMin, true, t);
}

@inline function rowsK(kind: i32, w: usize, rowBytes: i32, xq: usize, xd: usize, xbs: usize, out: usize, n: i32, m: i32, k: i32, r0: i32, r1: i32, buf: usize, xn: usize, tbl: usize, xi: usize): void {
  const nsb = k >> 8;
  if (n < 4 && (kind == K_Q4_K || kind == K_Q5_K || kind == K_Q6_K)) {
    // matrix-vector: the weights read in place, token by token (the row stays in cache)
    for (let i = r0; i < r1; i++) {
      const row = w + <usize>i * <usize>rowBytes;
      for (let t = 0; t < n; t++) rowKDirect(kind, row, nsb, xq, xd, xbs, xn, t, out, m, i, tbl);
    }
    return;
  }
  const withMin = kind == K_Q2_K || kind == K_Q4_K || kind == K_Q5_K, narrow = narrowK(kind);
  let i = r0;
  // two rows decoded side by side (a decoded row takes 2k + 40·k/256 bytes; the row buffer holds 16k)
  const bufB = buf + ((((<usize>k << 1) + <usize>nsb * 40) + 15) & ~(<usize>15));
  for (; i + 2 <= r1; i += 2) {
    decodeK(kind, w + <usize>i * <usize>rowBytes, nsb, buf);
    decodeK(kind, w + <usize>(i + 1) * <usize>rowBytes, nsb, bufB);
    if (narrow) rows2KNarrow(buf, bufB, nsb, xn, xd, xbs, n, out, m, i, withMin);
    else rows2K(buf, bufB, nsb, xq, xi, xd, xbs, n, out, m, i, withMin);
  }
  for (; i < r1; i++) {
    decodeK(kind, w + <usize>i * <usize>rowBytes, nsb, buf);
    rowK(buf, nsb, narrow ? xn : xq, xd, xbs, n, out, m, i, withMin, narrow, 0);
  }
}

/** Weights of a 256-block type (Q2_K..Q6_K, Q8_K) × Q8_K activations, rows r0..r1 (xn: the
 *  activations as narrowQ8K gives them, for Q4_K / Q5_K in the relaxed build; tbl: the f16 table). */
export function matmulK(kind: i32, w: usize, rowBytes: i32, xq: usize, xd: usize, xbs: usize, out: usize, n: i32, m: i32, k: i32, r0: i32, r1: i32, buf: usize, xn: usize, tbl: usize, xi: usize): void {
  if (kind == K_Q4_K) rowsK(K_Q4_K, w, rowBytes, xq, xd, xbs, out, n, m, k, r0, r1, buf, xn, tbl, xi);
  else if (kind == K_Q6_K) rowsK(K_Q6_K, w, rowBytes, xq, xd, xbs, out, n, m, k, r0, r1, buf, xn, tbl, xi);
  else if (kind == K_Q5_K) rowsK(K_Q5_K, w, rowBytes, xq, xd, xbs, out, n, m, k, r0, r1, buf, xn, tbl, xi);
  else if (kind == K_Q3_K) rowsK(K_Q3_K, w, rowBytes, xq, xd, xbs, out, n, m, k, r0, r1, buf, xn, tbl, xi);
  else if (kind == K_Q2_K) rowsK(K_Q2_K, w, rowBytes, xq, xd, xbs, out, n, m, k, r0, r1, buf, xn, tbl, xi);
  else rowsK(-1, w, rowBytes, xq, xd, xbs, out, n, m, k, r0, r1, buf, xn, tbl, xi);   // Q8_K
}

// ------------------------------------------------------------------------ f32 activations
//
// Each (row, token) product is one f32x4 accumulator over k in steps of 4, then the tail in a
// scalar, then hsum(acc) + tail: the same in every tile shape. Tiles: 2 rows × 4 tokens for
// prefill, 4 rows × 1 token for matrix-vector products (four independent add chains), 1 × 1 for
// what is left.

@inline function mulAdd(acc: v128, w: usize, x: usize, o: usize): v128 {
  return f32x4.add(acc, f32x4.mul(v128.load(w + o), v128.load(x + o)));
}

@inline function tail(w: usize, x: usize, k4: i32, k: i32): f32 {
  let s: f32 = 0;
  for (let j = k4; j < k; j++) s += load<f32>(w + (<usize>j << 2)) * load<f32>(x + (<usize>j << 2));
  return s;
}

@inline function put(out: usize, m: i32, t: i32, i: i32, v: f32): void {
  store<f32>(out + ((<usize>t * <usize>m + <usize>i) << 2), v);
}

/** Rows wa, wb (rows i, i+1) × tokens t..t+3 at x (token stride xs bytes). */
@inline function tile2x4(wa: usize, wb: usize, x: usize, xs: usize, k: i32, out: usize, m: i32, i: i32, t: i32): void {
  const x0 = x + <usize>t * xs, x1 = x0 + xs, x2 = x1 + xs, x3 = x2 + xs;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
  const k4 = k & ~3;
  for (let j = 0; j < k4; j += 4) {
    const o = <usize>j << 2;
    const A = v128.load(wa + o), B = v128.load(wb + o);
    let X = v128.load(x0 + o);
    a0 = f32x4.add(a0, f32x4.mul(A, X)); b0 = f32x4.add(b0, f32x4.mul(B, X));
    X = v128.load(x1 + o);
    a1 = f32x4.add(a1, f32x4.mul(A, X)); b1 = f32x4.add(b1, f32x4.mul(B, X));
    X = v128.load(x2 + o);
    a2 = f32x4.add(a2, f32x4.mul(A, X)); b2 = f32x4.add(b2, f32x4.mul(B, X));
    X = v128.load(x3 + o);
    a3 = f32x4.add(a3, f32x4.mul(A, X)); b3 = f32x4.add(b3, f32x4.mul(B, X));
  }
  put(out, m, t, i, hsum(a0) + tail(wa, x0, k4, k)); put(out, m, t, i + 1, hsum(b0) + tail(wb, x0, k4, k));
  put(out, m, t + 1, i, hsum(a1) + tail(wa, x1, k4, k)); put(out, m, t + 1, i + 1, hsum(b1) + tail(wb, x1, k4, k));
  put(out, m, t + 2, i, hsum(a2) + tail(wa, x2, k4, k)); put(out, m, t + 2, i + 1, hsum(b2) + tail(wb, x2, k4, k));
  put(out, m, t + 3, i, hsum(a3) + tail(wa, x3, k4, k)); put(out, m, t + 3, i + 1, hsum(b3) + tail(wb, x3, k4, k));
}

/** Rows wa..wd (rows i..i+3) × token t. */
@inline function tile4x1(wa: usize, wb: usize, wc: usize, wd: usize, x: usize, xs: usize, k: i32, out: usize, m: i32, i: i32, t: i32): void {
  const x0 = x + <usize>t * xs;
  let a = f32x4.splat(0), b = f32x4.splat(0), c = f32x4.splat(0), d = f32x4.splat(0);
  const k4 = k & ~3;
  for (let j = 0; j < k4; j += 4) {
    const o = <usize>j << 2;
    const X = v128.load(x0 + o);
    a = f32x4.add(a, f32x4.mul(v128.load(wa + o), X));
    b = f32x4.add(b, f32x4.mul(v128.load(wb + o), X));
    c = f32x4.add(c, f32x4.mul(v128.load(wc + o), X));
    d = f32x4.add(d, f32x4.mul(v128.load(wd + o), X));
  }
  put(out, m, t, i, hsum(a) + tail(wa, x0, k4, k));
  put(out, m, t, i + 1, hsum(b) + tail(wb, x0, k4, k));
  put(out, m, t, i + 2, hsum(c) + tail(wc, x0, k4, k));
  put(out, m, t, i + 3, hsum(d) + tail(wd, x0, k4, k));
}

/** Row wa (row i) × token t. */
@inline function tile1x1(wa: usize, x: usize, xs: usize, k: i32, out: usize, m: i32, i: i32, t: i32): void {
  const x0 = x + <usize>t * xs;
  let a = f32x4.splat(0);
  const k4 = k & ~3;
  for (let j = 0; j < k4; j += 4) a = mulAdd(a, wa, x0, <usize>j << 2);
  put(out, m, t, i, hsum(a) + tail(wa, x0, k4, k));
}

/**
 * F32 weights (read in place) or F16 / BF16 / Q8_G64 (rows decoded to f32 first, into the row
 * buffer's four slots of 4k bytes) × f32 activations, rows r0..r1.
 */
export function matmulF32(kind: i32, w: usize, rowBytes: i32, x: usize, out: usize, n: i32, m: i32, k: i32, r0: i32, r1: i32, buf: usize): void {
  const xs = <usize>k << 2, slot = <usize>k << 2, rb = <usize>rowBytes;
  const direct = kind == K_F32;
  // the f32 row i: in place, or decoded into slot s
  let i = r0;
  if (n < 4) {
    for (; i + 4 <= r1; i += 4) {
      let a = w + <usize>i * rb, b = a + rb, c = b + rb, d = c + rb;
      if (!direct) {
        decodeFloat(kind, a, k, buf); decodeFloat(kind, b, k, buf + slot);
        decodeFloat(kind, c, k, buf + 2 * slot); decodeFloat(kind, d, k, buf + 3 * slot);
        a = buf; b = buf + slot; c = buf + 2 * slot; d = buf + 3 * slot;
      }
      for (let t = 0; t < n; t++) tile4x1(a, b, c, d, x, xs, k, out, m, i, t);
    }
  } else {
    for (; i + 2 <= r1; i += 2) {
      let a = w + <usize>i * rb, b = a + rb;
      if (!direct) {
        decodeFloat(kind, a, k, buf); decodeFloat(kind, b, k, buf + slot);
        a = buf; b = buf + slot;
      }
      let t = 0;
      for (; t + 4 <= n; t += 4) tile2x4(a, b, x, xs, k, out, m, i, t);
      for (; t < n; t++) { tile1x1(a, x, xs, k, out, m, i, t); tile1x1(b, x, xs, k, out, m, i + 1, t); }
    }
  }
  for (; i < r1; i++) {
    let a = w + <usize>i * rb;
    if (!direct) { decodeFloat(kind, a, k, buf); a = buf; }
    for (let t = 0; t < n; t++) tile1x1(a, x, xs, k, out, m, i, t);
  }
}
