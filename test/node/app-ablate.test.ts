// The ablate cell's compute (src/app/compute.ts) against a real in-thread Engine on stories260K:
// knocking out nothing gives the clean row bit for bit (and equals a run with an empty edit
// list); zeroing a head changes the row; the computed rows equal engine runs with the same edits
// written by hand; zeroing a head's z equals removing its attn.hook_result term; bad settings
// fail with a UsageError naming the setting.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/engine/api.ts';
import { UsageError } from '../../src/engine/errors.ts';
import { computeCell } from '../../src/app/compute.ts';
import { parseNotebook } from '../../src/notebook/format.ts';
import type { ComputeContext } from '../../src/notebook/graph.ts';
import type { EngineClient } from '../../src/worker/client.ts';
import { ablateModel, klDivergence, type AblateOutput } from '../../cells/plot/ablate.ts';
import { storiesApp } from '../support/stories-app.ts';


const setup = storiesApp;

const PROMPT = [1, 403, 407, 261, 378];   // BOS "Once upon a time"
const nb = parseNotebook('```prompt\nOnce upon a time\n```\n\n```ablate\n```\n');
const cell = nb.cells.find((c) => c.kind === 'ablate')!;

async function compute(settings: ComputeContext['settings']): Promise<AblateOutput> {
  const { engine, info, runs } = await setup();
  const tok = { text: 'Once upon a time', ids: PROMPT, pieces: PROMPT.map(String), spans: PROMPT.map(() => [0, 0] as [number, number]) };
  const ctx: ComputeContext = {
    cell, settings, signal: new AbortController().signal, upstream: new Map([['prompt-1', tok]]), inputs: new Map(), notebook: nb,
  };
  return await computeCell(ctx, engine as unknown as EngineClient, runs, info) as AblateOutput;
}

async function engineRow(edits: Parameters<Engine['run']>[0]['edits'], slot: string): Promise<Float32Array> {
  const { engine } = await setup();
  const h = await engine.run({ tokens: PROMPT, ...(edits ? { edits } : {}), slot });
  return (await engine.logits(h, { position: PROMPT.length - 1 })).data;
}

test('stories260K has the shape these tests assume', async () => {
  const { info } = await setup();
  assert.equal(info.config.nLayers, 5);
  assert.equal(info.config.nHeads, 8);
  assert.ok(info.config.dFfn > 20);
});

test('ablating nothing gives the clean row bit for bit', async () => {
  const o = await compute({});
  const plain = await engineRow(undefined, 'test:plain');
  const empty = await engineRow([], 'test:empty');
  assert.deepEqual(o.clean, plain);
  assert.deepEqual(o.ablated, o.clean);
  assert.deepEqual(empty, plain, 'a run with an empty edit list is the plain forward pass');
  assert.deepEqual(o.knocked, []);
  const m = ablateModel(o);
  assert.equal(m.same, true);
  assert.equal(m.kl, 0);
});

test('zeroing a head changes the row; the computed rows equal engine runs with the same edits', async () => {
  const o = await compute({ heads: ['1.3'], target: ' there' });
  assert.deepEqual(o.edits, [{ hook: 'blocks.1.attn.hook_z', op: 'zero', heads: [3] }]);
  assert.deepEqual(o.knocked, ['head 1.3']);
  const clean = await engineRow(undefined, 'test:plain');
  const byHand = await engineRow([{ hook: 'blocks.1.attn.hook_z', op: 'zero', heads: [3] }], 'test:head');
  assert.deepEqual(o.clean, clean);
  assert.deepEqual(o.ablated, byHand, 'the ablated row is the engine\'s with the same edit');
  let changed = 0;
  for (let i = 0; i < clean.length; i++) if (o.ablated[i] !== clean[i]) changed++;
  assert.ok(changed > clean.length / 2, `zeroing head 1.3 changed ${changed} of ${clean.length} logits`);
  const m = ablateModel(o);
  assert.ok(m.kl > 0);
  assert.equal(m.kl, klDivergence(clean, byHand));
  // the target's numbers are the rows' own
  assert.ok(o.target && o.target.id >= 0);
  assert.equal(m.target!.logitClean, clean[o.target.id]);
  assert.equal(m.target!.logitAblated, byHand[o.target.id]);
  // independent of how the head is removed: zeroing its z equals zeroing its result term
  const viaResult = await engineRow([{ hook: 'blocks.1.attn.hook_result', op: 'zero', heads: [3] }], 'test:result');
  let worst = 0;
  for (let i = 0; i < clean.length; i++) worst = Math.max(worst, Math.abs(viaResult[i]! - byHand[i]!));
  assert.ok(worst < 1e-4, `z vs result ablation differ by ${worst}`);
});

test('heads, neurons and layers together equal the engine run with the edits written by hand', async () => {
  const o = await compute({ heads: [0.1, '0.5', '4.7'], neurons: ['2.17'], layers: ['attn.3', 'ffn.1'] });
  const byHand = await engineRow([
    { hook: 'blocks.0.attn.hook_z', op: 'zero', heads: [1, 5] },
    { hook: 'blocks.4.attn.hook_z', op: 'zero', heads: [7] },
    { hook: 'blocks.2.ffn.hook_act', op: 'zero', neurons: [17] },
    { hook: 'blocks.1.hook_ffn_out', op: 'zero' },
    { hook: 'blocks.3.hook_attn_out', op: 'zero' },
  ], 'test:mixed');
  assert.deepEqual(o.ablated, byHand);
  assert.deepEqual(o.knocked, ['head 0.1', 'head 0.5', 'head 4.7', 'neuron 2.17', 'ffn 1', 'attn 3']);
  // the shared clean trace was not disturbed by the ablation runs
  assert.deepEqual(o.clean, await engineRow(undefined, 'test:plain2'));
});

test('out-of-range settings fail naming the setting', async () => {
  await assert.rejects(compute({ heads: ['1.8'] }), (e: unknown) => e instanceof UsageError && /ablate: heads\[0\].*head 8.*0 to 7/.test(e.message));
  await assert.rejects(compute({ layers: ['ffn.5'] }), (e: unknown) => e instanceof UsageError && /ablate: layers\[0\].*layer 5/.test(e.message));
  const { info } = await setup();
  await assert.rejects(compute({ neurons: [`0.${info.config.dFfn}`] }), (e: unknown) => e instanceof UsageError && /ablate: neurons\[0\]/.test(e.message));
});

test('mean ablation replaces the unit by its mean over the prompt (BOS left out), as a hand-made engine run does', async () => {
  const { engine } = await setup();
  const o = await compute({ heads: ['1.3'], neurons: ['2.17'], mode: 'mean' });
  assert.equal(o.mode, 'mean');
  // the means by hand, from a clean run's captures: positions 1..4 (position 0 is BOS)
  const h = await engine.run({ tokens: PROMPT, slot: 'test:mean-ref', capture: ['blocks.1.attn.hook_z', 'blocks.2.ffn.hook_act'] });
  const meanOf = async (name: string) => {
    const a = await engine.activation(h, name);
    const w = a.data.length / PROMPT.length, m = new Float32Array(w);
    for (let i = 0; i < w; i++) {
      let s = 0;
      for (let p = 1; p < PROMPT.length; p++) s += a.data[p * w + i]!;
      m[i] = s / (PROMPT.length - 1);
    }
    return m;
  };
  const zMean = await meanOf('blocks.1.attn.hook_z'), actMean = await meanOf('blocks.2.ffn.hook_act');
  const byHand = await engineRow([
    { hook: 'blocks.1.attn.hook_z', op: 'mean', heads: [3], vector: zMean },
    { hook: 'blocks.2.ffn.hook_act', op: 'mean', neurons: [17], vector: actMean },
  ], 'test:mean');
  assert.deepEqual(o.ablated, byHand);
  // it differs from the zero ablation of the same units, and from the clean row
  const zero = await compute({ heads: ['1.3'], neurons: ['2.17'] });
  assert.notDeepEqual(o.ablated, zero.ablated);
  assert.notDeepEqual(o.ablated, o.clean);
  assert.ok(klDivergence(o.clean, o.ablated) > 0);
});
