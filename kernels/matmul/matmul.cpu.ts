// Matrix product with a weight matrix kept in its stored type: out = x · Wᵀ.
//
// Every projection of the forward pass (Q/K/V/O, gate/up/down, the unembedding) is this op. W is
// [m, k] row-major (each of the m output features is one contiguous row of k stored elements, a
// whole number of quantization blocks), x is [n, k] (n positions). Each output element is the dot
// product of one stored weight row with one activation row, dequantized on the fly by the tensor
// type's `dot` (src/formats/quant), so a quantized model is never expanded to f32 in memory.
//
// The loop runs over weight rows outside and positions inside: a weight row is read once per call
// and reused for all n positions (prefill), which is what makes prefill cheaper per token than
// decode. Faster kernels (WebAssembly, WebGPU) keep this signature and must agree with it.

import { getTensorType } from '../../src/formats/quant/index.ts';
import { byteSize, type Tensor } from '../../src/formats/tensor.ts';
import { matmulLlamacpp, type ActivationQuant } from './activation-quant.cpu.ts';

let rounded = new Float32Array(0);

/**
 * out: [n, m] = x: [n, k] · w: [m, k]ᵀ, for a weight of any tensor type.
 * `activationQuant: 'llamacpp'` first rounds x the way llama.cpp's CPU backend does for this
 * weight type (activation-quant.cpu.ts), for parity checks; the default uses x exactly.
 */
export function matmul(out: Float32Array, x: Float32Array, w: Tensor, n: number, activationQuant: ActivationQuant = 'none'): void {
  const [m, k] = w.shape as [number, number];
  if (activationQuant === 'llamacpp') {
    if (rounded.length < n * k) rounded = new Float32Array(n * k);
    if (matmulLlamacpp(out, x, w, n, rounded, matmul)) return;
  }
  const type = getTensorType(w.type);
  const rowBytes = byteSize(type, k);
  for (let i = 0; i < m; i++) {
    const rowOffset = i * rowBytes; // byte offset of row i within w.data
    for (let t = 0; t < n; t++) {
      out[t * m + i] = type.dot(w.data, rowOffset, x, t * k, k);
    }
  }
}

/** out: [m] = w: [m, k] · x: [k] — one position (decode). */
export function matvec(out: Float32Array, x: Float32Array, w: Tensor): void {
  matmul(out, x, w, 1);
}

/** The plain f32 product, for matrices that are already f32 arrays: out [n, m] = x [n, k] · w [m, k]ᵀ. */
export function matmulF32(out: Float32Array, x: Float32Array, w: Float32Array, n: number, m: number, k: number): void {
  for (let i = 0; i < m; i++) {
    const wo = i * k;
    for (let t = 0; t < n; t++) {
      const xo = t * k;
      let s = 0;
      for (let j = 0; j < k; j++) s += w[wo + j]! * x[xo + j]!;
      out[t * m + i] = s;
    }
  }
}
