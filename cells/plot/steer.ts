// The steer cell's pure side: the layer setting ("2-4", "1, 3", a list), the comparison of two
// generations from the same prompt — without the steering vector and with it, same sampler and
// seed — and the figure: the two texts side by side as token chips (every token from the first
// step where they differ highlighted), the vector's norm per layer (the layers it is applied to
// filled), the log-probability of each chosen token step by step, and KL(plain ‖ steered) of the
// next-token distributions at the plain run's prefixes. Data + options in, SVG string out.

import { UsageError } from '../../src/engine/errors.ts';
import { visible } from '../prompt.ts';
import { esc, fmt, FONT, r2, schemes } from './kit.ts';
import type { FigureExport } from './figure.ts';

/** One generation: the chosen tokens and, per step, what its own run gave them. */
export interface SteerRun {
  ids: number[];
  /** The text each token adds (byte tokens of one character: the text on the last of them). */
  texts: string[];
  /** log p (nats, softmax at T = 1) of each chosen token under the run that chose it. */
  logp: number[];
  /** The largest next-token probability (T = 1) at each step. */
  top: number[];
  /** Why it ended: an end token was drawn, N tokens, or the context is full. */
  stopped: 'eos' | 'length' | 'context';
}

/** What the page computes for a steer cell. */
export interface SteerOutput {
  prompt: string;                 // the prompt cell's id
  promptText: string;
  promptLength: number;           // tokens
  nLayers: number;
  dModel: number;
  /** Every direction the vector has (layer → [d_model]); `layers` of them are applied. */
  directions: Map<number, Float32Array>;
  layers: number[];
  strength: number;
  source: { kind: 'computed'; positive: string[]; negative: string[]; reduce: 'mean' | 'last' } | { kind: 'file'; name: string };
  sampler: { temperature: number; seed: number; tokens: number };
  plain: SteerRun;
  steered: SteerRun;
  /** Per step of the plain run: KL(plain ‖ steered) of the next-token distributions at the plain
   *  prefix (nats), and log p of the plain run's token under the steered model. */
  cross: { kl: number[]; logp: number[] };
}

// ---------------------------------------------------------------------------------------------
// Settings

/** Tokens generated per run: default and most. */
export const DEFAULT_STEER_TOKENS = 24;
export const MAX_STEER_TOKENS = 256;
export const STRENGTH_RANGE = { min: -10, max: 10, step: 0.1 } as const;

/** The layers every vector gets by default: 1 .. nLayers − 1 (llama.cpp's control vectors have no layer 0). */
export function defaultLayers(nLayers: number): number[] {
  return nLayers <= 1 ? [0] : Array.from({ length: nLayers - 1 }, (_, i) => i + 1);
}

/**
 * The `layers` setting: "2-4", "1, 3", "1 3-4", a number, a list of numbers or such strings, or
 * "all" / nothing (defaultLayers). Sorted and deduplicated; UsageError naming the item otherwise.
 */
export function parseLayerSpec(v: unknown, nLayers: number, field = 'steer: layers'): number[] {
  if (v === undefined || v === null || v === '' || v === 'all') return defaultLayers(nLayers);
  const items = Array.isArray(v) ? v : [v];
  const out = new Set<number>();
  const check = (l: number, s: string) => {
    if (l >= nLayers) throw new UsageError(field, `"${s}": layer ${l} is past the model's ${nLayers} layers (0 to ${nLayers - 1})`);
    out.add(l);
  };
  for (const x of items) {
    if (typeof x === 'number') {
      if (!Number.isInteger(x) || x < 0) throw new UsageError(field, `${x} is not a layer index`, 'Write layers like 2-4 or 1, 3');
      check(x, String(x));
      continue;
    }
    if (typeof x !== 'string') throw new UsageError(field, `${JSON.stringify(x)} is not a layer`, 'Write layers like 2-4 or 1, 3');
    for (const part of x.split(/[\s,;]+/).filter((s) => s !== '')) {
      const m = /^(\d+)(?:-(\d+))?$/.exec(part);
      if (!m) throw new UsageError(field, `"${part}" is not a layer or a range`, 'Write layers like 2-4 or 1, 3');
      const a = Number(m[1]), b = m[2] === undefined ? a : Number(m[2]);
      if (b < a) throw new UsageError(field, `"${part}" runs backwards`, `Write ${b}-${a}`);
      for (let l = a; l <= b; l++) check(l, part);
    }
  }
  if (out.size === 0) throw new UsageError(field, 'names no layer', 'Write layers like 2-4 or 1, 3');
  return [...out].sort((a, b) => a - b);
}

/** A sorted layer list as short text: [1, 2, 3, 5] → "1–3, 5". */
export function layerText(layers: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < layers.length;) {
    let j = i;
    while (j + 1 < layers.length && layers[j + 1] === layers[j]! + 1) j++;
    parts.push(j > i ? `${layers[i]}–${layers[j]}` : String(layers[i]));
    i = j + 1;
  }
  return parts.join(', ');
}

// ---------------------------------------------------------------------------------------------
// Numbers

/** The first step where two generations differ (a token, or one ending first); −1 when equal. */
export function firstDivergence(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/** The L2 norm of each direction, by layer (ascending). */
export function vectorNorms(directions: ReadonlyMap<number, Float32Array>): { layer: number; norm: number }[] {
  return [...directions].sort((x, y) => x[0] - y[0]).map(([layer, v]) => {
    let s = 0;
    for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
    return { layer, norm: Math.sqrt(s) };
  });
}

export interface SteerModel {
  heading: string;
  /** First differing step (−1: the two generations are equal). */
  diverge: number;
  norms: { layer: number; norm: number; applied: boolean }[];
  /** Steps drawn on the log-prob chart (the longer run's length). */
  steps: number;
  source: string;
}

export function steerModel(o: SteerOutput): SteerModel {
  const applied = new Set(o.layers);
  const diverge = firstDivergence(o.plain.ids, o.steered.ids);
  const source = o.source.kind === 'file' ? `from file ${o.source.name}`
    : `mean difference (${o.source.reduce === 'last' ? 'last position' : 'mean over positions'}) of ${o.source.positive.length} positive and ${o.source.negative.length} negative prompt${o.source.negative.length === 1 ? '' : 's'}`;
  return {
    heading: `steering with strength ${fmt.num(o.strength)} on layer${o.layers.length === 1 ? '' : 's'} ${layerText(o.layers)}`,
    diverge,
    norms: vectorNorms(o.directions).map((n) => ({ ...n, applied: applied.has(n.layer) })),
    steps: Math.max(o.plain.ids.length, o.steered.ids.length),
    source,
  };
}

export const sig4 = (v: number) => (Number.isFinite(v) ? String(+v.toPrecision(4)) : String(v));

export function divergeText(m: SteerModel, o: SteerOutput): string {
  if (m.diverge < 0) return `the two generations are the same (${o.plain.ids.length} tokens)`;
  return `they differ from step ${m.diverge} on`;
}

/** Hover text of a generated token. */
export function tokenTitle(o: SteerOutput, run: 'plain' | 'steered', i: number): string {
  const r = o[run];
  const parts = [`${run === 'plain' ? 'without' : 'with'} the vector · step ${i} · id ${r.ids[i]} · text ${JSON.stringify(r.texts[i] ?? '')}`,
    `log p ${fmt.num(r.logp[i]!)} (p ${fmt.prob(Math.exp(r.logp[i]!))}) · top p ${fmt.prob(r.top[i]!)}`];
  if (run === 'plain' && i < o.cross.kl.length) parts.push(`under the steered model: log p ${fmt.num(o.cross.logp[i]!)} · KL(plain ‖ steered) ${fmt.num(o.cross.kl[i]!)} nats`);
  return parts.join(' · ');
}

// ---------------------------------------------------------------------------------------------
// Layout

const CH = 7, PAD = 3, LINE = 20, CHIP_H = 17;

export interface PlacedChip { i: number; x: number; y: number; w: number; label: string }

/** Token chips wrapped at `width`: one per text (whitespace made visible), a newline starts a row. */
export function layoutChips(texts: readonly string[], width: number): { chips: PlacedChip[]; height: number } {
  const chips: PlacedChip[] = [];
  let x = 0, y = 0;
  texts.forEach((t, i) => {
    const label = visible(t);
    const w = Math.max(1, [...label].length) * CH + 2 * PAD;
    if (x > 0 && x + w > width) { x = 0; y += LINE; }
    chips.push({ i, x, y, w, label });
    x += w + 2;
    if (t.includes('\n')) { x = 0; y += LINE; }
  });
  return { chips, height: chips.length ? y + LINE : 0 };
}

// ---------------------------------------------------------------------------------------------
// The figure

const PLAIN = schemes.sequential(0.3);           // viridis blue
const STEERED = schemes.sequential(0.7);         // viridis green
const CROSS = schemes.secondary(0.85);           // cividis yellow: the plain token, steered model
const DIFF = schemes.diverging(0.72);            // PuOr light orange: tokens past the first difference
const SAME = '#e4e6eb';

export interface SteerSvgOptions { width?: number; heading?: boolean }

function textPanel(o: SteerOutput, m: SteerModel, run: 'plain' | 'steered', x0: number, y0: number, w: number): { svg: string; height: number } {
  const r = o[run];
  const { chips, height } = layoutChips(r.texts, w);
  const out: string[] = [];
  const title = run === 'plain' ? 'without the vector' : `with the vector (× ${fmt.num(o.strength)})`;
  out.push(`<rect x="${x0}" y="${y0 + 4}" width="10" height="10" fill="${run === 'plain' ? PLAIN : STEERED}"/><text x="${x0 + 14}" y="${y0 + 13}" font-weight="600">${esc(title)}</text>`);
  const top = y0 + 22;
  for (const c of chips) {
    const diff = m.diverge >= 0 && c.i >= m.diverge;
    out.push(`<g class="chip${diff ? ' diff' : ''}" data-run="${run}" data-t="${c.i}" data-id="${r.ids[c.i]}" data-v="${sig4(r.logp[c.i]!)}"><title>${esc(tokenTitle(o, run, c.i))}</title>`
      + `<rect x="${r2(x0 + c.x)}" y="${top + c.y}" width="${r2(c.w)}" height="${CHIP_H}" rx="3" fill="${diff ? DIFF : SAME}"/>`
      + `<text x="${r2(x0 + c.x + PAD)}" y="${top + c.y + 12}" font-family="monospace" xml:space="preserve" fill="#1d1d1f">${esc(c.label)}</text></g>`);
  }
  const stop = r.stopped === 'eos' ? 'stopped: an end token' : r.stopped === 'context' ? 'stopped: the context is full' : `${r.ids.length} tokens`;
  out.push(`<text x="${x0}" y="${top + height + 12}" fill-opacity="0.6">${esc(stop)}</text>`);
  return { svg: out.join(''), height: 22 + height + 16 };
}

function normsChart(m: SteerModel, x0: number, y0: number, w: number, h: number, nLayers: number): string {
  const out: string[] = [`<text x="${x0}" y="${y0 + 10}" font-weight="600">L2 norm of direction.L per layer</text>`];
  const top = y0 + 20, bottom = top + h;
  const hi = Math.max(1e-12, ...m.norms.map((n) => n.norm));
  const band = w / Math.max(1, nLayers);
  for (const n of m.norms) {
    const bh = (n.norm / hi) * h, x = x0 + n.layer * band + band * 0.15;
    out.push(`<rect class="norm${n.applied ? ' applied' : ''}" data-l="${n.layer}" data-v="${sig4(n.norm)}" x="${r2(x)}" y="${r2(bottom - bh)}" width="${r2(band * 0.7)}" height="${r2(bh)}"`
      + ` fill="${n.applied ? STEERED : 'none'}" stroke="${n.applied ? STEERED : 'currentColor'}" stroke-dasharray="${n.applied ? 'none' : '2 2'}">`
      + `<title>${esc(`layer ${n.layer} · ‖direction‖ ${fmt.num(n.norm)}${n.applied ? ' · applied' : ' · not applied'}`)}</title></rect>`);
  }
  out.push(`<line x1="${x0}" x2="${x0 + w}" y1="${bottom}" y2="${bottom}" stroke="currentColor"/>`);
  for (let l = 0; l < nLayers; l++) out.push(`<text x="${r2(x0 + (l + 0.5) * band)}" y="${bottom + 12}" text-anchor="middle">${l}</text>`);
  out.push(`<text x="${x0 - 4}" y="${top + 4}" text-anchor="end">${esc(fmt.num(hi))}</text><text x="${x0 - 4}" y="${bottom}" text-anchor="end">0</text>`);
  out.push(`<text x="${x0 + w / 2}" y="${bottom + 26}" text-anchor="middle">layer L (added to blocks.L.hook_resid_post)</text>`);
  out.push(`<g class="legend" transform="translate(${x0},${bottom + 34})"><rect width="12" height="10" fill="${STEERED}"/><text x="16" y="9">applied</text>`
    + `<rect x="70" width="12" height="10" fill="none" stroke="currentColor" stroke-dasharray="2 2"/><text x="86" y="9">in the vector, not applied</text></g>`);
  return out.join('');
}

/** Step i's x on the log-p chart and the KL strip (the same scale, so a bar sits under its points). */
function stepX(steps: number, x0: number, w: number): (i: number) => number {
  const pad = Math.min(12, w / (2 * Math.max(1, steps)));
  return (i) => x0 + pad + (steps <= 1 ? (w - 2 * pad) / 2 : (i / (steps - 1)) * (w - 2 * pad));
}

const SERIES = (o: SteerOutput) => [
  { key: 'plain', label: 'without the vector: its own token', color: PLAIN, values: o.plain.logp, dash: '' },
  { key: 'steered', label: 'with the vector: its own token', color: STEERED, values: o.steered.logp, dash: '' },
  { key: 'cross', label: 'the plain token under the steered model', color: CROSS, values: o.cross.logp, dash: '4 3' },
];

function logpChart(o: SteerOutput, m: SteerModel, x0: number, y0: number, w: number, h: number): { svg: string; height: number } {
  const out: string[] = [`<text x="${x0}" y="${y0 + 10}" font-weight="600">log p of each chosen token (nats)</text>`];
  const top = y0 + 20, bottom = top + h;
  const series = SERIES(o);
  const finite = series.flatMap((s) => s.values).filter(Number.isFinite);
  const lo = Math.min(-1, ...finite), steps = Math.max(1, m.steps);
  const x = stepX(steps, x0, w);
  const y = (v: number) => top + (Math.max(v, lo) / lo) * h;
  out.push(`<line x1="${x0}" x2="${x0 + w}" y1="${bottom}" y2="${bottom}" stroke="currentColor"/><line x1="${x0}" x2="${x0}" y1="${top}" y2="${bottom}" stroke="currentColor"/>`);
  out.push(`<text x="${x0 - 4}" y="${top + 4}" text-anchor="end">0</text><text x="${x0 - 4}" y="${bottom}" text-anchor="end">${esc(fmt.num(lo))}</text>`);
  if (m.diverge >= 0 && m.diverge < steps) {
    out.push(`<line class="diverge" x1="${r2(x(m.diverge))}" x2="${r2(x(m.diverge))}" y1="${top}" y2="${bottom}" stroke="${DIFF}" stroke-dasharray="3 2"><title>${esc(`first difference at step ${m.diverge}`)}</title></line>`);
  }
  for (const s of series) {
    if (!s.values.length) continue;
    out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.5"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''} points="${s.values.map((v, i) => `${r2(x(i))},${r2(y(v))}`).join(' ')}"/>`);
    s.values.forEach((v, i) => {
      const extra = s.key === 'cross' ? ` · KL(plain ‖ steered) ${fmt.num(o.cross.kl[i]!)} nats` : '';
      out.push(`<circle class="lp" data-run="${s.key}" data-t="${i}" data-v="${sig4(v)}" cx="${r2(x(i))}" cy="${r2(y(v))}" r="2.5" fill="${s.color}"><title>${esc(`${s.label} · step ${i} · log p ${fmt.num(v)}${extra}`)}</title></circle>`);
    });
  }
  const ticks = steps <= 1 ? [0] : [0, Math.floor((steps - 1) / 2), steps - 1];
  for (const t of [...new Set(ticks)]) out.push(`<text x="${r2(x(t))}" y="${bottom + 12}" text-anchor="middle">${t}</text>`);
  out.push(`<text x="${x0 + w / 2}" y="${bottom + 26}" text-anchor="middle">step (generated token)</text>`);
  out.push(`<g class="legend" transform="translate(${x0},${bottom + 34})">${series.map((s, k) => `<g transform="translate(0,${k * 14})"><line x1="0" x2="14" y1="5" y2="5" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/><text x="18" y="9">${esc(s.label)}</text></g>`).join('')}</g>`);
  return { svg: out.join(''), height: 20 + h + 34 + 3 * 14 };
}

function klStrip(o: SteerOutput, m: SteerModel, x0: number, y0: number, w: number, h: number): string {
  const out: string[] = [`<text x="${x0}" y="${y0 + 10}" font-weight="600">KL(plain ‖ steered) at the plain prefix (nats)</text>`];
  const top = y0 + 18, bottom = top + h, kl = o.cross.kl;
  const max = Math.max(0, ...kl.filter(Number.isFinite)), hi = Math.max(1e-9, max);
  const steps = Math.max(1, m.steps), x = stepX(steps, x0, w), bw = Math.max(1, Math.min(16, (w / steps) * 0.8));
  kl.forEach((v, i) => {
    const bh = (Math.min(v, hi) / hi) * h;
    out.push(`<rect class="kl" data-t="${i}" data-v="${sig4(v)}" x="${r2(x(i) - bw / 2)}" y="${r2(bottom - bh)}" width="${r2(bw)}" height="${r2(bh)}" fill="${CROSS}"><title>${esc(`step ${i} · KL ${fmt.num(v)} nats`)}</title></rect>`);
  });
  out.push(`<line x1="${x0}" x2="${x0 + w}" y1="${bottom}" y2="${bottom}" stroke="currentColor"/>`);
  out.push(`<text x="${x0 - 4}" y="${top + 4}" text-anchor="end">${esc(fmt.num(max))}</text><text x="${x0 - 4}" y="${bottom}" text-anchor="end">0</text>`);
  return out.join('');
}

/** The whole figure: header, the two texts side by side, norms per layer, log p per step, KL per step. */
export function steerSvg(o: SteerOutput, opts: SteerSvgOptions = {}): string {
  const W = Math.max(560, opts.width ?? 720);
  const m = steerModel(o);
  const out: string[] = [];
  let y = 0;
  if (opts.heading !== false) { out.push(`<text x="0" y="14" font-size="13" font-weight="600">${esc(m.heading)}</text>`); y = 18; }
  out.push(`<text x="0" y="${y + 14}" fill-opacity="0.8" class="summary" data-diverge="${m.diverge}">${esc(`vector ${m.source} · ${divergeText(m, o)} · T ${fmt.num(o.sampler.temperature)}, seed ${o.sampler.seed}`)}</text>`);
  y += 22;
  out.push(`<g class="legend" transform="translate(0,${y})"><rect width="14" height="10" rx="2" fill="${SAME}"/><text x="18" y="9">same in both</text>`
    + `<rect x="110" width="14" height="10" rx="2" fill="${DIFF}"/><text x="128" y="9">from the first difference on</text></g>`);
  y += 18;
  const colW = (W - 16) / 2;
  const left = textPanel(o, m, 'plain', 0, y, colW), right = textPanel(o, m, 'steered', colW + 16, y, colW);
  out.push(`<g class="text plain">${left.svg}</g><g class="text steered">${right.svg}</g>`);
  y += Math.max(left.height, right.height) + 10;
  // the norms on the left (one bar per layer), log p and the KL per step on the right
  const chartH = 90, nW = Math.min(300, Math.round(W * 0.34)), lx = 40 + nW + 60, lW = W - lx - 16;
  out.push(normsChart(m, 40, y, nW, chartH, o.nLayers));
  const lp = logpChart(o, m, lx, y, lW, chartH);
  out.push(lp.svg);
  y += lp.height + 8;
  if (o.cross.kl.length) { out.push(klStrip(o, m, lx, y, lW, 40)); y += 18 + 40 + 8; }
  const H = Math.ceil(y);
  const aria = `${m.heading}; ${m.source}; ${divergeText(m, o)}; without the vector: ${JSON.stringify(o.plain.texts.join('').slice(0, 120))}; with it: ${JSON.stringify(o.steered.texts.join('').slice(0, 120))}`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(aria)}" ${FONT} fill="currentColor">${out.join('')}</svg>`;
}

/** The figure and one row per step (both runs' tokens, log p, top p, the KL at the plain prefix). */
export function steerExport(o: SteerOutput, opts: SteerSvgOptions = {}): FigureExport {
  const m = steerModel(o);
  const rows = Array.from({ length: m.steps }, (_, i) => ({
    step: i,
    plain_id: o.plain.ids[i] ?? null, plain_text: o.plain.texts[i] ?? null, plain_logp: o.plain.logp[i] ?? null, plain_top_p: o.plain.top[i] ?? null,
    steered_id: o.steered.ids[i] ?? null, steered_text: o.steered.texts[i] ?? null, steered_logp: o.steered.logp[i] ?? null, steered_top_p: o.steered.top[i] ?? null,
    plain_logp_under_steered: o.cross.logp[i] ?? null, kl_plain_steered: o.cross.kl[i] ?? null,
    differs: m.diverge >= 0 && i >= m.diverge,
  }));
  return {
    svg: steerSvg(o, opts),
    rows,
    meta: {
      heading: m.heading, strength: o.strength, layers: o.layers, source: o.source, sampler: o.sampler, first_difference: m.diverge,
      norms: m.norms, prompt_text: o.promptText, plain_text: o.plain.texts.join(''), steered_text: o.steered.texts.join(''),
      plain_stopped: o.plain.stopped, steered_stopped: o.steered.stopped,
    },
  };
}
