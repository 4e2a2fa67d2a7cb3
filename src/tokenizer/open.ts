// Opens a tokenizer file on its own, recognised by its content (not its name):
//   GGUF (magic "GGUF", a vocabulary-only or full model file)  -> tokenizer.ggml.* metadata
//   JSON object                                                 -> Hugging Face tokenizer.json
//   lines "base64 rank"                                         -> tiktoken tokenizer.model (Llama 3)
//   protobuf starting with a piece (0x0A)                       -> SentencePiece tokenizer.model (Llama 2)
//   i32 max_token_length then (f32, i32, bytes) records         -> llama2.c tokenizer.bin
// A sibling tokenizer_config.json adds BOS/EOS, add_bos_token, the chat template and (for tiktoken
// files) the special tokens' names.

import type { ByteSource } from '../formats/source.ts';
import { readAll, readText } from '../formats/source.ts';
import { readGguf } from '../formats/gguf.ts';
import type { TokenizerData } from './data.ts';
import { TokenType } from './data.ts';
import { createTokenizer, type Tokenizer } from './tokenizer.ts';
import { tokenizerDataFromGguf } from './from-gguf.ts';
import { tokenizerDataFromHfJson } from './hf-json.ts';
import { tokenizerDataFromTiktoken } from './tiktoken.ts';
import { tokenizerDataFromLlama2cBin } from './llama2c-bin.ts';
import { tokenizerDataFromSentencePieceModel } from './sentencepiece-model.ts';
import { TokenizerError } from '../engine/errors.ts';

const ACCEPTED = 'Give a tokenizer.json (with its tokenizer_config.json), a Llama 3 tiktoken or Llama 2 SentencePiece tokenizer.model, a llama2.c tokenizer.bin, or a GGUF';
/** Tokenizer files are small; a bigger non-GGUF file is not one. */
const MAX_TOKENIZER_BYTES = 256 << 20;

export async function openTokenizer(src: ByteSource, sibling?: ByteSource): Promise<Tokenizer> {
  return createTokenizer(await readTokenizerData(src, sibling), src.name);
}

export async function readTokenizerData(src: ByteSource, sibling?: ByteSource): Promise<TokenizerData> {
  if (src.size < 4) throw new TokenizerError(src.name, `is ${src.size} bytes long, too short for a tokenizer`, ACCEPTED);
  const head = await src.read(0, 4);
  if (head[0] === 0x47 && head[1] === 0x47 && head[2] === 0x55 && head[3] === 0x46) { // "GGUF"
    const file = await readGguf(src);
    const data = tokenizerDataFromGguf(file.metadata, src.name);
    if (!data) throw new TokenizerError(src.name, 'is a GGUF without a vocabulary (no tokenizer.ggml.model)', ACCEPTED);
    return applyConfig(data, await readConfig(sibling));
  }
  if (src.size > MAX_TOKENIZER_BYTES) {
    throw new TokenizerError(src.name, `is ${src.size} bytes, too large for a tokenizer file`, ACCEPTED);
  }
  const bytes = await readAll(src);
  const first = bytes.find((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09 && b !== 0xef && b !== 0xbb && b !== 0xbf);

  if (first === 0x7b) { // '{'
    const text = new TextDecoder('utf-8').decode(bytes);
    let json: unknown;
    try { json = JSON.parse(text); } catch (e) {
      throw new TokenizerError(src.name, `is not valid JSON (${(e as Error).message})`, 'Give the tokenizer.json that came with the model');
    }
    return tokenizerDataFromHfJson(json, await readConfig(sibling), src.name);
  }
  // tiktoken: the first line is "base64 rank".
  const firstLine = new TextDecoder('utf-8').decode(bytes.subarray(0, Math.min(bytes.length, 256))).split('\n')[0]!;
  if (/^[A-Za-z0-9+/]+=* \d+\r?$/.test(firstLine)) {
    const data = tokenizerDataFromTiktoken(new TextDecoder('utf-8').decode(bytes), src.name);
    return applyConfig(data, await readConfig(sibling));
  }
  // A protobuf starts with field 1 (0x0A) and a length; a llama2.c file whose max_token_length is 10
  // starts with 0A 00 00 00.
  if (bytes[0] === 0x0a && (bytes[1] !== 0 || bytes[2] !== 0)) return applyConfig(tokenizerDataFromSentencePieceModel(bytes, src.name), await readConfig(sibling));
  const maxLen = new DataView(bytes.buffer, bytes.byteOffset, 4).getInt32(0, true);
  if (maxLen > 0 && maxLen <= 1024) return tokenizerDataFromLlama2cBin(bytes, src.name);
  throw new TokenizerError(src.name, 'is not a tokenizer file glassbox recognises', ACCEPTED);
}

async function readConfig(sibling: ByteSource | undefined): Promise<Record<string, unknown> | null> {
  if (!sibling) return null;
  let json: unknown;
  try { json = JSON.parse(await readText(sibling)); } catch (e) {
    throw new TokenizerError(sibling.name, `is not valid JSON (${(e as Error).message})`, 'Give the tokenizer_config.json that came with the model, or none');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new TokenizerError(sibling.name, 'is not a JSON object');
  return json as Record<string, unknown>;
}

/** tokenizer_config.json over a vocabulary that lacks it (tiktoken, GGUF, SentencePiece model):
 *  special-token names, BOS/EOS, add_bos_token, add_eos_token, chat_template. */
export function applyConfig(data: TokenizerData, cfg: Record<string, unknown> | null): TokenizerData {
  if (!cfg) return data;
  const decoder = cfg['added_tokens_decoder'];
  if (typeof decoder === 'object' && decoder !== null) {
    for (const [key, v] of Object.entries(decoder as Record<string, unknown>)) {
      const id = Number(key);
      const content = typeof v === 'object' && v !== null ? (v as Record<string, unknown>)['content'] : undefined;
      if (!Number.isInteger(id) || id < 0 || id >= data.tokens.length || typeof content !== 'string') continue;
      data.tokens[id] = content;
      data.types[id] = (v as Record<string, unknown>)['special'] === true ? TokenType.Control : TokenType.UserDefined;
    }
  }
  const find = (field: string): number | null | undefined => {
    const v = cfg[field];
    const text = typeof v === 'string' ? v : typeof v === 'object' && v !== null ? (v as Record<string, unknown>)['content'] : undefined;
    if (typeof text !== 'string') return undefined;
    const id = data.tokens.indexOf(text);
    if (id < 0) throw new TokenizerError(`tokenizer_config.json: ${field}`, `${JSON.stringify(text)} is not a token of the vocabulary`);
    return id;
  };
  data.bosId = find('bos_token') ?? data.bosId;
  data.eosId = find('eos_token') ?? data.eosId;
  if (typeof cfg['add_bos_token'] === 'boolean') data.addBos = cfg['add_bos_token'];
  if (typeof cfg['add_eos_token'] === 'boolean') data.addEos = cfg['add_eos_token'];
  if (typeof cfg['chat_template'] === 'string') data.chatTemplate = cfg['chat_template'];
  return data;
}
