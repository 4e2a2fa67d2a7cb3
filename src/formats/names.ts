// One table maps each format's tensor names onto glassbox's. Our names mirror the activation names
// (blocks.{i}.attn..., DESIGN.md) so that a weight and the hook it produces read alike.
//
//   embed.weight                 [vocab, d_model]
//   blocks.{i}.attn_norm.weight  [d_model]
//   blocks.{i}.attn.wq           [n_heads * d_head, d_model]      rows in 'adjacent' RoPE layout
//   blocks.{i}.attn.wk           [n_kv_heads * d_head, d_model]   rows in 'adjacent' RoPE layout
//   blocks.{i}.attn.wv           [n_kv_heads * d_head, d_model]
//   blocks.{i}.attn.wo           [d_model, n_heads * d_head]
//   blocks.{i}.ffn_norm.weight   [d_model]
//   blocks.{i}.ffn.w_gate        [d_ffn, d_model]
//   blocks.{i}.ffn.w_up          [d_ffn, d_model]
//   blocks.{i}.ffn.w_down        [d_model, d_ffn]
//   final_norm.weight            [d_model]
//   unembed.weight               [vocab, d_model]                 absent when tied to embed.weight

import type { ModelConfig } from '../engine/config.ts';

export type Role =
  | 'embed' | 'final_norm' | 'unembed'
  | 'attn_norm' | 'wq' | 'wk' | 'wv' | 'wo' | 'ffn_norm' | 'w_gate' | 'w_up' | 'w_down';

const OURS: Record<Role, string> = {
  embed: 'embed.weight',
  final_norm: 'final_norm.weight',
  unembed: 'unembed.weight',
  attn_norm: 'blocks.{i}.attn_norm.weight',
  wq: 'blocks.{i}.attn.wq',
  wk: 'blocks.{i}.attn.wk',
  wv: 'blocks.{i}.attn.wv',
  wo: 'blocks.{i}.attn.wo',
  ffn_norm: 'blocks.{i}.ffn_norm.weight',
  w_gate: 'blocks.{i}.ffn.w_gate',
  w_up: 'blocks.{i}.ffn.w_up',
  w_down: 'blocks.{i}.ffn.w_down',
};

/** GGUF (llama.cpp) names. */
const GGUF: Record<Role, string> = {
  embed: 'token_embd.weight',
  final_norm: 'output_norm.weight',
  unembed: 'output.weight',
  attn_norm: 'blk.{i}.attn_norm.weight',
  wq: 'blk.{i}.attn_q.weight',
  wk: 'blk.{i}.attn_k.weight',
  wv: 'blk.{i}.attn_v.weight',
  wo: 'blk.{i}.attn_output.weight',
  ffn_norm: 'blk.{i}.ffn_norm.weight',
  w_gate: 'blk.{i}.ffn_gate.weight',
  w_up: 'blk.{i}.ffn_up.weight',
  w_down: 'blk.{i}.ffn_down.weight',
};

/** Hugging Face transformers LlamaForCausalLM names. */
const HF: Record<Role, string> = {
  embed: 'model.embed_tokens.weight',
  final_norm: 'model.norm.weight',
  unembed: 'lm_head.weight',
  attn_norm: 'model.layers.{i}.input_layernorm.weight',
  wq: 'model.layers.{i}.self_attn.q_proj.weight',
  wk: 'model.layers.{i}.self_attn.k_proj.weight',
  wv: 'model.layers.{i}.self_attn.v_proj.weight',
  wo: 'model.layers.{i}.self_attn.o_proj.weight',
  ffn_norm: 'model.layers.{i}.post_attention_layernorm.weight',
  w_gate: 'model.layers.{i}.mlp.gate_proj.weight',
  w_up: 'model.layers.{i}.mlp.up_proj.weight',
  w_down: 'model.layers.{i}.mlp.down_proj.weight',
};

export type NameScheme = 'ours' | 'gguf' | 'hf';
const SCHEMES: Record<NameScheme, Record<Role, string>> = { ours: OURS, gguf: GGUF, hf: HF };

export const GLOBAL_ROLES: readonly Role[] = ['embed', 'final_norm', 'unembed'];
export const BLOCK_ROLES: readonly Role[] = ['attn_norm', 'wq', 'wk', 'wv', 'wo', 'ffn_norm', 'w_gate', 'w_up', 'w_down'];

/** The name of a role's tensor in a scheme; `layer` is required for block roles. */
export function tensorName(scheme: NameScheme, role: Role, layer?: number): string {
  const pattern = SCHEMES[scheme][role];
  if (pattern.includes('{i}')) {
    if (layer === undefined) throw new Error(`tensorName: ${role} needs a layer`);
    return pattern.replace('{i}', String(layer));
  }
  return pattern;
}

const matchers = new Map<NameScheme, { re: RegExp; role: Role }[]>();
function matchersFor(scheme: NameScheme) {
  let m = matchers.get(scheme);
  if (!m) {
    m = (Object.entries(SCHEMES[scheme]) as [Role, string][]).map(([role, pattern]) => ({
      role,
      re: new RegExp('^' + pattern.replace(/\./g, '\\.').replace('{i}', '(\\d+)') + '$'),
    }));
    matchers.set(scheme, m);
  }
  return m;
}

/** Parses a file's tensor name; null when the name is not one of the Llama roles. */
export function parseTensorName(scheme: NameScheme, name: string): { role: Role; layer: number | undefined } | null {
  for (const { re, role } of matchersFor(scheme)) {
    const hit = re.exec(name);
    if (hit) return { role, layer: hit[1] === undefined ? undefined : Number(hit[1]) };
  }
  return null;
}

/** Maps a file's tensor name onto ours; null for names that are not Llama weights. */
export function toOurName(scheme: NameScheme, name: string): string | null {
  const p = parseTensorName(scheme, name);
  return p ? tensorName('ours', p.role, p.layer) : null;
}

/** The shape each of our tensors must have, from the config (row-major, last dim contiguous). */
export function expectedShape(c: ModelConfig, role: Role): number[] {
  const q = c.nHeads * c.dHead, kv = c.nKvHeads * c.dHead;
  switch (role) {
    case 'embed': case 'unembed': return [c.vocabSize, c.dModel];
    case 'final_norm': case 'attn_norm': case 'ffn_norm': return [c.dModel];
    case 'wq': return [q, c.dModel];
    case 'wk': case 'wv': return [kv, c.dModel];
    case 'wo': return [c.dModel, q];
    case 'w_gate': case 'w_up': return [c.dFfn, c.dModel];
    case 'w_down': return [c.dModel, c.dFfn];
  }
}

/** Every tensor name a model with this config must have. */
export function requiredTensors(c: ModelConfig): { name: string; role: Role; layer?: number; shape: number[] }[] {
  const out: { name: string; role: Role; layer?: number; shape: number[] }[] = [];
  for (const role of GLOBAL_ROLES) {
    if (role === 'unembed' && c.tiedEmbeddings) continue;
    out.push({ name: tensorName('ours', role), role, shape: expectedShape(c, role) });
  }
  for (let i = 0; i < c.nLayers; i++) {
    for (const role of BLOCK_ROLES) out.push({ name: tensorName('ours', role, i), role, layer: i, shape: expectedShape(c, role) });
  }
  return out;
}
