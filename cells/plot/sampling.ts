// The sampling cell's figure: one step of the sampler chain made visible. A column per stage in
// the order they run (the raw logits first), a row per candidate token (the most likely ones at
// each stage, in raw-logit order): each cell a bar of the token's renormalised probability after
// that stage, struck and grey where that stage removed it, faint where an earlier one did. Each
// column's head names the stage, what it kept, the entropy left and what it computed on the way
// (dynamic temperature, σ, XTC's decision, mirostat's k). Below, the final set as one cumulative
// bar with the uniform number u marked where it fell, and the chosen token's probability before
// and after sampling.
//
// Everything is a pure function of the logits row, the settings and the history, computed by the
// engine's own runChain (src/engine/sampling): the numbers drawn are the engine's by construction.
// The settings keys and their parsing live here too; the generate cell and src/app/generation.ts
// read the same keys.

import { scaleLinear } from 'd3';
import { randomFor } from '../../src/engine/sampling/chain.ts';
import {
  type Candidates, type ChainOptions, type ChainResult, DEFAULT_ORDER, finalDistribution, fromLogits, MIROSTAT_ORDER, runChain,
  type StageName, type StageReport, STAGES,
} from '../../src/engine/sampling/index.ts';
import { visible } from '../prompt.ts';
import { esc, fmt, FONT, r2, schemes } from './kit.ts';
import type { FigureExport } from './figure.ts';

// ---------------------------------------------------------------------------------------------
// Settings: the notebook's keys for every chain option a UI can set

export interface Knob {
  /** The notebook key (snake_case, llama.cpp's names). */
  key: string;
  /** The chain option it sets. */
  field: keyof ChainOptions;
  label: string;
  /** What the control says on hover (and what turns the stage off). */
  title: string;
  dflt: number;
  min: number;
  max?: number;
  minExclusive?: boolean;
  step: number;
  int?: boolean;
  /** The stage the knob belongs to (its controls are grouped by stage). */
  stage: StageName | 'mirostat';
}

/** Every sampler knob, with the bounds the engine's resolveOptions accepts. */
export const KNOBS: readonly Knob[] = [
  { key: 'temperature', field: 'temperature', label: 'temperature', title: 'Divides the logits; 0 is greedy', dflt: 1, min: 0, step: 0.05, stage: 'temperature' },
  { key: 'dynatemp_range', field: 'dynatempRange', label: 'dyn. range', title: 'Dynamic temperature: ± this much around the temperature, by entropy; 0 = off', dflt: 0, min: 0, step: 0.05, stage: 'temperature' },
  { key: 'dynatemp_exponent', field: 'dynatempExponent', label: 'dyn. exponent', title: 'Dynamic temperature exponent', dflt: 1, min: 0, step: 0.1, stage: 'temperature' },
  { key: 'top_k', field: 'topK', label: 'top-k', title: 'Keep the k most likely; 0 = off', dflt: 0, min: 0, step: 1, int: true, stage: 'top_k' },
  { key: 'top_p', field: 'topP', label: 'top-p', title: 'Keep the smallest set reaching this mass; 1 = off', dflt: 1, min: 0, max: 1, step: 0.01, stage: 'top_p' },
  { key: 'min_p', field: 'minP', label: 'min-p', title: 'Keep tokens at least this fraction of the most likely; 0 = off', dflt: 0, min: 0, max: 1, step: 0.01, stage: 'min_p' },
  { key: 'typical_p', field: 'typicalP', label: 'typical-p', title: 'Locally typical sampling mass; 1 = off', dflt: 1, min: 0, max: 1, step: 0.01, stage: 'typ_p' },
  { key: 'top_n_sigma', field: 'topNSigma', label: 'top-nσ', title: 'Keep logits within n standard deviations of the largest; 0 = off', dflt: 0, min: 0, step: 0.1, stage: 'top_n_sigma' },
  { key: 'xtc_probability', field: 'xtcProbability', label: 'XTC prob.', title: 'How often XTC removes the top choices; 0 = off', dflt: 0, min: 0, max: 1, step: 0.05, stage: 'xtc' },
  { key: 'xtc_threshold', field: 'xtcThreshold', label: 'XTC threshold', title: 'Tokens at least this likely are top choices; above 0.5 = off', dflt: 0.1, min: 0, max: 1, step: 0.01, stage: 'xtc' },
  { key: 'repeat_penalty', field: 'repeatPenalty', label: 'repeat', title: 'Repetition penalty of tokens in the window; 1 = off', dflt: 1, min: 0, minExclusive: true, step: 0.05, stage: 'penalties' },
  { key: 'frequency_penalty', field: 'frequencyPenalty', label: 'frequency', title: 'Subtracted per occurrence in the window; 0 = off', dflt: 0, min: -2, max: 2, step: 0.05, stage: 'penalties' },
  { key: 'presence_penalty', field: 'presencePenalty', label: 'presence', title: 'Subtracted once if in the window; 0 = off', dflt: 0, min: -2, max: 2, step: 0.05, stage: 'penalties' },
  { key: 'repeat_last_n', field: 'repeatLastN', label: 'window', title: 'The penalties\' window: the last N tokens; −1 = all, 0 = off', dflt: 64, min: -1, step: 1, int: true, stage: 'penalties' },
  { key: 'dry_multiplier', field: 'dryMultiplier', label: 'DRY ×', title: 'DRY penalty scale; 0 = off', dflt: 0, min: 0, step: 0.1, stage: 'dry' },
  { key: 'dry_base', field: 'dryBase', label: 'DRY base', title: 'DRY growth per token of repeat (≥ 1)', dflt: 1.75, min: 1, step: 0.05, stage: 'dry' },
  { key: 'dry_allowed_length', field: 'dryAllowedLength', label: 'DRY allowed', title: 'Repeats this long are free', dflt: 2, min: 0, step: 1, int: true, stage: 'dry' },
  { key: 'mirostat', field: 'mirostat', label: 'mirostat', title: '0 = off, 1 or 2: the version', dflt: 0, min: 0, max: 2, step: 1, int: true, stage: 'mirostat' },
  { key: 'mirostat_tau', field: 'mirostatTau', label: 'τ (bits)', title: 'Mirostat target surprise, bits', dflt: 5, min: 0, step: 0.1, stage: 'mirostat' },
  { key: 'mirostat_eta', field: 'mirostatEta', label: 'η', title: 'Mirostat learning rate', dflt: 0.1, min: 0, step: 0.01, stage: 'mirostat' },
];

/** Whether `v` fits a knob (the same bounds as the registry's schema and the engine). */
export function knobAccepts(k: Knob, v: unknown): v is number {
  if (typeof v !== 'number' || !Number.isFinite(v) || (k.int && !Number.isInteger(v))) return false;
  if (k.minExclusive ? v <= k.min : v < k.min) return false;
  return k.max === undefined || v <= k.max;
}

/** Keys of every sampler setting (knobs, order, seed): view keys of both the sampling and the generate cell. */
export const SAMPLER_KEYS: readonly string[] = [...KNOBS.map((k) => k.key), 'order', 'seed'];

export interface SamplerSettings {
  /** The chain options (only the keys the settings set; invalid values are left out). */
  options: ChainOptions;
  /** The seed of the draws: the draw for position i is drawUniform(seed, i). */
  seed: number;
  /** The order that runs (the setting, or the engine's default for the mirostat setting). */
  order: readonly StageName[];
  /** Keys whose values were ignored (out of range: the schema reports them). */
  ignored: string[];
}

/** Reads the sampler keys of a cell's settings. Bad values fall back to the defaults (and are named). */
export function samplerSettings(settings: Readonly<Record<string, unknown>>): SamplerSettings {
  const options: Record<string, unknown> = {};
  const ignored: string[] = [];
  for (const k of KNOBS) {
    const v = settings[k.key];
    if (v === undefined) continue;
    if (knobAccepts(k, v)) options[k.field] = v;
    else ignored.push(k.key);
  }
  const o = options as ChainOptions;
  let order: readonly StageName[] = o.mirostat ? MIROSTAT_ORDER : DEFAULT_ORDER;
  const raw = settings['order'];
  if (raw !== undefined) {
    const list = (Array.isArray(raw) ? raw : [raw]).filter((s): s is StageName => typeof s === 'string' && (STAGES as readonly string[]).includes(s));
    const unique = [...new Set(list)];
    if (unique.length !== (Array.isArray(raw) ? raw.length : 1)) ignored.push('order');
    order = unique;
    o.order = unique;
  }
  const s = settings['seed'];
  const seed = typeof s === 'number' && Number.isInteger(s) && s >= 0 && s <= 0xffffffff ? s : 0;
  if (s !== undefined && seed !== s) ignored.push('seed');
  return { options: o, seed, order, ignored };
}

/** The uniform numbers for the token at absolute position `position`: the draw's and XTC's,
 *  exactly those of the engine's ChainSampler (`glassbox generate`), so the same seed gives the
 *  same tokens in the notebook and on the command line. */
export function drawsAt(seed: number, position: number): { draw: number; xtc: number } {
  return randomFor(seed, position);
}

// ---------------------------------------------------------------------------------------------
// The model of the figure

/** What the page computes for a sampling cell (the model runs once per prompt). */
export interface SamplingOutput {
  prompt: string;              // the prompt cell's id (or a generate cell's)
  labels: string[];            // display label per position
  position: number;            // the last position: its logits choose the next token
  logits: Float32Array;        // [vocab] the raw logits row there
  pieces: Map<number, string>; // display pieces of the 200 most likely ids and of the history's ids
  history: number[];           // the tokens so far (the penalties' and DRY's window)
}

export interface SamplingView { show: number }
export const MAX_SHOW = 40;
export const DEFAULT_SHOW = 12;

/** One stage's state of one row's token. */
export interface StageCell {
  /** 'kept': in the set after the stage; 'removed': this stage removed it; 'gone': an earlier one did. */
  state: 'kept' | 'removed' | 'gone';
  /** Renormalised probability after the stage (0 unless kept). */
  p: number;
  /** Logit after the stage (NaN unless kept). */
  logit: number;
  /** 1-based rank in the stage's set (0 unless kept). */
  rank: number;
}

export interface StageColumn {
  stage: StageReport['stage'];
  active: boolean;
  kept: number;
  removed: number;
  /** Entropy of the set after the stage, nats. */
  entropy: number;
  /** The stage's setting and what it computed, in words. */
  detail: string;
  cells: StageCell[];
}

export interface SamplingRow { id: number; piece: string; rawRank: number }

export interface SamplingModel {
  rows: SamplingRow[];
  columns: StageColumn[];
  /** The chosen token, the uniform numbers and where the draw fell. */
  token: number;
  piece: string;
  position: number;
  seed: number;
  u: number;
  uXtc: number | null;
  draw: ChainResult['draw'];
  pBefore: number;
  pAfter: number;
  fallback: ChainResult['fallback'];
  mirostat: { before: number; after: number } | null;
  /** The final set in rank order, the first SEGMENTS of it (the rest is `rest`). */
  final: { ids: number[]; probs: number[]; pieces: string[]; size: number; rest: number };
  vocab: number;
  order: readonly StageName[];
  /** The engine's result (not drawn directly; tests compare with it). */
  result: ChainResult;
}

/** Cumulative-bar segments drawn one by one; the rest is one grey block. */
export const SEGMENTS = 60;

const rawCache = new WeakMap<Float32Array, Candidates>();
/** fromLogits once per logits row (the only O(vocab) sort): slider moves reuse it. */
export function rawOnce(logits: Float32Array): Candidates {
  let c = rawCache.get(logits);
  if (!c) { c = fromLogits(logits); rawCache.set(logits, c); }
  return c;
}

const pieceOf = (pieces: ReadonlyMap<number, string> | undefined, id: number) => pieces?.get(id) ?? `#${id}`;

function stageDetail(r: StageReport, o: ChainOptions, pieces: ReadonlyMap<number, string> | undefined, mirostat: SamplingModel['mirostat']): string {
  const d = r.detail ?? {};
  const n = (v: unknown) => (typeof v === 'number' ? fmt.num(v) : String(v));
  if (r.stage === 'input') return `raw logits, T = 1`;
  if (!r.active) return 'off';
  switch (r.stage) {
    case 'temperature': {
      if (typeof d['normalizedEntropy'] === 'number') return `dynamic T = ${n(d['temperature'])} (H/Hmax ${n(d['normalizedEntropy'])})`;
      return (o.temperature ?? 1) === 0 ? 'T = 0: greedy' : `T = ${n(o.temperature ?? 1)}`;
    }
    case 'xtc': return d['acted'] === true ? `acted (u ${n(d['u'])} < ${n(o.xtcProbability)})` : d['acted'] === false ? `did not act (u ${n(d['u'])})` : 'under 2 candidates';
    case 'top_n_sigma': return typeof d['sigma'] === 'number' ? `σ ${n(d['sigma'])}, logit ≥ ${n(d['threshold'])}` : `n = ${n(o.topNSigma)}`;
    case 'typ_p': return `p = ${n(o.typicalP)}${typeof d['entropy'] === 'number' ? `, H ${n(d['entropy'])}` : ''}`;
    case 'top_k': return `k = ${o.topK}`;
    case 'top_p': return `p = ${n(o.topP)}`;
    case 'min_p': return `p = ${n(o.minP)}`;
    case 'penalties': return `×${n(o.repeatPenalty ?? 1)} −${n(o.frequencyPenalty ?? 0)}/use −${n(o.presencePenalty ?? 0)}, last ${o.repeatLastN ?? 64}`;
    case 'dry': {
      const reps = typeof d['repeats'] === 'string' && d['repeats'] ? d['repeats'].split(' ').slice(0, 3).map((s) => {
        const [id, len] = s.split(':');
        return `${visible(pieceOf(pieces, Number(id)))}×${len}`;
      }) : [];
      return reps.length ? `repeats ${reps.join(' ')}` : 'no repeats';
    }
    case 'logit_bias': return 'bias';
    case 'mirostat': return `k ${n(d['k'])}${typeof d['s'] === 'number' ? `, s ${n(d['s'])}` : ''}${mirostat ? `, μ ${n(mirostat.before)} → ${n(mirostat.after)}` : ''}`;
  }
  return '';
}

export interface SamplingModelOptions {
  /** Display pieces by id (missing ones show as #id). */
  pieces?: ReadonlyMap<number, string>;
  /** Rows: the `show` most likely at the input and after each stage (default 12). */
  show?: number;
  /** The absolute position of the token drawn (default history.length): picks the draw's u. */
  position?: number;
}

/**
 * Everything the figure shows for one step: runChain on `logits` (the raw row [vocab]) with the
 * sampler settings (notebook keys), the history, and the uniform numbers drawsAt(seed, position).
 * O(vocab · stages) given the memoized sort: a few milliseconds on a 128k vocabulary.
 */
export function samplingModel(logits: Float32Array, settings: Readonly<Record<string, unknown>>, history: readonly number[], opts: SamplingModelOptions = {}): SamplingModel {
  const s = samplerSettings(settings);
  const show = Math.max(1, Math.min(MAX_SHOW, Math.floor(opts.show ?? DEFAULT_SHOW)));
  const position = opts.position ?? history.length;
  const random = drawsAt(s.seed, position);
  const raw = rawOnce(logits);
  const r = runChain(logits, s.options, { history, random, raw });
  const reports: StageReport[] = [r.input, ...r.stages];

  // rows: the top `show` of the input and of every stage's set, and the chosen token
  const want = new Set<number>();
  for (const rep of reports) for (let i = 0; i < Math.min(show, rep.ids.length); i++) want.add(rep.ids[i]!);
  want.add(r.token);
  const rowIds = [...want];
  const mark = new Int32Array(logits.length);                  // id → row index + 1
  rowIds.forEach((id, i) => { mark[id] = i + 1; });
  const rankIn = (rep: StageReport): Int32Array => {           // row → 1-based rank in the set (0: absent)
    const out = new Int32Array(rowIds.length);
    const ids = rep.ids;
    for (let j = 0; j < ids.length; j++) { const m = mark[ids[j]!]!; if (m) out[m - 1] = j + 1; }
    return out;
  };
  const rawRanks = rankIn(r.input);
  const order = rowIds.map((_, i) => i).sort((a, b) => (rawRanks[a] || Infinity) - (rawRanks[b] || Infinity) || rowIds[a]! - rowIds[b]!);
  const rows: SamplingRow[] = order.map((i) => ({ id: rowIds[i]!, piece: pieceOf(opts.pieces, rowIds[i]!), rawRank: rawRanks[i]! }));

  // the cell shows one step from mirostat's start (μ = 2τ), as runChain does without a state
  const mirostat = s.options.mirostat && r.mirostat ? { before: 2 * (s.options.mirostatTau ?? 5), after: r.mirostat.mu } : null;
  let prev: Int32Array | null = null;
  const columns: StageColumn[] = reports.map((rep) => {
    const ranks = rankIn(rep);
    const probs = rep.probs;
    const cells = order.map((i): StageCell => {
      const k = ranks[i]!;
      if (k) return { state: 'kept', p: probs[k - 1]!, logit: rep.logits[k - 1]!, rank: k };
      return { state: prev && prev[i] ? 'removed' : 'gone', p: 0, logit: NaN, rank: 0 };
    });
    prev = ranks;
    return { stage: rep.stage, active: rep.active, kept: rep.ids.length, removed: rep.removed.length, entropy: rep.entropy, detail: stageDetail(rep, s.options, opts.pieces, mirostat), cells };
  });

  const fin = finalDistribution(r);
  const nSeg = Math.min(SEGMENTS, fin.ids.length);
  let shown = 0;
  for (let i = 0; i < nSeg; i++) shown += fin.probs[i]!;
  return {
    rows, columns, token: r.token, piece: pieceOf(opts.pieces, r.token), position, seed: s.seed,
    u: r.random.draw, uXtc: r.random.xtc, draw: r.draw, pBefore: r.pBefore, pAfter: r.pAfter, fallback: r.fallback, mirostat,
    final: {
      ids: [...fin.ids.subarray(0, nSeg)], probs: [...fin.probs.subarray(0, nSeg)], pieces: [...fin.ids.subarray(0, nSeg)].map((id) => pieceOf(opts.pieces, id)),
      size: fin.ids.length, rest: Math.max(0, 1 - shown),
    },
    vocab: logits.length, order: s.order, result: r,
  };
}

// ---------------------------------------------------------------------------------------------
// The figure

/** 4 significant digits, for data-v attributes. */
export const sig4 = (v: number) => (Number.isFinite(v) ? String(+v.toPrecision(4)) : String(v));

const COLOR = schemes.sequential(0.3);
const SHADE = [schemes.sequential(0.3), schemes.sequential(0.62)];
const GREY = '#9a9a9a';
const ROW = 17, COL = 118, OFF_COL = 24, LABEL_W = 120, HEAD = 74;

export const stageLabel = (s: StageColumn['stage']) => (s === 'typ_p' ? 'typical-p' : s === 'input' ? 'raw' : s.replace(/_/g, '-'));

function clip(s: string, n: number): string {
  const v = visible(s);
  return v.length > n ? `${v.slice(0, n - 1)}…` : v;
}

export function cellTitle(row: SamplingRow, col: StageColumn, c: StageCell): string {
  const head = `${stageLabel(col.stage)} · ${JSON.stringify(row.piece)} (id ${row.id})`;
  if (c.state === 'kept') return `${head} · p ${fmt.prob(c.p)} · logit ${fmt.num(c.logit)} · rank ${c.rank} of ${fmt.int(col.kept)}`;
  return `${head} · ${c.state === 'removed' ? `removed by ${stageLabel(col.stage)}` : 'removed earlier'}`;
}

export interface SamplingSvgOptions { width?: number }

/** The stage columns and the draw as an SVG string (drawn by the element, exported as is). */
export function samplingSvg(m: SamplingModel): string {
  const widths = m.columns.map((c) => (c.active || c.stage === 'input' ? COL : OFF_COL));
  const xs: number[] = [];
  let x = LABEL_W;
  for (const w of widths) { xs.push(x); x += w; }
  const W = Math.max(560, x + 8);
  let hi = 0;
  for (const c of m.columns) for (const cell of c.cells) hi = Math.max(hi, cell.p);
  const out: string[] = [];
  const top = 40 + HEAD;

  // legend
  const legend: [string, string][] = [
    [`<rect y="2" width="16" height="8" fill="${COLOR}"/>`, 'probability after the stage (renormalised)'],
    [`<g><rect y="2" width="16" height="8" fill="${GREY}" fill-opacity="0.5"/><line x1="0" x2="16" y1="6" y2="6" stroke="#c0392b"/></g>`, 'removed by this stage'],
    [`<text x="5" y="9" fill-opacity="0.5">·</text>`, 'removed earlier'],
  ];
  let lx = 0;
  out.push(`<g class="legend" transform="translate(1,6)">`);
  for (const [mark, label] of legend) {
    out.push(`<g transform="translate(${lx},0)">${mark}<text x="21" y="9">${esc(label)}</text></g>`);
    lx += 30 + label.length * 5.6;
  }
  out.push(`</g><text x="0" y="30" fill-opacity="0.75">${esc(`bars share one scale: 0 to ${fmt.prob(hi || 1)} (probability); stages run left to right (narrow grey columns: turned off), then the draw`)}</text>`);

  // column heads
  m.columns.forEach((c, j) => {
    const x0 = xs[j]!, w = widths[j]!;
    const attrs = `data-stage="${c.stage}" data-s="${j}" data-kept="${c.kept}" data-removed="${c.removed}" data-entropy="${sig4(c.entropy)}" data-active="${c.active}"`;
    const title = `${stageLabel(c.stage)}${c.active ? '' : ' (off)'} · kept ${fmt.int(c.kept)}, removed ${fmt.int(c.removed)} · entropy ${fmt.num(c.entropy)} nats (${fmt.num(c.entropy / Math.LN2)} bits) · ${c.detail}`;
    if (w === OFF_COL) {
      out.push(`<g class="head off" ${attrs}><title>${esc(title)}</title><rect x="${x0 + 2}" y="40" width="${w - 4}" height="${top - 44 + m.rows.length * ROW}" fill="currentColor" fill-opacity="0.04" rx="3"/>`
        + `<text transform="translate(${x0 + 15},${top - 6}) rotate(-90)" fill-opacity="0.55">${esc(stageLabel(c.stage))}</text></g>`);
      return;
    }
    out.push(`<g class="head" ${attrs}><title>${esc(title)}</title>`
      + `<text x="${x0 + 4}" y="52" font-weight="600">${j > 0 ? `${j}. ` : ''}${esc(stageLabel(c.stage))}</text>`
      + `<text x="${x0 + 4}" y="66">kept ${esc(fmt.int(c.kept))}${c.removed ? ` (−${esc(fmt.int(c.removed))})` : ''}</text>`
      + `<text x="${x0 + 4}" y="80">H ${esc(fmt.num(c.entropy))} nats</text>`
      + `<text x="${x0 + 4}" y="94" fill-opacity="0.75">${esc(c.detail.length > 20 ? `${c.detail.slice(0, 19)}…` : c.detail)}</text>`
      + `<line x1="${x0 + 2}" x2="${x0 + w - 4}" y1="${top - 4}" y2="${top - 4}" stroke="currentColor" stroke-opacity="0.25"/></g>`);
  });
  out.push(`<text x="${LABEL_W - 6}" y="${top - 8}" text-anchor="end" fill-opacity="0.7">token (raw rank)</text>`);

  // rows
  m.rows.forEach((row, i) => {
    const y = top + i * ROW;
    const chosen = row.id === m.token;
    out.push(`<g class="row${chosen ? ' chosen' : ''}" data-id="${row.id}" data-raw-rank="${row.rawRank}">`
      + (chosen ? `<rect x="1" y="${y}" width="${W - 2}" height="${ROW}" fill="none" stroke="currentColor" stroke-dasharray="3 2" rx="3"/>` : '')
      + `<text x="${LABEL_W - 6}" y="${y + 12}" text-anchor="end" font-family="monospace" xml:space="preserve"${chosen ? ' font-weight="700"' : ''}>${esc(clip(row.piece, 12))} <tspan fill-opacity="0.55">${row.rawRank || '–'}</tspan></text>`);
    m.columns.forEach((c, j) => {
      const cell = c.cells[i]!, x0 = xs[j]!, w = widths[j]!;
      const d = `data-stage="${c.stage}" data-s="${j}" data-id="${row.id}" data-state="${cell.state}" data-v="${sig4(cell.p)}"`;
      const t = `<title>${esc(cellTitle(row, c, cell))}</title>`;
      if (w === OFF_COL) {
        out.push(`<g class="cell" ${d}>${t}<text x="${x0 + 12}" y="${y + 12}" text-anchor="middle" fill-opacity="${cell.state === 'kept' ? 0.6 : 0.3}">${cell.state === 'kept' ? '•' : '·'}</text></g>`);
        return;
      }
      const bw = w - 48;
      if (cell.state === 'kept') {
        out.push(`<g class="cell" ${d}>${t}<rect x="${x0 + 4}" y="${y + 4}" width="${r2(Math.max(0.5, (cell.p / (hi || 1)) * bw))}" height="${ROW - 8}" fill="${COLOR}"/>`
          + `<text x="${x0 + w - 6}" y="${y + 12}" text-anchor="end" font-variant-numeric="tabular-nums">${esc(fmt.prob(cell.p))}</text></g>`);
      } else if (cell.state === 'removed') {
        out.push(`<g class="cell removed" ${d}>${t}<rect x="${x0 + 4}" y="${y + 4}" width="${bw}" height="${ROW - 8}" fill="${GREY}" fill-opacity="0.3"/>`
          + `<line x1="${x0 + 4}" x2="${x0 + 4 + bw}" y1="${y + ROW / 2}" y2="${y + ROW / 2}" stroke="#c0392b"/><text x="${x0 + w - 6}" y="${y + 12}" text-anchor="end" fill="#c0392b">✕</text></g>`);
      } else {
        out.push(`<g class="cell gone" ${d}>${t}<text x="${x0 + 10}" y="${y + 12}" fill-opacity="0.35">·</text></g>`);
      }
    });
    out.push(`</g>`);
  });

  // the draw: the final set as one cumulative bar, u marked
  const yD = top + m.rows.length * ROW + 22;
  const bx0 = 10, bx1 = W - 10;
  const sx = scaleLinear().domain([0, 1]).range([bx0, bx1]);
  const fb = m.fallback;
  out.push(`<g class="draw" data-testid="draw" data-u="${sig4(m.u)}" data-token="${m.token}" data-p-before="${sig4(m.pBefore)}" data-p-after="${sig4(m.pAfter)}"`
    + `${m.draw ? ` data-rank="${m.draw.rank + 1}" data-lower="${sig4(m.draw.lower)}" data-upper="${sig4(m.draw.upper)}"` : ''}${fb ? ` data-fallback="${fb.stage}"` : ''}>`);
  out.push(`<text x="0" y="${yD}" font-weight="600">${esc(`the draw: u = ${m.u.toFixed(4)} (seed ${m.seed}, position ${m.position})`)}</text>`);
  const yB = yD + 10;
  let cum = 0;
  m.final.ids.forEach((id, k) => {
    const p = m.final.probs[k]!;
    const a = sx(cum), b = sx(cum + p);
    const chosen = id === m.token;
    out.push(`<rect class="seg" data-id="${id}" data-rank="${k + 1}" data-v="${sig4(p)}" x="${r2(a)}" y="${yB}" width="${r2(Math.max(0.3, b - a))}" height="18" fill="${SHADE[k % 2]}"${chosen ? ' stroke="currentColor" stroke-width="2"' : ''}>`
      + `<title>${esc(`#${k + 1} ${JSON.stringify(m.final.pieces[k])} (id ${id}) · p ${fmt.prob(p)} · cumulative [${fmt.prob(cum)}, ${fmt.prob(cum + p)})`)}</title></rect>`);
    cum += p;
  });
  if (m.final.size > m.final.ids.length) {
    out.push(`<rect class="seg rest" x="${r2(sx(cum))}" y="${yB}" width="${r2(Math.max(0.3, sx(1) - sx(cum)))}" height="18" fill="${GREY}" fill-opacity="0.5">`
      + `<title>${esc(`${fmt.int(m.final.size - m.final.ids.length)} more candidates, p ${fmt.prob(m.final.rest)} together`)}</title></rect>`);
  }
  const ux = sx(m.u);
  out.push(`<g class="u-marker"><line x1="${r2(ux)}" x2="${r2(ux)}" y1="${yB - 6}" y2="${yB + 24}" stroke="#c0392b" stroke-width="2"/>`
    + `<path d="M${r2(ux - 5)},${yB - 10} L${r2(ux + 5)},${yB - 10} L${r2(ux)},${yB - 3} Z" fill="#c0392b"/><title>${esc(`u = ${m.u}`)}</title></g>`);
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    out.push(`<line x1="${r2(sx(t))}" x2="${r2(sx(t))}" y1="${yB + 18}" y2="${yB + 22}" stroke="currentColor"/><text x="${r2(sx(t))}" y="${yB + 33}" text-anchor="middle">${t}</text>`);
  }
  out.push(`<text x="${r2((bx0 + bx1) / 2)}" y="${yB + 47}" text-anchor="middle" font-weight="600">cumulative probability of the final set (rank order; the chosen token outlined, u in red)</text>`);
  const line = fb
    ? `${stageLabel(fb.stage)} left no candidates: fell back to the argmax of the raw logits, ${JSON.stringify(m.piece)} (id ${m.token})`
    : `drew ${JSON.stringify(m.piece)} (id ${m.token}): rank ${m.draw!.rank + 1} of ${fmt.int(m.final.size)}, u in [${fmt.prob(m.draw!.lower)}, ${fmt.prob(m.draw!.upper)})`;
  out.push(`<text x="0" y="${yB + 67}"${fb ? ' fill="#c0392b"' : ''}>${esc(line)}</text>`);
  out.push(`<text x="0" y="${yB + 83}">${esc(`p before sampling (raw softmax) ${fmt.prob(m.pBefore)} · p after (the distribution drawn from) ${fmt.prob(m.pAfter)}`)}</text></g>`);
  const H = yB + 92;
  const aria = `The sampler chain stage by stage (${m.columns.length - 1} stages, ${m.columns.filter((c) => c.active && c.stage !== 'input').length} on) for the next token; `
    + `drew ${JSON.stringify(m.piece)} with u = ${m.u.toFixed(4)}, p ${fmt.prob(m.pBefore)} before and ${fmt.prob(m.pAfter)} after sampling`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${r2(W)}" height="${H}" viewBox="0 0 ${r2(W)} ${H}" role="img" aria-label="${esc(aria)}" ${FONT} fill="currentColor">${out.join('')}</svg>`;
}

/** The figure and its rows: one per (token, stage). */
export function samplingExport(m: SamplingModel): FigureExport {
  const rows: FigureExport['rows'][number][] = [];
  for (const [i, r] of m.rows.entries()) {
    for (const c of m.columns) {
      const cell = c.cells[i]!;
      rows.push({ stage: c.stage, active: c.active, id: r.id, piece: r.piece, raw_rank: r.rawRank, state: cell.state, p: cell.p, logit: Number.isFinite(cell.logit) ? cell.logit : null, rank: cell.rank || null });
    }
  }
  return {
    svg: samplingSvg(m), rows,
    meta: {
      order: m.order, seed: m.seed, position: m.position, u: m.u, u_xtc: m.uXtc, token: m.token, piece: m.piece,
      p_before: m.pBefore, p_after: m.pAfter, draw: m.draw, fallback: m.fallback, mirostat: m.mirostat,
      stages: m.columns.map((c) => ({ stage: c.stage, active: c.active, kept: c.kept, removed: c.removed, entropy_nats: c.entropy, detail: c.detail })),
    },
  };
}
