// The weight arena: one WebAssembly.Memory that holds every weight tensor in its stored type, so that
// WebAssembly kernels (the speed issue) read weights in place, and worker threads share them when the
// page is cross-origin isolated (the memory is then a SharedArrayBuffer).
//
// Allocation is a bump pointer. The memory grows in 64 KiB pages; a non-shared memory's buffer is
// replaced when it grows, so views are re-derived from `bytes()` rather than kept across growth.
// The rule for whoever allocates after the weights (the WebAssembly kernels' scratch, the KV
// cache: kernels/wasm/runtime.ts): grow only between forward passes, never while a kernel or the
// forward pass holds views, and re-derive every view after growth (`onGrow` says when). A shared
// memory's old views stay valid, but `memory.buffer` is then a new SharedArrayBuffer object.

import { UnsupportedError } from './errors.ts';

const PAGE = 65536;
/** wasm32 can address at most 4 GiB (65536 pages). */
const MAX_PAGES = 65536;

export interface ArenaOptions {
  /** Use a shared memory (threads). Defaults to true when SharedArrayBuffer is usable. */
  shared?: boolean;
}

function canShare(): boolean {
  if (typeof SharedArrayBuffer === 'undefined') return false;
  // In browsers SharedArrayBuffer exists but needs cross-origin isolation to be postMessage'd.
  const g = globalThis as { crossOriginIsolated?: boolean; process?: unknown };
  return g.process !== undefined || g.crossOriginIsolated === true;
}

/** The arena of each memory buffer handed out (views find their arena: WeightArena.of). */
const owners = new WeakMap<ArrayBufferLike, WeightArena>();

export class WeightArena {
  readonly memory: WebAssembly.Memory;
  readonly shared: boolean;
  private top = 0;
  private readonly growListeners: (() => void)[] = [];

  /** The arena whose memory `buffer` is (a view's `.buffer`), if any. */
  static of(buffer: ArrayBufferLike): WeightArena | undefined {
    return owners.get(buffer);
  }

  /** Reserves room for `bytes` up front (the loader knows the total before it reads anything). */
  constructor(bytes: number, options: ArenaOptions = {}) {
    this.shared = options.shared ?? canShare();
    const pages = Math.max(1, Math.ceil(bytes / PAGE));
    if (pages > MAX_PAGES) {
      throw new UnsupportedError('weights', `the model needs ${(bytes / 2 ** 30).toFixed(2)} GiB of weight memory; ` +
        'the WebAssembly engine can address at most 4 GiB', 'Choose a smaller or more strongly quantized model');
    }
    this.memory = this.shared
      ? new WebAssembly.Memory({ initial: pages, maximum: MAX_PAGES, shared: true })
      : new WebAssembly.Memory({ initial: pages, maximum: MAX_PAGES });
    owners.set(this.memory.buffer, this);
  }

  /** Calls `listener` after each growth of the memory (re-derive views then). */
  onGrow(listener: () => void): void {
    this.growListeners.push(listener);
  }

  /** Bytes in use. */
  get used(): number { return this.top; }
  get capacity(): number { return this.memory.buffer.byteLength; }

  /** Allocates `n` bytes aligned to `align` and returns their offset; grows the memory if needed. */
  alloc(n: number, align = 64): number {
    const start = Math.ceil(this.top / align) * align;
    const end = start + n;
    if (end > this.capacity) {
      const more = Math.ceil((end - this.capacity) / PAGE);
      if (this.capacity / PAGE + more > MAX_PAGES) {
        throw new UnsupportedError('weights', 'out of WebAssembly memory (4 GiB)', 'Choose a smaller model');
      }
      this.memory.grow(more);
      owners.set(this.memory.buffer, this);   // a shared memory's old buffers stay mapped: their views still work
      for (const f of this.growListeners) f();
    }
    this.top = end;
    return start;
  }

  /** A fresh view of `n` bytes at `offset` (re-derive after any growth). */
  bytes(offset: number, n: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, offset, n);
  }
}
