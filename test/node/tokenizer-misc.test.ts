// Chat templates, the readers' handling of bad input, file detection, and a SentencePiece-style
// tokenizer.json (as Hugging Face converts Llama 2 / TinyLlama) read back into the SentencePiece model.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { TokenizerError, TruncatedFileError, UsageError } from '../../src/engine/errors.ts';
import { fileSource } from '../../src/formats/node-source.ts';
import { bytesSource } from '../../src/formats/source.ts';
import { TokenType } from '../../src/tokenizer/data.ts';
import { tokenizerDataFromGguf } from '../../src/tokenizer/from-gguf.ts';
import { tokenizerDataFromHfJson } from '../../src/tokenizer/hf-json.ts';
import { tokenizerDataFromLlama2cBin } from '../../src/tokenizer/llama2c-bin.ts';
import { tokenizerDataFromTiktoken } from '../../src/tokenizer/tiktoken.ts';
import { tokenizerDataFromSentencePieceModel } from '../../src/tokenizer/sentencepiece-model.ts';
import { openTokenizer } from '../../src/tokenizer/open.ts';
import { createTokenizer } from '../../src/tokenizer/tokenizer.ts';
import { MODELS, vocabCases } from './tokenizer-fixtures.ts';

const tok512 = readFileSync(`${MODELS}tinystories-260k/tok512.bin`);
const utf8 = (s: string) => new TextEncoder().encode(s);

test('the Llama 3 chat template renders a conversation', async () => {
  const src = await fileSource(`${MODELS}llama3-tokenizer/tokenizer.json`);
  const cfg = await fileSource(`${MODELS}llama3-tokenizer/tokenizer_config.json`);
  const tok = await openTokenizer(src, cfg);
  await src.close?.(); await cfg.close?.();
  const messages = [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: '  Hello!\n' },
  ];
  const text = tok.applyChatTemplate(messages, { addGenerationPrompt: true });
  assert.equal(text,
    '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>' +
    '<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>' +
    '<|start_header_id|>assistant<|end_header_id|>\n\n');
  // Encoded with special parsing and no extra BOS: the header tokens are single ids.
  const ids = tok.encode(text, { bos: false, special: true });
  assert.deepEqual(ids.slice(0, 5), [128000, 128006, 9125, 128007, 271]); // BOS <|start_header_id|> system <|end_header_id|> \n\n
  assert.deepEqual(ids.slice(-4), [128006, 78191, 128007, 271]); // ... assistant ...
  assert.equal(ids.filter((id) => id === 128009).length, 2);
});

test('tiktoken tokenizer.model with its tokenizer_config.json: names, BOS and template from the config', async () => {
  const src = await fileSource(`${MODELS}llama3-tokenizer/tokenizer.model`);
  const cfg = await fileSource(`${MODELS}llama3-tokenizer/tokenizer_config.json`);
  const tok = await openTokenizer(src, cfg);
  await src.close?.(); await cfg.close?.();
  assert.equal(tok.kind, 'bpe');
  assert.deepEqual([tok.bosId, tok.eosId, tok.addBos], [128000, 128001, true]);
  assert.equal(tok.piece(128009), '<|eot_id|>');
  assert.ok(tok.applyChatTemplate([{ role: 'user', content: 'Hi' }]).startsWith('<|begin_of_text|><|start_header_id|>user'));
  assert.deepEqual(tok.encode('Hello world'), [128000, 9906, 1917]);
});

test('a model without a chat template says so', () => {
  const tiny = createTokenizer(tokenizerDataFromLlama2cBin(tok512, 'tok512.bin'), 'tok512.bin');
  assert.throws(() => tiny.applyChatTemplate([{ role: 'user', content: 'hi' }]), (e: unknown) =>
    e instanceof TokenizerError && /tok512\.bin/.test(e.message) && /chat template/.test(e.message));
  assert.throws(() => tiny.decode([512]), UsageError);
  assert.throws(() => tiny.piece(-1), UsageError);
});

test('tokenizer.json that is not JSON, or not a tokenizer, is a TokenizerError naming file and field', async () => {
  await assert.rejects(openTokenizer(bytesSource(utf8('{"model": {"type": "BPE", '), 'tokenizer.json')), (e: unknown) =>
    e instanceof TokenizerError && e.message.startsWith('tokenizer.json: ') && /not valid JSON/.test(e.message));
  assert.throws(() => tokenizerDataFromHfJson('not json', null, 'tokenizer.json'), /tokenizer\.json: is not JSON/);
  assert.throws(() => tokenizerDataFromHfJson([], null, 'tokenizer.json'), TokenizerError);
  assert.throws(() => tokenizerDataFromHfJson({}, null, 'tokenizer.json'), /tokenizer\.json: model: is missing/);
  assert.throws(() => tokenizerDataFromHfJson({ model: { type: 'Unigram', vocab: [] } }, null, 't.json'), /t\.json: model\.type: .*Unigram/);
  assert.throws(() => tokenizerDataFromHfJson({ model: { type: 'BPE', vocab: { a: 0, b: 1e9 }, merges: [] } }, null, 't.json'),
    /model\.vocab\["b"\].*1000000000/);
  assert.throws(() => tokenizerDataFromHfJson({ model: { type: 'BPE', vocab: { a: 0 }, merges: [3] } }, null, 't.json'),
    /model\.merges\[0\]/);
  assert.throws(() => tokenizerDataFromHfJson({ model: { type: 'BPE', vocab: { a: 0 }, merges: [] }, added_tokens: [{ id: 1 }] }, null, 't.json'),
    /added_tokens\[0\]\.content/);
  // A bos_token the vocabulary lacks.
  const byteLevel = { model: { type: 'BPE', vocab: { a: 0 }, merges: [] }, pre_tokenizer: { type: 'ByteLevel' } };
  assert.throws(() => tokenizerDataFromHfJson(byteLevel, { bos_token: '<s>' }, 't.json'), /tokenizer_config\.json: bos_token/);
});

test('llama2.c tokenizer.bin: truncation and impossible lengths fail fast', () => {
  assert.throws(() => tokenizerDataFromLlama2cBin(tok512.subarray(0, 1000), 'tok512.bin'), TruncatedFileError);
  const evil = new Uint8Array(16);
  const dv = new DataView(evil.buffer);
  dv.setInt32(0, 7, true); dv.setFloat32(4, 0, true); dv.setInt32(8, 0x7fffffff, true);
  assert.throws(() => tokenizerDataFromLlama2cBin(evil, 'evil.bin'), (e: unknown) =>
    e instanceof TruncatedFileError && /evil\.bin: token 0 declares 2147483647 bytes but 4 remain/.test(e.message));
  dv.setInt32(8, -5, true);
  assert.throws(() => tokenizerDataFromLlama2cBin(evil, 'evil.bin'), TruncatedFileError);
  // A model's vocab_size decides how many tokens to read, and must match.
  assert.equal(tokenizerDataFromLlama2cBin(tok512, 'tok512.bin', 512).tokens.length, 512);
  assert.throws(() => tokenizerDataFromLlama2cBin(tok512, 'tok512.bin', 500), /has 115 bytes after the 500 tokens/);
  assert.throws(() => tokenizerDataFromLlama2cBin(tok512, 'tok512.bin', 1_000_000), TruncatedFileError);
});

test('tiktoken: malformed lines and ranks are TokenizerErrors with the line number', () => {
  assert.throws(() => tokenizerDataFromTiktoken('IQ== 0\nnot base64! 1\n', 'tokenizer.model'), /tokenizer\.model: line 2/);
  assert.throws(() => tokenizerDataFromTiktoken('IQ== 0\nIg== 0\n', 'tokenizer.model'), /line 2.*rank 0 is repeated/);
  assert.throws(() => tokenizerDataFromTiktoken('IQ== 5\n', 'tokenizer.model'), /rank 5 is out of range/);
});

test('GGUF tokenizer metadata: kinds, none, and bad values', () => {
  const meta = (m: Record<string, unknown>) => new Map(Object.entries(m));
  assert.equal(tokenizerDataFromGguf(meta({ 'tokenizer.ggml.model': 'no' }), 'x.gguf'), null);
  assert.equal(tokenizerDataFromGguf(meta({}), 'x.gguf'), null);
  assert.throws(() => tokenizerDataFromGguf(meta({ 'tokenizer.ggml.model': 'bert' }), 'x.gguf'), /x\.gguf: tokenizer\.ggml\.model: is 'bert'/);
  assert.throws(() => tokenizerDataFromGguf(meta({ 'tokenizer.ggml.model': 'llama', 'tokenizer.ggml.tokens': [1, 2] }), 'x.gguf'),
    /tokenizer\.ggml\.tokens/);
  assert.throws(() => tokenizerDataFromGguf(meta({ 'tokenizer.ggml.model': 'llama', 'tokenizer.ggml.tokens': ['a', 'b'], 'tokenizer.ggml.scores': [0] }), 'x.gguf'),
    /tokenizer\.ggml\.scores: must be an array of 2 numbers/);
  assert.throws(() => tokenizerDataFromGguf(meta({ 'tokenizer.ggml.model': 'llama', 'tokenizer.ggml.tokens': ['a', 'b'], 'tokenizer.ggml.token_type': [1, 9] }), 'x.gguf'),
    /token_type\[1\]: is 9/);
  assert.throws(() => tokenizerDataFromGguf(meta({ 'tokenizer.ggml.model': 'gpt2', 'tokenizer.ggml.tokens': ['a'] }), 'x.gguf'),
    /tokenizer\.ggml\.merges/);
  const d = tokenizerDataFromGguf(meta({
    'tokenizer.ggml.model': 'gpt2', 'tokenizer.ggml.pre': 'llama-bpe', 'tokenizer.ggml.tokens': ['a', 'b', 'ab', '<|eot_id|>'],
    'tokenizer.ggml.token_type': [1, 1, 1, 3], 'tokenizer.ggml.merges': ['a b'], 'tokenizer.ggml.eos_token_id': 3,
  }), 'x.gguf');
  assert.ok(d && d.kind === 'bpe' && d.ignoreMerges && d.addBos && d.eosId === 3 && d.eogIds.includes(3));
});

test('openTokenizer recognises files by content and lists what it accepts otherwise', async () => {
  const vocab = await fileSource(`${MODELS}llamacpp-vocab/ggml-vocab-llama-spm.gguf`);
  const spm = await openTokenizer(vocab);
  await vocab.close?.();
  assert.deepEqual(spm.encode('Hello world'), [1, 15043, 3186]);
  await assert.rejects(openTokenizer(bytesSource(new Uint8Array([0xff, 0xff, 0xff, 0xff, 1, 2, 3]), 'mystery.bin')), (e: unknown) =>
    e instanceof TokenizerError && /mystery\.bin/.test(e.message) && /tokenizer\.json/.test(e.message) && /GGUF/.test(e.message));
  await assert.rejects(openTokenizer(bytesSource(new Uint8Array(2), 'tiny')), TokenizerError);
  // A SentencePiece model cut short.
  const model = readFileSync(`${MODELS}llama2-tokenizer/tokenizer.model`);
  assert.throws(() => tokenizerDataFromSentencePieceModel(model.subarray(0, 5000), 'tokenizer.model'), TruncatedFileError);
});

test('createTokenizer checks the data it is given', () => {
  const good = tokenizerDataFromLlama2cBin(tok512, 'tok512.bin');
  assert.throws(() => createTokenizer({ ...good, types: good.types.subarray(1) }, 'x'), /x: has 512 tokens but 511 token types/);
  assert.throws(() => createTokenizer({ ...good, bosId: 600 }, 'x'), /BOS token id 600/);
  assert.throws(() => createTokenizer({ kind: 'bpe', tokens: ['a'], types: new Uint8Array([TokenType.Normal]), merges: ['a a'],
    pre: 'mystery', ignoreMerges: false, bosId: null, eosId: null, eogIds: [], unkId: null, padId: null, addBos: false, addEos: false,
    chatTemplate: null }, 'x'), /pre-tokenizer 'mystery'/);
});

test('a SentencePiece-style tokenizer.json (as HF converts Llama 2) passes the 46 llama.cpp cases', () => {
  // Built here the way transformers' SentencePieceExtractor does it: every split of every piece into
  // two pieces is a merge, ordered by the merged piece's score (stable, splits by their ids).
  const sp = tokenizerDataFromLlama2cBin(readFileSync(`${MODELS}llama2-tokenizer/tokenizer.bin`), 'tokenizer.bin');
  const vocab: Record<string, number> = {};
  sp.tokens.forEach((t, id) => { vocab[t] = id; });
  const normal = (s: string) => vocab[s] !== undefined && sp.types[vocab[s]!] === TokenType.Normal;
  const merges: [string, string, number][] = [];
  sp.tokens.forEach((piece, id) => {
    if (sp.types[id] !== TokenType.Normal) return;
    const local: [string, string, number][] = [];
    for (let k = 1; k < piece.length; k++) {
      const l = piece.slice(0, k), r = piece.slice(k);
      if (normal(l) && normal(r)) local.push([l, r, sp.scores[id]!]);
    }
    local.sort((a, b) => vocab[a[0]]! - vocab[b[0]]! || vocab[a[1]]! - vocab[b[1]]!);
    merges.push(...local);
  });
  merges.sort((a, b) => b[2] - a[2]);
  const json = {
    version: '1.0',
    added_tokens: ['<unk>', '<s>', '</s>'].map((content, id) => ({ id, content, special: true, normalized: false })),
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }] },
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }] },
    model: { type: 'BPE', unk_token: '<unk>', byte_fallback: true, fuse_unk: true, vocab, merges: merges.map(([l, r]) => `${l} ${r}`) },
  };
  const data = tokenizerDataFromHfJson(json, { bos_token: '<s>', eos_token: '</s>' }, 'tokenizer.json');
  assert.equal(data.kind, 'spm');
  const tok = createTokenizer(data);
  assert.deepEqual([tok.bosId, tok.eosId, tok.unkId, tok.addBos], [1, 2, 0, true]);
  for (const [i, c] of vocabCases('llama-spm').entries()) {
    assert.deepEqual(tok.encode(c.text, { bos: false }), c.ids, `case ${i}: ${JSON.stringify(c.text)}`);
    assert.equal(tok.decode(c.ids), c.text);
  }
});
