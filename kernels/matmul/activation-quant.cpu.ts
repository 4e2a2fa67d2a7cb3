// Activation rounding as llama.cpp's CPU backend does it, for exact parity checks.
//
// glassbox multiplies stored weights with exact f32 activations. llama.cpp (ggml-cpu) first
// converts each activation row to the weight type's "vec_dot_type" and multiplies in that form:
//   F32                      → f32 (no rounding)
//   F16                      → f16 (round to nearest even)
//   BF16                     → bf16 (round to nearest even)
//   Q4_0, Q5_0, Q8_0         → Q8_0: blocks of 32, d = max|x|/127 stored as f16,
//                              q = round(x·127/max|x|)
//   Q4_1, Q5_1               → Q8_1: the same d and q, plus s = d·Σq (d before its f16
//                              rounding) stored as f16; the weight's min m multiplies s
//   Q2_K .. Q6_K, Q8_K       → Q8_K: blocks of 256, q = round(−127·x/max) (max: the value of
//                              largest magnitude), d = 1/that scale kept in f32
// With `activationQuant: 'llamacpp'` the engine does the same: x → dequantize(quantize(x))
// before the product, and for Q4_1/Q5_1 weights adds m·(s − Σ rounded x) per block, so that the
// min term uses ggml's f16 s. On random models this takes the difference to llama.cpp from
// ~0.1–0.5 per logit (quantized types) to ~1e-6 (test/node/parity-llamacpp.test.ts). What
// remains is summation order, and the rare activation that lies within that noise of a
// rounding boundary and rounds the other way in one program (a "flip").
// Q8_0/Q8_1 follow ggml's x86 SIMD quantizer (multiply by 127/max, ties to even), not its scalar
// reference (multiply by 1/d, ties away from zero) that only CPUs without AVX run; Q8_K uses the
// scalar reference, which is what x86 runs.
//
// The default ('none') leaves activations exact: the engine's numbers are the textbook model's.
// Not done on this path: llama.cpp's F16 KV cache and flash attention (the parity test turns
// them off in llama.cpp instead).

import type { Tensor, TensorTypeName } from '../../src/formats/tensor.ts';
import { byteSize } from '../../src/formats/tensor.ts';
import { getTensorType } from '../../src/formats/quant/index.ts';
import { F16_TO_F32, bf16ToF32, f32ToBf16, f32ToF16, readF16 } from '../../src/formats/quant/half.ts';

export type ActivationQuant = 'none' | 'llamacpp';

type Rounding = 'none' | 'f16' | 'bf16' | 'Q8_0' | 'Q8_1' | 'Q8_K';

const VEC_DOT: Record<TensorTypeName, Rounding> = {
  F32: 'none', F16: 'f16', BF16: 'bf16',
  Q4_0: 'Q8_0', Q5_0: 'Q8_0', Q8_0: 'Q8_0', Q4_1: 'Q8_1', Q5_1: 'Q8_1',
  Q2_K: 'Q8_K', Q3_K: 'Q8_K', Q4_K: 'Q8_K', Q5_K: 'Q8_K', Q6_K: 'Q8_K', Q8_K: 'Q8_K',
  Q8_G64: 'none', // not a ggml type: llama.cpp never sees it
};

let scratchBytes = new Uint8Array(0);
let blockSumDelta = new Float32Array(0);

/**
 * Rounds x: [n, k] as llama.cpp rounds the activations of a product with `w` (k, the row length,
 * is a whole number of w's blocks, which weights.ts guarantees) into `rounded`, then computes
 * out: [n, m] = rounded · wᵀ with `product` (the exact kernel) and applies the Q8_1 correction.
 * Returns false, doing nothing, when no rounding applies (F32 weights).
 */
export function matmulLlamacpp(out: Float32Array, x: Float32Array, w: Tensor, n: number, rounded: Float32Array,
  product: (out: Float32Array, x: Float32Array, w: Tensor, n: number) => void): boolean {
  const [m, k] = w.shape as [number, number];
  const r = VEC_DOT[w.type];
  const len = n * k;
  switch (r) {
    case 'none':
      return false;
    case 'f16':
      for (let i = 0; i < len; i++) rounded[i] = F16_TO_F32[f32ToF16(x[i]!)]!;
      break;
    case 'bf16':
      for (let i = 0; i < len; i++) rounded[i] = bf16ToF32(f32ToBf16(x[i]!));
      break;
    case 'Q8_0':
      roundQ8_0(rounded, x, len, null);
      break;
    case 'Q8_1':
      if (blockSumDelta.length < len / 32) blockSumDelta = new Float32Array(len / 32);
      roundQ8_0(rounded, x, len, blockSumDelta);
      break;
    case 'Q8_K': {
      // x86 ggml uses quantize_row_q8_K_ref, which is the registry's Q8_K quantizer.
      const t = getTensorType('Q8_K');
      const bytes = byteSize(t, len);
      if (scratchBytes.length < bytes) scratchBytes = new Uint8Array(bytes);
      t.quantize(x, 0, scratchBytes, 0, len);
      t.dequantize(scratchBytes, 0, rounded, 0, len);
      break;
    }
  }
  product(out, rounded, w, n);
  if (r === 'Q8_1') q81Correction(out, w, n, m, k, blockSumDelta);
  return true;
}

/**
 * Q8_0 blocks of 32 as ggml's x86 quantize_row_q8_0/_q8_1 (AVX) make them: d = max|x|/127 (f32),
 * stored as f16; q = round-half-even(x·(127/max|x|)) in f32; value = f16(d)·q. With `sumDelta`
 * (Q8_1) it also records, per block, s − f16(d)·Σq where s = f16(d·Σq) is Q8_1's block sum.
 */
function roundQ8_0(out: Float32Array, x: Float32Array, len: number, sumDelta: Float32Array | null): void {
  const f = Math.fround;
  for (let b = 0; b < len; b += 32) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b + j]!));
    const d = f(amax / 127);
    const d16 = F16_TO_F32[f32ToF16(d)]!;
    const id = amax !== 0 ? f(127 / amax) : 0;
    let sq = 0;
    for (let j = 0; j < 32; j++) {
      const q = roundHalfEven(f(x[b + j]! * id));
      sq += q;
      out[b + j] = d16 * q;
    }
    if (sumDelta) sumDelta[b / 32] = F16_TO_F32[f32ToF16(f(d * sq))]! - d16 * sq;
  }
}

function roundHalfEven(v: number): number {
  const r = Math.round(v);                        // half up
  return r - v === 0.5 && (r & 1) !== 0 ? r - 1 : r;
}

/**
 * Q4_1/Q5_1 blocks hold w = d·q + m, so each block's product has a term m·Σx. ggml takes Σx from
 * the Q8_1 block's s = f16(d·Σq) (d before its f16 rounding); the rounded activations sum to
 * f16(d)·Σq instead. Adds the difference: out[t, i] += Σ_b m[i, b]·sumDelta[t, b].
 */
function q81Correction(out: Float32Array, w: Tensor, n: number, m: number, k: number, sumDelta: Float32Array): void {
  const nb = k / 32;
  const blockBytes = getTensorType(w.type).blockBytes;   // Q4_1: 20, Q5_1: 24; both start f16 d, f16 m
  const rowBytes = nb * blockBytes;
  for (let i = 0; i < m; i++) {
    for (let t = 0; t < n; t++) {
      let c = 0;
      for (let b = 0; b < nb; b++) c += readF16(w.data, i * rowBytes + b * blockBytes + 2) * sumDelta[t * nb + b]!;
      out[t * m + i] += c;
    }
  }
}
