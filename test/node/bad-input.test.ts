// Hostile and broken GGUF files, and format detection. Each case starts from a valid small GGUF
// written by gguf-write.ts, edits bytes, and checks the error class, that the message names the
// file (and the field or tensor), and that it fails fast (< 1 s) without allocating what it declares.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, ModelFormatError, TruncatedFileError, UnsupportedError, UsageError } from '../../src/engine/errors.ts';
import { readGguf, readGgufModel } from '../../src/formats/gguf.ts';
import { writeGguf, type GgufTypedValue } from '../../src/formats/gguf-write.ts';
import { openModel } from '../../src/formats/open.ts';
import { bytesSource, type ByteSource } from '../../src/formats/source.ts';

const NAME = 'tiny.gguf';

/** A valid 1-layer Llama: d_model 8, d_ffn 16, 2 heads (d_head 4), 1 kv head, vocab 16, tied; F32. */
function validGguf(): Uint8Array {
  const u32 = (value: number): GgufTypedValue => ({ type: 'u32', value });
  const t = (name: string, shape: number[]) => ({
    name, typeName: 'F32' as const, shape,
    data: new Uint8Array(new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.5).buffer),
  });
  return writeGguf({
    metadata: [
      ['general.architecture', { type: 'string', value: 'llama' }],
      ['general.name', { type: 'string', value: 'tiny' }],
      ['llama.context_length', u32(32)],
      ['llama.embedding_length', u32(8)],
      ['llama.block_count', u32(1)],
      ['llama.feed_forward_length', u32(16)],
      ['llama.attention.head_count', u32(2)],
      ['llama.attention.head_count_kv', u32(1)],
      ['llama.attention.layer_norm_rms_epsilon', { type: 'f32', value: 1e-5 }],
      ['llama.rope.dimension_count', u32(4)],
      ['test.list', { type: 'array', itemType: 'string', value: ['a', 'b', 'c'] }],
    ],
    tensors: [
      t('token_embd.weight', [16, 8]),
      t('output_norm.weight', [8]),
      t('blk.0.attn_norm.weight', [8]),
      t('blk.0.attn_q.weight', [8, 8]),
      t('blk.0.attn_k.weight', [4, 8]),
      t('blk.0.attn_v.weight', [4, 8]),
      t('blk.0.attn_output.weight', [8, 8]),
      t('blk.0.ffn_norm.weight', [8]),
      t('blk.0.ffn_gate.weight', [16, 8]),
      t('blk.0.ffn_up.weight', [16, 8]),
      t('blk.0.ffn_down.weight', [8, 16]),
    ],
  });
}

const enc = new TextEncoder();

/** Byte offset of the first occurrence of `s` as a GGUF string (u64 length then bytes): returns
 *  the offset just after the string's bytes. */
function after(bytes: Uint8Array, s: string): number {
  const needle = enc.encode(s);
  outer: for (let i = 8; i + needle.length <= bytes.length; i++) {
    for (let j = 0; j < needle.length; j++) if (bytes[i + j] !== needle[j]) continue outer;
    if (new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(i - 8, true) === BigInt(needle.length)) return i + needle.length;
  }
  throw new Error(`${s} not found`);
}

/** Offsets of a tensor info's fields in the header. */
function tensorFields(bytes: Uint8Array, name: string) {
  const nDims = after(bytes, name);
  const n = new DataView(bytes.buffer, bytes.byteOffset).getUint32(nDims, true);
  const dims = nDims + 4;
  return { nameStart: nDims - name.length, nDims, dims, type: dims + 8 * n, offset: dims + 8 * n + 4 };
}

function edit(f: (b: Uint8Array, dv: DataView) => void): ByteSource {
  const b = validGguf().slice();
  f(b, new DataView(b.buffer));
  return bytesSource(b, NAME);
}

async function fails(p: () => Promise<unknown>, cls: new (...a: never[]) => Error, ...mustSay: RegExp[]): Promise<void> {
  const t0 = performance.now();
  await assert.rejects(p, (e: Error) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e.name}: ${e.message}`);
    assert.match(e.message, /tiny\.gguf|empty\.gguf|junk\.dat/);
    for (const re of mustSay) assert.match(e.message, re);
    return true;
  });
  const ms = performance.now() - t0;
  assert.ok(ms < 1000, `took ${ms.toFixed(0)} ms`);
}

test('the valid file reads (the baseline the other cases edit)', async () => {
  const m = await readGgufModel(bytesSource(validGguf(), NAME));
  assert.equal(m.config.nLayers, 1);
  assert.equal(m.config.tiedEmbeddings, true);
  assert.equal(m.tensors.length, 11);
  assert.equal((await openModel([bytesSource(validGguf(), NAME)])).format, 'gguf');
});

test('empty file', async () => {
  const empty = bytesSource(new Uint8Array(0), 'empty.gguf');
  await fails(() => readGguf(empty), ModelFormatError, /is empty/);
  await fails(() => openModel([empty]), ModelFormatError, /is empty/);
});

test('wrong magic; unknown format', async () => {
  await fails(() => readGguf(edit((b) => { b[0] = 0x58; })), ModelFormatError, /magic/);
  const junk = bytesSource(enc.encode('this is not a model file, just some text that goes on'), 'junk.dat');
  await fails(() => openModel([junk]), ModelFormatError, /GGUF/, /safetensors/, /llama2\.c/);
  await assert.rejects(openModel([]), UsageError);
});

test('truncated header', async () => {
  const full = validGguf();
  const r = await readGguf(bytesSource(full, NAME));
  // Cut at every byte of the header: always a named error, never a hang or a bogus success.
  for (let cut = 4; cut < r.dataOffset - 32; cut += 7) {
    const src = bytesSource(full.slice(0, cut), NAME);
    await fails(() => readGguf(src), TruncatedFileError);
  }
});

test('truncated tensor data', async () => {
  const full = validGguf();
  await fails(() => readGguf(bytesSource(full.slice(0, full.length - 40), NAME)), TruncatedFileError, /blk\.0\.ffn_down\.weight/);
  await fails(() => openModel([bytesSource(full.slice(0, full.length - 40), NAME)]), TruncatedFileError, /ffn_down/);
});

test('unknown tensor type', async () => {
  const src = edit((b, dv) => dv.setUint32(tensorFields(b, 'blk.0.attn_v.weight').type, 99, true));
  await fails(() => readGguf(src), UnsupportedError, /blk\.0\.attn_v\.weight/, /99/);
  const iq = edit((b, dv) => dv.setUint32(tensorFields(b, 'blk.0.attn_v.weight').type, 20, true));
  await fails(() => readGguf(iq), UnsupportedError, /IQ4_NL/);
});

test('tensor offset or size past the end of the file', async () => {
  const far = edit((b, dv) => dv.setBigUint64(tensorFields(b, 'blk.0.attn_q.weight').offset, 1n << 40n, true));
  await fails(() => readGguf(far), TruncatedFileError, /blk\.0\.attn_q\.weight/);
  const huge = edit((b, dv) => dv.setBigUint64(tensorFields(b, 'blk.0.attn_q.weight').offset, 1n << 63n, true));
  await fails(() => readGguf(huge), TruncatedFileError, /blk\.0\.attn_q\.weight/);
  // A size past the end: the last tensor made 4× longer (still a consistent element count).
  const long = edit((b, dv) => dv.setBigUint64(tensorFields(b, 'blk.0.ffn_down.weight').dims + 8, 32n, true));
  await fails(() => readGguf(long), TruncatedFileError, /blk\.0\.ffn_down\.weight/);
});

test('element counts that overflow 2^53', async () => {
  const src = edit((b, dv) => {
    const f = tensorFields(b, 'blk.0.attn_q.weight');
    dv.setBigUint64(f.dims, 1n << 31n, true);
    dv.setBigUint64(f.dims + 8, 1n << 31n, true);
  });
  await fails(() => readGguf(src), ModelFormatError, /blk\.0\.attn_q\.weight/, /overflow/);
  const big = edit((b, dv) => dv.setBigUint64(tensorFields(b, 'blk.0.attn_q.weight').dims, 1n << 62n, true));
  await fails(() => readGguf(big), ModelFormatError, /attn_q/, /overflow/);
});

test('duplicate tensor names', async () => {
  const src = edit((b) => {
    const f = tensorFields(b, 'blk.0.attn_k.weight');
    b.set(enc.encode('blk.0.attn_q.weight'), f.nameStart); // same length
  });
  await fails(() => readGguf(src), ModelFormatError, /blk\.0\.attn_q\.weight/, /twice/);
});

test('missing required tensor', async () => {
  const src = edit((b) => b.set(enc.encode('blk.0.ffn_xx.weight'), tensorFields(b, 'blk.0.ffn_up.weight').nameStart));
  await fails(() => readGgufModel(src), ConfigError, /blk\.0\.ffn_up\.weight/, /missing/);
});

test('tensor shape contradicting the config', async () => {
  // llama.feed_forward_length 16 -> 24: the ffn tensors are [16, 8] but the config implies [24, 8].
  const src = edit((b, dv) => dv.setUint32(after(b, 'llama.feed_forward_length') + 4, 24, true));
  await fails(() => readGgufModel(src), ConfigError, /blk\.0\.ffn_gate\.weight has shape \[16,8\] but the config implies \[24,8\]/);
});

test('string length 2^60, array count 2^60, tensor count 2^60', async () => {
  // The first key's length field is at offset 24.
  const key = edit((_b, dv) => dv.setBigUint64(24, 1n << 60n, true));
  await fails(() => readGguf(key), ModelFormatError, /key of metadata entry 0/);
  const item = edit((b, dv) => dv.setBigUint64(after(b, 'a'), 1n << 60n, true)); // 'b' in test.list
  await fails(() => readGguf(item), ModelFormatError, /test\.list\[1\]/);
  // a length that is a plain number but longer than what remains: a truncated file, the item named
  const long = edit((b, dv) => dv.setBigUint64(after(b, 'a'), BigInt(b.length), true));
  await fails(() => readGguf(long), TruncatedFileError, /the length of test\.list\[1\] declares \d+ bytes but only \d+ bytes remain/);
  const count = edit((b, dv) => dv.setBigUint64(after(b, 'test.list') + 8, 1n << 60n, true));
  await fails(() => readGguf(count), ModelFormatError, /test\.list/);
  const tensors = edit((_b, dv) => dv.setBigUint64(8, 1n << 60n, true));
  await fails(() => readGguf(tensors), ModelFormatError, /tensor count/);
  const unknownType = edit((b, dv) => dv.setUint32(after(b, 'general.name'), 13, true));
  await fails(() => readGguf(unknownType), ModelFormatError, /general\.name/);
});
