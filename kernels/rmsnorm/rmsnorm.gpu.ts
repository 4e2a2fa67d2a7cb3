// WebGPU twin of rmsnorm.cpu.ts. One workgroup per row; the optional captures (hook_scale = rms per
// row, hook_normalized = x / rms) are bound and written only when their refs are given.

import type { GpuContext, Step } from '../../src/engine/gpu/context.ts';
import type { F32Ref } from '../../src/engine/gpu/tensor.ts';
import { loadShader } from '../../src/engine/gpu/shader.ts';
import { checkRange, f32bits, grid, layoutOf, pipelineFor, prepareVariant, type KernelVariant } from '../../src/engine/gpu/bindings.ts';

const WG = 256;
const RMSNORM: KernelVariant = {
  base: 'rmsnorm',
  ops: [{ name: 'out', write: true }, { name: 'x' }, { name: 'weight' }, { name: 'scale', write: true }, { name: 'normalized', write: true }],
  constants: { WG },
};
const source = () => loadShader(new URL('./rmsnorm.wgsl', import.meta.url));

/** Compiles the four variants (with and without each capture). */
export async function prepareRmsnorm(ctx: GpuContext): Promise<void> {
  await Promise.all([false, true].flatMap((s) => [false, true].map((z) =>
    prepareVariant(ctx, RMSNORM, source, [true, true, true, s, z]))));
}

/**
 * out: [n, d] ← x: [n, d] / rms(x) · weight: [d]; out may be x (in place).
 * scale (optional): [n] receives rms per row; normalized (optional): [n, d] receives x / rms.
 */
export function encodeRmsnorm(
  ctx: GpuContext, step: Step, out: F32Ref, x: F32Ref, weight: F32Ref, n: number, d: number, eps: number,
  scale?: F32Ref | null, normalized?: F32Ref | null,
): void {
  if (n === 0) return;
  checkRange('rmsnorm out', out.buffer, out.offset, n * d);
  checkRange('rmsnorm x', x.buffer, x.offset, n * d);
  checkRange('rmsnorm weight', weight.buffer, weight.offset, d);
  if (scale) checkRange('rmsnorm scale', scale.buffer, scale.offset, n);
  if (normalized) checkRange('rmsnorm normalized', normalized.buffer, normalized.offset, n * d);
  const bufs = [out.buffer, x.buffer, weight.buffer, scale?.buffer ?? null, normalized?.buffer ?? null];
  const layout = layoutOf(RMSNORM.ops.map((o, i) => ({ ...o, buffer: bufs[i]! })));
  const params = new Uint32Array([n, d, f32bits(eps), out.offset, x.offset, weight.offset, scale?.offset ?? 0, normalized?.offset ?? 0]);
  step.dispatch(pipelineFor(ctx, RMSNORM, layout), layout.buffers, params, grid(ctx, n));
}
