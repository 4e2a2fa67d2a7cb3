// GGUF (llama.cpp's model format), versions 2 and 3, read through a ByteSource.
//
//   "GGUF" u32 version, u64 tensor_count, u64 kv_count
//   kv_count × { string key, u32 value_type, value }          (strings: u64 length + UTF-8 bytes)
//   tensor_count × { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
//   padding to `general.alignment` (default 32), then the tensor data; offsets are relative to it.
//
// The header is untrusted: every declared length or count is checked against the bytes that remain
// before anything is allocated for it, so a hostile file fails fast instead of exhausting memory.
// ggufToModel turns a parsed file into the format-independent ModelFile (config, tokenizer, tensors
// under our names).

import type { ByteSource } from './source.ts';
import type { ModelFile } from './model.ts';
import type { TensorInfo, TensorTypeName } from './tensor.ts';
import type { ModelConfig, RopeScaling } from '../engine/config.ts';
import { validateConfig } from '../engine/config.ts';
import { ConfigError, ModelFormatError, TruncatedFileError, UnsupportedError } from '../engine/errors.ts';
import { tensorTypeByGgmlId } from './quant/index.ts';
import { expectedShape, parseTensorName, requiredTensors, tensorName } from './names.ts';
import { tokenizerDataFromGguf } from '../tokenizer/from-gguf.ts';

// ---------------------------------------------------------------------------------------------
// Value types

/** GGUF metadata value types, by their id in the file. */
export const GGUF_VALUE_TYPES = ['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'f32', 'bool', 'string', 'array', 'u64', 'i64', 'f64'] as const;
export type GgufValueType = (typeof GGUF_VALUE_TYPES)[number];
export type GgufScalarType = Exclude<GgufValueType, 'array'>;

/** A metadata value as read: numbers (64-bit integers as bigint only when beyond 2^53), booleans,
 *  strings, and arrays of those (arrays may nest). */
export type GgufValue = number | bigint | boolean | string | GgufValue[];

/** The smallest encoding of one element of each type, used to bound counts before allocating. */
const MIN_SIZE: Record<GgufValueType, number> = {
  u8: 1, i8: 1, bool: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, u64: 8, i64: 8, f64: 8,
  string: 8,   // u64 length, possibly empty
  array: 12,   // u32 item type + u64 count, possibly empty
};

/** Nested arrays deeper than this are refused (real files nest at most once). */
const MAX_ARRAY_DEPTH = 8;
/** llama.cpp's GGML_MAX_DIMS. */
const MAX_DIMS = 4;
const MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const DEFAULT_ALIGNMENT = 32;
/** No header field of a real file comes near 1 TiB: a declared size beyond it is corrupt, not cut off. */
const IMPOSSIBLE_BYTES = 2 ** 40;

export interface GgufTensorInfo {
  /** The name in the file (`blk.0.attn_q.weight`). */
  name: string;
  /** ggml type id as stored. */
  ggmlType: number;
  type: TensorTypeName;
  /** Dimensions as in the file: ne[0] is the contiguous one (the reverse of our row-major shapes). */
  dims: number[];
  /** Offset relative to the start of the data section. */
  offset: number;
  byteLength: number;
}

export interface GgufFile {
  /** The file's name, for messages. */
  name: string;
  version: number;
  metadata: Map<string, GgufValue>;
  /** Each key's type as written: 'u32', 'string', 'array<string>', 'array<array<i32>>'. */
  metadataTypes: Map<string, string>;
  tensorInfos: GgufTensorInfo[];
  alignment: number;
  /** Absolute offset of the tensor data section. */
  dataOffset: number;
}

// ---------------------------------------------------------------------------------------------
// Buffered reader over a ByteSource

const CHUNK = 1 << 20;
const utf8 = new TextDecoder('utf-8');

class HeaderReader {
  private buf: Uint8Array = new Uint8Array(0);
  private view = new DataView(this.buf.buffer);
  private bufStart = 0;
  pos = 0;
  constructor(readonly src: ByteSource) {}

  get remaining(): number { return this.src.size - this.pos; }

  /** True when bytes [pos, pos+n) are in the buffer (then the sync readers below may be used). */
  has(n: number): boolean {
    return this.pos >= this.bufStart && this.pos + n <= this.bufStart + this.buf.length;
  }

  /** Reads bytes from pos on into the buffer: at least n (checked against the file size), 1 MiB if
   *  the file has it. Only called when has(n) is false, so buffered reads never await. */
  async fill(n: number, field: string): Promise<void> {
    if (this.pos + n > this.src.size) {
      throw new TruncatedFileError(this.src.name,
        `the header ends early: ${field} needs ${n} bytes at offset ${this.pos} but the file is ${this.src.size} bytes long`);
    }
    const len = Math.min(Math.max(n, CHUNK), this.src.size - this.pos);
    this.buf = await this.src.read(this.pos, len);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    this.bufStart = this.pos;
  }

  async need(n: number, field: string): Promise<void> {
    if (!this.has(n)) await this.fill(n, field);
  }

  /** Checks a declared count of items (each at least `minSize` bytes) against what remains. */
  checkCount(count: number | bigint, minSize: number, field: string): number {
    const need = Number(count) * minSize;
    if (typeof count === 'bigint' || need > this.remaining) {
      const msg = `${field} declares ${count} ${minSize === 1 ? 'bytes' : `items (at least ${Number(count) * minSize} bytes)`}` +
        ` but only ${this.remaining} bytes remain after offset ${this.pos}`;
      // A truncated download is the usual cause; a size no file could have is a corrupt number.
      if (typeof count === 'bigint' || need > IMPOSSIBLE_BYTES) throw new ModelFormatError(this.src.name, msg);
      throw new TruncatedFileError(this.src.name, msg);
    }
    return Number(count);
  }

  // Synchronous readers: the caller has made the bytes available with need().
  private at(n: number): number { const a = this.pos - this.bufStart; this.pos += n; return a; }
  u8() { return this.view.getUint8(this.at(1)); }
  i8() { return this.view.getInt8(this.at(1)); }
  u16() { return this.view.getUint16(this.at(2), true); }
  i16() { return this.view.getInt16(this.at(2), true); }
  u32() { return this.view.getUint32(this.at(4), true); }
  i32() { return this.view.getInt32(this.at(4), true); }
  f32() { return this.view.getFloat32(this.at(4), true); }
  f64() { return this.view.getFloat64(this.at(8), true); }
  /** u64 as a number when it is a safe integer, else as a bigint. */
  u64(): number | bigint {
    const a = this.at(8);
    const lo = this.view.getUint32(a, true), hi = this.view.getUint32(a + 4, true);
    if (hi < 0x200000) return hi * 4294967296 + lo; // below 2^53: no BigInt needed
    return this.view.getBigUint64(a, true);
  }
  i64(): number | bigint {
    const v = this.view.getBigInt64(this.at(8), true);
    return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
  }
  /** The bytes of a string whose length has been read and checked. */
  text(len: number): string { return decodeString(this.buf, this.at(len), len); }

  // Async conveniences for the non-repeated fields.
  async readU32(f: string): Promise<number> { await this.need(4, f); return this.u32(); }
  async readU64(f: string): Promise<number | bigint> { await this.need(8, f); return this.u64(); }
  async readString(f: string): Promise<string> {
    await this.need(8, `the length of ${f}`);
    const len = this.checkCount(this.u64(), 1, `the length of ${f}`);
    await this.need(len, f);
    return this.text(len);
  }
}

/** UTF-8 decoding. Vocabulary entries are short and many (128k in Llama 3, mostly non-ASCII
 *  byte-level characters like 'Ġ'), so short strings are decoded here without a TextDecoder call;
 *  anything unusual (invalid or overlong sequences) goes to TextDecoder for its replacement rules. */
const codes: number[] = [];
function decodeString(buf: Uint8Array, at: number, len: number): string {
  if (len > 64) return utf8.decode(buf.subarray(at, at + len));
  codes.length = 0;
  const end = at + len;
  for (let i = at; i < end;) {
    const b = buf[i]!;
    if (b < 0x80) { codes.push(b); i++; continue; }
    let cp: number, n: number;
    if (b >= 0xc2 && b < 0xe0) { cp = b & 0x1f; n = 1; }
    else if (b >= 0xe0 && b < 0xf0) { cp = b & 0x0f; n = 2; }
    else if (b >= 0xf0 && b < 0xf5) { cp = b & 0x07; n = 3; }
    else return utf8.decode(buf.subarray(at, end));
    if (i + n >= end) return utf8.decode(buf.subarray(at, end)); // cut short
    for (let k = 1; k <= n; k++) {
      const c = buf[i + k]!;
      if ((c & 0xc0) !== 0x80) return utf8.decode(buf.subarray(at, end));
      cp = (cp << 6) | (c & 0x3f);
    }
    // overlong 3/4-byte forms, surrogates, and beyond U+10FFFF are invalid
    if ((n === 2 && (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000))) || (n === 3 && (cp < 0x10000 || cp > 0x10ffff))) {
      return utf8.decode(buf.subarray(at, end));
    }
    if (cp >= 0x10000) { cp -= 0x10000; codes.push(0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff)); }
    else codes.push(cp);
    i += n + 1;
  }
  return String.fromCharCode.apply(null, codes);
}

function typeName(id: number, field: string, r: HeaderReader): GgufValueType {
  const t = GGUF_VALUE_TYPES[id];
  if (t === undefined) {
    throw new ModelFormatError(r.src.name, `${field} has value type ${id}, which is not a GGUF type (0..12)`);
  }
  return t;
}

const SCALAR_BYTES: Partial<Record<GgufValueType, number>> = {
  u8: 1, i8: 1, bool: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, u64: 8, i64: 8, f64: 8,
};

/** One scalar whose bytes are buffered. */
function scalar(r: HeaderReader, type: GgufValueType, field: string): GgufValue {
  switch (type) {
    case 'u8': return r.u8();
    case 'i8': return r.i8();
    case 'u16': return r.u16();
    case 'i16': return r.i16();
    case 'u32': return r.u32();
    case 'i32': return r.i32();
    case 'f32': return r.f32();
    case 'f64': return r.f64();
    case 'u64': return r.u64();
    case 'i64': return r.i64();
    case 'bool': {
      const b = r.u8();
      if (b > 1) throw new ModelFormatError(r.src.name, `${field} is a bool stored as ${b}; it must be 0 or 1`);
      return b === 1;
    }
    default: throw new Error(`not a fixed-size type: ${type}`);
  }
}

/** Reads a value of `type`; returns it with its type description. Awaits only to refill the buffer,
 *  so a vocabulary of 128k strings costs a handful of reads, not 128k promise turns. */
async function readValue(r: HeaderReader, type: GgufValueType, field: string, depth: number): Promise<[GgufValue, string]> {
  const size = SCALAR_BYTES[type];
  if (size !== undefined) {
    await r.need(size, field);
    return [scalar(r, type, field), type];
  }
  if (type === 'string') return [await r.readString(field), type];
  // array
  if (depth >= MAX_ARRAY_DEPTH) throw new ModelFormatError(r.src.name, `${field} nests arrays more than ${MAX_ARRAY_DEPTH} deep`);
  const item = typeName(await r.readU32(`the item type of ${field}`), field, r);
  const n = r.checkCount(await r.readU64(`the length of ${field}`), MIN_SIZE[item], `the array ${field}`);
  const out: GgufValue[] = new Array(n);
  const itemSize = SCALAR_BYTES[item];
  if (itemSize !== undefined) {
    for (let i = 0; i < n; i++) {
      if (!r.has(itemSize)) await r.fill(itemSize, field);
      out[i] = scalar(r, item, field);
    }
    return [out, `array<${item}>`];
  }
  if (item === 'string') {
    for (let i = 0; i < n; i++) {
      if (!r.has(8)) await r.fill(8, `the length of ${field}[${i}]`);
      const count = r.u64();
      // the label is made only for a length that cannot fit (a vocabulary has 128k items)
      const len = typeof count === 'number' && count <= r.remaining ? count : r.checkCount(count, 1, `the length of ${field}[${i}]`);
      if (!r.has(len)) await r.fill(len, `${field}[${i}]`);
      out[i] = r.text(len);
    }
    return [out, 'array<string>'];
  }
  let desc = 'array<array>';
  for (let i = 0; i < n; i++) {
    const [v, d] = await readValue(r, item, `${field}[${i}]`, depth + 1);
    out[i] = v;
    if (i === 0) desc = `array<${d}>`;
  }
  return [out, desc];
}

// ---------------------------------------------------------------------------------------------
// readGguf

/** Parses a GGUF header: metadata, tensor infos, alignment. Reads no tensor data. */
export async function readGguf(src: ByteSource): Promise<GgufFile> {
  const r = new HeaderReader(src);
  if (src.size === 0) throw new ModelFormatError(src.name, 'is empty');
  if (src.size < 4 || (await r.readU32('the magic')) !== MAGIC) {
    throw new ModelFormatError(src.name, 'does not start with the GGUF magic "GGUF"');
  }
  const version = await r.readU32('the version');
  if (version === 1) {
    throw new UnsupportedError(src.name, 'is a GGUF version 1 file (2023)', 'Convert it again with a current llama.cpp');
  }
  if (version !== 2 && version !== 3) {
    const hint = (version & 0xffff) === 0 ? ' (a big-endian GGUF?)' : '';
    throw new UnsupportedError(src.name, `is GGUF version ${version}${hint}; glassbox reads little-endian versions 2 and 3`,
      'Convert it with llama.cpp to a little-endian GGUF v3');
  }
  // Each tensor info takes at least 24 bytes (empty name, 0 dims), each key/value at least 13.
  const tensorCount = r.checkCount(await r.readU64('the tensor count'), 24, 'the tensor count');
  const kvCount = r.checkCount(await r.readU64('the key/value count'), 13, 'the key/value count');

  const metadata = new Map<string, GgufValue>();
  const metadataTypes = new Map<string, string>();
  for (let i = 0; i < kvCount; i++) {
    const key = await r.readString(`the key of metadata entry ${i}`);
    if (metadata.has(key)) throw new ModelFormatError(src.name, `metadata key "${key}" appears twice`);
    const type = typeName(await r.readU32(`the type of ${key}`), key, r);
    const [value, desc] = await readValue(r, type, key, 0);
    metadata.set(key, value);
    metadataTypes.set(key, desc);
  }

  let alignment = DEFAULT_ALIGNMENT;
  if (metadata.has('general.alignment')) {
    const a = metadata.get('general.alignment');
    if (metadataTypes.get('general.alignment') !== 'u32' || typeof a !== 'number' || a === 0 || (a & (a - 1)) !== 0) {
      throw new ModelFormatError(src.name, `general.alignment is ${String(a)} (${metadataTypes.get('general.alignment')}); it must be a u32 power of two`);
    }
    alignment = a;
  }

  const tensorInfos: GgufTensorInfo[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const name = await r.readString(`the name of tensor ${i}`);
    if (seen.has(name)) throw new ModelFormatError(src.name, `tensor ${name} appears twice`);
    seen.add(name);
    const nDims = await r.readU32(`the dimension count of tensor ${name}`);
    if (nDims < 1 || nDims > MAX_DIMS) {
      throw new ModelFormatError(src.name, `tensor ${name} has ${nDims} dimensions; GGUF tensors have 1 to ${MAX_DIMS}`);
    }
    const dims: number[] = [];
    let elements = 1;
    for (let d = 0; d < nDims; d++) {
      const ne = await r.readU64(`dimension ${d} of tensor ${name}`);
      elements *= Number(ne);
      if (typeof ne === 'bigint' || !Number.isSafeInteger(elements)) {
        throw new ModelFormatError(src.name, `tensor ${name} declares dimensions whose element count overflows 2^53 (dimension ${d} is ${ne})`);
      }
      dims.push(ne);
    }
    const ggmlType = await r.readU32(`the type of tensor ${name}`);
    const tt = tensorTypeByGgmlId(ggmlType, `${src.name}: tensor ${name}`);
    if (dims[0]! % tt.blockSize !== 0) {
      throw new ModelFormatError(src.name,
        `tensor ${name} is ${tt.name} with rows of ${dims[0]} elements, not a multiple of its block size ${tt.blockSize}`);
    }
    const offset = await r.readU64(`the data offset of tensor ${name}`);
    if (typeof offset === 'bigint') {
      throw new TruncatedFileError(src.name, `tensor ${name} starts at data offset ${offset}, far past the end of the file`);
    }
    if (offset % alignment !== 0) {
      throw new ModelFormatError(src.name, `tensor ${name} starts at data offset ${offset}, not a multiple of the alignment ${alignment}`);
    }
    tensorInfos.push({ name, ggmlType, type: tt.name, dims, offset, byteLength: (elements / tt.blockSize) * tt.blockBytes });
  }

  const dataOffset = Math.ceil(r.pos / alignment) * alignment;
  for (const t of tensorInfos) {
    const end = dataOffset + t.offset + t.byteLength;
    if (end > src.size) {
      throw new TruncatedFileError(src.name,
        `tensor ${t.name} (${t.byteLength} bytes at offset ${dataOffset + t.offset}) ends at byte ${end} but the file is ${src.size} bytes long`);
    }
  }
  return { name: src.name, version, metadata, metadataTypes, tensorInfos, alignment, dataOffset };
}

// ---------------------------------------------------------------------------------------------
// ggufToModel

function num(meta: Map<string, GgufValue>, key: string, where: string): number | undefined {
  const v = meta.get(key);
  if (v === undefined) return undefined;
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') throw new ConfigError(where, `${key} is ${v}, too large`);
  if (Array.isArray(v) && v.length > 0 && v.every((x) => x === v[0]) && typeof v[0] === 'number') return v[0];
  throw new ConfigError(where, `${key} is ${JSON.stringify(v)}; expected one number`,
    Array.isArray(v) ? 'Models whose layers differ in shape are not supported' : undefined);
}

/** The shortest decimal that rounds to the same f32: GGUF stores rms_eps 1e-5 as the f32
 *  9.99999974e-6; the config says 1e-5, like config.json, and computes the same in f32. */
function f32Decimal(v: number): number {
  if (!Number.isFinite(v) || Math.fround(v) !== v) return v;
  for (let p = 1; p <= 9; p++) {
    const d = Number(v.toPrecision(p));
    if (Math.fround(d) === v) return d;
  }
  return v;
}

function need(meta: Map<string, GgufValue>, key: string, where: string): number {
  const v = num(meta, key, where);
  if (v === undefined) throw new ConfigError(where, `the metadata key ${key} is missing`, 'The GGUF file is incomplete; convert it again with llama.cpp');
  return v;
}

/** llama.cpp's llama3 rope factors for given parameters (as convert_hf_to_gguf.py computes them). */
export function llama3RopeFactors(dHead: number, theta: number, s: Extract<RopeScaling, { type: 'llama3' }>): Float32Array {
  const out = new Float32Array(dHead / 2);
  const lowWavelen = s.originalContext / s.lowFreqFactor;
  const highWavelen = s.originalContext / s.highFreqFactor;
  for (let i = 0; i < out.length; i++) {
    const freq = 1 / Math.pow(theta, (2 * i) / dHead);
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out[i] = 1;
    else if (wavelen > lowWavelen) out[i] = s.factor;
    else {
      const smooth = (s.originalContext / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      out[i] = 1 / ((1 - smooth) / s.factor + smooth);
    }
  }
  return out;
}

/** The Llama 3.1/3.2 parameters (factor from the largest entry, Meta's low/high 1 and 4, original
 *  context 8192) when they reproduce the file's rope_freqs exactly; otherwise null. */
function recogniseLlama3(factors: Float32Array, dHead: number, theta: number): RopeScaling | null {
  let factor = 1;
  for (const f of factors) factor = Math.max(factor, f);
  if (factor <= 1) return null;
  const guess = { type: 'llama3' as const, factor, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 8192 };
  const re = llama3RopeFactors(dHead, theta, guess);
  for (let i = 0; i < re.length; i++) if (Math.abs(re[i]! - factors[i]!) > 1e-5 * factors[i]!) return null;
  return guess;
}

/**
 * The ModelFile of a parsed GGUF: config from the `llama.*` keys, the embedded tokenizer, and the
 * tensors under our names (shapes reversed to row-major). Checks that every tensor the config
 * requires exists with the shape it implies.
 *
 * Llama 3.1/3.2 files carry their "llama3" RoPE scaling as a tensor `rope_freqs.weight` of d_head/2
 * per-frequency divisors; it is read here into `config.ropeFreqFactors` (authoritative) and, when it
 * matches Meta's parameters, also described as `config.ropeScaling`. It stays in the tensor list as
 * `rope_freqs` for inspection. This is why the function is async.
 */
export async function ggufToModel(file: GgufFile, src: ByteSource): Promise<ModelFile> {
  const where = src.name;
  const meta = file.metadata;
  const arch = meta.get('general.architecture');
  if (arch === undefined) throw new ConfigError(where, 'general.architecture is missing', 'The GGUF file is incomplete');
  if (arch !== 'llama') {
    throw new UnsupportedError(where, `is a "${String(arch)}" model; glassbox runs Llama-architecture models only`,
      'Choose a Llama-family model (Llama 1/2/3, TinyLlama, SmolLM, TinyStories)');
  }
  if (file.tensorInfos.length === 0) {
    throw new ConfigError(where, 'is a vocabulary-only GGUF: it holds a tokenizer but no weights',
      'Open a model file; a vocabulary-only GGUF serves as a tokenizer (glassbox tokenize)');
  }
  const k = (s: string) => `${arch}.${s}`;
  const infos = new Map(file.tensorInfos.map((t) => [t.name, t]));
  const embed = infos.get(tensorName('gguf', 'embed'));

  const nHeads = need(meta, k('attention.head_count'), where);
  const dModel = need(meta, k('embedding_length'), where);
  const dHead = num(meta, k('attention.key_length'), where) ?? dModel / nHeads;
  const valueLength = num(meta, k('attention.value_length'), where);
  if (valueLength !== undefined && valueLength !== dHead) {
    throw new UnsupportedError(where, `${k('attention.value_length')} (${valueLength}) differs from the key length (${dHead})`);
  }
  const ropeDims = num(meta, k('rope.dimension_count'), where) ?? dHead;
  if (ropeDims !== dHead) {
    throw new UnsupportedError(where, `${k('rope.dimension_count')} is ${ropeDims} but the head dimension is ${dHead}; partial rotary embeddings are not supported`);
  }
  const tokens = meta.get('tokenizer.ggml.tokens');
  const vocabFromTokens = Array.isArray(tokens) ? tokens.length : undefined;
  const vocabSize = embed?.dims[1] ?? num(meta, k('vocab_size'), where) ?? vocabFromTokens;
  if (vocabSize === undefined) throw new ConfigError(where, 'cannot tell the vocabulary size: no token_embd.weight, no tokens');
  if (vocabFromTokens !== undefined && vocabFromTokens !== vocabSize) {
    throw new ConfigError(where, `the tokenizer has ${vocabFromTokens} tokens but token_embd.weight has ${vocabSize} rows`);
  }
  const ropeTheta = f32Decimal(num(meta, k('rope.freq_base'), where) ?? 10000);

  let ropeScaling: RopeScaling | null = null;
  const scalingType = meta.get(k('rope.scaling.type'));
  const oldLinear = num(meta, k('rope.scale_linear'), where);
  if (scalingType === 'linear' || (scalingType === undefined && oldLinear !== undefined && oldLinear !== 1)) {
    const factor = f32Decimal(num(meta, k('rope.scaling.factor'), where) ?? oldLinear ?? 1);
    if (factor !== 1) ropeScaling = { type: 'linear', factor };
  } else if (scalingType !== undefined && scalingType !== 'none') {
    throw new UnsupportedError(where, `${k('rope.scaling.type')} is "${String(scalingType)}"; glassbox supports none, linear and llama3 RoPE scaling`);
  }
  let ropeFreqFactors: Float32Array | undefined;
  const rf = infos.get('rope_freqs.weight');
  if (rf) {
    if (rf.type !== 'F32' || rf.dims.length !== 1 || rf.dims[0] !== dHead / 2) {
      throw new ConfigError(where, `tensor rope_freqs.weight is ${rf.type} [${rf.dims}]; expected F32 [${dHead / 2}]`);
    }
    const bytes = await src.read(file.dataOffset + rf.offset, rf.byteLength);
    ropeFreqFactors = new Float32Array(rf.dims[0]!);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < ropeFreqFactors.length; i++) ropeFreqFactors[i] = dv.getFloat32(4 * i, true);
    ropeScaling = recogniseLlama3(ropeFreqFactors, dHead, ropeTheta) ?? ropeScaling;
  }

  const bosId = num(meta, 'tokenizer.ggml.bos_token_id', where);
  const eosId = num(meta, 'tokenizer.ggml.eos_token_id', where);
  const name = meta.get('general.name');
  const config: ModelConfig = {
    arch: 'llama',
    name: typeof name === 'string' && name !== '' ? name : src.name,
    nLayers: need(meta, k('block_count'), where),
    dModel,
    dFfn: need(meta, k('feed_forward_length'), where),
    nHeads,
    nKvHeads: num(meta, k('attention.head_count_kv'), where) ?? nHeads,
    dHead,
    vocabSize,
    nCtx: need(meta, k('context_length'), where),
    rmsEps: f32Decimal(need(meta, k('attention.layer_norm_rms_epsilon'), where)),
    ropeTheta,
    ropeScaling,
    tiedEmbeddings: !infos.has(tensorName('gguf', 'unembed')),
    bosId: bosId ?? null,
    eosId: eosId ?? null,
  };
  if (ropeFreqFactors) config.ropeFreqFactors = ropeFreqFactors;
  validateConfig(config, where);

  // Tensors under our names, in file order.
  const tensors: TensorInfo[] = [];
  const ignored: string[] = [];
  for (const t of file.tensorInfos) {
    const parsed = parseTensorName('gguf', t.name);
    let ours: string;
    if (parsed) {
      if (parsed.layer !== undefined && parsed.layer >= config.nLayers) {
        throw new ConfigError(where, `tensor ${t.name} belongs to layer ${parsed.layer} but ${k('block_count')} is ${config.nLayers}`);
      }
      ours = tensorName('ours', parsed.role, parsed.layer);
      const want = expectedShape(config, parsed.role);
      const shape = [...t.dims].reverse();
      if (shape.length !== want.length || shape.some((d, i) => d !== want[i])) {
        throw new ConfigError(where, `tensor ${t.name} has shape [${shape}] but the config implies [${want}]`);
      }
    } else if (t.name === 'rope_freqs.weight') {
      ours = 'rope_freqs';
    } else {
      ignored.push(t.name);
      continue;
    }
    tensors.push({
      name: ours, fileName: t.name, type: t.type, shape: [...t.dims].reverse(),
      source: 0, offset: file.dataOffset + t.offset, byteLength: t.byteLength,
    });
  }
  // Checked before listing the required tensors: a damaged block_count (up to 2^24) would otherwise
  // list millions of them before the first one is found missing.
  const layers = new Set(file.tensorInfos.map((t) => parseTensorName('gguf', t.name)?.layer).filter((l) => l !== undefined));
  if (layers.size < config.nLayers) {
    let missing = 0;
    while (layers.has(missing)) missing++;
    throw new ConfigError(where, `${k('block_count')} is ${config.nLayers} but the file holds tensors for ${layers.size} layers (blk.${missing} has none)`,
      'The GGUF file is damaged or incomplete; convert it again with llama.cpp');
  }
  const have = new Set(tensors.map((t) => t.name));
  for (const req of requiredTensors(config)) {
    if (!have.has(req.name)) {
      throw new ConfigError(where, `the required tensor ${tensorName('gguf', req.role, req.layer)} is missing`);
    }
  }

  // fromEntries defines own properties, so a key named "__proto__" cannot reach the prototype.
  const metadata: Record<string, unknown> = Object.fromEntries([['gguf.version', file.version], ...meta]);
  if (ignored.length > 0) metadata['glassbox.ignored_tensors'] = ignored;
  return {
    format: 'gguf',
    sources: [src],
    config,
    tokenizer: meta.has('tokenizer.ggml.model') ? tokenizerDataFromGguf(meta, where) : null,
    tensors,
    ropeLayout: 'adjacent',
    metadata,
  };
}

/** readGguf then ggufToModel. */
export async function readGgufModel(src: ByteSource): Promise<ModelFile> {
  return ggufToModel(await readGguf(src), src);
}
