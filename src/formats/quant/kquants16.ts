// k-quants with sixteen sub-blocks of 16 values per super-block of 256: Q2_K, Q3_K, Q6_K.
// Layouts (ggml-common.h), bytes little-endian:
//   Q2_K (84)  [scales 16][qs 64][d f16][dmin f16]
//              sub-block j: x = d·(scales[j] & 15)·q - dmin·(scales[j] >> 4), q 2 bits
//   Q3_K (110) [hmask 32][qs 64][scales 12][d f16]
//              x = d·(s_j - 32)·(q - 4), q = low 2 bits from qs + high bit from hmask, s_j 6 bits
//   Q6_K (210) [ql 128][qh 64][scales int8 16][d f16]
//              x = d·scales[j]·(q - 32), q = low 4 bits from ql + high 2 bits from qh
// 2-bit fields (Q2_K/Q3_K qs): in each half of 128 values, value 32g + p sits in byte p, bits 2g.
// Q3_K's high bit of value e is bit e/32 of hmask[e % 32].
// Q6_K, per half of 128: value l (+32, +64, +96) takes ql[l] low, ql[l+32] low, ql[l] high,
// ql[l+32] high nibbles and the 2-bit fields 0, 2, 4, 6 of qh[l].
//
// Dequantized values equal ggml's exactly (the products are exact in f32 and the one rounding
// happens on store); quantizers follow quantize_row_q{2,3,6}_K_ref bit for bit (see ksearch.ts).

import type { TensorType } from '../tensor.ts';
import { readF16, writeF16 } from './half.ts';
import { GROUP_MAX_EPS, makeQ3Quants, makeQkx2Quants, makeQxQuants, nearestInt } from './ksearch.ts';

const f = Math.fround;
const QK_K = 256;

// Scratch for the quantizers (JS is single-threaded per realm; none of these escape a call).
const Lu = new Uint8Array(QK_K);
const Li = new Int8Array(QK_K);
const Laux = new Uint8Array(32);
const weights = new Float32Array(32);
const subScales = new Float32Array(16);
const subMins = new Float32Array(16);

/** Packs 2-bit levels L[0..256) into 64 bytes at `o`, the Q2_K / Q3_K qs order. */
function pack2(L: Uint8Array | Int8Array, out: Uint8Array, o: number): void {
  for (let h = 0; h < 2; h++) {
    for (let p = 0; p < 32; p++) {
      const e = 128 * h + p;
      out[o + 32 * h + p] = L[e]! | (L[e + 32]! << 2) | (L[e + 64]! << 4) | (L[e + 96]! << 6);
    }
  }
}

// ============================================================================================ Q2_K

export const Q2_K: TensorType = {
  name: 'Q2_K',
  ggmlId: 10,
  blockSize: QK_K,
  blockBytes: 84,
  dequantize(src, offset, out, outOffset, n) {
    for (let o = offset, y = outOffset, end = outOffset + n; y < end; o += 84, y += QK_K) {
      const d = readF16(src, o + 80);
      const dmin = readF16(src, o + 82);
      for (let j = 0; j < 16; j++) {
        const sc = src[o + j]!;
        const dl = d * (sc & 15);
        const ml = dmin * (sc >> 4);
        const qo = o + 16 + 32 * (j >> 3) + 16 * (j & 1);      // qs bytes of this sub-block
        const shift = 2 * ((j >> 1) & 3);
        const yo = y + 16 * j;
        for (let l = 0; l < 16; l++) out[yo + l] = dl * ((src[qo + l]! >> shift) & 3) - ml;
      }
    }
  },
  dot(src, offset, x, xOffset, n) {
    let acc = 0;
    for (let o = offset, xo = xOffset, end = xOffset + n; xo < end; o += 84, xo += QK_K) {
      const d = readF16(src, o + 80);
      const dmin = readF16(src, o + 82);
      for (let j = 0; j < 16; j++) {
        const sc = src[o + j]!;
        const qo = o + 16 + 32 * (j >> 3) + 16 * (j & 1);
        const shift = 2 * ((j >> 1) & 3);
        const xb = xo + 16 * j;
        let s = 0;
        let sx = 0;
        for (let l = 0; l < 16; l++) {
          const xv = x[xb + l]!;
          s += ((src[qo + l]! >> shift) & 3) * xv;
          sx += xv;
        }
        acc += d * (sc & 15) * s - dmin * (sc >> 4) * sx;
      }
    }
    return acc;
  },
  quantize(x, xOffset, out, offset, n) {
    for (let xo = xOffset, o = offset, end = xOffset + n; xo < end; xo += QK_K, o += 84) {
      let maxScale = 0;
      let maxMin = 0;
      for (let j = 0; j < 16; j++) {
        for (let l = 0; l < 16; l++) weights[l] = Math.abs(x[xo + 16 * j + l]!);
        subScales[j] = makeQkx2Quants(16, 3, x, xo + 16 * j, weights, Lu, 16 * j, subMins, j, Laux, -0.5, f(0.1), 15, true);
        if (subScales[j]! > maxScale) maxScale = subScales[j]!;
        if (subMins[j]! > maxMin) maxMin = subMins[j]!;
      }
      if (maxScale > 0) {
        const iscale = f(15 / maxScale);
        for (let j = 0; j < 16; j++) out[o + j] = nearestInt(f(iscale * subScales[j]!));
        writeF16(out, o + 80, f(maxScale / 15));
      } else {
        for (let j = 0; j < 16; j++) out[o + j] = 0;
        writeF16(out, o + 80, 0);
      }
      if (maxMin > 0) {
        const iscale = f(15 / maxMin);
        for (let j = 0; j < 16; j++) out[o + j] = out[o + j]! | (nearestInt(f(iscale * subMins[j]!)) << 4);
        writeF16(out, o + 82, f(maxMin / 15));
      } else {
        writeF16(out, o + 82, 0);
      }
      // requantize every value against the stored (rounded) scales and mins
      const dAll = readF16(out, o + 80);
      const mAll = readF16(out, o + 82);
      for (let j = 0; j < 16; j++) {
        const sc = out[o + j]!;
        const d = f(dAll * (sc & 15));
        if (!d) continue;
        const dm = f(mAll * (sc >> 4));
        for (let i = 0; i < 16; i++) {
          Lu[16 * j + i] = Math.max(0, Math.min(3, nearestInt(f(f(x[xo + 16 * j + i]! + dm) / d))));
        }
      }
      pack2(Lu, out, o + 16);
    }
  },
};

// ============================================================================================ Q3_K

/** The 6-bit scale of sub-block j (0..15) of the Q3_K block at `o`, minus 32. */
function q3Scale(src: Uint8Array, o: number, j: number): number {
  const low = j < 8 ? src[o + 96 + j]! & 15 : src[o + 96 + j - 8]! >> 4;
  const high = (src[o + 104 + (j & 3)]! >> (2 * (j >> 2))) & 3;
  return (low | (high << 4)) - 32;
}

export const Q3_K: TensorType = {
  name: 'Q3_K',
  ggmlId: 11,
  blockSize: QK_K,
  blockBytes: 110,
  dequantize(src, offset, out, outOffset, n) {
    for (let o = offset, y = outOffset, end = outOffset + n; y < end; o += 110, y += QK_K) {
      const d = readF16(src, o + 108);
      for (let j = 0; j < 16; j++) {
        const dl = d * q3Scale(src, o, j);
        const p0 = 16 * (j & 1);                               // byte index within qs half / hmask
        const qo = o + 32 + 32 * (j >> 3) + p0;
        const shift = 2 * ((j >> 1) & 3);
        const hbit = 1 << (j >> 1);                            // value e has its high bit at bit e/32
        const yo = y + 16 * j;
        for (let l = 0; l < 16; l++) {
          const q = ((src[qo + l]! >> shift) & 3) - (src[o + p0 + l]! & hbit ? 0 : 4);
          out[yo + l] = dl * q;
        }
      }
    }
  },
  dot(src, offset, x, xOffset, n) {
    let acc = 0;
    for (let o = offset, xo = xOffset, end = xOffset + n; xo < end; o += 110, xo += QK_K) {
      const d = readF16(src, o + 108);
      for (let j = 0; j < 16; j++) {
        const p0 = 16 * (j & 1);
        const qo = o + 32 + 32 * (j >> 3) + p0;
        const shift = 2 * ((j >> 1) & 3);
        const hbit = 1 << (j >> 1);
        const xb = xo + 16 * j;
        let s = 0;
        for (let l = 0; l < 16; l++) {
          s += (((src[qo + l]! >> shift) & 3) - (src[o + p0 + l]! & hbit ? 0 : 4)) * x[xb + l]!;
        }
        acc += d * q3Scale(src, o, j) * s;
      }
    }
    return acc;
  },
  quantize(x, xOffset, out, offset, n) {
    for (let xo = xOffset, o = offset, end = xOffset + n; xo < end; xo += QK_K, o += 110) {
      let maxScale = 0;
      let amax = 0;
      for (let j = 0; j < 16; j++) {
        subScales[j] = makeQ3Quants(16, 4, x, xo + 16 * j, Li, 16 * j);
        const a = Math.abs(subScales[j]!);
        if (a > amax) { amax = a; maxScale = subScales[j]!; }
      }
      for (let k = 0; k < 12; k++) out[o + 96 + k] = 0;
      if (maxScale) {
        const iscale = f(-32 / maxScale);
        for (let j = 0; j < 16; j++) {
          let l = (nearestInt(f(iscale * subScales[j]!)) << 24) >> 24;   // int8_t l = nearest_int(...)
          l = Math.max(-32, Math.min(31, l)) + 32;
          if (j < 8) out[o + 96 + j] = l & 15;
          else out[o + 96 + j - 8] = out[o + 96 + j - 8]! | ((l & 15) << 4);
          out[o + 104 + (j & 3)] = out[o + 104 + (j & 3)]! | ((l >> 4) << (2 * (j >> 2)));
        }
        writeF16(out, o + 108, f(1 / iscale));
      } else {
        writeF16(out, o + 108, 0);
      }
      const dAll = readF16(out, o + 108);
      for (let j = 0; j < 16; j++) {
        const d = f(dAll * q3Scale(out, o, j));
        if (!d) continue;
        for (let i = 0; i < 16; i++) {
          Li[16 * j + i] = Math.max(-4, Math.min(3, nearestInt(f(x[xo + 16 * j + i]! / d)))) + 4;
        }
      }
      // the high bit of each 3-bit level goes to hmask, the low 2 bits to qs
      for (let k = 0; k < 32; k++) out[o + k] = 0;
      for (let e = 0; e < QK_K; e++) {
        if (Li[e]! > 3) {
          out[o + (e & 31)] = out[o + (e & 31)]! | (1 << (e >> 5));
          Li[e] = Li[e]! - 4;
        }
      }
      pack2(Li, out, o + 32);
    }
  },
};

// ============================================================================================ Q6_K

export const Q6_K: TensorType = {
  name: 'Q6_K',
  ggmlId: 14,
  blockSize: QK_K,
  blockBytes: 210,
  dequantize(src, offset, out, outOffset, n) {
    for (let o = offset, y = outOffset, end = outOffset + n; y < end; o += 210, y += QK_K) {
      const d = readF16(src, o + 208);
      for (let h = 0; h < 2; h++) {
        const ql = o + 64 * h;
        const qh = o + 128 + 32 * h;
        const sc = o + 192 + 8 * h;
        const yo = y + 128 * h;
        for (let l = 0; l < 32; l++) {
          const is = l >> 4;
          const a = src[ql + l]!;
          const b = src[ql + l + 32]!;
          const hb = src[qh + l]!;
          out[yo + l] = d * ((src[sc + is]! << 24) >> 24) * (((a & 15) | ((hb & 3) << 4)) - 32);
          out[yo + l + 32] = d * ((src[sc + is + 2]! << 24) >> 24) * (((b & 15) | (((hb >> 2) & 3) << 4)) - 32);
          out[yo + l + 64] = d * ((src[sc + is + 4]! << 24) >> 24) * (((a >> 4) | (((hb >> 4) & 3) << 4)) - 32);
          out[yo + l + 96] = d * ((src[sc + is + 6]! << 24) >> 24) * (((b >> 4) | (((hb >> 6) & 3) << 4)) - 32);
        }
      }
    }
  },
  dot(src, offset, x, xOffset, n) {
    let acc = 0;
    for (let o = offset, xo = xOffset, end = xOffset + n; xo < end; o += 210, xo += QK_K) {
      const d = readF16(src, o + 208);
      for (let h = 0; h < 2; h++) {
        const ql = o + 64 * h;
        const qh = o + 128 + 32 * h;
        const xh = xo + 128 * h;
        // s_k sums sub-block k of this half (16 values each): l < 16 feeds even k, l >= 16 odd k
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
        for (let l = 0; l < 16; l++) {
          const a = src[ql + l]!, b = src[ql + l + 32]!, hb = src[qh + l]!;
          s0 += (((a & 15) | ((hb & 3) << 4)) - 32) * x[xh + l]!;
          s2 += (((b & 15) | (((hb >> 2) & 3) << 4)) - 32) * x[xh + l + 32]!;
          s4 += (((a >> 4) | (((hb >> 4) & 3) << 4)) - 32) * x[xh + l + 64]!;
          s6 += (((b >> 4) | (((hb >> 6) & 3) << 4)) - 32) * x[xh + l + 96]!;
        }
        for (let l = 16; l < 32; l++) {
          const a = src[ql + l]!, b = src[ql + l + 32]!, hb = src[qh + l]!;
          s1 += (((a & 15) | ((hb & 3) << 4)) - 32) * x[xh + l]!;
          s3 += (((b & 15) | (((hb >> 2) & 3) << 4)) - 32) * x[xh + l + 32]!;
          s5 += (((a >> 4) | (((hb >> 4) & 3) << 4)) - 32) * x[xh + l + 64]!;
          s7 += (((b >> 4) | (((hb >> 6) & 3) << 4)) - 32) * x[xh + l + 96]!;
        }
        const sc = o + 192 + 8 * h;
        acc += d * (((src[sc]! << 24) >> 24) * s0 + ((src[sc + 1]! << 24) >> 24) * s1
          + ((src[sc + 2]! << 24) >> 24) * s2 + ((src[sc + 3]! << 24) >> 24) * s3
          + ((src[sc + 4]! << 24) >> 24) * s4 + ((src[sc + 5]! << 24) >> 24) * s5
          + ((src[sc + 6]! << 24) >> 24) * s6 + ((src[sc + 7]! << 24) >> 24) * s7);
      }
    }
    return acc;
  },
  quantize(x, xOffset, out, offset, n) {
    for (let xo = xOffset, o = offset, end = xOffset + n; xo < end; xo += QK_K, o += 210) {
      let maxScale = 0;
      let maxAbsScale = 0;
      for (let j = 0; j < 16; j++) {
        subScales[j] = makeQxQuants(16, 32, x, xo + 16 * j, Li, 16 * j);
        const a = Math.abs(subScales[j]!);
        if (a > maxAbsScale) { maxAbsScale = a; maxScale = subScales[j]!; }
      }
      if (maxAbsScale < GROUP_MAX_EPS) {
        out.fill(0, o, o + 210);
        continue;
      }
      const iscale = f(-128 / maxScale);
      writeF16(out, o + 208, f(1 / iscale));
      for (let j = 0; j < 16; j++) out[o + 192 + j] = Math.min(127, nearestInt(f(iscale * subScales[j]!)));
      const dAll = readF16(out, o + 208);
      for (let j = 0; j < 16; j++) {
        const d = f(dAll * ((out[o + 192 + j]! << 24) >> 24));
        if (!d) continue;
        for (let i = 0; i < 16; i++) {
          Li[16 * j + i] = Math.max(-32, Math.min(31, nearestInt(f(x[xo + 16 * j + i]! / d)))) + 32;
        }
      }
      for (let h = 0; h < 2; h++) {
        const e = 128 * h;
        for (let l = 0; l < 32; l++) {
          const q1 = Li[e + l]!, q2 = Li[e + l + 32]!, q3 = Li[e + l + 64]!, q4 = Li[e + l + 96]!;
          out[o + 64 * h + l] = (q1 & 15) | ((q3 & 15) << 4);
          out[o + 64 * h + l + 32] = (q2 & 15) | ((q4 & 15) << 4);
          out[o + 128 + 32 * h + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
        }
      }
    }
  },
};
