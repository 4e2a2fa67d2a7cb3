// How a weight matrix's bytes lie on the GPU. Most matrices keep their stored type's blocks exactly
// as the file has them; Q4_0 and Q8_0 matrices whose rows are whole groups of 256 elements are
// repacked while they are uploaded, into a layout that only the GPU sees (the CPU never does):
//
//   stored  [d0 q0][d1 q1] ... [d7 q7]             eight blocks of 18 (Q4_0) or 34 (Q8_0) bytes
//   X8      [q0 q1 ... q7][d0 d1 ... d7]           the same bytes: eight quant runs, then eight f16
//
// per group of 8 blocks (256 elements): 144 bytes for Q4_0 (8 × 16 + 16), 272 for Q8_0
// (8 × 32 + 16), both multiples of 16. A row keeps its byte count, so with rows of whole groups
// every group, and every quant run in it, starts 16-byte aligned: the decoders
// (kernels/matmul/types/q4_0_x8.wgsl, q8_0_x8.wgsl) read a run as whole vec4u words, one 128-bit
// load each, where the stored layout's runs start at any even byte and are read as five words
// funnel-shifted together (kernels/wgsl/bytes.wgsl). The kernels see a repacked matrix as one more
// block type: 256 elements in 144 / 272 bytes, eight 32-element units per block.

import type { TensorTypeName } from '../../formats/tensor.ts';
import { getTensorType } from '../../formats/quant/index.ts';

/** A repacked layout's name (a GPU-only block type). */
export type RepackedLayout = 'Q4_0_X8' | 'Q8_0_X8';

/** The block layout the kernels decode: a stored type as it is, or a repacking of one. */
export type GpuLayout = TensorTypeName | RepackedLayout;

/** Stored blocks per repacked block. */
const GROUP = 8;

/** The stored type each repacked layout comes from: blocks of [d f16][quants], 32 elements each. */
const REPACKED: Record<RepackedLayout, TensorTypeName> = { Q4_0_X8: 'Q4_0', Q8_0_X8: 'Q8_0' };

/** Elements and quant bytes of one stored block of the type `layout` repacks (the f16 scale aside). */
function storedBlock(layout: RepackedLayout): { elems: number; quantBytes: number } {
  const t = getTensorType(REPACKED[layout]);
  return { elems: t.blockSize, quantBytes: t.blockBytes - 2 };
}

/** Whether `layout` is a repacking (else a stored type, decoded as the file has it). */
export function isRepacked(layout: GpuLayout): layout is RepackedLayout {
  return layout in REPACKED;
}

/** Elements and bytes of one block of `layout` (for a stored type, its TensorType's). */
export function layoutBlock(layout: GpuLayout): { blockSize: number; blockBytes: number } {
  if (!isRepacked(layout)) {
    const t = getTensorType(layout);
    return { blockSize: t.blockSize, blockBytes: t.blockBytes };
  }
  const b = storedBlock(layout);
  return { blockSize: GROUP * b.elems, blockBytes: GROUP * (b.quantBytes + 2) };
}

/**
 * The layout a matrix of `type` with rows of `cols` elements is uploaded in: the repacking of its
 * type when there is one, `repack` is on and its rows are whole groups of 256 elements, else the
 * stored type.
 */
export function layoutFor(type: TensorTypeName, cols: number, repack: boolean): GpuLayout {
  if (!repack) return type;
  const layout = (Object.keys(REPACKED) as RepackedLayout[]).find((l) => REPACKED[l] === type);
  return layout && cols % layoutBlock(layout).blockSize === 0 ? layout : type;
}

/**
 * Writes `src`, whole rows of the stored type that `layout` repacks, into `dst` (as many bytes) in
 * `layout`. Every group of 8 blocks is rearranged inside its own byte range and rows are whole
 * groups, so a run of rows is simply a run of groups. Works in halfwords (blocks and their fields
 * start at even bytes); `src` at an odd byte offset is copied once (at most one part) first.
 */
export function repackInto(layout: RepackedLayout, src: Uint8Array, dst: Uint8Array): void {
  const { blockBytes } = layoutBlock(layout);
  if (dst.byteLength !== src.byteLength) throw new Error(`repack ${layout}: ${src.byteLength} bytes into ${dst.byteLength}`);
  if (src.byteLength % blockBytes !== 0) throw new Error(`repack ${layout}: ${src.byteLength} bytes are not whole groups of ${blockBytes}`);
  if (dst.byteOffset % 2 !== 0) throw new Error(`repack ${layout}: the destination starts at an odd byte`);
  const aligned = src.byteOffset % 2 === 0 ? src : src.slice();
  const s = new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2);
  const d = new Uint16Array(dst.buffer, dst.byteOffset, dst.byteLength / 2);
  const q = storedBlock(layout).quantBytes / 2; // halfwords of one block's quants
  const h = q + 1;                              // halfwords of one stored block (scale first)
  const groupHalves = blockBytes / 2;
  for (let o = 0; o < s.length; o += groupHalves) {
    for (let j = 0; j < GROUP; j++) {
      const from = o + j * h;
      d[o + GROUP * q + j] = s[from]!;          // scale j after the eight quant runs
      const to = o + j * q;
      for (let i = 0; i < q; i++) d[to + i] = s[from + 1 + i]!;
    }
  }
}
