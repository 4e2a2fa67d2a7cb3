// Run-time state (the third of run.c's three kinds): scratch activations for one chunk of
// positions, the KV cache and the RoPE tables. Nothing here is a weight or a hyperparameter.
//
// Memory grows with use, never to n_ctx up front: a Llama 3.1 model declares a 128k context, and
// its full KV cache alone would take gigabytes. The cache grows by doubling (amortised linear
// copying) up to n_ctx; the scratch buffers hold at most one chunk of positions (the session
// splits long prompts into chunks).

import type { ModelConfig } from './config.ts';
import { RopeTable } from '../../kernels/rope/rope.cpu.ts';

/** Positions the KV cache holds at least, once anything is run. */
const MIN_CACHE_POSITIONS = 64;

export class RunState {
  readonly config: ModelConfig;
  readonly rope: RopeTable;

  // Scratch for a chunk of n ≤ chunkCapacity positions.
  x = new Float32Array(0);          // [n, d_model]              the residual stream
  xb = new Float32Array(0);         // [n, d_model]              normed input to a sublayer
  normalized = new Float32Array(0); // [n, d_model]              x / rms(x), only when recorded
  scale = new Float32Array(0);      // [n]                       rms(x), only when recorded
  q = new Float32Array(0);          // [n, n_heads, d_head]
  k = new Float32Array(0);          // [n, n_kv_heads, d_head]
  v = new Float32Array(0);          // [n, n_kv_heads, d_head]
  z = new Float32Array(0);          // [n, n_heads, d_head]      attention-weighted values
  out = new Float32Array(0);        // [n, d_model]              a sublayer's output (attn_out, ffn_out)
  gate = new Float32Array(0);       // [n, d_ffn]
  up = new Float32Array(0);         // [n, d_ffn]                then silu(gate) · up in place
  logits = new Float32Array(0);     // [n, vocab]                rows that asked for logits
  chunkCapacity = 0;

  // KV cache, per layer: [cacheCapacity, n_kv_heads, d_head], positions 0 .. used−1 valid.
  keyCache: Float32Array[] = [];
  valueCache: Float32Array[] = [];
  cacheCapacity = 0;

  constructor(config: ModelConfig) {
    this.config = config;
    this.rope = new RopeTable({
      dHead: config.dHead,
      theta: config.ropeTheta,
      scaling: config.ropeScaling,
      freqFactors: config.ropeFreqFactors ?? null,
    });
    for (let l = 0; l < config.nLayers; l++) {
      this.keyCache.push(new Float32Array(0));
      this.valueCache.push(new Float32Array(0));
    }
  }

  /** Makes the scratch buffers hold a chunk of `n` positions. */
  ensureChunk(n: number): void {
    if (n <= this.chunkCapacity) return;
    const c = this.config;
    const qd = c.nHeads * c.dHead, kvd = c.nKvHeads * c.dHead;
    this.x = new Float32Array(n * c.dModel);
    this.xb = new Float32Array(n * c.dModel);
    this.normalized = new Float32Array(n * c.dModel);
    this.scale = new Float32Array(n);
    this.q = new Float32Array(n * qd);
    this.k = new Float32Array(n * kvd);
    this.v = new Float32Array(n * kvd);
    this.z = new Float32Array(n * qd);
    this.out = new Float32Array(n * c.dModel);
    this.gate = new Float32Array(n * c.dFfn);
    this.up = new Float32Array(n * c.dFfn);
    this.chunkCapacity = n;
  }

  /** Makes room for `rows` rows of logits (allocated separately: the vocabulary can be 128k wide). */
  ensureLogits(rows: number): Float32Array {
    const need = rows * this.config.vocabSize;
    if (this.logits.length < need) this.logits = new Float32Array(need);
    return this.logits;
  }

  /** Makes the KV cache hold positions 0 .. nPos−1, keeping what it holds. */
  ensurePositions(nPos: number): void {
    if (nPos <= this.cacheCapacity) return;
    const c = this.config;
    const cap = Math.min(c.nCtx, Math.max(nPos, this.cacheCapacity * 2, MIN_CACHE_POSITIONS));
    const kvd = c.nKvHeads * c.dHead;
    for (let l = 0; l < c.nLayers; l++) {
      const k = new Float32Array(cap * kvd), v = new Float32Array(cap * kvd);
      k.set(this.keyCache[l]!);
      v.set(this.valueCache[l]!);
      this.keyCache[l] = k;
      this.valueCache[l] = v;
    }
    this.cacheCapacity = cap;
    this.rope.ensure(cap);
  }
}
