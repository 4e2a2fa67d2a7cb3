// The sampler chain: raw logits → the stages in the user's order → the draw (or mirostat), with a
// report of every step for the notebook's sampling cell: the candidate set after each stage,
// renormalised, what the stage removed and the entropy left; the random numbers; where the draw
// fell in the cumulative distribution; the chosen token's probability before and after.
//
// runChain is pure: the random numbers and mirostat's state come in as arguments, so a notebook
// moving a slider reruns it on the cached logits with the same numbers and sees exactly what
// changed. ChainSampler wraps it with seeded streams for generation.

import { drawUniform } from '../branches.ts';
import { UsageError } from '../errors.ts';
import { type Candidates, entropyOf, fromLogits, probAt, probReader, probsOf } from './candidates.ts';
import { dry, logitBias, minP, penalties, temperature, topK, topNSigma, topP, typicalP, xtc } from './stages.ts';
import { type MirostatState, mirostatStart, mirostatUpdate, mirostatV1Truncate, mirostatV2Truncate } from './mirostat.ts';
import { type ChainOptions, isResolved, type ResolvedOptions, resolveOptions, type StageName } from './options.ts';

/** One step of the chain as a notebook draws it. */
export interface StageReport {
  /** The stage, or the draw's own truncation ('mirostat'), or 'input' for the raw logits. */
  stage: StageName | 'mirostat' | 'input';
  /** False when the settings turn the stage off (its set is the previous one, unchanged). */
  active: boolean;
  /** Candidates after the stage, most likely first (the lowest id first on ties). [n] */
  ids: Int32Array;
  /** Their logits after the stage. [n] */
  logits: Float64Array;
  /** Their probabilities, renormalised over the set. [n] */
  probs: Float64Array;
  /** Ids the stage removed, in the order they had before it. [removed] */
  removed: Int32Array;
  /** Entropy of `probs`, in nats. */
  entropy: number;
  /** What the stage computed on the way: dynamic temperature, σ, XTC's decision, mirostat's k… */
  detail?: Readonly<Record<string, number | boolean | string>>;
}

export interface ChainInput {
  /** The tokens so far (prompt and generated), for the penalties and DRY. */
  history?: ArrayLike<number>;
  /** The uniform numbers in [0, 1) for this token: the draw's, and XTC's. */
  random: { draw: number; xtc?: number };
  /** Mirostat's state before this token; default μ = 2τ. */
  mirostat?: MirostatState;
  /** fromLogits(logits), when the caller already has it (a notebook moving a slider). */
  raw?: Candidates;
}

export interface ChainResult {
  /** The chosen token. */
  token: number;
  /** The raw logits as candidates (softmax at temperature 1, no stage): 'input'. */
  input: StageReport;
  /** One report per stage in `order`, then the mirostat truncation when on; stops at an empty set. */
  stages: StageReport[];
  /** The random numbers used for this token (xtc: null when XTC was not in the chain or off). */
  random: { draw: number; xtc: number | null };
  /** Where the draw fell: u in [lower, upper), the chosen candidate's rank in the final set. null on fallback. */
  draw: { rank: number; lower: number; upper: number } | null;
  /** The chosen token's probability in the softmax of the raw logits, and in the final distribution. */
  pBefore: number;
  pAfter: number;
  /** Set when a stage left no candidates: the token is then the argmax of the raw logits. */
  fallback: { stage: StageReport['stage']; reason: string } | null;
  /** Mirostat's state after this token (the input state when mirostat is off). */
  mirostat: MirostatState | null;
}

/** Index of the largest value (NaN never wins), the lowest index on ties; 0 when none is > −inf. */
function rawArgmax(x: Float32Array): number {
  let best = 0, bestL = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i]! > bestL) { bestL = x[i]!; best = i; }
  return best;
}

/**
 * A stage's report. The probabilities, entropy and removed ids are computed when first read (a
 * full-vocabulary softmax costs a millisecond or more), so generation that only wants the token
 * pays for none of them, and a notebook pays once per stage it draws.
 */
class Report implements StageReport {
  readonly ids: Int32Array;
  readonly logits: Float64Array;
  readonly detail?: StageReport['detail'];
  private removedIds: Int32Array | null = null;

  constructor(readonly stage: StageReport['stage'], readonly active: boolean, private readonly before: Candidates | null, private readonly set: Candidates) {
    this.ids = set.ids;
    this.logits = set.logits;
    if (set.detail) this.detail = set.detail;
  }
  get probs(): Float64Array { return probsOf(this.set); }
  get entropy(): number { return entropyOf(this.set); }
  get removed(): Int32Array {
    return this.removedIds ??= this.before && this.before !== this.set ? removedIds(this.before, this.set) : new Int32Array(0);
  }
}

/** Ids of `before` not in `after`. Prefix and suffix views are recognised without a scan. */
function removedIds(before: Candidates, after: Candidates): Int32Array {
  const a = after.ids, b = before.ids;
  if (a === b || a.length === b.length) return new Int32Array(0);   // stages only remove: same size, same set
  if (a.buffer === b.buffer) {
    const start = (a.byteOffset - b.byteOffset) / 4;
    if (start === 0) return b.subarray(a.length);                     // a prefix kept
    if (start + a.length === b.length) return b.subarray(0, start);   // a suffix kept
  }
  let maxId = 0;
  for (let i = 0; i < b.length; i++) if (b[i]! > maxId) maxId = b[i]!;
  const kept = new Uint8Array(maxId + 1);
  for (let i = 0; i < a.length; i++) kept[a[i]!] = 1;
  const out: number[] = [];
  for (let i = 0; i < b.length; i++) if (!kept[b[i]!]) out.push(b[i]!);
  return Int32Array.from(out);
}

function checkUniform(u: unknown, field: string): number {
  if (typeof u !== 'number' || !(u >= 0 && u < 1)) throw new UsageError('sampler', `random.${field} is ${String(u)}; it must be a number in [0, 1)`);
  return u;
}

/** Runs one stage on `c`; returns it unchanged (the same object) when its settings turn it off. */
function runStage(name: StageName, c: Candidates, o: ResolvedOptions, history: ArrayLike<number>, uXtc: number): Candidates {
  const minKeep = Math.max(1, o.minKeep);
  switch (name) {
    case 'logit_bias': return logitBias(c, o.logitBias);
    case 'penalties': return penalties(c, history, { repeat: o.repeatPenalty, frequency: o.frequencyPenalty, presence: o.presencePenalty, lastN: o.repeatLastN });
    case 'dry': return dry(c, history, { multiplier: o.dryMultiplier, base: o.dryBase, allowedLength: o.dryAllowedLength, lastN: o.dryLastN, sequenceBreakers: o.drySequenceBreakers });
    case 'top_n_sigma': return topNSigma(c, o.topNSigma);
    case 'top_k': return topK(c, o.topK);
    case 'typ_p': return typicalP(c, o.typicalP, minKeep);
    case 'top_p': return topP(c, o.topP, minKeep);
    case 'min_p': return minP(c, o.minP, minKeep);
    case 'xtc': return xtc(c, { probability: o.xtcProbability, threshold: o.xtcThreshold, minKeep }, uXtc);
    case 'temperature': return temperature(c, { temperature: o.temperature, range: o.dynatempRange, exponent: o.dynatempExponent });
  }
}

/** Whether a stage's settings turn it on (for the report: an "on" stage may still change nothing). */
function isOn(name: StageName, o: ResolvedOptions): boolean {
  switch (name) {
    case 'logit_bias': return o.logitBias.size > 0;
    case 'penalties': return o.repeatLastN !== 0 && (o.repeatPenalty !== 1 || o.frequencyPenalty !== 0 || o.presencePenalty !== 0);
    case 'dry': return o.dryMultiplier !== 0 && o.dryLastN !== 0;
    case 'top_n_sigma': return o.topNSigma > 0;
    case 'top_k': return o.topK > 0;
    case 'typ_p': return o.typicalP < 1;
    case 'top_p': return o.topP < 1;
    case 'min_p': return o.minP > 0;
    case 'xtc': return o.xtcProbability > 0 && o.xtcThreshold <= 0.5;
    case 'temperature': return o.temperature !== 1 || o.dynatempRange > 0;
  }
}

/**
 * One token through the chain. `logits` is the raw row [vocab] (not changed). Options are
 * validated first (UsageError naming the field). O(vocab) plus the stages' work on what is left:
 * the sort is a radix sort, and truncating stages keep views.
 */
export function runChain(logits: Float32Array, options: ChainOptions | ResolvedOptions, input: ChainInput): ChainResult {
  const o = isResolved(options) ? options : resolveOptions(options);
  const history = input.history ?? [];
  const u = checkUniform(input.random?.draw, 'draw');
  const usesXtc = o.order.includes('xtc') && isOn('xtc', o);
  const uXtc = usesXtc ? checkUniform(input.random.xtc, 'xtc') : 0;
  for (const id of o.logitBias.keys()) {
    if (id >= logits.length) throw new UsageError('sampler', `logitBias names token ${id} but the vocabulary has ${logits.length} tokens`);
  }
  const mu0 = o.mirostat ? (input.mirostat ?? mirostatStart(o.mirostatTau)) : null;
  if (mu0 && !Number.isFinite(mu0.mu)) throw new UsageError('sampler', `mirostat.mu is ${mu0.mu}; it must be a finite number`);

  const raw = input.raw ?? fromLogits(logits);
  const inputReport = new Report('input', true, null, raw);
  const stages: StageReport[] = [];
  const result = (token: number, pAfter: number, drawAt: ChainResult['draw'], fallback: ChainResult['fallback'], mirostat: MirostatState | null): ChainResult => ({
    token, input: inputReport, stages, random: { draw: u, xtc: usesXtc ? uXtc : null }, draw: drawAt,
    get pBefore() {                                // the raw softmax's normaliser is computed only if asked for
      const r = raw.ids.indexOf(token);
      return r < 0 ? 0 : probAt(raw, r);
    },
    pAfter, fallback, mirostat,
  });
  const fallBack = (stage: StageReport['stage'], reason: string) => result(rawArgmax(logits), 1, null, { stage, reason }, mu0);

  if (raw.ids.length === 0) return fallBack('input', 'every logit is −inf or NaN');
  let c = raw;
  for (const name of o.order) {
    const next = runStage(name, c, o, history, uXtc);
    stages.push(new Report(name, isOn(name, o), c, next));
    if (next.ids.length === 0) return fallBack(name, `${name} left no candidates`);
    c = next;
  }

  if (mu0) {                                       // mirostat truncates, then draws like dist
    const next = o.mirostat === 1 ? mirostatV1Truncate(c, mu0.mu, o.mirostatM, logits.length) : mirostatV2Truncate(c, mu0.mu);
    stages.push(new Report('mirostat', true, c, next));
    c = next;
  }

  // the draw: one uniform number, a cumulative search in rank order; a candidate of probability
  // 0 is never chosen, and u within rounding of 1 picks the last candidate that can be. The
  // probabilities are probAt's (probsOf's numbers, computed only as far as the search goes)
  const probOf = probReader(c);
  let rank = -1, lower = 0, cum = 0, p = 0;
  for (let i = 0; i < c.ids.length; i++) {
    const pi = probOf(i);
    if (pi === 0) continue;
    lower = cum;
    cum += pi;
    rank = i;
    p = pi;
    if (u < cum) break;
  }
  const mu1 = mu0 ? mirostatUpdate(mu0, p, { tau: o.mirostatTau, eta: o.mirostatEta }) : null;
  return result(c.ids[rank]!, p, { rank, lower, upper: cum }, null, mu1);
}


/** XTC's numbers come from the seed with these bits flipped, so they are not the draw's. */
export const XTC_SALT = 0x58544321;

/** The random numbers for the token at `position` of a generation seeded with `seed`. */
export function randomFor(seed: number, position: number): { draw: number; xtc: number } {
  return { draw: drawUniform(seed, position), xtc: drawUniform((seed ^ XTC_SALT) >>> 0, position) };
}

/** The set the token is drawn from (the last stage's, or mirostat's truncation), as ids and
 *  probabilities; the probabilities are computed when first read (the set can be the vocabulary). */
export function finalDistribution(r: ChainResult): { readonly ids: Int32Array; readonly probs: Float64Array } {
  if (r.fallback) return { ids: Int32Array.of(r.token), probs: Float64Array.of(1) };
  const last = r.stages.at(-1) ?? r.input;
  return { ids: last.ids, get probs() { return last.probs; } };
}

/**
 * A seeded sampler: the same seed, options and logits give the same tokens. The random numbers
 * for the token at position i of the sequence (i = history.length) are drawUniform(seed, i) for
 * the draw and drawUniform(seed ^ XTC_SALT, i) for XTC: functions of the seed and the position
 * alone (src/engine/branches.ts), so a generation forked at step k and continued draws what a
 * fresh generation from the forked prefix draws, and turning XTC on does not shift the draws.
 */
export class ChainSampler {
  readonly options: ResolvedOptions;
  private readonly seed: number;
  private state: MirostatState | null;

  constructor(options: ChainOptions = {}, seed = 0) {
    this.options = resolveOptions(options);
    this.seed = seed >>> 0;
    this.state = this.options.mirostat ? mirostatStart(this.options.mirostatTau) : null;
  }

  /** Mirostat's μ now (null when mirostat is off). */
  get mu(): number | null {
    return this.state?.mu ?? null;
  }

  /** The next token with the full report; advances the streams and mirostat's state. */
  step(logits: Float32Array, history: ArrayLike<number> = []): ChainResult {
    const random = randomFor(this.seed, history.length);
    const r = runChain(logits, this.options, { history, random, ...(this.state && { mirostat: this.state }) });
    if (this.state && r.mirostat) this.state = r.mirostat;
    return r;
  }

  /** The next token for `logits` ([vocab]); `history` is the sequence so far. */
  sample(logits: Float32Array, history: ArrayLike<number> = []): number {
    return this.step(logits, history).token;
  }
}
