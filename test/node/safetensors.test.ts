// safetensors + config.json: tiny Llamas written with writeSafetensors, read back; sharded with an
// index; tied and untied; F32, F16, BF16. The writer itself is checked against bytes spelled out
// by hand from the format's specification.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ModelFile } from '../../src/formats/model.ts';
import { readSafetensorsHeader, readSafetensorsModel } from '../../src/formats/safetensors.ts';
import { writeSafetensors, type SafetensorsTensor } from '../../src/formats/safetensors-write.ts';
import { bytesSource } from '../../src/formats/source.ts';
import { encode, json, shard, TINY_CONFIG, tinyTensors } from './hf-fixtures.ts';

const LLAMA3 = fileURLToPath(new URL('../../../shared/models/llama3-tokenizer/', import.meta.url));

/** Each HF tensor of `written` is found under its our-name with the same dtype, shape and bytes. */
function assertTensors(m: ModelFile, written: SafetensorsTensor[], files: Uint8Array[]): void {
  const byFileName = new Map(m.tensors.map((t) => [t.fileName, t]));
  for (const w of written) {
    if (w.name.includes('rotary_emb')) {
      assert.equal(byFileName.has(w.name), false);
      continue;
    }
    const t = byFileName.get(w.name);
    assert.ok(t, w.name);
    assert.equal(t.type, w.dtype);
    assert.deepEqual(t.shape, w.shape);
    assert.equal(t.byteLength, w.data.byteLength);
    assert.deepEqual(files[t.source]!.subarray(t.offset, t.offset + t.byteLength), w.data, w.name);
  }
  for (let i = 1; i < m.tensors.length; i++) {
    const a = m.tensors[i - 1]!, b = m.tensors[i]!;
    assert.ok(a.source < b.source || (a.source === b.source && a.offset < b.offset), 'tensors in file order');
  }
}

test('writer: bytes as the specification spells them (8-byte aligned header padded with spaces)', () => {
  const bytes = writeSafetensors([
    { name: 'a', dtype: 'F32', shape: [2], data: new Uint8Array(new Float32Array([1, -2]).buffer) },
    { name: 'b', dtype: 'BF16', shape: [1, 1], data: new Uint8Array([0x80, 0x3f]) },
  ], { format: 'pt' });
  let header = '{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
    '"b":{"dtype":"BF16","shape":[1,1],"data_offsets":[8,10]}}';
  header += ' '.repeat((8 - (header.length % 8)) % 8);
  const want = new Uint8Array(8 + header.length + 10);
  new DataView(want.buffer).setBigUint64(0, BigInt(header.length), true);
  want.set(new TextEncoder().encode(header), 8);
  want.set(new Uint8Array(new Float32Array([1, -2]).buffer), 8 + header.length);
  want.set([0x80, 0x3f], 16 + header.length);
  assert.equal(header.length % 8, 0);
  assert.deepEqual(bytes, want);
});

test('header reader: entries at absolute offsets, __metadata__ kept', async () => {
  const bytes = writeSafetensors([
    { name: 'x', dtype: 'F16', shape: [3], data: new Uint8Array(6) },
    { name: 'y', dtype: 'F32', shape: [], data: new Uint8Array(4) },
  ], { k: 'v' });
  const h = await readSafetensorsHeader(bytesSource(bytes, 'h.safetensors'));
  assert.deepEqual(h.metadata, { k: 'v' });
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(h.dataStart, 8 + n);
  assert.deepEqual(h.entries.map((e) => [e.name, e.dtype, e.shape, e.offset, e.byteLength]),
    [['x', 'F16', [3], 8 + n, 6], ['y', 'F32', [], 8 + n + 6, 4]]);
});

test('single file, untied, F32: config and every tensor read back', async () => {
  const written = tinyTensors(TINY_CONFIG, 'F32', true);
  const file = writeSafetensors(written, { format: 'pt' });
  const m = await readSafetensorsModel([bytesSource(file, 'model.safetensors'), json(TINY_CONFIG, 'config.json')]);
  assert.equal(m.format, 'safetensors');
  assert.equal(m.ropeLayout, 'half-split');
  assert.equal(m.tokenizer, null);
  assert.equal(m.sources.length, 1);
  const c = m.config;
  assert.equal(c.name, 'tiny-llama-test');
  assert.deepEqual([c.nLayers, c.dModel, c.dFfn, c.nHeads, c.nKvHeads, c.dHead, c.vocabSize, c.nCtx], [2, 16, 24, 4, 2, 4, 32, 128]);
  assert.equal(c.rmsEps, 1e-5);
  assert.equal(c.ropeTheta, 500000);
  assert.deepEqual(c.ropeScaling, { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 8192 });
  assert.equal(c.tiedEmbeddings, false);
  assert.equal(c.bosId, 1);
  assert.equal(c.eosId, 2);
  assert.deepEqual(c.eosIds, [2, 3]);
  assert.equal(m.tensors.length, 3 + 9 * 2);
  assert.ok(m.tensors.some((t) => t.name === 'unembed.weight' && t.fileName === 'lm_head.weight'));
  assert.deepEqual(m.metadata['__metadata__'], { format: 'pt' });
  assert.deepEqual(m.metadata['config.json'], TINY_CONFIG);
  assertTensors(m, written, [file]);
});

test('tied embeddings: from tie_word_embeddings, or from a missing lm_head', async () => {
  const cases = [
    { tie: true, lmHead: true },   // a saved copy of the embedding is ignored
    { tie: true, lmHead: false },
    { tie: false, lmHead: false }, // no lm_head at all: the embedding is the unembedding
  ];
  for (const { tie, lmHead } of cases) {
    const cfg = { ...TINY_CONFIG, tie_word_embeddings: tie };
    const written = tinyTensors(cfg, 'F32', lmHead);
    const file = writeSafetensors(written);
    const m = await readSafetensorsModel([bytesSource(file, 'model.safetensors'), json(cfg, 'config.json')]);
    assert.equal(m.config.tiedEmbeddings, true, `tie=${tie} lm_head=${lmHead}`);
    assert.ok(!m.tensors.some((t) => t.name === 'unembed.weight'));
    assert.equal(m.tensors.length, 2 + 9 * 2);
    assertTensors(m, written.filter((w) => w.name !== 'lm_head.weight'), [file]);
  }
});

test('F16 and BF16 tensors keep their stored type', async () => {
  for (const dtype of ['F16', 'BF16'] as const) {
    const written = tinyTensors(TINY_CONFIG, dtype, true);
    const file = writeSafetensors(written);
    const m = await readSafetensorsModel([json(TINY_CONFIG, 'config.json'), bytesSource(file, 'model.safetensors')]);
    assert.ok(m.tensors.every((t) => t.type === dtype));
    assertTensors(m, written, [file]);
  }
  // The test's own encoders agree with each other: 1.5 is 0x3e00 in F16 and 0x3fc0 in BF16.
  assert.deepEqual([...encode([1.5], 'F16')], [0x00, 0x3e]);
  assert.deepEqual([...encode([1.5], 'BF16')], [0xc0, 0x3f]);
});

test('sharded with an index: tensors found in each shard, at their offsets', async () => {
  const written = tinyTensors(TINY_CONFIG, 'BF16', true);
  const { files, sources, index } = shard(written, 3);
  // Given out of order, with paths: shards are told apart by file name and put in index order.
  const m = await readSafetensorsModel([
    json(TINY_CONFIG, '/models/tiny/config.json'), sources[2]!, json(index, '/models/tiny/model.safetensors.index.json'),
    sources[0]!, sources[1]!, json({}, '/models/tiny/generation_config.json'),
  ]);
  assert.deepEqual(m.sources, sources);
  assert.equal(m.config.name, 'tiny-llama-test');
  assert.equal(new Set(m.tensors.map((t) => t.source)).size, 3);
  assert.equal(m.tensors.length, 3 + 9 * 2);
  assertTensors(m, written, files);
});

test('shards without an index are all read; the model is named after its folder', async () => {
  const written = tinyTensors(TINY_CONFIG, 'F32', true);
  const { files, sources } = shard(written, 2);
  const { _name_or_path: _, ...unnamed } = TINY_CONFIG;
  const m = await readSafetensorsModel([sources[1]!, sources[0]!, json(unnamed, '/models/tiny/config.json')]);
  assert.equal(m.config.name, 'tiny');
  assertTensors(m, written, files);
});

test('tokenizer.json and tokenizer_config.json are read with the model', async () => {
  const cfg = { ...TINY_CONFIG, hidden_size: 8, num_attention_heads: 2, num_key_value_heads: 1, intermediate_size: 8,
    num_hidden_layers: 1, vocab_size: 128256, bos_token_id: 128000, eos_token_id: [128001, 128008, 128009], tie_word_embeddings: true };
  const file = writeSafetensors(tinyTensors(cfg, 'BF16', false));
  const m = await readSafetensorsModel([
    bytesSource(file, 'model.safetensors'), json(cfg, 'config.json'),
    bytesSource(readFileSync(LLAMA3 + 'tokenizer.json'), 'tokenizer.json'),
    bytesSource(readFileSync(LLAMA3 + 'tokenizer_config.json'), 'tokenizer_config.json'),
  ]);
  assert.ok(m.tokenizer);
  assert.equal(m.tokenizer.kind, 'bpe');
  assert.equal(m.tokenizer.tokens.length, 128256);
  assert.deepEqual(m.config.eosIds, [128001, 128008, 128009]);
});
