// Scratch memory inside the weight arena: the WebAssembly kernels can only read and write their
// own memory, which is the arena, so activations, the KV cache and the kernels' buffers live there
// too. The arena is a bump allocator; this heap adds reuse: freed blocks go on a free list
// (first fit, neighbours merged) and new room is taken from the arena only when no block fits.
// Taking room may grow the memory (see the rule in src/engine/arena.ts).

import type { WeightArena } from '../../src/engine/arena.ts';

const ALIGN = 64;

interface Block { offset: number; size: number }

export class ArenaHeap {
  private readonly free: Block[] = [];   // sorted by offset, never adjacent (merged)
  /** Bytes handed out and not freed (for tests and reports). */
  inUse = 0;

  constructor(private readonly arena: WeightArena) {}

  /** The offset of `bytes` (rounded up to 64) bytes, 64-aligned. */
  alloc(bytes: number): number {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    this.inUse += size;
    for (let i = 0; i < this.free.length; i++) {
      const b = this.free[i]!;
      if (b.size < size) continue;
      const offset = b.offset;
      if (b.size === size) this.free.splice(i, 1);
      else { b.offset += size; b.size -= size; }
      return offset;
    }
    return this.arena.alloc(size, ALIGN);
  }

  /** Gives back a block that alloc(bytes) returned. */
  release(offset: number, bytes: number): void {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    this.inUse -= size;
    let i = 0;
    while (i < this.free.length && this.free[i]!.offset < offset) i++;
    this.free.splice(i, 0, { offset, size });
    // merge with the next, then the previous block
    const b = this.free[i]!;
    const next = this.free[i + 1];
    if (next && b.offset + b.size === next.offset) { b.size += next.size; this.free.splice(i + 1, 1); }
    const prev = this.free[i - 1];
    if (prev && prev.offset + prev.size === b.offset) { prev.size += b.size; this.free.splice(i, 1); }
  }
}
