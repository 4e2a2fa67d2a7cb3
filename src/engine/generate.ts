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
  const { maxTokens } = options;
  if (!Number.isInteger(maxTokens) || maxTokens < 0) throw new UsageError('generate', `maxTokens is ${maxTokens}; it must be an integer ≥ 0`);
  const c = session.config;
  const stop = new Set<number>(options.stopIds ?? []);
  if (c.eosId !== null) stop.add(c.eosId);
  const stopAtEos = options.stopAtEos ?? true;
  const sampler = new Sampler(options, options.seed ?? 0);
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
