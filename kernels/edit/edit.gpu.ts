// WebGPU twins of edit.cpu.ts: editRows (zero / set / add-scaled rows of a region, with a head or
// neuron mask) and addPatternValues (z += ΔP · V for edited attention patterns). The row lists and
// masks live in a u32 buffer the caller fills (src/engine/gpu/forward.ts packs a chunk's at once).

import type { GpuContext, Step } from '../../src/engine/gpu/context.ts';
import type { F32Ref } from '../../src/engine/gpu/tensor.ts';
import { loadShader } from '../../src/engine/gpu/shader.ts';
import { checkRange, f32bits, grid, layoutOf, pipelineFor, prepareVariant, type KernelVariant } from '../../src/engine/gpu/bindings.ts';
import type { EditRegion } from './edit.cpu.ts';

const WG = 256, PV_WG = 64;
const EDIT: KernelVariant = {
  base: 'edit',
  ops: [{ name: 'x', write: true }, { name: 'src' }, { name: 'idx', type: 'u32' }],
  constants: { WG },
};
const PATTERN_VALUES: KernelVariant = {
  base: 'edit/pattern-values',
  ops: [{ name: 'z', write: true }, { name: 'delta' }, { name: 'v' }, { name: 'idx', type: 'u32' }],
  constants: { WG: PV_WG },
};

export async function prepareEdit(ctx: GpuContext): Promise<void> {
  await Promise.all([
    prepareVariant(ctx, EDIT, () => loadShader(new URL('./edit.wgsl', import.meta.url))),
    prepareVariant(ctx, PATTERN_VALUES, () => loadShader(new URL('./pattern-values.wgsl', import.meta.url))),
  ]);
}

/** Where a region's row list and mask sit in the u32 index buffer (mask −1: no mask). */
export interface EditIndex { buffer: GPUBuffer; rowsAt: number; maskAt: number }

/**
 * editRows on the GPU: x (rows at x.offset + row·width) edited in place from src (element
 * src.offset + region.srcOffset is source row 0). `region.rows` and `region.mask` are only read
 * for their lengths: the kernel reads them from `index`.
 */
export function encodeEdit(ctx: GpuContext, step: Step, x: F32Ref, src: F32Ref, index: EditIndex, region: EditRegion, xRows: number): void {
  const nRows = region.rows.length;
  if (nRows === 0) return;
  checkRange('edit x', x.buffer, x.offset, xRows * region.width);
  checkRange('edit rows', index.buffer, index.rowsAt, nRows);
  const layout = layoutOf([{ ...EDIT.ops[0]!, buffer: x.buffer }, { ...EDIT.ops[1]!, buffer: src.buffer }, { ...EDIT.ops[2]!, buffer: index.buffer }]);
  const params = new Uint32Array([
    x.offset, region.width, nRows, region.groupSize, region.mode, f32bits(region.beta), src.offset + region.srcOffset, region.srcStride,
    index.rowsAt, index.maskAt < 0 ? 0xffffffff : index.maskAt, region.srcByRow ? 1 : 0, 0,
  ]);
  step.dispatch(pipelineFor(ctx, EDIT, layout), layout.buffers, params, grid(ctx, Math.ceil((nRows * region.width) / WG)));
}

/** addPatternValues on the GPU: z [n, n_heads, d_head] += delta · V for the `nRows` rows listed at index.rowsAt. */
export function encodePatternValues(
  ctx: GpuContext, step: Step, z: F32Ref, delta: F32Ref, values: F32Ref, index: { buffer: GPUBuffer; rowsAt: number }, nRows: number,
  dims: { n: number; kLen: number; nHeads: number; nKvHeads: number; dHead: number },
): void {
  if (nRows === 0) return;
  const { n, kLen, nHeads, nKvHeads, dHead } = dims;
  checkRange('pattern-values z', z.buffer, z.offset, n * nHeads * dHead);
  checkRange('pattern-values delta', delta.buffer, delta.offset, nHeads * n * kLen);
  checkRange('pattern-values v', values.buffer, values.offset, kLen * nKvHeads * dHead);
  const ops = PATTERN_VALUES.ops;
  const layout = layoutOf([{ ...ops[0]!, buffer: z.buffer }, { ...ops[1]!, buffer: delta.buffer }, { ...ops[2]!, buffer: values.buffer }, { ...ops[3]!, buffer: index.buffer }]);
  const params = new Uint32Array([z.offset, delta.offset, values.offset, index.rowsAt, nRows, n, kLen, nHeads, nKvHeads, dHead, 0, 0]);
  step.dispatch(pipelineFor(ctx, PATTERN_VALUES, layout), layout.buffers, params, grid(ctx, Math.ceil((nRows * dHead) / PV_WG)));
}
