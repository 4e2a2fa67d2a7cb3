// WebGPU twin of rope.cpu.ts (adjacent pairs). The cos/sin table is the CPU twin's RopeTable,
// uploaded once per model for as many positions as the run may use: the GPU rotates by the very
// same f32 numbers, whatever the frequency scaling (llama3, linear, GGUF rope_freqs).
// Hugging Face's half-split layout never reaches this kernel: its wq/wk rows are permuted to
// adjacent pairs when the model is loaded.

import type { GpuContext, Step } from '../../src/engine/gpu/context.ts';
import type { F32Ref } from '../../src/engine/gpu/tensor.ts';
import { loadShader } from '../../src/engine/gpu/shader.ts';
import { UsageError } from '../../src/engine/errors.ts';
import type { RopeTable } from './rope.cpu.ts';
import { checkRange, grid, layoutOf, pipelineFor, prepareVariant, type KernelVariant } from '../../src/engine/gpu/bindings.ts';

const WG = 256;
const ROPE: KernelVariant = {
  base: 'rope',
  ops: [{ name: 'x', write: true }, { name: 'table' }],
  constants: { WG },
};

export async function prepareRope(ctx: GpuContext): Promise<void> {
  await prepareVariant(ctx, ROPE, () => loadShader(new URL('./rope.wgsl', import.meta.url)));
}

/** Rows 0 .. nPos−1 of the twin's table interleaved as the kernel reads them: [nPos, dHead/2, 2]
 *  (cos, sin). Grows `table` if needed. */
export function ropeTableData(table: RopeTable, nPos: number): Float32Array {
  table.ensure(nPos);
  const h = table.half;
  const out = new Float32Array(nPos * h * 2);
  for (let k = 0; k < nPos * h; k++) {
    out[2 * k] = table.cos[k]!;
    out[2 * k + 1] = table.sin[k]!;
  }
  return out;
}

/** Uploads the table for positions 0 .. nPos−1 (e.g. the KV cache's capacity). */
export function uploadRopeTable(ctx: GpuContext, table: RopeTable, nPos: number): GPUBuffer {
  return ctx.upload(ropeTableData(table, nPos), 'rope table');
}

/** Whether there is anything to rotate; UsageError for an odd d_head or a table too short for the positions. */
function checkTable(n: number, dHead: number, startPos: number, table: GPUBuffer): boolean {
  if (dHead % 2 !== 0) throw new UsageError('rope', `d_head ${dHead} is odd; RoPE rotates pairs`);
  if (n === 0) return false;
  const positions = Math.floor(table.size / (dHead * 4));
  if (startPos + n > positions) {
    throw new UsageError('rope table', `positions up to ${startPos + n - 1} are needed but the table holds ${positions}`,
      'Upload a table for the whole context with uploadRopeTable(ctx, table, nPos)');
  }
  return true;
}

/**
 * Rotates x: [n, heads, dHead] in place, row t at absolute position startPos + t, with `table`
 * from uploadRopeTable (which must cover positions up to startPos + n − 1).
 */
export function encodeRope(ctx: GpuContext, step: Step, x: F32Ref, n: number, heads: number, dHead: number, startPos: number, table: GPUBuffer): void {
  if (!checkTable(n, dHead, startPos, table)) return;
  checkRange('rope x', x.buffer, x.offset, n * heads * dHead);
  const pairs = n * heads * (dHead / 2);
  const layout = layoutOf([{ ...ROPE.ops[0]!, buffer: x.buffer }, { ...ROPE.ops[1]!, buffer: table }]);
  const params = new Uint32Array([pairs, heads, dHead / 2, startPos, x.offset, 0]);
  step.dispatch(pipelineFor(ctx, ROPE, layout), layout.buffers, params, grid(ctx, Math.ceil(pairs / WG)));
}

// ---------------------------------------------------------------------------------------------
// q and k in one dispatch (rope-qk.wgsl): the forward pass rotates both at every layer.

const ROPE_QK: KernelVariant = {
  base: 'rope-qk',
  ops: [{ name: 'q', write: true }, { name: 'k', write: true }, { name: 'table' }],
  constants: { WG },
};

export async function prepareRopeQK(ctx: GpuContext): Promise<void> {
  await prepareVariant(ctx, ROPE_QK, () => loadShader(new URL('./rope-qk.wgsl', import.meta.url)));
}

/**
 * Rotates q: [n, qHeads, dHead] and k: [n, kHeads, dHead] in place, as encodeRope does each, in
 * one dispatch. q and k may share a buffer (their regions must not overlap).
 */
export function encodeRopeQK(
  ctx: GpuContext, step: Step, q: F32Ref, k: F32Ref, n: number, qHeads: number, kHeads: number, dHead: number, startPos: number, table: GPUBuffer,
): void {
  if (!checkTable(n, dHead, startPos, table)) return;
  checkRange('rope q', q.buffer, q.offset, n * qHeads * dHead);
  checkRange('rope k', k.buffer, k.offset, n * kHeads * dHead);
  const half = dHead / 2, qPairs = n * qHeads * half, kPairs = n * kHeads * half;
  const bufs = [q.buffer, k.buffer, table];
  const layout = layoutOf(ROPE_QK.ops.map((o, i) => ({ ...o, buffer: bufs[i]! })));
  const params = new Uint32Array([qPairs, kPairs, qHeads, kHeads, half, startPos, q.offset, k.offset, 0]);
  step.dispatch(pipelineFor(ctx, ROPE_QK, layout), layout.buffers, params, grid(ctx, Math.ceil((qPairs + kPairs) / WG)));
}
