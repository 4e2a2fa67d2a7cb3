// The per-layout WGSL decoders, shared by the matrix product, the fused decode products and the
// embedding lookup: which files make up a decoder, and the override constants that describe its
// block (taken from the TypeScript TensorType, or layout.ts for the GPU-only repacked layouts, so
// block sizes are written in one place only). A layout is a stored tensor type, decoded from its
// blocks as the file has them, or a repacking of one (src/engine/gpu/layout.ts), read with
// aligned 16-byte loads; a GpuTensor names its own (`layout`).

import { getTensorType } from '../../src/formats/quant/index.ts';
import { loadShader } from '../../src/engine/gpu/shader.ts';
import { isRepacked, layoutBlock, type GpuLayout } from '../../src/engine/gpu/layout.ts';

const DECODER_FILES: Record<GpuLayout, URL> = {
  F32: new URL('./types/f32.wgsl', import.meta.url),
  F16: new URL('./types/f16.wgsl', import.meta.url),
  BF16: new URL('./types/bf16.wgsl', import.meta.url),
  Q4_0: new URL('./types/q4_0.wgsl', import.meta.url),
  Q4_1: new URL('./types/q4_1.wgsl', import.meta.url),
  Q5_0: new URL('./types/q5_0.wgsl', import.meta.url),
  Q5_1: new URL('./types/q5_1.wgsl', import.meta.url),
  Q8_0: new URL('./types/q8_0.wgsl', import.meta.url),
  Q2_K: new URL('./types/q2_k.wgsl', import.meta.url),
  Q3_K: new URL('./types/q3_k.wgsl', import.meta.url),
  Q4_K: new URL('./types/q4_k.wgsl', import.meta.url),
  Q5_K: new URL('./types/q5_k.wgsl', import.meta.url),
  Q6_K: new URL('./types/q6_k.wgsl', import.meta.url),
  Q8_K: new URL('./types/q8_k.wgsl', import.meta.url),
  Q8_G64: new URL('./types/q8_g64.wgsl', import.meta.url),
  Q4_0_X8: new URL('./types/q4_0_x8.wgsl', import.meta.url),
  Q8_0_X8: new URL('./types/q8_0_x8.wgsl', import.meta.url),
};
const WORDS = new URL('../wgsl/words.wgsl', import.meta.url);
// how `w` is read: u32 words at any byte offset, or (repacked layouts) aligned vec4u
const BYTES = new URL('../wgsl/bytes.wgsl', import.meta.url);
const BYTES16 = new URL('../wgsl/bytes16.wgsl', import.meta.url);
const COMMON = new URL('./types/common.wgsl', import.meta.url);

/** WGSL source of `kernels` (joined in order) preceded by the byte helpers (which also define the
 *  element type `WeightWord` of the kernel's `w` binding) and the decoder of `layout` (dq_unit). */
export function decoderShader(layout: GpuLayout, ...kernels: URL[]): Promise<string> {
  if (!isRepacked(layout)) getTensorType(layout); // throws UnsupportedError naming the known types
  return loadShader(WORDS, isRepacked(layout) ? BYTES16 : BYTES, COMMON, DECODER_FILES[layout], ...kernels);
}

/** Override constants describing `layout`'s block, for every kernel that includes a decoder. */
export function blockConstants(layout: GpuLayout): Record<string, number> {
  const t = layoutBlock(layout);
  // dq_unit reads 32-element units: a block is a whole number of them, or (blockSize 1) a unit is
  // 32 blocks
  if (t.blockSize !== 1 && t.blockSize % 32 !== 0) throw new Error(`${layout}: block size ${t.blockSize} is not a multiple of 32`);
  return { BLOCK_ELEMS: t.blockSize, BLOCK_BYTES: t.blockBytes };
}

/** Elements per unit that dq_unit decodes. */
export const UNIT = 32;

/**
 * A 2-D workgroup grid holding `groups` workgroups (maxComputeWorkgroupsPerDimension is 65535, a
 * 128k-row output needs more): the kernel numbers workgroup (x, y) as x + y·gridX and ignores
 * numbers from `groups` on.
 */
export function grid2d(groups: number, maxPerDim: number, where: string): [number, number] {
  const gx = Math.max(1, Math.min(groups, maxPerDim));
  const gy = Math.max(1, Math.ceil(groups / gx));
  if (gy > maxPerDim) throw new Error(`${where}: ${groups} workgroups exceed a ${maxPerDim} x ${maxPerDim} grid`);
  return [gx, gy];
}
