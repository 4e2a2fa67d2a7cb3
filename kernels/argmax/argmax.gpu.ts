// WebGPU twin of argmax.cpu.ts: argmax per row (greedy decoding reads back 4 bytes) and top-k of
// one row (a sampler or a "next token" cell reads back 8·k bytes), instead of the vocabulary.
// Top-k runs in two dispatches: each chunk of CHUNK logits selects its own k best, then one
// workgroup merges the chunks' candidates (2048 of them for a 128k vocabulary and k = 64).

import type { GpuContext, Step } from '../../src/engine/gpu/context.ts';
import type { F32Ref } from '../../src/engine/gpu/tensor.ts';
import { loadShader } from '../../src/engine/gpu/shader.ts';
import { UsageError } from '../../src/engine/errors.ts';
import { MAX_TOP_K } from './argmax.cpu.ts';
import { checkRange, grid, layoutOf, pipelineFor, prepareVariant, type KernelVariant, type OperandSpec } from '../../src/engine/gpu/bindings.ts';

const WG = 256;
const CHUNK = 4096;
const OPS: OperandSpec[] = [
  { name: 'x' }, { name: 'ids', write: true, type: 'u32' }, { name: 'vals', write: true, type: 'u32' /* f32 bits */ }, { name: 'scratch', write: true, type: 'u32' },
];
const variant = (stage: number): KernelVariant => ({ base: `argmax/${stage}`, ops: OPS, constants: { WG, STAGE: stage, CHUNK } });
const ARGMAX = variant(0), TOPK_CHUNKS = variant(1), TOPK_MERGE = variant(2), LENS_ROWS = variant(3);
const PRESENT: Record<number, boolean[]> = { 0: [true, true, false, false], 1: [true, false, false, true], 2: [true, true, true, true], 3: [true, true, true, true] };
const NO_TARGET = 0xffffffff;
/** Params (argmax.wgsl): rows, cols, k, x offset, target (lens rows), three words of padding. */
const params = (rows: number, cols: number, k: number, x: number, target = NO_TARGET) => new Uint32Array([rows, cols, k, x, target, 0, 0, 0]);
const source = () => loadShader(new URL('./argmax.wgsl', import.meta.url));

export async function prepareArgmax(ctx: GpuContext): Promise<void> {
  await prepareVariant(ctx, ARGMAX, source, PRESENT[0]);
}

export async function prepareLensRows(ctx: GpuContext): Promise<void> {
  await prepareVariant(ctx, LENS_ROWS, source, PRESENT[3]);
}

export async function prepareTopK(ctx: GpuContext): Promise<void> {
  await Promise.all([prepareVariant(ctx, TOPK_CHUNKS, source, PRESENT[1]), prepareVariant(ctx, TOPK_MERGE, source, PRESENT[2])]);
}

/** out: u32 [rows] ← index of the largest entry of each row of x: [rows, cols]; ties → lowest index. */
export function encodeArgmax(ctx: GpuContext, step: Step, out: GPUBuffer, x: F32Ref, rows: number, cols: number): void {
  if (rows === 0) return;
  if (cols === 0) throw new UsageError('argmax', 'a row of 0 columns has no maximum');
  checkRange('argmax x', x.buffer, x.offset, rows * cols);
  checkRange('argmax out', out, 0, rows);
  const layout = layoutOf(OPS.map((o, i) => ({ ...o, buffer: [x.buffer, out, null, null][i] ?? null })));
  step.dispatch(pipelineFor(ctx, ARGMAX, layout), layout.buffers, params(rows, cols, 0, x.offset), grid(ctx, rows));
}

// Candidates of the chunks: (key, id) u32 pairs, one buffer per context, grown on demand. Dispatches
// run in order, so successive top-k calls (in one step or several) can share it.
const scratches = new WeakMap<GpuContext, GPUBuffer>();

function scratchFor(ctx: GpuContext, bytes: number): GPUBuffer {
  let s = scratches.get(ctx);
  if (!s || s.size < bytes) {
    // the old one may still be used by a recorded, unsubmitted step: dropped, not destroyed
    s = ctx.device.createBuffer({ label: 'top-k candidates', size: Math.max(bytes, 4096 * 8), usage: 0x80 /* STORAGE */ });
    scratches.set(ctx, s);
  }
  return s;
}

/**
 * The k (≤ MAX_TOP_K) largest entries of x: [cols]: outIds u32 [k] and outVals f32 [k], value
 * descending, ties by lower id. NaN entries are never chosen (padding: id 0xFFFFFFFF, value NaN).
 */
export function encodeTopK(ctx: GpuContext, step: Step, outIds: GPUBuffer, outVals: GPUBuffer, x: F32Ref, cols: number, k: number): void {
  if (!Number.isInteger(k) || k < 1 || k > MAX_TOP_K) throw new UsageError('top-k', `k = ${k} must be an integer from 1 to ${MAX_TOP_K}`);
  if (k > cols) throw new UsageError('top-k', `k = ${k} is more than the ${cols} entries`);
  checkRange('top-k x', x.buffer, x.offset, cols);
  checkRange('top-k ids', outIds, 0, k);
  checkRange('top-k values', outVals, 0, k);
  const chunks = Math.ceil(cols / CHUNK);
  const scratch = scratchFor(ctx, chunks * k * 8);
  const p = params(chunks, cols, k, x.offset);
  const l1 = layoutOf(OPS.map((o, i) => ({ ...o, buffer: [x.buffer, null, null, scratch][i] ?? null })));
  step.dispatch(pipelineFor(ctx, TOPK_CHUNKS, l1), l1.buffers, p, grid(ctx, chunks));
  const l2 = layoutOf(OPS.map((o, i) => ({ ...o, buffer: [x.buffer, outIds, outVals, scratch][i] ?? null })));
  step.dispatch(pipelineFor(ctx, TOPK_MERGE, l2), l2.buffers, p, [1]);
}

/** Words per row in the stats buffer of encodeLensRows: sum (f32 bits), rank, target value (f32 bits). */
export const LENS_STATS_WORDS = 3;

/**
 * Per row of x: [rows, cols] (the logit lens reads back these instead of the logits): ids u32
 * [rows, k] and vals f32 [rows, k], the row's k best as encodeTopK orders them; stats u32
 * [rows, 3] = Σ exp(v − max) over the row (f32; −inf and NaN entries add nothing), the number of
 * entries ordered before the target (its rank) and the target's value (0, 0 without a target).
 * Twin: lensRows (argmax.cpu.ts).
 */
export function encodeLensRows(ctx: GpuContext, step: Step, ids: GPUBuffer, vals: GPUBuffer, stats: GPUBuffer, x: F32Ref, rows: number, cols: number, k: number, target: number | null): void {
  if (rows === 0) return;
  if (!Number.isInteger(k) || k < 1 || k > MAX_TOP_K) throw new UsageError('lens rows', `k = ${k} must be an integer from 1 to ${MAX_TOP_K}`);
  if (k > cols) throw new UsageError('lens rows', `k = ${k} is more than the ${cols} entries`);
  if (target !== null && !(Number.isInteger(target) && target >= 0 && target < cols)) throw new UsageError('lens rows', `target ${target} is not a column (0..${cols - 1})`);
  checkRange('lens rows x', x.buffer, x.offset, rows * cols);
  checkRange('lens rows ids', ids, 0, rows * k);
  checkRange('lens rows values', vals, 0, rows * k);
  checkRange('lens rows stats', stats, 0, rows * LENS_STATS_WORDS);
  const layout = layoutOf(OPS.map((o, i) => ({ ...o, buffer: [x.buffer, ids, vals, stats][i] ?? null })));
  step.dispatch(pipelineFor(ctx, LENS_ROWS, layout), layout.buffers, params(rows, cols, k, x.offset, target ?? NO_TARGET), grid(ctx, rows));
}
