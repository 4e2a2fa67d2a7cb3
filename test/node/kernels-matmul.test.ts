// matmul and embedding CPU twins for every tensor type: the product computed by the type's `dot`
// (dequantizing on the fly) must equal the textbook product with the whole matrix dequantized
// first, in f64, on seeded random inputs with odd sizes and large magnitudes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matmul, matmulF32, matvec } from '../../kernels/matmul/matmul.cpu.ts';
import { embedding } from '../../kernels/embedding/embedding.cpu.ts';
import { ALL_TENSOR_TYPES, F32 } from '../../src/formats/quant/index.ts';
import { byteSize, type Tensor, type TensorType } from '../../src/formats/tensor.ts';
import { Rng } from '../../src/engine/random.ts';

function makeTensor(type: TensorType, m: number, k: number, rng: Rng, scale: number): { t: Tensor; dense: Float32Array } {
  const values = new Float32Array(m * k);
  for (let i = 0; i < values.length; i++) values[i] = rng.gaussian() * scale;
  // an unaligned start inside a larger buffer, as a view into an arena need not be 4-byte aligned
  const buf = new Uint8Array(byteSize(type, m * k) + 3);
  const data = buf.subarray(3);
  type.quantize(values, 0, data, 0, m * k);
  const dense = new Float32Array(m * k);
  type.dequantize(data, 0, dense, 0, m * k);
  return { t: { name: `w.${type.name}`, type: type.name, shape: [m, k], data }, dense };
}

test('matmul: hand-worked F32 case', () => {
  // W = [[1, 2, 3], [4, 5, 6]], x = [[1, 0, -1], [2, 2, 2]]
  const w = new Uint8Array(Float32Array.of(1, 2, 3, 4, 5, 6).buffer);
  const out = new Float32Array(4);
  matmul(out, Float32Array.of(1, 0, -1, 2, 2, 2), { name: 'w', type: 'F32', shape: [2, 3], data: w }, 2);
  assert.deepEqual([...out], [-2, -2, 12, 30]);
  const one = new Float32Array(2);
  matvec(one, Float32Array.of(1, 1, 1), { name: 'w', type: 'F32', shape: [2, 3], data: w });
  assert.deepEqual([...one], [6, 15]);
});

test('matmul equals the dequantize-then-multiply product for every tensor type (odd m, n; large values)', () => {
  const rng = new Rng(99);
  for (const type of ALL_TENSOR_TYPES) {
    if (type.name === 'Q8_K') continue; // an activation-only type in ggml: never a weight in a file
    const kSizes = type.blockSize === 1 ? [1, 7, 67] : [type.blockSize, 3 * type.blockSize];
    for (const k of kSizes) {
      for (const [m, n, scale] of [[5, 3, 1], [1, 1, 300], [13, 2, 0.02]] as const) {
        const { t, dense } = makeTensor(type, m, k, rng, scale);
        const x = Float32Array.from({ length: n * k }, () => rng.gaussian() * 50);
        const out = new Float32Array(n * m);
        matmul(out, x, t, n);
        for (let r = 0; r < n; r++) {
          for (let i = 0; i < m; i++) {
            let want = 0, mag = 0;
            for (let j = 0; j < k; j++) { want += dense[i * k + j]! * x[r * k + j]!; mag += Math.abs(dense[i * k + j]! * x[r * k + j]!); }
            const got = out[r * m + i]!;
            assert.ok(Math.abs(got - want) <= 1e-5 * mag + 1e-30, `${type.name} m=${m} k=${k} n=${n} [${r},${i}]: ${got} vs ${want}`);
          }
        }
      }
    }
  }
});

test('matmulF32 equals matmul on an F32 tensor', () => {
  const rng = new Rng(4);
  const m = 9, k = 31, n = 4;
  const { t, dense } = makeTensor(F32, m, k, rng, 3);
  const x = Float32Array.from({ length: n * k }, () => rng.gaussian());
  const a = new Float32Array(n * m), b = new Float32Array(n * m);
  matmul(a, x, t, n);
  matmulF32(b, x, dense, n, m, k);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-5 * Math.max(1, Math.abs(a[i]!)));
});

test('embedding returns dequantized rows for every type and rejects ids outside the vocabulary', () => {
  const rng = new Rng(8);
  for (const type of ALL_TENSOR_TYPES) {
    if (type.name === 'Q8_K') continue;
    const d = type.blockSize === 1 ? 11 : type.blockSize * 2, vocab = 7;
    const { t, dense } = makeTensor(type, vocab, d, rng, 2);
    const ids = [6, 0, 3, 3];
    const out = new Float32Array(ids.length * d);
    embedding(out, t, ids);
    ids.forEach((id, r) => assert.deepEqual(out.subarray(r * d, (r + 1) * d), dense.subarray(id * d, (id + 1) * d), `${type.name} row ${id}`));
    assert.throws(() => embedding(out, t, [vocab]), RangeError);
  }
});
