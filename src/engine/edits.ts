// Interventions: editing named activations during a run (issue 12).
//
// An Edit is plain data (it crosses to the worker by structured clone): which hook, what to do
// there (zero it, set it to a mean, patch it from another run, or add a steering vector), and
// where (positions; heads for attention hooks; neurons for the FFN). A run resolves its edits once
// (resolveEdits: validation with UsageErrors naming the field), and the forward pass applies them
// at each hook BEFORE the hook is recorded and before anything downstream reads it: a capture
// after an edit shows the edited values, the activation the rest of the model saw.
//
// Every edit compiles, per chunk of positions, to the one primitive of kernels/edit (zero / set /
// add-scaled rows of a [rows, width] region, with a head or neuron mask), which the CPU twin and
// the WGSL kernel both implement, so the two backends apply the same numbers.
//
// Two hooks are not stored in the forward pass as such and are edited through their effect:
// - attn.hook_result (each head's output, [pos, n_heads, d_model]): the per-head outputs r are
//   computed, edited into r', and the attention output gets Σ_h (r'_h − r_h) added (exact 0 for
//   a head left as it was, so patching a run with its own values changes nothing, bit for bit).
// - attn.hook_pattern ([n_heads, q_pos, k_pos]): edited into P', and z gets (P' − P) · V added.
//
// `mean` replaces by a GIVEN mean row (`vector`; meanOverPositions(trace entry) computes one from
// a reference run): a mean over the run's own positions would make early positions depend on
// later ones, which a causal model with a KV cache cannot compute chunk by chunk.

import type { ModelConfig } from './config.ts';
import { UsageError } from './errors.ts';
import { canonicalHookName, hookLeaf, selectHooks, type TraceEntry } from './hooks.ts';
import { EDIT_ADD, EDIT_SET, EDIT_ZERO, type EditRegion } from '../../kernels/edit/edit.cpu.ts';

export type EditOp = 'zero' | 'mean' | 'patch' | 'steer';

/** One intervention on one hook (or on every hook a glob names: `blocks.*.hook_resid_post`). */
export interface Edit {
  /** A hook name (ours or TransformerLens's) or a glob over them. */
  hook: string;
  op: EditOp;
  /** Sequence positions to edit (default 'all'). Positions past the run's end are ignored. */
  positions?: readonly number[] | 'all';
  /** Attention hooks (q, k, v, rot_q, rot_k, z, result, pattern): the heads to edit (k and v: KV
   *  heads). Default: every head. */
  heads?: readonly number[];
  /** FFN hooks (gate, up, act): the neurons to edit. Default: every neuron. */
  neurons?: readonly number[];
  /** patch: the replacement, [rows, width] indexed by sequence position (a trace's data as it is:
   *  row p replaces position p; rows must cover every edited position). attn.hook_pattern:
   *  [n_heads, N, N] as a trace holds it. */
  values?: Float32Array;
  /** mean: the mean row; steer: the direction. [width] of the hook's row, or for head hooks
   *  [d_head] (result: [d_model]) applied to each edited head. */
  vector?: Float32Array;
  /** steer: the vector's multiplier (default 1). */
  strength?: number;
}

/** What a trace says about an edit: the description without the arrays (digest: their bytes' hash). */
export interface EditSummary {
  hook: string;
  op: EditOp;
  positions: number[] | 'all';
  heads?: number[];
  neurons?: number[];
  strength?: number;
  /** FNV-1a of the values' or vector's bytes (8 hex digits): two edits with the same digest use the same numbers. */
  digest?: string;
}

type Kind = 'rows' | 'result' | 'pattern';
interface Layout { kind: Kind; width: number; groupSize: number; groups: number; select: 'heads' | 'neurons' | null }

/** Hooks that can be edited (block hooks by leaf); the norms' scale and normalized, scores, tokens
 *  and logits cannot (they are internal to a kernel, or the end of the model). */
function layoutOf(c: ModelConfig, name: string): Layout | null {
  const d = c.dModel, dh = c.dHead;
  const leaf = hookLeaf(name);
  switch (leaf) {
    case 'hook_embed': case 'final_norm.hook_out':
    case 'hook_resid_pre': case 'attn_norm.hook_out': case 'hook_attn_out': case 'hook_resid_mid':
    case 'ffn_norm.hook_out': case 'hook_ffn_out': case 'hook_resid_post':
      return { kind: 'rows', width: d, groupSize: d, groups: 1, select: null };
    case 'attn.hook_q': case 'attn.hook_rot_q': case 'attn.hook_z':
      return { kind: 'rows', width: c.nHeads * dh, groupSize: dh, groups: c.nHeads, select: 'heads' };
    case 'attn.hook_k': case 'attn.hook_rot_k': case 'attn.hook_v':
      return { kind: 'rows', width: c.nKvHeads * dh, groupSize: dh, groups: c.nKvHeads, select: 'heads' };
    case 'attn.hook_result': return { kind: 'result', width: c.nHeads * d, groupSize: d, groups: c.nHeads, select: 'heads' };
    case 'attn.hook_pattern': return { kind: 'pattern', width: 0, groupSize: 1, groups: c.nHeads, select: 'heads' };
    case 'ffn.hook_gate': case 'ffn.hook_up': case 'ffn.hook_act':
      return { kind: 'rows', width: c.dFfn, groupSize: 1, groups: c.dFfn, select: 'neurons' };
  }
  return null;
}

/** One validated edit of one hook. */
export interface ResolvedEdit {
  hook: string;
  /** The leaf (`attn.hook_z`) and the layer (−1 outside the blocks). */
  leaf: string;
  layer: number;
  op: EditOp;
  kind: Kind;
  width: number;
  groupSize: number;
  /** Per group, 1 = edited; null: all. */
  mask: Uint32Array | null;
  /** Sorted positions, or null for all. */
  positions: number[] | null;
  /** Selected heads of a pattern edit (null: all). */
  heads: number[] | null;
  /** patch: values; mean/steer: the vector expanded to the full width. */
  src: Float32Array | null;
  /** patch: the N of values [rows, width] (rows) or [n_heads, N, N] (pattern). */
  srcRows: number;
  strength: number;
}

/** A run's edits, resolved. */
export interface EditPlan {
  /** By hook name, in the order given. */
  hooks: Map<string, ResolvedEdit[]>;
  /** Block edits by layer then leaf (for the forward pass's per-layer lookups). */
  blocks: (Map<string, ResolvedEdit[]> | null)[];
  summaries: EditSummary[];
  /** Identifies the edit set, numbers included: runs with equal keys compute equal positions. */
  key: string;
  /** The earliest position any edit touches (positions before it are computed as without edits). */
  from: number;
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);

function indexList(field: string, v: unknown, limit: number, what: string): number[] {
  if (!Array.isArray(v) && !ArrayBuffer.isView(v)) throw new UsageError(field, `is ${typeof v}, not a list of ${what}`);
  const out = Array.from(v as ArrayLike<unknown>, (x, i) => {
    if (!isInt(x) || x < 0 || x >= limit) throw new UsageError(`${field}[${i}]`, `is ${String(x)}; ${what} go from 0 to ${limit - 1}`);
    return x;
  });
  if (out.length === 0) throw new UsageError(field, 'is empty', `Leave it out to edit every one of the ${what}`);
  return [...new Set(out)].sort((a, b) => a - b);
}

/** FNV-1a over an array's bytes. */
function digestOf(a: Float32Array): string {
  const b = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0') + `:${a.length}`;
}

/**
 * Validates a run's edits against the model and the run's length (nPos) and resolves globs.
 * Null when there are none (a run without edits is the plain forward pass).
 */
export function resolveEdits(c: ModelConfig, edits: readonly Edit[] | undefined | null, nPos: number): EditPlan | null {
  if (edits === undefined || edits === null) return null;
  if (!Array.isArray(edits)) throw new UsageError('edits', `is ${typeof edits}, not a list of edits`, "Give edits: [{ hook: 'blocks.0.attn.hook_z', op: 'zero', heads: [1] }]");
  if (edits.length === 0) return null;
  const hooks = new Map<string, ResolvedEdit[]>();
  const summaries: EditSummary[] = [];
  let from = Infinity;
  edits.forEach((e, i) => {
    const f = `edits[${i}]`;
    if (e === null || typeof e !== 'object') throw new UsageError(f, `is ${String(e)}, not an edit`);
    if (typeof e.hook !== 'string') throw new UsageError(`${f}.hook`, `is ${typeof e.hook}, not a hook name`);
    if (!['zero', 'mean', 'patch', 'steer'].includes(e.op)) throw new UsageError(`${f}.op`, `is ${String(e.op)}`, "Use 'zero', 'mean', 'patch' or 'steer'");
    let names: readonly string[];
    try {
      names = /[*?]/.test(e.hook) ? selectHooks(c, e.hook).names : selectHooks(c, canonicalHookName(e.hook)).names;
    } catch (err) {
      throw new UsageError(`${f}.hook`, (err as UsageError).message.replace(/^capture: /, ''), `Hook names look like blocks.0.attn.hook_z (layers 0..${c.nLayers - 1})`);
    }
    const positions = e.positions === undefined || e.positions === 'all' ? null : indexList(`${f}.positions`, e.positions, c.nCtx, 'positions');
    from = Math.min(from, positions ? positions[0]! : 0);
    const strength = e.strength ?? 1;
    if (typeof strength !== 'number' || !Number.isFinite(strength)) throw new UsageError(`${f}.strength`, `is ${String(e.strength)}; give a finite number`);
    for (const name of names) {
      const lay = layoutOf(c, name);
      if (!lay) throw new UsageError(`${f}.hook`, `${name} cannot be edited`, 'Edit a residual, attention (q, k, v, z, pattern, result, attn_out) or FFN (gate, up, act, ffn_out) hook');
      if (e.heads !== undefined && lay.select !== 'heads') throw new UsageError(`${f}.heads`, `${name} has no heads`, 'heads apply to attention hooks');
      if (e.neurons !== undefined && lay.select !== 'neurons') throw new UsageError(`${f}.neurons`, `${name} has no neurons`, 'neurons apply to ffn.hook_gate, ffn.hook_up and ffn.hook_act');
      const chosen = e.heads !== undefined ? indexList(`${f}.heads`, e.heads, lay.groups, lay.kind === 'rows' && lay.groups === c.nKvHeads && c.nKvHeads !== c.nHeads ? 'KV heads' : 'heads')
        : e.neurons !== undefined ? indexList(`${f}.neurons`, e.neurons, lay.groups, 'neurons') : null;
      let mask: Uint32Array | null = null;
      if (chosen && lay.kind !== 'pattern') { mask = new Uint32Array(lay.groups); for (const g of chosen) mask[g] = 1; }
      let src: Float32Array | null = null, srcRows = 0;
      const lastPos = positions ? positions.filter((p) => p < nPos).pop() ?? -1 : nPos - 1;
      if (e.op === 'patch') {
        if (!(e.values instanceof Float32Array)) throw new UsageError(`${f}.values`, `is ${e.values === undefined ? 'missing' : typeof e.values}; patch needs a Float32Array`, 'Pass the same hook of another run: trace.get(hook).data');
        const len = e.values.length;
        if (lay.kind === 'pattern') {
          const N = Math.round(Math.sqrt(len / c.nHeads));
          if (c.nHeads * N * N !== len) throw new UsageError(`${f}.values`, `holds ${len} floats, not [n_heads = ${c.nHeads}, N, N] for ${name}`);
          srcRows = N;
        } else {
          if (len % lay.width !== 0) throw new UsageError(`${f}.values`, `holds ${len} floats, not a whole number of rows of ${lay.width} (${name})`);
          srcRows = len / lay.width;
        }
        if (srcRows <= lastPos) throw new UsageError(`${f}.values`, `covers positions 0..${srcRows - 1} but position ${lastPos} of ${name} is edited`, 'Patch from a run at least as long, or restrict positions');
        src = e.values;
      } else if (e.op === 'mean' || e.op === 'steer') {
        if (lay.kind === 'pattern') throw new UsageError(`${f}.op`, `'${e.op}' does not apply to ${name}`, "Use 'zero' or 'patch' on attention patterns");
        const v = e.vector;
        if (!(v instanceof Float32Array)) throw new UsageError(`${f}.vector`, `is ${v === undefined ? 'missing' : typeof v}; ${e.op} needs a Float32Array`);
        const perGroup = lay.select === 'heads' && v.length === lay.groupSize;
        if (v.length !== lay.width && !perGroup) {
          throw new UsageError(`${f}.vector`, `has ${v.length} floats; ${name} rows have ${lay.width}${lay.select === 'heads' ? ` (or ${lay.groupSize} per head)` : ''}`);
        }
        src = perGroup ? new Float32Array(lay.width).map((_, j) => v[j % lay.groupSize]!) : v;
      }
      const m = /^blocks\.(\d+)\.(.+)$/.exec(name);
      const r: ResolvedEdit = {
        hook: name, leaf: m ? m[2]! : name, layer: m ? Number(m[1]) : -1, op: e.op, kind: lay.kind, width: lay.width,
        groupSize: lay.groupSize, mask, positions, heads: lay.kind === 'pattern' ? chosen : null, src, srcRows, strength,
      };
      hooks.set(name, [...(hooks.get(name) ?? []), r]);
      const s: EditSummary = { hook: name, op: e.op, positions: positions ?? 'all' };
      if (chosen) s[lay.select === 'neurons' ? 'neurons' : 'heads'] = chosen;
      if (e.op === 'steer') s.strength = strength;
      if (e.op !== 'zero') s.digest = digestOf(e.op === 'patch' ? e.values! : e.vector!);
      summaries.push(s);
    }
  });
  const blocks: (Map<string, ResolvedEdit[]> | null)[] = Array.from({ length: c.nLayers }, () => null);
  for (const list of hooks.values()) {
    const r = list[0]!;
    if (r.layer < 0) continue;
    (blocks[r.layer] ??= new Map()).set(r.leaf, list);
  }
  return { hooks, blocks, summaries, key: JSON.stringify(summaries), from };
}

/** One primitive edit of a chunk, with the source it reads (kernels/edit). */
export interface ChunkEdit { region: EditRegion; src: Float32Array }
const EMPTY: Float32Array = new Float32Array(0);

/**
 * The primitive edits of hook edits `list` on a chunk of positions [start, start + n). Rows
 * hooks: x is [n, width]. attn.hook_pattern: x is [n_heads, n, kLen] (row h·n + t).
 */
export function chunkEdits(list: readonly ResolvedEdit[], start: number, n: number, kLen: number, nHeads: number): ChunkEdit[] {
  const out: ChunkEdit[] = [];
  for (const e of list) {
    const ts: number[] = [];
    if (e.positions) { for (const p of e.positions) if (p >= start && p < start + n) ts.push(p - start); }
    else for (let t = 0; t < n; t++) ts.push(t);
    if (ts.length === 0) continue;
    const mode = e.op === 'zero' ? EDIT_ZERO : e.op === 'steer' ? EDIT_ADD : EDIT_SET;
    if (e.kind === 'pattern') {
      const heads = e.heads ?? Array.from({ length: nHeads }, (_, h) => h);
      const rows = new Uint32Array(heads.length * ts.length);
      let src = EMPTY;
      if (e.op === 'patch') src = new Float32Array(rows.length * kLen);   // [rows, kLen] packed
      let k = 0;
      for (const h of heads) {
        for (const t of ts) {
          if (e.op === 'patch') {
            const N = e.srcRows, from = (h * N + start + t) * N;
            src.set(e.src!.subarray(from, from + kLen), k * kLen);
          }
          rows[k++] = h * n + t;
        }
      }
      out.push({ region: { rows, width: kLen, groupSize: kLen, mask: null, mode, beta: 1, srcOffset: 0, srcStride: kLen }, src });
      continue;
    }
    const rows = Uint32Array.from(ts);
    const w = e.width;
    let src = EMPTY, srcStride = 0;
    if (e.op === 'patch') {
      src = new Float32Array(rows.length * w);                             // [rows, width] packed
      rows.forEach((t, k) => src.set(e.src!.subarray((start + t) * w, (start + t + 1) * w), k * w));
      srcStride = w;
    } else if (e.src) src = e.src;
    out.push({ region: { rows, width: w, groupSize: e.groupSize, mask: e.mask, mode, beta: e.strength, srcOffset: 0, srcStride }, src });
  }
  return out;
}

/**
 * The heads an attn.hook_result edit list touches (the per-head outputs to recompute), and the
 * chunk rows it touches, or null when the chunk has none.
 */
export function resultTouched(list: readonly ResolvedEdit[], start: number, n: number, nHeads: number): { heads: number[]; rows: Uint32Array } | null {
  const heads = new Set<number>(), rows = new Set<number>();
  for (const e of list) {
    const ts = e.positions ? e.positions.filter((p) => p >= start && p < start + n).map((p) => p - start) : Array.from({ length: n }, (_, t) => t);
    if (ts.length === 0) continue;
    for (const t of ts) rows.add(t);
    for (let h = 0; h < nHeads; h++) if (!e.mask || e.mask[h]) heads.add(h);
  }
  if (rows.size === 0) return null;
  return { heads: [...heads].sort((a, b) => a - b), rows: Uint32Array.from([...rows].sort((a, b) => a - b)) };
}

/** The first position a mean over a prompt counts: 1 past a leading BOS (when something follows it), else 0. */
export function meanStart(ids: readonly number[], bosId: number | null | undefined): number {
  return ids.length > 1 && bosId !== null && bosId !== undefined && ids[0] === bosId ? 1 : 0;
}

/**
 * The mean over positions of a recorded [pos, ...] activation (a trace entry or an activation()
 * slice): a mean-ablation vector ([row width]). `from` skips the first positions (a BOS token's
 * residual is an outlier many times the others' norm, which would swamp the mean).
 */
export function meanOverPositions(entry: { shape: readonly number[]; data: Float32Array }, from = 0): Float32Array {
  const nPos = entry.shape[0]!;
  if (!(nPos > from)) throw new UsageError('meanOverPositions', nPos > 0 ? `the activation has ${nPos} positions, none from ${from} on` : 'the activation has no positions');
  const data = entry.data, w = data.length / nPos;   // once: a trace entry's data is a getter
  const sum = new Float64Array(w);
  for (let p = from; p < nPos; p++) for (let i = 0; i < w; i++) sum[i]! += data[p * w + i]!;
  return Float32Array.from(sum, (s) => s / (nPos - from));
}

/**
 * A steering vector: the mean over rows of A minus the mean over rows of B, each given as
 * [rows, width] arrays (e.g. one hook's rows at the last position of several prompts). Pure.
 */
export function meanDifference(a: readonly Float32Array[], b: readonly Float32Array[]): Float32Array {
  const mean = (rows: readonly Float32Array[], side: string): Float64Array => {
    if (!Array.isArray(rows) || rows.length === 0) throw new UsageError(`meanDifference ${side}`, 'holds no rows', 'Give at least one row per side');
    const w = rows[0]!.length, sum = new Float64Array(w);
    rows.forEach((r, i) => {
      if (!(r instanceof Float32Array) || r.length !== w) throw new UsageError(`meanDifference ${side}[${i}]`, `has ${r?.length} floats, row 0 has ${w}`);
      for (let j = 0; j < w; j++) sum[j]! += r[j]!;
    });
    return sum.map((s) => s / rows.length);
  };
  const ma = mean(a, 'a'), mb = mean(b, 'b');
  if (ma.length !== mb.length) throw new UsageError('meanDifference', `rows of a have ${ma.length} floats, rows of b ${mb.length}`);
  return Float32Array.from(ma, (v, j) => v - mb[j]!);
}
