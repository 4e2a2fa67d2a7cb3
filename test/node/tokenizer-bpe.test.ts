// Byte-level BPE: llama.cpp's 46 Llama 3 cases from both the Hugging Face tokenizer.json (merge
// list, ignore_merges) and Meta's tiktoken tokenizer.model (ranks), round trips, spans, special
// tokens, display pieces and streaming across split characters.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { tokenizerDataFromHfJson } from '../../src/tokenizer/hf-json.ts';
import { tokenizerDataFromTiktoken } from '../../src/tokenizer/tiktoken.ts';
import { BYTE_TO_CHAR, PRE_TOKENIZERS, preTokenize } from '../../src/tokenizer/bpe.ts';
import { createTokenizer } from '../../src/tokenizer/tokenizer.ts';
import type { BpeTokenizerData } from '../../src/tokenizer/data.ts';
import { MODELS, assertSpansTile, vocabCases } from './tokenizer-fixtures.ts';

const dir = `${MODELS}llama3-tokenizer/`;
const cases = vocabCases('llama-bpe');
const json = JSON.parse(readFileSync(dir + 'tokenizer.json', 'utf8')) as { added_tokens: { id: number; content: string }[] };
const config = JSON.parse(readFileSync(dir + 'tokenizer_config.json', 'utf8')) as unknown;
const jsonData = tokenizerDataFromHfJson(json, config, 'tokenizer.json') as BpeTokenizerData;
const hf = createTokenizer(jsonData, 'tokenizer.json');
const tt = createTokenizer(tokenizerDataFromTiktoken(readFileSync(dir + 'tokenizer.model', 'utf8'), 'tokenizer.model'));

test('tokenizer.json reads as Llama 3 byte-level BPE', () => {
  assert.equal(hf.kind, 'bpe');
  assert.equal(jsonData.pre, 'llama-bpe');
  assert.equal(jsonData.ignoreMerges, true);
  assert.equal(jsonData.merges.length, 280147);
  assert.equal(hf.vocabSize, 128256);
  assert.deepEqual([hf.bosId, hf.eosId, hf.addBos], [128000, 128001, true]);
  assert.deepEqual(hf.eogIds, [128001, 128009]);
});

for (const [name, tok] of [['tokenizer.json', hf], ['tokenizer.model', tt]] as const) {
  test(`46 llama.cpp cases from ${name}`, () => {
    assert.equal(cases.length, 46);
    for (const [i, c] of cases.entries()) {
      assert.deepEqual(tok.encode(c.text, { bos: false }), c.ids, `case ${i}: ${JSON.stringify(c.text)}`);
    }
  });

  test(`${name}: decode(encode(x)) == x and spans tile the text`, () => {
    for (const c of cases) {
      assert.equal(tok.decode(tok.encode(c.text)), tok.piece(128000) + c.text);
      assert.equal(tok.decode(tok.encode(c.text), { skipSpecial: true }), c.text);
      assertSpansTile(tok, c.text);
    }
  });
}

test('case 43 ("Cửa Việt") needs ignore_merges: plain BPE splits a word the vocabulary has whole', () => {
  const c = cases.find((x) => x.text.includes('Cửa Việt'))!;
  assert.deepEqual(hf.encode(c.text, { bos: false }), c.ids);
  const plain = createTokenizer({ ...jsonData, ignoreMerges: false });
  assert.notDeepEqual(plain.encode(c.text, { bos: false }), c.ids);
});

test('the tiktoken special tokens are named as in tokenizer.json', () => {
  assert.equal(json.added_tokens.length, 256);
  for (const a of json.added_tokens) assert.equal(tt.piece(a.id), a.content, `id ${a.id}`);
  // And the ordinary tokens are the same byte strings.
  for (let id = 0; id < 128000; id += 997) assert.deepEqual(tt.tokenBytes(id), hf.tokenBytes(id));
});

test('<|eot_id|> is one token only with special: true', () => {
  const text = 'Hi<|eot_id|>';
  assert.deepEqual(hf.encode(text, { bos: false, special: true }), [13347, 128009]);
  const plain = hf.encode(text, { bos: false });
  assert.ok(plain.length > 2 && plain.every((id) => id < 128000), plain.join(' '));
  assert.equal(hf.decode(plain), text);
  assert.deepEqual(tt.encode(text, { bos: false, special: true }), [13347, 128009]);
  assert.deepEqual(hf.encodeWithSpans(text, { special: true }).spans, [[0, 0], [0, 2], [2, 12]]);
  assert.equal(hf.decode([13347, 128009], { skipSpecial: true }), 'Hi');
  assert.ok(hf.isEog(128009) && hf.isSpecial(128009) && !hf.isSpecial(13347));
});

test('display pieces: spaces as ▁, control bytes and partial characters as <0xNN>', () => {
  const the = hf.encode(' the', { bos: false });
  assert.equal(the.length, 1);
  assert.equal(hf.data.tokens[the[0]!], 'Ġthe');
  assert.equal(hf.piece(the[0]!), '▁the');
  assert.equal(hf.piece(198), '<0x0A>'); // "\n"
  assert.equal(hf.piece(128009), '<|eot_id|>');
  // 🦙 is three tokens: F0 9F, A6, 99 -> no token is a whole character.
  assert.deepEqual(hf.encode('🦙', { bos: false }).map((id) => hf.piece(id)), ['<0xF0><0x9F>', '<0xA6>', '<0x99>']);
  assert.equal(hf.piece(hf.encode('é', { bos: false })[0]!), 'é');
});

test('decodeStream holds a split character until its last byte', () => {
  const ids = hf.encode('a🦙b', { bos: false });
  const stream = hf.decodeStream();
  const out = ids.map((id) => stream.push(id));
  assert.equal(out.join(''), 'a🦙b');
  assert.ok(!out.some((s) => s.includes('\uFFFD')));
  assert.ok(out.filter((s) => s === '').length >= 2, JSON.stringify(out));
  // Spans: each of the three byte-level tokens of 🦙 covers the whole character.
  const { spans } = hf.encodeWithSpans('🦙', { bos: false });
  assert.deepEqual(spans, [[0, 2], [0, 2], [0, 2]]);
  // Invalid UTF-8 (a lone continuation byte) decodes to U+FFFD.
  assert.equal(hf.decode([hf.data.tokens.indexOf(BYTE_TO_CHAR[0xa6]!)]), '\uFFFD');
});

test('the pre-tokenizer matches Llama 3 details (contractions in any case, digits by three, U+0085 is space)', () => {
  const pieces = (s: string): string[] => {
    const r = preTokenize(PRE_TOKENIZERS['llama-bpe']!, s);
    return Array.from({ length: r.length / 2 }, (_, i) => s.slice(r[2 * i]!, r[2 * i + 1]!));
  };
  assert.deepEqual(pieces("I'M HE'LL we'Re"), ['I', "'M", ' HE', "'LL", ' we', "'Re"]);
  assert.deepEqual(pieces('1234567 x'), ['123', '456', '7', ' x']);
  // \s+(?!\S): a run of spaces leaves its last one to the word after it.
  assert.deepEqual(pieces('a   b\n\n c'), ['a', '  ', ' b', '\n\n', ' c']);
  // U+0085 (NEL) is White_Space in Unicode, and so in tokenizer.json's regex; U+FEFF is not.
  assert.deepEqual(pieces('a\u0085\u0085b'), ['a', '\u0085', '\u0085b']);
  assert.deepEqual(pieces('a \uFEFFb'), ['a', ' \uFEFF', 'b']);
  assert.deepEqual(pieces('!!!\r\nx'), ['!!!\r\n', 'x']);
});

// Speed is measured by test/bench/tokenize.ts (BENCHMARKS.md), not here.
test('a 10,000-word text round-trips', () => {
  const words = ['Once', 'upon', 'a', 'time', 'there', 'was', 'little', 'girl', 'named', 'Lily', 'she', 'loved', 'to', 'play', 'outside'];
  let s = '';
  for (let i = 0; i < 10000; i++) s += (i % 12 === 11 ? '. ' : ' ') + words[(i * 7) % words.length];
  for (const tok of [hf, tt]) {
    const ids = tok.encode(s, { bos: false });
    assert.equal(tok.decode(ids), s);
  }
});
