// Activation patching (src/engine/patching.ts) against a real in-thread Engine on stories260K:
// the grid's cells equal plain engine runs written here (patching every position of a head, with
// no shortcut), the clean run's own resid_pre at layer 0 restores the clean logits bit for bit
// (fraction 1) and the corrupted run's own activations change nothing (fraction 0), positions
// where the two runs agree restore exactly 0, the runs reuse the KV cache as far as any order
// can, traces are released, and bad requests fail with UsageErrors that say what to do.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine, type ModelInfo } from '../../src/engine/api.ts';
import { UsageError } from '../../src/engine/errors.ts';
import type { Edit } from '../../src/engine/edits.ts';
import { patchingGrid, rescorePatching, topTokens, type PatchingResult } from '../../src/engine/patching.ts';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
const storiesBytes = readFileSync(resolve(root, '../shared/models/tinystories-260k/stories260K.gguf'));

const CLEAN_TEXT = 'Lily gave the ball to Tom. Then Tom gave it back to';
const CORRUPT_TEXT = 'Lily gave the ball to Sam. Then Sam gave it back to';

interface Setup { engine: Engine; info: ModelInfo; clean: number[]; corrupt: number[]; T: number; S: number; grid: PatchingResult; progress: [number, number][] }
let setupP: Promise<Setup> | null = null;
function setup(): Promise<Setup> {
  setupP ??= (async () => {
    const engine = new Engine();
    const info = await engine.load({ kind: 'files', files: [new File([storiesBytes], 'stories260K.gguf')] }, { threads: 1 });
    const clean = (await engine.tokenize(CLEAN_TEXT)).ids, corrupt = (await engine.tokenize(CORRUPT_TEXT)).ids;
    const T = (await engine.tokenize('Tom', { bos: false })).ids[0]!, S = (await engine.tokenize('Sam', { bos: false })).ids[0]!;
    const progress: [number, number][] = [];
    const grid = await patchingGrid(engine, { clean, corrupted: corrupt, target: T, foil: S, slot: 'test:patch', onProgress: (d, t) => progress.push([d, t]) }, info.config);
    return { engine, info, clean, corrupt, T, S, grid, progress };
  })();
  return setupP;
}

/** The last logits row of a plain engine run. */
async function lastRow(engine: Engine, tokens: number[], edits: Edit[] | undefined, slot: string): Promise<Float32Array> {
  const h = await engine.run({ tokens, slot, ...(edits ? { edits } : {}) });
  const row = (await engine.logits(h, { position: tokens.length - 1 })).data;
  await engine.release(h);
  return row;
}

async function hookOf(engine: Engine, tokens: number[], hook: string, slot: string): Promise<Float32Array> {
  const h = await engine.run({ tokens, slot, capture: [hook] });
  const a = (await engine.activation(h, hook)).data;
  await engine.release(h);
  return a;
}

test('the prompts are what the other tests assume: same length, first differing at token 9', async () => {
  const { clean, corrupt, info, grid } = await setup();
  assert.equal(clean.length, 24);
  assert.equal(corrupt.length, 24);
  const differ = clean.flatMap((t, i) => (t !== corrupt[i] ? [i] : []));
  assert.deepEqual(differ, [9, 10, 14, 15]);   // ▁T om … ▁T om  vs  ▁S am … ▁S am
  assert.equal(grid.nLayers, info.config.nLayers);
  assert.equal(grid.nPos, 24);
  assert.ok(grid.cleanDiff > 1 && grid.corruptedDiff < -1, `clean ${grid.cleanDiff}, corrupted ${grid.corruptedDiff}: the name is copied`);
});

test('grid cells equal plain engine runs with the patch written by hand (exact)', async () => {
  const { engine, clean, corrupt, T, S, grid } = await setup();
  const last = clean.length - 1;
  const cleanRow = await lastRow(engine, clean, undefined, 'test:ref');
  const corruptRow = await lastRow(engine, corrupt, undefined, 'test:ref');
  const dClean = cleanRow[T]! - cleanRow[S]!, dCorrupt = corruptRow[T]! - corruptRow[S]!;
  assert.equal(grid.cleanDiff, dClean);
  assert.equal(grid.corruptedDiff, dCorrupt);
  assert.deepEqual(grid.clean.ids, topTokens(cleanRow, 5).ids);
  assert.deepEqual(grid.corrupted.ids, topTokens(corruptRow, 5).ids);
  const check = async (g: 'resid' | 'heads', l: number, i: number, edit: Edit) => {
    const row = await lastRow(engine, corrupt, [edit], 'test:byhand');
    const d = row[T]! - row[S]!;
    const G = grid[g]!, cell = l * G.cols + i;
    assert.equal(G.diff[cell], Math.fround(d), `${g} ${l}.${i} diff`);
    assert.equal(G.fraction[cell], Math.fround((d - dCorrupt) / (dClean - dCorrupt)), `${g} ${l}.${i} fraction`);
    // the top tokens: the engine's own topK of the same run
    const h = await engine.run({ tokens: corrupt, slot: 'test:byhand', edits: [edit] });
    const tk = await engine.topK(h, { k: 5, position: last });
    assert.deepEqual(G.topIds.subarray(cell * 5, cell * 5 + 5), tk.ids, `${g} ${l}.${i} top ids`);
    for (let k = 0; k < 5; k++) assert.ok(Math.abs(G.topProbs[cell * 5 + k]! - tk.probs[k]!) < 1e-6, `${g} ${l}.${i} top p ${k}`);
    return d;
  };
  // resid cells: before the first difference (skipped by the driver), at it, a layer-0 position
  // whose token is the same, later ones, the last position of the last layer
  for (const [l, p] of [[0, 3], [0, 9], [0, 12], [1, 14], [2, 15], [3, 20], [4, last], [4, 16]] as const) {
    const values = await hookOf(engine, clean, `blocks.${l}.hook_resid_pre`, 'test:cleanhook');
    await check('resid', l, p, { hook: `blocks.${l}.hook_resid_pre`, op: 'patch', positions: [p], values });
  }
  // head cells: every position patched (the driver starts at the first position that differs)
  for (const [l, h] of [[0, 0], [1, 3], [2, 5], [4, 7]] as const) {
    const values = await hookOf(engine, clean, `blocks.${l}.attn.hook_z`, 'test:cleanhook');
    await check('heads', l, h, { hook: `blocks.${l}.attn.hook_z`, op: 'patch', heads: [h], values });
  }
});

test('layer 0 resid_pre patched at every position gives the clean logits bit for bit; own values are a no-op', async () => {
  const { engine, clean, corrupt, T, S, grid } = await setup();
  const cleanRow = await lastRow(engine, clean, undefined, 'test:ref');
  const corruptRow = await lastRow(engine, corrupt, undefined, 'test:ref');
  const embed = await hookOf(engine, clean, 'blocks.0.hook_resid_pre', 'test:cleanhook');
  const restored = await lastRow(engine, corrupt, [{ hook: 'blocks.0.hook_resid_pre', op: 'patch', values: embed }], 'test:all');
  assert.deepEqual(restored, cleanRow, 'the clean embeddings in the corrupted run are the clean run');
  const frac = ((restored[T]! - restored[S]!) - grid.corruptedDiff) / (grid.cleanDiff - grid.corruptedDiff);
  assert.equal(frac, 1);
  // the corrupted run patched with its own activations (resid at a middle layer, and every head's z)
  const ownResid = await hookOf(engine, corrupt, 'blocks.2.hook_resid_pre', 'test:ownhook');
  const ownZ = await hookOf(engine, corrupt, 'blocks.3.attn.hook_z', 'test:ownhook');
  const noop = await lastRow(engine, corrupt, [
    { hook: 'blocks.2.hook_resid_pre', op: 'patch', values: ownResid },
    { hook: 'blocks.3.attn.hook_z', op: 'patch', values: ownZ },
  ], 'test:noop');
  assert.deepEqual(noop, corruptRow);
  assert.equal(((noop[T]! - noop[S]!) - grid.corruptedDiff) / (grid.cleanDiff - grid.corruptedDiff), 0);
});

test('positions where the two runs agree restore exactly 0; the answer position restores the most', async () => {
  const { clean, corrupt, grid } = await setup();
  const R = grid.resid!, P = grid.nPos;
  for (let l = 0; l < grid.nLayers; l++) {
    for (let p = 0; p < 9; p++) {
      assert.equal(R.fraction[l * P + p], 0, `resid ${l}.${p}: before the prompts differ`);
      assert.equal(R.diff[l * P + p], Math.fround(grid.corruptedDiff));
      assert.equal(R.skipped[l * P + p], 1);
    }
  }
  for (let p = 0; p < P; p++) {
    if (clean[p] === corrupt[p]) assert.equal(R.fraction[p], 0, `layer 0 position ${p}: same token, same embedding`);
  }
  // Not zero: the last layer's resid_pre at an earlier position still matters, because the last
  // position attends to its keys and values in that very layer (only resid_post of the last layer
  // would be position-local).
  const L = grid.nLayers - 1;
  let nonzero = 0;
  for (let p = 9; p < P - 1; p++) if (R.fraction[L * P + p] !== 0) nonzero++;
  assert.ok(nonzero > 0);
  // the name tokens at layer 0 carry the behaviour: patching the second " T" back restores much of it
  const best = Math.max(...[9, 10, 14, 15].map((p) => R.fraction[p]!));
  assert.ok(best > 0.2, `best layer-0 fraction ${best}`);
  // every head was run (their z differs from position 9 on)
  assert.equal(grid.heads!.skipped.reduce((s, v) => s + v, 0), 0);
});

test('runs reuse the KV cache as far as any order can, report progress, and release their traces', async () => {
  const { engine, grid, progress, clean, corrupt, T, S, info } = await setup();
  const R = grid.resid!, Hd = grid.heads!;
  // a run patching from position p cannot reuse more than p positions
  let bound = 0;
  for (let i = 0; i < R.skipped.length; i++) if (!R.skipped[i]) bound += i % R.cols;
  bound += 9 * Hd.skipped.length;
  assert.equal(grid.runs, R.skipped.length - R.skipped.reduce((s, v) => s + v, 0) + Hd.skipped.length);
  assert.equal(grid.reusedPositions, bound);
  assert.equal(grid.reusedPositions + grid.computedPositions, grid.runs * grid.nPos);
  // each run starts at its layer (RunRequest.startLayer): the blocks below are skipped
  let skipped = 0;
  for (let i = 0; i < R.skipped.length; i++) if (!R.skipped[i]) skipped += Math.floor(i / R.cols) * (R.cols - (i % R.cols));
  for (let i = 0; i < Hd.skipped.length; i++) skipped += Math.floor(i / Hd.cols) * (grid.nPos - 9);
  assert.equal(grid.skippedBlocks, skipped);
  assert.deepEqual(progress.at(-1), [grid.runs + 2, grid.runs + 2]);
  assert.deepEqual(progress.slice(0, 2), [[1, 2], [2, 2]]);
  const before = (await engine.stats()).traces;
  await patchingGrid(engine, { clean, corrupted: corrupt, target: T, foil: S, grids: ['heads'], slot: 'test:release' }, info.config);
  assert.equal((await engine.stats()).traces, before, 'no trace is left behind');
});

test('partial grids while the runs go on: each done cell as in the whole grid, the others pending and NaN; fewer pending each time', async () => {
  const { engine, info, clean, corrupt, T, S, grid } = await setup();
  const partials: PatchingResult[] = [];
  const again = await patchingGrid(engine, { clean, corrupted: corrupt, target: T, foil: S, slot: 'test:partial', partialMs: 0, onPartial: (r) => partials.push(r) }, info.config);
  assert.deepEqual(again.resid!.fraction, grid.resid!.fraction);
  assert.equal(again.resid!.pending, undefined, 'the whole grid has no pending cells');
  assert.equal(partials.length, grid.runs - 1, 'after every run but the last (partialMs 0)');
  let before = Infinity;
  for (const p of partials) {
    let left = 0;
    for (const name of ['resid', 'heads'] as const) {
      const g = p[name]!, whole = grid[name]!;
      for (let i = 0; i < g.rows * g.cols; i++) {
        if (g.pending![i]) {
          left++;
          assert.ok(Number.isNaN(g.fraction[i]!) && Number.isNaN(g.diff[i]!), `${name} ${i}: pending is NaN`);
          assert.equal(g.skipped[i], 0);
        } else {
          assert.equal(g.fraction[i], whole.fraction[i], `${name} ${i}`);
          assert.equal(g.skipped[i], whole.skipped[i]);
          assert.deepEqual(g.topIds.subarray(i * p.top, (i + 1) * p.top), whole.topIds.subarray(i * p.top, (i + 1) * p.top));
        }
      }
    }
    assert.equal(left, grid.runs - p.runs, 'pending = runs still to do');
    assert.ok(left < before && left > 0);
    before = left;
  }
  // a partial grid is a copy: the next runs do not change it
  const first = partials[0]!;
  assert.ok(first.resid!.pending!.some((x) => x === 1) || first.heads!.pending!.some((x) => x === 1));
  assert.notEqual(first.resid!.fraction, again.resid!.fraction);
});

test('an aborted signal stops between runs', async () => {
  const { engine, clean, corrupt, T, S, info } = await setup();
  const ac = new AbortController();
  let runs = 0;
  await assert.rejects(patchingGrid(engine, {
    clean, corrupted: corrupt, target: T, foil: S, grids: ['heads'], slot: 'test:abort', signal: ac.signal,
    onProgress: (d) => { runs = d; if (d === 5) ac.abort(new Error('stop')); },
  }, info.config), /stop|cancel/i);
  assert.equal(runs, 5);
  // the engine still works afterwards
  assert.equal((await lastRow(engine, clean, undefined, 'test:after')).length, info.config.vocabSize);
});

test('bad requests fail with a UsageError that says what to do', async () => {
  const { engine, clean, corrupt, T, S, info } = await setup();
  await assert.rejects(patchingGrid(engine, { clean, corrupted: corrupt.slice(0, 20), target: T, foil: S }, info.config),
    (e: unknown) => e instanceof UsageError && /corrupted prompt/.test(e.message) && /20 tokens/.test(e.message) && /24/.test(e.message) && /same number of tokens/.test(e.message));
  await assert.rejects(patchingGrid(engine, { clean, corrupted: corrupt, target: T, foil: T }, info.config),
    (e: unknown) => e instanceof UsageError && /same token/.test(e.message) && /foil/.test(e.message));
  // the same prompt twice: both differences are equal, nothing can be restored
  await assert.rejects(patchingGrid(engine, { clean, corrupted: clean, target: T, foil: S }, info.config),
    (e: unknown) => e instanceof UsageError && /same logit difference|both the clean and the corrupted/.test(e.message) && /Pick other target and foil/.test(e.message));
  // defaults: the clean and the corrupted top tokens, here the same → the same-token error
  await assert.rejects(patchingGrid(engine, { clean, corrupted: clean }, info.config),
    (e: unknown) => e instanceof UsageError && /top token of both prompts/.test(e.message));
  await assert.rejects(patchingGrid(engine, { clean, corrupted: corrupt, target: T, foil: S, grids: ['mlp' as 'resid'] }, info.config), UsageError);
  await assert.rejects(patchingGrid(engine, { clean, corrupted: corrupt, target: info.config.vocabSize, foil: S }, info.config),
    (e: unknown) => e instanceof UsageError && /patch target/.test(e.message));
});

test('topTokens: the k largest, lowest id first on ties, softmax probabilities', () => {
  const row = Float32Array.from([1, 3, 3, -2, 0.5, 3]);
  const t = topTokens(row, 4);
  assert.deepEqual([...t.ids], [1, 2, 5, 0]);
  const z = [...row].reduce((s, v) => s + Math.exp(v), 0);
  [...t.ids].forEach((id, k) => assert.ok(Math.abs(t.probs[k]! - Math.exp(row[id]!) / z) < 1e-7));
  assert.deepEqual([...topTokens(row, 10).ids], [1, 2, 5, 0, 4, 3]);
});

test('kept rows: another target and foil rescored without a run equal a grid run with them; without rows, a UsageError', async () => {
  const { engine, info, clean, corrupt, T, S, grid } = await setup();
  const kept = await patchingGrid(engine, { clean, corrupted: corrupt, target: T, foil: S, slot: 'test:rows', keepRows: 64 << 20 }, info.config);
  assert.ok(kept.rows, 'the rows fit');
  assert.equal(kept.rows!.resid!.filter((r) => r !== null).length + kept.rows!.heads!.filter((r) => r !== null).length, kept.runs, 'one row per patched run');
  assert.equal(grid.rows, undefined, 'not kept unless asked');
  const byName = async (w: string) => (await engine.tokenize(w, { bos: false })).ids.at(-1)!;
  const [ball, Lily] = [await byName('ball'), await byName('Lily')];
  for (const o of [{ target: ball, foil: Lily }, { target: S, foil: T }, {}]) {
    const fresh = await patchingGrid(engine, { clean, corrupted: corrupt, slot: 'test:fresh', ...o }, info.config);
    const again = rescorePatching(kept, o);
    const what = JSON.stringify(o);
    for (const k of ['target', 'foil', 'cleanDiff', 'corruptedDiff', 'runs'] as const) assert.equal(again[k], fresh[k], `${what}: ${k}`);
    assert.deepEqual(again.clean, fresh.clean, `${what}: clean`);
    assert.deepEqual(again.corrupted, fresh.corrupted, `${what}: corrupted`);
    for (const g of ['resid', 'heads'] as const) {
      for (const f of ['fraction', 'diff', 'topIds', 'topProbs', 'skipped'] as const) assert.deepEqual(again[g]![f], fresh[g]![f], `${what}: ${g} ${f}`);
    }
  }
  assert.throws(() => rescorePatching(kept, { target: T, foil: T }), (e: unknown) => e instanceof UsageError && /same token/.test(e.message));
  assert.throws(() => rescorePatching(grid, { target: S, foil: T }), (e: unknown) => e instanceof UsageError && /rows.*were not kept/.test(e.message));
  // a budget too small for the rows keeps none
  const small = await patchingGrid(engine, { clean, corrupted: corrupt, target: T, foil: S, slot: 'test:rows', keepRows: 1000 }, info.config);
  assert.equal(small.rows, undefined);
});
