// The generate cell's figures: the text grown after a prompt, each generated token on a colour of
// its probability (before sampling — the model's raw softmax — or after: the distribution it was
// drawn from), the alternatives of any step, the branch tree as an indented list, and two
// branches side by side (the shared part once, then the two continuations).
//
// Pure functions of the page's output (GenerateOutput: the prompt + current branch as a Tokenized,
// and the whole tree) and the view settings.

import type { BranchTreeJson } from '../../src/engine/branches.ts';
import type { Tokenized } from '../../src/engine/api.ts';
import { visible } from '../prompt.ts';
import { colorScale, esc, fmt, FONT, legendSvg, r2 } from './kit.ts';
import type { FigureExport } from './figure.ts';

/** What the page computes for a generate cell: Tokenized-shaped, so other cells can read it as their prompt. */
export interface GenerateOutput extends Tokenized {
  /** The prompt cell's id. */
  prompt: string;
  /** ids[0, promptLength) are the prompt's; the rest the current branch's. */
  promptLength: number;
  /** text[0, promptText) is the prompt's text. */
  promptText: number;
  /** The branch shown. */
  branch: string;
  tree: BranchTreeJson;
  /** Decoded text (after other text) of every id in the tree: tokens and alternatives. */
  texts: Map<number, string>;
  /** Vocabulary pieces of the same ids. */
  tokenPieces: Map<number, string>;
}

export interface GenerateView {
  /** Which probability colours the tokens. */
  color: 'before' | 'after';
  maxTokens: number;
  /** A branch drawn beside the current one. */
  compare: string | null;
}

export function generateView(s: Readonly<Record<string, unknown>>): GenerateView {
  const m = s['max_tokens'];
  return {
    color: s['color'] === 'after' ? 'after' : 'before',
    maxTokens: typeof m === 'number' && Number.isInteger(m) && m >= 1 ? m : 64,
    compare: typeof s['compare'] === 'string' && s['compare'] ? s['compare'] : null,
  };
}

export interface Alternative { id: number; text: string; p: number; chosen: boolean }

export interface TokenView {
  /** 0-based step of the branch. */
  step: number;
  /** Absolute position in the sequence (prompt included). */
  position: number;
  id: number;
  text: string;
  pBefore: number;
  pAfter: number;
  u: number | null;
  alternatives: Alternative[];
}

const textOf = (o: GenerateOutput, id: number) => o.texts.get(id) ?? `#${id}`;

function findBranch(o: GenerateOutput, id: string) {
  return o.tree.branches.find((b) => b.id === id) ?? null;
}

/** The tokens of a branch, with their alternatives (the chosen one marked, added when not among them). */
export function branchTokens(o: GenerateOutput, branchId: string): TokenView[] {
  const b = findBranch(o, branchId);
  if (!b) return [];
  return b.tokens.map((t, step) => {
    const alts: Alternative[] = (t.alternatives ?? []).map((a) => ({ id: a.id, text: textOf(o, a.id), p: a.p, chosen: a.id === t.id }));
    if (!alts.some((a) => a.chosen)) alts.push({ id: t.id, text: textOf(o, t.id), p: t.pBefore, chosen: true });
    return { step, position: o.promptLength + step, id: t.id, text: textOf(o, t.id), pBefore: t.pBefore, pAfter: t.pAfter, u: t.u, alternatives: alts };
  });
}

export const probOf = (t: TokenView, view: Pick<GenerateView, 'color'>) => (view.color === 'after' ? t.pAfter : t.pBefore);

const scale = colorScale('sequential', 0, 1);
/** The background of a token of probability p (viridis), and a text colour that reads on it. */
export function tokenColors(p: number): { bg: string; fg: string } {
  const v = Math.max(0, Math.min(1, p));
  return { bg: scale(v), fg: v < 0.55 ? '#ffffff' : '#1d1d1f' };
}

export interface TreeRow {
  id: string;
  parent: string | null;
  depth: number;
  forkAt: number;
  length: number;
  stopped: string | null;
  /** The text from the fork point on (a few tokens), to tell branches apart. */
  departs: string;
}

/** The branches depth-first (children after their parent, by fork point), with their depth. */
export function treeRows(o: Pick<GenerateOutput, 'tree' | 'texts'>): TreeRow[] {
  const kids = new Map<string | null, BranchTreeJson['branches']>();
  for (const b of o.tree.branches) { const l = kids.get(b.parent) ?? []; l.push(b); kids.set(b.parent, l); }
  const rows: TreeRow[] = [];
  const seen = new Set<string>();
  const visit = (b: BranchTreeJson['branches'][number], depth: number) => {
    if (seen.has(b.id)) return;
    seen.add(b.id);
    const departs = b.tokens.slice(b.forkAt, b.forkAt + 6).map((t) => o.texts.get(t.id) ?? `#${t.id}`).join('');
    rows.push({ id: b.id, parent: b.parent, depth, forkAt: b.forkAt, length: b.tokens.length, stopped: b.stopped ?? null, departs });
    for (const c of [...(kids.get(b.id) ?? [])].sort((x, y) => x.forkAt - y.forkAt)) visit(c, depth + 1);
  };
  for (const r of kids.get(null) ?? []) visit(r, 0);
  return rows;
}

/** Two branches: the tokens they share (drawn once), then each one's own. */
export function compareBranches(o: GenerateOutput, a: string, b: string): { shared: TokenView[]; left: TokenView[]; right: TokenView[] } {
  const x = branchTokens(o, a), y = branchTokens(o, b);
  let i = 0;
  while (i < x.length && i < y.length && x[i]!.id === y[i]!.id) i++;
  return { shared: x.slice(0, i), left: x.slice(i), right: y.slice(i) };
}

export const STOP_TEXT: Record<string, string> = { eos: 'stopped: an end token', length: 'stopped: N tokens', context: 'stopped: the context is full' };

// ---------------------------------------------------------------------------------------------
// The SVG: the text flowing in lines, the generated tokens on their colours

const CH = 7.6, LINE = 22, PAD = 2;

export interface Placed { x: number; y: number; w: number; text: string; token: TokenView | null; newline: boolean; special?: boolean }

/** A run of the prompt's text: plain, or one control token of a chat template (`<|start_header_id|>`, `<s>`). */
export interface PromptRun { text: string; special: boolean }

const SPECIAL = /^<\|.*\|>$|^<\/?s>$|^\[\/?INST\]$/;

/**
 * The prompt's text cut into runs, the chat template's control tokens on their own (marked), so
 * that a chat prompt shows where the template put its markers, as the prompt cell's chips do.
 */
export function promptRuns(o: Pick<GenerateOutput, 'text' | 'promptText' | 'promptLength' | 'spans' | 'pieces'>): PromptRun[] {
  const text = o.text.slice(0, o.promptText);
  const runs: PromptRun[] = [];
  let at = 0;
  for (let i = 0; i < o.promptLength && i < o.spans.length; i++) {
    const [a, b] = o.spans[i]!;
    if (b <= a || a < at || b > text.length || !SPECIAL.test(text.slice(a, b))) continue;
    if (a > at) runs.push({ text: text.slice(at, a), special: false });
    runs.push({ text: text.slice(a, b), special: true });
    at = b;
  }
  if (at < text.length) runs.push({ text: text.slice(at), special: false });
  return runs;
}

/**
 * Lays out the prompt's text (one run per word) and the tokens left to right in lines of `width`
 * pixels (monospace); a newline in a token ends its line.
 */
export function layoutText(prompt: string | readonly PromptRun[], tokens: readonly TokenView[], width: number): { placed: Placed[]; height: number } {
  const placed: Placed[] = [];
  let x = 0, y = 0;
  const put = (text: string, token: TokenView | null, special = false) => {
    const parts = text.split('\n');
    parts.forEach((part, k) => {
      const shown = k < parts.length - 1 ? `${part}↵` : part;
      if (shown === '' && k === parts.length - 1 && (k > 0 || !token)) return;
      const w = Math.max(token ? 6 : 0, shown.length * CH) + (token ? 2 * PAD : 0);
      if (x > 0 && x + w > width) { x = 0; y += LINE; }
      placed.push({ x, y, w, text: shown, token, newline: k < parts.length - 1, ...(special ? { special } : {}) });
      x += w + (token ? 1 : 0);
      if (k < parts.length - 1) { x = 0; y += LINE; }
    });
  };
  const runs = typeof prompt === 'string' ? [{ text: prompt, special: false }] : prompt;
  for (const run of runs) {
    if (run.special) put(run.text, null, true);
    else for (const word of run.text.match(/\S+\s*|\s+/g) ?? []) put(word, null);
  }
  for (const t of tokens) put(t.text, t);
  return { placed, height: placed.length ? y + LINE : 0 };
}

export interface GenerateSvgOptions { width?: number }

/** The prompt and the current branch's text as an SVG string (export and the standalone page). */
export function generateSvg(o: GenerateOutput, view: Pick<GenerateView, 'color'>, opts: GenerateSvgOptions = {}): string {
  const W = Math.max(360, opts.width ?? 640);
  const tokens = branchTokens(o, o.branch);
  const { placed, height } = layoutText(promptRuns(o), tokens, W - 8);
  const top = 70;
  const out: string[] = [];
  const label = view.color === 'after' ? 'p after sampling (the distribution drawn from)' : 'p before sampling (raw softmax, T = 1)';
  out.push(legendSvg({ label, lo: 0, hi: 1, scheme: 'sequential', width: 220, x: 1, y: 2 }));
  const b = findBranch(o, o.branch);
  out.push(`<text x="240" y="30">${esc(`branch ${o.branch} · ${tokens.length} generated token${tokens.length === 1 ? '' : 's'}${b?.stopped ? ` · ${STOP_TEXT[b.stopped] ?? b.stopped}` : ''}`)}</text>`);
  out.push(`<text x="240" y="46" fill-opacity="0.6">prompt in grey; each generated token on the colour of its probability</text>`);
  for (const p of placed) {
    const y = top + p.y;
    if (!p.token && p.special) {
      // a chat template's control token: marked as the prompt cell's chips mark them
      out.push(`<g class="special"><title>${esc(`template token ${p.text}`)}</title><rect x="${r2(4 + p.x)}" y="${y + 1}" width="${r2(p.w)}" height="${LINE - 3}" rx="3" fill="#d58a00" fill-opacity="0.25"/>`
        + `<text x="${r2(4 + p.x)}" y="${y + 15}" font-family="monospace" font-size="13" fill-opacity="0.8" xml:space="preserve">${esc(p.text)}</text></g>`);
      continue;
    }
    if (!p.token) {
      out.push(`<text x="${r2(4 + p.x)}" y="${y + 15}" font-family="monospace" font-size="13" fill-opacity="0.55" xml:space="preserve">${esc(p.text)}</text>`);
      continue;
    }
    const t = p.token, v = probOf(t, view), c = tokenColors(v);
    out.push(`<g class="gen" data-t="${t.position}" data-step="${t.step}" data-id="${t.id}" data-v="${+v.toPrecision(4)}"><title>${esc(tokenTitle(t))}</title>`
      + `<rect x="${r2(4 + p.x)}" y="${y + 1}" width="${r2(p.w)}" height="${LINE - 3}" rx="3" fill="${c.bg}"/>`
      + `<text x="${r2(4 + p.x + PAD)}" y="${y + 15}" font-family="monospace" font-size="13" fill="${c.fg}" xml:space="preserve">${esc(p.text.replace(/\t/g, '→'))}</text></g>`);
  }
  const H = top + height + 8;
  const aria = `The text generated after the prompt: ${tokens.length} tokens on branch ${o.branch}, coloured by ${label}`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(aria)}" ${FONT} fill="currentColor">${out.join('')}</svg>`;
}

export function tokenTitle(t: TokenView): string {
  const alts = t.alternatives.map((a) => `${a.chosen ? '▸' : ' '}${JSON.stringify(a.text)} ${fmt.prob(a.p)}`).join(', ');
  return `step ${t.step} (position ${t.position}) · ${JSON.stringify(t.text)} id ${t.id} · p before ${fmt.prob(t.pBefore)} · p after ${fmt.prob(t.pAfter)}`
    + `${t.u === null ? ' · not drawn (greedy or chosen)' : ` · u ${t.u}`} · alternatives: ${alts}`;
}

/** The figure and one row per generated token of the current branch. */
export function generateExport(o: GenerateOutput, view: Pick<GenerateView, 'color'>): FigureExport {
  const tokens = branchTokens(o, o.branch);
  return {
    svg: generateSvg(o, view),
    rows: tokens.map((t) => ({
      step: t.step, position: t.position, id: t.id, text: t.text, p_before: t.pBefore, p_after: t.pAfter, u: t.u,
      alternatives: t.alternatives.map((a) => `${a.id}:${a.p}`).join(' '),
    })),
    meta: { branch: o.branch, prompt_tokens: o.promptLength, color: view.color, branches: treeRows(o).map((r) => ({ id: r.id, parent: r.parent, fork_at: r.forkAt, length: r.length, stopped: r.stopped })) },
  };
}

/** Visible whitespace for a piece in a list (alternatives). */
export const shown = (s: string) => visible(s);
