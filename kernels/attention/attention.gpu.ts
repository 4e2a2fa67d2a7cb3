// WebGPU twin of attention.cpu.ts: causal grouped-query attention over the KV cache.
// Without captures it runs the one-pass online-softmax ("flash") kernel; with `scores` and/or
// `pattern` refs the three-pass kernel that writes those named activations. Capturing nothing
// binds and writes nothing extra.

import type { GpuContext, Step } from '../../src/engine/gpu/context.ts';
import type { F32Ref } from '../../src/engine/gpu/tensor.ts';
import { loadShader } from '../../src/engine/gpu/shader.ts';
import { UsageError } from '../../src/engine/errors.ts';
import type { AttentionShape } from './attention.cpu.ts';
import { checkRange, f32bits, grid, layoutOf, pipelineFor, prepareVariant, type KernelVariant } from '../../src/engine/gpu/bindings.ts';

const WG = 64;
/** The largest d_head the kernel takes (its q row and accumulator live in workgroup memory). */
export const MAX_D_HEAD = 256;

const ATTENTION: KernelVariant = {
  base: 'attention',
  ops: [{ name: 'z', write: true }, { name: 'q' }, { name: 'k' }, { name: 'v' }, { name: 'scores', write: true }, { name: 'pattern', write: true }],
  constants: { WG, MAX_D: MAX_D_HEAD },
};
const source = () => loadShader(new URL('./attention.wgsl', import.meta.url));

/** Compiles the flash kernel and the capture kernels (scores, pattern, both). */
export async function prepareAttention(ctx: GpuContext): Promise<void> {
  await Promise.all([[false, false], [true, false], [false, true], [true, true]].map(([s, pt]) =>
    prepareVariant(ctx, ATTENTION, source, [true, true, true, true, s!, pt!])));
}

/**
 * z: [nq, nHeads, dHead] ← attention of q: [nq, nHeads, dHead] over kCache, vCache:
 * [≥ start + nq, nKvHeads, dHead] (the new keys and values already in the cache).
 * scores, pattern (optional): [nHeads, nq, start + nq]; scores −inf and pattern 0 above the diagonal.
 */
export function encodeAttention(
  ctx: GpuContext, step: Step, z: F32Ref, q: F32Ref, kCache: F32Ref, vCache: F32Ref, shape: AttentionShape,
  scores?: F32Ref | null, pattern?: F32Ref | null,
): void {
  const { nq, start, nHeads, nKvHeads, dHead } = shape;
  if (nq === 0) return;
  if (nKvHeads < 1 || nHeads % nKvHeads !== 0) throw new UsageError('attention', `n_heads ${nHeads} is not a multiple of n_kv_heads ${nKvHeads}`);
  if (dHead < 1 || dHead > MAX_D_HEAD) throw new UsageError('attention', `d_head ${dHead} is outside 1..${MAX_D_HEAD}`, 'Raise MAX_D_HEAD in attention.gpu.ts');
  const kLen = start + nq;
  checkRange('attention z', z.buffer, z.offset, nq * nHeads * dHead);
  checkRange('attention q', q.buffer, q.offset, nq * nHeads * dHead);
  checkRange('attention kCache', kCache.buffer, kCache.offset, kLen * nKvHeads * dHead);
  checkRange('attention vCache', vCache.buffer, vCache.offset, kLen * nKvHeads * dHead);
  if (scores) checkRange('attention scores', scores.buffer, scores.offset, nHeads * nq * kLen);
  if (pattern) checkRange('attention pattern', pattern.buffer, pattern.offset, nHeads * nq * kLen);
  const bufs = [z.buffer, q.buffer, kCache.buffer, vCache.buffer, scores?.buffer ?? null, pattern?.buffer ?? null];
  const layout = layoutOf(ATTENTION.ops.map((o, i) => ({ ...o, buffer: bufs[i] ?? null })));
  const params = new Uint32Array([
    nq, start, nHeads, nKvHeads, dHead, nHeads / nKvHeads, f32bits(1 / Math.sqrt(dHead)), f32bits(-Infinity),
    z.offset, q.offset, kCache.offset, vCache.offset, scores?.offset ?? 0, pattern?.offset ?? 0,
  ]);
  step.dispatch(pipelineFor(ctx, ATTENTION, layout), layout.buffers, params, grid(ctx, nq * nHeads));
}
