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

/**
 * The distribution the next token is drawn from, after every filter and the temperature.
 * Greedy (temperature 0) gives the single argmax with probability 1.
 */
export function samplingDistribution(logits: Float32Array, previous: readonly number[], options: SamplerOptions = {}): Distribution {
  const o = check(options);
  const l = applyRepetitionPenalty(logits, previous, o.repeatPenalty, o.repeatLastN);
  if (o.temperature === 0) return { ids: [argmax(l)], probs: Float64Array.of(1) };

  // candidates, most likely first (lowest id first on ties); −inf logits can never be drawn
  let ids: number[] = [];
  for (let i = 0; i < l.length; i++) if (l[i]! > -Infinity) ids.push(i);
  if (ids.length === 0) throw new UsageError('sampler', 'every logit is −inf; there is nothing to sample');
  ids.sort((a, b) => l[b]! - l[a]! || a - b);

  // top-k
  if (o.topK > 0 && ids.length > o.topK) ids = ids.slice(0, o.topK);

  // probabilities at temperature 1 for top-p and min-p (relative to the candidates kept so far)
  const max = l[ids[0]!]!;
  if (o.topP < 1 || o.minP > 0) {
    let sum = 0;
    for (const id of ids) sum += Math.exp(l[id]! - max);
    // top-p: the shortest prefix whose probability reaches p
    if (o.topP < 1) {
      let cum = 0, keep = ids.length;
      for (let i = 0; i < ids.length; i++) {
        cum += Math.exp(l[ids[i]!]! - max) / sum;
        if (cum >= o.topP) { keep = i + 1; break; }
      }
      ids = ids.slice(0, keep);
    }
    // min-p: p(token) ≥ minP · p(most likely)  ⇔  logit ≥ max + ln(minP)
    if (o.minP > 0) {
      const threshold = max + Math.log(o.minP);
      let keep = 1;
      while (keep < ids.length && l[ids[keep]!]! >= threshold) keep++;
      ids = ids.slice(0, keep);
    }
  }

  // temperature, then softmax (subtracting the max)
  const probs = new Float64Array(ids.length);
  let sum = 0;
  for (let i = 0; i < ids.length; i++) sum += probs[i] = Math.exp((l[ids[i]!]! - max) / o.temperature);
  for (let i = 0; i < ids.length; i++) probs[i]! /= sum;
  return { ids, probs };
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
