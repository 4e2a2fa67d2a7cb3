// k-quants with eight sub-blocks of 32 values per super-block of 256 (Q4_K, Q5_K), and Q8_K.
// Layouts (ggml-common.h), bytes little-endian:
//   Q4_K (144) [d f16][dmin f16][scales 12][qs 128]
//   Q5_K (176) [d f16][dmin f16][scales 12][qh 32][qs 128]
//              sub-block j: x = d·sc_j·q - dmin·m_j, sc_j and m_j 6 bits each, packed in 12 bytes
//              (get_scale_min_k4): j < 4: sc = b[j] & 63, m = b[j+4] & 63;
//              j >= 4: sc = (b[j+4] & 15) | (b[j-4] >> 6) << 4, m = (b[j+4] >> 4) | (b[j] >> 6) << 4.
//              Per 64 values (c = 0..3): qs[32c + l] holds value 64c + l (low nibble, sub-block 2c)
//              and 64c + 32 + l (high nibble, sub-block 2c+1); Q5_K adds bit 2c / 2c+1 of qh[l].
//   Q8_K (292) [d f32][qs int8 × 256][bsums int16 × 16]    x = d·q; bsums[k] = Σ q over 16k..16k+15
//
// Dequantized values equal ggml's exactly; quantizers follow quantize_row_q{4,5,8}_K_ref.

import type { TensorType } from '../tensor.ts';
import { readF16, readF32, writeF16, writeF32 } from './half.ts';
import { makeQkx2Quants, nearestInt } from './ksearch.ts';

const f = Math.fround;
const QK_K = 256;

/** get_scale_min_k4: the 6-bit scale (low byte) and min (high byte) of sub-block j. */
function scaleMinK4(src: Uint8Array, so: number, j: number): number {
  if (j < 4) return (src[so + j]! & 63) | ((src[so + j + 4]! & 63) << 8);
  const sc = (src[so + j + 4]! & 15) | ((src[so + j - 4]! >> 6) << 4);
  const m = (src[so + j + 4]! >> 4) | ((src[so + j]! >> 6) << 4);
  return sc | (m << 8);
}

const L = new Uint8Array(QK_K);
const Laux = new Uint8Array(32);
const weights = new Float32Array(32);
const subScales = new Float32Array(8);
const subMins = new Float32Array(8);

/**
 * The shared part of quantize_row_q4_K_ref / q5_K_ref: searches each sub-block's scale and min,
 * stores d, dmin and the packed 6-bit scales at `o`, and leaves the levels (0..nmax) in L.
 */
function quantizeScalesK(
  x: Float32Array, xo: number, out: Uint8Array, o: number, nmax: number, rmin: number, nstep: number,
): void {
  let maxScale = 0;
  let maxMin = 0;
  for (let j = 0; j < 8; j++) {
    const xb = xo + 32 * j;
    let sumX2 = 0;
    for (let l = 0; l < 32; l++) sumX2 = f(sumX2 + f(x[xb + l]! * x[xb + l]!));
    const avX = f(Math.sqrt(f(sumX2 / 32)));
    for (let l = 0; l < 32; l++) weights[l] = avX + Math.abs(x[xb + l]!);  // stored as f32
    subScales[j] = makeQkx2Quants(32, nmax, x, xb, weights, L, 32 * j, subMins, j, Laux, rmin, f(0.1), nstep, false);
    if (subScales[j]! > maxScale) maxScale = subScales[j]!;
    if (subMins[j]! > maxMin) maxMin = subMins[j]!;
  }
  const invScale = maxScale > 0 ? f(63 / maxScale) : 0;
  const invMin = maxMin > 0 ? f(63 / maxMin) : 0;
  const so = o + 4;
  for (let j = 0; j < 8; j++) {
    const ls = Math.min(63, nearestInt(f(invScale * subScales[j]!)) & 0xff);
    const lm = Math.min(63, nearestInt(f(invMin * subMins[j]!)) & 0xff);
    if (j < 4) {
      out[so + j] = ls;
      out[so + j + 4] = lm;
    } else {
      out[so + j + 4] = (ls & 15) | ((lm & 15) << 4);
      out[so + j - 4] = out[so + j - 4]! | ((ls >> 4) << 6);
      out[so + j] = out[so + j]! | ((lm >> 4) << 6);
    }
  }
  writeF16(out, o, f(maxScale / 63));
  writeF16(out, o + 2, f(maxMin / 63));
  // requantize every value against the stored (rounded) scales and mins
  const dAll = readF16(out, o);
  const mAll = readF16(out, o + 2);
  for (let j = 0; j < 8; j++) {
    const sm = scaleMinK4(out, so, j);
    const d = f(dAll * (sm & 0xff));
    if (!d) continue;
    const dm = f(mAll * (sm >> 8));
    for (let i = 0; i < 32; i++) {
      L[32 * j + i] = Math.max(0, Math.min(nmax, nearestInt(f(f(x[xo + 32 * j + i]! + dm) / d))));
    }
  }
}

// ============================================================================================ Q4_K

export const Q4_K: TensorType = {
  name: 'Q4_K',
  ggmlId: 12,
  blockSize: QK_K,
  blockBytes: 144,
  dequantize(src, offset, out, outOffset, n) {
    for (let o = offset, y = outOffset, end = outOffset + n; y < end; o += 144, y += QK_K) {
      const d = readF16(src, o);
      const dmin = readF16(src, o + 2);
      for (let c = 0; c < 4; c++) {
        const sm1 = scaleMinK4(src, o + 4, 2 * c);
        const sm2 = scaleMinK4(src, o + 4, 2 * c + 1);
        const d1 = d * (sm1 & 0xff), m1 = dmin * (sm1 >> 8);
        const d2 = d * (sm2 & 0xff), m2 = dmin * (sm2 >> 8);
        const qo = o + 16 + 32 * c;
        const yo = y + 64 * c;
        for (let l = 0; l < 32; l++) {
          const q = src[qo + l]!;
          out[yo + l] = d1 * (q & 15) - m1;
          out[yo + l + 32] = d2 * (q >> 4) - m2;
        }
      }
    }
  },
  dot(src, offset, x, xOffset, n) {
    let acc = 0;
    for (let o = offset, xo = xOffset, end = xOffset + n; xo < end; o += 144, xo += QK_K) {
      const d = readF16(src, o);
      const dmin = readF16(src, o + 2);
      for (let c = 0; c < 4; c++) {
        const qo = o + 16 + 32 * c;
        const xb = xo + 64 * c;
        let s1 = 0, s2 = 0, sx1 = 0, sx2 = 0;
        for (let l = 0; l < 32; l++) {
          const q = src[qo + l]!;
          const a = x[xb + l]!, b = x[xb + l + 32]!;
          s1 += (q & 15) * a;
          s2 += (q >> 4) * b;
          sx1 += a;
          sx2 += b;
        }
        const sm1 = scaleMinK4(src, o + 4, 2 * c);
        const sm2 = scaleMinK4(src, o + 4, 2 * c + 1);
        acc += d * ((sm1 & 0xff) * s1 + (sm2 & 0xff) * s2) - dmin * ((sm1 >> 8) * sx1 + (sm2 >> 8) * sx2);
      }
    }
    return acc;
  },
  quantize(x, xOffset, out, offset, n) {
    for (let xo = xOffset, o = offset, end = xOffset + n; xo < end; xo += QK_K, o += 144) {
      quantizeScalesK(x, xo, out, o, 15, -1, 20);
      for (let c = 0; c < 4; c++) {
        for (let l = 0; l < 32; l++) out[o + 16 + 32 * c + l] = L[64 * c + l]! | (L[64 * c + 32 + l]! << 4);
      }
    }
  },
};

// ============================================================================================ Q5_K

export const Q5_K: TensorType = {
  name: 'Q5_K',
  ggmlId: 13,
  blockSize: QK_K,
  blockBytes: 176,
  dequantize(src, offset, out, outOffset, n) {
    for (let o = offset, y = outOffset, end = outOffset + n; y < end; o += 176, y += QK_K) {
      const d = readF16(src, o);
      const dmin = readF16(src, o + 2);
      for (let c = 0; c < 4; c++) {
        const sm1 = scaleMinK4(src, o + 4, 2 * c);
        const sm2 = scaleMinK4(src, o + 4, 2 * c + 1);
        const d1 = d * (sm1 & 0xff), m1 = dmin * (sm1 >> 8);
        const d2 = d * (sm2 & 0xff), m2 = dmin * (sm2 >> 8);
        const qo = o + 48 + 32 * c;
        const u1 = 1 << (2 * c), u2 = 2 << (2 * c);
        const yo = y + 64 * c;
        for (let l = 0; l < 32; l++) {
          const q = src[qo + l]!;
          const h = src[o + 16 + l]!;
          out[yo + l] = d1 * ((q & 15) + (h & u1 ? 16 : 0)) - m1;
          out[yo + l + 32] = d2 * ((q >> 4) + (h & u2 ? 16 : 0)) - m2;
        }
      }
    }
  },
  dot(src, offset, x, xOffset, n) {
    let acc = 0;
    for (let o = offset, xo = xOffset, end = xOffset + n; xo < end; o += 176, xo += QK_K) {
      const d = readF16(src, o);
      const dmin = readF16(src, o + 2);
      for (let c = 0; c < 4; c++) {
        const qo = o + 48 + 32 * c;
        const u1 = 1 << (2 * c), u2 = 2 << (2 * c);
        const xb = xo + 64 * c;
        let s1 = 0, s2 = 0, sx1 = 0, sx2 = 0;
        for (let l = 0; l < 32; l++) {
          const q = src[qo + l]!;
          const h = src[o + 16 + l]!;
          const a = x[xb + l]!, b = x[xb + l + 32]!;
          s1 += ((q & 15) + (h & u1 ? 16 : 0)) * a;
          s2 += ((q >> 4) + (h & u2 ? 16 : 0)) * b;
          sx1 += a;
          sx2 += b;
        }
        const sm1 = scaleMinK4(src, o + 4, 2 * c);
        const sm2 = scaleMinK4(src, o + 4, 2 * c + 1);
        acc += d * ((sm1 & 0xff) * s1 + (sm2 & 0xff) * s2) - dmin * ((sm1 >> 8) * sx1 + (sm2 >> 8) * sx2);
      }
    }
    return acc;
  },
  quantize(x, xOffset, out, offset, n) {
    for (let xo = xOffset, o = offset, end = xOffset + n; xo < end; xo += QK_K, o += 176) {
      quantizeScalesK(x, xo, out, o, 31, -0.5, 15);
      out.fill(0, o + 16, o + 48);
      for (let c = 0; c < 4; c++) {
        for (let l = 0; l < 32; l++) {
          let l1 = L[64 * c + l]!;
          let l2 = L[64 * c + 32 + l]!;
          let h = out[o + 16 + l]!;
          if (l1 > 15) { l1 -= 16; h |= 1 << (2 * c); }
          if (l2 > 15) { l2 -= 16; h |= 2 << (2 * c); }
          out[o + 16 + l] = h;
          out[o + 48 + 32 * c + l] = l1 | (l2 << 4);
        }
      }
    }
  },
};

// ============================================================================================ Q8_K

export const Q8_K: TensorType = {
  name: 'Q8_K',
  ggmlId: 15,
  blockSize: QK_K,
  blockBytes: 292,
  dequantize(src, offset, out, outOffset, n) {
    for (let o = offset, y = outOffset, end = outOffset + n; y < end; o += 292, y += QK_K) {
      const d = readF32(src, o);
      for (let j = 0; j < QK_K; j++) out[y + j] = d * ((src[o + 4 + j]! << 24) >> 24);
    }
  },
  dot(src, offset, x, xOffset, n) {
    let acc = 0;
    for (let o = offset, xo = xOffset, end = xOffset + n; xo < end; o += 292, xo += QK_K) {
      let s = 0;
      for (let j = 0; j < QK_K; j++) s += ((src[o + 4 + j]! << 24) >> 24) * x[xo + j]!;
      acc += readF32(src, o) * s;
    }
    return acc;
  },
  // quantize_row_q8_K_ref. An all-zero block gets zero bsums too (ggml leaves them unwritten).
  quantize(x, xOffset, out, offset, n) {
    for (let xo = xOffset, o = offset, end = xOffset + n; xo < end; xo += QK_K, o += 292) {
      let max = 0;
      let amax = 0;
      for (let j = 0; j < QK_K; j++) {
        const a = Math.abs(x[xo + j]!);
        if (a > amax) { amax = a; max = x[xo + j]!; }
      }
      if (!amax) {
        out.fill(0, o, o + 292);
        continue;
      }
      const iscale = f(-127 / max);
      for (let j = 0; j < QK_K; j++) out[o + 4 + j] = Math.min(127, nearestInt(f(iscale * x[xo + j]!)));
      for (let k = 0; k < 16; k++) {
        let sum = 0;
        for (let i = 0; i < 16; i++) sum += (out[o + 4 + 16 * k + i]! << 24) >> 24;
        out[o + 260 + 2 * k] = sum & 0xff;
        out[o + 261 + 2 * k] = (sum >> 8) & 0xff;
      }
      writeF32(out, o, f(1 / iscale));
    }
  },
};
