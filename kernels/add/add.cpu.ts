// Element-wise addition: the residual connection (x += attention or feed-forward output).

/** out[i] = a[i] + b[i] for i < n. `out` may be `a` (in place). */
export function add(out: Float32Array, a: Float32Array, b: Float32Array, n: number = out.length): void {
  for (let i = 0; i < n; i++) out[i] = a[i]! + b[i]!;
}
