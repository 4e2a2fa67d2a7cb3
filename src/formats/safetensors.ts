// Hugging Face safetensors (+ config.json, tokenizer.json) -> ModelFile.
//
// A .safetensors file is: u64 LE header length N, N bytes of JSON
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the data
// region, whose offsets the JSON gives relative to its start. Large models come in shards listed by
// model.safetensors.index.json ({"weight_map": {tensor: shard file}}). Shapes are PyTorch's
// row-major [out, in], which is already our convention; only the Q/K rows differ (half-split RoPE
// layout), and the loader permutes those.

import type { ModelConfig } from '../engine/config.ts';
import { ConfigError, ModelFormatError, TokenizerError, TruncatedFileError, UnsupportedError } from '../engine/errors.ts';
import type { TokenizerData } from '../tokenizer/data.ts';
import { tokenizerDataFromHfJson } from '../tokenizer/hf-json.ts';
import { configFromHf } from './hf-config.ts';
import type { ModelFile } from './model.ts';
import { expectedShape, parseTensorName, requiredTensors, tensorName } from './names.ts';
import { readText, type ByteSource } from './source.ts';
import { numElements, type TensorInfo, type TensorTypeName } from './tensor.ts';

/** The dtypes glassbox computes with, and their element sizes. */
export const SAFETENSORS_DTYPES = { F32: 4, F16: 2, BF16: 2 } as const;
export type SafetensorsDtype = keyof typeof SAFETENSORS_DTYPES;

/** Element sizes of the other dtypes of the format: used only to validate their byte ranges. */
const OTHER_DTYPE_BYTES: Record<string, number> = {
  F64: 8, I64: 8, U64: 8, I32: 4, U32: 4, I16: 2, U16: 2, I8: 1, U8: 1, BOOL: 1,
  F8_E4M3: 1, F8_E5M2: 1, F8_E8M0: 1,
};

/** A JSON header above this is not a Llama checkpoint (real ones are a few hundred KB). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface SafetensorsEntry {
  name: string;
  dtype: string;
  shape: number[];
  offset: number;            // absolute byte offset in the file
  byteLength: number;
}

export interface SafetensorsHeader {
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
  /** Absolute offset of the data region (8 + header length). */
  dataStart: number;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The file name of a source whose name may be a path or a URL. */
export function baseName(name: string): string {
  return name.replace(/[?#].*$/, '').split(/[\\/]/).pop() ?? name;
}

/** Reads and validates the header of one .safetensors file; no tensor data is read. */
export async function readSafetensorsHeader(src: ByteSource): Promise<SafetensorsHeader> {
  if (src.size < 8) {
    throw new TruncatedFileError(src.name, `is ${src.size} bytes long; a safetensors file starts with an 8-byte header length`);
  }
  const lenBytes = await src.read(0, 8);
  const declared = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true);
  // Check the declared length against the file before reading (or allocating) anything.
  if (declared > BigInt(src.size - 8)) {
    throw new TruncatedFileError(src.name,
      `the header says its JSON is ${declared} bytes but only ${src.size - 8} bytes follow the length`);
  }
  const n = Number(declared);
  if (n > MAX_HEADER_BYTES) {
    throw new ModelFormatError(src.name, `the JSON header is ${n} bytes, more than the ${MAX_HEADER_BYTES} a model header can need`);
  }
  const dataStart = 8 + n;
  const dataSize = src.size - dataStart;

  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(await src.read(8, n)));
  } catch (e) {
    throw new ModelFormatError(src.name, `invalid JSON header: ${(e as Error).message}`);
  }
  if (!isObject(json)) throw new ModelFormatError(src.name, 'the JSON header is not an object');

  const metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const [name, value] of Object.entries(json)) {
    if (name === '__metadata__') {
      if (!isObject(value)) throw new ModelFormatError(src.name, '__metadata__ is not an object');
      for (const [k, v] of Object.entries(value)) metadata[k] = typeof v === 'string' ? v : JSON.stringify(v);
      continue;
    }
    const where = `${src.name}: tensor "${name}"`;
    if (!isObject(value)) throw new ModelFormatError(where, 'its header entry is not an object');
    const { dtype, shape, data_offsets: offsets } = value;
    if (typeof dtype !== 'string') throw new ModelFormatError(where, `dtype is ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new ModelFormatError(where, `shape is ${JSON.stringify(shape)}; it must be a list of non-negative integers`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
        || offsets[0] > offsets[1]) {
      throw new ModelFormatError(where, `data_offsets is ${JSON.stringify(offsets)}; it must be [begin, end] with begin <= end`);
    }
    const [begin, end] = offsets as [number, number];
    if (end > dataSize) {
      throw new TruncatedFileError(where,
        `data_offsets [${begin}, ${end}] go past the end of the data region (${dataSize} bytes)`);
    }
    const elementBytes = (SAFETENSORS_DTYPES as Record<string, number>)[dtype] ?? OTHER_DTYPE_BYTES[dtype];
    const numel = numElements(shape as number[]);
    if (elementBytes !== undefined && (!Number.isSafeInteger(numel * elementBytes) || numel * elementBytes !== end - begin)) {
      throw new ModelFormatError(where,
        `shape ${JSON.stringify(shape)} of ${dtype} needs ${numel * elementBytes} bytes but data_offsets span ${end - begin}`);
    }
    entries.push({ name, dtype, shape: shape as number[], offset: dataStart + begin, byteLength: end - begin });
  }
  // Tensors may not share bytes (the format forbids overlaps; a damaged header could alias them).
  const sorted = [...entries].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!, cur = sorted[i]!;
    if (cur.offset < prev.offset + prev.byteLength) {
      throw new ModelFormatError(src.name, `tensors "${prev.name}" and "${cur.name}" overlap in the data region`);
    }
  }
  return { entries, metadata, dataStart };
}

async function readJson<E extends Error>(src: ByteSource, fail: (problem: string) => E): Promise<unknown> {
  let text: string;
  try {
    text = await readText(src);
  } catch (e) {
    throw fail(`cannot be read (${(e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw fail(`is not valid JSON (${(e as Error).message})`);
  }
}

/** The shard files an index names, checked against the files given. */
async function shardsFromIndex(index: ByteSource, byName: Map<string, ByteSource>): Promise<{ shards: ByteSource[]; weightMap: Map<string, string> }> {
  const json = await readJson(index, (p) => new ModelFormatError(index.name, p));
  const map = isObject(json) ? json['weight_map'] : undefined;
  if (!isObject(map)) throw new ModelFormatError(index.name, 'has no "weight_map" object');
  const weightMap = new Map<string, string>();
  for (const [tensor, file] of Object.entries(map)) {
    if (typeof file !== 'string') throw new ModelFormatError(index.name, `weight_map["${tensor}"] is ${JSON.stringify(file)}, not a file name`);
    weightMap.set(tensor, file);
  }
  const shards: ByteSource[] = [];
  for (const file of [...new Set(weightMap.values())].sort()) {
    const src = byName.get(file);
    if (!src) {
      throw new ModelFormatError(file, `is missing: ${index.name} lists it as a shard`,
        `Add ${file} to the files you open (every shard the index names is needed)`);
    }
    shards.push(src);
  }
  return { shards, weightMap };
}

/**
 * Reads a safetensors model: one `*.safetensors` or the shards of a `*.safetensors.index.json`,
 * plus `config.json` (required) and optionally `tokenizer.json` / `tokenizer_config.json`. Files
 * are told apart by name; other files (generation_config.json, ...) are ignored.
 */
export async function readSafetensorsModel(files: ByteSource[]): Promise<ModelFile> {
  const byName = new Map<string, ByteSource>();
  for (const f of files) byName.set(baseName(f.name), f);
  const list = files.map((f) => f.name).join(', ') || 'no files';

  const configSrc = byName.get('config.json');
  const index = [...byName.entries()].find(([n]) => n.endsWith('.safetensors.index.json'))?.[1];
  const weightFiles = [...byName.entries()].filter(([n]) => n.endsWith('.safetensors')).map(([, s]) => s);

  let shards: ByteSource[];
  let weightMap: Map<string, string> | null = null;
  if (index) ({ shards, weightMap } = await shardsFromIndex(index, byName));
  else shards = weightFiles.sort((a, b) => (baseName(a.name) < baseName(b.name) ? -1 : 1));
  if (shards.length === 0) {
    throw new ModelFormatError(list, 'no .safetensors file is among the files given', 'Open the model\'s .safetensors file(s) with its config.json');
  }
  if (!configSrc) {
    throw new ConfigError(shards[0]!.name, 'has no config.json beside it; a safetensors model needs one for its hyperparameters',
      'Add the config.json that came with the model to the files you open');
  }
  const configJson = await readJson(configSrc, (p) => new ConfigError(configSrc.name, p, 'Use the config.json that came with the model'));
  const config: ModelConfig = configFromHf(configJson, configSrc.name);
  if (!(isObject(configJson) && typeof configJson['_name_or_path'] === 'string' && configJson['_name_or_path'])) {
    // No name in config.json: the folder it lies in, else the weights' file name.
    const parts = configSrc.name.replace(/[?#].*$/, '').split(/[\\/]/);
    config.name = parts.length > 1 && parts.at(-2) ? parts.at(-2)! : baseName(shards[0]!.name).replace(/\.safetensors$/, '');
  }

  // Every shard's header, then the tensors under our names.
  const headers = await Promise.all(shards.map(readSafetensorsHeader));
  const seen = new Map<string, string>();      // file tensor name -> shard holding it
  const found = new Map<string, TensorInfo>(); // our name -> info
  let lmHead: TensorInfo | null = null;
  const metadata: Record<string, string> = {};
  const layers = new Set<number>();            // layers that have at least one tensor
  for (const [source, h] of headers.entries()) {
    const shard = shards[source]!;
    Object.assign(metadata, h.metadata);
    for (const e of h.entries) {
      const other = seen.get(e.name);
      if (other !== undefined) {
        throw new ModelFormatError(shard.name, `tensor "${e.name}" is also in ${other}`, 'Open each shard once, and only the shards of one model');
      }
      seen.set(e.name, shard.name);
      if (weightMap && weightMap.get(e.name) !== undefined && weightMap.get(e.name) !== baseName(shard.name)) {
        throw new ModelFormatError(shard.name, `holds tensor "${e.name}" but the index puts it in ${weightMap.get(e.name)}`);
      }
      const parsed = parseTensorName('hf', e.name);
      if (!parsed) continue; // rotary_emb.inv_freq and other non-weights
      const where = `${shard.name}: tensor "${e.name}"`;
      if (parsed.layer !== undefined && parsed.layer >= config.nLayers) {
        throw new ConfigError(where, `is for layer ${parsed.layer} but config.json says num_hidden_layers is ${config.nLayers}`);
      }
      if (parsed.layer !== undefined) layers.add(parsed.layer);
      if (!(e.dtype in SAFETENSORS_DTYPES)) {
        throw new UnsupportedError(where, `has dtype ${e.dtype}; glassbox reads F32, F16 and BF16 safetensors`,
          'Use the F32/F16/BF16 checkpoint, or convert the model to GGUF with llama.cpp');
      }
      const info: TensorInfo = {
        name: tensorName('ours', parsed.role, parsed.layer), fileName: e.name, type: e.dtype as TensorTypeName,
        shape: e.shape, source, offset: e.offset, byteLength: e.byteLength,
      };
      if (parsed.role === 'unembed') lmHead = info;
      else found.set(info.name, info);
    }
  }
  if (weightMap) {
    for (const [tensor, file] of weightMap) {
      if (!seen.has(tensor)) throw new ModelFormatError(file, `does not hold tensor "${tensor}" that the index puts in it`);
    }
  }

  // Tied: config.json says so (a saved lm_head is then a copy of the embedding), or no lm_head.
  if (!config.tiedEmbeddings && lmHead) found.set(lmHead.name, lmHead);
  else config.tiedEmbeddings = true;

  // Checked before listing the required tensors: a damaged num_hidden_layers (up to 2^24) would
  // otherwise list millions of them before the first one is found missing.
  if (layers.size < config.nLayers) {
    let missing = 0;
    while (layers.has(missing)) missing++;
    throw new ConfigError(configSrc.name, `num_hidden_layers is ${config.nLayers} but ${shards.map((s) => s.name).join(', ')} ${shards.length === 1 ? 'holds' : 'hold'} tensors for ${layers.size} layers (layer ${missing} has none)`,
      'Open all the shards of the model, with its own config.json');
  }
  for (const req of requiredTensors(config)) {
    const info = found.get(req.name);
    const hfName = tensorName('hf', req.role, req.layer);
    if (!info) {
      throw new ConfigError(configSrc.name, `tensor "${hfName}" is missing from ${shards.map((s) => s.name).join(', ')}`,
        'Open all the shards of the model, with its own config.json');
    }
    const want = expectedShape(config, req.role);
    if (info.shape.length !== want.length || info.shape.some((d, i) => d !== want[i])) {
      throw new ConfigError(`${shards[info.source]!.name}: tensor "${hfName}"`,
        `has shape [${info.shape}] but config.json implies [${want}]`);
    }
  }

  const tokenizer = await readHfTokenizer(byName);
  checkTokenizer(tokenizer, config, byName.get('tokenizer.json')?.name ?? 'tokenizer.json');
  const tensors = [...found.values()].sort((a, b) => a.source - b.source || a.offset - b.offset);
  const meta: Record<string, unknown> = { 'config.json': configJson, __metadata__: metadata };
  return { format: 'safetensors', sources: shards, config, tokenizer, tensors, ropeLayout: 'half-split', metadata: meta };
}

/** tokenizer.json (+ tokenizer_config.json) when given, else null. */
async function readHfTokenizer(byName: Map<string, ByteSource>): Promise<TokenizerData | null> {
  const tokSrc = byName.get('tokenizer.json');
  if (!tokSrc) return null;
  const tokJson = await readJson(tokSrc, (p) => new TokenizerError(tokSrc.name, p));
  const cfgSrc = byName.get('tokenizer_config.json');
  const cfgJson = cfgSrc ? await readJson(cfgSrc, (p) => new TokenizerError(cfgSrc.name, p)) : null;
  return tokenizerDataFromHfJson(tokJson, cfgJson, tokSrc.name);
}

/** A tokenizer with ids past the embedding would index outside it. */
function checkTokenizer(tok: TokenizerData | null, config: ModelConfig, where: string): void {
  if (tok && tok.tokens.length > config.vocabSize) {
    throw new TokenizerError(where, `has ${tok.tokens.length} tokens but config.json's vocab_size is ${config.vocabSize}`);
  }
}
