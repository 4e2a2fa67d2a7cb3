// Shared by the tokenizer tests: paths into ../shared/models and llama.cpp's vocabulary test cases.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import type { Tokenizer } from '../../src/tokenizer/tokenizer.ts';

export const MODELS = fileURLToPath(new URL('../../../shared/models/', import.meta.url));

export interface VocabCase { text: string; ids: number[] }

/** llama.cpp's ggml-vocab-*.gguf.inp/.out: inputs separated by "\n__ggml_vocab_test__\n" (the last
 *  piece is empty), one line of ids per input. */
export function vocabCases(name: 'llama-spm' | 'llama-bpe'): VocabCase[] {
  const base = `${MODELS}llamacpp-vocab/ggml-vocab-${name}.gguf`;
  const inputs = readFileSync(`${base}.inp`, 'utf8').split('\n__ggml_vocab_test__\n');
  assert.equal(inputs.pop(), '');
  const lines = readFileSync(`${base}.out`, 'utf8').split('\n');
  assert.ok(lines.length >= inputs.length);
  return inputs.map((text, i) => ({
    text,
    ids: lines[i]!.trim() === '' ? [] : lines[i]!.trim().split(/\s+/).map(Number),
  }));
}

/**
 * Spans must tile the text in order: each token's span starts where the previous one ended (or is
 * empty there, like an added '▁' or BOS), or, when the two tokens split a character's bytes, at
 * that character, which both then cover; together they end at text.length.
 */
export function assertSpansTile(tok: Tokenizer, text: string, opts: { bos?: boolean; special?: boolean } = {}): void {
  const { ids, spans } = tok.encodeWithSpans(text, opts);
  assert.equal(spans.length, ids.length);
  assert.deepEqual(ids, tok.encode(text, opts), 'encodeWithSpans gives the ids encode gives');
  let end = 0, start = 0;
  for (const [i, [a, b]] of spans.entries()) {
    const what = `${JSON.stringify(text)}: token ${i} (${tok.piece(ids[i]!)}) spans [${a}, ${b}]`;
    assert.ok(a >= start && b >= a && b >= end, `${what}, out of order`);
    if (a < end) {
      // Overlap only within one character whose bytes the two tokens share.
      const shared = text.slice(a, end);
      assert.equal([...shared].length, 1, `${what}, overlapping the previous token by ${JSON.stringify(shared)}`);
    } else {
      assert.equal(a, end, `${what}, leaving a gap after ${end}`);
    }
    start = a;
    end = b;
  }
  assert.equal(end, text.length, `${JSON.stringify(text)}: spans end at ${end}, not ${text.length}`);
}
