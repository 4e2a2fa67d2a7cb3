// The slices that feed the notebook's overview cells (issue 8), next to those of trace.ts: the
// attention summary a run recorded, one layer's attention pooled into bins, one whole logits row,
// and a PCA of residual rows. Each returns
// fresh arrays (the engine transfers them) and says, in a UsageError, what to capture or pass when
// the trace cannot answer.

import type { ModelConfig } from './config.ts';
import { UsageError } from './errors.ts';
import { binOf, binStart, summarizeSquares, summaryBins } from './attention-summary.ts';
import { ATTENTION_HOOKS, canonicalHookName } from './hooks.ts';
import { pca } from './pca.ts';
import type { ModelWeights } from './weights.ts';
import { getTensorType } from '../formats/quant/index.ts';
import { byteSize } from '../formats/tensor.ts';
import {
  checkPosition, positionRange, traceEntry, type AttentionPoolQuery, type AttentionPoolSlice, type AttentionSummarySlice, type LogitsQuery, type LogitsSlice,
  type OutputHead, type PcaQuery, type PcaSlice, type SliceMeta, type StoredTrace, type AttributionQuery, type AttributionSlice,
} from './trace.ts';

type Body<T> = Omit<T, keyof SliceMeta>;

export function attentionSummarySlice(t: StoredTrace): Body<AttentionSummarySlice> {
  const s = t.attentionSummary;
  if (!s) {
    throw new UsageError(`trace ${t.handle.id}`, 'holds no attention summary',
      'Ask the run for one: run({ tokens, summary: { attention: { size: 24 } } })');
  }
  return {
    nLayers: s.nLayers, nHeads: s.nHeads, nPos: s.nPos, size: s.size,
    thumbs: s.thumbs.slice(), entropy: s.entropy.slice(), first: s.first.slice(), prev: s.prev.slice(),
    induction: s.induction.slice(),
  };
}

/** Most bins per side a pooled slice gives (a thumbnail is drawn at about 100 px). */
export const ATTENTION_POOL_MAX_BINS = 256;

/**
 * One layer's pattern pooled into B × B bins per head: data [nHeads, nPos, nPos] (causal: zeros
 * above the diagonal) → [nHeads, B, B], each cell the max (or mean) of the causal entries k ≤ q
 * with q in the query bin and k in the key bin (bins as the summary's: binStart), NaN where there
 * is none. The masked zeros above the diagonal never count, so a mean equals the summary's
 * thumbnail and a max is the largest weight any query of the bin gives a key of the bin.
 */
export function poolAttention(data: Float32Array, nHeads: number, nPos: number, B: number, reduce: 'max' | 'mean' = 'max'): Float32Array {
  if (!(Number.isInteger(B) && B >= 1 && B <= nPos)) throw new RangeError(`poolAttention: ${B} bins for ${nPos} positions`);
  if (data.length !== nHeads * nPos * nPos) throw new RangeError(`poolAttention: ${data.length} values are not [${nHeads}, ${nPos}, ${nPos}]`);
  const starts = Int32Array.from({ length: B + 1 }, (_, b) => binStart(b, nPos, B));
  const count = new Float64Array(B * B);                        // [B, B] causal entries per cell
  const acc = new Float64Array(nHeads * B * B);                 // [nHeads, B, B] sum or max
  const max = reduce === 'max';
  for (let q = 0; q < nPos; q++) {
    const qb = binOf(q, nPos, B);
    for (let kb = 0; kb <= qb; kb++) count[qb * B + kb] = count[qb * B + kb]! + Math.max(0, Math.min(starts[kb + 1]!, q + 1) - starts[kb]!);
  }
  for (let h = 0; h < nHeads; h++) {
    for (let q = 0; q < nPos; q++) {
      const qb = binOf(q, nPos, B), row = (h * nPos + q) * nPos, cells = (h * B + qb) * B;
      for (let kb = 0; kb <= qb; kb++) {
        const end = Math.min(starts[kb + 1]!, q + 1);
        let r = max ? acc[cells + kb]! : 0;
        for (let k = starts[kb]!; k < end; k++) { const v = data[row + k]!; if (max) { if (v > r) r = v; } else r += v; }
        acc[cells + kb] = max ? r : acc[cells + kb]! + r;
      }
    }
  }
  const out = new Float32Array(nHeads * B * B);
  for (let i = 0; i < out.length; i++) {
    const c = count[i % (B * B)]!;
    out[i] = c > 0 ? (max ? acc[i]! : acc[i]! / c) : NaN;
  }
  return out;
}

/** The pooled pattern of one layer (every head): needs the layer's hook_pattern captured. */
export function attentionPoolSlice(c: ModelConfig, t: StoredTrace, q: AttentionPoolQuery): Body<AttentionPoolSlice> {
  const layer = q?.layer;
  if (!Number.isInteger(layer) || layer < 0 || layer >= c.nLayers) {
    throw new UsageError('attention pool layer', `${String(layer)} is not a layer of this model (0..${c.nLayers - 1})`);
  }
  const reduce = q.reduce ?? 'max';
  if (reduce !== 'max' && reduce !== 'mean') throw new UsageError('attention pool reduce', `${String(reduce)} is not 'max' or 'mean'`);
  if (q.bins !== undefined && !(typeof q.bins === 'number' && Number.isFinite(q.bins))) {
    throw new UsageError('attention pool bins', `${String(q.bins)} is not a number`, `Give the bins per side (1..${ATTENTION_POOL_MAX_BINS}, default 96)`);
  }
  const n = t.handle.nPos;
  const B = Math.max(1, Math.min(n, ATTENTION_POOL_MAX_BINS, Math.round(q.bins ?? 96)));
  if (q.summary !== undefined && typeof q.summary !== 'boolean') throw new UsageError('attention pool summary', `${String(q.summary)} is not true or false`);
  const e = traceEntry(t, `blocks.${layer}.attn.hook_pattern`, 'attention pool');   // [nHeads, n, n]
  const data = poolAttention(e.data, c.nHeads, n, B, reduce);
  const out: Body<AttentionPoolSlice> = { layer, heads: [...Array(c.nHeads).keys()], nPos: n, bins: B, reduce, shape: [c.nHeads, B, B], data };
  if (q.summary) out.summary = summarizeSquares([e.data], c.nHeads, n, summaryBins(undefined, n), t.handle.tokens);   // the run's summarizer
  return out;
}

/**
 * The logits row at a position: the stored row when the trace keeps it (the run's own logits, or
 * a captured hook_logits), else the last layer's residual through the session's output head —
 * the final RMSNorm and the unembedding with the same kernels (the logit lens's path), which on
 * the CPU backend gives the model's logits bit for bit.
 */
export function logitsSlice(c: ModelConfig, head: OutputHead, t: StoredTrace, q: LogitsQuery = {}): Body<LogitsSlice> {
  const n = t.handle.nPos, V = c.vocabSize, d = c.dModel;
  const p = checkPosition(q.position ?? n - 1, n, 'logits position');
  const start = t.handle.logitsStart;
  if (p >= start) return { position: p, data: t.logits.slice((p - start) * V, (p - start + 1) * V) };
  const captured = t.data.get('hook_logits');                                 // [nPos, vocab]
  if (captured) return { position: p, data: captured.data.slice(p * V, (p + 1) * V) };
  const last = `blocks.${c.nLayers - 1}.hook_resid_post`;
  const resid = t.data.get(last);                                             // [nPos, d_model]
  if (!resid) {
    throw new UsageError(`trace ${t.handle.id}`, `holds logits from position ${start} on, not ${p}, and no ${last} to compute them from`,
      `Run with logits: 'all', or capture '${last}'`);
  }
  return { position: p, data: head(resid.data.slice(p * d, (p + 1) * d), 1) };
}

/** Most components a PCA slice gives (a plot shows two or three). */
export const PCA_MAX_COMPONENTS = 16;

export function pcaSlice(t: StoredTrace, q: PcaQuery): Body<PcaSlice> {
  if (!q || !Array.isArray(q.hooks) || q.hooks.length === 0) {
    throw new UsageError('pca hooks', 'must be a non-empty list of hook names', "For example hooks: ['blocks.0.hook_resid_post', 'blocks.1.hook_resid_post']");
  }
  const n = t.handle.nPos;
  const [p0, p1] = positionRange(q.positions, n, 'pca positions');
  const hooks = q.hooks.map((h) => {
    if (typeof h !== 'string') throw new UsageError('pca hooks', `${String(h)} is not a hook name`);
    return canonicalHookName(h);
  });
  const entries = hooks.map((name) => {
    const leaf = name.slice(name.lastIndexOf('.', name.lastIndexOf('.') - 1) + 1);
    if (ATTENTION_HOOKS.has(leaf)) throw new UsageError('pca hooks', `${name} is an attention pattern ([heads, q, k]), not rows of positions`, 'Use [pos, d_model] hooks such as blocks.*.hook_resid_post');
    return traceEntry(t, name, 'pca rows');
  });
  const dim = entries[0]!.data.length / n;
  entries.forEach((e, i) => {
    if (e.data.length / n !== dim) {
      throw new UsageError('pca hooks', `${hooks[i]} has rows of ${e.data.length / n} values but ${hooks[0]} of ${dim}`, 'Fit hooks of one row size together (e.g. the residual stream of every layer)');
    }
  });
  const k = q.components ?? 2;
  const most = Math.min(dim, PCA_MAX_COMPONENTS);
  if (!Number.isInteger(k) || k < 1 || k > most) throw new UsageError('pca components', `${k} must be an integer from 1 to ${most}`);
  // views of the asked positions: nothing is copied
  const r = pca(entries.map((e) => e.data.subarray(p0 * dim, p1 * dim)), dim, k);
  return { hooks, positionStart: p0, nPos: p1 - p0, components: k, points: r.points, explained: Float32Array.from(r.explained) };
}

/** What direct logit attribution reads of the weights. */
export type AttributionWeights = Pick<ModelWeights, 'finalNorm' | 'unembed' | 'blocks'>;

/** Most tokens whose head directions (headDirection) are kept per model. */
const HEAD_DIRECTION_TOKENS = 8;
const headDirections = new WeakMap<AttributionWeights, Map<number, (Float64Array | undefined)[]>>();

/**
 * Layer l's Wᵀ_O a, a = γ ⊙ W_U[token] ([n_heads · d_head], f64): the hook_z path's direction, whose
 * dot with a head's z (over its d_head) is that head's term times the scale. Every row of W_O is
 * dequantized for it, which took most of an attribution's time (TinyLlama: about 0.3–0.6 s a
 * redraw); it depends only on the model and the token, so the last HEAD_DIRECTION_TOKENS tokens'
 * are kept and every position and run of the same token reuses them (the same bits either way).
 */
function headDirection(c: ModelConfig, w: AttributionWeights, token: number, l: number, a: Float64Array): Float64Array {
  let byToken = headDirections.get(w);
  if (!byToken) headDirections.set(w, byToken = new Map());
  let layers = byToken.get(token);
  if (layers) byToken.delete(token);                                  // most recently used last
  else layers = [];
  byToken.set(token, layers);
  while (byToken.size > HEAD_DIRECTION_TOKENS) byToken.delete(byToken.keys().next().value!);
  const kept = layers[l];
  if (kept) return kept;
  const d = c.dModel, inner = c.nHeads * c.dHead;
  const wo = w.blocks[l]!.wo, wt = getTensorType(wo.type), rowBytes = byteSize(wt, inner);   // W_O: [d_model, n_heads · d_head]
  const back = new Float64Array(inner), r = new Float32Array(inner);
  for (let i = 0; i < d; i++) {
    wt.dequantize(wo.data, i * rowBytes, r, 0, inner);
    const ai = a[i]!;
    for (let j = 0; j < inner; j++) back[j] += ai * r[j]!;
  }
  return layers[l] = back;
}

/**
 * Direct logit attribution at one position (AttributionSlice in trace.ts). With the final RMSNorm's
 * scale of the run frozen (final_norm.hook_scale: the divisor √(mean x² + ε), as TransformerLens's),
 * the logit is linear in the last residual, which is hook_embed plus every layer's attention and
 * FFN outputs; each part's term is its dot with u = γ ⊙ W_U[token] / scale.
 * A head's term reads blocks.L.attn.hook_result when the trace holds it (the edited result, if an
 * edit changed it), else hook_z through that head's columns of W_O (the same product, [pos, heads,
 * d_head] instead of [pos, heads, d_model] kept: a long prompt's every-layer results would not fit).
 * Sums run in f64; the residual is what the decomposition misses (float and activation rounding).
 */
export function attributionSlice(c: ModelConfig, w: AttributionWeights, head: OutputHead, t: StoredTrace, q: AttributionQuery = {}): Body<AttributionSlice> {
  const n = t.handle.nPos, d = c.dModel, H = c.nHeads, dh = c.dHead, L = c.nLayers, V = c.vocabSize;
  const p = checkPosition(q.position ?? n - 1, n, 'attribution position');
  const row = logitsSlice(c, head, t, { position: p }).data;                   // [vocab]
  let token = q.token;
  if (token === undefined) {
    token = 0;
    for (let i = 1; i < V; i++) if (row[i]! > row[token]!) token = i;
  } else if (!Number.isInteger(token) || token < 0 || token >= V) {
    throw new UsageError('attribution token', `${String(token)} is not a token id (0..${V - 1})`);
  }
  const scale = traceEntry(t, 'final_norm.hook_scale', 'the final RMSNorm scale of the run').data[p]!;   // [nPos, 1]
  const embedRows = traceEntry(t, 'hook_embed', 'the embedding term').data;   // [nPos, d_model]
  // u = γ ⊙ W_U[token] / scale: the direction every part of the residual is read along
  const type = getTensorType(w.unembed.type);
  const wu = new Float32Array(d);
  type.dequantize(w.unembed.data, token * byteSize(type, d), wu, 0, d);
  const a = new Float64Array(d), u = new Float64Array(d);
  for (let i = 0; i < d; i++) { a[i] = w.finalNorm[i]! * wu[i]!; u[i] = a[i]! / scale; }
  const dot = (x: Float32Array, off: number) => { let r = 0; for (let i = 0; i < d; i++) r += u[i]! * x[off + i]!; return r; };

  const heads = new Float32Array(L * H), ffn = new Float32Array(L);
  let sum = 0;
  const embed = dot(embedRows, p * d);
  sum += embed;
  for (let l = 0; l < L; l++) {
    const result = t.data.get(`blocks.${l}.attn.hook_result`);                // [nPos, n_heads, d_model]
    if (result) {
      for (let h = 0; h < H; h++) { const v = dot(result.data, (p * H + h) * d); heads[l * H + h] = v; sum += v; }
    } else {
      const z = traceEntry(t, `blocks.${l}.attn.hook_z`, 'the heads\' outputs (or capture attn.hook_result)').data;   // [nPos, n_heads, d_head]
      const back = headDirection(c, w, token, l, a);                      // Wᵀ_O a: the term is (back · z) / scale
      for (let h = 0; h < H; h++) {
        let v = 0;
        for (let j = 0; j < dh; j++) v += back[h * dh + j]! * z[(p * H + h) * dh + j]!;
        v /= scale;
        heads[l * H + h] = v; sum += v;
      }
    }
    const f = dot(traceEntry(t, `blocks.${l}.hook_ffn_out`, 'the FFN outputs').data, p * d);   // [nPos, d_model]
    ffn[l] = f; sum += f;
  }
  const logit = row[token]!;
  return { position: p, token, nLayers: L, nHeads: H, heads, ffn, embed, logit, scale, residual: logit - sum };
}
