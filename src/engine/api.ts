// The engine's one interface (EngineApi), and the engine that implements it in the thread it runs
// in. Node, the CLI and unit tests use `new Engine()` directly; the browser runs the same object in
// a worker (src/worker/worker.ts exposes it with comlink) and the page reaches it through a client
// with the same interface (src/worker/client.ts). Every method is async, so that the two are
// interchangeable.
//
// Across the worker boundary: arguments and results are plain data (structured clone); a slice's
// arrays are fresh and travel as transferred buffers (comlink.transfer, a no-op in-thread);
// progress is a callback (proxied by the client); named errors keep their class (src/worker/wire.ts).
//
// Requests: a run belongs to a slot (a notebook cell). A newer run in the same slot cancels the
// older one if it is still pending, and replaces its trace when done, so a cell never receives
// numbers from an older prompt and memory does not grow with edits. Every result names its request
// and trace; every slice its trace and request.

import { transfer, releaseProxy } from 'comlink';
import type { ModelConfig } from './config.ts';
import { parameterCount } from './config.ts';
import { CancelledError, TokenizerError, UsageError } from './errors.ts';
import type { CaptureSpec } from './hooks.ts';
import type { Edit, EditSummary } from './edits.ts';
import { Session, yieldToEvents } from './session.ts';
import { loadModelWeights, type ModelWeights } from './weights.ts';
import { chooseBackend, CPU_BACKEND, type Backend } from './backend.ts';
import { acquireDevice } from './gpu/device.ts';
import {
  TraceStore, traceBytes, attentionSlice, activationSlice, topKSlice, logitLensSteps, LensMemo, hookNormsSlice,
  type TraceHandle, type AttentionQuery, type AttentionSlice, type ActivationSlice, type TopKQuery, type TopKSlice,
  type LogitLensQuery, type LogitLensSlice, type HookNormsSlice, type Range, type SliceMeta, type StoredTrace,
  type AttentionSummarySlice, type LogitsQuery, type LogitsSlice, type PcaQuery, type PcaSlice, type AttentionPoolQuery, type AttentionPoolSlice,
  type AttributionQuery, type AttributionSlice,
} from './trace.ts';
import { attentionPoolSlice, attentionSummarySlice, logitsSlice, pcaSlice, attributionSlice } from './slices.ts';
import { summaryBytes } from './attention-summary.ts';
import { openModel } from '../formats/open.ts';
import { describeModel, type ModelSummary } from '../formats/describe.ts';
import type { ByteSource } from '../formats/source.ts';
import { blobSource } from '../formats/source.ts';
import { createTokenizer, type Tokenizer, type DecodeOptions } from '../tokenizer/tokenizer.ts';
import type { DownloadProgress, ModelSource } from '../worker/loading/types.ts';
import type { CatalogEntry } from '../worker/loading/catalog.ts';

export type { TraceHandle, AttentionQuery, AttentionSlice, ActivationSlice, TopKQuery, TopKSlice, LogitLensQuery, LogitLensSlice, HookNormsSlice, Range, SliceMeta };
export type { AttentionSummarySlice, LogitsQuery, LogitsSlice, PcaQuery, PcaSlice };
export type { AttributionQuery, AttributionSlice };
export type { AttentionPoolQuery, AttentionPoolSlice };
export type { ModelSource, DownloadProgress };
export type { Edit, EditSummary };

// ---------------------------------------------------------------------------------------------
// The interface

/** A trace, by handle or by id. */
export type TraceRef = string | Pick<TraceHandle, 'id'>;

export type LoadProgress =
  | { stage: 'download'; download: DownloadProgress }
  /** Weights streamed into memory: bytes read of the files' tensor data. */
  | { stage: 'weights'; loaded: number; total: number }
  /** Setting up the backend (uploading to the GPU and compiling kernels). */
  | { stage: 'backend'; backend: 'webgpu' | 'cpu' };

export interface LoadOptions {
  /** 'auto' (default): WebGPU when it can hold the model, else the CPU; 'webgpu' fails without it. */
  backend?: 'auto' | 'cpu' | 'webgpu';
  /** Threads for the CPU kernels (default: the machine's cores, at most 8; 1: none started). */
  threads?: number;
  /** Names the load for cancel(); default a fresh id. */
  requestId?: string;
  onProgress?: (p: LoadProgress) => void;
  /** In-thread only (a signal cannot cross to a worker: the client turns it into cancel()). */
  signal?: AbortSignal;
}

export interface TokenizerInfo {
  kind: 'spm' | 'bpe';
  vocabSize: number;
  bosId: number | null;
  eosId: number | null;
  addBos: boolean;
  chatTemplate: boolean;
  /** Ids that end a generation besides eosId (Llama 3's <|eot_id|>, <|eom_id|>). */
  eogIds: number[];
}

export interface ModelInfo {
  /** Identifies the model's bytes (the loader's cache key). */
  key: string;
  label: string;
  config: ModelConfig;
  summary: ModelSummary;
  tokenizer: TokenizerInfo | null;
  backend: 'cpu' | 'webgpu';
  /** Why the CPU runs it (null on WebGPU, or when the CPU was asked for). */
  backendReason: string | null;
  /** The CPU kernels ('wasm' SIMD or the 'js' twins), their threads, why fewer than asked, and
   *  all that in words ("WebAssembly SIMD kernels (relaxed SIMD), 2 threads"). */
  cpu: { kernels: 'wasm' | 'js'; threads: number; reason: string | null; detail: string };
  parameterCount: number;
  warnings: string[];
  /** The catalog entry it came from (name, license), when it did. */
  entry: CatalogEntry | null;
  /** Bytes downloaded for this load (0 when every file came from the cache or the user's disk). */
  downloadedBytes: number;
}

export interface TokenizeOptions {
  /** Prepend BOS (default: the tokenizer's rule; false with `chat`, whose template writes it). */
  bos?: boolean;
  /** Parse control-token text such as <|eot_id|> (default false; true with `chat`). */
  special?: boolean;
  /** Wrap the text as the user's turn of the model's chat template (with the assistant's turn
   *  opened), optionally after a system message. */
  chat?: boolean | { system?: string };
}

export interface Tokenized {
  /** The text the spans index into: the input, or the rendered chat template. */
  text: string;
  ids: number[];
  pieces: string[];
  /** [start, end) of each token in `text` (UTF-16 units). */
  spans: [number, number][];
}

export interface RunRequest {
  tokens: readonly number[];
  /** Hook names or globs to record (a predicate works in-thread only). */
  capture?: CaptureSpec;
  /** Logits rows to keep: 'last' (default) or 'all' (topK at every position). */
  logits?: 'last' | 'all';
  /** Names the request (default a fresh id); results carry it. */
  requestId?: string;
  /** The cell or view the trace belongs to (default 'default'). Each slot also runs in its own
   *  lane of the session (session.ts): it reuses its own cached prefix, and leaves the others'. */
  slot?: string;
  /**
   * Statistics recorded along the run without keeping the tensors they come from.
   * attention: every layer × head's attention summary (attentionSummary()), `size` thumbnail bins
   * per side (default 24, clamped to [4, 64] and to the prompt length). Such a run recomputes
   * from position 0 (`reused` 0) unless it also captures blocks.*.attn.hook_pattern: a reused
   * prefix's rows are not kept, and the bins depend on the prompt length (Session RunOptions).
   */
  summary?: { attention?: { size?: number } };
  /**
   * Interventions during the run (src/engine/edits.ts Edit): `zero`, `mean` (replace by a given
   * mean row), `patch` (replace by another run's values of the same hook, e.g. the `data` of an
   * activation() slice of the corrupted prompt's trace) or `steer` (add vector × strength), on any
   * residual, attention (q, k, v, rot_q, rot_k, pattern, z, result, attn_out) or FFN (gate, up,
   * act, ffn_out) hook, restricted to positions, heads or neurons; a glob edits several layers.
   * Captures show the edited values. The handle lists them (`edits`); the KV cache is reused only
   * before the earliest position where the edits differ from the previous run's. Arrays cross to
   * the worker by structured clone (copied, not transferred: the client keeps the request to
   * rerun it after a worker restart).
   */
  edits?: readonly Edit[];
  /**
   * Skip the layers below `layer`, starting from `residual`, the blocks.{layer}.hook_resid_pre of
   * these tokens at every position as a run without edits below the layer records it (Session
   * RunOptions.startLayer): the same numbers in less time. Such a run records nothing and edits
   * nothing below the layer; the slot's cache is reused afterwards only before its `reused`.
   */
  startLayer?: { layer: number; residual: Float32Array };
}

export interface CallOptions {
  /** Cancels the call (the client turns it into cancel(requestId) in the worker). */
  signal?: AbortSignal;
}

export interface LensOptions extends CallOptions {
  /** Names the request for cancel(); default a fresh id. */
  requestId?: string;
  /** Rows done (from the memo or through the head) of all the rows asked, after each batch. */
  onProgress?: (done: number, total: number) => void;
}

export interface Capabilities {
  readonly webgpu: boolean;
  /** Why WebGPU cannot be used (null when it can). */
  readonly webgpuReason: string | null;
  readonly adapter: string | null;
  readonly maxBufferBytes: number | null;
  readonly maxBindingBytes: number | null;
  readonly shaderF16: boolean;
  readonly crossOriginIsolated: boolean;
  readonly hardwareConcurrency: number;
}

export interface EngineStats {
  /** Traces held, and the bytes their activations and logits take. */
  traces: number;
  traceBytes: number;
  /** Runs and loads not finished yet. */
  pending: number;
  /** Positions in the KV cache of the last run's lane. */
  cachedPositions: number;
  /** The session's lanes (one per slot that ran, session.ts), the last run's first. */
  lanes: string[];
  runs: number;
  cancelled: number;
  /** Bytes of the slice buffers handed out (what crosses to the page from a worker). */
  bytesOut: number;
  /** This thread's JS heap in use, when the platform says (Node; Chromium's performance.memory). */
  heapBytes: number | null;
}

export interface EngineApi {
  capabilities(): Promise<Capabilities>;
  load(source: ModelSource, options?: LoadOptions): Promise<ModelInfo>;
  /** The model loaded now (its backend may have changed since load), or null. */
  info(): Promise<ModelInfo | null>;
  tokenize(text: string, options?: TokenizeOptions): Promise<Tokenized>;
  decode(ids: readonly number[], options?: DecodeOptions): Promise<string>;
  run(request: RunRequest, options?: CallOptions): Promise<TraceHandle>;
  /** Cancels a pending run, load or logit lens; false when it is not pending (finished, or unknown). */
  cancel(requestId: string): Promise<boolean>;
  attention(trace: TraceRef, query: AttentionQuery): Promise<AttentionSlice>;
  activation(trace: TraceRef, name: string, options?: { positions?: Range }): Promise<ActivationSlice>;
  topK(trace: TraceRef, query?: TopKQuery): Promise<TopKSlice>;
  /** Takes seconds on a long prompt: cancellable (signal, cancel(requestId)), and cancelled by a newer run of the trace's slot. */
  logitLens(trace: TraceRef, query?: LogitLensQuery, options?: LensOptions): Promise<LogitLensSlice>;
  hookNorms(trace: TraceRef, names: string | readonly string[], options?: { positions?: Range }): Promise<HookNormsSlice>;
  /** The attention summary the run recorded (run with summary: { attention: {} }). */
  attentionSummary(trace: TraceRef): Promise<AttentionSummarySlice>;
  /** One layer's pattern, every head, max- (or mean-) pooled into B × B bins (capture the layer's hook_pattern). */
  attentionPooled(trace: TraceRef, query: AttentionPoolQuery): Promise<AttentionPoolSlice>;
  /** The whole logits row at a position (default the last): stored, or from the last layer's residual. */
  logits(trace: TraceRef, query?: LogitsQuery): Promise<LogitsSlice>;
  /** One PCA fitted on the rows of all the listed hooks together; every row projected. */
  pca(trace: TraceRef, query: PcaQuery): Promise<PcaSlice>;
  /** Direct logit attribution of a token at a position to the embedding, each head and each FFN
   *  (capture hook_embed, blocks.*.attn.hook_z or hook_result, blocks.*.hook_ffn_out, final_norm.hook_scale). */
  attribution(trace: TraceRef, query?: AttributionQuery): Promise<AttributionSlice>;
  /** Each id's vocabulary piece as a display string ('▁Once', '<0x0A>', '<s>'). */
  pieces(ids: readonly number[]): Promise<string[]>;
  /** Drops a trace now; false when it was already gone. */
  release(trace: TraceRef): Promise<boolean>;
  stats(): Promise<EngineStats>;
  /** Answers at once when the engine's thread is free (the client's heartbeat). */
  ping(): Promise<number>;
}

// ---------------------------------------------------------------------------------------------
// Sources

/** A model's files, ready to open (what src/worker/loading resolves a ModelSource to). */
export interface ResolvedModel {
  sources: ByteSource[];
  tokenizer?: ByteSource;
  key: string;
  label: string;
  warnings: string[];
  /** The catalog entry (its license must be shown), when the source was one. */
  entry?: CatalogEntry;
  downloadedBytes?: number;
  fromCache?: boolean;
}

export type SourceResolver = (source: ModelSource, opts: { onProgress?: (p: DownloadProgress) => void; signal?: AbortSignal }) => Promise<ResolvedModel>;

/**
 * Opens files the caller already has ({kind: 'files'}) and nothing else: the resolver of an
 * engine built without one. The browser engine gets src/worker/loading's, which downloads, caches
 * and checks; Node callers pass their own (fileSource) or hand over Files.
 */
export const filesOnly: SourceResolver = async (source) => {
  if (source.kind !== 'files') {
    throw new UsageError(`model source '${source.kind}'`, 'this engine was built without a loader for it',
      "Give the files themselves ({kind: 'files', files}), or build the engine with resolveSource (src/worker/loading)");
  }
  const sources = source.files.map((f) => blobSource(f, f.name));
  const label = source.files.map((f) => f.name).join(', ');
  return { sources, key: `files:${source.files.map((f) => `${f.name}:${f.size}:${f.lastModified}`).join('|')}`, label, warnings: [] };
};

export interface EngineOptions {
  resolveSource?: SourceResolver;
  /** navigator.gpu to use (Node: src/engine/gpu/node.ts); default the environment's. */
  gpu?: GPU;
  /** Positions per forward chunk (Session), also the granularity of cancellation. Default 64. */
  chunkSize?: number;
}

// ---------------------------------------------------------------------------------------------
// The engine

/** Frees what a session holds on its backend, and the WebGPU device the engine acquired for it. */
function release(session: Session, backend: Backend): void {
  session.dispose();
  if (backend.kind === 'webgpu') backend.ctx.device.destroy();
}

interface Loaded {
  info: ModelInfo;
  weights: ModelWeights;
  tokenizer: Tokenizer | null;
  session: Session;
  backend: Backend;
  /** Logit-lens rows by residual: a keystroke's lens recomputes only the positions that changed. */
  lens: LensMemo;
}

interface Pending { kind: 'run' | 'load' | 'lens'; slot: string; controller: AbortController; detach: () => void }

let capabilitiesOnce: Promise<Capabilities> | null = null;

/** Ids unique across engines (and worker restarts), so a stale id never names a new trace. */
const instanceTag = () => Math.random().toString(36).slice(2, 8);

export class Engine implements EngineApi {
  private readonly resolveSource: SourceResolver;
  private readonly gpu: GPU | undefined;
  private readonly chunkSize: number | undefined;
  private readonly tag = instanceTag();
  private counter = 0;
  private model: Loaded | null = null;
  private loading: Promise<void> = Promise.resolve();
  /** Counts load() calls: a run asked for before a load belongs to the model it replaces. */
  private generation = 0;
  private readonly traces = new TraceStore();
  private readonly pending = new Map<string, Pending>();
  private runs = 0;
  private cancelled = 0;
  private bytesOut = 0;

  constructor(options: EngineOptions = {}) {
    this.resolveSource = options.resolveSource ?? filesOnly;
    this.gpu = options.gpu;
    this.chunkSize = options.chunkSize;
  }

  private nextId(what: string): string {
    return `${what}-${this.tag}-${++this.counter}`;
  }

  /** Detected once per thread, frozen. */
  capabilities(): Promise<Capabilities> {
    capabilitiesOnce ??= (async () => {
      const a = await acquireDevice({ gpu: this.gpu });
      const g = globalThis as { crossOriginIsolated?: boolean; navigator?: { hardwareConcurrency?: number } };
      const caps: Capabilities = {
        webgpu: a.ok,
        webgpuReason: a.ok ? null : a.reason,
        adapter: a.ok ? a.caps.adapter : null,
        maxBufferBytes: a.ok ? a.caps.maxBufferSize : null,
        maxBindingBytes: a.ok ? a.caps.maxStorageBufferBindingSize : null,
        shaderF16: a.ok ? a.caps.shaderF16 : false,
        crossOriginIsolated: g.crossOriginIsolated ?? false,
        hardwareConcurrency: g.navigator?.hardwareConcurrency ?? 1,
      };
      if (a.ok) a.device.destroy();
      return Object.freeze(caps);
    })();
    return capabilitiesOnce;
  }

  // ---- loading ----

  /**
   * Loads a model, replacing the current one (whose traces and pending runs end at once).
   * `onProgress` may also come as the third argument: comlink proxies top-level arguments only,
   * so the worker client passes it there.
   */
  load(source: ModelSource, options: LoadOptions = {}, onProgress = options.onProgress): Promise<ModelInfo> {
    this.generation++;
    const loading = this.loadNow(source, options, onProgress);
    // calls that need the model wait for the load in progress (a page need not await load first)
    this.loading = loading.then(() => undefined, () => undefined);
    return loading;
  }

  private async loadNow(source: ModelSource, options: LoadOptions, onProgress: LoadOptions['onProgress']): Promise<ModelInfo> {
    const requestId = options.requestId ?? this.nextId('load');
    for (const [id, p] of this.pending) p.controller.abort(new CancelledError(id, `a new model is loading (${requestId})`));
    const controller = this.track(requestId, 'load', '', options.signal);
    this.unload();
    const signal = controller.signal;
    try {
      const resolved = await this.resolveSource(source, { signal, onProgress: onProgress && ((download) => onProgress({ stage: 'download', download })) });
      try {
        const model = await openModel(resolved.sources, { tokenizer: resolved.tokenizer });
        const weights = await loadModelWeights(model, { signal, onProgress: onProgress && ((loaded, total) => onProgress({ stage: 'weights', loaded, total })) });
        const tokenizer = model.tokenizer ? createTokenizer(model.tokenizer, resolved.label) : null;
        signal.throwIfAborted();
        const backend = await this.pickBackend(options.backend ?? 'auto', weights);
        onProgress?.({ stage: 'backend', backend: backend.kind });
        // the lens's rows are the output head's: a session that falls back to the CPU starts a new memo
        const lens = new LensMemo();
        const session = new Session(weights, { backend, chunkSize: this.chunkSize, threads: options.threads, onBackendChange: () => lens.clear() });
        try {
          await session.ready();
          signal.throwIfAborted();
          if (options.backend === 'webgpu' && session.backend !== 'webgpu') {
            throw new UsageError('backend webgpu', session.backendReason ?? 'WebGPU could not be set up', "Load with backend 'auto' or 'cpu'");
          }
        } catch (e) {
          release(session, backend);   // cancelled or failed: give back the GPU memory and the device
          throw e;
        }
        const c = model.config;
        const info: ModelInfo = {
          key: resolved.key,
          label: resolved.label,
          config: c,
          summary: describeModel(model),
          tokenizer: tokenizer && {
            kind: tokenizer.kind, vocabSize: tokenizer.vocabSize, bosId: tokenizer.bosId, eosId: tokenizer.eosId,
            addBos: tokenizer.addBos, chatTemplate: tokenizer.chatTemplate !== null, eogIds: [...tokenizer.eogIds],
          },
          backend: session.backend,
          backendReason: session.backendReason,
          cpu: { kernels: session.cpuKernels.name, threads: session.cpuKernels.threads, reason: session.cpuKernels.reason, detail: session.cpuKernels.detail },
          parameterCount: parameterCount(c),
          warnings: [...resolved.warnings, ...(tokenizer ? [] : ['the model has no tokenizer: give token ids'])],
          entry: resolved.entry ?? null,
          downloadedBytes: resolved.downloadedBytes ?? 0,
        };
        this.model = { info, weights, tokenizer, session, backend, lens };
        return { ...info };
      } finally {
        await Promise.all(resolved.sources.map((s) => s.close?.()));
        await resolved.tokenizer?.close?.();
      }
    } finally {
      this.settle(requestId);
      // a callback proxied from the page holds a message channel open until released
      (onProgress as { [releaseProxy]?: () => void } | undefined)?.[releaseProxy]?.();
    }
  }

  private async pickBackend(choice: 'auto' | 'cpu' | 'webgpu', weights: ModelWeights): Promise<Backend> {
    if (choice !== 'auto' && choice !== 'cpu' && choice !== 'webgpu') {
      throw new UsageError('backend', `'${String(choice)}' is not a backend`, "Use 'auto', 'cpu' or 'webgpu'");
    }
    if (choice === 'cpu') return CPU_BACKEND;
    const b = await chooseBackend({ gpu: this.gpu, weights });
    if (b.kind === 'cpu' && choice === 'webgpu') throw new UsageError('backend webgpu', b.reason, "Load with backend 'auto' or 'cpu'");
    return b;
  }

  /** Drops the model, its traces and its GPU memory. */
  private unload(): void {
    const m = this.model;
    this.model = null;
    this.traces.clear();
    if (m) release(m.session, m.backend);
  }

  async info(): Promise<ModelInfo | null> {
    await this.loading;
    const m = this.model;
    if (!m) return null;
    return { ...m.info, backend: m.session.backend, backendReason: m.session.backendReason };
  }

  /** The model, once the load in progress (if any) has finished. */
  private async ready(): Promise<Loaded> {
    for (let l = this.loading; ; l = this.loading) {
      await l;
      if (l === this.loading) return this.loaded();
    }
  }

  private loaded(): Loaded {
    if (!this.model) throw new UsageError('engine', 'no model is loaded', 'Load one first: load({kind: ...})');
    return this.model;
  }

  private async tokenizer(): Promise<Tokenizer> {
    const m = await this.ready();
    if (!m.tokenizer) throw new TokenizerError(m.info.label, 'has no tokenizer', 'Give token ids instead of text, or load the model with its tokenizer file');
    return m.tokenizer;
  }

  // ---- text ----

  async tokenize(text: string, options: TokenizeOptions = {}): Promise<Tokenized> {
    const tok = await this.tokenizer();
    if (typeof text !== 'string') throw new UsageError('tokenize', `the text is ${typeof text}, not a string`);
    let t = text, bos = options.bos, special = options.special;
    if (options.chat) {
      const system = typeof options.chat === 'object' ? options.chat.system : undefined;
      const messages = [...(system !== undefined ? [{ role: 'system', content: system }] : []), { role: 'user', content: text }];
      t = tok.applyChatTemplate(messages, { addGenerationPrompt: true });
      bos ??= false;
      special ??= true;
    }
    const { ids, spans } = tok.encodeWithSpans(t, { bos, special });
    return { text: t, ids, pieces: ids.map((id) => tok.piece(id)), spans };
  }

  async decode(ids: readonly number[], options: DecodeOptions = {}): Promise<string> {
    return (await this.tokenizer()).decode(ids, options);
  }

  async pieces(ids: readonly number[]): Promise<string[]> {
    const tok = await this.tokenizer();
    if (!Array.isArray(ids)) throw new UsageError('pieces ids', `${typeof ids} is not an array of token ids`);
    return ids.map((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= tok.vocabSize) {
        throw new UsageError(`pieces ids[${i}]`, `${String(id)} is not a token id: the vocabulary has ${tok.vocabSize} tokens (ids 0..${tok.vocabSize - 1})`);
      }
      return tok.piece(id);
    });
  }

  // ---- runs ----

  /** Registers a pending request whose controller cancels it (also when `signal` aborts). */
  private track(requestId: string, kind: Pending['kind'], slot: string, signal?: AbortSignal): AbortController {
    if (typeof requestId !== 'string' || requestId.length === 0) throw new UsageError('requestId', `${String(requestId)} is not a non-empty string`);
    if (this.pending.has(requestId)) throw new UsageError('requestId', `${requestId} is already pending`, 'Give each request its own id');
    const controller = new AbortController();
    let detach = () => {};
    if (signal) {
      const abort = () => controller.abort(new CancelledError(requestId, 'the caller aborted it'));
      if (signal.aborted) abort();
      else {
        signal.addEventListener('abort', abort, { once: true });
        detach = () => signal.removeEventListener('abort', abort);   // a long-lived signal keeps no listener per call
      }
    }
    controller.signal.addEventListener('abort', () => { this.cancelled++; }, { once: true });
    this.pending.set(requestId, { kind, slot, controller, detach });
    return controller;
  }

  /** The request is over: forget it. */
  private settle(requestId: string): void {
    this.pending.get(requestId)?.detach();
    this.pending.delete(requestId);
  }

  async run(request: RunRequest, options: CallOptions = {}): Promise<TraceHandle> {
    const generation = this.generation;
    const requestId = request.requestId ?? this.nextId('run');
    const m = await this.ready();
    if (generation !== this.generation) throw new CancelledError(requestId, 'another model was loaded after it was asked for');
    const slot = request.slot ?? 'default';
    if (!Array.isArray(request.tokens)) throw new UsageError('run tokens', 'must be an array of token ids');
    const mode = request.logits ?? 'last';
    if (mode !== 'last' && mode !== 'all') throw new UsageError('run logits', `'${String(mode)}' is neither 'last' nor 'all'`);
    // a newer prompt edit in this slot: the older run's numbers are no longer wanted
    for (const [id, p] of this.pending) {
      if ((p.kind === 'run' || p.kind === 'lens') && p.slot === slot) p.controller.abort(new CancelledError(id, `a newer run (${requestId}) replaced it in slot "${slot}"`));
    }
    const controller = this.track(requestId, 'run', slot, options.signal);
    const t0 = performance.now();
    try {
      const tokens = [...request.tokens];
      // each slot runs in its own lane of the session: its own KV cache and recorded activations
      const r = await m.session.runAsync(tokens, { capture: request.capture, logits: mode, summary: request.summary, edits: request.edits, startLayer: request.startLayer, signal: controller.signal, lane: slot });
      controller.signal.throwIfAborted();   // cancelled after its last chunk: still not wanted
      const handle: TraceHandle = {
        id: this.nextId('trace'), requestId, slot, tokens, nPos: r.nPos, hooks: [...r.trace.keys()],
        logitsStart: r.logitsStart, backend: m.session.backend, reused: r.reused, ms: performance.now() - t0, edits: r.edits,
      };
      const stored: StoredTrace = {
        handle, data: r.trace, logits: r.logits, attentionSummary: r.attentionSummary,
        bytes: traceBytes(r.trace, r.logits) + (r.attentionSummary ? summaryBytes(r.attentionSummary) : 0),
      };
      this.traces.put(stored);
      this.runs++;
      return { ...handle, tokens: [...tokens], hooks: [...handle.hooks], edits: structuredClone(handle.edits) };
    } finally {
      this.settle(requestId);
    }
  }

  async cancel(requestId: string): Promise<boolean> {
    const p = this.pending.get(requestId);
    if (!p || p.controller.signal.aborted) return false;
    p.controller.abort(new CancelledError(requestId, 'the caller cancelled it'));
    return true;
  }

  // ---- slices ----

  private trace(ref: TraceRef): StoredTrace {
    const id = typeof ref === 'string' ? ref : ref?.id;
    if (typeof id !== 'string') throw new UsageError('trace', `${String(id)} is not a trace id`, 'Pass the handle run() returned, or its id');
    return this.traces.get(id);
  }

  /** A slice with its origin, its arrays marked for transfer (they are fresh copies). */
  private out<T extends object>(t: StoredTrace, body: T): T & SliceMeta {
    const result = { traceId: t.handle.id, requestId: t.handle.requestId, ...body };
    const buffers: ArrayBuffer[] = [];
    for (const v of Object.values(body)) {
      if (ArrayBuffer.isView(v) && v.buffer instanceof ArrayBuffer) { buffers.push(v.buffer); this.bytesOut += v.buffer.byteLength; }
    }
    return transfer(result, buffers);
  }

  async attention(trace: TraceRef, query: AttentionQuery): Promise<AttentionSlice> {
    const t = this.trace(trace);
    return this.out(t, attentionSlice(this.loaded().info.config, t, query));
  }

  async activation(trace: TraceRef, name: string, options: { positions?: Range } = {}): Promise<ActivationSlice> {
    const t = this.trace(trace);
    return this.out(t, activationSlice(t, name, options.positions));
  }

  async topK(trace: TraceRef, query: TopKQuery = {}): Promise<TopKSlice> {
    const t = this.trace(trace);
    return this.out(t, topKSlice(this.loaded().info.config, t, query));
  }

  /** `onProgress` as its own argument is how the worker client passes it (a proxied callback cannot ride inside an object). */
  async logitLens(trace: TraceRef, query: LogitLensQuery = {}, options: LensOptions = {}, onProgress = options.onProgress): Promise<LogitLensSlice> {
    const t = this.trace(trace);
    const m = this.loaded();
    // Batch by batch, letting other requests in between (a long prompt's lens takes seconds); a
    // newer run of the trace's slot (which replaces the trace), cancel() or the signal stops it.
    const requestId = options.requestId ?? this.nextId('lens');
    const controller = this.track(requestId, 'lens', t.handle.slot, options.signal);
    try {
      const steps = logitLensSteps(m.info.config, t, query, m.lens);
      for (let r = steps.next(); ; ) {
        if (r.done) return this.out(t, r.value);
        onProgress?.(r.value.done, r.value.total);
        const head = await m.session.lensHeadAsync(r.value.x, r.value.n, r.value.k, r.value.target);
        await yieldToEvents();
        controller.signal.throwIfAborted();
        r = steps.next(head);
      }
    } finally {
      this.settle(requestId);
    }
  }

  async hookNorms(trace: TraceRef, names: string | readonly string[], options: { positions?: Range } = {}): Promise<HookNormsSlice> {
    const t = this.trace(trace);
    return this.out(t, hookNormsSlice(t, typeof names === 'string' ? [names] : names, options.positions));
  }

  async attentionSummary(trace: TraceRef): Promise<AttentionSummarySlice> {
    const t = this.trace(trace);
    return this.out(t, attentionSummarySlice(t));
  }

  async attentionPooled(trace: TraceRef, query: AttentionPoolQuery): Promise<AttentionPoolSlice> {
    const t = this.trace(trace);
    return this.out(t, attentionPoolSlice(this.loaded().info.config, t, query));
  }

  async logits(trace: TraceRef, query: LogitsQuery = {}): Promise<LogitsSlice> {
    const t = this.trace(trace);
    const m = this.loaded();
    return this.out(t, logitsSlice(m.info.config, (x, n) => m.session.outputHead(x, n), t, query));
  }

  async pca(trace: TraceRef, query: PcaQuery): Promise<PcaSlice> {
    const t = this.trace(trace);
    return this.out(t, pcaSlice(t, query));
  }

  async attribution(trace: TraceRef, query: AttributionQuery = {}): Promise<AttributionSlice> {
    const t = this.trace(trace);
    const m = this.loaded();
    return this.out(t, attributionSlice(m.info.config, m.weights, (x, n) => m.session.outputHead(x, n), t, query));
  }

  async release(trace: TraceRef): Promise<boolean> {
    return this.traces.release(typeof trace === 'string' ? trace : trace.id);
  }

  // ---- housekeeping ----

  async stats(): Promise<EngineStats> {
    const g = globalThis as { process?: { memoryUsage?: () => { heapUsed: number; arrayBuffers: number } }; performance?: { memory?: { usedJSHeapSize: number } } };
    const mem = g.process?.memoryUsage?.();
    const heapBytes = mem ? mem.heapUsed + mem.arrayBuffers : g.performance?.memory?.usedJSHeapSize ?? null;
    return {
      traces: this.traces.count, traceBytes: this.traces.bytes, pending: this.pending.size,
      cachedPositions: this.model?.session.tokens.length ?? 0, lanes: this.model?.session.lanes ?? [], runs: this.runs, cancelled: this.cancelled,
      bytesOut: this.bytesOut, heapBytes,
    };
  }

  async ping(): Promise<number> {
    return performance.now();
  }

  /**
   * Holds a Web Lock for as long as this thread lives and returns its name once held (null where
   * there are no Web Locks). The worker client then asks for the same lock: it is granted the
   * moment the worker dies (crash, out of memory, terminate()), even mid-run. Not part of
   * EngineApi: only the client calls it.
   */
  async lifeline(): Promise<string | null> {
    const locks = (globalThis as { navigator?: { locks?: LockManager } }).navigator?.locks;
    if (!locks) return null;
    const name = `glassbox-engine-${this.tag}-${++this.counter}`;
    await new Promise<void>((held) => { void locks.request(name, () => { held(); return new Promise<never>(() => {}); }); });
    return name;
  }
}
