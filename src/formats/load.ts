// Streams a model's weights from its files into the weight arena, in their stored type.
//
// Every tensor is read in pieces of at most 4 MiB straight into its place in the arena (in place
// where the source can, ByteSource.readInto: a file in Node allocates nothing per piece): nothing is
// converted to f32 and no file is ever held whole. Models whose Q/K rows are in the Hugging Face
// 'half-split' RoPE layout have those rows reordered on the way in (rows are whole blocks in every
// type, so the permutation works on bytes), so that everything after the loader sees 'adjacent'.
// Tensors with a stored `layout` (llama2.c v2 int8 data with separate scales) are converted group by
// group as they stream in (llama2c.ts, relayoutLlama2cQ8Groups).

import type { WeightArena } from '../engine/arena.ts';
import { ModelFormatError } from '../engine/errors.ts';
import { loadedByteLength, relayoutLlama2cQ8Groups } from './llama2c.ts';
import type { ModelFile } from './model.ts';
import { getTensorType } from './quant/index.ts';
import { byteSize, numElements, type Tensor, type TensorInfo } from './tensor.ts';
import type { ByteSource } from './source.ts';

/** Loaded weights under our names (names.ts). */
export type Weights = Map<string, Tensor>;

export interface LoadOptions {
  /** Called after each piece is read, and once at the end with loaded === total. */
  onProgress?(loadedBytes: number, totalBytes: number): void;
  signal?: AbortSignal;
  /** Largest read, in bytes (default 4 MiB; whole rows or groups are read at least). For tests. */
  pieceBytes?: number;
}

/** Alignment of every tensor in the arena: one cache line, and what SIMD loads want. */
const TENSOR_ALIGN = 64;
const PIECE = 4 << 20;

/** The arena bytes loadWeights needs for this model (tensors plus their alignment padding). */
export function weightBytes(model: ModelFile): number {
  let n = 0;
  for (const t of model.tensors) n = Math.ceil(n / TENSOR_ALIGN) * TENSOR_ALIGN + loadedByteLength(t);
  return n;
}

/**
 * Where row `i` of a half-split Q/K matrix goes in the adjacent layout. Within each head of d rows,
 * Hugging Face keeps the first halves of the rotated pairs in rows 0..d/2-1 and the second halves in
 * rows d/2..d-1; llama.cpp (convert_hf_to_gguf.py's permute: reshape to (heads, 2, d/2, ...) then
 * swap axes 1 and 2) interleaves them: adjacent row 2j+c = half-split row c·d/2 + j.
 */
export function halfSplitToAdjacentRow(i: number, dHead: number): number {
  const half = dHead / 2;
  const head = Math.floor(i / dHead);
  const within = i - head * dHead;
  const c = within >= half ? 1 : 0;
  const j = within - c * half;
  return head * dHead + 2 * j + c;
}

/** Checks a tensor's sizes before anything is allocated for it; returns its loaded size. */
function checkInfo(model: ModelFile, t: TensorInfo): number {
  const src = model.sources[t.source];
  if (!src) throw new ModelFormatError(t.fileName, `refers to file ${t.source}, which was not given`);
  const where = `${src.name}: tensor ${t.fileName}`;
  const tt = getTensorType(t.type);
  const n = numElements(t.shape);
  const rowLen = t.shape[t.shape.length - 1] ?? 1;
  const loaded = byteSize(tt, n);
  if (rowLen % tt.blockSize !== 0) throw new ModelFormatError(where, `rows of ${rowLen} are not whole ${t.type} blocks of ${tt.blockSize}`);
  if (t.layout) {
    const { groupSize, scalesOffset } = t.layout;
    if (!Number.isInteger(n / groupSize) || scalesOffset !== n || t.byteLength !== n + (n / groupSize) * 4 ||
        loadedByteLength(t) !== loaded || model.ropeLayout !== 'adjacent') {
      throw new ModelFormatError(where, `llama2.c int8 data of ${t.byteLength} bytes does not fit ${t.type} [${t.shape}] in groups of ${groupSize}`);
    }
  } else if (loaded !== t.byteLength) {
    throw new ModelFormatError(where, `holds ${t.byteLength} bytes but ${t.type} [${t.shape}] takes ${loaded}`);
  }
  if (t.offset + t.byteLength > src.size) {
    throw new ModelFormatError(where, `lies at bytes ${t.offset}..${t.offset + t.byteLength} but the file is ${src.size} bytes long`);
  }
  return loaded;
}

/**
 * Loads every tensor of `model` into `arena` (construct it with weightBytes(model) bytes so that it
 * never grows). The returned tensors view the arena's memory: if the arena grows later and its
 * memory is not shared, the views detach and must be re-derived from it.
 */
export async function loadWeights(model: ModelFile, arena: WeightArena, opts: LoadOptions = {}): Promise<Weights> {
  const { onProgress, signal } = opts;
  signal?.throwIfAborted();
  let total = 0; // bytes to read from the files
  const sizes = model.tensors.map((t) => {
    total += t.byteLength;
    return checkInfo(model, t);
  });
  // Allocate everything first: growth replaces a non-shared buffer, so views are taken afterwards.
  const offsets = sizes.map((n) => arena.alloc(n, TENSOR_ALIGN));
  const permute = model.ropeLayout === 'half-split';
  const dHead = model.config.dHead;

  const weights: Weights = new Map();
  let loaded = 0;
  for (const [k, t] of model.tensors.entries()) {
    const src = model.sources[t.source]!;
    const dest = arena.bytes(offsets[k]!, sizes[k]!);
    if (t.layout) {
      loaded = await loadLlama2cQ8(t, src, dest, loaded, total, opts);
      weights.set(t.name, { name: t.name, type: t.type, shape: [...t.shape], data: dest });
      continue;
    }
    const qk = permute && /\.attn\.w[qk]$/.test(t.name);
    const rows = t.shape.length > 1 ? t.shape[0]! : 1;
    const rowBytes = t.byteLength / rows;
    if (qk && rows % dHead !== 0) {
      throw new ModelFormatError(`${src.name}: tensor ${t.fileName}`, `has ${rows} rows, not a whole number of heads of ${dHead}`);
    }
    // Whole rows per piece, so that a permuted row never straddles two reads.
    const piece = Math.max(1, Math.floor((opts.pieceBytes ?? src.pieceBytes ?? PIECE) / rowBytes)) * rowBytes;
    for (let at = 0; at < t.byteLength; at += piece) {
      signal?.throwIfAborted();
      const n = Math.min(piece, t.byteLength - at);
      if (!qk && src.readInto) await src.readInto(t.offset + at, dest.subarray(at, at + n));
      else if (!qk) dest.set(await src.read(t.offset + at, n), at);
      else {
        const bytes = await src.read(t.offset + at, n);
        for (let r = 0; r < n / rowBytes; r++) {
          const row = at / rowBytes + r;
          dest.set(bytes.subarray(r * rowBytes, (r + 1) * rowBytes), halfSplitToAdjacentRow(row, dHead) * rowBytes);
        }
      }
      loaded += n;
      onProgress?.(loaded, total);
    }
    weights.set(t.name, { name: t.name, type: t.type, shape: [...t.shape], data: dest });
  }
  signal?.throwIfAborted();
  onProgress?.(total, total);
  return weights;
}

/** Streams a llama2.c v2 tensor (int8 values, then one f32 scale per group) into `dest`, a whole
 *  number of groups per piece; returns the updated count of bytes read. */
async function loadLlama2cQ8(t: TensorInfo, src: ByteSource, dest: Uint8Array, loaded: number, total: number, opts: LoadOptions): Promise<number> {
  const { groupSize } = t.layout!;
  const groups = numElements(t.shape) / groupSize;
  const outPerGroup = dest.length / groups;
  const per = Math.max(1, Math.floor((opts.pieceBytes ?? PIECE) / groupSize));
  for (let g0 = 0; g0 < groups; g0 += per) {
    opts.signal?.throwIfAborted();
    const k = Math.min(per, groups - g0);
    const values = await src.read(t.offset + g0 * groupSize, k * groupSize);
    const scales = await src.read(t.offset + t.layout!.scalesOffset + 4 * g0, 4 * k);
    relayoutLlama2cQ8Groups(values, scales, groupSize, t.type as 'Q8_G64' | 'F32',
      dest.subarray(g0 * outPerGroup, (g0 + k) * outPerGroup));
    loaded += k * groupSize + 4 * k;
    opts.onProgress?.(loaded, total);
  }
  return loaded;
}
