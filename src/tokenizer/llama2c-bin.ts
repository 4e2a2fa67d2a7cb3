// llama2.c's tokenizer.bin (written by its tokenizer.py export):
//
//   i32 max_token_length
//   per token: f32 score, i32 length, `length` bytes of UTF-8
//
// The export wrote SentencePiece's '▁' as a plain space and BOS/EOS as "\n<s>\n" / "\n</s>\n"; both
// are undone here so the vocabulary reads like the GGUF one. llama2.c's conventions: <unk> = 0,
// BOS = 1, EOS = 2, byte tokens <0x00>..<0xFF> at 3..258 when the vocabulary has them.

import type { SpmTokenizerData } from './data.ts';
import { TokenType } from './data.ts';
import { SPACE_PIECE } from './spm.ts';
import { TokenizerError, TruncatedFileError } from '../engine/errors.ts';

const utf8 = new TextDecoder('utf-8');
const BYTE_PIECE = /^<0x[0-9A-F]{2}>$/;

export function tokenizerDataFromLlama2cBin(bytes: Uint8Array, where: string, vocabSize?: number): SpmTokenizerData {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 4) throw new TruncatedFileError(where, `is ${bytes.length} bytes long, too short for a llama2.c tokenizer.bin`);
  const maxLen = view.getInt32(0, true);
  if (maxLen <= 0 || maxLen > 1 << 16) {
    throw new TokenizerError(where, `max_token_length is ${maxLen}`, 'This is not a llama2.c tokenizer.bin; give its tokenizer.bin, tokenizer.json or a GGUF');
  }
  if (vocabSize !== undefined && (!Number.isInteger(vocabSize) || vocabSize <= 0 || vocabSize * 8 > bytes.length - 4)) {
    throw new TruncatedFileError(where, `cannot hold ${vocabSize} tokens in ${bytes.length} bytes`,
      'The tokenizer does not belong to this model, or the file is incomplete');
  }
  const tokens: string[] = [];
  const scores: number[] = [];
  let pos = 4;
  while (vocabSize === undefined ? pos < bytes.length : tokens.length < vocabSize) {
    const i = tokens.length;
    if (pos + 8 > bytes.length) {
      throw new TruncatedFileError(where, `ends inside token ${i}'s header at byte ${pos}` +
        (vocabSize !== undefined ? ` (the model has ${vocabSize} tokens)` : ''));
    }
    const score = view.getFloat32(pos, true);
    const len = view.getInt32(pos + 4, true);
    pos += 8;
    if (len < 0 || len > bytes.length - pos) {
      throw new TruncatedFileError(where, `token ${i} declares ${len} bytes but ${bytes.length - pos} remain`);
    }
    let s = utf8.decode(bytes.subarray(pos, pos + len));
    pos += len;
    if (i === 1 || i === 2) s = s.trim();
    else if (!BYTE_PIECE.test(s)) s = s.replaceAll(' ', SPACE_PIECE);
    tokens.push(s);
    scores.push(score);
  }
  if (vocabSize !== undefined && pos !== bytes.length) {
    throw new TokenizerError(where, `has ${bytes.length - pos} bytes after the ${vocabSize} tokens the model needs`,
      'The tokenizer does not belong to this model (its vocabulary is larger)');
  }
  const n = tokens.length;
  if (n < 3) throw new TokenizerError(where, `has only ${n} tokens; llama2.c needs at least <unk>, <s> and </s>`);
  const types = new Uint8Array(n).fill(TokenType.Normal);
  types[0] = TokenType.Unknown;
  types[1] = TokenType.Control;
  types[2] = TokenType.Control;
  for (let i = 3; i < Math.min(n, 259); i++) if (BYTE_PIECE.test(tokens[i]!)) types[i] = TokenType.Byte;
  return {
    kind: 'spm',
    tokens,
    types,
    scores: Float32Array.from(scores),
    addSpacePrefix: true,
    bosId: 1,
    eosId: 2,
    eogIds: [],
    unkId: 0,
    padId: null,
    addBos: true,
    addEos: false,
    chatTemplate: null,
  };
}
