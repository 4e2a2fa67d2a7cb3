// WebGPU twin of matmul.cpu.ts: out [n, m] = x [n, k] · Wᵀ with W [m, k] in its stored type (or a
// GPU-only repacking of it: W.layout), dequantized inside the kernel (types/<layout>.wgsl). One
// dispatch per part of W. Pipelines are prepared per layout (prepareMatmul(ctx, w.layout)).
// n = 1 (decode) runs the matrix-vector kernel matvec.wgsl: teams of lanes own several rows each
// and reduce through subgroups when the device has them. n > 1 (prefill) runs matmul-tiled.wgsl:
// a workgroup computes a tile of PREFILL_TILE.rows × PREFILL_TILE.tokens outputs from weight units
// decoded once per tile into workgroup memory.

import type { GpuContext, Step } from '../../src/engine/gpu/context.ts';
import type { F32Ref, GpuTensor } from '../../src/engine/gpu/tensor.ts';
import { UsageError } from '../../src/engine/errors.ts';
import { getTensorType } from '../../src/formats/quant/index.ts';
import { byteSize } from '../../src/formats/tensor.ts';
import type { GpuLayout } from '../../src/engine/gpu/layout.ts';
import { blockConstants, decoderShader, grid2d, UNIT } from './dequant.gpu.ts';

const TILED = new URL('./matmul-tiled.wgsl', import.meta.url);
const MATVEC = new URL('./matvec.wgsl', import.meta.url);
const MATVEC_SG = new URL('./matvec-sg.wgsl', import.meta.url);
const MATVEC_PLAIN = new URL('./matvec-wg.wgsl', import.meta.url);

/**
 * The prefill kernel's output tile: `rows` weight rows × `tokens` token rows per workgroup, each
 * thread `threadRows` × `threadTokens` of them (all multiples of 4), so rows / threadRows ×
 * tokens / threadTokens threads. Workgroup memory holds one decoded unit of every row and the x
 * slab, (rows + tokens) · 32 f32 = 16 KiB at 64 × 64, the WebGPU default limit; a larger tile would
 * need a slab narrower than dq_unit's 32 elements. Measured on SwiftShader only (a CPU; Q4_0
 * 2048 × 2048 and F32 768 × 288, n = 128): 16 × 4 per thread (64 threads, each decoding one row's
 * unit per slab) beat 8 × 4 (128 threads) by 1.3× and 4 × 4 (256) by about 2×, and 64 × 32 or
 * 32 × 32 tiles by about 2×. It beat the kernel it replaced (a team of threads per weight row, each
 * decoded unit used for 4 tokens) by 2.5–4.4× at n = 128 and matched it from n = 2, so every n > 1
 * runs it.
 */
export const PREFILL_TILE = { rows: 64, tokens: 64, threadRows: 16, threadTokens: 4 } as const;

function tiledKey(layout: GpuLayout): string {
  const t = PREFILL_TILE;
  return `matmul-tiled:${layout}:${t.rows}x${t.tokens}:${t.threadRows}x${t.threadTokens}`;
}

/** WGSL of the prefill kernel for `layout`, the tile constants first. */
async function tiledShader(layout: GpuLayout): Promise<string> {
  const t = PREFILL_TILE;
  const consts = `const BM: u32 = ${t.rows}u;\nconst BN: u32 = ${t.tokens}u;\nconst TM: u32 = ${t.threadRows}u;\nconst TN: u32 = ${t.threadTokens}u;\n`;
  return consts + await decoderShader(layout, TILED);
}

/**
 * How the decode kernel splits a matrix: `team` threads (a power of two ≤ 32, so that a team fits
 * in a subgroup on most GPUs) share `rows` consecutive rows, in workgroups of `wg` threads.
 */
export interface MatvecPlan { team: number; rows: number; wg: number }

/** Threads per workgroup of the decode kernel. */
const MATVEC_WG = 128;
/** Rows per team compiled by prepareMatmul: every plan matvecPlan returns uses one of these. */
const MATVEC_ROWS = [1, 2, 4, 8] as const;

/**
 * The decode split of an [m, k] matrix. Measured on an H100 (Llama shapes, every plan of teams
 * 4..32, rows 1..8, workgroups 64..256): whole-warp teams (32 lanes, 2 or more units each) were
 * best or within a few per cent for every type, and the rows per team should grow with m while
 * keeping a few hundred workgroups: 1 row at m = 512, 2 at 2048, 4 at 8192, 8 at 128256. Short
 * rows get smaller teams, so that every lane still takes about two units.
 */
export function matvecPlan(m: number, k: number): MatvecPlan {
  const units = Math.ceil(k / UNIT);
  let team = 1;
  while (team < Math.ceil(units / 2) && team < 32) team *= 2;
  const rows = m >= 16384 ? 8 : m >= 4096 ? 4 : m >= 2048 ? 2 : 1;
  return { team, rows, wg: MATVEC_WG };
}

function matvecKey(layout: GpuLayout, subgroups: boolean, rows: number, wg: number): string {
  return `matvec:${layout}:${subgroups ? 'sg' : 'wg'}:r${rows}:w${wg}`;
}

/** Compiles the decode kernel for `layout` with `rows` rows per team in workgroups of `wg`. */
export async function prepareMatvec(ctx: GpuContext, layout: GpuLayout, rows: number, wg: number): Promise<void> {
  const sg = ctx.caps.subgroups;
  await ctx.pipeline(
    matvecKey(layout, sg, rows, wg),
    async () => `${sg ? 'enable subgroups;\n' : ''}const R: u32 = ${rows}u;\n${await decoderShader(layout, MATVEC, sg ? MATVEC_SG : MATVEC_PLAIN)}`,
    { ...blockConstants(layout), WG: wg },
  );
}

// A plan forced for one context (benchmarks comparing splits); undefined: matvecPlan's.
const forcedPlans = new WeakMap<GpuContext, MatvecPlan>();

/** Makes encodeMatmul use `plan` for every decode on `ctx` (prepareMatvec it first), or, with
 *  undefined, matvecPlan's split again. For benchmarks and tests. */
export function forceMatvecPlan(ctx: GpuContext, plan: MatvecPlan | undefined): void {
  if (plan) forcedPlans.set(ctx, plan);
  else forcedPlans.delete(ctx);
}

/** Compiles the decode (n = 1) and prefill (n > 1) pipelines for weights laid out as `layout` (a
 *  GpuTensor's `layout`: its stored type unless uploadTensor repacked it). */
export async function prepareMatmul(ctx: GpuContext, layout: GpuLayout): Promise<void> {
  await Promise.all([
    ctx.pipeline(tiledKey(layout), () => tiledShader(layout), blockConstants(layout)),
    ...MATVEC_ROWS.map((rows) => prepareMatvec(ctx, layout, rows, MATVEC_WG)),
  ]);
}

/** Whether x must be copied before the kernel can read it as vec4 (its rows not 16-byte aligned). */
export function xNeedsCopy(x: F32Ref, k: number): boolean {
  return x.offset % 4 !== 0 || k % 4 !== 0;
}

// One scratch buffer per context for realigned x. It is never returned to the pool: a pooled
// buffer can be written by queue.writeBuffer, which runs before the step's commands that read it.
const scratch = new WeakMap<GpuContext, GPUBuffer>();

/** x's rows copied to a scratch buffer at offset 0 with a stride of ceil(k / 4) vec4. */
function alignedX(ctx: GpuContext, step: Step, x: F32Ref, k: number, n: number): { buffer: GPUBuffer; stride: number } {
  const stride = Math.ceil(k / 4) * 4;
  let buf = scratch.get(ctx);
  if (!buf || buf.size < n * stride * 4) {
    // an outgrown scratch is dropped, not destroyed: commands already recorded may still read it
    buf = ctx.device.createBuffer({ label: 'matmul x (aligned)', size: Math.max(256, n * stride * 4), usage: 0x80 | 0x8 | 0x4 });
    scratch.set(ctx, buf);
  }
  if (k === stride) step.copy(x.buffer, x.offset * 4, buf, 0, n * k * 4);
  else for (let t = 0; t < n; t++) step.copy(x.buffer, (x.offset + t * k) * 4, buf, t * stride * 4, k * 4);
  return { buffer: buf, stride };
}

/**
 * Records out[i, j] = Σ_e x[i, e] · W[j, e] for i < n, j < m, into `step`. `prepareMatmul(ctx,
 * w.layout)` must have finished. out: [n, m] f32, x: [n, k] f32, w: [m, k] in any tensor type.
 * out and x must be different buffers (WebGPU forbids binding one buffer as both read-only and
 * writable storage in a dispatch). x is read in place when its offset and k are multiples of 4,
 * else its rows are first copied to an aligned scratch buffer (n copies when k % 4 != 0).
 */
export function encodeMatmul(ctx: GpuContext, step: Step, out: F32Ref, x: F32Ref, w: GpuTensor, n: number): void {
  if (w.shape.length !== 2) throw new UsageError(`matmul ${w.name}`, `the weight has shape [${w.shape}], expected [rows, cols]`);
  const [m, k] = w.shape as [number, number];
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`matmul ${w.name}`, `n = ${n} tokens; expected a positive integer`);
  const rowBytes = byteSize(getTensorType(w.type), k);
  if (w.rowBytes !== rowBytes) throw new UsageError(`matmul ${w.name}`, `rowBytes is ${w.rowBytes} but ${w.type} rows of ${k} take ${rowBytes}`);
  // x is read as vec4 rows: realign it first when it is not (a rare case: the forward pass keeps
  // activations aligned and real models have k % 4 = 0)
  let xb = x.buffer, xOff = x.offset, xStride = k;
  if (xNeedsCopy(x, k)) {
    ({ buffer: xb, stride: xStride } = alignedX(ctx, step, x, k, n));
    xOff = 0;
  } else if (out.buffer === x.buffer) {
    throw new UsageError(`matmul ${w.name}`, 'out and x are the same buffer; WebGPU cannot bind a buffer as both input and output of one dispatch');
  }
  for (const part of w.parts) {
    // the kernels address bytes with u32
    if (part.rows * rowBytes > 2 ** 32) throw new UsageError(`matmul ${w.name}`, `a part of ${part.rows * rowBytes} bytes exceeds 4 GiB; upload it with a smaller part size`);
  }
  if (n === 1) {
    const plan = forcedPlans.get(ctx) ?? matvecPlan(m, k);
    const pipeline = ctx.pipelineReady(matvecKey(w.layout, ctx.caps.subgroups, plan.rows, plan.wg));
    const rowsPerGroup = (plan.wg / plan.team) * plan.rows;
    for (const part of w.parts) {
      const [gx, gy] = grid2d(Math.ceil(part.rows / rowsPerGroup), ctx.caps.maxComputeWorkgroupsPerDimension, `matmul ${w.name}`);
      const params = new Uint32Array([k, part.rows, rowBytes, xOff / 4, out.offset + part.firstRow, gx, plan.team]);
      step.dispatch(pipeline, [part.buffer, xb, out.buffer], params, [gx, gy, 1]);
    }
    return;
  }
  const pipeline = ctx.pipelineReady(tiledKey(w.layout));
  for (const part of w.parts) {
    const [gx, gy] = grid2d(Math.ceil(part.rows / PREFILL_TILE.rows), ctx.caps.maxComputeWorkgroupsPerDimension, `matmul ${w.name}`);
    const params = new Uint32Array([k, part.rows, rowBytes, xOff / 4, xStride / 4, out.offset + part.firstRow, m, n, gx]);
    step.dispatch(pipeline, [part.buffer, xb, out.buffer], params, [gx, gy, Math.ceil(n / PREFILL_TILE.tokens)]);
  }
}
