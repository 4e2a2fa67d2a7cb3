// The SwiGLU activation: silu(gate) · up, element-wise. silu(g) = g · sigmoid(g) = g / (1 + e^−g).

/** out[i] = silu(gate[i]) * up[i] for i < n. `out` may be `gate` or `up` (in place). */
export function siluMul(out: Float32Array, gate: Float32Array, up: Float32Array, n: number = out.length): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i]!;
    out[i] = (g / (1 + Math.exp(-g))) * up[i]!;
  }
}
