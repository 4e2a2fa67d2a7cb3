// The page's side of the engine worker: EngineApi, the same interface as the in-thread Engine
// (src/engine/api.ts), so that the page is written once. Calls go through comlink; progress
// callbacks are proxied; an AbortSignal becomes cancel(requestId) in the worker.
//
// The worker may die (a crash, an out-of-memory kill, terminate()). The client notices three ways:
//   - a Web Lock the worker holds for its whole life is granted to the client when it dies
//     (immediate, and immune to long computations);
//   - the worker's 'error' event before it ever answered (it could not start);
//   - a heartbeat: a ping unanswered for heartbeatTimeoutMs while no call is pending (or before the
//     worker ever answered), or for busyTimeoutMs while one is (a chunk of a long prompt can hold
//     the worker for seconds).
// Then it starts a new worker, reloads the last model (the same ModelSource: from the browser's
// cache), reruns the last completed run of every slot, retries the calls that were pending, and
// calls onRecover. Trace handles the page holds keep working: their ids are mapped onto the
// reruns' traces, and slices still name the handle the page asked with.

import { wrap, proxy, type Remote } from 'comlink';
import './wire.ts';
import type {
  Engine, EngineApi, Capabilities, LoadOptions, ModelInfo, ModelSource, Tokenized, TokenizeOptions, RunRequest, CallOptions, LensOptions,
  TraceHandle, TraceRef, AttentionQuery, AttentionSlice, ActivationSlice, TopKQuery, TopKSlice, LogitLensQuery, LogitLensSlice,
  HookNormsSlice, Range, EngineStats, LoadProgress, AttentionSummarySlice, LogitsQuery, LogitsSlice, PcaQuery, PcaSlice, AttentionPoolQuery, AttentionPoolSlice,
  AttributionQuery, AttributionSlice,
} from '../engine/api.ts';
import type { DecodeOptions } from '../tokenizer/tokenizer.ts';
import { CancelledError, WorkerError } from '../engine/errors.ts';

export interface RecoverEvent {
  /** Why the old worker was given up, in words for the user. */
  reason: string;
  /** Restarts so far in this client. */
  restarts: number;
  /** The model was loaded again (false when none had been loaded, or reloading failed). */
  reloaded: boolean;
  /** Runs redone to bring back the traces the page holds. */
  rerun: number;
  /** Set when the new worker is up but reloading the model failed (the page must load one). */
  error?: Error;
}

export interface EngineClientOptions {
  /** Makes the worker (tests, or another bundling); default src/worker/worker.ts as a module worker. */
  createWorker?: () => Worker;
  /** Told when the worker died and was replaced. */
  onRecover?: (e: RecoverEvent) => void;
  /** Told as soon as the worker is found dead, before the restart. */
  onCrash?: (e: { reason: string }) => void;
  /**
   * Told when a run came back from another backend than the model had (the WebGPU device was
   * lost and the session continued on the CPU), with the model as it is now (its backendReason
   * says why).
   */
  onBackendChange?: (info: ModelInfo) => void;
  /** Heartbeat period in ms (default 2000; 0 turns it off). */
  heartbeatMs?: number;
  /** An idle worker that does not answer a ping for this long is dead (default 10000 ms). */
  heartbeatTimeoutMs?: number;
  /** The same while a call is pending (default 300000 ms: the Web Lock catches real deaths). */
  busyTimeoutMs?: number;
  /** More restarts than this within a minute: give up with a WorkerError (default 3). */
  maxRestartsPerMinute?: number;
}

export interface EngineClient extends EngineApi {
  /** The current worker (a new one after each restart). */
  readonly worker: Worker;
  readonly restarts: number;
  /** Stops the worker for good; later calls fail with a WorkerError. */
  dispose(): void;
}

export function createEngineClient(opts: EngineClientOptions = {}): EngineClient {
  return new WorkerEngineClient(opts);
}

/** The default worker; Vite and web-test-runner both recognise this form. */
function defaultWorker(): Worker {
  return new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
}

/** One worker and its remote engine. */
interface Generation {
  worker: Worker;
  remote: Remote<Engine>;
  /** Set, with why, once the worker is found dead. */
  dead: boolean;
  reason: string;
  /** Calls waiting on it, told when it dies (a set, so that finished calls leave nothing behind). */
  waiters: Set<(reason: string) => void>;
  kill(reason: string): void;
  /** Calls pending on it. */
  busy: number;
  /** When the outstanding ping was sent (null: none outstanding). */
  pingAt: number | null;
  answered: boolean;
  timer: ReturnType<typeof setInterval> | null;
}

class Died extends Error {
  constructor(readonly reason: string) { super(reason); }
}

const locks = (): LockManager | undefined => (globalThis as { navigator?: { locks?: LockManager } }).navigator?.locks;

class WorkerEngineClient implements EngineClient {
  private readonly opts: Required<Omit<EngineClientOptions, 'onRecover' | 'onCrash' | 'onBackendChange'>> & Pick<EngineClientOptions, 'onRecover' | 'onCrash' | 'onBackendChange'>;
  private gen: Generation;
  private recovering: Promise<void> | null = null;
  private broken: WorkerError | null = null;
  private restartTimes: number[] = [];
  restarts = 0;
  private counter = 0;
  /** The model to load again after a restart (set when a load succeeds). */
  private lastLoad: { source: ModelSource; options: LoadOptions; onProgress?: (p: LoadProgress) => void } | null = null;
  /** The backend the loaded model runs on, as last seen (a run on another one means it changed). */
  private backend: 'cpu' | 'webgpu' | null = null;
  /** Per slot, the last completed run and the trace id the page knows it by. */
  private completed = new Map<string, { request: RunRequest; pageId: string }>();
  /** Trace ids the page holds → ids in the current worker (after reruns). */
  private alias = new Map<string, string>();

  constructor(opts: EngineClientOptions) {
    this.opts = {
      createWorker: opts.createWorker ?? defaultWorker, heartbeatMs: opts.heartbeatMs ?? 2000,
      heartbeatTimeoutMs: opts.heartbeatTimeoutMs ?? 10000, busyTimeoutMs: opts.busyTimeoutMs ?? 300000,
      maxRestartsPerMinute: opts.maxRestartsPerMinute ?? 3, onRecover: opts.onRecover, onCrash: opts.onCrash,
      onBackendChange: opts.onBackendChange,
    };
    this.gen = this.spawn();
  }

  get worker(): Worker {
    return this.gen.worker;
  }

  // ---- workers ----

  private spawn(): Generation {
    const worker = this.opts.createWorker();
    const g: Generation = {
      worker, remote: wrap<Engine>(worker), dead: false, reason: '', waiters: new Set(), busy: 0,
      pingAt: null, answered: false, timer: null,
      kill: (reason) => {
        if (g.dead) return;
        g.dead = true;
        g.reason = reason;
        if (g.timer !== null) clearInterval(g.timer);
        worker.terminate();
        for (const w of g.waiters) w(reason);
        g.waiters.clear();
      },
    };
    worker.addEventListener('error', (e) => {
      // an uncaught error in a live worker does not stop it; one before it ever answered means it could not start
      if (g.answered) return;
      e.preventDefault();   // handled here: not an uncaught error of the page
      g.kill(`the engine worker could not start: ${e.message || 'error loading its script'}`);
    });
    // the lifeline: granted to us when the worker dies
    void this.guard(g, g.remote.lifeline()).then((name) => {
      g.answered = true;
      const l = locks();
      if (name && l && !g.dead) void l.request(name, () => { g.kill('the engine worker stopped (it crashed, ran out of memory, or was terminated)'); });
    }, () => { /* died before answering: kill() already says why */ });
    if (this.opts.heartbeatMs > 0) g.timer = setInterval(() => this.beat(g), this.opts.heartbeatMs);
    return g;
  }

  private beat(g: Generation): void {
    if (g.dead) return;
    const now = performance.now();
    if (g.pingAt !== null) {
      const waited = now - g.pingAt;
      // a worker that never answered anything is not busy computing: it did not start
      const limit = g.busy > 0 && g.answered ? this.opts.busyTimeoutMs : this.opts.heartbeatTimeoutMs;
      if (waited > limit) g.kill(`the engine worker did not answer for ${Math.round(waited / 1000)} s`);
      return;
    }
    g.pingAt = now;
    g.remote.ping().then(() => { g.pingAt = null; g.answered = true; }, () => { /* dead: handled elsewhere */ });
  }

  /** The promise, or a Died rejection if the worker dies first (its answer would never come). */
  private guard<T>(g: Generation, p: Promise<T>): Promise<T> {
    if (g.dead) return Promise.reject(new Died(g.reason));
    return new Promise<T>((resolve, reject) => {
      const died = (reason: string) => reject(new Died(reason));
      g.waiters.add(died);
      p.then((v) => { g.waiters.delete(died); resolve(v); }, (e: unknown) => { g.waiters.delete(died); reject(e); });
    });
  }

  private async current(): Promise<Generation> {
    while (this.recovering) await this.recovering.catch(() => undefined);
    if (this.broken) throw this.broken;
    return this.gen;
  }

  /**
   * Runs `op` on the current worker. If the worker dies meanwhile, waits for the restart and tries
   * again while `retry()` says so (the page still wants the answer), else fails with a WorkerError.
   */
  private async call<T>(op: (r: Remote<Engine>) => Promise<T>, retry: () => boolean = () => true): Promise<T> {
    for (;;) {
      const g = await this.current();
      g.busy++;
      try {
        return await this.guard(g, op(g.remote));
      } catch (e) {
        if (!(e instanceof Died)) throw e;
        await this.recover(g, e.reason);
        if (!retry()) throw new WorkerError('engine worker', `it stopped during the call (${e.reason})`, 'It was restarted; ask again');
      } finally {
        g.busy--;
      }
    }
  }

  /** One restart at a time, for the generation that died. */
  private recover(g: Generation, reason: string): Promise<void> {
    if (g === this.gen && !this.recovering && !this.broken) {
      this.recovering = this.restart(reason).finally(() => { this.recovering = null; });
    }
    return (this.recovering ?? Promise.resolve()).catch(() => undefined);
  }

  private async restart(reason: string): Promise<void> {
    this.gen.kill(reason);
    this.opts.onCrash?.({ reason });
    for (;;) {
      const now = performance.now();
      this.restartTimes = this.restartTimes.filter((t) => now - t < 60000);
      if (this.restartTimes.length >= this.opts.maxRestartsPerMinute) {
        this.broken = new WorkerError('engine worker', `it stopped ${this.restartTimes.length + 1} times within a minute (last: ${reason})`);
        throw this.broken;
      }
      this.restartTimes.push(now);
      this.restarts++;
      const g = this.spawn();
      this.gen = g;
      let reloaded = false, rerun = 0;
      g.busy++;   // reloading a big model keeps it busy: the heartbeat allows for that
      try {
        const last = this.lastLoad;
        if (last) {
          // (the backend may differ from before; the next run's handle tells, see run())
          await this.guard(g, g.remote.load(last.source, last.options, last.onProgress && proxy(last.onProgress)));
          reloaded = true;
        }
        for (const { request, pageId } of this.completed.values()) {
          const h = await this.guard(g, g.remote.run(request));
          this.alias.set(pageId, h.id);
          rerun++;
        }
        this.opts.onRecover?.({ reason, restarts: this.restarts, reloaded, rerun });
        return;
      } catch (e) {
        if (e instanceof Died) { reason = e.reason; continue; }
        // the worker is up but the model did not come back (offline and not cached, ...): say so, start empty
        this.lastLoad = null;
        this.completed.clear();
        this.alias.clear();
        this.opts.onRecover?.({ reason, restarts: this.restarts, reloaded, rerun, error: e as Error });
        return;
      } finally {
        g.busy--;
      }
    }
  }

  dispose(): void {
    this.broken = new WorkerError('engine client', 'it was disposed', 'Create a new client');
    this.gen.kill('disposed');
  }

  // ---- requests ----

  private id(what: string): string {
    return `${what}-c${++this.counter}-${Math.random().toString(36).slice(2, 6)}`;
  }

  /**
   * Runs a cancellable request: the signal cancels it in the worker and rejects at once (even
   * while the worker restarts); after a restart it is retried unless it was aborted.
   */
  private cancellable<T>(requestId: string, signal: AbortSignal | undefined, op: (r: Remote<Engine>) => Promise<T>): Promise<T> {
    if (!signal) return this.call(op);
    if (signal.aborted) return Promise.reject(new CancelledError(requestId, 'the caller aborted it'));
    const work = this.call(op, () => !signal.aborted);
    let onAbort = () => {};
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => {
        reject(new CancelledError(requestId, 'the caller aborted it'));
        if (!this.gen.dead && !this.recovering) void this.gen.remote.cancel(requestId).catch(() => undefined);
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
    // a long-lived signal must not collect a listener per call; after an abort the work's
    // CancelledError is nobody's business
    work.then(() => signal.removeEventListener('abort', onAbort), () => signal.removeEventListener('abort', onAbort));
    return Promise.race([work, aborted]);
  }

  private traceId(ref: TraceRef): string {
    const id = typeof ref === 'string' ? ref : ref.id;
    return this.alias.get(id) ?? id;
  }

  /** A slice named by the trace id the page used (not the rerun's). */
  private named<T extends { traceId: string }>(ref: TraceRef, slice: T): T {
    slice.traceId = typeof ref === 'string' ? ref : ref.id;
    return slice;
  }

  // ---- EngineApi ----

  capabilities(): Promise<Capabilities> {
    return this.call((r) => r.capabilities());
  }

  async load(source: ModelSource, options: LoadOptions = {}): Promise<ModelInfo> {
    const { onProgress, signal, ...rest } = options;
    const requestId = rest.requestId ?? this.id('load');
    const wire: LoadOptions = { ...rest, requestId };
    // the worker drops its model (and traces) as a load starts
    this.lastLoad = null;
    this.backend = null;
    this.completed.clear();
    this.alias.clear();
    const progress = onProgress && proxy(onProgress);
    const info = await this.cancellable(requestId, signal, (r) => r.load(source, wire, progress));
    this.lastLoad = { source, options: { backend: rest.backend, threads: rest.threads }, onProgress };
    this.backend = info.backend;
    return info;
  }

  info(): Promise<ModelInfo | null> {
    return this.call((r) => r.info());
  }

  tokenize(text: string, options?: TokenizeOptions): Promise<Tokenized> {
    return this.call((r) => r.tokenize(text, options));
  }

  decode(ids: readonly number[], options?: DecodeOptions): Promise<string> {
    return this.call((r) => r.decode(ids, options));
  }

  async run(request: RunRequest, options: CallOptions = {}): Promise<TraceHandle> {
    if (typeof request.capture === 'function') {
      throw new TypeError('run: a capture predicate cannot cross to the worker; give hook names or globs');
    }
    const req: RunRequest = { ...request, requestId: request.requestId ?? this.id('run'), slot: request.slot ?? 'default' };
    const h = await this.cancellable(req.requestId!, options.signal, (r) => r.run(req));
    // the worker replaced the slot's previous trace with this one
    const before = this.completed.get(req.slot!);
    if (before) this.alias.delete(before.pageId);
    this.completed.set(req.slot!, { request: req, pageId: h.id });
    if (this.backend !== null && h.backend !== this.backend) {
      // the session left WebGPU mid-way (a lost device), or a restarted worker chose another
      // backend: the page says so, with the reason
      this.backend = h.backend;
      const tell = this.opts.onBackendChange;
      if (tell) void this.info().then((i) => { if (i) tell(i); }, () => undefined);
    }
    return h;
  }

  cancel(requestId: string): Promise<boolean> {
    return this.call((r) => r.cancel(requestId), () => false).catch(() => false);
  }

  async attention(trace: TraceRef, query: AttentionQuery): Promise<AttentionSlice> {
    return this.named(trace, await this.call((r) => r.attention(this.traceId(trace), query)));
  }

  async activation(trace: TraceRef, name: string, options?: { positions?: Range }): Promise<ActivationSlice> {
    return this.named(trace, await this.call((r) => r.activation(this.traceId(trace), name, options)));
  }

  async topK(trace: TraceRef, query?: TopKQuery): Promise<TopKSlice> {
    return this.named(trace, await this.call((r) => r.topK(this.traceId(trace), query)));
  }

  async logitLens(trace: TraceRef, query?: LogitLensQuery, options: LensOptions = {}): Promise<LogitLensSlice> {
    const requestId = options.requestId ?? this.id('lens');
    const onProgress = options.onProgress && proxy(options.onProgress);
    return this.named(trace, await this.cancellable(requestId, options.signal, (r) => r.logitLens(this.traceId(trace), query, { requestId }, onProgress)));
  }

  async hookNorms(trace: TraceRef, names: string | readonly string[], options?: { positions?: Range }): Promise<HookNormsSlice> {
    return this.named(trace, await this.call((r) => r.hookNorms(this.traceId(trace), names, options)));
  }

  async attentionSummary(trace: TraceRef): Promise<AttentionSummarySlice> {
    return this.named(trace, await this.call((r) => r.attentionSummary(this.traceId(trace))));
  }

  async attentionPooled(trace: TraceRef, query: AttentionPoolQuery): Promise<AttentionPoolSlice> {
    return this.named(trace, await this.call((r) => r.attentionPooled(this.traceId(trace), query)));
  }

  async logits(trace: TraceRef, query?: LogitsQuery): Promise<LogitsSlice> {
    return this.named(trace, await this.call((r) => r.logits(this.traceId(trace), query)));
  }

  async pca(trace: TraceRef, query: PcaQuery): Promise<PcaSlice> {
    return this.named(trace, await this.call((r) => r.pca(this.traceId(trace), query)));
  }

  async attribution(trace: TraceRef, query?: AttributionQuery): Promise<AttributionSlice> {
    return this.named(trace, await this.call((r) => r.attribution(this.traceId(trace), query)));
  }

  pieces(ids: readonly number[]): Promise<string[]> {
    return this.call((r) => r.pieces(ids));
  }

  async release(trace: TraceRef): Promise<boolean> {
    const pageId = typeof trace === 'string' ? trace : trace.id;
    const id = this.traceId(trace);
    this.alias.delete(pageId);
    for (const [slot, c] of this.completed) if (c.pageId === pageId) this.completed.delete(slot);
    // a trace in a worker that died is gone anyway
    return this.call((r) => r.release(id), () => false).catch(() => false);
  }

  stats(): Promise<EngineStats> {
    return this.call((r) => r.stats());
  }

  ping(): Promise<number> {
    return this.call((r) => r.ping());
  }
}
