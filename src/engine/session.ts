// A session: one model, one token sequence, its KV cache and what was recorded along it.
//
// `run(tokens)` brings the session to a new token list. When the list starts with k tokens the
// session already processed, only positions k.. are recomputed (the KV cache and the recorded
// activations of the prefix are kept); the results are identical to a run from scratch because
// every position is computed by the same forward pass with the same cache contents. This is what
// lets a notebook rerun only from the first edited token, and what makes generation one position
// per step.
//
// Lanes: a session keeps a few of these (KV cache, tokens, edits, recorded activations), one per
// `RunOptions.lane` (the engine gives each slot, that is each notebook cell, its own). Runs that
// take turns — a prompt's clean run and an ablate cell's edited twin, a steer cell's plain and
// steered generations — then each reuse their own prefix instead of undoing each other's. Parked
// lanes are bounded (MAX_PARKED_LANES, PARKED_LANE_BYTES), the least recently used dropped first.
// A run may start from a longer prefix another lane holds, as far as that lane recorded what the
// run records: its KV rows are copied and its recorded blocks shared (capture.ts adopt).
//
// CPU kernels: chosen when the session is made (kernels/wasm/choose.ts): the WebAssembly SIMD
// kernels on the machine's cores when they load, else the readable twins; `cpuKernels` says which.
//
// Backends: the CPU (default; `run` is synchronous) or WebGPU (src/engine/backend.ts), whose
// results arrive asynchronously: `runAsync` works on both. When the GPU fails mid-run (device
// lost, out of memory, a validation error), the session continues on the CPU — it recomputes the
// whole sequence there, so its KV cache and trace are rebuilt — reruns the step, and tells
// `onBackendChange`. A failed GPU step never yields a number.

import type { ModelConfig } from './config.ts';
import type { ModelWeights } from './weights.ts';
import { RunState, type KvBuffers } from './state.ts';
import { forward } from './forward.ts';
import { CAPTURE_LIMIT_BYTES, checkCaptureBytes, NORM_SUFFIX, rowNorm, selectHooks, type CaptureSpec, type HookSelection, type Trace } from './hooks.ts';
import { CaptureStore, type Recorder } from './capture.ts';
import { AttentionSummarizer, summaryBins, type AttentionSummaryData } from './attention-summary.ts';
import { ContextLengthError, UsageError } from './errors.ts';
import type { ActivationQuant } from '../../kernels/matmul/activation-quant.cpu.ts';
import { chooseCpuKernels, type CpuChoice, type CpuKernelsName } from '../../kernels/wasm/choose.ts';
import type { Backend } from './backend.ts';
import type { GpuContext } from './gpu/context.ts';
import { GpuRunner } from './gpu/runner.ts';
import { GpuStepError } from './gpu/failure.ts';
import type { GpuForwardResult, LogitsRequest } from './gpu/forward.ts';
import { topOf } from './top.ts';
import { MAX_TOP_K, type LensRowsResult } from '../../kernels/argmax/argmax.cpu.ts';
import { resolveEdits, type Edit, type EditPlan, type EditSummary } from './edits.ts';

export interface SessionOptions {
  /** Positions per forward call when prefilling a long prompt (bounds scratch memory). Default 64. */
  chunkSize?: number;
  /**
   * Activation rounding before weight products (forward.ts ForwardOptions). On the CPU the default
   * is 'llamacpp': quantized weights multiply 8-bit activations as llama.cpp does, which is what
   * makes the WebAssembly kernels fast; 'none' keeps exact f32 activations (the twins do those
   * products). WebGPU: 'none' only.
   */
  activationQuant?: ActivationQuant;
  /** CPU kernels: 'wasm' (WebAssembly SIMD, the default when it loads) or 'js' (the readable twins). */
  kernels?: CpuKernelsName;
  /** Threads for the WebAssembly kernels (default: the machine's cores, at most 8); see cpuKernels.reason. */
  threads?: number;
  /** Where the forward pass runs (chooseBackend in backend.ts). Default: the CPU. */
  backend?: Backend;
  /** Told when the session leaves WebGPU for the CPU (the UI shows the reason). */
  onBackendChange?: (change: BackendChange) => void;
  /** The most bytes the parked lanes' KV caches and summary states may hold together (RunOptions.lane). Default PARKED_LANE_BYTES. */
  parkedLaneBytes?: number;
  /**
   * WebGPU: the most bytes of attention rows one step reads back for an attention summary (every
   * layer's rows of the chunk at once); runs asking for one take smaller chunks to stay within
   * it (at least one position). Default 64 MiB.
   */
  summaryReadbackBytes?: number;
  /** The most bytes one run's recorded activations may take (captureBytes); a run asking for more
   *  is refused before it starts. Default CAPTURE_LIMIT_BYTES (hooks.ts). */
  captureLimitBytes?: number;
}

export interface BackendChange {
  from: 'webgpu';
  to: 'cpu';
  /** What failed, in words for the user. */
  reason: string;
}

export interface RunOptions {
  /** Named activations to record (a name, list, glob or predicate; hooks.ts). Default: none. */
  capture?: CaptureSpec;
  /**
   * Which logits to return: 'last' (default) the last position's; 'new' those of the positions
   * this run computed (from `reused` on); 'all' every position's (kept across runs like a
   * recorded hook, so a run reusing a prefix returns them too); 'top' none, only `top`: the
   * `topK` most likely ids of the last position (on WebGPU a few bytes are read back, not the
   * vocabulary: greedy decoding).
   */
  logits?: 'last' | 'new' | 'all' | 'top';
  /** For logits: 'top', how many ids (1 .. 64). Default 1. */
  topK?: number;
  /**
   * Greedy look-ahead, WebGPU only (ignored on the CPU): after a run with logits 'top', topK 1 and
   * no capture, edits or summary, keep up to this many more steps (at most 4) submitted past the
   * sequence, each fed the argmax of the one before on the GPU. A next run of this sequence plus
   * its argmax then finds its step done or under way, so the GPU does not wait for the CPU between
   * decoded tokens. Any other next run drops them (they still run; their results are ignored).
   * generateAsync asks for it when decoding greedily. Default 0.
   */
  ahead?: number;
  /**
   * Cancels the run between chunks of positions (chunkSize): runAsync then lets other events in
   * between chunks (also on the CPU), checks the signal before each chunk, and rejects with
   * `signal.reason`. The positions computed so far stay in the cache and the store, which agree,
   * so the next run reuses them (src/engine/api.ts cancels superseded prompt edits this way).
   */
  signal?: AbortSignal;
  /**
   * Statistics recorded along the run without keeping what they come from. `attention`: the
   * attention summary of every layer and query head (src/engine/attention-summary.ts), `size`
   * thumbnail bins per side (default 24, clamped to [4, 64] and to the prompt length).
   *
   * Prefix reuse: the thumbnails' bins depend on the prompt length, so the rows of a reused prefix
   * would be needed again, and they are not kept (that is the point). A run asking for a summary
   * therefore recomputes from position 0 (`reused` is 0) — unless it also captures every layer's
   * attn.hook_pattern, whose stored rows survive reuse: then the prefix is reused as usual and the
   * summary is computed from the stored rows at the end.
   */
  summary?: { attention?: { size?: number } };
  /**
   * Interventions (src/engine/edits.ts): zero, mean-ablate, patch or steer named activations at
   * chosen positions, heads or neurons. Prefix reuse: when the edits differ from those the cache
   * was computed under (numbers included), only positions before the earliest position either
   * edit set touches are reused.
   */
  edits?: readonly Edit[];
  /**
   * The lane (default 'default'): runs in a lane reuse that lane's prefix only, and leave the
   * other lanes' caches and recorded activations as they were (see the top of this file).
   */
  lane?: string;
  /**
   * Skip the layers below `layer`: `residual` ([nPos, d_model]) is what enters it at every
   * position, blocks.{layer}.hook_resid_pre as a run of these tokens without edits below the layer
   * computes it (e.g. the data an earlier run of them recorded). The run computes layers ≥ layer
   * only, with the same numbers; activation patching (patching.ts) saves about half its time so.
   * Such a run edits nothing below the layer and records nothing (hooks, 'all' logits, summary).
   * It leaves the layers below with stale KV rows at the positions it computed, so the lane's
   * cache is reused afterwards only before the first of them (the run's `reused`).
   */
  startLayer?: { layer: number; residual: Float32Array };
}

export interface RunResult {
  /** [rows, vocab]: 'last' 1 row, 'new' nPos − reused rows, 'all' nPos rows, 'top' none. */
  logits: Float32Array;
  /** Position of the first row of `logits`. */
  logitsStart: number;
  /** Tokens in the sequence now. */
  nPos: number;
  /** Leading positions taken from the cache rather than recomputed. */
  reused: number;
  /** The recorded activations, each covering all nPos positions (hooks.ts shapes). */
  trace: Trace;
  /**
   * logits: 'top' only: ids of the last position, most likely first (lowest id on ties), and their
   * logits — null on WebGPU for topK = 1, where only the id is read back.
   */
  top?: { ids: Uint32Array; logits: Float32Array | null };
  /** summary.attention: the attention summary of the whole sequence. */
  attentionSummary?: AttentionSummaryData;
  /** The edits that produced it (descriptions, not the arrays); empty for a clean run. */
  edits: EditSummary[];
}


/** A greedy look-ahead step (RunOptions.ahead): its position, the id it was fed, what it reads back. */
interface Ahead {
  pos: number;
  input: Promise<number>;
  result: Promise<GpuForwardResult>;
}

/** The most look-ahead steps a session keeps submitted. */
const MAX_AHEAD = 4;

/**
 * Lanes kept besides the one in use (RunOptions.lane), and the most bytes their KV caches and
 * attention summaries' states (SummaryPrefix) may hold together; past either the least recently
 * used are dropped. (A parked lane's recorded activations are not counted: they are the blocks its
 * slot's latest trace holds too, copy-on-write.)
 */
export const MAX_PARKED_LANES = 7;
export const PARKED_LANE_BYTES = 256 << 20;

/** A lane not in use: what the session's own fields hold for the active one. */
interface ParkedLane {
  cached: number[];
  edits: { key: string; from: number };
  store: CaptureStore;
  /** Its KV cache, on the backend it was computed on. */
  kv: { gpu: false; buffers: KvBuffers<Float32Array> } | { gpu: true; buffers: KvBuffers<GPUBuffer> };
}

/** What one run does, worked out before any chunk is computed (shared by both backends). */
interface Plan {
  tokens: readonly number[];
  mode: 'last' | 'new' | 'all' | 'top';
  topK: number;
  asked: HookSelection;
  /** Another lane's KV rows 0 .. n−1 that the run starts from (copied before its first chunk). */
  copy: { from: ParkedLane['kv']; n: number } | null;
  /** What the forward pass computes and hands to `recorder`: the stored hooks, and every layer's
   *  pattern when a summary is built from the chunks. */
  hooks: HookSelection;
  recorder: Recorder | null;
  summary: AttentionSummarizer | null;
  /** The summary is computed from the stored patterns at the end (they were captured too). */
  summaryFromStore: boolean;
  reused: number;
  logitsStart: number;
  logits: Float32Array;
  edits: EditPlan | null;
  startLayer: RunOptions['startLayer'] | null;
}

/**
 * A failed GPU step in words for the user. A device lost mid-step (a driver reset, a GPU process
 * crash, destroy()) often shows first as a failed readback, and its `lost` promise settles just
 * after: waiting for it briefly lets the reason name the loss.
 */
async function failureReason(gpu: GpuRunner, e: GpuStepError): Promise<string> {
  if (/device was lost/.test(e.message)) return e.message;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const info = await Promise.race([
    gpu.ctx.device.lost,
    new Promise<null>((r) => { timer = setTimeout(() => r(null), 200); }),
  ]).finally(() => clearTimeout(timer));
  if (!info) return e.message;
  return `the WebGPU device was lost (${info.reason}${info.message ? `: ${info.message.replace(/\.$/, '')}` : ''})`;
}

export class Session {
  readonly config: ModelConfig;
  readonly weights: ModelWeights;
  readonly state: RunState;
  /** What the active lane recorded. */
  private store = new CaptureStore();
  private readonly chunkSize: number;
  private readonly activationQuant: ActivationQuant;
  private readonly cpu: CpuChoice;
  private gpu: GpuRunner | null = null;
  private readonly onBackendChange: ((change: BackendChange) => void) | undefined;
  private readonly summaryReadbackBytes: number;
  private readonly parkedLaneBytes: number;
  private readonly captureLimitBytes: number;
  private why: string | null;
  /** runAsync calls, one after another (they share the cache). */
  private queue: Promise<unknown> = Promise.resolve();
  /** The tokens whose keys and values are in the active lane's cache. */
  private cached: number[] = [];
  /** The edits the cached positions were computed under: their key ('' none) and earliest position. */
  private cachedEdits = { key: '', from: Infinity };
  /** The active lane, whose KV cache is installed in the run state; the others, least recently used first. */
  private laneName = 'default';
  private readonly parked = new Map<string, ParkedLane>();
  /** WebGPU greedy look-ahead (RunOptions.ahead): steps submitted past `cached`, oldest first. */
  private ahead: Ahead[] = [];
  private readonly noHooks: HookSelection;
  /** The row a CPU run with logits 'top' computes its top k from: one per session, reused, since
   *  the row itself is not returned (a decoded token would otherwise leave a vocabulary of garbage). */
  private topRow: Float32Array | null = null;

  constructor(weights: ModelWeights, options: SessionOptions = {}) {
    this.config = weights.config;
    this.weights = weights;
    this.noHooks = selectHooks(weights.config, undefined);
    this.chunkSize = Math.max(1, Math.floor(options.chunkSize ?? 64));
    // The CPU rounds activations as llama.cpp does (fast int8 products); WebGPU computes with exact
    // f32 activations, and a session that starts there keeps them on a CPU fallback too, so that a
    // lost device changes where the numbers are computed, not what they are.
    this.activationQuant = options.activationQuant ?? (options.backend?.kind === 'webgpu' ? 'none' : 'llamacpp');
    this.cpu = chooseCpuKernels(weights, { kernels: options.kernels, threads: options.threads, chunkSize: this.chunkSize });
    this.state = new RunState(weights.config, this.cpu.kernels.space);
    this.onBackendChange = options.onBackendChange;
    this.summaryReadbackBytes = options.summaryReadbackBytes ?? 64 << 20;
    this.parkedLaneBytes = options.parkedLaneBytes ?? PARKED_LANE_BYTES;
    this.captureLimitBytes = options.captureLimitBytes ?? CAPTURE_LIMIT_BYTES;
    const b = options.backend;
    this.why = b?.kind === 'cpu' ? b.reason : null;
    if (b?.kind === 'webgpu') {
      if (options.activationQuant && options.activationQuant !== 'none') {
        throw new UsageError('activationQuant', `'${options.activationQuant}' rounding is implemented on the CPU only`, 'Use the CPU backend for parity checks');
      }
      this.gpu = new GpuRunner(b.ctx, weights, b.maxPartBytes);
    }
  }

  /** The CPU kernels: 'wasm' or 'js', their threads, why less than asked (null when as asked), and all that in words. */
  get cpuKernels(): { name: CpuKernelsName; threads: number; reason: string | null; detail: string } {
    return { name: this.cpu.name, threads: this.cpu.threads, reason: this.cpu.reason, detail: this.cpu.detail };
  }

  /** Where the forward pass runs now. */
  get backend(): 'cpu' | 'webgpu' {
    return this.gpu ? 'webgpu' : 'cpu';
  }

  /** The GPU context while the session runs on WebGPU (its `stats` count dispatches and readbacks). */
  get gpuContext(): GpuContext | null {
    return this.gpu?.ctx ?? null;
  }

  /** Why the session runs on the CPU (null when on WebGPU, or when the CPU was simply the default). */
  get backendReason(): string | null {
    return this.why;
  }

  /** The token sequence the session holds (in the lane of the last run). */
  get tokens(): readonly number[] {
    return this.cached;
  }

  /** The lanes the session keeps: the active one first, then the parked ones, most recently used first. */
  get lanes(): string[] {
    return [this.laneName, ...[...this.parked.keys()].reverse()];
  }

  /** Forgets the sequence of every lane (the active cache's memory is kept for reuse). */
  reset(): void {
    this.dropLanes();
    this.cached = [];
    this.ahead = [];
    this.store.clear();
  }

  /**
   * Makes `name` the active lane: parks the active one with its KV cache swapped out of the run
   * state, and installs `name`'s (an empty cache for a new lane). Then trims the parked lanes.
   */
  private useLane(name: string): void {
    if (name === this.laneName) return;
    const next = this.parked.get(name);
    this.parked.delete(name);
    const empty = this.cached.length === 0;
    if (!empty || next) {
      const gpu = this.gpu;
      const kv: ParkedLane['kv'] = gpu
        ? { gpu: true, buffers: gpu.swapKv(next?.kv.gpu ? next.kv.buffers : null) }
        : { gpu: false, buffers: this.state.swapKv(next && !next.kv.gpu ? next.kv.buffers : null) };
      // a lane that holds nothing is not kept (a new lane takes over its buffers instead)
      if (empty) this.freeKv(kv);
      else this.parked.set(this.laneName, { cached: this.cached, edits: this.cachedEdits, store: this.store, kv });
    }
    this.cached = next?.cached ?? [];
    this.cachedEdits = next?.edits ?? { key: '', from: Infinity };
    this.store = next?.store ?? new CaptureStore();
    this.laneName = name;
    this.ahead = [];    // steps sent in the other lane (they write only its rows past its sequence)
    let bytes = 0;
    for (const l of this.parked.values()) bytes += this.laneBytes(l);
    for (const [n, l] of this.parked) {
      if (this.parked.size <= MAX_PARKED_LANES && bytes <= this.parkedLaneBytes) break;
      bytes -= this.laneBytes(l);
      this.freeKv(l.kv);
      this.parked.delete(n);
    }
  }

  /** A parked lane's own memory in bytes: its KV cache and its last attention summary's state. */
  private laneBytes(l: ParkedLane): number {
    const c = this.config;
    const p = l.store.summaryPrefix?.prefix;
    const summary = p ? p.entropies.byteLength + (p.sums?.byteLength ?? 0) + p.atBins.byteLength : 0;
    return 8 * c.nLayers * l.kv.buffers.capacity * c.nKvHeads * c.dHead + summary;
  }

  private freeKv(kv: ParkedLane['kv']): void {
    if (kv.gpu) for (const b of [...kv.buffers.keys, ...kv.buffers.values]) b.destroy();
    else this.state.freeKv(kv.buffers);
  }

  /** Frees every parked lane. */
  private dropLanes(): void {
    for (const l of this.parked.values()) this.freeKv(l.kv);
    this.parked.clear();
  }

  /** Runs on the CPU, synchronously. A WebGPU session needs runAsync. */
  run(tokens: readonly number[], options: RunOptions = {}): RunResult {
    if (this.gpu) {
      throw new UsageError('Session.run', 'this session runs on WebGPU, whose results arrive asynchronously', 'Use await session.runAsync(...)');
    }
    options.signal?.throwIfAborted();
    const p = this.plan(tokens, options);
    for (let pos = p.reused; pos < tokens.length; pos += this.chunkSize) {
      options.signal?.throwIfAborted();
      this.cpuChunk(p, pos);
    }
    return this.finish(p, p.mode === 'top' ? topOf(p.logits, p.topK) : undefined);
  }

  /** run() that lets other events in between chunks, so that `options.signal` can cancel it. */
  private async runCpuYielding(tokens: readonly number[], options: RunOptions): Promise<RunResult> {
    options.signal?.throwIfAborted();
    const p = this.plan(tokens, options);
    for (let pos = p.reused; pos < tokens.length; pos += this.chunkSize) {
      if (pos > p.reused) await yieldToEvents();
      options.signal?.throwIfAborted();
      this.cpuChunk(p, pos);
    }
    return this.finish(p, p.mode === 'top' ? topOf(p.logits, p.topK) : undefined);
  }

  /** Positions pos .. pos+chunkSize−1 of a planned run, on the CPU. */
  private cpuChunk(p: Plan, pos: number): void {
    const tokens = p.tokens;
    const end = Math.min(tokens.length, pos + this.chunkSize);
    const chunk = tokens.slice(pos, end);
    const mode = p.mode;
    const logitsFrom = mode === 'new' ? 0 : (mode === 'last' || mode === 'top') && end === tokens.length ? chunk.length - 1 : chunk.length;
    const out = forward(this.weights, this.state, chunk, pos, {
      hooks: p.hooks, recorder: p.recorder, logitsFrom, activationQuant: this.activationQuant,
      kernels: this.cpu.kernels, edits: p.edits, startLayer: startRows(p, pos, end, this.config.dModel),
    });
    if (mode === 'new') p.logits.set(out, (pos - p.reused) * this.config.vocabSize);
    else if (end === tokens.length) p.logits.set(out.subarray(out.length - this.config.vocabSize));
    this.computed(p, chunk);
  }

  /** A chunk of the run's tokens is in the KV cache: reusable by later runs, unless the run
   *  started above layer 0 (the layers below hold stale rows there; even if it is cancelled). */
  private computed(p: Plan, chunk: readonly number[]): void {
    if (!p.startLayer?.layer) this.cached.push(...chunk);
  }

  /**
   * Prepares the backend: on WebGPU uploads the weights and compiles the kernels (the first
   * runAsync does it otherwise), on the CPU starts the kernel threads (until they are up, products
   * run on fewer threads). A failure moves the session to the CPU, as during a run.
   */
  async ready(): Promise<void> {
    const next = this.queue.then(async () => {
      const gpu = this.gpu;
      if (!gpu) return this.cpu.ready();
      try {
        await gpu.ready();
      } catch (e) {
        if (!(e instanceof GpuStepError)) throw e;
        this.fallBack(await failureReason(gpu, e));
      }
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Runs on the session's backend; on the CPU the same as run(). Calls are served in order. */
  runAsync(tokens: readonly number[], options: RunOptions = {}): Promise<RunResult> {
    const next = this.queue.then(() => this.runNow(tokens, options));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private runNow(tokens: readonly number[], options: RunOptions): Promise<RunResult> {
    return this.onGpuElseCpu(
      (gpu) => this.runGpu(gpu, tokens, options),
      () => (options.signal ? this.runCpuYielding(tokens, options) : this.run(tokens, options)));
  }

  /** `gpuWork` on the GPU when the session has one, else `cpuWork`; a GPU failure moves the
   *  session to the CPU (fallBack) and does `cpuWork` instead. */
  private async onGpuElseCpu<T>(gpuWork: (gpu: GpuRunner) => Promise<T>, cpuWork: () => T | Promise<T>): Promise<T> {
    const gpu = this.gpu;
    if (!gpu) return cpuWork();
    try {
      await gpu.ready();
      return await gpuWork(gpu);
    } catch (e) {
      if (!(e instanceof GpuStepError)) throw e;
      this.fallBack(await failureReason(gpu, e));
      return cpuWork();
    }
  }

  private async runGpu(gpu: GpuRunner, tokens: readonly number[], options: RunOptions): Promise<RunResult> {
    options.signal?.throwIfAborted();
    const p = this.plan(tokens, options);
    const vocab = this.config.vocabSize, c = this.config;
    const greedy = p.mode === 'top' && p.topK === 1 && !p.hooks.any && !p.edits && !p.summary && !p.startLayer;
    // the look-ahead step for this run: the cached sequence plus the id that step was fed
    const next = this.ahead[0];
    if (greedy && next && next.pos === p.reused && tokens.length === p.reused + 1 && (await next.input) === tokens[p.reused]) {
      this.ahead.shift();
      const out = await next.result;
      this.cached.push(tokens[p.reused]!);
      await this.lookAhead(gpu, options.ahead, out.top!.ids[0]!);
      return this.finish(p, out.top!);
    }
    // Not this run's: dropped. They run out on the GPU before anything submitted now (one queue),
    // writing only cache rows past `cached`, which this run rewrites before it reads them.
    this.ahead = [];
    if (p.copy?.from.gpu) await gpu.copyKvPrefix(p.copy.from.buffers, p.copy.n, tokens.length);
    let top: RunResult['top'];
    // a summary reads back every layer's attention rows of a chunk at once: bound that
    const chunkSize = p.summary && !p.summaryFromStore
      ? Math.max(1, Math.min(this.chunkSize, Math.floor(this.summaryReadbackBytes / (4 * c.nLayers * c.nHeads * tokens.length))))
      : this.chunkSize;
    for (let pos = p.reused; pos < tokens.length; pos += chunkSize) {
      options.signal?.throwIfAborted();
      const end = Math.min(tokens.length, pos + chunkSize);
      const chunk = tokens.slice(pos, end);
      const last = end === tokens.length;
      // 'all' logits arrive through the hook_logits capture
      const logits: LogitsRequest = p.mode === 'new' ? { rows: chunk.length }
        : p.mode === 'top' && last ? { top: p.topK }
        : p.mode === 'last' && last ? { rows: 1 } : { rows: 0 };
      const out = await gpu.forward(chunk, pos, { hooks: p.hooks, recorder: p.recorder, logits, edits: p.edits, startLayer: startRows(p, pos, end, c.dModel) });
      if (p.mode === 'new') p.logits.set(out.logits, (pos - p.reused) * vocab);
      else if (p.mode === 'last' && last) p.logits.set(out.logits.subarray(out.logits.length - vocab));
      if (out.top) top = out.top;
      this.computed(p, chunk);
    }
    if (greedy) await this.lookAhead(gpu, options.ahead, top!.ids[0]!);
    return this.finish(p, top);
  }

  /**
   * Tops the greedy look-ahead up to `want` steps (RunOptions.ahead), within the context; `lastId`
   * is the argmax of the sequence as cached, which the first step is fed. A step that cannot be
   * sent ends the look-ahead quietly: the next run meets the failure itself.
   */
  private async lookAhead(gpu: GpuRunner, want: number | undefined, lastId: number): Promise<void> {
    const room = this.config.nCtx - this.cached.length;
    const n = Math.min(Math.max(0, Math.floor(want ?? 0)), MAX_AHEAD, room);
    while (this.ahead.length < n) {
      const pos = this.cached.length + this.ahead.length;
      const prev = this.ahead[this.ahead.length - 1];
      const input = prev ? prev.result.then((r) => r.top!.ids[0]!) : Promise.resolve(lastId);
      let sent: { result: Promise<GpuForwardResult> };
      try {
        sent = await gpu.send(null, pos, { hooks: this.noHooks, recorder: null, logits: { top: 1 } });
      } catch {
        return;
      }
      // a dropped step's failure is nobody's to report (the next run meets the same device)
      sent.result.catch(() => undefined);
      input.catch(() => undefined);
      this.ahead.push({ pos, input, result: sent.result });
    }
  }

  /**
   * outputHead on this session's backend: on the GPU, the forward pass's own kernels (a WebGPU
   * session's logit lens then ends at the model's GPU logits), queued after the runs before it.
   * A GPU failure falls back to the CPU, as a run does.
   */
  outputHeadAsync(x: Float32Array, n: number): Promise<Float32Array> {
    return this.queuedHead((gpu) => gpu.outputHead(x, n), () => this.outputHead(x, n));
  }

  /**
   * The logit lens's head: each row's logits reduced where they are to what the lens keeps (the
   * top k, the sum of exponentials, the target's rank and value): on the GPU (forward.ts
   * lensHeadGpu), so a row costs 8·k + 12 bytes of readback instead of 4·vocab, and on the CPU
   * (lensHead); for k over 64, the logits themselves (outputHead).
   */
  lensHeadAsync(x: Float32Array, n: number, k: number, target: number | null): Promise<Float32Array | LensRowsResult> {
    if (k > MAX_TOP_K) return this.outputHeadAsync(x, n);
    return this.queuedHead<Float32Array | LensRowsResult>((gpu) => gpu.lensHead(x, n, k, target), () => this.lensHead(x, n, k, target));
  }

  /** `gpuWork` queued after the runs before it; `cpuWork` if there is no GPU or it fails. */
  private queuedHead<T>(gpuWork: (gpu: GpuRunner) => Promise<T>, cpuWork: () => T): Promise<T> {
    if (!this.gpu) return Promise.resolve(cpuWork());
    const next = this.queue.then(() => this.onGpuElseCpu<T>(gpuWork, cpuWork));
    this.queue = next.catch(() => undefined);
    return next;
  }

  /**
   * The model's output head on residual-stream rows x: [n, d_model] → [n, vocab]: the final
   * RMSNorm (from each row's own rms, with the norm's weight), then the unembedding, with this
   * session's CPU kernels and activation rounding — the logits forward() computes from those
   * residuals. The logit lens reads earlier layers through it (src/engine/trace.ts).
   */
  outputHead(x: Float32Array, n: number): Float32Array {
    const V = this.config.vocabSize;
    const out = new Float32Array(n * V);                                   // [n, vocab]
    this.headChunks(x, n, (logits, r, b) => out.set(logits.subarray(0, b * V), r * V));
    return out;
  }

  /**
   * The CPU half of lensHeadAsync: outputHead's logits, each chunk reduced where the kernels wrote
   * it (their lensRows) to what the lens keeps, so no [n, vocab] array is made. k ≤ MAX_TOP_K.
   */
  lensHead(x: Float32Array, n: number, k: number, target: number | null): LensRowsResult {
    const V = this.config.vocabSize;
    const out: LensRowsResult = {
      ids: new Uint32Array(n * k), values: new Float32Array(n * k), sums: new Float32Array(n), ranks: new Uint32Array(n), targetValues: new Float32Array(n),
    };
    this.headChunks(x, n, (logits, r, b) => {
      const got = this.cpu.kernels.lensRows(logits, b, V, k, target);
      out.ids.set(got.ids, r * k); out.values.set(got.values, r * k);
      out.sums.set(got.sums, r); out.ranks.set(got.ranks, r); out.targetValues.set(got.targetValues, r);
    });
    return out;
  }

  /** The CPU output head, a chunk of rows at a time: `each(logits [b, vocab], first row, b)`, the logits in the kernels' space. */
  private headChunks(x: Float32Array, n: number, each: (logits: Float32Array, r: number, b: number) => void): void {
    const c = this.config, d = c.dModel, V = c.vocabSize, k = this.cpu.kernels, sp = k.space;
    const B = Math.max(1, Math.min(n, this.chunkSize));                   // the kernels' scratch holds a chunk
    let xs = sp.alloc(B * d), xn = sp.alloc(B * d), logits = sp.alloc(B * V);
    try {
      for (let r = 0; r < n; r += B) {
        const b = Math.min(B, n - r);
        xs = sp.current(xs); xn = sp.current(xn); logits = sp.current(logits);
        xs.set(x.subarray(r * d, (r + b) * d));
        k.rmsnorm(xn, xs, this.weights.finalNorm, b, d, c.rmsEps);        // final RMSNorm
        k.matmul(logits, xn, this.weights.unembed, b, this.activationQuant); // logits = x · W_Uᵀ
        each(sp.current(logits), r, b);
      }
    } finally {
      sp.free(xs); sp.free(xn); sp.free(logits);
    }
  }

  /**
   * Frees what the session holds on its backends: the GPU memory (weights, KV cache) and the CPU
   * kernels' scratch and worker threads. Drop the session afterwards: its CPU scratch is gone.
   */
  dispose(): void {
    this.dropLanes();
    this.cpu.dispose();
    this.ahead = [];
    if (!this.gpu) return;
    this.gpu.destroy();
    this.gpu = null;
    this.why = 'the WebGPU session was disposed';
    this.cached = [];
    this.store.clear();
  }

  /** Leaves WebGPU for good: the CPU recomputes the sequence (its cache and trace) on the next run. */
  private fallBack(reason: string): void {
    const gpu = this.gpu!;
    this.gpu = null;
    try { gpu.destroy(); } catch { /* a lost device may refuse; its memory is gone anyway */ }
    this.why = `WebGPU failed, continuing on the CPU: ${reason}`;
    this.dropLanes();
    this.cached = [];
    this.ahead = [];
    this.store.clear();
    this.onBackendChange?.({ from: 'webgpu', to: 'cpu', reason });
  }

  /** Checks the tokens, resolves the capture, and trims the cache and the store to the reusable prefix. */
  private plan(tokens: readonly number[], options: RunOptions): Plan {
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
    const lane = options.lane ?? 'default';
    if (typeof lane !== 'string' || !lane) throw new UsageError('run lane', `is ${JSON.stringify(lane)}; give a non-empty string`);
    this.useLane(lane);    // before anything below reads the lane's store
    const mode = options.logits ?? 'last';
    const topK = options.topK ?? 1;
    if (mode === 'top' && !(Number.isInteger(topK) && topK >= 1 && topK <= 64)) {
      throw new UsageError('topK', `is ${topK}; it must be an integer from 1 to 64`, "Use logits: 'last' for the whole row");
    }
    const asked = selectHooks(c, options.capture);
    // 'all' logits are recorded like the hook_logits activation, so that prefix reuse keeps them.
    const stored = mode === 'all' && !asked.global.hook_logits ? selectHooks(c, [...asked.names, 'hook_logits']) : asked;
    const storedNames = new Set(stored.names);
    checkCaptureBytes(c, stored.names, nPos, this.captureLimitBytes);

    // The attention summary (RunOptions.summary): from the stored patterns when every layer's is
    // captured, else from every layer's pattern rows as the chunks produce them (not stored).
    if (options.summary !== undefined && (options.summary === null || typeof options.summary !== 'object')) {
      throw new UsageError('run summary', `is ${String(options.summary)}`, 'Give an object: summary: { attention: { size: 24 } }');
    }
    const summaryAsk = options.summary?.attention;
    if (summaryAsk !== undefined && (summaryAsk === null || typeof summaryAsk !== 'object')) {
      throw new UsageError('run summary.attention', `is ${String(summaryAsk)}`, 'Give an object: summary: { attention: { size: 24 } }');
    }
    const patterns = Array.from({ length: c.nLayers }, (_, l) => `blocks.${l}.attn.hook_pattern`);
    const summary = summaryAsk ? new AttentionSummarizer(c.nLayers, c.nHeads, nPos, summaryBins(summaryAsk.size, nPos), tokens) : null;
    const summaryFromStore = summary !== null && patterns.every((n) => storedNames.has(n));
    const fromChunks = summary !== null && !summaryFromStore;
    const hooks = fromChunks ? selectHooks(c, [...stored.names, ...patterns]) : stored;
    const store: Recorder = stored.normed.size > 0 ? normRecorder(this.store, storedNames) : this.store;
    const recorder = fromChunks ? summaryRecorder(store, storedNames, summary, patterns) : hooks.any ? store : null;

    // Reuse the longest prefix the lane's cache shares with this run (sharedPrefix) whose recorded
    // activations are all available (attention rows recomputed where they can be). A summary built
    // from the chunks needs every row: the prefix's are recomputed the same way when the lane
    // recorded every layer's queries, else nothing is reused.
    const edits = resolveEdits(c, options.edits, nPos);
    const startLayer = checkStartLayer(c, options, nPos, stored, edits);
    const runEdits = { key: edits?.key ?? '', from: edits?.from ?? Infinity };
    let reused = sharedPrefix(this.cached, this.cachedEdits, tokens, runEdits);
    const clean = Math.min(reused, this.cachedEdits.from);             // before the lane's first edit
    if (clean > 0 && !this.gpu) { this.backfillAttention(stored.names, clean); this.backfillBlockRows(stored.names, clean); }
    if (clean > 0) this.store.backfillNorms(stored.names, clean);
    for (const name of stored.names) reused = Math.min(reused, this.store.coverage(name));
    if (fromChunks) {
      // The lane's last summary holds its rows' entropies and its sums: rows before the first
      // changed position take their entropies from it, and it is resumed from the bin holding
      // that position, or an earlier one where this run's length moves a bin's start. (Its rows
      // came from this backend: a fallback to the CPU clears the store.)
      const last = this.store.summaryPrefix;
      let from = 0;
      if (last) {
        const unchanged = Math.min(reused, last.valid);
        summary!.reuseEntropies(last.prefix, unchanged);
        from = summary!.resume(last.prefix, unchanged);
      }
      const rowsFromQueries = !this.gpu && reused <= clean
        && Array.from({ length: c.nLayers }, (_, l) => this.store.coverage(`blocks.${l}.attn.hook_rot_q`)).every((n) => n >= reused);
      if (rowsFromQueries) this.attentionRows(reused, (l, start, pattern, n) => summary!.chunk(l, start, pattern, n), { from });
      else reused = from;
    }
    this.store.keepOnly(storedNames);
    this.store.truncate(reused);
    this.cached = this.cached.slice(0, reused);
    this.cachedEdits = runEdits;
    // The run may start from a longer prefix another lane holds (on the same backend: a fallback
    // drops the parked lanes), as far as that lane recorded what this run records: its KV rows are
    // copied and its recorded blocks shared, not recomputed.
    let copy: Plan['copy'] = null, donor: ParkedLane | null = null;
    if (!fromChunks) {
      for (const l of this.parked.values()) {
        if (l.kv.gpu !== (this.gpu !== null)) continue;
        let n = sharedPrefix(l.cached, l.edits, tokens, runEdits);
        for (const name of stored.names) n = Math.min(n, l.store.coverage(name));
        if (n > (copy?.n ?? reused)) { copy = { from: l.kv, n }; donor = l; }
      }
      if (copy) {
        if (!copy.from.gpu) this.state.copyKvPrefix(copy.from.buffers, copy.n, nPos);
        this.store.adopt(donor!.store, stored.names, copy.n);
        reused = copy.n;
        this.cached = tokens.slice(0, reused);
        this.ahead = [];  // look-ahead steps were computed on this lane's rows, not the copied ones
      }
    }

    const vocab = c.vocabSize;
    const logitsStart = mode === 'new' ? reused : mode === 'all' ? 0 : nPos - 1;
    // 'top' computes its row on the CPU (then picks the top-k) and none on the GPU
    const logits = mode === 'top' ? (this.gpu ? new Float32Array(0) : (this.topRow ??= new Float32Array(vocab)))
      : new Float32Array(mode === 'new' ? (nPos - reused) * vocab : vocab);
    return { tokens, mode, topK, asked, copy, hooks, recorder, summary, summaryFromStore, reused, logitsStart, logits, edits, startLayer };
  }

  /**
   * Attention rows (hook_pattern, hook_scores) that a run records and the active lane's store
   * lacks, for positions before `upto` that the run reuses: recomputed from the lane's recorded
   * attn.hook_rot_q and its KV cache with the forward pass's own attention kernel, so bit for bit
   * the rows a run records. An attention cell's layer change then costs that layer's rows, not a
   * run from position 0. CPU only (on WebGPU the cache is on the GPU); `upto` stops at the lane's
   * first edited position (a pattern edit applies after the kernel).
   */
  private backfillAttention(names: readonly string[], upto: number): void {
    const st = this.store;
    const want = new Map<number, { pattern?: string; scores?: string; from: number }>();
    for (const name of names) {
      const m = /^blocks\.(\d+)\.attn\.hook_(pattern|scores)$/.exec(name);
      if (!m || st.coverage(name) >= upto) continue;
      const l = Number(m[1]);
      if (st.coverage(`blocks.${l}.attn.hook_rot_q`) < upto) continue;
      const w = want.get(l) ?? { from: upto };
      w[m[2] as 'pattern' | 'scores'] = name;
      w.from = Math.min(w.from, st.coverage(name));
      want.set(l, w);
    }
    for (const [l, w] of want) {
      this.attentionRows(upto, (_, start, pattern, n, scores) => {
        if (w.scores) st.attention(w.scores, start, scores!, this.config.nHeads, n);
        if (w.pattern) st.attention(w.pattern, start, pattern, this.config.nHeads, n);
      }, { layers: [l], from: w.from, scores: w.scores !== undefined });
    }
  }

  /**
   * backfillAttention's twin for a layer's sublayer outputs (hook_attn_out, hook_ffn_out), FFN
   * activations (ffn.hook_gate, hook_up, hook_act) and residuals (hook_resid_mid, hook_resid_post):
   * recomputed from the lane's recorded hook_resid_pre of the layer with the forward pass's kernels
   * and activation rounding, row by row as a run computes them (bit for bit). The attention output
   * is read where the lane recorded it, else recomputed from the KV cache (the queries from the
   * residual); the FFN output likewise; the residual after the layer is the next layer's recorded
   * input where there is one. An activations cell's layer change then costs that layer, not a run
   * from position 0. CPU only.
   */
  private backfillBlockRows(names: readonly string[], upto: number): void {
    const st = this.store, s = this.state, c = this.config, d = c.dModel, f = c.dFfn, k = this.cpu.kernels, aq = this.activationQuant;
    const covers = (name: string) => st.coverage(name) >= upto;
    const want = new Map<number, { hooks: Set<string>; from: number }>();
    for (const name of names) {
      const m = /^blocks\.(\d+)\.(hook_attn_out|hook_resid_mid|ffn\.hook_gate|ffn\.hook_up|ffn\.hook_act|hook_ffn_out|hook_resid_post)$/.exec(name);
      if (!m || covers(name)) continue;
      const l = Number(m[1]);
      if (!covers(`blocks.${l}.hook_resid_pre`)) continue;             // everything starts from the layer's input
      const w = want.get(l) ?? { hooks: new Set<string>(), from: upto };
      w.hooks.add(m[2]!);
      w.from = Math.min(w.from, st.coverage(name));
      want.set(l, w);
    }
    for (const [l, w] of want) {
      const b = this.weights.blocks[l]!, at = (h: string) => `blocks.${l}.${h}`, wants = (h: string) => w.hooks.has(h);
      const attnIn = covers(at('hook_attn_out')), ffnIn = covers(at('hook_ffn_out'));
      const next = l + 1 < c.nLayers && covers(`blocks.${l + 1}.hook_resid_pre`);   // resid_post(l) = resid_pre(l + 1)
      const post = wants('hook_resid_post') && !next;                    // resid_post from resid_mid + ffn_out
      const ffnOut = wants('hook_ffn_out') || (post && !ffnIn);          // the FFN output computed
      const ffn = ffnOut || ['ffn.hook_gate', 'ffn.hook_up', 'ffn.hook_act'].some(wants);
      const mid = ffn || post || wants('hook_resid_mid') || wants('hook_attn_out');
      for (let start = w.from; start < upto; start += this.chunkSize) {
        const n = Math.min(this.chunkSize, upto - start);
        s.ensureChunk(n);                                                  // (re-takes every view)
        st.readRows(at('hook_resid_pre'), start, n, s.x);
        if (mid) {
          if (attnIn) st.readRows(at('hook_attn_out'), start, n, s.out);
          else {                                                           // as the forward pass: q from the residual, k and v from the cache
            k.rmsnorm(s.xb, s.x, b.attnNorm, n, d, c.rmsEps, null, null);
            k.matmul(s.q, s.xb, b.wq, n, aq);
            k.rope(s.q, n, c.nHeads, c.dHead, start, s.rope);
            k.attention(s.z, s.q, s.keyCache[l]!, s.valueCache[l]!, { nq: n, start, nHeads: c.nHeads, nKvHeads: c.nKvHeads, dHead: c.dHead }, null, null);
            k.matmul(s.out, s.z, b.wo, n, aq);
          }
          if (wants('hook_attn_out')) st.rows(at('hook_attn_out'), start, s.out, n, d);
          k.add(s.x, s.x, s.out, n * d);                                   // resid_mid, as the forward pass adds it
          if (wants('hook_resid_mid')) st.rows(at('hook_resid_mid'), start, s.x, n, d);
        }
        if (ffn) {
          k.rmsnorm(s.xb, s.x, b.ffnNorm, n, d, c.rmsEps, null, null);
          k.matmul(s.gate, s.xb, b.wGate, n, aq);
          k.matmul(s.up, s.xb, b.wUp, n, aq);
          if (wants('ffn.hook_gate')) st.rows(at('ffn.hook_gate'), start, s.gate, n, f);
          if (wants('ffn.hook_up')) st.rows(at('ffn.hook_up'), start, s.up, n, f);
          k.siluMul(s.up, s.gate, s.up, n * f);
          if (wants('ffn.hook_act')) st.rows(at('ffn.hook_act'), start, s.up, n, f);
          if (ffnOut) {
            k.matmul(s.out, s.up, b.wDown, n, aq);
            if (wants('hook_ffn_out')) st.rows(at('hook_ffn_out'), start, s.out, n, d);
          }
        }
        if (wants('hook_resid_post')) {
          if (next) st.readRows(`blocks.${l + 1}.hook_resid_pre`, start, n, s.x);
          else {
            if (!ffnOut) st.readRows(at('hook_ffn_out'), start, n, s.out);
            k.add(s.x, s.x, s.out, n * d);
          }
          st.rows(at('hook_resid_post'), start, s.x, n, d);
        }
      }
    }
  }

  /**
   * The attention rows of query positions from .. upto−1 (default every layer, from 0), recomputed
   * from the active lane's recorded attn.hook_rot_q and KV cache with the forward pass's kernel,
   * a chunk at a time: each(layer, start, pattern [n_heads, n, start + n], n, scores or null). CPU.
   */
  private attentionRows(upto: number, each: (l: number, start: number, pattern: Float32Array, n: number, scores: Float32Array | null) => void,
    o: { layers?: readonly number[]; from?: number; scores?: boolean } = {}): void {
    const c = this.config;
    // one buffer for every chunk's pattern, which the kernel writes whole (zeros above the diagonal)
    const room = new Float32Array(c.nHeads * Math.min(this.chunkSize, upto) * upto);
    for (const l of o.layers ?? Array.from({ length: c.nLayers }, (_, i) => i)) {
      for (let start = o.from ?? 0; start < upto; start += this.chunkSize) {
        const n = Math.min(this.chunkSize, upto - start), kLen = start + n;
        this.state.ensureChunk(n);                                       // (re-takes every view)
        this.store.readRows(`blocks.${l}.attn.hook_rot_q`, start, n, this.state.q);
        const scores = o.scores ? new Float32Array(c.nHeads * n * kLen) : null;
        const pattern = room.subarray(0, c.nHeads * n * kLen);
        this.cpu.kernels.attention(null, this.state.q, this.state.keyCache[l]!, this.state.valueCache[l]!,   // rows only: no z
          { nq: n, start, nHeads: c.nHeads, nKvHeads: c.nKvHeads, dHead: c.dHead }, scores, pattern);
        each(l, start, pattern, n, scores);
      }
    }
  }

  private finish(p: Plan, top: RunResult['top']): RunResult {
    const c = this.config, nPos = p.tokens.length;
    const trace = this.store.trace(c, p.asked.names, nPos);
    let logits = p.logits;
    if (p.mode === 'all') logits = this.store.trace(c, ['hook_logits'], nPos).get('hook_logits')!.data;
    if (p.mode === 'top') logits = new Float32Array(0);
    const r: RunResult = { logits, logitsStart: p.logitsStart, nPos, reused: p.reused, trace, edits: p.edits?.summaries ?? [] };
    if (top) r.top = top;
    if (p.summary) {
      if (p.summaryFromStore) {
        for (let l = 0; l < c.nLayers; l++) {
          const name = `blocks.${l}.attn.hook_pattern`;
          for (let q = 0; q < nPos; q++) {
            const entropy = this.store.rowEntropies(name, q);         // kept for a reused prefix
            const { data, at } = this.store.causalRows(name, q);
            p.summary.rows(l, q, data, at, entropy);
          }
        }
      }
      r.attentionSummary = p.summary.result();
      this.store.summaryPrefix = p.summaryFromStore ? null : { prefix: p.summary.prefix(), valid: nPos };
    }
    return r;
  }
}

/**
 * How many leading positions of `tokens`, run under `edits`, a cache of `cached` computed under
 * `cachedEdits` can give: their common prefix, less the last position (its logits are not kept),
 * and when the edits differ (numbers included) only positions before the earliest one either edit
 * set touches (the model is causal: before it, both computed the same).
 */
function sharedPrefix(cached: readonly number[], cachedEdits: ParkedLane['edits'], tokens: readonly number[], edits: ParkedLane['edits']): number {
  let limit = Math.min(cached.length, tokens.length - 1);
  if (edits.key !== cachedEdits.key) limit = Math.min(limit, cachedEdits.from, edits.from);
  let n = 0;
  while (n < limit && cached[n] === tokens[n]) n++;
  return n;
}

/**
 * RunOptions.startLayer checked against the run: a layer of the model, a residual row per
 * position, and nothing recorded or edited below the layer (those hooks are never computed).
 */
function checkStartLayer(c: ModelConfig, o: RunOptions, nPos: number, stored: HookSelection, edits: EditPlan | null): Plan['startLayer'] {
  const s = o.startLayer;
  if (s === undefined) return null;
  const field = 'run startLayer';
  if (s === null || typeof s !== 'object') throw new UsageError(field, `is ${String(s)}`, 'Give { layer, residual }: the layer to start at and the residual entering it');
  if (!Number.isInteger(s.layer) || s.layer < 0 || s.layer >= c.nLayers) {
    throw new UsageError(`${field}.layer`, `is ${String(s.layer)}; the model's layers are 0 to ${c.nLayers - 1}`);
  }
  if (!(s.residual instanceof Float32Array) || s.residual.length !== nPos * c.dModel) {
    const got = s.residual instanceof Float32Array ? `${s.residual.length} floats` : String(s.residual);
    throw new UsageError(`${field}.residual`, `is ${got}; it must be a Float32Array of ${nPos} × ${c.dModel} (positions × d_model)`,
      `Give blocks.${String(s.layer)}.hook_resid_pre of the same tokens, as a run that records it returns`);
  }
  if (stored.any || o.summary !== undefined) {
    throw new UsageError(field, 'runs record nothing (no capture, \'all\' logits or summary): the layers below it are not computed',
      'Record from a run without startLayer');
  }
  // the plan's edits by layer: the first layer below the start with any, and its first hook
  const l = edits ? edits.blocks.findIndex((b, i) => i < s.layer && b !== null) : -1;
  const below = edits?.hooks.has('hook_embed') ? 'hook_embed' : l >= 0 ? `blocks.${l}.${edits!.blocks[l]!.keys().next().value}` : null;
  if (below) throw new UsageError(field, `is layer ${s.layer}, but the run edits ${below}, below it`, 'Start at the lowest edited layer, or lower');
  return s;
}

/** The rows of a start layer's residual (Plan.startLayer) for positions from .. end−1. */
function startRows(p: Plan, from: number, end: number, d: number): RunOptions['startLayer'] {
  const s = p.startLayer;
  return s ? { layer: s.layer, residual: s.residual.subarray(from * d, end * d) } : undefined;
}

/**
 * The recorder of a run that builds an attention summary from the chunks: every layer's pattern
 * rows go to the summary, and only the hooks the run stores go to the store.
 */
function summaryRecorder(store: Recorder, stored: ReadonlySet<string>, summary: AttentionSummarizer, patterns: readonly string[]): Recorder {
  const layerOf = new Map(patterns.map((name, l) => [name, l]));
  return {
    rows(name, start, data, n, rowSize) {
      store.rows(name, start, data, n, rowSize);       // only stored hooks produce rows
    },
    attention(name, start, data, nHeads, n) {
      if (stored.has(name)) store.attention(name, start, data, nHeads, n);
      const l = layerOf.get(name);
      if (l !== undefined) summary.chunk(l, start, data, n);
    },
  };
}

/**
 * The recorder of a run that records some hooks' norms (`<hook>:norm`): their rows go to the store
 * only where the run records the rows too, their norms (rowNorm) under the `:norm` name.
 */
function normRecorder(store: CaptureStore, stored: ReadonlySet<string>): Recorder {
  return {
    rows(name, start, data, n, rowSize) {
      if (stored.has(name)) store.rows(name, start, data, n, rowSize);
      if (stored.has(name + NORM_SUFFIX)) store.rows(name + NORM_SUFFIX, start, rowNorms(data, n, rowSize), n, 1);
    },
    attention(name, start, data, nHeads, n) {
      store.attention(name, start, data, nHeads, n);
    },
  };
}

/** The norms (rowNorm) of data's n rows of rowSize floats. */
function rowNorms(data: Float32Array, n: number, rowSize: number): Float32Array {
  const out = new Float32Array(n);
  for (let t = 0; t < n; t++) out[t] = rowNorm(data, t * rowSize, (t + 1) * rowSize);
  return out;
}

/**
 * Lets pending events (a cancel message from the page) run before the next chunk: a macrotask,
 * without setTimeout's 4 ms clamp (setImmediate in Node, a MessageChannel message in browsers).
 */
export function yieldToEvents(): Promise<void> {
  const g = globalThis as { setImmediate?: (f: () => void) => unknown };
  if (typeof g.setImmediate === 'function') return new Promise((resolve) => g.setImmediate!(resolve));
  return new Promise((resolve) => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => { ch.port1.close(); resolve(); };
    ch.port2.postMessage(null);
  });
}
