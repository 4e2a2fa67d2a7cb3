// The patch cell's compute (src/app/patch.ts through src/app/compute.ts) against a real in-thread
// Engine on stories260K: the output's grids are patchingGrid's on the same tokens (the corrupted
// text tokenized with the prompt's BOS rule), typed target / foil name their first word's token,
// the defaults are the two runs' top tokens, another target, foil or subset of the grids over the
// same prompts comes from the last grid's rows without a model run, and bad settings fail naming
// the setting.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UsageError } from '../../src/engine/errors.ts';
import { computeCell } from '../../src/app/compute.ts';
import { PATCH_PREVIEW, forgetPatchGrids } from '../../src/app/patch.ts';
import { parseNotebook } from '../../src/notebook/format.ts';
import type { ComputeContext } from '../../src/notebook/graph.ts';
import type { EngineClient } from '../../src/worker/client.ts';
import { patchingGrid } from '../../src/engine/patching.ts';
import type { PatchOutput } from '../../cells/plot/patch.ts';
import { storiesApp } from '../support/stories-app.ts';

const CLEAN = 'Lily gave the ball to Tom. Then Tom gave it back to';
const CORRUPT = 'Lily gave the ball to Sam. Then Sam gave it back to';

const setup = storiesApp;

const nb = parseNotebook(`\`\`\`prompt\n${CLEAN}\n\`\`\`\n\n\`\`\`patch\n\`\`\`\n`);
const cell = nb.cells.find((c) => c.kind === 'patch')!;

/** The cell's output; without `keep`, from runs of its own (not rescored from the cell's last grid). */
async function compute(settings: ComputeContext['settings'], progress?: ComputeContext['progress'], partial?: ComputeContext['partial'], keep = false): Promise<PatchOutput> {
  const { engine, info, runs } = await setup();
  if (!keep) forgetPatchGrids();
  const tok = await engine.tokenize(CLEAN);
  const promptId = nb.cells.find((c) => c.kind === 'prompt')!.id;
  const ctx: ComputeContext = { cell, settings, signal: new AbortController().signal, upstream: new Map([[promptId, tok]]), inputs: new Map(), notebook: nb, ...(progress && { progress }), ...(partial && { partial }) };
  return await computeCell(ctx, engine as unknown as EngineClient, runs, info) as PatchOutput;
}

test('the grid is shown as it fills in: partial outputs with pending cells and their pieces, then the whole', async () => {
  const was = PATCH_PREVIEW.everyMs;
  PATCH_PREVIEW.everyMs = 0;
  try {
    const partials: PatchOutput[] = [];
    const o = await compute({ corrupted: CORRUPT, target: 'Tom', foil: ' Sam', grids: ['heads'] }, undefined, (x) => partials.push(x as PatchOutput));
    await new Promise((r) => setTimeout(r, 20));                        // the last partial's pieces
    assert.ok(partials.length >= 2, `${partials.length} partial outputs`);
    const pend = (x: PatchOutput) => x.heads!.pending!.reduce((a, b) => a + b, 0);
    assert.ok(pend(partials[0]!) > pend(partials.at(-1)!) && pend(partials.at(-1)!) > 0);
    for (const x of partials) for (const id of x.heads!.topIds) assert.ok(x.pieces.has(id), 'pieces for every id shown');
    assert.equal(o.heads!.pending, undefined);
  } finally {
    PATCH_PREVIEW.everyMs = was;
  }
});

test('the grid reports its runs as the cell\'s progress: the two reference runs, then one per patched cell, up to all of them', async () => {
  const seen: [number, number, string][] = [];
  const o = await compute({ corrupted: CORRUPT, target: 'Tom', foil: ' Sam', grids: ['heads'] }, (done, total, what) => seen.push([done, total, what]));
  const total = o.runs + 2;
  assert.deepEqual(seen.slice(0, 2), [[1, 2, 'runs'], [2, 2, 'runs']], 'the clean and the corrupted run, before the cells are counted');
  assert.deepEqual(seen.at(-1), [total, total, 'runs']);
  const after = seen.slice(2);
  assert.equal(after.length, o.runs + 1);
  after.forEach(([done, t], i) => { assert.equal(t, total); assert.equal(done, 2 + i); });
});

test('another target, foil or subset of the grids over the same prompts comes from the last grid\'s rows: patchingGrid\'s numbers, no model run', async () => {
  const { engine, info } = await setup();
  await compute({ corrupted: CORRUPT, target: 'Tom', foil: ' Sam' });
  const runs = (await engine.stats()).runs;
  const o = await compute({ corrupted: CORRUPT, target: 'Tom', foil: 'ball' }, undefined, undefined, true);
  assert.equal((await engine.stats()).runs, runs, 'no model run');
  const clean = (await engine.tokenize(CLEAN)).ids, corrupted = (await engine.tokenize(CORRUPT)).ids;
  const T = (await engine.tokenize('Tom', { bos: false })).ids[0]!, ball = (await engine.tokenize('ball', { bos: false })).ids;
  const want = await patchingGrid(engine, { clean, corrupted, target: T, foil: o.foil.id, slot: 'test' }, info.config);
  assert.ok(ball.includes(o.foil.id));
  assert.deepEqual(o.resid!.fraction, want.resid!.fraction);
  assert.deepEqual(o.heads!.fraction, want.heads!.fraction);
  assert.equal(o.corrupted.diff, want.corruptedDiff);
  assert.equal(o.foil.typed, 'ball');
  // one grid of the two, then both again: no run either
  const before = (await engine.stats()).runs;                           // (after the reference grid above)
  const one = await compute({ corrupted: CORRUPT, target: 'Tom', foil: 'ball', grids: ['resid'] }, undefined, undefined, true);
  assert.equal(one.heads, null);
  assert.deepEqual(one.resid!.fraction, want.resid!.fraction);
  assert.equal(one.runs, want.resid!.skipped.length - want.resid!.skipped.reduce((a, b) => a + b, 0), 'the runs behind the grid shown');
  const both = await compute({ corrupted: CORRUPT, target: 'Tom', foil: 'ball' }, undefined, undefined, true);
  assert.deepEqual(both.heads!.fraction, want.heads!.fraction);
  assert.equal(both.runs, want.runs);
  assert.equal((await engine.stats()).runs, before, 'still no model run');
  // other prompts run again
  await compute({ corrupted: 'Lily gave the ball to Sam. Then Tom gave it back to', target: 'Tom', foil: 'ball' }, undefined, undefined, true);
  assert.ok((await engine.stats()).runs > before, 'a new corrupted prompt runs the grid');
});

test('the computed grids are patchingGrid\'s on the prompt and the corrupted text', async () => {
  const { engine, info } = await setup();
  const o = await compute({ corrupted: CORRUPT, target: 'Tom', foil: ' Sam' });
  const clean = (await engine.tokenize(CLEAN)).ids, corrupted = (await engine.tokenize(CORRUPT)).ids;
  const T = (await engine.tokenize('Tom', { bos: false })).ids[0]!, S = (await engine.tokenize('Sam', { bos: false })).ids[0]!;
  assert.equal(o.target.id, T);
  assert.equal(o.foil.id, S, '" Sam" (a SentencePiece "▁" first) names ▁S');
  assert.equal(o.target.typed, 'Tom');
  const want = await patchingGrid(engine, { clean, corrupted, target: T, foil: S, slot: 'test' }, info.config);
  assert.deepEqual(o.resid!.fraction, want.resid!.fraction);
  assert.deepEqual(o.heads!.fraction, want.heads!.fraction);
  assert.deepEqual(o.resid!.topIds, want.resid!.topIds);
  assert.equal(o.clean.diff, want.cleanDiff);
  assert.equal(o.corrupted.diff, want.corruptedDiff);
  assert.equal(o.labels.length, 24);
  assert.notEqual(o.corruptedLabels[9], o.labels[9]);
  assert.equal(o.labels[10], o.labels[15]);
  assert.equal(o.pieces.get(T), '▁T');
  for (const id of o.resid!.topIds) assert.ok(o.pieces.has(id));
});

test('defaults: target = the clean run\'s top token, foil = the corrupted run\'s; one grid when asked', async () => {
  const { engine } = await setup();
  const o = await compute({ corrupted: CORRUPT, grids: ['heads'] });
  const top = async (text: string) => (await engine.topK(await engine.run({ tokens: (await engine.tokenize(text)).ids, slot: 'test:top' }), { k: 1 })).ids[0];
  assert.equal(o.target.id, await top(CLEAN));
  assert.equal(o.foil.id, await top(CORRUPT));
  assert.equal(o.target.typed, null);
  assert.equal(o.resid, null);
  assert.ok(o.heads);
});

test('bad settings fail naming the setting and what to do', async () => {
  await assert.rejects(compute({}), (e: unknown) => e instanceof UsageError && /patch: corrupted/.test(e.message) && /24/.test(e.message));
  await assert.rejects(compute({ corrupted: 'Lily gave the ball to Samantha. Then Samantha gave it back to' }),
    (e: unknown) => e instanceof UsageError && /corrupted prompt/.test(e.message) && /has 32 tokens but the clean prompt has 24/.test(e.message) && /same number of tokens/.test(e.message));
  await assert.rejects(compute({ corrupted: CORRUPT, grids: ['mlp'] }), (e: unknown) => e instanceof UsageError && /grids\[0\]/.test(e.message));
  await assert.rejects(compute({ corrupted: CORRUPT, target: 'Tom', foil: 'Tom' }), (e: unknown) => e instanceof UsageError && /same token/.test(e.message));
});
