// Threads for the WebAssembly kernels: workers that share the weight memory (a shared
// WebAssembly.Memory, i.e. a SharedArrayBuffer) and split each big job with the calling thread.
// Node: worker_threads; browsers: Web Workers, which need cross-origin isolation to share memory
// (runtime.ts decides; without it the kernels run on one thread and say why).
//
// Protocol, through a control block of i32 words in the shared memory (layout: kinds.as.ts):
// the caller writes the job (op and arguments), sets `pending` to the number of workers taking
// part and `next` (the chunk counter of a matrix product) to 0, then publishes the job word
// (generation << 8 | slices) and wakes the workers. Worker i runs slice i + 1 if i + 1 < slices
// (kernels.as.ts `run`: matrix products hand their rows out in chunks, attention splits the heads
// by slice), then decrements `pending`; the caller runs slice 0 itself and waits until `pending`
// is 0. Workers that are not ready yet (starting up) are simply not counted in: a job uses the
// leading workers that are ready, and the result is the same for any number of slices.
//
// Waiting: workers spin briefly then Atomics.wait; the caller does the same, except on a
// browser's main thread, where Atomics.wait is not allowed and it only spins (the engine runs in
// a worker there; the main thread only in tests).

export interface KernelConstants {
  CTL_JOB: number; CTL_PENDING: number; CTL_NEXT: number; CTL_OP: number; CTL_ARGS: number; CTL_READY: number;
  CTL_MAX_WORKERS: number; CTL_WORDS: number;
}

interface WorkerLike {
  postMessage(m: unknown): void;
  terminate(): unknown;
}

const SPIN = 20000;

/** Whether this thread may block in Atomics.wait (not a browser's main thread). */
function canBlock(words: Int32Array): boolean {
  try {
    Atomics.wait(words, 0, Atomics.load(words, 0) + 1, 0);   // value differs: returns at once where allowed
    return true;
  } catch {
    return false;
  }
}

export class ThreadPool {
  private readonly workers: WorkerLike[] = [];
  private generation = 0;
  private readonly blocking: boolean;
  private closed = false;
  private readyCount = 0;
  private readonly whenReady: Promise<void>;
  /** Why a worker failed to start, if one did. */
  failure: string | null = null;

  /**
   * Starts `size` workers on `memory` (shared) with the compiled kernels. `words()` gives the
   * control block's current view; `run(s, n)` runs slice s of n on this thread.
   */
  constructor(
    readonly size: number,
    module: WebAssembly.Module,
    memory: WebAssembly.Memory,
    private readonly ctl: number,
    private readonly c: KernelConstants,
    private readonly words: () => Int32Array,
    private readonly runSlice: (s: number, n: number) => void,
  ) {
    const w = words();
    // a fresh start: no job, no worker ready (the job's op and arguments may already be written)
    Atomics.store(w, c.CTL_JOB, 0);
    Atomics.store(w, c.CTL_PENDING, 0);
    for (let i = 0; i < c.CTL_MAX_WORKERS; i++) Atomics.store(w, c.CTL_READY + i, 0);
    this.blocking = canBlock(w);
    this.whenReady = this.start(module, memory);
  }

  private async start(module: WebAssembly.Module, memory: WebAssembly.Memory): Promise<void> {
    let pending = this.size;
    let done!: () => void;
    const all = new Promise<void>((res) => { done = res; });
    const onMessage = (m: { ready?: number; error?: string }) => {
      if (m.error) this.failure ??= `a kernel thread failed to start: ${m.error}`;
      else this.readyCount++;
      if (--pending === 0) done();
    };
    const isNode = typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === 'string';
    for (let i = 0; i < this.size; i++) {
      const init = { module, memory, ctl: this.ctl, index: i };
      if (isNode) {
        const { Worker } = await import(/* @vite-ignore */ 'node:worker_threads');
        const code = `const { parentPort, workerData } = require('node:worker_threads');
          import(${JSON.stringify(new URL('./thread.mjs', import.meta.url).href)}).then((m) => m.serve(workerData, (x) => parentPort.postMessage(x)));`;
        const w = new Worker(code, { eval: true, workerData: init });
        // referenced until it reports (so that its message arrives), then not: idle kernel
        // threads never keep a Node process alive
        w.once('message', (m: { ready?: number; error?: string }) => { onMessage(m); w.unref(); });
        w.once('error', (e: Error) => { onMessage({ error: e.message }); w.unref(); });
        this.workers.push(w);
      } else {
        // written out in full so that Vite bundles thread.mjs as a worker of its own
        const w = new Worker(new URL('./thread.mjs', import.meta.url), { type: 'module', name: `glassbox-kernels-${i}` });
        w.onmessage = (e: MessageEvent) => onMessage(e.data as { ready?: number; error?: string });
        w.onerror = (e: ErrorEvent) => onMessage({ error: e.message || 'worker error' });
        w.postMessage(init);
        this.workers.push(w);
      }
    }
    if (this.size === 0) done();
    return all;
  }

  /** Resolves when every worker has started (or failed to: see `failure`). */
  ready(): Promise<void> {
    return this.whenReady;
  }

  /** Workers ready to take part, counted from worker 0 up to the first that is not. */
  available(): number {
    if (this.closed) return 0;
    const w = this.words();
    let n = 0;
    while (n < this.size && Atomics.load(w, this.c.CTL_READY + n) === 1) n++;
    return n;
  }

  /**
   * Runs the job already written in the control block on `slices` threads (this one and
   * slices − 1 workers, all of which must be available) and returns when every slice is done.
   */
  run(slices: number): void {
    const w = this.words();
    const c = this.c;
    Atomics.store(w, c.CTL_PENDING, slices - 1);
    Atomics.store(w, c.CTL_NEXT, 0);   // matrix products hand out their rows in chunks from 0 (kernels.as.ts run)
    this.generation = (this.generation + 1) & 0x7fffff;
    Atomics.store(w, c.CTL_JOB, (this.generation << 8) | slices);
    Atomics.notify(w, c.CTL_JOB);
    this.runSlice(0, slices);
    let spin = 0;
    for (let left = Atomics.load(w, c.CTL_PENDING); left !== 0; left = Atomics.load(w, c.CTL_PENDING)) {
      if (this.blocking && ++spin > SPIN) Atomics.wait(w, c.CTL_PENDING, left, 50);
    }
  }

  /** Ends the workers (a job of 0 slices makes each return; then they are terminated). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const w = this.words();
    this.generation = (this.generation + 1) & 0x7fffff;
    Atomics.store(w, this.c.CTL_JOB, this.generation << 8);
    Atomics.notify(w, this.c.CTL_JOB);
    for (const worker of this.workers) worker.terminate();
  }
}
