// Fused decode products (n = 1): a matrix-vector product (matmul/matvec.wgsl's work split) with the
// ops around it folded into the same dispatch (fused-matvec.wgsl):
//   'split'   out_i = W_i · x̂ for 1–3 matrices sharing x (q, k, v; or gate, up)
//   'swiglu'  out = silu(W_gate · x̂) · (W_up · x̂), the two products never stored
//   'add'     out += W · x (the residual connection after the o and down projections)
// where x̂ = rmsnorm(x) · weight when `norm` is given, else x; 'split' with `rope` also rotates
// outputs 0 and 1 (q and k) by RoPE at the token's position as they are written. Twins composed:
// rmsnorm.cpu.ts, matmul.cpu.ts, silu-mul.cpu.ts, add.cpu.ts, rope.cpu.ts (fused-matvec.test.ts
// checks them together).
//
// One kernel reads up to three weight matrices, each in its own binding and its own layout (stored
// type or repacking, GpuTensor.layout). WGSL cannot pass a storage buffer to a function, and the
// per-layout decoders (matmul/types/*.wgsl with the byte helpers of kernels/wgsl/) read a global
// `w`: so the wrapper includes one copy of them per matrix with `w` and every function and alias
// name suffixed by the matrix's number (`dq_unit_1` reads `w1`, an array<WeightWord_1>).

import type { GpuContext, Step } from '../../src/engine/gpu/context.ts';
import type { F32Ref, GpuTensor } from '../../src/engine/gpu/tensor.ts';
import { UsageError } from '../../src/engine/errors.ts';
import { getTensorType } from '../../src/formats/quant/index.ts';
import { byteSize } from '../../src/formats/tensor.ts';
import type { GpuLayout } from '../../src/engine/gpu/layout.ts';
import { loadShader } from '../../src/engine/gpu/shader.ts';
import { f32bits } from '../../src/engine/gpu/bindings.ts';
import { blockConstants, decoderShader, grid2d } from '../matmul/dequant.gpu.ts';
import type { RopeTable } from '../rope/rope.cpu.ts';
import { matvecPlan } from '../matmul/matmul.gpu.ts';

const KERNEL = new URL('./fused-matvec.wgsl', import.meta.url);
const ENTRY_SG = new URL('../matmul/matvec-sg.wgsl', import.meta.url);
const ENTRY_WG = new URL('../matmul/matvec-wg.wgsl', import.meta.url);

/** Threads per workgroup (a power of two: the norm's tree reduction). */
const WG = 128;

export type FusedMode = 'split' | 'swiglu' | 'add';

/** What one fused dispatch computes; the pipeline depends on all of it but the sizes. */
export interface FusedMatvec {
  mode: FusedMode;
  /** split: 1–3 matrices [m_i, k]; swiglu: [gate, up], both [m, k]; add: one [m, k]. */
  weights: GpuTensor[];
  /** Fold the RMSNorm of x (weight [k]) into the product. */
  norm: boolean;
  /** split: rotate outputs 0 and 1 ([heads, dHead] rows: q and k) by RoPE, adjacent pairs. */
  rope?: { dHead: number };
}

/** Most d_head the RoPE epilogue takes (its cos and sin travel in the uniform: 4·d_head bytes). */
const MAX_ROPE_DHEAD = 256;

/** Outputs the mode writes: one per matrix for split, else one. */
function outputs(f: FusedMatvec): number {
  return f.mode === 'split' ? f.weights.length : 1;
}

/** Storage buffers one dispatch binds. */
function storageCount(f: FusedMatvec): number {
  return f.weights.length + 1 + (f.norm ? 1 : 0) + outputs(f);
}

/** Rows per team: matmul's decode plan for the largest matrix (the split is a speed choice only),
 *  at least 2 with RoPE (a team then holds whole pairs: the plan's counts are 1 or even). */
function rowsPerTeam(f: FusedMatvec): number {
  const k = f.weights[0]!.shape[1]!;
  const rows = matvecPlan(Math.max(...f.weights.map((w) => w.shape[0]!)), k).rows;
  return f.rope ? Math.max(2, rows) : rows;
}

/** vec4 words of (cos, sin) pairs in the uniform: d_head / 4 with RoPE, else 1 (unused). */
function csWords(f: FusedMatvec): number {
  return f.rope ? Math.ceil(f.rope.dHead / 4) : 1;
}

/**
 * Why these operands cannot go through one fused dispatch on this device, or null when they can.
 * The forward pass then runs the unfused kernels. Several matrices must each be one part (one
 * binding); one matrix may have several (one dispatch each); rows are read as vec4 (k % 4 = 0).
 */
export function fusedMatvecUnsupported(ctx: GpuContext, f: FusedMatvec): string | null {
  const n = f.weights.length;
  if (n < 1 || n > 3) return `${n} matrices (1 to 3 fuse)`;
  if (f.mode === 'swiglu' && n !== 2) return `swiglu takes gate and up, not ${n} matrices`;
  if (f.mode === 'add' && n !== 1) return `add takes one matrix, not ${n}`;
  const k = f.weights[0]!.shape[1]!;
  for (const w of f.weights) {
    if (w.shape.length !== 2) return `${w.name} has shape [${w.shape}], not [rows, cols]`;
    if (w.shape[1] !== k) return `${w.name} has rows of ${w.shape[1]}, not ${k} as ${f.weights[0]!.name}`;
    if (n > 1 && w.parts.length !== 1) return `${w.name} is split in ${w.parts.length} bindings`;
    if (w.rowBytes !== byteSize(getTensorType(w.type), k)) return `${w.name} has rowBytes ${w.rowBytes}`;
    for (const part of w.parts) if (part.rows * w.rowBytes > 2 ** 32) return `a part of ${w.name} exceeds 4 GiB`;
  }
  if (f.mode === 'swiglu' && f.weights[0]!.shape[0] !== f.weights[1]!.shape[0]) return 'gate and up differ in rows';
  if (k % 4 !== 0) return `rows of ${k} are not whole vec4`;
  if (f.rope) {
    const dh = f.rope.dHead;
    if (f.mode !== 'split' || n < 2) return 'RoPE folds into split products of q and k';
    if (!Number.isInteger(dh) || dh < 2 || dh % 2 !== 0 || dh > MAX_ROPE_DHEAD) return `d_head ${dh} (RoPE folds in for even d_head up to ${MAX_ROPE_DHEAD})`;
    for (const w of f.weights.slice(0, 2)) if (w.shape[0]! % dh !== 0) return `${w.name} has ${w.shape[0]} rows, not whole heads of ${dh}`;
  }
  const need = storageCount(f);
  if (need > ctx.caps.maxStorageBuffersPerShaderStage) return `${need} storage bindings, the device allows ${ctx.caps.maxStorageBuffersPerShaderStage}`;
  return null;
}

function pipelineKey(ctx: GpuContext, f: FusedMatvec, rows: number): string {
  return `fused-matvec:${f.mode}:${f.weights.map((w) => w.layout).join('+')}:${f.norm ? 'norm' : 'plain'}:${f.rope ? `rope${f.rope.dHead}` : ''}:${ctx.caps.subgroups ? 'sg' : 'wg'}:r${rows}`;
}

/** The decoder of `layout` (with the byte helpers) reading `w${i}`, every function and alias name
 *  suffixed `_${i}`. */
async function decoderFor(layout: GpuLayout, i: number): Promise<string> {
  const src = await decoderShader(layout);
  const names = [...new Set([...src.matchAll(/\b(?:fn|alias)\s+([A-Za-z_]\w*)/g)].map((m) => m[1]!))];
  let out = src.replace(/\bw\[/g, `w${i}[`);
  for (const name of names) out = out.replace(new RegExp(`\\b${name}\\b`, 'g'), `${name}_${i}`);
  return out;
}

/** The WGSL of a variant: constants, bindings, per-matrix decoders, dispatchers, kernel, entry point. */
async function source(ctx: GpuContext, f: FusedMatvec, rows: number): Promise<string> {
  const sg = ctx.caps.subgroups;
  const n = f.weights.length, outs = outputs(f);
  const lines: string[] = [];
  if (sg) lines.push('enable subgroups;');
  lines.push(
    `const R: u32 = ${rows}u;`, `const RR: u32 = ${f.mode === 'swiglu' ? 2 * rows : rows}u;`, `const NMAT: u32 = ${n}u;`,
    `const NORM = ${f.norm};`, `const SWIGLU = ${f.mode === 'swiglu'};`, `const ADD = ${f.mode === 'add'};`,
    `const ROPE = ${!!f.rope};`, `const CSN: u32 = ${csWords(f)}u;`,
  );
  let b = 0;
  for (let i = 0; i < n; i++) lines.push(`@group(0) @binding(${b++}) var<storage, read> w${i}: array<WeightWord_${i}>;`);
  lines.push(`@group(0) @binding(${b++}) var<storage, read> x: array<vec4f>;`);
  if (f.norm) lines.push(`@group(0) @binding(${b++}) var<storage, read> nw: array<vec4f>;`);
  for (let i = 0; i < outs; i++) lines.push(`@group(0) @binding(${b++}) var<storage, read_write> y${i}: array<f32>;`);
  lines.push(`@group(0) @binding(${b}) var<uniform> p: Params;`);
  lines.push(f.norm ? 'fn nw_ld(i: u32) -> vec4f { return nw[i]; }' : 'fn nw_ld(i: u32) -> vec4f { return vec4f(1.0); }');
  // block geometry of each matrix's layout (as matvec.wgsl's overrides)
  const unitCases: string[] = [], partialCases: string[] = [];
  f.weights.forEach((w, i) => {
    const { BLOCK_ELEMS: be, BLOCK_BYTES: bb } = blockConstants(w.layout);
    const upb = Math.max(be / 32, 1), qb = bb * Math.max(32 / be, 1);
    unitCases.push(`case ${i}u: { return dq_unit_${i}(rowStart + (U / ${upb}u) * ${qb}u, U % ${upb}u); }`);
    partialCases.push(`case ${i}u: { return ${be === 1}; }`);
  });
  const last = (cases: string[]) => cases.map((c, i) => (i === cases.length - 1 ? c.replace(/^case \d+u:/, 'default:') : c)).join(' ');
  lines.push(`fn unit(m: u32, rowStart: u32, U: u32) -> array<vec4f, 8> { switch m { ${last(unitCases)} } }`);
  lines.push(`fn partial(m: u32) -> bool { switch m { ${last(partialCases)} } }`);
  const yCases = Array.from({ length: outs }, (_, i) => `case ${i}u: { return y${i}[i]; }`);
  const yStores = Array.from({ length: outs }, (_, i) => `case ${i}u: { y${i}[i] = v; }`);
  lines.push(`fn y_ld(m: u32, i: u32) -> f32 { switch m { ${last(yCases)} } }`);
  lines.push(`fn y_st(m: u32, i: u32, v: f32) { switch m { ${last(yStores)} } }`);
  const decoders = await Promise.all(f.weights.map((w, i) => decoderFor(w.layout, i)));
  const kernel = await loadShader(KERNEL, sg ? ENTRY_SG : ENTRY_WG);
  return [lines.join('\n'), ...decoders, kernel].join('\n');
}

/** Compiles the pipeline these operands need (the decode plan depends on their shapes). */
export async function prepareFusedMatvec(ctx: GpuContext, f: FusedMatvec): Promise<void> {
  const why = fusedMatvecUnsupported(ctx, f);
  if (why) throw new UsageError('fused matvec', `these operands cannot be fused: ${why}`, 'Check fusedMatvecUnsupported first and use the unfused kernels');
  const rows = rowsPerTeam(f);
  await ctx.pipeline(pipelineKey(ctx, f, rows), () => source(ctx, f, rows), { WG });
}

/**
 * Records the fused product of one token. x: [k] (vec4-aligned offset); outs: one per matrix for
 * 'split', else one; for 'add', outs[0] holds the residual on entry and resid + W·x after.
 * norm: the RMSNorm weight [k] (vec4-aligned offset) and eps, when f.norm. rope (when f.rope): the
 * CPU twin's table and the token's absolute position. Outputs must be buffers distinct from each
 * other and from x and the norm weight (each is one writable binding).
 */
export function encodeFusedMatvec(
  ctx: GpuContext, step: Step, f: FusedMatvec, x: F32Ref, outs: F32Ref[], norm?: { weight: F32Ref; eps: number },
  rope?: { table: RopeTable; position: number },
): void {
  const why = fusedMatvecUnsupported(ctx, f);
  if (why) throw new UsageError('fused matvec', `these operands cannot be fused: ${why}`, 'Check fusedMatvecUnsupported first and use the unfused kernels');
  if (outs.length !== outputs(f)) throw new UsageError('fused matvec', `${outs.length} outputs given, ${f.mode} of ${f.weights.length} writes ${outputs(f)}`);
  if (f.norm !== !!norm) throw new UsageError('fused matvec', f.norm ? 'the variant folds an RMSNorm but no norm weight was given' : 'a norm weight was given to a variant without RMSNorm');
  if (!!f.rope !== !!rope) throw new UsageError('fused matvec', f.rope ? 'the variant folds RoPE in but no table and position were given' : 'a RoPE table was given to a variant without RoPE');
  if (f.rope && rope && rope.table.half !== f.rope.dHead / 2) throw new UsageError('fused matvec rope', `the table rotates ${2 * rope.table.half} dimensions, the variant d_head ${f.rope.dHead}`);
  if (rope && !(Number.isInteger(rope.position) && rope.position >= 0)) throw new UsageError('fused matvec rope', `position ${rope.position} is not a position`);
  const k = f.weights[0]!.shape[1]!;
  if (x.offset % 4 !== 0) throw new UsageError('fused matvec x', `offset ${x.offset} is not a multiple of 4 (x is read as vec4)`);
  if (norm && norm.weight.offset % 4 !== 0) throw new UsageError('fused matvec norm weight', `offset ${norm.weight.offset} is not a multiple of 4`);
  const inputs = [x.buffer, ...(norm ? [norm.weight.buffer] : [])];
  outs.forEach((o, i) => {
    if (inputs.includes(o.buffer) || outs.findIndex((q) => q.buffer === o.buffer) !== i) {
      throw new UsageError('fused matvec', `output ${i} shares its buffer "${o.buffer.label}" with another operand`, 'WebGPU cannot bind a writable buffer twice in one dispatch');
    }
  });
  const rows = rowsPerTeam(f);
  const pipeline = ctx.pipelineReady(pipelineKey(ctx, f, rows));
  const team = matvecPlan(Math.max(...f.weights.map((w) => w.shape[0]!)), k).team;
  const rowsPerGroup = (WG / team) * rows;
  const NONE = 0xffffffff;   // g1 / g2 of absent matrices: no workgroup reaches them
  const words = (gridX: number, rowCounts: number[], firstRows: number[]) => {
    // [k, xOff, nwOff, eps, gridX, team, g1, g2] then rows, rowBytes, yOff as vec4u, half, and
    // from word 24 the (cos, sin) pairs
    const u = new Uint32Array(24 + 4 * csWords(f));
    const groups = rowCounts.map((r) => Math.ceil(r / rowsPerGroup));
    const split = f.mode === 'split';
    const g1 = split && groups.length > 1 ? groups[0]! : NONE;
    const g2 = split && groups.length > 2 ? groups[0]! + groups[1]! : NONE;
    u.set([k, x.offset / 4, norm ? norm.weight.offset / 4 : 0, f32bits(norm?.eps ?? 0), gridX, team, g1, g2]);
    rowCounts.forEach((r, i) => { u[8 + i] = r; u[12 + i] = f.weights[i]!.rowBytes; });
    for (let i = 0; i < outs.length; i++) u[16 + i] = outs[i]!.offset + (firstRows[i] ?? 0);
    if (rope) {
      const { table, position } = rope, half = table.half;
      table.ensure(position + 1);
      u[20] = half;
      const cs = new Float32Array(u.buffer, 24 * 4, 2 * half);
      for (let i = 0; i < half; i++) {
        cs[2 * i] = table.cos[position * half + i]!;
        cs[2 * i + 1] = table.sin[position * half + i]!;
      }
    }
    return u;
  };
  const bind = (weights: GPUBuffer[]) => [...weights, ...inputs, ...outs.map((o) => o.buffer)];
  if (f.weights.length === 1) {
    // one matrix: one dispatch per part
    const w = f.weights[0]!;
    for (const part of w.parts) {
      const total = Math.ceil(part.rows / rowsPerGroup);
      const [gx, gy] = grid2d(total, ctx.caps.maxComputeWorkgroupsPerDimension, `fused matvec ${w.name}`);
      const u = words(gx, [part.rows], [part.firstRow]);
      step.dispatch(pipeline, bind([part.buffer]), u, [gx, gy, 1]);
    }
    return;
  }
  const counts = f.weights.map((w) => w.shape[0]!);
  const total = f.mode === 'swiglu' ? Math.ceil(counts[0]! / rowsPerGroup) : counts.reduce((s, r) => s + Math.ceil(r / rowsPerGroup), 0);
  const [gx, gy] = grid2d(total, ctx.caps.maxComputeWorkgroupsPerDimension, `fused matvec ${f.weights[0]!.name}`);
  const u = words(gx, counts, []);
  step.dispatch(pipeline, bind(f.weights.map((w) => w.parts[0]!.buffer)), u, [gx, gy, 1]);
}
