// Argmax and top-k of logits: greedy decoding needs one id, a top-k sampler or a "next token"
// cell k of them, never the whole vocabulary. The readable CPU twin of argmax.wgsl.
//
// ORDER shared by every twin: larger value first; equal values (−0 equals +0) by LOWER index;
// −inf is an ordinary value (the smallest); NaN entries are never chosen. A row with nothing but
// NaN gives argmax 0; top-k pads with id NONE and value NaN when fewer than k entries are not NaN.

/** The id reported when there is no k-th entry (fewer than k non-NaN values). */
export const NONE = 0xffffffff;

/** The largest k the fast top-k kernels take (the GPU's and the WebAssembly lensRows); the twins take any. */
export const MAX_TOP_K = 64;

/** out[r] = index of the largest entry of row r of x: [rows, cols] (from `offset`). */
export function argmax(out: Uint32Array, x: Float32Array, rows: number, cols: number, offset = 0): void {
  for (let r = 0; r < rows; r++) {
    const o = offset + r * cols;
    let best = -1;
    for (let i = 0; i < cols; i++) {
      const v = x[o + i]!;
      if (Number.isNaN(v)) continue;
      if (best < 0 || v > x[o + best]!) best = i;   // strict: an equal value later never wins
    }
    out[r] = best < 0 ? 0 : best;
  }
}

/**
 * The k largest of x[offset .. offset + cols): ids and values, value descending, ties by lower id.
 * Keeps a sorted list of the best k so far: O(cols) when most entries lose to the k-th.
 */
export function topK(x: Float32Array, cols: number, k: number, offset = 0): { ids: Uint32Array; values: Float32Array } {
  const ids: number[] = [], vals: number[] = [];
  for (let i = 0; i < cols; i++) {
    const v = x[offset + i]!;
    if (Number.isNaN(v)) continue;
    // scanning in index order, an equal value goes after the ones already kept (lower ids)
    if (ids.length === k && !(v > vals[k - 1]!)) continue;
    let at = ids.length;
    while (at > 0 && v > vals[at - 1]!) at--;
    ids.splice(at, 0, i); vals.splice(at, 0, v);
    if (ids.length > k) { ids.pop(); vals.pop(); }
  }
  const out = { ids: new Uint32Array(k).fill(NONE), values: new Float32Array(k).fill(Number.NaN) };
  out.ids.set(ids); out.values.set(vals);
  return out;
}

/** What the logit lens keeps of each row (lensRows). */
export interface LensRowsResult {
  /** [rows, k], as topK orders them (padding: NONE). */
  ids: Uint32Array;
  /** [rows, k] the logits themselves (padding: NaN). */
  values: Float32Array;
  /** [rows] Σ exp(v − max) over the row, max its largest entry; −inf and NaN entries add nothing
   *  (0 for a row with no finite entry). */
  sums: Float32Array;
  /** [rows] entries ordered before the target (its rank, 0 for the first); 0 without a target. */
  ranks: Uint32Array;
  /** [rows] the target's value; 0 without a target. */
  targetValues: Float32Array;
}

/**
 * Per row of x: [rows, cols] (from `offset`), the k best (topK), the sum of exponentials of the
 * row less its max (in f64, stored f32) and the target's rank and value: what the logit lens
 * needs of a row of logits, so that a GPU reads back these instead of the row (argmax.wgsl
 * stage 3). The rank counts the entries ordered before the target: larger, or equal at a lower
 * index; NaN entries never count.
 */
export function lensRows(x: Float32Array, rows: number, cols: number, k: number, target: number | null, offset = 0): LensRowsResult {
  const out: LensRowsResult = {
    ids: new Uint32Array(rows * k), values: new Float32Array(rows * k), sums: new Float32Array(rows),
    ranks: new Uint32Array(rows), targetValues: new Float32Array(rows),
  };
  for (let r = 0; r < rows; r++) {
    const o = offset + r * cols;
    const t = topK(x, cols, k, o);
    out.ids.set(t.ids, r * k);
    out.values.set(t.values, r * k);
    const max = t.values[0]!;
    let sum = 0;
    if (max > -Infinity) {
      for (let i = 0; i < cols; i++) {
        const v = x[o + i]!;
        if (v > -Infinity) sum += Math.exp(v - max);                  // skips −inf and NaN
      }
    }
    out.sums[r] = sum;
    if (target !== null) {
      const tv = x[o + target]!;
      let rank = 0;
      for (let i = 0; i < cols; i++) {
        const v = x[o + i]!;
        if (v > tv || (v === tv && i < target)) rank++;
      }
      out.ranks[r] = rank;
      out.targetValues[r] = tv;
    }
  }
  return out;
}
