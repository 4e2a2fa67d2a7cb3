// Random mutation recipes (ops.ts) for each input kind, and random Unicode text.

import type { FuzzRng } from './rng.ts';
import type { Field, FieldMap } from './fields.ts';
import type { JsonPath, JsonValue, Op } from './ops.ts';

// ---------------------------------------------------------------------------------------------
// Numbers at the edges

const U32_EDGES = [0, 1, 2, 3, 4, 5, 7, 8, 12, 13, 0x7f, 0xff, 0x7fff, 0xffff, 1 << 24, (1 << 24) + 1, 0x7fffffff, 0x80000000, 0x80000001, 0xfffffffe, 0xffffffff];
const U64_EDGES = [0n, 1n, 2n, 7n, 8n, 0x7fffffffn, 0xffffffffn, 0x100000000n, 2n ** 40n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 62n, 2n ** 63n, 2n ** 64n - 1n];

function le(v: bigint, size: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < size; i++) out.push(Number((v >> BigInt(8 * i)) & 0xffn));
  return out;
}

function readLe(b: Uint8Array, at: number, size: number): bigint {
  let v = 0n;
  for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[at + i] ?? 0);
  return v;
}

/** A boundary value for a field, or its own value nudged. */
export function edgeFor(rng: FuzzRng, f: Field, bytes: Uint8Array): number[] {
  const mask = (1n << BigInt(8 * f.size)) - 1n;
  const orig = readLe(bytes, f.at, f.size);
  const r = rng.int(10);
  let v: bigint;
  if (r < 3) v = orig + BigInt(rng.pick([1, -1, 2, -2, 8, -8])); // off by a little
  else if (r < 4) v = orig * 2n;
  else if (r < 5) v = BigInt(bytes.length - f.at + rng.range(-16, 16)); // about the bytes that remain
  else if (f.size === 8) v = rng.pick(U64_EDGES);
  else if (f.size === 4) v = BigInt(rng.pick(U32_EDGES));
  else v = BigInt(rng.pick([0, 1, 2, 0x7f, 0x80, 0xff]));
  return le(v & mask, f.size);
}

// ---------------------------------------------------------------------------------------------
// Byte-level recipes

const BYTE_EDGES = [0, 0xff, 0x7f, 0x80, 0x01, 0x20, 0x7b, 0x22, 0x0a];

/** Where a mutation goes: mostly inside the header, where the numbers a loader trusts are. */
function pos(rng: FuzzRng, len: number, headerEnd: number): number {
  return rng.chance(0.8) ? rng.int(Math.max(1, Math.min(headerEnd, len))) : rng.int(Math.max(1, len));
}

export interface FileInfo { bytes: Uint8Array; map?: FieldMap }

export function byteOps(rng: FuzzRng, file: number, info: FileInfo, others: string[]): Op[] {
  const { bytes, map } = info;
  const len = bytes.length, head = map?.headerEnd ?? len;
  const ops: Op[] = [];
  const n = rng.range(1, 4);
  for (let k = 0; k < n; k++) {
    const r = rng.int(100);
    if (map && map.fields.length > 0 && r < 35) {
      const f = rng.pick(map.fields);
      ops.push({ op: 'set', file, at: f.at, bytes: edgeFor(rng, f, bytes) });
    } else if (map && map.records.length > 0 && r < 42) {
      // A record written twice: a duplicated key, tensor or token (with its count raised to match).
      const rec = rng.pick(map.records);
      ops.push({ op: 'copy', file, from: rec.start, len: rec.end - rec.start, at: rng.chance(0.7) ? rec.end : rec.start });
      if (rec.countAt >= 0 && rng.chance(0.8)) ops.push({ op: 'set', file, at: rec.countAt, bytes: le(readLe(bytes, rec.countAt, 8) + 1n, 8) });
    } else if (r < 55) {
      ops.push({ op: 'flip', file, at: pos(rng, len, head), bit: rng.int(8) });
    } else if (r < 65) {
      const at = pos(rng, len, head);
      ops.push({ op: 'set', file, at, bytes: Array.from({ length: rng.range(1, 8) }, () => rng.chance(0.5) ? rng.pick(BYTE_EDGES) : rng.int(256)) });
    } else if (r < 72) {
      ops.push({ op: 'set', file, at: pos(rng, len, head) & ~3, bytes: le(BigInt(rng.pick(U32_EDGES)), 4) });
    } else if (r < 82) {
      // Truncation: in the header, just past it, or near the end (a download cut short).
      const w = rng.int(3);
      ops.push({ op: 'truncate', file, len: w === 0 ? rng.int(head + 1) : w === 1 ? head + rng.int(64) : len - 1 - rng.int(Math.min(len, 4096)) });
    } else if (r < 87) {
      ops.push({ op: 'insert', file, at: pos(rng, len, head), bytes: Array.from({ length: rng.size(64) }, () => rng.int(256)) });
    } else if (r < 92) {
      ops.push({ op: 'delete', file, at: pos(rng, len, head), len: rng.size(4096) });
    } else if (r < 95) {
      ops.push({ op: 'copy', file, from: pos(rng, len, head), len: rng.size(4096), at: pos(rng, len, head) });
    } else if (others.length > 0) {
      ops.push({ op: 'splice', file, at: pos(rng, len, head), base: rng.pick(others), from: rng.int(len), len: rng.size(1 << 20) });
    } else {
      ops.push({ op: 'truncate', file, len: rng.int(len + 1) });
    }
  }
  return ops;
}

// ---------------------------------------------------------------------------------------------
// JSON recipes

/** A random path into `v`: each step stops with some chance, else goes into a random child. */
export function randomPath(rng: FuzzRng, v: JsonValue, maxDepth = 6): JsonPath {
  const path: JsonPath = [];
  let cur: JsonValue = v;
  while (path.length < maxDepth && typeof cur === 'object' && cur !== null && (path.length === 0 || rng.chance(0.7))) {
    if (Array.isArray(cur)) {
      if (cur.length === 0) break;
      const i = rng.int(cur.length);
      path.push(i);
      cur = cur[i]!;
    } else {
      const keys = Object.keys(cur);
      if (keys.length === 0) break;
      const k = rng.pick(keys);
      path.push(k);
      cur = cur[k]!;
    }
  }
  return path;
}

export function getPath(v: JsonValue, path: JsonPath): JsonValue | undefined {
  let cur: any = v;
  for (const p of path) { if (typeof cur !== 'object' || cur === null) return undefined; cur = cur[p]; }
  return cur;
}

const JSON_EDGES: JsonValue[] = [null, true, false, 0, -1, 1, 0.5, -0.0, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, -(2 ** 63), 1e308, -1e308, 5e-324,
  '', 'x', 'F32', 'I64', 'F8_E4M3', 'BPE', 'llama', 'ByteLevel', '\u0000', '<s>', '\ud800', [], [0], [-1], [2 ** 31, 2 ** 31], [2 ** 53, 2 ** 53],
  [0, 2 ** 40], ['a', 'b'], {}, { type: 'BPE' }, { a: 1 }];

export function jsonValue(rng: FuzzRng, old: JsonValue | undefined): JsonValue {
  const r = rng.int(10);
  if (r < 4 || old === undefined) return rng.pick(JSON_EDGES);
  if (typeof old === 'number') return rng.pick([old + 1, old - 1, old * 2, -old, old + 0.5, old * 1e6, Math.floor(old / 2)]);
  if (typeof old === 'string') return rng.pick([old.slice(0, rng.int(old.length + 1)), old + randomText(rng, 4), old + old, randomText(rng, 8), old.toUpperCase()]);
  if (Array.isArray(old)) {
    if (old.length === 0) return [rng.pick(JSON_EDGES)];
    return rng.pick([old.slice(1), [...old, old[0]!], [...old].reverse(), old.slice(0, rng.int(old.length)), [old[0]!, old[0]!]]);
  }
  if (old && typeof old === 'object') return rng.pick([{}, [] as JsonValue, { ...old, extra: rng.pick(JSON_EDGES) }]);
  return rng.pick(JSON_EDGES);
}

export function jsonOps(rng: FuzzRng, file: number, json: JsonValue, op: 'json' | 'header-json' = 'json', paths?: JsonPath[]): Op[] {
  const ops: Op[] = [];
  const n = rng.range(1, 3);
  for (let k = 0; k < n; k++) {
    const path = paths && rng.chance(0.7) ? rng.pick(paths) : randomPath(rng, json);
    if (path.length === 0) continue;
    const old = getPath(json, path);
    const r = rng.int(10);
    if (r < 2) ops.push({ op, file, path, del: true });
    else if (r < 3 && op === 'json' && typeof json === 'object' && json !== null && !Array.isArray(json)) {
      ops.push({ op: 'json', file, path: [path[0]!], value: jsonValue(rng, getPath(json, [path[0]!])), dup: true });
    } else ops.push({ op, file, path, value: jsonValue(rng, old) });
  }
  return ops;
}

// ---------------------------------------------------------------------------------------------
// Unicode

const POOLS: (string | [number, number])[][] = [
  [[0x20, 0x7e]],                                                     // ASCII
  [[0x00, 0x1f], [0x7f, 0x9f]],                                      // C0 and C1 controls
  ['\t', '\n', '\r', '\r\n', '\v', '\f', '\u0085', '\u00a0', '\u1680', '\u2000', '\u200b', '\u2028', '\u2029', '\u202f', '\u3000', '\ufeff', '  ', '\n\n'],
  [[0xd800, 0xdbff], [0xdc00, 0xdfff]],                               // lone surrogates
  ['\ud83d\ude00', '\ud83d\udc4d\ud83c\udffd', '\ud83d\udc69\u200d\ud83d\udcbb', '\ud800\udc00', '\udbff\udfff', '\ud835\udc00'], // astral, ZWJ
  [[0x300, 0x36f], [0x20d0, 0x20ff], [0x1ab0, 0x1aff]],              // combining marks
  [[0x5d0, 0x5ea], [0x627, 0x64a], '\u202e', '\u202d', '\u200e', '\u200f', '\u2066', '\u2069'], // RTL and bidi controls
  [[0x4e00, 0x4fff], [0x3040, 0x30ff], [0xac00, 0xac80], [0x900, 0x97f], [0xe00, 0xe7f]],   // CJK, kana, Hangul, Devanagari, Thai
  ['\ufffd', '\uffff', '\ufffe', '\ufdd0', '\u0000', '\u2581', '\u2581\u2581', '\u0120', '\u010a'],
  ['<s>', '</s>', '<unk>', '<0x0A>', '<|begin_of_text|>', '<|eot_id|>', '<|start_header_id|>', "'s", "'LL", ' the', '123456', '1,000.5', '```', '<script>', '<img src=x onerror=alert(1)>'],
  ['C\u0327a\u0300', 'e\u0301\u0301\u0301', '\u1100\u1161\u11a8', 'ﬁ', 'Å', 'Å', 'ǅ', 'ß', 'İ', 'Cửa Việt'],
];

function pickFrom(rng: FuzzRng, pool: (string | [number, number])[]): string {
  const p = rng.pick(pool);
  if (typeof p === 'string') return p;
  return String.fromCharCode(rng.range(p[0], p[1]));
}

/** Text of about `len` UTF-16 units, in runs from the pools above. */
export function randomText(rng: FuzzRng, len: number): string {
  const parts: string[] = [];
  let n = 0;
  while (n < len) {
    const pool = rng.pick(POOLS);
    const run = rng.range(1, 12);
    for (let i = 0; i < run && n < len; i++) { const s = pickFrom(rng, pool); parts.push(s); n += s.length; }
  }
  return parts.join('');
}

// ---------------------------------------------------------------------------------------------
// Notebook text recipes

const NB_FRAGMENTS = [
  '```prompt\n', '```\n', '````\n', '~~~\n', '~~~attention\n', '```next-token\n', '```attention layer=2 head=99999\n',
  '```logit-lens\n', '```prompt chat name="a b"\n', '```unknownkind\n', '```python\n', '   ```prompt\n', '---\n', '...\n',
  'title: x\n', 'model: "unterminated\n', "model: 'it''s'\n", 'backend: quantum\n', 'layer: 1e999\n', 'layer: -0\n',
  'head: [1, 2, [3]]\n', 'heads:\n  - 1\n  - x\n', '  nested: 1\n', 'key: value # comment\n', 'key: {a: 1}\n', 'key:\n',
  'text: \\u0000\n', '\r\n', '\r', '\uFEFF', '# Heading\n', '\n\n\n', 'prompt: ```\n', 'layer: 3\nlayer: 4\n',
];

export function notebookOps(rng: FuzzRng, text: string): Op[] {
  const ops: Op[] = [];
  const n = rng.range(1, 5);
  let len = text.length;
  const lineStart = (at: number) => { const i = text.lastIndexOf('\n', at - 1); return i < 0 ? 0 : i + 1; };
  for (let k = 0; k < n; k++) {
    const r = rng.int(100);
    const at = lineStart(rng.int(len + 1));
    if (r < 40) ops.push({ op: 'text', at, del: 0, insert: rng.pick(NB_FRAGMENTS) });
    else if (r < 55) ops.push({ op: 'text', at: rng.int(len + 1), del: 0, insert: randomText(rng, rng.size(40)) });
    else if (r < 65) ops.push({ op: 'text', at: rng.int(len + 1), del: rng.size(200), insert: '' });
    else if (r < 75) { const from = lineStart(rng.int(len + 1)); ops.push({ op: 'text', at, del: 0, insert: text.slice(from, from + rng.size(300)) }); }
    else if (r < 82) ops.push({ op: 'truncate', len: rng.int(len + 1) });
    else if (r < 90) ops.push({ op: 'text-byte', at: rng.int(len * 2 + 1), value: rng.pick([0, 0xff, 0x80, 0xc3, 0xe2, 0x0a, 0x0d, 0x60, rng.int(256)]) });
    else ops.push({ op: 'text', at: rng.int(len + 1), del: rng.size(3), insert: rng.pick(['\r\n', '\n', '\r', '`', '~', ':', '"', "'", '-', '#', ' ', '\t']) });
    len = Math.max(len, 1);
  }
  return ops;
}
