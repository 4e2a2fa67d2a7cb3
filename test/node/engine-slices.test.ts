// The overview slices through the in-thread Engine (src/engine/api.ts): the attention summary
// against the full patterns of the same run (chunked, GQA, odd sizes, one position, prefix reuse),
// logits(position) against a run with logits: 'all', pieces against the tokenizer, and pca against
// a straightforward covariance + Jacobi on the activations — plus the named errors for what a trace
// cannot answer. A random GQA model (src/formats/synth.ts) and stories260K (../shared/models).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine, type AttentionSummarySlice } from '../../src/engine/api.ts';
import { UsageError } from '../../src/engine/errors.ts';
import { synthModel } from '../../src/formats/synth.ts';
import type { ModelConfig } from '../../src/engine/config.ts';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
const storiesBytes = readFileSync(resolve(root, '../shared/models/tinystories-260k/stories260K.gguf'));
const stories = () => ({ kind: 'files' as const, files: [new File([storiesBytes], 'stories260K.gguf')] });

/** A random GQA model (4 query heads, 2 KV heads), small enough to run in milliseconds. */
const tiny: ModelConfig = {
  arch: 'llama', name: 'tiny-gqa', nLayers: 3, dModel: 32, dFfn: 48, nHeads: 4, nKvHeads: 2, dHead: 8, vocabSize: 300,
  nCtx: 128, rmsEps: 1e-5, ropeTheta: 10000, ropeScaling: null, tiedEmbeddings: false, bosId: 1, eosId: 2,
};
const tinyBytes = synthModel({ config: tiny, type: 'F32', seed: 7, format: 'gguf' }).files[0]!.bytes;
const tinyModel = () => ({ kind: 'files' as const, files: [new File([tinyBytes as Uint8Array<ArrayBuffer>], 'tiny.gguf')] });
const prompt = (n: number, seed = 1) => [1, ...Array.from({ length: n - 1 }, (_, i) => 3 + ((i * 53 + seed * 17) % 290))];

/** The summary computed here from whole patterns ([nHeads, n, n] per layer), the way CELLS.md defines it. */
function directSummary(patterns: Float32Array[], nHeads: number, n: number, B: number) {
  const L = patterns.length;
  const thumbs = new Float64Array(L * nHeads * B * B), entropy = new Float64Array(L * nHeads);
  const first = new Float64Array(L * nHeads), prev = new Float64Array(L * nHeads);
  for (let l = 0; l < L; l++) {
    for (let h = 0; h < nHeads; h++) {
      const sums = new Float64Array(B * B), counts = new Float64Array(B * B);
      for (let q = 0; q < n; q++) {
        const row = patterns[l]!.subarray((h * n + q) * n, (h * n + q + 1) * n);
        for (let k = 0; k <= q; k++) {
          const cell = Math.floor((q * B) / n) * B + Math.floor((k * B) / n);
          sums[cell] += row[k]!; counts[cell]++;
          if (row[k]! > 0) entropy[l * nHeads + h] -= (row[k]! * Math.log(row[k]!)) / n;
        }
        first[l * nHeads + h] += row[0]! / n;
        if (q >= 1) prev[l * nHeads + h] += row[q - 1]! / (n - 1);
      }
      for (let c = 0; c < B * B; c++) thumbs[(l * nHeads + h) * B * B + c] = counts[c] ? sums[c]! / counts[c]! : NaN;
    }
  }
  if (n === 1) prev.fill(NaN);
  return { thumbs, entropy, first, prev };
}

function assertClose(got: Float32Array, want: Float64Array, what: string, tol = 1e-6) {
  assert.equal(got.length, want.length, `${what} length`);
  got.forEach((v, i) => {
    if (Number.isNaN(want[i]!)) assert.ok(Number.isNaN(v), `${what}[${i}] should be NaN, is ${v}`);
    else assert.ok(Math.abs(v - want[i]!) <= tol, `${what}[${i}]: ${v} vs ${want[i]}`);
  });
}

async function patternsOf(engine: Engine, trace: string, nLayers: number): Promise<Float32Array[]> {
  return Promise.all(Array.from({ length: nLayers }, async (_, l) => (await engine.attention(trace, { layer: l })).data));
}

function checkSummary(s: AttentionSummarySlice, patterns: Float32Array[], nHeads: number, n: number, B: number) {
  assert.deepEqual([s.nLayers, s.nHeads, s.nPos, s.size], [patterns.length, nHeads, n, B]);
  const d = directSummary(patterns, nHeads, n, B);
  assertClose(s.thumbs, d.thumbs, 'thumbs');
  assertClose(s.entropy, d.entropy, 'entropy');
  assertClose(s.first, d.first, 'first');
  assertClose(s.prev, d.prev, 'prev');
}

test('attention summary = the full patterns of the same run: GQA, chunks, odd sizes, clamping, one position', async () => {
  const engine = new Engine({ chunkSize: 5 });                  // 23 positions: chunks of 5, the last of 3
  await engine.load(tinyModel());
  const tokens = prompt(23);
  // a run that keeps the patterns too, and one that only summarizes (the patterns are not stored)
  const full = await engine.run({ tokens, capture: 'blocks.*.attn.hook_pattern', slot: 'full' });
  const patterns = await patternsOf(engine, full.id, tiny.nLayers);
  for (const [size, B] of [[5, 5], [undefined, 23], [7, 7], [1, 4], [1000, 23], [6.6, 7]] as const) {
    const only = await engine.run({ tokens, summary: { attention: { size } }, slot: 'only' });
    assert.deepEqual(only.hooks, [], 'the summary stores no pattern');
    const s = await engine.attentionSummary(only);
    assert.equal(s.traceId, only.id);
    assert.equal(s.requestId, only.requestId);
    checkSummary(s, patterns, tiny.nHeads, 23, B);
  }
  // with the patterns captured as well, it is computed from the stored rows: the same numbers
  const both = await engine.run({ tokens, capture: 'blocks.*.attn.hook_pattern', summary: { attention: { size: 5 } }, slot: 'both' });
  const only = await engine.run({ tokens, summary: { attention: { size: 5 } }, slot: 'only' });
  assert.deepEqual(await engine.attentionSummary(both), { ...(await engine.attentionSummary(only)), traceId: both.id, requestId: both.requestId });
  checkSummary(await engine.attentionSummary(both), await patternsOf(engine, both.id, tiny.nLayers), tiny.nHeads, 23, 5);
  // one position: one bin, all weight on position 0, no previous position
  const one = await engine.run({ tokens: [1], summary: { attention: {} }, slot: 'one' });
  const s1 = await engine.attentionSummary(one);
  assert.equal(s1.size, 1);
  assert.ok(s1.thumbs.every((v) => v === 1) && s1.first.every((v) => v === 1));
  assert.ok(s1.entropy.every((v) => v === 0));
  assert.ok(s1.prev.every((v) => Number.isNaN(v)));
  // slices are fresh copies: changing one does not change the next
  s1.first[0] = 42;
  assert.notEqual((await engine.attentionSummary(one)).first[0], 42);
});

test('attention summary with prefix reuse: the same summary as a fresh run', async () => {
  const a = prompt(30, 1), b = [...a.slice(0, 21), ...prompt(12, 2).slice(1)];   // share 21 tokens
  const fresh = new Engine({ chunkSize: 8 });
  await fresh.load(tinyModel());
  const want = await fresh.attentionSummary(await fresh.run({ tokens: b, summary: { attention: { size: 6 } } }));

  // summary only: the run recomputes from position 0 (the bins depend on the length)
  const engine = new Engine({ chunkSize: 8 });
  await engine.load(tinyModel());
  await engine.run({ tokens: a, summary: { attention: { size: 6 } } });
  const again = await engine.run({ tokens: b, summary: { attention: { size: 6 } } });
  assert.equal(again.reused, 0);
  const got = await engine.attentionSummary(again);
  assert.deepEqual({ ...got, traceId: '', requestId: '' }, { ...want, traceId: '', requestId: '' });

  // with the patterns captured, the prefix is reused and the summary is still the fresh one
  await engine.run({ tokens: a, capture: 'blocks.*.attn.hook_pattern', summary: { attention: { size: 6 } } });
  const reused = await engine.run({ tokens: b, capture: 'blocks.*.attn.hook_pattern', summary: { attention: { size: 6 } } });
  assert.equal(reused.reused, 21);
  const got2 = await engine.attentionSummary(reused);
  assert.deepEqual({ ...got2, traceId: '', requestId: '' }, { ...want, traceId: '', requestId: '' });
  // The rows' entropies are kept for the reused prefix and recomputed past it: an edit at
  // position 9, a shorter prompt, then the longer one again, each the same as a fresh run.
  const c = [...b.slice(0, 9), (b[9]! + 1) % 64 || 1, ...b.slice(10)], d = c.slice(0, 14);
  for (const [t, reuse] of [[c, 9], [d, 13], [c, 14], [c, 31]] as const) {   // the last position is always run again
    const wantT = await fresh.attentionSummary(await fresh.run({ tokens: t, summary: { attention: { size: 6 } } }));
    const r = await engine.run({ tokens: t, capture: 'blocks.*.attn.hook_pattern', summary: { attention: { size: 6 } } });
    assert.equal(r.reused, reuse, `${t.length} tokens`);
    const gotT = await engine.attentionSummary(r);
    assert.deepEqual({ ...gotT, traceId: '', requestId: '' }, { ...wantT, traceId: '', requestId: '' }, `${t.length} tokens, ${reuse} reused`);
  }
  // a reused run without a summary still reuses (nothing changed for runs that do not ask)
  await engine.run({ tokens: a });
  assert.equal((await engine.run({ tokens: b })).reused, 21);

  await assert.rejects(engine.attentionSummary(reused.id.replace(/\d+$/, '999')), /is gone/);
  const bare = await engine.run({ tokens: b, slot: 'bare' });
  await assert.rejects(engine.attentionSummary(bare), (e: unknown) => e instanceof UsageError && /holds no attention summary.*summary: \{ attention/.test(e.message));
  await assert.rejects(engine.run({ tokens: b, summary: { attention: { size: 'big' as unknown as number } } }), (e: unknown) => e instanceof UsageError && /summary\.attention\.size/.test(e.message));
  await assert.rejects(engine.run({ tokens: b, summary: { attention: 3 as unknown as object } }), UsageError);
  await assert.rejects(engine.run({ tokens: b, summary: true as unknown as object }), (e: unknown) => e instanceof UsageError && /run summary/.test(e.message));
});

test('attention summary of stories260K (8 heads, 4 KV heads) equals its captured patterns', async () => {
  const engine = new Engine();
  await engine.load(stories());
  const { ids } = await engine.tokenize('Once upon a time, there was a little girl named Lily. She loved to play outside in the park.');
  const h = await engine.run({ tokens: ids, capture: 'blocks.*.attn.hook_pattern', slot: 'p' });
  const s = await engine.attentionSummary(await engine.run({ tokens: ids, summary: { attention: { size: 8 } }, slot: 's' }));
  checkSummary(s, await patternsOf(engine, h.id, 5), 8, ids.length, 8);
});

test('attentionPooled with summary: the layer\'s numbers of a run\'s every-layer summary, bit for bit, from a run that reused its prefix', async () => {
  const engine = new Engine();
  await engine.load(tinyModel());
  const ids = [...prompt(40, 3), 5, 6, 7, 5, 6, 7];                       // repeats: an induction score
  const want = await engine.attentionSummary(await engine.run({ tokens: ids, summary: { attention: {} }, slot: 'every' }));
  // the cell's long-prompt run: one layer's pattern captured, no summary, the prefix reused
  await engine.run({ tokens: ids.slice(0, 30), capture: 'blocks.2.attn.hook_pattern', slot: 'one' });
  const h = await engine.run({ tokens: ids, capture: 'blocks.2.attn.hook_pattern', slot: 'one' });
  assert.ok(h.reused > 0, 'the prefix was reused');
  const pool = await engine.attentionPooled(h, { layer: 2, bins: 16, summary: true });
  const s = pool.summary!, H = tiny.nHeads, B = want.size;
  assert.deepEqual([s.nLayers, s.nHeads, s.nPos, s.size], [1, H, ids.length, B]);
  assert.deepEqual(s.thumbs, want.thumbs.subarray(2 * H * B * B, 3 * H * B * B));
  for (const k of ['entropy', 'first', 'prev', 'induction'] as const) assert.deepEqual(s[k], want[k].subarray(2 * H, 3 * H), k);
  assert.ok(s.induction.every((v) => Number.isFinite(v)));
  assert.equal((await engine.attentionPooled(h, { layer: 2 })).summary, undefined, 'only when asked');
  await assert.rejects(engine.attentionPooled(h, { layer: 2, summary: 'yes' as unknown as boolean }), (e: unknown) => e instanceof UsageError && /attention pool summary/.test(e.message));
});

test('logits(position) equals the rows of a run with logits: all — stored, captured, or from the last residual', async () => {
  const engine = new Engine();
  await engine.load(stories());
  const { ids } = await engine.tokenize('One day, a little dog found a big red ball in the garden.');
  const n = ids.length, V = 512;
  const all = await engine.run({ tokens: ids, logits: 'all', slot: 'all' });
  const rows = await Promise.all(ids.map((_, p) => engine.logits(all, { position: p })));
  // the last row by default; the same numbers as topK reports
  const last = await engine.logits(all);
  assert.equal(last.position, n - 1);
  assert.deepEqual(last.data, rows[n - 1]!.data);
  assert.equal(last.data.length, V);
  const top = await engine.topK(all, { position: 3, k: 5 });
  top.ids.forEach((id, i) => assert.equal(rows[3]!.data[id], top.logits[i]));

  // from blocks.4.hook_resid_post (logits: 'last' keeps only the last row): bit for bit on the CPU
  const resid = await engine.run({ tokens: ids, capture: 'blocks.4.hook_resid_post', slot: 'resid' });
  assert.equal(resid.logitsStart, n - 1);
  for (let p = 0; p < n; p++) {
    const r = await engine.logits(resid, { position: p });
    assert.equal(r.position, p);
    assert.deepEqual(r.data, rows[p]!.data, `position ${p}`);
    assert.equal(r.traceId, resid.id);
  }
  // from a captured hook_logits
  const hooked = await engine.run({ tokens: ids, capture: 'hook_logits', slot: 'hooked' });
  assert.deepEqual((await engine.logits(hooked, { position: 2 })).data, rows[2]!.data);

  const bare = await engine.run({ tokens: ids, slot: 'bare' });
  assert.deepEqual((await engine.logits(bare)).data, rows[n - 1]!.data);
  await assert.rejects(engine.logits(bare, { position: 0 }), (e: unknown) => e instanceof UsageError && /logits: 'all'.*blocks\.4\.hook_resid_post/.test(e.message));
  await assert.rejects(engine.logits(all, { position: n }), (e: unknown) => e instanceof UsageError && /logits position/.test(e.message));
  await assert.rejects(engine.logits(all, { position: -1 }), UsageError);
  // an earlier layer's residual is not the model's logits: not used
  const early = await engine.run({ tokens: ids, capture: 'blocks.3.hook_resid_post', slot: 'early' });
  await assert.rejects(engine.logits(early, { position: 0 }), UsageError);
});

test('pieces: the tokenizer\'s display pieces, byte tokens as <0xNN>; ids out of range named', async () => {
  const engine = new Engine();
  await engine.load(stories());
  const t = await engine.tokenize('Hello there.\nBye');
  assert.deepEqual(await engine.pieces(t.ids), t.pieces);
  assert.deepEqual(await engine.pieces([13, 1, 2]), ['<0x0A>', '<s>', '</s>']);
  assert.deepEqual(await engine.pieces([]), []);
  await assert.rejects(engine.pieces([5, 512]), (e: unknown) => e instanceof UsageError && /ids\[1\]/.test(e.message) && /512 is not a token id/.test(e.message) && /512 tokens/.test(e.message));
  await assert.rejects(engine.pieces([1.5]), UsageError);
  await assert.rejects(new Engine().pieces([1]), /no model is loaded/);
});

/** Jacobi on a symmetric [n, n] matrix: eigenvalues descending, unit eigenvectors. */
function jacobi(A: Float64Array, n: number): { values: number[]; vectors: number[][] } {
  const V = new Float64Array(n * n);
  for (let i = 0; i < n; i++) V[i * n + i] = 1;
  for (let sweep = 0; sweep < 60; sweep++) {
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) {
      const apq = A[p * n + q]!;
      if (Math.abs(apq) < 1e-300) continue;
      const th = (A[q * n + q]! - A[p * n + p]!) / (2 * apq);
      const t = Math.sign(th || 1) / (Math.abs(th) + Math.hypot(th, 1)), c = 1 / Math.hypot(t, 1), s = t * c;
      for (let k = 0; k < n; k++) { const x = A[k * n + p]!, y = A[k * n + q]!; A[k * n + p] = c * x - s * y; A[k * n + q] = s * x + c * y; }
      for (let k = 0; k < n; k++) { const x = A[p * n + k]!, y = A[q * n + k]!; A[p * n + k] = c * x - s * y; A[q * n + k] = s * x + c * y; }
      for (let k = 0; k < n; k++) { const x = V[k * n + p]!, y = V[k * n + q]!; V[k * n + p] = c * x - s * y; V[k * n + q] = s * x + c * y; }
    }
  }
  const order = [...Array(n).keys()].sort((a, b) => A[b * n + b]! - A[a * n + a]!);
  return { values: order.map((i) => A[i * n + i]!), vectors: order.map((i) => Array.from({ length: n }, (_, k) => V[k * n + i]!)) };
}

test('pca of the residual stream across layers equals a covariance + Jacobi of the same rows; errors named', async () => {
  const engine = new Engine();
  await engine.load(tinyModel());
  const tokens = prompt(21);
  const h = await engine.run({ tokens, capture: ['blocks.*.hook_resid_post', 'hook_embed', 'blocks.0.attn.hook_pattern', 'blocks.1.ffn.hook_act'] });
  const hooks = ['blocks.0.hook_resid_post', 'blocks.1.hook_resid_post', 'blocks.2.hook_resid_post'];
  const positions = [2, 19] as const;
  const s = await engine.pca(h, { hooks, components: 3, positions });
  assert.deepEqual(s.hooks, hooks);
  assert.deepEqual([s.positionStart, s.nPos, s.components], [2, 17, 3]);
  assert.equal(s.points.length, 3 * 17 * 3);
  // the reference: every row of the three hooks at positions 2..18, centred by their mean
  const d = tiny.dModel, rows: number[][] = [];
  for (const name of hooks) {
    const a = await engine.activation(h, name, { positions });
    for (let p = 0; p < 17; p++) rows.push(Array.from(a.data.subarray(p * d, (p + 1) * d)));
  }
  const N = rows.length, mean = Array.from({ length: d }, (_, j) => rows.reduce((t, r) => t + r[j]!, 0) / N);
  const C = new Float64Array(d * d);
  for (const r of rows) for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) C[i * d + j] += ((r[i]! - mean[i]!) * (r[j]! - mean[j]!)) / N;
  const { values, vectors } = jacobi(C, d);
  const total = values.reduce((t, v) => t + v, 0);
  for (let c = 0; c < 3; c++) {
    assert.ok(Math.abs(s.explained[c]! - values[c]! / total) < 1e-6, `explained ${c}: ${s.explained[c]} vs ${values[c]! / total}`);
    const v = vectors[c]!;
    const arg = v.reduce((m, x, i) => (Math.abs(x) > Math.abs(v[m]!) ? i : m), 0);
    const sign = v[arg]! < 0 ? -1 : 1;                          // the sign rule: largest |loading| positive
    rows.forEach((r, i) => {
      const want = sign * r.reduce((t, x, j) => t + (x - mean[j]!) * v[j]!, 0);
      assert.ok(Math.abs(s.points[i * 3 + c]! - want) < 1e-4 * Math.sqrt(values[0]!), `row ${i} component ${c}: ${s.points[i * 3 + c]} vs ${want}`);
    });
  }
  // defaults: 2 components, every position; aliases resolve; deterministic
  const def = await engine.pca(h, { hooks: ['blocks.2.hook_resid_post', 'hook_embed'] });
  assert.deepEqual([def.positionStart, def.nPos, def.components, def.points.length], [0, 21, 2, 2 * 21 * 2]);
  assert.deepEqual((await engine.pca(h, { hooks: ['blocks.2.hook_resid_post', 'hook_embed'] })).points, def.points);

  const rejects = (q: Parameters<Engine['pca']>[1], re: RegExp) =>
    assert.rejects(engine.pca(h, q), (e: unknown) => e instanceof UsageError && re.test(e.message), String(re));
  await rejects({ hooks: ['blocks.0.hook_resid_postt'] }, /holds no blocks\.0\.hook_resid_postt.*Capture it/);
  await rejects({ hooks: ['blocks.0.hook_resid_mid'] }, /holds no blocks\.0\.hook_resid_mid/);
  await rejects({ hooks: [] }, /pca hooks/);
  await rejects({ hooks: ['blocks.0.attn.hook_pattern'] }, /attention pattern/);
  await rejects({ hooks: ['hook_embed', 'blocks.1.ffn.hook_act'] }, /rows of 48 values but hook_embed of 32/);
  await rejects({ hooks, positions: [5, 22] }, /pca positions/);
  await rejects({ hooks, positions: [5, 5] }, /pca positions/);
  await rejects({ hooks, components: 0 }, /pca components/);
  await rejects({ hooks, components: 17 }, /pca components/);
});
