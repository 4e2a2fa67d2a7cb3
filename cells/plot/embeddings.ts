// Embeddings: the prompt's tokens in the plane of the first two principal components of the
// residual stream (one PCA, fitted in the worker on the rows of every layer asked for). One
// layer: a labelled scatter. Several: each token's trajectory from the first layer to the last.
// Both axes share one scale, so distances in the picture are distances in the PCA plane.

import { scaleLinear } from 'd3';
import { esc, fmt, LEGEND_H, legendSvg, r2, schemes } from './kit.ts';
import type { FigureExport } from './figure.ts';
import { layerName, MAX_LABELS, NO_SEL, sig4, svgOpen, thinned, withOverlay, type DrawMode, type Figure, type Sel, type VectorLayer } from './logit-lens.ts';

export interface EmbeddingsOutput {
  prompt: string; labels: string[];
  layers: number[];             // the layers projected (one: a scatter; several: trajectories)
  points: Float32Array;         // [layers, nPos, 2] PCA projection (one PCA fitted on all rows)
  explained: [number, number];  // fraction of variance of PC1, PC2
}

const quote = (s: string) => JSON.stringify(s);

/** Past this many points only the last layer's are drawn as dots (the paths stay whole), and the
 *  page draws the paths, dots and labels on a canvas (SVG marks stay for hover and export). */
export const POINT_LIMIT = 4000;

/** 'canvas' past POINT_LIMIT points with several layers (the page); export always draws SVG. */
export function embeddingsMode(out: EmbeddingsOutput): DrawMode {
  return out.layers.length > 1 && out.points.length / 2 > POINT_LIMIT ? 'canvas' : 'svg';
}

export interface TrajectoryPoint { layer: number; x: number; y: number }
export interface Trajectory { position: number; token: string; points: TrajectoryPoint[] }

/** Each position's path: its points ordered by layer (whatever order `layers` lists them in). */
export function trajectories(out: EmbeddingsOutput): Trajectory[] {
  const L = out.layers.length, P = L ? out.points.length / (2 * L) : 0;
  const order = out.layers.map((l, i) => [l, i] as const).sort((a, b) => a[0] - b[0]);
  return Array.from({ length: P }, (_, p) => ({
    position: p,
    token: out.labels[p] ?? '',
    points: order.map(([layer, i]) => ({ layer, x: out.points[(i * P + p) * 2]!, y: out.points[(i * P + p) * 2 + 1]! })),
  }));
}

/** "PC1 (43.1% of variance)" */
export const axisTitle = (pc: 1 | 2, frac: number) => `PC${pc} (${fmt.pct(frac)} of variance)`;

/** One scale for both axes: the points' extent, padded, fitted into w × h and centred. */
export function equalScales(xs: number[], ys: number[], w: number, h: number): { x: (v: number) => number; y: (v: number) => number; k: number; x0: number; x1: number; y0: number; y1: number } {
  let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (!(x1 > x0)) { x0 -= 1; x1 += 1; }
  if (!(y1 > y0)) { y0 -= 1; y1 += 1; }
  const pad = 0.06 * Math.max(x1 - x0, y1 - y0);
  x0 -= pad; x1 += pad; y0 -= pad; y1 += pad;
  const k = Math.min(w / (x1 - x0), h / (y1 - y0));
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  // the data range the plot area shows along each axis, once the shared scale is fixed
  x0 = cx - w / (2 * k); x1 = cx + w / (2 * k); y0 = cy - h / (2 * k); y1 = cy + h / (2 * k);
  return { x: (v) => (v - x0) * k, y: (v) => h - (v - y0) * k, k, x0, x1, y0, y1 };
}

export function embeddingsFigure(out: EmbeddingsOutput, o: { labels?: boolean; width?: number; height?: number; mode?: DrawMode } = {}): Figure {
  const tr = trajectories(out);
  const P = tr.length, L = out.layers.length, multi = L > 1;
  const showLabels = o.labels ?? true;
  const vec = (o.mode ?? embeddingsMode(out)) === 'canvas' && multi;
  const left = 56, top = LEGEND_H + 26, pw = Math.max(240, (o.width ?? 720) - left - 24), ph = o.height ?? 420;
  const xs: number[] = [], ys: number[] = [];
  for (const t of tr) for (const q of t.points) { xs.push(q.x); ys.push(q.y); }
  const s = equalScales(xs.length ? xs : [0], ys.length ? ys : [0], pw, ph);
  const colorOf = (p: number) => schemes.sequential(P > 1 ? p / (P - 1) : 0.5);
  const X = (v: number) => r2(left + s.x(v)), Y = (v: number) => r2(top + s.y(v));
  const parts: string[] = [];
  if (P > 1) parts.push(legendSvg({ label: 'token position', lo: 0, hi: P - 1, scheme: 'sequential', x: left, y: 0, width: 200 }));
  const allDots = P * L <= POINT_LIMIT;
  const sorted = [...out.layers].sort((a, b) => a - b);
  const contiguous = sorted.every((l, i) => i === 0 || l === sorted[i - 1]! + 1);
  const list = contiguous && L > 3 ? `${sorted[0]}–${sorted[L - 1]}` : sorted.length > 8 ? `${sorted.slice(0, 4).join(', ')}, …, ${sorted[L - 1]}` : sorted.join(', ');
  const what = multi ? `trajectories across layers ${list} (${allDots ? 'a ring marks the first layer, ' : ''}a large dot the last)` : `${layerName(out.layers[0] ?? 0)}`;
  parts.push(`<text x="${left}" y="${top - 10}" font-weight="600">${esc(`residual stream, ${what}`)}</text>`);
  // axes: ticks in data units on both (one scale), a frame around the plot area
  const xt = scaleLinear().domain([s.x0, s.x1]).ticks(6), yt = scaleLinear().domain([s.y0, s.y1]).ticks(6);
  for (const t of xt) parts.push(`<line x1="${X(t)}" x2="${X(t)}" y1="${top}" y2="${top + ph}" stroke="currentColor" stroke-opacity="0.08"/><text x="${X(t)}" y="${top + ph + 14}" text-anchor="middle">${fmt.num(t)}</text>`);
  for (const t of yt) parts.push(`<line x1="${left}" x2="${left + pw}" y1="${Y(t)}" y2="${Y(t)}" stroke="currentColor" stroke-opacity="0.08"/><text x="${left - 5}" y="${r2(Y(t) + 3.5)}" text-anchor="end">${fmt.num(t)}</text>`);
  parts.push(`<rect x="${left}" y="${top}" width="${pw}" height="${ph}" fill="none" stroke="currentColor" stroke-opacity="0.4"/>`);
  parts.push(`<text x="${left + pw / 2}" y="${top + ph + 32}" text-anchor="middle">${esc(axisTitle(1, out.explained[0]))}</text>`);
  parts.push(`<text transform="translate(14,${top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(axisTitle(2, out.explained[1]))}</text>`);

  const pointTitle = (t: Trajectory, q: TrajectoryPoint) => `${quote(t.token)} · position ${t.position} · ${layerName(q.layer)} · PC1 ${fmt.num(q.x)}, PC2 ${fmt.num(q.y)}`;
  const dot = (t: Trajectory, q: TrajectoryPoint, r: number, extra = '') =>
    `<circle cx="${X(q.x)}" cy="${Y(q.y)}" r="${r}" fill="${colorOf(t.position)}" ${extra} data-t="${t.position}" data-l="${q.layer}" data-pc1="${sig4(q.x)}" data-pc2="${sig4(q.y)}"><title>${esc(pointTitle(t, q))}</title></circle>`;
  let vector: VectorLayer | undefined;
  if (vec) {
    // the canvas draws; the SVG keeps a transparent hit dot with its title at each last point
    vector = { paths: [], dots: [], labels: [] };
    const hits: string[] = [];
    for (const t of tr) {
      const xy = new Float32Array(t.points.length * 2);
      t.points.forEach((q, i) => { xy[2 * i] = left + s.x(q.x); xy[2 * i + 1] = top + s.y(q.y); });
      vector.paths.push({ xy, color: colorOf(t.position), width: 1.3, opacity: 0.75 });
      const q = t.points[t.points.length - 1]!;
      vector.dots.push({ x: left + s.x(q.x), y: top + s.y(q.y), r: 4.5, color: colorOf(t.position) });
      hits.push(dot(t, q, 5, 'fill-opacity="0"').replace(/fill="[^"]*"/, 'fill="#000"'));
    }
    if (showLabels) {
      for (const p of thinned(P, MAX_LABELS)) {
        const q = tr[p]!.points[tr[p]!.points.length - 1]!;
        vector.labels.push({ x: left + s.x(q.x) + 6, y: top + s.y(q.y) - 4, text: tr[p]!.token });
      }
    }
    parts.push(`<g class="hits">${hits.join('')}</g>`);
  } else if (multi) {
    const paths: string[] = [], dots: string[] = [];
    // past POINT_LIMIT: paths at 0.1 px, no first-layer rings, dots only at the last layer
    const c1 = (v: number) => Math.round(v * 10) / 10;
    const px = allDots ? X : (v: number) => c1(left + s.x(v)), py = allDots ? Y : (v: number) => c1(top + s.y(v));
    for (const t of tr) {
      paths.push(`<path d="${t.points.map((q, i) => `${i ? 'L' : 'M'}${px(q.x)},${py(q.y)}`).join('')}" fill="none" stroke="${colorOf(t.position)}" stroke-width="1.3" stroke-opacity="0.75" data-t="${t.position}"><title>${esc(`${quote(t.token)} · position ${t.position}: ${L} layers`)}</title></path>`);
      if (allDots) {
        const first = t.points[0]!;
        dots.push(`<circle cx="${X(first.x)}" cy="${Y(first.y)}" r="2.5" fill="none" stroke="${colorOf(t.position)}" pointer-events="none"/>`);
        for (const q of t.points.slice(0, -1)) dots.push(dot(t, q, 2));
      }
      dots.push(dot(t, t.points[t.points.length - 1]!, 4.5, 'stroke="#fff" stroke-width="0.8"'));
    }
    parts.push(`<g class="paths">${paths.join('')}</g><g class="dots">${dots.join('')}</g>`);
  } else {
    parts.push(`<g class="dots">${tr.map((t) => dot(t, t.points[0]!, 4, 'stroke="#fff" stroke-width="0.8"')).join('')}</g>`);
  }
  if (showLabels && !vec) {
    const lab = thinned(P, MAX_LABELS).map((p) => {
      const t = tr[p]!, q = t.points[t.points.length - 1]!;
      return `<text x="${r2(X(q.x) + 6)}" y="${r2(Y(q.y) - 4)}" data-t="${p}">${esc(t.token)}</text>`;
    });
    parts.push(`<g class="labels" font-family="monospace" font-size="10" pointer-events="none">${lab.join('')}</g>`);
  }
  const w = left + pw + 24, h = top + ph + 42;
  const svg = svgOpen(w, h, `PCA of the residual stream of ${P} tokens at ${multi ? `${L} layers (trajectories)` : layerName(out.layers[0] ?? 0)}`) + parts.join('') + '</svg>';
  return {
    width: w, height: h, svg, canvases: [], vector,
    overlay: (sel) => {
      const marks: string[] = [];
      if (sel.layer !== null && multi) {
        for (const t of tr) {
          const q = t.points.find((p) => p.layer === sel.layer);
          if (q) marks.push(`<circle cx="${X(q.x)}" cy="${Y(q.y)}" r="4" fill="none" stroke="currentColor" stroke-opacity="0.6"/>`);
        }
      }
      const t = sel.token !== null ? tr[sel.token] : undefined;
      if (t) {
        if (multi) marks.push(`<path d="${t.points.map((q, i) => `${i ? 'L' : 'M'}${X(q.x)},${Y(q.y)}`).join('')}" fill="none" stroke="#000" stroke-width="3.5"/><path d="${t.points.map((q, i) => `${i ? 'L' : 'M'}${X(q.x)},${Y(q.y)}`).join('')}" fill="none" stroke="${colorOf(t.position)}" stroke-width="2"/>`);
        for (const q of t.points) marks.push(`<circle cx="${X(q.x)}" cy="${Y(q.y)}" r="6" fill="none" stroke="#000" stroke-width="2"/>`);
        const q = t.points[t.points.length - 1]!;
        marks.push(`<text x="${r2(X(q.x) + 6)}" y="${r2(Y(q.y) - 4)}" font-size="10" font-family="monospace" font-weight="700" paint-order="stroke" stroke="#fff" stroke-width="3">${esc(t.token)}</text>`);
      }
      return marks.join('');
    },
  };
}

/** Export: the figure as drawn and one row per (layer, position). */
export function embeddingsExport(out: EmbeddingsOutput, o: { labels?: boolean; selection?: Sel; width?: number } = {}): FigureExport {
  const f = embeddingsFigure(out, { ...o, mode: 'svg' });
  const rows = trajectories(out).flatMap((t) => t.points.map((q) => ({ layer: q.layer, position: t.position, token: t.token, pc1: q.x, pc2: q.y })));
  rows.sort((a, b) => a.layer - b.layer || a.position - b.position);
  return {
    svg: withOverlay(f, o.selection ?? NO_SEL),
    rows,
    meta: { kind: 'embeddings', prompt: out.prompt, layers: out.layers, explained: out.explained, note: 'one PCA fitted on the residual rows of every layer listed' },
  };
}
