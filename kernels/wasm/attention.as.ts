// AssemblyScript: causal grouped-query attention over the KV cache, heads h0..h1 (the twin:
// kernels/attention/attention.cpu.ts, with the same numerics where it matters: scores scaled by
// 1/sqrt(d_head) and stored as f32, the row max subtracted, exp and its sum in f64, each weight
// rounded once to f32, masked entries exactly 0). The q·k and p·v products run in f32 lanes.

import { exp64, exp64x2, hsum } from './common.as';

/** q·k over d elements (4 lanes, then the tail). */
@inline function dot(a: usize, b: usize, d: i32): f32 {
  let acc = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= d; i += 4) acc = f32x4.add(acc, f32x4.mul(v128.load(a + (<usize>i << 2)), v128.load(b + (<usize>i << 2))));
  let s = hsum(acc);
  for (; i < d; i++) s += load<f32>(a + (<usize>i << 2)) * load<f32>(b + (<usize>i << 2));
  return s;
}

/** The tail of dot() past the last whole group of 4 elements, added to s in element order. */
@inline function dotTail(s: f32, a: usize, b: usize, from: i32, d: i32): f32 {
  for (let i = from; i < d; i++) s += load<f32>(a + (<usize>i << 2)) * load<f32>(b + (<usize>i << 2));
  return s;
}

/**
 * The scores q·k·scale of keys j .. j+3 (`kvStride` bytes apart from k0) into att[j..j+3], each
 * with dot()'s operations in dot()'s order (so the same bits), four independent chains sharing the
 * loads of q; returns the larger of `max` and the four.
 */
@inline function scores4(q: usize, k0: usize, kvStride: usize, d: i32, scale: f32, att: usize, max: f32): f32 {
  const k1 = k0 + kvStride, k2 = k1 + kvStride, k3 = k2 + kvStride;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= d; i += 4) {
    const o = <usize>i << 2, qv = v128.load(q + o);
    a0 = f32x4.add(a0, f32x4.mul(qv, v128.load(k0 + o)));
    a1 = f32x4.add(a1, f32x4.mul(qv, v128.load(k1 + o)));
    a2 = f32x4.add(a2, f32x4.mul(qv, v128.load(k2 + o)));
    a3 = f32x4.add(a3, f32x4.mul(qv, v128.load(k3 + o)));
  }
  const s0 = dotTail(hsum(a0), q, k0, i, d) * scale, s1 = dotTail(hsum(a1), q, k1, i, d) * scale;
  const s2 = dotTail(hsum(a2), q, k2, i, d) * scale, s3 = dotTail(hsum(a3), q, k3, i, d) * scale;
  store<f32>(att, s0); store<f32>(att, s1, 4); store<f32>(att, s2, 8); store<f32>(att, s3, 12);
  if (s0 > max) max = s0;
  if (s1 > max) max = s1;
  if (s2 > max) max = s2;
  if (s3 > max) max = s3;
  return max;
}

/**
 * z, q: [nq, nHeads, dHead]; kc, vc: [≥ start+nq, nKvHeads, dHead]. scores, pattern: 0 or the
 * rows of heads hBase.. : [heads, nq, start+nq]. `row`: scratch of start+nq floats, used when
 * pattern is 0. z = 0: the rows only (no weighted sum of the values). Computes heads h0..h1.
 */
export function attention(z: usize, q: usize, kc: usize, vc: usize, nq: i32, start: i32, nHeads: i32, nKvHeads: i32, dHead: i32,
  scale: f32, scores: usize, pattern: usize, hBase: i32, row: usize, h0: i32, h1: i32): void {
  const kLen = start + nq;
  const group = nHeads / nKvHeads;
  const kvStride = <usize>(nKvHeads * dHead) << 2;
  for (let h = h0; h < h1; h++) {
    const kvh = <usize>((h / group) * dHead) << 2;
    for (let t = 0; t < nq; t++) {
      const seen = start + t + 1;
      const qo = q + (<usize>((t * nHeads + h) * dHead) << 2);
      const rowOff = <usize>(((h - hBase) * nq + t) * kLen) << 2;
      const att = pattern ? pattern + rowOff : row;
      // scores: q·k / sqrt(d_head)
      let max: f32 = -Infinity;
      let j = 0;
      for (; j + 4 <= seen; j += 4) max = scores4(qo, kc + <usize>j * kvStride + kvh, kvStride, dHead, scale, att + (<usize>j << 2), max);
      for (; j < seen; j++) {
        const s = dot(qo, kc + <usize>j * kvStride + kvh, dHead) * scale;
        store<f32>(att + (<usize>j << 2), s);
        if (s > max) max = s;
      }
      if (scores) {
        const so = scores + rowOff;
        for (let j = 0; j < seen; j++) store<f32>(so + (<usize>j << 2), load<f32>(att + (<usize>j << 2)));
        for (let j = seen; j < kLen; j++) store<f32>(so + (<usize>j << 2), -Infinity);
      }
      // softmax over the visible keys (an all −inf row gives zeros, as the twin's softmax)
      if (max == -Infinity) {
        for (let j = 0; j < seen; j++) store<f32>(att + (<usize>j << 2), 0);
      } else {
        let sum: f64 = 0;
        let j = 0;
        // two weights at a time, through exp64x2 where both are in its range (the sum still adds them in order)
        const m2 = f64x2.splat(<f64>max), lo = f64x2.splat(-708.0), hi = f64x2.splat(709.0);
        for (; j + 2 <= seen; j += 2) {
          const a = att + (<usize>j << 2);
          const x = f64x2.sub(f64x2.promote_low_f32x4(v128.load64_zero(a)), m2);
          let e0: f64, e1: f64;
          if (i64x2.all_true(v128.and(f64x2.ge(x, lo), f64x2.le(x, hi)))) {
            const e = exp64x2(x);
            e0 = f64x2.extract_lane(e, 0); e1 = f64x2.extract_lane(e, 1);
          } else {
            e0 = exp64(f64x2.extract_lane(x, 0)); e1 = exp64(f64x2.extract_lane(x, 1));
          }
          store<f32>(a, <f32>e0); store<f32>(a, <f32>e1, 4);
          sum += e0;
          sum += e1;
        }
        for (; j < seen; j++) {
          const e = exp64(<f64>load<f32>(att + (<usize>j << 2)) - <f64>max);
          store<f32>(att + (<usize>j << 2), <f32>e);
          sum += e;
        }
        const inv = 1.0 / sum, inv2 = f64x2.splat(inv);
        // four weights at a time: each widened to f64, times inv, rounded to f32 (the same bits)
        let k = 0;
        for (; k + 4 <= seen; k += 4) {
          const a = att + (<usize>k << 2), v = v128.load(a);
          const lo = f32x4.demote_f64x2_zero(f64x2.mul(f64x2.promote_low_f32x4(v), inv2));
          const hi = f32x4.demote_f64x2_zero(f64x2.mul(f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1)), inv2));
          v128.store(a, i32x4.shuffle(lo, hi, 0, 1, 4, 5));
        }
        for (; k < seen; k++) store<f32>(att + (<usize>k << 2), <f32>(<f64>load<f32>(att + (<usize>k << 2)) * inv));
      }
      if (pattern) for (let j = seen; j < kLen; j++) store<f32>(att + (<usize>j << 2), 0);
      // z = Σ_j pattern_j · v_j: 32 lanes of z at a time in registers, then 4, then 1
      if (!z) continue;
      const zo = z + (<usize>((t * nHeads + h) * dHead) << 2);
      let i = 0;
      for (; i + 32 <= dHead; i += 32) {
        let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
        let a4 = f32x4.splat(0), a5 = f32x4.splat(0), a6 = f32x4.splat(0), a7 = f32x4.splat(0);
        let vi = vc + kvh + (<usize>i << 2);
        for (let j = 0; j < seen; j++) {
          const p = f32x4.splat(load<f32>(att + (<usize>j << 2)));
          a0 = f32x4.add(a0, f32x4.mul(p, v128.load(vi))); a1 = f32x4.add(a1, f32x4.mul(p, v128.load(vi, 16)));
          a2 = f32x4.add(a2, f32x4.mul(p, v128.load(vi, 32))); a3 = f32x4.add(a3, f32x4.mul(p, v128.load(vi, 48)));
          a4 = f32x4.add(a4, f32x4.mul(p, v128.load(vi, 64))); a5 = f32x4.add(a5, f32x4.mul(p, v128.load(vi, 80)));
          a6 = f32x4.add(a6, f32x4.mul(p, v128.load(vi, 96))); a7 = f32x4.add(a7, f32x4.mul(p, v128.load(vi, 112)));
          vi += kvStride;
        }
        const zi = zo + (<usize>i << 2);
        v128.store(zi, a0); v128.store(zi, a1, 16); v128.store(zi, a2, 32); v128.store(zi, a3, 48);
        v128.store(zi, a4, 64); v128.store(zi, a5, 80); v128.store(zi, a6, 96); v128.store(zi, a7, 112);
      }
      for (; i + 4 <= dHead; i += 4) {
        let acc = f32x4.splat(0);
        const vi = vc + kvh + (<usize>i << 2);
        for (let j = 0; j < seen; j++) {
          acc = f32x4.add(acc, f32x4.mul(f32x4.splat(load<f32>(att + (<usize>j << 2))), v128.load(vi + <usize>j * kvStride)));
        }
        v128.store(zo + (<usize>i << 2), acc);
      }
      for (; i < dHead; i++) {
        let acc: f32 = 0;
        const vi = vc + kvh + (<usize>i << 2);
        for (let j = 0; j < seen; j++) acc += load<f32>(att + (<usize>j << 2)) * load<f32>(vi + <usize>j * kvStride);
        store<f32>(zo + (<usize>i << 2), acc);
      }
    }
  }
}
