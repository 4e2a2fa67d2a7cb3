// Activation patching (issue 12): how much of a behaviour does one activation carry?
//
// Two prompts of the same length: a clean one ("… Tom gave it back to" → " Lily") and a corrupted
// one that changes the answer. The metric is the logit difference at the last position,
// logit[target] − logit[foil]. Denoising, as in TransformerLens's patching tutorials: run the
// CORRUPTED prompt, replace one activation by the CLEAN run's value of it, and measure how much of
// the clean difference comes back:
//
//   restored fraction = (diff_patched − diff_corrupted) / (diff_clean − diff_corrupted)
//
// 0: the activation carries none of it; 1: all of it. Two grids:
// - resid: blocks.{l}.hook_resid_pre at one position p per run (layer × position);
// - heads: blocks.{l}.attn.hook_z of one head h at every position (layer × head).
//
// The driver does its own clean and corrupted runs (capturing the hooks it patches from) and then
// one run per grid cell, all in one slot (each new run replaces the last trace; every trace is
// released once read). It speaks only run/logits/activation/release, so the in-thread Engine and
// the worker client both drive it.
//
// Cost: a patch at layer l leaves every layer below l as in the corrupted run, so each patched run
// starts at its layer (RunRequest.startLayer) from the corrupted run's recorded hook_resid_pre of
// that layer: about half the layer work of the grid is skipped, with the same numbers. The engine
// reuses its KV cache before the earliest position where a run's edits differ from the previous
// run's, and a patch at position p leaves positions < p as in the corrupted run. So runs go in
// DEcreasing order of their first edited position: each then reuses exactly that many positions
// (min(previous first, this first) = this first), the most any order can. (A run from a layer
// leaves the layers below stale past its first edited position; the next run starts no later.)
// A patched value that equals the corrupted run's own, bit for bit (every position before the
// first token where the prompts differ, and at layer 0 every position whose token is the same),
// changes nothing: such a cell is the corrupted run, and is not run at all. A head's patch starts
// at the first position where its z differs, for the same reason. Both shortcuts are exact (the
// tests compare the grid with plain runs patching every position).

import { UsageError } from './errors.ts';
import type { EngineApi } from './api.ts';
import type { Edit } from './edits.ts';

/** What the driver needs of an engine: the in-thread Engine and the worker client both have it. */
export type PatchClient = Pick<EngineApi, 'run' | 'logits' | 'activation' | 'release'>;

export type PatchGridName = 'resid' | 'heads';

export interface PatchingOptions {
  /** The clean prompt's token ids (what is patched in). */
  clean: readonly number[];
  /** The corrupted prompt's token ids (what runs); the same length as `clean`. */
  corrupted: readonly number[];
  /** The token whose logit the clean prompt should favour; default the clean run's top token. */
  target?: number;
  /** The token it is compared with; default the corrupted run's top token. */
  foil?: number;
  /** Which grids (default both). */
  grids?: readonly PatchGridName[];
  /** The slot every run uses (default 'patching'). */
  slot?: string;
  signal?: AbortSignal;
  /** After each model run: runs done, runs in all (the reference runs included). */
  onProgress?: (done: number, total: number) => void;
  /**
   * The grids so far, while the patched runs go on (every `partialMs`, default 500, after a run):
   * the cells whose run has not come back are `pending`, their fraction and diff NaN. Not called
   * once every run is done (the result is then the whole answer).
   */
  onPartial?: (partial: PatchingResult) => void;
  partialMs?: number;
  /** Next-token ids kept per run, most likely first (default 5). */
  top?: number;
  /**
   * Keep every run's last logits row (PatchingResult.rows) when they take at most this many bytes
   * in all (default 0: never). rescorePatching then answers another target or foil from them,
   * without a run.
   */
  keepRows?: number;
}

/** The last logits row of every run of a grid (PatchingOptions.keepRows): the clean and the
 *  corrupted run's, and per grid cell the patched run's (null for a skipped cell: the corrupted run). */
export interface PatchRows {
  clean: Float32Array;
  corrupted: Float32Array;
  resid: (Float32Array | null)[] | null;
  heads: (Float32Array | null)[] | null;
}

/** The top next-token ids of a run and their probabilities (softmax of its last logits row). */
export interface TopTokens {
  ids: Int32Array;
  probs: Float32Array;
}

/** One grid: [rows, cols] row-major by layer (cols: positions, or heads). */
export interface PatchGrid {
  rows: number;
  cols: number;
  /** [rows, cols] restored fraction of the logit difference. */
  fraction: Float32Array;
  /** [rows, cols] the patched run's logit[target] − logit[foil]. */
  diff: Float32Array;
  /** [rows, cols, top] the patched run's top next-token ids, and [rows, cols, top] their probabilities. */
  topIds: Int32Array;
  topProbs: Float32Array;
  /** [rows, cols] 1 where the patch changed nothing (the values were the corrupted run's own) and
   *  no run was needed: the cell is the corrupted run. */
  skipped: Uint8Array;
  /** A partial grid (PatchingOptions.onPartial): [rows, cols] 1 where the cell's run has not come
   *  back yet; its fraction and diff are NaN. Absent in a whole grid. */
  pending?: Uint8Array;
}

export interface PatchingResult {
  nLayers: number;
  nHeads: number;
  nPos: number;
  target: number;
  foil: number;
  top: number;
  clean: TopTokens & { diff: number };
  corrupted: TopTokens & { diff: number };
  cleanDiff: number;
  corruptedDiff: number;
  resid: PatchGrid | null;
  heads: PatchGrid | null;
  /** Patched runs done, and the positions they took from the KV cache / computed. */
  runs: number;
  reusedPositions: number;
  computedPositions: number;
  /** Every run's last logits row, when PatchingOptions.keepRows allowed them (only in a whole result). */
  rows?: PatchRows;
  /** Σ over the patched runs of the positions computed × the layers below the patched one: the
   *  blocks the runs skipped by starting at their layer (RunRequest.startLayer). */
  skippedBlocks: number;
}

// ---------------------------------------------------------------------------------------------
// Pure parts

/** (patched − corrupted) / (clean − corrupted), in f64; the grids store it as f32. */
export function restoredFraction(patched: number, corrupted: number, clean: number): number {
  return (patched - corrupted) / (clean - corrupted);
}

/** logit[target] − logit[foil] of a logits row (f64: the difference of two f32 is exact). */
export function logitDiff(row: ArrayLike<number>, target: number, foil: number): number {
  return row[target]! - row[foil]!;
}

/** The k most likely ids of a logits row (lowest id first on ties) and their softmax probabilities. */
export function topTokens(row: ArrayLike<number>, k: number): TopTokens {
  const n = Math.min(k, row.length);
  const ids: number[] = [];
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    if (v > max) max = v;
    if (ids.length === n && !(v > row[ids[n - 1]!]!)) continue;
    // insertion into the sorted top list (k is small)
    let j = ids.length < n ? ids.length : n - 1;
    ids[j] = i;
    while (j > 0 && row[ids[j - 1]!]! < v) { ids[j] = ids[j - 1]!; ids[j - 1] = i; j--; }
  }
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  return { ids: Int32Array.from(ids), probs: Float32Array.from(ids, (id) => Math.exp(row[id]! - max) / sum) };
}

/** Whether two arrays' elements [start, start + len) hold the same bits. */
function sameBits(a: Uint32Array, b: Uint32Array, start: number, len: number): boolean {
  for (let i = start; i < start + len; i++) if (a[i] !== b[i]) return false;
  return true;
}

const bits = (f: Float32Array) => new Uint32Array(f.buffer, f.byteOffset, f.length);

function checkTokens(field: string, v: unknown): number[] {
  if (!Array.isArray(v) || v.length === 0 || !v.every((x) => Number.isInteger(x) && x >= 0)) {
    throw new UsageError(field, 'is not a non-empty list of token ids', 'Give the prompt as token ids (tokenize it first)');
  }
  return v as number[];
}

/** Validates the options that need no run (the tokens, grids, top, the shape). */
export function checkPatchingOptions(o: PatchingOptions, shape: { nLayers: number; nHeads: number }): { grids: PatchGridName[]; top: number } {
  const clean = checkTokens('clean prompt', o.clean);
  const corrupted = checkTokens('corrupted prompt', o.corrupted);
  if (corrupted.length !== clean.length) {
    throw new UsageError('corrupted prompt', `has ${corrupted.length} tokens but the clean prompt has ${clean.length}`,
      'Patching compares the two runs position by position: write a corrupted prompt with the same number of tokens (swap a word for another that is also one token, such as a name)');
  }
  const grids: PatchGridName[] = [...new Set<PatchGridName>(o.grids ?? ['resid', 'heads'])];
  if (grids.length === 0 || grids.some((g) => g !== 'resid' && g !== 'heads')) {
    throw new UsageError('patch grids', `${JSON.stringify(o.grids)} is not a list of 'resid' and 'heads'`, "Use grids: [resid, heads], [resid] or [heads]");
  }
  const top = o.top ?? 5;
  if (!Number.isInteger(top) || top < 1 || top > 100) throw new UsageError('patch top', `is ${String(o.top)}; give an integer from 1 to 100`);
  if (!Number.isInteger(shape.nLayers) || shape.nLayers < 1 || !Number.isInteger(shape.nHeads) || shape.nHeads < 1) {
    throw new UsageError('patching shape', `nLayers ${shape.nLayers}, nHeads ${shape.nHeads} is not a model's shape`);
  }
  if (o.target !== undefined && o.foil !== undefined && o.target === o.foil) {
    throw new UsageError('patch target and foil', `are the same token (${o.target}): their logit difference is always 0`, 'Pick a foil other than the target, e.g. the answer the corrupted prompt favours');
  }
  return { grids, top };
}

/**
 * The target and foil (given, or the clean and the corrupted run's top tokens) and the logit
 * difference of each reference run, refused where they cannot measure anything.
 */
function scoreOf(cleanRow: Float32Array, corruptedRow: Float32Array, o: Pick<PatchingOptions, 'target' | 'foil'>): { target: number; foil: number; cleanDiff: number; corruptedDiff: number } {
  const vocab = cleanRow.length;
  const target = o.target ?? topTokens(cleanRow, 1).ids[0]!;
  const foil = o.foil ?? topTokens(corruptedRow, 1).ids[0]!;
  for (const [what, id] of [['target', target], ['foil', foil]] as const) {
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new UsageError(`patch ${what}`, `${String(id)} is not a token id (0 to ${vocab - 1})`);
  }
  if (target === foil) {
    throw new UsageError('patch target and foil', `are the same token (${target})${o.target === undefined || o.foil === undefined ? ', the top token of both prompts' : ''}: their logit difference is always 0`,
      'Pick a target and a foil: the answer the clean prompt favours and the one the corrupted prompt favours');
  }
  const cleanDiff = logitDiff(cleanRow, target, foil), corruptedDiff = logitDiff(corruptedRow, target, foil);
  if (cleanDiff === corruptedDiff) {
    throw new UsageError('patch target and foil', `logit[${target}] − logit[${foil}] is ${cleanDiff} on both the clean and the corrupted prompt, so there is nothing to restore`,
      'Pick other target and foil tokens (the answers the two prompts favour), or a corrupted prompt that changes the answer');
  }
  return { target, foil, cleanDiff, corruptedDiff };
}

/**
 * The grids of `r` for another target and foil (default: the top tokens, as patchingGrid), from
 * the rows it kept (PatchingOptions.keepRows): the numbers patchingGrid gives with them, without
 * a run. The top tokens of each run do not depend on them and are kept.
 */
export function rescorePatching(r: PatchingResult, o: Pick<PatchingOptions, 'target' | 'foil'>): PatchingResult {
  const rows = r.rows;
  if (!rows) throw new UsageError('patch rows', 'were not kept for this grid', 'Run the grid again with the new target and foil (or with keepRows)');
  const { target, foil, cleanDiff, corruptedDiff } = scoreOf(rows.clean, rows.corrupted, o);
  const rescore = (g: PatchGrid | null, cells: (Float32Array | null)[] | null): PatchGrid | null => {
    if (!g || !cells) return null;
    const out: PatchGrid = { ...g, fraction: new Float32Array(g.fraction.length), diff: new Float32Array(g.diff.length).fill(corruptedDiff) };
    cells.forEach((row, i) => {
      if (!row) return;
      const d = logitDiff(row, target, foil);
      out.diff[i] = d;
      out.fraction[i] = restoredFraction(d, corruptedDiff, cleanDiff);
    });
    return out;
  };
  return {
    ...r, target, foil, clean: { ...r.clean, diff: cleanDiff }, corrupted: { ...r.corrupted, diff: corruptedDiff }, cleanDiff, corruptedDiff,
    resid: rescore(r.resid, rows.resid), heads: rescore(r.heads, rows.heads),
  };
}

// ---------------------------------------------------------------------------------------------
// The driver

interface Job { grid: PatchGridName; cell: number; layer: number; from: number; edit: Edit }

/** The patching grids of a clean and a corrupted prompt (see the top of this file). */
export async function patchingGrid(client: PatchClient, o: PatchingOptions, shape: { nLayers: number; nHeads: number }): Promise<PatchingResult> {
  const { grids, top } = checkPatchingOptions(o, shape);
  const L = shape.nLayers, H = shape.nHeads, nPos = o.clean.length, last = nPos - 1;
  const slot = o.slot ?? 'patching', signal = o.signal;
  // every layer's input: what a patched run starts from (and what the resid grid patches in)
  const hooks = ['blocks.*.hook_resid_pre', ...(grids.includes('heads') ? ['blocks.*.attn.hook_z'] : [])];
  const inputs = Array.from({ length: L }, (_, l) => `blocks.${l}.hook_resid_pre`);
  const names = (g: PatchGridName) => Array.from({ length: L }, (_, l) => (g === 'resid' ? `blocks.${l}.hook_resid_pre` : `blocks.${l}.attn.hook_z`));

  // The two reference runs, clean first: the corrupted one then leaves the KV cache on the prompt
  // every patched run shares.
  const reference = async (tokens: readonly number[]) => {
    signal?.throwIfAborted();
    const t = await client.run({ tokens, capture: hooks, slot }, { signal });
    try {
      const row = (await client.logits(t, { position: last })).data;
      const acts = new Map<string, Float32Array>();
      for (const n of new Set([...inputs, ...grids.flatMap(names)])) acts.set(n, (await client.activation(t, n)).data);
      return { row, acts };
    } finally {
      await client.release(t);
    }
  };
  let done = 0, total = 2;
  const clean = await reference(o.clean);
  o.onProgress?.(++done, total);
  const corrupted = await reference(o.corrupted);
  o.onProgress?.(++done, total);

  const { target, foil, cleanDiff, corruptedDiff } = scoreOf(clean.row, corrupted.row, o);
  const cleanTop = topTokens(clean.row, top), corruptedTop = topTokens(corrupted.row, top);

  // The grids, filled with the corrupted run (what every skipped cell is), and the runs to do.
  const grid = (cols: number): PatchGrid => {
    const n = L * cols;
    const g: PatchGrid = {
      rows: L, cols, fraction: new Float32Array(n), diff: new Float32Array(n).fill(corruptedDiff),
      topIds: new Int32Array(n * top), topProbs: new Float32Array(n * top), skipped: new Uint8Array(n).fill(1),
    };
    for (let i = 0; i < n; i++) { g.topIds.set(corruptedTop.ids, i * top); g.topProbs.set(corruptedTop.probs, i * top); }
    return g;
  };
  const out: Record<PatchGridName, PatchGrid | null> = { resid: null, heads: null };
  const jobs: Job[] = [];
  if (grids.includes('resid')) {
    out.resid = grid(nPos);
    names('resid').forEach((hook, l) => {
      const c = clean.acts.get(hook)!, k = corrupted.acts.get(hook)!;   // [nPos, d_model]
      const w = c.length / nPos, cb = bits(c), kb = bits(k);
      for (let p = 0; p < nPos; p++) {
        if (sameBits(cb, kb, p * w, w)) continue;
        jobs.push({ grid: 'resid', cell: l * nPos + p, layer: l, from: p, edit: { hook, op: 'patch', positions: [p], values: c } });
      }
    });
  }
  if (grids.includes('heads')) {
    out.heads = grid(H);
    names('heads').forEach((hook, l) => {
      const c = clean.acts.get(hook)!, k = corrupted.acts.get(hook)!;   // [nPos, n_heads, d_head]
      const dh = c.length / (nPos * H), cb = bits(c), kb = bits(k);
      for (let h = 0; h < H; h++) {
        let from = 0;
        while (from < nPos && sameBits(cb, kb, (from * H + h) * dh, dh)) from++;
        if (from === nPos) continue;
        const positions = Array.from({ length: nPos - from }, (_, i) => from + i);
        jobs.push({ grid: 'heads', cell: l * H + h, layer: l, from, edit: { hook, op: 'patch', heads: [h], positions, values: c } });
      }
    });
  }
  jobs.sort((a, b) => b.from - a.from);   // stable: resid before heads, by layer, at equal starts

  total += jobs.length;
  // every run's last row, when they fit in keepRows (a grid cell's index in its grid's list)
  const keep = (jobs.length + 2) * 4 * clean.row.length <= (o.keepRows ?? 0);
  const cellRows = (g: PatchGrid | null) => (keep && g ? new Array<Float32Array | null>(g.rows * g.cols).fill(null) : null);
  const rows: PatchRows | undefined = keep ? { clean: clean.row, corrupted: corrupted.row, resid: cellRows(out.resid), heads: cellRows(out.heads) } : undefined;
  o.onProgress?.(done, total);
  let reusedPositions = 0, computedPositions = 0, skippedBlocks = 0;
  // the cells whose run has not come back, per grid; a partial grid is a copy with them marked
  // pending and their numbers NaN
  const pending: Record<PatchGridName, Uint8Array | null> = {
    resid: out.resid && new Uint8Array(out.resid.rows * out.resid.cols), heads: out.heads && new Uint8Array(out.heads.rows * out.heads.cols),
  };
  for (const j of jobs) pending[j.grid]![j.cell] = 1;
  const pendingCopy = (g: PatchGrid | null, name: PatchGridName): PatchGrid | null => {
    if (!g) return null;
    const marks = pending[name]!.slice();
    const c: PatchGrid = { ...g, fraction: g.fraction.slice(), diff: g.diff.slice(), topIds: g.topIds.slice(), topProbs: g.topProbs.slice(), skipped: g.skipped.slice(), pending: marks };
    for (let i = 0; i < marks.length; i++) if (marks[i]) { c.fraction[i] = NaN; c.diff[i] = NaN; c.skipped[i] = 0; }
    return c;
  };
  const every = o.partialMs ?? 500;
  let ran = 0, lastPartial = performance.now();
  const result = (partial: boolean): PatchingResult => ({
    nLayers: L, nHeads: H, nPos, target, foil, top,
    clean: { ...cleanTop, diff: cleanDiff }, corrupted: { ...corruptedTop, diff: corruptedDiff },
    cleanDiff, corruptedDiff, resid: partial ? pendingCopy(out.resid, 'resid') : out.resid, heads: partial ? pendingCopy(out.heads, 'heads') : out.heads,
    runs: partial ? ran : jobs.length, reusedPositions, computedPositions, skippedBlocks,
  });
  for (const j of jobs) {
    signal?.throwIfAborted();
    const startLayer = { layer: j.layer, residual: corrupted.acts.get(inputs[j.layer]!)! };
    const t = await client.run({ tokens: o.corrupted, edits: [j.edit], startLayer, slot }, { signal });
    let row: Float32Array;
    try {
      row = (await client.logits(t, { position: last })).data;
    } finally {
      await client.release(t);
    }
    reusedPositions += t.reused;
    computedPositions += nPos - t.reused;
    skippedBlocks += (nPos - t.reused) * j.layer;
    const g = out[j.grid]!, d = logitDiff(row, target, foil), tt = topTokens(row, top);
    g.diff[j.cell] = d;
    g.fraction[j.cell] = restoredFraction(d, corruptedDiff, cleanDiff);
    g.topIds.set(tt.ids, j.cell * top);
    g.topProbs.set(tt.probs, j.cell * top);
    g.skipped[j.cell] = 0;
    if (rows) rows[j.grid]![j.cell] = row;
    pending[j.grid]![j.cell] = 0;
    ran++;
    o.onProgress?.(++done, total);
    if (o.onPartial && ran < jobs.length && performance.now() - lastPartial >= every) {
      o.onPartial(result(true));
      lastPartial = performance.now();
    }
  }
  const whole = result(false);
  if (rows) whole.rows = rows;
  return whole;
}
