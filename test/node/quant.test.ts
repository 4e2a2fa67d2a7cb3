// Tensor types (src/formats/quant/): hand-built blocks, bit-exactness against llama.cpp (golden
// hashes), round-trip error bounds, dot == dequantize-then-dot, and the registry's errors.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { UnsupportedError } from '../../src/engine/errors.ts';
import type { TensorType, TensorTypeName } from '../../src/formats/tensor.ts';
import { byteSize } from '../../src/formats/tensor.ts';
import { ALL_TENSOR_TYPES, getTensorType, tensorTypeByGgmlId } from '../../src/formats/quant/index.ts';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, F16_TO_F32 } from '../../src/formats/quant/half.ts';

// ------------------------------------------------------------------------------------- helpers

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Box-Muller standard normals from a uniform source. */
function gaussian(next: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
}

/** 24 super-blocks of varied data: gaussian, zero, constant, huge, tiny, one-signed, heavy-tailed,
 *  sparse, on a grid (ties), integers, mixed scales. The llama.cpp goldens below were made from it. */
function goldenInput(): Float32Array {
  const u = rng(20240601);
  const g = gaussian(u);
  const x = new Float32Array(24 * 256);
  for (let b = 0; b < 24; b++) {
    for (let i = 0; i < 256; i++) {
      const k = 256 * b + i;
      if (b < 8) x[k] = g();
      else if (b === 8) x[k] = 0;
      else if (b === 9) x[k] = 0.75;
      else if (b < 12) x[k] = 1000 * g();
      else if (b === 12) x[k] = 1e-4 * g();
      else if (b === 13) x[k] = 2 * u();
      else if (b === 14) x[k] = -1 - 2 * u();
      else if (b === 15) x[k] = g() / (u() + 0.05);
      else if (b === 16) x[k] = u() < 0.1 ? g() : 0;
      else if (b === 17) x[k] = Math.round(4 * g()) / 4;
      else if (b === 18) x[k] = i - 128;
      else x[k] = g() * Math.exp(g());
    }
  }
  return x;
}

function randomBlocks(blockBytes: number, count: number, seed: number): Uint8Array {
  const u = rng(seed);
  const out = new Uint8Array(blockBytes * count);
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(u() * 256);
  return out;
}

function sha256(a: Uint8Array | Uint16Array | Float32Array): string {
  let bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (a instanceof Float32Array) {
    // NaN payloads are not part of the contract: hash every NaN as 0x7fc00000
    const bits = new Uint32Array(a.length);
    bits.set(new Uint32Array(a.buffer, a.byteOffset, a.length));
    for (let i = 0; i < a.length; i++) if (Number.isNaN(a[i])) bits[i] = 0x7fc00000;
    bytes = new Uint8Array(bits.buffer);
  }
  return createHash('sha256').update(bytes).digest('hex');
}

function quantize(t: TensorType, x: Float32Array): Uint8Array {
  const q = new Uint8Array(byteSize(t, x.length));
  t.quantize(x, 0, q, 0, x.length);
  return q;
}

function dequantize(t: TensorType, q: Uint8Array, n: number): Float32Array {
  const y = new Float32Array(n);
  t.dequantize(q, 0, y, 0, n);
  return y;
}

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);

// ------------------------------------------------------------------------------------ registry

test('registry: every type, its ggml id and block geometry (ggml_blck_size / ggml_type_size)', () => {
  const expected: [TensorTypeName, number | undefined, number, number][] = [
    ['F32', 0, 1, 4], ['F16', 1, 1, 2], ['BF16', 30, 1, 2],
    ['Q4_0', 2, 32, 18], ['Q4_1', 3, 32, 20], ['Q5_0', 6, 32, 22], ['Q5_1', 7, 32, 24], ['Q8_0', 8, 32, 34],
    ['Q2_K', 10, 256, 84], ['Q3_K', 11, 256, 110], ['Q4_K', 12, 256, 144], ['Q5_K', 13, 256, 176],
    ['Q6_K', 14, 256, 210], ['Q8_K', 15, 256, 292], ['Q8_G64', undefined, 64, 68],
  ];
  assert.equal(ALL_TENSOR_TYPES.length, expected.length);
  for (const [name, id, blockSize, blockBytes] of expected) {
    const t = getTensorType(name);
    assert.equal(t.name, name);
    assert.deepEqual([t.ggmlId, t.blockSize, t.blockBytes], [id, blockSize, blockBytes], name);
    if (id !== undefined) assert.equal(tensorTypeByGgmlId(id, 'x.gguf'), t);
  }
});

test('registry: unknown types and ggml ids throw UnsupportedError naming the tensor and the id', () => {
  const where = "model.gguf: tensor 'blk.0.attn_q.weight'";
  for (const [id, name] of [[16, 'IQ2_XXS'], [9, 'Q8_1'], [34, 'TQ1_0'], [23, 'IQ4_XS'], [39, 'MXFP4']] as const) {
    assert.throws(() => tensorTypeByGgmlId(id, where), (e: unknown) => {
      assert.ok(e instanceof UnsupportedError);
      assert.match(e.message, new RegExp(`^model\\.gguf: tensor 'blk\\.0\\.attn_q\\.weight'.*${name} \\(id ${id}\\)`));
      assert.match(e.message, /glassbox does not read/);
      return true;
    });
  }
  assert.throws(() => tensorTypeByGgmlId(4242, where), (e: unknown) =>
    e instanceof UnsupportedError && /unknown type id 4242/.test(e.message) && e.message.startsWith(where));
  assert.throws(() => getTensorType('Q7_Z' as TensorTypeName), UnsupportedError);
});

// ---------------------------------------------------------------------------------- f16 / bf16

test('f16 -> f32: special values worked out by hand', () => {
  const cases: [number, number][] = [
    [0x0000, 0], [0x3c00, 1], [0xc000, -2], [0x3555, 0.333251953125], [0x7bff, 65504],
    [0x0400, 2 ** -14], [0x0001, 2 ** -24], [0x03ff, 1023 * 2 ** -24], [0x8001, -(2 ** -24)],
    [0x7c00, Infinity], [0xfc00, -Infinity],
  ];
  for (const [h, v] of cases) assert.equal(f16ToF32(h), v, h.toString(16));
  assert.ok(Object.is(f16ToF32(0x8000), -0));
  assert.ok(Number.isNaN(f16ToF32(0x7e00)) && Number.isNaN(f16ToF32(0xfc01)));
  assert.equal(F16_TO_F32.length, 65536);
  // the table equals llama.cpp's ggml_fp16_to_fp32_row over all 65536 patterns
  assert.equal(sha256(F16_TO_F32), '385ff5fe69182797cda5f1827e20cf423f4416bc9246f27d0eec27cac9039259');
});

test('f32 -> f16: round to nearest even, overflow, subnormals, NaN', () => {
  const cases: [number, number][] = [
    [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff],
    [65519.99, 0x7bff], [65520, 0x7c00],            // 65520 is halfway to 2^16: ties to even = inf
    [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02],   // ties: to the even mantissa
    [1 + 2 ** -11 + 2 ** -20, 0x3c01],              // just above the tie rounds up
    [2 ** -24, 0x0001], [1.5 * 2 ** -24, 0x0002], [2.5 * 2 ** -24, 0x0002], // subnormal ties
    [2 ** -25, 0x0000], [2 ** -25 * 1.0000001, 0x0001], [1e-10, 0], [-1e-10, 0x8000],
    [2 ** -14 - 2 ** -25, 0x0400],                  // rounds up into the smallest normal
    [Infinity, 0x7c00], [-Infinity, 0xfc00], [1e6, 0x7c00], [-0, 0x8000],
  ];
  for (const [v, h] of cases) assert.equal(f32ToF16(v), h, `${v}`);
  assert.equal(f32ToF16(NaN), 0x7e00);
});

test('bf16: round to nearest even like ggml, subnormals kept, NaN quieted', () => {
  const cases: [number, number][] = [
    [1, 0x3f80], [-2, 0xc000], [1 + 2 ** -8, 0x3f80], [1 + 3 * 2 ** -8, 0x3f82], [1 + 2 ** -8 + 2 ** -20, 0x3f81],
    [3.4028234663852886e38, 0x7f80], [Infinity, 0x7f80], [-Infinity, 0xff80], [-0, 0x8000],
    [2 ** -133, 0x0001], [2 ** -149, 0x0000], [3 * 2 ** -134, 0x0002],
  ];
  for (const [v, h] of cases) assert.equal(f32ToBf16(v), h, `${v}`);
  assert.equal(f32ToBf16(NaN), 0x7fc0);
  assert.equal(bf16ToF32(0x3f80), 1);
  assert.equal(bf16ToF32(0x0001), 2 ** -133);
  assert.ok(Object.is(bf16ToF32(0x8000), -0));
  assert.ok(Number.isNaN(bf16ToF32(0x7fc0)));
});

test('F16 / BF16 / F32 tensors: special values through dequantize', () => {
  // F16: 1, -0, inf, -inf, NaN, smallest subnormal, largest normal
  const h = dequantize(getTensorType('F16'), bytes(0x00, 0x3c, 0x00, 0x80, 0x00, 0x7c, 0x00, 0xfc, 0x00, 0x7e, 0x01, 0x00, 0xff, 0x7b), 7);
  assert.deepEqual([h[0], h[2], h[3], h[5], h[6]], [1, Infinity, -Infinity, 2 ** -24, 65504]);
  assert.ok(Object.is(h[1], -0) && Number.isNaN(h[4]));
  // BF16: 1, -0, -inf, NaN, the smallest subnormal 2^-133
  const b = dequantize(getTensorType('BF16'), bytes(0x80, 0x3f, 0x00, 0x80, 0x80, 0xff, 0xc0, 0x7f, 0x01, 0x00), 5);
  assert.deepEqual([b[0], b[2], b[4]], [1, -Infinity, 2 ** -133]);
  assert.ok(Object.is(b[1], -0) && Number.isNaN(b[3]));
  // the same F16 bytes one byte into a buffer (unaligned), through dequantize and dot
  const padded = bytes(0xee, 0x00, 0x3c, 0x00, 0x80, 0x01, 0x00, 0xff, 0x7b, 0x00, 0xc0);
  const hu = new Float32Array(5);
  getTensorType('F16').dequantize(padded, 1, hu, 0, 5);
  assert.deepEqual([...hu], [1, -0, 2 ** -24, 65504, -2]);
  assert.equal(getTensorType('F16').dot(padded, 1, Float32Array.from([3, 5, 2 ** 24, 1, 0.25]), 0, 5), 3 + 1 + 65504 - 0.5);
  assert.equal(getTensorType('BF16').dot(padded, 1, Float32Array.from([1, 0, 0, 0, 0]), 0, 5), 2 ** -7);   // bf16 0x3c00
  // F32 at an unaligned offset: bytes of 1.5 and -2 after one byte of padding
  const src = bytes(0xaa, 0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0xc0);
  const y = new Float32Array(3);
  getTensorType('F32').dequantize(src, 1, y, 1, 2);
  assert.deepEqual([...y], [0, 1.5, -2]);
  assert.equal(getTensorType('F32').dot(src, 1, Float32Array.from([2, 3]), 0, 2), 1.5 * 2 - 2 * 3);
});

// ------------------------------------------------------------------------- hand-built blocks

test('Q4_0: a block with d = 0.5', () => {
  // byte j holds value j (low nibble) and value j+16 (high nibble); x = (q - 8)·d
  const qs = [0x80, 0x7f, 0x0f, 0xf0, 0x88, 0x19, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x3c];
  const y = dequantize(getTensorType('Q4_0'), bytes(0x00, 0x38, ...qs), 32);   // 0x3800 = 0.5
  assert.deepEqual([y[0], y[16], y[1], y[17], y[2], y[18], y[3], y[19]], [-4, 0, 3.5, -0.5, 3.5, -4, -4, 3.5]);
  assert.deepEqual([y[4], y[20], y[5], y[21], y[6], y[22], y[15], y[31]], [0, 0, 0.5, -3.5, -4, -4, 2, -2.5]);
});

test('Q4_1, Q5_0, Q5_1, Q8_0, Q8_G64: hand-built blocks', () => {
  // Q4_1: d = 0.5, m = -1; x = q·d + m
  const q41 = dequantize(getTensorType('Q4_1'), bytes(0x00, 0x38, 0x00, 0xbc, 0xf0, 0x21, ...new Array(14).fill(0)), 32);
  assert.deepEqual([q41[0], q41[16], q41[1], q41[17], q41[2]], [-1, 6.5, -0.5, 0, -1]);
  // Q5_0: d = 2, qh bits 0 and 17 set; x = (q - 16)·d with bit 4 of q from qh
  const q50 = dequantize(getTensorType('Q5_0'), bytes(0x00, 0x40, 0x01, 0x00, 0x02, 0x00, 0x3f, 0x0f, ...new Array(14).fill(0)), 32);
  assert.deepEqual([q50[0], q50[16], q50[1], q50[17], q50[2]], [30, -26, -2, 0, -32]);
  // Q5_1: d = 1, m = 0.5, qh bit 31 set
  const q51 = dequantize(getTensorType('Q5_1'), bytes(0x00, 0x3c, 0x00, 0x38, 0x00, 0x00, 0x00, 0x80, 0x21, ...new Array(14).fill(0), 0xf0), 32);
  assert.deepEqual([q51[0], q51[16], q51[15], q51[31]], [1.5, 2.5, 0.5, 31.5]);
  // Q8_0: d = 0.25; int8 values -128, -1, 0, 1, 127
  const q80 = dequantize(getTensorType('Q8_0'), bytes(0x00, 0x34, 0x80, 0xff, 0x00, 0x01, 0x7f, ...new Array(27).fill(0)), 32);
  assert.deepEqual([...q80.subarray(0, 5)], [-32, -0.25, 0, 0.25, 31.75]);
  // Q8_G64: f32 scale 0.5 (0x3f000000), int8 values
  const g = dequantize(getTensorType('Q8_G64'), bytes(0x00, 0x00, 0x00, 0x3f, 0x81, 0x02, ...new Array(62).fill(0)), 64);
  assert.deepEqual([g[0], g[1], g[2]], [-63.5, 1, 0]);
});

test('Q4_K: a super-block with packed 6-bit scales and mins', () => {
  // d = 1, dmin = 0.5; sub-block scales sc = [1,2,3,4,17,33,48,63], mins m = [0,1,2,3,20,36,50,62]
  // packed (get_scale_min_k4): b[0..3] = sc[0..3] | (sc[4..7] >> 4) << 6,
  //   b[4..7] = m[0..3] | (m[4..7] >> 4) << 6, b[8..11] = (sc[4..7] & 15) | (m[4..7] & 15) << 4
  const scales = [65, 130, 195, 196, 64, 129, 194, 195, 65, 65, 32, 239];
  // qs[32c + l] = (l & 15) | (15 - (l & 15)) << 4: sub-block 2c gets l & 15, 2c+1 gets 15 - (l & 15)
  const qs = Array.from({ length: 128 }, (_, i) => (i & 15) | ((15 - (i & 15)) << 4));
  const y = dequantize(getTensorType('Q4_K'), bytes(0x00, 0x3c, 0x00, 0x38, ...scales, ...qs), 256);
  // x = d·sc·q - dmin·m
  assert.equal(y[0], 0);                   // sub 0, q 0:  1·0 - 0.5·0
  assert.equal(y[5], 5);                   // sub 0, q 5:  1·5 - 0
  assert.equal(y[32], 29.5);               // sub 1, q 15: 2·15 - 0.5·1
  assert.equal(y[67], 8);                  // sub 2, q 3:  3·3 - 0.5·2
  assert.equal(y[97], 54.5);               // sub 3, q 14: 4·14 - 0.5·3
  assert.equal(y[135], 109);               // sub 4, q 7:  17·7 - 0.5·20
  assert.equal(y[162], 411);               // sub 5, q 13: 33·13 - 0.5·36
  assert.equal(y[207], 695);               // sub 6, q 15: 48·15 - 0.5·50
  assert.equal(y[255], -31);               // sub 7, q 0:  63·0 - 0.5·62
});

test('Q6_K: a super-block with ql / qh / int8 scales', () => {
  const ql = new Array(128).fill(0);
  const qh = new Array(64).fill(0);
  // value 0: q = 5 | 2<<4 = 37; value 32: q = 15 | 3<<4 = 63; value 64: q = 1 | 0<<4; value 96: 10 | 1<<4
  ql[0] = 0x15; ql[32] = 0xaf; qh[0] = 2 | (3 << 2) | (0 << 4) | (1 << 6);
  // value 128 (second half, l = 0): ql[64] low = 3, qh[32] bits 0-1 = 1 -> q = 19
  ql[64] = 0x03; qh[32] = 0x01;
  const sc = [1, -2, 3, 4, 5, 6, 7, -8, 9, 10, 11, 12, 13, 14, 15, -128].map((v) => v & 0xff);
  const y = dequantize(getTensorType('Q6_K'), bytes(...ql, ...qh, ...sc, 0x00, 0x38), 256);   // d = 0.5
  // x = d·scale·(q - 32); value v uses scale (v / 16)
  assert.equal(y[0], 0.5 * 1 * 5);
  assert.equal(y[32], 0.5 * 3 * 31);
  assert.equal(y[64], 0.5 * 5 * -31);
  assert.equal(y[96], 0.5 * 7 * -6);
  assert.equal(y[17], 0.5 * -2 * -32);     // all-zero bits: q - 32 = -32
  assert.equal(y[128], 0.5 * 9 * -13);
  assert.equal(y[244], 0.5 * -128 * -32);
});

test('Q2_K, Q3_K, Q5_K, Q8_K: hand-built super-blocks', () => {
  // Q2_K: scales[0] = 0x21 (sc 1, m 2), scales[1] = 0x0f (sc 15, m 0); d = 1, dmin = 0.25.
  // qs byte 0 = 3 -> value 0 q = 3 (bits 0-1), value 32 q = 0 (bits 2-3); byte 16 -> value 16
  const q2s = new Array(16).fill(0); q2s[0] = 0x21; q2s[1] = 0x0f;
  const q2q = new Array(64).fill(0); q2q[0] = 0x03; q2q[16] = 0x02;
  const q2 = dequantize(getTensorType('Q2_K'), bytes(...q2s, ...q2q, 0x00, 0x3c, 0x00, 0x34), 256);
  assert.deepEqual([q2[0], q2[1], q2[16], q2[32]], [1 * 1 * 3 - 0.25 * 2, -0.5, 15 * 2, 0]);

  // Q3_K: d = 1. Sub-block 0 scale: low nibble of scales[0] = 1, bits 0-1 of scales[8] = 2 -> 33 - 32 = 1.
  // Sub-block 2: low nibble of scales[2] = 0, bits 0-1 of scales[10] = 0 -> -32.
  // value 0: qs bits 0-1 = 2, hmask[0] bit 0 set -> q = 2; value 32: qs bits 2-3 = 1, hmask bit 1 clear -> 1 - 4
  const hmask = new Array(32).fill(0); hmask[0] = 0x01;
  const q3q = new Array(64).fill(0); q3q[0] = 0x02 | (0x01 << 2);
  const q3s = new Array(12).fill(0); q3s[0] = 0x01; q3s[8] = 0x02;
  const q3 = dequantize(getTensorType('Q3_K'), bytes(...hmask, ...q3q, ...q3s, 0x00, 0x3c), 256);
  assert.deepEqual([q3[0], q3[32], q3[1]], [2, -32 * -3, 1 * -4]);

  // Q5_K: d = 2, dmin = 1, sc[0] = 3, m[0] = 1; value 0: low nibble 4, qh[0] bit 0 -> q = 20
  const q5s = new Array(12).fill(0); q5s[0] = 3; q5s[4] = 1;
  const q5h = new Array(32).fill(0); q5h[0] = 0x01;
  const q5q = new Array(128).fill(0); q5q[0] = 0x04;
  const q5 = dequantize(getTensorType('Q5_K'), bytes(0x00, 0x40, 0x00, 0x3c, ...q5s, ...q5h, ...q5q), 256);
  assert.deepEqual([q5[0], q5[1], q5[32]], [2 * 3 * 20 - 1, -1, 0]);

  // Q8_K: f32 d = 0.5, q[0] = -127, q[1] = 3
  const q8 = dequantize(getTensorType('Q8_K'), bytes(0x00, 0x00, 0x00, 0x3f, 0x81, 0x03, ...new Array(254 + 32).fill(0)), 256);
  assert.deepEqual([q8[0], q8[1], q8[2]], [-63.5, 1.5, 0]);
});

// ---------------------------------------------------------------------- llama.cpp bit-exactness

// SHA-256 of llama.cpp's own output, from libggml-base.so (node-llama-cpp 3.22.1, llama.cpp
// release v0.5.0) called through Python ctypes on the arrays goldenInput() and randomBlocks()
// produce: quantize_row_<type>_ref(input) ("quant"), dequantize_row_<type> of that ("deq"), and
// dequantize_row_<type> of 16 random blocks from randomBlocks(blockBytes, 16, 1000 + ggml id)
// ("randDeq", which checks the layout decoding apart from the quantizer). NaNs hashed as 0x7fc00000.
const GOLDEN_INPUT_SHA = '0f8f5eefaeeac121e9431802b51add05d14528c9b42d88bdad6a48dada6c9e20';
const GOLDEN: Partial<Record<TensorTypeName, { quant: string; deq: string; randDeq?: string }>> = {
  Q4_0: { quant: '919114f304895dcb3de34df02c07435ca45a88dc57976e284a3b607007de86cd', deq: 'd0ce8b81b45c474e9084e504fd71eef316d0aaa4fd65045dc92f2abafa7f813d', randDeq: 'a19a674fbf051b11b6072732af275ca084822b661b8280a0d7ab854c21a8a71e' },
  Q4_1: { quant: '6dabbfc1bad276fa67fdf549eac6a637b37017bd260ec40391c1c85c4d2f1d10', deq: '0e8eceacd3aca21ea43aeed0a8cbdbd8530a2558ea9f7524067856a463e87eb7', randDeq: '8102d65301bc14fa8530aef967b8d1754ace7d2e98434686739774a8a4a6061e' },
  Q5_0: { quant: '02b207d317ad2ec135b4272845a8ca3184b1c08f523ba9b91e6bda124f31ad9d', deq: 'fbb0c7060d552584fabd11435db54b24387b083c3dcd8487bcaec5f0d09ec5fe', randDeq: 'f4ffe39d6596ccd9ae9a338da165401d2bc97eff7c56439c291df52be5900b19' },
  Q5_1: { quant: '2744675775d99a3a221b0085a85f1a34c030a014bb3c1c45ec168cbfcbf18495', deq: 'd7ae93fb3194209efac99af69ae485f0a7dd6ccc526531c18dc59f2a918a34ce', randDeq: '8945775836aaff4c90253a02cd7f6e3bfaaddf97143392276b3bdea785af4a03' },
  Q8_0: { quant: 'a86a1f683c8a476dae791381d556cc75221f431117a1a868f45ac4cd254e564a', deq: 'd625c77aeeea935e8c37c60cfde1c1512ab938990bc0dba2fcaa32f41686c0c6', randDeq: '676f5c101f732dde36790c2694a61c8b8c8ca029c7a64d1b5beee134bb37ae1c' },
  Q2_K: { quant: '3681e6c7e995a256eb563bbafd39fdf4d26702f830a7ba10a7cd903eb5346b8a', deq: 'a8d0efd0c769f8280ded17ef3ea181a59be5fedaa797440ca5d1feb7b075a242', randDeq: 'a8c1d6582cc7155ca0e48c2a4c504547af4e28f4f7c0a9c5548851a017cbabb3' },
  Q3_K: { quant: '5c287268693a583d4b143c74c90758361e4d35df23cc20a400cd5cdb1db4528f', deq: 'cf24dfdd95faaeceecbd3cd94a803274f1d9498808c4c5974c8c5262838c2ad6', randDeq: '27da2c6f510fa4c1ef8f102e811469e7570e290440d7dba3f6d83dc0fd3bf49d' },
  Q4_K: { quant: '6860c524dba4ab09b337070351e4715c0287bf2bd0bfffb7bb9bbdc489ed1868', deq: 'cf3670bb99028f13b4a39a4ed3478e633731452847f2a4158d3ef226db14bb85', randDeq: 'f7321fd4feffca90713cc17b466a165d768056e17d70554d0296d6d1cd8ab05c' },
  Q5_K: { quant: 'caa1591fced81ce283b0f33d9d8ab2690ae8135f0d45f6e77bf1141b529c1b97', deq: '472ed6d5eb42ca5e94d54a42104492c6d851825bcac71ce15b59821a2f9580dc', randDeq: 'd73e41d3ae0f5159903176d3981d03144ea6aac4eb804e48216b22db66e51b2f' },
  Q6_K: { quant: 'f2adfc6e14f45a54f365beb1b8534abe437877ae52ae0343d324cf92bb114031', deq: 'dc54b6b7f64570671807d962922aa196156a18f00e5ffaa3035c90b8ee67e8f6', randDeq: '505214e3fa8a645f5f88f6c8f118654cf6df23287363a8b3d56d95a2c14bd20f' },
  Q8_K: { quant: 'af23fa6ae91acf9df39a2c91e15bae83f71dce3bfdc50d597849b3f2c0bdc064', deq: '4948e53cf420a71082d878caf4313a699902054006c37fd5a7bb7966ad7698ca', randDeq: '9d9370eb68c95462336420b138f86c0aca04df53097732d10d4e4cc5ae4ea889' },
  // ggml_fp32_to_fp16_row / ggml_fp32_to_bf16_row_ref of the input (hash of the 16-bit words)
  F16: { quant: 'fe89f0aedcaf61534914dfa63c6109ba4d5cf9a9885a98cdd13d2f625f6a5780', deq: '' },
  BF16: { quant: '7612149bf89bddc8d338f12312fc36506be63ddc5423b2e31cfabfcd3c31f464', deq: '' },
};

test('llama.cpp golden: quantize and dequantize are bit-exact with ggml', () => {
  const x = goldenInput();
  assert.equal(sha256(x), GOLDEN_INPUT_SHA, 'the golden input generator changed; the hashes below no longer apply');
  for (const [name, g] of Object.entries(GOLDEN)) {
    const t = getTensorType(name as TensorTypeName);
    const q = quantize(t, x);
    assert.equal(sha256(q), g.quant, `${name}: quantized bytes differ from llama.cpp's quantize_row_${name}_ref`);
    if (g.deq) assert.equal(sha256(dequantize(t, q, x.length)), g.deq, `${name}: dequantized values differ from llama.cpp's`);
    if (g.randDeq) {
      const r = randomBlocks(t.blockBytes, 16, 1000 + t.ggmlId!);
      assert.equal(sha256(dequantize(t, r, 16 * t.blockSize)), g.randDeq, `${name}: dequantizing random blocks differs from llama.cpp`);
    }
  }
});

// --------------------------------------------------------------------------- round-trip error

/** Seeded test vectors, each `blocks` super-blocks of 256: gaussian, ×1000, one zero block. */
function roundTripInput(seed: number, blocks: number): Float32Array {
  const g = gaussian(rng(seed));
  const x = new Float32Array(256 * blocks);
  for (let i = 0; i < x.length; i++) x[i] = g();
  for (let i = 256; i < 512; i++) x[i] *= 1000;            // large magnitudes (f16 scales stay finite)
  x.fill(0, 512, 768);                                     // an all-zero super-block
  return x;
}

test('round trip: legacy types stay within their per-block error bound', () => {
  const x = roundTripInput(7, 8);
  const u = 2 ** -11;   // f16 relative rounding: the stored scale d16 is within d·2^-11 of d
  for (const name of ['Q4_0', 'Q5_0', 'Q4_1', 'Q5_1', 'Q8_0', 'Q8_G64'] as const) {
    const t = getTensorType(name);
    const y = dequantize(t, quantize(t, x), x.length);
    for (let b = 0; b < x.length; b += t.blockSize) {
      let amax = 0, max = 0, min = Infinity, hi = -Infinity;
      for (let j = 0; j < t.blockSize; j++) {
        const v = x[b + j]!;
        if (Math.abs(v) > amax) { amax = Math.abs(v); max = v; }
        min = Math.min(min, v); hi = Math.max(hi, v);
      }
      for (let j = 0; j < t.blockSize; j++) {
        const v = x[b + j]!, err = Math.abs(y[b + j]! - v);
        let bound: number;
        if (name === 'Q4_0' || name === 'Q5_0') {
          // levels (q - 8)·d (Q5_0: q - 16) with d = max / -8 (-16): the extreme value lands on a level,
          // the other end of the range is short by one step, so values beyond -7/8·max (-15/16·max)
          // are clamped (error up to |d|); the rest round to within |d|/2. Plus d's f16 rounding
          // times the level (at most 8 or 16).
          const k = name === 'Q4_0' ? 8 : 16;
          const d = Math.abs(max) / k;
          const clamped = -v * Math.sign(max) > (k - 1 + 0.5) * d;
          bound = (clamped ? d : d / 2) + k * d * u;
        } else if (name === 'Q4_1' || name === 'Q5_1') {
          // levels q·d + min, d = (max - min)/15 (31): rounding error d/2, plus f16 rounding of d
          // (times q ≤ 15 or 31) and of min
          const k = name === 'Q4_1' ? 15 : 31;
          const d = (hi - min) / k;
          bound = d / 2 + k * d * u + Math.abs(min) * u;
        } else if (name === 'Q8_0') {
          // d = amax/127, q = round(x/d): d/2, plus f16 rounding of d times |q| ≤ 127
          const d = amax / 127;
          bound = d / 2 + 127 * d * u;
        } else {
          bound = (amax / 127) * (0.5 + 1e-5);   // Q8_G64: f32 scale, only f32 rounding on top of d/2
        }
        assert.ok(err <= bound * (1 + 1e-6) + 1e-30, `${name} block ${b / t.blockSize} value ${j}: |${y[b + j]} - ${v}| = ${err} > ${bound}`);
      }
    }
    // the all-zero super-block comes back as exact zeros
    assert.ok(y.subarray(512, 768).every((v) => v === 0), `${name}: zero block`);
  }
});

test('round trip: F32 exact, F16 / BF16 within half an ulp', () => {
  const x = roundTripInput(11, 4);
  assert.deepEqual(dequantize(getTensorType('F32'), quantize(getTensorType('F32'), x), x.length), x);
  for (const [name, rel] of [['F16', 2 ** -11], ['BF16', 2 ** -8]] as const) {
    const t = getTensorType(name);
    const y = dequantize(t, quantize(t, x), x.length);
    for (let i = 0; i < x.length; i++) {
      // relative half-ulp; absolute 2^-25 covers f16 subnormals
      const bound = Math.abs(x[i]!) * rel + (name === 'F16' ? 2 ** -25 : 0);
      assert.ok(Math.abs(y[i]! - x[i]!) <= bound, `${name} ${i}: ${y[i]} vs ${x[i]}`);
    }
  }
});

// Measured (worst super-block's rms error / rms x) on roundTripInput(3, 12), and the range over
// seeds 3..6: Q2_K 0.326 (0.312-0.333), Q3_K 0.168 (0.162-0.169), Q4_K 0.0796 (0.077-0.080),
// Q5_K 0.0384 (0.038-0.040), Q6_K 0.0197 (0.019-0.0197), Q8_K 0.0085 (0.0077-0.0091).
// Bounds: the worst measured plus about 20-30%.
const K_RMS_BOUNDS: [TensorTypeName, number][] = [
  ['Q2_K', 0.4], ['Q3_K', 0.21], ['Q4_K', 0.1], ['Q5_K', 0.05], ['Q6_K', 0.025], ['Q8_K', 0.011],
];

test('round trip: k-quants stay within a relative rms error per super-block', () => {
  const x = roundTripInput(3, 12);
  for (const [name, boundRel] of K_RMS_BOUNDS) {
    const t = getTensorType(name);
    const y = dequantize(t, quantize(t, x), x.length);
    let worst = 0;
    for (let b = 0; b < x.length; b += 256) {
      let se = 0, sx = 0;
      for (let j = 0; j < 256; j++) { se += (y[b + j]! - x[b + j]!) ** 2; sx += x[b + j]! ** 2; }
      if (sx === 0) {
        assert.equal(se, 0, `${name}: zero block`);
        continue;
      }
      worst = Math.max(worst, Math.sqrt(se / sx));
    }
    assert.ok(worst < boundRel, `${name}: worst rms error ${worst.toFixed(4)} ≥ ${boundRel}`);
    assert.ok(worst > boundRel / 10, `${name}: rms error ${worst} is implausibly small for the format`);
  }
});

// ------------------------------------------------------------------------------- dot products

test('dot equals dequantize-then-dot on odd row counts, at row offsets', () => {
  const u = rng(99);
  const g = gaussian(u);
  for (const t of ALL_TENSOR_TYPES) {
    const lengths = [32 * 5, 256 * 3, 64 * 5].filter((n) => n % t.blockSize === 0);
    for (const cols of lengths) {
      for (const rows of [3, 7]) {
        const w = new Float32Array(rows * cols).map(() => g() * (u() < 0.1 ? 30 : 1));
        const q = quantize(t, w);
        const rowBytes = byteSize(t, cols);
        const x = new Float32Array(cols + 5).map(() => g());
        const deq = new Float32Array(cols + 3);
        for (let r = 0; r < rows; r++) {
          t.dequantize(q, r * rowBytes, deq, 3, cols);       // non-zero output offset
          let ref = 0;
          for (let i = 0; i < cols; i++) ref += deq[3 + i]! * x[5 + i]!;
          const dot = t.dot(q, r * rowBytes, x, 5, cols);
          assert.ok(Math.abs(dot - ref) <= 1e-5 * Math.abs(ref) + 1e-12,
            `${t.name} ${rows}x${cols} row ${r}: dot ${dot} vs ${ref}`);
        }
      }
    }
  }
});
