// The attribution plot (issue 12): direct logit attribution of one token at one position. A
// layer × head heatmap of each attention head's term (PuOr, centred on 0, heads grouped by the KV
// head they share), each FFN layer's term as a bar beside its row on the same colour scale, and a
// waterfall under them: embedding + Σ heads + Σ FFN + residual = the logit, so the chart visibly
// sums to the model's logit. Every term is what the component writes along the token's unembedding
// direction through the final RMSNorm with the run's scale frozen (src/engine/slices.ts).
// Pure: AttributionOutput in, SVG string out. At most nLayers × nHeads rects (80 × 64 for the
// largest Llama), well under kit.SVG_CELL_LIMIT: always SVG.

import { colorScale, esc, fmt, LEGEND_H, legendSvg, r2 } from './kit.ts';
import { sig4, svgOpen, type Figure, type Sel } from './logit-lens.ts';
import type { FigureExport } from './figure.ts';
import type { AttributionSlice } from '../../src/engine/trace.ts';

/** What the page computes for an attribution cell (src/app/compute.ts): the engine's slice
 *  (heads, ffn, embed, logit, scale, residual; src/engine/trace.ts AttributionSlice) and labels. */
export interface AttributionOutput extends Pick<AttributionSlice, 'position' | 'nLayers' | 'nHeads' | 'heads' | 'ffn' | 'embed' | 'logit' | 'scale' | 'residual'> {
  /** The prompt cell's id (linked selection). */
  prompt: string;
  labels: string[];
  /** The attributed token and its piece; `typed`: the target text it came from (null: the top token). */
  token: { id: number; piece: string; typed: string | null };
  nKvHeads: number;
}

export interface AttributionTotals { embed: number; heads: number; ffn: number; residual: number; logit: number; sum: number }

/** The parts of the waterfall: Σ heads and Σ FFN summed in f64, and their sum with the embedding. */
export function attributionTotals(o: AttributionOutput): AttributionTotals {
  let heads = 0, ffn = 0;
  for (const v of o.heads) heads += v;
  for (const v of o.ffn) ffn += v;
  return { embed: o.embed, heads, ffn, residual: o.residual, logit: o.logit, sum: o.embed + heads + ffn };
}

export interface Segment { part: 'embed' | 'heads' | 'ffn' | 'residual' | 'logit'; label: string; value: number; from: number; to: number }

/** The waterfall: each part from the running sum to the running sum plus its value; the logit from 0. */
export function waterfall(o: AttributionOutput): Segment[] {
  const t = attributionTotals(o);
  const parts: [Segment['part'], string, number][] = [['embed', 'embedding', t.embed], ['heads', 'Σ heads', t.heads], ['ffn', 'Σ FFN', t.ffn], ['residual', 'residual', t.residual]];
  let run = 0;
  const out: Segment[] = parts.map(([part, label, value]) => { const s = { part, label, value, from: run, to: run + value }; run += value; return s; });
  out.push({ part: 'logit', label: 'logit', value: t.logit, from: 0, to: t.logit });
  return out;
}

/** Every n-th head label, so that labels stay at least 14 px apart. */
export function headLabelStep(cw: number): number {
  return cw >= 14 ? 1 : Math.ceil(14 / cw);
}

/** The token as the figure names it: its piece, quoted. */
export function tokenName(o: AttributionOutput): string {
  return JSON.stringify(o.token.piece);
}

export interface AttributionOptions { width?: number }

/** The whole figure (heatmap + FFN bars + waterfall); overlay outlines the selected layer's row. */
export function attributionFigure(o: AttributionOutput, opts: AttributionOptions = {}): Figure {
  const W = Math.max(360, opts.width ?? 720);
  const L = o.nLayers, H = o.nHeads, group = Math.max(1, Math.round(H / Math.max(1, o.nKvHeads)));
  const left = 64, gap = 24, ffnW = Math.min(200, Math.max(100, W * 0.25));
  const cw = Math.max(4, Math.min(32, Math.floor((W - left - gap - ffnW - 16) / H)));
  const ch = Math.max(6, Math.min(24, cw));
  const top = 24 + LEGEND_H + 26;                                       // title, legend, head labels
  const gw = cw * H, gh = ch * L;
  let m = 0;
  for (const v of o.heads) if (Number.isFinite(v)) m = Math.max(m, Math.abs(v));
  for (const v of o.ffn) if (Number.isFinite(v)) m = Math.max(m, Math.abs(v));
  m = m || 1;
  const color = colorScale('diverging', -m, m);
  const name = tokenName(o), at = `${o.position} (${o.labels[o.position] ?? ''})`;
  const parts: string[] = [];
  parts.push(`<text x="0" y="14" font-weight="600">Direct logit attribution of ${esc(name)} (id ${o.token.id}) at position ${esc(at)}: logit ${esc(fmt.num(o.logit))}</text>`);
  parts.push(legendSvg({ label: 'logit contribution (final-norm scale frozen)', lo: -m, hi: m, scheme: 'diverging', x: left, y: 22, width: 240, ticks: 4 }));

  // ---- heatmap: layers × heads ----
  const step = headLabelStep(cw);
  parts.push(`<text x="${r2(left + gw / 2)}" y="${top - 16}" text-anchor="middle">head${group > 1 ? ` (grouped by KV head, ${group} per group)` : ''}</text>`);
  for (let h = 0; h < H; h += step) parts.push(`<text x="${r2(left + h * cw + cw / 2)}" y="${top - 4}" text-anchor="middle">${h}</text>`);
  parts.push(`<text transform="translate(12,${r2(top + gh / 2)}) rotate(-90)" text-anchor="middle">layer</text>`);
  for (let l = 0; l < L; l++) {
    parts.push(`<text x="${left - 6}" y="${r2(top + l * ch + ch / 2 + 4)}" text-anchor="end" data-l="${l}">${l}</text>`);
    for (let h = 0; h < H; h++) {
      const v = o.heads[l * H + h]!;
      parts.push(`<rect class="head" x="${left + h * cw}" y="${top + l * ch}" width="${cw}" height="${ch}" fill="${color(v)}" data-l="${l}" data-h="${h}" data-v="${sig4(v)}"><title>layer ${l} head ${h}: ${v.toPrecision(4)} to the logit of ${esc(name)}</title></rect>`);
    }
  }
  for (let g = group; g < H; g += group) parts.push(`<line x1="${left + g * cw}" x2="${left + g * cw}" y1="${top}" y2="${top + gh}" stroke="currentColor" stroke-opacity=".5"/>`);
  parts.push(`<rect x="${left}" y="${top}" width="${gw}" height="${gh}" fill="none" stroke="currentColor" stroke-opacity=".4"/>`);

  // ---- FFN bars: one per layer, from a zero line, same colour scale ----
  const fx = left + gw + gap, zero = fx + ffnW / 2, half = ffnW / 2 - 4;
  parts.push(`<text x="${r2(zero)}" y="${top - 16}" text-anchor="middle">FFN</text>`);
  parts.push(`<text x="${r2(fx)}" y="${top - 4}">${esc(fmt.num(-m))}</text><text x="${r2(fx + ffnW)}" y="${top - 4}" text-anchor="end">${esc(fmt.num(m))}</text>`);
  for (let l = 0; l < L; l++) {
    const v = o.ffn[l]!, w = (Math.abs(v) / m) * half;
    parts.push(`<rect class="ffn" x="${r2(v < 0 ? zero - w : zero)}" y="${top + l * ch + 1}" width="${r2(Math.max(w, 0.5))}" height="${Math.max(1, ch - 2)}" fill="${color(v)}" stroke="currentColor" stroke-opacity=".3" data-l="${l}" data-part="ffn" data-v="${sig4(v)}"><title>layer ${l} FFN: ${v.toPrecision(4)} to the logit of ${esc(name)}</title></rect>`);
  }
  parts.push(`<line x1="${r2(zero)}" x2="${r2(zero)}" y1="${top}" y2="${top + gh}" stroke="currentColor"/>`);

  // ---- waterfall: embedding + Σ heads + Σ FFN + residual = logit ----
  const segs = waterfall(o);
  let lo = 0, hi = 0;
  for (const s of segs) { lo = Math.min(lo, s.from, s.to); hi = Math.max(hi, s.from, s.to); }
  if (hi === lo) hi = lo + 1;
  const wy = top + gh + 28, rowH = 18, wl = left + 40, ww = W - wl - 80;
  const x = (v: number) => wl + ((v - lo) / (hi - lo)) * ww;
  parts.push(`<text x="0" y="${wy - 8}" font-weight="600">The sum: embedding + heads + FFN (+ residual) = logit</text>`);
  segs.forEach((s, i) => {
    const y = wy + i * rowH, a = Math.min(x(s.from), x(s.to)), b = Math.max(x(s.from), x(s.to));
    const fill = s.part === 'logit' ? 'currentColor' : s.part === 'residual' ? 'none' : color(s.value);
    parts.push(`<text x="${wl - 6}" y="${y + 12}" text-anchor="end">${esc(s.label)}</text>`);
    parts.push(`<rect class="total" x="${r2(a)}" y="${y + 2}" width="${r2(Math.max(b - a, 0.5))}" height="${rowH - 4}" fill="${fill}" fill-opacity="${s.part === 'logit' ? 0.35 : 1}" stroke="currentColor" stroke-opacity=".5"${s.part === 'residual' ? ' stroke-dasharray="2 2"' : ''} data-part="${s.part}" data-v="${sig4(s.value)}"><title>${esc(s.label)}: ${s.value.toPrecision(6)}${s.part === 'logit' ? '' : ` (running sum ${s.to.toPrecision(6)})`}</title></rect>`);
    const shown = s.value !== 0 && Math.abs(s.value) < 1e-3 ? s.value.toExponential(1) : fmt.num(s.value);
    parts.push(`<text x="${r2(b + 4)}" y="${y + 12}">${esc(shown)}</text>`);
  });
  const zy0 = wy, zy1 = wy + segs.length * rowH;
  parts.push(`<line x1="${r2(x(0))}" x2="${r2(x(0))}" y1="${zy0}" y2="${zy1}" stroke="currentColor"/>`);
  parts.push(`<text x="${r2(wl + ww / 2)}" y="${zy1 + 14}" text-anchor="middle">logit (units of the model's logits); scale ${esc(fmt.num(o.scale))} frozen</text>`);
  const height = zy1 + 22;

  const svg = `${svgOpen(W, height, `Direct logit attribution of ${name} at position ${o.position}: ${L} layers × ${H} heads, FFN per layer, and their sum`)}${parts.join('')}</svg>`;
  return {
    width: W, height, svg, canvases: [],
    overlay(sel: Sel): string {
      const l = sel.layer;
      if (l === null || l < 0 || l >= L) return '';
      return `<rect x="${left - 1}" y="${top + l * ch - 1}" width="${fx + ffnW - left + 2}" height="${ch + 2}" fill="none" stroke="currentColor" stroke-width="2"/>`;
    },
  };
}

/** The export: the figure, and one row per term (embedding, each head, each FFN, residual, logit). */
export function attributionExport(o: AttributionOutput, opts: AttributionOptions = {}): FigureExport {
  const f = attributionFigure(o, opts);
  const rows: { component: string; layer: number | null; head: number | null; value: number }[] = [{ component: 'embed', layer: null, head: null, value: o.embed }];
  for (let l = 0; l < o.nLayers; l++) {
    for (let h = 0; h < o.nHeads; h++) rows.push({ component: 'head', layer: l, head: h, value: o.heads[l * o.nHeads + h]! });
    rows.push({ component: 'ffn', layer: l, head: null, value: o.ffn[l]! });
  }
  rows.push({ component: 'residual', layer: null, head: null, value: o.residual }, { component: 'logit', layer: null, head: null, value: o.logit });
  return {
    svg: f.svg, rows,
    meta: {
      kind: 'attribution', prompt: o.prompt, position: o.position, token: o.token, scale: o.scale,
      note: 'direct logit attribution: each term is (γ ⊙ W_U[token]) · c / scale with the final RMSNorm scale of the run frozen; embed + Σ head + Σ ffn + residual = logit',
    },
  };
}
