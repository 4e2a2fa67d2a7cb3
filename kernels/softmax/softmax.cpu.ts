// Softmax over each row, in place. The readable CPU twin: the WebGPU kernel must agree with it.
//
// Numerics shared by every twin: subtract the row max before exp (so large logits cannot
// overflow), and a row whose entries are all −inf (nothing to attend to) becomes all zeros rather
// than NaN. −inf entries (masked positions) come out as exactly 0.

/** x: [rows, cols] row-major, starting at `offset`; each row is replaced by its softmax. */
export function softmax(x: Float32Array, rows: number, cols: number, offset = 0): void {
  for (let r = 0; r < rows; r++) {
    const o = offset + r * cols;
    let max = -Infinity;
    for (let i = 0; i < cols; i++) if (x[o + i]! > max) max = x[o + i]!;
    if (max === -Infinity) { x.fill(0, o, o + cols); continue; }
    let sum = 0;
    for (let i = 0; i < cols; i++) {
      const e = Math.exp(x[o + i]! - max);
      x[o + i] = e;
      sum += e;
    }
    const inv = 1 / sum;
    for (let i = 0; i < cols; i++) x[o + i]! *= inv;
  }
}
