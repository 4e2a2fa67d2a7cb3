// The logit lens's memo (src/engine/trace.ts LensMemo): after a prompt edit only the rows whose
// residual changed go through the output head again, and every answer equals the lens computed
// without the memo. stories260K (../shared/models).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openModel } from '../../src/formats/open.ts';
import { bytesSource } from '../../src/formats/source.ts';
import { loadModelWeights } from '../../src/engine/weights.ts';
import { Session } from '../../src/engine/session.ts';
import { LensMemo, logitLensSlice, type LogitLensQuery, type StoredTrace } from '../../src/engine/trace.ts';
import type { TraceHandle } from '../../src/engine/api.ts';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
const bytes = readFileSync(resolve(root, '../shared/models/tinystories-260k/stories260K.gguf'));
const ref = JSON.parse(readFileSync(resolve(root, '../shared/models/tinystories-260k/stories260K_greedy_ref.json'), 'utf8')) as { token_ids: number[] };
const CAPTURE = ['hook_embed', 'blocks.*.hook_resid_post'];

async function setUp() {
  const weights = await loadModelWeights(await openModel([bytesSource(new Uint8Array(bytes), 'stories260K.gguf')]));
  const session = new Session(weights);
  let rows = 0;
  const head = (x: Float32Array, n: number) => { rows += n; return session.outputHead(x, n); };
  /** The lens of `tokens` (run on the session, reusing its cache) with and without the memo, and the rows the head computed with it. */
  const lens = (tokens: number[], memo: LensMemo, q: LogitLensQuery = {}) => {
    const r = session.run(tokens, { capture: CAPTURE });
    const t = { handle: { id: 't', nPos: tokens.length, logitsStart: tokens.length - 1 } as TraceHandle, data: r.trace, logits: r.logits, bytes: 0 } as StoredTrace;
    const query = { positions: [...tokens.keys()], ...q };
    rows = 0;
    const got = logitLensSlice(session.config, head, t, query, memo);
    const computed = rows;
    const plain = logitLensSlice(session.config, head, t, query);
    return { got, plain, computed, reused: r.reused };
  };
  return { session, lens };
}

test('logit lens memo: an appended token or an edit recomputes only the rows after it, with the same answers', async () => {
  const { lens } = await setUp();
  const memo = new LensMemo();
  const a = ref.token_ids.slice(0, 30);
  const layers = 6;                                                   // the embedding and 5 blocks

  const first = lens(a, memo, { target: 403 });
  assert.equal(first.computed, layers * 30);
  assert.deepEqual(first.got, first.plain);

  // one more token: the 30 earlier positions' residuals are the cached ones
  const b = [...a, ref.token_ids[30]!];
  assert.ok(!a.includes(b[30]!));                                     // a new embedding row too
  const appended = lens(b, memo, { target: 403 });
  assert.equal(appended.reused, 30);
  assert.equal(appended.computed, layers);
  assert.deepEqual(appended.got, appended.plain);

  // an edit at position 10: the blocks' residuals at positions 10 .. 30 change, 0 .. 9 do not;
  // the embedding changes at position 10 only (the memo goes by content, not by position)
  const c = [...b];
  c[10] = c[10] === 100 ? 101 : 100;
  assert.ok(!b.slice(0, 10).includes(c[10]!) && !b.slice(11).includes(c[10]!));
  const edited = lens(c, memo, { target: 403 });
  assert.equal(edited.computed, (layers - 1) * 21 + 1);
  assert.deepEqual(edited.got, edited.plain);

  // another k or target is another question: computed again, and right
  const otherK = lens(c, memo, { k: 3, target: 403 });
  assert.equal(otherK.computed, layers * 31);
  assert.deepEqual(otherK.got, otherK.plain);
  const noTarget = lens(c, memo, {});
  assert.equal(noTarget.computed, layers * 31);
  assert.deepEqual(noTarget.got, noTarget.plain);
  assert.equal(lens(c, memo, {}).computed, 0);
});

test('logit lens memo: bounded in bytes, the oldest rows dropped first, answers unchanged', async () => {
  const { lens } = await setUp();
  const rowBytes = LensMemo.entryBytes(5);                            // k 5
  const memo = new LensMemo(10 * rowBytes);
  const a = ref.token_ids.slice(0, 20);
  const first = lens(a, memo);
  assert.equal(first.computed, 6 * 20);
  assert.deepEqual(first.got, first.plain);
  // 10 rows kept: the last computed, the last layer's final 10 positions
  const again = lens(a, memo);
  assert.equal(again.computed, 6 * 20 - 10);
  assert.deepEqual(again.got, again.plain);
  const none = new LensMemo(rowBytes - 1);                            // too small for one row: keeps nothing
  assert.equal(lens(a, none).computed, 120);
  assert.equal(lens(a, none).computed, 120);
});

test('logit lens memo: an entry costs the same whatever d_model, so a long TinyLlama-wide lens stays whole; any changed bit misses', () => {
  const d = 2048, R = 23 * 200;                                       // TinyLlama's residual, 23 rows × 200 positions
  const residuals = new Float32Array(R * d);
  let s = 12345;
  for (let i = 0; i < residuals.length; i++) { s = (Math.imul(s, 1103515245) + 12345) | 0; residuals[i] = (s >> 8) / 2 ** 23; }
  const row = (r: number) => residuals.subarray(r * d, (r + 1) * d);
  const entry = (r: number) => ({ ids: Int32Array.of(r), logits: Float32Array.of(r), probs: Float32Array.of(1), targetProb: 0, targetRank: 0 });
  const memo = new LensMemo();
  assert.ok(R * LensMemo.entryBytes(5) <= memo.maxBytes, 'the default holds every row');
  assert.ok(R * 4 * d > memo.maxBytes, 'keeping each residual would not fit');
  for (let r = 0; r < R; r++) memo.set(row(r), 5, null, entry(r));
  let hits = 0;
  for (let r = 0; r < R; r++) if (memo.get(row(r), 5, null)?.ids[0] === r) hits++;
  assert.equal(hits, R);
  // The content is the key: the same numbers elsewhere (another array, another position) hit.
  assert.equal(memo.get(row(7).slice(), 5, null)?.ids[0], 7);
  // One flipped bit anywhere in the row (probed words or not) misses; so do another k and target.
  const probe = row(42).slice(), words = new Uint32Array(probe.buffer);
  for (const i of [0, 1, 255, 256, 1000, 1792, 2047]) {
    for (const bit of [0, 13, 31]) {
      words[i] ^= 1 << bit;
      assert.equal(memo.get(probe, 5, null), undefined, `word ${i}, bit ${bit}`);
      words[i] ^= 1 << bit;
    }
  }
  assert.equal(memo.get(probe, 5, null)?.ids[0], 42);
  assert.equal(memo.get(probe, 4, null), undefined);
  assert.equal(memo.get(probe, 5, 3), undefined);
  // A shorter residual with the same leading words is another row.
  assert.equal(memo.get(probe.subarray(0, d - 1), 5, null), undefined);
});

test('row hashes: a run that reuses a prefix hands its rows\' hashes on; recomputed rows are hashed again, an older trace keeps its own', async () => {
  const { session } = await setUp();
  const { rowHash, rowHashStats } = await import('../../src/engine/capture.ts');
  const name = 'blocks.2.hook_resid_post', d = session.config.dModel;
  const hashes = (trace: Map<string, { data: Float32Array; rowHash?(p: number): { a: number; b: number } }>, n: number) => {
    const e = trace.get(name)!;
    return Array.from({ length: n }, (_, p) => {
      const h = e.rowHash!(p);
      assert.deepEqual(h, rowHash(new Uint32Array(e.data.buffer, e.data.byteOffset + p * d * 4, d)), `position ${p}: the row's own hash`);
      return h;
    });
  };
  const a = ref.token_ids.slice(0, 20);
  const first = session.run(a, { capture: CAPTURE }).trace;
  let before = rowHashStats.hashed;
  const h1 = hashes(first, 20);
  assert.equal(rowHashStats.hashed - before, 20, 'the first run: every row hashed');
  before = rowHashStats.hashed;
  hashes(first, 20);
  assert.equal(rowHashStats.hashed - before, 0, 'asked again: kept');

  // the last token changed: positions 0..18 reused, 19 recomputed
  const b = [...a.slice(0, 19), ref.token_ids[40]!];
  assert.notEqual(b[19], a[19]);
  const second = session.run(b, { capture: CAPTURE });
  assert.equal(second.reused, 19);
  before = rowHashStats.hashed;
  const h2 = hashes(second.trace, 20);
  assert.equal(rowHashStats.hashed - before, 1, 'only the recomputed row is hashed');
  assert.deepEqual(h2.slice(0, 19), h1.slice(0, 19));
  assert.notDeepEqual(h2[19], h1[19]);
  // the first trace still answers for its own row 19, not the store's new one: it hashes its copy
  // again (the store keeps one hash per row, of the row it holds now)
  before = rowHashStats.hashed;
  assert.deepEqual(first.get(name)!.rowHash!(19), h1[19]);
  assert.equal(rowHashStats.hashed - before, 1);
  assert.deepEqual(first.get(name)!.rowHash!(3), h1[3], 'a reused row: the same hash, kept');
  assert.equal(rowHashStats.hashed - before, 1);
  // the hash is not part of the entry's enumerable shape (traces compare and clone as data)
  assert.deepEqual(Object.keys(second.trace.get(name)!), ['shape', 'data']);
});
