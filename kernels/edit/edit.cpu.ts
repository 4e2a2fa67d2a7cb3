// Editing a region of an activation (interventions, src/engine/edits.ts): the one primitive every
// edit compiles to, on the CPU (this twin) and on WebGPU (edit.wgsl).
//
// x is [rows, width]; the op touches the listed rows, and within them the columns whose group
// (column / groupSize: a head, a neuron) is selected by the mask. The k-th touched row reads
// source row j = k (packed sources) or j = rows[k] (srcByRow: a source laid out like x) at
// src[srcOffset + j·srcStride + column] (srcStride 0: one vector for every row).
//   mode 0 (zero): x = 0
//   mode 1 (set):  x = src
//   mode 2 (add):  x = x + f32(beta · src)     (beta 1 and −1 are exact: a no-op delta adds 0)

export const EDIT_ZERO = 0, EDIT_SET = 1, EDIT_ADD = 2;
export type EditMode = typeof EDIT_ZERO | typeof EDIT_SET | typeof EDIT_ADD;

export interface EditRegion {
  /** Rows of x to touch (row indices, each < rows of x). */
  rows: Uint32Array;
  /** Floats per row of x. */
  width: number;
  /** Columns per mask entry (d_head for heads, 1 for neurons); ignored without a mask. */
  groupSize: number;
  /** One entry per group, non-zero = touched; null: every column. */
  mask: Uint32Array | null;
  mode: EditMode;
  /** Scale of the source in mode 2. */
  beta: number;
  /** Element offset of source row 0 in `src`, and floats between source rows (0: broadcast). */
  srcOffset: number;
  srcStride: number;
  /** Source row of the k-th touched row: rows[k] (true) or k (false, default). */
  srcByRow?: boolean;
}

/** Applies one edit to x (row r at xOffset + r·width), in place. */
export function editRows(x: Float32Array, xOffset: number, src: Float32Array, e: EditRegion): void {
  const { width, groupSize, mask, mode, srcOffset, srcStride } = e;
  const beta = Math.fround(e.beta);
  for (let k = 0; k < e.rows.length; k++) {
    const xo = xOffset + e.rows[k]! * width;
    const so = srcOffset + (e.srcByRow ? e.rows[k]! : k) * srcStride;
    for (let i = 0; i < width; i++) {
      if (mask && mask[Math.floor(i / groupSize)] === 0) continue;
      if (mode === EDIT_ZERO) x[xo + i] = 0;
      else if (mode === EDIT_SET) x[xo + i] = src[so + i]!;
      else x[xo + i] = x[xo + i]! + Math.fround(beta * src[so + i]!);
    }
  }
}

/**
 * The effect of an edited attention pattern on z: for each listed row r = h·n + t of the pattern
 * change D ([n_heads, n, kLen]: edited minus original), z[t, h, :] += Σ_k D[h, t, k] · V[k, h / group, :]
 * (V: the KV cache's values, [kLen, n_kv_heads, d_head]). Accumulates in f32.
 */
export function addPatternValues(
  z: Float32Array, delta: Float32Array, values: Float32Array, rows: Uint32Array,
  dims: { n: number; kLen: number; nHeads: number; nKvHeads: number; dHead: number },
): void {
  const { n, kLen, nHeads, nKvHeads, dHead } = dims;
  const group = nHeads / nKvHeads;
  for (const r of rows) {
    const h = Math.floor(r / n), t = r % n, kvh = Math.floor(h / group);
    const zo = (t * nHeads + h) * dHead, dOff = r * kLen;
    for (let j = 0; j < dHead; j++) {
      let sum = 0;
      for (let k = 0; k < kLen; k++) sum = Math.fround(sum + Math.fround(delta[dOff + k]! * values[(k * nKvHeads + kvh) * dHead + j]!));
      z[zo + j] = z[zo + j]! + sum;
    }
  }
}
