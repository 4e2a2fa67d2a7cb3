// A model's weights on the GPU: the same three-kinds split as src/engine/weights.ts, with every
// matrix uploaded in its stored type (a Q4_0 model stays 4-bit on the GPU; the kernels dequantize
// as they read) and split by rows where it exceeds the binding limit (a 128k-vocabulary embedding).
// Q4_0 and Q8_0 matrices with rows of whole 256-element groups are repacked on the way up into a
// GPU-only layout of the same size that the kernels read with aligned 16-byte loads (layout.ts).
// Norm weights are already f32 on the CPU side and go up as f32. A tied unembedding is the
// embedding's upload, not a second copy: the lookup and the matrix product both read its layout.

import type { ModelConfig } from '../config.ts';
import type { ModelWeights } from '../weights.ts';
import type { GpuCaps } from './device.ts';
import type { GpuContext } from './context.ts';
import { uploadTensor, destroyTensor, type GpuTensor } from './tensor.ts';
import type { Tensor } from '../../formats/tensor.ts';
import type { GpuLayout } from './layout.ts';

export interface GpuBlockWeights {
  attnNorm: GPUBuffer;      // f32 [d_model]
  wq: GpuTensor;            // [n_heads * d_head, d_model]
  wk: GpuTensor;            // [n_kv_heads * d_head, d_model]
  wv: GpuTensor;            // [n_kv_heads * d_head, d_model]
  wo: GpuTensor;            // [d_model, n_heads * d_head]
  ffnNorm: GPUBuffer;       // f32 [d_model]
  wGate: GpuTensor;         // [d_ffn, d_model]
  wUp: GpuTensor;           // [d_ffn, d_model]
  wDown: GpuTensor;         // [d_model, d_ffn]
}

export interface GpuWeights {
  config: ModelConfig;
  embed: GpuTensor;         // [vocab, d_model]
  blocks: GpuBlockWeights[];
  finalNorm: GPUBuffer;     // f32 [d_model]
  unembed: GpuTensor;       // [vocab, d_model]; the same object as `embed` when tied
  /** Every layout a matrix product reads (for preparing pipelines): stored types and repackings. */
  matmulLayouts: GpuLayout[];
  /** Bytes uploaded. */
  bytes: number;
}

export interface UploadOptions {
  /** Largest part of a split tensor (default: the binding limit); tests lower it to force splits. */
  maxPartBytes?: number;
  /** Repack Q4_0 and Q8_0 matrices into their GPU-only layouts (layout.ts; default true); tests
   *  turn it off to compare with the stored layout. */
  repack?: boolean;
}

/** Every matrix of the model, each once (a tied unembedding is the embedding). */
function matrices(w: ModelWeights): Tensor[] {
  const out = [w.embed];
  for (const b of w.blocks) out.push(b.wq, b.wk, b.wv, b.wo, b.wGate, b.wUp, b.wDown);
  if (w.unembed !== w.embed) out.push(w.unembed);
  return out;
}

/** Bytes the weights take on the GPU (matrices in their stored type, norms in f32). */
export function gpuWeightBytes(w: ModelWeights): number {
  const norms = (2 * w.config.nLayers + 1) * w.config.dModel * 4;
  return matrices(w).reduce((s, t) => s + t.data.byteLength, norms);
}

/**
 * Why these weights cannot go to this adapter, or null when they can: a single row larger than
 * one binding (tensors are split by rows, never within one), the activations of one position
 * larger than one binding, or (when the caller knows it) more bytes than the memory budget.
 */
export function gpuWeightsPreflight(w: ModelWeights, caps: GpuCaps, opts: UploadOptions & { budgetBytes?: number } = {}): string | null {
  const limit = Math.min(opts.maxPartBytes ?? Infinity, caps.maxStorageBufferBindingSize, caps.maxBufferSize);
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  for (const t of matrices(w)) {
    const rowBytes = t.data.byteLength / t.shape[0]!;
    if (rowBytes > limit) return `one row of ${t.name} takes ${rowBytes} bytes but the adapter binds at most ${limit}`;
  }
  const c = w.config;
  const widest = 4 * Math.max(c.vocabSize, c.dFfn, c.nHeads * c.dHead, c.dModel);
  if (widest > limit) return `one position's activations take ${widest} bytes but the adapter binds at most ${limit}`;
  const total = gpuWeightBytes(w);
  if (opts.budgetBytes !== undefined && total > opts.budgetBytes) {
    return `the weights take ${mib(total)} on the GPU but only ${mib(opts.budgetBytes)} are available`;
  }
  return null;
}

/** Uploads the weights (the preflight must have passed). */
export function uploadWeights(ctx: GpuContext, w: ModelWeights, opts: UploadOptions = {}): GpuWeights {
  const up = (t: Tensor) => uploadTensor(ctx, t, opts.maxPartBytes, { repack: opts.repack ?? true });
  const norm = (x: Float32Array, name: string) => ctx.upload(x, name);
  const embed = up(w.embed);
  const blocks = w.blocks.map((b, i): GpuBlockWeights => ({
    attnNorm: norm(b.attnNorm, `blk.${i}.attn_norm`),
    wq: up(b.wq), wk: up(b.wk), wv: up(b.wv), wo: up(b.wo),
    ffnNorm: norm(b.ffnNorm, `blk.${i}.ffn_norm`),
    wGate: up(b.wGate), wUp: up(b.wUp), wDown: up(b.wDown),
  }));
  const unembed = w.unembed === w.embed ? embed : up(w.unembed);
  // the embedding is read by the lookup kernel; every other matrix (and a tied unembedding) by matmul
  const layouts = new Set<GpuLayout>([unembed.layout]);
  for (const b of blocks) for (const t of [b.wq, b.wk, b.wv, b.wo, b.wGate, b.wUp, b.wDown]) layouts.add(t.layout);
  return {
    config: w.config, embed, blocks, finalNorm: norm(w.finalNorm, 'output_norm'), unembed,
    matmulLayouts: [...layouts], bytes: gpuWeightBytes(w),
  };
}

/** Frees every buffer of the weights. */
export function destroyWeights(g: GpuWeights): void {
  const seen = new Set<GpuTensor>();
  const drop = (t: GpuTensor) => { if (!seen.has(t)) { seen.add(t); destroyTensor(t); } };
  drop(g.embed);
  drop(g.unembed);
  for (const b of g.blocks) {
    b.attnNorm.destroy(); b.ffnNorm.destroy();
    for (const t of [b.wq, b.wk, b.wv, b.wo, b.wGate, b.wUp, b.wDown]) drop(t);
  }
  g.finalNorm.destroy();
}
