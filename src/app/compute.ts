// What each cell kind computes, for the reactive graph (src/notebook/graph.ts): the page's side of
// the cell contract in cells/README.md. A prompt cell tokenizes; a visual cell asks PromptRuns for
// a trace of its prompt holding what it draws (one run per prompt, shared by its cells), then the
// worker for the slices it needs, and returns its element's output. Only settings that change what
// is computed reach here; view settings (a head, a slider) are the element's own business.

import type { ComputeContext } from '../notebook/graph.ts';
import type { EngineClient } from '../worker/client.ts';
import type { LogitLensSlice, ModelInfo, Tokenized, TraceHandle } from '../engine/api.ts';
import { UsageError } from '../engine/errors.ts';
import { topOf } from '../engine/top.ts';
import { CAPTURE_LIMIT_BYTES, captureBytes, checkCaptureBytes, selectHooks } from '../engine/hooks.ts';
import { promptTokenizeSettings, tokenLabels } from '../../cells/prompt.ts';
import { summarizeOneLayer, type AttentionOutput } from '../../cells/plot/attention.ts';
import type { NextTokenOutput } from '../../cells/plot/next-token.ts';
import type { LogitLensOutput } from '../../cells/plot/logit-lens.ts';
import { topNeurons, type ActivationsOutput } from '../../cells/plot/activations.ts';
import type { EmbeddingsOutput } from '../../cells/plot/embeddings.ts';
import type { AttributionOutput } from '../../cells/plot/attribution.ts';
import { rawOnce, type SamplingOutput } from '../../cells/plot/sampling.ts';
import { ablateEdits, ablateMode, knockedOut, meanEdits, meanFrom, type AblateOutput } from '../../cells/plot/ablate.ts';
import { meanOverPositions } from '../engine/edits.ts';
import { generateOutput } from './generation.ts';
import { steerOutput } from './steer.ts';
import type { SteerOutput } from '../../cells/plot/steer.ts';
import { patchOutput } from './patch.ts';
import type { PatchOutput } from '../../cells/plot/patch.ts';
import type { PromptRuns, Need } from './runs.ts';

/** Every layer's attention pattern is captured (layer changes then cost no run) up to this size. */
export const ALL_PATTERNS_BYTES = 64 * 2 ** 20;

/**
 * A hook that a cell draws one layer of (the activations cell's FFN activations and residual
 * histogram, the embeddings cell's residual) is captured for every layer up to this size, so
 * that picking another layer costs no run; past it, only the shown layer's. A layer change then
 * reruns the prompt from position 0 (about 3 s for TinyLlama at 145 tokens on this project's CPU
 * machine), except where a CPU session recomputes the new layer's rows from what the lane recorded
 * (session.ts backfillBlockRows: the activations cell's FFN activations and residual, from the
 * hook_resid_pre rows, and the hook_attn_out and hook_ffn_out rows where it records them:
 * blockRowHooks). TinyLlama's FFN activations at 145 tokens take 72 MB. The same size bounds the
 * attention queries a cell records for every layer so that a layer change reruns nothing
 * (layerGroup).
 */
export const ALL_LAYERS_BYTES = 96 * 2 ** 20;

/** `blocks.*.<hook>` when every layer's [nPos, width] f32 rows fit ALL_LAYERS_BYTES, else layer's. */
function layersOf(hook: string, layer: number, width: number, nLayers: number, nPos: number): string {
  return nLayers * nPos * width * 4 <= ALL_LAYERS_BYTES ? `blocks.*.${hook}` : `blocks.${layer}.${hook}`;
}

/**
 * The layers whose [nPos, width] rows of one hook a cell records so that another layer's can be
 * recomputed from them on a layer change: every layer while they fit `budget` ('all'),
 * else a fixed group of as many consecutive layers as fit (groups start at multiples of that
 * count, the last one moved back to end at the last layer), none when fewer than two fit. The
 * group depends only on the layer, so a change within it records the same hooks and reruns
 * nothing; a change to another group reruns the prompt from position 0, as every layer change
 * would without them.
 */
export function layerGroup(layer: number, nLayers: number, layerBytes: number, budget = ALL_LAYERS_BYTES): 'all' | number[] {
  const fit = Math.floor(budget / layerBytes);
  if (fit >= nLayers) return 'all';
  if (fit < 2) return [];
  const first = Math.min(Math.floor(layer / fit) * fit, nLayers - fit);
  return Array.from({ length: fit }, (_, i) => first + i);
}

/** The rotated queries an attention cell records on the CPU past every layer's pattern (the
 *  shown layer's rows are recomputed from them on a layer change): layerGroup's layers. */
export function queryLayers(layer: number, c: { nLayers: number; nHeads: number; dHead: number }, nPos: number): string[] {
  const group = layerGroup(layer, c.nLayers, nPos * c.nHeads * c.dHead * 4);
  return group === 'all' ? ['blocks.*.attn.hook_rot_q'] : group.map((l) => `blocks.${l}.attn.hook_rot_q`);
}

/**
 * The most bytes the activations cell's rows of the residual stream and the sublayer outputs take
 * (blockRowHooks): all three hooks of every layer to 992 TinyLlama positions, the residual of
 * every layer to 2,978. Without the bound, a 2,048-token TinyLlama prompt held 1.1 GB of them.
 */
export const BLOCK_ROWS_BYTES = 512 * 2 ** 20;

/**
 * What the activations cell records of the residual stream (hook_resid_pre) and the sublayer
 * outputs (hook_attn_out, hook_ffn_out), from which a layer change recomputes the new layer's FFN
 * activations and residual (session.ts backfillBlockRows) and whose norms it draws:
 * - every layer's norms of all three (`:norm`), which the norms chart draws;
 * - every layer's rows of all three, within BLOCK_ROWS_BYTES (a layer change costs the layer's FFN);
 * - else every layer's residual rows (layerGroup's layers past the bound): a layer change then
 *   also recomputes the layer's attention output from the KV cache, and one outside the group
 *   reruns the prompt;
 * - on WebGPU, where nothing is recomputed, the norms alone.
 */
export function blockRowHooks(layer: number, model: ModelInfo, nPos: number): string[] {
  const hooks = ['hook_resid_pre', 'hook_attn_out', 'hook_ffn_out'], c = model.config;
  // the norms always: recorded position by position, a keystroke computes only its new ones
  const norms = hooks.map((h) => `blocks.*.${h}:norm`);
  if (model.backend !== 'cpu') return norms;
  if (hooks.length * c.nLayers * nPos * c.dModel * 4 <= BLOCK_ROWS_BYTES) return [...norms, ...hooks.map((h) => `blocks.*.${h}`)];
  const group = layerGroup(layer, c.nLayers, nPos * c.dModel * 4, BLOCK_ROWS_BYTES);
  return [...norms, ...(group === 'all' ? ['blocks.*.hook_resid_pre'] : group.map((l) => `blocks.${l}.hook_resid_pre`))];
}

/** Past this size a layer's whole pattern (nHeads × nPos² × 4 bytes) is not fetched: the heads
 *  view draws max-pooled bins of every head, a one-head view fetches that head alone. */
export const LAYER_PATTERN_BYTES = 16 * 2 ** 20;
/** Bins per side of the pooled small multiples: about one per pixel of a 96 px tile. */
export const POOL_BINS = 96;

/**
 * When the logit lens answers its last positions first (a preview, drawn while the rest computes):
 * for a lens of at least `minPositions` positions whose output head costs at least `minMacs`
 * multiply-adds in all (a TinyLlama lens over 144 positions: 217 G, seconds on a CPU), the last
 * `positions` first; drawn when the rest still has `minRows` rows to compute.
 */
export const LENS_PREVIEW = { positions: 16, minPositions: 32, minMacs: 1e10, minRows: 64 };

/** How many trailing positions the lens answers first, or 0 for none (LENS_PREVIEW). */
export function lensPreviewPositions(nShown: number, c: { nLayers: number; vocabSize: number; dModel: number }): number {
  const macs = (c.nLayers + 1) * nShown * c.vocabSize * c.dModel;
  return nShown >= LENS_PREVIEW.minPositions && macs >= LENS_PREVIEW.minMacs ? LENS_PREVIEW.positions : 0;
}

/** Whether an attention cell fetches less than its layer's whole pattern. */
export function attentionIsLong(nHeads: number, nPos: number): boolean {
  return nHeads * nPos * nPos * 4 > LAYER_PATTERN_BYTES;
}

interface Env {
  client: EngineClient;
  runs: PromptRuns;
  model: ModelInfo;
}

/** The prompt a visual cell reads: its id and tokens (the graph computed it first). */
function promptOf(ctx: ComputeContext): { id: string; tok: Tokenized } {
  for (const [id, out] of ctx.upstream) {
    const t = out as Tokenized | null;
    if (t && Array.isArray(t.ids)) {
      if (t.ids.length === 0) throw new UsageError(`prompt ${id}`, 'has no tokens', 'Type some text in the prompt');
      return { id, tok: t };
    }
  }
  throw new UsageError(`${ctx.cell.kind} cell`, 'has no prompt to read', 'Add a prompt cell above it, or name one with `prompt: <name>`');
}

const labels = tokenLabels;

const range = (n: number, from = 0) => Array.from({ length: n - from }, (_, i) => i + from);

/** A position setting ("last" or an index) checked against the prompt's length. */
function position(v: unknown, nPos: number, cell: string): number {
  if (v === undefined || v === 'last') return nPos - 1;
  const p = Number(v);
  if (!Number.isInteger(p) || p < 0 || p >= nPos) {
    throw new UsageError(`${cell}: position`, `${String(v)} is past the prompt's ${nPos} tokens (0 to ${nPos - 1})`, 'Pick a token of the prompt, or write position: last');
  }
  return p;
}

/** The first token of a typed target ("rank of this token"), or null when none was typed. */
async function targetToken(env: Env, text: unknown): Promise<{ text: string; id: number; piece: string } | null> {
  if (typeof text !== 'string' || text === '') return null;
  const t = await env.client.tokenize(text, { bos: false });
  if (!t.ids.length) return null;
  return { text, id: t.ids[0]!, piece: t.pieces[0] ?? '' };
}

async function piecesOf(env: Env, ids: Iterable<number>): Promise<Map<number, string>> {
  const list = [...new Set(ids)];
  const pieces = list.length ? await env.client.pieces(list) : [];
  return new Map(list.map((id, i) => [id, pieces[i]!]));
}

/** Ids of the n largest values (descending; the lower id first on ties). */
function topIds(row: Float32Array, n: number): number[] {
  return Array.from(topOf(row, n).ids);
}

/** The hook an activations cell draws as a histogram: its `hook` setting, else the layer's output. */
function histogramHook(s: ComputeContext['settings'], layer: number): string {
  return typeof s['hook'] === 'string' && s['hook'] ? s['hook'] : `blocks.${layer}.hook_resid_post`;
}

/** The layers an embeddings cell projects: every one, the last, or one. */
function embeddingLayers(v: unknown, nLayers: number): number[] {
  return v === 'all' ? range(nLayers) : [typeof v === 'number' ? v : nLayers - 1];
}

// ---------------------------------------------------------------------------------------------
// What each kind captures

export function needOf(kind: string, s: ComputeContext['settings'], model: ModelInfo, nPos: number): Need {
  const L = model.config.nLayers;
  switch (kind) {
    case 'attention': {
      const layer = Number(s['layer'] ?? 0);
      const all = L * model.config.nHeads * (nPos * (nPos + 1) / 2) * 4 <= ALL_PATTERNS_BYTES;
      // The every-layer summary only where it is drawn: the overview. The other views draw one
      // layer's statistics (under the heads' tiles, and their order), from that layer's pattern:
      // on the page for a short prompt, with the pooled tiles in the worker for a long one sorted
      // by a statistic (visuals.attention). The worker's summary of every layer took about 45 ms
      // of each keystroke on TinyLlama at 145 tokens (BENCHMARKS.md); on a long prompt, where not
      // every layer's pattern is captured, it also made every run start from position 0.
      const summary = s['view'] === 'overview';
      // Past ALL_PATTERNS_BYTES only the shown layer's pattern is kept. Every layer's rotated
      // queries then are, while they fit ALL_LAYERS_BYTES on the CPU: a layer change recomputes the
      // new layer's rows from them and the KV cache (session.ts backfillAttention), and so does the
      // overview's summary of every layer on a keystroke, instead of rerunning the prompt from
      // position 0 (about 10 s for TinyLlama at 435 tokens). Past that, a group of as many
      // consecutive layers as fit, the shown one among them (queryLayers).
      const queries = !all && model.backend === 'cpu' ? queryLayers(layer, model.config, nPos) : [];
      return { capture: [all ? 'blocks.*.attn.hook_pattern' : `blocks.${layer}.attn.hook_pattern`, ...queries], summary };
    }
    case 'sampling':
      return { capture: [] };             // the last position's logits: every run keeps them
    case 'next-token':
      return { capture: s['position'] === 'last' || s['position'] === undefined ? [] : [`blocks.${L - 1}.hook_resid_post`] };
    case 'logit-lens':
      return { capture: ['blocks.0.hook_resid_pre', 'blocks.*.hook_resid_post'] };
    case 'activations': {
      const layer = Number(s['layer'] ?? 0), c = model.config, named = histogramHook(s, layer);
      const hist = named === `blocks.${layer}.hook_resid_post` ? layersOf('hook_resid_post', layer, c.dModel, L, nPos) : named;
      return { capture: [...blockRowHooks(layer, model, nPos), hist, layersOf('ffn.hook_act', layer, c.dFfn, L, nPos)] };
    }
    case 'embeddings': {
      const layers = embeddingLayers(s['layer'], L);
      return { capture: layers.length === 1 ? [layersOf('hook_resid_post', layers[0]!, model.config.dModel, L, nPos)] : layers.map((l) => `blocks.${l}.hook_resid_post`) };
    }
    case 'attribution': {
      // hook_z, not hook_result: [pos, heads, d_head] per layer instead of [pos, heads, d_model]
      const last = s['position'] === 'last' || s['position'] === undefined ? [] : [`blocks.${L - 1}.hook_resid_post`];
      return { capture: ['hook_embed', 'blocks.*.attn.hook_z', 'blocks.*.hook_ffn_out', 'final_norm.hook_scale', ...last] };
    }
    case 'ablate':
      // the clean run's last logits row (every run keeps it); a mean ablation also needs the
      // clean run's values of each knocked-out hook, to average
      return { capture: ablateMode(s) === 'mean' ? ablateEdits(s, model.config).map((e) => e.hook) : [] };
    default:
      return { capture: [] };
  }
}

// ---------------------------------------------------------------------------------------------
// Outputs

type Visual = (env: Env, ctx: ComputeContext, p: { id: string; tok: Tokenized }, trace: TraceHandle) => Promise<unknown>;

const visuals: Record<string, Visual> = {
  async attention(env, ctx, p, trace): Promise<AttentionOutput> {
    const c = env.model.config;
    const layer = Number(ctx.settings['layer'] ?? 0);
    const nPos = p.tok.ids.length;
    const need = needOf('attention', ctx.settings, env.model, nPos);
    const summaryP = need.summary ? env.client.attentionSummary(trace) : Promise.resolve(null);
    const base = { prompt: p.id, labels: labels(p.tok, env.model), layer, nLayers: c.nLayers, nHeads: c.nHeads, nKvHeads: c.nKvHeads };
    if (!attentionIsLong(c.nHeads, nPos)) {
      const [slice, summary] = await Promise.all([env.client.attention(trace, { layer }), summaryP]);
      return { ...base, pattern: { heads: slice.heads, shape: slice.shape, data: slice.data },
        summary: summary ?? summarizeOneLayer(layer, slice.data, c.nHeads, nPos, p.tok.ids) };
    }
    // Long prompt: never the whole layer (32 heads × 1,000² × 4 bytes is 128 MB). The heads view
    // draws every head max-pooled into POOL_BINS² bins; the one-head views fetch that head; the
    // overview draws the summary alone. The "from" view's mean over heads is the one exception:
    // it needs every head's rows, so it fetches the layer, as asked.
    const view = ctx.settings['view'] ?? 'heads';
    const head = Number(ctx.settings['head'] ?? 0);
    const none = { heads: [] as number[], shape: [0, nPos, nPos] as [number, number, number], data: new Float32Array(0) };
    if (view === 'heads') {
      // the layer's statistics only to sort by: at 1,000 tokens they cost more than the pooling
      const sort = ctx.settings['sort'], stats = typeof sort === 'string' && sort !== 'index';
      const pool = await env.client.attentionPooled(trace, { layer, bins: POOL_BINS, reduce: 'max', summary: stats });
      return { ...base, pattern: none, summary: pool.summary ? { ...pool.summary, firstLayer: layer } : null, pooled: { heads: pool.heads, bins: pool.bins, reduce: pool.reduce, data: pool.data } };
    }
    if (view === 'overview') return { ...base, pattern: none, summary: await summaryP };
    const mean = view === 'from' && ctx.settings['mean'] === true;
    const [slice, summary] = await Promise.all([env.client.attention(trace, mean ? { layer } : { layer, head }), summaryP]);
    return { ...base, pattern: { heads: slice.heads, shape: slice.shape, data: slice.data }, summary };
  },

  async 'next-token'(env, ctx, p, trace): Promise<NextTokenOutput> {
    const pos = position(ctx.settings['position'], p.tok.ids.length, 'next-token cell');
    const [row, target] = await Promise.all([env.client.logits(trace, { position: pos }), targetToken(env, ctx.settings['target'])]);
    const ids = topIds(row.data, 200);
    if (target) ids.push(target.id);
    return { prompt: p.id, labels: labels(p.tok, env.model), position: pos, logits: row.data, pieces: await piecesOf(env, ids), target };
  },

  async sampling(env, _ctx, p, trace): Promise<SamplingOutput> {
    const pos = p.tok.ids.length - 1;
    const row = await env.client.logits(trace, { position: pos });
    // pieces of the most likely tokens, and of the history's (penalties can move them up)
    const ids = [...rawOnce(row.data).ids.subarray(0, 200), ...p.tok.ids];
    return { prompt: p.id, labels: labels(p.tok, env.model), position: pos, logits: row.data, pieces: await piecesOf(env, ids), history: [...p.tok.ids] };
  },

  async 'logit-lens'(env, ctx, p, trace): Promise<LogitLensOutput> {
    const nPos = p.tok.ids.length;
    const last = ctx.settings['positions'];
    const from = typeof last === 'number' ? Math.max(0, nPos - last) : 0;
    const target = await targetToken(env, ctx.settings['target']);
    const layers = range(env.model.config.nLayers, -1);
    const query = (positions: number[]) => ({ layers, positions, k: 5, ...(target ? { target: target.id } : {}) });
    const output = async (slice: LogitLensSlice): Promise<LogitLensOutput> => {
      const ids: number[] = [...slice.ids];
      if (target) ids.push(target.id);
      return {
        prompt: p.id, labels: labels(p.tok, env.model), layers: [...slice.layers], positions: [...slice.positions], k: slice.k,
        ids: slice.ids, probs: slice.probs, pieces: await piecesOf(env, ids), target,
        targetProbs: slice.targetProbs, targetRanks: slice.targetRanks,
      };
    };
    // A long lens answers its last positions first (the engine keeps every row it computes, so
    // the whole lens then computes only the others); that first answer is drawn only when the
    // rest has real work left, so that a keystroke, which changes a few rows, draws once.
    const first = lensPreviewPositions(nPos - from, env.model.config);
    const head = first ? await env.client.logitLens(trace, query(range(nPos, nPos - first)), { signal: ctx.signal }) : null;
    let shown = false;
    const slice = await env.client.logitLens(trace, query(range(nPos, from)), {
      signal: ctx.signal,
      onProgress: (done, total) => {
        if (head && !shown && total - done >= LENS_PREVIEW.minRows) {
          shown = true;
          void output(head).then((o) => ctx.partial?.(o), () => {});
        }
        ctx.progress?.(done, total, 'rows');
      },
    });
    return output(slice);
  },

  async activations(env, ctx, p, trace): Promise<ActivationsOutput> {
    const L = env.model.config.nLayers, nPos = p.tok.ids.length;
    const kinds = ['resid_pre', 'attn_out', 'ffn_out'];
    const names = kinds.flatMap((k) => range(L).map((l) => `blocks.${l}.hook_${k}`));
    const layer = Number(ctx.settings['layer'] ?? 0);
    const hookName = histogramHook(ctx.settings, layer);
    const pos = position(ctx.settings['position'], nPos, 'activations cell');
    const [norms, hist, act] = await Promise.all([
      env.client.hookNorms(trace, names),
      env.client.activation(trace, hookName),
      env.client.activation(trace, `blocks.${layer}.ffn.hook_act`),
    ]);
    const dFfn = act.shape[act.shape.length - 1]!;
    const at = act.data.subarray(pos * dFfn, (pos + 1) * dFfn);
    const top = topNeurons(at, 20);
    const picked = (Array.isArray(ctx.settings['neurons']) ? ctx.settings['neurons'] : ctx.settings['neurons'] === undefined ? [] : [ctx.settings['neurons']])
      .map(Number).filter((i) => Number.isInteger(i) && i >= 0 && i < dFfn)
      .map((index) => ({ index, values: Float32Array.from({ length: nPos }, (_, q) => act.data[q * dFfn + index]!) }));
    return {
      prompt: p.id, labels: labels(p.tok, env.model), nLayers: L,
      norms: { kinds, data: norms.data }, hist: { name: hookName, values: hist.data },
      neurons: { layer, position: pos, top, picked },
    };
  },

  async attribution(env, ctx, p, trace): Promise<AttributionOutput> {
    const c = env.model.config;
    const pos = position(ctx.settings['position'], p.tok.ids.length, 'attribution cell');
    const target = await targetToken(env, ctx.settings['target']);
    const a = await env.client.attribution(trace, { position: pos, ...(target ? { token: target.id } : {}) });
    const piece = target?.piece ?? (await piecesOf(env, [a.token])).get(a.token) ?? '';
    return {
      prompt: p.id, labels: labels(p.tok, env.model), position: a.position,
      token: { id: a.token, piece, typed: target?.text ?? null },
      nLayers: c.nLayers, nHeads: c.nHeads, nKvHeads: c.nKvHeads,
      heads: a.heads, ffn: a.ffn, embed: a.embed, logit: a.logit, scale: a.scale, residual: a.residual,
    };
  },

  async embeddings(env, ctx, p, trace): Promise<EmbeddingsOutput> {
    const L = env.model.config.nLayers;
    const layers = embeddingLayers(ctx.settings['layer'], L);
    const pca = await env.client.pca(trace, { hooks: layers.map((l) => `blocks.${l}.hook_resid_post`), components: 2 });
    return { prompt: p.id, labels: labels(p.tok, env.model), layers, points: pca.points, explained: [pca.explained[0] ?? 0, pca.explained[1] ?? 0] };
  },

  async ablate(env, ctx, p, trace): Promise<AblateOutput> {
    // The clean row from the prompt's shared trace; the ablated row from a run of its own slot
    // (edits are part of a run, so it never disturbs the shared trace or its KV cache). With
    // nothing knocked out there is no second run: the ablated row is the clean one.
    const pos = p.tok.ids.length - 1;
    const mode = ablateMode(ctx.settings);
    let edits = ablateEdits(ctx.settings, env.model.config);
    if (mode === 'mean' && edits.length) {
      const from = meanFrom(p.tok.ids, env.model.tokenizer?.bosId);
      const slices = await Promise.all(edits.map((e) => env.client.activation(trace, e.hook)));
      const means = new Map(edits.map((e, i) => [e.hook, meanOverPositions(slices[i]!, from)]));
      edits = meanEdits(edits, (hook) => means.get(hook)!);
    }
    const [clean, target] = await Promise.all([env.client.logits(trace, { position: pos }), targetToken(env, ctx.settings['target'])]);
    let ablated = clean.data;
    if (edits.length) {
      const run = await env.client.run({ tokens: p.tok.ids, edits, slot: `ablate:${ctx.cell.id}` }, { signal: ctx.signal });
      ablated = (await env.client.logits(run, { position: pos })).data;
    }
    const ids = [...topIds(clean.data, 60), ...topIds(ablated, 60)];
    if (target) ids.push(target.id);
    return {
      prompt: p.id, labels: labels(p.tok, env.model), position: pos, clean: clean.data, ablated,
      pieces: await piecesOf(env, ids), target, knocked: knockedOut(edits), mode, edits,
    };
  },


};

type OwnRuns = (env: Env, ctx: ComputeContext, p: { id: string; tok: Tokenized }) => Promise<unknown>;

/** Kinds that make every run they need in slots of their own, so they need no trace of the prompt. */
const ownRuns: Record<string, OwnRuns> = {
  // the clean, the corrupted and one patched run per grid cell (src/app/patch.ts)
  patch: (env, ctx, p): Promise<PatchOutput> => patchOutput(env.client, env.model, ctx, p),
  // the prompt sets' runs, then generation with and without the vector (src/app/steer.ts)
  steer: (env, ctx, p): Promise<SteerOutput> => steerOutput(env.client, env.model, p, ctx.settings, ctx.cell.id, ctx.signal, ctx.progress),
};

/** The kinds computed from their prompt (a trace of it, or runs of their own). */
export const visualKinds: readonly string[] = [...Object.keys(visuals), ...Object.keys(ownRuns)];

/** The graph's compute: what a cell of each kind shows. */
export async function computeCell(ctx: ComputeContext, client: EngineClient | null, runs: PromptRuns, loaded: ModelInfo | null): Promise<unknown> {
  // Prompt and model cells read the model as an input; visual cells read their prompt (which
  // recomputes when the model changes) and use the model loaded now.
  const model = (ctx.inputs.get('model') as ModelInfo | null | undefined) ?? loaded;
  const kind = ctx.cell.kind;
  if (kind === 'model') return model ?? null;
  if (!model || !client) return null;
  if (kind === 'prompt') {
    const s = ctx.settings;
    const t: Tokenized = await client.tokenize(String(s['text'] ?? ''), promptTokenizeSettings(s));
    ctx.signal.throwIfAborted();
    return t;
  }
  if (kind === 'generate') {
    // the prompt and the current branch as tokens (the steps themselves run in generation.ts)
    const p = promptOf(ctx);
    const out = await generateOutput(client, model, p.id, p.tok, ctx.settings);
    ctx.signal.throwIfAborted();
    return out;
  }
  const visual = visuals[kind], own = ownRuns[kind];
  if (!visual && !own) return null;
  const p = promptOf(ctx);
  const env: Env = { client, runs, model };
  if (own) {
    const out = await own(env, ctx, p);
    ctx.signal.throwIfAborted();
    return out;
  }
  const need = needOf(kind, ctx.settings, model, p.tok.ids.length);
  // a cell whose own capture is past the engine's limit fails alone, before joining the prompt's run
  checkCaptureBytes(model.config, selectHooks(model.config, need.capture).names, p.tok.ids.length, CAPTURE_LIMIT_BYTES);
  const c = model.config, nPos = p.tok.ids.length;
  const bytes = (hook: string) => selectHooks(c, [hook]).names.reduce((sum, name) => sum + captureBytes(c, name, nPos), 0);
  const trace = await runs.trace(p.id, p.tok.ids, need, ctx.signal, { cell: ctx.cell.id, bytes });
  ctx.signal.throwIfAborted();
  const out = await visual!(env, ctx, p, trace);
  ctx.signal.throwIfAborted();
  return out;
}
