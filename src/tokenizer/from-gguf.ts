// The tokenizer a GGUF file carries in its `tokenizer.ggml.*` metadata (llama.cpp's names):
//
//   tokenizer.ggml.model        'llama' (SentencePiece-style) | 'gpt2' (byte-level BPE) | 'no'/'none'
//   tokenizer.ggml.pre          pre-tokenizer name for 'gpt2' ('llama-bpe', 'smollm', 'default', ...)
//   tokenizer.ggml.tokens       [n] strings      tokenizer.ggml.scores  [n] f32
//   tokenizer.ggml.token_type   [n] i32 (TokenType)
//   tokenizer.ggml.merges       "left right" strings, in rank order ('gpt2')
//   tokenizer.ggml.{bos,eos,unknown,padding,eot,eom}_token_id, add_bos_token, add_eos_token,
//   add_space_prefix; tokenizer.chat_template
//
// Defaults follow llama.cpp: a 'llama' vocabulary without ids has <unk> 0, BOS 1, EOS 2, adds BOS
// and the '▁' prefix; Llama 3's pre-tokenizer implies ignore_merges and adding BOS.

import type { TokenizerData } from './data.ts';
import { TokenType } from './data.ts';
import { EOG_TEXTS } from './hf-json.ts';
import { TokenizerError } from '../engine/errors.ts';

const LLAMA3_PRE = new Set(['llama3', 'llama-v3', 'llama-bpe']);

export function tokenizerDataFromGguf(metadata: Map<string, unknown>, where: string): TokenizerData | null {
  const key = (k: string): string => `${where}: ${k}`;
  const get = (k: string): unknown => metadata.get(k);
  const str = (k: string): string | null => {
    const v = get(k);
    if (v === undefined) return null;
    if (typeof v !== 'string') throw new TokenizerError(key(k), `is ${typeof v}, not a string`);
    return v;
  };
  const bool = (k: string): boolean | null => {
    const v = get(k);
    if (v === undefined) return null;
    if (typeof v !== 'boolean') throw new TokenizerError(key(k), `is ${typeof v}, not a boolean`);
    return v;
  };

  const model = str('tokenizer.ggml.model');
  if (model === null || model === 'no' || model === 'none') return null;
  if (model !== 'llama' && model !== 'gpt2') {
    throw new TokenizerError(key('tokenizer.ggml.model'), `is '${model}'; glassbox reads 'llama' (SentencePiece) and 'gpt2' (byte-level BPE) vocabularies`);
  }

  const rawTokens = get('tokenizer.ggml.tokens');
  if (!Array.isArray(rawTokens) || rawTokens.length === 0 || !rawTokens.every((t) => typeof t === 'string')) {
    throw new TokenizerError(key('tokenizer.ggml.tokens'), 'is missing, empty or not an array of strings');
  }
  const tokens = rawTokens as string[];
  const n = tokens.length;

  const numbers = (k: string): number[] | null => {
    const v = get(k);
    if (v === undefined) return null;
    if (!Array.isArray(v) || v.length !== n || !v.every((x) => typeof x === 'number')) {
      throw new TokenizerError(key(k), `must be an array of ${n} numbers, one per token`);
    }
    return v as number[];
  };
  const id = (k: string, fallback: number | null): number | null => {
    const v = get(k);
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new TokenizerError(key(k), `is ${String(v)}, not a token id`);
    // llama.cpp writes -1 (as u32 0xFFFFFFFF) or an id past the end for "none".
    return v < n ? v : null;
  };

  const rawTypes = numbers('tokenizer.ggml.token_type');
  const types = new Uint8Array(n).fill(TokenType.Normal);
  if (rawTypes) {
    rawTypes.forEach((t, i) => {
      if (!Number.isInteger(t) || t < 0 || t > TokenType.Byte) {
        throw new TokenizerError(key(`tokenizer.ggml.token_type[${i}]`), `is ${t}, not a token type (0..6)`);
      }
      types[i] = t;
    });
  }

  const spm = model === 'llama';
  const bosId = id('tokenizer.ggml.bos_token_id', spm ? 1 : null);
  const eosId = id('tokenizer.ggml.eos_token_id', spm ? 2 : null);
  const unkId = id('tokenizer.ggml.unknown_token_id', spm ? 0 : null);
  const padId = id('tokenizer.ggml.padding_token_id', null);
  if (!rawTypes) {
    // Without types: byte pieces by name, and BOS/EOS/<unk> by id.
    if (spm) tokens.forEach((t, i) => { if (/^<0x[0-9A-F]{2}>$/.test(t)) types[i] = TokenType.Byte; });
    for (const x of [bosId, eosId]) if (x !== null) types[x] = TokenType.Control;
    if (unkId !== null) types[unkId] = TokenType.Unknown;
  }
  const eog = new Set<number>();
  for (const k of ['tokenizer.ggml.eot_token_id', 'tokenizer.ggml.eom_token_id']) {
    const x = id(k, null);
    if (x !== null) eog.add(x);
  }
  tokens.forEach((t, i) => { if (types[i] === TokenType.Control && EOG_TEXTS.includes(t)) eog.add(i); });

  const common = {
    tokens, types, bosId, eosId, unkId, padId,
    eogIds: [...eog].sort((a, b) => a - b),
    addEos: bool('tokenizer.ggml.add_eos_token') ?? false,
    chatTemplate: str('tokenizer.chat_template'),
  };

  if (spm) {
    const scores = numbers('tokenizer.ggml.scores');
    return {
      kind: 'spm', ...common,
      // Without scores, earlier pieces win (SentencePiece vocabularies are in score order).
      scores: scores ? Float32Array.from(scores) : Float32Array.from(tokens, (_, i) => -i),
      addSpacePrefix: bool('tokenizer.ggml.add_space_prefix') ?? true,
      addBos: bool('tokenizer.ggml.add_bos_token') ?? true,
    };
  }

  const merges = get('tokenizer.ggml.merges');
  if (!Array.isArray(merges) || !merges.every((m) => typeof m === 'string')) {
    throw new TokenizerError(key('tokenizer.ggml.merges'), 'is missing or not an array of strings; a gpt2 vocabulary needs its merges');
  }
  let pre = str('tokenizer.ggml.pre') ?? 'default';
  const llama3 = LLAMA3_PRE.has(pre);
  if (llama3) pre = 'llama-bpe';
  else if (pre === 'gpt-2') pre = 'gpt2';
  return {
    kind: 'bpe', ...common,
    merges: merges as string[],
    pre,
    ignoreMerges: llama3,
    addBos: bool('tokenizer.ggml.add_bos_token') ?? llama3,
  };
}
