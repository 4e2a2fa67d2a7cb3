// The Tokenizer: text <-> token ids for both vocabulary kinds, with the spans the UI draws tokens
// under, incremental decoding for streaming generation, display pieces, and chat templates.
//
// Encoding first cuts special-token text out of the input (added "user defined" tokens always;
// control tokens such as <|eot_id|> or <s> only with `special: true`, as llama.cpp's parse_special),
// then hands each run of plain text to the SentencePiece or byte-level BPE model.

import { Template } from '@huggingface/jinja';
import type { TokenizerData } from './data.ts';
import { TokenType } from './data.ts';
import { SpmModel, SPACE_PIECE } from './spm.ts';
import { BpeModel, byteLevelToBytes } from './bpe.ts';
import { utf8Encoder } from './utf8.ts';
import { TokenizerError, UsageError } from '../engine/errors.ts';

export interface EncodeOptions {
  /** Prepend BOS; default: the tokenizer's addBos. */
  bos?: boolean;
  /** Append EOS; default: the tokenizer's addEos. */
  eos?: boolean;
  /** Parse control-token text (<|eot_id|>, <s>) into those tokens; default false (it is plain text). */
  special?: boolean;
}

export interface DecodeOptions {
  /** Leave out control tokens (BOS, EOS, <|eot_id|>, ...) and <unk>; default false. */
  skipSpecial?: boolean;
  /** Drop the space SentencePiece's '▁' prefix put before the first token. Default: true for a
   *  SentencePiece tokenizer that adds the prefix. Pass false to decode text that continues
   *  earlier text (generated tokens after a prompt). */
  stripLeadingSpace?: boolean;
}

export interface ChatMessage { role: string; content: string }

/** Turns tokens into text one at a time, holding back bytes until their UTF-8 character is complete. */
export class DecodeStream {
  private readonly decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  private first = true;
  constructor(private readonly tok: Tokenizer, private readonly opts: DecodeOptions) {}

  /** The text that token `id` completes (often '', while a character's bytes are still coming). */
  push(id: number): string {
    const b = this.tok.outputBytes(id, this.first, this.opts);
    if (b === null) return '';
    this.first = false;
    return this.decoder.decode(b, { stream: true });
  }

  /** Ends the stream: an incomplete character left over becomes U+FFFD. */
  flush(): string {
    return this.decoder.decode();
  }
}

const UNK_TEXT = ' \u2047 '; // SentencePiece renders <unk> as " ⁇ "
const utf8Decoder = new TextDecoder('utf-8', { ignoreBOM: true });

export class Tokenizer {
  readonly kind: 'spm' | 'bpe';
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  /** Every id that ends generation: EOS and the data's extra end-of-generation ids. */
  readonly eogIds: readonly number[];
  readonly unkId: number | null;
  readonly addBos: boolean;
  readonly addEos: boolean;
  readonly chatTemplate: string | null;
  private readonly model: SpmModel | BpeModel;
  private readonly tokens: string[];
  private readonly types: Uint8Array;
  private readonly addSpacePrefix: boolean;
  private readonly bytesCache: (Uint8Array | undefined)[];
  /** Splitters for special-token text: [user-defined only, with control and unknown too]. */
  private splitters: [RegExp | null, RegExp | null] | null = null;
  private readonly textToSpecial = new Map<string, number>();
  private template: Template | null = null;

  constructor(readonly data: TokenizerData, readonly where: string = 'tokenizer') {
    const n = data.tokens.length;
    if (n === 0) throw new TokenizerError(where, 'the vocabulary is empty');
    if (data.types.length !== n) {
      throw new TokenizerError(where, `has ${n} tokens but ${data.types.length} token types`);
    }
    if (data.kind === 'spm' && data.scores.length !== n) {
      throw new TokenizerError(where, `has ${n} tokens but ${data.scores.length} scores`);
    }
    for (const [name, id] of [['BOS', data.bosId], ['EOS', data.eosId], ['unknown', data.unkId], ['padding', data.padId]] as const) {
      if (id !== null && (!Number.isInteger(id) || id < 0 || id >= n)) {
        throw new TokenizerError(where, `the ${name} token id ${id} is outside the vocabulary of ${n} tokens`);
      }
    }
    this.kind = data.kind;
    this.vocabSize = n;
    this.tokens = data.tokens;
    this.types = data.types;
    this.bosId = data.bosId;
    this.eosId = data.eosId;
    this.unkId = data.unkId;
    this.addBos = data.addBos && data.bosId !== null;
    this.addEos = data.addEos && data.eosId !== null;
    this.chatTemplate = data.chatTemplate;
    const eog = new Set(data.eogIds.filter((id) => Number.isInteger(id) && id >= 0 && id < n));
    if (data.eosId !== null) eog.add(data.eosId);
    this.eogIds = [...eog].sort((a, b) => a - b);
    this.addSpacePrefix = data.kind === 'spm' && data.addSpacePrefix;
    this.model = data.kind === 'spm' ? new SpmModel(data, where) : new BpeModel(data, where);
    this.bytesCache = new Array(n);
  }

  // -------------------------------------------------------------------------------------------
  // Encoding

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const ids: number[] = [];
    this.run(text, opts, ids, null);
    return ids;
  }

  /** Ids and, for each token, the [start, end) range of `text` (UTF-16 units) it covers. BOS and
   *  EOS get empty spans at 0 and text.length; a token holding part of a character (a byte token)
   *  gets that character's whole range. Spans are in order and never overlap except such shares. */
  encodeWithSpans(text: string, opts: EncodeOptions = {}): { ids: number[]; spans: [start: number, end: number][] } {
    const ids: number[] = [], flat: number[] = [];
    this.run(text, opts, ids, flat);
    const spans: [number, number][] = new Array(ids.length);
    for (let i = 0; i < ids.length; i++) spans[i] = [flat[2 * i]!, flat[2 * i + 1]!];
    return { ids, spans };
  }

  private run(text: string, opts: EncodeOptions, ids: number[], spans: number[] | null): void {
    if ((opts.bos ?? this.addBos) && this.bosId !== null) { ids.push(this.bosId); spans?.push(0, 0); }
    const splitter = this.splitter(opts.special ?? false);
    // llama.cpp prefixes '▁' at the start and after every special token.
    let afterSpecial = true;
    let pos = 0;
    const plain = (end: number): void => {
      if (end <= pos) return;
      this.model.encodeRun(text.slice(pos, end), this.addSpacePrefix && afterSpecial, ids, spans, pos);
      afterSpecial = false;
    };
    if (splitter) {
      splitter.lastIndex = 0;
      for (let m = splitter.exec(text); m !== null; m = splitter.exec(text)) {
        plain(m.index);
        ids.push(this.textToSpecial.get(m[0])!);
        spans?.push(m.index, m.index + m[0].length);
        pos = m.index + m[0].length;
        afterSpecial = true;
      }
    }
    plain(text.length);
    if ((opts.eos ?? this.addEos) && this.eosId !== null) { ids.push(this.eosId); spans?.push(text.length, text.length); }
  }

  /** A regex matching the special-token texts to cut out, longest first; null when there are none. */
  private splitter(special: boolean): RegExp | null {
    if (!this.splitters) {
      const user: string[] = [], all: string[] = [];
      for (let id = 0; id < this.vocabSize; id++) {
        const t = this.types[id], s = this.tokens[id]!;
        const isUser = t === TokenType.UserDefined;
        if (s.length === 0 || !(isUser || t === TokenType.Control || t === TokenType.Unknown)) continue;
        if (this.textToSpecial.has(s)) continue;
        this.textToSpecial.set(s, id);
        all.push(s);
        if (isUser) user.push(s);
      }
      const make = (list: string[]): RegExp | null => list.length === 0 ? null : new RegExp(
        list.sort((a, b) => b.length - a.length).map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'g');
      this.splitters = [make(user), make(all)];
    }
    return this.splitters[special ? 1 : 0];
  }

  // -------------------------------------------------------------------------------------------
  // Decoding

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (const id of ids) {
      const b = this.outputBytes(id, parts.length === 0, opts);
      if (b === null) continue;
      parts.push(b);
      total += b.length;
    }
    const all = new Uint8Array(total);
    let at = 0;
    for (const p of parts) { all.set(p, at); at += p.length; }
    return utf8Decoder.decode(all);
  }

  decodeStream(opts: DecodeOptions = {}): DecodeStream {
    return new DecodeStream(this, opts);
  }

  /** The bytes token `id` adds to decoded text (null: skipped), `first` when nothing came before. */
  outputBytes(id: number, first: boolean, opts: DecodeOptions): Uint8Array | null {
    this.check(id);
    if ((opts.skipSpecial ?? false) && this.isSpecial(id)) return null;
    const b = this.tokenBytes(id);
    const strip = opts.stripLeadingSpace ?? this.addSpacePrefix;
    if (first && strip && b[0] === 0x20 && this.types[id] === TokenType.Normal) return b.subarray(1);
    return b;
  }

  /** The bytes a token stands for in decoded text (control tokens: their own text). */
  tokenBytes(id: number): Uint8Array {
    this.check(id);
    let b = this.bytesCache[id];
    if (b === undefined) {
      const t = this.types[id], s = this.tokens[id]!;
      if (t === TokenType.Unknown) {
        b = utf8Encoder.encode(UNK_TEXT);
      } else if (this.kind === 'spm') {
        const m = t === TokenType.Byte ? /^<0x([0-9A-Fa-f]{2})>$/.exec(s) : null;
        b = m ? Uint8Array.of(parseInt(m[1]!, 16))
          : utf8Encoder.encode(t === TokenType.Normal || t === TokenType.Unused ? s.replaceAll(SPACE_PIECE, ' ') : s);
      } else {
        b = (t === TokenType.Normal || t === TokenType.Byte ? byteLevelToBytes(s) : null) ?? utf8Encoder.encode(s);
      }
      this.bytesCache[id] = b;
    }
    return b;
  }

  /** A display string for a token: SentencePiece pieces as stored ('▁Once', '<0x0A>', '<s>');
   *  byte-level tokens decoded, with a space shown as '▁' and control bytes or a partial UTF-8
   *  character as <0xNN> ('Ġthe' -> '▁the', 'Ċ' -> '<0x0A>'). */
  piece(id: number): string {
    this.check(id);
    const s = this.tokens[id]!;
    const t = this.types[id];
    if (this.kind === 'spm' || !(t === TokenType.Normal || t === TokenType.Byte)) return s;
    const b = this.tokenBytes(id);
    let out = '';
    for (let i = 0; i < b.length;) {
      const n = utf8SequenceLength(b, i);
      if (n === 0) { out += byteName(b[i]!); i++; continue; }
      const ch = utf8Decoder.decode(b.subarray(i, i + n));
      out += ch === ' ' ? SPACE_PIECE : ch;
      i += n;
    }
    return out;
  }

  /** Control tokens (BOS, EOS, <|eot_id|>, ...) and <unk>. */
  isSpecial(id: number): boolean {
    const t = this.types[id];
    return t === TokenType.Control || t === TokenType.Unknown;
  }

  isEog(id: number): boolean {
    return this.eogIds.includes(id);
  }

  /** The id of a token's exact text (special tokens included), or null. */
  tokenId(text: string): number | null {
    this.splitter(true);
    const id = this.textToSpecial.get(text);
    if (id !== undefined) return id;
    const i = this.tokens.indexOf(this.kind === 'spm' ? text.replaceAll(' ', SPACE_PIECE) : text);
    return i >= 0 ? i : null;
  }

  private check(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new UsageError('token id', `${id} is not a token of this vocabulary (0..${this.vocabSize - 1})`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Chat templates

  /** Renders a conversation with the model's Jinja chat template (bos_token/eos_token available).
   *  Encode the result with {bos: false, special: true}: templates write BOS themselves. */
  applyChatTemplate(messages: ChatMessage[], opts: { addGenerationPrompt?: boolean } = {}): string {
    if (this.chatTemplate === null) {
      throw new TokenizerError(this.where, 'has no chat template', 'Use an instruction-tuned model, or write the prompt without a chat template');
    }
    try {
      this.template ??= new Template(this.chatTemplate);
      return this.template.render({
        messages,
        add_generation_prompt: opts.addGenerationPrompt ?? false,
        bos_token: this.bosId === null ? '' : this.tokens[this.bosId]!,
        eos_token: this.eosId === null ? '' : this.tokens[this.eosId]!,
      });
    } catch (e) {
      if (e instanceof TokenizerError) throw e;
      throw new TokenizerError(`${this.where}: chat template`, `cannot be rendered (${(e as Error).message})`,
        'The template uses Jinja features glassbox does not support; write the prompt by hand');
    }
  }
}

export function createTokenizer(data: TokenizerData, where = 'tokenizer'): Tokenizer {
  return new Tokenizer(data, where);
}

// ---------------------------------------------------------------------------------------------

function byteName(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
}

/** Length of the valid, printable UTF-8 character at b[i], or 0 (invalid, incomplete, or a control character). */
function utf8SequenceLength(b: Uint8Array, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return c < 0x20 || c === 0x7f ? 0 : 1;
  const n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? (c < 0xf0 ? 3 : 0) : c >= 0xc2 ? 2 : 0;
  if (n === 0 || i + n > b.length) return 0;
  for (let k = 1; k < n; k++) if ((b[i + k]! & 0xc0) !== 0x80) return 0;
  const cp = n === 2 ? ((c & 31) << 6) | (b[i + 1]! & 63)
    : n === 3 ? ((c & 15) << 12) | ((b[i + 1]! & 63) << 6) | (b[i + 2]! & 63)
    : ((c & 7) << 18) | ((b[i + 1]! & 63) << 12) | ((b[i + 2]! & 63) << 6) | (b[i + 3]! & 63);
  // Overlong forms, surrogates and out-of-range values are not characters.
  if ((n === 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n === 4 && (cp < 0x10000 || cp > 0x10ffff))) return 0;
  if (cp >= 0x80 && cp < 0xa0) return 0; // C1 controls
  return n;
}
