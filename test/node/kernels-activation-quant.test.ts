// matmul with activationQuant 'llamacpp' (kernels/matmul/activation-quant.cpu.ts) against
// ggml's integer formulas written out here: for Q8_0 and Q4_1 weights, the activations become
// Q8_0 / Q8_1 blocks and each block's product is d_w·d_x·Σ q_w·q_x (+ m_w·s for Q4_1, with s the
// f16 block sum); for F16 weights, activations rounded to f16. The default path stays exact.
// (test/node/parity-llamacpp.test.ts checks the whole forward pass against llama.cpp itself.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matmul, matmulF32 } from '../../kernels/matmul/matmul.cpu.ts';
import { getTensorType } from '../../src/formats/quant/index.ts';
import { F16_TO_F32, f32ToF16, readF16 } from '../../src/formats/quant/half.ts';
import { Rng } from '../../src/engine/random.ts';
import { byteSize, type Tensor, type TensorTypeName } from '../../src/formats/tensor.ts';

const f = Math.fround;
const h = (x: number) => F16_TO_F32[f32ToF16(x)]!;

function weight(type: TensorTypeName, m: number, k: number, rng: Rng): Tensor {
  const t = getTensorType(type);
  const v = new Float32Array(m * k);
  rng.fillGaussian(v, 0.3);
  const data = new Uint8Array(byteSize(t, m * k));
  t.quantize(v, 0, data, 0, m * k);
  return { name: `w.${type}`, type, shape: [m, k], data };
}

/** ggml's x86 Q8_0/Q8_1 block of 32 activations: d (f32), q[32], s = f16(d·Σq). */
function q8Block(x: Float32Array, o: number) {
  let amax = 0;
  for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[o + j]!));
  const d = f(amax / 127);
  const id = amax ? f(127 / amax) : 0;
  const q = Array.from({ length: 32 }, (_, j) => {
    const v = f(x[o + j]! * id);
    const r = Math.round(v);
    return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;   // ties to even
  });
  return { d16: h(d), q, s: h(f(d * q.reduce((a, b) => a + b, 0))) };
}

test('activationQuant llamacpp: Q8_0 and Q4_1 weights follow ggml block formulas', () => {
  const rng = new Rng(41);
  const [n, m, k] = [3, 5, 96];
  const x = new Float32Array(n * k);
  rng.fillGaussian(x, 2);
  x[7] = 0; x.fill(0, 32, 64);             // a zero block in row 0
  for (const type of ['Q8_0', 'Q4_1'] as const) {
    const w = weight(type, m, k, rng);
    const out = new Float32Array(n * m);
    matmul(out, x, w, n, 'llamacpp');
    const bb = getTensorType(type).blockBytes;
    for (let t = 0; t < n; t++) {
      for (let i = 0; i < m; i++) {
        let want = 0;
        for (let b = 0; b < k / 32; b++) {
          const a = q8Block(x, t * k + 32 * b);
          const o = (i * (k / 32) + b) * bb;
          let isum = 0;
          for (let j = 0; j < 32; j++) {
            const qw = type === 'Q8_0' ? (w.data[o + 2 + j]! << 24) >> 24
              : j < 16 ? w.data[o + 4 + j]! & 15 : w.data[o + 4 + j - 16]! >> 4;
            isum += qw * a.q[j]!;
          }
          want += readF16(w.data, o) * a.d16 * isum + (type === 'Q4_1' ? readF16(w.data, o + 2) * a.s : 0);
        }
        assert.ok(Math.abs(out[t * m + i]! - want) <= 1e-5 * (1 + Math.abs(want)), `${type} [${t},${i}]: ${out[t * m + i]} vs ${want}`);
      }
    }
  }
});

test('activationQuant llamacpp: F16 weights see f16-rounded activations; F32 and the default stay exact', () => {
  const rng = new Rng(42);
  const [n, m, k] = [2, 4, 37];
  const x = new Float32Array(n * k);
  rng.fillGaussian(x, 3);
  const w16 = weight('F16', m, k, rng);
  const dense = new Float32Array(m * k);
  getTensorType('F16').dequantize(w16.data, 0, dense, 0, m * k);
  const got = new Float32Array(n * m), want = new Float32Array(n * m), exact = new Float32Array(n * m);
  matmul(got, x, w16, n, 'llamacpp');
  matmulF32(want, x.map(h), dense, n, m, k);
  assert.deepEqual([...got], [...want]);
  matmul(exact, x, w16, n);
  matmulF32(want, x, dense, n, m, k);
  assert.deepEqual([...exact], [...want]);
  assert.notDeepEqual([...got], [...exact]);

  const w32 = weight('F32', m, k, rng);
  const a = new Float32Array(n * m), b = new Float32Array(n * m);
  matmul(a, x, w32, n, 'llamacpp');
  matmul(b, x, w32, n);
  assert.deepEqual([...a], [...b]);
});
