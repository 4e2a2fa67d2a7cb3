// The model's hyperparameters: everything that describes its shape and numerics, nothing that is a
// weight or run-time state. Every file format produces one of these (src/formats).

import { ConfigError } from './errors.ts';

/** Llama 3.1/3.2 ("llama3") frequency scaling, or plain linear position interpolation. */
export type RopeScaling =
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalContext: number }
  | { type: 'linear'; factor: number };

export interface ModelConfig {
  arch: 'llama';
  /** Human-readable name from the file (general.name, config.json's _name_or_path), or the file name. */
  name: string;
  nLayers: number;
  dModel: number;
  dFfn: number;
  nHeads: number;
  nKvHeads: number;        // n_kv_heads ≤ n_heads; n_heads % n_kv_heads == 0 (grouped-query attention)
  dHead: number;           // usually dModel / nHeads
  vocabSize: number;
  nCtx: number;            // the context the model was trained for
  rmsEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  /** Per-frequency RoPE divisors, d_head/2 of them, as llama.cpp's `rope_freqs.weight` tensor (GGUF
   *  files of Llama 3.1/3.2 store their "llama3" scaling this way): frequency i is
   *  theta^(-2i/d_head) / ropeFreqFactors[i]. When present it is authoritative and replaces the
   *  frequencies ropeScaling would give (which, for such files, describes the same thing when the
   *  reader recognised the parameters). Absent for most models. */
  ropeFreqFactors?: Float32Array;
  /** True when the unembedding is the token embedding (no separate `unembed.weight`). */
  tiedEmbeddings: boolean;
  bosId: number | null;
  eosId: number | null;
  /** Every end-of-sequence id the config lists, when it lists several (config.json's eos_token_id
   *  as a list, e.g. Llama 3.1's [128001, 128008, 128009]); eosId is the first. */
  eosIds?: number[];
}

/** Throws a ConfigError naming the field if the config is not a runnable Llama. */
export function validateConfig(c: ModelConfig, where: string): ModelConfig {
  const positive = ['nLayers', 'dModel', 'dFfn', 'nHeads', 'nKvHeads', 'dHead', 'vocabSize', 'nCtx'] as const;
  for (const k of positive) {
    const v = c[k];
    if (!Number.isSafeInteger(v) || v <= 0 || v > 1 << 24) {
      throw new ConfigError(where, `${k} is ${v}; it must be a positive integer`);
    }
  }
  if (c.nHeads % c.nKvHeads !== 0) {
    throw new ConfigError(where, `n_heads (${c.nHeads}) is not a multiple of n_kv_heads (${c.nKvHeads})`);
  }
  if (c.dHead % 2 !== 0) throw new ConfigError(where, `head dimension ${c.dHead} is odd; RoPE needs pairs`);
  if (!(c.rmsEps > 0 && c.rmsEps < 1)) throw new ConfigError(where, `rms_norm_eps is ${c.rmsEps}`);
  if (!(c.ropeTheta > 0)) throw new ConfigError(where, `rope_theta is ${c.ropeTheta}`);
  for (const id of [c.bosId, c.eosId, ...(c.eosIds ?? [])]) {
    if (id !== null && (!Number.isSafeInteger(id) || id < 0 || id >= c.vocabSize)) {
      throw new ConfigError(where, `special token id ${id} is outside the vocabulary of ${c.vocabSize}`);
    }
  }
  return c;
}

/** Parameter count from the config alone (embedding counted once when tied). */
export function parameterCount(c: ModelConfig): number {
  const attn = c.dModel * c.nHeads * c.dHead * 2 + c.dModel * c.nKvHeads * c.dHead * 2;
  const ffn = 3 * c.dModel * c.dFfn;
  const perBlock = attn + ffn + 2 * c.dModel;
  return c.vocabSize * c.dModel * (c.tiedEmbeddings ? 1 : 2) + c.nLayers * perBlock + c.dModel;
}
