// THE forward pass: Llama, one chunk of new positions at a time, every activation named.
//
// Read it top to bottom: it is the reference a student reads (and what faster backends must
// agree with). Each step is one kernel call (kernels/*/<op>.cpu.ts) with a comment naming the
// math, followed by the capture of its named activation (DESIGN.md), which costs one boolean
// test when nobody asked for it. The kernels come as a set (kernels/cpu.ts): the readable twins
// by default, or the WebAssembly SIMD kernels with the same signatures (kernels/wasm).
//
// The chunk is tokens[0..n) at positions [start, start + n); the KV cache already holds the keys
// and values of positions 0 .. start−1 (prefill: start = 0 and many positions; decode: one).

import type { ModelWeights } from './weights.ts';
import type { RunState } from './state.ts';
import type { BlockHook, HookSelection } from './hooks.ts';
import type { Recorder } from './capture.ts';
import { JS_KERNELS, type CpuKernels } from '../../kernels/cpu.ts';
import type { ActivationQuant } from '../../kernels/matmul/activation-quant.cpu.ts';
import { getTensorType } from '../formats/quant/index.ts';
import { byteSize, type Tensor } from '../formats/tensor.ts';
import { chunkEdits, resultTouched, type EditPlan, type ResolvedEdit } from './edits.ts';
import { editRows, addPatternValues, EDIT_ADD, type EditRegion } from '../../kernels/edit/edit.cpu.ts';

export interface ForwardOptions {
  /** Which named activations to record (selectHooks); the recorder receives them. */
  hooks: HookSelection;
  recorder: Recorder | null;
  /** Logits are computed for chunk rows logitsFrom .. n−1 (n: none). Recording hook_logits implies 0. */
  logitsFrom: number;
  /**
   * 'llamacpp': round the activations before each weight product as llama.cpp's CPU backend
   * does (f16, bf16, Q8_0 or Q8_K blocks by weight type; kernels/matmul/activation-quant.cpu.ts),
   * for the parity test. Default 'none': exact f32 activations.
   */
  activationQuant?: ActivationQuant;
  /** The kernels (kernels/cpu.ts): default the readable twins; a Session passes the ones it chose. */
  kernels?: CpuKernels;
  /** Interventions (src/engine/edits.ts), applied at each hook before it is recorded or read on. */
  edits?: EditPlan | null;
  /**
   * Start at this layer (default 0): `residual` holds the chunk's rows entering it ([n, d_model],
   * blocks.{layer}.hook_resid_pre as the layers below compute it), so the embedding and the layers
   * below are skipped. Their KV cache rows of the chunk are left as they were (Session RunOptions
   * startLayer says what that means for the cache). Nothing below the layer is recorded or edited.
   */
  startLayer?: { layer: number; residual: Float32Array };
}

/**
 * Runs one chunk through the model, appending its keys and values to the KV cache.
 * Returns the logits of rows logitsFrom .. n−1: [n − logitsFrom, vocab], a view into the run
 * state that the next call overwrites.
 */
export function forward(w: ModelWeights, s: RunState, tokens: ArrayLike<number>, start: number, opts: ForwardOptions): Float32Array {
  const c = w.config;
  const n = tokens.length;
  const d = c.dModel, qd = c.nHeads * c.dHead, kvd = c.nKvHeads * c.dHead;
  const heads = { nq: n, start, nHeads: c.nHeads, nKvHeads: c.nKvHeads, dHead: c.dHead };
  s.ensureChunk(n);
  s.ensurePositions(start + n);
  const { hooks, recorder } = opts;
  const aq = opts.activationQuant ?? 'none';
  const { embedding, rmsnorm, matmul: product, rope, attention, add, siluMul } = opts.kernels ?? JS_KERNELS;
  // every weight product below: kernels/matmul with this call's activation rounding
  const matmul = (out: Float32Array, xs: Float32Array, wt: Tensor, rows: number) => product(out, xs, wt, rows, aq);
  const g = hooks.global;
  const rec = (name: string, data: Float32Array, rowSize: number) => recorder!.rows(name, start, data, n, rowSize);
  const x = s.x;                                                         // [n, d_model] the residual stream
  // interventions: edit(list, data) applies a hook's edits to its chunk rows, in place
  const E = opts.edits ?? null;
  const edit = (list: readonly ResolvedEdit[] | undefined, data: Float32Array, kLen = start + n) => {
    if (list) for (const { region, src } of chunkEdits(list, start, n, kLen, c.nHeads)) editRows(data, 0, src, region);
  };

  const first = opts.startLayer?.layer ?? 0;
  if (opts.startLayer) {
    x.set(opts.startLayer.residual.subarray(0, n * d));                 // the residual entering layer `first`
  } else {
    if (g.hook_tokens) rec('hook_tokens', Float32Array.from(tokens), 1);
    embedding(x, w.embed, tokens, n);                                    // token embedding
    if (E) edit(E.hooks.get('hook_embed'), x);
    if (g.hook_embed) rec('hook_embed', x, d);
  }

  for (let l = first; l < c.nLayers; l++) {
    const b = w.blocks[l]!, on = hooks.blocks[l]!;
    const keys = s.keyCache[l]!, values = s.valueCache[l]!;              // [positions, n_kv_heads, d_head]
    const at = (hook: BlockHook, data: Float32Array, rowSize: number) => rec(`blocks.${l}.${hook}`, data, rowSize);
    const eb = E?.blocks[l] ?? null;                                     // this layer's edits by hook
    if (eb) edit(eb.get('hook_resid_pre'), x);
    if (on.hook_resid_pre) at('hook_resid_pre', x, d);

    // ---- attention ----
    rmsnorm(s.xb, x, b.attnNorm, n, d, c.rmsEps,                         // attention RMSNorm
      on['attn_norm.hook_scale'] ? s.scale : null, on['attn_norm.hook_normalized'] ? s.normalized : null);
    if (on['attn_norm.hook_scale']) at('attn_norm.hook_scale', s.scale, 1);
    if (on['attn_norm.hook_normalized']) at('attn_norm.hook_normalized', s.normalized, d);
    if (eb) edit(eb.get('attn_norm.hook_out'), s.xb);
    if (on['attn_norm.hook_out']) at('attn_norm.hook_out', s.xb, d);

    matmul(s.q, s.xb, b.wq, n);                                          // q = x · Wqᵀ  [n, n_heads, d_head]
    matmul(s.k, s.xb, b.wk, n);                                          // k = x · Wkᵀ  [n, n_kv_heads, d_head]
    matmul(s.v, s.xb, b.wv, n);                                          // v = x · Wvᵀ  [n, n_kv_heads, d_head]
    if (eb) { edit(eb.get('attn.hook_q'), s.q); edit(eb.get('attn.hook_k'), s.k); edit(eb.get('attn.hook_v'), s.v); }
    if (on['attn.hook_q']) at('attn.hook_q', s.q, qd);
    if (on['attn.hook_k']) at('attn.hook_k', s.k, kvd);
    if (on['attn.hook_v']) at('attn.hook_v', s.v, kvd);

    rope(s.q, n, c.nHeads, c.dHead, start, s.rope);                      // RoPE on q and k (adjacent pairs)
    rope(s.k, n, c.nKvHeads, c.dHead, start, s.rope);
    if (eb) { edit(eb.get('attn.hook_rot_q'), s.q); edit(eb.get('attn.hook_rot_k'), s.k); }
    if (on['attn.hook_rot_q']) at('attn.hook_rot_q', s.q, qd);
    if (on['attn.hook_rot_k']) at('attn.hook_rot_k', s.k, kvd);

    keys.set(s.k.subarray(0, n * kvd), start * kvd);                     // append k, v to the KV cache
    values.set(s.v.subarray(0, n * kvd), start * kvd);

    const scores = on['attn.hook_scores'] ? new Float32Array(c.nHeads * n * (start + n)) : null;   // [n_heads, n, k_pos]
    const patternEdits = eb?.get('attn.hook_pattern');
    const pattern = on['attn.hook_pattern'] || patternEdits ? new Float32Array(c.nHeads * n * (start + n)) : null;
    attention(s.z, s.q, keys, values, heads, scores, pattern);           // causal GQA: z = softmax(q·kᵀ/√d_head) · v
    if (patternEdits) editPattern(patternEdits, s.z, pattern!, values, start, n, c.nHeads, c.nKvHeads, c.dHead);
    if (scores) recorder!.attention(`blocks.${l}.attn.hook_scores`, start, scores, c.nHeads, n);
    if (on['attn.hook_pattern']) recorder!.attention(`blocks.${l}.attn.hook_pattern`, start, pattern!, c.nHeads, n);   // (computed unasked for its edits: not recorded)
    if (eb) edit(eb.get('attn.hook_z'), s.z);
    if (on['attn.hook_z']) at('attn.hook_z', s.z, qd);
    const resultEdits = eb?.get('attn.hook_result');
    const result = on['attn.hook_result'] || resultEdits ? headOutputs(s.z, b.wo, n, c.nHeads, c.dHead) : null;  // [n, n_heads, d_model]
    const edited = resultEdits ? result!.slice() : result;
    if (resultEdits) edit(resultEdits, edited!);
    if (on['attn.hook_result']) at('attn.hook_result', edited!, c.nHeads * d);

    matmul(s.out, s.z, b.wo, n);                                         // output projection: z · Woᵀ  [n, d_model]
    if (resultEdits) addResultChange(resultEdits, s.out, edited!, result!, start, n, c.nHeads, d);   // + Σ_h (r'_h − r_h)
    if (eb) edit(eb.get('hook_attn_out'), s.out);
    if (on.hook_attn_out) at('hook_attn_out', s.out, d);
    add(x, x, s.out, n * d);                                             // residual
    if (eb) edit(eb.get('hook_resid_mid'), x);
    if (on.hook_resid_mid) at('hook_resid_mid', x, d);

    // ---- feed-forward (SwiGLU) ----
    rmsnorm(s.xb, x, b.ffnNorm, n, d, c.rmsEps,                          // FFN RMSNorm
      on['ffn_norm.hook_scale'] ? s.scale : null, on['ffn_norm.hook_normalized'] ? s.normalized : null);
    if (on['ffn_norm.hook_scale']) at('ffn_norm.hook_scale', s.scale, 1);
    if (on['ffn_norm.hook_normalized']) at('ffn_norm.hook_normalized', s.normalized, d);
    if (eb) edit(eb.get('ffn_norm.hook_out'), s.xb);
    if (on['ffn_norm.hook_out']) at('ffn_norm.hook_out', s.xb, d);

    matmul(s.gate, s.xb, b.wGate, n);                                    // gate = x · W_gateᵀ  [n, d_ffn]
    matmul(s.up, s.xb, b.wUp, n);                                        // up   = x · W_upᵀ    [n, d_ffn]
    if (eb) { edit(eb.get('ffn.hook_gate'), s.gate); edit(eb.get('ffn.hook_up'), s.up); }
    if (on['ffn.hook_gate']) at('ffn.hook_gate', s.gate, c.dFfn);
    if (on['ffn.hook_up']) at('ffn.hook_up', s.up, c.dFfn);
    siluMul(s.up, s.gate, s.up, n * c.dFfn);                             // act = silu(gate) · up (into up)
    if (eb) edit(eb.get('ffn.hook_act'), s.up);
    if (on['ffn.hook_act']) at('ffn.hook_act', s.up, c.dFfn);
    matmul(s.out, s.up, b.wDown, n);                                     // down: act · W_downᵀ  [n, d_model]
    if (eb) edit(eb.get('hook_ffn_out'), s.out);
    if (on.hook_ffn_out) at('hook_ffn_out', s.out, d);
    add(x, x, s.out, n * d);                                             // residual
    if (eb) edit(eb.get('hook_resid_post'), x);
    if (on.hook_resid_post) at('hook_resid_post', x, d);
  }

  // ---- output ----
  rmsnorm(s.xb, x, w.finalNorm, n, d, c.rmsEps,                          // final RMSNorm
    g['final_norm.hook_scale'] ? s.scale : null, g['final_norm.hook_normalized'] ? s.normalized : null);
  if (g['final_norm.hook_scale']) rec('final_norm.hook_scale', s.scale, 1);
  if (g['final_norm.hook_normalized']) rec('final_norm.hook_normalized', s.normalized, d);
  if (E) edit(E.hooks.get('final_norm.hook_out'), s.xb);
  if (g['final_norm.hook_out']) rec('final_norm.hook_out', s.xb, d);

  const from = g.hook_logits ? 0 : Math.min(Math.max(opts.logitsFrom, 0), n);
  const rows = n - from;
  const logits = s.ensureLogits(rows);                                   // [rows, vocab]
  if (rows > 0) matmul(logits, s.xb.subarray(from * d), w.unembed, rows); // logits = x · W_Uᵀ (W_U = embedding when tied)
  if (g.hook_logits) rec('hook_logits', logits, c.vocabSize);
  return logits.subarray(0, rows * c.vocabSize);
}

/**
 * hook_result: each head's contribution to the attention output, before the heads are summed:
 * result[t, h, :] = W_O[:, h·d_head : (h+1)·d_head] · z[t, h, :]   → [n, n_heads, d_model].
 * Only computed on request. A head's columns need not fill whole quantization blocks, so each row
 * of W_O is dequantized whole.
 */
export function headOutputs(z: Float32Array, wo: Tensor, n: number, nHeads: number, dHead: number): Float32Array {
  const [dModel, inner] = wo.shape as [number, number];
  const type = getTensorType(wo.type);
  const rowBytes = byteSize(type, inner);
  const row = new Float32Array(inner);
  const out = new Float32Array(n * nHeads * dModel);
  for (let i = 0; i < dModel; i++) {
    type.dequantize(wo.data, i * rowBytes, row, 0, inner);
    for (let t = 0; t < n; t++) {
      for (let h = 0; h < nHeads; h++) {
        let sum = 0;
        const zo = (t * nHeads + h) * dHead;
        for (let j = 0; j < dHead; j++) sum += row[h * dHead + j]! * z[zo + j]!;
        out[(t * nHeads + h) * dModel + i] = sum;
      }
    }
  }
  return out;
}

/**
 * attn.hook_pattern edits: the pattern P ([n_heads, n, kLen]) becomes P' in place, and z gets
 * (P' − P) · V for the edited rows (V: the layer's cached values, [kLen, n_kv_heads, d_head]).
 */
function editPattern(list: readonly ResolvedEdit[], z: Float32Array, pattern: Float32Array, values: Float32Array,
  start: number, n: number, nHeads: number, nKvHeads: number, dHead: number): void {
  const kLen = start + n;
  const before = pattern.slice();
  const rows = new Set<number>();
  for (const { region, src } of chunkEdits(list, start, n, kLen, nHeads)) {
    editRows(pattern, 0, src, region);
    for (const r of region.rows) rows.add(r);
  }
  const touched = Uint32Array.from([...rows].sort((a, b) => a - b));
  const delta = pattern.slice();                                         // P' − P on the touched rows
  editRows(delta, 0, before, subtractRows(touched, kLen));
  addPatternValues(z, delta, values, touched, { n, kLen, nHeads, nKvHeads, dHead });
}

/** The region x −= src over whole rows (x and src of the same layout). */
function subtractRows(rows: Uint32Array, width: number): EditRegion {
  return { rows, width, groupSize: width, mask: null, mode: EDIT_ADD, beta: -1, srcOffset: 0, srcStride: width, srcByRow: true };
}

/**
 * attn.hook_result edits: out ([n, d_model]) += Σ_h (r'_h − r_h) over the edited heads and rows,
 * r and r' [n, n_heads, d_model]. A head whose r' equals r adds exactly 0.
 */
function addResultChange(list: readonly ResolvedEdit[], out: Float32Array, edited: Float32Array, result: Float32Array,
  start: number, n: number, nHeads: number, d: number): void {
  const touched = resultTouched(list, start, n, nHeads);
  if (!touched) return;
  for (const h of touched.heads) {
    const delta = new Float32Array(n * d);                               // r'_h − r_h of the touched rows
    for (const t of touched.rows) {
      const o = (t * nHeads + h) * d;
      delta.set(edited.subarray(o, o + d), t * d);
    }
    const r = new Float32Array(n * d);
    for (const t of touched.rows) r.set(result.subarray((t * nHeads + h) * d, (t * nHeads + h + 1) * d), t * d);
    editRows(delta, 0, r, subtractRows(touched.rows, d));
    editRows(out, 0, delta, { ...subtractRows(touched.rows, d), beta: 1 });
  }
}
