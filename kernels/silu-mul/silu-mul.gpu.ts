// WebGPU twin of silu-mul.cpu.ts: out[i] = silu(gate[i]) · up[i]. One thread per element.

import type { GpuContext, Step } from '../../src/engine/gpu/context.ts';
import type { F32Ref } from '../../src/engine/gpu/tensor.ts';
import { loadShader } from '../../src/engine/gpu/shader.ts';
import { checkRange, grid, layoutOf, pipelineFor, prepareVariant, type KernelVariant } from '../../src/engine/gpu/bindings.ts';

const WG = 256;
const SILU_MUL: KernelVariant = {
  base: 'silu-mul',
  ops: [{ name: 'out', write: true }, { name: 'gate' }, { name: 'up' }],
  constants: { WG },
};

export async function prepareSiluMul(ctx: GpuContext): Promise<void> {
  await prepareVariant(ctx, SILU_MUL, () => loadShader(new URL('./silu-mul.wgsl', import.meta.url)));
}

/** out[i] = silu(gate[i]) · up[i] for i < n; out may be gate or up (in place). */
export function encodeSiluMul(ctx: GpuContext, step: Step, out: F32Ref, gate: F32Ref, up: F32Ref, n: number): void {
  if (n === 0) return;
  checkRange('silu-mul out', out.buffer, out.offset, n);
  checkRange('silu-mul gate', gate.buffer, gate.offset, n);
  checkRange('silu-mul up', up.buffer, up.offset, n);
  const [o, g, u] = SILU_MUL.ops;
  const layout = layoutOf([{ ...o!, buffer: out.buffer }, { ...g!, buffer: gate.buffer }, { ...u!, buffer: up.buffer }]);
  step.dispatch(pipelineFor(ctx, SILU_MUL, layout), layout.buffers, new Uint32Array([n, out.offset, gate.offset, up.offset]), grid(ctx, Math.ceil(n / WG)));
}
