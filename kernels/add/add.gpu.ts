// WebGPU twin of add.cpu.ts: out[i] = a[i] + b[i]. One thread per element.

import type { GpuContext, Step } from '../../src/engine/gpu/context.ts';
import type { F32Ref } from '../../src/engine/gpu/tensor.ts';
import { loadShader } from '../../src/engine/gpu/shader.ts';
import { checkRange, grid, layoutOf, pipelineFor, prepareVariant, type KernelVariant } from '../../src/engine/gpu/bindings.ts';

const WG = 256;
const ADD: KernelVariant = {
  base: 'add',
  ops: [{ name: 'out', write: true }, { name: 'a' }, { name: 'b' }],
  constants: { WG },
};

export async function prepareAdd(ctx: GpuContext): Promise<void> {
  await prepareVariant(ctx, ADD, () => loadShader(new URL('./add.wgsl', import.meta.url)));
}

/** out[i] = a[i] + b[i] for i < n; out may be a or b (in place). */
export function encodeAdd(ctx: GpuContext, step: Step, out: F32Ref, a: F32Ref, b: F32Ref, n: number): void {
  if (n === 0) return;
  checkRange('add out', out.buffer, out.offset, n);
  checkRange('add a', a.buffer, a.offset, n);
  checkRange('add b', b.buffer, b.offset, n);
  const layout = layoutOf([{ ...ADD.ops[0]!, buffer: out.buffer }, { ...ADD.ops[1]!, buffer: a.buffer }, { ...ADD.ops[2]!, buffer: b.buffer }]);
  step.dispatch(pipelineFor(ctx, ADD, layout), layout.buffers, new Uint32Array([n, out.offset, a.offset, b.offset]), grid(ctx, Math.ceil(n / WG)));
}
