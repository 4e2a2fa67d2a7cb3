// Hugging Face config.json (LlamaConfig) -> ModelConfig. Only the keys that change the arithmetic
// are read; anything that would make the model compute something else (biases, another
// activation, an unknown RoPE scaling, pre-quantized weights) is refused here rather than run
// wrongly. Defaults are LlamaConfig's own where transformers has one.

import { validateConfig, type ModelConfig, type RopeScaling } from '../engine/config.ts';
import { ConfigError, UnsupportedError } from '../engine/errors.ts';

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads config.json's keys with errors that name the key and the file. */
class Keys {
  constructor(readonly json: Json, readonly where: string) {}

  has(key: string): boolean {
    return this.json[key] !== undefined && this.json[key] !== null;
  }

  int(key: string, fallback?: number): number {
    const v = this.json[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw new ConfigError(this.where, `"${key}" is missing`, `Add "${key}" to config.json (it comes with the model)`);
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
      throw new ConfigError(this.where, `"${key}" is ${JSON.stringify(v)}; it must be an integer`);
    }
    return v;
  }

  num(key: string, fallback: number): number {
    const v = this.json[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new ConfigError(this.where, `"${key}" is ${JSON.stringify(v)}; it must be a number`);
    }
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.json[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') throw new ConfigError(this.where, `"${key}" is ${JSON.stringify(v)}; it must be true or false`);
    return v;
  }

  /** A token id, a list of ids (first one returned separately), or absent. */
  ids(key: string): number[] {
    const v = this.json[key];
    if (v === undefined || v === null) return [];
    const list = Array.isArray(v) ? v : [v];
    for (const id of list) {
      if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) {
        throw new ConfigError(this.where, `"${key}" is ${JSON.stringify(v)}; it must be a token id or a list of ids`);
      }
    }
    return list as number[];
  }
}

function ropeScaling(k: Keys): RopeScaling | null {
  const rs = k.json['rope_scaling'];
  if (rs === undefined || rs === null) return null;
  if (!isObject(rs)) throw new ConfigError(k.where, `"rope_scaling" is ${JSON.stringify(rs)}; it must be an object or null`);
  const kind = rs['rope_type'] ?? rs['type'];
  const sub = new Keys(rs, `${k.where}: rope_scaling`);
  const factor = sub.num('factor', NaN);
  if (kind === 'default') return null;
  if (!(factor > 0)) throw new ConfigError(k.where, `rope_scaling.factor is ${JSON.stringify(rs['factor'])}; it must be a positive number`);
  if (kind === 'linear') return { type: 'linear', factor };
  if (kind === 'llama3') {
    return {
      type: 'llama3',
      factor,
      lowFreqFactor: sub.num('low_freq_factor', 1),
      highFreqFactor: sub.num('high_freq_factor', 4),
      originalContext: sub.int('original_max_position_embeddings', 8192),
    };
  }
  throw new UnsupportedError(k.where, `rope_scaling type ${JSON.stringify(kind)} is not supported (only "llama3" and "linear")`,
    'Use a model without this RoPE scaling, or a GGUF conversion of it');
}

/** config.json of a Llama model -> a validated ModelConfig. `where` names the file in errors. */
export function configFromHf(json: unknown, where: string): ModelConfig {
  if (!isObject(json)) throw new ConfigError(where, 'is not a JSON object', 'Use the config.json that came with the model');
  const k = new Keys(json, where);

  const modelType = json['model_type'];
  const archs = Array.isArray(json['architectures']) ? json['architectures'] : [];
  if (modelType === undefined && !archs.includes('LlamaForCausalLM')) {
    throw new ConfigError(where, '"model_type" is missing', 'Add "model_type": "llama" to config.json');
  }
  if (modelType !== undefined && modelType !== 'llama') {
    throw new UnsupportedError(where, `model_type is ${JSON.stringify(modelType)}; glassbox runs only "llama" models`,
      'Pick a Llama-family model (Llama, TinyLlama, SmolLM, TinyStories)');
  }
  if (json['quantization_config'] !== undefined) {
    throw new UnsupportedError(where, 'the weights are pre-quantized (quantization_config: GPTQ/AWQ/bitsandbytes)',
      'Use the unquantized safetensors (F32/F16/BF16) or a GGUF file');
  }
  const act = json['hidden_act'];
  if (act !== undefined && act !== 'silu') {
    throw new UnsupportedError(where, `hidden_act is ${JSON.stringify(act)}; Llama's feed-forward block needs "silu"`);
  }
  for (const key of ['attention_bias', 'mlp_bias']) {
    if (k.bool(key, false)) throw new UnsupportedError(where, `"${key}" is true; glassbox's Llama has no biases`);
  }

  const dModel = k.int('hidden_size');
  const nHeads = k.int('num_attention_heads');
  let dHead: number;
  if (k.has('head_dim')) dHead = k.int('head_dim');
  else {
    if (nHeads <= 0 || dModel % nHeads !== 0) {
      throw new ConfigError(where, `hidden_size (${dModel}) is not a multiple of num_attention_heads (${nHeads})`,
        'Add "head_dim" to config.json');
    }
    dHead = dModel / nHeads;
  }
  const bos = k.ids('bos_token_id');
  const eos = k.ids('eos_token_id');
  const name = typeof json['_name_or_path'] === 'string' && json['_name_or_path'] !== '' ? json['_name_or_path'] : where;

  const config: ModelConfig = {
    arch: 'llama',
    name,
    nLayers: k.int('num_hidden_layers'),
    dModel,
    dFfn: k.int('intermediate_size'),
    nHeads,
    nKvHeads: k.int('num_key_value_heads', nHeads),
    dHead,
    vocabSize: k.int('vocab_size'),
    nCtx: k.int('max_position_embeddings', 2048),
    rmsEps: k.num('rms_norm_eps', 1e-6),
    ropeTheta: k.num('rope_theta', 10000),
    ropeScaling: ropeScaling(k),
    tiedEmbeddings: k.bool('tie_word_embeddings', false),
    bosId: bos.length > 0 ? bos[0]! : null,
    eosId: eos.length > 0 ? eos[0]! : null,
  };
  if (eos.length > 1) config.eosIds = eos;
  return validateConfig(config, where);
}
