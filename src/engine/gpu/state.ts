// Run-time state on the GPU (the twin of src/engine/state.ts): scratch activations for one chunk of
// positions, the KV cache and the RoPE table, all f32 storage buffers.
//
// Memory grows with use, never to n_ctx up front. The KV cache grows by doubling, copying the old
// contents inside the step that needs the room (so the copy is ordered before the step's own
// writes); the buffers it replaces are destroyed once that step has been submitted.

import type { ModelConfig } from '../config.ts';
import { ContextLengthError } from '../errors.ts';
import { GpuStepError } from './failure.ts';
import type { GpuContext, Step } from './context.ts';
import type { KvBuffers } from '../state.ts';
import { RopeTable } from '../../../kernels/rope/rope.cpu.ts';
import { ropeTableData } from '../../../kernels/rope/rope.gpu.ts';

/** Positions the KV cache holds at least, once anything is run. */
const MIN_CACHE_POSITIONS = 64;

export class GpuRunState {
  readonly config: ModelConfig;
  readonly ctx: GpuContext;
  /** cos/sin per (position, pair), computed on the CPU by the CPU twin (identical numbers). */
  readonly rope: RopeTable;

  // Scratch for a chunk of n ≤ chunkCapacity positions (f32 unless said).
  x!: GPUBuffer;            // [n, d_model]              the residual stream
  xb!: GPUBuffer;           // [n, d_model]              normed input to a sublayer
  normalized!: GPUBuffer;   // [n, d_model]              x / rms(x), written only when recorded
  scale!: GPUBuffer;        // [n]                       rms(x), written only when recorded
  q!: GPUBuffer;            // [n, n_heads, d_head]
  z!: GPUBuffer;            // [n, n_heads, d_head]      attention-weighted values
  out!: GPUBuffer;          // [n, d_model]              a sublayer's output
  gate!: GPUBuffer;         // [n, d_ffn]
  up!: GPUBuffer;           // [n, d_ffn]                then silu(gate) · up in place
  ids!: GPUBuffer;          // u32 [n]                   the chunk's token ids
  chunkCapacity = 0;

  logits: GPUBuffer | null = null;     // [logitRows, vocab]
  logitRows = 0;
  topIds: GPUBuffer;                   // u32 [64]   argmax / top-k ids of the last row
  topValues: GPUBuffer;                // f32 [64]   their logits
  scores: GPUBuffer | null = null;     // [n_heads, n, k_pos] only when a layer's attention is recorded
  pattern: GPUBuffer | null = null;

  // KV cache, per layer: [cacheCapacity, n_kv_heads, d_head], positions 0 .. used−1 valid.
  keyCache: GPUBuffer[] = [];
  valueCache: GPUBuffer[] = [];
  cacheCapacity = 0;
  ropeTable: GPUBuffer | null = null;  // uploaded rows of `rope` (see ensurePositions)
  ropeRows = 0;

  /** Buffers replaced during the step being recorded: destroyed after it is submitted. */
  private retired: GPUBuffer[] = [];

  constructor(ctx: GpuContext, config: ModelConfig) {
    this.ctx = ctx;
    this.config = config;
    this.rope = new RopeTable({
      dHead: config.dHead, theta: config.ropeTheta, scaling: config.ropeScaling, freqFactors: config.ropeFreqFactors ?? null,
    });
    this.topIds = this.make(64 * 4, 'top ids');
    this.topValues = this.make(64 * 4, 'top values');
  }

  /** The largest buffer one binding may hold. */
  get bindingLimit(): number {
    return Math.min(this.ctx.caps.maxStorageBufferBindingSize, this.ctx.caps.maxBufferSize);
  }

  private make(bytes: number, label: string): GPUBuffer {
    return this.ctx.device.createBuffer({ label, size: Math.max(16, Math.ceil(bytes / 16) * 16), usage: STORAGE });
  }

  private replace(old: GPUBuffer | null | undefined, bytes: number, label: string): GPUBuffer {
    if (old) this.retired.push(old);
    if (bytes > this.bindingLimit) {
      throw new GpuStepError(`the ${label} buffer would take ${bytes} bytes, more than the adapter binds (${this.bindingLimit})`);
    }
    return this.make(bytes, label);
  }

  /** Makes the scratch buffers hold a chunk of `n` positions. */
  ensureChunk(n: number): void {
    if (n <= this.chunkCapacity) return;
    const c = this.config;
    const qd = c.nHeads * c.dHead, f = 4 * n;
    this.x = this.replace(this.x, f * c.dModel, 'x');
    this.xb = this.replace(this.xb, f * c.dModel, 'xb');
    this.normalized = this.replace(this.normalized, f * c.dModel, 'normalized');
    this.scale = this.replace(this.scale, f, 'scale');
    this.q = this.replace(this.q, f * qd, 'q');
    this.z = this.replace(this.z, f * qd, 'z');
    this.out = this.replace(this.out, f * c.dModel, 'out');
    this.gate = this.replace(this.gate, f * c.dFfn, 'gate');
    this.up = this.replace(this.up, f * c.dFfn, 'up');
    this.ids = this.replace(this.ids, f, 'ids');
    this.chunkCapacity = n;
  }

  /** Rows of logits one binding holds (the logits of a chunk are computed in groups of these). */
  get logitRowsPerBinding(): number {
    return Math.max(1, Math.floor(this.bindingLimit / (4 * this.config.vocabSize)));
  }

  /** A logits buffer of at least `rows` rows (rows ≤ logitRowsPerBinding). */
  ensureLogits(rows: number): GPUBuffer {
    if (rows > this.logitRows || !this.logits) {
      this.logits = this.replace(this.logits, 4 * rows * this.config.vocabSize, 'logits');
      this.logitRows = rows;
    }
    return this.logits;
  }

  /** Scratch for recorded attention scores or patterns: [n_heads, n, kLen]. */
  ensureAttention(which: 'scores' | 'pattern', floats: number): GPUBuffer {
    const cur = this[which];
    if (!cur || cur.size < 4 * floats) this[which] = this.replace(cur, 4 * floats, `attention ${which}`);
    return this[which]!;
  }

  /**
   * Makes the KV cache hold positions 0 .. nPos−1, copying what it holds inside `step`, and the
   * RoPE table cover them.
   */
  ensurePositions(nPos: number, step: Step): void {
    const c = this.config;
    if (nPos > c.nCtx) throw new ContextLengthError(nPos, c.nCtx);
    if (nPos > this.cacheCapacity) {
      const cap = Math.min(c.nCtx, Math.max(nPos, this.cacheCapacity * 2, MIN_CACHE_POSITIONS));
      const bytes = 4 * cap * c.nKvHeads * c.dHead;
      const used = 4 * this.cacheCapacity * c.nKvHeads * c.dHead;
      for (let l = 0; l < c.nLayers; l++) {
        const k = this.replace(this.keyCache[l], bytes, `key cache ${l}`);
        const v = this.replace(this.valueCache[l], bytes, `value cache ${l}`);
        if (used > 0) {
          step.copy(this.keyCache[l]!, 0, k, 0, used);
          step.copy(this.valueCache[l]!, 0, v, 0, used);
        }
        this.keyCache[l] = k;
        this.valueCache[l] = v;
      }
      this.cacheCapacity = cap;
    }
    if (this.cacheCapacity > this.ropeRows) {
      // as many rows as the cache has room for; f32 cos/sin computed in f64 by the CPU twin
      const table = ropeTableData(this.rope, this.cacheCapacity);
      this.ropeTable = this.replace(this.ropeTable, table.byteLength, 'rope table');
      this.ctx.write(this.ropeTable, 0, table);
      this.ropeRows = this.cacheCapacity;
    }
  }

  /** Installs `next` as the KV cache (null: none yet) and returns the one it replaces (state.ts swapKv). */
  swapKv(next: KvBuffers<GPUBuffer> | null): KvBuffers<GPUBuffer> {
    const old = { keys: this.keyCache, values: this.valueCache, capacity: this.cacheCapacity };
    this.keyCache = next ? next.keys : [];
    this.valueCache = next ? next.values : [];
    this.cacheCapacity = next ? next.capacity : 0;
    return old;
  }

  /** Copies positions 0 .. n−1 of another KV cache (one swapKv returned) into this one, inside
   *  `step`, making it hold `room` ≥ n positions (state.ts copyKvPrefix). */
  copyKvPrefix(from: KvBuffers<GPUBuffer>, n: number, room: number, step: Step): void {
    this.ensurePositions(Math.max(n, room), step);
    const bytes = 4 * n * this.config.nKvHeads * this.config.dHead;
    for (let l = 0; l < this.config.nLayers; l++) {
      step.copy(from.keys[l]!, 0, this.keyCache[l]!, 0, bytes);
      step.copy(from.values[l]!, 0, this.valueCache[l]!, 0, bytes);
    }
  }

  /** Called after the step that may have replaced buffers was submitted. */
  afterSubmit(): void {
    for (const b of this.retired) b.destroy();
    this.retired = [];
  }

  destroy(): void {
    this.afterSubmit();
    const all = [this.x, this.xb, this.normalized, this.scale, this.q, this.z, this.out, this.gate, this.up, this.ids,
      this.logits, this.topIds, this.topValues, this.scores, this.pattern, this.ropeTable, ...this.keyCache, ...this.valueCache];
    for (const b of all) b?.destroy();
  }
}

const STORAGE = 0x80 /* STORAGE */ | 0x4 /* COPY_SRC */ | 0x8 /* COPY_DST */;
