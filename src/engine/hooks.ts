// Named activations (DESIGN.md "Named activations") and which of them a run records.
//
// Every internal tensor of the forward pass has one name, following TransformerLens; the
// TransformerLens spellings that differ from ours are accepted as aliases (ln1 → attn_norm,
// mlp.hook_pre → ffn.hook_gate, ...). A capture request is a name, a list of names, a glob
// (`blocks.*.attn.hook_pattern`) or a predicate over our names; it is resolved once per run into
// one boolean per hook (HookSelection), which is all the forward pass looks at: capturing nothing
// costs one false test per hook per block.

import type { ModelConfig } from './config.ts';
import { UsageError } from './errors.ts';

/** Hooks outside the blocks, in the order the forward pass produces them. */
export const GLOBAL_HOOKS = [
  'hook_tokens', 'hook_embed',
  'final_norm.hook_scale', 'final_norm.hook_normalized', 'final_norm.hook_out',
  'hook_logits',
] as const;
export type GlobalHook = (typeof GLOBAL_HOOKS)[number];

/** Hooks of block i (named `blocks.{i}.<hook>`), in the order the forward pass produces them. */
export const BLOCK_HOOKS = [
  'hook_resid_pre',
  'attn_norm.hook_scale', 'attn_norm.hook_normalized', 'attn_norm.hook_out',
  'attn.hook_q', 'attn.hook_k', 'attn.hook_v', 'attn.hook_rot_q', 'attn.hook_rot_k',
  'attn.hook_scores', 'attn.hook_pattern', 'attn.hook_z', 'attn.hook_result',
  'hook_attn_out',
  'hook_resid_mid',
  'ffn_norm.hook_scale', 'ffn_norm.hook_normalized', 'ffn_norm.hook_out',
  'ffn.hook_gate', 'ffn.hook_up', 'ffn.hook_act',
  'hook_ffn_out',
  'hook_resid_post',
] as const;
export type BlockHook = (typeof BLOCK_HOOKS)[number];

/** Hooks whose rows span key positions: [n_heads, q_pos, k_pos]. All others are [pos, ...]. */
export const ATTENTION_HOOKS: ReadonlySet<string> = new Set(['attn.hook_scores', 'attn.hook_pattern']);

/**
 * TransformerLens names → ours, one path segment at a time. A segment is renamed only in the
 * context shown (`hook_pre` means the gate only inside `mlp`/`ffn`).
 */
const SEGMENT_ALIASES: Record<string, string> = { ln1: 'attn_norm', ln2: 'ffn_norm', ln_final: 'final_norm', mlp: 'ffn' };
const LEAF_ALIASES: Record<string, Record<string, string>> = {
  ffn: { hook_pre: 'hook_gate', hook_pre_linear: 'hook_up', hook_post: 'hook_act' },
  attn: { hook_attn_scores: 'hook_scores' },
  block: { hook_mlp_out: 'hook_ffn_out' },
};

/** Our name for a hook name written either way (TransformerLens aliases resolved); not validated. */
export function canonicalHookName(name: string): string {
  const seg = name.split('.').map((s) => SEGMENT_ALIASES[s] ?? s);
  const last = seg.length - 1;
  const parent = last >= 1 ? seg[last - 1]! : '';
  const context = parent === 'ffn' || parent === 'attn' ? parent : seg[0] === 'blocks' && last === 2 ? 'block' : '';
  const leaf = context ? LEAF_ALIASES[context]![seg[last]!] : undefined;
  if (leaf) seg[last] = leaf;
  return seg.join('.');
}

/** The TransformerLens spelling of one of our names (itself when TransformerLens has no other). */
export function transformerLensName(name: string): string {
  return name
    .replace(/(^|\.)attn_norm\./, '$1ln1.').replace(/(^|\.)ffn_norm\./, '$1ln2.').replace(/^final_norm\./, 'ln_final.')
    .replace(/\.ffn\.hook_gate$/, '.mlp.hook_pre').replace(/\.ffn\.hook_up$/, '.mlp.hook_pre_linear')
    .replace(/\.ffn\.hook_act$/, '.mlp.hook_post').replace(/\.attn\.hook_scores$/, '.attn.hook_attn_scores')
    .replace(/\.hook_ffn_out$/, '.hook_mlp_out');
}

/** Every hook name of a model, in forward order. */
export function hookNames(c: Pick<ModelConfig, 'nLayers'>): string[] {
  const out: string[] = ['hook_tokens', 'hook_embed'];
  for (let i = 0; i < c.nLayers; i++) for (const h of BLOCK_HOOKS) out.push(`blocks.${i}.${h}`);
  out.push('final_norm.hook_scale', 'final_norm.hook_normalized', 'final_norm.hook_out', 'hook_logits');
  return out;
}

/**
 * A capture name `<hook>:norm` records the hook's L2 norm at each position ([pos], rowNorm)
 * instead of its rows: every layer's residual norms cost nPos floats a layer, where the rows cost
 * nPos × d_model (TinyLlama at 1,000 tokens: 88 KB against 180 MB). Row hooks only.
 */
export const NORM_SUFFIX = ':norm';

/** The L2 norm of data[from .. to) (f32 values, squares summed in f64, rounded to f32 once):
 *  recorded `:norm` entries and norms computed from recorded rows are the same bits. */
export function rowNorm(data: ArrayLike<number>, from: number, to: number): number {
  let ss = 0;
  for (let j = from; j < to; j++) ss += data[j]! * data[j]!;
  return Math.fround(Math.sqrt(ss));
}

/** A hook's name within its block (`attn.hook_pattern` of `blocks.3.attn.hook_pattern`); a global hook's whole name. */
export function hookLeaf(name: string): string {
  return name.startsWith('blocks.') ? name.slice(name.indexOf('.', 7) + 1) : name;
}

/** The shape of a hook's tensor over a sequence of `nPos` positions (DESIGN.md's table). */
export function hookShape(c: ModelConfig, name: string, nPos: number): number[] {
  if (name.endsWith(NORM_SUFFIX)) return [nPos];
  const leaf = hookLeaf(name);
  switch (leaf) {
    case 'hook_tokens': return [nPos];
    case 'hook_logits': return [nPos, c.vocabSize];
    case 'attn.hook_q': case 'attn.hook_rot_q': case 'attn.hook_z': return [nPos, c.nHeads, c.dHead];
    case 'attn.hook_k': case 'attn.hook_rot_k': case 'attn.hook_v': return [nPos, c.nKvHeads, c.dHead];
    case 'attn.hook_scores': case 'attn.hook_pattern': return [c.nHeads, nPos, nPos];
    case 'attn.hook_result': return [nPos, c.nHeads, c.dModel];
    case 'ffn.hook_gate': case 'ffn.hook_up': case 'ffn.hook_act': return [nPos, c.dFfn];
  }
  if (leaf.endsWith('.hook_scale')) return [nPos, 1];
  return [nPos, c.dModel];
}

/**
 * The most bytes the activations one run records may take by default: every layer's attention
 * pattern of TinyLlama at 2,048 tokens would take 5.5 GiB (as causal rows), which a browser tab
 * does not survive. A run past it fails with a UsageError naming the largest hooks, before
 * anything is computed (checkCaptureBytes).
 */
export const CAPTURE_LIMIT_BYTES = 2 * 2 ** 30;

/** The bytes recorded activation `name` (ours, or `<hook>:norm`) takes over nPos positions in a
 *  session's store: attention rows as their causal part, other hooks as [nPos, ...] f32. */
export function captureBytes(c: ModelConfig, name: string, nPos: number): number {
  const shape = hookShape(c, name, nPos);
  if (ATTENTION_HOOKS.has(hookLeaf(name))) return 4 * shape[0]! * (nPos * (nPos + 1)) / 2;
  return 4 * shape.reduce((a, d) => a * d, 1);
}

/** Refuses a run (or a cell, before it asks for one) whose recorded activations, `names` over
 *  nPos positions, would pass `limit` bytes. */
export function checkCaptureBytes(c: ModelConfig, names: readonly string[], nPos: number, limit: number): void {
  const sizes = names.map((name) => ({ name, bytes: captureBytes(c, name, nPos) }));
  const total = sizes.reduce((a, x) => a + x.bytes, 0);
  if (total <= limit) return;
  const gib = (b: number) => b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GiB` : b >= 2 ** 20 ? `${(b / 2 ** 20).toFixed(1)} MiB` : `${(b / 1024).toFixed(1)} KiB`;
  const largest = sizes.sort((a, b) => b.bytes - a.bytes).slice(0, 3).map((x) => `${x.name} ${gib(x.bytes)}`).join(', ');
  throw new UsageError('capture', `recording ${names.length} hook${names.length === 1 ? '' : 's'} over ${nPos} positions would take ${gib(total)}, more than the ${gib(limit)} a run may record (the largest: ${largest}${names.length > 3 ? ', …' : ''})`,
    'Capture fewer hooks (one layer\'s rather than blocks.*), only their norms (<hook>:norm), or a shorter prompt');
}

/** What to record: a name, a list, a glob (`*` within a segment, `**` across segments), or a predicate over our names. */
export type CaptureSpec = string | readonly string[] | ((name: string) => boolean);

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i]!;
    if (ch === '*') {
      if (glob[i + 1] === '*') { re += '.*'; i++; } else re += '[^.]*';
    } else if (ch === '?') re += '[^.]';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** The resolved capture request: one boolean per hook, which the forward pass tests. */
export interface HookSelection {
  /** Our names of what is recorded, in forward order: a hook's rows under its name, its norms
   *  under `<name>:norm` (NORM_SUFFIX). */
  readonly names: readonly string[];
  /** Hooks whose norms are recorded (without the suffix); the forward pass computes them. */
  readonly normed: ReadonlySet<string>;
  readonly global: Readonly<Record<GlobalHook, boolean>>;
  /** blocks[i][hook]: record `blocks.{i}.{hook}`. */
  readonly blocks: readonly Readonly<Record<BlockHook, boolean>>[];
  /** True when anything at all is recorded. */
  readonly any: boolean;
}

/**
 * Resolves a capture request against a model. Exact names (ours or TransformerLens's) must exist,
 * and a glob must match at least one hook, or a UsageError says so (a typo must not quietly record
 * nothing). Globs are matched against both spellings of each name.
 */
export function selectHooks(c: Pick<ModelConfig, 'nLayers'>, spec: CaptureSpec | undefined | null): HookSelection {
  const all = hookNames(c);
  const chosen = new Set<string>(), normed = new Set<string>();
  if (typeof spec === 'function') {
    for (const n of all) if (spec(n)) chosen.add(n);
  } else if (spec !== undefined && spec !== null) {
    const known = new Set(all);
    for (const whole of typeof spec === 'string' ? [spec] : spec) {
      const norm = typeof whole === 'string' && whole.endsWith(NORM_SUFFIX);
      const item = norm ? whole.slice(0, -NORM_SUFFIX.length) : whole;
      const into = norm ? normed : chosen;
      if (/[*?]/.test(item)) {
        const re = globToRegExp(item);
        let hit = false;
        for (const n of all) if (re.test(n) || re.test(transformerLensName(n))) { into.add(n); hit = true; }
        if (!hit) throw new UsageError('capture', `the pattern "${item}" matches no hook`, `Hook names look like blocks.0.attn.hook_pattern (layers 0..${c.nLayers - 1})`);
      } else {
        const n = canonicalHookName(item);
        if (!known.has(n)) throw new UsageError('capture', `there is no hook named "${item}"`, `Hook names look like blocks.0.attn.hook_pattern (layers 0..${c.nLayers - 1}); see hookNames()`);
        into.add(n);
      }
    }
  }
  for (const n of normed) {
    if (ATTENTION_HOOKS.has(hookLeaf(n)) || n === 'hook_tokens') {
      throw new UsageError('capture', `"${n}${NORM_SUFFIX}": norms are recorded for activation rows only, not ${n === 'hook_tokens' ? 'token ids' : 'attention patterns or scores'}`,
        `Capture "${n}" itself, or the norm of a row hook such as blocks.0.hook_resid_pre${NORM_SUFFIX}`);
    }
  }
  const on = (n: string) => chosen.has(n) || normed.has(n);
  const global = Object.fromEntries(GLOBAL_HOOKS.map((h) => [h, on(h)])) as Record<GlobalHook, boolean>;
  const blocks: Record<BlockHook, boolean>[] = [];
  for (let i = 0; i < c.nLayers; i++) {
    blocks.push(Object.fromEntries(BLOCK_HOOKS.map((h) => [h, on(`blocks.${i}.${h}`)])) as Record<BlockHook, boolean>);
  }
  const names = all.flatMap((n) => [...(chosen.has(n) ? [n] : []), ...(normed.has(n) ? [n + NORM_SUFFIX] : [])]);
  return { names, normed, global, blocks, any: names.length > 0 };
}

/** One recorded activation. */
export interface TraceEntry {
  shape: number[];
  data: Float32Array;
  /**
   * Row p's 64-bit content hash (capture.ts rowHash of its floats' bits), where the run's store
   * keeps it: a later run that reuses the prefix hands its rows' hashes on, so the logit lens's
   * memo hashes only the rows a keystroke recomputed. Absent: hash the row itself.
   */
  rowHash?(p: number): RowHash;
  /** Row p of the data ([p, ...] of a [pos, ...] hook), read without gathering the whole `data`
   *  where the store keeps the rows apart (capture.ts): a view of memory that other traces and the
   *  session share, to read, never to write. Absent: read it from `data`. */
  row?(p: number): Float32Array;
}
/** Two independent 32-bit hashes of a row (capture.ts rowHash). */
export interface RowHash { a: number; b: number }
/** Recorded activations by our name. */
export type Trace = Map<string, TraceEntry>;
