// Traces kept by the engine (src/engine/api.ts), and the slices the page asks of them.
//
// A run's recorded activations stay where the model runs (the worker); the page asks for slices —
// one layer's attention pattern, a range of positions, the top-k of a logits row, the logit lens
// of a few positions, norms per position — and gets only those numbers, in fresh arrays that can
// be transferred without detaching the trace. A trace holds what its run captured and nothing
// more: a slice of something not captured is a UsageError that says what to capture. The overview
// slices (the attention summary a run recorded, whole logits rows, PCA) are computed in slices.ts;
// their types are here with the others.
//
// Traces live in slots (one per notebook cell, or per view): a newer trace in a slot drops the
// older one, and release() drops one at once, so memory follows the cells on the page, not the
// number of edits.

import type { ModelConfig } from './config.ts';
import { ATTENTION_HOOKS, canonicalHookName, NORM_SUFFIX, rowNorm, type RowHash, type Trace, type TraceEntry } from './hooks.ts';
import { rowHash } from './capture.ts';
import { topOf } from './top.ts';
import { UsageError } from './errors.ts';
import { numElements } from '../formats/tensor.ts';
import type { LensRowsResult } from '../../kernels/argmax/argmax.cpu.ts';
import type { AttentionSummaryData } from './attention-summary.ts';
import type { EditSummary } from './edits.ts';

/** [start, end): a half-open range of positions. */
export type Range = readonly [start: number, end: number];

/** What run() returns: which request and prompt a trace belongs to, and what it holds. */
export interface TraceHandle {
  /** Unique for the life of the engine (and across worker restarts: ids carry the engine's). */
  id: string;
  /** The request that made it: the page checks this against its latest edit. */
  requestId: string;
  /** The slot it lives in; a newer trace in the same slot replaces it. */
  slot: string;
  /** The prompt, as token ids. */
  tokens: number[];
  nPos: number;
  /** The hooks it holds (our names, forward order). */
  hooks: string[];
  /** First position whose logits row it holds (nPos − 1 unless the run asked for every row). */
  logitsStart: number;
  backend: 'cpu' | 'webgpu';
  /** Leading positions taken from the KV cache rather than recomputed. */
  reused: number;
  /** Time the run took in the engine, in milliseconds. */
  ms: number;
  /** The interventions that produced it (descriptions without the arrays; edits.ts); empty: a clean run. */
  edits: EditSummary[];
}

/** What every slice says about where it came from. */
export interface SliceMeta {
  traceId: string;
  requestId: string;
}

export interface AttentionQuery {
  layer: number;
  /** One head, a list, or every head (default). */
  head?: number | readonly number[] | 'all';
  /** 'pattern' (softmax, default) or 'scores' (before softmax, −∞ above the diagonal). */
  which?: 'pattern' | 'scores';
  /** Query positions [start, end); default all. */
  queries?: Range;
  /** Key positions [start, end); default all. */
  keys?: Range;
}

export interface AttentionSlice extends SliceMeta {
  layer: number;
  heads: number[];
  queryStart: number;
  keyStart: number;
  /** [heads, queries, keys] */
  shape: [number, number, number];
  data: Float32Array;
}

export interface ActivationSlice extends SliceMeta {
  name: string;
  /** The hook's shape restricted to the positions asked for (query positions for attention hooks). */
  shape: number[];
  positionStart: number;
  data: Float32Array;
}

export interface TopKQuery {
  /** Default: the last position. */
  position?: number;
  /** Default 10; at most the vocabulary. */
  k?: number;
  /** Softmax temperature for `probs` (default 1; 0 puts all the probability on the argmax). */
  temperature?: number;
}

export interface TopKSlice extends SliceMeta {
  position: number;
  temperature: number;
  /** Most likely first; the lowest id first on ties. */
  ids: Int32Array;
  logits: Float32Array;
  probs: Float32Array;
}

export interface LogitLensQuery {
  /** Layers to read: −1 is the embedding (resid_pre of block 0), i the residual after block i.
   *  Default: every layer the trace holds a residual for. */
  layers?: readonly number[];
  /** Default: the last position. */
  positions?: readonly number[];
  /** Top ids per (layer, position); default 5. */
  k?: number;
  /** A token whose probability and rank to report at every (layer, position). */
  target?: number;
}

export interface LogitLensSlice extends SliceMeta {
  layers: Int32Array;
  positions: Int32Array;
  k: number;
  /** [layers, positions, k], most likely first. */
  ids: Int32Array;
  logits: Float32Array;
  probs: Float32Array;
  target: number | null;
  /** [layers, positions]: the target's probability and rank (0: the most likely). */
  targetProbs: Float32Array | null;
  targetRanks: Int32Array | null;
}

export interface AttentionSummarySlice extends SliceMeta {
  nLayers: number;
  nHeads: number;
  nPos: number;
  /** B: thumbnail bins per side (the asked size clamped to [4, 64], then to nPos). Positions are
   *  split into B contiguous bins: p is in bin ⌊p·B/nPos⌋ (binOf, src/engine/attention-summary.ts). */
  size: number;
  /** [nLayers, nHeads, B, B]: the mean attention weight over the causal entries (k ≤ q) with q in
   *  the query bin and k in the key bin; NaN where there is none (key bin after the query bin). */
  thumbs: Float32Array;
  /** [nLayers, nHeads]: mean over query positions of the row's entropy, in nats. */
  entropy: Float32Array;
  /** [nLayers, nHeads]: mean over query positions of the weight on position 0. */
  first: Float32Array;
  /** [nLayers, nHeads]: mean over queries q ≥ 1 of the weight on q − 1 (NaN when nPos = 1). */
  prev: Float32Array;
  /** [nLayers, nHeads]: mean over queries with an induction target of the weight on it (the token
   *  after the previous occurrence of the query's token; inductionTargets in
   *  src/engine/attention-summary.ts). NaN when no token of the run repeats. */
  induction: Float32Array;
}

export interface AttentionPoolQuery {
  layer: number;
  /** Bins per side B (default 96): positions split as the summary's (binStart in
   *  src/engine/attention-summary.ts); clamped to [1, min(nPos, ATTENTION_POOL_MAX_BINS)]. */
  bins?: number;
  /** How a (query bin, key bin) cell combines its causal entries: 'max' (default) or 'mean'. */
  reduce?: 'max' | 'mean';
  /** Also the layer's attention summary (`summary`): what the every-layer summary of a run holds
   *  for this layer, from the stored pattern, so that a view of one layer needs no such run. */
  summary?: boolean;
}

export interface AttentionPoolSlice extends SliceMeta {
  layer: number;
  /** Every head of the layer, in order. */
  heads: number[];
  nPos: number;
  /** B: bins per side. */
  bins: number;
  reduce: 'max' | 'mean';
  /** [heads, B, B]: the max (or mean) of the causal entries (k ≤ q) with q in the query bin and k
   *  in the key bin; NaN where there is none (key bin after the query bin). */
  shape: [number, number, number];
  data: Float32Array;
  /** With `summary: true`: this layer's summary (nLayers 1; default bins, the trace's tokens for
   *  the induction score), the bits of a run's every-layer summary at this layer. */
  summary?: AttentionSummaryData;
}

export interface LogitsQuery {
  /** Default: the last position. */
  position?: number;
}

export interface LogitsSlice extends SliceMeta {
  position: number;
  /** [vocab]: the model's logits at that position. */
  data: Float32Array;
}

export interface PcaQuery {
  /** Hooks whose rows are fitted together ([pos, ...] hooks of one row size, e.g. every
   *  blocks.*.hook_resid_post): one set of axes, shared by all of them. */
  hooks: readonly string[];
  /** Default 2. */
  components?: number;
  /** Default all. */
  positions?: Range;
}

export interface PcaSlice extends SliceMeta {
  /** Our names of the hooks, in the order asked. */
  hooks: string[];
  positionStart: number;
  nPos: number;
  components: number;
  /** [hooks, pos, components]: each row minus the mean of all rows, on each axis. */
  points: Float32Array;
  /** [components]: the fraction of the total variance along each axis. */
  explained: Float32Array;
}

export interface AttributionQuery {
  /** Default: the last position. */
  position?: number;
  /** The token whose logit is split up; default the most likely at that position (lowest id on ties). */
  token?: number;
}

/**
 * Direct logit attribution (issue 12): the token's logit at a position split into what each part
 * of the residual stream writes along its unembedding direction, through the final RMSNorm with
 * the run's own scale frozen: contribution(c) = Σ_i W_U[token, i] · γ_i · c_i / scale.
 * embed + Σ heads + Σ ffn + residual = logit, with residual only float rounding (and activation
 * rounding, or edits of hooks outside the decomposition).
 */
export interface AttributionSlice extends SliceMeta {
  position: number;
  token: number;
  nLayers: number;
  nHeads: number;
  /** [nLayers, nHeads]: each attention head's output (hook_result, or W_O·hook_z per head). */
  heads: Float32Array;
  /** [nLayers]: each FFN's output (hook_ffn_out). */
  ffn: Float32Array;
  /** The token embedding's term (hook_embed). */
  embed: number;
  /** The model's logit of the token at the position (the engine's logits row). */
  logit: number;
  /** The final RMSNorm's scale at the position: the divisor √(mean x² + ε) (final_norm.hook_scale). */
  scale: number;
  /** logit − (embed + Σ heads + Σ ffn). */
  residual: number;
}

export interface HookNormsSlice extends SliceMeta {
  names: string[];
  positionStart: number;
  /** [names, positions]: the L2 norm of each position's values (attention hooks: of the query
   *  row over heads and keys, skipping the −∞ mask). */
  data: Float32Array;
}

// ---------------------------------------------------------------------------------------------
// The store

export interface StoredTrace {
  handle: TraceHandle;
  data: Trace;
  /** [nPos − logitsStart, vocab]: the logits rows the trace holds. */
  logits: Float32Array;
  /** The attention summary, when the run asked for one. */
  attentionSummary?: AttentionSummaryData;
  bytes: number;
}

export class TraceStore {
  private readonly traces = new Map<string, StoredTrace>();
  private readonly slots = new Map<string, string>();

  /** Keeps a trace, dropping the one its slot held before. */
  put(t: StoredTrace): void {
    const old = this.slots.get(t.handle.slot);
    if (old !== undefined) this.traces.delete(old);
    this.traces.set(t.handle.id, t);
    this.slots.set(t.handle.slot, t.handle.id);
  }

  get(id: string): StoredTrace {
    const t = this.traces.get(id);
    if (!t) throw new UsageError(`trace ${id}`, 'is gone: it was released, replaced by a newer run of its slot, or made before the model was (re)loaded', 'Ask the slices of the latest trace, or run the prompt again');
    return t;
  }

  release(id: string): boolean {
    const t = this.traces.get(id);
    if (!t) return false;
    this.traces.delete(id);
    if (this.slots.get(t.handle.slot) === id) this.slots.delete(t.handle.slot);
    return true;
  }

  clear(): void {
    this.traces.clear();
    this.slots.clear();
  }

  get count(): number {
    return this.traces.size;
  }

  get bytes(): number {
    let n = 0;
    for (const t of this.traces.values()) n += t.bytes;
    return n;
  }
}

/** Bytes a trace holds (its activations and logits rows). */
export function traceBytes(data: Trace, logits: Float32Array): number {
  let n = logits.byteLength;
  for (const e of data.values()) n += 4 * numElements(e.shape);    // from the shape: an attention entry is made on first read
  return n;
}

// ---------------------------------------------------------------------------------------------
// Slices

export function traceEntry(t: StoredTrace, name: string, what: string): TraceEntry {
  const e = t.data.get(name);
  if (!e) {
    throw new UsageError(`trace ${t.handle.id}`, `holds no ${name} (${what})`,
      `Capture it: run({ tokens, capture: ['${name}'] }); this trace holds ${t.handle.hooks.length ? t.handle.hooks.join(', ') : 'no hooks'}`);
  }
  return e;
}

export function positionRange(r: Range | undefined, n: number, field: string): [number, number] {
  if (r === undefined) return [0, n];
  const [a, b] = r;
  if (!Number.isInteger(a) || !Number.isInteger(b) || a < 0 || b > n || a >= b) {
    throw new UsageError(field, `[${a}, ${b}) is not a non-empty range of positions within [0, ${n})`);
  }
  return [a, b];
}

export function checkPosition(p: number, n: number, field: string): number {
  if (!Number.isInteger(p) || p < 0 || p >= n) throw new UsageError(field, `${p} is not a position of this trace (0..${n - 1})`);
  return p;
}

export function attentionSlice(c: ModelConfig, t: StoredTrace, q: AttentionQuery): Omit<AttentionSlice, keyof SliceMeta> {
  const { layer } = q;
  if (!Number.isInteger(layer) || layer < 0 || layer >= c.nLayers) {
    throw new UsageError('attention layer', `${layer} is not a layer of this model (0..${c.nLayers - 1})`);
  }
  const name = `blocks.${layer}.attn.hook_${q.which ?? 'pattern'}`;
  const e = traceEntry(t, name, 'attention');
  const n = t.handle.nPos;
  const heads = q.head === undefined || q.head === 'all' ? [...Array(c.nHeads).keys()] : typeof q.head === 'number' ? [q.head] : [...q.head];
  for (const h of heads) {
    if (!Number.isInteger(h) || h < 0 || h >= c.nHeads) throw new UsageError('attention head', `${h} is not a head of this model (0..${c.nHeads - 1})`);
  }
  const [q0, q1] = positionRange(q.queries, n, 'attention queries');
  const [k0, k1] = positionRange(q.keys, n, 'attention keys');
  const nq = q1 - q0, nk = k1 - k0;
  const out = new Float32Array(heads.length * nq * nk);            // [heads, nq, nk]
  heads.forEach((h, i) => {
    for (let r = 0; r < nq; r++) {
      const from = (h * n + q0 + r) * n + k0;                        // source: [n_heads, n, n]
      out.set(e.data.subarray(from, from + nk), (i * nq + r) * nk);
    }
  });
  return { layer, heads, queryStart: q0, keyStart: k0, shape: [heads.length, nq, nk], data: out };
}

export function activationSlice(t: StoredTrace, name: string, positions?: Range): Omit<ActivationSlice, keyof SliceMeta> {
  const ours = canonicalHookName(name);
  const e = traceEntry(t, ours, 'activation');
  const n = t.handle.nPos;
  const [p0, p1] = positionRange(positions, n, `positions of ${ours}`);
  const leaf = ours.slice(ours.lastIndexOf('.', ours.lastIndexOf('.') - 1) + 1);
  if (ATTENTION_HOOKS.has(leaf)) {
    // [n_heads, q_pos, k_pos]: the query rows p0..p1 of every head
    const [nHeads] = e.shape as [number, number, number];
    const out = new Float32Array(nHeads * (p1 - p0) * n);
    for (let h = 0; h < nHeads; h++) out.set(e.data.subarray((h * n + p0) * n, (h * n + p1) * n), h * (p1 - p0) * n);
    return { name: ours, shape: [nHeads, p1 - p0, n], positionStart: p0, data: out };
  }
  const row = e.data.length / n;                                     // [pos, ...rest]
  return { name: ours, shape: [p1 - p0, ...e.shape.slice(1)], positionStart: p0, data: e.data.slice(p0 * row, p1 * row) };
}

/** The k largest of a row, largest first, lowest id first on ties (topOf; a full sort for large k). */
function topIds(row: Float32Array, k: number): { ids: Uint32Array; logits: Float32Array } {
  if (k <= 64) return topOf(row, k);
  const order = Uint32Array.from(row.keys()).sort((a, b) => row[b]! - row[a]! || a - b).subarray(0, k);
  return { ids: order.slice(), logits: Float32Array.from(order, (i) => row[i]!) };
}

/** Softmax of `row` at temperature T (> 0), accumulated in f64, the row max subtracted (pass it
 *  when known: the first of the top k). */
function softmaxStats(row: Float32Array, T: number, knownMax?: number): { max: number; sum: number } {
  let max = knownMax ?? -Infinity;
  if (knownMax === undefined) for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  let sum = 0;
  if (T === 1) for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  else for (let i = 0; i < row.length; i++) sum += Math.exp((row[i]! - max) / T);
  return { max, sum };
}

export function topKSlice(c: ModelConfig, t: StoredTrace, q: TopKQuery = {}): Omit<TopKSlice, keyof SliceMeta> {
  const n = t.handle.nPos;
  const p = checkPosition(q.position ?? n - 1, n, 'topK position');
  const start = t.handle.logitsStart;
  if (p < start) {
    throw new UsageError('topK position', `the trace holds logits from position ${start} on, not ${p}`, "Run with logits: 'all' (or capture hook_logits) to read every position");
  }
  const k = q.k ?? 10;
  if (!Number.isInteger(k) || k < 1 || k > c.vocabSize) throw new UsageError('topK k', `${k} must be an integer from 1 to ${c.vocabSize}`);
  const T = q.temperature ?? 1;
  if (!(T >= 0) || !Number.isFinite(T)) throw new UsageError('topK temperature', `${T} must be a number ≥ 0`);
  const row = t.logits.subarray((p - start) * c.vocabSize, (p - start + 1) * c.vocabSize);
  const top = topIds(row, k);
  const probs = new Float32Array(top.ids.length);
  if (T === 0) probs[0] = 1;                                        // greedy: the argmax takes everything
  else {
    const { max, sum } = softmaxStats(row, T);
    top.ids.forEach((id, i) => { probs[i] = Math.exp((row[id]! - max) / T) / sum; });
  }
  return { position: p, temperature: T, ids: Int32Array.from(top.ids), logits: top.logits, probs };
}

/** Rows of the logit lens computed at once: bounds the [rows, vocab] scratch (64 × 128k × 4 B = 32 MiB). */
const LENS_BATCH = 64;

/** A batch of the lens's residual rows [n, d_model] for the output head; `done` of `total` rows
 *  are answered before it (memo hits first). */
export interface LensBatch { x: Float32Array; n: number; done: number; total: number; k: number; target: number | null }

/** What the head gives back for a batch: the logits [n, vocab], or only what the lens keeps of
 *  each row, reduced where the logits are (Session.lensHeadAsync on the GPU). */
export type LensHeadResult = Float32Array | LensRowsResult;

/** The model's output head: residual rows [n, d_model] → logits [n, vocab] (Session.outputHead). */
export type OutputHead = (x: Float32Array, n: number) => Float32Array;

/**
 * The logit lens: each asked layer's residual stream read as if it were the last layer's —
 * RMSNorm recomputed from that residual (its own rms), the final norm's weight applied, then the
 * unembedding (tied or not) — and the top-k of the softmax. `head` is the session's own output
 * head (same kernels, same rounding), so at the last layer the lens gives the model's logits
 * exactly (the Engine runs a WebGPU session's lens through its GPU head: Session.outputHeadAsync).
 */
export function logitLensSlice(c: ModelConfig, head: OutputHead, t: StoredTrace, q: LogitLensQuery = {}, memo?: LensMemo): Omit<LogitLensSlice, keyof SliceMeta> {
  const steps = logitLensSteps(c, t, q, memo);
  let r = steps.next();
  while (!r.done) r = steps.next(head(r.value.x, r.value.n));
  return r.value;
}

/**
 * logitLensSlice one batch of rows at a time: the generator yields each batch of residual rows
 * for the output head and goes on with their logits (or with what the lens keeps of each row,
 * reduced where the logits are: LensHeadResult), so that a caller can run the head on the
 * GPU, let other requests in between batches (a TinyLlama batch takes about 0.1 s on the CPU) and
 * stop when the answer is no longer wanted (Engine.logitLens). Rows computed before stopping stay
 * in the memo.
 */
export function* logitLensSteps(c: ModelConfig, t: StoredTrace, q: LogitLensQuery = {}, memo?: LensMemo): Generator<LensBatch, Omit<LogitLensSlice, keyof SliceMeta>, LensHeadResult> {
  const n = t.handle.nPos, d = c.dModel, V = c.vocabSize;
  // the residual after layer l (−1: the embedding); either of two names holds the same numbers
  const residual = (l: number): TraceEntry | undefined => l === -1
    ? t.data.get('hook_embed') ?? t.data.get('blocks.0.hook_resid_pre')
    : t.data.get(`blocks.${l}.hook_resid_post`) ?? (l + 1 < c.nLayers ? t.data.get(`blocks.${l + 1}.hook_resid_pre`) : undefined);
  const all = [-1, ...Array(c.nLayers).keys()];
  const layers = q.layers ? [...q.layers] : all.filter((l) => residual(l));
  if (layers.length === 0) {
    throw new UsageError(`trace ${t.handle.id}`, 'holds no residual stream for the logit lens', "Capture 'blocks.*.hook_resid_post' (and 'hook_embed' for the embedding)");
  }
  const sources = layers.map((l) => {
    if (!Number.isInteger(l) || l < -1 || l >= c.nLayers) throw new UsageError('logitLens layers', `${l} is not a layer (−1 for the embedding, 0..${c.nLayers - 1})`);
    const e = residual(l);
    if (!e) throw new UsageError(`trace ${t.handle.id}`, `holds no residual for layer ${l}`, `Capture '${l === -1 ? 'hook_embed' : `blocks.${l}.hook_resid_post`}'`);
    return e;
  });
  const positions = (q.positions ? [...q.positions] : [n - 1]).map((p) => checkPosition(p, n, 'logitLens positions'));
  const k = q.k ?? 5;
  if (!Number.isInteger(k) || k < 1 || k > V) throw new UsageError('logitLens k', `${k} must be an integer from 1 to ${V}`);
  const target = q.target ?? null;
  if (target !== null && (!Number.isInteger(target) || target < 0 || target >= V)) throw new UsageError('logitLens target', `${target} is not a token id (0..${V - 1})`);

  const R = layers.length * positions.length;
  const ids = new Int32Array(R * k), lensLogits = new Float32Array(R * k), probs = new Float32Array(R * k);
  const targetProbs = target === null ? null : new Float32Array(R);
  const targetRanks = target === null ? null : new Int32Array(R);
  const residualRow = (r: number) => {
    const src = sources[Math.floor(r / positions.length)]!, p = positions[r % positions.length]!;
    return src.row ? src.row(p) : src.data.subarray(p * d, (p + 1) * d);
  };
  // the rows' hashes, kept by the store for rows an earlier run computed (TraceEntry.rowHash)
  const hashOf = (r: number) => sources[Math.floor(r / positions.length)]!.rowHash?.(positions[r % positions.length]!);
  const put = (r: number, e: LensRow) => {
    ids.set(e.ids, r * k); lensLogits.set(e.logits, r * k); probs.set(e.probs, r * k);
    if (target !== null) { targetProbs![r] = e.targetProb; targetRanks![r] = e.targetRank; }
  };
  // rows whose residual was read before come from the memo; the others go through the head
  const todo: number[] = [];
  for (let r = 0; r < R; r++) {
    const hit = memo?.get(residualRow(r), k, target, hashOf(r));
    if (hit) put(r, hit); else todo.push(r);
  }
  const B = Math.min(todo.length, LENS_BATCH);
  const x = new Float32Array(B * d);                                  // [B, d_model]
  for (let t0 = 0; t0 < todo.length; t0 += B) {
    const b = Math.min(B, todo.length - t0);
    for (let i = 0; i < b; i++) x.set(residualRow(todo[t0 + i]!), i * d);
    const got = yield { x, n: b, done: R - todo.length + t0, total: R, k, target };   // the head: final RMSNorm (this residual's rms), then W_U: [b, vocab]
    for (let i = 0; i < b; i++) {
      const r = todo[t0 + i]!;
      const e = got instanceof Float32Array ? lensRowOfLogits(got.subarray(i * V, (i + 1) * V), k, target) : lensRowOf(got, i, k, target);
      put(r, e);
      memo?.set(residualRow(r), k, target, e, hashOf(r));
    }
  }
  return { layers: Int32Array.from(layers), positions: Int32Array.from(positions), k, ids, logits: lensLogits, probs, target, targetProbs, targetRanks };
}

/** One row of the logit lens: the top k (ids, logits, probabilities) and the target's probability and rank. */
interface LensRow { ids: Int32Array; logits: Float32Array; probs: Float32Array; targetProb: number; targetRank: number }

/** A lens row from its row of logits [vocab]: the top k, their probabilities, the target's. */
function lensRowOfLogits(row: Float32Array, k: number, target: number | null): LensRow {
  const top = topIds(row, k);
  const { max, sum } = softmaxStats(row, 1, top.logits[0]);
  const e: LensRow = { ids: Int32Array.from(top.ids), logits: top.logits, probs: top.logits.map((v) => Math.exp(v - max) / sum), targetProb: 0, targetRank: 0 };
  if (target !== null) {
    const v = row[target]!;
    let rank = 0;                                                      // ranked as topOf orders: ties go to the lower id
    for (let j = 0; j < row.length; j++) if (row[j]! > v || (row[j] === v && j < target)) rank++;
    e.targetProb = Math.exp(v - max) / sum;
    e.targetRank = rank;
  }
  return e;
}

/** Row i of a batch the head reduced (lensRows): the probabilities from the row's sum of exponentials. */
function lensRowOf(got: LensRowsResult, i: number, k: number, target: number | null): LensRow {
  const logits = got.values.slice(i * k, (i + 1) * k), max = logits[0]!, sum = got.sums[i]!;
  return {
    ids: Int32Array.from(got.ids.subarray(i * k, (i + 1) * k)), logits, probs: logits.map((v) => Math.exp(v - max) / sum),
    targetProb: target === null ? 0 : Math.exp(got.targetValues[i]! - max) / sum, targetRank: target === null ? 0 : got.ranks[i]!,
  };
}

/**
 * Logit-lens rows already computed, found again by the residual they were read from. An edit to
 * a prompt leaves the residuals of the positions before it as they were (the model is causal, and
 * a run reuses the cached prefix), so after a keystroke the lens recomputes only the rows that
 * changed. Keyed by the residual's content, k and the target: two independent 32-bit hashes of
 * every word (64 bits) and eight of its words kept and compared, so an entry costs about 1 KB
 * whatever d_model is, and the memo holds every row of a long prompt (a TinyLlama lens over 144
 * positions is 3,312 rows; keeping each residual, 8 KiB, the memo held 2,000 of them and a
 * keystroke recomputed the other 1,300). Bounded in bytes, the least recently used dropped
 * first. The rows depend on the output head, so a memo serves one session (one model, one
 * rounding) only.
 */
export class LensMemo {
  // key → [hash a, hash b, length, k, target + 1 (0: none) | probe words | ids (k) | logits (k) |
  // probs (k) | target prob | target rank], one array; the key (memoKey) is a number, and an entry
  // is a hit only when all of its head matches (two questions whose keys collide share a slot)
  private readonly rows = new Map<number, Uint32Array>();
  private bytes = 0;

  constructor(readonly maxBytes = 32 << 20) {}

  /** What an entry costs, its key and map slot included (measured in Node 20: about 1 KB for k = 5). */
  static entryBytes(k: number): number {
    return cost(HEAD_WORDS + 3 * k + 2);
  }

  /** The row kept for this residual, k and target; `hash`: the residual's rowHash when known. */
  get(residual: Float32Array, k: number, target: number | null, hash?: RowHash): LensRow | undefined {
    const words = new Uint32Array(residual.buffer, residual.byteOffset, residual.length);
    const h = hash ?? rowHash(words), key = memoKey(h, k, target);
    const e = this.rows.get(key);
    if (!e || !sameRow(e, h, words, k, target)) return undefined;
    this.rows.delete(key);                                             // most recently used last
    this.rows.set(key, e);
    const f = new Float32Array(e.buffer), o = HEAD_WORDS;
    return {
      ids: new Int32Array(e.buffer, 4 * o, k), logits: f.subarray(o + k, o + 2 * k), probs: f.subarray(o + 2 * k, o + 3 * k),
      targetProb: f[o + 3 * k]!, targetRank: e[o + 3 * k + 1]!,
    };
  }

  set(residual: Float32Array, k: number, target: number | null, row: LensRow, hash?: RowHash): void {
    const words = new Uint32Array(residual.buffer, residual.byteOffset, residual.length);
    const h = hash ?? rowHash(words), key = memoKey(h, k, target);
    const old = this.rows.get(key), bytes = LensMemo.entryBytes(k);
    if (old) { this.rows.delete(key); this.bytes -= cost(old.length); }   // the same key: the newer row wins
    if (bytes > this.maxBytes) return;
    const e = new Uint32Array(HEAD_WORDS + 3 * k + 2), f = new Float32Array(e.buffer), o = HEAD_WORDS;
    e[0] = h.a; e[1] = h.b; e[2] = words.length; e[3] = k; e[4] = target === null ? 0 : target + 1;
    for (let i = 0; i < PROBE_WORDS; i++) e[5 + i] = probeWord(words, i);
    new Int32Array(e.buffer, 4 * o, k).set(row.ids);
    f.set(row.logits, o + k);
    f.set(row.probs, o + 2 * k);
    f[o + 3 * k] = row.targetProb;
    e[o + 3 * k + 1] = row.targetRank;
    this.rows.set(key, e);
    this.bytes += bytes;
    for (const [oldest, dropped] of this.rows) {
      if (this.bytes <= this.maxBytes) break;
      this.rows.delete(oldest);
      this.bytes -= cost(dropped.length);
    }
  }

  clear(): void {
    this.rows.clear();
    this.bytes = 0;
  }
}

/** Words of a residual kept in a memo entry and compared on lookup, spread over its length. */
const PROBE_WORDS = 8;
/** An entry's words before its answer: the hashes, length, k and target, then the probe words. */
const HEAD_WORDS = 5 + PROBE_WORDS;
/** Bytes an entry of n words costs, with its key and map slot. */
const cost = (n: number) => 4 * n + 950;
const probeWord = (w: Uint32Array, i: number) => w[Math.floor((i * w.length) / PROBE_WORDS)] ?? 0;

/** A memo row's key, a number below 2⁵³ (no string per lookup): hash a mixed with k and the
 *  target, then 21 bits of hash b. */
function memoKey(h: RowHash, k: number, target: number | null): number {
  const a = (h.a ^ Math.imul(k, 0x9e3779b1) ^ Math.imul(target === null ? 0 : target + 1, 0x85ebca6b)) >>> 0;
  return a * 2097152 + (h.b & 0x1fffff);
}

/** Whether entry e answers this question: the same hashes, length, k, target and probe words. */
function sameRow(e: Uint32Array, h: RowHash, words: Uint32Array, k: number, target: number | null): boolean {
  if (e[0] !== h.a || e[1] !== h.b || e[2] !== words.length || e[3] !== k || e[4] !== (target === null ? 0 : target + 1)) return false;
  for (let i = 0; i < PROBE_WORDS; i++) if (e[5 + i] !== probeWord(words, i)) return false;
  return true;
}

export function hookNormsSlice(t: StoredTrace, names: readonly string[], positions?: Range): Omit<HookNormsSlice, keyof SliceMeta> {
  const n = t.handle.nPos;
  const [p0, p1] = positionRange(positions, n, 'hookNorms positions');
  const ours = names.map(canonicalHookName);
  const out = new Float32Array(ours.length * (p1 - p0));              // [names, positions]
  ours.forEach((name, i) => {
    // the norms a run recorded (`<hook>:norm`), kept position by position across runs: the bits
    // of the norms of the rows, which then need not be read
    const recorded = t.data.get(name + NORM_SUFFIX);
    if (recorded) { out.set(recorded.data.subarray(p0, p1), i * (p1 - p0)); return; }
    const e = traceEntry(t, name, 'norms');
    const d = e.data;   // once: a stored entry's data is a getter (it gathers the rows on first use)
    const leaf = name.slice(name.lastIndexOf('.', name.lastIndexOf('.') - 1) + 1);
    for (let p = p0; p < p1; p++) {
      if (ATTENTION_HOOKS.has(leaf)) {
        let ss = 0;
        const nHeads = e.shape[0]!;
        for (let h = 0; h < nHeads; h++) {
          const o = (h * n + p) * n;
          for (let j = 0; j <= p; j++) ss += d[o + j]! * d[o + j]!;   // keys ≤ p: the causal part
        }
        out[i * (p1 - p0) + p - p0] = Math.sqrt(ss);
      } else {
        const row = d.length / n;
        out[i * (p1 - p0) + p - p0] = rowNorm(d, p * row, (p + 1) * row);
      }
    }
  });
  return { names: ours, positionStart: p0, data: out };
}
