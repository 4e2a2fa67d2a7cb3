// The attention overview of a whole run: every layer × every query head at a glance, small enough
// for any prompt length. A 1,000-token prompt on a 22-layer, 32-head model has 1.4 GB of attention
// patterns; the summary keeps, per (layer, head), a B × B thumbnail and three numbers, and never
// holds more than the rows of one chunk while it is being built.
//
// This file is the ONE place where the per-row statistics are defined (entropy, attention to the
// first position, attention to the previous position) and where positions are split into bins, so
// that the engine, the cells and the tests cannot disagree on them:
//   - bins: positions 0..nPos−1 split into B contiguous ranges whose sizes differ by at most one:
//     position p is in bin ⌊p·B / nPos⌋; bin b starts at ⌈b·nPos / B⌉.
//   - thumbs[l, h, qb, kb]: the mean attention weight over the causal entries (k ≤ q) with q in
//     query bin qb and k in key bin kb; NaN for a cell with no causal entry (kb > qb).
//   - entropy[l, h]: the mean over query positions of the row's entropy in nats (0·log 0 = 0).
//   - first[l, h]: the mean over query positions of the weight on position 0.
//   - prev[l, h]: the mean over queries q ≥ 1 of the weight on q − 1 (NaN when nPos = 1).
//   - induction[l, h]: the mean over queries q that have an induction target t(q) of the weight on
//     t(q), where t(q) = j + 1 for the latest j < q whose token equals q's (inductionTargets): the
//     token that followed the previous occurrence of the current one, which an induction head
//     copies. On a prompt whose second half repeats its first (period T, tokens of the first half
//     distinct), t(q) = q − T + 1 for every q of the second half. NaN when no query has a target
//     (no repeated token) or the tokens were not given.
// Sums are kept in f64 and divided once at the end.

import { UsageError } from './errors.ts';

/** Thumbnail bins per side: default, and the range an asked size is clamped to (then to nPos). */
export const SUMMARY_SIZE = { default: 24, min: 4, max: 64 } as const;

/** The arrays of a summary (AttentionSummarySlice without its origin). */
export interface AttentionSummaryData {
  nLayers: number;
  nHeads: number;
  nPos: number;
  /** B: bins per side. */
  size: number;
  /** [nLayers, nHeads, B, B] */
  thumbs: Float32Array;
  /** [nLayers, nHeads] */
  entropy: Float32Array;
  /** [nLayers, nHeads] */
  first: Float32Array;
  /** [nLayers, nHeads] */
  prev: Float32Array;
  /** [nLayers, nHeads] mean attention to the induction target (NaN: no repeated token). */
  induction: Float32Array;
}

/**
 * Each position's induction target: j + 1 for the latest j < q with ids[j] = ids[q] (the token
 * that came after the previous occurrence of q's token), or −1 when q's token has not occurred
 * before. j + 1 ≤ q always (it is q itself when the token repeats right away: "a a").
 */
export function inductionTargets(ids: ArrayLike<number>): Int32Array {
  const out = new Int32Array(ids.length).fill(-1);
  const last = new Map<number, number>();
  for (let q = 0; q < ids.length; q++) {
    const j = last.get(ids[q]!);
    if (j !== undefined) out[q] = j + 1;
    last.set(ids[q]!, q);
  }
  return out;
}

/**
 * The induction score of one head from its whole pattern [nPos, nPos] (row q, key k; causal):
 * the mean of pattern[q, t(q)] over queries with a target (inductionTargets). NaN when none has.
 */
export function inductionScore(pattern: ArrayLike<number>, nPos: number, targets: ArrayLike<number>): number {
  let s = 0, n = 0;
  for (let q = 0; q < nPos; q++) {
    const t = targets[q]!;
    if (t < 0) continue;
    s += pattern[q * nPos + t]!;
    n++;
  }
  return n > 0 ? s / n : NaN;
}

/**
 * The bins per side for an asked size: an integer (default 24), clamped to [4, 64] and then to
 * nPos. A size that is not a number is a UsageError (a typo must not silently give the default).
 */
export function summaryBins(size: number | undefined, nPos: number): number {
  if (size !== undefined && (typeof size !== 'number' || !Number.isFinite(size))) {
    throw new UsageError('run summary.attention.size', `${String(size)} is not a number`, `Give the thumbnail bins per side (${SUMMARY_SIZE.min}..${SUMMARY_SIZE.max}, default ${SUMMARY_SIZE.default})`);
  }
  const s = Math.round(size ?? SUMMARY_SIZE.default);
  return Math.max(1, Math.min(nPos, Math.max(SUMMARY_SIZE.min, Math.min(SUMMARY_SIZE.max, s))));
}

/** The bin of position p when nPos positions are split into B bins. */
export function binOf(p: number, nPos: number, B: number): number {
  return Math.floor((p * B) / nPos);
}

/** The first position of bin b (b = B gives nPos). */
export function binStart(b: number, nPos: number, B: number): number {
  return Math.ceil((b * nPos) / B);
}

/** Entropy in nats of one attention row (its causal part): −Σ p·ln p over p > 0. */
export function rowEntropy(row: ArrayLike<number>, length = row.length): number {
  let h = 0;
  for (let k = 0; k < length; k++) {
    const p = row[k]!;
    if (p > 0) h -= p * Math.log(p);
  }
  return h;
}

// ln p for the summarizer's hot loop. Math.log costs ~20 ns, and a 1,000-token prompt on a 22-layer,
// 32-head model has 352 M attention weights; the weights are f32, so ln p = e·ln 2 + ln m splits
// exactly on their bits, ln m comes from a 1,024-entry table at the centre of m's bin plus four
// terms of ln(1 + r) (|r| < 2⁻¹¹: error below 1e-17). Within 3e-14 of Math.log, four times faster.
const LN_CENTRE = new Float64Array(1024), INV_CENTRE = new Float64Array(1024);
for (let i = 0; i < 1024; i++) { const c = 1 + (i + 0.5) / 1024; LN_CENTRE[i] = Math.log(c); INV_CENTRE[i] = 1 / c; }

/** ln p from the bits of a positive f32 p (subnormals through Math.log; powers of two exact, so ln 1 = 0). */
export function lnF32(p: number, bits: number): number {
  const exponent = bits >>> 23;                                  // sign bit is 0: p > 0
  if (exponent === 0) return Math.log(p);
  const mantissa = bits & 0x7fffff, bin = mantissa >>> 13;
  if (mantissa === 0) return (exponent - 127) * Math.LN2;
  const r = (1 + mantissa * 1.1920928955078125e-7) * INV_CENTRE[bin]! - 1;   // m / centre − 1
  return (exponent - 127) * Math.LN2 + LN_CENTRE[bin]! + r * (1 - r * (0.5 - r * (1 / 3 - r * 0.25)));
}

/**
 * The summary's entropy of the f32 row data[at .. at+len) (`bits` views the same memory): the
 * rowEntropy sum through lnF32, in key order, so that it has the same bits wherever it is
 * computed (while summarizing, or once per row and kept: CaptureStore.rowEntropies).
 */
export function rowEntropyF32(data: Float32Array, bits: Int32Array, at: number, len: number): number {
  let h = 0;
  for (let k = at; k < at + len; k++) {
    const p = data[k]!;
    if (p > 0) h -= p * lnF32(p, bits[k]!);
  }
  return h;
}

/**
 * Σ data[from .. to) in f64, four running sums (k mod 4) added as (s0 + s1) + (s2 + s3), then the
 * last k mod 4 one by one: every bin of every row is summed this way wherever it is summed (the
 * chunks of a run, or the stored rows), so the summaries agree to the bit. Four chains of adds
 * instead of one: a summary of 22 layers × 32 heads takes about a fifth less time at 400 and 1,000
 * positions (BENCHMARKS.md).
 */
function rangeSum(data: Float32Array, from: number, to: number): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, k = from;
  for (; k + 4 <= to; k += 4) {
    s0 += data[k]!; s1 += data[k + 1]!; s2 += data[k + 2]!; s3 += data[k + 3]!;
  }
  let s = (s0 + s1) + (s2 + s3);
  for (; k < to; k++) s += data[k]!;
  return s;
}

/**
 * What a summary keeps for a later one over the same prefix of tokens:
 * - every row's entropy, which a later summary takes for its unchanged rows whatever its length
 *   (AttentionSummarizer.reuseEntropies);
 * - when its rows came in order, its cell sums, final for every query bin, and the four
 *   statistics' running sums at the first position of each bin: a later summary with as many bins
 *   starts at the bin that holds the first changed position, or earlier where its other length
 *   moved a bin's start (AttentionSummarizer.resume).
 */
export interface SummaryPrefix {
  nLayers: number;
  nHeads: number;
  nPos: number;
  size: number;
  induction: boolean;
  /** [nLayers·nHeads, nPos] each row's entropy (rowEntropyF32) */
  entropies: Float64Array;
  /** [nLayers, nHeads, B, B]; null when rows came out of order */
  sums: Float64Array | null;
  /** [4 (entropy, first, prev, induction), nLayers·nHeads, B]: the sums over the rows before each bin */
  atBins: Float64Array;
}

/**
 * Accumulates the summary from attention rows as the forward pass produces them, in any order;
 * every (layer, head, query) row must arrive exactly once before result(). Rows that arrive in
 * order of position for each head (as every producer sends them) also leave a SummaryPrefix.
 */
export class AttentionSummarizer {
  readonly size: number;
  private readonly starts: Int32Array;                 // [B + 1] first position of each bin
  private readonly sums: Float64Array;                 // [nLayers, nHeads, B, B] sums of weights
  private readonly entropySum: Float64Array;           // [nLayers, nHeads]
  private readonly firstSum: Float64Array;             // [nLayers, nHeads]
  private readonly prevSum: Float64Array;              // [nLayers, nHeads]
  private readonly inductionSum: Float64Array;         // [nLayers, nHeads]
  private readonly targets: Int32Array | null;         // [nPos] induction target per query, −1 none
  private readonly withTarget: number;                 // queries that have one
  private readonly seen: Int32Array;                   // [nLayers] rows received (over heads)
  private readonly atBins: Float64Array;               // SummaryPrefix.atBins
  private readonly nextRow: Int32Array;                // [nLayers, nHeads] the position expected next
  private ordered = true;                              // every head's rows so far came in order
  private readonly entropies: Float64Array;            // SummaryPrefix.entropies
  private knownEntropies = 0;                          // rows before this one have theirs (reuseEntropies)

  /** `tokens` (the run's ids, nPos of them) enable the induction statistic; without them it is NaN. */
  constructor(readonly nLayers: number, readonly nHeads: number, readonly nPos: number, size: number, tokens?: ArrayLike<number>) {
    const B = this.size = size;
    if (!(Number.isInteger(B) && B >= 1 && B <= nPos)) throw new Error(`summary: ${B} bins for ${nPos} positions`);
    this.starts = Int32Array.from({ length: B + 1 }, (_, b) => binStart(b, nPos, B));
    this.sums = new Float64Array(nLayers * nHeads * B * B);
    this.entropySum = new Float64Array(nLayers * nHeads);
    this.firstSum = new Float64Array(nLayers * nHeads);
    this.prevSum = new Float64Array(nLayers * nHeads);
    this.inductionSum = new Float64Array(nLayers * nHeads);
    this.targets = tokens && tokens.length === nPos ? inductionTargets(tokens) : null;
    this.withTarget = this.targets ? this.targets.reduce((n, t) => n + (t >= 0 ? 1 : 0), 0) : 0;
    this.seen = new Int32Array(nLayers);
    this.atBins = new Float64Array(4 * nLayers * nHeads * B);
    this.nextRow = new Int32Array(nLayers * nHeads);
    this.entropies = new Float64Array(nLayers * nHeads * nPos);
  }

  /** Takes the entropies of the rows before `upto` from an earlier summary whose rows before it
   *  are this one's (the same tokens and edits), of any length; they are not computed again. */
  reuseEntropies(prefix: SummaryPrefix, upto: number): void {
    if (prefix.nLayers !== this.nLayers || prefix.nHeads !== this.nHeads) return;
    const n = Math.max(0, Math.min(upto, prefix.nPos, this.nPos));
    for (let lh = 0; lh < this.nLayers * this.nHeads; lh++) {
      this.entropies.set(prefix.entropies.subarray(lh * prefix.nPos, lh * prefix.nPos + n), lh * this.nPos);
    }
    this.knownEntropies = n;
  }

  /**
   * Starts from an earlier summary's state for the rows before position `upto` (rows that have
   * not changed since: the same tokens and edits before it): from the first position of the bin
   * holding `upto`, or of an earlier bin where the earlier summary, of another length, split the
   * positions otherwise (bins move with the length: the bins taken must start where they started
   * then). Returns that position; the rows from there on must then arrive. The same sums, to the
   * bit, as receiving every row, since each sum adds its rows in order of position. Returns 0
   * (nothing taken) when `prefix` is of other bins or layers, or tokens were given to one and not
   * the other.
   */
  resume(prefix: SummaryPrefix, upto: number): number {
    const { nLayers, nHeads, nPos, size: B } = this;
    const sums = prefix.sums;
    if (!sums || prefix.nLayers !== nLayers || prefix.nHeads !== nHeads || prefix.size !== B
      || prefix.induction !== (this.targets !== null) || this.seen.some((n) => n > 0)) return 0;
    let bin = Math.min(binOf(Math.max(0, Math.min(upto, nPos, prefix.nPos)), nPos, B), B - 1);
    for (let b = 1; b <= bin; b++) if (binStart(b, prefix.nPos, B) !== this.starts[b]) bin = b - 1;
    const from = this.starts[bin]!;
    if (from === 0) return 0;
    const lhs = nLayers * nHeads;
    for (let lh = 0; lh < lhs; lh++) {
      const cells = lh * B * B;
      this.sums.set(sums.subarray(cells, cells + bin * B), cells);         // query bins before `bin`: final
      for (let k = 0; k < 4; k++) {
        const at = (k * lhs + lh) * B;
        this.atBins.set(prefix.atBins.subarray(at, at + bin + 1), at);
      }
      this.entropySum[lh] = prefix.atBins[lh * B + bin]!;
      this.firstSum[lh] = prefix.atBins[(lhs + lh) * B + bin]!;
      this.prevSum[lh] = prefix.atBins[(2 * lhs + lh) * B + bin]!;
      this.inductionSum[lh] = prefix.atBins[(3 * lhs + lh) * B + bin]!;
    }
    if (this.knownEntropies < from) this.reuseEntropies(prefix, from);   // the rows that do not arrive
    this.seen.fill(from * nHeads);
    this.nextRow.fill(from);
    return from;
  }

  /** What a later summary may start from (reuseEntropies, resume). Call after result(). */
  prefix(): SummaryPrefix {
    const { nLayers, nHeads, nPos, size } = this;
    return { nLayers, nHeads, nPos, size, induction: this.targets !== null, entropies: this.entropies, sums: this.ordered ? this.sums : null, atBins: this.atBins };
  }

  /** One causal row: query position q of `head` in `layer`, row[k] for keys k = 0..q; its
   *  entropy when known (rowEntropyF32 of this row), else computed here. */
  row(layer: number, head: number, q: number, row: Float32Array, entropy?: number): void {
    this.rowAt(layer, head, q, row, 0, entropy ?? rowEntropyF32(row, new Int32Array(row.buffer, row.byteOffset, row.length), 0, q + 1));
  }

  /** Every head's causal row of query position q in `layer`, packed: head h's q + 1 weights at
   *  data[at + h·(q + 1) ..], its entropy entropies[h] (rowEntropyF32 of that row). */
  rows(layer: number, q: number, data: Float32Array, at: number, entropies: ArrayLike<number>): void {
    for (let h = 0; h < this.nHeads; h++) this.rowAt(layer, h, q, data, at + h * (q + 1), entropies[h]!);
  }

  /** The row at data[at .. at+q], whose entropy is h. */
  private rowAt(layer: number, head: number, q: number, data: Float32Array, at: number, h: number): void {
    const B = this.size, starts = this.starts, lh = layer * this.nHeads + head;
    const last = binOf(q, this.nPos, B);                         // the query bin; key bins beyond it hold no k ≤ q
    const cells = (lh * B + last) * B;                           // this query bin's row of cells
    if (q !== this.nextRow[lh]) this.ordered = false;
    this.nextRow[lh] = q + 1;
    if (q === starts[last]) {                                    // a bin's first row: the sums before it
      const lhs = this.nLayers * this.nHeads;
      this.atBins[lh * B + last] = this.entropySum[lh]!;
      this.atBins[(lhs + lh) * B + last] = this.firstSum[lh]!;
      this.atBins[(2 * lhs + lh) * B + last] = this.prevSum[lh]!;
      this.atBins[(3 * lhs + lh) * B + last] = this.inductionSum[lh]!;
    }
    for (let kb = 0; kb <= last; kb++) {
      this.sums[cells + kb] = this.sums[cells + kb]! + rangeSum(data, at + starts[kb]!, at + Math.min(starts[kb + 1]!, q + 1));
    }
    this.entropySum[lh] = this.entropySum[lh]! + h;
    this.entropies[lh * this.nPos + q] = h;
    this.firstSum[lh] = this.firstSum[lh]! + data[at]!;
    if (q >= 1) this.prevSum[lh] = this.prevSum[lh]! + data[at + q - 1]!;
    const t = this.targets ? this.targets[q]! : -1;
    if (t >= 0) this.inductionSum[lh] = this.inductionSum[lh]! + data[at + t]!;
    this.seen[layer] = this.seen[layer]! + 1;
  }

  /** A chunk as the forward pass hands it to a Recorder: data [nHeads, n, start + n], query rows start .. start+n−1. */
  chunk(layer: number, start: number, data: Float32Array, n: number): void {
    const kLen = start + n;
    const bits = new Int32Array(data.buffer, data.byteOffset, data.length);
    for (let h = 0; h < this.nHeads; h++) {
      for (let t = 0; t < n; t++) {
        const at = (h * n + t) * kLen, q = start + t;
        const entropy = q < this.knownEntropies ? this.entropies[(layer * this.nHeads + h) * this.nPos + q]! : rowEntropyF32(data, bits, at, q + 1);
        this.rowAt(layer, h, q, data, at, entropy);
      }
    }
  }

  /** The means. Throws (a bug, not bad input) when some row never arrived. */
  result(): AttentionSummaryData {
    const { nLayers, nHeads, nPos, size: B, starts } = this;
    for (let l = 0; l < nLayers; l++) {
      if (this.seen[l] !== nHeads * nPos) throw new Error(`summary: layer ${l} received ${this.seen[l]} of ${nHeads * nPos} rows`);
    }
    // causal entries per (query bin, key bin): Σ over q in the query bin of |{k in the key bin : k ≤ q}|
    const count = new Float64Array(B * B);                                   // [B, B]
    for (let q = 0; q < nPos; q++) {
      const qb = binOf(q, nPos, B);
      for (let kb = 0; kb <= qb; kb++) count[qb * B + kb] = count[qb * B + kb]! + Math.max(0, Math.min(starts[kb + 1]!, q + 1) - starts[kb]!);
    }
    const thumbs = new Float32Array(nLayers * nHeads * B * B);              // [nLayers, nHeads, B, B]
    for (let i = 0; i < thumbs.length; i++) {
      const c = count[i % (B * B)]!;
      thumbs[i] = c > 0 ? this.sums[i]! / c : NaN;
    }
    const mean = (s: Float64Array, n: number) => {
      const m = new Float32Array(s.length);
      for (let i = 0; i < s.length; i++) m[i] = n > 0 ? s[i]! / n : NaN;
      return m;
    };
    return {
      nLayers, nHeads, nPos, size: B, thumbs,
      entropy: mean(this.entropySum, nPos), first: mean(this.firstSum, nPos), prev: mean(this.prevSum, nPos - 1),
      induction: mean(this.inductionSum, this.withTarget),
    };
  }
}

/** The summary of whole patterns, [nHeads, nPos, nPos] per layer (query q's causal row first in
 *  its row; a chunk of every position has that layout): the worker's for one stored layer, the
 *  page's for the layers it holds. */
export function summarizeSquares(layers: readonly Float32Array[], nHeads: number, nPos: number, size: number, tokens?: ArrayLike<number>): AttentionSummaryData {
  const acc = new AttentionSummarizer(layers.length, nHeads, nPos, size, tokens);
  layers.forEach((d, l) => acc.chunk(l, 0, d, nPos));
  return acc.result();
}

/** The bytes a summary takes (for the engine's trace accounting). */
export function summaryBytes(s: AttentionSummaryData): number {
  return s.thumbs.byteLength + s.entropy.byteLength + s.first.byteLength + s.prev.byteLength + s.induction.byteLength;
}
