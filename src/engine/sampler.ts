// Choosing the next token from logits: greedy, or sampled after filters.
//
// The filters run in llama.cpp's default order, so that glassbox and llama.cpp given the same
// settings keep the same candidates:
//   repetition penalty → top-k → top-p → min-p → temperature → draw.
// Top-p and min-p therefore look at the distribution at temperature 1; temperature only reshapes
// what they kept. Temperature 0 is greedy: the highest logit after the repetition penalty, the
// lowest id on ties. Draws come from a seeded PRNG (random.ts), so a seed repeats its tokens
// exactly on every backend that computes the same logits.

import { Rng } from './random.ts';
import { UsageError } from './errors.ts';
import { fromLogits } from './sampling/candidates.ts';

export interface SamplerOptions {
  /** Softmax temperature; 0 = greedy (argmax). Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens; 0 = off. */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p; 1 = off. */
  topP?: number;
  /** Keep tokens whose probability is at least minP × that of the most likely; 0 = off. */
  minP?: number;
  /** Divide positive logits (multiply negative ones) of recently seen tokens by this; 1 = off. */
  repeatPenalty?: number;
  /** How many previous tokens the penalty looks at; −1 = all. Default 64 (llama.cpp's). */
  repeatLastN?: number;
}

/** The distribution a token is drawn from: candidate ids, most likely first, and their probabilities. */
export interface Distribution {
  ids: number[];
  probs: Float64Array;
}

function check(o: SamplerOptions): Required<SamplerOptions> {
  const r = {
    temperature: o.temperature ?? 1, topK: o.topK ?? 0, topP: o.topP ?? 1, minP: o.minP ?? 0,
    repeatPenalty: o.repeatPenalty ?? 1, repeatLastN: o.repeatLastN ?? 64,
  };
  const bad = (field: string, v: number, want: string) => new UsageError('sampler', `${field} is ${v}; it must be ${want}`);
  if (!(r.temperature >= 0) || !Number.isFinite(r.temperature)) throw bad('temperature', r.temperature, 'a number ≥ 0');
  if (!Number.isInteger(r.topK) || r.topK < 0) throw bad('top-k', r.topK, 'an integer ≥ 0 (0 turns it off)');
  if (!(r.topP > 0 && r.topP <= 1)) throw bad('top-p', r.topP, 'in (0, 1] (1 turns it off)');
  if (!(r.minP >= 0 && r.minP <= 1)) throw bad('min-p', r.minP, 'in [0, 1] (0 turns it off)');
  if (!(r.repeatPenalty > 0) || !Number.isFinite(r.repeatPenalty)) throw bad('repeat penalty', r.repeatPenalty, 'a number > 0 (1 turns it off)');
  if (!Number.isInteger(r.repeatLastN) || r.repeatLastN < -1) throw bad('repeat-last-n', r.repeatLastN, 'an integer ≥ −1');
  return r;
}

/** Index of the largest value; the lowest index on ties. */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

/**
 * The repetition penalty (CTRL, as llama.cpp applies it): each distinct token among the last
 * `lastN` of `previous` has its logit divided by `penalty` when positive, multiplied when not.
 * Returns a new array; the caller's logits are not changed (a notebook keeps them).
 */
export function applyRepetitionPenalty(logits: Float32Array, previous: readonly number[], penalty: number, lastN = 64): Float32Array {
  const out = logits.slice();
  if (penalty === 1 || lastN === 0) return out;
  const from = lastN < 0 ? 0 : Math.max(0, previous.length - lastN);
  const seen = new Set<number>();
  for (let i = from; i < previous.length; i++) {
    const id = previous[i]!;
    if (seen.has(id) || id < 0 || id >= out.length) continue;
    seen.add(id);
    out[id] = out[id]! > 0 ? out[id]! / penalty : out[id]! * penalty;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The filters, stage by stage. One function computes what each stage keeps; samplingDistribution
// (what generation draws from) and the next-token cell (which draws every stage) both use it.
// Every stage keeps a prefix of the candidates sorted most likely first, so "what survived" is
// one count per stage.

/** Why a candidate is not in the final distribution: the filter that cut it, or temperature 0. */
export type SamplerCut = 'top-k' | 'top-p' | 'min-p' | 'greedy';

export interface SamplingStages {
  /** The logits after the repetition penalty (the caller's array when the penalty is off). [vocab] */
  logits: Float32Array;
  /** Candidates (logit > −inf), most likely first, the lowest id first on ties. [n] */
  ids: Int32Array;
  /** Softmax at temperature 1 over every candidate, before any filter. [n], by rank */
  p0: Float64Array;
  /** How many candidates (a prefix of ids) survive each stage, in chain order. */
  after: { topK: number; topP: number; minP: number; temperature: number };
  /** The final distribution over the kept candidates ids[0 .. kept), renormalised. [kept] */
  p: Float64Array;
  kept: number;
}

/** The stage that cut the candidate of rank `i` (0-based, into stages.ids), or null if it is kept. */
export function cutBy(s: SamplingStages, i: number): SamplerCut | null {
  const a = s.after;
  return i < a.temperature ? null : i < a.minP ? 'greedy' : i < a.topP ? 'min-p' : i < a.topK ? 'top-p' : 'top-k';
}

/** Ids whose logit is > −inf, sorted by logit (largest first, the lowest id first on ties): the
 *  sampler chain's one sort (sampling/candidates.ts fromLogits, a radix sort). */
export function sortedCandidates(logits: Float32Array): Int32Array {
  return fromLogits(logits).ids;
}

/**
 * Every stage of the chain: repetition penalty → top-k → top-p → min-p → temperature.
 * Top-p and min-p look at the temperature-1 distribution of what top-k kept; the temperature then
 * reshapes the survivors; temperature 0 keeps only the most likely. `sorted` may pass
 * sortedCandidates(logits) computed once (a notebook moving a slider); it is used only when the
 * penalty leaves the logits as they are. O(vocab) either way; `sorted` saves the sort (three
 * passes over the row).
 */
export function samplingStages(logits: Float32Array, previous: readonly number[], options: SamplerOptions = {}, sorted?: Int32Array): SamplingStages {
  const o = check(options);
  const penalized = o.repeatPenalty !== 1 && o.repeatLastN !== 0 && previous.length > 0;
  const l = penalized ? applyRepetitionPenalty(logits, previous, o.repeatPenalty, o.repeatLastN) : logits;
  const ids = !penalized && sorted ? sorted : sortedCandidates(l);
  const n = ids.length;
  if (n === 0) throw new UsageError('sampler', 'every logit is −inf; there is nothing to sample');
  const max = l[ids[0]!]!;

  // temperature 1 over every candidate: the weights exp(l − max) now, normalised into p0 below
  const p0 = new Float64Array(n);
  let z0 = 0;
  for (let i = 0; i < n; i++) z0 += p0[i] = Math.exp(l[ids[i]!]! - max);

  // top-k
  const topK = o.topK > 0 && n > o.topK ? o.topK : n;

  // top-p and min-p, on the temperature-1 probabilities of what top-k kept
  let topP = topK, minP = topK;
  if (o.topP < 1 || o.minP > 0) {
    let sum = 0;
    if (topK === n) sum = z0;
    else for (let i = 0; i < topK; i++) sum += p0[i]!;
    // top-p: the shortest prefix whose probability reaches p
    if (o.topP < 1) {
      let cum = 0;
      for (let i = 0; i < topK; i++) {
        cum += p0[i]! / sum;
        if (cum >= o.topP) { topP = i + 1; break; }
      }
    }
    // min-p: p(token) ≥ minP · p(most likely)  ⇔  logit ≥ max + ln(minP)
    minP = topP;
    if (o.minP > 0) {
      const threshold = max + Math.log(o.minP);
      minP = 1;
      while (minP < topP && l[ids[minP]!]! >= threshold) minP++;
    }
  }

  // temperature, then softmax (subtracting the max); 0 keeps the most likely alone
  const kept = o.temperature === 0 ? 1 : minP;
  const p = new Float64Array(kept);
  if (o.temperature === 0) p[0] = 1;
  else {
    let sum = 0;
    for (let i = 0; i < kept; i++) sum += p[i] = Math.exp((l[ids[i]!]! - max) / o.temperature);
    for (let i = 0; i < kept; i++) p[i]! /= sum;
  }
  for (let i = 0; i < n; i++) p0[i]! /= z0;
  return { logits: l, ids, p0, after: { topK, topP, minP, temperature: kept }, p, kept };
}

/**
 * The distribution the next token is drawn from, after every filter and the temperature.
 * Greedy (temperature 0) gives the single argmax with probability 1 (one pass, no sort).
 */
export function samplingDistribution(logits: Float32Array, previous: readonly number[], options: SamplerOptions = {}): Distribution {
  const o = check(options);
  if (o.temperature === 0) {
    return { ids: [argmax(applyRepetitionPenalty(logits, previous, o.repeatPenalty, o.repeatLastN))], probs: Float64Array.of(1) };
  }
  const s = samplingStages(logits, previous, o);
  return { ids: Array.from(s.ids.subarray(0, s.kept)), probs: s.p };
}

/** Draws a token from a distribution with one uniform number u ∈ [0, 1). */
export function draw(d: Distribution, u: number): number {
  let cum = 0;
  for (let i = 0; i < d.ids.length; i++) {
    cum += d.probs[i]!;
    if (u < cum) return d.ids[i]!;
  }
  return d.ids[d.ids.length - 1]!; // u within rounding of 1
}

/** A sampler with its own seeded random stream: the same seed and logits give the same tokens. */
export class Sampler {
  readonly options: SamplerOptions;
  private readonly rng: Rng;

  constructor(options: SamplerOptions = {}, seed = 0) {
    check(options);
    this.options = { ...options };
    this.rng = new Rng(seed);
  }

  /** The next token for `logits` ([vocab]); `previous` is the sequence so far (for the penalty). */
  sample(logits: Float32Array, previous: readonly number[] = []): number {
    const d = samplingDistribution(logits, previous, this.options);
    if (this.options.temperature === 0) return d.ids[0]!;
    // one draw per sampled token, however many candidates are left, so the stream stays aligned
    return draw(d, this.rng.next());
  }
}

// ---------------------------------------------------------------------------------------------
// The full chain — logit bias, penalties, DRY, top-nσ, top-k, typical-p, top-p, min-p, XTC,
// (dynamic) temperature, mirostat — reorderable and reported stage by stage, lives in
// src/engine/sampling/. The functions above stay as they are for the next-token cell and
// generation; given only their options, the chain keeps the same candidates and draws the same
// tokens for a seed (test/node/sampling-chain.test.ts checks it).
export {
  ChainSampler, DEFAULT_ORDER, finalDistribution, resolveOptions, runChain,
  type ChainInput, type ChainOptions, type ChainResult, type StageName, type StageReport,
} from './sampling/index.ts';
