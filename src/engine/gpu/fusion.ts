// Which fused kernels (kernels/fused-matvec) a decoded token can use with these weights on this
// device: worked out once per weights, each entry null where the device or the tensors' layout
// rule it out (then forward.ts records the unfused kernels). A fused kernel skips writing the
// activations it folds away (the normed x, gate and up, a sublayer's output before the residual
// add), so forward.ts picks, layer by layer, the variant that still writes every hooked or edited
// tensor of this run.

import type { GpuContext } from './context.ts';
import type { GpuWeights } from './weights.ts';
import { fusedMatvecUnsupported, prepareFusedMatvec, type FusedMatvec } from '../../../kernels/fused-matvec/fused-matvec.gpu.ts';

export interface BlockFusions {
  qkvNormRope: FusedMatvec | null; // attention RMSNorm + q, k, v, with RoPE on q and k as they are written
  qkvRope: FusedMatvec | null;     // q, k, v with RoPE (attn_norm hooked)
  qkvNorm: FusedMatvec | null;     // attention RMSNorm + q, k, v (hook_q / hook_k hooked: RoPE apart)
  qkv: FusedMatvec | null;         // q, k, v (attn_norm and hook_q / hook_k hooked)
  swigluNorm: FusedMatvec | null;  // FFN RMSNorm + gate, up, silu(gate)·up
  swiglu: FusedMatvec | null;      // gate, up, silu(gate)·up (ffn_norm hooked)
  gateUpNorm: FusedMatvec | null;  // FFN RMSNorm + gate, up written (hook_gate / hook_up hooked)
  gateUp: FusedMatvec | null;      // gate, up written (both hooked)
  oAdd: FusedMatvec | null;        // x += z · W_Oᵀ
  downAdd: FusedMatvec | null;     // x += act · W_downᵀ
}

export interface Fusions {
  blocks: BlockFusions[];
  unembedNorm: FusedMatvec | null; // final RMSNorm + unembedding
}

const plans = new WeakMap<GpuWeights, Fusions>();
const hookedReady = new WeakSet<GpuWeights>();
const unfused = new WeakSet<GpuContext>();

/** Turns the fused kernels off (or on again) for a context: tests compare both paths with it,
 *  benchmarks count the unfused dispatches. */
export function setFusion(ctx: GpuContext, on: boolean): void {
  if (on) unfused.delete(ctx);
  else unfused.add(ctx);
}

/** Whether decoded tokens on this context use the fused kernels. */
export function fusionOn(ctx: GpuContext): boolean {
  return !unfused.has(ctx);
}

/** The fusions of these weights (computed once). */
export function fusionsFor(ctx: GpuContext, w: GpuWeights): Fusions {
  let f = plans.get(w);
  if (f) return f;
  const ok = (v: FusedMatvec) => (fusedMatvecUnsupported(ctx, v) === null ? v : null);
  f = {
    blocks: w.blocks.map((b) => ({
      qkvNormRope: ok({ mode: 'split', weights: [b.wq, b.wk, b.wv], norm: true, rope: { dHead: w.config.dHead } }),
      qkvRope: ok({ mode: 'split', weights: [b.wq, b.wk, b.wv], norm: false, rope: { dHead: w.config.dHead } }),
      qkvNorm: ok({ mode: 'split', weights: [b.wq, b.wk, b.wv], norm: true }),
      qkv: ok({ mode: 'split', weights: [b.wq, b.wk, b.wv], norm: false }),
      swigluNorm: ok({ mode: 'swiglu', weights: [b.wGate, b.wUp], norm: true }),
      swiglu: ok({ mode: 'swiglu', weights: [b.wGate, b.wUp], norm: false }),
      gateUpNorm: ok({ mode: 'split', weights: [b.wGate, b.wUp], norm: true }),
      gateUp: ok({ mode: 'split', weights: [b.wGate, b.wUp], norm: false }),
      oAdd: ok({ mode: 'add', weights: [b.wo], norm: false }),
      downAdd: ok({ mode: 'add', weights: [b.wDown], norm: false }),
    })),
    unembedNorm: ok({ mode: 'split', weights: [w.unembed], norm: true }),
  };
  plans.set(w, f);
  return f;
}

/** Compiles the variants a token uses when nothing is hooked (`hooked`: also the rest). */
export async function prepareFusions(ctx: GpuContext, w: GpuWeights, hooked = false): Promise<void> {
  if (hooked && hookedReady.has(w)) return;
  const f = fusionsFor(ctx, w);
  const wanted = f.blocks.flatMap((b) => hooked
    ? [b.qkvRope, b.qkvNorm, b.qkv, b.swiglu, b.gateUpNorm, b.gateUp]
    : [b.qkvNormRope, b.swigluNorm, b.oAdd, b.downAdd]);
  if (!hooked) wanted.push(f.unembedNorm);
  // one pipeline per distinct variant: ctx.pipeline shares the compilation of equal keys
  await Promise.all(wanted.filter((v): v is FusedMatvec => v !== null).map((v) => prepareFusedMatvec(ctx, v)));
  if (hooked) hookedReady.add(w);
}
