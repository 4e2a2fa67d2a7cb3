// The steer cell's compute (src/app/compute.ts → src/app/steer.ts) against a real in-thread Engine
// on stories260K: the vector equals a mean difference computed here by hand from the engine's
// activations; both generations equal hand-written greedy loops of engine.run (plain, and with the
// steer edits written out); strength 0 gives the plain generation token for token; a vector saved
// as a control-vector GGUF and loaded back through the `vector` setting gives identical tokens and
// logits; a file of the wrong dimension fails naming the file and tensor; bad settings fail naming
// the setting. Also steeringVector's reductions ('mean' without BOS, 'last') and the fixture.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine } from '../../src/engine/api.ts';
import { CancelledError, ModelFormatError, UsageError } from '../../src/engine/errors.ts';
import type { Edit } from '../../src/engine/edits.ts';
import { readControlVector, writeControlVector } from '../../src/engine/control-vector.ts';
import { steerEdits, steeringVector } from '../../src/engine/steering.ts';
import { bytesSource } from '../../src/formats/source.ts';
import { computeCell } from '../../src/app/compute.ts';
import { fromBase64, MAX_VECTOR_BYTES, steerOutput, toBase64, vectorFile } from '../../src/app/steer.ts';
import { parseNotebook } from '../../src/notebook/format.ts';
import { cellKinds, validateSettings } from '../../src/notebook/registry.ts';
import type { ComputeContext } from '../../src/notebook/graph.ts';
import type { EngineClient } from '../../src/worker/client.ts';
import type { SteerOutput } from '../../cells/plot/steer.ts';
import { storiesApp } from '../support/stories-app.ts';

const root = resolve(fileURLToPath(import.meta.url), '../../..');

const setup = storiesApp;

const PROMPT_TEXT = 'Once upon a time there was a little girl named Lily. One day';
const HAPPY = 'Lily was happy and smiled', SAD = 'Lily was sad and cried';
const nb = parseNotebook('```prompt\nx\n```\n\n```steer\n```\n');
const cell = nb.cells.find((c) => c.kind === 'steer')!;
const BASE = { positive: [HAPPY], negative: [SAD], layers: '1-3', strength: 4, tokens: 12 };

async function compute(settings: Record<string, unknown>): Promise<SteerOutput> {
  const { engine, info, runs } = await setup();
  const tok = await engine.tokenize(PROMPT_TEXT);
  const ctx: ComputeContext = {
    cell, settings: settings as ComputeContext['settings'], signal: new AbortController().signal, upstream: new Map([['prompt-1', tok]]), inputs: new Map(), notebook: nb,
  };
  return await computeCell(ctx, engine as unknown as EngineClient, runs, info) as SteerOutput;
}

/** The mean over positions 1.. (BOS left out) of a prompt's hook_resid_post at `layer`, by hand. */
async function rowByHand(text: string, layer: number): Promise<Float64Array> {
  const { engine, info } = await setup();
  const ids = (await engine.tokenize(text)).ids;
  assert.equal(ids[0], info.tokenizer!.bosId, 'the prompt starts with BOS');
  const h = await engine.run({ tokens: ids, capture: `blocks.${layer}.hook_resid_post`, slot: 'test:vec' });
  const x = (await engine.activation(h, `blocks.${layer}.hook_resid_post`)).data;
  const d = info.config.dModel, out = new Float64Array(d);
  for (let p = 1; p < ids.length; p++) for (let j = 0; j < d; j++) out[j]! += x[p * d + j]!;
  return out.map((v) => v / (ids.length - 1));
}

/** A greedy loop written out: run, last logits row, argmax (lowest id on ties), until N or EOS. */
async function greedyByHand(edits: Edit[] | undefined, n: number, slot: string): Promise<{ ids: number[]; rows: Float32Array[] }> {
  const { engine, info } = await setup();
  const tokens = [...(await engine.tokenize(PROMPT_TEXT)).ids];
  const start = tokens.length, rows: Float32Array[] = [];
  for (let i = 0; i < n; i++) {
    const h = await engine.run({ tokens, slot, ...(edits ? { edits } : {}) });
    const row = (await engine.logits(h, { position: tokens.length - 1 })).data;
    let best = 0;
    for (let j = 1; j < row.length; j++) if (row[j]! > row[best]!) best = j;
    if (best === info.config.eosId) break;
    rows.push(row);
    tokens.push(best);
  }
  return { ids: tokens.slice(start), rows };
}

const logSoftmaxAt = (row: Float32Array, id: number) => {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let s = 0;
  for (const v of row) s += Math.exp(v - max);
  return row[id]! - max - Math.log(s);
};

test('the fixture notebook parses, and its steer cell validates against the schema', () => {
  const text = readFileSync(resolve(root, 'test/fixtures/notebooks/steer.md'), 'utf8');
  const book = parseNotebook(text);
  const c = book.cells.find((x) => x.kind === 'steer')!;
  assert.deepEqual(c.settings, { positive: [HAPPY], negative: [SAD], layers: '1-3', strength: 0.5, tokens: 24 });
  assert.deepEqual(validateSettings(cellKinds.get('steer')!, c.settings, { config: { nLayers: 5, nHeads: 8, nCtx: 512, vocabSize: 512 } }), []);
  const bad = validateSettings(cellKinds.get('steer')!, { strength: 11, tokens: 300, layers: [7] }, { config: { nLayers: 5, nHeads: 8, nCtx: 512, vocabSize: 512 } });
  assert.deepEqual(bad.map((p) => p.key).sort(), ['layers', 'strength', 'tokens']);
});

test('the vector is the mean difference of the hand-computed rows; both generations equal hand-written loops', async () => {
  const { info } = await setup();
  const o = await compute(BASE);
  assert.deepEqual(o.layers, [1, 2, 3]);
  assert.deepEqual([...o.directions.keys()], [0, 1, 2, 3, 4], 'a direction per layer; `layers` picks those applied');
  for (const l of [0, 2, 4]) {
    const a = await rowByHand(HAPPY, l), b = await rowByHand(SAD, l);
    const want = Float32Array.from(a, (v, j) => Math.fround(v) - Math.fround(b[j]!));
    const got = o.directions.get(l)!;
    let worst = 0;
    for (let j = 0; j < want.length; j++) worst = Math.max(worst, Math.abs(got[j]! - want[j]!));
    assert.ok(worst < 1e-6, `layer ${l}: ${worst}`);
  }
  const edits: Edit[] = [1, 2, 3].map((l) => ({ hook: `blocks.${l}.hook_resid_post`, op: 'steer', vector: o.directions.get(l)!, strength: 4 }));
  const plain = await greedyByHand(undefined, 12, 'test:plain');
  const steered = await greedyByHand(edits, 12, 'test:steered');
  assert.deepEqual(o.plain.ids, plain.ids);
  assert.deepEqual(o.steered.ids, steered.ids);
  assert.notDeepEqual(o.plain.ids, o.steered.ids, 'strength 4 on layers 1-3 changes the story');
  assert.equal(o.plain.ids.length, 12);
  // per-step log p of the chosen token under its own run, and the top probability
  o.steered.ids.forEach((id, i) => {
    assert.ok(Math.abs(o.steered.logp[i]! - logSoftmaxAt(steered.rows[i]!, id)) < 1e-9);
    assert.ok(Math.abs(o.steered.top[i]! - Math.exp(o.steered.logp[i]!)) < 1e-9, 'greedy: the chosen token is the top one');
  });
  // cross: the plain prefixes under the steered model (KL > 0 where the vector acts)
  assert.equal(o.cross.kl.length, o.plain.ids.length);
  assert.ok(o.cross.kl.every((k) => k >= 0) && o.cross.kl.some((k) => k > 1e-3));
  const { engine } = await setup();
  const prompt = (await engine.tokenize(PROMPT_TEXT)).ids;
  const hq = await engine.run({ tokens: [...prompt, ...o.plain.ids.slice(0, 3)], edits, slot: 'test:cross' });
  const q3 = (await engine.logits(hq, {})).data;
  assert.ok(Math.abs(o.cross.logp[3]! - logSoftmaxAt(q3, o.plain.ids[3]!)) < 1e-4);
  // texts: the decoded tokens, in order
  assert.equal(o.plain.texts.join(''), await engine.decode(o.plain.ids, { stripLeadingSpace: false }));
  assert.equal(o.nLayers, info.config.nLayers);
});

test('strength 0 gives the plain generation token for token', async () => {
  const o = await compute({ ...BASE, strength: 0 });
  assert.deepEqual(o.steered.ids, o.plain.ids);
  assert.deepEqual(o.steered.logp, o.plain.logp);
  assert.ok(o.cross.kl.every((k) => k === 0), `KL ${o.cross.kl}`);
});

test('a vector saved as a control-vector GGUF and loaded through `vector` gives identical tokens and logits', async () => {
  const { engine, info } = await setup();
  const o = await compute(BASE);
  const bytes = vectorFile(o);
  const cv = await readControlVector(bytesSource(bytes, 'happy.gguf'), info.config);
  assert.deepEqual([...cv.directions.keys()], [1, 2, 3], 'the applied layers are saved');
  const b64 = toBase64(bytes);
  assert.deepEqual(fromBase64(b64, 'x'), bytes);
  const back = await compute({ strength: 4, tokens: 12, vector: b64, vector_file: 'happy.gguf' });
  assert.deepEqual(back.source, { kind: 'file', name: 'happy.gguf' });
  assert.deepEqual(back.layers, [1, 2, 3]);
  for (const l of [1, 2, 3]) assert.deepEqual(back.directions.get(l), o.directions.get(l));
  assert.deepEqual(back.steered.ids, o.steered.ids);
  assert.deepEqual(back.steered.logp, o.steered.logp);
  assert.deepEqual(back.cross, o.cross);
  // the logits of the whole steered sequence, bit for bit
  const prompt = (await engine.tokenize(PROMPT_TEXT)).ids;
  const seq = [...prompt, ...o.steered.ids];
  const mem = await engine.run({ tokens: seq, edits: steerEdits(o.directions, 4, o.layers), logits: 'all', slot: 'test:mem' });
  const memRows = (await engine.logits(mem, { position: 3 })).data;
  const disk = await engine.run({ tokens: seq, edits: steerEdits(cv.directions, 4), logits: 'all', slot: 'test:disk' });
  assert.deepEqual((await engine.logits(disk, { position: 3 })).data, memRows);
  assert.deepEqual((await engine.logits(disk, {})).data, (await engine.logits(mem, {})).data);
  // `layers` picks among the file's layers; none of them: a clear error
  const two = await compute({ strength: 4, tokens: 4, vector: b64, vector_file: 'happy.gguf', layers: '2' });
  assert.deepEqual(two.layers, [2]);
  await assert.rejects(compute({ strength: 4, tokens: 4, vector: b64, vector_file: 'happy.gguf', layers: '4' }),
    (e: unknown) => e instanceof UsageError && /steer: layers: 4: happy\.gguf has directions for layers 1–3 only/.test(e.message));
});

test('a control vector of the wrong dimension is refused, naming the file and tensor', async () => {
  const big = writeControlVector({ modelHint: 'llama', dModel: 288, directions: new Map([[1, new Float32Array(288).fill(0.5)]]) });
  await assert.rejects(compute({ vector: toBase64(big), vector_file: 'big.gguf' }),
    (e: unknown) => e instanceof ModelFormatError && /big\.gguf tensor direction\.1: has 288 floats but the model's d_model is 64/.test(e.message));
  await assert.rejects(compute({ vector: 'not base64!', vector_file: 'x.gguf' }), /steer: vector \(x\.gguf\): is not base64/);
  const huge = 'A'.repeat(Math.ceil((MAX_VECTOR_BYTES + 4) / 3) * 4);
  await assert.rejects(compute({ vector: huge, vector_file: 'huge.gguf' }), /steer: vector \(huge\.gguf\): holds a file of 8 MiB; at most 8 MiB/);
});

test('bad settings fail naming the setting', async () => {
  await assert.rejects(compute({ positive: [HAPPY] }), (e: unknown) => e instanceof UsageError && /steer: negative: holds no prompt/.test(e.message));
  await assert.rejects(compute({ ...BASE, layers: '2-9' }), (e: unknown) => e instanceof UsageError && /steer: layers: "2-9": layer 5 is past the model's 5 layers/.test(e.message));
  await assert.rejects(compute({ ...BASE, tokens: 0 }), /steer: tokens/);
  const o = await compute({ ...BASE, layers: '0-1', tokens: 2 });
  assert.throws(() => vectorFile(o), /layer 0 cannot be saved/);
});

test('the two generations\' tokens are the cell\'s progress: 1 .. n for the plain run, then n + 1 .. 2n', async () => {
  const { engine, info } = await setup();
  const tok = await engine.tokenize(PROMPT_TEXT);
  const seen: string[] = [];
  const o = await steerOutput(engine, info, { id: 'p', tok }, BASE, 'progress', undefined, (done, total, what) => seen.push(`${done}/${total} ${what}`));
  const n = BASE.tokens, a = o.plain.ids.length, b = o.steered.ids.length;
  assert.deepEqual(seen, [...Array.from({ length: a }, (_, i) => `${i + 1}/${2 * n} tokens`), ...Array.from({ length: b }, (_, i) => `${n + i + 1}/${2 * n} tokens`)]);
  assert.ok(a > 0 && b > 0);
});

test('the signal stops the generation between steps', async () => {
  const { engine, info } = await setup();
  const tok = await engine.tokenize(PROMPT_TEXT);
  await compute(BASE);                       // the vector is cached: only generation runs below
  const c = new AbortController();
  let runs = 0;
  const client = Object.create(engine) as Engine;
  client.run = async (req, opts) => {
    if (++runs === 5) c.abort(new Error('a newer edit'));
    return engine.run(req, opts);
  };
  await assert.rejects(steerOutput(client, info, { id: 'p', tok }, BASE, 'cancel', c.signal), (e: unknown) => e instanceof CancelledError || /a newer edit/.test(String(e)));
  assert.ok(runs <= 6, `${runs} runs after the abort at the 5th`);
});

test('a prompt edit reruns every run of the cell from the first changed token only (each run keeps its own lane)', async () => {
  const { engine, info } = await setup();
  const [a, b] = await Promise.all([engine.tokenize(PROMPT_TEXT), engine.tokenize(`${PROMPT_TEXT} she`)]);
  let common = 0;
  while (common < a.ids.length && a.ids[common] === b.ids[common]) common++;
  assert.ok(common > 5, `the edited prompt keeps ${common} tokens`);
  const runs: { slot: string; reused: number }[] = [];
  const client = Object.create(engine) as Engine;
  client.run = async (req, opts) => {
    const h = await engine.run(req, opts);
    runs.push({ slot: req.slot ?? 'default', reused: h.reused });
    return h;
  };
  await steerOutput(client, info, { id: 'p', tok: a }, BASE, 'lanes');
  runs.length = 0;
  await steerOutput(client, info, { id: 'p', tok: b }, BASE, 'lanes');
  assert.ok(runs.length >= 4, `${runs.length} runs`);
  for (const r of runs) assert.ok(r.reused >= common, `${r.slot} reused ${r.reused} of the ${common} unchanged positions`);
});

test('steeringVector: the mean skips BOS, `last` takes the last row, the signal cancels', async () => {
  const { engine, info } = await setup();
  const a = (await engine.tokenize(HAPPY)).ids, b = (await engine.tokenize(SAD)).ids;
  const last = await steeringVector(engine, { positive: [a], negative: [b], layers: [2], reduce: 'last' });
  const row = async (ids: number[]) => {
    const h = await engine.run({ tokens: ids, capture: 'blocks.2.hook_resid_post', slot: 'test:last' });
    const x = (await engine.activation(h, 'blocks.2.hook_resid_post')).data, d = info.config.dModel;
    return x.subarray((ids.length - 1) * d, ids.length * d);
  };
  const ra = await row(a), rb = await row(b);
  assert.deepEqual(last.get(2), Float32Array.from(ra, (v, j) => v - rb[j]!));
  // with BOS counted, the mean moves (BOS's row is far from the others')
  const withBos = await steeringVector(engine, { positive: [a], negative: [b], layers: [2] });
  const noBosId = await steeringVector(engine, { positive: [a], negative: [b], layers: [2], bosId: info.tokenizer!.bosId });
  assert.notDeepEqual(withBos.get(2), noBosId.get(2));
  const c = new AbortController();
  c.abort(new Error('stop'));
  await assert.rejects(steeringVector(engine, { positive: [a], negative: [b], layers: [2], signal: c.signal }), /stop/);
  await assert.rejects(steeringVector(engine, { positive: [], negative: [b], layers: [2] }), /steeringVector positive: holds no prompts/);
  assert.equal(steerEdits(last, 2).length, 1);
  assert.deepEqual(steerEdits(last, 2)[0], { hook: 'blocks.2.hook_resid_post', op: 'steer', vector: last.get(2), strength: 2, positions: 'all' });
});
