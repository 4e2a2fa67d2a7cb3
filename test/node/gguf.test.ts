// GGUF reader and writer: the real stories260K model file and llama.cpp's vocab-only file (values
// checked against the model's README and a Python dump of the headers), then a write -> read round
// trip of every metadata value type.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { readGguf, ggufToModel, readGgufModel, llama3RopeFactors, type GgufValue } from '../../src/formats/gguf.ts';
import { writeGguf, encodeGgufHeader, type GgufTypedValue } from '../../src/formats/gguf-write.ts';
import { fileSource } from '../../src/formats/node-source.ts';
import { bytesSource } from '../../src/formats/source.ts';
import { ConfigError, UnsupportedError } from '../../src/engine/errors.ts';

const models = fileURLToPath(new URL('../../../shared/models/', import.meta.url));
const STORIES = models + 'tinystories-260k/stories260K.gguf';
const VOCAB = models + 'llamacpp-vocab/ggml-vocab-llama-spm.gguf';

test('stories260K.gguf: header, metadata and tensor table', async () => {
  const src = await fileSource(STORIES);
  try {
    const f = await readGguf(src);
    assert.equal(f.version, 3);
    assert.equal(f.alignment, 32);
    assert.equal(f.metadata.get('general.architecture'), 'llama');
    assert.equal(f.metadata.get('llama.block_count'), 5);
    assert.equal(f.metadataTypes.get('llama.block_count'), 'u32');
    assert.equal(f.metadataTypes.get('tokenizer.ggml.tokens'), 'array<string>');
    assert.equal(f.metadataTypes.get('tokenizer.ggml.scores'), 'array<f32>');
    assert.equal(f.metadata.get('tokenizer.ggml.padding_token_id'), 4294967295);
    const tokens = f.metadata.get('tokenizer.ggml.tokens') as string[];
    assert.equal(tokens.length, 512);
    assert.deepEqual(tokens.slice(0, 5), ['<unk>', '<s>', '</s>', '<0x00>', '<0x01>']);
    assert.equal(f.tensorInfos.length, 48);
    // The data section starts at the first 32-byte boundary after the header (14152 bytes).
    assert.equal(f.dataOffset, 14176);
    const q0 = f.tensorInfos.find((t) => t.name === 'blk.0.attn_k.weight')!;
    assert.deepEqual(q0.dims, [64, 32]);
    assert.equal(q0.type, 'F32');
    assert.equal(q0.offset, 278784);
    assert.equal(q0.byteLength, 64 * 32 * 4);
    const last = f.tensorInfos.at(-1)!;
    assert.equal(f.dataOffset + last.offset + last.byteLength, src.size);
  } finally {
    await src.close?.();
  }
});

test('stories260K.gguf: ggufToModel gives the README config', async () => {
  const src = await fileSource(STORIES);
  try {
    const m = await ggufToModel(await readGguf(src), src);
    const c = m.config;
    assert.equal(m.format, 'gguf');
    assert.equal(m.ropeLayout, 'adjacent');
    assert.deepEqual(
      [c.nLayers, c.dModel, c.dFfn, c.nHeads, c.nKvHeads, c.dHead, c.vocabSize, c.nCtx],
      [5, 64, 172, 8, 4, 8, 512, 2048]);
    assert.equal(c.ropeTheta, 10000);
    assert.equal(c.ropeScaling, null);
    assert.equal(c.ropeFreqFactors, undefined);
    assert.equal(c.rmsEps, 1e-5); // stored as the f32 9.99999974e-6
    assert.equal(c.bosId, 1);
    assert.equal(c.eosId, 2);
    // llama.cpp's converter wrote output.weight although the checkpoint shares it.
    assert.equal(c.tiedEmbeddings, false);
    assert.equal(m.tensors.length, 48);
    const wk = m.tensors.find((t) => t.name === 'blocks.0.attn.wk')!;
    assert.equal(wk.fileName, 'blk.0.attn_k.weight');
    assert.deepEqual(wk.shape, [32, 64]); // [n_kv_heads * d_head, d_model]
    assert.equal(wk.offset, 14176 + 278784);
    assert.deepEqual(m.tensors.find((t) => t.name === 'blocks.4.ffn.w_down')!.shape, [64, 172]);
  } finally {
    await src.close?.();
  }
});

test('vocab-only GGUF (ggml-vocab-llama-spm.gguf) reads, with no tensors', async () => {
  const src = await fileSource(VOCAB);
  try {
    const f = await readGguf(src);
    assert.equal(f.tensorInfos.length, 0);
    assert.equal(f.metadata.get('general.name'), 'llama-spm');
    assert.equal(f.metadata.get('tokenizer.ggml.add_bos_token'), true);
    assert.equal(f.metadata.get('tokenizer.ggml.add_eos_token'), false);
    const tokens = f.metadata.get('tokenizer.ggml.tokens') as string[];
    assert.equal(tokens.length, 32000);
    assert.equal(tokens[29871], '▁');
    assert.equal((f.metadata.get('tokenizer.ggml.token_type') as number[]).length, 32000);
    await assert.rejects(ggufToModel(f, src), (e: Error) => e instanceof ConfigError && /vocabulary-only/.test(e.message));
  } finally {
    await src.close?.();
  }
});

test('metadata round trip: every value type, nested arrays, big 64-bit integers', async () => {
  const meta: [string, GgufTypedValue][] = [
    ['t.u8', { type: 'u8', value: 255 }],
    ['t.i8', { type: 'i8', value: -128 }],
    ['t.u16', { type: 'u16', value: 65535 }],
    ['t.i16', { type: 'i16', value: -32768 }],
    ['t.u32', { type: 'u32', value: 4294967295 }],
    ['t.i32', { type: 'i32', value: -2147483648 }],
    ['t.f32', { type: 'f32', value: 0.1 }],
    ['t.f64', { type: 'f64', value: 0.1 }],
    ['t.bool', { type: 'bool', value: true }],
    ['t.bool0', { type: 'bool', value: false }],
    ['t.string', { type: 'string', value: 'héllo ▁wörld 🦙' }],
    ['t.empty', { type: 'string', value: '' }],
    ['t.u64.small', { type: 'u64', value: 2 ** 53 - 1 }],
    ['t.u64.big', { type: 'u64', value: 2n ** 64n - 1n }],
    ['t.i64.small', { type: 'i64', value: -(2 ** 53 - 1) }],
    ['t.i64.big', { type: 'i64', value: -(2n ** 63n) }],
    ['t.arr.f32', { type: 'array', itemType: 'f32', value: [1.5, -2.25, 0] }],
    ['t.arr.str', { type: 'array', itemType: 'string', value: ['a', '', 'ü'] }],
    ['t.arr.empty', { type: 'array', itemType: 'i32', value: [] }],
    ['t.arr.u64', { type: 'array', itemType: 'u64', value: [1n, 2n ** 60n] }],
    ['t.arr.bool', { type: 'array', itemType: 'bool', value: [true, false] }],
    ['t.arr.nested', {
      type: 'array', itemType: 'array', value: [
        { itemType: 'i16', value: [1, -2] },
        { itemType: 'string', value: ['x'] },
        { itemType: 'array', value: [{ itemType: 'u8', value: [7] }] },
      ],
    }],
  ];
  const bytes = writeGguf({ metadata: meta, tensors: [] });
  const f = await readGguf(bytesSource(bytes, 'roundtrip.gguf'));
  assert.equal(f.version, 3);
  const want: Record<string, GgufValue> = {
    't.u8': 255, 't.i8': -128, 't.u16': 65535, 't.i16': -32768, 't.u32': 4294967295, 't.i32': -2147483648,
    't.f32': Math.fround(0.1), 't.f64': 0.1, 't.bool': true, 't.bool0': false, 't.string': 'héllo ▁wörld 🦙',
    't.empty': '', 't.u64.small': 2 ** 53 - 1, 't.u64.big': 2n ** 64n - 1n, 't.i64.small': -(2 ** 53 - 1),
    't.i64.big': -(2n ** 63n), 't.arr.f32': [1.5, -2.25, 0], 't.arr.str': ['a', '', 'ü'], 't.arr.empty': [],
    't.arr.u64': [1, 2n ** 60n], 't.arr.bool': [true, false], 't.arr.nested': [[1, -2], ['x'], [[7]]],
  };
  assert.deepEqual(Object.fromEntries(f.metadata), want);
  assert.equal(f.metadataTypes.get('t.u64.big'), 'u64');
  assert.equal(f.metadataTypes.get('t.arr.nested'), 'array<array<i16>>');
  assert.equal(f.metadataTypes.get('t.arr.u64'), 'array<u64>');
  // Re-encoding what was read gives the same bytes (types and order preserved).
  assert.deepEqual(writeGguf({ metadata: meta, tensors: [] }), bytes);
});

test('writer: tensor data is placed at aligned offsets and reads back', async () => {
  const a = new Float32Array([1, 2, 3, 4, 5, 6]);        // [2, 3]
  const b = new Float32Array([7, 8, 9]);                  // [3]
  const bytes = writeGguf({
    metadata: [['general.architecture', { type: 'string', value: 'x' }]],
    tensors: [
      { name: 'a', typeName: 'F32', shape: [2, 3], data: new Uint8Array(a.buffer) },
      { name: 'b', typeName: 'F32', shape: [3], data: new Uint8Array(b.buffer) },
    ],
    alignment: 64,
  });
  const f = await readGguf(bytesSource(bytes, 'w.gguf'));
  assert.equal(f.alignment, 64);
  assert.equal(f.metadata.get('general.alignment'), 64);
  assert.equal(f.dataOffset % 64, 0);
  assert.deepEqual(f.tensorInfos.map((t) => [t.name, t.dims, t.offset, t.byteLength]), [['a', [3, 2], 0, 24], ['b', [3], 64, 12]]);
  const back = new Float32Array(bytes.slice(f.dataOffset, f.dataOffset + 24).buffer);
  assert.deepEqual([...back], [1, 2, 3, 4, 5, 6]);
  const layout = encodeGgufHeader([['general.architecture', { type: 'string', value: 'x' }]],
    [{ name: 'a', typeName: 'F32', shape: [2, 3] }, { name: 'b', typeName: 'F32', shape: [3] }], 64);
  assert.equal(layout.totalSize, bytes.length);
});

test('a non-llama architecture and GGUF v1 are UnsupportedError', async () => {
  const gpt2 = writeGguf({ metadata: [['general.architecture', { type: 'string', value: 'gpt2' }]], tensors: [] });
  await assert.rejects(readGgufModel(bytesSource(gpt2, 'gpt2.gguf')), (e: Error) =>
    e instanceof UnsupportedError && /gpt2\.gguf/.test(e.message) && /"gpt2"/.test(e.message));
  const v1 = gpt2.slice();
  new DataView(v1.buffer).setUint32(4, 1, true);
  await assert.rejects(readGguf(bytesSource(v1, 'old.gguf')), (e: Error) =>
    e instanceof UnsupportedError && /old\.gguf/.test(e.message) && /version 1/.test(e.message));
});

test('llama3RopeFactors agrees with transformers\' llama3 inverse frequencies', () => {
  // transformers' _compute_llama3_parameters adjusts the inverse frequencies themselves; llama.cpp's
  // factors divide them. Both must describe the same frequencies (Llama 3.2 1B parameters).
  const s = { type: 'llama3' as const, factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 8192 };
  const f = llama3RopeFactors(64, 500000, s);
  assert.equal(f.length, 32);
  const lowWavelen = s.originalContext / s.lowFreqFactor, highWavelen = s.originalContext / s.highFreqFactor;
  let ramp = 0;
  for (let i = 0; i < 32; i++) {
    const invFreq = 1 / Math.pow(500000, (2 * i) / 64);
    const wavelen = 2 * Math.PI / invFreq;
    const llama = wavelen > lowWavelen ? invFreq / s.factor : invFreq;
    const smooth = (s.originalContext / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    const smoothed = (1 - smooth) * llama / s.factor + smooth * llama;
    const medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
    const hf = medium ? smoothed : llama;
    if (medium) ramp++;
    assert.ok(Math.abs(invFreq / f[i]! - hf) <= 1e-6 * hf, `frequency ${i}: ${invFreq / f[i]!} vs ${hf}`);
  }
  assert.ok(ramp > 0 && f[0] === 1 && f[31] === 32);
});

test('a Llama 3 sized vocabulary (128256 tokens, 280147 merges) round trips', async () => {
  const tokens = Array.from({ length: 128256 }, (_, i) => (i % 7 === 0 ? `Ġtok${i}` : `ü${i.toString(36)}`));
  const merges = Array.from({ length: 280147 }, (_, i) => `${(i * 31).toString(36)} ${i.toString(36)}`);
  const types = Array.from({ length: 128256 }, (_, i) => (i >= 128000 ? 3 : 1));
  const bytes = writeGguf({
    metadata: [
      ['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: tokens }],
      ['tokenizer.ggml.token_type', { type: 'array', itemType: 'i32', value: types }],
      ['tokenizer.ggml.merges', { type: 'array', itemType: 'string', value: merges }],
    ],
    tensors: [],
  });
  const f = await readGguf(bytesSource(bytes, 'big-vocab.gguf'));
  assert.deepEqual(f.metadata.get('tokenizer.ggml.tokens'), tokens);
  assert.deepEqual(f.metadata.get('tokenizer.ggml.merges'), merges);
  assert.deepEqual(f.metadata.get('tokenizer.ggml.token_type'), types);
});

test('strings decode exactly as TextDecoder does, invalid UTF-8 included', async () => {
  // Random short byte strings biased towards UTF-8 lead and continuation bytes.
  let s = 12345;
  const rand = (n: number) => { s = (s * 1103515245 + 12345) >>> 0; return s % n; };
  const pick = [0x41, 0x7f, 0x80, 0xbf, 0xc0, 0xc2, 0xc4, 0xdf, 0xe0, 0xe2, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 0xa0, 0x9f, 0x8f, 0x90];
  const strings: Uint8Array[] = Array.from({ length: 3000 }, () =>
    Uint8Array.from({ length: rand(9) }, () => (rand(3) === 0 ? rand(256) : pick[rand(pick.length)]!)));
  strings.push(new TextEncoder().encode('Ġhello ▁wörld 🦙'), new Uint8Array([0xf0, 0x9f, 0xa6]), new Uint8Array([0xed, 0xa0, 0x80]));
  const parts: number[] = [...new TextEncoder().encode('GGUF'), 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
  const u32 = (v: number) => parts.push(v & 255, (v >> 8) & 255, (v >> 16) & 255, v >>> 24);
  const u64 = (v: number) => { u32(v); u32(0); };
  u64(1); parts.push(...new TextEncoder().encode('k')); u32(9); u32(8); u64(strings.length);
  for (const b of strings) { u64(b.length); parts.push(...b); }
  const f = await readGguf(bytesSource(Uint8Array.from(parts), 'utf8.gguf'));
  const dec = new TextDecoder();
  assert.deepEqual(f.metadata.get('k'), strings.map((b) => dec.decode(b)));
});
