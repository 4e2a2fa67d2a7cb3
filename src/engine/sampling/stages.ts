// The sampler stages, each a pure function from a candidate set to a new one (candidates.ts keeps
// the sets sorted, most likely first). Semantics follow llama.cpp's samplers, so that glassbox and
// llama.cpp given the same settings keep the same candidates; where llama.cpp leaves an order
// unspecified (typical-p's output, ties) glassbox keeps rank order, the lowest id first on ties.
// Every "off" value returns the input set itself, so the chain can tell a stage did nothing.

import { type Candidates, entropyOf, moveLogits, prefix, probsOf, ranksOf, reorder, suffix, withDetail } from './candidates.ts';

/** Logits stay float32 values, as the model produced them and llama.cpp keeps them. */
const f32 = Math.fround;

// ---------------------------------------------------------------------------------------------
// Stages that move logits

/** Adds `bias[id]` to each listed candidate's logit; −Infinity bans the token. */
export function logitBias(c: Candidates, bias: ReadonlyMap<number, number>): Candidates {
  if (bias.size === 0) return c;
  const ranks = ranksOf(c, bias.keys());
  return moveLogits(c, ranks, ranks.map((r) => f32(c.logits[r]! + bias.get(c.ids[r]!)!)));
}

/** How often each token occurs among the last `lastN` of `history` (−1: all of it). */
export function tokenCounts(history: ArrayLike<number>, lastN: number): Map<number, number> {
  const counts = new Map<number, number>();
  const from = lastN < 0 ? 0 : Math.max(0, history.length - lastN);
  for (let i = from; i < history.length; i++) counts.set(history[i]!, (counts.get(history[i]!) ?? 0) + 1);
  return counts;
}

export interface PenaltyOptions {
  /** CTRL's repetition penalty: positive logits are divided by it, the others multiplied; 1 = off. */
  repeat: number;
  /** Subtracted once per occurrence in the window; 0 = off. */
  frequency: number;
  /** Subtracted once if the token occurs in the window at all; 0 = off. */
  presence: number;
  /** The window: the last `lastN` tokens of the history; −1 = all, 0 = off. */
  lastN: number;
}

/**
 * Repetition, frequency and presence penalties, as llama.cpp applies them together: for each
 * token seen `count` > 0 times in the window, logit → (logit > 0 ? logit / repeat : logit · repeat)
 * − count · frequency − presence.
 */
export function penalties(c: Candidates, history: ArrayLike<number>, o: PenaltyOptions): Candidates {
  if (o.lastN === 0 || (o.repeat === 1 && o.frequency === 0 && o.presence === 0)) return c;
  const counts = tokenCounts(history, o.lastN);
  const ranks = ranksOf(c, counts.keys());
  return moveLogits(c, ranks, ranks.map((r) => {
    const l = c.logits[r]!, count = counts.get(c.ids[r]!)!;
    return f32(f32(l > 0 ? l / o.repeat : l * o.repeat) - (count * o.frequency + o.presence));
  }));
}

export interface DryOptions {
  /** Penalty scale; 0 = off. */
  multiplier: number;
  /** The penalty grows as base^(repeat length − allowedLength); ≥ 1. */
  base: number;
  /** Repeats up to this long are free. */
  allowedLength: number;
  /** The window: the last `lastN` tokens of the history; −1 = all, 0 = off. */
  lastN: number;
  /**
   * Token sequences a repeat may not run across (a newline, ':', a quote…), as token ids: llama.cpp
   * takes strings and finds every tokenization of them; the caller does that with its tokenizer.
   */
  sequenceBreakers: readonly (readonly number[])[];
}

/** Above this exponent base^exponent overflows a float32 (llama.cpp's clamp, ln(FLT_MAX) = 88.72). */
const FLOAT_MAX_LOG = 88.7228391;

/**
 * DRY ("don't repeat yourself", p-e-w's sampler as llama.cpp runs it). If emitting token t would
 * extend a sequence that already occurred in the window — the last L tokens of the history also
 * occur earlier, followed by t — and L ≥ allowedLength, t's logit loses multiplier · base^(L −
 * allowedLength), with L the longest such repeat. A repeat cannot reach back across the most
 * recent sequence breaker, and a single-token breaker is never penalized itself.
 * Returns the per-token repeat lengths in the detail (for the notebook), as "id:length" pairs.
 */
export function dry(c: Candidates, history: ArrayLike<number>, o: DryOptions): Candidates {
  if (o.multiplier === 0 || o.lastN === 0) return c;
  const lengths = dryRepeatLengths(history, o);
  if (lengths.size === 0) return c;
  const single = new Set<number>();
  for (const b of o.sequenceBreakers) if (b.length === 1) single.add(b[0]!);
  const maxExp = o.base > 1.000001 ? Math.floor(FLOAT_MAX_LOG / Math.log(o.base)) : 0;
  const ranks = ranksOf(c, lengths.keys()).filter((r) => !single.has(c.ids[r]!));
  const values = ranks.map((r) => {
    let e = lengths.get(c.ids[r]!)! - o.allowedLength;
    if (maxExp > 0 && e > maxExp) e = maxExp;
    return f32(c.logits[r]! - o.multiplier * Math.pow(o.base, e));
  });
  const detail = { repeats: ranks.map((r) => `${c.ids[r]}:${lengths.get(c.ids[r]!)}`).join(' ') };
  return moveLogits(c, ranks, values, detail);
}

/**
 * For each token that would extend a repeat of length ≥ allowedLength, the longest such length.
 * With R the window reversed (R[0] the last token), Z[k] = the longest common prefix of R and
 * R[k..] (the Z-algorithm, linear) is how far the window's tail also occurs ending k tokens back;
 * the token that followed that earlier occurrence is R[k − 1].
 */
export function dryRepeatLengths(history: ArrayLike<number>, o: Pick<DryOptions, 'allowedLength' | 'lastN' | 'sequenceBreakers'>): Map<number, number> {
  const out = new Map<number, number>();
  const n = o.lastN < 0 ? history.length : Math.min(history.length, o.lastN);
  if (n <= o.allowedLength) return out;
  const R = new Int32Array(n);
  for (let i = 0; i < n; i++) R[i] = history[history.length - 1 - i]!;

  // the most recent breaker limits how far back a repeat may reach: R[i] heads a breaker whose
  // tail (the tokens after it, forward in time) is R[i−1], R[i−2], …; the repeat is the tokens after it
  let limit = n;
  for (let i = 0; i < n && limit === n; i++) {
    let longest = -1;
    for (const b of o.sequenceBreakers) {
      const tail = b.length - 1;
      if (b[0] !== R[i] || tail > i || tail <= longest) continue;
      let match = true;
      for (let j = 1; j <= tail && match; j++) match = b[j] === R[i - j];
      if (match) longest = tail;
    }
    if (longest >= 0) limit = i - longest;
  }
  if (limit < o.allowedLength) return out;

  const Z = new Int32Array(n);                       // Z[0] unused: the whole string
  for (let k = 1, lt = 0, rt = 0; k < n; k++) {      // [lt, rt): the rightmost match window found
    let z = 0;
    if (k < rt) z = Math.min(rt - k, Z[k - lt]!);
    while (k + z < n && R[z] === R[k + z]) z++;
    Z[k] = z;
    if (k + z > rt) { lt = k; rt = k + z; }
  }
  for (let k = 1; k < n; k++) {
    const len = Math.min(Z[k]!, limit);
    if (len < o.allowedLength) continue;
    const next = R[k - 1]!;
    if ((out.get(next) ?? -1) < len) out.set(next, len);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Stages that keep a subset

/** The `k` most likely (lowest id first on ties); 0 = off; k beyond the set keeps all. */
export function topK(c: Candidates, k: number): Candidates {
  return k > 0 && k < c.ids.length ? prefix(c, k) : c;
}

/**
 * Locally typical sampling (Meister et al.): keep the tokens whose surprise −ln p is closest to
 * the entropy H, in order of |−ln p − H|, until their probability exceeds p (strictly, as
 * llama.cpp); 1 = off. Unlike the other filters it can drop the most likely token.
 *
 * No sort: along the ranks −ln p only grows, so |−ln p − H| falls to the rank where −ln p
 * crosses H and grows after it; the order by typicality is a merge outward from that rank
 * (equal scores: the lower rank first). The result is kept in rank order.
 */
export function typicalP(c: Candidates, p: number, minKeep = 1): Candidates {
  const n = c.ids.length;
  if (p >= 1 || n <= 1) return c;
  const probs = probsOf(c), h = entropyOf(c);
  const score = (r: number) => Math.abs(-Math.log(probs[r]!) - h);
  let right = 0;                                   // the first rank whose surprise reaches H
  while (right < n && -Math.log(probs[right]!) < h) right++;
  let left = right - 1;                            // ranks (left, right) taken so far: none
  const taken: number[] = [];
  let cum = 0;
  const take = (r: number) => { taken.push(r); cum += probs[r]!; return cum > p && taken.length >= minKeep; };
  outer: while (left >= 0 || right < n) {
    if (right >= n || (left >= 0 && score(left) <= score(right))) {
      // a run of equal scores on the left goes in rank order
      const s = score(left);
      let from = left;
      while (from > 0 && score(from - 1) === s) from--;
      for (let r = from; r <= left; r++) if (take(r)) break outer;
      left = from - 1;
    } else if (take(right++)) break;
  }
  if (taken.length === n) return c;
  taken.sort((a, b) => a - b);
  const lo = taken[0]!, hi = taken[taken.length - 1]!;
  if (hi - lo + 1 === taken.length) {
    return { ids: c.ids.subarray(lo, hi + 1), logits: c.logits.subarray(lo, hi + 1), detail: { entropy: h } };
  }
  return {
    ids: Int32Array.from(taken, (r) => c.ids[r]!), logits: Float64Array.from(taken, (r) => c.logits[r]!),
    detail: { entropy: h },
  };
}

/** Nucleus sampling: the shortest prefix whose probability reaches p (at least minKeep); 1 = off, 0 keeps one. */
export function topP(c: Candidates, p: number, minKeep = 1): Candidates {
  const n = c.ids.length;
  if (p >= 1 || n <= 1) return c;
  const probs = probsOf(c);
  let cum = 0;
  for (let i = 0; i < n; i++) {
    cum += probs[i]!;
    if (cum >= p && i + 1 >= minKeep) return prefix(c, i + 1);
  }
  return c;
}

/** Keeps tokens at least p times as likely as the most likely: logit ≥ max + ln p; 0 = off. */
export function minP(c: Candidates, p: number, minKeep = 1): Candidates {
  const n = c.ids.length;
  if (p <= 0 || n <= 1) return c;
  const threshold = c.logits[0]! + Math.log(p);
  let i = 1;
  while (i < n && (c.logits[i]! >= threshold || i < minKeep)) i++;
  return prefix(c, i);
}

/**
 * Top-nσ (Tang et al.): keeps the logits within n standard deviations of the largest,
 * logit ≥ max − n·σ, with σ the population standard deviation of the set's logits; 0 = off.
 */
export function topNSigma(c: Candidates, nSigma: number): Candidates {
  const n = c.ids.length;
  if (nSigma <= 0 || n <= 1) return c;
  const l = c.logits;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += l[i]!;
  mean /= n;
  let v = 0;
  for (let i = 0; i < n; i++) v += (l[i]! - mean) ** 2;
  const sigma = Math.sqrt(v / n), threshold = l[0]! - nSigma * sigma;
  let i = 1;
  while (i < n && l[i]! >= threshold) i++;
  return prefix(c, i, { sigma, threshold });
}

export interface XtcOptions {
  /** How often XTC acts: it acts when the random number u < probability; 0 = off. */
  probability: number;
  /** Tokens at least this likely are the "top choices"; above 0.5 at most one can be, so it is off. */
  threshold: number;
  minKeep?: number;
}

/**
 * Exclude Top Choices (p-e-w): when it acts, every token with probability ≥ threshold except the
 * least likely of them is removed — the model's obvious choices give way to a less obvious one
 * that is still plausible. `u` is a uniform number in [0, 1) drawn for this token.
 */
export function xtc(c: Candidates, o: XtcOptions, u: number): Candidates {
  const n = c.ids.length;
  if (o.probability <= 0 || o.threshold > 0.5 || n < 2) return c;
  if (!(u < o.probability)) return withDetail(c, { acted: false, u });
  const probs = probsOf(c);
  let last = 0;                                    // rank of the least likely top choice
  while (last + 1 < n && probs[last + 1]! >= o.threshold) last++;
  if (probs[0]! < o.threshold || last === 0 || n - last < (o.minKeep ?? 1)) return withDetail(c, { acted: false, u });
  return suffix(c, last, { acted: true, u });
}

export interface TemperatureOptions {
  /** Divides the logits; 0 = greedy (keeps the most likely alone, the lowest id on ties). */
  temperature: number;
  /** Dynamic temperature: the temperature ranges over [t − range, t + range] by entropy; 0 = off. */
  range?: number;
  /** Dynamic temperature: t − range + 2·range · (H / ln n)^exponent. Default 1. */
  exponent?: number;
}

/**
 * Temperature, and llama.cpp's dynamic temperature (entropy-based, "temp-ext"): with range > 0 the
 * temperature is min + (max − min) · (H / H_max)^exponent, H the entropy of the set's softmax and
 * H_max = ln n that of a uniform one — flat distributions get hotter, peaked ones colder.
 */
export function temperature(c: Candidates, o: TemperatureOptions): Candidates {
  const n = c.ids.length;
  let t = o.temperature;
  let detail: Candidates['detail'];
  if (t > 0 && (o.range ?? 0) > 0) {
    if (n <= 1) return c;
    const lo = Math.max(0, t - o.range!), hi = t + o.range!;
    const hNorm = Math.min(1, entropyNorm(c));
    t = lo + (hi - lo) * Math.pow(hNorm, o.exponent ?? 1);
    detail = { temperature: t, normalizedEntropy: hNorm };
  }
  if (!(t > 0)) return prefix(c, 1, detail ?? { temperature: 0 });
  if (t === 1) return detail ? withDetail(c, detail) : c;
  const l = c.logits, out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = l[i]! / t;
  if (n > 0 && !Number.isFinite(out[0]!)) {        // t so small the division overflows: shift first
    const max = l[0]!;
    for (let i = 0; i < n; i++) out[i] = (l[i]! - max) / t;
  }
  // logits pushed to −inf have probability 0 exactly: drop them (a suffix), keeping sets finite
  let m = n;
  while (m > 1 && out[m - 1] === -Infinity) m--;
  return reorder(m < n ? c.ids.subarray(0, m) : c.ids, m < n ? out.subarray(0, m) : out, detail);
}

function entropyNorm(c: Candidates): number {
  const probs = probsOf(c);
  let h = 0;
  for (let i = 0; i < probs.length; i++) if (probs[i]! > 0) h -= probs[i]! * Math.log(probs[i]!);
  return h / Math.log(probs.length);
}
