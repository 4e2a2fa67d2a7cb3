// WebGPU twin of embedding.cpu.ts: out [n, d] = rows ids[0..n) of table [vocab, d], dequantized
// from the table's stored type (or its GPU-only repacking: table.layout) by the same WGSL decoders
// as the matrix product, which reads a tied unembedding from the same upload. One dispatch per
// part of the table; each writes the tokens whose row it holds.

import type { GpuContext, Step } from '../../src/engine/gpu/context.ts';
import type { F32Ref, GpuTensor } from '../../src/engine/gpu/tensor.ts';
import { UsageError } from '../../src/engine/errors.ts';
import type { GpuLayout } from '../../src/engine/gpu/layout.ts';
import { blockConstants, decoderShader, grid2d, UNIT } from '../matmul/dequant.gpu.ts';

const KERNEL = new URL('./embedding.wgsl', import.meta.url);
const WG = 64;

function pipelineKey(layout: GpuLayout): string {
  return `embedding:${layout}`;
}

/** Compiles the lookup for tables laid out as `layout` (a GpuTensor's `layout`). */
export async function prepareEmbedding(ctx: GpuContext, layout: GpuLayout): Promise<void> {
  await ctx.pipeline(pipelineKey(layout), () => decoderShader(layout, KERNEL), { ...blockConstants(layout), WG });
}

/**
 * Records out[t, :] = table[ids[idsOffset + t], :] for t < n. Ids must be below the vocabulary
 * size (the caller checks them on the CPU, as embedding.cpu.ts does); a row for an id that is
 * not is written as zeros, never left unwritten.
 */
export function encodeEmbedding(
  ctx: GpuContext, step: Step, out: F32Ref, table: GpuTensor, ids: GPUBuffer, idsOffset: number, n: number,
): void {
  if (table.shape.length !== 2) throw new UsageError(`embedding ${table.name}`, `the table has shape [${table.shape}], expected [vocab, d]`);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`embedding ${table.name}`, `n = ${n} tokens; expected a non-negative integer`);
  if (n === 0) return;
  const [vocab, d] = table.shape as [number, number];
  const pipeline = ctx.pipelineReady(pipelineKey(table.layout));
  const [gx, gy] = grid2d(Math.ceil((n * Math.ceil(d / UNIT)) / WG), ctx.caps.maxComputeWorkgroupsPerDimension, `embedding ${table.name}`);
  table.parts.forEach((part, i) => {
    const params = new Uint32Array([d, n, table.rowBytes, part.firstRow, part.rows, idsOffset, out.offset, gx, vocab, i === 0 ? 1 : 0]);
    step.dispatch(pipeline, [part.buffer, ids, out.buffer], params, [gx, gy]);
  });
}
