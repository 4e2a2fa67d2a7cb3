// Causal grouped-query attention of new query positions over the KV cache.
//
// For query head h the key/value head is h / (nHeads / nKvHeads) (grouped-query attention: each
// KV head serves a group of consecutive query heads; Llama 3 has 8 KV heads for 32 query heads).
// Scores are q·k / sqrt(d_head); a query at absolute position p sees keys 0..p (causal), the
// others are −inf; softmax subtracts the row max (kernels/softmax); z = Σ pattern · v.
//
// The cache holds every position so far; the queries are a chunk of new positions
// [start, start + nq) whose keys and values are already in the cache (prefill: many queries,
// decode: one).

import { softmax } from '../softmax/softmax.cpu.ts';

export interface AttentionShape {
  nq: number;         // new query positions
  start: number;      // absolute position of the first query; the cache holds kLen = start + nq keys
  nHeads: number;
  nKvHeads: number;
  dHead: number;
}

/**
 * z: [nq, nHeads, dHead] ← attention of q: [nq, nHeads, dHead] over
 * kCache, vCache: [≥ start + nq, nKvHeads, dHead].
 * scores, pattern (optional, the named activations): [nHeads, nq, kLen] with kLen = start + nq;
 * scores are −inf above the diagonal, pattern is 0 there.
 * z null: the rows only (scores, pattern), no weighted sum of the values (recomputed rows).
 */
export function attention(
  z: Float32Array | null, q: Float32Array, kCache: Float32Array, vCache: Float32Array, s: AttentionShape,
  scores: Float32Array | null = null, pattern: Float32Array | null = null,
): void {
  const { nq, start, nHeads, nKvHeads, dHead } = s;
  const kLen = start + nq;
  const group = nHeads / nKvHeads;
  const scale = 1 / Math.sqrt(dHead);
  const kvStride = nKvHeads * dHead;    // floats per cached position
  const row = pattern ? null : new Float32Array(kLen);
  for (let h = 0; h < nHeads; h++) {
    const kvh = Math.floor(h / group);
    for (let t = 0; t < nq; t++) {
      const seen = start + t + 1;       // keys 0 .. start+t are visible
      const qo = (t * nHeads + h) * dHead;
      const att = pattern ? pattern.subarray((h * nq + t) * kLen, (h * nq + t + 1) * kLen) : row!;
      // scores: q·k / sqrt(d_head)
      for (let j = 0; j < seen; j++) {
        const ko = j * kvStride + kvh * dHead;
        let dot = 0;
        for (let i = 0; i < dHead; i++) dot += q[qo + i]! * kCache[ko + i]!;
        att[j] = dot * scale;
      }
      if (scores) {
        const so = (h * nq + t) * kLen;
        for (let j = 0; j < seen; j++) scores[so + j] = att[j]!;
        scores.fill(-Infinity, so + seen, so + kLen);
      }
      // softmax over the visible keys; the masked ones are exactly 0
      softmax(att, 1, seen);
      att.fill(0, seen, kLen);
      // z = Σ_j pattern_j · v_j
      if (!z) continue;
      const zo = qo;
      z.fill(0, zo, zo + dHead);
      for (let j = 0; j < seen; j++) {
        const p = att[j]!;
        const vo = j * kvStride + kvh * dHead;
        for (let i = 0; i < dHead; i++) z[zo + i]! += p * vCache[vo + i]!;
      }
    }
  }
}
