// Tensors as glassbox keeps them: in their stored type, row-major, the last dimension contiguous
// (the reverse of GGUF's ne[] order). Quantized types are blocked along the last dimension, so a
// row of a matrix is a whole number of blocks and can be dequantized or dotted on its own.

/** Every tensor type glassbox reads. Names and ids follow ggml, which defines most of them. */
export type TensorTypeName =
  | 'F32' | 'F16' | 'BF16'
  | 'Q4_0' | 'Q4_1' | 'Q5_0' | 'Q5_1' | 'Q8_0'
  | 'Q2_K' | 'Q3_K' | 'Q4_K' | 'Q5_K' | 'Q6_K' | 'Q8_K'
  /** llama2.c version-2 checkpoints: int8 values with one f32 scale per group of 64, re-laid out
   *  at load time as blocks of [f32 scale][64 × int8] (lossless). */
  | 'Q8_G64';

/** How one tensor type is stored and computed with. Implemented in src/formats/quant/. */
export interface TensorType {
  readonly name: TensorTypeName;
  /** ggml's type id, as written in GGUF tensor infos; undefined for glassbox-only types. */
  readonly ggmlId: number | undefined;
  /** Elements per block (1 for F32/F16/BF16). A row's length must be a multiple of it. */
  readonly blockSize: number;
  /** Bytes per block. */
  readonly blockBytes: number;
  /** Dequantizes `n` elements (a multiple of blockSize) starting at byte `offset` of `src`. */
  dequantize(src: Uint8Array, offset: number, out: Float32Array, outOffset: number, n: number): void;
  /** Dot product of `n` stored elements at byte `offset` with x[xOffset .. xOffset+n), accumulated in f32/f64. */
  dot(src: Uint8Array, offset: number, x: Float32Array, xOffset: number, n: number): number;
  /** Reference quantizer (the algorithm llama.cpp uses to make files of this type): writes
   *  n/blockSize blocks at byte `offset` of `out`. Used by `glassbox synth` and the tests. */
  quantize(x: Float32Array, xOffset: number, out: Uint8Array, offset: number, n: number): void;
}

/** Bytes taken by `n` elements (n a multiple of the block size). */
export function byteSize(t: TensorType, n: number): number {
  return (n / t.blockSize) * t.blockBytes;
}

/** Where a tensor's bytes are in a file, before loading. */
export interface TensorInfo {
  /** Our name (see src/formats/names.ts). */
  name: string;
  /** Its name inside the file, for error messages and `glassbox inspect`. */
  fileName: string;
  type: TensorTypeName;
  shape: number[];           // row-major, last dim contiguous
  /** Which file of the model holds it (index into ModelFile.sources). */
  source: number;
  offset: number;            // absolute byte offset in that file
  byteLength: number;        // bytes to read from the file (with `layout`, not the loaded size)
  /** Set when the file's bytes are not yet in `type`'s layout and the loader must convert them
   *  (absent: the bytes are `type` exactly as stored). 'llama2c-q8': llama2.c version-2 int8
   *  values followed by f32 scales (one per `groupSize` values) at `scalesOffset` bytes after
   *  `offset`; relayoutLlama2cQ8 (src/formats/llama2c.ts) turns them into `type` (Q8_G64, or F32
   *  when rows are not whole groups), of byteSize(type, numElements(shape)) bytes. */
  layout?: StoredLayout;
}

/** How a tensor's bytes lie in the file when the loader must convert them (see TensorInfo.layout). */
export type StoredLayout = { kind: 'llama2c-q8'; groupSize: number; scalesOffset: number };

/** A loaded tensor: its bytes, in their stored type, viewed inside the weight arena. */
export interface Tensor {
  name: string;
  type: TensorTypeName;
  shape: number[];
  data: Uint8Array;
}

export function numElements(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
