// One WebAssembly kernel runtime per weight arena: the module instantiated on the arena's memory,
// the scratch heap inside it, the job control block, the thread pool, and where each weight
// tensor lies. Sessions on the same weights share it (kernels.ts makes per-session kernel sets).
//
// Growth (the rule of src/engine/arena.ts): scratch is allocated when a session is created and
// when the KV cache grows (RunState, between forward passes); when that grows the memory, the
// runtime re-derives the `data` view of every weight tensor it knows (a non-shared memory's old
// buffer is detached; a shared one's views still work but `memory.buffer` is a new object).

import { WeightArena } from '../../src/engine/arena.ts';
import type { ModelWeights } from '../../src/engine/weights.ts';
import type { Tensor, TensorTypeName } from '../../src/formats/tensor.ts';
import { ArenaHeap } from './heap.ts';
import { ThreadPool, type KernelConstants } from './pool.ts';
import { loadWasmModule, wasmFailure, wasmModule, type WasmVariant } from './load.ts';

/** The functions and constants the module exports (kernels.as.ts). */
export interface KernelExports {
  run(ctl: number, slice: number, slices: number): void;
  quantizeQ8_0(x: number, len: number, xq: number, xd: number, xs: number): void;
  quantizeQ8_K(x: number, len: number, xq: number, xd: number, xbs: number): void;
  roundToF16(x: number, out: number, len: number): void;
  roundToBf16(x: number, out: number, len: number): void;
  siluMul(out: number, gate: number, up: number, n: number): void;
  rmsnorm(out: number, x: number, weight: number, n: number, d: number, eps: number): void;
  permuteQ4(xq: number, len: number, xp: number, xsum: number): void;
  f16Table(tbl: number): void;
  interleaveQ8(xq: number, xd: number, xs: number, n: number, k: number, xi: number, kind: number): void;
  interleaveQ8K(xq: number, n: number, k: number, xi: number): void;
  narrowQ8K(xq: number, len: number, xn: number): void;
}

export interface Constants extends KernelConstants {
  OP_MATMUL_Q8: number; OP_MATMUL_K: number; OP_MATMUL_F32: number; OP_ATTENTION: number; OP_LENS_ROWS: number;
  /** 1 when the module is a relaxed-SIMD build (kinds.as.ts RELAXED). */
  RELAXED: number;
  /** The module's number for each tensor type. */
  kind: Record<TensorTypeName, number>;
}

const TYPE_NAMES: TensorTypeName[] = ['F32', 'F16', 'BF16', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q8_0', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K', 'Q8_K', 'Q8_G64'];

const runtimes = new WeakMap<WeightArena, WasmRuntime>();
/** Arenas made for weights that were not loaded into one (test fixtures): the tensors are copied in. */
const copies = new WeakMap<ModelWeights, WeightArena>();

/** Closes a runtime's threads when its arena is collected. */
const reaper = new FinalizationRegistry<ThreadPool>((pool) => pool.close());

export class WasmRuntime {
  readonly memory: WebAssembly.Memory;
  readonly exports: KernelExports;
  readonly c: Constants;
  readonly heap: ArenaHeap;
  private f16At = 0;
  /** Byte offset of the job control block (a new one with each new pool: old workers may still read the old). */
  ctl: number;
  private pool: ThreadPool | null = null;
  private readonly tensors = new Map<Tensor, { offset: number; bytes: number }>();
  private ctlView: Int32Array;

  private constructor(readonly arena: WeightArena, private readonly module: WebAssembly.Module, inst: WebAssembly.Instance) {
    this.memory = arena.memory;
    const x = inst.exports as unknown as KernelExports & Record<string, WebAssembly.Global>;
    this.exports = x;
    const g = (name: string) => x[name]!.value as number;
    this.c = {
      CTL_JOB: g('CTL_JOB'), CTL_PENDING: g('CTL_PENDING'), CTL_NEXT: g('CTL_NEXT'), CTL_OP: g('CTL_OP'), CTL_ARGS: g('CTL_ARGS'),
      CTL_READY: g('CTL_READY'), CTL_MAX_WORKERS: g('CTL_MAX_WORKERS'), CTL_WORDS: g('CTL_WORDS'),
      OP_MATMUL_Q8: g('OP_MATMUL_Q8'), OP_MATMUL_K: g('OP_MATMUL_K'), OP_MATMUL_F32: g('OP_MATMUL_F32'), OP_ATTENTION: g('OP_ATTENTION'), OP_LENS_ROWS: g('OP_LENS_ROWS'),
      RELAXED: g('RELAXED'),
      kind: Object.fromEntries(TYPE_NAMES.map((t) => [t, g(`K_${t}`)])) as Record<TensorTypeName, number>,
    };
    this.heap = new ArenaHeap(arena);
    this.ctl = this.heap.alloc(this.c.CTL_WORDS * 4);
    this.ctlView = new Int32Array(this.memory.buffer, this.ctl, this.c.CTL_WORDS);
    arena.onGrow(() => this.rebind());
  }

  static variant(arena: WeightArena): WasmVariant {
    return arena.shared ? 'shared' : 'plain';
  }

  /** The runtime of `arena`, made now if the module is loaded (in Node it loads synchronously); else null. */
  static of(arena: WeightArena): WasmRuntime | null {
    let rt = runtimes.get(arena);
    if (rt) return rt;
    const mod = wasmModule(WasmRuntime.variant(arena));
    if (!mod) return null;
    rt = new WasmRuntime(arena, mod, new WebAssembly.Instance(mod, { env: { memory: arena.memory } }));
    runtimes.set(arena, rt);
    return rt;
  }

  /** Why `of(arena)` gives null. */
  static failure(arena: WeightArena): string | null {
    return wasmFailure(WasmRuntime.variant(arena));
  }

  /**
   * Loads the module and makes the runtime asynchronously (a browser's main thread may not
   * compile or instantiate synchronously), so that `of` works afterwards; false if it cannot.
   */
  static async preload(arena: WeightArena): Promise<boolean> {
    if (runtimes.has(arena)) return true;
    const mod = await loadWasmModule(WasmRuntime.variant(arena));
    if (!mod) return false;
    const inst = await WebAssembly.instantiate(mod, { env: { memory: arena.memory } });
    if (!runtimes.has(arena)) runtimes.set(arena, new WasmRuntime(arena, mod, inst));
    return true;
  }

  /**
   * The arena that holds `weights` (the one they were loaded into), or a new one into which they
   * are copied (weights built in memory, as the tests do), the same one for the same weights.
   */
  static arenaFor(weights: ModelWeights): WeightArena {
    const own = WeightArena.of(weights.embed.data.buffer);
    if (own) return own;
    let arena = copies.get(weights);
    if (!arena) {
      arena = new WeightArena(0);
      copies.set(weights, arena);
    }
    return arena;
  }

  /** Where every matrix of `weights` lies in this memory (copying in those that are not in it yet). */
  registerWeights(weights: ModelWeights): void {
    const all = [weights.embed, weights.unembed, ...weights.blocks.flatMap((b) => [b.wq, b.wk, b.wv, b.wo, b.wGate, b.wUp, b.wDown])];
    for (const t of all) this.offsetOf(t);
  }

  /** Byte offset of a tensor's data in this memory; a tensor from elsewhere is copied in once. */
  offsetOf(t: Tensor): number {
    const known = this.tensors.get(t);
    if (known) return known.offset;
    let offset: number;
    if (this.holds(t.data)) {
      offset = t.data.byteOffset;
    } else {
      const bytes = t.data.byteLength;
      const src = t.data;
      offset = this.heap.alloc(bytes);   // may grow the memory: `src` is not in it, so it stays valid
      new Uint8Array(this.memory.buffer, offset, bytes).set(src);
      // the tensor now reads its copy, so that growth re-derives it like every other
      t.data = new Uint8Array(this.memory.buffer, offset, bytes);
    }
    this.tensors.set(t, { offset, bytes: t.data.byteLength });
    return offset;
  }

  /**
   * Byte offset of the f16 → f32 table (65536 f32, 256 KB) the 32-block kernels read their block
   * scales from; made on the first call (which may grow the memory: call it where scratch is
   * allocated, when a kernel set is made).
   */
  f16Table(): number {
    if (!this.f16At) {
      this.f16At = this.heap.alloc(65536 * 4);
      this.exports.f16Table(this.f16At);
    }
    return this.f16At;
  }

  /** Whether a view lies in this memory and is live (not a detached view of a grown plain memory). */
  holds(a: ArrayBufferView): boolean {
    const b = a.buffer;
    return b === this.memory.buffer || (this.arena.shared && WeightArena.of(b) === this.arena);
  }

  /** The control block's words (re-derived if the memory grew). */
  words(): Int32Array {
    if (this.ctlView.buffer !== this.memory.buffer || this.ctlView.byteOffset !== this.ctl) this.ctlView = new Int32Array(this.memory.buffer, this.ctl, this.c.CTL_WORDS);
    return this.ctlView;
  }

  /** Up to `want` − 1 worker threads (only on a shared memory); started on first use, in the background. */
  threads(want: number): ThreadPool | null {
    if (!this.arena.shared || want <= 1) return null;
    const size = Math.min(want - 1, this.c.CTL_MAX_WORKERS);
    if (this.pool && this.pool.size >= size) return this.pool;
    if (this.pool) {
      // a bigger pool replaces this one; its workers end, but one may still be reading the old
      // control block, so the new pool gets a new one (the old 256 bytes are not reused)
      this.pool.close();
      reaper.unregister(this);
      this.ctl = this.heap.alloc(this.c.CTL_WORDS * 4);
    }
    const ctl = this.ctl;
    this.pool = new ThreadPool(size, this.module, this.memory, ctl, this.c, () => this.words(),
      (s, n) => this.exports.run(ctl, s, n));
    reaper.register(this.arena, this.pool, this);
    return this.pool;
  }

  /**
   * Ends the worker threads (a session being disposed: they hold the shared memory, so the weights
   * cannot be collected while they live). A later product starts a new pool.
   */
  closeThreads(): void {
    if (!this.pool) return;
    this.pool.close();
    reaper.unregister(this);
    this.pool = null;
    this.ctl = this.heap.alloc(this.c.CTL_WORDS * 4);   // a worker may still read the old block
  }

  /** Runs the job written in the control block on up to `slices` threads (fewer while workers start); returns how many. */
  run(slices: number, pool: ThreadPool | null): number {
    const n = pool ? Math.min(slices, 1 + pool.available()) : 1;
    if (n <= 1) this.exports.run(this.ctl, 0, 1);
    else pool!.run(n);
    return n;
  }

  private rebind(): void {
    const buf = this.memory.buffer;
    for (const [t, { offset, bytes }] of this.tensors) {
      if (t.data.buffer !== buf) t.data = new Uint8Array(buf, offset, bytes);
    }
  }
}
