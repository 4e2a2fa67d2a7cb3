// Generation: run, sample, append, repeat. Each step reuses the session's KV cache for everything
// but the newest token (session.ts), so a step costs one position of the forward pass.

import type { Session } from './session.ts';
import { ChainSampler, type ChainOptions, type ResolvedOptions } from './sampling/index.ts';
import { UsageError } from './errors.ts';

export interface GenerateOptions extends ChainOptions {
  /** At most this many new tokens. */
  maxTokens: number;
  /** Seed of the draws (default 0): the token at position i is drawn with drawUniform(seed, i). */
  seed?: number;
  /** Stop (without yielding it) at the model's EOS or any of `stopIds`. Default true. */
  stopAtEos?: boolean;
  /** More ids that end generation (Llama 3's <|eot_id|>), e.g. the tokenizer's eogIds. */
  stopIds?: readonly number[];
}

/**
 * Yields up to maxTokens new token ids after `promptIds` (which should start with BOS when the
 * model expects one). Stops early at EOS/stop ids, or when the context is full. The prompt must
 * fit the context (ContextLengthError otherwise).
 */
export function* generate(session: Session, promptIds: readonly number[], options: GenerateOptions): Generator<number, void, undefined> {
  const { maxTokens, c, stop, stopAtEos, sampler } = setUp(session, options);
  const tokens = [...promptIds];
  for (let i = 0; i < maxTokens; i++) {
    if (i > 0 && tokens.length > c.nCtx) return;          // the context is full
    const { logits } = session.run(tokens);                // [vocab] of the last position
    const id = sampler.sample(logits, tokens);
    if (stopAtEos && stop.has(id)) return;
    tokens.push(id);
    yield id;
  }
}

/**
 * generate() on any backend (session.runAsync). When the sampler only needs the top few logits
 * (greedy, or top-k ≤ 64, without a repetition penalty) only those are asked for, so that WebGPU
 * reads back a few bytes per token rather than the vocabulary; the tokens are the same as
 * generate()'s, since the sampler's filters keep at most those candidates anyway.
 */
export async function* generateAsync(session: Session, promptIds: readonly number[], options: GenerateOptions): AsyncGenerator<number, void, undefined> {
  const { maxTokens, c, stop, stopAtEos, sampler } = setUp(session, options);
  const k = candidatesNeeded(sampler.options);
  const tokens = [...promptIds];
  let sparse: Float32Array | null = null;
  for (let i = 0; i < maxTokens; i++) {
    if (i > 0 && tokens.length > c.nCtx) return;          // the context is full
    let id: number;
    if (k === 0) {
      const { logits } = await session.runAsync(tokens);   // [vocab] of the last position
      id = sampler.sample(logits, tokens);
    } else {
      // greedy on WebGPU: the next steps run ahead, fed this argmax on the GPU (session.ts RunOptions.ahead)
      const ahead = k === 1 ? Math.min(AHEAD, maxTokens - 1 - i) : 0;
      const { top } = await session.runAsync(tokens, { logits: 'top', topK: k, ahead });
      if (k === 1) id = top!.ids[0]!;                       // greedy: the argmax
      else {
        // the k candidates at their logits, everything else impossible: the same distribution
        sparse ??= new Float32Array(c.vocabSize);
        sparse.fill(-Infinity);
        top!.ids.forEach((t, j) => { sparse![t] = top!.logits![j]!; });
        id = sampler.sample(sparse, tokens);
      }
    }
    if (stopAtEos && stop.has(id)) return;
    tokens.push(id);
    yield id;
  }
}

/** Greedy look-ahead steps generateAsync keeps submitted on WebGPU: enough to keep the GPU busy
 *  while the CPU records the next step and the last id is read back. */
const AHEAD = 2;

/** What both generators start from: checked options, the stop ids, and a seeded sampler. */
function setUp(session: Session, options: GenerateOptions) {
  const { maxTokens } = options;
  if (!Number.isInteger(maxTokens) || maxTokens < 0) throw new UsageError('generate', `maxTokens is ${maxTokens}; it must be an integer ≥ 0`);
  const c = session.config;
  const stop = new Set<number>(options.stopIds ?? []);
  if (c.eosId !== null) stop.add(c.eosId);
  const { maxTokens: _m, seed, stopAtEos, stopIds: _s, ...chain } = options;
  return { maxTokens, c, stop, stopAtEos: stopAtEos ?? true, sampler: new ChainSampler(chain, seed ?? 0) };
}

/**
 * How many top logits the sampler needs (0: the whole row). Only when no stage before top-k
 * looks past the top k (no logit bias, penalties, DRY, top-n-sigma, mirostat) and top-k runs
 * before every other stage that is on: then the k best logits decide everything.
 */
function candidatesNeeded(o: ResolvedOptions): number {
  if (o.logitBias.size > 0 || o.mirostat !== 0) return 0;
  if (o.repeatLastN !== 0 && (o.repeatPenalty !== 1 || o.frequencyPenalty !== 0 || o.presencePenalty !== 0)) return 0;
  if (o.dryMultiplier !== 0 && o.dryLastN !== 0) return 0;
  if (o.topNSigma > 0) return 0;
  if (o.temperature === 0 && o.dynatempRange === 0 && o.order.includes('temperature') && o.typicalP === 1 && o.xtcProbability === 0) {
    // greedy: the argmax (top-k, top-p and min-p always keep it)
    return 1;
  }
  const k = o.order.includes('top_k') ? o.topK : 0;
  if (!(k >= 1 && k <= 64)) return 0;
  // the stages that are on must all come after top-k (they then see only its k candidates)
  const at = o.order.indexOf('top_k');
  const on: Record<string, boolean> = {
    typ_p: o.typicalP < 1, top_p: o.topP < 1, min_p: o.minP > 0, xtc: o.xtcProbability > 0, temperature: true,
  };
  for (const name of o.order.slice(0, at)) if (on[name]) return 0;
  return k;
}
