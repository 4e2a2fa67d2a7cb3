// Edits of a notebook, as pure functions: each returns a new Notebook (cells that did not change
// are the same objects, so Lit and the reactive graph see what changed by identity) and rewrites
// only the text it must. An edit that changes nothing returns the notebook it was given.

import { UsageError } from '../engine/errors.ts';
import { cellKinds, type CellRegistry } from './registry.ts';
import {
  closesFence, fencedParts, formatAttr, parseInfo, readCell, readFrontMatter, scanCells,
  type Cell, type Fence, type Notebook,
} from './format.ts';
import { eolOf, parseSettings, sameValue, setSettingText, splitLines, type Value } from './settings.ts';

function indexOf(nb: Notebook, id: string): number {
  const i = nb.cells.findIndex((c) => c.id === id);
  if (i < 0) throw new UsageError(`cell ${id}`, 'there is no such cell in the notebook', 'It may have been deleted; use an id from notebook.cells');
  return i;
}

/** A fresh id for a new cell of this kind: one past the highest `<kind>-<n>` in use. */
export function nextId(nb: Notebook, kind: string): string {
  let n = 0;
  for (const c of nb.cells) {
    const m = c.id.startsWith(`${kind}-`) ? /^(\d+)$/.exec(c.id.slice(kind.length + 1)) : null;
    if (m) n = Math.max(n, Number(m[1]));
  }
  return `${kind}-${n + 1}`;
}

const withEol = (text: string, eol: string) => text.replace(/\r?\n/g, eol);

/** Sets `key=value` in an info string (a bare flag for `true` when it was one), keeping the rest. */
function setInfoAttr(info: string, key: string, value: Value | undefined): string {
  const parsed = parseInfo(info);
  // The last writing of the key, a broken one (`key="unterminated`) included: it is replaced.
  const a = [...parsed.attrs, ...parsed.broken].filter((x) => x.key === key).sort((x, y) => x.start - y.start).at(-1);
  if (value === undefined) {
    if (!a) return info;
    let s = a.start;
    while (s > 0 && /\s/.test(info[s - 1]!)) s--;
    return info.slice(0, s) + info.slice(a.end);
  }
  const wasFlag = a !== undefined && info.slice(a.start, a.end) === key;
  const out = setInfoText(info, a, key, value, wasFlag);
  // Another attribute's unterminated quote could swallow what was written: refuse rather than
  // write a notebook that reads back differently.
  const back = parseInfo(out).attrs.filter((x) => x.key === key).at(-1);
  if (!back || !sameValue(back.value, value)) {
    throw new UsageError(`setting "${key}"`, `the cell's info string (${JSON.stringify(info.trim())}) has a quoted value that is never closed, so "${key}" cannot be written there`,
      'Close the quote in the notebook\'s Markdown, then set it again');
  }
  return out;
}

function setInfoText(info: string, a: { start: number; end: number } | undefined, key: string, value: Value, wasFlag: boolean): string {
  const written = value === true && (wasFlag || !a) ? key : `${key}=${formatAttr(value)}`;
  if (a) return info.slice(0, a.start) + written + info.slice(a.end);
  const trimmed = info.replace(/\s+$/, '');
  return `${trimmed} ${written}${info.slice(trimmed.length)}`;
}

/** A fence long enough that no line of `body` closes it. */
function fenceFor(body: string, f: Fence): Fence {
  let len = f.len;
  for (const line of body.split('\n')) {
    const l = line.replace(/\r$/, '');
    if (closesFence(l, { char: f.char, len })) len = l.trim().length + 1;
  }
  return { ...f, len };
}

/** The raw text of a fenced cell with one setting changed. */
function rewriteFenced(cell: Cell, key: string, value: Value | undefined, nbEol: string, registry: CellRegistry): string {
  const parts = fencedParts(cell.raw)!;
  const eol = eolOf(parts.open) || nbEol;
  const kind = registry.get(cell.kind)!;
  let { body } = parts;
  let info = parts.fence.info;
  if (kind.body === 'text' && key === 'text') {
    body = value === '' || value === undefined ? '' : withEol(String(value), eol) + eol;
  } else if (kind.body === 'text' || (parseInfo(info).attrs.some((a) => a.key === key) && !parseSettings(body).entries.some((e) => e.key === key))) {
    // Settings written in the info string stay there; others (and new ones) go in the body.
    info = setInfoAttr(info, key, value);
  } else {
    body = setSettingText(body, key, value, eol);
  }
  const fence = fenceFor(body, parts.fence);
  const marks = fence.char.repeat(fence.len);
  const open = `${fence.indent}${marks}${info}${eolOf(parts.open) || eol}`;
  const close = fence.len === parts.fence.len && parts.close ? parts.close : `${marks}${eolOf(parts.close)}`;
  // An unclosed cell at the end of a file without a final newline: the closing fence it now gets
  // needs a line of its own, or it would become part of the last value (`heads: 3```). Not after
  // a stray '\r': the new '\n' would turn that last line into a `key:` line that overrides others.
  const sep = body !== '' && !body.endsWith('\n') && !body.endsWith('\r') ? eol : '';
  return open + body + sep + close;
}

/**
 * Sets one setting of one cell (`undefined` removes it). For a prompt (or prose) `text` is the body.
 * The value is checked against the kind's schema first: a wrong type throws a UsageError naming
 * the key and what it expects. Prose whose new text holds a cell fence becomes several cells.
 */
export function setSetting(nb: Notebook, cellId: string, key: string, value: Value | undefined, registry: CellRegistry = cellKinds): Notebook {
  const i = indexOf(nb, cellId);
  const cell = nb.cells[i]!;
  if (sameValue(cell.settings[key], value)) return nb;
  const kind = registry.get(cell.kind);
  if (!kind) throw new UsageError(`cell ${cellId}`, `it is an unknown "${cell.info.trim()}" cell, kept as written`, 'Edit its text in a Markdown editor, or delete it');
  const spec = kind.schema[key];
  if (value !== undefined && spec) {
    const bad = spec.check(value, {});
    if (bad) throw new UsageError(`cell ${cellId}, setting "${key}"`, bad);
  }
  if (value === undefined && spec?.required) throw new UsageError(`cell ${cellId}, setting "${key}"`, 'is required and cannot be removed');
  if (kind.body !== 'prose') {
    const next = readCell(cell.id, cell.lead, rewriteFenced(cell, key, value, nb.eol, registry), registry);
    return { ...nb, cells: nb.cells.map((c, j) => (j === i ? next : c)) };
  }
  if (key !== 'text' || typeof value !== 'string') throw new UsageError(`cell ${cellId}`, `prose has only a "text" setting (a string), not "${key}"`);
  // Prose: re-read it, since the new text may hold blank lines at its ends or a cell fence.
  const raw = value === '' ? '' : withEol(value, nb.eol) + nb.eol;
  let first = true;
  const fresh = new Set<string>();
  const scanned = scanCells(splitLines(cell.lead + raw), (k) => {
    if (k === 'markdown' && first) { first = false; return cell.id; }
    let id = nextId(nb, k);
    while (fresh.has(id)) id = `${k}-${Number(id.slice(k.length + 1)) + 1}`;
    fresh.add(id);
    return id;
  }, registry);
  const cells = [...nb.cells.slice(0, i), ...scanned.cells, ...nb.cells.slice(i + 1)];
  const after = i + scanned.cells.length;
  if (after < cells.length) cells[after] = { ...cells[after]!, lead: scanned.tail + cells[after]!.lead };
  return tidy({ ...nb, cells, tail: after < cells.length ? nb.tail : scanned.tail + nb.tail }, after);
}

/** Sets a front-matter key (adding a front matter block when there is none). */
export function setFrontMatter(nb: Notebook, key: string, value: Value | undefined): Notebook {
  if (sameValue(nb.frontMatter?.values[key], value)) return nb;
  const eol = nb.eol;
  if (!nb.frontMatter) {
    if (value === undefined) return nb;
    const raw = `---${eol}---${eol}`;
    return setFrontMatter({ ...nb, frontMatter: readFrontMatter(raw) }, key, value);
  }
  const lines = splitLines(nb.frontMatter.raw);
  const closing = lines[lines.length - 1]!;
  const inner = setSettingText(lines.slice(1, -1).join(''), key, value, eolOf(lines[0]!) || eol);
  return tidy({ ...nb, frontMatter: readFrontMatter(lines[0]! + inner + closing) }, 0);
}

/** Ensures the text before cell `i` ends a line, so that cell `i` starts on its own line. */
function tidy(nb: Notebook, i: number): Notebook {
  if (i > nb.cells.length || (i === nb.cells.length && nb.tail === '')) return nb;
  const cells = [...nb.cells];
  if (i > 0) {
    const prev = cells[i - 1]!;
    if (!prev.raw.endsWith('\n')) cells[i - 1] = { ...prev, raw: prev.raw + nb.eol };
    return { ...nb, cells };
  }
  const fm = nb.frontMatter;
  if (fm && !fm.raw.endsWith('\n')) return { ...nb, frontMatter: readFrontMatter(fm.raw + nb.eol) };
  return nb;
}

/**
 * Inserts a new cell of `kind` before position `index` (cells.length appends), written as the app
 * writes cells: a blank line, the fence, one `key: value` line per setting. Returns its id.
 */
export function insertCell(nb: Notebook, index: number, kind: string, settings: Record<string, Value> = {},
  registry: CellRegistry = cellKinds): { notebook: Notebook; id: string } {
  const spec = registry.get(kind);
  if (!spec) throw new UsageError(`cell kind "${kind}"`, 'is not a registered cell kind', `Use one of ${registry.list().map((k) => k.kind).join(', ')}`);
  if (!(index >= 0 && index <= nb.cells.length)) throw new UsageError('insertCell', `index ${index} is outside 0..${nb.cells.length}`);
  const eol = nb.eol;
  const id = nextId(nb, kind);
  const lead = index === 0 && !nb.frontMatter ? '' : eol;
  let cell: Cell;
  if (spec.body === 'prose') {
    const text = settings['text'];
    if (typeof text !== 'string' || !/\S/.test(text)) throw new UsageError('insertCell', 'a markdown cell needs some text', 'Pass { text: "…" }');
    cell = readCell(id, lead, withEol(text.trim(), eol) + eol, registry);
  } else {
    cell = readCell(id, lead, `\`\`\`${kind}${eol}\`\`\`${eol}`, registry);
    let tmp: Notebook = { ...nb, cells: [cell] };
    for (const [k, v] of Object.entries(settings)) tmp = setSetting(tmp, id, k, v, registry);
    cell = tmp.cells[0]!;
  }
  const cells = [...nb.cells.slice(0, index), cell, ...nb.cells.slice(index)];
  const next = cells[index + 1];
  if (index === 0 && next && next.lead === '') cells[index + 1] = { ...next, lead: eol };
  return { notebook: tidy(tidy({ ...nb, cells }, index), index + 1), id };
}

export function removeCell(nb: Notebook, id: string): Notebook {
  const i = indexOf(nb, id);
  const cells = nb.cells.filter((_, j) => j !== i);
  if (i === 0 && cells[0] && !nb.frontMatter) cells[0] = { ...cells[0], lead: '' };
  return tidy({ ...nb, cells }, i);
}

/** Moves a cell to position `to` (in the list without it). */
export function moveCell(nb: Notebook, id: string, to: number): Notebook {
  const i = indexOf(nb, id);
  if (!(to >= 0 && to < nb.cells.length)) throw new UsageError('moveCell', `position ${to} is outside 0..${nb.cells.length - 1}`);
  if (to === i) return nb;
  const cell = nb.cells[i]!;
  const rest = removeCell(nb, id);
  const lead = to === 0 && !nb.frontMatter ? '' : cell.lead || nb.eol;
  const cells = [...rest.cells.slice(0, to), { ...cell, lead }, ...rest.cells.slice(to)];
  const next = cells[to + 1];
  if (to === 0 && next && next.lead === '') cells[to + 1] = { ...next, lead: nb.eol };
  return tidy(tidy({ ...rest, cells }, to), to + 1);
}
