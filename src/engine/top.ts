// The k largest entries of a row (a vocabulary of logits, say), for the engine and the page alike.

/**
 * The k largest entries of `row`, largest first, the lowest id first on ties (as the sampler
 * orders them); NaN entries are never preferred. One pass: each entry is compared with the k-th
 * best so far and, only when better, inserted into the sorted list of k, so for k much smaller
 * than the row nearly every entry costs one comparison.
 */
export function topOf(row: Float32Array, k: number): { ids: Uint32Array; logits: Float32Array } {
  const n = Math.max(0, Math.min(k, row.length));
  const ids = new Uint32Array(n), vals = new Float32Array(n);
  let size = 0, worst = -Infinity;
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    if (size === n && !(v > worst)) continue;                          // not better than the k-th (ties: the lower id stays)
    let j = size < n ? size++ : n - 1;
    while (j > 0 && v > vals[j - 1]!) { vals[j] = vals[j - 1]!; ids[j] = ids[j - 1]!; j--; }
    vals[j] = v;
    ids[j] = i;
    if (size === n) worst = vals[n - 1]!;
  }
  return { ids, logits: vals };
}
