// WebGPU twin of softmax.cpu.ts: softmax of each row, in place. One workgroup per row.

import type { GpuContext, Step } from '../../src/engine/gpu/context.ts';
import type { F32Ref } from '../../src/engine/gpu/tensor.ts';
import { loadShader } from '../../src/engine/gpu/shader.ts';
import { checkRange, grid, layoutOf, pipelineFor, prepareVariant, type KernelVariant } from '../../src/engine/gpu/bindings.ts';

const WG = 256;
const SOFTMAX: KernelVariant = { base: 'softmax', ops: [{ name: 'x', write: true }], constants: { WG } };

export async function prepareSoftmax(ctx: GpuContext): Promise<void> {
  await prepareVariant(ctx, SOFTMAX, () => loadShader(new URL('./softmax.wgsl', import.meta.url)));
}

/** x: [rows, cols] ← softmax of each row (in place); −inf → 0, an all −inf row → zeros. */
export function encodeSoftmax(ctx: GpuContext, step: Step, x: F32Ref, rows: number, cols: number): void {
  if (rows === 0 || cols === 0) return;
  checkRange('softmax x', x.buffer, x.offset, rows * cols);
  const layout = layoutOf([{ ...SOFTMAX.ops[0]!, buffer: x.buffer }]);
  step.dispatch(pipelineFor(ctx, SOFTMAX, layout), layout.buffers, new Uint32Array([rows, cols, x.offset]), grid(ctx, rows));
}
