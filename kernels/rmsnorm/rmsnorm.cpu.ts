// RMSNorm (Llama): y = x / rms(x) · weight, with rms(x) = sqrt(mean(x²) + eps).
//
// Numerics shared by every twin: eps goes INSIDE the square root (as in llama.cpp, llama2.c and
// Hugging Face), and the output is (x · (1/rms)) · weight, in that order.
//
// The two intermediate results are the named activations of DESIGN.md (TransformerLens's
// RMSNorm hooks): hook_scale is rms(x) itself ([pos, 1]), hook_normalized is x / rms(x) before
// the weight ([pos, d_model]). Callers that record nothing pass null and pay nothing for them.

/**
 * out: [n, d]; x: [n, d]; weight: [d].
 * scale (optional): [n] receives rms(x) per row. normalized (optional): [n, d] receives x / rms(x).
 * `out` may be `x` (in place).
 */
export function rmsnorm(
  out: Float32Array, x: Float32Array, weight: Float32Array, n: number, d: number, eps: number,
  scale: Float32Array | null = null, normalized: Float32Array | null = null,
): void {
  for (let r = 0; r < n; r++) {
    const o = r * d;
    let ss = 0;
    for (let i = 0; i < d; i++) ss += x[o + i]! * x[o + i]!;
    const rms = Math.sqrt(ss / d + eps);
    const inv = 1 / rms;
    if (scale) scale[r] = rms;
    if (normalized) for (let i = 0; i < d; i++) normalized[o + i] = x[o + i]! * inv;
    for (let i = 0; i < d; i++) out[o + i] = x[o + i]! * inv * weight[i]!;
  }
}
