// ggml's original block types (32 values per block, one f16 scale, optional f16 min) and
// llama2.c's Q8_G64. Layouts, bytes little-endian:
//   Q4_0  [d f16][qs 16]            x = (q - 8)·d        q: low nibbles = values 0..15, high = 16..31
//   Q4_1  [d f16][m f16][qs 16]     x = q·d + m
//   Q5_0  [d f16][qh u32][qs 16]    x = (q - 16)·d       bit 4 of value j is bit j of qh
//   Q5_1  [d f16][m f16][qh u32][qs 16]   x = q·d + m
//   Q8_0  [d f16][qs int8 × 32]     x = q·d
//   Q8_G64 [s f32][q int8 × 64]     x = q·s              (llama2.c version-2 checkpoints)
//
// Quantizers follow llama.cpp's quantize_row_*_ref bit for bit: every intermediate is rounded to
// f32 (Math.fround) where C computes in float, and the odd rounding rules are kept (Q4_0 truncates
// x·id + 8.5, Q8_0 rounds half away from zero), so files we write equal llama-quantize's output.
//
// Dequantized values equal ggml's exactly: scale·q is exact in f32 (f16 scale × small integer),
// and where a min is added the double sum is exact, so the one rounding on store matches C
// (Q8_G64's f32 scale × q rounds once, as llama2.c's runq.c does).
// dot() factors the scale out of each block and accumulates in f64.

import type { TensorType } from '../tensor.ts';
import { readF16, readF32, writeF16, writeF32 } from './half.ts';

const f = Math.fround;

/** C's (int8_t) cast of a float: truncate toward zero, keep the low 8 bits (NaN -> 0). */
function truncInt8(v: number): number {
  return (Math.trunc(v) << 24) >> 24;
}

function readU32(src: Uint8Array, o: number): number {
  return (src[o]! | (src[o + 1]! << 8) | (src[o + 2]! << 16) | (src[o + 3]! << 24)) >>> 0;
}

function writeU32(out: Uint8Array, o: number, v: number): void {
  out[o] = v & 0xff;
  out[o + 1] = (v >>> 8) & 0xff;
  out[o + 2] = (v >>> 16) & 0xff;
  out[o + 3] = v >>> 24;
}

/** The value of largest magnitude in x[o, o+n) (first one on ties), as quantize_row_q4_0_ref finds it. */
function signedAbsMax(x: Float32Array, o: number, n: number): number {
  let amax = 0;
  let max = 0;
  for (let j = 0; j < n; j++) {
    const v = x[o + j]!;
    if (amax < Math.abs(v)) { amax = Math.abs(v); max = v; }
  }
  return max;
}

// ============================================================================================ Q4_0

export const Q4_0: TensorType = {
  name: 'Q4_0',
  ggmlId: 2,
  blockSize: 32,
  blockBytes: 18,
  dequantize(src, offset, out, outOffset, n) {
    for (let o = offset, y = outOffset, end = outOffset + n; y < end; o += 18, y += 32) {
      const d = readF16(src, o);
      for (let j = 0; j < 16; j++) {
        const q = src[o + 2 + j]!;
        out[y + j] = ((q & 15) - 8) * d;
        out[y + j + 16] = ((q >> 4) - 8) * d;
      }
    }
  },
  dot(src, offset, x, xOffset, n) {
    let acc = 0;
    for (let o = offset, xo = xOffset, end = xOffset + n; xo < end; o += 18, xo += 32) {
      let s = 0;
      for (let j = 0; j < 16; j++) {
        const q = src[o + 2 + j]!;
        s += ((q & 15) - 8) * x[xo + j]! + ((q >> 4) - 8) * x[xo + j + 16]!;
      }
      acc += readF16(src, o) * s;
    }
    return acc;
  },
  quantize(x, xOffset, out, offset, n) {
    for (let xo = xOffset, o = offset, end = xOffset + n; xo < end; xo += 32, o += 18) {
      const d = f(signedAbsMax(x, xo, 32) / -8);
      const id = d ? f(1 / d) : 0;
      writeF16(out, o, d);
      for (let j = 0; j < 16; j++) {
        const q0 = Math.min(15, truncInt8(f(f(x[xo + j]! * id) + 8.5)));
        const q1 = Math.min(15, truncInt8(f(f(x[xo + 16 + j]! * id) + 8.5)));
        out[o + 2 + j] = (q0 & 0xff) | (q1 << 4);
      }
    }
  },
};

// ============================================================================================ Q4_1

export const Q4_1: TensorType = {
  name: 'Q4_1',
  ggmlId: 3,
  blockSize: 32,
  blockBytes: 20,
  dequantize(src, offset, out, outOffset, n) {
    for (let o = offset, y = outOffset, end = outOffset + n; y < end; o += 20, y += 32) {
      const d = readF16(src, o);
      const m = readF16(src, o + 2);
      for (let j = 0; j < 16; j++) {
        const q = src[o + 4 + j]!;
        out[y + j] = (q & 15) * d + m;
        out[y + j + 16] = (q >> 4) * d + m;
      }
    }
  },
  dot(src, offset, x, xOffset, n) {
    let acc = 0;
    for (let o = offset, xo = xOffset, end = xOffset + n; xo < end; o += 20, xo += 32) {
      let s = 0;
      let sx = 0;
      for (let j = 0; j < 16; j++) {
        const q = src[o + 4 + j]!;
        const a = x[xo + j]!;
        const b = x[xo + j + 16]!;
        s += (q & 15) * a + (q >> 4) * b;
        sx += a + b;
      }
      acc += readF16(src, o) * s + readF16(src, o + 2) * sx;
    }
    return acc;
  },
  quantize(x, xOffset, out, offset, n) {
    for (let xo = xOffset, o = offset, end = xOffset + n; xo < end; xo += 32, o += 20) {
      let min = 3.4028234663852886e38;
      let max = -3.4028234663852886e38;
      for (let j = 0; j < 32; j++) {
        const v = x[xo + j]!;
        if (v < min) min = v;
        if (v > max) max = v;
      }
      const d = f(f(max - min) / 15);
      const id = d ? f(1 / d) : 0;
      writeF16(out, o, d);
      writeF16(out, o + 2, min);
      for (let j = 0; j < 16; j++) {
        const q0 = Math.min(15, truncInt8(f(f(f(x[xo + j]! - min) * id) + 0.5)));
        const q1 = Math.min(15, truncInt8(f(f(f(x[xo + 16 + j]! - min) * id) + 0.5)));
        out[o + 4 + j] = (q0 & 0xff) | (q1 << 4);
      }
    }
  },
};

// ============================================================================================ Q5_0

export const Q5_0: TensorType = {
  name: 'Q5_0',
  ggmlId: 6,
  blockSize: 32,
  blockBytes: 22,
  dequantize(src, offset, out, outOffset, n) {
    for (let o = offset, y = outOffset, end = outOffset + n; y < end; o += 22, y += 32) {
      const d = readF16(src, o);
      const qh = readU32(src, o + 2);
      for (let j = 0; j < 16; j++) {
        const q = src[o + 6 + j]!;
        out[y + j] = (((q & 15) | (((qh >>> j) << 4) & 0x10)) - 16) * d;
        out[y + j + 16] = (((q >> 4) | ((qh >>> (j + 12)) & 0x10)) - 16) * d;
      }
    }
  },
  dot(src, offset, x, xOffset, n) {
    let acc = 0;
    for (let o = offset, xo = xOffset, end = xOffset + n; xo < end; o += 22, xo += 32) {
      const qh = readU32(src, o + 2);
      let s = 0;
      for (let j = 0; j < 16; j++) {
        const q = src[o + 6 + j]!;
        s += (((q & 15) | (((qh >>> j) << 4) & 0x10)) - 16) * x[xo + j]!
          + (((q >> 4) | ((qh >>> (j + 12)) & 0x10)) - 16) * x[xo + j + 16]!;
      }
      acc += readF16(src, o) * s;
    }
    return acc;
  },
  quantize(x, xOffset, out, offset, n) {
    for (let xo = xOffset, o = offset, end = xOffset + n; xo < end; xo += 32, o += 22) {
      const d = f(signedAbsMax(x, xo, 32) / -16);
      const id = d ? f(1 / d) : 0;
      writeF16(out, o, d);
      let qh = 0;
      for (let j = 0; j < 16; j++) {
        const q0 = Math.min(31, truncInt8(f(f(x[xo + j]! * id) + 16.5))) & 0xff;
        const q1 = Math.min(31, truncInt8(f(f(x[xo + 16 + j]! * id) + 16.5))) & 0xff;
        out[o + 6 + j] = (q0 & 15) | ((q1 & 15) << 4);
        qh |= ((q0 & 0x10) >> 4) << j;
        qh |= ((q1 & 0x10) >> 4) << (j + 16);
      }
      writeU32(out, o + 2, qh >>> 0);
    }
  },
};

// ============================================================================================ Q5_1

export const Q5_1: TensorType = {
  name: 'Q5_1',
  ggmlId: 7,
  blockSize: 32,
  blockBytes: 24,
  dequantize(src, offset, out, outOffset, n) {
    for (let o = offset, y = outOffset, end = outOffset + n; y < end; o += 24, y += 32) {
      const d = readF16(src, o);
      const m = readF16(src, o + 2);
      const qh = readU32(src, o + 4);
      for (let j = 0; j < 16; j++) {
        const q = src[o + 8 + j]!;
        out[y + j] = ((q & 15) | (((qh >>> j) << 4) & 0x10)) * d + m;
        out[y + j + 16] = ((q >> 4) | ((qh >>> (j + 12)) & 0x10)) * d + m;
      }
    }
  },
  dot(src, offset, x, xOffset, n) {
    let acc = 0;
    for (let o = offset, xo = xOffset, end = xOffset + n; xo < end; o += 24, xo += 32) {
      const qh = readU32(src, o + 4);
      let s = 0;
      let sx = 0;
      for (let j = 0; j < 16; j++) {
        const q = src[o + 8 + j]!;
        const a = x[xo + j]!;
        const b = x[xo + j + 16]!;
        s += ((q & 15) | (((qh >>> j) << 4) & 0x10)) * a + ((q >> 4) | ((qh >>> (j + 12)) & 0x10)) * b;
        sx += a + b;
      }
      acc += readF16(src, o) * s + readF16(src, o + 2) * sx;
    }
    return acc;
  },
  quantize(x, xOffset, out, offset, n) {
    for (let xo = xOffset, o = offset, end = xOffset + n; xo < end; xo += 32, o += 24) {
      let min = 3.4028234663852886e38;
      let max = -3.4028234663852886e38;
      for (let j = 0; j < 32; j++) {
        const v = x[xo + j]!;
        if (v < min) min = v;
        if (v > max) max = v;
      }
      const d = f(f(max - min) / 31);
      const id = d ? f(1 / d) : 0;
      writeF16(out, o, d);
      writeF16(out, o + 2, min);
      let qh = 0;
      for (let j = 0; j < 16; j++) {
        // (uint8_t) cast, no clamp, as in the reference
        const q0 = truncInt8(f(f(f(x[xo + j]! - min) * id) + 0.5)) & 0xff;
        const q1 = truncInt8(f(f(f(x[xo + 16 + j]! - min) * id) + 0.5)) & 0xff;
        out[o + 8 + j] = (q0 & 15) | ((q1 & 15) << 4);
        qh |= ((q0 & 0x10) >> 4) << j;
        qh |= ((q1 & 0x10) >> 4) << (j + 16);
      }
      writeU32(out, o + 4, qh >>> 0);
    }
  },
};

// ============================================================================================ Q8_0

/** C's roundf: half away from zero. */
function roundHalfAway(v: number): number {
  return v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5);
}

export const Q8_0: TensorType = {
  name: 'Q8_0',
  ggmlId: 8,
  blockSize: 32,
  blockBytes: 34,
  dequantize(src, offset, out, outOffset, n) {
    for (let o = offset, y = outOffset, end = outOffset + n; y < end; o += 34, y += 32) {
      const d = readF16(src, o);
      for (let j = 0; j < 32; j++) out[y + j] = ((src[o + 2 + j]! << 24) >> 24) * d;
    }
  },
  dot(src, offset, x, xOffset, n) {
    let acc = 0;
    for (let o = offset, xo = xOffset, end = xOffset + n; xo < end; o += 34, xo += 32) {
      let s = 0;
      for (let j = 0; j < 32; j++) s += ((src[o + 2 + j]! << 24) >> 24) * x[xo + j]!;
      acc += readF16(src, o) * s;
    }
    return acc;
  },
  quantize(x, xOffset, out, offset, n) {
    for (let xo = xOffset, o = offset, end = xOffset + n; xo < end; xo += 32, o += 34) {
      let amax = 0;
      for (let j = 0; j < 32; j++) {
        const a = Math.abs(x[xo + j]!);
        amax = amax > a ? amax : a;                     // MAX(amax, fabsf(v))
      }
      const d = f(amax / 127);
      const id = d ? f(1 / d) : 0;
      writeF16(out, o, d);
      for (let j = 0; j < 32; j++) out[o + 2 + j] = roundHalfAway(f(x[xo + j]! * id)) & 0xff;
    }
  },
};

// ========================================================================================== Q8_G64

/** torch.round: half to even. */
function roundHalfEven(v: number): number {
  const r = Math.floor(v);
  const diff = v - r;
  if (diff > 0.5) return r + 1;
  if (diff < 0.5) return r;
  return r % 2 === 0 ? r : r + 1;
}

export const Q8_G64: TensorType = {
  name: 'Q8_G64',
  ggmlId: undefined,
  blockSize: 64,
  blockBytes: 68,
  dequantize(src, offset, out, outOffset, n) {
    for (let o = offset, y = outOffset, end = outOffset + n; y < end; o += 68, y += 64) {
      const s = readF32(src, o);
      for (let j = 0; j < 64; j++) out[y + j] = ((src[o + 4 + j]! << 24) >> 24) * s;
    }
  },
  dot(src, offset, x, xOffset, n) {
    let acc = 0;
    for (let o = offset, xo = xOffset, end = xOffset + n; xo < end; o += 68, xo += 64) {
      let s = 0;
      for (let j = 0; j < 64; j++) s += ((src[o + 4 + j]! << 24) >> 24) * x[xo + j]!;
      acc += readF32(src, o) * s;
    }
    return acc;
  },
  // llama2.c export.py quantize_q80: scale = max|w| / 127 and q = round(w / scale) in f32, ties to
  // even (torch.round). An all-zero group gets scale 0 and q 0 (export.py would divide 0 by 0).
  quantize(x, xOffset, out, offset, n) {
    for (let xo = xOffset, o = offset, end = xOffset + n; xo < end; xo += 64, o += 68) {
      let wmax = 0;
      for (let j = 0; j < 64; j++) wmax = Math.max(wmax, Math.abs(x[xo + j]!));
      const scale = f(wmax / 127);
      writeF32(out, o, scale);
      for (let j = 0; j < 64; j++) {
        out[o + 4 + j] = scale === 0 ? 0 : roundHalfEven(f(x[xo + j]! / scale)) & 0xff;
      }
    }
  },
};
