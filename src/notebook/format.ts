// The notebook file: Markdown with front matter, in which each fenced block whose info string is a
// cell kind is a cell and the rest is prose. Every cell keeps the exact text it was read from, so
// writing a notebook back is concatenation: the round trip is byte for byte, and an edit rewrites
// only the lines it touches (see settings.ts and edit.ts).
//
//   text = head (a BOM) + frontMatter.raw + Σ (cell.lead + cell.raw) + tail
//
// `lead` holds the blank lines before a cell, so that prose cells are the prose itself.

import { cellKinds, validateSettings, oneOf, str, type CellKind, type CellRegistry } from './registry.ts';
import {
  bareScalar, content, eolOf, parseSettings, splitLines, type Problem, type Scalar, type Settings, type Value,
} from './settings.ts';

export interface Cell {
  /** Stable while the notebook is open: `<kind>-<n>` in reading order when parsed. */
  readonly id: string;
  /** 'markdown' (prose), a registered kind, or 'unknown' (a fenced kind this version cannot show). */
  readonly kind: string;
  /** The fence's info string as written (`attention`, `prompt chat name=story`); '' for prose. */
  readonly info: string;
  /** Blank lines before the cell. */
  readonly lead: string;
  /** The cell's exact text: fences included, its last line ending included. */
  readonly raw: string;
  /** Parsed settings; a prompt's (and prose's) `text` is its body with `\n` line endings. */
  readonly settings: Settings;
  /** Syntax problems and schema problems (wrong types are errors, unknown keys warnings). */
  readonly problems: readonly Problem[];
}

export interface FrontMatter {
  /** From the opening `---` line to the closing `---` (or `...`) line, line ending included. */
  readonly raw: string;
  readonly values: Settings;
  readonly problems: readonly Problem[];
}

export interface Notebook {
  /** A byte-order mark, when the file began with one. */
  readonly head: string;
  readonly frontMatter: FrontMatter | null;
  readonly cells: readonly Cell[];
  /** Blank lines after the last cell. */
  readonly tail: string;
  /** The line ending new text is written with: the file's first one, else '\n'. */
  readonly eol: '\n' | '\r\n';
}

export interface ParseOptions {
  registry?: CellRegistry;
}

// ---------------------------------------------------------------------------------------------
// Fences (CommonMark: up to 3 spaces, ≥ 3 backticks or tildes; a backtick fence's info string has
// no backtick; the closing fence is the same character, at least as long, and nothing else)

export interface Fence { indent: string; char: '`' | '~'; len: number; info: string }

export function openFence(line: string): Fence | null {
  const m = /^( {0,3})(`{3,}|~{3,})(.*)$/.exec(line);
  if (!m) return null;
  if (m[2]![0] === '`' && m[3]!.includes('`')) return null;
  return { indent: m[1]!, char: m[2]![0] as Fence['char'], len: m[2]!.length, info: m[3]! };
}

export function closesFence(line: string, f: Pick<Fence, 'char' | 'len'>): boolean {
  const m = /^ {0,3}(`{3,}|~{3,})[ \t]*$/.exec(line);
  return m !== null && m[1]![0] === f.char && m[1]!.length >= f.len;
}

/** Code languages that stay prose when fenced, although they look like a kind name. A fenced
 *  block whose first info word is none of these nor a registered kind is an 'unknown' cell. */
const PROSE_FENCES = new Set(`markdown md text txt plain plaintext console output log js javascript mjs cjs ts typescript
  tsx jsx json jsonc json5 yaml yml toml ini html xml svg css scss python py python3 pycon bash sh shell zsh fish
  powershell ps1 bat cmd c h cpp cc cxx hpp cuda rust rs go java kotlin swift ruby rb php perl lua r julia jl matlab
  scala haskell hs ocaml elixir erlang clojure lisp scheme sql graphql diff patch make makefile cmake dockerfile nginx
  csv tsv tex latex math katex mermaid dot graphviz plantuml wgsl glsl hlsl wat asm llvm proto jinja jinja2 http
  regex none`.split(/\s+/));
const KIND_WORD = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;

/** How a fenced block is read: a registered kind, an unknown cell, or prose. */
function fenceKind(f: Fence, registry: CellRegistry): CellKind | 'unknown' | 'prose' {
  if (f.indent !== '') return 'prose';             // cells sit at the left margin; indented fences are code
  const word = /^\s*(\S*)/.exec(f.info)![1]!;
  const kind = registry.get(word);
  if (kind && kind.body !== 'prose') return kind;
  return KIND_WORD.test(word) && !PROSE_FENCES.has(word) && !kind ? 'unknown' : 'prose';
}

// ---------------------------------------------------------------------------------------------
// The info string: `kind key=value key="quoted value" flag`

export interface InfoAttr { key: string; value: Scalar; start: number; end: number }

const ATTR = /([^\s=]+)(?:=("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|\S*))?/g;

export function parseInfo(info: string): { word: string; attrs: InfoAttr[]; problems: Problem[]; broken: Omit<InfoAttr, 'value'>[] } {
  const w = /^\s*(\S*)/.exec(info)!;
  const attrs: InfoAttr[] = [];
  const problems: Problem[] = [];
  /** `key="unterminated` and the like: ignored when read, but an edit of that key replaces them. */
  const broken: Omit<InfoAttr, 'value'>[] = [];
  ATTR.lastIndex = w[0].length;
  for (let m; (m = ATTR.exec(info));) {
    const [whole, key, v] = m;
    let value: Scalar = true;                      // a bare word is a flag: ```prompt chat
    if (v !== undefined) {
      if (v.startsWith('"')) {
        try { value = JSON.parse(v) as string; } catch {
          problems.push({ severity: 'error', key, message: `the info string's ${whole} is not a valid quoted string` });
          broken.push({ key: key!, start: m.index, end: m.index + whole.length });
          continue;
        }
      } else if (v.startsWith("'")) value = v.slice(1, -1).replace(/''/g, "'");
      else value = bareScalar(v);
    }
    if (!/^[A-Za-z_][\w.-]*$/.test(key!)) {
      problems.push({ severity: 'warning', message: `the info string's "${whole}" is not key=value; it is kept and ignored` });
      continue;
    }
    attrs.push({ key: key!, value, start: m.index, end: m.index + whole.length });
  }
  return { word: w[1]!, attrs, problems, broken };
}

/** Writes a value into the info string (bare when it reads back the same, else quoted). */
export function formatAttr(v: Value): string {
  if (Array.isArray(v)) throw new RangeError('a list cannot be written in the info string; put it in the body');
  if (typeof v === 'string' && /^[^\s"'=`]+$/.test(v) && bareScalar(v) === v) return v;
  if (typeof v === 'number' && !Number.isFinite(v)) throw new RangeError(`${v} cannot be written in a notebook; use a finite number`);
  return typeof v === 'string' ? JSON.stringify(v).replace(/`/g, '\\u0060') : String(v);
}

// ---------------------------------------------------------------------------------------------
// Reading one cell from its raw text

/** A fenced cell's parts; `close` is '' when the fence was never closed (it runs to the end). */
export interface FencedParts { fence: Fence; open: string; body: string; close: string }

export function fencedParts(raw: string): FencedParts | null {
  const lines = splitLines(raw);
  const fence = lines.length ? openFence(content(lines[0]!)) : null;
  if (!fence) return null;
  const last = lines.length - 1;
  const closed = last > 0 && closesFence(content(lines[last]!), fence);
  return { fence, open: lines[0]!, body: lines.slice(1, closed ? last : undefined).join(''), close: closed ? lines[last]! : '' };
}

/** A body (or prose) as the `text` setting: one final line ending dropped, `\r\n` read as `\n`. */
export function textOf(body: string): string {
  return body.replace(/\r?\n$/, '').replace(/\r\n/g, '\n');
}

export function readCell(id: string, lead: string, raw: string, registry: CellRegistry = cellKinds): Cell {
  const parts = fencedParts(raw);
  const kind = parts ? fenceKind(parts.fence, registry) : 'prose';
  // Prose (which may begin with a code block of its own).
  if (!parts || kind === 'prose') return { id, kind: 'markdown', info: '', lead, raw, settings: { text: textOf(raw) }, problems: [] };
  const info = parts.fence.info;
  const problems: Problem[] = [];
  if (!parts.close) problems.push({ severity: 'warning', message: `the ${parts.fence.char.repeat(parts.fence.len)} fence is never closed, so the cell runs to the end of the notebook` });
  if (kind === 'unknown') {
    const word = parseInfo(info).word;
    problems.push({ severity: 'warning', message: `"${word}" is not a cell kind this version of glassbox knows; the cell is kept as written` });
    return { id, kind: 'unknown', info, lead, raw, settings: {}, problems };
  }
  const { attrs, problems: infoProblems } = parseInfo(info);
  problems.push(...infoProblems);
  const settings: Record<string, Value> = {};
  for (const a of attrs) settings[a.key] = a.value;
  if (kind.body === 'text') {
    settings['text'] = textOf(parts.body);
  } else {
    const body = parseSettings(parts.body, 1);          // lines count from the fence
    problems.push(...body.problems);
    for (const [k, v] of Object.entries(body.values)) {
      if (k in settings) problems.push({ severity: 'warning', key: k, message: `"${k}" is set in the info string and in the body; the body wins` });
      settings[k] = v;
    }
  }
  problems.push(...validateSettings(kind, settings));
  return { id, kind: kind.kind, info, lead, raw, settings, problems };
}

// ---------------------------------------------------------------------------------------------
// Reading a notebook

const BLANK = /^[ \t]*\r?\n?$/;
const FRONT_MATTER: CellKind = {
  kind: 'front matter', body: 'settings', view: [], label: 'front matter', reads: () => [],
  schema: { title: str(), model: str(), backend: oneOf(['auto', 'cpu', 'webgpu']) },
};

export function readFrontMatter(raw: string): FrontMatter {
  const lines = splitLines(raw);
  const inner = parseSettings(lines.slice(1, -1).join(''), 1);
  const problems = [...inner.problems];
  // Unknown keys are common in front matter (author, date, tags): kept silently.
  problems.push(...validateSettings(FRONT_MATTER, inner.values).filter((p) => p.severity === 'error'));
  return { raw, values: inner.values, problems };
}

/**
 * Splits lines (no front matter) into cells: fenced cells of known or unknown kinds, and a
 * markdown cell per prose run between them. Blank lines around prose go to `lead`s and the tail.
 */
export function scanCells(lines: readonly string[], newId: (kind: string) => string, registry: CellRegistry = cellKinds): { cells: Cell[]; tail: string } {
  const cells: Cell[] = [];
  let pending = '';           // blank lines waiting for the next cell
  let prose: string[] = [];
  const flush = () => {
    let a = 0;
    let b = prose.length;
    while (a < b && BLANK.test(prose[a]!)) a++;
    while (b > a && BLANK.test(prose[b - 1]!)) b--;
    pending += prose.slice(0, a).join('');
    if (b > a) {
      cells.push(readCell(newId('markdown'), pending, prose.slice(a, b).join(''), registry));
      pending = '';
    }
    pending += prose.slice(b).join('');
    prose = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const fence = openFence(content(lines[i]!));
    if (!fence) { prose.push(lines[i]!); continue; }
    let end = i + 1;
    while (end < lines.length && !closesFence(content(lines[end]!), fence)) end++;
    end = Math.min(end, lines.length - 1);           // unclosed: runs to the end
    const kind = fenceKind(fence, registry);
    if (kind === 'prose') {
      // A code block in prose (it may hold cell-like fences, shorter or of the other character).
      for (let j = i; j <= end; j++) prose.push(lines[j]!);
    } else {
      flush();
      const raw = lines.slice(i, end + 1).join('');
      cells.push(readCell(newId(kind === 'unknown' ? 'unknown' : kind.kind), pending, raw, registry));
      pending = '';
    }
    i = end;
  }
  flush();
  return { cells, tail: pending };
}

/** Reads a notebook. Never throws: whatever cannot be understood is kept as written, with a problem. */
export function parseNotebook(text: string, opts: ParseOptions = {}): Notebook {
  const registry = opts.registry ?? cellKinds;
  const head = text.startsWith('\uFEFF') ? '\uFEFF' : '';
  const lines = splitLines(text.slice(head.length));
  let start = 0;
  let frontMatter: FrontMatter | null = null;
  if (lines.length > 1 && /^---[ \t]*$/.test(content(lines[0]!))) {
    let end = 1;
    while (end < lines.length && !/^(---|\.\.\.)[ \t]*$/.test(content(lines[end]!))) end++;
    if (end < lines.length) {
      frontMatter = readFrontMatter(lines.slice(0, end + 1).join(''));
      start = end + 1;
    }
  }
  const counts = new Map<string, number>();
  const newId = (kind: string) => {
    const n = (counts.get(kind) ?? 0) + 1;
    counts.set(kind, n);
    return `${kind}-${n}`;
  };
  const { cells, tail } = scanCells(lines.slice(start), newId, registry);
  const firstEol = lines.length ? eolOf(lines[0]!) : '';
  return { head, frontMatter, cells, tail, eol: firstEol === '\r\n' ? '\r\n' : '\n' };
}

export function serializeNotebook(nb: Notebook): string {
  const parts: string[] = [nb.head, nb.frontMatter?.raw ?? ''];
  for (const c of nb.cells) parts.push(c.lead, c.raw);
  parts.push(nb.tail);
  return parts.join('');
}
