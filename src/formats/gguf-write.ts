// GGUF v3 writer: what `glassbox synth` and the tests use to make model files llama.cpp reads.
// Layout as in gguf.ts: header, key/values, tensor infos, padding to the alignment, then each
// tensor's data padded to the alignment (as llama.cpp's own writer does).
//
// encodeGgufHeader gives the header and each tensor's place without needing the data, so big files
// can be streamed tensor by tensor; writeGguf assembles a whole file in memory for small ones.

import { UsageError } from '../engine/errors.ts';
import { getTensorType } from './quant/index.ts';
import { byteSize, numElements, type TensorTypeName } from './tensor.ts';
import { GGUF_VALUE_TYPES, type GgufScalarType, type GgufValueType } from './gguf.ts';

type Scalar = number | bigint | boolean | string;

/** An array value: items of one type; the items of an array of arrays are arrays themselves. */
export type GgufArray =
  | { itemType: GgufScalarType; value: ArrayLike<Scalar> }
  | { itemType: 'array'; value: readonly GgufArray[] };

/** A metadata value with the type it is to be written as. */
export type GgufTypedValue =
  | { type: GgufScalarType; value: Scalar }
  | ({ type: 'array' } & GgufArray);

export interface GgufTensorSpec {
  name: string;
  typeName: TensorTypeName;
  /** Row-major, last dimension contiguous (written reversed, as GGUF's ne[]). */
  shape: number[];
}

export interface GgufSpec {
  metadata: [string, GgufTypedValue][];
  tensors: (GgufTensorSpec & { data: Uint8Array })[];
  /** Defaults to 32; written as general.alignment when it is not 32 and the key is absent. */
  alignment?: number;
}

export interface GgufLayout {
  /** Header, key/values, tensor infos and the padding up to the data section. */
  header: Uint8Array;
  /** Each tensor's offset from the start of the data section, and its unpadded size. */
  tensors: { offset: number; byteLength: number }[];
  alignment: number;
  /** The size of the whole file. */
  totalSize: number;
}

const enc = new TextEncoder();

class ByteWriter {
  private buf = new Uint8Array(1 << 16);
  private dv = new DataView(this.buf.buffer);
  length = 0;
  private room(n: number): number {
    if (this.length + n > this.buf.length) {
      let cap = this.buf.length * 2;
      while (cap < this.length + n) cap *= 2;
      const next = new Uint8Array(cap);
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
      this.dv = new DataView(next.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }
  // room() may replace buf and dv, so it runs before they are read.
  u8(v: number) { const a = this.room(1); this.dv.setUint8(a, v); }
  i8(v: number) { const a = this.room(1); this.dv.setInt8(a, v); }
  u16(v: number) { const a = this.room(2); this.dv.setUint16(a, v, true); }
  i16(v: number) { const a = this.room(2); this.dv.setInt16(a, v, true); }
  u32(v: number) { const a = this.room(4); this.dv.setUint32(a, v, true); }
  i32(v: number) { const a = this.room(4); this.dv.setInt32(a, v, true); }
  f32(v: number) { const a = this.room(4); this.dv.setFloat32(a, v, true); }
  f64(v: number) { const a = this.room(8); this.dv.setFloat64(a, v, true); }
  u64(v: number | bigint) {
    const a = this.room(8);
    if (typeof v === 'number' && v >= 0 && v <= 0xffffffff) { this.dv.setUint32(a, v, true); this.dv.setUint32(a + 4, 0, true); }
    else this.dv.setBigUint64(a, BigInt(v), true);
  }
  i64(v: number | bigint) { const a = this.room(8); this.dv.setBigInt64(a, BigInt(v), true); }
  bytes(b: Uint8Array) { const a = this.room(b.length); this.buf.set(b, a); }
  string(s: string) {
    // Encode straight into the buffer (at most 3 bytes per UTF-16 unit), then write the length.
    const a = this.room(8 + 3 * s.length);
    const { written } = enc.encodeInto(s, this.buf.subarray(a + 8));
    this.length = a + 8 + written;
    this.dv.setUint32(a, written, true);
    this.dv.setUint32(a + 4, 0, true);
  }
  pad(align: number) { const n = (align - (this.length % align)) % align; this.room(n); /* zeros */ }
  take(): Uint8Array { return this.buf.slice(0, this.length); }
}

const INT_RANGE: Partial<Record<GgufScalarType, [number | bigint, number | bigint]>> = {
  u8: [0, 255], i8: [-128, 127], u16: [0, 65535], i16: [-32768, 32767],
  u32: [0, 2 ** 32 - 1], i32: [-(2 ** 31), 2 ** 31 - 1],
  u64: [0n, 2n ** 64n - 1n], i64: [-(2n ** 63n), 2n ** 63n - 1n],
};

function writeScalar(w: ByteWriter, type: GgufScalarType, v: Scalar, key: string): void {
  const bad = () => new UsageError(`GGUF key ${key}`, `${String(v)} (${typeof v}) cannot be written as ${type}`);
  const range = INT_RANGE[type];
  if (range) {
    if (!(typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v)))) throw bad();
    if (v < range[0] || v > range[1]) throw bad();
  }
  switch (type) {
    case 'u8': w.u8(v as number); break;
    case 'i8': w.i8(v as number); break;
    case 'u16': w.u16(v as number); break;
    case 'i16': w.i16(v as number); break;
    case 'u32': w.u32(v as number); break;
    case 'i32': w.i32(v as number); break;
    case 'u64': w.u64(v as number | bigint); break;
    case 'i64': w.i64(v as number | bigint); break;
    case 'f32': case 'f64':
      if (typeof v !== 'number') throw bad();
      if (type === 'f32') w.f32(v); else w.f64(v);
      break;
    case 'bool': if (typeof v !== 'boolean') throw bad(); w.u8(v ? 1 : 0); break;
    case 'string': if (typeof v !== 'string') throw bad(); w.string(v); break;
  }
}

function typeId(t: GgufValueType): number {
  return GGUF_VALUE_TYPES.indexOf(t);
}

function writeArray(w: ByteWriter, a: GgufArray, key: string): void {
  w.u32(typeId(a.itemType));
  w.u64(a.value.length);
  if (a.itemType === 'array') {
    for (const item of a.value as readonly GgufArray[]) writeArray(w, item, key);
  } else {
    const items = a.value as ArrayLike<Scalar>;
    for (let i = 0; i < items.length; i++) writeScalar(w, a.itemType, items[i]!, key);
  }
}

/** The header of a GGUF v3 file with these key/values and tensors, and where each tensor goes. */
export function encodeGgufHeader(metadata: [string, GgufTypedValue][], tensors: GgufTensorSpec[], alignment = 32): GgufLayout {
  if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
    throw new UsageError('GGUF alignment', `${alignment} is not a power of two`);
  }
  const kvs = [...metadata];
  const keys = new Set(kvs.map(([k]) => k));
  if (keys.size !== kvs.length) throw new UsageError('GGUF metadata', 'a key appears twice');
  const given = kvs.find(([k]) => k === 'general.alignment');
  if (given) {
    if (given[1].type !== 'u32' || given[1].value !== alignment) {
      throw new UsageError('GGUF metadata', `general.alignment must be the u32 ${alignment}`);
    }
  } else if (alignment !== 32) {
    kvs.push(['general.alignment', { type: 'u32', value: alignment }]);
  }

  const w = new ByteWriter();
  w.bytes(enc.encode('GGUF'));
  w.u32(3);
  w.u64(tensors.length);
  w.u64(kvs.length);
  for (const [key, tv] of kvs) {
    w.string(key);
    w.u32(typeId(tv.type));
    if (tv.type === 'array') writeArray(w, tv, key);
    else writeScalar(w, tv.type, tv.value, key);
  }
  const places: { offset: number; byteLength: number }[] = [];
  let offset = 0;
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new UsageError('GGUF tensors', `tensor ${t.name} appears twice`);
    names.add(t.name);
    const tt = getTensorType(t.typeName);
    if (tt.ggmlId === undefined) throw new UsageError(`tensor ${t.name}`, `${t.typeName} has no GGUF type id`);
    const n = numElements(t.shape);
    if (t.shape.length === 0 || t.shape.length > 4 || t.shape[t.shape.length - 1]! % tt.blockSize !== 0) {
      throw new UsageError(`tensor ${t.name}`, `shape [${t.shape}] cannot be stored as ${t.typeName} in GGUF`);
    }
    w.string(t.name);
    w.u32(t.shape.length);
    for (let d = t.shape.length - 1; d >= 0; d--) w.u64(t.shape[d]!);
    w.u32(tt.ggmlId);
    w.u64(offset);
    const byteLength = byteSize(tt, n);
    places.push({ offset, byteLength });
    offset += Math.ceil(byteLength / alignment) * alignment;
  }
  w.pad(alignment);
  const header = w.take();
  return { header, tensors: places, alignment, totalSize: header.length + offset };
}

/** A whole GGUF v3 file in memory. */
export function writeGguf(spec: GgufSpec): Uint8Array {
  const layout = encodeGgufHeader(spec.metadata, spec.tensors, spec.alignment);
  const out = new Uint8Array(layout.totalSize);
  out.set(layout.header, 0);
  spec.tensors.forEach((t, i) => {
    const place = layout.tensors[i]!;
    if (t.data.length !== place.byteLength) {
      throw new UsageError(`tensor ${t.name}`, `has ${t.data.length} bytes of data; ${t.typeName} [${t.shape}] takes ${place.byteLength}`);
    }
    out.set(t.data, layout.header.length + place.offset);
  });
  return out;
}
