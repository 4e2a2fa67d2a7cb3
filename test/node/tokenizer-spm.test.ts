// SentencePiece-style BPE: llama.cpp's 46 Llama 1/2 vocabulary cases from its own vocab-only GGUF
// (and the same vocabulary read from Meta's tokenizer.model and llama2.c's tokenizer.bin), round
// trips, spans, byte fallback, and TinyStories' 512-token vocabulary against llama2.c.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readGguf } from '../../src/formats/gguf.ts';
import { fileSource } from '../../src/formats/node-source.ts';
import { bytesSource } from '../../src/formats/source.ts';
import { tokenizerDataFromGguf } from '../../src/tokenizer/from-gguf.ts';
import { tokenizerDataFromLlama2cBin } from '../../src/tokenizer/llama2c-bin.ts';
import { openTokenizer } from '../../src/tokenizer/open.ts';
import { createTokenizer, type Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { MODELS, assertSpansTile, vocabCases } from './tokenizer-fixtures.ts';

const cases = vocabCases('llama-spm');

async function fromGguf(path: string): Promise<Tokenizer> {
  const src = await fileSource(path);
  try {
    const file = await readGguf(src);
    const data = tokenizerDataFromGguf(file.metadata, src.name);
    assert.ok(data && data.kind === 'spm');
    return createTokenizer(data, src.name);
  } finally {
    await src.close?.();
  }
}

const llama = await fromGguf(`${MODELS}llamacpp-vocab/ggml-vocab-llama-spm.gguf`);
const tiny = createTokenizer(tokenizerDataFromLlama2cBin(readFileSync(`${MODELS}tinystories-260k/tok512.bin`), 'tok512.bin'));

test('46 llama.cpp cases from ggml-vocab-llama-spm.gguf (no BOS, no special parsing)', () => {
  assert.equal(cases.length, 46);
  assert.equal(llama.kind, 'spm');
  assert.equal(llama.vocabSize, 32000);
  for (const [i, c] of cases.entries()) {
    assert.deepEqual(llama.encode(c.text, { bos: false }), c.ids, `case ${i}: ${JSON.stringify(c.text)}`);
  }
});

test('the same vocabulary from tokenizer.model (protobuf) and tokenizer.bin (llama2.c) gives the same ids', async () => {
  for (const name of ['tokenizer.model', 'tokenizer.bin']) {
    const src = await fileSource(`${MODELS}llama2-tokenizer/${name}`);
    const tok = await openTokenizer(src);
    await src.close?.();
    assert.equal(tok.vocabSize, 32000);
    assert.deepEqual([tok.bosId, tok.eosId, tok.unkId, tok.addBos], [1, 2, 0, true]);
    for (const [i, c] of cases.entries()) {
      assert.deepEqual(tok.encode(c.text, { bos: false }), c.ids, `${name} case ${i}: ${JSON.stringify(c.text)}`);
    }
  }
});

test('decode(encode(x)) == x for every case (the added prefix space is stripped)', () => {
  for (const c of cases) {
    assert.equal(llama.decode(llama.encode(c.text, { bos: false })), c.text);
    // With BOS skipped as special the prefix space is still stripped...
    assert.equal(llama.decode(llama.encode(c.text), { skipSpecial: true }), c.text);
  }
  // ...and shown, it stays: "<s>" then " Hello", as llama.cpp and Hugging Face print it.
  assert.equal(llama.decode(llama.encode('Hello')), '<s> Hello');
  // Continuing text keeps its space.
  assert.equal(llama.decode([15043, 3186], { stripLeadingSpace: false }), ' Hello world');
});

test('spans tile the text for every case, and name what each token covers', () => {
  for (const c of cases) {
    assertSpansTile(llama, c.text, { bos: false });
    assertSpansTile(llama, c.text, { bos: true, special: true });
  }
  const { ids, spans } = llama.encodeWithSpans(' Hello world', { bos: true });
  assert.deepEqual(ids, [1, 29871, 15043, 3186]);
  // BOS and the added '▁' cover nothing; '▁Hello' covers the user's space and "Hello".
  assert.deepEqual(spans, [[0, 0], [0, 0], [0, 6], [6, 12]]);
});

test('byte fallback: an emoji becomes its UTF-8 bytes, decoded back across tokens', () => {
  // Llama 2 (case 17): ' this is 🦙.cpp' has 🦙 (F0 9F A6 99) as <0xF0><0x9F><0xA6><0x99> = 243 162 169 156.
  const text = 'a 🦙 b';
  const { ids, spans } = llama.encodeWithSpans(text, { bos: false });
  const bytes = ids.filter((id) => id >= 3 && id <= 258);
  assert.deepEqual(bytes, [243, 162, 169, 156]);
  assert.deepEqual(bytes.map((id) => llama.piece(id)), ['<0xF0>', '<0x9F>', '<0xA6>', '<0x99>']);
  for (const [i, id] of ids.entries()) if (bytes.includes(id)) assert.deepEqual(spans[i], [2, 4]); // the surrogate pair
  assert.equal(llama.decode(ids), text);

  // TinyStories' 512-token vocabulary: most characters outside ASCII fall back to bytes.
  for (const s of ['Hi 🙂 there', 'naïve café — “quotes”', '日本語', 'e\u0301 \u{1F468}\u200D\u{1F469}\u200D\u{1F467}']) {
    const t = tiny.encode(s, { bos: false });
    assert.ok(t.some((id) => id >= 3 && id <= 258), `${s} uses byte tokens`);
    assert.equal(tiny.decode(t), s);
    assertSpansTile(tiny, s);
  }
});

test('decodeStream emits a character only when its last byte arrives', () => {
  const ids = tiny.encode('🙂!', { bos: false }); // ▁ <0xF0> <0x9F> <0x99> <0x82> !
  const stream = tiny.decodeStream();
  const out = ids.map((id) => stream.push(id));
  assert.deepEqual(out, ['', '', '', '', '🙂', '!']);
  assert.equal(stream.flush(), '');
  // A character cut off at the end becomes U+FFFD on flush, like decode.
  const cut = tiny.decodeStream({ stripLeadingSpace: false });
  assert.equal(ids.slice(0, 3).map((id) => cut.push(id)).join(''), ' ');
  assert.equal(cut.flush(), '\uFFFD');
  assert.equal(tiny.decode(ids.slice(1, 3)), '\uFFFD');
});

test('tok512.bin encodes "Once upon a time" as llama2.c does', () => {
  // Worked out by hand from tok512.bin. Pieces (id, score) that occur in "▁Once▁upon▁a▁time":
  //   ▁t 259 -0, ▁a 261 -2, im 288 -29, on 289 -30, ▁u 318 -59, ▁O 319 -60, ▁On 321 -62, ce 331 -72,
  //   ▁up 350 -91, ime 369 -110, ▁time 378 -119, ▁Once 403 -144, ▁upon 407 -148.
  // Highest score first: ▁t, ▁a, im, on, ▁u, ▁O, ▁On, ce, ▁up, ime (▁t+im+e -> ▁t ime), ▁time,
  // ▁Once (▁On+ce), ▁upon (▁up+on). Left: ▁Once ▁upon ▁a ▁time, after BOS = 1.
  assert.deepEqual(tiny.encode('Once upon a time'), [1, 403, 407, 261, 378]);
  assert.deepEqual([403, 407, 261, 378].map((id) => tiny.piece(id)), ['▁Once', '▁upon', '▁a', '▁time']);
  // The embedded vocabulary of stories260K.gguf is the same.
});

test('stories260K.gguf carries tok512 and decodes llama2.c\'s greedy output byte for byte', async () => {
  const gg = await fromGguf(`${MODELS}tinystories-260k/stories260K.gguf`);
  assert.deepEqual(gg.data.tokens, tiny.data.tokens);
  assert.deepEqual(gg.encode('Once upon a time'), [1, 403, 407, 261, 378]);
  const ref = JSON.parse(readFileSync(`${MODELS}tinystories-260k/stories260K_greedy_ref.json`, 'utf8')) as { token_ids: number[]; text: string };
  assert.equal(ref.token_ids[0], 1);
  assert.equal(gg.decode(ref.token_ids, { skipSpecial: true }), ref.text);
  // Streaming gives the same text.
  const stream = gg.decodeStream({ skipSpecial: true });
  assert.equal(ref.token_ids.map((id) => stream.push(id)).join('') + stream.flush(), ref.text);
});

test('special tokens: parsed only with special: true; a "▁" prefix follows each', () => {
  assert.deepEqual(llama.encode('<s>Hello', { bos: false, special: true }), [1, 15043]);
  const plain = llama.encode('<s>Hello', { bos: false });
  assert.ok(!plain.includes(1) && plain.length > 2);
  assert.equal(llama.decode(plain), '<s>Hello');
  assert.deepEqual(llama.encode('Hello', { eos: true }), [1, 15043, 2]);
  assert.deepEqual(llama.encode(''), [1]);
  assert.deepEqual(llama.encode('', { bos: false }), []);
  assert.equal(llama.decode([1, 15043, 2], { skipSpecial: true }), 'Hello');
  assert.ok(llama.isSpecial(1) && llama.isSpecial(2) && !llama.isSpecial(15043));
  assert.deepEqual(llama.eogIds, [2]);
  assert.deepEqual([...llama.tokenBytes(13)], [10]);
  assert.deepEqual([...llama.tokenBytes(15043)], [...Buffer.from(' Hello')]);
});

// Speed is measured by test/bench/tokenize.ts (BENCHMARKS.md), not here.
test('a 108k-character text round-trips', () => {
  const text = 'Once upon a time, there was a little girl named Lily. '.repeat(2000); // 108k characters
  const ids = llama.encode(text, { bos: false });
  assert.equal(llama.decode(ids), text);
});

test('bytesSource of tok512 opens through openTokenizer too', async () => {
  const tok = await openTokenizer(bytesSource(readFileSync(`${MODELS}tinystories-260k/tok512.bin`), 'tok512.bin'));
  assert.deepEqual(tok.encode('Once upon a time'), [1, 403, 407, 261, 378]);
});
