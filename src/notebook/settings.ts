// The YAML subset that cell bodies and the front matter are written in: one `key: value` per line,
// values that are strings (bare, "double" or 'single' quoted), numbers, booleans, null, and lists
// (`[a, b]` on the line, or `- a` lines under an empty `key:`). Comments (`# …`), blank lines and
// lines we do not understand are kept as written: editing one key rewrites only that key's lines,
// so a teacher's comments, key order and unknown keys survive a slider drag.

export type Scalar = string | number | boolean | null;
export type Value = Scalar | readonly Scalar[];
export type Settings = Readonly<Record<string, Value>>;

export interface Problem {
  severity: 'error' | 'warning';
  /** The setting the problem is about, when there is one. */
  key?: string;
  /** 1-based line within the text that was parsed (the cell body or the front matter). */
  line?: number;
  message: string;
}

/** One `key: value` entry: where it sits, so that it can be rewritten in place. */
interface Entry {
  key: string;
  first: number;            // index of the key line
  last: number;             // index of its last line (block list items), inclusive
  value: Value | undefined; // undefined: the value could not be read (kept as written)
  quote: '"' | "'" | '';    // how a string value was written, reused when it is rewritten
  block: boolean;           // a `- item` list under the key
}

/** A body split into lines (each with its own line ending) plus the entries found in it. */
export interface SettingsText {
  lines: string[];
  entries: Entry[];
  values: Record<string, Value>;
  problems: Problem[];
}

const KEY_LINE = /^([ \t]*)([A-Za-z_][\w.-]*)[ \t]*:(?=[ \t]|$)([ \t]*)(.*)$/;
const ITEM_LINE = /^([ \t]*)-(?:[ \t]+(.*))?$/;
const NUMBER = /^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$/;

/** Splits text into lines that keep their line endings (`\n` or `\r\n`); joining them gives the text back. */
export function splitLines(text: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (;;) {
    const nl = text.indexOf('\n', start);
    if (nl < 0) break;
    out.push(text.slice(start, nl + 1));
    start = nl + 1;
  }
  if (start < text.length) out.push(text.slice(start));
  return out;
}

/** The line's content without its line ending. */
export function content(line: string): string {
  return line.endsWith('\r\n') ? line.slice(0, -2) : line.endsWith('\n') ? line.slice(0, -1) : line;
}

export function eolOf(line: string): string {
  return line.slice(content(line).length);
}

// ---------------------------------------------------------------------------------------------
// Reading values

/** Splits `value  # comment` into the value text and the rest (spaces and comment), YAML style:
 *  a `#` starts a comment only after whitespace, and never inside quotes. */
function splitComment(s: string): [string, string] {
  if (s.startsWith('#')) return ['', s];
  let quote = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = '';
    } else if ((c === '"' || c === "'") && (i === 0 || /[\s,[]/.test(s[i - 1]!))) {
      quote = c;
    } else if (c === '#' && i > 0 && /\s/.test(s[i - 1]!)) {
      let j = i;
      while (j > 0 && /\s/.test(s[j - 1]!)) j--;
      return [s.slice(0, j), s.slice(j)];
    }
  }
  const t = s.replace(/[ \t]+$/, '');
  return [t, s.slice(t.length)];
}

type Parsed = { ok: true; value: Value; quote: Entry['quote'] } | { ok: false; message: string };

/** A scalar written bare (not quoted): booleans, null and numbers as YAML 1.2's core schema reads them. */
export function bareScalar(s: string): Scalar {
  if (/^(true|True|TRUE)$/.test(s)) return true;
  if (/^(false|False|FALSE)$/.test(s)) return false;
  if (/^(null|Null|NULL|~)$/.test(s)) return null;
  if (NUMBER.test(s)) {
    const n = Number(s);
    if (Number.isFinite(n)) return n;
  }
  return s;
}

function quoted(s: string): Parsed {
  if (s[0] === '"') {
    try {
      const v: unknown = JSON.parse(s);
      if (typeof v === 'string') return { ok: true, value: v, quote: '"' };
    } catch { /* reported below */ }
    return { ok: false, message: `${s} is not a valid double-quoted string (escape " and \\ with a backslash)` };
  }
  if (s.length < 2 || !s.endsWith("'") || /[^']'(?!')/.test(s.slice(1, -1).replace(/''/g, ''))) {
    return { ok: false, message: `${s} is not a valid single-quoted string (write a ' inside it as '')` };
  }
  return { ok: true, value: s.slice(1, -1).replace(/''/g, "'"), quote: "'" };
}

function scalar(s: string): Parsed {
  if (s[0] === '"' || s[0] === "'") return quoted(s);
  if (s[0] === '{') return { ok: false, message: 'mappings ({…}) are not supported in settings; write one key per line' };
  return { ok: true, value: bareScalar(s), quote: '' };
}

/** Reads a value written on one line (after the colon, comment already removed). */
export function parseValue(s: string): Parsed {
  if (s === '') return { ok: true, value: null, quote: '' };
  if (s[0] !== '[') return scalar(s);
  if (!s.endsWith(']')) return { ok: false, message: `the list ${s} has no closing ]` };
  const inner = s.slice(1, -1).trim();
  if (inner === '') return { ok: true, value: [], quote: '' };
  const items: Scalar[] = [];
  let quote = '';
  let start = 0;
  const push = (t: string): Parsed | null => {
    const item = t.trim();
    if (item === '' || item[0] === '[') return { ok: false, message: `the list ${s} has an empty or nested item; lists hold numbers, strings or booleans` };
    const p = scalar(item);
    if (!p.ok) return p;
    items.push(p.value as Scalar);
    return null;
  };
  for (let i = 0; i <= inner.length; i++) {
    const c = inner[i];
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = '';
    } else if ((c === '"' || c === "'") && inner.slice(start, i).trim() === '') quote = c;
    else if (c === ',' || c === undefined) {
      const bad = push(inner.slice(start, i));
      if (bad) return bad;
      start = i + 1;
    }
  }
  return { ok: true, value: items, quote: '' };
}

// ---------------------------------------------------------------------------------------------
// Reading a body

/** `offset`: lines before `text` in what the user sees (the fence line), so messages count from there. */
export function parseSettings(text: string, offset = 0): SettingsText {
  const lines = splitLines(text);
  const entries: Entry[] = [];
  const problems: Problem[] = [];
  let base: string | null = null;       // the indentation of top-level keys (that of the first one)
  let open: Entry | null = null;        // the entry whose `- item` lines are being read
  for (let i = 0; i < lines.length; i++) {
    const line = content(lines[i]!);
    const n = i + 1 + offset;
    if (/^\s*(#.*)?$/.test(line)) continue;           // blank or comment: kept, means nothing
    const last = entries[entries.length - 1];
    const item = ITEM_LINE.exec(line);
    if (item && open) {
      const v = splitComment(item[2] ?? '')[0].trim();
      const p = v === '' ? null : scalar(v);
      if (p && p.ok && Array.isArray(open.value)) open.value = [...open.value, p.value as Scalar];
      else {
        problems.push({ severity: 'error', key: open.key, line: n, message: `"${open.key}", list item on line ${n}: ${p && !p.ok ? p.message : 'it is empty'}` });
        open.value = undefined;
      }
      open.last = i;
      continue;
    }
    const m = KEY_LINE.exec(line);
    if (m && (base === null || m[1] === base)) {
      base ??= m[1]!;
      const key = m[2]!;
      const v = splitComment(m[4]!)[0];
      const p = parseValue(v);
      const entry: Entry = { key, first: i, last: i, value: p.ok ? p.value : undefined, quote: p.ok ? p.quote : '', block: false };
      if (!p.ok) problems.push({ severity: 'error', key, line: n, message: `"${key}" on line ${n}: ${p.message}` });
      if (entries.some((e) => e.key === key)) {
        problems.push({ severity: 'warning', key, line: n, message: `"${key}" is set twice; the last one (line ${n}) wins` });
      }
      entries.push(entry);
      open = null;
      if (p.ok && v === '') {
        // An empty value opens a block list if `- item` lines follow; otherwise it is null.
        const next = lines.slice(i + 1).map(content).find((l) => !/^\s*(#.*)?$/.test(l));
        if (next !== undefined && ITEM_LINE.test(next)) {
          entry.block = true;
          entry.value = [];
          open = entry;
        }
      }
      continue;
    }
    open = null;
    if (last && /^[ \t]/.test(line) && line.length - line.trimStart().length > (base ?? '').length) {
      if (last.value !== undefined) {
        problems.push({ severity: 'warning', key: last.key, line: n, message: `"${last.key}" has indented lines under it (line ${n}): nested mappings are not supported, so "${last.key}" is ignored and kept as written` });
      }
      last.value = undefined;
      last.last = i;
      continue;
    }
    problems.push({ severity: 'warning', line: n, message: `line ${n} ("${line.trim().slice(0, 40)}") is not a \`key: value\` line; it is kept as written and ignored` });
  }
  const values: Record<string, Value> = {};
  for (const e of entries) {
    if (e.value === undefined) delete values[e.key];
    else values[e.key] = e.value;
  }
  return { lines, entries, values, problems };
}

// ---------------------------------------------------------------------------------------------
// Writing values

/** True when the string, written bare, reads back as the same string. */
function bareIsSafe(s: string): boolean {
  if (s === '' || s !== s.trim() || /[\r\n\t]/.test(s)) return false;
  if (/^[[\]{}"'#&*!|>%@`,?:-]/.test(s) && !/^-[^\s]/.test(s)) return false;
  if (/:(\s|$)|\s#/.test(s)) return false;
  return bareScalar(s) === s;
}

/** Writes one scalar; `prefer` is the quote style the value had before, kept when it still works. */
export function formatScalar(v: Scalar, prefer: Entry['quote'] = '', inList = false): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new RangeError(`${v} cannot be written in a notebook; use a finite number`);
    return String(v);
  }
  if (prefer === "'" && !/[\r\n]/.test(v)) return `'${v.replace(/'/g, "''")}'`;
  if (prefer === '' && bareIsSafe(v) && !(inList && /[,\]]/.test(v))) return v;
  // JSON's escapes are YAML's; a backtick is escaped too so the text can sit in a ``` info string.
  return JSON.stringify(v).replace(/`/g, '\\u0060');
}

export function formatValue(v: Value, prefer: Entry['quote'] = ''): string {
  if (Array.isArray(v)) return `[${(v as Scalar[]).map((x) => formatScalar(x, '', true)).join(', ')}]`;
  return formatScalar(v as Scalar, prefer);
}

export function sameValue(a: Value | undefined, b: Value | undefined): boolean {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => Object.is(x, b[i]));
  return Object.is(a, b);
}

/**
 * Returns the body text with `key` set to `value` (undefined removes it). Only that key's lines
 * change: its indentation, the spacing after the colon and a trailing comment are kept; a block
 * list stays a block list. A new key is added after the last non-blank line.
 */
export function setSettingText(text: string, key: string, value: Value | undefined, eol: string): string {
  const parsed = parseSettings(text);
  const lines = [...parsed.lines];
  const entry = [...parsed.entries].reverse().find((e) => e.key === key);
  if (!entry) {
    if (value === undefined) return text;
    let at = lines.length;
    while (at > 0 && /^\s*$/.test(content(lines[at - 1]!))) at--;
    if (at > 0 && eolOf(lines[at - 1]!) === '') lines[at - 1] += eol;
    const indent = parsed.entries.length ? KEY_LINE.exec(content(lines[parsed.entries[0]!.first]!))![1]! : '';
    lines.splice(at, 0, ...writeEntry(indent, key, ' ', '', value, false, '', '', eol));
    return lines.join('');
  }
  const keyLine = lines[entry.first]!;
  const m = KEY_LINE.exec(content(keyLine))!;
  const [, indent, , space, rest] = m;
  const [, comment] = splitComment(rest!);
  const lastEol = eolOf(lines[entry.last]!);
  if (value === undefined) {
    lines.splice(entry.first, entry.last - entry.first + 1);
    return lines.join('');
  }
  const itemIndent = entry.block ? (ITEM_LINE.exec(content(lines[entry.first + 1] ?? ''))?.[1] ?? indent) + '- ' : `${indent}  - `;
  const replacement = writeEntry(indent!, key, space || ' ', comment, value, entry.block && Array.isArray(value) && value.length > 0,
    itemIndent, entry.quote, lastEol, eolOf(keyLine) || eol);
  lines.splice(entry.first, entry.last - entry.first + 1, ...replacement);
  return lines.join('');
}

function writeEntry(indent: string, key: string, space: string, comment: string, value: Value, block: boolean,
  itemPrefix: string, quote: Entry['quote'], lastEol: string, innerEol = lastEol): string[] {
  if (comment !== '' && !/^\s/.test(comment)) comment = ` ${comment}`;
  if (block && Array.isArray(value)) {
    const items = (value as Scalar[]).map((x, i) => `${itemPrefix}${formatScalar(x)}${i === value.length - 1 ? lastEol : innerEol}`);
    return [`${indent}${key}:${comment}${innerEol}`, ...items];
  }
  return [`${indent}${key}:${space}${formatValue(value, quote)}${comment}${lastEol}`];
}
