// The logit-lens cell's compute (src/app/compute.ts) against a real in-thread Engine on
// stories260K: a long lens answers its last positions first and shows them as the cell's preview
// (ctx.partial) only while the rest has rows left to compute, so a repeated or edited prompt, whose
// rows the engine keeps, draws once; the preview's rows are the whole answer's, and the whole answer
// is the engine's lens of every position.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { computeCell, LENS_PREVIEW, lensPreviewPositions } from '../../src/app/compute.ts';
import { parseNotebook } from '../../src/notebook/format.ts';
import type { ComputeContext } from '../../src/notebook/graph.ts';
import type { EngineClient } from '../../src/worker/client.ts';
import type { LogitLensQuery } from '../../src/engine/api.ts';
import type { LogitLensOutput } from '../../cells/plot/logit-lens.ts';
import { storiesApp } from '../support/stories-app.ts';

const PROMPT = 'Once upon a time there was a little girl named Lily. She liked to play in the park with her dog Max. One day they saw a big red ball.';
const nb = parseNotebook(`\`\`\`prompt\n${PROMPT}\n\`\`\`\n\n\`\`\`logit-lens\n\`\`\`\n`);
const cell = nb.cells.find((c) => c.kind === 'logit-lens')!;
const promptId = nb.cells.find((c) => c.kind === 'prompt')!.id;

/** Computes the lens cell through a client that records each lens request's positions. */
async function compute(settings: ComputeContext['settings'] = {}) {
  const { engine, info, runs } = await storiesApp();
  const asked: number[][] = [];
  const client = new Proxy(engine, {
    get(t, key, recv) {
      if (key === 'logitLens') {
        return (trace: unknown, q: LogitLensQuery, o: unknown) => { asked.push([...(q.positions ?? [])]); return t.logitLens(trace as never, q, o as never); };
      }
      const v = Reflect.get(t, key, recv);
      return typeof v === 'function' ? v.bind(t) : v;
    },
  }) as unknown as EngineClient;
  const partials: LogitLensOutput[] = [];
  const tok = await engine.tokenize(PROMPT);
  const ctx: ComputeContext = {
    cell, settings, signal: new AbortController().signal, upstream: new Map([[promptId, tok]]), inputs: new Map(), notebook: nb,
    partial: (o) => partials.push(o as LogitLensOutput),
  };
  const out = await computeCell(ctx, client, runs, info) as LogitLensOutput;
  await new Promise((r) => setTimeout(r, 0));
  return { out, asked, partials, nPos: tok.ids.length };
}

/** The rows of `o` at position p: ids and probabilities of every layer, top k each. */
function column(o: LogitLensOutput, p: number) {
  const j = o.positions.indexOf(p), P = o.positions.length, k = o.k;
  assert.ok(j >= 0, `position ${p} is in the output`);
  const ids: number[] = [], probs: number[] = [];
  for (let l = 0; l < o.layers.length; l++) {
    const r = l * P + j;
    ids.push(...o.ids.subarray(r * k, (r + 1) * k));
    probs.push(...o.probs.subarray(r * k, (r + 1) * k));
  }
  return { ids, probs };
}

/** Runs `fn` with LENS_PREVIEW changed, then puts it back. */
async function withPreview<T>(p: Partial<typeof LENS_PREVIEW>, fn: () => Promise<T>): Promise<T> {
  const was = { ...LENS_PREVIEW };
  Object.assign(LENS_PREVIEW, p);
  try { return await fn(); } finally { Object.assign(LENS_PREVIEW, was); }
}

test('when the preview pays: a lens of enough positions whose head costs enough multiply-adds', () => {
  const tiny = { nLayers: 22, vocabSize: 32000, dModel: 2048 };            // TinyLlama
  assert.equal(lensPreviewPositions(144, tiny), LENS_PREVIEW.positions);
  assert.equal(lensPreviewPositions(LENS_PREVIEW.minPositions - 1, tiny), 0, 'a short lens is answered at once');
  assert.equal(lensPreviewPositions(144, { nLayers: 6, vocabSize: 32000, dModel: 288 }), 0, 'stories15M: 9 G multiply-adds, under a second');
  assert.equal(lensPreviewPositions(1000, { nLayers: 5, vocabSize: 512, dModel: 64 }), 0, 'stories260K');
});

test('a small model\'s lens is one request and no preview', async () => {
  const { out, asked, partials, nPos } = await compute();
  assert.ok(nPos >= 32, `the prompt has ${nPos} tokens`);
  assert.equal(asked.length, 1);
  assert.equal(asked[0]!.length, nPos);
  assert.equal(partials.length, 0);
  assert.equal(out.positions.length, nPos);
});

test('a long lens shows its last positions first, with the rows of the whole answer; again, it draws once', async () => {
  const { engine } = await storiesApp();
  await withPreview({ positions: 4, minPositions: 8, minMacs: 0, minRows: 1 }, async () => {
    const target = { target: 'ball' };
    const first = await compute(target);
    const n = first.nPos;
    assert.deepEqual(first.asked, [[n - 4, n - 3, n - 2, n - 1], Array.from({ length: n }, (_, i) => i)]);
    assert.equal(first.partials.length, 1, 'one preview');
    const pre = first.partials[0]!;
    assert.deepEqual(pre.positions, [n - 4, n - 3, n - 2, n - 1]);
    assert.equal(pre.layers.length, first.out.layers.length);
    for (const p of pre.positions) assert.deepEqual(column(pre, p), column(first.out, p), `position ${p}`);
    assert.equal(pre.target?.id, first.out.target?.id);
    for (const id of pre.ids) assert.ok(pre.pieces.has(id), 'the preview carries its pieces');
    // the whole answer is the engine's own lens of every position
    const trace = await engine.run({ tokens: (await engine.tokenize(PROMPT)).ids, slot: 'lens-check', capture: ['hook_embed', 'blocks.*.hook_resid_post'] });
    const want = await engine.logitLens(trace, { layers: first.out.layers, positions: first.out.positions, k: 5, target: first.out.target!.id });
    assert.deepEqual([...first.out.ids], [...want.ids]);
    assert.deepEqual([...first.out.probs], [...want.probs]);
    assert.deepEqual([...first.out.targetRanks!], [...want.targetRanks!]);

    // the same lens again: every row is kept, so nothing is left to compute and nothing is previewed
    const again = await compute(target);
    assert.equal(again.asked.length, 2);
    assert.equal(again.partials.length, 0);
    assert.deepEqual([...again.out.ids], [...first.out.ids]);

    // another target: every row is new, so the preview shows again
    const other = await compute({ target: 'dog' });
    assert.equal(other.partials.length, 1);
    assert.notEqual(other.partials[0]!.target?.id, first.out.target?.id);
  });
});

test('a lens limited to its last positions counts only those', async () => {
  await withPreview({ positions: 4, minPositions: 8, minMacs: 0, minRows: 1 }, async () => {
    const few = await compute({ positions: 6, target: 'park' });
    assert.equal(few.asked.length, 1, '6 positions: under minPositions, one request');
    assert.equal(few.out.positions.length, 6);
    assert.equal(few.partials.length, 0);
  });
});
