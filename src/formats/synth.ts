// Random-weight models of any shape and tensor type (`glassbox synth`, tests, benchmarks).
//
// Weights come from one seeded stream (src/engine/random.ts), generated tensor by tensor in a fixed
// order that does not depend on the output format, so a GGUF and a safetensors synth with the same
// seed hold the same model. They are scaled like a trained model's so activations stay finite:
// matrices N(0, (0.5/√d_in)²) (≈0.02 at d_in 768), the embedding N(0, 0.02²), norm weights
// 1 + N(0, 0.05²). Matrices are quantized with the type's reference quantizer; norms stay F32.
//
// When a type's block does not divide a row (K types need 256 | row length, the others 32), the
// tensor falls back as llama.cpp's quantizer does: Q4_K→Q5_0, Q5_K→Q5_1, Q6_K→Q8_0, Q2_K/Q3_K→Q4_0
// (llama.cpp picks IQ4_NL, which glassbox lacks), Q8_K→Q8_0, then F16 when 32 does not divide it
// either. Every fallback is reported in SynthResult.fallbacks.
//
// A GGUF synth carries a tokenizer so that llama.cpp loads it: `vocab` when given, else a synthetic
// SentencePiece vocabulary ('<unk>', '<s>', '</s>', the 256 byte tokens, '▁', then lowercase
// strings with and without '▁', scored so that shorter pieces merge first).

import type { ModelConfig } from '../engine/config.ts';
import { validateConfig } from '../engine/config.ts';
import { UsageError } from '../engine/errors.ts';
import { Rng } from '../engine/random.ts';
import type { TokenizerData } from '../tokenizer/data.ts';
import { encodeGgufHeader, type GgufTensorSpec, type GgufTypedValue } from './gguf-write.ts';
import { llama3RopeFactors } from './gguf.ts';
import { halfSplitToAdjacentRow } from './load.ts';
import { requiredTensors, tensorName, type Role } from './names.ts';
import { getTensorType } from './quant/index.ts';
import { writeSafetensors, type SafetensorsTensor } from './safetensors-write.ts';
import { byteSize, numElements, type TensorTypeName } from './tensor.ts';

// ---------------------------------------------------------------------------------------------
// Shapes (DESIGN.md), with the context, RoPE and norm settings of the real models.

export type ShapeName =
  | 'stories260K' | 'stories15M' | 'stories110M' | 'smollm2-135m' | 'tinyllama-1.1b' | 'llama-3.2-1b' | 'llama-3-8b';

function shape(name: string, nLayers: number, dModel: number, dFfn: number, nHeads: number, nKvHeads: number,
  vocabSize: number, tied: boolean, nCtx: number, ropeTheta = 10000, rmsEps = 1e-5): ModelConfig {
  return {
    arch: 'llama', name, nLayers, dModel, dFfn, nHeads, nKvHeads, dHead: dModel / nHeads, vocabSize, nCtx, rmsEps,
    ropeTheta, ropeScaling: null, tiedEmbeddings: tied, bosId: 1, eosId: 2,
  };
}

export const SHAPES: Readonly<Record<ShapeName, Readonly<ModelConfig>>> = {
  'stories260K': shape('stories260K', 5, 64, 172, 8, 4, 512, true, 512),
  'stories15M': shape('stories15M', 6, 288, 768, 6, 6, 32000, true, 256),
  'stories110M': shape('stories110M', 12, 768, 2048, 12, 12, 32000, true, 1024),
  'smollm2-135m': shape('smollm2-135m', 30, 576, 1536, 9, 3, 49152, true, 8192, 100000),
  'tinyllama-1.1b': shape('tinyllama-1.1b', 22, 2048, 5632, 32, 4, 32000, false, 2048),
  'llama-3.2-1b': {
    ...shape('llama-3.2-1b', 16, 2048, 8192, 32, 8, 128256, true, 131072, 500000),
    ropeScaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 8192 },
  },
  'llama-3-8b': shape('llama-3-8b', 32, 4096, 14336, 32, 8, 128256, false, 8192, 500000),
};

/** A fresh copy of a named shape's config. */
export function shapeConfig(name: string): ModelConfig {
  const c = (SHAPES as Record<string, ModelConfig>)[name];
  if (!c) throw new UsageError('--shape', `"${name}" is not a known shape`, `Use one of ${Object.keys(SHAPES).join(', ')}`);
  return { ...c, ropeScaling: c.ropeScaling ? { ...c.ropeScaling } : null };
}

// ---------------------------------------------------------------------------------------------
// Options and results

export interface SynthOptions {
  config: ModelConfig;
  type: TensorTypeName;
  seed: number;
  format: 'gguf' | 'safetensors';
  /** A tokenizer to embed (GGUF) instead of the synthetic SentencePiece vocabulary. */
  vocab?: TokenizerData;
}

export interface SynthFallback { tensor: string; from: TensorTypeName; to: TensorTypeName }

export interface SynthResult {
  /** model.gguf; or model.safetensors and config.json. */
  files: { name: string; bytes: Uint8Array }[];
  config: ModelConfig;
  /** The type each tensor was stored in (our names). */
  types: Record<string, TensorTypeName>;
  fallbacks: SynthFallback[];
}

const SAFETENSORS_TYPES = ['F32', 'F16', 'BF16'] as const;

const FALLBACK: Partial<Record<TensorTypeName, TensorTypeName>> = {
  Q2_K: 'Q4_0', Q3_K: 'Q4_0', Q4_K: 'Q5_0', Q5_K: 'Q5_1', Q6_K: 'Q8_0', Q8_K: 'Q8_0',
};

/** The type a matrix with rows of `rowLen` is stored in when `wanted` is asked for. */
export function synthTensorType(wanted: TensorTypeName, rowLen: number): TensorTypeName {
  let t = wanted;
  if (rowLen % getTensorType(t).blockSize !== 0) t = FALLBACK[t] ?? 'F16';
  if (rowLen % getTensorType(t).blockSize !== 0) t = 'F16';
  return t;
}

interface Plan {
  name: string;                 // ours
  role: Role | 'rope_freqs';
  layer: number | undefined;
  shape: number[];
  type: TensorTypeName;
}

function plan(opts: SynthOptions): { config: ModelConfig; tensors: Plan[]; fallbacks: SynthFallback[] } {
  const config = validateConfig({ ...opts.config }, 'synth config');
  const tt = getTensorType(opts.type); // throws on an unknown name
  if (opts.format === 'gguf' && tt.ggmlId === undefined) {
    throw new UsageError('--type', `${opts.type} is a glassbox-only type with no GGUF id`, 'Pick a ggml type (F32, F16, Q8_0, Q4_K, ...)');
  }
  if (opts.format === 'safetensors' && !(SAFETENSORS_TYPES as readonly string[]).includes(opts.type)) {
    throw new UsageError('--type', `safetensors holds F32, F16 or BF16 weights, not ${opts.type}`, 'Write a .gguf for quantized types');
  }
  const fallbacks: SynthFallback[] = [];
  const tensors: Plan[] = requiredTensors(config).map((r) => {
    let type: TensorTypeName = 'F32';
    if (r.shape.length === 2) {
      type = synthTensorType(opts.type, r.shape[1]!);
      if (type !== opts.type) fallbacks.push({ tensor: r.name, from: opts.type, to: type });
    }
    return { name: r.name, role: r.role, layer: r.layer, shape: r.shape, type };
  });
  if (opts.format === 'gguf' && config.ropeScaling?.type === 'llama3') {
    tensors.push({ name: 'rope_freqs', role: 'rope_freqs', layer: undefined, shape: [config.dHead / 2], type: 'F32' });
  }
  return { config, tensors, fallbacks };
}

// ---------------------------------------------------------------------------------------------
// Values

const ROWS_PER_PIECE_BYTES = 16 << 20;

/**
 * Generates a tensor's values in pieces of whole rows and yields each piece, quantized.
 * Consumes the same random numbers whatever the piece size, so values never depend on it.
 */
function* generate(rng: Rng, p: Plan, config: ModelConfig): Generator<Uint8Array> {
  if (p.role === 'rope_freqs') {
    const s = config.ropeScaling as Extract<ModelConfig['ropeScaling'], { type: 'llama3' }>;
    const f = llama3RopeFactors(config.dHead, config.ropeTheta, s);
    yield new Uint8Array(f.buffer);
    return;
  }
  const tt = getTensorType(p.type);
  const rowLen = p.shape[p.shape.length - 1]!;
  const rows = numElements(p.shape) / rowLen;
  const isNorm = p.shape.length === 1;
  const std = p.role === 'embed' || p.role === 'unembed' ? 0.02 : 0.5 / Math.sqrt(rowLen);
  const piece = Math.max(1, Math.floor(ROWS_PER_PIECE_BYTES / (4 * rowLen)));
  for (let r0 = 0; r0 < rows; r0 += piece) {
    const n = Math.min(piece, rows - r0) * rowLen;
    const x = new Float32Array(n);
    if (isNorm) rng.fillGaussian(x, 0.05, 1);
    else rng.fillGaussian(x, std);
    const out = new Uint8Array(byteSize(tt, n));
    tt.quantize(x, 0, out, 0, n);
    yield out;
  }
}

// ---------------------------------------------------------------------------------------------
// GGUF

function spmVocab(vocabSize: number): { tokens: string[]; scores: number[]; types: number[] } {
  if (vocabSize < 260) {
    throw new UsageError('synth config', `vocab_size ${vocabSize} is too small for the synthetic SentencePiece vocabulary (at least 260: 3 control tokens, 256 bytes, '▁')`,
      'Use a larger vocabulary or pass a tokenizer');
  }
  const tokens = ['<unk>', '<s>', '</s>'];
  const types = [2, 3, 3];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(6);
  }
  tokens.push('▁');
  types.push(1);
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  // Strings of length 1, 2, 3, ... in order: each with '▁' first, then bare.
  for (let len = 1; tokens.length < vocabSize; len++) {
    const idx = new Array<number>(len).fill(0);
    for (;;) {
      const s = idx.map((i) => letters[i]).join('');
      for (const t of ['▁' + s, s]) {
        if (tokens.length < vocabSize) { tokens.push(t); types.push(1); }
      }
      if (tokens.length >= vocabSize) break;
      let d = len - 1;
      while (d >= 0 && ++idx[d]! === letters.length) idx[d--] = 0;
      if (d < 0) break;
    }
  }
  const scores = tokens.map((_, i) => (types[i] === 1 ? -(i - 259) : 0));
  return { tokens, scores, types };
}

function tokenizerKeys(config: ModelConfig, vocab: TokenizerData | undefined): [string, GgufTypedValue][] {
  const kv: [string, GgufTypedValue][] = [];
  const u32 = (value: number): GgufTypedValue => ({ type: 'u32', value });
  if (!vocab) {
    const v = spmVocab(config.vocabSize);
    kv.push(['tokenizer.ggml.model', { type: 'string', value: 'llama' }]);
    kv.push(['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: v.tokens }]);
    kv.push(['tokenizer.ggml.scores', { type: 'array', itemType: 'f32', value: v.scores }]);
    kv.push(['tokenizer.ggml.token_type', { type: 'array', itemType: 'i32', value: v.types }]);
    kv.push(['tokenizer.ggml.bos_token_id', u32(1)], ['tokenizer.ggml.eos_token_id', u32(2)]);
    kv.push(['tokenizer.ggml.unknown_token_id', u32(0)]);
    kv.push(['tokenizer.ggml.add_bos_token', { type: 'bool', value: true }]);
    kv.push(['tokenizer.ggml.add_eos_token', { type: 'bool', value: false }]);
    return kv;
  }
  if (vocab.tokens.length !== config.vocabSize) {
    throw new UsageError('synth vocab', `the tokenizer has ${vocab.tokens.length} tokens but vocab_size is ${config.vocabSize}`);
  }
  kv.push(['tokenizer.ggml.model', { type: 'string', value: vocab.kind === 'spm' ? 'llama' : 'gpt2' }]);
  if (vocab.kind === 'bpe') kv.push(['tokenizer.ggml.pre', { type: 'string', value: vocab.pre }]);
  kv.push(['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: vocab.tokens }]);
  if (vocab.kind === 'spm') kv.push(['tokenizer.ggml.scores', { type: 'array', itemType: 'f32', value: vocab.scores }]);
  kv.push(['tokenizer.ggml.token_type', { type: 'array', itemType: 'i32', value: vocab.types }]);
  if (vocab.kind === 'bpe') kv.push(['tokenizer.ggml.merges', { type: 'array', itemType: 'string', value: vocab.merges }]);
  const ids: [string, number | null][] = [['bos', vocab.bosId], ['eos', vocab.eosId], ['unknown', vocab.unkId], ['padding', vocab.padId]];
  for (const [k, id] of ids) if (id !== null) kv.push([`tokenizer.ggml.${k}_token_id`, u32(id)]);
  kv.push(['tokenizer.ggml.add_bos_token', { type: 'bool', value: vocab.addBos }]);
  kv.push(['tokenizer.ggml.add_eos_token', { type: 'bool', value: vocab.addEos }]);
  if (vocab.kind === 'spm') kv.push(['tokenizer.ggml.add_space_prefix', { type: 'bool', value: vocab.addSpacePrefix }]);
  if (vocab.chatTemplate !== null) kv.push(['tokenizer.chat_template', { type: 'string', value: vocab.chatTemplate }]);
  return kv;
}

function ggufMetadata(config: ModelConfig, vocab: TokenizerData | undefined): [string, GgufTypedValue][] {
  const u32 = (value: number): GgufTypedValue => ({ type: 'u32', value });
  const f32 = (value: number): GgufTypedValue => ({ type: 'f32', value });
  const kv: [string, GgufTypedValue][] = [
    ['general.architecture', { type: 'string', value: 'llama' }],
    ['general.name', { type: 'string', value: config.name }],
    ['general.alignment', u32(32)],
    ['general.quantization_version', u32(2)],
    ['llama.context_length', u32(config.nCtx)],
    ['llama.embedding_length', u32(config.dModel)],
    ['llama.block_count', u32(config.nLayers)],
    ['llama.feed_forward_length', u32(config.dFfn)],
    ['llama.attention.head_count', u32(config.nHeads)],
    ['llama.attention.head_count_kv', u32(config.nKvHeads)],
    ['llama.attention.layer_norm_rms_epsilon', f32(config.rmsEps)],
    ['llama.rope.freq_base', f32(config.ropeTheta)],
    ['llama.rope.dimension_count', u32(config.dHead)],
    ['llama.vocab_size', u32(config.vocabSize)],
  ];
  if (config.dHead * config.nHeads !== config.dModel) {
    kv.push(['llama.attention.key_length', u32(config.dHead)], ['llama.attention.value_length', u32(config.dHead)]);
  }
  if (config.ropeScaling?.type === 'linear') {
    kv.push(['llama.rope.scaling.type', { type: 'string', value: 'linear' }], ['llama.rope.scaling.factor', f32(config.ropeScaling.factor)]);
  }
  return [...kv, ...tokenizerKeys(config, vocab)];
}

function ggufFileName(p: Plan): string {
  return p.role === 'rope_freqs' ? 'rope_freqs.weight' : tensorName('gguf', p.role, p.layer);
}

function prepareGguf(opts: SynthOptions) {
  const { config, tensors, fallbacks } = plan(opts);
  // The file's bos/eos are its tokenizer's: the synthetic vocabulary's 1 and 2, or `vocab`'s.
  const cfg: ModelConfig = opts.vocab
    ? { ...config, bosId: opts.vocab.bosId, eosId: opts.vocab.eosId }
    : { ...config, bosId: 1, eosId: 2 };
  const specs: GgufTensorSpec[] = tensors.map((p) => ({ name: ggufFileName(p), typeName: p.type, shape: p.shape }));
  const layout = encodeGgufHeader(ggufMetadata(cfg, opts.vocab), specs, 32);
  const types = Object.fromEntries(tensors.map((p) => [p.name, p.type]));
  return { cfg, tensors, fallbacks, layout, types };
}

/**
 * Writes a GGUF synth piece by piece through `write` (the header, then each tensor's data and
 * padding), holding at most one 16 MiB piece of values at a time: for shapes too big for memory.
 */
export async function synthGgufStream(opts: SynthOptions, write: (bytes: Uint8Array) => void | Promise<void>):
  Promise<Omit<SynthResult, 'files'> & { size: number }> {
  if (opts.format !== 'gguf') throw new UsageError('synth', 'synthGgufStream writes GGUF only');
  const { cfg, tensors, fallbacks, layout, types } = prepareGguf(opts);
  await write(layout.header);
  const rng = new Rng(opts.seed);
  for (const [i, p] of tensors.entries()) {
    for (const b of generate(rng, p, cfg)) await write(b);
    const { byteLength } = layout.tensors[i]!;
    const pad = Math.ceil(byteLength / layout.alignment) * layout.alignment - byteLength;
    if (pad > 0) await write(new Uint8Array(pad));
  }
  return { config: cfg, types, fallbacks, size: layout.totalSize };
}

// ---------------------------------------------------------------------------------------------
// safetensors + config.json

function hfConfigJson(c: ModelConfig, type: TensorTypeName): string {
  const json: Record<string, unknown> = {
    _name_or_path: c.name,
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_act: 'silu',
    hidden_size: c.dModel,
    intermediate_size: c.dFfn,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    head_dim: c.dHead,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.nCtx,
    rms_norm_eps: c.rmsEps,
    rope_theta: c.ropeTheta,
    rope_scaling: c.ropeScaling === null ? null
      : c.ropeScaling.type === 'linear' ? { rope_type: 'linear', factor: c.ropeScaling.factor }
      : {
        rope_type: 'llama3', factor: c.ropeScaling.factor, low_freq_factor: c.ropeScaling.lowFreqFactor,
        high_freq_factor: c.ropeScaling.highFreqFactor, original_max_position_embeddings: c.ropeScaling.originalContext,
      },
    tie_word_embeddings: c.tiedEmbeddings,
    bos_token_id: c.bosId,
    eos_token_id: c.eosId,
    attention_bias: false,
    mlp_bias: false,
    torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[type as 'F32'],
  };
  return JSON.stringify(json, null, 2) + '\n';
}

function synthSafetensors(opts: SynthOptions): SynthResult {
  const { config, tensors } = plan(opts);
  const rng = new Rng(opts.seed);
  const tt = getTensorType(opts.type);
  const out: SafetensorsTensor[] = [];
  for (const p of tensors) {
    if (p.role === 'rope_freqs') continue;
    let data = concat([...generate(rng, p, config)]);
    if (p.role === 'wq' || p.role === 'wk') {
      // Store the rows as Hugging Face does (half-split): HF row i is adjacent row perm(i).
      const rowBytes = byteSize(tt, p.shape[1]!);
      const hf = new Uint8Array(data.length);
      for (let i = 0; i < p.shape[0]!; i++) {
        const from = halfSplitToAdjacentRow(i, config.dHead) * rowBytes;
        hf.set(data.subarray(from, from + rowBytes), i * rowBytes);
      }
      data = hf;
    }
    // Norms stay F32 (as in the GGUF twin); safetensors allows a dtype per tensor.
    out.push({ name: tensorName('hf', p.role, p.layer), dtype: p.type as SafetensorsTensor['dtype'], shape: p.shape, data });
  }
  return {
    files: [
      { name: 'model.safetensors', bytes: writeSafetensors(out, { format: 'pt' }) },
      { name: 'config.json', bytes: new TextEncoder().encode(hfConfigJson(config, opts.type)) },
    ],
    config,
    types: Object.fromEntries(tensors.map((p) => [p.name, p.type])),
    fallbacks: [],
  };
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/** A whole synthetic model in memory (for shapes that fit; synthGgufStream writes the rest). */
export function synthModel(opts: SynthOptions): SynthResult {
  if (opts.format === 'safetensors') return synthSafetensors(opts);
  const { cfg, tensors, fallbacks, layout, types } = prepareGguf(opts);
  const bytes = new Uint8Array(layout.totalSize);
  bytes.set(layout.header);
  const rng = new Rng(opts.seed);
  for (const [i, p] of tensors.entries()) {
    let at = layout.header.length + layout.tensors[i]!.offset;
    for (const b of generate(rng, p, cfg)) { bytes.set(b, at); at += b.length; }
  }
  return { files: [{ name: 'model.gguf', bytes }], config: cfg, types, fallbacks };
}
