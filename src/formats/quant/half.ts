// 16-bit floats: IEEE half (f16) and bfloat16 (bf16), converted exactly as ggml converts them.
// f16 -> f32 is a table lookup (65536 entries, 256 KiB) because every quantized block carries f16
// scales and the kernels read them in their inner loops. f32 -> f16 / bf16 round to nearest, ties
// to even; NaN stays NaN (f16: 0x7e00 with the sign, bf16: quieted top half), like ggml's
// ggml_compute_fp32_to_fp16 / ggml_compute_fp32_to_bf16.

// One scratch word to reinterpret f32 bits without a DataView per value.
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** The f32 bit pattern of a number (rounded to f32 first). */
export function f32Bits(x: number): number {
  scratchF32[0] = x;
  return scratchU32[0]!;
}

/** The f32 whose bit pattern is `bits`. */
export function f32FromBits(bits: number): number {
  scratchU32[0] = bits >>> 0;
  return scratchF32[0]!;
}

function buildF16Table(): Float32Array {
  const table = new Float32Array(65536);
  const bits = new Uint32Array(table.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0x1f) {
      // inf or NaN: keep the payload (shifted into the f32 mantissa) by writing bits directly
      bits[h] = (sign | 0x7f800000 | (mant << 13)) >>> 0;
    } else if (exp === 0) {
      table[h] = (sign ? -1 : 1) * mant * 2 ** -24;      // zero or subnormal: mant · 2^-24
    } else {
      table[h] = (sign ? -1 : 1) * (1024 + mant) * 2 ** (exp - 25);
    }
  }
  return table;
}

/** F16_TO_F32[h] is the value of the f16 with bits h. */
export const F16_TO_F32: Float32Array = buildF16Table();
/** The same table as f32 bit patterns, for copying values (NaN payloads included) bit-exactly. */
export const F16_TO_F32_BITS: Uint32Array = new Uint32Array(F16_TO_F32.buffer);

export function f16ToF32(h: number): number {
  return F16_TO_F32[h & 0xffff]!;
}

/** Reads the little-endian f16 at byte `o` of `src` as a number. */
export function readF16(src: Uint8Array, o: number): number {
  return F16_TO_F32[src[o]! | (src[o + 1]! << 8)]!;
}

/** f32 -> f16 bits, round to nearest even; overflow gives ±inf, NaN gives 0x7e00 | sign. */
export function f32ToF16(x: number): number {
  const b = f32Bits(x);
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | (mant ? 0x7e00 : 0x7c00);
  if (exp > 112) {
    // normal half (or overflow): drop 13 mantissa bits with rounding; a carry walks into the
    // exponent, and past exponent 30 it lands exactly on 0x7c00 (inf)
    if (exp - 112 >= 31) return sign | 0x7c00;
    let h = ((exp - 112) << 10) | (mant >>> 13);
    const rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
    return sign | (h > 0x7c00 ? 0x7c00 : h);
  }
  // subnormal half: the value in units of 2^-24 is m24 / 2^shift
  const shift = 126 - exp;
  if (shift > 24) return sign;                    // below 2^-25: rounds to zero
  const m24 = mant | 0x800000;
  let h = m24 >>> shift;
  const rem = m24 & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  if (rem > halfway || (rem === halfway && (h & 1))) h++;
  return sign | h;
}

/** Reads the little-endian bf16 at byte `o` of `src`. */
export function readBf16(src: Uint8Array, o: number): number {
  return f32FromBits((src[o]! << 16) | (src[o + 1]! << 24));
}

export function bf16ToF32(h: number): number {
  return f32FromBits((h & 0xffff) << 16);
}

/** f32 -> bf16 bits, round to nearest even (subnormals kept); NaN is quieted, as ggml does. */
export function f32ToBf16(x: number): number {
  const b = f32Bits(x);
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Writes the f16 bits of x little-endian at byte `o`. */
export function writeF16(out: Uint8Array, o: number, x: number): void {
  const h = f32ToF16(x);
  out[o] = h & 0xff;
  out[o + 1] = h >>> 8;
}

/** Reads a little-endian f32 at any byte offset. */
export function readF32(src: Uint8Array, o: number): number {
  return f32FromBits(src[o]! | (src[o + 1]! << 8) | (src[o + 2]! << 16) | (src[o + 3]! << 24));
}

/** Writes x as a little-endian f32 at any byte offset. */
export function writeF32(out: Uint8Array, o: number, x: number): void {
  const b = f32Bits(x);
  out[o] = b & 0xff;
  out[o + 1] = (b >>> 8) & 0xff;
  out[o + 2] = (b >>> 16) & 0xff;
  out[o + 3] = b >>> 24;
}
