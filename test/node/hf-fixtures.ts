// Tiny Hugging Face Llamas for the safetensors tests (not a test file itself: no .test.ts).

import { configFromHf } from '../../src/formats/hf-config.ts';
import { requiredTensors, tensorName } from '../../src/formats/names.ts';
import { writeSafetensors, type SafetensorsTensor } from '../../src/formats/safetensors-write.ts';
import { bytesSource, type ByteSource } from '../../src/formats/source.ts';

export const TINY_CONFIG = {
  _name_or_path: 'tiny-llama-test',
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_act: 'silu',
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-5,
  rope_theta: 500000,
  rope_scaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
  vocab_size: 32,
  max_position_embeddings: 128,
  bos_token_id: 1,
  eos_token_id: [2, 3],
  tie_word_embeddings: false,
  torch_dtype: 'float32',
};

/** Values k/64 with |k| <= 128: exact in F32, F16 and BF16, so every dtype stores the same numbers. */
export function values(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return ((s >>> 8) % 257 - 128) / 64;
  });
}

export function f16Bits(x: number): number {
  if (x === 0) return 0;
  const sign = x < 0 ? 0x8000 : 0, a = Math.abs(x), e = Math.floor(Math.log2(a));
  return sign | ((e + 15) << 10) | Math.round((a / 2 ** e - 1) * 1024);
}

export function encode(xs: number[], dtype: 'F32' | 'F16' | 'BF16'): Uint8Array {
  const f = new Float32Array(xs);
  if (dtype === 'F32') return new Uint8Array(f.buffer);
  const out = new Uint16Array(xs.length);
  const bits = new Uint32Array(f.buffer);
  for (let i = 0; i < xs.length; i++) out[i] = dtype === 'BF16' ? bits[i]! >>> 16 : f16Bits(xs[i]!);
  return new Uint8Array(out.buffer);
}

/** HF tensors of a tiny Llama (plus an lm_head and a rotary_emb.inv_freq the reader must skip). */
export function tinyTensors(config: Record<string, unknown>, dtype: 'F32' | 'F16' | 'BF16', withLmHead: boolean): SafetensorsTensor[] {
  const c = configFromHf({ ...config, tie_word_embeddings: false }, 'config.json');
  const out: SafetensorsTensor[] = [];
  let seed = 1;
  for (const r of requiredTensors(c)) {
    if (r.role === 'unembed' && !withLmHead) continue;
    const n = r.shape.reduce((a, b) => a * b, 1);
    out.push({ name: tensorName('hf', r.role, r.layer), dtype, shape: r.shape, data: encode(values(n, seed++), dtype) });
  }
  out.push({ name: 'model.layers.0.self_attn.rotary_emb.inv_freq', dtype: 'F32', shape: [2], data: encode([1, 0.5], 'F32') });
  return out;
}

export const json = (x: unknown, name: string) => bytesSource(new TextEncoder().encode(JSON.stringify(x)), name);

/** Splits tensors over `n` shards named as transformers names them, with their index. */
export function shard(written: SafetensorsTensor[], n: number, dir = '/models/tiny/'): { files: Uint8Array[]; sources: ByteSource[]; index: unknown } {
  const names = Array.from({ length: n }, (_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`);
  const parts: SafetensorsTensor[][] = names.map(() => []);
  written.forEach((t, i) => parts[Math.floor((i * n) / written.length)]!.push(t));
  const weight_map: Record<string, string> = {};
  parts.forEach((p, i) => { for (const t of p) weight_map[t.name] = names[i]!; });
  const files = parts.map((p) => writeSafetensors(p, { format: 'pt' }));
  const index = { metadata: { total_size: files.reduce((a, f) => a + f.byteLength, 0) }, weight_map };
  return { files, sources: files.map((f, i) => bytesSource(f, dir + names[i])), index };
}

