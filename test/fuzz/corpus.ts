// The valid inputs the fuzzer starts from ("bases"), by id. Synthesized ones are built with the
// project's own writers (src/formats/synth.ts, writeLlama2c) from fixed seeds, so they are the same
// on every machine; shared ones are read by path from ../shared/models and never copied.

import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { synthModel, shapeConfig } from '../../src/formats/synth.ts';
import { writeLlama2c } from '../../src/formats/llama2c.ts';
import type { ModelConfig } from '../../src/engine/config.ts';
import type { TensorTypeName } from '../../src/formats/tensor.ts';
import type { BpeTokenizerData } from '../../src/tokenizer/data.ts';
import { tokenizerDataFromHfJson } from '../../src/tokenizer/hf-json.ts';
import { FuzzRng } from './rng.ts';
import type { JsonValue } from './ops.ts';

export const repoRoot = resolve(fileURLToPath(import.meta.url), '../../..');
export const sharedModels = resolve(repoRoot, '../shared/models');
export const sharedPath = (rel: string) => join(sharedModels, rel);

export interface NamedBytes { name: string; bytes: Uint8Array }
export type Base =
  | { type: 'files'; files: NamedBytes[] }
  | { type: 'json'; name: string; json: JsonValue; size: number }
  | { type: 'text'; name: string; text: string };

const enc = new TextEncoder();
const cache = new Map<string, Base>();

function tiny(over: Partial<ModelConfig>): ModelConfig {
  return { ...shapeConfig('stories260K'), name: 'fuzz-tiny', nLayers: 1, nCtx: 64, ...over };
}

/** A small Llama 3 byte-level BPE tokenizer.json: the first `n` tokens of the real vocabulary, the
 *  merges among them, a few of its added tokens, and its pre-tokenizer and decoder. */
function smallLlama3Json(n = 600): JsonValue {
  const big = llama3Json() as any;
  const vocab: Record<string, number> = {};
  for (const [k, id] of Object.entries(big.model.vocab as Record<string, number>)) if (id < n) vocab[k] = id;
  const merges = (big.model.merges as (string | [string, string])[]).map((m) => (typeof m === 'string' ? m.split(' ') : m))
    .filter(([a, b]) => a! in vocab && b! in vocab && (a! + b!) in vocab).map(([a, b]) => `${a} ${b}`);
  const added = (big.added_tokens as any[]).slice(0, 12).map((t, i) => ({ ...t, id: n + i }));
  return { version: '1.0', added_tokens: added, normalizer: null, pre_tokenizer: big.pre_tokenizer,
    post_processor: big.post_processor, decoder: big.decoder,
    model: { type: 'BPE', ignore_merges: true, vocab, merges } } as JsonValue;
}

/** A SentencePiece-style (byte_fallback, Metaspace) tokenizer.json, as TinyLlama's. */
function smallSpmJson(): JsonValue {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  const words = ['▁', 'e', 't', 'a', 'o', '▁t', 'he', '▁the', 'in', '▁a', 'on', 'ce', '▁On', '▁Once', 'up', '▁upon'];
  for (const w of words) vocab[w] = Object.keys(vocab).length;
  const merges = ['▁ t', 'h e', '▁t he', 'i n', '▁ a', 'o n', 'c e', '▁O n', '▁On ce', 'u p', '▁up on'];
  return {
    version: '1.0',
    added_tokens: [{ id: 0, content: '<unk>', special: true }, { id: 1, content: '<s>', special: true }, { id: 2, content: '</s>', special: true }],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }] },
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }] },
    model: { type: 'BPE', byte_fallback: true, unk_token: '<unk>', vocab, merges },
  };
}

let bigJson: JsonValue | null = null;
export function llama3Json(): JsonValue {
  bigJson ??= JSON.parse(readFileSync(sharedPath('llama3-tokenizer/tokenizer.json'), 'utf8')) as JsonValue;
  return bigJson;
}

function gguf(config: ModelConfig, type: TensorTypeName, vocab?: BpeTokenizerData): Base {
  const r = synthModel({ config, type, seed: 7, format: 'gguf', vocab });
  return { type: 'files', files: r.files };
}

function safetensors(config: ModelConfig, type: TensorTypeName, tokenizer?: JsonValue): Base {
  const r = synthModel({ config, type, seed: 7, format: 'safetensors' });
  const files = [...r.files];
  if (tokenizer) files.push({ name: 'tokenizer.json', bytes: enc.encode(JSON.stringify(tokenizer)) });
  return { type: 'files', files };
}

function llama2c(version: 0 | 1 | 2, shared: boolean): Base {
  const p = { dim: 64, hiddenDim: 128, nLayers: 1, nHeads: 4, nKvHeads: 2, vocabSize: 512, seqLen: 32, sharedClassifier: shared };
  const rng = new FuzzRng(11);
  const bytes = writeLlama2c(p, (name) => {
    const n = name.includes('embed') ? 512 * 64 : name.includes('norm') ? 64 : name.includes('wk') || name.includes('wv') ? 32 * 64 : name.includes('wq') || name.includes('wo') ? 64 * 64 : 128 * 64;
    return Float32Array.from({ length: n }, () => (rng.u32() / 2 ** 32 - 0.5) * 0.1);
  }, version);
  return { type: 'files', files: [{ name: `tiny-v${version}.bin`, bytes }, { name: 'tok512.bin', bytes: readShared('tinystories-260k/tok512.bin') }] };
}

const readShared = (rel: string) => new Uint8Array(readFileSync(sharedPath(rel)));

/** Every base id, by input kind. */
export const BASES: Record<string, string[]> = {
  gguf: ['gguf:s260k:F32', 'gguf:s260k:Q8_0', 'gguf:s260k:Q4_0', 'gguf:s260k:Q4_K', 'gguf:k256:Q4_K', 'gguf:k256:Q6_K',
    'gguf:tiny:F16', 'gguf:tiny-bpe:Q8_0', 'shared:tinystories-260k/stories260K.gguf', 'shared:llamacpp-vocab/ggml-vocab-llama-spm.gguf'],
  safetensors: ['st:tiny:F32', 'st:tiny:F16', 'st:tiny:BF16', 'st:tiny-tok:BF16', 'st:s260k:F32'],
  llama2c: ['l2c:tiny:0', 'l2c:tiny:1', 'l2c:tiny:2', 'l2c:tiny-cls:1', 'shared:tinystories-260k/stories260K.bin+tok512'],
  'tokenizer-json': ['tokjson:llama3-small', 'tokjson:spm-small', 'bigjson:llama3'],
  'tokenizer-bin': ['shared:tinystories-260k/tok512.bin', 'shared:llama2-tokenizer/tokenizer.bin'],
  notebook: notebookIds(),
};

function notebookIds(): string[] {
  const dirs = ['test/fixtures/notebooks', 'demos'];
  return dirs.flatMap((d) => {
    const dir = join(repoRoot, d);
    return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.md') && f !== 'README.md').map((f) => `nb:${d}/${f}`) : [];
  });
}

export function getBase(id: string): Base {
  let b = cache.get(id);
  if (b) return b;
  b = makeBase(id);
  cache.set(id, b);
  return b;
}

function makeBase(id: string): Base {
  const [family, a, t] = id.split(':') as [string, string, string];
  const k256 = tiny({ dModel: 256, dFfn: 256, nHeads: 4, nKvHeads: 2, dHead: 64, vocabSize: 300 });
  switch (family) {
    case 'gguf':
      if (a === 's260k') return gguf(shapeConfig('stories260K'), t as TensorTypeName);
      if (a === 'k256') return gguf(k256, t as TensorTypeName);
      if (a === 'tiny') return gguf(tiny({ vocabSize: 300 }), t as TensorTypeName);
      if (a === 'tiny-bpe') {
        const data = tokenizerDataFromHfJson(smallLlama3Json(), null, 'small tokenizer.json') as BpeTokenizerData;
        return gguf(tiny({ vocabSize: data.tokens.length, bosId: null, eosId: null }), t as TensorTypeName, data);
      }
      break;
    case 'st':
      if (a === 's260k') return safetensors(shapeConfig('stories260K'), t as TensorTypeName);
      if (a === 'tiny') return safetensors(tiny({ vocabSize: 300 }), t as TensorTypeName);
      if (a === 'tiny-tok') return safetensors(tiny({ vocabSize: 300 }), t as TensorTypeName, smallSpmJson());
      break;
    case 'l2c': return llama2c(Number(t) as 0 | 1 | 2, a !== 'tiny-cls');
    case 'shared':
      if (a.endsWith('+tok512')) {
        const rel = a.slice(0, -'+tok512'.length);
        return { type: 'files', files: [{ name: rel.split('/').pop()!, bytes: readShared(rel) }, { name: 'tok512.bin', bytes: readShared('tinystories-260k/tok512.bin') }] };
      }
      return { type: 'files', files: [{ name: a.split('/').pop()!, bytes: readShared(a) }] };
    case 'tokjson': {
      const j = a === 'llama3-small' ? smallLlama3Json() : smallSpmJson();
      return { type: 'files', files: [{ name: 'tokenizer.json', bytes: enc.encode(JSON.stringify(j, null, 1)) }] };
    }
    case 'bigjson': return { type: 'json', name: 'tokenizer.json', json: llama3Json(), size: 9_084_490 };
    case 'nb': return { type: 'text', name: a, text: readFileSync(join(repoRoot, a), 'utf8') };
  }
  throw new Error(`fuzz corpus: unknown base ${id}`);
}
