// What a tokenizer is made of, as the file readers find it. src/formats and the tokenizer-file
// readers produce a TokenizerData; src/tokenizer builds a working Tokenizer from it.

/** llama.cpp / SentencePiece token types. */
export const enum TokenType {
  Undefined = 0,
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
}

interface TokenizerDataBase {
  /** Token strings as the file stores them (SentencePiece '▁' pieces, or GPT-2 byte-level strings). */
  tokens: string[];
  /** One TokenType per token. */
  types: Uint8Array;
  bosId: number | null;
  eosId: number | null;
  /** Extra ids that also end generation (Llama 3's <|eot_id|>, <|eom_id|>). */
  eogIds: number[];
  unkId: number | null;
  padId: number | null;
  addBos: boolean;
  addEos: boolean;
  /** Jinja chat template, when the file carries one. */
  chatTemplate: string | null;
}

/** SentencePiece-style BPE with scores and byte fallback (Llama 1/2, TinyLlama, TinyStories). */
export interface SpmTokenizerData extends TokenizerDataBase {
  kind: 'spm';
  scores: Float32Array;
  /** Prepend '▁' to the text (SentencePiece add_dummy_prefix); true for Llama. */
  addSpacePrefix: boolean;
}

/** Byte-level BPE (Llama 3, SmolLM, GPT-2 family). */
export interface BpeTokenizerData extends TokenizerDataBase {
  kind: 'bpe';
  /** Merges in rank order, each "left right" in byte-level strings. */
  merges: string[];
  /** Pre-tokenizer name as llama.cpp calls it ('llama-bpe', 'smollm', 'gpt2', ...). */
  pre: string;
  /** Look the whole pre-token up in the vocabulary before merging (Llama 3's ignore_merges). */
  ignoreMerges: boolean;
  /** tiktoken files have no merges: merge the adjacent pair whose concatenation is the Normal token
   *  with the lowest id (ids are tiktoken ranks); `merges` is then empty. */
  mergeByRank?: boolean;
}

export type TokenizerData = SpmTokenizerData | BpeTokenizerData;
