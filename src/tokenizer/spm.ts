// SentencePiece-style BPE with scores and byte fallback, as llama.cpp's llm_tokenizer_spm does it
// (Llama 1/2, TinyLlama, TinyStories):
//
//   1. spaces become '▁' and, at the start of the text or after a special token, a '▁' is prepended
//      (SentencePiece's add_dummy_prefix);
//   2. the text is split into characters (code points), kept as a linked list of symbols;
//   3. every adjacent pair whose concatenation is a piece of the vocabulary is a candidate; the one
//      with the highest score is merged (ties: the leftmost), and the new symbol's two neighbouring
//      pairs become candidates; repeat until no candidate is left;
//   4. each final symbol is its piece's id, or, when a single character is not in the vocabulary,
//      one <0xNN> token per UTF-8 byte (byte fallback), or <unk> without byte tokens.
//
// The candidates live in a priority queue whose stale entries (a side already merged away) are
// skipped when popped, so a text of n characters costs O(n log n), not O(n²).

import type { SpmTokenizerData } from './data.ts';
import { TokenType } from './data.ts';
import { MergeHeap } from './heap.ts';
import { pushUtf8 } from './utf8.ts';
import { TokenizerError } from '../engine/errors.ts';

export const SPACE_PIECE = '\u2581'; // '▁'
const MAX_CACHE = 100_000;
const WORD = /\u2581*[^\u2581]+|\u2581+/g;
const WHOLE = /[^]+/g;

export class SpmModel {
  /** Pieces that text may turn into: Normal and UserDefined (control, byte and unknown pieces are
   *  never produced from text, as in SentencePiece). */
  private readonly vocab = new Map<string, number>();
  /** Id of <0xNN> for each byte, -1 when the vocabulary has none. */
  readonly byteIds = new Int32Array(256).fill(-1);
  private readonly scores: Float32Array;
  private readonly unkId: number | null;
  private readonly heap = new MergeHeap();
  private readonly splitWords: boolean;
  private readonly cache = new Map<string, { ids: number[]; ranges: number[] }>();

  constructor(data: SpmTokenizerData, private readonly where: string) {
    this.scores = data.scores;
    this.unkId = data.unkId;
    for (let id = 0; id < data.tokens.length; id++) {
      const t = data.types[id], piece = data.tokens[id]!;
      if (t === TokenType.Normal || t === TokenType.UserDefined) {
        if (!this.vocab.has(piece)) this.vocab.set(piece, id);
      } else if (t === TokenType.Byte) {
        const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
        if (m) this.byteIds[parseInt(m[1]!, 16)] = id;
      }
    }
    this.splitWords = ![...this.vocab.keys()].some((p) => /[^\u2581]\u2581/.test(p));
    // Vocabularies without <0xNN> pieces (llama.cpp's fallback): a single-byte piece stands for it.
    for (let b = 0; b < 128; b++) {
      if (this.byteIds[b]! < 0) this.byteIds[b] = this.vocab.get(String.fromCharCode(b)) ?? -1;
    }
  }

  /**
   * Appends the tokens of `text` (plain text, no special tokens) to `ids`. With `spans`, appends
   * each token's [start, end) in UTF-16 units of `text` plus `offset`; the added '▁' covers nothing.
   */
  encodeRun(text: string, addPrefix: boolean, ids: number[], spans: number[] | null, offset: number): void {
    if (text.length === 0) return;
    const pre = addPrefix ? 1 : 0;
    const s = (addPrefix ? SPACE_PIECE : '') + text.replaceAll(' ', SPACE_PIECE);
    // Where no piece has '▁' after another character, no merge crosses the start of a word
    // ("x|▁"): words (a run of '▁' and the characters up to the next '▁') are then tokenized
    // apart, which gives the same result, and cached. Words are found with a regex rather than a
    // charCodeAt loop: a regex flattens the string, while charCodeAt on a long concatenation in
    // optimised code was seen to cost time proportional to its length per call.
    const re = this.splitWords ? WORD : WHOLE;
    re.lastIndex = 0;
    for (let m = re.exec(s); m !== null; m = re.exec(s)) {
      const word = m[0], from = m.index;
      let enc = this.cache.get(word);
      if (enc === undefined) {
        enc = this.encodeWord(word);
        if (this.cache.size >= MAX_CACHE) this.cache.clear();
        this.cache.set(word, enc);
      }
      for (const id of enc.ids) ids.push(id);
      if (spans) {
        for (let k = 0; k < enc.ranges.length; k++) spans.push(offset + Math.max(0, from + enc.ranges[k]! - pre));
      }
    }
  }

  /** BPE over one word: ids, and each token's [start, end) in the word. */
  private encodeWord(s: string): { ids: number[]; ranges: number[] } {
    // Symbols: one per code point, as [start, end) ranges of s in a doubly linked list.
    const cap = s.length;
    const start = new Int32Array(cap), end = new Int32Array(cap);
    const prev = new Int32Array(cap), next = new Int32Array(cap);
    let n = 0;
    for (let i = 0; i < s.length;) {
      const w = s.codePointAt(i)! > 0xffff ? 2 : 1;
      start[n] = i; end[n] = i + w; prev[n] = n - 1; next[n] = n + 1;
      n++; i += w;
    }
    next[n - 1] = -1;

    const heap = this.heap;
    heap.clear();
    // aux = the pair's length when queued: a popped pair is stale if either side changed since.
    const tryPair = (l: number, r: number): void => {
      if (l < 0 || r < 0) return;
      const id = this.vocab.get(s.slice(start[l]!, end[r]!));
      if (id !== undefined) heap.push(-this.scores[id]!, l, r, end[r]! - start[l]!);
    };
    for (let i = 1; i < n; i++) tryPair(i - 1, i);

    while (heap.pop()) {
      const l = heap.topLeft, r = heap.topRight;
      const lenL = end[l]! - start[l]!, lenR = end[r]! - start[r]!;
      if (lenL === 0 || lenR === 0 || next[l] !== r || lenL + lenR !== heap.topAux) continue;
      // Merge r into l and unlink r (an empty range marks it dead).
      end[l] = end[r]!;
      end[r] = start[r]!;
      next[l] = next[r]!;
      if (next[r]! >= 0) prev[next[r]!] = l;
      tryPair(prev[l]!, l);
      tryPair(l, next[l]!);
    }

    const ids: number[] = [], ranges: number[] = [];
    for (let i = 0; i >= 0; i = next[i]!) {
      const a = start[i]!, b = end[i]!;
      const id = this.vocab.get(s.slice(a, b));
      if (id !== undefined) {
        ids.push(id); ranges.push(a, b);
        continue;
      }
      // Unmerged symbols are single characters: byte fallback, else <unk>.
      const bytes: number[] = [];
      pushUtf8(s.codePointAt(a)!, bytes);
      const fallback = bytes.map((x) => this.byteIds[x]!);
      for (const t of fallback.every((x) => x >= 0) ? fallback : [this.unk()]) { ids.push(t); ranges.push(a, b); }
    }
    return { ids, ranges };
  }

  private unk(): number {
    if (this.unkId === null) {
      throw new TokenizerError(this.where, 'the text has a character that is not in the vocabulary, which has neither byte tokens nor an unknown token');
    }
    return this.unkId;
  }
}
