// The next-token cell's figure: the distribution at one position as horizontal bars of
// probability — faint at temperature 1 before any filter, solid after top-k → top-p → min-p →
// temperature and renormalisation — with the tokens each filter cut greyed and named, the
// entropy before and after, and the rank and probability of a token the user typed.
//
// Everything here is a pure function of the page's output (the raw logits row) and the view
// settings, so a slider move redraws from the same logits without rerunning the model. The
// filtering is the engine's own (samplingStages in src/engine/sampler.ts); the sort of the logits
// is the costliest step (a radix sort: three passes over the row) and is computed once per output.

import { scaleLinear } from 'd3';
import { cutBy, samplingStages, type SamplerCut, type SamplingStages } from '../../src/engine/sampler.ts';
import { rawOnce } from './sampling.ts';
import { visible } from '../prompt.ts';
import { esc, fmt, FONT, r2, schemes } from './kit.ts';
import type { FigureExport } from './figure.ts';

/** What the page computes for a next-token cell (the model runs once per prompt/position). */
export interface NextTokenOutput {
  prompt: string;              // the prompt cell's id
  labels: string[];            // display label per prompt position
  position: number;            // the position whose next-token distribution this is
  logits: Float32Array;        // [vocab] the full raw logits row at that position
  pieces: Map<number, string>; // display piece for (at least) the 200 highest-logit ids and the target id
  target: { text: string; id: number; piece: string } | null;   // the token the user typed (first token of its tokenization), if any
}

/** The view settings: changing them redraws from the same logits. */
export interface NextTokenView {
  temperature: number;   // ≥ 0; 0 = greedy
  topK: number;          // integer ≥ 0; 0 = off
  topP: number;          // (0, 1]; 1 = off
  minP: number;          // [0, 1]; 0 = off
  show: number;          // bars drawn, 1 … MAX_SHOW
}

/** The page sends pieces for the 200 most likely tokens; more bars would have no labels. */
export const MAX_SHOW = 200;
export const DEFAULT_VIEW: Readonly<NextTokenView> = Object.freeze({ temperature: 1, topK: 0, topP: 1, minP: 0, show: 20 });

/** The view from a cell's settings (keys temperature, top_k, top_p, min_p, show); bad values fall back to the defaults. */
export function nextTokenView(settings: Readonly<Record<string, unknown>>): NextTokenView {
  const num = (k: string, ok: (v: number) => boolean, d: number) => {
    const v = settings[k];
    return typeof v === 'number' && Number.isFinite(v) && ok(v) ? v : d;
  };
  const show = num('show', (v) => Number.isInteger(v) && v >= 1, DEFAULT_VIEW.show);
  return {
    temperature: num('temperature', (v) => v >= 0, DEFAULT_VIEW.temperature),
    topK: num('top_k', (v) => Number.isInteger(v) && v >= 0, DEFAULT_VIEW.topK),
    topP: num('top_p', (v) => v > 0 && v <= 1, DEFAULT_VIEW.topP),
    minP: num('min_p', (v) => v >= 0 && v <= 1, DEFAULT_VIEW.minP),
    show: Math.min(show, MAX_SHOW),
  };
}

// ---------------------------------------------------------------------------------------------
// Numbers

/** Entropy in nats of a distribution (zeros contribute nothing). Bits = nats / ln 2. */
export function entropy(p: ArrayLike<number>): number {
  let h = 0;
  for (let i = 0; i < p.length; i++) { const v = p[i]!; if (v > 0) h -= v * Math.log(v); }
  return h;
}

/**
 * 1-based rank of token `id` among all tokens by logit, with the order the sampler sorts by
 * (larger logit first, the lower id first on ties). O(vocab), no sort.
 */
export function tokenRank(logits: Float32Array, id: number): number {
  const v = logits[id]!;
  let rank = 1;
  for (let j = 0; j < logits.length; j++) {
    const w = logits[j]!;
    if (w > v || (w === v && j < id) || (!(v > -Infinity) && w > -Infinity)) rank++;
  }
  return rank;
}

/** Why a token is not in the final distribution; 'masked': its logit is −inf, it never was a candidate. */
export type Cut = SamplerCut | 'masked';

export interface TokenRow {
  rank: number;          // 1-based, by logit
  id: number;
  piece: string;
  logit: number;
  p0: number;            // softmax at temperature 1, before any filter
  p: number;             // after the filters and the temperature, renormalised (0 when cut)
  cut: Cut | null;
}

export interface NextTokenModel {
  /** "next token after «label» (position p)" */
  heading: string;
  view: NextTokenView;
  stages: SamplingStages;
  /** The `show` most likely tokens. */
  rows: TokenRow[];
  /** The typed target (also in rows when it ranks within `show`). */
  target: (TokenRow & { text: string }) | null;
  vocab: number;
  entropy: { before: number; after: number };   // nats
}

/** Sorted candidates, computed once per logits array and shared with the sampling cell (rawOnce:
 *  the output's identity is the key). */
export function sortedOnce(logits: Float32Array): Int32Array {
  return rawOnce(logits).ids;
}

const pieceOf = (o: NextTokenOutput, id: number) => o.pieces.get(id) ?? (o.target?.id === id ? o.target.piece : `#${id}`);

/** The row of the candidate with 0-based rank i. */
function rowAt(o: NextTokenOutput, s: SamplingStages, i: number): TokenRow {
  const id = s.ids[i]!;
  return { rank: i + 1, id, piece: pieceOf(o, id), logit: s.logits[id]!, p0: s.p0[i]!, p: i < s.kept ? s.p[i]! : 0, cut: cutBy(s, i) };
}

export function positionHeading(o: NextTokenOutput): string {
  return `next token after «${o.labels[o.position] ?? '?'}» (position ${o.position})`;
}

/** Everything the figure shows: O(vocab) given the memoized sort. */
export function nextTokenModel(o: NextTokenOutput, view: NextTokenView): NextTokenModel {
  const s = samplingStages(o.logits, [], { temperature: view.temperature, topK: view.topK, topP: view.topP, minP: view.minP }, sortedOnce(o.logits));
  const rows: TokenRow[] = [];
  for (let i = 0; i < Math.min(view.show, s.ids.length); i++) rows.push(rowAt(o, s, i));
  let target: NextTokenModel['target'] = null;
  if (o.target && o.target.id >= 0 && o.target.id < o.logits.length) {
    const rank = tokenRank(s.logits, o.target.id);
    const row: TokenRow = rank <= s.ids.length
      ? rowAt(o, s, rank - 1)
      : { rank, id: o.target.id, piece: o.target.piece, logit: s.logits[o.target.id]!, p0: 0, p: 0, cut: 'masked' };
    target = { ...row, piece: o.target.piece, text: o.target.text };
  }
  return { heading: positionHeading(o), view, stages: s, rows, target, vocab: o.logits.length, entropy: { before: entropy(s.p0), after: entropy(s.p) } };
}

/** 4 significant digits, for data-v attributes. */
export const sig4 = (v: number) => (Number.isFinite(v) ? String(+v.toPrecision(4)) : String(v));

export const cutLabel = (c: Cut) => (c === 'greedy' ? 'T = 0' : c === 'masked' ? '−inf' : c);

/** The settings in one line: "T 0.8 · top-k 40 · top-p off · min-p 0.05". */
export function viewSummary(v: NextTokenView): string {
  return `T ${fmt.num(v.temperature)}${v.temperature === 0 ? ' (greedy)' : ''} · top-k ${v.topK || 'off'} · top-p ${v.topP === 1 ? 'off' : fmt.num(v.topP)} · min-p ${v.minP === 0 ? 'off' : fmt.num(v.minP)}`;
}

export function rowTitle(r: TokenRow): string {
  return `#${r.rank} · id ${r.id} · piece ${JSON.stringify(r.piece)} · logit ${fmt.num(r.logit)} · p before ${fmt.prob(r.p0)} · p after ${fmt.prob(r.p)}`
    + (r.cut ? ` · cut by ${cutLabel(r.cut)}` : '');
}

// ---------------------------------------------------------------------------------------------
// The figure

const COLOR = schemes.sequential(0.3);      // viridis' blue: the kept probability mass
const GREY = '#9a9a9a';
const ROW = 18, PIECE_CHARS = 18;

export interface NextTokenSvgOptions {
  width?: number;
  /** Draw the "next token after …" line (default true; the element shows it as HTML instead). */
  heading?: boolean;
}

function clip(s: string): string {
  const v = visible(s);
  return v.length > PIECE_CHARS ? `${v.slice(0, PIECE_CHARS - 1)}…` : v;
}

/** The bars as an SVG string (drawn by the element, exported as is). */
export function nextTokenSvg(m: NextTokenModel, opts: NextTokenSvgOptions = {}): string {
  const W = Math.max(480, opts.width ?? 640);
  const xRank = 26, xPiece = 150, x0 = 158, x1 = W - 150, xP = x1 + 8, xLogit = W - 6;
  const dy = opts.heading === false ? -18 : 0;    // everything moves up when the heading is left out
  const top = 88 + dy;
  const s = m.stages;
  const extra = m.target && m.target.rank > m.rows.length ? m.target : null;
  const rows = extra ? [...m.rows, null, extra] : m.rows;
  let hi = 0;
  for (const r of rows) if (r) hi = Math.max(hi, r.p0, r.p);
  const x = scaleLinear().domain([0, hi > 0 ? hi : 1]).nice(5).range([x0, x1]);
  const yAxis = top + rows.length * ROW + 4;
  const H = yAxis + 40;
  const out: string[] = [];

  // heading, settings, legend
  if (dy === 0) out.push(`<text x="0" y="14" font-size="13" font-weight="600">${esc(m.heading)}</text>`);
  out.push(`<text x="0" y="${32 + dy}" fill-opacity="0.75">${esc(`${viewSummary(m.view)} · kept ${fmt.int(s.kept)} of ${fmt.int(s.ids.length)} · entropy ${fmt.num(m.entropy.before)} → ${fmt.num(m.entropy.after)} nats`)}</text>`);
  const legend: [string, string][] = [
    [`<rect width="16" height="10" fill="${COLOR}" fill-opacity="0.22" stroke="${COLOR}" stroke-opacity="0.5"/>`, 'p before filters (T = 1)'],
    [`<rect y="2" width="16" height="6" fill="${COLOR}"/>`, 'p after filters and temperature'],
    [`<rect width="16" height="10" fill="${GREY}" fill-opacity="0.3"/>`, 'cut (grey, filter named)'],
  ];
  let lx = 0;
  out.push(`<g class="legend" transform="translate(1,${42 + dy})">`);
  for (const [mark, label] of legend) {
    out.push(`<g transform="translate(${lx},0)">${mark}<text x="21" y="9">${esc(label)}</text></g>`);
    lx += 30 + label.length * 6;
  }
  out.push(`</g>`);

  // column heads and gridlines
  out.push(`<g fill-opacity="0.7"><text x="${xRank}" y="${top - 6}" text-anchor="end">#</text><text x="${xPiece}" y="${top - 6}" text-anchor="end">token</text>`
    + `<text x="${xP}" y="${top - 6}">p after</text><text x="${xLogit}" y="${top - 6}" text-anchor="end">logit</text></g>`);
  const ticks = x.ticks(5);
  for (const t of ticks) out.push(`<line x1="${r2(x(t))}" x2="${r2(x(t))}" y1="${top - 2}" y2="${yAxis}" stroke="currentColor" stroke-opacity="0.1"/>`);

  // one row per token
  rows.forEach((r, k) => {
    const y = top + k * ROW;
    if (!r) { out.push(`<text x="${xPiece}" y="${y + 12}" text-anchor="end" fill-opacity="0.6">⋮</text>`); return; }
    const isTarget = m.target?.id === r.id;
    const c = r.cut ? GREY : COLOR;
    const weight = isTarget ? ' font-weight="700"' : '';
    out.push(`<g class="tok${r.cut ? ' cut' : ''}${isTarget ? ' target' : ''}" data-id="${r.id}" data-rank="${r.rank}" data-v="${sig4(r.p)}" data-p0="${sig4(r.p0)}" data-logit="${sig4(r.logit)}"${r.cut ? ` data-cut="${r.cut}"` : ''}${r.cut ? ' fill-opacity="0.6"' : ''}>`
      + `<title>${esc(rowTitle(r))}</title>`
      + (isTarget ? `<rect x="1" y="${y}" width="${W - 2}" height="${ROW}" fill="none" stroke="currentColor" stroke-dasharray="3 2" rx="3"/>` : '')
      + `<text x="${xRank}" y="${y + 13}" text-anchor="end" fill-opacity="0.6">${r.rank}</text>`
      + `<text x="${xPiece}" y="${y + 13}" text-anchor="end" font-family="monospace" xml:space="preserve"${weight}>${esc(clip(r.piece))}</text>`
      + `<rect class="before" x="${x0}" y="${y + 2}" width="${r2(x(r.p0) - x0)}" height="${ROW - 4}" fill="${c}" fill-opacity="${r.cut ? 0.3 : 0.22}"${r.cut ? '' : ` stroke="${c}" stroke-opacity="0.5"`}/>`
      + (r.cut ? '' : `<rect class="after" x="${x0}" y="${y + 5}" width="${r2(x(r.p) - x0)}" height="${ROW - 10}" fill="${c}"/>`)
      + `<text x="${xP}" y="${y + 13}"${weight}>${r.cut ? `cut: ${esc(cutLabel(r.cut))}` : esc(fmt.prob(r.p))}</text>`
      + `<text x="${xLogit}" y="${y + 13}" text-anchor="end" font-variant-numeric="tabular-nums">${esc(fmt.num(r.logit))}</text></g>`);
  });

  // the axis
  out.push(`<g class="axis"><line x1="${x0}" x2="${x1}" y1="${yAxis}" y2="${yAxis}" stroke="currentColor"/>`);
  for (const t of ticks) out.push(`<line x1="${r2(x(t))}" x2="${r2(x(t))}" y1="${yAxis}" y2="${yAxis + 4}" stroke="currentColor"/><text x="${r2(x(t))}" y="${yAxis + 15}" text-anchor="middle">${esc(fmt.num(t))}</text>`);
  out.push(`<text x="${r2((x0 + x1) / 2)}" y="${yAxis + 32}" text-anchor="middle" font-weight="600">probability</text></g>`);

  const first = m.rows[0];
  const aria = `Next-token probabilities, ${m.heading}: the ${m.rows.length} most likely tokens before and after the filters`
    + (first ? `; the most likely is ${JSON.stringify(first.piece)} at ${fmt.prob(first.p0)} before, ${fmt.prob(first.p)} after` : '');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(aria)}" ${FONT} fill="currentColor">${out.join('')}</svg>`;
}

/** The figure and its rows (the bars drawn, then the target when it ranks below them). */
export function nextTokenExport(m: NextTokenModel, opts: NextTokenSvgOptions = {}): FigureExport {
  const rows = m.target && m.target.rank > m.rows.length ? [...m.rows, m.target] : m.rows;
  return {
    svg: nextTokenSvg(m, opts),
    rows: rows.map((r) => ({ rank: r.rank, id: r.id, piece: r.piece, logit: r.logit, p_before: r.p0, p_after: r.p, cut_by: r.cut })),
    meta: {
      heading: m.heading, settings: { temperature: m.view.temperature, top_k: m.view.topK, top_p: m.view.topP, min_p: m.view.minP },
      vocab: m.vocab, candidates: m.stages.ids.length, kept: m.stages.kept, survivors: m.stages.after,
      entropy_nats: m.entropy, entropy_bits: { before: m.entropy.before / Math.LN2, after: m.entropy.after / Math.LN2 },
      target: m.target ? { text: m.target.text, id: m.target.id, rank: m.target.rank, p_before: m.target.p0, p_after: m.target.p, cut_by: m.target.cut } : null,
    },
  };
}
