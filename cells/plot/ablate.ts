// The ablate cell's pure side: which heads, FFN neurons and whole layer outputs the settings knock
// out (as the engine's Edit list), and the comparison of the clean and the ablated next-token
// distributions at the last position — the top tokens side by side (clean p, ablated p, change),
// the target token's logit and probability in both runs, and KL(clean ‖ ablated) — drawn as SVG.
//
// Knock-outs ablate what the unit writes into the residual stream, by zeroing it (`mode: zero`,
// the default) or by replacing it with its mean over the prompt's own positions (`mode: mean`,
// the BOS position left out: its activations are outliers), which keeps the unit's average
// contribution and removes what it says about this position:
// - head L.H: blocks.L.attn.hook_z, head H (the head's mixed values; the output projection is
//   linear without a bias, so this removes exactly that head's term of hook_attn_out);
// - neuron L.N: blocks.L.ffn.hook_act, neuron N (its column of the down projection then adds 0);
// - layer attn.L / ffn.L: blocks.L.hook_attn_out / blocks.L.hook_ffn_out, every dimension
//   (a bare L knocks out both).
// Everything here is a pure function of the page's output (two logits rows), so the `show`
// setting redraws without a run.

import { UsageError } from '../../src/engine/errors.ts';
import { meanStart, type Edit } from '../../src/engine/edits.ts';
import type { ModelConfig } from '../../src/engine/config.ts';
import { visible } from '../prompt.ts';
import { colorScale, esc, fmt, FONT, legendSvg, r2, schemes } from './kit.ts';
import type { FigureExport } from './figure.ts';

/** What the page computes for an ablate cell. */
export interface AblateOutput {
  prompt: string;                // the prompt cell's id
  labels: string[];              // display label per prompt position
  position: number;              // the last position: the next token after the prompt
  clean: Float32Array;           // [vocab] the clean run's logits row there
  ablated: Float32Array;         // [vocab] the ablated run's logits row there
  pieces: Map<number, string>;   // display pieces for the top ids of both rows and the target
  target: { text: string; id: number; piece: string } | null;
  knocked: string[];             // what was knocked out, in words ("head 1.3", "neuron 0.12", "attn 1")
  mode: AblateMode;              // zeroed, or replaced by the mean over the prompt's positions
  edits: Edit[];                 // the edits the ablated run used (mean ablations carry their vectors)
}

type Shape = Pick<ModelConfig, 'nLayers' | 'nHeads' | 'dFfn'>;

/** The view settings (redraw only): how many token rows. */
export const ABLATE_VIEW_KEYS = ['show'] as const;
export const DEFAULT_SHOW = 12;
export const MAX_SHOW = 50;

export function ablateShow(settings: Readonly<Record<string, unknown>>): number {
  const v = settings['show'];
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 ? Math.min(v, MAX_SHOW) : DEFAULT_SHOW;
}

// ---------------------------------------------------------------------------------------------
// Settings → edits

const itemsOf = (v: unknown): unknown[] => (v === undefined || v === null || v === '' ? [] : Array.isArray(v) ? v : [v]);

export type AblateMode = 'zero' | 'mean';

/** The `mode` setting: how a knocked-out unit is removed (compute key). */
export function ablateMode(settings: Readonly<Record<string, unknown>>): AblateMode {
  const v = settings['mode'];
  if (v === undefined || v === null || v === 'zero') return 'zero';
  if (v === 'mean') return 'mean';
  throw new UsageError('ablate: mode', `is ${JSON.stringify(v)}`, 'Write mode: zero (the default) or mode: mean');
}

/**
 * Zero edits turned into mean ablations: each edit's hook replaced, on the same heads, neurons or
 * dimensions, by `means(hook)` (the hook's mean row over the reference positions, [row width]).
 */
export function meanEdits(edits: readonly Edit[], means: (hook: string) => Float32Array): Edit[] {
  return edits.map((e) => ({ ...e, op: 'mean' as const, vector: means(e.hook) }));
}

/** The first position a mean counts: 1 past a leading BOS (when something follows it), else 0. */
export const meanFrom = meanStart;

/** The items of a setting written as text ("1.3, 2.0" or "1.3 2.0"), for the element's fields. */
export function splitList(text: string): string[] {
  return text.split(/[\s,;]+/).filter((s) => s !== '');
}

/**
 * "L.I" pairs of a `heads` or `neurons` setting. Items are strings ("1.3", "2.10") or numbers
 * (1.3): a bare number is read by its decimal digits, so 2.0 (which a notebook reads as the
 * number 2) is head 0 of layer 2, and 1.10 reads as 1.1 — quote such items ("1.10").
 */
export function parsePairs(key: 'heads' | 'neurons', v: unknown, c: Shape): { layer: number; index: number }[] {
  const unit = key === 'heads' ? 'head' : 'neuron', limit = key === 'heads' ? c.nHeads : c.dFfn;
  return itemsOf(v).map((x, i) => {
    const s = typeof x === 'number' ? (Number.isInteger(x) ? `${x}.0` : String(x)) : typeof x === 'string' ? x.trim() : '';
    const m = /^(\d+)\.(\d+)$/.exec(s);
    const where = `ablate: ${key}[${i}]`;
    if (!m) throw new UsageError(where, `is ${JSON.stringify(x)}, not layer.${unit}`, `Write ${key} as a list like ["1.3", "0.2"] (layer 1 ${unit} 3, layer 0 ${unit} 2)`);
    const layer = Number(m[1]), index = Number(m[2]);
    if (layer >= c.nLayers) throw new UsageError(where, `"${s}": layer ${layer} is past the model's ${c.nLayers} layers (0 to ${c.nLayers - 1})`);
    if (index >= limit) throw new UsageError(where, `"${s}": ${unit} ${index} is past the model's ${limit} ${unit}s per layer (0 to ${limit - 1})`);
    return { layer, index };
  });
}

/** The `layers` setting: "attn.L", "ffn.L", or L for both. */
export function parseLayers(v: unknown, c: Shape): { layer: number; part: 'attn' | 'ffn' }[] {
  return itemsOf(v).flatMap((x, i) => {
    const s = typeof x === 'number' ? String(x) : typeof x === 'string' ? x.trim() : '';
    const m = /^(?:(attn|ffn)\.?)?(\d+)$/.exec(s);
    const where = `ablate: layers[${i}]`;
    if (!m) throw new UsageError(where, `is ${JSON.stringify(x)}, not a layer`, 'Write layers as a list like [attn.1, ffn.0, 2] (2: both outputs of layer 2)');
    const layer = Number(m[2]);
    if (layer >= c.nLayers) throw new UsageError(where, `"${s}": layer ${layer} is past the model's ${c.nLayers} layers (0 to ${c.nLayers - 1})`);
    const parts = m[1] ? [m[1] as 'attn' | 'ffn'] : (['attn', 'ffn'] as const);
    return parts.map((part) => ({ layer, part }));
  });
}

const byLayer = (pairs: { layer: number; index: number }[]) => {
  const m = new Map<number, Set<number>>();
  for (const p of pairs) (m.get(p.layer) ?? m.set(p.layer, new Set()).get(p.layer)!).add(p.index);
  return [...m].sort((a, b) => a[0] - b[0]).map(([layer, s]) => ({ layer, indices: [...s].sort((a, b) => a - b) }));
};

/**
 * The zero-ablation edits of a cell's `heads`, `neurons` and `layers` settings, one edit per
 * layer and kind, every position. Empty when nothing is knocked out. UsageError naming the
 * setting and item for anything malformed or out of the model's range.
 */
export function ablateEdits(settings: Readonly<Record<string, unknown>>, c: Shape): Edit[] {
  const edits: Edit[] = [];
  for (const { layer, indices } of byLayer(parsePairs('heads', settings['heads'], c))) {
    edits.push({ hook: `blocks.${layer}.attn.hook_z`, op: 'zero', heads: indices });
  }
  for (const { layer, indices } of byLayer(parsePairs('neurons', settings['neurons'], c))) {
    edits.push({ hook: `blocks.${layer}.ffn.hook_act`, op: 'zero', neurons: indices });
  }
  const seen = new Set<string>();
  for (const { layer, part } of parseLayers(settings['layers'], c).sort((a, b) => a.layer - b.layer || (a.part < b.part ? -1 : 1))) {
    const hook = `blocks.${layer}.hook_${part}_out`;
    if (!seen.has(hook)) { seen.add(hook); edits.push({ hook, op: 'zero' }); }
  }
  return edits;
}

/** The knock-outs in words, in the edits' order: "head 1.3", "neuron 0.12", "attn 1", "ffn 0". */
export function knockedOut(edits: readonly Edit[]): string[] {
  return edits.flatMap((e) => {
    const m = /^blocks\.(\d+)\.(.+)$/.exec(e.hook);
    if (!m) return [e.hook];
    const L = m[1]!;
    if (m[2] === 'attn.hook_z') return (e.heads ?? []).map((h) => `head ${L}.${h}`);
    if (m[2] === 'ffn.hook_act') return (e.neurons ?? []).map((n) => `neuron ${L}.${n}`);
    return [`${m[2] === 'hook_attn_out' ? 'attn' : 'ffn'} ${L}`];
  });
}

// ---------------------------------------------------------------------------------------------
// Numbers

/** log softmax of a logits row, in f64 (−inf stays −inf). */
export function logSoftmax(row: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  const lse = max + Math.log(sum);
  return Float64Array.from({ length: row.length }, (_, i) => row[i]! - lse);
}

/** KL(P ‖ Q) in nats between the softmaxes of two logits rows (P: clean, Q: ablated). */
export function klDivergence(p: ArrayLike<number>, q: ArrayLike<number>): number {
  const lp = logSoftmax(p), lq = logSoftmax(q);
  let kl = 0;
  for (let i = 0; i < lp.length; i++) {
    const pi = Math.exp(lp[i]!);
    if (pi > 0) kl += pi * (lp[i]! - lq[i]!);
  }
  return Math.max(0, kl);
}

/** Ids of the n largest values (descending, lower id first on ties). */
export function topIds(row: ArrayLike<number>, n: number): number[] {
  const idx = Array.from({ length: row.length }, (_, i) => i);
  idx.sort((a, b) => row[b]! - row[a]! || a - b);
  return idx.slice(0, n);
}

export interface AblateRow {
  id: number;
  piece: string;
  logitClean: number;
  logitAblated: number;
  pClean: number;
  pAblated: number;
  /** 1-based ranks by logit in each run. */
  rankClean: number;
  rankAblated: number;
}

export interface AblateModel {
  heading: string;
  knocked: string[];
  mode: AblateMode;
  /** The union of both runs' top `show` tokens, by the larger of the two probabilities. */
  rows: AblateRow[];
  target: (AblateRow & { text: string }) | null;
  kl: number;              // nats
  vocab: number;
  /** Whether the two rows are identical (nothing knocked out, or nothing it changed). */
  same: boolean;
}

function rankOf(row: ArrayLike<number>, id: number): number {
  const v = row[id]!;
  let r = 1;
  for (let j = 0; j < row.length; j++) { const w = row[j]!; if (w > v || (w === v && j < id)) r++; }
  return r;
}

export function ablateModel(o: AblateOutput, show = DEFAULT_SHOW): AblateModel {
  const lc = logSoftmax(o.clean), la = logSoftmax(o.ablated);
  const row = (id: number): AblateRow => ({
    id, piece: o.pieces.get(id) ?? (o.target?.id === id ? o.target.piece : `#${id}`),
    logitClean: o.clean[id]!, logitAblated: o.ablated[id]!, pClean: Math.exp(lc[id]!), pAblated: Math.exp(la[id]!),
    rankClean: rankOf(o.clean, id), rankAblated: rankOf(o.ablated, id),
  });
  const ids = [...new Set([...topIds(o.clean, show), ...topIds(o.ablated, show)])];
  const rows = ids.map(row).sort((a, b) => Math.max(b.pClean, b.pAblated) - Math.max(a.pClean, a.pAblated) || a.id - b.id);
  const t = o.target && o.target.id >= 0 && o.target.id < o.clean.length ? { ...row(o.target.id), piece: o.target.piece, text: o.target.text } : null;
  let same = o.clean.length === o.ablated.length;
  for (let i = 0; same && i < o.clean.length; i++) if (!Object.is(o.clean[i], o.ablated[i])) same = false;
  return {
    heading: `next token after «${o.labels[o.position] ?? '?'}» (position ${o.position})`,
    knocked: o.knocked, mode: o.mode ?? 'zero', rows, target: t, kl: klDivergence(o.clean, o.ablated), vocab: o.clean.length, same,
  };
}

/** 4 significant digits, for data-v attributes. */
export const sig4 = (v: number) => (Number.isFinite(v) ? String(+v.toPrecision(4)) : String(v));
const signed = (v: number, f: (x: number) => string) => (v > 0 ? `+${f(v)}` : v < 0 ? `−${f(-v)}` : f(0));

export function knockedSummary(k: readonly string[], mode: AblateMode = 'zero'): string {
  if (k.length === 0) return 'nothing knocked out (both columns are the clean run)';
  const what = mode === 'mean' ? 'mean-ablated (the mean over the prompt\'s positions)' : 'knocked out';
  return `${what}: ${k.length > 12 ? `${k.slice(0, 12).join(', ')} … (${k.length})` : k.join(', ')}`;
}

export function targetSummary(t: NonNullable<AblateModel['target']>): string {
  return `target ${JSON.stringify(t.piece)}: logit ${fmt.num(t.logitClean)} → ${fmt.num(t.logitAblated)} (${signed(t.logitAblated - t.logitClean, fmt.num)}),`
    + ` p ${fmt.prob(t.pClean)} → ${fmt.prob(t.pAblated)} (${signed(t.pAblated - t.pClean, fmt.prob)}), rank ${t.rankClean} → ${t.rankAblated}`;
}

export function rowTitle(r: AblateRow): string {
  return `id ${r.id} · piece ${JSON.stringify(r.piece)} · clean: p ${fmt.prob(r.pClean)}, logit ${fmt.num(r.logitClean)}, rank ${r.rankClean}`
    + ` · ablated: p ${fmt.prob(r.pAblated)}, logit ${fmt.num(r.logitAblated)}, rank ${r.rankAblated} · Δp ${signed(r.pAblated - r.pClean, fmt.prob)}`;
}

// ---------------------------------------------------------------------------------------------
// The figure

const CLEAN = schemes.sequential(0.3);      // viridis blue
const ABLATED = schemes.sequential(0.7);    // viridis green
const ROW = 18, PIECE_CHARS = 16;

function clip(s: string): string {
  const v = visible(s);
  return v.length > PIECE_CHARS ? `${v.slice(0, PIECE_CHARS - 1)}…` : v;
}

export interface AblateSvgOptions { width?: number; heading?: boolean }

/** Two bar columns (clean, ablated) on one probability scale, and the change per token. */
export function ablateSvg(m: AblateModel, opts: AblateSvgOptions = {}): string {
  const W = Math.max(560, opts.width ?? 640);
  const xPiece = 118, pw = Math.floor((W - xPiece - 8 - 2 * 48 - 70) / 2);
  const xc = xPiece + 8, xcP = xc + pw + 4, xa = xcP + 48, xaP = xa + pw + 4, xD = xaP + 48, dW = W - xD - 2;
  const dy = opts.heading === false ? -18 : 0;
  const lines: string[] = [];
  if (dy === 0) lines.push(`<text x="0" y="14" font-size="13" font-weight="600">${esc(m.heading)}</text>`);
  const stat = `${knockedSummary(m.knocked, m.mode)} · KL(clean ‖ ablated) ${fmt.num(m.kl)} nats`;
  lines.push(`<text x="0" y="${32 + dy}" fill-opacity="0.8" data-kl="${sig4(m.kl)}">${esc(stat)}</text>`);
  let y0 = 40 + dy;
  if (m.target) { lines.push(`<text x="0" y="${y0 + 10}" class="target-line" data-v="${sig4(m.target.logitAblated)}" data-clean="${sig4(m.target.logitClean)}">${esc(targetSummary(m.target))}</text>`); y0 += 16; }
  // legend: the two columns' colours, and the change's diverging scale
  const rows = m.target && !m.rows.some((r) => r.id === m.target!.id) ? [...m.rows, null, m.target] : m.rows;
  let dMax = 0, hi = 0;
  for (const r of rows) if (r) { dMax = Math.max(dMax, Math.abs(r.pAblated - r.pClean)); hi = Math.max(hi, r.pClean, r.pAblated); }
  dMax ||= 1e-3;
  const dColor = colorScale('diverging', -dMax, dMax);
  lines.push(`<g class="legend" transform="translate(1,${y0 + 6})"><rect width="16" height="10" fill="${CLEAN}"/><text x="21" y="9">clean run</text>`
    + `<rect x="100" width="16" height="10" fill="${ABLATED}"/><text x="121" y="9">ablated run</text></g>`);
  lines.push(legendSvg({ label: 'Δp (ablated − clean)', lo: -dMax, hi: dMax, scheme: 'diverging', width: 180, ticks: 3, x: W - 190, y: y0 - 2 }));
  const top = y0 + 60;
  const x = (p: number, x0: number) => x0 + (hi > 0 ? (p / hi) * pw : 0);
  lines.push(`<g fill-opacity="0.7"><text x="${xPiece}" y="${top - 6}" text-anchor="end">token</text>`
    + `<text x="${xc}" y="${top - 6}">clean p</text><text x="${xa}" y="${top - 6}">ablated p</text><text x="${xD + dW}" y="${top - 6}" text-anchor="end">Δp</text></g>`);
  rows.forEach((r, k) => {
    const y = top + k * ROW;
    if (!r) { lines.push(`<text x="${xPiece}" y="${y + 12}" text-anchor="end" fill-opacity="0.6">⋮</text>`); return; }
    const isT = m.target?.id === r.id, d = r.pAblated - r.pClean, w = isT ? ' font-weight="700"' : '';
    lines.push(`<g class="tok${isT ? ' target' : ''}" data-id="${r.id}"><title>${esc(rowTitle(r))}</title>`
      + (isT ? `<rect x="1" y="${y}" width="${W - 2}" height="${ROW}" fill="none" stroke="currentColor" stroke-dasharray="3 2" rx="3"/>` : '')
      + `<text x="${xPiece}" y="${y + 13}" text-anchor="end" font-family="monospace" xml:space="preserve"${w}>${esc(clip(r.piece))}</text>`
      + `<rect class="clean" data-v="${sig4(r.pClean)}" data-logit="${sig4(r.logitClean)}" x="${xc}" y="${y + 3}" width="${r2(x(r.pClean, xc) - xc)}" height="${ROW - 6}" fill="${CLEAN}"/>`
      + `<text x="${xcP}" y="${y + 13}" font-variant-numeric="tabular-nums">${esc(fmt.prob(r.pClean))}</text>`
      + `<rect class="ablated" data-v="${sig4(r.pAblated)}" data-logit="${sig4(r.logitAblated)}" x="${xa}" y="${y + 3}" width="${r2(x(r.pAblated, xa) - xa)}" height="${ROW - 6}" fill="${ABLATED}"/>`
      + `<text x="${xaP}" y="${y + 13}" font-variant-numeric="tabular-nums">${esc(fmt.prob(r.pAblated))}</text>`
      + `<rect class="delta" data-v="${sig4(d)}" x="${xD}" y="${y + 2}" width="${dW}" height="${ROW - 4}" rx="2" fill="${dColor(d)}"/>`
      + `<text x="${xD + dW - 3}" y="${y + 13}" text-anchor="end" font-variant-numeric="tabular-nums" fill="${Math.abs(d) > dMax * 0.6 ? '#fff' : 'currentColor'}">${esc(signed(d, fmt.prob))}</text></g>`);
  });
  const yAxis = top + rows.length * ROW + 4;
  for (const [x0, name] of [[xc, 'probability, clean'], [xa, 'probability, ablated']] as const) {
    lines.push(`<g class="axis"><line x1="${x0}" x2="${x0 + pw}" y1="${yAxis}" y2="${yAxis}" stroke="currentColor"/>`
      + [0, hi / 2, hi].map((t) => `<line x1="${r2(x(t, x0))}" x2="${r2(x(t, x0))}" y1="${yAxis}" y2="${yAxis + 4}" stroke="currentColor"/><text x="${r2(x(t, x0))}" y="${yAxis + 15}" text-anchor="middle">${esc(fmt.prob(t))}</text>`).join('')
      + `<text x="${x0 + pw / 2}" y="${yAxis + 30}" text-anchor="middle" font-weight="600">${name}</text></g>`);
  }
  const H = yAxis + 38;
  const first = m.rows[0];
  const aria = `Next-token probabilities with and without the ablation, ${m.heading}; ${knockedSummary(m.knocked, m.mode)}; KL ${fmt.num(m.kl)} nats`
    + (first ? `; the most likely is ${JSON.stringify(first.piece)}, ${fmt.prob(first.pClean)} clean and ${fmt.prob(first.pAblated)} ablated` : '');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(aria)}" ${FONT} fill="currentColor">${lines.join('')}</svg>`;
}

/** The figure and its rows (the tokens drawn, then the target when it is not among them). */
export function ablateExport(m: AblateModel, opts: AblateSvgOptions = {}): FigureExport {
  const rows = m.target && !m.rows.some((r) => r.id === m.target!.id) ? [...m.rows, m.target] : m.rows;
  return {
    svg: ablateSvg(m, opts),
    rows: rows.map((r) => ({
      id: r.id, piece: r.piece, p_clean: r.pClean, p_ablated: r.pAblated, dp: r.pAblated - r.pClean,
      logit_clean: r.logitClean, logit_ablated: r.logitAblated, rank_clean: r.rankClean, rank_ablated: r.rankAblated,
    })),
    meta: {
      heading: m.heading, knocked_out: m.knocked, ablation: m.mode, kl_nats: m.kl, vocab: m.vocab,
      target: m.target ? { text: m.target.text, id: m.target.id, logit_clean: m.target.logitClean, logit_ablated: m.target.logitAblated, p_clean: m.target.pClean, p_ablated: m.target.pAblated } : null,
    },
  };
}
