// Generation: run, sample, append, repeat. Each step reuses the session's KV cache for everything
// but the newest token (session.ts), so a step costs one position of the forward pass.

import type { Session } from './session.ts';
import { Sampler, type SamplerOptions } from './sampler.ts';
import { UsageError } from './errors.ts';

export interface GenerateOptions extends SamplerOptions {
  /** At most this many new tokens. */
  maxTokens: number;
  /** Seed of the sampler's PRNG (default 0); ignored when greedy. */
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
  const k = candidatesNeeded(options);
  const tokens = [...promptIds];
  let sparse: Float32Array | null = null;
  for (let i = 0; i < maxTokens; i++) {
    if (i > 0 && tokens.length > c.nCtx) return;          // the context is full
    let id: number;
    if (k === 0) {
      const { logits } = await session.runAsync(tokens);   // [vocab] of the last position
      id = sampler.sample(logits, tokens);
    } else {
      const { top } = await session.runAsync(tokens, { logits: 'top', topK: k });
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

/** What both generators start from: checked options, the stop ids, and a seeded sampler. */
function setUp(session: Session, options: GenerateOptions) {
  const { maxTokens } = options;
  if (!Number.isInteger(maxTokens) || maxTokens < 0) throw new UsageError('generate', `maxTokens is ${maxTokens}; it must be an integer ≥ 0`);
  const c = session.config;
  const stop = new Set<number>(options.stopIds ?? []);
  if (c.eosId !== null) stop.add(c.eosId);
  return { maxTokens, c, stop, stopAtEos: options.stopAtEos ?? true, sampler: new Sampler(options, options.seed ?? 0) };
}

/** How many top logits the sampler needs (0: the whole row). */
function candidatesNeeded(o: GenerateOptions): number {
  if ((o.repeatPenalty ?? 1) !== 1) return 0;             // the penalty reorders the whole row
  if (o.temperature === 0) return 1;
  const k = o.topK ?? 0;
  return k >= 1 && k <= 64 ? k : 0;
}
