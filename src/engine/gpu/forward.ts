// The forward pass on the GPU: src/engine/forward.ts step by step, each CPU kernel call replaced by
// its WGSL twin (kernels/<op>/<op>.gpu.ts), every dispatch of the chunk recorded into ONE Step
// with ONE readback at its end. A short chunk (a decoded token) is sent to the GPU in a few pieces
// (Step.flush every FLUSH_LAYERS layers) so that the GPU runs the first layers while the CPU
// records the last: on a fast GPU, recording a token's dispatches (5 per layer, fused) takes about as
// long as running them.
//
// Capture: each selected activation is copied, at its point in the command stream, into a staging
// buffer of the same submission (Step.read), and handed to the recorder when the step is done;
// attention scores and patterns are written only for the layers that record them. Capturing
// nothing records no copy at all. Logits are read back only as far as they are needed: the top-k
// ids of the last row (greedy decoding reads 4 bytes), or whole rows.
//
// Keys and values are written by the projections straight into the KV cache (at the chunk's
// positions), and rotated there; hook_k / hook_rot_k / hook_v read that region.
//
// A decoded token (n = 1) runs fused kernels (kernels/fused-matvec, chosen in fusion.ts): each
// RMSNorm folded into the products after it, q, k and v in one dispatch with RoPE applied as q and
// k are written, gate, up and SiLU·mul in one, the residual adds into the o and down projections:
// 5 dispatches per layer instead of 15. A layer whose folded-away activations (the normed x, q and
// k before RoPE, gate and up, a sublayer's output) are hooked or edited in this run records the
// unfused kernels for those steps instead.

import type { ModelWeights } from '../weights.ts';
import type { BlockHook, HookSelection } from '../hooks.ts';
import type { Recorder } from '../capture.ts';
import { headOutputs } from '../forward.ts';
import { chunkEdits, type EditPlan } from '../edits.ts';
import { GpuEdits } from './edits.ts';
import { editRows } from '../../../kernels/edit/edit.cpu.ts';
import { prepareEdit } from '../../../kernels/edit/edit.gpu.ts';
import type { GpuContext, Step } from './context.ts';
import type { F32Ref } from './tensor.ts';
import type { GpuWeights } from './weights.ts';
import type { GpuRunState } from './state.ts';
import { GpuStepError } from './failure.ts';
import { encodeEmbedding, prepareEmbedding } from '../../../kernels/embedding/embedding.gpu.ts';
import { encodeMatmul, prepareMatmul } from '../../../kernels/matmul/matmul.gpu.ts';
import { encodeRmsnorm, prepareRmsnorm } from '../../../kernels/rmsnorm/rmsnorm.gpu.ts';
import { encodeRopeQK, prepareRope, prepareRopeQK } from '../../../kernels/rope/rope.gpu.ts';
import { encodeFusedMatvec } from '../../../kernels/fused-matvec/fused-matvec.gpu.ts';
import { fusionOn, fusionsFor, prepareFusions } from './fusion.ts';
import { encodeAttention, prepareAttention } from '../../../kernels/attention/attention.gpu.ts';
import { encodeSiluMul, prepareSiluMul } from '../../../kernels/silu-mul/silu-mul.gpu.ts';
import { encodeAdd, prepareAdd } from '../../../kernels/add/add.gpu.ts';
import { encodeArgmax, encodeLensRows, encodeTopK, LENS_STATS_WORDS, prepareArgmax, prepareLensRows, prepareTopK } from '../../../kernels/argmax/argmax.gpu.ts';
import type { LensRowsResult } from '../../../kernels/argmax/argmax.cpu.ts';

/** A chunk of at most this many tokens is flushed to the GPU every FLUSH_LAYERS layers. */
const FLUSH_MAX_TOKENS = 4;
const FLUSH_LAYERS = 4;

/** Which logits a chunk reads back. */
export type LogitsRequest =
  | { rows: number }      // the last `rows` rows of the chunk (0: none), all of vocab each
  | { top: number };      // the top-k (1 ≤ k ≤ 64) ids and logits of the chunk's last row

export interface GpuForwardOptions {
  hooks: HookSelection;
  recorder: Recorder | null;
  logits: LogitsRequest;
  /** The CPU weights: attn.hook_result (per-head outputs) is computed from the captured z on the CPU. */
  cpuWeights: ModelWeights;
  /** Interventions (src/engine/edits.ts), applied with kernels/edit as forward.ts applies them. */
  edits?: EditPlan | null;
  /** Start at this layer with the chunk's residual rows entering it (forward.ts ForwardOptions). */
  startLayer?: { layer: number; residual: Float32Array };
}

export interface GpuForwardResult {
  /** [rows, vocab] for { rows }, empty otherwise. */
  logits: Float32Array;
  /** For { top: k }: ids most likely first (lowest id on ties), and their logits (null for k = 1:
   *  greedy decoding reads back the id alone). */
  top: { ids: Uint32Array; logits: Float32Array | null } | null;
}

/** Compiles every pipeline the forward pass of these weights uses. */
export async function prepareForward(ctx: GpuContext, g: GpuWeights): Promise<void> {
  await Promise.all([
    prepareEmbedding(ctx, g.embed.layout),
    ...g.matmulLayouts.map((l) => prepareMatmul(ctx, l)),
    prepareRmsnorm(ctx), prepareRope(ctx), prepareRopeQK(ctx), prepareAttention(ctx), prepareSiluMul(ctx), prepareAdd(ctx), prepareArgmax(ctx), prepareTopK(ctx), prepareLensRows(ctx), prepareEdit(ctx),
    prepareFusions(ctx, g),
  ]);
}

/** A capture scheduled in the step, delivered to the recorder after it. */
type Pending =
  | { kind: 'rows'; name: string; rowSize: number; data: Promise<ArrayBuffer> }
  | { kind: 'attention'; name: string; data: Promise<ArrayBuffer> }
  | { kind: 'result'; name: string; z: Promise<ArrayBuffer>; layer: number };

/**
 * Runs one chunk (tokens at positions start .. start+n−1) through the model on the GPU, appending
 * its keys and values to the KV cache. Throws GpuStepError when the device fails (lost, out of
 * memory, a validation error): the caller must not trust anything this step touched.
 */
export async function forwardGpu(
  ctx: GpuContext, w: GpuWeights, s: GpuRunState, tokens: ArrayLike<number>, start: number, opts: GpuForwardOptions,
): Promise<GpuForwardResult> {
  return (await sendForwardGpu(ctx, w, s, tokens, start, opts)).result;
}

/**
 * forwardGpu in two halves: resolves once the chunk is recorded and submitted, with `result`, the
 * promise of what it reads back. Steps submitted one after another run on the GPU in that order,
 * so a later step may be sent before an earlier one's result is in.
 *
 * `tokens` null: one token whose id is the argmax of the step submitted before (its `top: 1`),
 * copied on the GPU: greedy decoding runs ahead without waiting for the id to be read back.
 * Such a step records no hooks and applies no edits (they would need the id on the CPU).
 */
export async function sendForwardGpu(
  ctx: GpuContext, w: GpuWeights, s: GpuRunState, tokens: ArrayLike<number> | null, start: number, opts: GpuForwardOptions,
): Promise<{ result: Promise<GpuForwardResult> }> {
  const c = w.config;
  const n = tokens ? tokens.length : 1;
  if (!tokens && (opts.hooks.any || opts.edits)) throw new Error('a step fed the previous argmax records no hooks and applies no edits');
  const d = c.dModel, qd = c.nHeads * c.dHead, kvd = c.nKvHeads * c.dHead, kLen = start + n;
  const heads = { nq: n, start, nHeads: c.nHeads, nKvHeads: c.nKvHeads, dHead: c.dHead };
  const { hooks } = opts;
  const g = hooks.global;
  const at0 = (buffer: GPUBuffer): F32Ref => ({ buffer, offset: 0 });
  if (ctx.lost) throw new GpuStepError(`the WebGPU device was lost: ${ctx.lost.message || ctx.lost.reason}`);

  ctx.device.pushErrorScope('out-of-memory');
  ctx.device.pushErrorScope('validation');
  let done: Promise<void>;
  const pending: Pending[] = [];
  let logitsRead: Promise<ArrayBuffer>[] = [];
  let topRead: Promise<ArrayBuffer>[] = [];
  const wantTop = 'top' in opts.logits ? opts.logits.top : 0;
  // interventions: this chunk's edits compiled and uploaded before the step is recorded
  let ge: GpuEdits | null = null;
  // a decoded token uses the fused kernels; those for hooked layers are compiled on first use
  const fused = n === 1 && fusionOn(ctx) ? fusionsFor(ctx, w) : null;
  if (fused && (hooks.any || opts.edits)) await prepareFusions(ctx, w, true);
  try {
    if (opts.edits) ge = new GpuEdits(ctx, opts.edits, c, start, n);
    const step = ctx.begin('forward');
    // every readback of the step; when the step fails they all reject, and only `done` is awaited
    const read = (buffer: GPUBuffer, offset: number, size: number) => {
      const p = step.read(buffer, offset, size);
      p.catch(() => undefined);
      return p;
    };
    s.ensureChunk(n);
    s.ensurePositions(kLen, step);
    if (tokens) ctx.write(s.ids, 0, Uint32Array.from(tokens));
    else {
      step.copy(s.topIds, 0, s.ids, 0, 4);                               // the previous step's argmax
      ctx.stats.chained++;
    }
    const x = at0(s.x);                                                    // [n, d_model] the residual stream
    const xb = at0(s.xb), q = at0(s.q), z = at0(s.z), out = at0(s.out), gate = at0(s.gate), up = at0(s.up);
    const scale = at0(s.scale), normalized = at0(s.normalized);
    const rec = (name: string, buffer: GPUBuffer, rowSize: number, offset = 0) =>
      pending.push({ kind: 'rows', name, rowSize, data: read(buffer, 4 * offset, 4 * n * rowSize) });

    const first = opts.startLayer?.layer ?? 0;
    if (opts.startLayer) {
      ctx.write(s.x, 0, opts.startLayer.residual.subarray(0, n * d));     // the residual entering layer `first`
    } else {
      encodeEmbedding(ctx, step, x, w.embed, s.ids, 0, n);                // token embedding
      ge?.apply(step, 'hook_embed', x);
      if (g.hook_embed) rec('hook_embed', s.x, d);
    }

    for (let l = first; l < c.nLayers; l++) {
      const b = w.blocks[l]!, on = hooks.blocks[l]!;
      const kCache = s.keyCache[l]!, vCache = s.valueCache[l]!;          // [positions, n_kv_heads, d_head]
      const kNew: F32Ref = { buffer: kCache, offset: start * kvd };        // this chunk's rows of the cache
      const vNew: F32Ref = { buffer: vCache, offset: start * kvd };
      const at = (hook: BlockHook, buffer: GPUBuffer, rowSize: number, offset = 0) => rec(`blocks.${l}.${hook}`, buffer, rowSize, offset);
      const edit = (hook: BlockHook, ref: F32Ref) => ge?.apply(step, `blocks.${l}.${hook}`, ref);
      // hooks this run records or edits at layer l: a fused kernel must not skip them
      const edited = (hook: BlockHook) => ge?.has(`blocks.${l}.${hook}`) ?? false;
      const hooked = (...names: BlockHook[]) => names.some((h) => on[h] || edited(h));
      const F = fused?.blocks[l] ?? null;
      // a block's RMSNorm into xb, unfused, with its hooks (scale, normalized, out)
      const norm = (which: 'attn_norm' | 'ffn_norm', weight: typeof b.attnNorm) => {
        encodeRmsnorm(ctx, step, xb, x, at0(weight), n, d, c.rmsEps,
          on[`${which}.hook_scale`] ? scale : undefined, on[`${which}.hook_normalized`] ? normalized : undefined);
        if (on[`${which}.hook_scale`]) at(`${which}.hook_scale`, s.scale, 1);
        if (on[`${which}.hook_normalized`]) at(`${which}.hook_normalized`, s.normalized, d);
        edit(`${which}.hook_out`, xb);
        if (on[`${which}.hook_out`]) at(`${which}.hook_out`, s.xb, d);
      };
      edit('hook_resid_pre', x);
      if (on.hook_resid_pre) at('hook_resid_pre', s.x, d);

      // ---- attention ----
      // the fused q, k, v: with the RMSNorm unless its hooks are on, with RoPE unless q or k before it are
      const normOk = !hooked('attn_norm.hook_scale', 'attn_norm.hook_normalized', 'attn_norm.hook_out');
      const ropeOk = !hooked('attn.hook_q', 'attn.hook_k');
      const qkv = F && ((normOk && ropeOk && F.qkvNormRope) || (ropeOk && F.qkvRope) || (normOk && F.qkvNorm) || F.qkv);
      if (!qkv?.norm) norm('attn_norm', b.attnNorm);                      // attention RMSNorm
      if (qkv) {                                                           // (RMSNorm folded in) q, k, v in one dispatch (RoPE too)
        encodeFusedMatvec(ctx, step, qkv, qkv.norm ? x : xb, [q, kNew, vNew], qkv.norm ? { weight: at0(b.attnNorm), eps: c.rmsEps } : undefined,
          qkv.rope ? { table: s.rope, position: start } : undefined);
      } else {
        encodeMatmul(ctx, step, q, xb, b.wq, n);                          // q = x · Wqᵀ  [n, n_heads, d_head]
        encodeMatmul(ctx, step, kNew, xb, b.wk, n);                       // k = x · Wkᵀ  [n, n_kv_heads, d_head], into the cache
        encodeMatmul(ctx, step, vNew, xb, b.wv, n);                       // v = x · Wvᵀ  [n, n_kv_heads, d_head], into the cache
      }
      edit('attn.hook_q', q); edit('attn.hook_k', kNew); edit('attn.hook_v', vNew);
      if (on['attn.hook_q']) at('attn.hook_q', s.q, qd);
      if (on['attn.hook_k']) at('attn.hook_k', kCache, kvd, start * kvd);
      if (on['attn.hook_v']) at('attn.hook_v', vCache, kvd, start * kvd);

      if (!qkv?.rope) encodeRopeQK(ctx, step, q, kNew, n, c.nHeads, c.nKvHeads, c.dHead, start, s.ropeTable!); // RoPE on q and k (adjacent pairs)
      edit('attn.hook_rot_q', q); edit('attn.hook_rot_k', kNew);
      if (on['attn.hook_rot_q']) at('attn.hook_rot_q', s.q, qd);
      if (on['attn.hook_rot_k']) at('attn.hook_rot_k', kCache, kvd, start * kvd);

      const area = c.nHeads * n * kLen;                                    // [n_heads, n, k_pos]
      const scores = on['attn.hook_scores'] ? at0(s.ensureAttention('scores', area)) : undefined;
      const patternEdits = opts.edits?.blocks[l]?.has('attn.hook_pattern') ?? false;
      const pattern = on['attn.hook_pattern'] || patternEdits ? at0(s.ensureAttention('pattern', area)) : undefined;
      encodeAttention(ctx, step, z, q, at0(kCache), at0(vCache), heads, scores, pattern); // causal GQA: z = softmax(q·kᵀ/√d_head) · v
      if (patternEdits) ge!.pattern(step, l, pattern!.buffer, s.z, vCache);
      if (scores) pending.push({ kind: 'attention', name: `blocks.${l}.attn.hook_scores`, data: read(scores.buffer, 0, 4 * area) });
      if (pattern && on['attn.hook_pattern']) pending.push({ kind: 'attention', name: `blocks.${l}.attn.hook_pattern`, data: read(pattern.buffer, 0, 4 * area) });
      edit('attn.hook_z', z);
      if (on['attn.hook_z']) at('attn.hook_z', s.z, qd);
      if (on['attn.hook_result']) pending.push({ kind: 'result', name: `blocks.${l}.attn.hook_result`, layer: l, z: read(s.z, 0, 4 * n * qd) });

      const oAdd = F && !hooked('hook_attn_out') && !edited('attn.hook_result') ? F.oAdd : null;
      if (oAdd) encodeFusedMatvec(ctx, step, oAdd, z, [x]);               // x += z · Woᵀ: output projection and residual
      else {
        encodeMatmul(ctx, step, out, z, b.wo, n);                         // output projection: z · Woᵀ  [n, d_model]
        ge?.result(step, l, s.out, s.z, b.wo);                            // + Σ_h (r'_h − r_h) for attn.hook_result edits
        edit('hook_attn_out', out);
        if (on.hook_attn_out) at('hook_attn_out', s.out, d);
        encodeAdd(ctx, step, x, x, out, n * d);                           // residual
      }
      edit('hook_resid_mid', x);
      if (on.hook_resid_mid) at('hook_resid_mid', s.x, d);

      // ---- feed-forward (SwiGLU) ----
      const normIn = !hooked('ffn_norm.hook_scale', 'ffn_norm.hook_normalized', 'ffn_norm.hook_out');
      const ffn = F && (hooked('ffn.hook_gate', 'ffn.hook_up')
        ? (normIn && F.gateUpNorm) || F.gateUp
        : (normIn && F.swigluNorm) || F.swiglu);
      if (!ffn?.norm) norm('ffn_norm', b.ffnNorm);                        // FFN RMSNorm
      const ffnNorm = ffn?.norm ? { weight: at0(b.ffnNorm), eps: c.rmsEps } : undefined;
      if (ffn?.mode === 'swiglu') {
        encodeFusedMatvec(ctx, step, ffn, ffnNorm ? x : xb, [up], ffnNorm); // (RMSNorm folded in) act = silu(x·W_gateᵀ) · (x·W_upᵀ) into up
      } else {
        if (ffn) encodeFusedMatvec(ctx, step, ffn, ffnNorm ? x : xb, [gate, up], ffnNorm); // (RMSNorm folded in) gate, up in one dispatch
        else {
          encodeMatmul(ctx, step, gate, xb, b.wGate, n);                  // gate = x · W_gateᵀ  [n, d_ffn]
          encodeMatmul(ctx, step, up, xb, b.wUp, n);                      // up   = x · W_upᵀ    [n, d_ffn]
        }
        edit('ffn.hook_gate', gate); edit('ffn.hook_up', up);
        if (on['ffn.hook_gate']) at('ffn.hook_gate', s.gate, c.dFfn);
        if (on['ffn.hook_up']) at('ffn.hook_up', s.up, c.dFfn);
        encodeSiluMul(ctx, step, up, gate, up, n * c.dFfn);               // act = silu(gate) · up (into up)
      }
      edit('ffn.hook_act', up);
      if (on['ffn.hook_act']) at('ffn.hook_act', s.up, c.dFfn);
      const downAdd = F && !hooked('hook_ffn_out') ? F.downAdd : null;
      if (downAdd) encodeFusedMatvec(ctx, step, downAdd, up, [x]);        // x += act · W_downᵀ: down projection and residual
      else {
        encodeMatmul(ctx, step, out, up, b.wDown, n);                     // down: act · W_downᵀ  [n, d_model]
        edit('hook_ffn_out', out);
        if (on.hook_ffn_out) at('hook_ffn_out', s.out, d);
        encodeAdd(ctx, step, x, x, out, n * d);                           // residual
      }
      edit('hook_resid_post', x);
      if (on.hook_resid_post) at('hook_resid_post', s.x, d);
      // a short chunk: let the GPU start on these layers while the next ones are recorded
      if (!ge && n <= FLUSH_MAX_TOKENS && (l + 1) % FLUSH_LAYERS === 0 && l + 1 < c.nLayers) step.flush();
    }

    // ---- output ----
    const finalHooked = g['final_norm.hook_scale'] || g['final_norm.hook_normalized'] || g['final_norm.hook_out'] || (ge?.has('final_norm.hook_out') ?? false);
    const unembedNorm = fused && !finalHooked ? fused.unembedNorm : null;
    if (!unembedNorm) {
      encodeRmsnorm(ctx, step, xb, x, at0(w.finalNorm), n, d, c.rmsEps,   // final RMSNorm
        g['final_norm.hook_scale'] ? scale : undefined, g['final_norm.hook_normalized'] ? normalized : undefined);
      if (g['final_norm.hook_scale']) rec('final_norm.hook_scale', s.scale, 1);
      if (g['final_norm.hook_normalized']) rec('final_norm.hook_normalized', s.normalized, d);
      ge?.apply(step, 'final_norm.hook_out', xb);
      if (g['final_norm.hook_out']) rec('final_norm.hook_out', s.xb, d);
    }

    // logits = x · W_Uᵀ for the rows asked for, in groups that fit one binding, each read back
    // (or reduced to its top-k) right after it is computed
    const rows = g.hook_logits ? n : 'top' in opts.logits ? 1 : Math.min(Math.max(opts.logits.rows, 0), n);
    const per = s.logitRowsPerBinding;
    const logits = rows > 0 ? s.ensureLogits(Math.min(rows, per)) : null;
    let lastRow = 0;                                                       // the chunk's last row, in `logits`
    for (let from = n - rows; from < n; from += per) {
      const m = Math.min(per, n - from);
      lastRow = m - 1;
      if (unembedNorm) encodeFusedMatvec(ctx, step, unembedNorm, x, [at0(logits!)], { weight: at0(w.finalNorm), eps: c.rmsEps }); // (final RMSNorm folded in)
      else encodeMatmul(ctx, step, at0(logits!), { buffer: s.xb, offset: from * d }, w.unembed, m);
      if (g.hook_logits || !wantTop) logitsRead.push(read(logits!, 0, 4 * m * c.vocabSize));
    }
    if (wantTop === 1) {
      encodeArgmax(ctx, step, s.topIds, { buffer: logits!, offset: lastRow * c.vocabSize }, 1, c.vocabSize);   // greedy: 4 bytes
      topRead = [read(s.topIds, 0, 4)];
    } else if (wantTop > 1) {
      encodeTopK(ctx, step, s.topIds, s.topValues, { buffer: logits!, offset: lastRow * c.vocabSize }, c.vocabSize, wantTop);
      topRead = [read(s.topIds, 0, 4 * wantTop), read(s.topValues, 0, 4 * wantTop)];
    }
    done = step.submit();
  } catch (e) {
    await popScopes(ctx);
    s.afterSubmit();
    ge?.destroy();
    throw ctx.lost && !(e instanceof GpuStepError) ? new GpuStepError(`the WebGPU device was lost: ${ctx.lost.message}`, e) : e;
  }
  const scopeError = popScopes(ctx);
  return { result: finishForward(ctx, s, tokens, n, start, opts, { done, scopeError, pending, logitsRead, topRead, wantTop, ge }) };
}

/** The second half of sendForwardGpu: waits for the step, then delivers its captures and logits. */
async function finishForward(
  ctx: GpuContext, s: GpuRunState, tokens: ArrayLike<number> | null, n: number, start: number, opts: GpuForwardOptions,
  sent: { done: Promise<void>; scopeError: Promise<string | null>; pending: Pending[]; logitsRead: Promise<ArrayBuffer>[]; topRead: Promise<ArrayBuffer>[]; wantTop: number; ge: GpuEdits | null },
): Promise<GpuForwardResult> {
  const { done, scopeError, pending, logitsRead, topRead, wantTop, ge } = sent;
  const c = s.config, g = opts.hooks.global, d = c.dModel, kLen = start + n;
  try {
    await done;
  } catch (e) {
    throw new GpuStepError(`reading back the results failed: ${(e as Error).message}`, e);
  } finally {
    s.afterSubmit();
    ge?.destroy();
  }
  const err = await scopeError;
  if (err) throw new GpuStepError(err);
  const lost = ctx.lost as GPUDeviceLostInfo | null;                    // (set asynchronously meanwhile)
  if (lost) throw new GpuStepError(`the WebGPU device was lost: ${lost.message || lost.reason}`);

  // ---- deliver the captures ----
  const r = opts.recorder;
  if (g.hook_tokens) r!.rows('hook_tokens', start, Float32Array.from(tokens!), n, 1);
  for (const p of pending) {
    if (p.kind === 'rows') r!.rows(p.name, start, new Float32Array(await p.data), n, p.rowSize);
    else if (p.kind === 'attention') r!.attention(p.name, start, new Float32Array(await p.data), c.nHeads, n);
    else {
      const wo = opts.cpuWeights.blocks[p.layer]!.wo;
      const result = headOutputs(new Float32Array(await p.z), wo, n, c.nHeads, c.dHead);   // [n, n_heads, d_model]
      // the capture shows the edited outputs, as on the CPU
      const edits = opts.edits?.hooks.get(p.name);
      if (edits) for (const { region, src } of chunkEdits(edits, start, n, kLen, c.nHeads)) editRows(result, 0, src, region);
      r!.rows(p.name, start, result, n, c.nHeads * d);
    }
  }
  // the rows read back: rows n − rows .. n − 1 of the chunk, in groups
  const groups = await Promise.all(logitsRead);
  const rowsRead = new Float32Array(groups.reduce((sum, b) => sum + b.byteLength / 4, 0));
  groups.reduce((o, b) => { rowsRead.set(new Float32Array(b), o); return o + b.byteLength / 4; }, 0);
  if (g.hook_logits) r!.rows('hook_logits', start, rowsRead, n, c.vocabSize);
  const asked = 'top' in opts.logits ? 0 : Math.min(Math.max(opts.logits.rows, 0), n);
  const logits = rowsRead.subarray(rowsRead.length - asked * c.vocabSize);
  let top: GpuForwardResult['top'] = null;
  if (wantTop === 1) top = { ids: new Uint32Array(await topRead[0]!), logits: null };
  else if (wantTop > 1) top = { ids: new Uint32Array(await topRead[0]!), logits: new Float32Array(await topRead[1]!) };
  return { logits, top };
}

/** Pops the two error scopes forwardGpu pushes; the first error's message, or null. */
async function popScopes(ctx: GpuContext): Promise<string | null> {
  const [validation, oom] = await Promise.all([ctx.device.popErrorScope(), ctx.device.popErrorScope()]).catch((e: Error) => [
    { message: `the device failed: ${e.message}` } as GPUError, null]);
  if (validation) return `WebGPU validation error: ${validation.message}`;
  if (oom) return `the GPU ran out of memory: ${oom.message}`;
  return null;
}

/**
 * The output head on rows of residuals (the logit lens, a logits row rebuilt from a residual):
 * x [n, d_model] → the final RMSNorm → logits [n, vocab], with the forward pass's own kernels and
 * weights, read back in groups that fit one binding. Its buffers are its own (taken from and
 * returned to the context's pool), so that it can run between the chunks of a run.
 */
export async function outputHeadGpu(ctx: GpuContext, w: GpuWeights, s: GpuRunState, x: Float32Array, n: number): Promise<Float32Array> {
  const V = s.config.vocabSize;
  const parts = await headGpu(ctx, w, s, x, n, 'output head', (step, logits, m) => [step.read(logits, 0, 4 * m * V)], []);
  const out = new Float32Array(n * V);
  let o = 0;
  for (const [b] of parts) { const f = new Float32Array(b!); out.set(f, o); o += f.length; }
  return out;
}

/**
 * The output head for the logit lens: what outputHeadGpu computes, but each group of logits is
 * reduced on the GPU to what the lens keeps of a row (argmax.wgsl stage 3: the top k ≤ 64, the
 * sum of exponentials, the target's rank and value), so 8·k + 12 bytes a row come back instead
 * of 4·vocab (32 MiB per 64 rows at a 128k vocabulary).
 */
export async function lensHeadGpu(ctx: GpuContext, w: GpuWeights, s: GpuRunState, x: Float32Array, n: number, k: number, target: number | null): Promise<LensRowsResult> {
  const V = s.config.vocabSize, per = Math.min(n, s.logitRowsPerBinding);
  const ids = ctx.buffer(4 * per * k, 'lens ids'), vals = ctx.buffer(4 * per * k, 'lens values'), stats = ctx.buffer(4 * per * LENS_STATS_WORDS, 'lens stats');
  const parts = await headGpu(ctx, w, s, x, n, 'lens head', (step, logits, m) => {
    encodeLensRows(ctx, step, ids, vals, stats, { buffer: logits, offset: 0 }, m, V, k, target);
    return [step.read(ids, 0, 4 * m * k), step.read(vals, 0, 4 * m * k), step.read(stats, 0, 4 * m * LENS_STATS_WORDS)];
  }, [ids, vals, stats]);
  const out: LensRowsResult = {
    ids: new Uint32Array(n * k), values: new Float32Array(n * k), sums: new Float32Array(n), ranks: new Uint32Array(n), targetValues: new Float32Array(n),
  };
  let r0 = 0;
  for (const [bi, bv, bs] of parts) {
    const m = bi!.byteLength / 4 / k, words = new Uint32Array(bs!), bits = new Float32Array(bs!);
    out.ids.set(new Uint32Array(bi!), r0 * k);
    out.values.set(new Float32Array(bv!), r0 * k);
    for (let i = 0; i < m; i++) {
      out.sums[r0 + i] = bits[i * LENS_STATS_WORDS]!;
      out.ranks[r0 + i] = words[i * LENS_STATS_WORDS + 1]!;
      out.targetValues[r0 + i] = bits[i * LENS_STATS_WORDS + 2]!;
    }
    r0 += m;
  }
  return out;
}

/**
 * The head's common part: x [n, d_model] → RMSNorm → per group of rows that fits one binding,
 * logits [m, vocab], then `group` records what to read back of them (the reads of one group).
 * `extra`: buffers of the caller's, released here with the head's own.
 */
async function headGpu(ctx: GpuContext, w: GpuWeights, s: GpuRunState, x: Float32Array, n: number, what: string,
  group: (step: Step, logits: GPUBuffer, m: number) => Promise<ArrayBuffer>[], extra: GPUBuffer[]): Promise<ArrayBuffer[][]> {
  const c = s.config, d = c.dModel, V = c.vocabSize;
  if (x.length < n * d) {
    for (const b of extra) ctx.release(b);
    throw new Error(`${what}: ${x.length} values for ${n} rows of ${d}`);
  }
  const per = Math.min(n, s.logitRowsPerBinding);
  const xs = ctx.buffer(4 * n * d, 'head x'), xn = ctx.buffer(4 * n * d, 'head normed x'), logits = ctx.buffer(4 * per * V, 'head logits');
  const owned = [xs, xn, logits, ...extra];
  ctx.device.pushErrorScope('out-of-memory');
  ctx.device.pushErrorScope('validation');
  const reads: Promise<ArrayBuffer>[][] = [];
  let done: Promise<void>;
  try {
    ctx.write(xs, 0, x.subarray(0, n * d));
    const step = ctx.begin(what);
    encodeRmsnorm(ctx, step, { buffer: xn, offset: 0 }, { buffer: xs, offset: 0 }, { buffer: w.finalNorm, offset: 0 }, n, d, c.rmsEps);
    for (let from = 0; from < n; from += per) {
      const m = Math.min(per, n - from);
      encodeMatmul(ctx, step, { buffer: logits, offset: 0 }, { buffer: xn, offset: from * d }, w.unembed, m);
      const got = group(step, logits, m);
      for (const r of got) r.catch(() => undefined);                     // a failed step rejects them all; `done` says why
      reads.push(got);
    }
    done = step.submit();
  } catch (e) {
    await popScopes(ctx);
    for (const b of owned) ctx.release(b);
    throw e instanceof GpuStepError ? e : new GpuStepError(`the ${what} failed: ${(e as Error).message}`, e);
  }
  const scopeError = popScopes(ctx);
  try {
    await done;
    const err = await scopeError;
    if (err) throw new GpuStepError(err);
    return await Promise.all(reads.map((g) => Promise.all(g)));
  } catch (e) {
    throw e instanceof GpuStepError ? e : new GpuStepError(`reading back the ${what} failed: ${(e as Error).message}`, e);
  } finally {
    for (const b of owned) ctx.release(b);
  }
}
