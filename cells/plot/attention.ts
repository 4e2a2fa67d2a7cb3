// The attention cell's pure functions: the output the page computes (one layer's pattern and a
// per-head summary of every layer), head ordering and GQA grouping, and one SVG string per view:
// small multiples of a layer's heads, one head as a query × key heatmap, a lines view, the prompt
// tinted by one query's attention, and the model overview of every layer × head. Large heatmaps
// are drawn as canvas pixels (patternPixels, overviewPixels); the SVG functions then draw only the
// frame (axes, labels, legend) around the canvas, and export aggregates (rule at heatmapSvg).
//
// Colour domains: a pattern (one cell per query × key) uses [0, 1], the whole probability range,
// so heads and layers compare by eye; binned means (thumbnails) use [0, max drawn] because a bin
// of 40 tokens averages a weight of 1 down to 0.025; the from-token view uses [0, row max].

import { colorScale, esc, FONT, fmt, legendSvg, LEGEND_H, r2, rgbBytes, SVG_CELL_LIMIT, type SchemeName } from './kit.ts';
import type { FigureExport } from './figure.ts';
import { binStart, summarizeSquares, SUMMARY_SIZE } from '../../src/engine/attention-summary.ts';

// ---------------------------------------------------------------------------------------------
// The output

export interface HeadSummary {          // every layer × query head (the worker's), or one layer's
  nLayers: number; nHeads: number; nPos: number; size: number;   // size = B, thumbnail bins per side
  /** The first layer the arrays hold (default 0): a summary of one layer computed on the page
   *  (summarizeOneLayer) holds layer firstLayer alone, nLayers = 1. "[nLayers, …]" below counts
   *  from it; headStat and layerThumbs take model layers. */
  firstLayer?: number;
  thumbs: Float32Array;   // [nLayers, nHeads, B, B] mean attention per (query bin, key bin); NaN where no causal entry
  entropy: Float32Array;  // [nLayers, nHeads] mean row entropy (nats)
  first: Float32Array;    // [nLayers, nHeads] mean attention to position 0
  prev: Float32Array;     // [nLayers, nHeads] mean attention to the previous token (q ≥ 1)
  induction?: Float32Array; // [nLayers, nHeads] mean attention to the induction target (NaN: no token repeats)
}
export interface AttentionOutput {
  prompt: string;                 // the prompt cell's id (for linked token selection)
  labels: string[];               // one display label per token position
  layer: number;
  nLayers: number; nHeads: number; nKvHeads: number;
  pattern: { heads: number[]; shape: [number, number, number]; data: Float32Array };  // this layer: [heads, q, k], causal (0 above the diagonal), every query and key
  summary: HeadSummary | null;
  /** Long prompts: every head of the layer pooled into bins (the small multiples draw these, and
   *  `pattern` then holds only the head a single-head view looks at, or none). */
  pooled?: PooledLayer | null;
}
export interface PooledLayer {
  heads: number[];
  bins: number;                    // B per side (positions split as binStart)
  reduce: 'max' | 'mean';
  data: Float32Array;              // [heads, B, B]; NaN where no causal entry
}

export const VIEWS = ['heads', 'heatmap', 'lines', 'from', 'overview'] as const;
export type AttentionView = (typeof VIEWS)[number];
export const SORTS = ['index', 'entropy', 'first', 'prev', 'induction'] as const;
export type HeadSort = (typeof SORTS)[number];
export type HeadStat = Exclude<HeadSort, 'index'>;

/** What each statistic means, for labels and titles. */
export const STAT_LABEL: Record<HeadStat, string> = {
  entropy: 'mean row entropy (nats)',
  first: 'mean attention to position 0',
  prev: 'mean attention to the previous token',
  induction: 'mean attention to the token after the previous occurrence of the current token (induction)',
};

/** True when the summary has an induction score (the prompt repeats some token). */
export function hasInduction(s: HeadSummary | null): boolean {
  return !!s?.induction && s.induction.some((v) => Number.isFinite(v));
}

/** A value with 4 significant digits (data-v attributes, CSV). */
export function sig4(v: number): string {
  return Number.isFinite(v) ? String(Number(v.toPrecision(4))) : String(v);
}

const nPosOf = (out: AttentionOutput) => out.pattern.shape[1];

/** The display label of a position, cut to `max` characters. */
export function tokenLabel(out: AttentionOutput, i: number, max = 12): string {
  const s = out.labels[i] ?? `#${i}`;
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** Index of head `h` in the pattern (its heads list may be a subset); -1 when absent. */
export function headIndex(out: AttentionOutput, h: number): number {
  return out.pattern.heads.indexOf(h);
}

/** pattern[h, q, k] of this layer (h a head id). */
export function weightAt(out: AttentionOutput, h: number, q: number, k: number): number {
  const [, nQ, nK] = out.pattern.shape;
  return out.pattern.data[(headIndex(out, h) * nQ + q) * nK + k]!;
}

/** One head's [q, k] matrix (a view, no copy). */
export function headMatrix(out: AttentionOutput, h: number): Float32Array {
  const [, nQ, nK] = out.pattern.shape;
  const i = headIndex(out, h);
  if (i < 0) throw new RangeError(`attention: head ${h} is not in this output (it holds heads ${out.pattern.heads.join(', ')})`);
  return out.pattern.data.subarray(i * nQ * nK, (i + 1) * nQ * nK);
}

/** Hover text of one entry: `query 5 "cat" → key 3 "the": 0.1235 (layer 1, head 2)`. */
export function readout(out: AttentionOutput, h: number | 'mean', q: number, k: number, v: number): string {
  const head = h === 'mean' ? `mean of ${out.pattern.heads.length} heads` : `head ${h}`;
  return `query ${q} "${out.labels[q] ?? ''}" → key ${k} "${out.labels[k] ?? ''}": ${sig4(v)} (layer ${out.layer}, ${head})`;
}

// ---------------------------------------------------------------------------------------------
// GQA and head order

/** The KV head query head `h` reads: heads share a KV head in consecutive runs of nHeads/nKvHeads. */
export function kvHeadOf(h: number, nHeads: number, nKvHeads: number): number {
  return Math.floor(h / (nHeads / nKvHeads));
}

export interface KvGroup { kv: number; first: number; last: number; heads: number[] }

/** `heads` (in the order given) grouped by the KV head they share; groups in KV order. */
export function kvGroups(heads: readonly number[], nHeads: number, nKvHeads: number): KvGroup[] {
  const per = nHeads / nKvHeads;
  const groups = new Map<number, KvGroup>();
  for (const h of heads) {
    const kv = kvHeadOf(h, nHeads, nKvHeads);
    let g = groups.get(kv);
    if (!g) groups.set(kv, (g = { kv, first: kv * per, last: kv * per + per - 1, heads: [] }));
    g.heads.push(h);
  }
  return [...groups.values()].sort((a, b) => a.kv - b.kv);
}

/** A head's statistic from the summary (NaN when absent). */
export function headStat(s: HeadSummary | null, layer: number, head: number, stat: HeadStat): number {
  const l = s ? layerIndex(s, layer) : -1;
  if (!s || l < 0 || head >= s.nHeads) return NaN;
  const a = s[stat];
  return a ? a[l * s.nHeads + head]! : NaN;
}

/** Where the model's layer `layer` is in s's arrays (−1: s does not hold it). */
export function layerIndex(s: HeadSummary, layer: number): number {
  const l = layer - (s.firstLayer ?? 0);
  return l >= 0 && l < s.nLayers ? l : -1;
}

/** Whether s is the summary of every one of the model's nLayers layers (what the overview draws),
 *  not one layer's (summarizeOneLayer). */
export function everyLayer(s: HeadSummary | null, nLayers: number): s is HeadSummary {
  return !!s && (s.firstLayer ?? 0) === 0 && s.nLayers === nLayers;
}

/**
 * The layer's heads in display order: by index, or by a statistic — entropy ascending (the most
 * focused heads first), first, prev and induction descending (the strongest first). Ties and NaN keep index
 * order (NaN last). Without a summary the order is by index.
 */
export function orderHeads(s: HeadSummary | null, layer: number, sort: HeadSort, nHeads = s?.nHeads ?? 0): number[] {
  const idx = Array.from({ length: nHeads }, (_, h) => h);
  if (sort === 'index' || !s) return idx;
  const sign = sort === 'entropy' ? 1 : -1;
  const key = (h: number) => headStat(s, layer, h, sort);
  return idx.sort((a, b) => {
    const x = key(a), y = key(b);
    if (Number.isNaN(x) || Number.isNaN(y)) return Number.isNaN(x) === Number.isNaN(y) ? a - b : Number.isNaN(x) ? 1 : -1;
    return sign * (x - y) || a - b;
  });
}

/** The heads setting ("all" or a list) as head ids of this model, in `order`. */
export function shownHeads(setting: unknown, order: readonly number[]): number[] {
  if (!Array.isArray(setting)) return [...order];
  const want = new Set(setting.filter((h): h is number => typeof h === 'number'));
  return order.filter((h) => want.has(h));
}

// ---------------------------------------------------------------------------------------------
// Summary: the worker's own summarizer (src/engine/attention-summary.ts), so the bins, entropy,
// first and prev drawn from a full pattern here are the ones the engine records during a run.

export { binStart };

/** Thumbnails and statistics of one layer: data [nHeads, nPos, nPos] → thumbs [nHeads, B, B] etc. */
export function summarizeLayer(data: Float32Array, nHeads: number, nPos: number, size: number, tokens?: ArrayLike<number>):
  { thumbs: Float32Array; entropy: Float32Array; first: Float32Array; prev: Float32Array; induction?: Float32Array } {
  return summarize([data], nHeads, nPos, size, tokens);
}

/**
 * Layer `layer`'s summary from its whole pattern (every head: [nHeads, nPos, nPos]) with the
 * engine's default bins: for a short prompt the page has that pattern, so the heads view's
 * statistics and order cost a pass over one layer here instead of a summary of every layer in the
 * worker on every run (src/app/compute.ts). Same summarizer, same rows: the engine's bits.
 */
export function summarizeOneLayer(layer: number, data: Float32Array, nHeads: number, nPos: number, tokens?: ArrayLike<number>): HeadSummary {
  return { ...summarize([data], nHeads, nPos, SUMMARY_SIZE.default, tokens), firstLayer: layer };
}

/** The whole summary from every layer's pattern ([nHeads, nPos, nPos] each); size = min(B, nPos).
 *  `tokens` (the prompt's ids) add the induction score. */
export function summarize(layers: readonly Float32Array[], nHeads: number, nPos: number, bins = 24, tokens?: ArrayLike<number>): HeadSummary {
  return summarizeSquares(layers, nHeads, nPos, Math.max(1, Math.min(bins, nPos)), tokens);
}

// ---------------------------------------------------------------------------------------------
// Shared drawing bits

/** Row indices to label: every step-th position, step = ceil(n / maxLabels). */
export function thinLabels(n: number, maxLabels: number): number[] {
  const step = Math.max(1, Math.ceil(n / Math.max(1, Math.floor(maxLabels))));
  const out: number[] = [];
  for (let i = 0; i < n; i += step) out.push(i);
  return out;
}

/** [r, g, b] × n colours of a scheme over [lo, hi] (canvas pixels: one lookup per cell). */
export function colorLut(scheme: SchemeName, lo: number, hi: number, n = 256): Uint8Array {
  const c = colorScale(scheme, lo, hi), lut = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) lut.set(rgbBytes(c(lo + ((hi - lo) * i) / (n - 1))), i * 3);
  return lut;
}

/** The LUT slot of value v (what the pixel paths draw; tests compare colours through it). */
export function lutIndex(v: number, lo: number, hi: number, n = 256): number {
  const t = hi > lo ? (v - lo) / (hi - lo) : 0;
  return Math.max(0, Math.min(n - 1, Math.round(t * (n - 1))));
}

const W_COLOR = colorScale('sequential', 0, 1);
/** Text colour readable on a viridis fill of value t ∈ [0, 1] (dark fills below ~0.6). */
const inkOn = (t: number) => (t < 0.6 ? '#fff' : '#1d1d1f');

function svgOpen(width: number, height: number, label: string, extra = ''): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${r2(width)}" height="${r2(height)}" viewBox="0 0 ${r2(width)} ${r2(height)}" role="img" aria-label="${esc(label)}" ${FONT} fill="currentColor"${extra}>`;
}

/** A transparent layer of the same size and viewBox as its figure (highlights drawn on hover). */
function overlaySvg(g: { width: number; height: number }, body: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${r2(g.width)}" height="${r2(g.height)}" viewBox="0 0 ${r2(g.width)} ${r2(g.height)}" aria-hidden="true">${body}</svg>`;
}

function maxFinite(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) { const v = a[i]!; if (v > m) m = v; }
  return m || 1;
}

// ---------------------------------------------------------------------------------------------
// Heatmap of one head

export interface HeatGeom {
  n: number;            // positions (query = key count)
  cell: number;         // px per token
  x0: number; y0: number;   // top-left of the matrix
  width: number; height: number;
  labels: number[];     // positions labelled on both axes
  lab: number;          // px taken by the token labels beside/below the matrix
}

/** Default px per token: ~560 px for the whole matrix, at most 24 px per token. */
export function defaultCell(n: number): number {
  return Math.min(24, Math.max(0.25, 560 / Math.max(1, n)));
}

export function heatmapGeom(out: AttentionOutput, cell = defaultCell(nPosOf(out))): HeatGeom {
  const n = nPosOf(out);
  const labels = thinLabels(n, Math.min(n, Math.floor((n * cell) / 11)));
  const longest = labels.reduce((m, i) => Math.max(m, tokenLabel(out, i).length + String(i).length + 1), 1);
  const lab = 10 + 6.2 * longest;
  const x0 = 22 + lab, y0 = 30;
  return { n, cell, x0, y0, width: Math.max(x0 + n * cell + 16, 300), height: y0 + n * cell + lab + 22 + LEGEND_H + 20, labels, lab };
}

/** The query/key under a point of the heatmap (canvas hover readout), or null outside. */
export function heatCellAt(g: HeatGeom, x: number, y: number): { q: number; k: number } | null {
  const q = Math.floor((y - g.y0) / g.cell), k = Math.floor((x - g.x0) / g.cell);
  return q >= 0 && k >= 0 && q < g.n && k < g.n ? { q, k } : null;
}

/** Past this many bins per side an exported heatmap is aggregated (≤ 128² rects). */
export const EXPORT_BINS = 128;

/**
 * One head as a query × key heatmap. mode 'auto' draws one rect per causal cell when n² ≤
 * SVG_CELL_LIMIT, else 'frame'; 'frame' draws axes, labels and legend around an empty plot area
 * (the element lays a canvas of patternPixels there); 'aggregate' (export of long prompts)
 * draws ⌈n/128⌉-token bins (bin edges as binStart with B = 128), each the mean of its causal
 * entries with the max in its title, so the file stays under 128² rects.
 */
export function heatmapSvg(out: AttentionOutput, head: number, o: { cell?: number; mode?: 'auto' | 'rects' | 'frame' | 'aggregate' } = {}): string {
  const g = heatmapGeom(out, o.cell);
  const n = g.n, m = headMatrix(out, head), c = g.cell;
  let mode = o.mode ?? 'auto';
  if (mode === 'auto') mode = n * n <= SVG_CELL_LIMIT ? 'rects' : 'frame';
  if (mode === 'aggregate' && n <= EXPORT_BINS) mode = 'rects';
  const kv = kvHeadOf(head, out.nHeads, out.nKvHeads);
  const parts: string[] = [];
  parts.push(`<text x="${r2(g.x0)}" y="18" font-size="13" font-weight="600">Layer ${out.layer} · head ${head}${out.nKvHeads < out.nHeads ? ` (KV head ${kv})` : ''}</text>`);
  parts.push(`<rect class="plot-area" x="${r2(g.x0)}" y="${g.y0}" width="${r2(n * c)}" height="${r2(n * c)}" fill="none" stroke="currentColor" stroke-opacity="0.25"/>`);
  if (mode === 'rects') {
    for (let q = 0; q < n; q++) {
      for (let k = 0; k <= q; k++) {
        const v = m[q * n + k]!;
        parts.push(`<rect x="${r2(g.x0 + k * c)}" y="${r2(g.y0 + q * c)}" width="${r2(c)}" height="${r2(c)}" fill="${W_COLOR(v)}" data-h="${head}" data-q="${q}" data-k="${k}" data-v="${sig4(v)}"><title>${esc(readout(out, head, q, k, v))}</title></rect>`);
      }
    }
  } else if (mode === 'aggregate') {
    const B = EXPORT_BINS;
    for (let qi = 0; qi < B; qi++) {
      const q0 = binStart(qi, n, B), q1 = binStart(qi + 1, n, B);
      for (let ki = 0; ki <= qi; ki++) {
        const k0 = binStart(ki, n, B), k1 = binStart(ki + 1, n, B);
        let sum = 0, cnt = 0, mx = 0;
        for (let q = q0; q < q1; q++) for (let k = k0; k < Math.min(k1, q + 1); k++) { const v = m[q * n + k]!; sum += v; cnt++; if (v > mx) mx = v; }
        if (!cnt) continue;
        const mean = sum / cnt;
        parts.push(`<rect x="${r2(g.x0 + k0 * c)}" y="${r2(g.y0 + q0 * c)}" width="${r2((k1 - k0) * c)}" height="${r2((q1 - q0) * c)}" fill="${W_COLOR(mean)}" data-h="${head}" data-q0="${q0}" data-q1="${q1 - 1}" data-k0="${k0}" data-k1="${k1 - 1}" data-v="${sig4(mean)}"><title>queries ${q0}–${q1 - 1}, keys ${k0}–${k1 - 1}: mean ${sig4(mean)}, max ${sig4(mx)} (layer ${out.layer}, head ${head})</title></rect>`);
      }
    }
  }
  // Axes: query labels left of the rows, key labels below the columns (rotated).
  const yEnd = g.y0 + n * c;
  for (const i of g.labels) {
    const t = `${i} ${tokenLabel(out, i)}`;
    parts.push(`<text class="tok" data-t="${i}" x="${r2(g.x0 - 4)}" y="${r2(g.y0 + (i + 0.5) * c + 3.5)}" text-anchor="end" xml:space="preserve">${esc(t)}</text>`);
    parts.push(`<text class="tok" data-t="${i}" transform="translate(${r2(g.x0 + (i + 0.5) * c + 3.5)},${r2(yEnd + 4)}) rotate(-90)" text-anchor="end" xml:space="preserve">${esc(t)}</text>`);
  }
  const lab = g.lab;
  parts.push(`<text transform="translate(12,${r2(g.y0 + (n * c) / 2)}) rotate(-90)" text-anchor="middle" font-weight="600">query position (token)</text>`);
  parts.push(`<text x="${r2(g.x0 + (n * c) / 2)}" y="${r2(yEnd + lab + 14)}" text-anchor="middle" font-weight="600">key position (token)</text>`);
  const ly = yEnd + lab + 24;
  parts.push(legendSvg({ label: 'attention weight (probability)', lo: 0, hi: 1, scheme: 'sequential', x: g.x0, y: ly, width: Math.min(240, Math.max(160, n * c)) }));
  const note = mode === 'aggregate' ? `means over ${Math.ceil(n / EXPORT_BINS)}-token bins (${n} tokens)` : 'blank above the diagonal: masked (key after query)';
  parts.push(`<text x="${r2(g.x0)}" y="${r2(ly + LEGEND_H + 10)}" font-size="10" opacity="0.7">${esc(note)}</text>`);
  return svgOpen(g.width, g.height, `Attention of layer ${out.layer}, head ${head}: ${n} query × ${n} key positions`) + parts.join('') + '</svg>';
}

/** Overlay for the heatmap (same size): the selected token's row and column outlined. */
export function heatmapHighlightSvg(g: HeatGeom, token: number | null): string {
  let body = '';
  if (token !== null && token >= 0 && token < g.n) {
    const c = g.cell, a = g.n * c;
    body = `<rect x="${r2(g.x0)}" y="${r2(g.y0 + token * c)}" width="${r2((token + 1) * c)}" height="${r2(Math.max(c, 1))}" fill="none" stroke="#d58a00" stroke-width="1.5"/>`
      + `<rect x="${r2(g.x0 + token * c)}" y="${r2(g.y0 + token * c)}" width="${r2(Math.max(c, 1))}" height="${r2(a - token * c)}" fill="none" stroke="#d58a00" stroke-width="1.5" stroke-dasharray="3 2"/>`;
  }
  return overlaySvg(g, body);
}

/**
 * One pixel per query × key of head h (RGBA, row = query), viridis over [0, 1] through a
 * 256-entry table; above the diagonal (masked) transparent. Work: n² reads, no strings.
 */
export function patternPixels(out: AttentionOutput, h: number, lut = colorLut('sequential', 0, 1)): Uint8ClampedArray<ArrayBuffer> {
  const n = nPosOf(out), m = headMatrix(out, h);
  const px = new Uint8ClampedArray(n * n * 4);
  for (let q = 0; q < n; q++) {
    for (let k = 0; k <= q; k++) {
      const i = q * n + k, v = m[i]!;
      const j = Math.max(0, Math.min(255, Math.round(v * 255))) * 3;
      px[i * 4] = lut[j]!; px[i * 4 + 1] = lut[j + 1]!; px[i * 4 + 2] = lut[j + 2]!; px[i * 4 + 3] = 255;
    }
  }
  return px;
}

// ---------------------------------------------------------------------------------------------
// Small multiples of one layer, grouped by KV head

export interface TileGeom { head: number; x: number; y: number }
export interface MultiplesGeom {
  tile: number; width: number; height: number; tiles: TileGeom[];
  frames: { kv: number; x: number; y: number; w: number; h: number; label: string }[];
  legendY: number;
}

const GAP = 12, PAD = 8, HEAD_LABEL = 14, GROUP_LABEL = 18;

/** Layout: KV groups flow left to right as units (a group wider than the page wraps inside). */
export function multiplesGeom(out: AttentionOutput, heads: readonly number[], o: { width?: number; tile?: number; stats?: boolean } = {}): MultiplesGeom {
  const W = o.width ?? 900, tile = o.tile ?? 96, stats = o.stats ?? out.summary !== null;
  const below = stats ? (hasInduction(out.summary) ? 52 : 40) : 4;
  const cellW = tile + GAP, cellH = HEAD_LABEL + tile + below;
  const gqa = out.nKvHeads < out.nHeads;
  const groups = gqa ? kvGroups(heads, out.nHeads, out.nKvHeads) : [{ kv: -1, first: 0, last: 0, heads: [...heads] }];
  const pad = gqa ? PAD : 0, top = gqa ? GROUP_LABEL : 0;
  const perRow = Math.max(1, Math.floor((W - 2 * pad + GAP) / cellW));
  const tiles: TileGeom[] = [], frames: MultiplesGeom['frames'] = [];
  const M = 8;                                          // left margin: legend ticks centre on x = 0
  let x = M, y = 0, rowH = 0, maxX = 0;
  for (const g of groups) {
    const cols = Math.min(perRow, g.heads.length), rows = Math.ceil(g.heads.length / perRow);
    const fw = Math.max(cols * cellW - GAP + 2 * pad, gqa ? 150 : 0), fh = top + rows * cellH + pad;
    if (x > M && x + fw > W) { x = M; y += rowH + GAP; rowH = 0; }
    g.heads.forEach((h, i) => tiles.push({ head: h, x: x + pad + (i % perRow) * cellW, y: y + top + Math.floor(i / perRow) * cellH + HEAD_LABEL }));
    if (gqa) frames.push({ kv: g.kv, x, y, w: fw, h: fh, label: `KV head ${g.kv}: q heads ${g.first}–${g.last}` });
    x += fw + GAP; rowH = Math.max(rowH, fh); maxX = Math.max(maxX, x - GAP);
  }
  const legendY = y + rowH + 22;
  return { tile, width: Math.max(maxX, 320), height: legendY + LEGEND_H + 18, tiles, frames, legendY };
}

/** Tiles above this many drawn cells in all switch to thumbnails (bins) of the pattern. */
function useBins(heads: number, n: number): boolean {
  return (heads * n * (n + 1)) / 2 > SVG_CELL_LIMIT;
}

/** A layer's thumbnails: [heads, B, B] per-bin values of `heads` (in that order), `reduce` says how a bin combines its entries. */
export interface LayerThumbs { B: number; thumbs: Float32Array; heads: readonly number[]; reduce: 'max' | 'mean' }

const binsCache = new WeakMap<AttentionOutput, LayerThumbs>();

/** [heads, B, B] thumbnails of this layer: the pooled heads (long prompts), the summary's bin means, else bin means computed once. */
export function layerThumbs(out: AttentionOutput, bins = 24): LayerThumbs {
  const hit = binsCache.get(out);
  if (hit) return hit;
  const n = nPosOf(out), s = out.summary, p = out.pooled;
  let r: LayerThumbs;
  if (p) {
    r = { B: p.bins, thumbs: p.data, heads: p.heads, reduce: p.reduce };
  } else if (s && s.nPos === n && s.nHeads === out.nHeads && layerIndex(s, out.layer) >= 0 && out.pattern.heads.length === s.nHeads) {
    const per = s.nHeads * s.size * s.size, l = layerIndex(s, out.layer);
    r = { B: s.size, thumbs: s.thumbs.subarray(l * per, (l + 1) * per), heads: out.pattern.heads, reduce: 'mean' };
  } else {
    const B = Math.max(1, Math.min(bins, n));
    r = { B, thumbs: summarizeLayer(out.pattern.data, out.pattern.heads.length, n, B).thumbs, heads: out.pattern.heads, reduce: 'mean' };
  }
  binsCache.set(out, r);
  return r;
}

/** Index of head h in the layer's thumbnails (-1 when absent). */
export function thumbIndex(t: LayerThumbs, h: number): number {
  return t.heads.indexOf(h);
}

/** The positions a bin spans, "10" or "10–11" (bins differ in size by at most one). */
function binSpan(n: number, B: number): string {
  const lo = Math.floor(n / B), hi = Math.ceil(n / B);
  return lo === hi ? String(lo) : `${lo}–${hi}`;
}

/** How a thumbnail pixel was pooled: "max over 10–11 × 10–11 positions (query × key)". */
export function poolNote(t: LayerThumbs, n: number): string {
  const s = binSpan(n, t.B);
  return `${t.reduce} over ${s} × ${s} positions (query × key)`;
}

/** Hover text of one thumbnail bin: `head 3: queries 0–10, keys 0–10: max 0.93`. */
export function binReadout(t: LayerThumbs, n: number, h: number, qi: number, ki: number): string {
  const v = t.thumbs[(thumbIndex(t, h) * t.B + qi) * t.B + ki]!, B = t.B;
  return `head ${h}: queries ${binStart(qi, n, B)}–${binStart(qi + 1, n, B) - 1}, keys ${binStart(ki, n, B)}–${binStart(ki + 1, n, B) - 1}: ${Number.isFinite(v) ? `${t.reduce} ${sig4(v)}` : 'masked'}`;
}

/** Whether the small multiples of these heads draw bins (thumbnails) rather than every cell. */
export function multiplesUseBins(out: AttentionOutput, heads: readonly number[]): boolean {
  return !!out.pooled || useBins(heads.length, nPosOf(out));
}

/** The colour domain's top for binned tiles: the max bin mean over the shown heads. */
function binsHi(out: AttentionOutput, heads: readonly number[]): number {
  const t = layerThumbs(out), B2 = t.B * t.B;
  let hi = 0;
  for (const h of heads) { const i = thumbIndex(t, h); if (i >= 0) hi = Math.max(hi, maxFinite(t.thumbs.subarray(i * B2, (i + 1) * B2))); }
  return hi || 1;
}

/**
 * The layer's heads as small heatmaps, query heads framed by the KV head they share (GQA), in
 * `heads` order (orderHeads for sorting; within a KV frame). Each tile is one rect per causal cell
 * while all tiles hold ≤ SVG_CELL_LIMIT cells, else the B × B bin means (layerThumbs), as rects
 * (export; bins with mode 'image' as one embedded PNG). With mode 'frame' the tiles hold no cells
 * at all: the element draws multiplesPixels on a canvas under the SVG (thousands of rects cost a
 * keystroke more to parse, style and paint than the model takes to run). Under each tile:
 * entropy, first and prev from the summary (omitted without one; `sort` in bold).
 */
export function smallMultiplesSvg(out: AttentionOutput, heads: readonly number[], o: { width?: number; tile?: number; sort?: HeadSort; mode?: 'auto' | 'frame' | 'image' } = {}): string {
  const g = multiplesGeom(out, heads, o);
  const n = nPosOf(out), t = g.tile, s = out.summary;
  const bins = multiplesUseBins(out, heads), frame = o.mode === 'frame' || (bins && o.mode === 'image');
  const parts: string[] = [];
  let color = W_COLOR, hi = 1;
  let thumbs: LayerThumbs | null = null;
  if (bins) {
    thumbs = layerThumbs(out);
    hi = binsHi(out, heads);
    color = colorScale('sequential', 0, hi);
  }
  for (const f of g.frames) {
    parts.push(`<g class="kv-group" data-kv="${f.kv}"><rect x="${r2(f.x)}" y="${r2(f.y)}" width="${r2(f.w)}" height="${r2(f.h)}" rx="6" fill="none" stroke="currentColor" stroke-opacity="0.35"/>`
      + `<text x="${r2(f.x + PAD)}" y="${r2(f.y + 13)}" font-weight="600">${esc(f.label)}</text></g>`);
  }
  if (frame && o.mode === 'image') {
    const p = multiplesPixels(out, heads, g);
    parts.push(`<image x="0" y="0" width="${p.width}" height="${p.height}" preserveAspectRatio="none" style="image-rendering:pixelated" href="${pngDataUrl(p.pixels, p.width, p.height)}"/>`);
  }
  const pooledNote = out.pooled && thumbs ? `; each pixel the ${poolNote(thumbs, n)}` : '';
  for (const tg of g.tiles) {
    const h = tg.head, hi0 = thumbs ? thumbIndex(thumbs, h) : headIndex(out, h);
    if (hi0 < 0) continue;
    const kv = kvHeadOf(h, out.nHeads, out.nKvHeads);
    parts.push(`<g class="tile" data-l="${out.layer}" data-h="${h}" transform="translate(${r2(tg.x)},${r2(tg.y)})">`
      + `<title>layer ${out.layer}, head ${h}${out.nKvHeads < out.nHeads ? ` (KV head ${kv})` : ''}${esc(pooledNote)}: click to enlarge</title>`
      + `<text x="0" y="-4" font-weight="600">head ${h}</text>`
      + `<rect class="bg" width="${t}" height="${t}" fill="${frame ? 'transparent' : 'currentColor'}" fill-opacity="${frame ? 0 : 0.04}" stroke="currentColor" stroke-opacity="0.2"/>`);
    if (frame) {
      // the canvas under this SVG (or the image above) draws the cells
    } else if (thumbs) {
      const B = thumbs.B, c = t / B, base = hi0 * B * B;
      for (let qi = 0; qi < B; qi++) for (let ki = 0; ki < B; ki++) {
        const v = thumbs.thumbs[base + qi * B + ki]!;
        if (!Number.isFinite(v)) continue;
        parts.push(`<rect x="${r2(ki * c)}" y="${r2(qi * c)}" width="${r2(c)}" height="${r2(c)}" fill="${color(v)}" data-h="${h}" data-q0="${binStart(qi, n, B)}" data-q1="${binStart(qi + 1, n, B) - 1}" data-k0="${binStart(ki, n, B)}" data-k1="${binStart(ki + 1, n, B) - 1}" data-v="${sig4(v)}"/>`);
      }
    } else {
      const c = t / n, base = hi0 * n * n;
      for (let q = 0; q < n; q++) for (let k = 0; k <= q; k++) {
        const v = out.pattern.data[base + q * n + k]!;
        parts.push(`<rect x="${r2(k * c)}" y="${r2(q * c)}" width="${r2(c)}" height="${r2(c)}" fill="${W_COLOR(v)}" data-h="${h}" data-q="${q}" data-k="${k}" data-v="${sig4(v)}"/>`);
      }
    }
    if (s) {
      const stats: [HeadStat, string][] = [['entropy', 'entropy'], ['first', 'first'], ['prev', 'prev']];
      if (hasInduction(s)) stats.push(['induction', 'induction']);
      stats.forEach(([k, name], i) => {
        const v = headStat(s, out.layer, h, k);
        parts.push(`<text class="stat" x="0" y="${t + 12 + i * 12}" font-size="10"${o.sort === k ? ' font-weight="700"' : ''} data-l="${out.layer}" data-h="${h}" data-stat="${k}" data-v="${sig4(v)}"><title>${esc(`${STAT_LABEL[k]}: ${sig4(v)}`)}</title>${name} ${esc(fmt.num(v))}</text>`);
      });
    }
    parts.push('</g>');
  }
  const label = !bins ? 'attention weight (probability)'
    : out.pooled ? `${thumbs!.reduce} attention weight per bin (${thumbs!.B} × ${thumbs!.B} bins of ${binSpan(n, thumbs!.B)} tokens)`
      : `mean attention weight per bin (${thumbs!.B} × ${thumbs!.B} bins)`;
  parts.push(legendSvg({ label, lo: 0, hi, scheme: 'sequential', x: 8, y: g.legendY }));
  const sortNote = o.sort && o.sort !== 'index' ? (s ? ` · sorted by ${o.sort}${out.nKvHeads < out.nHeads ? ' within each KV group' : ''}` : ' · no summary: index order') : '';
  const axes = out.pooled ? `rows: query bin, columns: key bin (${thumbs!.B} bins of ${binSpan(n, thumbs!.B)} positions; ${thumbs!.reduce} per bin)` : 'rows: query position, columns: key position (token)';
  parts.push(`<text x="8" y="${r2(g.legendY - 8)}" font-size="10" opacity="0.7">${esc(axes + sortNote)}</text>`);
  return svgOpen(g.width, g.height, `Attention of layer ${out.layer}: ${heads.length} heads as small heatmaps${out.nKvHeads < out.nHeads ? `, grouped by the ${out.nKvHeads} KV heads they share` : ''}`) + parts.join('') + '</svg>';
}

/**
 * The tiles as one RGBA image the size of the figure (g.width × g.height, 1 px = 1 SVG unit): each
 * causal cell (or bin, past SVG_CELL_LIMIT) a block of about tile/n (tile/B) pixels in the colour
 * of its weight (exact cells on [0, 1], bins on [0, hi]); masked cells stay transparent. Work: the
 * tiles' area, whatever the prompt length.
 */
export function multiplesPixels(out: AttentionOutput, heads: readonly number[], g: MultiplesGeom): { pixels: Uint8ClampedArray<ArrayBuffer>; width: number; height: number; hi: number } {
  const t = multiplesUseBins(out, heads) ? layerThumbs(out) : null;
  const B = t ? t.B : nPosOf(out), values = t ? t.thumbs : out.pattern.data;
  const hi = t ? binsHi(out, heads) : 1, lut = colorLut('sequential', 0, hi);
  const width = Math.ceil(g.width), height = Math.ceil(g.height), px = new Uint8ClampedArray(width * height * 4);
  const edge = (i: number) => Math.round((i * g.tile) / B);
  for (const tg of g.tiles) {
    const at = t ? thumbIndex(t, tg.head) : headIndex(out, tg.head);
    if (at < 0) continue;
    const x0 = Math.round(tg.x), y0 = Math.round(tg.y);
    for (let qi = 0; qi < B; qi++) for (let ki = 0; ki <= qi; ki++) {
      const v = values[(at * B + qi) * B + ki]!;
      if (!Number.isFinite(v)) continue;
      const c = lutIndex(v, 0, hi) * 3;
      for (let y = y0 + edge(qi); y < y0 + edge(qi + 1); y++) for (let x = x0 + edge(ki); x < x0 + edge(ki + 1); x++) {
        const p = (y * width + x) * 4;
        px[p] = lut[c]!; px[p + 1] = lut[c + 1]!; px[p + 2] = lut[c + 2]!; px[p + 3] = 255;
      }
    }
  }
  return { pixels: px, width, height, hi };
}

/** The head and the cell under a point of the small multiples (SVG units), or null: qi, ki are
 *  the query and key positions, or their bins when the tiles draw bins (multiplesUseBins). */
export function multiplesAt(out: AttentionOutput, g: MultiplesGeom, x: number, y: number): { head: number; qi: number; ki: number } | null {
  const B = multiplesUseBins(out, g.tiles.map((t) => t.head)) ? layerThumbs(out).B : nPosOf(out);
  for (const t of g.tiles) {
    if (x >= t.x && y >= t.y && x < t.x + g.tile && y < t.y + g.tile) {
      return { head: t.head, qi: Math.min(B - 1, Math.floor(((y - t.y) * B) / g.tile)), ki: Math.min(B - 1, Math.floor(((x - t.x) * B) / g.tile)) };
    }
  }
  return null;
}

/** Overlay for the small multiples: outlines of the highlighted head. */
export function multiplesHighlightSvg(g: MultiplesGeom, head: number | null): string {
  const t = g.tiles.find((x) => x.head === head);
  const body = t ? `<rect x="${r2(t.x - 2)}" y="${r2(t.y - 2)}" width="${g.tile + 4}" height="${g.tile + 4}" fill="none" stroke="#d58a00" stroke-width="2.5" rx="2"/>` : '';
  return overlaySvg(g, body);
}

// ---------------------------------------------------------------------------------------------
// Lines view

/** Lines lighter than this are not drawn (the view says so). */
export const LINE_THRESHOLD = 0.02;

export interface LinesGeom { n: number; rowH: number; width: number; height: number; xk: number; xq: number; top: number }

export function linesGeom(out: AttentionOutput, o: { rowH?: number; width?: number } = {}): LinesGeom {
  const n = nPosOf(out), rowH = o.rowH ?? 16, width = o.width ?? 520, colW = 130, top = 46;
  return { n, rowH, width, xk: colW, xq: width - colW, top, height: top + n * rowH + 16 + 56 };
}

const lineY = (g: LinesGeom, i: number) => g.top + i * g.rowH + g.rowH / 2;
const LINE_STROKE = W_COLOR(0.3), HL = '#d58a00';

function lineMark(out: AttentionOutput, g: LinesGeom, head: number, q: number, k: number, w: number, stroke: string, opacity: number): string {
  return `<line x1="${g.xk + 6}" y1="${r2(lineY(g, k))}" x2="${g.xq - 6}" y2="${r2(lineY(g, q))}" stroke="${stroke}" stroke-opacity="${sig4(opacity)}" stroke-width="${r2(0.5 + 4 * w)}" data-h="${head}" data-q="${q}" data-k="${k}" data-v="${sig4(w)}"><title>${esc(readout(out, head, q, k, w))}</title></line>`;
}

function tokenRow(out: AttentionOutput, g: LinesGeom, i: number, bold: boolean): string {
  const b = bold ? ' font-weight="700"' : '', t = esc(`${i} ${tokenLabel(out, i, 16)}`), y = r2(lineY(g, i) + 4);
  return `<text class="tok" data-t="${i}" x="${g.xk}" y="${y}" text-anchor="end"${b} xml:space="preserve">${t}</text>`
    + `<text class="tok" data-t="${i}" x="${g.xq}" y="${y}"${b} xml:space="preserve">${t}</text>`;
}

/** More lines than this are drawn on a canvas under the SVG (the cell: linesOnCanvas), not as elements. */
export const LINES_SVG_LIMIT = 2000;

/** The lines of a head at least `threshold` heavy, lightest first (heavy lines are drawn last, on
 *  top), at most `maxLines` (the heaviest); `total` causal entries, `kept` at or over the threshold. */
export interface LinesPlan { q: Int32Array; k: Int32Array; w: Float32Array; total: number; kept: number; threshold: number; maxLines: number }

export function linesPlan(out: AttentionOutput, head: number, o: { threshold?: number; maxLines?: number } = {}): LinesPlan {
  const n = nPosOf(out), m = headMatrix(out, head);
  const threshold = o.threshold ?? LINE_THRESHOLD, maxLines = o.maxLines ?? 20_000;
  let lines: [number, number, number][] = [];            // [q, k, w]
  let total = 0;
  for (let q = 0; q < n; q++) for (let k = 0; k <= q; k++) { const w = m[q * n + k]!; total++; if (w >= threshold) lines.push([q, k, w]); }
  const kept = lines.length;
  lines.sort((a, b) => a[2] - b[2]);
  if (lines.length > maxLines) lines = lines.slice(lines.length - maxLines);
  return {
    q: Int32Array.from(lines, (l) => l[0]), k: Int32Array.from(lines, (l) => l[1]), w: Float32Array.from(lines, (l) => l[2]),
    total, kept, threshold, maxLines,
  };
}

/** Whether the lines view of this head draws its lines on a canvas (more than LINES_SVG_LIMIT of them). */
export function linesOnCanvas(plan: LinesPlan): boolean {
  return plan.w.length > LINES_SVG_LIMIT;
}

/**
 * Keys listed on the left, queries on the right; each query joined to every key it attends to with
 * weight ≥ threshold, line opacity = weight and width = 0.5 + 4·weight. At most `maxLines` (the
 * heaviest). `highlight`: a token whose lines stay strong (orange) while the others fade; the
 * element instead fades the lines with CSS and lays linesHighlightSvg over them (no re-parse).
 * mode 'frame': everything but the lines (the element draws them on a canvas: drawLines).
 */
export function linesSvg(out: AttentionOutput, head: number, o: { threshold?: number; highlight?: number | null; rowH?: number; width?: number; maxLines?: number; plan?: LinesPlan; mode?: 'svg' | 'frame' } = {}): string {
  const g = linesGeom(out, o), n = g.n;
  const plan = o.plan ?? linesPlan(out, head, o), th = plan.threshold;
  const hl = o.highlight ?? null;
  const parts: string[] = [];
  parts.push(`<text x="0" y="14" font-size="13" font-weight="600">Layer ${out.layer} · head ${head}: each query's attention to keys</text>`);
  parts.push(`<text x="${g.xk}" y="34" text-anchor="end" font-weight="600">key (token)</text><text x="${g.xq}" y="34" font-weight="600">query (token)</text>`);
  parts.push('<g class="lines">');
  if (o.mode !== 'frame') {
    for (let i = 0; i < plan.w.length; i++) {
      const q = plan.q[i]!, k = plan.k[i]!, w = plan.w[i]!;
      const on = hl === null || q === hl || k === hl;
      parts.push(lineMark(out, g, head, q, k, w, on && hl !== null ? HL : LINE_STROKE, on ? w : w * 0.15));
    }
  }
  parts.push('</g>');
  for (let i = 0; i < n; i++) parts.push(tokenRow(out, g, i, i === hl));
  const ly = g.top + n * g.rowH + 16;
  parts.push(`<g transform="translate(0,${ly})"><text y="10" font-weight="600">line width and opacity = attention weight (probability)</text>`);
  [0.05, 0.25, 0.5, 1].forEach((w, i) => {
    parts.push(`<line x1="${i * 80}" x2="${i * 80 + 40}" y1="24" y2="24" stroke="${LINE_STROKE}" stroke-opacity="${w}" stroke-width="${r2(0.5 + 4 * w)}"/><text x="${i * 80 + 44}" y="28">${w}</text>`);
  });
  const dropped = plan.total - plan.kept, cut = plan.kept - plan.w.length;
  const canvasNote = o.mode === 'frame' ? `; ${fmt.int(plan.w.length)} lines drawn as pixels: hover a token for its own` : '';
  parts.push(`<text y="46" font-size="10" opacity="0.7">${esc(`weights below ${th} not drawn (${fmt.int(dropped)} of ${fmt.int(plan.total)} entries)${cut > 0 ? `; only the ${fmt.int(plan.maxLines)} heaviest of ${fmt.int(plan.kept)} lines drawn` : ''}${canvasNote}`)}</text></g>`);
  return svgOpen(g.width, g.height, `Attention of layer ${out.layer}, head ${head} as lines from each query to the keys it attends to`) + parts.join('') + '</svg>';
}

/** What drawLines needs of a canvas's 2D context. */
export interface LineCanvas {
  strokeStyle: string | CanvasGradient | CanvasPattern; lineWidth: number; globalAlpha: number;
  beginPath(): void; moveTo(x: number, y: number): void; lineTo(x: number, y: number): void; stroke(): void;
}

/** The lines of `plan` on a canvas in the view's coordinates (scale the context for the pixel
 *  ratio first): the same ends, widths, colour and opacities as linesSvg's elements. */
export function drawLines(ctx: LineCanvas, out: AttentionOutput, plan: LinesPlan, o: { rowH?: number; width?: number } = {}): void {
  const g = linesGeom(out, o);
  ctx.strokeStyle = LINE_STROKE;
  for (let i = 0; i < plan.w.length; i++) {
    const w = plan.w[i]!;
    ctx.globalAlpha = w;
    ctx.lineWidth = 0.5 + 4 * w;
    ctx.beginPath();
    ctx.moveTo(g.xk + 6, lineY(g, plan.k[i]!));
    ctx.lineTo(g.xq - 6, lineY(g, plan.q[i]!));
    ctx.stroke();
  }
  ctx.globalAlpha = 1;
}

/** Overlay for the lines view: the lines of `token` (as query and as key) in orange, its labels bold. */
export function linesHighlightSvg(out: AttentionOutput, head: number, token: number | null, o: { threshold?: number; rowH?: number; width?: number } = {}): string {
  const g = linesGeom(out, o), n = g.n, m = headMatrix(out, head), th = o.threshold ?? LINE_THRESHOLD;
  const parts: string[] = [];
  if (token !== null && token >= 0 && token < n) {
    for (let k = 0; k <= token; k++) { const w = m[token * n + k]!; if (w >= th) parts.push(lineMark(out, g, head, token, k, w, HL, Math.max(w, 0.3))); }
    for (let q = token + 1; q < n; q++) { const w = m[q * n + token]!; if (w >= th) parts.push(lineMark(out, g, head, q, token, w, HL, Math.max(w, 0.3))); }
    // A tint over the token's two labels (drawing them again in bold would double the text).
    const w = r2(6.4 * `${token} ${tokenLabel(out, token, 16)}`.length + 6), y = r2(lineY(g, token) - g.rowH / 2 + 1);
    for (const x of [g.xk - w + 3, g.xq - 3]) parts.push(`<rect x="${r2(x)}" y="${y}" width="${w}" height="${g.rowH - 2}" rx="3" fill="${HL}" fill-opacity="0.22" stroke="${HL}"/>`);
  }
  return overlaySvg(g, parts.join(''));
}

// ---------------------------------------------------------------------------------------------
// "From this token": the prompt tinted by one query's attention

/** Row q of head h (or the mean over the pattern's heads): weights to keys 0..q. */
export function attentionRow(out: AttentionOutput, head: number | 'mean', q: number): Float32Array {
  const n = nPosOf(out), row = new Float32Array(q + 1);
  if (head === 'mean') {
    const H = out.pattern.heads.length;
    for (let i = 0; i < H; i++) for (let k = 0; k <= q; k++) row[k]! += out.pattern.data[(i * n + q) * n + k]! / H;
  } else {
    const m = headMatrix(out, head);
    for (let k = 0; k <= q; k++) row[k] = m[q * n + k]!;
  }
  return row;
}

const CH_W = 7.4, CH_H = 24, CH_GAP = 4, CH_PAD = 5;

/** The token chips tinted by attention from `query` over keys ≤ query (viridis, [0, row max]). */
export function fromTokenSvg(out: AttentionOutput, head: number | 'mean', query: number, o: { width?: number } = {}): string {
  const n = nPosOf(out), W = o.width ?? 720;
  const q = Math.max(0, Math.min(n - 1, query));
  const row = attentionRow(out, head, q);
  const hi = maxFinite(row), color = colorScale('sequential', 0, hi);
  const who = head === 'mean' ? `mean over ${out.pattern.heads.length} heads` : `head ${head}`;
  const parts: string[] = [];
  parts.push(`<text x="0" y="14" font-size="13" font-weight="600">${esc(`Attention from query ${q} "${tokenLabel(out, q, 24)}" (layer ${out.layer}, ${who})`)}</text>`);
  let x = 0, y = 26;
  for (let k = 0; k < n; k++) {
    const label = tokenLabel(out, k, 24);
    const w = Math.max(label.length, 1) * CH_W + 2 * CH_PAD;
    if (x > 0 && x + w > W) { x = 0; y += CH_H + CH_GAP; }
    const tr = `translate(${r2(x)},${y})`;
    if (k <= q) {
      const v = row[k]!;
      const stroke = k === q ? ' stroke="#d58a00" stroke-width="2.5"' : '';
      parts.push(`<g class="tok" data-t="${k}" data-q="${q}" data-k="${k}" data-h="${head}" data-v="${sig4(v)}" transform="${tr}"><title>${esc(readout(out, head, q, k, v))}</title>`
        + `<rect width="${r2(w)}" height="${CH_H}" rx="4" fill="${color(v)}"${stroke}/>`
        + `<text x="${CH_PAD}" y="16" font-family="monospace" font-size="12" fill="${inkOn(v / hi)}" xml:space="preserve">${esc(label)}</text></g>`);
    } else {
      parts.push(`<g class="tok future" data-t="${k}" transform="${tr}"><title>${esc(`key ${k} "${out.labels[k] ?? ''}" comes after query ${q}: masked`)}</title>`
        + `<rect width="${r2(w)}" height="${CH_H}" rx="4" fill="none" stroke="currentColor" stroke-opacity="0.3" stroke-dasharray="3 2"/>`
        + `<text x="${CH_PAD}" y="16" font-family="monospace" font-size="12" opacity="0.45" xml:space="preserve">${esc(label)}</text></g>`);
    }
    x += w + CH_GAP;
  }
  const ly = y + CH_H + 14;
  parts.push(legendSvg({ label: `attention weight from query ${q} (probability; scale to this row's max)`, lo: 0, hi, scheme: 'sequential', x: 6, y: ly }));
  parts.push(`<text x="6" y="${ly + LEGEND_H + 10}" font-size="10" opacity="0.7">outlined: the query token · dashed: later tokens (masked)</text>`);
  return svgOpen(W, ly + LEGEND_H + 18, `The prompt tinted by the attention of query ${q} over keys (layer ${out.layer}, ${who})`) + parts.join('') + '</svg>';
}

// ---------------------------------------------------------------------------------------------
// Model overview: every layer × head as a thumbnail

export interface OverviewGeom {
  B: number; scale: number;       // bins per side; CSS px per bin
  step: number;                   // px per tile in the pixel image (B + 1 gap)
  x0: number; y0: number; width: number; height: number;
  order: number[][];              // [layer] → heads in column order
}

export function overviewGeom(s: HeadSummary, sort: HeadSort = 'index'): OverviewGeom {
  const B = s.size, step = B + 1;
  const scale = Math.max(1, Math.floor(40 / step));
  const order = Array.from({ length: s.nLayers }, (_, l) => orderHeads(s, l, sort));
  const x0 = 52, y0 = 54;
  const w = s.nHeads * step * scale, h = s.nLayers * step * scale;
  return { B, scale, step, x0, y0, width: Math.max(x0 + w + 16, 560), height: y0 + h + 30 + LEGEND_H + 20, order };
}

/** Value range of the thumbnails (the overview's colour domain): [0, max]. */
export function thumbsMax(s: HeadSummary): number {
  return maxFinite(s.thumbs);
}

/**
 * All thumbnails in ONE RGBA image: columns = heads (in `sort` order per layer), rows = layers,
 * B × B pixels per tile with a 1 px transparent gap. Reads only summary.thumbs, so the work is
 * nLayers·nHeads·B² whatever the prompt length.
 */
export function overviewPixels(s: HeadSummary, sort: HeadSort = 'index', thumbs: ArrayLike<number> = s.thumbs): { pixels: Uint8ClampedArray<ArrayBuffer>; width: number; height: number; hi: number } {
  const B = s.size, step = B + 1, width = s.nHeads * step, height = s.nLayers * step;
  const hi = maxFinite(thumbs);
  const lut = colorLut('sequential', 0, hi);
  const px = new Uint8ClampedArray(width * height * 4);
  for (let l = 0; l < s.nLayers; l++) {
    const order = orderHeads(s, l, sort);
    for (let col = 0; col < s.nHeads; col++) {
      const base = (l * s.nHeads + order[col]!) * B * B;
      for (let i = 0; i < B; i++) for (let j = 0; j < B; j++) {
        const v = thumbs[base + i * B + j]!;
        if (!Number.isFinite(v)) continue;
        const p = ((l * step + i) * width + col * step + j) * 4, c = lutIndex(v, 0, hi) * 3;
        px[p] = lut[c]!; px[p + 1] = lut[c + 1]!; px[p + 2] = lut[c + 2]!; px[p + 3] = 255;
      }
    }
  }
  return { pixels: px, width, height, hi };
}

/** The (layer, head, bin) under a point of the overview, or null. */
export function overviewAt(g: OverviewGeom, x: number, y: number): { layer: number; head: number; qi: number; ki: number } | null {
  const px = (x - g.x0) / g.scale, py = (y - g.y0) / g.scale;
  const col = Math.floor(px / g.step), layer = Math.floor(py / g.step);
  if (px < 0 || py < 0 || layer >= g.order.length || col >= (g.order[0]?.length ?? 0)) return null;
  const ki = Math.floor(px - col * g.step), qi = Math.floor(py - layer * g.step);
  if (ki >= g.B || qi >= g.B) return null;
  return { layer, head: g.order[layer]![col]!, qi, ki };
}

/**
 * The overview's SVG. mode 'frame': labels, axes and legend around an empty area (the element
 * lays the overviewPixels canvas there); 'rects': one rect per bin (small summaries); 'image':
 * the pixels embedded as a PNG (export of large ones, where rects would be too many); 'auto':
 * rects up to SVG_CELL_LIMIT bins, else image.
 */
export function overviewSvg(s: HeadSummary, o: { sort?: HeadSort; mode?: 'auto' | 'frame' | 'rects' | 'image' } = {}): string {
  const sort = o.sort ?? 'index', g = overviewGeom(s, sort);
  let mode = o.mode ?? 'auto';
  if (mode === 'auto') mode = s.nLayers * s.nHeads * s.size ** 2 <= SVG_CELL_LIMIT ? 'rects' : 'image';
  const sc = g.scale, st = g.step * sc, B = g.B, hi = thumbsMax(s);
  const parts: string[] = [];
  parts.push(`<text x="0" y="14" font-size="13" font-weight="600">Every layer × head: mean attention per (query bin, key bin)</text>`);
  parts.push(`<text x="${g.x0}" y="32" font-weight="600">${sort === 'index' ? 'head' : `head, sorted by ${sort} within each layer (columns: rank)`}</text>`);
  parts.push(`<text transform="translate(12,${r2(g.y0 + (s.nLayers * st) / 2)}) rotate(-90)" text-anchor="middle" font-weight="600">layer</text>`);
  const colLabels = thinLabels(s.nHeads, Math.floor((s.nHeads * st) / 16));
  for (const c of colLabels) parts.push(`<text x="${r2(g.x0 + c * st + (B * sc) / 2)}" y="${g.y0 - 4}" text-anchor="middle" font-size="10">${sort === 'index' ? c : `#${c + 1}`}</text>`);
  const rowLabels = thinLabels(s.nLayers, Math.floor((s.nLayers * st) / 12));
  for (const l of rowLabels) parts.push(`<text class="layer" data-l="${l}" x="${g.x0 - 4}" y="${r2(g.y0 + l * st + (B * sc) / 2 + 3.5)}" text-anchor="end" font-size="10">L${l}</text>`);
  if (mode === 'rects') {
    const color = colorScale('sequential', 0, hi);
    for (let l = 0; l < s.nLayers; l++) g.order[l]!.forEach((h, col) => {
      const tx = g.x0 + col * st, ty = g.y0 + l * st, base = (l * s.nHeads + h) * B * B;
      const stats = `entropy ${sig4(headStat(s, l, h, 'entropy'))}, first ${sig4(headStat(s, l, h, 'first'))}, prev ${sig4(headStat(s, l, h, 'prev'))}`
        + (hasInduction(s) ? `, induction ${sig4(headStat(s, l, h, 'induction'))}` : '');
      parts.push(`<g class="thumb" data-l="${l}" data-h="${h}" transform="translate(${r2(tx)},${r2(ty)})"><title>layer ${l}, head ${h}: ${stats}</title>`);
      for (let i = 0; i < B; i++) for (let j = 0; j < B; j++) {
        const v = s.thumbs[base + i * B + j]!;
        if (!Number.isFinite(v)) continue;
        parts.push(`<rect x="${j * sc}" y="${i * sc}" width="${sc}" height="${sc}" fill="${color(v)}" data-l="${l}" data-h="${h}" data-v="${sig4(v)}"/>`);
      }
      parts.push('</g>');
    });
  } else if (mode === 'image') {
    const p = overviewPixels(s, sort);
    parts.push(`<image x="${g.x0}" y="${g.y0}" width="${p.width * sc}" height="${p.height * sc}" preserveAspectRatio="none" style="image-rendering:pixelated" href="${pngDataUrl(p.pixels, p.width, p.height)}"/>`);
  }
  const ly = g.y0 + s.nLayers * st + 12;
  parts.push(legendSvg({ label: `mean attention weight per bin (${B} × ${B} bins of ${s.nPos} tokens)`, lo: 0, hi, scheme: 'sequential', x: g.x0, y: ly }));
  return svgOpen(g.width, g.height, `Attention of every layer and head: ${s.nLayers} layers × ${s.nHeads} heads as ${B} × ${B} thumbnails`) + parts.join('') + '</svg>';
}

/** Overlay for the overview: the selected (layer, head) outlined; a layer alone gets its row. */
export function overviewHighlightSvg(g: OverviewGeom, layer: number | null, head: number | null): string {
  const st = g.step * g.scale, tw = g.B * g.scale;
  let body = '';
  if (layer !== null && layer < g.order.length) {
    const col = head === null ? -1 : g.order[layer]!.indexOf(head);
    body = col >= 0
      ? `<rect x="${r2(g.x0 + col * st - 1.5)}" y="${r2(g.y0 + layer * st - 1.5)}" width="${tw + 3}" height="${tw + 3}" fill="none" stroke="#d58a00" stroke-width="2"/>`
      : `<rect x="${g.x0 - 2}" y="${r2(g.y0 + layer * st - 1.5)}" width="${r2(g.order[0]!.length * st + 2)}" height="${tw + 3}" fill="none" stroke="#d58a00" stroke-width="1.5"/>`;
  }
  return overlaySvg(g, body);
}

// ---------------------------------------------------------------------------------------------
// PNG (for the overview's exported SVG): stored (uncompressed) deflate, so no library is needed

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; t[n] = c >>> 0; }
  return t;
})();

function crc32(b: Uint8Array, start: number, end: number): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** RGBA pixels → PNG bytes. */
export function encodePng(px: Uint8ClampedArray, w: number, h: number): Uint8Array {
  const raw = new Uint8Array(h * (w * 4 + 1));      // each row: filter byte 0, then RGBA
  for (let y = 0; y < h; y++) raw.set(px.subarray(y * w * 4, (y + 1) * w * 4), y * (w * 4 + 1) + 1);
  const nBlocks = Math.max(1, Math.ceil(raw.length / 65535));
  const z = new Uint8Array(2 + raw.length + nBlocks * 5 + 4);
  z[0] = 0x78; z[1] = 0x01;
  let o = 2;
  for (let b = 0; b < nBlocks; b++) {
    const len = Math.min(65535, raw.length - b * 65535);
    z[o] = b === nBlocks - 1 ? 1 : 0; z[o + 1] = len & 0xff; z[o + 2] = len >>> 8; z[o + 3] = ~len & 0xff; z[o + 4] = (~len >>> 8) & 0xff;
    z.set(raw.subarray(b * 65535, b * 65535 + len), o + 5);
    o += 5 + len;
  }
  let a = 1, d = 0;                                  // Adler-32 of the uncompressed bytes
  for (let i = 0; i < raw.length; i++) { a = (a + raw[i]!) % 65521; d = (d + a) % 65521; }
  new DataView(z.buffer).setUint32(o, ((d << 16) | a) >>> 0);
  const chunks: [string, Uint8Array][] = [['IHDR', new Uint8Array(13)], ['IDAT', z], ['IEND', new Uint8Array(0)]];
  const ih = new DataView(chunks[0]![1].buffer);
  ih.setUint32(0, w); ih.setUint32(4, h); ih.setUint8(8, 8); ih.setUint8(9, 6);   // 8-bit RGBA
  const total = 8 + chunks.reduce((s, [, c]) => s + 12 + c.length, 0);
  const png = new Uint8Array(total), dv = new DataView(png.buffer);
  png.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  let p = 8;
  for (const [type, data] of chunks) {
    dv.setUint32(p, data.length);
    for (let i = 0; i < 4; i++) png[p + 4 + i] = type.charCodeAt(i);
    png.set(data, p + 8);
    dv.setUint32(p + 8 + data.length, crc32(png, p + 4, p + 8 + data.length));
    p += 12 + data.length;
  }
  return png;
}

export function pngDataUrl(px: Uint8ClampedArray, w: number, h: number): string {
  const b = encodePng(px, w, h);
  let s = '';
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return `data:image/png;base64,${btoa(s)}`;
}

// ---------------------------------------------------------------------------------------------
// Export

/** Past this many entries, export keeps only weights ≥ 0.01 (and says so in meta.note). */
export const EXPORT_ROW_LIMIT = 500_000;

/** Rows (layer, head, query, key, query_token, key_token, weight) of the causal entries of `heads`. */
export function attentionRowsForExport(out: AttentionOutput, heads: readonly number[], o: { limit?: number; minWeight?: number } = {}):
  { rows: Record<string, string | number>[]; note: string | null } {
  const n = nPosOf(out), limit = o.limit ?? EXPORT_ROW_LIMIT;
  const all = (heads.length * n * (n + 1)) / 2;
  const min = o.minWeight ?? (all > limit ? 0.01 : -Infinity);
  const rows: Record<string, string | number>[] = [];
  let truncated = false;
  outer: for (const h of heads) {
    const m = headMatrix(out, h);
    for (let q = 0; q < n; q++) for (let k = 0; k <= q; k++) {
      const w = m[q * n + k]!;
      if (w < min) continue;
      if (rows.length >= limit) { truncated = true; break outer; }
      rows.push({ layer: out.layer, head: h, query: q, key: k, query_token: out.labels[q] ?? '', key_token: out.labels[k] ?? '', weight: Number(sig4(w)) });
    }
  }
  const note = min > -Infinity || truncated
    ? `${fmt.int(all)} entries: ${min > -Infinity ? `weights below ${min} omitted` : ''}${truncated ? `${min > -Infinity ? '; ' : ''}cut at ${fmt.int(limit)} rows` : ''}`
    : null;
  return { rows, note };
}

/** Rows (layer, head, query bin's first and last position, key bin's, value) of the pooled thumbnails' causal bins. */
export function pooledRowsForExport(out: AttentionOutput, heads: readonly number[]): Record<string, number>[] {
  const t = layerThumbs(out), n = nPosOf(out), B = t.B, rows: Record<string, number>[] = [];
  for (const h of heads) {
    const i = thumbIndex(t, h);
    if (i < 0) continue;
    for (let qi = 0; qi < B; qi++) for (let ki = 0; ki <= qi; ki++) {
      const v = t.thumbs[(i * B + qi) * B + ki]!;
      if (!Number.isFinite(v)) continue;
      rows.push({ layer: out.layer, head: h, query_from: binStart(qi, n, B), query_to: binStart(qi + 1, n, B) - 1,
        key_from: binStart(ki, n, B), key_to: binStart(ki + 1, n, B) - 1, [t.reduce]: Number(sig4(v)) });
    }
  }
  return rows;
}

/** The "from" view's rows: query q's weights over keys 0..q for each of `heads`. */
function fromRows(out: AttentionOutput, heads: readonly number[], q: number): Record<string, string | number>[] {
  const rows: Record<string, string | number>[] = [];
  for (const h of heads) for (let k = 0; k <= q; k++) {
    rows.push({ layer: out.layer, head: h, query: q, key: k, query_token: out.labels[q] ?? '', key_token: out.labels[k] ?? '', weight: Number(sig4(weightAt(out, h, q, k))) });
  }
  return rows;
}

/** One row per layer × head: its statistics and its rank in `sort` order within the layer. */
export function headStatsRows(s: HeadSummary, sort: HeadSort = 'index'): Record<string, number>[] {
  const rows: Record<string, number>[] = [];
  for (let l = 0; l < s.nLayers; l++) {
    const order = orderHeads(s, l, sort);
    for (let h = 0; h < s.nHeads; h++) {
      const row: Record<string, number> = { layer: l, head: h, entropy: Number(sig4(headStat(s, l, h, 'entropy'))), first: Number(sig4(headStat(s, l, h, 'first'))),
        prev: Number(sig4(headStat(s, l, h, 'prev'))) };
      if (hasInduction(s)) row['induction'] = Number(sig4(headStat(s, l, h, 'induction')));
      row['rank'] = order.indexOf(h) + 1;
      rows.push(row);
    }
  }
  return rows;
}

/** The view settings the figure depends on (the cell's view keys, resolved). */
export interface AttentionViewState {
  view: AttentionView;
  head: number;
  heads: unknown;           // "all" or a list
  sort: HeadSort;
  mean: boolean;            // "from" view: mean over heads
  token: number | null;     // "from" view: the query (null: the last token)
}

/** Reads the view keys from a cell's settings with their defaults, clamped to this output. */
export function viewState(settings: Record<string, unknown>, out: AttentionOutput | null, token: number | null = null): AttentionViewState {
  const v = settings['view'], srt = settings['sort'], hd = settings['head'];
  const nH = out?.nHeads ?? 1;
  return {
    view: (VIEWS as readonly string[]).includes(v as string) ? (v as AttentionView) : 'heads',
    head: typeof hd === 'number' && hd >= 0 && hd < nH ? hd : 0,
    heads: settings['heads'] ?? 'all',
    sort: (SORTS as readonly string[]).includes(srt as string) ? (srt as HeadSort) : 'index',
    mean: settings['mean'] === true,
    token,
  };
}

/**
 * What the cell exports for the current view: the view's SVG (canvas views as their export SVG:
 * heatmap aggregated past 128 tokens, overview embedded as a PNG past SVG_CELL_LIMIT bins) and
 * rows: the shown heads' causal entries, or per-head statistics for the overview.
 */
export function attentionFigure(out: AttentionOutput, v: AttentionViewState): FigureExport {
  const n = nPosOf(out);
  const meta: Record<string, unknown> = { kind: 'attention', layer: out.layer, view: v.view, nPos: n, nHeads: out.nHeads, nKvHeads: out.nKvHeads };
  if (v.view === 'overview' && everyLayer(out.summary, out.nLayers)) {
    meta['sort'] = v.sort;
    return { svg: overviewSvg(out.summary, { sort: v.sort, mode: 'auto' }), rows: headStatsRows(out.summary, v.sort), meta };
  }
  if (v.view === 'heads' && out.pooled) {
    // long prompt: the pooled tiles, as one embedded image, and one row per bin
    const t = layerThumbs(out);
    const order = shownHeads(v.heads, orderHeads(out.summary, out.layer, v.sort, out.nHeads)).filter((h) => thumbIndex(t, h) >= 0);
    meta['heads'] = order;
    meta['pooled'] = { bins: t.B, reduce: t.reduce, note: `each value the ${poolNote(t, n)}` };
    return { svg: smallMultiplesSvg(out, order, { sort: v.sort, mode: 'image' }), rows: pooledRowsForExport(out, order), meta };
  }
  const order = shownHeads(v.heads, orderHeads(out.summary, out.layer, v.sort, out.nHeads)).filter((h) => headIndex(out, h) >= 0);
  let svg: string, heads: number[];
  const q = v.token ?? n - 1;
  if (v.view === 'heatmap' || v.view === 'overview') { svg = heatmapSvg(out, v.head, { mode: 'aggregate' }); heads = [v.head]; }
  else if (v.view === 'lines') { svg = linesSvg(out, v.head); heads = [v.head]; }
  else if (v.view === 'from') {
    svg = fromTokenSvg(out, v.mean ? 'mean' : v.head, q);
    heads = v.mean ? [...out.pattern.heads] : [v.head];
    meta['query'] = q;
  } else { svg = smallMultiplesSvg(out, order, { sort: v.sort }); heads = order; }
  const { rows, note } = v.view === 'from' ? { rows: fromRows(out, heads, q), note: null } : attentionRowsForExport(out, heads);
  meta['heads'] = heads;
  if (note) meta['note'] = note;
  return { svg, rows, meta };
}
