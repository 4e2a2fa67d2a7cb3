// PromptRuns (src/app/runs.ts) with a stand-in engine client that records the runs it is asked
// for: cells asking together share one run; a cell's view change over the same tokens keeps the
// hooks every other cell needs, and those asked for before only within KEPT_BYTES, most recent
// first, so that flipping through the layers of a long prompt does not pile captures up toward
// the engine's limit (before, every hook ever asked stayed in every later run of the tokens); and
// cells that each fit under the limit but not together: the one that does not fit fails alone.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PromptRuns, KEPT_BYTES, type Need } from '../../src/app/runs.ts';
import type { EngineClient } from '../../src/worker/client.ts';
import type { RunRequest, TraceHandle } from '../../src/engine/api.ts';

function fakeClient() {
  const runs: RunRequest[] = [];
  const client = {
    async run(req: RunRequest): Promise<TraceHandle> {
      runs.push(req);
      return { id: `t${runs.length}`, requestId: `r${runs.length}`, slot: req.slot ?? 'default', tokens: [...req.tokens], nPos: req.tokens.length,
        hooks: [...(req.capture as string[])], logitsStart: req.tokens.length - 1, backend: 'cpu', reused: 0, ms: 1, edits: [] };
    },
  } as unknown as EngineClient;
  return { client, runs };
}

const MiB = 2 ** 20;
/** Every pattern layer takes 100 MiB here, the residual 10 MiB. */
const asker = (cell: string) => ({ cell, bytes: (h: string) => (h.includes('pattern') ? 100 * MiB : 10 * MiB) });
const pattern = (l: number) => `blocks.${l}.attn.hook_pattern`;
const signal = new AbortController().signal;

test('a layer flip keeps what the other cells need, and earlier layers only within KEPT_BYTES, most recent first', async () => {
  assert.equal(KEPT_BYTES, 256 * MiB, 'the sizes below assume it');
  const { client, runs } = fakeClient();
  const pr = new PromptRuns(() => client);
  const tokens = [1, 2, 3];
  const resid: Need = { capture: ['blocks.*.hook_resid_post'] };
  // both cells ask together: one run
  await Promise.all([pr.trace('p', tokens, { capture: [pattern(0)] }, signal, asker('att')), pr.trace('p', tokens, resid, signal, asker('lens'))]);
  assert.equal(runs.length, 1);
  assert.deepEqual(new Set(runs[0]!.capture as string[]), new Set([pattern(0), 'blocks.*.hook_resid_post']));
  // the attention cell flips through layers 1 .. 5
  for (let l = 1; l <= 5; l++) await pr.trace('p', tokens, { capture: [pattern(l)] }, signal, asker('att'));
  assert.equal(runs.length, 6);
  // the last run: layer 5 and the lens's residual (needed now), then layers 4 and 3 (200 MiB of the 256 kept)
  assert.deepEqual(new Set(runs[5]!.capture as string[]), new Set([pattern(5), 'blocks.*.hook_resid_post', pattern(4), pattern(3)]));
  // flipping back to a kept layer runs nothing; to a dropped one runs again
  await pr.trace('p', tokens, { capture: [pattern(4)] }, signal, asker('att'));
  assert.equal(runs.length, 6, 'layer 4 was kept');
  await pr.trace('p', tokens, { capture: [pattern(0)] }, signal, asker('att'));
  assert.equal(runs.length, 7, 'layer 0 was not');
  assert.deepEqual(new Set(runs[6]!.capture as string[]), new Set([pattern(0), 'blocks.*.hook_resid_post', pattern(4), pattern(5)]));
  // the lens cell's residual is in every run: it needs it now
  for (const r of runs) assert.ok((r.capture as string[]).includes('blocks.*.hook_resid_post'));
});

test('new tokens start from what the cells ask for them: a cell that no longer asks is not kept', async () => {
  const { client, runs } = fakeClient();
  const pr = new PromptRuns(() => client);
  await Promise.all([pr.trace('p', [1, 2], { capture: [pattern(0)] }, signal, asker('att')), pr.trace('p', [1, 2], { capture: ['hook_embed'] }, signal, asker('gone'))]);
  // the prompt is edited; only the attention cell is still in the notebook
  await pr.trace('p', [1, 2, 3], { capture: [pattern(0)] }, signal, asker('att'));
  await pr.trace('p', [1, 2, 3], { capture: [pattern(1)] }, signal, asker('att'));
  assert.deepEqual(runs.map((r) => new Set(r.capture as string[])), [
    new Set([pattern(0), 'hook_embed']), new Set([pattern(0)]), new Set([pattern(1), pattern(0)]),
  ]);
});

test('cells that each fit but not together: the one that does not fit beside those before it fails alone, with a message', async () => {
  const { client, runs } = fakeClient();
  const pr = new PromptRuns(() => client);
  const GiB = 2 ** 30;
  const size: Record<string, number> = { [pattern(3)]: 1.1 * GiB, 'blocks.*.hook_resid_post': 0.55 * GiB, 'blocks.*.hook_resid_pre': 0.5 * GiB, 'blocks.0.hook_resid_pre': 0.01 * GiB };
  const big = (cell: string) => ({ cell, bytes: (h: string) => size[h]! });
  const tokens = [5, 6, 7];
  const [att, lens, acts] = await Promise.allSettled([
    pr.trace('p', tokens, { capture: [pattern(3)] }, signal, big('att')),
    pr.trace('p', tokens, { capture: ['blocks.*.hook_resid_post'] }, signal, big('lens')),
    pr.trace('p', tokens, { capture: ['blocks.*.hook_resid_pre'] }, signal, big('acts')),
  ]);
  assert.equal(runs.length, 1, 'one run for the two that fit');
  assert.deepEqual(new Set(runs[0]!.capture as string[]), new Set([pattern(3), 'blocks.*.hook_resid_post']));
  assert.equal(att.status, 'fulfilled');
  assert.equal(lens.status, 'fulfilled');
  assert.equal(acts.status, 'rejected');
  const e = (acts as PromiseRejectedResult).reason as Error;
  assert.equal(e.name, 'UsageError');
  assert.match(e.message, /this cell records 512\.0 MiB of activations and the other cells reading its prompt 1\.65 GiB: together more than the 2\.00 GiB one run of the model may record/);
  assert.match(e.message, /fewer layers or hooks/);
  // the activations cell, asking for less, gets a run that also keeps what the others need now
  await pr.trace('p', tokens, { capture: ['blocks.0.hook_resid_pre'] }, signal, big('acts'));
  assert.deepEqual(new Set(runs[1]!.capture as string[]), new Set(['blocks.0.hook_resid_pre', pattern(3), 'blocks.*.hook_resid_post']));
});
