// What every plot function shares: colour scales (perceptually uniform and colour-blind safe),
// number formats, an SVG legend, a heatmap drawn as SVG (small) or as pixels for a canvas
// (large), and the document plot functions create elements in (the page's, or a test's DOM).
//
// Plot functions are pure: data and options in, an SVG element (or string) out. They never
// reach the worker, the notebook or global state, so each can be snapshot-tested alone.

import { format, interpolateCividis, interpolatePuOr, interpolateViridis, scaleDiverging, scaleLinear, scaleSequential } from 'd3';

/** Where to create elements: the page's document in the browser; a test passes linkedom's. */
export interface PlotEnv {
  document: Document;
}

export function env(document: Document = globalThis.document): PlotEnv {
  return { document };
}

// ---------------------------------------------------------------------------------------------
// Colour

/**
 * Sequential (probability, attention weight): viridis, perceptually uniform and readable with
 * every common colour-vision deficiency. Diverging (signed values such as activations): PuOr,
 * one of ColorBrewer's colour-blind-safe diverging schemes. Cividis for a second sequential
 * quantity beside the first (norms).
 */
export const schemes = {
  sequential: interpolateViridis,
  secondary: interpolateCividis,
  diverging: interpolatePuOr,
} as const;
export type SchemeName = keyof typeof schemes;

/** A colour function for values in [lo, hi] (diverging: centred on 0, symmetric). */
export function colorScale(scheme: SchemeName, lo: number, hi: number): (v: number) => string {
  if (scheme === 'diverging') {
    const m = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
    // PuOr runs orange (low) → purple (high); flip so that positive is orange-red-ish warm.
    const s = scaleDiverging((t: number) => schemes.diverging(1 - t)).domain([-m, 0, m]).clamp(true);
    return (v) => s(v);
  }
  const s = scaleSequential(schemes[scheme]).domain([lo, hi === lo ? lo + 1 : hi]).clamp(true);
  return (v) => s(v);
}

/** A colour as [r, g, b] bytes (for canvas pixels). */
export function rgbBytes(css: string): [number, number, number] {
  const m = /^rgb\((\d+),\s*(\d+),\s*(\d+)\)$/.exec(css) ?? /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(css);
  if (!m) return [0, 0, 0];
  return css.startsWith('#') ? [parseInt(m[1]!, 16), parseInt(m[2]!, 16), parseInt(m[3]!, 16)] : [+m[1]!, +m[2]!, +m[3]!];
}

// ---------------------------------------------------------------------------------------------
// Numbers

// d3's format() parses its specifier on every call: made once here (the figures format thousands
// of numbers per redraw)
const EXP2 = format('.2e'), FIX3 = format('.3f'), SIG3 = format('.3~g');

export const fmt = {
  /** Probabilities and weights: 0.1234 → "0.123", tiny values in exponent form. */
  prob: (v: number) => (v !== 0 && Math.abs(v) < 1e-3 ? EXP2(v) : FIX3(v)),
  pct: format('.1%'),
  /** Logits, norms: three significant digits. */
  num: (v: number) => (Number.isFinite(v) ? SIG3(v) : String(v)),
  int: format(','),
};

// ---------------------------------------------------------------------------------------------
// SVG helpers (strings: the fastest way to build thousands of rects, and what export inlines)

const ENTITY: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const SPECIAL = /[&<>"']/, SPECIALS = /[&<>"']/g;

/** Escapes text for SVG/HTML text and attribute values. */
export function esc(s: string): string {
  return SPECIAL.test(s) ? s.replace(SPECIALS, (c) => ENTITY[c]!) : s;   // most labels have none
}

/** Rounds to 2 decimals for coordinates in SVG text (smaller output, stable snapshots). */
export const r2 = (v: number) => Math.round(v * 100) / 100;

export const FONT = 'font-family="system-ui, sans-serif" font-size="11"';

/** An SVG string → an element of `env.document` (what cells append). */
export function svgElement(svg: string, e: PlotEnv = env()): SVGSVGElement {
  const holder = e.document.createElement('div');
  holder.innerHTML = svg;
  return holder.firstElementChild as unknown as SVGSVGElement;
}

/** A colour legend: a ramp of `steps` rects from lo to hi with ticks and a label naming the unit. */
export function legendSvg(o: { label: string; lo: number; hi: number; scheme: SchemeName; width?: number; ticks?: number; x?: number; y?: number }): string {
  const width = o.width ?? 240, steps = 64, h = 10, x0 = o.x ?? 0, y0 = o.y ?? 0;
  const color = colorScale(o.scheme, o.lo, o.hi);
  const lo = o.scheme === 'diverging' ? -Math.max(Math.abs(o.lo), Math.abs(o.hi)) : o.lo;
  const hi = o.scheme === 'diverging' ? -lo : o.hi;
  const x = scaleLinear().domain([lo, hi === lo ? lo + 1 : hi]).range([0, width]);
  const parts: string[] = [];
  for (let i = 0; i < steps; i++) {
    const v = lo + ((hi - lo) * (i + 0.5)) / steps;
    parts.push(`<rect x="${r2((i * width) / steps)}" y="14" width="${r2(width / steps + 0.5)}" height="${h}" fill="${color(v)}"/>`);
  }
  for (const t of x.ticks(o.ticks ?? 5)) {
    parts.push(`<line x1="${r2(x(t))}" x2="${r2(x(t))}" y1="${14 + h}" y2="${18 + h}" stroke="currentColor"/>`
      + `<text x="${r2(x(t))}" y="${30 + h}" text-anchor="middle">${esc(fmt.num(t))}</text>`);
  }
  return `<g class="legend" transform="translate(${x0},${y0})" ${FONT} fill="currentColor"><text x="0" y="10" font-weight="600">${esc(o.label)}</text>${parts.join('')}</g>`;
}

/** Height a legend takes (for layout). */
export const LEGEND_H = 44;

// ---------------------------------------------------------------------------------------------
// Heatmaps: SVG rects up to a size, pixels for a canvas past it

/** Past this many cells a heatmap is drawn on a canvas (SVG with 100k rects freezes the page). */
export const SVG_CELL_LIMIT = 20_000;

/**
 * The pixels of a [rows, cols] matrix (row-major) at one pixel per cell, for putImageData
 * (scaled up by CSS with image-rendering: pixelated). NaN and −∞ (masked) are transparent.
 */
export function heatmapPixels(data: ArrayLike<number>, rows: number, cols: number, color: (v: number) => string): Uint8ClampedArray {
  const px = new Uint8ClampedArray(rows * cols * 4);
  // Colours are quantized to 256 levels of the scale's domain by caching the last lookups.
  const cache = new Map<number, [number, number, number]>();
  for (let i = 0; i < rows * cols; i++) {
    const v = data[i]!;
    if (!Number.isFinite(v)) continue;
    const key = Math.round(v * 4096);
    let c = cache.get(key);
    if (!c) { c = rgbBytes(color(v)); if (cache.size < 65536) cache.set(key, c); }
    px[i * 4] = c[0]; px[i * 4 + 1] = c[1]; px[i * 4 + 2] = c[2]; px[i * 4 + 3] = 255;
  }
  return px;
}

/** Min and max of the finite values. */
export function extent(data: ArrayLike<number>): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : [0, 1];
}
