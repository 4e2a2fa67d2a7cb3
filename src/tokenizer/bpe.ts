// Byte-level BPE (Llama 3, SmolLM, GPT-2 family), as llama.cpp's llm_tokenizer_bpe and Hugging Face
// tokenizers do it:
//
//   1. the pre-tokenizer regex cuts the text into pre-tokens (words with their leading space,
//      runs of up to 3 digits, punctuation, whitespace runs);
//   2. each pre-token's UTF-8 bytes are written with GPT-2's bytes_to_unicode map (every byte one
//      printable character: ' ' is 'Ġ', '\n' is 'Ċ'), the alphabet the vocabulary is written in;
//   3. with ignore_merges, a pre-token that is itself in the vocabulary is emitted as one token;
//   4. otherwise BPE: start from one symbol per byte and repeatedly merge the adjacent pair with the
//      lowest merge rank (ties: leftmost). Merges come from the file's merge list, or, for tiktoken
//      files, the rank of a pair is the rank (= id) of its concatenation.
//
// Pre-tokens repeat a lot in real text, so their ids are cached.

import type { BpeTokenizerData } from './data.ts';
import { TokenType } from './data.ts';
import { MergeHeap, PairTable } from './heap.ts';
import { byteToUtf16, pushUtf8 } from './utf8.ts';
import { TokenizerError } from '../engine/errors.ts';

// ---------------------------------------------------------------------------------------------
// GPT-2 bytes_to_unicode

/** The printable character each byte is written as in byte-level vocabularies. */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const out: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    // Printable Latin-1 bytes stand for themselves; the others are moved to U+0100 and up, in order.
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    out[b] = String.fromCharCode(printable ? b : 256 + extra++);
  }
  return out;
})();

/** Code unit -> byte, -1 for characters outside the map. */
export const CHAR_TO_BYTE: Int16Array = (() => {
  const out = new Int16Array(324).fill(-1);
  BYTE_TO_CHAR.forEach((c, b) => { out[c.charCodeAt(0)] = b; });
  return out;
})();

/** The byte-level string of some UTF-8 bytes. */
export function bytesToByteLevel(bytes: ArrayLike<number>): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += BYTE_TO_CHAR[bytes[i]!];
  return s;
}

/** The bytes a byte-level string stands for, or null if it has a character outside the map. */
export function byteLevelToBytes(s: string): Uint8Array | null {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const b = c < CHAR_TO_BYTE.length ? CHAR_TO_BYTE[c]! : -1;
    if (b < 0) return null;
    out[i] = b;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Pre-tokenizers

// Unicode White_Space, which is what \s means in the Rust/Oniguruma regexes of tokenizer.json and
// in llama.cpp; JavaScript's \s differs (it lacks U+0085 and adds U+FEFF).
const WS = '\\t\\n\\v\\f\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const S = `[${WS}]`, NOT_S = `[^${WS}]`;

/** Llama 3: the tokenizer.json regex, with its (?i:...) contractions spelled out (JS has no inline flags). */
const LLAMA3 = new RegExp(
  `'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}` +
  `| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*|${S}*[\\r\\n]+|${S}+(?!${NOT_S})|${S}+`, 'gu');
/** GPT-2 (and the second step of SmolLM's). */
const GPT2 = new RegExp(
  `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|${S}+(?!${NOT_S})|${S}+`, 'gu');
const DIGIT = /\p{N}/gu;

/** llama.cpp pre-tokenizer names -> the regexes applied in turn (each splits the pieces of the last). */
export const PRE_TOKENIZERS: Readonly<Record<string, RegExp[]>> = {
  'llama-bpe': [LLAMA3],
  'llama3': [LLAMA3],
  'smollm': [DIGIT, GPT2],
  'gpt2': [GPT2],
  'default': [GPT2],
};

export const SUPPORTED_PRE_TOKENIZERS = Object.keys(PRE_TOKENIZERS);

/** Splits text[from, to) with `re`, keeping matches and the gaps between them as pieces. */
function splitWith(re: RegExp, text: string, from: number, to: number, out: number[]): void {
  const sub = from === 0 && to === text.length ? text : text.slice(from, to);
  re.lastIndex = 0;
  let last = 0;
  for (let m = re.exec(sub); m !== null; m = re.exec(sub)) {
    if (m[0].length === 0) { re.lastIndex++; continue; }
    if (m.index > last) out.push(from + last, from + m.index);
    out.push(from + m.index, from + m.index + m[0].length);
    last = m.index + m[0].length;
  }
  if (last < sub.length) out.push(from + last, from + sub.length);
}

/** Pre-token boundaries of `text` as [start, end) pairs, flat. */
export function preTokenize(regexes: RegExp[], text: string): number[] {
  let ranges = [0, text.length];
  for (const re of regexes) {
    const next: number[] = [];
    for (let i = 0; i < ranges.length; i += 2) splitWith(re, text, ranges[i]!, ranges[i + 1]!, next);
    ranges = next;
  }
  return ranges;
}

// ---------------------------------------------------------------------------------------------
// The model

const MAX_CACHE = 100_000;

export class BpeModel {
  /** Byte-level strings of the Normal tokens (added and control tokens are raw text, never merged). */
  private readonly vocab = new Map<string, number>();
  private readonly byteIds = new Int32Array(256).fill(-1);
  /** Merge-list files: "left right" -> rank. Looked up by text only the first time a pair is met. */
  private readonly mergeRank = new Map<string, number>();
  /** The merged token of each rank, filled as merges are first used (-1: not yet). */
  private readonly mergedIds: Int32Array;
  /** Cache of (left, right) -> rank (-1: no merge); for tiktoken files the rank is the id of the
   *  concatenation. Filling it lazily keeps loading Llama 3's 280k merges fast. */
  private readonly pairRank = new PairTable(1 << 16);
  private readonly byRank: boolean;
  private readonly ignoreMerges: boolean;
  private readonly regexes: RegExp[];
  private readonly V: number;
  private readonly tokens: string[];
  private readonly unkId: number | null;
  private readonly cache = new Map<string, number[]>();
  private readonly heap = new MergeHeap();

  constructor(data: BpeTokenizerData, private readonly where: string) {
    const regexes = PRE_TOKENIZERS[data.pre];
    if (!regexes) {
      throw new TokenizerError(where, `pre-tokenizer '${data.pre}' is not supported (supported: ${SUPPORTED_PRE_TOKENIZERS.join(', ')})`,
        'Use a Llama 3, SmolLM or GPT-2 style tokenizer');
    }
    this.regexes = regexes;
    this.tokens = data.tokens;
    this.V = data.tokens.length;
    this.unkId = data.unkId;
    this.byRank = data.mergeByRank === true;
    // tiktoken always looks the whole piece up first.
    this.ignoreMerges = data.ignoreMerges || this.byRank;
    for (let id = 0; id < this.V; id++) {
      const t = data.types[id];
      if (t === TokenType.Normal || t === TokenType.Byte) {
        const s = data.tokens[id]!;
        if (!this.vocab.has(s)) this.vocab.set(s, id);
      }
    }
    for (let b = 0; b < 256; b++) this.byteIds[b] = this.vocab.get(BYTE_TO_CHAR[b]!) ?? -1;

    this.mergedIds = new Int32Array(this.byRank ? 0 : data.merges.length).fill(-1);
    if (!this.byRank) {
      if (data.merges.length === 0) throw new TokenizerError(where, 'the byte-level vocabulary has no merges');
      for (let rank = data.merges.length - 1; rank >= 0; rank--) this.mergeRank.set(data.merges[rank]!, rank);
    }
  }

  /** Appends the tokens of `text` (plain text, no special tokens); spans as in SpmModel.encodeRun. */
  encodeRun(text: string, _atStart: boolean, ids: number[], spans: number[] | null, offset: number): void {
    if (text.length === 0) return;
    const ranges = preTokenize(this.regexes, text);
    for (let i = 0; i < ranges.length; i += 2) {
      const a = ranges[i]!, b = ranges[i + 1]!;
      const piece = text.slice(a, b);
      let word = this.cache.get(piece);
      if (word === undefined) {
        word = this.encodeWord(piece);
        if (this.cache.size >= MAX_CACHE) this.cache.clear();
        this.cache.set(piece, word);
      }
      for (const id of word) ids.push(id);
      if (spans) this.wordSpans(piece, word, spans, offset + a);
    }
  }

  /** Spans of one pre-token's tokens: each token's bytes mapped back to the characters they come from. */
  private wordSpans(piece: string, word: number[], spans: number[], offset: number): void {
    if (word.length === 1) { spans.push(offset, offset + piece.length); return; }
    const map = byteToUtf16(piece);
    let pos = 0;
    for (const id of word) {
      const len = this.byteLength(id);
      const last = Math.min(pos + len, map.start.length) - 1;
      spans.push(offset + map.start[Math.min(pos, map.start.length - 1)]!, offset + map.end[Math.max(last, 0)]!);
      pos += len;
    }
  }

  /** Bytes a Normal token stands for: one per byte-level character. */
  private byteLength(id: number): number {
    return id === this.unkId ? 1 : this.tokens[id]!.length;
  }

  private rank(a: number, b: number): number {
    let r = this.pairRank.get(a, b);
    if (r !== undefined) return r;
    const ab = this.vocab.get(this.tokens[a]! + this.tokens[b]!);
    if (this.byRank) {
      // tiktoken: the pair's rank is its concatenation's rank.
      r = ab ?? -1;
    } else {
      r = this.mergeRank.get(this.tokens[a] + ' ' + this.tokens[b]) ?? -1;
      // A listed merge whose result is not a token cannot be applied (a malformed file).
      if (r >= 0 && ab === undefined) r = -1;
      if (r >= 0) this.mergedIds[r] = ab!;
    }
    if (this.pairRank.size >= 4 * MAX_CACHE) this.pairRank.clear();
    this.pairRank.setIfAbsent(a, b, r);
    return r;
  }

  private encodeWord(piece: string): number[] {
    const bytes: number[] = [];
    for (let i = 0; i < piece.length;) {
      const cp = piece.codePointAt(i)!;
      pushUtf8(cp, bytes);
      i += cp > 0xffff ? 2 : 1;
    }
    if (this.ignoreMerges) {
      const whole = this.vocab.get(bytesToByteLevel(bytes));
      if (whole !== undefined) return [whole];
    }
    const n = bytes.length;
    const sym = new Int32Array(n), prev = new Int32Array(n), next = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const id = this.byteIds[bytes[i]!]!;
      if (id < 0) {
        if (this.unkId === null) throw new TokenizerError(this.where, `the vocabulary has no token for byte 0x${bytes[i]!.toString(16)}`);
      }
      sym[i] = id < 0 ? this.unkId! : id; prev[i] = i - 1; next[i] = i + 1;
    }
    next[n - 1] = -1;

    const heap = this.heap;
    heap.clear();
    // aux = the pair key when queued: a popped pair is stale if either side has changed since.
    const tryPair = (l: number, r: number): void => {
      if (l < 0 || r < 0) return;
      const rank = this.rank(sym[l]!, sym[r]!);
      if (rank >= 0) heap.push(rank, l, r, sym[l]! * this.V + sym[r]!);
    };
    for (let i = 1; i < n; i++) tryPair(i - 1, i);
    while (heap.pop()) {
      const l = heap.topLeft, r = heap.topRight;
      if (sym[l]! < 0 || sym[r]! < 0 || next[l] !== r || sym[l]! * this.V + sym[r]! !== heap.topAux) continue;
      sym[l] = this.byRank ? heap.topPrio : this.mergedIds[heap.topPrio]!;
      sym[r] = -1;
      next[l] = next[r]!;
      if (next[r]! >= 0) prev[next[r]!] = l;
      tryPair(prev[l]!, l);
      tryPair(l, next[l]!);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]!) out.push(sym[i]!);
    return out;
  }
}
