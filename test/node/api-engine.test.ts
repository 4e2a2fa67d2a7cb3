// The in-thread Engine (src/engine/api.ts), the interface Node and the worker share: loading,
// tokenizing, runs and their slices against a full capture of an independent Session, the logit
// lens against the model's own logits and a hand computation, slots and release, cancellation
// mid-run, and memory over 200 prompt edits. stories260K (../shared/models) and random models.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Engine } from '../../src/engine/api.ts';
import { Session } from '../../src/engine/session.ts';
import { CancelledError, UsageError } from '../../src/engine/errors.ts';
import { openModel } from '../../src/formats/open.ts';
import { bytesSource } from '../../src/formats/source.ts';
import { loadModelWeights } from '../../src/engine/weights.ts';
import { createTokenizer } from '../../src/tokenizer/tokenizer.ts';
import { synthModel, shapeConfig } from '../../src/formats/synth.ts';
import { hookNames } from '../../src/engine/hooks.ts';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
const storiesPath = resolve(root, '../shared/models/tinystories-260k/stories260K.gguf');
const storiesBytes = readFileSync(storiesPath);
const ref = JSON.parse(readFileSync(resolve(root, '../shared/models/tinystories-260k/stories260K_greedy_ref.json'), 'utf8')) as {
  token_ids: number[]; first_16_steps_top5_logits: { pos: number; input: number; top5: [number, number][] }[];
};
const storiesFile = () => new File([storiesBytes], 'stories260K.gguf');

/** The independent reference: the same model through a plain Session, everything captured. */
async function reference(tokens: number[]) {
  const model = await openModel([bytesSource(new Uint8Array(storiesBytes), 'stories260K.gguf')]);
  const weights = await loadModelWeights(model);
  const full = new Session(weights).run(tokens, { capture: '**', logits: 'all' });
  return { weights, full, tokenizer: createTokenizer(model.tokenizer!) };
}

const tokens = ref.token_ids.slice(0, 40);

test('load reports the model; tokenize and decode agree with the tokenizer', async () => {
  const engine = new Engine();
  const steps: string[] = [];
  const info = await engine.load({ kind: 'files', files: [storiesFile()] }, { onProgress: (p) => steps.push(p.stage) });
  assert.equal(info.config.nLayers, 5);
  assert.equal(info.config.dModel, 64);
  assert.equal(info.backend, 'cpu');
  assert.equal(info.summary.format, 'gguf');
  assert.equal(info.parameterCount, info.summary.parameters);
  assert.deepEqual(info.tokenizer, { kind: 'spm', vocabSize: 512, bosId: 1, eosId: 2, addBos: true, chatTemplate: false, eogIds: [2] });
  assert.ok(steps.includes('weights') && steps.at(-1) === 'backend', `progress stages ${steps}`);

  const { tokenizer } = await reference([1]);
  const text = 'Once upon a time, there was a little girl.';
  const t = await engine.tokenize(text);
  assert.deepEqual(t.ids, tokenizer.encode(text));
  assert.equal(t.ids[0], 1);
  assert.deepEqual(t.pieces, t.ids.map((id) => tokenizer.piece(id)));
  assert.equal(t.spans.length, t.ids.length);
  assert.equal(text.slice(...t.spans[2]!).trim(), tokenizer.decode([t.ids[2]!]).trim());
  assert.deepEqual((await engine.tokenize(text, { bos: false })).ids, t.ids.slice(1));
  assert.equal(await engine.decode(t.ids, { skipSpecial: true }), text);
  await assert.rejects(engine.tokenize('hi', { chat: true }), /has no chat template/);
});

test('slices equal the corresponding parts of a full capture, bit for bit', async () => {
  const engine = new Engine();
  await engine.load({ kind: 'files', files: [storiesFile()] });
  const { full } = await reference(tokens);
  const n = tokens.length;
  const h = await engine.run({ tokens, capture: ['blocks.*.attn.hook_pattern', 'blocks.2.attn.hook_scores', 'blocks.*.hook_resid_post', 'hook_embed', 'blocks.1.ffn.hook_act'], logits: 'all', requestId: 'r1', slot: 'cell-1' });
  assert.equal(h.requestId, 'r1');
  assert.deepEqual(h.tokens, tokens);
  assert.equal(h.nPos, n);
  assert.equal(h.logitsStart, 0);
  assert.equal(h.hooks.length, 5 + 1 + 5 + 1 + 1);

  // one head, a window of queries and keys
  const pat = full.trace.get('blocks.3.attn.hook_pattern')!.data;            // [8, n, n]
  const a = await engine.attention(h, { layer: 3, head: 5, queries: [10, 30], keys: [2, 25] });
  assert.deepEqual(a.shape, [1, 20, 23]);
  assert.equal(a.traceId, h.id);
  assert.equal(a.requestId, 'r1');
  for (let q = 0; q < 20; q++) for (let k = 0; k < 23; k++) assert.equal(a.data[q * 23 + k], pat[(5 * n + 10 + q) * n + 2 + k]);
  // all heads of a layer: the whole [n_heads, n, n]
  const all = await engine.attention(h.id, { layer: 3 });
  assert.deepEqual(all.shape, [8, n, n]);
  assert.deepEqual(all.data, pat);
  // scores keep the −∞ mask
  const sc = await engine.attention(h, { layer: 2, which: 'scores', head: [0, 7] });
  const fullScores = full.trace.get('blocks.2.attn.hook_scores')!.data;
  assert.deepEqual(sc.data.subarray(n * n), fullScores.subarray(7 * n * n, 8 * n * n));
  assert.equal(sc.data[1], -Infinity);

  // an activation over a range of positions, by TransformerLens name too
  const act = await engine.activation(h, 'blocks.1.mlp.hook_post', { positions: [5, 9] });
  assert.equal(act.name, 'blocks.1.ffn.hook_act');
  assert.deepEqual(act.shape, [4, 172]);
  assert.deepEqual(act.data, full.trace.get('blocks.1.ffn.hook_act')!.data.slice(5 * 172, 9 * 172));
  const patRows = await engine.activation(h, 'blocks.0.attn.hook_pattern', { positions: [3, 4] });
  assert.deepEqual(patRows.shape, [8, 1, n]);

  // norms per position
  const norms = await engine.hookNorms(h, ['hook_embed', 'blocks.4.hook_resid_post']);
  const embed = full.trace.get('hook_embed')!.data;
  for (let p = 0; p < n; p++) {
    let ss = 0;
    for (let i = 0; i < 64; i++) ss += embed[p * 64 + i]! ** 2;
    assert.ok(Math.abs(norms.data[p]! - Math.sqrt(ss)) <= 1e-6 * Math.sqrt(ss), `norm at ${p}`);
  }

  // each slice holds only the bytes asked for, in a buffer of its own (transferable)
  assert.equal(a.data.buffer.byteLength, 20 * 23 * 4);
  assert.equal(act.data.buffer.byteLength, 4 * 172 * 4);

  // what was not captured is refused with what to capture
  await assert.rejects(engine.attention(h, { layer: 0, which: 'scores' }), (e: unknown) => e instanceof UsageError && /blocks\.0\.attn\.hook_scores/.test(e.message));
  await assert.rejects(engine.attention(h, { layer: 5 }), UsageError);
  await assert.rejects(engine.attention(h, { layer: 1, queries: [30, 50] }), UsageError);
});

test('topK equals the golden top-5 of stories260K, with softmax probabilities at a temperature', async () => {
  const engine = new Engine();
  await engine.load({ kind: 'files', files: [storiesFile()] });
  const steps = ref.first_16_steps_top5_logits;
  const h = await engine.run({ tokens: steps.map((s) => s.input), logits: 'all' });
  for (const step of steps) {
    const t = await engine.topK(h, { position: step.pos, k: 5 });
    assert.deepEqual([...t.ids], step.top5.map(([id]) => id), `position ${step.pos}`);
    step.top5.forEach(([, v], i) => assert.ok(Math.abs(t.logits[i]! - v) < 1e-4, `position ${step.pos} rank ${i}`));
  }
  // probabilities: an independent softmax of the full row at T = 0.7
  const { full } = await reference(steps.map((s) => s.input));
  const row = full.logits.subarray(3 * 512, 4 * 512);
  const z = [...row].reduce((s, v) => s + Math.exp((v - Math.max(...row)) / 0.7), 0);
  const t = await engine.topK(h, { position: 3, k: 20, temperature: 0.7 });
  t.ids.forEach((id, i) => assert.ok(Math.abs(t.probs[i]! - Math.exp((row[id]! - Math.max(...row)) / 0.7) / z) < 1e-6));
  // the whole row (k = vocabulary): sorted, lowest id first on ties, probabilities summing to 1
  const whole = await engine.topK(h, { position: 3, k: 512 });
  const order = [...row.keys()].sort((a, b) => row[b]! - row[a]! || a - b);
  assert.deepEqual([...whole.ids], order);
  assert.ok(Math.abs(whole.probs.reduce((s, p) => s + p, 0) - 1) < 1e-5);
  const greedy = await engine.topK(h, { position: 3, k: 3, temperature: 0 });
  assert.deepEqual([...greedy.probs], [1, 0, 0]);
  // a run that keeps only the last row answers there and refuses elsewhere
  const last = await engine.run({ tokens: steps.map((s) => s.input), slot: 'other' });
  assert.equal(last.logitsStart, 15);
  assert.deepEqual(await engine.topK(last, { k: 5 }).then((s) => [...s.ids]), steps[15]!.top5.map(([id]) => id));
  await assert.rejects(engine.topK(last, { position: 3 }), /logits: 'all'/);
});

test('logit lens: the last layer equals the model logits; other layers equal a hand computation', async () => {
  const engine = new Engine();
  await engine.load({ kind: 'files', files: [storiesFile()] });
  const { full, weights } = await reference(tokens);
  const n = tokens.length, V = 512, d = 64;
  const h = await engine.run({ tokens, capture: ['blocks.*.hook_resid_post', 'hook_embed'], logits: 'all' });
  const positions = [0, 7, 19, n - 1];
  const lens = await engine.logitLens(h, { positions, k: 8, target: 403 });
  assert.deepEqual([...lens.layers], [-1, 0, 1, 2, 3, 4]);
  const L = lens.layers.length, P = positions.length, k = 8;
  const logits = full.logits;                                                  // [n, vocab]
  // the last layer: exactly the model's own logits (same kernels, same numbers)
  positions.forEach((p, j) => {
    const o = ((L - 1) * P + j) * k;
    const row = logits.subarray(p * V, (p + 1) * V);
    const order = [...row.keys()].sort((a, b) => row[b]! - row[a]! || a - b).slice(0, k);
    assert.deepEqual([...lens.ids.subarray(o, o + k)], order, `position ${p}`);
    order.forEach((id, r) => assert.equal(lens.logits[o + r], row[id], `position ${p} rank ${r}`));
  });
  // the probabilities: the lens's head sums e^(v − max) with the kernels' lensRows (f32 lanes in
  // WebAssembly, the sum kept as an f32, as on the GPU), topK in f64: equal within 1e-6
  const top = await engine.topK(h, { position: 19, k: 8 });
  const lensProbs = lens.probs.subarray(((L - 1) * P + 2) * k, ((L - 1) * P + 3) * k);
  top.probs.forEach((p, r) => assert.ok(Math.abs(lensProbs[r]! - p) <= 1e-6 * p, `rank ${r}: ${lensProbs[r]} vs ${p}`));

  // layer 1 by hand: rms of the residual, the final norm weight, the tied embedding as unembedding
  const resid = full.trace.get('blocks.1.hook_resid_post')!.data;
  const E = new Float32Array(weights.embed.data.buffer, weights.embed.data.byteOffset, V * d);   // F32 [vocab, d]
  positions.forEach((p, j) => {
    const x = resid.subarray(p * d, (p + 1) * d);
    const rms = Math.sqrt(x.reduce((s, v) => s + v * v, 0) / d + weights.config.rmsEps);
    const xn = Array.from(x, (v, i) => (v / rms) * weights.finalNorm[i]!);
    const row = Array.from({ length: V }, (_, t) => xn.reduce((s, v, i) => s + v * E[t * d + i]!, 0));
    const max = Math.max(...row), z = row.reduce((s, v) => s + Math.exp(v - max), 0);
    const order = [...row.keys()].sort((a, b) => row[b]! - row[a]!).slice(0, k);
    const o = (2 * P + j) * k;                                                 // layers[2] = 1
    assert.deepEqual([...lens.ids.subarray(o, o + k)], order, `layer 1 position ${p}`);
    order.forEach((id, r) => assert.ok(Math.abs(lens.probs[o + r]! - Math.exp(row[id]! - max) / z) < 1e-5));
    const rank = row.filter((v) => v > row[403]!).length;
    assert.equal(lens.targetRanks![2 * P + j], rank);
    assert.ok(Math.abs(lens.targetProbs![2 * P + j]! - Math.exp(row[403]! - max) / z) < 1e-5);
  });
  await assert.rejects(engine.logitLens(h, { layers: [7] }), UsageError);
  const bare = await engine.run({ tokens, slot: 'bare' });
  await assert.rejects(engine.logitLens(bare), /hook_resid_post/);
});

test('slots: a newer run replaces its slot\'s trace (and cancels it if pending); release drops one', async () => {
  const engine = new Engine();
  await engine.load({ kind: 'files', files: [storiesFile()] });
  const a = await engine.run({ tokens: tokens.slice(0, 10), capture: 'blocks.0.attn.hook_pattern', slot: 'A' });
  const b = await engine.run({ tokens: tokens.slice(0, 12), capture: 'blocks.0.attn.hook_pattern', slot: 'B' });
  assert.equal((await engine.stats()).traces, 2);
  const a2 = await engine.run({ tokens: tokens.slice(0, 11), capture: 'blocks.0.attn.hook_pattern', slot: 'A' });
  assert.equal((await engine.stats()).traces, 2);
  await assert.rejects(engine.attention(a, { layer: 0 }), /is gone/);
  assert.equal((await engine.attention(a2, { layer: 0 })).shape[1], 11);
  // two runs for one slot at once: the first is cancelled, the second answers
  const first = engine.run({ tokens: tokens.slice(0, 30), slot: 'B', requestId: 'edit-1' });
  const second = engine.run({ tokens: tokens.slice(0, 31), slot: 'B', requestId: 'edit-2' });
  await assert.rejects(first, (e: unknown) => e instanceof CancelledError && e.requestId === 'edit-1');
  assert.equal((await second).requestId, 'edit-2');
  await assert.rejects(engine.topK(b), /is gone/);
  assert.equal(await engine.release(a2), true);
  assert.equal(await engine.release(a2), false);
  assert.equal((await engine.stats()).traces, 1);
  await assert.rejects(new Engine().run({ tokens: [1] }), /no model is loaded/);
  await assert.rejects(engine.run({ tokens: [1, 9999] }), UsageError);
  await assert.rejects(engine.run({ tokens: [1], capture: 'blocks.*.nope' }), /matches no hook/);
});

/** A random model big enough that a long prompt takes many chunks (of 16 positions) of real time. */
function bigModelFile(): File {
  const config = { ...shapeConfig('stories15M'), nLayers: 6, dModel: 128, dFfn: 384, nHeads: 4, nKvHeads: 4, dHead: 32, vocabSize: 1024, nCtx: 1024, name: 'wide' };
  const r = synthModel({ config, type: 'Q8_0', seed: 3, format: 'gguf' });
  return new File([r.files[0]!.bytes as Uint8Array<ArrayBuffer>], 'wide.gguf');
}

test('cancelling a run mid-way rejects with CancelledError and leaves the engine right', async () => {
  const engine = new Engine({ chunkSize: 16 });
  const file = bigModelFile();
  await engine.load({ kind: 'files', files: [file] });
  const long = Array.from({ length: 256 }, (_, i) => (i * 37 + 5) % 1024);
  const pending = engine.run({ tokens: long, capture: 'blocks.5.attn.hook_pattern', requestId: 'long' });
  while ((await engine.stats()).cachedPositions === 0) await new Promise((r) => setTimeout(r, 2));
  assert.equal(await engine.cancel('long'), true);
  await assert.rejects(pending, (e: unknown) => e instanceof CancelledError && e.requestId === 'long');
  const stats = await engine.stats();
  assert.ok(stats.cachedPositions > 0 && stats.cachedPositions < 256, `stopped after ${stats.cachedPositions} positions`);
  assert.equal(stats.pending, 0);
  assert.equal(await engine.cancel('long'), false);
  // the next run (reusing what the cancelled one computed) equals a fresh engine's
  const next = long.slice(0, 100).concat([7, 8, 9]);
  const h = await engine.run({ tokens: next, capture: 'blocks.5.attn.hook_pattern' });
  assert.equal(h.reused, Math.min(stats.cachedPositions, 100));
  const fresh = new Engine();
  await fresh.load({ kind: 'files', files: [file] });
  const hf = await fresh.run({ tokens: next, capture: 'blocks.5.attn.hook_pattern' });
  assert.deepEqual((await engine.topK(h, { k: 20 })).logits, (await fresh.topK(hf, { k: 20 })).logits);
  assert.deepEqual((await engine.attention(h, { layer: 5, head: 2 })).data, (await fresh.attention(hf, { layer: 5, head: 2 })).data);
  // an AbortSignal does the same
  const ac = new AbortController();
  const aborted = engine.run({ tokens: long, slot: 'x' }, { signal: ac.signal });
  ac.abort();
  await assert.rejects(aborted, CancelledError);
});

test('a long logit lens lets other requests in between its batches, and stops when cancelled or when its slot runs again', async () => {
  const engine = new Engine();
  await engine.load({ kind: 'files', files: [storiesFile()] });
  const all = { positions: [...tokens.keys()], k: 5 };                          // 6 layers × 40 positions: 4 batches of 64 rows
  const capture = ['blocks.*.hook_resid_post', 'hook_embed'];
  const h = await engine.run({ tokens, capture, slot: 'A' });
  const plain = new Engine();
  await plain.load({ kind: 'files', files: [storiesFile()] });
  const want = await plain.logitLens(await plain.run({ tokens, capture }), all);
  const same = (got: { ids: Int32Array; probs: Float32Array }) => { assert.deepEqual(got.ids, want.ids); assert.deepEqual(got.probs, want.probs); };

  // another slice asked after the lens answers before it; progress before each batch of 64 rows
  const order: string[] = [], seen: number[][] = [];
  const lens = engine.logitLens(h, all, { onProgress: (done, total) => seen.push([done, total]) }).then((r) => { order.push('lens'); return r; });
  await engine.topK(h, { k: 3 }).then(() => order.push('topK'));
  same(await lens);
  assert.deepEqual(order, ['topK', 'lens']);
  assert.deepEqual(seen, [[0, 240], [64, 240], [128, 240], [192, 240]]);
  // asked again: every row from the memo, no batch, no report
  seen.length = 0;
  same(await engine.logitLens(h, all, { onProgress: (done, total) => seen.push([done, total]) }));
  assert.deepEqual(seen, []);

  // cancelled by its request id (a fresh engine: nothing memoized), then asked again: the same answer
  const e2 = new Engine();
  await e2.load({ kind: 'files', files: [storiesFile()] });
  const h2 = await e2.run({ tokens, capture, slot: 'A' });
  const stopped = e2.logitLens(h2, all, { requestId: 'lens-1' });
  await new Promise((r) => setImmediate(r));
  assert.equal(await e2.cancel('lens-1'), true);
  await assert.rejects(stopped, (e: unknown) => e instanceof CancelledError && e.requestId === 'lens-1');
  assert.equal((await e2.stats()).pending, 0);
  same(await e2.logitLens(h2, all));
  // an AbortSignal does the same
  const ac = new AbortController();
  const aborted = e2.logitLens(h2, { ...all, k: 4 }, { signal: ac.signal });
  ac.abort();
  await assert.rejects(aborted, CancelledError);

  // a newer run of the trace's slot replaces the trace: its lens stops; another slot's run does not stop it
  const e3 = new Engine();
  await e3.load({ kind: 'files', files: [storiesFile()] });
  const h3 = await e3.run({ tokens, capture, slot: 'A' });
  const other = e3.logitLens(h3, all, { requestId: 'lens-2' });
  await e3.run({ tokens: tokens.slice(0, 5), slot: 'B' });
  same(await other);
  const replaced = e3.logitLens(h3, { ...all, k: 3 }, { requestId: 'lens-3' });
  await e3.run({ tokens: tokens.slice(0, 39), capture, slot: 'A' });
  await assert.rejects(replaced, (e: unknown) => e instanceof CancelledError && e.requestId === 'lens-3' && /newer run/.test(e.message));
});

test('memory: 200 prompt edits in one cell keep one trace and a flat heap', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const engine = new Engine();
  await engine.load({ kind: 'files', files: [storiesFile()] });
  const capture = ['blocks.*.attn.hook_pattern', 'blocks.*.hook_resid_post', 'hook_embed'];
  const heap = () => { gc(); gc(); const m = process.memoryUsage(); return m.heapUsed + m.arrayBuffers; };
  let prompt = ref.token_ids.slice(0, 40);
  let traceBytes = 0, before = 0;
  for (let edit = 0; edit < 200; edit++) {
    // an edit: mostly near the end (typing), every tenth in the middle; a token added, then one deleted
    prompt = [...prompt];
    const at = edit % 10 === 0 ? 1 + (edit * 7) % (prompt.length - 1) : prompt.length - 1 - (edit % 3);
    prompt[at] = 3 + (edit * 13) % 500;
    if (edit % 2 === 0) prompt.push(5 + edit % 400); else prompt.pop();
    const h = await engine.run({ tokens: prompt, capture, slot: 'cell', requestId: `edit-${edit}` });
    await engine.attention(h, { layer: edit % 5 });
    await engine.topK(h, { k: 20 });
    await engine.logitLens(h, { k: 5 });
    const s = await engine.stats();
    assert.equal(s.traces, 1);
    traceBytes = Math.max(traceBytes, s.traceBytes);
    if (edit === 19) before = heap();
  }
  const after = heap();
  const growth = after - before;
  // Keeping every trace would add 180 × ~traceBytes; the bound is a fraction of one such leak.
  const bound = 2 << 20;
  console.log(`heap+arrayBuffers after edit 20: ${(before / 2 ** 20).toFixed(2)} MiB, after 200: ${(after / 2 ** 20).toFixed(2)} MiB (growth ${(growth / 2 ** 10).toFixed(0)} KiB; one trace ${(traceBytes / 2 ** 10).toFixed(0)} KiB)`);
  assert.ok(180 * traceBytes > 8 * bound, 'the bound is far below what leaking traces would cost');
  assert.ok(growth < bound, `the heap grew ${growth} bytes over 180 edits (bound ${bound})`);
});

test('every hook name is accepted in a capture and each returns only its slice', async () => {
  const engine = new Engine();
  await engine.load({ kind: 'files', files: [storiesFile()] });
  const h = await engine.run({ tokens: tokens.slice(0, 6), capture: '**' });
  assert.deepEqual(h.hooks, hookNames((await engine.info())!.config));
  const s = await engine.activation(h, 'blocks.4.attn.hook_rot_k', { positions: [5, 6] });
  assert.deepEqual(s.shape, [1, 4, 8]);
});

test('calls made while a model loads wait for it; a new load cancels pending runs and drops traces', async () => {
  const engine = new Engine();
  const loading = engine.load({ kind: 'files', files: [storiesFile()] });
  const [h, t] = await Promise.all([engine.run({ tokens: [1, 403, 407] }), engine.tokenize('Once')]);
  assert.equal((await loading).config.vocabSize, 512);
  assert.equal(h.nPos, 3);
  assert.equal(t.ids[0], 1);
  const pending = engine.run({ tokens: tokens.slice(0, 40), requestId: 'old-model' });
  await engine.load({ kind: 'files', files: [storiesFile()] });
  await assert.rejects(pending, CancelledError);
  await assert.rejects(engine.topK(h), /is gone/);
  assert.equal((await engine.stats()).traces, 0);
});

test('named errors cross the worker boundary as themselves (src/worker/wire.ts)', async () => {
  const { toWire, fromWire } = await import('../../src/worker/wire.ts');
  const e = fromWire(structuredClone(toWire(new CancelledError('edit-7', 'a newer run replaced it')))) as CancelledError;
  assert.ok(e instanceof CancelledError);
  assert.equal(e.requestId, 'edit-7');
  assert.equal(e.code, 'cancelled');
  assert.match(e.message, /^request edit-7: a newer run replaced it\. /);
  const u = fromWire(structuredClone(toWire(new UsageError('capture', 'no hook named "x"')))) as UsageError;
  assert.ok(u instanceof UsageError);
  assert.equal(u.where, 'capture');
  const plain = fromWire(structuredClone(toWire(new TypeError('bad')))) as Error;
  assert.equal(plain.name, 'TypeError');
  assert.equal(plain.message, 'bad');
  assert.equal(fromWire(structuredClone(toWire('a string'))), 'a string');
});
