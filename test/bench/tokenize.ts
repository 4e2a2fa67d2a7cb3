// Tokenizer speed: a generated 10,000-word story-like text through the Llama 2 SentencePiece
// vocabulary (llama.cpp's vocab GGUF) and the Llama 3 byte-level BPE (tokenizer.json and tiktoken),
// beside llama.cpp's own tokenizer on the same vocab GGUF (the peer: same ids required).
// Run: node --import tsx test/bench/tokenize.ts [--json]

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fileSource } from '../../src/formats/node-source.ts';
import { openTokenizer } from '../../src/tokenizer/open.ts';
import { tokenizerDataFromTiktoken } from '../../src/tokenizer/tiktoken.ts';
import { createTokenizer, type Tokenizer } from '../../src/tokenizer/tokenizer.ts';

const MODELS = fileURLToPath(new URL('../../../shared/models/', import.meta.url));

/** A deterministic TinyStories-like text of `n` words (xorshift PRNG). */
export function storyText(n: number, seed = 1): string {
  const names = ['Lily', 'Tom', 'Ben', 'Mia', 'Sam', 'Anna', 'Max', 'Sue'];
  const nouns = ['ball', 'tree', 'park', 'dog', 'cat', 'house', 'garden', 'river', 'box', 'cake', 'bird', 'toy', 'car', 'friend', 'mom', 'sun'];
  const verbs = ['saw', 'liked', 'found', 'wanted', 'played with', 'looked at', 'shared', 'painted', 'hugged', 'lost', 'carried'];
  const adjs = ['big', 'little', 'red', 'happy', 'shiny', 'old', 'funny', 'soft', 'blue', 'brave', 'sleepy'];
  const says = ['"Look!"', '"Can I play too?"', '"Thank you, mom."', '"I\'m sorry."', '"Let\'s go to the park!"', '"Don\'t worry."'];
  let s = seed >>> 0 || 1;
  const rnd = (k: number): number => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s % k; };
  const pick = <T>(a: T[]): T => a[rnd(a.length)]!;
  const out: string[] = [];
  let words = 0;
  while (words < n) {
    let sentence: string;
    switch (rnd(5)) {
      case 0: sentence = `Once upon a time, there was a ${pick(adjs)} ${pick(nouns)} named ${pick(names)}.`; break;
      case 1: sentence = `${pick(names)} ${pick(verbs)} the ${pick(adjs)} ${pick(nouns)} near the ${pick(nouns)}.`; break;
      case 2: sentence = `${pick(names)} said, ${pick(says)}`; break;
      case 3: sentence = `They were ${pick(adjs)} and played all day, ${1 + rnd(12)} times in ${1990 + rnd(30)}.`; break;
      default: sentence = `One day, ${pick(names)} went to the ${pick(nouns)} with a ${pick(adjs)} ${pick(nouns)}.${rnd(4) === 0 ? '\n\n' : ''}`;
    }
    out.push(sentence);
    words += sentence.split(/\s+/).filter(Boolean).length;
  }
  return out.join(' ');
}

async function time<T>(f: () => T | Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const r = await f();
  return [r, performance.now() - t0];
}

const text = storyText(10_000);
const rows: Record<string, number | string>[] = [];

async function bench(name: string, load: () => Promise<Tokenizer>): Promise<void> {
  const [tok, loadMs] = await time(load);
  const [ids, coldMs] = await time(() => tok.encode(text, { bos: false }));
  const [, warmMs] = await time(() => tok.encode(text, { bos: false }));
  const [, spansMs] = await time(() => tok.encodeWithSpans(text, { bos: false }));
  const [back, decodeMs] = await time(() => tok.decode(ids));
  if (back !== text) throw new Error(`${name}: decode(encode(text)) differs from the text`);
  rows.push({ tokenizer: name, tokens: ids.length, load_ms: +loadMs.toFixed(1), encode_ms: +coldMs.toFixed(1),
    encode_again_ms: +warmMs.toFixed(1), encode_spans_ms: +spansMs.toFixed(1), decode_ms: +decodeMs.toFixed(1) });
}

await bench('llama2 spm (ggml-vocab-llama-spm.gguf)', async () => {
  const src = await fileSource(`${MODELS}llamacpp-vocab/ggml-vocab-llama-spm.gguf`);
  try { return await openTokenizer(src); } finally { await src.close?.(); }
});
await bench('llama3 bpe (tokenizer.json)', async () => {
  const src = await fileSource(`${MODELS}llama3-tokenizer/tokenizer.json`);
  try { return await openTokenizer(src); } finally { await src.close?.(); }
});
await bench('llama3 bpe (tiktoken tokenizer.model)', async () =>
  createTokenizer(tokenizerDataFromTiktoken(readFileSync(`${MODELS}llama3-tokenizer/tokenizer.model`, 'utf8'), 'tokenizer.model')));

// The peer: llama.cpp (node-llama-cpp) tokenizing the same text with the same vocabulary.
{
  const { loadLlama } = await import('../support/llamacpp.mjs');
  const llama = await loadLlama({});
  const model = await llama.loadModel({ modelPath: `${MODELS}llamacpp-vocab/ggml-vocab-llama-spm.gguf`, vocabOnly: true });
  const [ids, coldMs] = await time(() => model.tokenize(text));
  const [, warmMs] = await time(() => model.tokenize(text));
  const [, decodeMs] = await time(() => model.detokenize(ids));
  const ours = rows[0]!;
  const mine = (await (async () => {
    const src = await fileSource(`${MODELS}llamacpp-vocab/ggml-vocab-llama-spm.gguf`);
    try { return await openTokenizer(src); } finally { await src.close?.(); }
  })()).encode(text, { bos: false });
  if (mine.length !== ids.length || mine.some((id, i) => id !== ids[i])) throw new Error('llama.cpp and glassbox tokenize the text differently');
  rows.push({ tokenizer: 'llama.cpp (same vocab GGUF, peer)', tokens: ids.length, load_ms: NaN, encode_ms: +coldMs.toFixed(1),
    encode_again_ms: +warmMs.toFixed(1), encode_spans_ms: NaN, decode_ms: +decodeMs.toFixed(1) });
  rows.push({ tokenizer: 'ratio glassbox spm / llama.cpp (time)', tokens: ids.length, load_ms: NaN,
    encode_ms: +(Number(ours.encode_ms) / coldMs).toFixed(2), encode_again_ms: +(Number(ours.encode_again_ms) / warmMs).toFixed(2),
    encode_spans_ms: NaN, decode_ms: +(Number(ours.decode_ms) / decodeMs).toFixed(2) });
  await model.dispose();
  await llama.dispose();
}

if (process.argv.includes('--json')) {
  console.log(JSON.stringify({ words: 10_000, chars: text.length, results: rows }));
} else {
  console.log(`text: 10,000 words, ${text.length} characters`);
  console.table(rows);
}
