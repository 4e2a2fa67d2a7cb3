// Run-time state (the third of run.c's three kinds): scratch activations for one chunk of
// positions, the KV cache and the RoPE tables. Nothing here is a weight or a hyperparameter.
//
// Memory grows with use, never to n_ctx up front: a Llama 3.1 model declares a 128k context, and
// its full KV cache alone would take gigabytes. The cache grows by doubling (amortised linear
// copying) up to n_ctx; the scratch buffers hold at most one chunk of positions (the session
// splits long prompts into chunks).
//
// Where the arrays live is the kernels' choice (kernels/cpu.ts FloatSpace): the JS heap for the
// twins, the weight arena for the WebAssembly kernels, which read them in place. Growing there
// may replace the memory's buffer, so after every allocation the views are re-taken (refresh),
// and only here, before a forward pass uses them. The logits stay on the JS heap.

import type { ModelConfig } from './config.ts';
import { RopeTable } from '../../kernels/rope/rope.cpu.ts';
import { JS_SPACE, type FloatSpace } from '../../kernels/cpu.ts';

/** Positions the KV cache holds at least, once anything is run. */
const MIN_CACHE_POSITIONS = 64;

/**
 * A KV cache taken out of a run state: its per-layer key and value buffers and the positions they
 * have room for. A session keeps one per lane (session.ts) and swaps the one a run needs in.
 */
export interface KvBuffers<B> {
  keys: B[];
  values: B[];
  capacity: number;
}

export class RunState {
  readonly config: ModelConfig;
  readonly rope: RopeTable;

  // Scratch for a chunk of n ≤ chunkCapacity positions.
  x: Float32Array = new Float32Array(0);          // [n, d_model]              the residual stream
  xb: Float32Array = new Float32Array(0);         // [n, d_model]              normed input to a sublayer
  normalized: Float32Array = new Float32Array(0); // [n, d_model]              x / rms(x), only when recorded
  scale: Float32Array = new Float32Array(0);      // [n]                       rms(x), only when recorded
  q: Float32Array = new Float32Array(0);          // [n, n_heads, d_head]
  k: Float32Array = new Float32Array(0);          // [n, n_kv_heads, d_head]
  v: Float32Array = new Float32Array(0);          // [n, n_kv_heads, d_head]
  z: Float32Array = new Float32Array(0);          // [n, n_heads, d_head]      attention-weighted values
  out: Float32Array = new Float32Array(0);        // [n, d_model]              a sublayer's output (attn_out, ffn_out)
  gate: Float32Array = new Float32Array(0);       // [n, d_ffn]
  up: Float32Array = new Float32Array(0);         // [n, d_ffn]                then silu(gate) · up in place
  logits = new Float32Array(0);                   // [n, vocab]                rows that asked for logits
  chunkCapacity = 0;

  // KV cache, per layer: [cacheCapacity, n_kv_heads, d_head], positions 0 .. used−1 valid.
  keyCache: Float32Array[] = [];
  valueCache: Float32Array[] = [];
  cacheCapacity = 0;

  constructor(config: ModelConfig, private readonly space: FloatSpace = JS_SPACE) {
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
    if (n > this.chunkCapacity) {
      const c = this.config;
      const qd = c.nHeads * c.dHead, kvd = c.nKvHeads * c.dHead;
      const fresh = (old: Float32Array, size: number) => { this.space.free(old); return this.space.alloc(size); };
      this.x = fresh(this.x, n * c.dModel);
      this.xb = fresh(this.xb, n * c.dModel);
      this.normalized = fresh(this.normalized, n * c.dModel);
      this.scale = fresh(this.scale, n);
      this.q = fresh(this.q, n * qd);
      this.k = fresh(this.k, n * kvd);
      this.v = fresh(this.v, n * kvd);
      this.z = fresh(this.z, n * qd);
      this.out = fresh(this.out, n * c.dModel);
      this.gate = fresh(this.gate, n * c.dFfn);
      this.up = fresh(this.up, n * c.dFfn);
      this.chunkCapacity = n;
    }
    this.refresh();
  }

  /** Re-takes every view (an allocation, here or by another session on the same memory, may have grown it). */
  private refresh(): void {
    const live = (a: Float32Array) => this.space.current(a);
    this.x = live(this.x); this.xb = live(this.xb); this.normalized = live(this.normalized); this.scale = live(this.scale);
    this.q = live(this.q); this.k = live(this.k); this.v = live(this.v); this.z = live(this.z);
    this.out = live(this.out); this.gate = live(this.gate); this.up = live(this.up);
    this.keyCache = this.keyCache.map(live);
    this.valueCache = this.valueCache.map(live);
  }

  /** Makes room for `rows` rows of logits (allocated separately: the vocabulary can be 128k wide). */
  ensureLogits(rows: number): Float32Array {
    const need = rows * this.config.vocabSize;
    if (this.logits.length < need) this.logits = new Float32Array(need);
    return this.logits;
  }

  /** Installs `next` as the KV cache (null: an empty one) and returns the one it replaces. */
  swapKv(next: KvBuffers<Float32Array> | null): KvBuffers<Float32Array> {
    const old = { keys: this.keyCache, values: this.valueCache, capacity: this.cacheCapacity };
    const empty = () => Array.from({ length: this.config.nLayers }, () => new Float32Array(0));
    this.keyCache = next ? next.keys : empty();
    this.valueCache = next ? next.values : empty();
    this.cacheCapacity = next ? next.capacity : 0;
    if (next) this.rope.ensure(next.capacity);
    this.refresh();
    return old;
  }

  /** Gives back the memory of a KV cache swapKv returned. */
  freeKv(kv: KvBuffers<Float32Array>): void {
    for (const a of [...kv.keys, ...kv.values]) this.space.free(a);
    kv.keys = []; kv.values = []; kv.capacity = 0;
  }

  /** Copies positions 0 .. n−1 of another KV cache (one swapKv returned) into this one, which is
   *  made to hold `room` ≥ n positions (the run's, so that it does not grow again right after). */
  copyKvPrefix(from: KvBuffers<Float32Array>, n: number, room = n): void {
    this.ensurePositions(Math.max(n, room));
    const kvd = this.config.nKvHeads * this.config.dHead;
    for (let l = 0; l < this.config.nLayers; l++) {
      this.space.current(this.keyCache[l]!).set(this.space.current(from.keys[l]!).subarray(0, n * kvd));
      this.space.current(this.valueCache[l]!).set(this.space.current(from.values[l]!).subarray(0, n * kvd));
    }
  }

  /** Makes the KV cache hold positions 0 .. nPos−1, keeping what it holds. */
  ensurePositions(nPos: number): void {
    if (nPos <= this.cacheCapacity) return;
    const c = this.config;
    const cap = Math.min(c.nCtx, Math.max(nPos, this.cacheCapacity * 2, MIN_CACHE_POSITIONS));
    const kvd = c.nKvHeads * c.dHead;
    for (let l = 0; l < c.nLayers; l++) {
      const k0 = this.space.alloc(cap * kvd), v = this.space.alloc(cap * kvd);
      const k = this.space.current(k0);        // allocating v may have grown the memory
      const oldK = this.space.current(this.keyCache[l]!), oldV = this.space.current(this.valueCache[l]!);
      k.set(oldK);
      v.set(oldV);
      this.space.free(oldK);
      this.space.free(oldV);
      this.keyCache[l] = k;
      this.valueCache[l] = v;
    }
    this.cacheCapacity = cap;
    this.rope.ensure(cap);
    this.refresh();
  }
}
