// tiktoken's BPE file (Meta's Llama 3 tokenizer.model): one line per token, "base64(bytes) rank",
// ranks 0..n-1. There is no merge list: tiktoken merges the adjacent pair whose concatenation has
// the lowest rank. Rather than derive a merge list (every split of every token, about 600k
// entries for Llama 3), the tokens are written as byte-level strings with id = rank and the BPE
// model merges by rank directly (BpeTokenizerData.mergeByRank).
//
// The special tokens are not in the file; for Llama 3's 128000 ranks they are added at
// 128000..128255 with the names Meta's tokenizer.py gives them.

import type { BpeTokenizerData } from './data.ts';
import { TokenType } from './data.ts';
import { bytesToByteLevel } from './bpe.ts';
import { TokenizerError } from '../engine/errors.ts';

const LLAMA3_RANKS = 128000;

/** Llama 3's 256 special tokens in id order from 128000 (Llama 3.0 names, as in Meta's tokenizer.py;
 *  Llama 3.1 renamed a few reserved ones, e.g. 128008 <|eom_id|>: take names from a
 *  tokenizer_config.json when there is one). */
export function llama3SpecialTokens(): string[] {
  const names = [
    '<|begin_of_text|>', '<|end_of_text|>',
    '<|reserved_special_token_0|>', '<|reserved_special_token_1|>',
    '<|reserved_special_token_2|>', '<|reserved_special_token_3|>',
    '<|start_header_id|>', '<|end_header_id|>',
    '<|reserved_special_token_4|>', '<|eot_id|>',
  ];
  for (let i = 5; names.length < 256; i++) names.push(`<|reserved_special_token_${i}|>`);
  return names;
}

function base64Bytes(s: string): Uint8Array | null {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) return null;
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function tokenizerDataFromTiktoken(text: string, where: string): BpeTokenizerData {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const tokens: string[] = new Array(lines.length);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    const sp = line.indexOf(' ');
    const bytes = sp > 0 ? base64Bytes(line.slice(0, sp)) : null;
    const rank = sp > 0 ? Number(line.slice(sp + 1)) : NaN;
    if (bytes === null || bytes.length === 0 || !Number.isInteger(rank)) {
      throw new TokenizerError(`${where}: line ${i + 1}`, `is not "base64-token rank": ${JSON.stringify(line.slice(0, 60))}`,
        'Give a tiktoken tokenizer.model (Llama 3), tokenizer.json or a GGUF');
    }
    if (rank < 0 || rank >= lines.length || tokens[rank] !== undefined) {
      throw new TokenizerError(`${where}: line ${i + 1}`, `rank ${rank} is ${tokens[rank] !== undefined ? 'repeated' : 'out of range'}; ranks must be 0..${lines.length - 1}, once each`);
    }
    tokens[rank] = bytesToByteLevel(bytes);
  }
  const n = tokens.length;
  if (n < 256) throw new TokenizerError(where, `has ${n} tokens; a byte-level vocabulary needs at least the 256 bytes`);
  const types = new Uint8Array(n).fill(TokenType.Normal);
  const data: BpeTokenizerData = {
    kind: 'bpe', tokens, types, merges: [], mergeByRank: true, ignoreMerges: true, pre: 'llama-bpe',
    bosId: null, eosId: null, eogIds: [], unkId: null, padId: null, addBos: false, addEos: false, chatTemplate: null,
  };
  if (n === LLAMA3_RANKS) {
    data.tokens = tokens.concat(llama3SpecialTokens());
    data.types = new Uint8Array(n + 256).fill(TokenType.Normal);
    data.types.fill(TokenType.Control, n);
    data.bosId = 128000;
    data.eosId = 128001;
    data.eogIds = [128001, 128008, 128009]; // <|end_of_text|>, <|eom_id|> (3.1), <|eot_id|>
    data.addBos = true;
  }
  return data;
}
