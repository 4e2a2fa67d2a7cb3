// A session: one model, one token sequence, its KV cache and what was recorded along it.
//
// `run(tokens)` brings the session to a new token list. When the list starts with k tokens the
// session already processed, only positions k.. are recomputed (the KV cache and the recorded
// activations of the prefix are kept); the results are identical to a run from scratch because
// every position is computed by the same forward pass with the same cache contents. This is what
// lets a notebook rerun only from the first edited token, and what makes generation one position
// per step.

import type { ModelConfig } from './config.ts';
import type { ModelWeights } from './weights.ts';
import { RunState } from './state.ts';
import { forward } from './forward.ts';
import { selectHooks, type CaptureSpec, type Trace } from './hooks.ts';
import { CaptureStore } from './capture.ts';
import { ContextLengthError, UsageError } from './errors.ts';

export interface SessionOptions {
  /** Positions per forward call when prefilling a long prompt (bounds scratch memory). Default 64. */
  chunkSize?: number;
}

export interface RunOptions {
  /** Named activations to record (a name, list, glob or predicate; hooks.ts). Default: none. */
  capture?: CaptureSpec;
  /**
   * Which logits to return: 'last' (default) the last position's; 'new' those of the positions
   * this run computed (from `reused` on); 'all' every position's (kept across runs like a
   * recorded hook, so a run reusing a prefix returns them too).
   */
  logits?: 'last' | 'new' | 'all';
}

export interface RunResult {
  /** [rows, vocab]: 'last' 1 row, 'new' nPos − reused rows, 'all' nPos rows. */
  logits: Float32Array;
  /** Position of the first row of `logits`. */
  logitsStart: number;
  /** Tokens in the sequence now. */
  nPos: number;
  /** Leading positions taken from the cache rather than recomputed. */
  reused: number;
  /** The recorded activations, each covering all nPos positions (hooks.ts shapes). */
  trace: Trace;
}

export class Session {
  readonly config: ModelConfig;
  readonly weights: ModelWeights;
  readonly state: RunState;
  private readonly store = new CaptureStore();
  private readonly chunkSize: number;
  /** The tokens whose keys and values are in the cache. */
  private cached: number[] = [];

  constructor(weights: ModelWeights, options: SessionOptions = {}) {
    this.config = weights.config;
    this.weights = weights;
    this.state = new RunState(weights.config);
    this.chunkSize = Math.max(1, Math.floor(options.chunkSize ?? 64));
  }

  /** The token sequence the session holds. */
  get tokens(): readonly number[] {
    return this.cached;
  }

  /** Forgets the sequence (the cache memory is kept for reuse). */
  reset(): void {
    this.cached = [];
    this.store.clear();
  }

  run(tokens: readonly number[], options: RunOptions = {}): RunResult {
    const c = this.config;
    const nPos = tokens.length;
    if (nPos === 0) throw new UsageError('tokens', 'the token list is empty', 'Give at least one token (usually BOS)');
    if (nPos > c.nCtx) throw new ContextLengthError(nPos, c.nCtx);
    for (let i = 0; i < nPos; i++) {
      const id = tokens[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) {
        throw new UsageError('tokens', `token ${i} is ${id}; ids must be integers from 0 to ${c.vocabSize - 1}`);
      }
    }
    const mode = options.logits ?? 'last';
    const asked = selectHooks(c, options.capture);
    // 'all' logits are recorded like the hook_logits activation, so that prefix reuse keeps them.
    const hooks = mode === 'all' && !asked.global.hook_logits ? selectHooks(c, [...asked.names, 'hook_logits']) : asked;

    // Reuse the longest cached prefix whose recorded activations are all available; always
    // recompute at least the last position (its logits are not kept).
    let reused = 0;
    const limit = Math.min(this.cached.length, nPos - 1);
    while (reused < limit && this.cached[reused] === tokens[reused]) reused++;
    for (const name of hooks.names) reused = Math.min(reused, this.store.coverage(name));
    this.store.keepOnly(new Set(hooks.names));
    this.store.truncate(reused);
    this.cached = this.cached.slice(0, reused);

    const vocab = c.vocabSize;
    const logitsStart = mode === 'last' ? nPos - 1 : mode === 'new' ? reused : 0;
    let logits: Float32Array = mode === 'new' ? new Float32Array((nPos - reused) * vocab) : new Float32Array(vocab);
    for (let pos = reused; pos < nPos; pos += this.chunkSize) {
      const end = Math.min(nPos, pos + this.chunkSize);
      const chunk = tokens.slice(pos, end);
      const logitsFrom = mode === 'new' ? 0 : mode === 'last' && end === nPos ? chunk.length - 1 : chunk.length;
      const out = forward(this.weights, this.state, chunk, pos, { hooks, recorder: hooks.any ? this.store : null, logitsFrom });
      if (mode === 'new') logits.set(out, (pos - reused) * vocab);
      else if (end === nPos) logits.set(out.subarray(out.length - vocab));
      this.cached.push(...chunk);
    }

    const trace = this.store.trace(c, asked.names, nPos);
    if (mode === 'all') logits = this.store.trace(c, ['hook_logits'], nPos).get('hook_logits')!.data;
    return { logits, logitsStart, nPos, reused, trace };
  }
}
