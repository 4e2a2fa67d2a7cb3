// Test support shared by the browser tests of the element-wise and row kernels (not a test file):
// packing several tensors into one buffer at odd offsets (as an activation arena does), and
// submitting a step inside a validation error scope, because a WebGPU validation error (for
// instance a writable binding aliasing another) otherwise leaves outputs silently unwritten.

import type { GpuContext, Step } from '../../src/engine/gpu/context.ts';
import type { F32Ref } from '../../src/engine/gpu/tensor.ts';

/** One buffer holding each array at an odd element offset (with a gap of `gap` floats before each). */
export function packF32(ctx: GpuContext, arrays: Float32Array[], gap = 3): { buffer: GPUBuffer; refs: F32Ref[] } {
  let total = 0;
  const offsets = arrays.map((a) => { total += gap; const o = total; total += a.length; return o; });
  const all = new Float32Array(total + gap).fill(Number.NaN);   // gaps hold NaN: a stray read shows
  arrays.forEach((a, i) => all.set(a, offsets[i]!));
  const buffer = ctx.upload(all, 'packed');
  return { buffer, refs: offsets.map((offset) => ({ buffer, offset })) };
}

/** Records with `record`, submits, fails on any validation error, and returns the reads. */
export async function submitChecked(ctx: GpuContext, record: (step: Step) => Promise<ArrayBuffer>[]): Promise<ArrayBuffer[]> {
  ctx.device.pushErrorScope('validation');
  let reads: Promise<ArrayBuffer>[] = [];
  let failure: unknown = null;
  try {
    const step = ctx.begin('trial');
    reads = record(step);
    await step.submit();
  } catch (e) {
    failure = e;
  }
  const err = await ctx.device.popErrorScope();
  if (err) throw new Error(`WebGPU validation error: ${err.message}`);
  if (failure) throw failure;
  return Promise.all(reads);
}

/** Reads `n` f32 at element offset `ref.offset`. */
export function readF32(step: Step, ref: F32Ref, n: number): Promise<ArrayBuffer> {
  return step.read(ref.buffer, ref.offset * 4, n * 4);
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) if (Number.isFinite(a[i]!)) m = Math.max(m, Math.abs(a[i]!));
  return m;
}
