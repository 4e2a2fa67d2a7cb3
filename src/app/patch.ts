// The patch cell's compute (the page's side; src/app/compute.ts calls it): the clean prompt is
// the prompt cell's tokens, the corrupted one the cell's `corrupted` text tokenized the way the
// prompt cell tokenizes (its bos and chat settings), and src/engine/patching.ts does every run
// through the worker client in the cell's own slot (`patch:<cell id>`), cancelled by ctx.signal.
//
// Why the driver runs the clean prompt itself rather than reading the prompt's shared trace: the
// shared trace would have to capture every layer's resid_pre and z for all the cells reading that
// prompt (memory held as long as the prompt lives), and its run may come at any time; in its own
// slot the driver controls the order (clean, corrupted, then the patched runs by decreasing first
// edited position) that lets the slot's KV cache (its lane of the engine's session) serve every
// patched run. One extra run of the clean prompt is small beside the grid's L × P + L × H.

import type { ComputeContext } from '../notebook/graph.ts';
import type { EngineClient } from '../worker/client.ts';
import type { ModelInfo, TokenizeOptions, Tokenized } from '../engine/api.ts';
import { UsageError } from '../engine/errors.ts';
import { patchingGrid, rescorePatching, type PatchGridName, type PatchingResult } from '../engine/patching.ts';
import { promptTokenizeSettings, tokenLabels } from '../../cells/prompt.ts';
import type { PatchOutput, PatchToken } from '../../cells/plot/patch.ts';

type Client = Pick<EngineClient, 'run' | 'logits' | 'activation' | 'release' | 'tokenize' | 'pieces'>;

/** The tokenize options the prompt cell `id` uses (src/app/compute.ts, kind 'prompt'). */
export function promptTokenizeOptions(ctx: Pick<ComputeContext, 'notebook'>, id: string, tok: Tokenized, model: ModelInfo): TokenizeOptions {
  const cell = ctx.notebook.cells.find((c) => c.id === id && c.kind === 'prompt');
  if (cell) return promptTokenizeSettings(cell.settings);
  // not a cell of this notebook (a test's): its first token says
  return { bos: tok.ids.length > 0 && tok.ids[0] === model.tokenizer?.bosId };
}

/**
 * The token a typed `target` / `foil` names: the first token of the text (no BOS). A SentencePiece
 * tokenizer reads " Tom" as "▁" then "▁Tom"; a bare "▁" first is skipped for the word after it.
 */
export async function typedToken(client: Pick<Client, 'tokenize'>, text: unknown, what: string): Promise<{ id: number; text: string } | null> {
  if (text === undefined || text === null || text === '') return null;
  if (typeof text !== 'string') throw new UsageError(`patch: ${what}`, `is ${JSON.stringify(text)}, not text`, `Write the ${what} token as text, e.g. ${what}: Tom`);
  const t = await client.tokenize(text, { bos: false });
  if (t.ids.length === 0) throw new UsageError(`patch: ${what}`, `${JSON.stringify(text)} has no tokens`, `Write the ${what} token as text, e.g. ${what}: Tom`);
  const k = t.ids.length > 1 && t.pieces[0] === '▁' ? 1 : 0;
  return { id: t.ids[k]!, text };
}

export function gridsOf(v: unknown): PatchGridName[] {
  const items = v === undefined || v === null ? ['resid', 'heads'] : Array.isArray(v) ? v : [v];
  for (const [i, g] of items.entries()) {
    if (g !== 'resid' && g !== 'heads') throw new UsageError(`patch: grids[${i}]`, `is ${JSON.stringify(g)}`, 'Use grids: [resid, heads], [resid] or [heads]');
  }
  if (items.length === 0) throw new UsageError('patch: grids', 'is empty', 'Use grids: [resid, heads], [resid] or [heads]');
  return items as PatchGridName[];
}

/** How often a running grid is drawn as it fills in (the graph's preview: PatchingOptions.partialMs). */
export const PATCH_PREVIEW = { everyMs: 500 };

/**
 * The last grid of each patch cell with its runs' logits rows (PatchingOptions.keepRows), the
 * least recently computed dropped first past PATCH_ROWS_BYTES in all: a new target or foil over
 * the same prompts, grids and model is rescored from them (rescorePatching) instead of rerun.
 */
export const PATCH_ROWS_BYTES = 128 * 2 ** 20;
const keptGrids = new Map<string, { key: string; result: PatchingResult; bytes: number }>();

/** Forgets the kept grids (Ctrl+Enter's fresh runs, a model load). */
export function forgetPatchGrids(): void {
  keptGrids.clear();
}

function keepGrid(cell: string, key: string, result: PatchingResult): void {
  keptGrids.delete(cell);
  const rows = result.rows;
  if (!rows) return;
  const vocab = rows.clean.length;
  keptGrids.set(cell, { key, result, bytes: 4 * vocab * (2 + result.runs) });
  let total = 0;
  for (const k of keptGrids.values()) total += k.bytes;
  for (const [id, k] of keptGrids) {
    if (total <= PATCH_ROWS_BYTES) break;
    keptGrids.delete(id);
    total -= k.bytes;
  }
}

/** The patch cell's output for the clean prompt `p`. */
export async function patchOutput(client: Client, model: ModelInfo, ctx: ComputeContext, p: { id: string; tok: Tokenized }): Promise<PatchOutput> {
  const s = ctx.settings;
  const text = s['corrupted'];
  if (typeof text !== 'string' || text.trim() === '') {
    throw new UsageError('patch: corrupted', 'is empty: there is no corrupted prompt to patch into',
      `Write one with the same number of tokens as the clean prompt (${p.tok.ids.length}), e.g. the clean prompt with one name swapped: corrupted: "…"`);
  }
  const corrupted = await client.tokenize(text, promptTokenizeOptions(ctx, p.id, p.tok, model));
  ctx.signal.throwIfAborted();
  if (corrupted.ids.length !== p.tok.ids.length) {
    throw new UsageError('patch: corrupted prompt', `has ${corrupted.ids.length} tokens but the clean prompt has ${p.tok.ids.length}`,
      'Patching compares the two runs position by position: change the corrupted text until both have the same number of tokens (swap a word for one that is also one token, such as a name)');
  }
  const [target, foil] = await Promise.all([typedToken(client, s['target'], 'target'), typedToken(client, s['foil'], 'foil')]);
  const c = model.config;
  const output = async (r: PatchingResult): Promise<PatchOutput> => {
    const ids = new Set<number>([r.target, r.foil, ...r.clean.ids, ...r.corrupted.ids, ...(r.resid?.topIds ?? []), ...(r.heads?.topIds ?? [])]);
    const list = [...ids];
    const pieces = await client.pieces(list);
    const map = new Map(list.map((id, i) => [id, pieces[i]!]));
    const tokenOf = (id: number, typed: { text: string } | null): PatchToken => ({ id, piece: map.get(id) ?? `#${id}`, typed: typed?.text ?? null });
    return {
      prompt: p.id, labels: tokenLabels(p.tok, model), corruptedLabels: tokenLabels(corrupted, model),
      nLayers: c.nLayers, nHeads: c.nHeads, nKvHeads: c.nKvHeads, nPos: r.nPos,
      target: tokenOf(r.target, target), foil: tokenOf(r.foil, foil), top: r.top,
      clean: r.clean, corrupted: r.corrupted, resid: r.resid, heads: r.heads, pieces: map, runs: r.runs,
    };
  };
  const grids = gridsOf(s['grids']);
  const scored = { ...(target ? { target: target.id } : {}), ...(foil ? { foil: foil.id } : {}) };
  // the same runs as the cell's last grid, or some of them: only the target, the foil or the grids shown changed
  const key = JSON.stringify([model.key, model.backend, p.tok.ids, corrupted.ids]);
  const known = keptGrids.get(ctx.cell.id);
  if (known?.key === key && grids.every((g) => known.result[g])) {
    const r = rescorePatching(known.result, scored);
    const shown = (g: PatchGridName) => (grids.includes(g) ? r[g] : null);
    const ran = (g: PatchGridName) => { const x = shown(g); return x ? x.skipped.length - x.skipped.reduce((a, b) => a + b, 0) : 0; };
    return output({ ...r, resid: shown('resid'), heads: shown('heads'), runs: ran('resid') + ran('heads') });
  }
  const r = await patchingGrid(client, {
    clean: p.tok.ids, corrupted: corrupted.ids, grids, slot: `patch:${ctx.cell.id}`, signal: ctx.signal, keepRows: PATCH_ROWS_BYTES,
    onProgress: (done, total) => ctx.progress?.(done, total, 'runs'),
    // the grids so far, drawn while the runs of the cells still to do go on (a TinyLlama grid takes minutes)
    onPartial: (partial) => { void output(partial).then((o) => ctx.partial?.(o), () => {}); }, partialMs: PATCH_PREVIEW.everyMs,
    ...scored,
  }, c);
  ctx.signal.throwIfAborted();
  keepGrid(ctx.cell.id, key, r);
  return output(r);
}
