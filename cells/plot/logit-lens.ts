// The logit lens: the residual stream after each layer read through the final RMSNorm and the
// unembedding, drawn as a layers × positions grid (each cell: the top token, coloured by its
// probability), and for a target token its probability and rank across layers.
//
// The first half of this file is the small grid kit the three layer × position cells share
// (logit lens, activations, embeddings): figures with a selection overlay, heatmap cells as SVG
// or as canvas panels, thinned token labels, aggregation for export. Pure: strings out.

import { scaleLinear, scaleLog } from 'd3';
import { colorScale, esc, fmt, FONT, legendSvg, LEGEND_H, r2, rgbBytes, SVG_CELL_LIMIT, type SchemeName } from './kit.ts';
import type { FigureExport } from './figure.ts';

export interface LogitLensOutput {
  prompt: string; labels: string[];
  layers: number[];            // −1 = the embedding (before block 0), i = the residual after block i
  positions: number[];         // prompt positions shown
  k: number;
  ids: Int32Array;             // [layers, positions, k] top ids, most likely first
  probs: Float32Array;         // [layers, positions, k]
  pieces: Map<number, string>; // display piece of every id above (and the target)
  target: { text: string; id: number; piece: string } | null;
  targetProbs: Float32Array | null;  // [layers, positions]
  targetRanks: Int32Array | null;    // [layers, positions], 0 = most likely
}

// =============================================================================================
// Shared grid kit

/** What the linked selection says to draw: a prompt position and/or a layer. */
export interface Sel { token: number | null; layer: number | null }
export const NO_SEL: Sel = Object.freeze({ token: null, layer: null });

/** A block of equal cells: its top-left corner in the figure, cell size, and count. */
export interface Grid { left: number; top: number; cw: number; ch: number; rows: number; cols: number }

/**
 * A heatmap drawn on a <canvas> (past the SVG limit): the figure's SVG leaves its area empty and
 * the element lays a canvas of `cols × rows` pixels over it, scaled to cw × ch per cell.
 */
export interface CanvasPanel extends Grid {
  /** [rows, cols] RGBA, one pixel per cell (computed on first call, then kept). */
  pixels(): Uint8ClampedArray;
  /** The hover text of a cell (the numbers a <title> would hold). */
  readout(row: number, col: number): string;
  /** The prompt position of a column, the layer of a row (for the linked selection). */
  token(col: number): number | null;
  layer(row: number): number | null;
}

/**
 * Lines, dots and labels drawn on one canvas over the whole figure (trajectories of a long
 * prompt: thousands of SVG paths are slow to parse). In figure coordinates. The SVG under it keeps
 * transparent hit marks with their <title>s, so hover works through the canvas.
 */
export interface VectorLayer {
  /** Each path: x0, y0, x1, y1, … */
  paths: { xy: Float32Array; color: string; width: number; opacity: number }[];
  dots: { x: number; y: number; r: number; color: string }[];
  labels: { x: number; y: number; text: string }[];
}

/** A drawn figure: the SVG without selection marks, canvas panels, and the marks of a selection. */
export interface Figure {
  width: number; height: number;
  svg: string;
  canvases: CanvasPanel[];
  vector?: VectorLayer;
  /** SVG elements (no <svg> around) drawn above the canvas panels and not hit (a canvas grid's
   *  cell texts), in the figure's coordinates. */
  over?: string;
  /** SVG elements (no <svg> around) marking a selection, in the figure's coordinates. */
  overlay(sel: Sel): string;
}

/** The figure with what is drawn above its canvases and its selection marks (export, tests). */
export function withOverlay(f: Figure, sel: Sel = NO_SEL): string {
  const marks = f.overlay(sel);
  const over = (f.over ?? '') + (marks ? `<g class="selection" pointer-events="none">${marks}</g>` : '');
  return over ? f.svg.replace(/<\/svg>$/, `${over}</svg>`) : f.svg;
}

/** Several figures one under the other as one SVG (what export writes). */
export function stackSvg(parts: { svg: string; width: number; height: number }[], label: string): string {
  const width = Math.max(1, ...parts.map((p) => p.width));
  let y = 0;
  const inner = parts.map((p) => {
    const s = p.svg.replace(/^<svg /, `<svg x="0" y="${y}" `);
    y += p.height + 12;
    return s;
  });
  return `${svgOpen(width, Math.max(0, y - 12), label)}${inner.join('')}</svg>`;
}

/** An <svg> start tag; role "group" for a figure whose marks are controls (buttons). */
export function svgOpen(w: number, h: number, label: string, role: 'img' | 'group' = 'img'): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${r2(w)}" height="${r2(h)}" viewBox="0 0 ${r2(w)} ${r2(h)}" role="${role}" aria-label="${esc(label)}" ${FONT} fill="currentColor">`;
}

/** A value for data-v: 4 significant digits. */
export function sig4(v: number): string {
  return Number.isFinite(v) ? String(Number(v.toPrecision(4))) : String(v);
}

/** Token labels past this many are thinned to every n-th. */
export const MAX_LABELS = 80;

/** Every n-th label is drawn: 1 up to `max` labels, else ceil(n / max). */
export function labelStep(n: number, max = MAX_LABELS): number {
  return n <= max ? 1 : Math.ceil(n / max);
}

/** The indices whose label is drawn (0, step, 2·step, …). */
export function thinned(n: number, max = MAX_LABELS): number[] {
  const step = labelStep(n, max), out: number[] = [];
  for (let i = 0; i < n; i += step) out.push(i);
  return out;
}

/** The cell under (x, y) (coordinates relative to the grid's origin at left, top). */
export function cellAt(g: Grid, x: number, y: number): { row: number; col: number } | null {
  const col = Math.floor((x - g.left) / g.cw), row = Math.floor((y - g.top) / g.ch);
  return col >= 0 && col < g.cols && row >= 0 && row < g.rows ? { row, col } : null;
}

/** Shortens a label to n characters (an ellipsis marks the cut). */
export function clip(s: string, n: number): string {
  return s.length <= n ? s : n <= 1 ? '…' : `${s.slice(0, n - 1)}…`;
}

/** Black or white text, whichever reads on `fill`. */
export function inkOn(fill: string): string {
  const [r, g, b] = rgbBytes(fill);
  return 0.2126 * r + 0.7152 * g + 0.0722 * b > 128 ? '#111' : '#fff';
}

const CHAR_W = 6.2;            // monospace at 10px, for fitting pieces into cells

/** Column (token) labels under a grid: horizontal when cells are wide, else slanted; thinned. */
export function columnLabels(g: Grid, label: (col: number) => string, token: (col: number) => number, y: number): { svg: string; height: number } {
  const wide = g.cw >= 44;
  const out: string[] = [];
  for (const c of thinned(g.cols)) {
    const x = g.left + (c + 0.5) * g.cw, t = token(c), text = label(c);
    const title = `<title>${esc(`position ${t}: ${text}`)}</title>`;
    out.push(wide
      ? `<text x="${r2(x)}" y="${y + 12}" text-anchor="middle" data-t="${t}" class="tok">${title}${esc(clip(text, Math.floor(g.cw / CHAR_W)))}</text>`
      : `<text transform="translate(${r2(x + 3)},${y + 6}) rotate(-60)" text-anchor="end" data-t="${t}" class="tok">${title}${esc(clip(text, 10))}</text>`);
  }
  return { svg: `<g class="x-labels" font-family="monospace" font-size="10">${out.join('')}</g>`, height: wide ? 18 : 62 };
}

/** Row labels left of a grid (thinned when rows are short). */
export function rowLabels(g: Grid, label: (row: number) => string, attrs: (row: number) => string): string {
  const step = Math.max(1, Math.ceil(10 / g.ch));
  const out: string[] = [];
  for (let r = 0; r < g.rows; r++) {
    if ((g.rows - 1 - r) % step) continue;         // keep the bottom row (layer 0 / emb)
    out.push(`<text x="${g.left - 5}" y="${r2(g.top + (r + 0.5) * g.ch + 3.5)}" text-anchor="end" ${attrs(r)}>${esc(label(r))}</text>`);
  }
  return `<g class="y-labels">${out.join('')}</g>`;
}

/** A grid's cells as SVG rects: colour, data attributes, a <title>, and optional text. */
export function heatRects(g: Grid, o: {
  value(r: number, c: number): number;
  color(v: number): string;
  attrs(r: number, c: number): string;
  title(r: number, c: number): string;
  text?(r: number, c: number): string | null;
}): string {
  const rects: string[] = [];
  for (let r = 0; r < g.rows; r++) {
    for (let c = 0; c < g.cols; c++) {
      const v = o.value(r, c);
      const x = g.left + c * g.cw, y = g.top + r * g.ch;
      const fill = Number.isFinite(v) ? o.color(v) : 'none';
      rects.push(`<rect x="${r2(x)}" y="${r2(y)}" width="${r2(g.cw)}" height="${r2(g.ch)}" fill="${fill}" ${o.attrs(r, c)} data-v="${sig4(v)}"><title>${esc(o.title(r, c))}</title></rect>`);
    }
  }
  return `<g class="cells">${rects.join('')}</g>` + (o.text ? heatTexts(g, { value: o.value, color: o.color, text: o.text }) : '');
}

/** A text centred in each cell that has one, in a colour readable on the cell's fill. */
export function heatTexts(g: Grid, o: { value(r: number, c: number): number; color(v: number): string; text(r: number, c: number): string | null }): string {
  const texts: string[] = [];
  for (let r = 0; r < g.rows; r++) {
    for (let c = 0; c < g.cols; c++) {
      const t = o.text(r, c);
      if (!t) continue;
      const v = o.value(r, c), x = g.left + c * g.cw, y = g.top + r * g.ch;
      texts.push(`<text x="${r2(x + g.cw / 2)}" y="${r2(y + g.ch / 2 + 3.5)}" fill="${inkOn(Number.isFinite(v) ? o.color(v) : 'none')}">${esc(t)}</text>`);
    }
  }
  return texts.length ? `<g class="pieces" font-family="monospace" font-size="10" text-anchor="middle" pointer-events="none">${texts.join('')}</g>` : '';
}

/** Outlines of a selected column and/or row of a grid (a dark line with a light one inside). */
export function gridSelection(g: Grid, col: number | null, row: number | null): string {
  const box = (x: number, y: number, w: number, h: number) =>
    `<rect x="${r2(x)}" y="${r2(y)}" width="${r2(w)}" height="${r2(h)}" fill="none" stroke="#000" stroke-width="2.5"/>`
    + `<rect x="${r2(x)}" y="${r2(y)}" width="${r2(w)}" height="${r2(h)}" fill="none" stroke="#fff" stroke-width="1"/>`;
  let s = '';
  if (col !== null && col >= 0 && col < g.cols) s += box(g.left + col * g.cw, g.top, g.cw, g.rows * g.ch);
  if (row !== null && row >= 0 && row < g.rows) s += box(g.left, g.top + row * g.ch, g.cols * g.cw, g.ch);
  return s;
}

/**
 * Export aggregation (the export SVG of a long prompt): consecutive columns are grouped `group`
 * at a time, and each group is drawn as one cell holding the mean (its title also gives the max).
 * `m` is [rows, cols]; returns [rows, ceil(cols / group)].
 */
export function aggregateColumns(m: ArrayLike<number>, rows: number, cols: number, group: number): { mean: Float32Array; max: Float32Array; cols: number } {
  const nb = Math.ceil(cols / group);
  const mean = new Float32Array(rows * nb), max = new Float32Array(rows * nb).fill(-Infinity);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < nb; b++) {
      let s = 0, n = 0;
      for (let c = b * group; c < Math.min(cols, (b + 1) * group); c++) {
        const v = m[r * cols + c]!;
        if (!Number.isFinite(v)) continue;
        s += v; n++;
        if (v > max[r * nb + b]!) max[r * nb + b] = v;
      }
      mean[r * nb + b] = n ? s / n : NaN;
    }
  }
  return { mean, max, cols: nb };
}

/** How many columns an export groups so that at most `limit` cells are drawn (1: none). */
export function exportGroup(rows: number, cols: number, limit = SVG_CELL_LIMIT): number {
  return rows * cols <= limit ? 1 : Math.ceil((rows * cols) / limit);
}

/**
 * Past this many cells a heatmap of these cells is drawn on a canvas in the page. A quarter of
 * kit.SVG_CELL_LIMIT: every cell here carries a <title> with its numbers (and the lens a text),
 * and 20,000 of those take longer than 200 ms to parse and lay out on a slow machine.
 */
export const TITLED_SVG_LIMIT = SVG_CELL_LIMIT / 4;

/** 'svg' up to the limit, else 'canvas' in the page ('aggregate' is what export uses then). */
export type DrawMode = 'svg' | 'canvas' | 'aggregate';

/**
 * The pixels of a [rows, cols] matrix through a colour lookup table of `levels` entries spanning
 * the scale's domain (diverging: symmetric about 0, as colorScale). kit.heatmapPixels asks the
 * d3 scale once per distinct value (tens of thousands on a long prompt, ~50 ms); a table of 1024
 * colours is a few hundred times fewer calls and indistinguishable on screen. NaN and ±∞ stay
 * transparent.
 */
export function lutPixels(m: ArrayLike<number>, rows: number, cols: number, scheme: SchemeName, lo: number, hi: number, levels = 1024): Uint8ClampedArray {
  const color = colorScale(scheme, lo, hi);
  const M = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
  const [a, b] = scheme === 'diverging' ? [-M, M] : [lo, hi === lo ? lo + 1 : hi];
  const lut = new Uint8Array(levels * 3);
  for (let i = 0; i < levels; i++) lut.set(rgbBytes(color(a + ((b - a) * i) / (levels - 1))), i * 3);
  const px = new Uint8ClampedArray(rows * cols * 4), k = (levels - 1) / (b - a);
  for (let i = 0; i < rows * cols; i++) {
    const v = m[i]!;
    if (!Number.isFinite(v)) continue;
    const j = Math.min(levels - 1, Math.max(0, Math.round((v - a) * k))) * 3;
    px[i * 4] = lut[j]!; px[i * 4 + 1] = lut[j + 1]!; px[i * 4 + 2] = lut[j + 2]!; px[i * 4 + 3] = 255;
  }
  return px;
}

/** A canvas panel from a [rows, cols] matrix in drawn order; pixels computed once, on demand. */
export function matrixPanel(g: Grid, m: Float32Array, scale: { scheme: SchemeName; lo: number; hi: number }, o: {
  readout(row: number, col: number): string; token(col: number): number | null; layer(row: number): number | null;
}): CanvasPanel {
  let px: Uint8ClampedArray | null = null;
  return { ...g, pixels: () => (px ??= lutPixels(m, g.rows, g.cols, scale.scheme, scale.lo, scale.hi)), ...o };
}

// =============================================================================================
// The logit lens

/** Past this many cells the lens grid has no text per cell (and its default mode is the canvas):
 *  each SVG cell carries a 5-line title and a text, so the limit is a quarter of kit's. */
export const LENS_SVG_LIMIT = TITLED_SVG_LIMIT;

export type LensView = 'grid' | 'target';

export interface LensOptions {
  view?: LensView;
  /** Width the grid aims to fill (cells 6–64 px wide in SVG; scrolled past that). */
  width?: number;
  /** Canvas cell width in px (the element's zoom); default fits `width`, at least 2. */
  cellWidth?: number;
  mode?: DrawMode;
  /** Aggregate mode: at most this many cells (default SVG_CELL_LIMIT). */
  limit?: number;
}

export const layerTick = (l: number) => (l === -1 ? 'emb' : String(l));
export const layerName = (l: number) => (l === -1 ? 'embedding' : `layer ${l}`);

/** logitLensFigure's default mode: SVG up to LENS_SVG_LIMIT cells, else canvas (the page always
 *  asks for the canvas, which carries the cell texts up to the same limit). */
export function lensMode(out: LogitLensOutput): DrawMode {
  return out.layers.length * out.positions.length > LENS_SVG_LIMIT ? 'canvas' : 'svg';
}

/** The value a lens cell is coloured by (layer index li, position index pi). */
export function lensValue(out: LogitLensOutput, view: LensView, li: number, pi: number): number {
  const P = out.positions.length;
  if (view === 'target') return out.targetProbs ? out.targetProbs[li * P + pi]! : NaN;
  return out.probs[(li * P + pi) * out.k]!;
}

/** The grid's values as [rows, cols] in drawn order: the top row is the last layer. */
export function lensMatrix(out: LogitLensOutput, view: LensView): Float32Array {
  const L = out.layers.length, P = out.positions.length;
  const m = new Float32Array(L * P);
  for (let r = 0; r < L; r++) for (let c = 0; c < P; c++) m[r * P + c] = lensValue(out, view, L - 1 - r, c);
  return m;
}

const quote = (s: string) => JSON.stringify(s);

/** The hover text of one cell: where it is, the top 5 with probabilities, the target. */
export function lensTitle(out: LogitLensOutput, li: number, pi: number): string {
  const P = out.positions.length, pos = out.positions[pi]!;
  const lines = [`${layerName(out.layers[li]!)} · position ${pos} ${quote(out.labels[pos] ?? '')}`];
  for (let j = 0; j < Math.min(5, out.k); j++) {
    const id = out.ids[(li * P + pi) * out.k + j]!;
    lines.push(`${j + 1}. ${quote(out.pieces.get(id) ?? `#${id}`)} ${fmt.prob(out.probs[(li * P + pi) * out.k + j]!)}`);
  }
  if (out.target && out.targetProbs && out.targetRanks) {
    lines.push(`target ${quote(out.target.piece)}: ${fmt.prob(out.targetProbs[li * P + pi]!)} (rank ${out.targetRanks[li * P + pi]! + 1})`);
  }
  return lines.join('\n');
}

const compactRank = (r: number) => (r < 1000 ? String(r) : `${Math.round(r / 1000)}k`);

/** The layers × positions grid (top row: the last layer; bottom: the embedding). */
export function logitLensFigure(out: LogitLensOutput, o: LensOptions = {}): Figure {
  const view: LensView = o.view === 'target' && out.targetProbs ? 'target' : 'grid';
  const L = out.layers.length, P = out.positions.length;
  const mode = o.mode ?? lensMode(out);
  const group = mode === 'aggregate' ? exportGroup(L, P, o.limit) : 1;
  const cols = Math.ceil(P / group);
  const width = o.width ?? 720;
  // A grid small enough for SVG holds a text per cell, on a canvas too (the page draws the grid
  // on a canvas at every size: a rect with a five-line title per cell costs a keystroke more to
  // parse, style and paint than the lens takes to compute).
  const texted = mode === 'svg' || (mode === 'canvas' && L * P <= LENS_SVG_LIMIT);
  const fitWidth = Math.max(6, Math.min(64, Math.floor(width / Math.max(1, cols))));
  const cw = mode === 'svg' ? fitWidth
    : mode === 'canvas' ? (o.cellWidth ?? (texted ? fitWidth : Math.max(2, Math.floor(width / Math.max(1, P))))) : Math.max(2, Math.floor(width / cols));
  const ch = texted ? 18 : 14;
  const g: Grid = { left: 64, top: LEGEND_H + 10, cw, ch, rows: L, cols };
  const color = colorScale('sequential', 0, 1);
  const li = (r: number) => L - 1 - r;
  const firstPos = (c: number) => out.positions[c * group]!;
  const legendLabel = view === 'target' ? `probability of the target ${quote(out.target!.piece)}` : 'probability of the top token';

  let cells = '', over: string | undefined;
  const canvases: CanvasPanel[] = [];
  const fits = Math.floor((cw - 4) / CHAR_W);
  const value = (r: number, c: number) => lensValue(out, view, li(r), c);
  const text = !texted || fits < 2 ? undefined : (r: number, c: number) => view === 'target'
    ? clip(compactRank(out.targetRanks![li(r) * P + c]! + 1), fits)
    : clip(out.pieces.get(out.ids[(li(r) * P + c) * out.k]!) ?? '', fits);
  if (mode === 'svg') {
    cells = heatRects(g, {
      value,
      color,
      attrs: (r, c) => {
        const id = view === 'target' ? out.target!.id : out.ids[(li(r) * P + c) * out.k]!;
        return `data-l="${out.layers[li(r)]}" data-t="${out.positions[c]}" data-id="${id}"`
          + (view === 'target' ? ` data-rank="${out.targetRanks![li(r) * P + c]}"` : '');
      },
      title: (r, c) => lensTitle(out, li(r), c),
      text,
    });
  } else if (mode === 'aggregate') {
    const agg = aggregateColumns(lensMatrix(out, view), L, P, group);
    const last = (c: number) => out.positions[Math.min(P, (c + 1) * group) - 1]!;
    cells = heatRects(g, {
      value: (r, c) => agg.mean[r * cols + c]!,
      color,
      attrs: (r, c) => `data-l="${out.layers[li(r)]}" data-t="${firstPos(c)}" data-t1="${last(c)}"`,
      title: (r, c) => `${layerName(out.layers[li(r)]!)} · positions ${firstPos(c)}–${last(c)}: mean ${legendLabel} ${fmt.prob(agg.mean[r * cols + c]!)}, max ${fmt.prob(agg.max[r * cols + c]!)}`,
    });
  } else {
    canvases.push(matrixPanel(g, lensMatrix(out, view), { scheme: 'sequential', lo: 0, hi: 1 }, {
      readout: (r, c) => lensTitle(out, li(r), c),
      token: (c) => out.positions[c] ?? null,
      layer: (r) => out.layers[li(r)] ?? null,
    }));
    if (text) over = heatTexts(g, { value, color, text });
  }

  const gridBottom = g.top + L * ch;
  const xl = columnLabels(g, (c) => out.labels[firstPos(c)] ?? '', firstPos, gridBottom + 2);
  const yl = rowLabels(g, (r) => layerTick(out.layers[li(r)]!), (r) => `data-l="${out.layers[li(r)]}"`);
  const w = Math.max(g.left + cols * cw + 16, 320);
  const h = gridBottom + xl.height + 22;
  const note = group > 1 ? ` (each column: the mean of ${group} positions)` : '';
  const svg = svgOpen(w, h, `Logit lens: ${legendLabel} for ${L} layers × ${P} positions`)
    + legendSvg({ label: legendLabel, lo: 0, hi: 1, scheme: 'sequential', x: g.left, y: 2 })
    + cells + (mode === 'canvas' ? `<rect class="plot-area" x="${g.left}" y="${g.top}" width="${cols * cw}" height="${L * ch}" fill="none" stroke="currentColor" stroke-opacity="0.2"/>` : '')
    + yl + xl.svg
    + `<text transform="translate(14,${r2(g.top + (L * ch) / 2)}) rotate(-90)" text-anchor="middle">layer ↑</text>`
    + `<text x="${g.left}" y="${h - 6}">${esc(`position (token)${note} · rows: the residual after each layer, emb = the embedding`)}</text></svg>`;
  return {
    width: w, height: h, svg, canvases, over,
    overlay: (sel) => {
      const c = sel.token === null ? -1 : group > 1 ? Math.floor(out.positions.indexOf(sel.token) / group) : out.positions.indexOf(sel.token);
      const l = sel.layer === null ? -1 : out.layers.indexOf(sel.layer);
      return gridSelection(g, c >= 0 ? c : null, l >= 0 ? L - 1 - l : null);
    },
  };
}

/** The position the target chart follows: the selected token when shown, else the last. */
export function lensPosition(out: LogitLensOutput, token: number | null): number {
  return token !== null && out.positions.includes(token) ? token : out.positions[out.positions.length - 1] ?? 0;
}

/**
 * The target token across layers at one position: its probability (left, linear) and its rank
 * (right, log scale, 1 = most likely at the top).
 */
export function lensTargetFigure(out: LogitLensOutput, o: { position?: number; width?: number } = {}): Figure | null {
  if (!out.target || !out.targetProbs || !out.targetRanks) return null;
  const P = out.positions.length, L = out.layers.length;
  const pos = lensPosition(out, o.position ?? null), pi = out.positions.indexOf(pos);
  const probs = out.layers.map((_, li) => out.targetProbs![li * P + pi]!);
  const ranks = out.layers.map((_, li) => out.targetRanks![li * P + pi]! + 1);
  const pw = Math.max(200, Math.floor(((o.width ?? 720) - 60) / 2)), ph = 170;
  const top = 34, left = 56, gap = 60;
  const x = scaleLinear().domain([Math.min(...out.layers), Math.max(...out.layers, Math.min(...out.layers) + 1)]).range([0, pw]);
  const yp = scaleLinear().domain([0, Math.max(0.05, ...probs)]).nice().range([ph, 0]);
  const yr = scaleLog().domain([1, Math.max(10, ...ranks)]).nice().range([0, ph]);
  const xTicks = out.layers.length <= 12 ? out.layers : x.ticks(8).filter((t) => Number.isInteger(t));
  const panel = (dx: number, title: string, y: (v: number) => number, yTicks: number[], yFmt: (v: number) => string, vals: number[], kind: 'prob' | 'rank') => {
    const parts: string[] = [`<g transform="translate(${dx},${top})">`];
    parts.push(`<text x="0" y="-12" font-weight="600">${esc(title)}</text>`);
    for (const t of yTicks) {
      parts.push(`<line x1="0" x2="${pw}" y1="${r2(y(t))}" y2="${r2(y(t))}" stroke="currentColor" stroke-opacity="0.12"/>`
        + `<text x="-6" y="${r2(y(t) + 3.5)}" text-anchor="end">${esc(yFmt(t))}</text>`);
    }
    for (const t of xTicks) parts.push(`<text x="${r2(x(t))}" y="${ph + 14}" text-anchor="middle">${layerTick(t)}</text>`);
    parts.push(`<line x1="0" x2="${pw}" y1="${ph}" y2="${ph}" stroke="currentColor"/><line x1="0" x2="0" y1="0" y2="${ph}" stroke="currentColor"/>`);
    parts.push(`<text x="${pw / 2}" y="${ph + 30}" text-anchor="middle">layer (emb = embedding)</text>`);
    const d = vals.map((v, i) => `${i ? 'L' : 'M'}${r2(x(out.layers[i]!))},${r2(y(v))}`).join('');
    const stroke = colorScale('sequential', 0, 1)(0.3);
    parts.push(`<path d="${d}" fill="none" stroke="${stroke}" stroke-width="2"/>`);
    for (let i = 0; i < L; i++) {
      const l = out.layers[i]!;
      parts.push(`<circle cx="${r2(x(l))}" cy="${r2(y(vals[i]!))}" r="3.5" fill="${stroke}" data-l="${l}" data-t="${pos}" data-v="${sig4(kind === 'prob' ? vals[i]! : vals[i]! - 1)}" data-${kind}="1">`
        + `<title>${esc(`${layerName(l)} · position ${pos}: p(${quote(out.target!.piece)}) ${fmt.prob(probs[i]!)}, rank ${ranks[i]}`)}</title></circle>`);
    }
    parts.push('</g>');
    return parts.join('');
  };
  const w = left + 2 * pw + gap + 16, h = top + ph + 40;
  const rankTicks = yr.ticks(4).filter((t) => Number.isInteger(Math.log10(t)));
  const svg = svgOpen(w, h, `Probability and rank of the target ${quote(out.target.piece)} across layers at position ${pos}`)
    + panel(left, `p(${quote(out.target.piece)}) at position ${pos} ${quote(out.labels[pos] ?? '')}`, yp, yp.ticks(5), fmt.num, probs, 'prob')
    + panel(left + pw + gap, 'rank (1 = most likely, log scale)', yr, rankTicks, fmt.int, ranks, 'rank')
    + '</svg>';
  return {
    width: w, height: h, svg, canvases: [],
    overlay: (sel) => {
      if (sel.layer === null || !out.layers.includes(sel.layer)) return '';
      const lx = r2(x(sel.layer));
      return [left, left + pw + gap].map((dx) => `<line x1="${dx + lx}" x2="${dx + lx}" y1="${top}" y2="${top + ph}" stroke="currentColor" stroke-dasharray="3 3"/>`).join('');
    },
  };
}

/** Export: rows for every (layer, position, rank) and the SVG of the current view (aggregated
 *  past SVG_CELL_LIMIT cells: consecutive positions averaged, see aggregateColumns). */
export function logitLensExport(out: LogitLensOutput, o: { view?: LensView; selection?: Sel; width?: number } = {}): FigureExport {
  const sel = o.selection ?? NO_SEL;
  const mode: DrawMode = out.layers.length * out.positions.length > SVG_CELL_LIMIT ? 'aggregate' : 'svg';
  const grid = logitLensFigure(out, { view: o.view, width: o.width, mode });
  const target = lensTargetFigure(out, { position: sel.token ?? undefined, width: o.width });
  const parts = [{ svg: withOverlay(grid, sel), width: grid.width, height: grid.height }];
  if (target) parts.push({ svg: withOverlay(target, sel), width: target.width, height: target.height });
  const P = out.positions.length;
  const rows: Record<string, string | number | null>[] = [];
  for (const [li, layer] of out.layers.entries()) {
    for (const [pi, position] of out.positions.entries()) {
      for (let j = 0; j < out.k; j++) {
        const id = out.ids[(li * P + pi) * out.k + j]!;
        const row: Record<string, string | number | null> = {
          layer, position, token: out.labels[position] ?? '', rank: j, id, piece: out.pieces.get(id) ?? '', prob: out.probs[(li * P + pi) * out.k + j]!,
        };
        if (out.targetProbs && out.targetRanks) {
          row['target_prob'] = out.targetProbs[li * P + pi]!;
          row['target_rank'] = out.targetRanks[li * P + pi]!;
        }
        rows.push(row);
      }
    }
  }
  return {
    svg: parts.length === 1 ? parts[0]!.svg : stackSvg(parts, 'Logit lens'),
    rows,
    meta: { kind: 'logit-lens', prompt: out.prompt, layers: out.layers, positions: out.positions, k: out.k, target: out.target,
      note: 'layer −1 is the embedding; rank 0 is the most likely token' },
  };
}
