// Bindings for element-wise and row kernels whose operands may share a buffer.
//
// WHY: WebGPU forbids binding one buffer twice in a dispatch when either binding is writable
// ("writable storage buffer binding aliasing"), and the failure is a validation error that leaves
// the output unwritten — a silent wrong number. In-place ops (the residual add out = a, RMSNorm
// out = x) and activations packed into one arena buffer at different offsets hit exactly that.
// So the kernels here never declare their storage bindings themselves: the wrapper binds each
// DISTINCT buffer once (in order of first appearance, @binding(0..n-1), the uniform Params at
// @binding(n)) and generates, for every operand `name`, the accessors the kernel calls:
//   fn name_ld(i: u32) -> f32          element i of the buffer (offsets come in Params)
//   fn name_st(i: u32, v: f32)         only for written operands
//   const has_name: bool               false for an absent optional operand (stub accessors,
//                                      no binding: capturing nothing costs nothing)
// u32 operands (argmax ids) read and write u32; a buffer shared by f32 and u32 operands is
// declared array<u32> and the f32 accessors bitcast (free on GPUs).
//
// Pipelines are keyed by the op, its variant and the aliasing LAYOUT (which operand sits in which
// binding). prepare*() compiles the all-distinct layout asynchronously; another layout met at
// encode time (encoders are synchronous) is compiled then with createComputePipeline from the
// source that prepare*() loaded, once per context.

import type { GpuContext } from './context.ts';
import { UsageError } from '../errors.ts';

export interface OperandSpec {
  name: string;
  write?: boolean;
  type?: 'f32' | 'u32';
}

export interface Operand extends OperandSpec {
  /** null: an absent optional operand. */
  buffer: GPUBuffer | null;
}

export interface Layout {
  /** One entry per distinct buffer: bound at @binding(index). */
  buffers: GPUBuffer[];
  /** Binding index of each operand, −1 when absent. */
  slots: number[];
  /** e.g. "out:0w,a:0,b:1" — part of the pipeline key. */
  key: string;
}

/** Groups operands by buffer. */
export function layoutOf(ops: Operand[]): Layout {
  const buffers: GPUBuffer[] = [];
  const slots = ops.map((o) => {
    if (!o.buffer) return -1;
    let s = buffers.indexOf(o.buffer);
    if (s < 0) { s = buffers.length; buffers.push(o.buffer); }
    return s;
  });
  return { buffers, slots, key: layoutKey(ops, slots) };
}

/** The layout in which every present operand has its own buffer (what prepare*() compiles). */
export function distinctSlots(present: boolean[]): number[] {
  let next = 0;
  return present.map((p) => (p ? next++ : -1));
}

function layoutKey(ops: OperandSpec[], slots: number[]): string {
  return ops.map((o, i) => `${o.name}:${slots[i]! < 0 ? '-' : slots[i]}${o.write ? 'w' : ''}`).join(',');
}

/** WGSL declarations and accessors for operands placed in `slots`; Params (the kernel's struct)
 *  becomes `p` at the binding after the last buffer. */
export function bindingsWgsl(ops: OperandSpec[], slots: number[]): string {
  const n = Math.max(-1, ...slots) + 1;
  const lines: string[] = [];
  for (let s = 0; s < n; s++) {
    const users = ops.filter((_, i) => slots[i] === s);
    const type = users.every((o) => (o.type ?? 'f32') === 'f32') ? 'f32' : 'u32';
    const access = users.some((o) => o.write) ? 'read_write' : 'read';
    lines.push(`@group(0) @binding(${s}) var<storage, ${access}> buf${s}: array<${type}>;`);
  }
  lines.push(`@group(0) @binding(${n}) var<uniform> p: Params;`);
  ops.forEach((o, i) => {
    const s = slots[i]!;
    const t = o.type ?? 'f32';
    lines.push(`const has_${o.name} = ${s >= 0};`);
    if (s < 0) {
      lines.push(`fn ${o.name}_ld(i: u32) -> ${t} { return ${t}(0); }`);
      if (o.write) lines.push(`fn ${o.name}_st(i: u32, v: ${t}) {}`);
      return;
    }
    const bufType = ops.some((q, j) => slots[j] === s && (q.type ?? 'f32') !== 'f32') ? 'u32' : 'f32';
    const cast = bufType !== t;
    lines.push(`fn ${o.name}_ld(i: u32) -> ${t} { return ${cast ? `bitcast<${t}>(buf${s}[i])` : `buf${s}[i]`}; }`);
    if (o.write) lines.push(`fn ${o.name}_st(i: u32, v: ${t}) { buf${s}[i] = ${cast ? `bitcast<${bufType}>(v)` : 'v'}; }`);
  });
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------
// Pipelines per (op variant, layout)

const sources = new Map<string, string>();                                    // base key → kernel WGSL
const lazy = new WeakMap<GpuContext, Map<string, GPUComputePipeline>>();    // layouts met at encode time

/** A kernel variant: its source (shared helpers first, then the kernel) and override constants. */
export interface KernelVariant {
  /** Op and variant, e.g. "attention/flash". */
  base: string;
  ops: OperandSpec[];
  constants?: Record<string, number>;
}

/** Loads the source and compiles the variant for the given operand presence (all distinct). */
export async function prepareVariant(ctx: GpuContext, v: KernelVariant, source: () => Promise<string>, present: boolean[] = v.ops.map(() => true)): Promise<void> {
  let code = sources.get(v.base);
  if (code === undefined) {
    code = await source();
    sources.set(v.base, code);
  }
  const slots = distinctSlots(present);
  const body = code;
  await ctx.pipeline(`${v.base}|${layoutKey(v.ops, slots)}`, () => bindingsWgsl(v.ops, slots) + body, v.constants);
}

/** The pipeline for a variant in a concrete layout (synchronous; a map lookup after the first call). */
export function pipelineFor(ctx: GpuContext, v: KernelVariant, layout: Layout): GPUComputePipeline {
  const key = `${v.base}|${layout.key}`;
  let map = lazy.get(ctx);
  if (!map) { map = new Map(); lazy.set(ctx, map); }
  const hit = map.get(key);
  if (hit) return hit;
  let pipeline: GPUComputePipeline;
  try {
    pipeline = ctx.pipelineReady(key);
  } catch {
    // not compiled by prepare*(): an aliasing layout, compiled now from the source prepare*() loaded
    const code = sources.get(v.base);
    if (code === undefined) throw new Error(`kernel ${v.base} is not prepared: await its prepare function before encoding`);
    ctx.device.pushErrorScope('validation');
    const module = ctx.device.createShaderModule({ label: key, code: bindingsWgsl(v.ops, layout.slots) + code });
    pipeline = ctx.device.createComputePipeline({ label: key, layout: 'auto', compute: { module, entryPoint: 'main', constants: v.constants } });
    // cannot throw from here (the error arrives later): say loudly which kernel and layout failed
    void ctx.device.popErrorScope().then((e) => { if (e) console.error(`WGSL ${key}: ${e.message}`); });
  }
  map.set(key, pipeline);
  return pipeline;
}

// ---------------------------------------------------------------------------------------------
// Small shared pieces

/** Raw bits of an f32, for packing float fields into a Uint32Array of Params. */
export function f32bits(x: number): number {
  const b = new Float32Array([x]);
  return new Uint32Array(b.buffer)[0]!;
}

/** Workgroup counts for `count` groups: x at most the per-dimension limit, y the rest. Kernels
 *  recover the linear index as wid.x + wid.y * nwg.x and return when it is ≥ count. */
export function grid(ctx: GpuContext, count: number): [number, number] {
  const max = ctx.caps.maxComputeWorkgroupsPerDimension;
  const x = Math.max(1, Math.min(count, max));
  return [x, Math.max(1, Math.ceil(count / x))];
}

/** Checks that an operand region lies inside its buffer (a clear error instead of a silent
 *  out-of-bounds read, which WGSL clamps). */
export function checkRange(what: string, buffer: GPUBuffer, offset: number, elements: number, bytesPerElement = 4): void {
  if (!Number.isInteger(offset) || offset < 0) throw new UsageError(what, `offset ${offset} must be a non-negative integer (in elements)`);
  const end = (offset + elements) * bytesPerElement;
  if (end > buffer.size) {
    throw new UsageError(what, `elements ${offset}..${offset + elements} end at byte ${end} but the buffer "${buffer.label}" holds ${buffer.size} bytes`,
      'Allocate the buffer for the whole tensor or pass a smaller size');
  }
}
