// Where the length, count, type and offset fields of a valid file are, found by walking it with the
// fuzzer's own small readers (independent of src/formats), so mutations can aim at the numbers a
// loader trusts: GGUF string/array lengths, n_dims, dims, tensor types and offsets, the llama2.c
// header, tokenizer.bin's per-token lengths.

export type FieldKind = 'magic' | 'version' | 'count' | 'strlen' | 'valtype' | 'arrtype' | 'arrlen' | 'ndims' | 'dim' | 'ggmltype' | 'offset' | 'int' | 'score';
export interface Field { at: number; size: 1 | 4 | 8; kind: FieldKind }
export interface FieldMap {
  fields: Field[];
  /** [start, end) of each GGUF key/value entry and tensor info: duplicated to make duplicate keys. */
  records: { start: number; end: number; countAt: number }[];
  /** Where the header ends (mutations aim mostly before it). */
  headerEnd: number;
}

const SCALAR = [1, 1, 2, 2, 4, 4, 4, 1, -1, -1, 8, 8, 8]; // by GGUF value type; -1: string/array

export function ggufFields(b: Uint8Array): FieldMap {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const fields: Field[] = [{ at: 0, size: 4, kind: 'magic' }, { at: 4, size: 4, kind: 'version' }, { at: 8, size: 8, kind: 'count' }, { at: 16, size: 8, kind: 'count' }];
  const records: FieldMap['records'] = [];
  let p = 24;
  const u64 = () => { const v = Number(dv.getBigUint64(p, true)); p += 8; return v; };
  const str = () => { fields.push({ at: p, size: 8, kind: 'strlen' }); const n = u64(); p += n; };
  const value = (t: number): void => {
    if (SCALAR[t]! > 0) { p += SCALAR[t]!; return; }
    if (t === 8) { str(); return; }
    fields.push({ at: p, size: 4, kind: 'arrtype' });
    const it = dv.getUint32(p, true); p += 4;
    fields.push({ at: p, size: 8, kind: 'arrlen' });
    const n = u64();
    if (SCALAR[it]! > 0) { p += n * SCALAR[it]!; return; }
    for (let i = 0; i < n; i++) value(it);
  };
  const nTensors = Number(dv.getBigUint64(8, true)), nKv = Number(dv.getBigUint64(16, true));
  for (let i = 0; i < nKv; i++) {
    const start = p;
    str();
    fields.push({ at: p, size: 4, kind: 'valtype' });
    const t = dv.getUint32(p, true); p += 4;
    // Scalar values (block_count, embedding_length, token ids) are numbers a loader trusts too.
    if (SCALAR[t]! >= 4 || t === 0) fields.push({ at: p, size: Math.max(1, SCALAR[t]!) as 1 | 4 | 8, kind: 'int' });
    value(t);
    records.push({ start, end: p, countAt: 16 });
  }
  for (let i = 0; i < nTensors; i++) {
    const start = p;
    str();
    fields.push({ at: p, size: 4, kind: 'ndims' });
    const nd = dv.getUint32(p, true); p += 4;
    for (let d = 0; d < nd; d++) { fields.push({ at: p, size: 8, kind: 'dim' }); p += 8; }
    fields.push({ at: p, size: 4, kind: 'ggmltype' }); p += 4;
    fields.push({ at: p, size: 8, kind: 'offset' }); p += 8;
    records.push({ start, end: p, countAt: 8 });
  }
  return { fields, records, headerEnd: p };
}

export function llama2cFields(b: Uint8Array): FieldMap {
  const v1 = b.length >= 4 && new DataView(b.buffer, b.byteOffset).getUint32(0, true) === 0x616b3432;
  const fields: Field[] = [];
  const base = v1 ? 8 : 0;
  if (v1) fields.push({ at: 0, size: 4, kind: 'magic' }, { at: 4, size: 4, kind: 'version' });
  for (let i = 0; i < 7; i++) fields.push({ at: base + 4 * i, size: 4, kind: 'int' });
  if (v1) fields.push({ at: 36, size: 1, kind: 'int' }, { at: 37, size: 4, kind: 'int' });
  return { fields, records: [], headerEnd: v1 ? 256 : 28 };
}

export function tokenizerBinFields(b: Uint8Array): FieldMap {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const fields: Field[] = [{ at: 0, size: 4, kind: 'int' }];
  const records: FieldMap['records'] = [];
  for (let p = 4; p + 8 <= b.length;) {
    fields.push({ at: p, size: 4, kind: 'score' }, { at: p + 4, size: 4, kind: 'strlen' });
    const n = dv.getInt32(p + 4, true);
    records.push({ start: p, end: p + 8 + n, countAt: -1 });
    p += 8 + n;
  }
  return { fields, records, headerEnd: b.length };
}
