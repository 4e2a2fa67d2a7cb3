// Activations: how big the residual stream and the two branches are at each layer and position
// (L2 norms of resid_pre, attn_out, ffn_out as heatmaps or lines), the distribution of one hook's
// values (a histogram), and the FFN neurons most active at one position (bars) with the ones the
// user picked across positions (a diverging heatmap). Pure: strings out.

import { bin, scaleLinear, scaleLog } from 'd3';
import { colorScale, esc, extent, fmt, LEGEND_H, legendSvg, r2, schemes, SVG_CELL_LIMIT } from './kit.ts';
import type { FigureExport } from './figure.ts';
import {
  aggregateColumns, columnLabels, exportGroup, gridSelection, heatRects, matrixPanel, NO_SEL, rowLabels, sig4, stackSvg, svgOpen, TITLED_SVG_LIMIT, withOverlay,
  type CanvasPanel, type DrawMode, type Figure, type Grid, type Sel,
} from './logit-lens.ts';

export interface ActivationsOutput {
  prompt: string; labels: string[];
  nLayers: number;
  norms: { kinds: string[] /* ['resid_pre','attn_out','ffn_out'] */; data: Float32Array /* [kinds, nLayers, nPos] L2 norm per position */ };
  hist: { name: string; values: Float32Array } | null;          // every value of one hook (e.g. blocks.3.hook_resid_post), for a histogram
  neurons: { layer: number; position: number; top: { index: number; value: number }[];   // FFN neurons (ffn.hook_act) most active at that position (by |value|)
             picked: { index: number; values: Float32Array /* [nPos] */ }[] } | null;    // user-picked neurons across positions
}

const quote = (s: string) => JSON.stringify(s);
const ACT_LABEL = 'activation (silu(gate)·up)';
const nPosOf = (out: ActivationsOutput) => out.labels.length || out.norms.data.length / Math.max(1, out.norms.kinds.length * out.nLayers);

// ---------------------------------------------------------------------------------------------
// Norms

/** The norm of kind `k` at layer l, position p. */
export function normAt(out: ActivationsOutput, k: number, l: number, p: number): number {
  return out.norms.data[(k * out.nLayers + l) * nPosOf(out) + p]!;
}

/** One kind's norms as [rows, cols] in drawn order: the top row is the last layer. */
export function normsMatrix(out: ActivationsOutput, k: number): Float32Array {
  const L = out.nLayers, P = nPosOf(out);
  const m = new Float32Array(L * P);
  for (let r = 0; r < L; r++) m.set(out.norms.data.subarray((k * L + (L - 1 - r)) * P, (k * L + (L - r)) * P), r * P);
  return m;
}

/** The heatmaps draw as a canvas past TITLED_SVG_LIMIT cells (all panels together). */
export function normsMode(out: ActivationsOutput): DrawMode {
  return out.norms.data.length > TITLED_SVG_LIMIT ? 'canvas' : 'svg';
}

const normTitle = (out: ActivationsOutput, k: number, l: number, p: number) =>
  `${out.norms.kinds[k]} · layer ${l} · position ${p} ${quote(out.labels[p] ?? '')}: L2 norm ${fmt.num(normAt(out, k, l, p))}`;

/** Norms heatmaps: one panel per kind (layers × positions, top row = last layer), each with its
 *  own cividis legend (the residual grows far larger than the branches). */
export function normsHeatmapFigure(out: ActivationsOutput, o: { width?: number; cellWidth?: number; mode?: DrawMode; limit?: number } = {}): Figure {
  const L = out.nLayers, P = nPosOf(out), K = out.norms.kinds.length;
  const mode = o.mode ?? normsMode(out);
  const group = mode === 'aggregate' ? exportGroup(K * L, P, o.limit) : 1;
  const cols = Math.ceil(P / group), width = o.width ?? 720;
  const cw = mode === 'svg' ? Math.max(4, Math.min(56, Math.floor(width / Math.max(1, cols))))
    : mode === 'canvas' ? (o.cellWidth ?? Math.max(2, Math.floor(width / Math.max(1, P)))) : Math.max(2, Math.floor(width / cols));
  const ch = L > 24 ? 8 : L > 12 ? 12 : 16;
  const left = 56, panelH = LEGEND_H + 8 + L * ch + 10;
  const grids: Grid[] = out.norms.kinds.map((_, k) => ({ left, top: k * panelH + LEGEND_H + 8, cw, ch, rows: L, cols }));
  const firstPos = (c: number) => c * group;
  const parts: string[] = [];
  const canvases: CanvasPanel[] = [];
  for (const [k, kind] of out.norms.kinds.entries()) {
    const g = grids[k]!;
    const m = normsMatrix(out, k);
    const [lo, hi] = extent(m);
    const color = colorScale('secondary', lo, hi);
    parts.push(legendSvg({ label: `L2 norm of ${kind}`, lo, hi, scheme: 'secondary', x: left, y: g.top - LEGEND_H - 4, width: 200 }));
    const layer = (r: number) => L - 1 - r;
    if (mode === 'svg') {
      parts.push(heatRects(g, {
        value: (r, c) => m[r * P + c]!, color,
        attrs: (r, c) => `data-kind="${esc(kind)}" data-l="${layer(r)}" data-t="${c}"`,
        title: (r, c) => normTitle(out, k, layer(r), c),
      }));
    } else if (mode === 'aggregate') {
      const agg = aggregateColumns(m, L, P, group);
      const last = (c: number) => Math.min(P, (c + 1) * group) - 1;
      parts.push(heatRects(g, {
        value: (r, c) => agg.mean[r * cols + c]!, color,
        attrs: (r, c) => `data-kind="${esc(kind)}" data-l="${layer(r)}" data-t="${firstPos(c)}" data-t1="${last(c)}"`,
        title: (r, c) => `${kind} · layer ${layer(r)} · positions ${firstPos(c)}–${last(c)}: mean L2 norm ${fmt.num(agg.mean[r * cols + c]!)}, max ${fmt.num(agg.max[r * cols + c]!)}`,
      }));
    } else {
      canvases.push(matrixPanel(g, m, { scheme: 'secondary', lo, hi }, { readout: (r, c) => normTitle(out, k, layer(r), c), token: (c) => c, layer }));
      parts.push(`<rect class="plot-area" x="${left}" y="${g.top}" width="${cols * cw}" height="${L * ch}" fill="none" stroke="currentColor" stroke-opacity="0.2"/>`);
    }
    parts.push(rowLabels(g, (r) => String(layer(r)), (r) => `data-l="${layer(r)}"`));
    parts.push(`<text transform="translate(12,${r2(g.top + (L * ch) / 2)}) rotate(-90)" text-anchor="middle">layer ↑</text>`);
  }
  const lastG = grids[K - 1] ?? { left, top: LEGEND_H + 8, cw, ch, rows: L, cols };
  const bottom = lastG.top + L * ch;
  const xl = columnLabels(lastG, (c) => out.labels[firstPos(c)] ?? '', firstPos, bottom + 2);
  const w = Math.max(left + cols * cw + 16, 300), h = bottom + xl.height + 22;
  const note = group > 1 ? ` (each column: the mean of ${group} positions)` : '';
  const svg = svgOpen(w, h, `L2 norms of ${out.norms.kinds.join(', ')} for ${L} layers × ${P} positions`)
    + parts.join('') + xl.svg
    + `<text x="${r2(left + (cols * cw) / 2)}" y="${h - 6}" text-anchor="middle">position (token)${esc(note)}</text></svg>`;
  return {
    width: w, height: h, svg, canvases,
    overlay: (sel) => grids.map((g) => gridSelection(g,
      sel.token !== null && sel.token < P ? Math.floor(sel.token / group) : null,
      sel.layer !== null && sel.layer < L ? L - 1 - sel.layer : null)).join(''),
  };
}

/** Mean, min and max over positions of one kind's norm at each layer. */
export function normStats(out: ActivationsOutput, k: number): { mean: number[]; min: number[]; max: number[] } {
  const P = nPosOf(out), mean: number[] = [], min: number[] = [], max: number[] = [];
  for (let l = 0; l < out.nLayers; l++) {
    let s = 0, lo = Infinity, hi = -Infinity;
    for (let p = 0; p < P; p++) {
      const v = normAt(out, k, l, p);
      s += v; if (v < lo) lo = v; if (v > hi) hi = v;
    }
    mean.push(P ? s / P : NaN); min.push(lo); max.push(hi);
  }
  return { mean, min, max };
}

/** Norm vs layer, one panel per kind: the mean over positions as a line, a band from the
 *  smallest to the largest position, and the selected position as a second line. */
export function normsLinesFigure(out: ActivationsOutput, o: { width?: number; position?: number | null } = {}): Figure {
  const K = out.norms.kinds.length, L = out.nLayers, P = nPosOf(out);
  const pw = Math.max(160, Math.floor(((o.width ?? 720) - 40) / Math.max(1, K)) - 56), ph = 160, top = 40, left = 50, gap = 56;
  const x = scaleLinear().domain([0, Math.max(1, L - 1)]).range([0, pw]);
  const meanC = schemes.secondary(0.05), selC = schemes.diverging(0.85);   // dark blue; orange
  const sel = o.position ?? null;
  const panels: string[] = [];
  const ys: ((v: number) => number)[] = [];
  for (const [k, kind] of out.norms.kinds.entries()) {
    const st = normStats(out, k);
    const y = scaleLinear().domain([0, Math.max(1e-9, ...st.max)]).nice().range([ph, 0]);
    ys.push(y);
    const dx = left + k * (pw + gap);
    const p: string[] = [`<g transform="translate(${dx},${top})"><text x="0" y="-10" font-weight="600">${esc(kind)}</text>`];
    for (const t of y.ticks(4)) p.push(`<line x1="0" x2="${pw}" y1="${r2(y(t))}" y2="${r2(y(t))}" stroke="currentColor" stroke-opacity="0.12"/><text x="-5" y="${r2(y(t) + 3.5)}" text-anchor="end">${fmt.num(t)}</text>`);
    for (const t of x.ticks(Math.min(L, 6)).filter(Number.isInteger)) p.push(`<text x="${r2(x(t))}" y="${ph + 14}" text-anchor="middle">${t}</text>`);
    p.push(`<line x1="0" x2="${pw}" y1="${ph}" y2="${ph}" stroke="currentColor"/><line x1="0" x2="0" y1="0" y2="${ph}" stroke="currentColor"/>`);
    p.push(`<text x="${pw / 2}" y="${ph + 30}" text-anchor="middle">layer</text>`);
    if (k === 0) p.push(`<text transform="translate(-38,${ph / 2}) rotate(-90)" text-anchor="middle">L2 norm</text>`);
    const band = st.max.map((v, l) => `${l ? 'L' : 'M'}${r2(x(l))},${r2(y(v))}`).join('')
      + st.min.map((v, l) => `L${r2(x(L - 1 - l))},${r2(y(st.min[L - 1 - l]!))}`).join('') + 'Z';
    p.push(`<path d="${band}" fill="${meanC}" fill-opacity="0.15"/>`);
    p.push(`<path d="${st.mean.map((v, l) => `${l ? 'L' : 'M'}${r2(x(l))},${r2(y(v))}`).join('')}" fill="none" stroke="${meanC}" stroke-width="2"/>`);
    for (let l = 0; l < L; l++) {
      p.push(`<circle cx="${r2(x(l))}" cy="${r2(y(st.mean[l]!))}" r="3" fill="${meanC}" data-kind="${esc(kind)}" data-l="${l}" data-v="${sig4(st.mean[l]!)}">`
        + `<title>${esc(`${kind} · layer ${l}: mean L2 norm ${fmt.num(st.mean[l]!)} over ${P} positions (min ${fmt.num(st.min[l]!)}, max ${fmt.num(st.max[l]!)})`)}</title></circle>`);
    }
    if (sel !== null && sel < P) {
      const vals = Array.from({ length: L }, (_, l) => normAt(out, k, l, sel));
      p.push(`<path d="${vals.map((v, l) => `${l ? 'L' : 'M'}${r2(x(l))},${r2(y(v))}`).join('')}" fill="none" stroke="${selC}" stroke-width="2"/>`);
      for (let l = 0; l < L; l++) {
        p.push(`<circle cx="${r2(x(l))}" cy="${r2(y(vals[l]!))}" r="3" fill="${selC}" data-kind="${esc(kind)}" data-l="${l}" data-t="${sel}" data-v="${sig4(vals[l]!)}"><title>${esc(normTitle(out, k, l, sel))}</title></circle>`);
      }
    }
    p.push('</g>');
    panels.push(p.join(''));
  }
  const w = left + K * (pw + gap), h = top + ph + 58;
  const key = `<g transform="translate(${left},${h - 12})"><rect x="0" y="-8" width="14" height="8" fill="${meanC}" fill-opacity="0.3"/><line x1="0" x2="14" y1="-4" y2="-4" stroke="${meanC}" stroke-width="2"/>`
    + `<text x="20" y="0">mean over positions (band: smallest to largest)</text>`
    + (sel !== null && sel < P ? `<line x1="290" x2="304" y1="-4" y2="-4" stroke="${selC}" stroke-width="2"/><text x="310" y="0">${esc(`position ${sel} ${quote(out.labels[sel] ?? '')}`)}</text>` : '')
    + '</g>';
  const svg = svgOpen(w, h, `L2 norm against layer for ${out.norms.kinds.join(', ')}`) + panels.join('') + key + '</svg>';
  return {
    width: w, height: h, svg, canvases: [],
    overlay: (s) => (s.layer === null || s.layer >= L ? '' : out.norms.kinds.map((_, k) =>
      `<line x1="${r2(left + k * (pw + gap) + x(s.layer!))}" x2="${r2(left + k * (pw + gap) + x(s.layer!))}" y1="${top}" y2="${top + ph}" stroke="currentColor" stroke-dasharray="3 3"/>`).join('')),
  };
}

// ---------------------------------------------------------------------------------------------
// Histogram

export interface Histogram {
  /** bins + 1 edges: bin i holds [edges[i], edges[i+1]), the last one also its upper edge. */
  edges: number[];
  counts: number[];
  /** Finite values counted; NaN and ±∞ are skipped (and counted in `skipped`). */
  total: number;
  skipped: number;
}

/**
 * Equal-width bins over the finite values' range, counted in one pass (d3.bin's rule: a value on
 * an edge goes to the bin above; the largest value to the last bin). A one-pass count rather than
 * d3.bin itself because a hook holds up to millions of values (d3.bin keeps every value in its
 * bin's array); the test checks the counts against d3.bin.
 */
export function histogram(values: ArrayLike<number>, bins: number): Histogram {
  const n = Math.max(1, Math.floor(bins));
  let [lo, hi] = extent(values);
  if (hi === lo) hi = lo + 1;
  const edges = Array.from({ length: n + 1 }, (_, i) => (i === n ? hi : lo + ((hi - lo) * i) / n));
  const counts = new Array<number>(n).fill(0);
  const scale = n / (hi - lo);
  let total = 0, skipped = 0;
  for (let j = 0; j < values.length; j++) {
    const v = values[j]!;
    if (!Number.isFinite(v)) { skipped++; continue; }
    let i = Math.min(n - 1, Math.max(0, Math.floor((v - lo) * scale)));
    // rounding can put a value next to an edge one bin off: settle it against the edges themselves
    while (i > 0 && v < edges[i]!) i--;
    while (i < n - 1 && v >= edges[i + 1]!) i++;
    counts[i]!++;
    total++;
  }
  return { edges, counts, total, skipped };
}

/** d3.bin over the same edges (the reference the one-pass count must equal). */
export function histogramD3(values: ArrayLike<number>, edges: number[]): number[] {
  const finite = Array.from(values).filter(Number.isFinite);
  return bin().domain([edges[0]!, edges[edges.length - 1]!]).thresholds(edges.slice(1, -1))(finite).map((b) => b.length);
}

export function histogramFigure(h: Histogram, name: string, o: { logY?: boolean; width?: number } = {}): Figure {
  const pw = Math.max(240, (o.width ?? 720) - 90), ph = 180, left = 64, top = 28;
  const lo = h.edges[0]!, hi = h.edges[h.edges.length - 1]!;
  const x = scaleLinear().domain([lo, hi]).range([0, pw]);
  const maxC = Math.max(1, ...h.counts);
  // log: from 0.5 so that a bin of one value still shows, up to the next power of ten
  const y = o.logY ? scaleLog().domain([0.5, 10 ** Math.ceil(Math.log10(maxC + 1e-9))]).range([ph, 0]) : scaleLinear().domain([0, maxC]).range([ph, 0]).nice();
  const base = o.logY ? ph : y(0);
  const fill = schemes.sequential(0.35);
  const parts: string[] = [`<g transform="translate(${left},${top})">`];
  parts.push(`<text x="0" y="-12" font-weight="600">${esc(`values of ${name} (${fmt.int(h.total)} values${h.skipped ? `; ${fmt.int(h.skipped)} not finite, skipped` : ''})`)}</text>`);
  const yTicks = o.logY ? y.ticks(5).filter((t) => t >= 1 && Number.isInteger(Math.log10(t))) : y.ticks(5);
  for (const t of yTicks) parts.push(`<line x1="0" x2="${pw}" y1="${r2(y(t))}" y2="${r2(y(t))}" stroke="currentColor" stroke-opacity="0.12"/><text x="-6" y="${r2(y(t) + 3.5)}" text-anchor="end">${Number.isInteger(t) ? fmt.int(t) : fmt.num(t)}</text>`);
  for (const t of x.ticks(8)) parts.push(`<line x1="${r2(x(t))}" x2="${r2(x(t))}" y1="${ph}" y2="${ph + 4}" stroke="currentColor"/><text x="${r2(x(t))}" y="${ph + 16}" text-anchor="middle">${fmt.num(t)}</text>`);
  for (const [i, c] of h.counts.entries()) {
    const x0 = h.edges[i]!, x1 = h.edges[i + 1]!;
    const top_ = c > 0 ? y(c) : base;
    const range = `${i === h.counts.length - 1 ? `[${fmt.num(x0)}, ${fmt.num(x1)}]` : `[${fmt.num(x0)}, ${fmt.num(x1)})`}`;
    parts.push(`<rect x="${r2(x(x0) + 0.5)}" y="${r2(top_)}" width="${r2(Math.max(0.5, x(x1) - x(x0) - 1))}" height="${r2(Math.max(0, base - top_))}" fill="${fill}" data-v="${c}" data-x0="${sig4(x0)}" data-x1="${sig4(x1)}">`
      + `<title>${esc(`${range}: ${fmt.int(c)} values (${fmt.pct(h.total ? c / h.total : 0)})`)}</title></rect>`);
  }
  parts.push(`<line x1="0" x2="${pw}" y1="${ph}" y2="${ph}" stroke="currentColor"/><line x1="0" x2="0" y1="0" y2="${ph}" stroke="currentColor"/>`);
  parts.push(`<text x="${pw / 2}" y="${ph + 32}" text-anchor="middle">activation value</text>`);
  parts.push(`<text transform="translate(-48,${ph / 2}) rotate(-90)" text-anchor="middle">count${o.logY ? ' (log scale)' : ''}</text></g>`);
  const w = left + pw + 20, fh = top + ph + 44;
  return { width: w, height: fh, svg: svgOpen(w, fh, `Histogram of the values of ${name}`) + parts.join('') + '</svg>', canvases: [], overlay: () => '' };
}

// ---------------------------------------------------------------------------------------------
// Neurons

/** The k entries of `row` largest in |value| (ties: the lower index first; NaN never ranks). */
export function topNeurons(row: ArrayLike<number>, k: number): { index: number; value: number }[] {
  const idx: number[] = [];
  for (let i = 0; i < row.length; i++) if (!Number.isNaN(row[i]!)) idx.push(i);
  idx.sort((a, b) => Math.abs(row[b]!) - Math.abs(row[a]!) || a - b);
  return idx.slice(0, Math.max(0, k)).map((index) => ({ index, value: row[index]! }));
}

/** The top neurons at the chosen position as horizontal bars (sorted as given: by |value|). */
export function topNeuronsFigure(out: ActivationsOutput, o: { picked?: readonly number[]; width?: number } = {}): Figure | null {
  const n = out.neurons;
  if (!n) return null;
  const picked = new Set(o.picked ?? n.picked.map((p) => p.index));
  const left = 70, top = LEGEND_H + 24, bh = 16, pw = Math.max(240, (o.width ?? 720) - left - 30);
  const m = Math.max(1e-9, ...n.top.map((t) => Math.abs(t.value)));
  const x = scaleLinear().domain([-m, m]).range([0, pw]).nice();
  const color = colorScale('diverging', -m, m);
  const parts: string[] = [legendSvg({ label: ACT_LABEL, lo: -m, hi: m, scheme: 'diverging', x: left, y: 0, width: 240, ticks: 4 }),
    `<text x="${left}" y="${top - 8}" font-weight="600">${esc(`FFN neurons most active at position ${n.position} ${quote(out.labels[n.position] ?? '')}, layer ${n.layer} (by |activation|; click to pick)`)}</text>`];
  for (const [i, t] of n.top.entries()) {
    const y = top + i * bh, on = picked.has(t.index);
    const x0 = x(Math.min(0, t.value)), x1 = x(Math.max(0, t.value));
    parts.push(`<g class="neuron" data-n="${t.index}" data-l="${n.layer}" data-t="${n.position}" data-v="${sig4(t.value)}" tabindex="0" role="button" aria-pressed="${on}" aria-label="${esc(`neuron ${t.index}: ${fmt.num(t.value)}; ${on ? 'picked' : 'pick it'}`)}" cursor="pointer">`
      + `<title>${esc(`neuron ${t.index} · layer ${n.layer} · position ${n.position}: ${ACT_LABEL} ${fmt.num(t.value)}${on ? ' (picked)' : ' (click to pick)'}`)}</title>`
      + `<rect x="0" y="${y}" width="${left + pw}" height="${bh}" fill="transparent"/>`
      + `<text x="${left - 6}" y="${y + 12}" text-anchor="end" font-family="monospace"${on ? ' font-weight="700"' : ''}>${on ? '✓ ' : ''}${t.index}</text>`
      + `<rect x="${r2(left + x0)}" y="${y + 2}" width="${r2(Math.max(0.5, x1 - x0))}" height="${bh - 4}" fill="${color(t.value)}"/></g>`);
  }
  const bottom = top + n.top.length * bh;
  parts.push(`<line x1="${r2(left + x(0))}" x2="${r2(left + x(0))}" y1="${top}" y2="${bottom}" stroke="currentColor"/>`);
  for (const t of x.ticks(6)) parts.push(`<text x="${r2(left + x(t))}" y="${bottom + 14}" text-anchor="middle">${fmt.num(t)}</text>`);
  parts.push(`<text x="${left + pw / 2}" y="${bottom + 30}" text-anchor="middle">${ACT_LABEL}</text>`);
  parts.push(`<text transform="translate(14,${r2((top + bottom) / 2)}) rotate(-90)" text-anchor="middle">neuron</text>`);
  const w = left + pw + 20, h = bottom + 38;
  return { width: w, height: h, svg: svgOpen(w, h, `The ${n.top.length} FFN neurons of layer ${n.layer} most active at position ${n.position}`, 'group') + parts.join('') + '</svg>', canvases: [], overlay: () => '' };
}

/** Picked neurons × positions: a diverging heatmap centred on 0 (canvas past TITLED_SVG_LIMIT cells). */
export function pickedNeuronsFigure(out: ActivationsOutput, o: { width?: number; cellWidth?: number; mode?: DrawMode; limit?: number } = {}): Figure | null {
  const n = out.neurons;
  if (!n || n.picked.length === 0) return null;
  const R = n.picked.length, P = nPosOf(out);
  const mode = o.mode ?? (R * P > TITLED_SVG_LIMIT ? 'canvas' : 'svg');
  const group = mode === 'aggregate' ? exportGroup(R, P, o.limit) : 1;
  const cols = Math.ceil(P / group), width = o.width ?? 720;
  const cw = mode === 'svg' ? Math.max(4, Math.min(56, Math.floor(width / Math.max(1, cols))))
    : mode === 'canvas' ? (o.cellWidth ?? Math.max(2, Math.floor(width / Math.max(1, P)))) : Math.max(2, Math.floor(width / cols));
  const g: Grid = { left: 70, top: LEGEND_H + 24, cw, ch: 16, rows: R, cols };
  const m = new Float32Array(R * P);                                  // [picked, positions]
  n.picked.forEach((p, r) => m.set(p.values.subarray(0, P), r * P));
  const [lo, hi] = extent(m);
  const color = colorScale('diverging', lo, hi);
  const title = (r: number, c: number) => `neuron ${n.picked[r]!.index} · layer ${n.layer} · position ${c} ${quote(out.labels[c] ?? '')}: ${ACT_LABEL} ${fmt.num(m[r * P + c]!)}`;
  const parts: string[] = [legendSvg({ label: ACT_LABEL, lo, hi, scheme: 'diverging', x: g.left, y: 0, width: 240, ticks: 4 }),
    `<text x="${g.left}" y="${g.top - 8}" font-weight="600">${esc(`picked neurons of layer ${n.layer} across positions`)}</text>`];
  const canvases: CanvasPanel[] = [];
  if (mode === 'svg') {
    parts.push(heatRects(g, { value: (r, c) => m[r * P + c]!, color, title,
      attrs: (r, c) => `data-n="${n.picked[r]!.index}" data-l="${n.layer}" data-t="${c}"` }));
  } else if (mode === 'aggregate') {
    const agg = aggregateColumns(m, R, P, group);
    const last = (c: number) => Math.min(P, (c + 1) * group) - 1;
    parts.push(heatRects(g, { value: (r, c) => agg.mean[r * cols + c]!, color,
      title: (r, c) => `neuron ${n.picked[r]!.index} · positions ${c * group}–${last(c)}: mean ${fmt.num(agg.mean[r * cols + c]!)}`,
      attrs: (r, c) => `data-n="${n.picked[r]!.index}" data-l="${n.layer}" data-t="${c * group}" data-t1="${last(c)}"` }));
  } else {
    canvases.push(matrixPanel(g, m, { scheme: 'diverging', lo, hi }, { readout: title, token: (c) => c, layer: () => n.layer }));
    parts.push(`<rect class="plot-area" x="${g.left}" y="${g.top}" width="${cols * cw}" height="${R * g.ch}" fill="none" stroke="currentColor" stroke-opacity="0.2"/>`);
  }
  parts.push(rowLabels(g, (r) => `n${n.picked[r]!.index}`, (r) => `data-n="${n.picked[r]!.index}" font-family="monospace"`));
  const bottom = g.top + R * g.ch;
  const xl = columnLabels(g, (c) => out.labels[c * group] ?? '', (c) => c * group, bottom + 2);
  const w = Math.max(g.left + cols * cw + 16, 300), h = bottom + xl.height + 22;
  parts.push(xl.svg, `<text x="${r2(g.left + (cols * cw) / 2)}" y="${h - 6}" text-anchor="middle">position (token)${group > 1 ? esc(` (each column: the mean of ${group} positions)`) : ''}</text>`);
  return {
    width: w, height: h, svg: svgOpen(w, h, `${R} picked FFN neurons of layer ${n.layer} across ${P} positions`) + parts.join('') + '</svg>', canvases,
    overlay: (sel) => gridSelection(g, sel.token !== null && sel.token < P ? Math.floor(sel.token / group) : null, null),
  };
}

// ---------------------------------------------------------------------------------------------
// Export

export type NormView = 'heatmap' | 'lines';

/**
 * Every figure of the cell stacked (heatmaps aggregated past SVG_CELL_LIMIT cells: consecutive
 * positions averaged), and one table with a `section` column: `norm` (kind, layer, position,
 * value = L2 norm), `histogram` (bin_lo, bin_hi, value = count), `top_neuron` and `neuron`
 * (neuron, layer, position, value = activation).
 */
export function activationsExport(out: ActivationsOutput, o: { normView?: NormView; bins?: number; logY?: boolean; selection?: Sel; width?: number } = {}): FigureExport {
  const sel = o.selection ?? NO_SEL;
  const figs: Figure[] = [];
  figs.push(o.normView === 'lines' ? normsLinesFigure(out, { width: o.width, position: sel.token })
    : normsHeatmapFigure(out, { width: o.width, mode: out.norms.data.length > SVG_CELL_LIMIT ? 'aggregate' : 'svg' }));
  const hist = out.hist ? histogram(out.hist.values, o.bins ?? 40) : null;
  if (hist && out.hist) figs.push(histogramFigure(hist, out.hist.name, { logY: o.logY, width: o.width }));
  const top = topNeuronsFigure(out, { width: o.width });
  if (top) figs.push(top);
  const nP = out.neurons ? out.neurons.picked.length * nPosOf(out) : 0;
  const picked = pickedNeuronsFigure(out, { width: o.width, mode: nP > SVG_CELL_LIMIT ? 'aggregate' : 'svg' });
  if (picked) figs.push(picked);

  type Row = Record<string, string | number | null>;
  const row = (r: Partial<Row>): Row => ({ section: null, name: null, layer: null, position: null, token: null, neuron: null, bin_lo: null, bin_hi: null, value: null, ...r });
  const rows: Row[] = [];
  const P = nPosOf(out);
  for (const [k, kind] of out.norms.kinds.entries()) {
    for (let l = 0; l < out.nLayers; l++) {
      for (let p = 0; p < P; p++) rows.push(row({ section: 'norm', name: kind, layer: l, position: p, token: out.labels[p] ?? '', value: normAt(out, k, l, p) }));
    }
  }
  if (hist && out.hist) {
    hist.counts.forEach((c, i) => rows.push(row({ section: 'histogram', name: out.hist!.name, bin_lo: hist.edges[i]!, bin_hi: hist.edges[i + 1]!, value: c })));
  }
  if (out.neurons) {
    const n = out.neurons;
    for (const t of n.top) rows.push(row({ section: 'top_neuron', name: 'ffn.hook_act', layer: n.layer, position: n.position, token: out.labels[n.position] ?? '', neuron: t.index, value: t.value }));
    for (const p of n.picked) {
      for (let q = 0; q < Math.min(P, p.values.length); q++) rows.push(row({ section: 'neuron', name: 'ffn.hook_act', layer: n.layer, position: q, token: out.labels[q] ?? '', neuron: p.index, value: p.values[q]! }));
    }
  }
  const parts = figs.map((f) => ({ svg: withOverlay(f, sel), width: f.width, height: f.height }));
  return {
    svg: stackSvg(parts, 'Activations'),
    rows,
    meta: { kind: 'activations', prompt: out.prompt, nLayers: out.nLayers, kinds: out.norms.kinds, hist: out.hist ? { name: out.hist.name, bins: hist!.counts.length, skipped: hist!.skipped } : null },
  };
}
