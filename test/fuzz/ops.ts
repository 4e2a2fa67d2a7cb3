// Mutations as data. Every fuzz input is a base (a valid file from corpus.ts) plus a list of these
// operations, so that a failure can be printed, saved as a regression recipe (regressions/*.json)
// and replayed exactly, even when the base is a large shared file that must not be copied.
// Positions are clamped to the file at apply time, so a recipe never goes out of range.

export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };
export type JsonPath = (string | number)[];

export type Op =
  /** Overwrite bytes at `at` (clipped at the end). */
  | { op: 'set'; file?: number; at: number; bytes: number[] }
  | { op: 'flip'; file?: number; at: number; bit: number }
  | { op: 'truncate'; file?: number; len: number }
  | { op: 'insert'; file?: number; at: number; bytes: number[] }
  | { op: 'delete'; file?: number; at: number; len: number }
  /** Insert a copy of bytes [from, from+len) at `at` (duplicated keys, repeated records). */
  | { op: 'copy'; file?: number; from: number; len: number; at: number }
  /** Replace everything from `at` on with `len` bytes of another base's file from `from`. */
  | { op: 'splice'; file?: number; at: number; base: string; baseFile?: number; from: number; len: number }
  /** Parse the file as JSON, set (or delete) the value at `path`, write it back. `dup`: instead
   *  append `"key": value` to the top-level object, so the key appears twice in the text. */
  | { op: 'json'; file?: number; path: JsonPath; value?: JsonValue; del?: boolean; dup?: boolean }
  /** The same on a safetensors file's JSON header (its length prefix rewritten to match). */
  | { op: 'header-json'; file?: number; path: JsonPath; value?: JsonValue; del?: boolean }
  /** Text edit (notebooks): at UTF-16 index `at`, remove `del` units and insert `insert`. */
  | { op: 'text'; at: number; del: number; insert: string }
  /** Encode the text as UTF-8, change one byte, decode it again as a browser would (U+FFFD). */
  | { op: 'text-byte'; at: number; value: number }
  /** Leave out one of the files (config.json, the tokenizer). */
  | { op: 'drop-file'; file: number };

const clamp = (x: number, n: number) => Math.max(0, Math.min(Math.floor(x), n));

export function applyByteOp(b: Uint8Array, o: Op, other?: (base: string, file: number) => Uint8Array): Uint8Array {
  const n = b.length;
  switch (o.op) {
    case 'set': {
      const out = b.slice();
      const at = clamp(o.at, n);
      for (let i = 0; i < o.bytes.length && at + i < n; i++) out[at + i] = o.bytes[i]! & 0xff;
      return out;
    }
    case 'flip': {
      if (n === 0) return b;
      const out = b.slice();
      out[clamp(o.at, n - 1)]! ^= 1 << (o.bit & 7);
      return out;
    }
    case 'truncate': return b.slice(0, clamp(o.len, n));
    case 'insert': {
      const at = clamp(o.at, n);
      return concat([b.subarray(0, at), Uint8Array.from(o.bytes), b.subarray(at)]);
    }
    case 'delete': {
      const at = clamp(o.at, n);
      return concat([b.subarray(0, at), b.subarray(clamp(at + o.len, n))]);
    }
    case 'copy': {
      const from = clamp(o.from, n), at = clamp(o.at, n);
      return concat([b.subarray(0, at), b.slice(from, clamp(from + o.len, n)), b.subarray(at)]);
    }
    case 'splice': {
      const src = other!(o.base, o.baseFile ?? 0);
      const from = clamp(o.from, src.length);
      return concat([b.subarray(0, clamp(o.at, n)), src.subarray(from, clamp(from + o.len, src.length))]);
    }
    case 'json': case 'header-json': return o.op === 'json' ? jsonFileOp(b, o) : headerJsonOp(b, o);
    default: return b;
  }
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

const enc = new TextEncoder();
const lossy = new TextDecoder('utf-8');

/** Sets or deletes the value at `path` in a copy of `root`, copying only the containers on the
 *  path (the 9 MB tokenizer.json is mutated this way without cloning it). Missing parents: no-op. */
export function setAtPath(root: JsonValue, path: JsonPath, value: JsonValue | undefined, del: boolean): JsonValue {
  if (path.length === 0) return del ? null : value ?? null;
  if (typeof root !== 'object' || root === null) return root;
  const [head, ...rest] = path;
  const copy: any = Array.isArray(root) ? [...root] : { ...root };
  if (rest.length === 0) {
    if (del) {
      if (Array.isArray(copy) && typeof head === 'number') copy.splice(head, 1);
      else delete copy[head as string];
    } else copy[head as string] = value ?? null;
    return copy;
  }
  const child = copy[head as string];
  if (child === undefined) return root;
  copy[head as string] = setAtPath(child, rest, value, del);
  return copy;
}

function jsonFileOp(b: Uint8Array, o: Extract<Op, { op: 'json' }>): Uint8Array {
  let j: JsonValue;
  try { j = JSON.parse(lossy.decode(b)); } catch { return b; }
  if (o.dup) {
    const text = JSON.stringify(j);
    const key = String(o.path[0] ?? 'x');
    if (!text.endsWith('}')) return b;
    return enc.encode(`${text.slice(0, -1)}${text.length > 2 ? ',' : ''}${JSON.stringify(key)}:${JSON.stringify(o.value ?? null)}}`);
  }
  return enc.encode(JSON.stringify(setAtPath(j, o.path, o.value, o.del ?? false), null, 1));
}

function headerJsonOp(b: Uint8Array, o: Extract<Op, { op: 'header-json' }>): Uint8Array {
  if (b.length < 8) return b;
  const len = Number(new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true));
  if (len > b.length - 8) return b;
  let j: JsonValue;
  try { j = JSON.parse(lossy.decode(b.subarray(8, 8 + len))); } catch { return b; }
  let text = JSON.stringify(setAtPath(j, o.path, o.value, o.del ?? false));
  while ((8 + enc.encode(text).length) % 8 !== 0) text += ' ';
  const head = enc.encode(text);
  const out = new Uint8Array(8 + head.length + (b.length - 8 - len));
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  out.set(b.subarray(8 + len), 8 + head.length);
  return out;
}

export function applyTextOp(t: string, o: Op): string {
  if (o.op === 'text') {
    const at = clamp(o.at, t.length);
    return t.slice(0, at) + o.insert + t.slice(clamp(at + o.del, t.length));
  }
  if (o.op === 'text-byte') {
    const b = enc.encode(t);
    if (b.length === 0) return t;
    b[clamp(o.at, b.length - 1)] = o.value & 0xff;
    return lossy.decode(b);
  }
  if (o.op === 'truncate') return t.slice(0, clamp(o.len, t.length));
  return t;
}
