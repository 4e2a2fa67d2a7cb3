// The patch cell's pure side: the two activation-patching grids (layer × position for the
// residual stream, layer × head for the attention heads' outputs), each cell the restored fraction
// of the logit difference, and the detail of the open cell (the top next tokens of the clean, the
// corrupted and that patched run side by side). Data in, SVG strings out; the numbers are
// src/engine/patching.ts's (the page computes them, src/app/patch.ts).
//
// Colour: PuOr centred at 0 over ±max(1, |fraction|): 1 (fully restored) is the same colour on
// every run, and overshoots (> 1) or reversals (< 0) still read as such. Past kit.SVG_CELL_LIMIT
// cells a grid is drawn as pixels on a canvas (heatmapPixels) with the same frame around it.

import { colorScale, esc, fmt, FONT, heatmapPixels, legendSvg, r2, schemes, SVG_CELL_LIMIT } from './kit.ts';
import { clip, heatRects, inkOn, sig4, thinned, type Grid } from './logit-lens.ts';
import { pngDataUrl } from './attention.ts';
import type { FigureExport } from './figure.ts';
import type { PatchGrid, PatchGridName } from '../../src/engine/patching.ts';

/** A token named by the cell: its id, display piece, and the text typed for it (null: the default). */
export interface PatchToken { id: number; piece: string; typed: string | null }

/** What the page computes for a patch cell. */
export interface PatchOutput {
  prompt: string;                 // the prompt cell's id (the clean prompt)
  labels: string[];               // display label per clean position
  corruptedLabels: string[];      // display label per corrupted position
  nLayers: number; nHeads: number; nKvHeads: number; nPos: number;
  target: PatchToken;
  foil: PatchToken;
  top: number;                    // top tokens kept per run
  clean: { diff: number; ids: Int32Array; probs: Float32Array };
  corrupted: { diff: number; ids: Int32Array; probs: Float32Array };
  resid: PatchGrid | null;        // [nLayers, nPos]
  heads: PatchGrid | null;        // [nLayers, nHeads]
  pieces: Map<number, string>;    // display piece of every top id, the target and the foil
  runs: number;                   // patched runs done
}

/** The open cell: a grid, a layer and a position (resid) or head (heads). */
export interface OpenCell { grid: PatchGridName; layer: number; index: number }

/** The view settings (redraw only). */
export const PATCH_VIEW_KEYS = ['open'] as const;

// ---------------------------------------------------------------------------------------------
// The open cell

/** "resid:L:P" / "head:L:H" → the cell, or null when it is malformed or not in this output. */
export function parseOpen(v: unknown, o: Pick<PatchOutput, 'nLayers' | 'nHeads' | 'nPos' | 'resid' | 'heads'>): OpenCell | null {
  const m = typeof v === 'string' ? /^(resid|head):(\d+):(\d+)$/.exec(v.trim()) : null;
  if (!m) return null;
  const grid: PatchGridName = m[1] === 'resid' ? 'resid' : 'heads', layer = Number(m[2]), index = Number(m[3]);
  if (!o[grid] || layer >= o.nLayers || index >= (grid === 'resid' ? o.nPos : o.nHeads)) return null;
  return { grid, layer, index };
}

export function openKey(c: OpenCell): string {
  return `${c.grid === 'resid' ? 'resid' : 'head'}:${c.layer}:${c.index}`;
}

/** The open cell after an arrow key (Home/End: first/last column); null keys leave it. */
export function moveOpen(c: OpenCell | null, key: string, o: Pick<PatchOutput, 'nLayers' | 'nHeads' | 'nPos' | 'resid' | 'heads'>, grid: PatchGridName): OpenCell | null {
  const cols = grid === 'resid' ? o.nPos : o.nHeads;
  if (!c || c.grid !== grid) return { grid, layer: 0, index: grid === 'resid' ? cols - 1 : 0 };
  const d: Record<string, [number, number]> = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };
  if (key === 'Home') return { ...c, index: 0 };
  if (key === 'End') return { ...c, index: cols - 1 };
  const m = d[key];
  if (!m) return null;
  return { grid, layer: Math.min(o.nLayers - 1, Math.max(0, c.layer + m[0])), index: Math.min(cols - 1, Math.max(0, c.index + m[1])) };
}

// ---------------------------------------------------------------------------------------------
// Numbers and words

/** The colour scale's half-width: the largest |fraction|, at least 1. */
export function colorDomain(...grids: (PatchGrid | null)[]): number {
  let m = 1;
  for (const g of grids) if (g) for (const v of g.fraction) if (Number.isFinite(v) && Math.abs(v) > m) m = Math.abs(v);
  return m;
}

const q = (s: string) => JSON.stringify(s);
export const piece = (o: Pick<PatchOutput, 'pieces'>, id: number) => o.pieces.get(id) ?? `#${id}`;
const signed = (v: number) => (v < 0 ? `−${fmt.num(-v)}` : fmt.num(v));

/** The metric in words: logit["T"] − logit["S"]. */
export function metricName(o: Pick<PatchOutput, 'target' | 'foil'>): string {
  return `logit[${q(o.target.piece)}] − logit[${q(o.foil.piece)}]`;
}

/** A fraction written inside its cell: two decimals, "≈0" for a nonzero value that rounds to 0. */
export function cellText(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const r = Math.round(v * 100) / 100;
  if (r === 0) return v === 0 ? '0' : '≈0';
  return r < 0 ? `−${(-r).toFixed(2)}` : r.toFixed(2);
}

/** What a grid cell is: "layer 2, position 9 (clean "▁T", corrupted "▁S")" / "head 3.5 (KV head 2)". */
export function cellName(o: PatchOutput, c: OpenCell): string {
  if (c.grid === 'resid') {
    const a = o.labels[c.index] ?? '?', b = o.corruptedLabels[c.index] ?? '?';
    return `resid_pre of layer ${c.layer} at position ${c.index} (clean ${q(a)}${a === b ? '' : `, corrupted ${q(b)}`})`;
  }
  const group = o.nHeads / Math.max(1, o.nKvHeads);
  return `head ${c.layer}.${c.index}${o.nKvHeads < o.nHeads ? ` (KV head ${Math.floor(c.index / group)})` : ''}`;
}

/** One cell's numbers, for its <title> and the canvas readout. */
export function cellTitle(o: PatchOutput, c: OpenCell): string {
  const g = o[c.grid]!, i = c.layer * g.cols + c.index, top = o.top;
  if (g.pending?.[i]) return `${cellName(o, c)}\nnot run yet: the grid is still computing`;
  const first = g.topIds[i * top]!, firstP = g.topProbs[i * top]!;
  return `${cellName(o, c)}\nrestored fraction ${fmt.num(g.fraction[i]!)} (exact ${g.fraction[i]})`
    + `\n${metricName(o)} patched ${signed(g.diff[i]!)} · clean ${signed(o.clean.diff)} · corrupted ${signed(o.corrupted.diff)}`
    + `\ntop next token ${q(piece(o, first))} p ${fmt.prob(firstP)}`
    + (g.skipped[i] ? '\n(the clean value equals the corrupted run\'s own: this is the corrupted run)' : '');
}

// ---------------------------------------------------------------------------------------------
// The heatmaps

export interface HeatmapFigure {
  width: number; height: number;
  svg: string;
  /** Where a canvas goes when the grid is drawn as pixels (null: SVG rects). */
  canvas: (Grid & { pixels: Uint8ClampedArray }) | null;
  grid: Grid;
}

export interface PatchSvgOptions { width?: number; open?: OpenCell | null; limit?: number }

const LEFT = 86, CH = 20;

/** 'canvas' past the SVG cell limit. */
export function patchMode(rows: number, cols: number, limit = SVG_CELL_LIMIT): 'svg' | 'canvas' {
  return rows * cols > limit ? 'canvas' : 'svg';
}

function axisLabel(x: number, y: number, text: string, anchor = 'middle', rotate = false): string {
  return rotate
    ? `<text transform="translate(${r2(x)},${r2(y)}) rotate(-90)" text-anchor="${anchor}" font-weight="600">${esc(text)}</text>`
    : `<text x="${r2(x)}" y="${r2(y)}" text-anchor="${anchor}" font-weight="600">${esc(text)}</text>`;
}

/** One grid as a heatmap: rows = layers (0 at the top), columns = positions or heads. */
export function patchHeatmap(o: PatchOutput, which: PatchGridName, opts: PatchSvgOptions = {}): HeatmapFigure {
  const g = o[which]!;
  const W = Math.max(420, opts.width ?? 720);
  const cols = g.cols, rows = g.rows;
  const mode = patchMode(rows, cols, opts.limit);
  const avail = W - LEFT - 12;
  const minCw = mode === 'canvas' ? 2 : which === 'resid' ? 6 : 14;
  const cw = Math.max(minCw, Math.min(which === 'resid' ? 40 : 48, Math.floor(avail / cols)));
  const ch = mode === 'canvas' ? Math.max(4, Math.min(CH, Math.floor(600 / rows))) : CH;
  const top = 64;
  const grid: Grid = { left: LEFT, top, cw, ch, rows, cols };
  const width = Math.max(W, LEFT + cols * cw + 12);
  const m = colorDomain(o.resid, o.heads);
  const color = colorScale('diverging', -m, m);
  const parts: string[] = [];
  const hook = which === 'resid' ? 'blocks.L.hook_resid_pre, one position' : 'blocks.L.attn.hook_z, one head, every position';
  parts.push(`<text x="0" y="14" font-size="13" font-weight="600">${esc(which === 'resid' ? 'Residual stream' : 'Attention heads')}</text>`
    + `<text x="0" y="30" fill-opacity="0.8">${esc(`patched: ${hook} (clean → corrupted run)`)}</text>`);
  parts.push(legendSvg({ label: 'restored fraction: 0 corrupted, 1 clean', lo: -m, hi: m, scheme: 'diverging', width: 200, ticks: 4, x: width - 260, y: 0 }));
  // rows: layers
  for (let l = 0; l < rows; l++) {
    if (ch < 10 && l % Math.ceil(10 / ch)) continue;
    parts.push(`<text x="${LEFT - 6}" y="${r2(top + (l + 0.5) * ch + 3.5)}" text-anchor="end" data-l="${l}">${l}</text>`);
  }
  parts.push(axisLabel(14, top + (rows * ch) / 2, 'layer', 'middle', true));
  const cellOf = (l: number, i: number): OpenCell => ({ grid: which, layer: l, index: i });
  if (mode === 'svg') {
    const small = cw >= 30;
    parts.push(heatRects(grid, {
      value: (l, i) => g.fraction[l * cols + i]!,
      color,
      attrs: (l, i) => `class="cell${g.skipped[l * cols + i] ? ' same' : ''}" data-grid="${which}" data-l="${l}" ${which === 'resid' ? 'data-t' : 'data-h'}="${i}" data-diff="${sig4(g.diff[l * cols + i]!)}" data-open="${openKey(cellOf(l, i))}"`,
      title: (l, i) => cellTitle(o, cellOf(l, i)),
      text: small ? (l, i) => (g.pending?.[l * cols + i] ? null : cellText(g.fraction[l * cols + i]!)) : undefined,
    }));
  } else {
    parts.push(`<rect class="canvas-slot" x="${LEFT}" y="${top}" width="${cols * cw}" height="${rows * ch}" fill="none" stroke="currentColor" stroke-opacity="0.2"/>`);
  }
  // KV groups (GQA): a faint line between groups of heads that share keys and values
  if (which === 'heads' && o.nKvHeads < o.nHeads && o.nKvHeads > 1) {
    const gs = o.nHeads / o.nKvHeads;
    for (let k = 1; k < o.nKvHeads; k++) {
      const x = LEFT + k * gs * cw;
      parts.push(`<line class="kv" x1="${x}" x2="${x}" y1="${top - 4}" y2="${top + rows * ch + 4}" stroke="currentColor" stroke-opacity="0.6" stroke-dasharray="2 2"/>`);
    }
  }
  // columns: token labels (clean → corrupted where they differ) or head numbers
  const yAxis = top + rows * ch + 4;
  let bottom: number;
  if (which === 'resid') {
    const labels: string[] = [];
    for (const p of thinned(cols)) {
      const a = o.labels[p] ?? '', b = o.corruptedLabels[p] ?? '';
      const text = a === b ? a : `${a}→${b}`;
      labels.push(`<text transform="translate(${r2(LEFT + (p + 0.5) * cw + 3)},${yAxis + 4}) rotate(-60)" text-anchor="end" data-t="${p}"${a === b ? '' : ' font-weight="700"'}>`
        + `<title>${esc(`position ${p}: clean ${q(a)}${a === b ? '' : `, corrupted ${q(b)}`}`)}</title>${esc(clip(text, 14))}</text>`);
    }
    parts.push(`<g class="x-labels" font-family="monospace" font-size="10">${labels.join('')}</g>`);
    bottom = yAxis + 80;
    parts.push(axisLabel(LEFT + (cols * cw) / 2, bottom - 4, 'position (token: clean→corrupted where they differ)'));
  } else {
    const labels: string[] = [];
    for (const h of thinned(cols, Math.max(4, Math.floor((cols * cw) / 18)))) {
      labels.push(`<text x="${r2(LEFT + (h + 0.5) * cw)}" y="${yAxis + 10}" text-anchor="middle" data-h="${h}">${h}</text>`);
    }
    parts.push(`<g class="x-labels">${labels.join('')}</g>`);
    bottom = yAxis + 30;
    parts.push(axisLabel(LEFT + (cols * cw) / 2, bottom - 4, `head${o.nKvHeads < o.nHeads ? ` (dashed lines: ${o.nKvHeads} KV groups)` : ''}`));
  }
  // the open cell, outlined
  const open = opts.open && opts.open.grid === which ? opts.open : null;
  if (open) {
    const x = LEFT + open.index * cw, y = top + open.layer * ch;
    parts.push(`<g class="open" data-open="${openKey(open)}" pointer-events="none"><rect x="${x}" y="${y}" width="${cw}" height="${ch}" fill="none" stroke="#000" stroke-width="2.5"/>`
      + `<rect x="${x}" y="${y}" width="${cw}" height="${ch}" fill="none" stroke="#fff" stroke-width="1"/></g>`);
  }
  const height = bottom + 6;
  const best = bestCell(o, which);
  const aria = `${which === 'resid' ? 'Residual stream' : 'Attention head'} patching grid, ${rows} layers by ${cols} ${which === 'resid' ? 'positions' : 'heads'}: restored fraction of ${metricName(o)}`
    + (best ? `; the largest, ${fmt.num(best.value)}, at ${cellName(o, best.cell)}` : '');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${esc(aria)}" ${FONT} fill="currentColor">${parts.join('')}</svg>`;
  return {
    width, height, svg, grid,
    canvas: mode === 'canvas' ? { ...grid, pixels: heatmapPixels(g.fraction, rows, cols, color) } : null,
  };
}

/** The cell with the largest fraction of a grid. */
export function bestCell(o: PatchOutput, which: PatchGridName): { cell: OpenCell; value: number } | null {
  const g = o[which];
  if (!g) return null;
  let bi = -1;
  for (let i = 0; i < g.fraction.length; i++) if (bi < 0 || g.fraction[i]! > g.fraction[bi]!) bi = i;
  return bi < 0 ? null : { cell: { grid: which, layer: Math.floor(bi / g.cols), index: bi % g.cols }, value: g.fraction[bi]! };
}

/** A grid's cell under a point of its figure (canvas hover and clicks). */
export function cellAtPoint(f: HeatmapFigure, which: PatchGridName, x: number, y: number): OpenCell | null {
  const g = f.grid;
  const i = Math.floor((x - g.left) / g.cw), l = Math.floor((y - g.top) / g.ch);
  return i >= 0 && i < g.cols && l >= 0 && l < g.rows ? { grid: which, layer: l, index: i } : null;
}

// ---------------------------------------------------------------------------------------------
// The open cell's detail: three runs' top tokens side by side

export interface DetailRun { run: 'clean' | 'corrupted' | 'patched'; label: string; diff: number; ids: number[]; probs: number[] }

export function detailRuns(o: PatchOutput, c: OpenCell): DetailRun[] {
  const g = o[c.grid]!, i = c.layer * g.cols + c.index, k = o.top;
  return [
    { run: 'clean', label: 'clean run', diff: o.clean.diff, ids: [...o.clean.ids], probs: [...o.clean.probs] },
    { run: 'corrupted', label: 'corrupted run', diff: o.corrupted.diff, ids: [...o.corrupted.ids], probs: [...o.corrupted.probs] },
    { run: 'patched', label: `patched: ${c.grid === 'resid' ? `resid ${c.layer} @ ${c.index}` : `head ${c.layer}.${c.index}`}`, diff: g.diff[i]!,
      ids: [...g.topIds.subarray(i * k, (i + 1) * k)], probs: [...g.topProbs.subarray(i * k, (i + 1) * k)] },
  ];
}

export function patchDetailSvg(o: PatchOutput, c: OpenCell, opts: { width?: number } = {}): string {
  const W = Math.max(420, opts.width ?? 720);
  const g = o[c.grid]!, i = c.layer * g.cols + c.index, frac = g.fraction[i]!;
  const runs = detailRuns(o, c);
  const colW = Math.floor((W - 8) / 3), ROW = 18, barW = colW - 118;
  const parts: string[] = [];
  parts.push(`<text x="0" y="14" font-size="13" font-weight="600">${esc(`Open: ${cellName(o, c)}`)}</text>`);
  parts.push(`<text x="0" y="32" class="metric" data-v="${sig4(frac)}" data-diff="${sig4(g.diff[i]!)}">${esc(
    `${metricName(o)}: patched ${signed(g.diff[i]!)} (clean ${signed(o.clean.diff)}, corrupted ${signed(o.corrupted.diff)}) → restored fraction ${fmt.num(frac)}`)}</text>`);
  const t0 = 46;
  runs.forEach((r, k) => {
    const x0 = k * (colW + 4);
    const fill = k === 0 ? schemes.sequential(0.3) : k === 1 ? schemes.sequential(0.55) : schemes.sequential(0.8);
    const rowsSvg = r.ids.map((id, j) => {
      const y = t0 + 22 + j * ROW, p = r.probs[j]!;
      const mark = id === o.target.id ? ' font-weight="700"' : id === o.foil.id ? ' font-style="italic"' : '';
      return `<g class="tok" data-run="${r.run}" data-id="${id}" data-v="${sig4(p)}"><title>${esc(`${r.label}: ${q(piece(o, id))} (id ${id}) p ${p}`)}</title>`
        + `<text x="${x0 + 66}" y="${y + 12}" text-anchor="end" font-family="monospace"${mark}>${esc(clip(piece(o, id), 10))}</text>`
        + `<rect x="${x0 + 70}" y="${y + 3}" width="${r2(Math.max(0, p) * barW)}" height="${ROW - 6}" fill="${fill}"/>`
        + `<text x="${x0 + 74 + barW}" y="${y + 12}" font-variant-numeric="tabular-nums">${esc(fmt.prob(p))}</text></g>`;
    }).join('');
    parts.push(`<g class="run" data-run="${r.run}" data-diff="${sig4(r.diff)}"><text x="${x0}" y="${t0 + 12}" font-weight="600">${esc(r.label)}</text>`
      + `${rowsSvg}</g>`);
  });
  const H = t0 + 22 + o.top * ROW + 22;
  parts.push(`<text x="0" y="${H - 6}" fill-opacity="0.7">${esc(`probability of the next token (top ${o.top} of each run; bold: target ${q(o.target.piece)}, italic: foil ${q(o.foil.piece)})`)}</text>`);
  const aria = `Top next tokens of the clean, corrupted and patched runs for ${cellName(o, c)}; restored fraction ${fmt.num(frac)}`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(aria)}" ${FONT} fill="currentColor" class="detail" data-grid="${c.grid}" data-l="${c.layer}" ${c.grid === 'resid' ? 'data-t' : 'data-h'}="${c.index}">${parts.join('')}</svg>`;
}

// ---------------------------------------------------------------------------------------------
// The whole figure and its export

/** The heading: what is compared. */
export function patchHeading(o: PatchOutput): string {
  return `${metricName(o)} at the last position: clean ${signed(o.clean.diff)}, corrupted ${signed(o.corrupted.diff)} · ${o.runs} patched runs`;
}

/** Every part stacked in one SVG (export; the element draws the parts separately). Canvas grids
 *  are embedded as a PNG image. */
export function patchSvg(o: PatchOutput, opts: PatchSvgOptions = {}): string {
  const W = Math.max(420, opts.width ?? 720);
  const parts: { svg: string; width: number; height: number }[] = [];
  parts.push({ svg: `<svg width="${W}" height="30" ${FONT} fill="currentColor"><text x="0" y="15" font-size="13" font-weight="600">${esc(patchHeading(o))}</text></svg>`, width: W, height: 30 });
  for (const which of ['resid', 'heads'] as const) {
    if (!o[which]) continue;
    const f = patchHeatmap(o, which, opts);
    let svg = f.svg;
    if (f.canvas) {
      const c = f.canvas;
      svg = svg.replace('<rect class="canvas-slot"', `<image x="${c.left}" y="${c.top}" width="${c.cols * c.cw}" height="${c.rows * c.ch}" preserveAspectRatio="none" style="image-rendering:pixelated" href="${pngDataUrl(c.pixels, c.cols, c.rows)}"/><rect class="canvas-slot"`);
    }
    parts.push({ svg, width: f.width, height: f.height + 8 });
  }
  if (opts.open && o[opts.open.grid]) parts.push({ svg: patchDetailSvg(o, opts.open, { width: W }), width: W, height: 0 });
  // heights: re-read from each part's own svg
  let y = 0, width = 0;
  const body = parts.map((p) => {
    const h = p.height || Number(/height="([\d.]+)"/.exec(p.svg)?.[1] ?? 0);
    const s = `<g transform="translate(0,${y})">${p.svg.replace(/^<svg[^>]*>/, '').replace(/<\/svg>$/, '')}</g>`;
    y += h; width = Math.max(width, p.width);
    return s;
  }).join('');
  const aria = `Activation patching: ${patchHeading(o)}`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" role="img" aria-label="${esc(aria)}" ${FONT} fill="currentColor">${body}</svg>`;
}

/** One row per grid cell (both grids), with the patched run's most likely next token. */
export function patchRows(o: PatchOutput): FigureExport['rows'] {
  const rows: Record<string, string | number | boolean | null>[] = [];
  for (const which of ['resid', 'heads'] as const) {
    const g = o[which];
    if (!g) continue;
    for (let l = 0; l < g.rows; l++) {
      for (let i = 0; i < g.cols; i++) {
        const k = l * g.cols + i, id = g.topIds[k * o.top]!;
        const at = {
          grid: which, layer: l, position: which === 'resid' ? i : null, head: which === 'heads' ? i : null,
          token_clean: which === 'resid' ? o.labels[i] ?? null : null, token_corrupted: which === 'resid' ? o.corruptedLabels[i] ?? null : null,
        };
        // a grid still filling in (exported before its runs were all back): its pending cells have no numbers yet
        rows.push(g.pending?.[k]
          ? { ...at, fraction: null, logit_diff: null, top_id: null, top_piece: null, top_p: null, same_as_corrupted: false, not_run_yet: true }
          : {
            ...at, fraction: g.fraction[k]!, logit_diff: g.diff[k]!, top_id: id, top_piece: piece(o, id), top_p: g.topProbs[k * o.top]!, same_as_corrupted: g.skipped[k] === 1,
            ...(g.pending ? { not_run_yet: false } : {}),
          });
      }
    }
  }
  return rows;
}

export function patchExport(o: PatchOutput, opts: PatchSvgOptions = {}): FigureExport {
  return {
    svg: patchSvg(o, opts),
    rows: patchRows(o),
    meta: {
      metric: metricName(o), target: o.target, foil: o.foil,
      clean_diff: o.clean.diff, corrupted_diff: o.corrupted.diff, n_layers: o.nLayers, n_heads: o.nHeads, n_pos: o.nPos,
      patched_runs: o.runs, open: opts.open ? openKey(opts.open) : null,
      ...(o.resid?.pending || o.heads?.pending ? { partial: 'exported while the grid was filling in: the rows with not_run_yet have no numbers yet' } : {}),
      semantics: 'denoising: the corrupted prompt runs with one clean activation patched in; fraction = (patched − corrupted) / (clean − corrupted)',
    },
  };
}
