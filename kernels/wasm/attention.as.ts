// AssemblyScript: causal grouped-query attention over the KV cache, heads h0..h1 (the twin:
// kernels/attention/attention.cpu.ts, with the same numerics where it matters: scores scaled by
// 1/sqrt(d_head) and stored as f32, the row max subtracted, exp and its sum in f64, each weight
// rounded once to f32, masked entries exactly 0). The q·k and p·v products run in f32 lanes.

import { exp64, hsum } from './common.as';

/** q·k over d elements (4 lanes, then the tail). */
@inline function dot(a: usize, b: usize, d: i32): f32 {
  let acc = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= d; i += 4) acc = f32x4.add(acc, f32x4.mul(v128.load(a + (<usize>i << 2)), v128.load(b + (<usize>i << 2))));
  let s = hsum(acc);
  for (; i < d; i++) s += load<f32>(a + (<usize>i << 2)) * load<f32>(b + (<usize>i << 2));
  return s;
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
      for (let j = 0; j < seen; j++) {
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
        for (let j = 0; j < seen; j++) {
          const e = exp64(<f64>load<f32>(att + (<usize>j << 2)) - <f64>max);
          store<f32>(att + (<usize>j << 2), <f32>e);
          sum += e;
        }
        const inv = 1.0 / sum;
        for (let j = 0; j < seen; j++) store<f32>(att + (<usize>j << 2), <f32>(<f64>load<f32>(att + (<usize>j << 2)) * inv));
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
