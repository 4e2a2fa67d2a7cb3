// Unquantized types: F32, F16, BF16 (block size 1). Bytes are little-endian, as in GGUF and
// safetensors; readers assume a little-endian host for F32 (every platform glassbox runs on).

import type { TensorType } from '../tensor.ts';
import { F16_TO_F32_BITS, f32ToBf16, f32ToF16 } from './half.ts';

/** A Float32Array over src's bytes when they are 4-byte aligned, else a copy. */
function f32View(src: Uint8Array, offset: number, n: number): Float32Array {
  const byteOffset = src.byteOffset + offset;
  if (byteOffset % 4 === 0) return new Float32Array(src.buffer, byteOffset, n);
  const copy = new Float32Array(n);
  new Uint8Array(copy.buffer).set(src.subarray(offset, offset + 4 * n));
  return copy;
}

/** A Uint16Array over src's bytes when they are 2-byte aligned, else a copy. */
function u16View(src: Uint8Array, offset: number, n: number): Uint16Array {
  const byteOffset = src.byteOffset + offset;
  if (byteOffset % 2 === 0) return new Uint16Array(src.buffer, byteOffset, n);
  const copy = new Uint16Array(n);
  new Uint8Array(copy.buffer).set(src.subarray(offset, offset + 2 * n));
  return copy;
}

// Scratch for dot(): rows are widened to f32 a chunk at a time.
const CHUNK = 1024;
const chunk = new Float32Array(CHUNK);
const chunkBits = new Uint32Array(chunk.buffer);

export const F32: TensorType = {
  name: 'F32',
  ggmlId: 0,
  blockSize: 1,
  blockBytes: 4,
  dequantize(src, offset, out, outOffset, n) {
    // a byte copy: works at any alignment and keeps NaN payloads
    new Uint8Array(out.buffer, out.byteOffset + 4 * outOffset, 4 * n).set(src.subarray(offset, offset + 4 * n));
  },
  dot(src, offset, x, xOffset, n) {
    const w = f32View(src, offset, n);
    let acc = 0;
    for (let i = 0; i < n; i++) acc += w[i]! * x[xOffset + i]!;
    return acc;
  },
  quantize(x, xOffset, out, offset, n) {
    out.set(new Uint8Array(x.buffer, x.byteOffset + 4 * xOffset, 4 * n), offset);
  },
};

/**
 * Widens f16 bit patterns h[from, from+m) to f32 bit patterns at bits[at..]. Integer work only,
 * so NaN payloads survive: a normal f16 becomes an f32 by rebiasing its exponent (+112) under the
 * shifted mantissa; zero, subnormals, inf and NaN take the table. (Reading the 256 KiB table for
 * every value is several times slower than this on random-looking weights.)
 */
function widenF16(h: Uint16Array, from: number, m: number, bits: Uint32Array, at: number): void {
  for (let i = 0; i < m; i++) {
    const v = h[from + i]!;
    const e = v & 0x7c00;
    bits[at + i] = e !== 0 && e !== 0x7c00
      ? ((v & 0x8000) << 16) | (((v & 0x7fff) + 0x1c000) << 13)
      : F16_TO_F32_BITS[v]!;
  }
}

export const F16: TensorType = {
  name: 'F16',
  ggmlId: 1,
  blockSize: 1,
  blockBytes: 2,
  dequantize(src, offset, out, outOffset, n) {
    widenF16(u16View(src, offset, n), 0, n, new Uint32Array(out.buffer, out.byteOffset, out.length), outOffset);
  },
  dot(src, offset, x, xOffset, n) {
    const h = u16View(src, offset, n);
    let acc = 0;
    for (let i0 = 0; i0 < n; i0 += CHUNK) {
      const m = Math.min(CHUNK, n - i0);
      widenF16(h, i0, m, chunkBits, 0);
      for (let i = 0; i < m; i++) acc += chunk[i]! * x[xOffset + i0 + i]!;
    }
    return acc;
  },
  quantize(x, xOffset, out, offset, n) {
    for (let i = 0, o = offset; i < n; i++, o += 2) {
      const h = f32ToF16(x[xOffset + i]!);
      out[o] = h & 0xff;
      out[o + 1] = h >>> 8;
    }
  },
};

export const BF16: TensorType = {
  name: 'BF16',
  ggmlId: 30,
  blockSize: 1,
  blockBytes: 2,
  dequantize(src, offset, out, outOffset, n) {
    // a bf16 is the top half of an f32: shift its bits into place
    const h = u16View(src, offset, n);
    const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
    for (let i = 0; i < n; i++) bits[outOffset + i] = h[i]! << 16;
  },
  dot(src, offset, x, xOffset, n) {
    const h = u16View(src, offset, n);
    let acc = 0;
    for (let i0 = 0; i0 < n; i0 += CHUNK) {
      const m = Math.min(CHUNK, n - i0);
      for (let i = 0; i < m; i++) chunkBits[i] = h[i0 + i]! << 16;
      for (let i = 0; i < m; i++) acc += chunk[i]! * x[xOffset + i0 + i]!;
    }
    return acc;
  },
  quantize(x, xOffset, out, offset, n) {
    for (let i = 0, o = offset; i < n; i++, o += 2) {
      const h = f32ToBf16(x[xOffset + i]!);
      out[o] = h & 0xff;
      out[o + 1] = h >>> 8;
    }
  },
};
