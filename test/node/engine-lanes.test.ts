// A session's lanes (RunOptions.lane; src/engine/session.ts): each keeps its own KV cache, tokens,
// edits and recorded activations, so runs that take turns in different lanes each reuse their own
// prefix, or start from another lane's as far as it recorded the same — and every result equals a
// fresh session's, bit for bit. Checked with the readable twins
// and with the WebAssembly kernels on 2 threads (whose KV caches live in the WebAssembly memory).

import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { Session, MAX_PARKED_LANES, type RunOptions, type RunResult } from '../../src/engine/session.ts';
import { Engine } from '../../src/engine/api.ts';
import { UsageError } from '../../src/engine/errors.ts';
import type { Edit } from '../../src/engine/edits.ts';
import type { CpuKernelsName } from '../../kernels/wasm/choose.ts';
import { randomTokens, randomWeights, tinyConfig } from './engine-fixtures.ts';

const c = tinyConfig();                      // 3 layers, 6 heads (GQA 6:2), d_head 4, d_model 24, d_ffn 40
const w = randomWeights(c, 'F32', 5);
const prompt = randomTokens(20, c.vocabSize, 8);
const longer = [...prompt, ...randomTokens(5, c.vocabSize, 9)];
/** Head 1 of layer 1 knocked out at every position (edits from position 0: nothing is shared with a clean run). */
const ablate: Edit[] = [{ hook: 'blocks.1.attn.hook_z', op: 'zero', heads: [1] }];
const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
const same = (a: Float32Array, b: Float32Array, what: string) => assert.deepEqual(bits(a), bits(b), `${what}: not bit for bit`);

const KERNELS: { kernels: CpuKernelsName; threads?: number }[] = [{ kernels: 'js' }, { kernels: 'wasm', threads: 2 }];
const make = (k: (typeof KERNELS)[number], more: { parkedLaneBytes?: number } = {}) => new Session(w, { ...k, chunkSize: 8, ...more });

/** The same run in a fresh session: what a lane's result must equal. */
function fresh(k: (typeof KERNELS)[number], tokens: number[], options: RunOptions = {}): RunResult {
  const s = make(k);
  try { return s.run(tokens, { ...options, lane: undefined }); } finally { s.dispose(); }
}

function sameRun(got: RunResult, want: RunResult, what: string): void {
  same(got.logits, want.logits, `${what}: logits`);
  assert.deepEqual([...got.trace.keys()], [...want.trace.keys()], `${what}: hooks`);
  for (const [name, e] of want.trace) same(got.trace.get(name)!.data, e.data, `${what}: ${name}`);
}

for (const k of KERNELS) {
  const label = `${k.kernels}${k.threads ? `, ${k.threads} threads` : ''}`;

  test(`${label}: a clean run and its ablated twin taking turns each reuse their own prefix`, async () => {
    const s = make(k);
    try {
      const capture = ['blocks.*.attn.hook_pattern', 'blocks.*.hook_resid_post'];
      let a = s.run(prompt, { lane: 'prompt', capture, logits: 'all' });
      let b = s.run(prompt, { lane: 'ablate', edits: ablate });
      assert.equal(a.reused, 0);
      assert.equal(b.reused, 0);
      for (let n = prompt.length + 1; n <= longer.length; n++) {
        const tokens = longer.slice(0, n);
        a = s.run(tokens, { lane: 'prompt', capture, logits: 'all' });
        assert.equal(a.reused, n - 1, `the prompt lane at ${n} tokens`);
        sameRun(a, fresh(k, tokens, { capture, logits: 'all' }), `prompt lane, ${n} tokens`);
        b = s.run(tokens, { lane: 'ablate', edits: ablate });
        assert.equal(b.reused, n - 1, `the ablate lane at ${n} tokens`);
        sameRun(b, fresh(k, tokens, { edits: ablate }), `ablate lane, ${n} tokens`);
      }
      assert.deepEqual(s.lanes, ['ablate', 'prompt']);
      // a new lane takes the prompt lane's attention rows (and their entropies) for its summary
      const t = [...longer, 1], patterns = { capture: ['blocks.*.attn.hook_pattern'], summary: { attention: { size: 8 } } };
      const att = s.run(t, { lane: 'attention', ...patterns });
      assert.equal(att.reused, longer.length);
      const want = fresh(k, t, patterns);
      sameRun(att, want, 'a lane started from shared attention rows');
      assert.deepEqual(att.attentionSummary, want.attentionSummary);
    } finally {
      s.dispose();
    }
  });

  test(`${label}: a new lane starts from another lane's prefix: KV rows copied, recorded blocks shared`, () => {
    const s = make(k);
    try {
      s.run(prompt, { lane: 'prompt', capture: ['blocks.*.hook_resid_post'] });
      // a generation lane: one position past the prompt, nothing recorded
      const step = [...prompt, 7];
      const g = s.run(step, { lane: 'generate', logits: 'top', topK: 5 });
      assert.equal(g.reused, prompt.length, 'copied from the prompt lane');
      const want = fresh(k, step, { logits: 'top', topK: 5 });
      assert.deepEqual([...g.top!.ids], [...want.top!.ids]);
      same(g.top!.logits!, want.top!.logits!, 'top logits');
      // the prompt lane kept its cache and its recorded activations
      const again = s.run(longer, { lane: 'prompt', capture: ['blocks.*.hook_resid_post'] });
      assert.equal(again.reused, prompt.length);
      sameRun(again, fresh(k, longer, { capture: ['blocks.*.hook_resid_post'] }), 'prompt lane after the copy');
      // under different edits only the positions before the edits are shared
      const steer: Edit[] = [{ hook: 'blocks.0.hook_resid_post', op: 'steer', positions: [12], vector: new Float32Array(c.dModel).fill(0.5) }];
      const e = s.run(longer, { lane: 'steered', edits: steer });
      assert.equal(e.reused, 12);
      sameRun(e, fresh(k, longer, { edits: steer }), 'steered lane after the copy');
      // a run that records something takes another lane's prefix as far as that lane recorded it too
      assert.equal(s.run(longer, { lane: 'embed', capture: ['hook_embed'] }).reused, 0, 'nobody recorded hook_embed');
      const shared = s.run([...longer, 3], { lane: 'resid', capture: ['blocks.*.hook_resid_post'], logits: 'all' });
      assert.equal(shared.reused, 0, "the 'all' logits are recorded too, and nobody did");
      const t = [...longer, 3, 4];
      const r = s.run(t, { lane: 'resid2', capture: ['blocks.1.hook_resid_post'] });
      assert.equal(r.reused, longer.length + 1, "the resid lane's rows and blocks");
      const r0 = fresh(k, t, { capture: ['blocks.1.hook_resid_post'] });
      sameRun(r, r0, 'a lane started from shared blocks');
      // the rows' content hashes (the logit lens's memo keys), twice: hashed, then kept
      for (let round = 0; round < 2; round++) {
        for (let p = 0; p < t.length; p++) assert.deepEqual(r.trace.get('blocks.1.hook_resid_post')!.rowHash!(p), r0.trace.get('blocks.1.hook_resid_post')!.rowHash!(p));
      }
      // both lanes go on without seeing each other's writes
      const u = [...longer, 5, 6];
      sameRun(s.run(u, { lane: 'resid', capture: ['blocks.*.hook_resid_post'], logits: 'all' }), fresh(k, u, { capture: ['blocks.*.hook_resid_post'], logits: 'all' }), 'the donor lane after');
      sameRun(s.run(t, { lane: 'resid2', capture: ['blocks.1.hook_resid_post'] }), fresh(k, t, { capture: ['blocks.1.hook_resid_post'] }), 'the new lane again');
    } finally {
      s.dispose();
    }
  });

  test(`${label}: parked lanes are bounded in number and in bytes, the least recently used dropped first`, () => {
    const s = make(k);
    try {
      // each lane its own tokens: nothing to take from another
      const own = (i: number) => randomTokens(20, c.vocabSize, 100 + i);
      for (let i = 0; i <= MAX_PARKED_LANES + 1; i++) s.run(own(i), { lane: `l${i}` });
      assert.equal(s.lanes.length, MAX_PARKED_LANES + 1);
      assert.ok(!s.lanes.includes('l0') && s.lanes.includes('l1'), 'the oldest lane is gone');
      assert.equal(s.run(own(0), { lane: 'l0' }).reused, 0, 'a dropped lane starts over');
      assert.equal(s.run(own(5), { lane: 'l5' }).reused, 19, 'a kept lane reuses');
      s.reset();
      assert.deepEqual(s.lanes, ['l5']);
      assert.equal(s.run(own(5), { lane: 'l5' }).reused, 0, 'reset forgets every lane');
    } finally {
      s.dispose();
    }
    // A lane's KV cache here: 3 layers × 48 positions (the whole context) × 2 KV heads × 4 × 2 (K
    // and V) × 4 bytes = 9 KiB: a budget of 12 KiB keeps one parked lane.
    const small = make(k, { parkedLaneBytes: 12 << 10 });
    try {
      for (const [i, lane] of ['a', 'b', 'c'].entries()) small.run(i === 1 ? prompt : randomTokens(20, c.vocabSize, 200 + i), { lane, capture: ['hook_embed'] });
      assert.deepEqual(small.lanes, ['c', 'b']);
      const r = small.run(longer, { lane: 'b', capture: ['hook_embed'] });
      assert.equal(r.reused, prompt.length);
      sameRun(r, fresh(k, longer, { capture: ['hook_embed'] }), 'a kept lane within the byte budget');
    } finally {
      small.dispose();
    }
    // A lane's last attention summary counts too: with 8 bins over 20 positions its state is
    // 3 × 6 × 20 entropies + 3 × 6 × 8 × 8 sums + 4 × 18 × 8 sums at the bins, in f64: 16.5 KiB.
    // Beside its 9 KiB of KV cache, that is past a 12 KiB budget (the lane is dropped when parked)
    // and within 32 KiB (it is kept, and a run back in it reuses its prefix and its summary's).
    const summary = { attention: { size: 8 } };
    for (const [budget, kept] of [[12 << 10, false], [32 << 10, true]] as const) {
      const s = make(k, { parkedLaneBytes: budget });
      try {
        s.run(prompt, { lane: 'b', summary });
        s.run(randomTokens(20, c.vocabSize, 300), { lane: 'c' });
        assert.deepEqual(s.lanes, kept ? ['c', 'b'] : ['c'], `${budget} bytes`);
        // the last token edited: the same bins, so the run starts at the start of the bin that
        // holds position 19 (⌈7 · 20 / 8⌉ = 18)
        const edited = [...prompt.slice(0, -1), (prompt.at(-1)! + 1) % c.vocabSize];
        const r = s.run(edited, { lane: 'b', summary });
        assert.equal(r.reused, kept ? 18 : 0, `${budget} bytes`);
        const want = fresh(k, edited, { summary }).attentionSummary;
        assert.ok(want && r.attentionSummary, 'both runs give a summary');
        assert.deepEqual(r.attentionSummary, want, `${budget} bytes: the summary`);
      } finally {
        s.dispose();
      }
    }
  });
}

test('a lane must be a non-empty string', () => {
  const s = make(KERNELS[0]!);
  for (const lane of ['', 3, {}]) {
    assert.throws(() => s.run(prompt, { lane: lane as string }), (e: unknown) => e instanceof UsageError && /run lane/.test((e as Error).message), String(lane));
  }
  s.dispose();
});

test('the engine runs each slot in its own lane: an ablate slot between two prompt edits costs the prompt nothing', async () => {
  const root = resolve(fileURLToPath(import.meta.url), '../../..');
  const bytes = readFileSync(resolve(root, '../shared/models/tinystories-260k/stories260K.gguf'));
  const engine = new Engine();
  const info = await engine.load({ kind: 'files', files: [new File([bytes], 'stories260K.gguf')] });
  const p = randomTokens(20, info.config.vocabSize, 8), q = [...p, ...randomTokens(5, info.config.vocabSize, 9)];
  const capture = ['blocks.*.attn.hook_pattern'];
  await engine.run({ tokens: p, capture, slot: 'prompt:p' });
  await engine.run({ tokens: p, edits: ablate, slot: 'ablate:c' });
  const edited = await engine.run({ tokens: q, capture, slot: 'prompt:p' });
  assert.equal(edited.reused, p.length);
  const ablated = await engine.run({ tokens: q, edits: ablate, slot: 'ablate:c' });
  assert.equal(ablated.reused, p.length);
  // the same numbers as a run from scratch (recording something: no rows are copied from another lane)
  const first = await engine.run({ tokens: q, edits: ablate, capture: ['hook_embed'], slot: 'ablate:other' });
  assert.equal(first.reused, 0);
  const [a, b] = await Promise.all([engine.logits(ablated), engine.logits(first)]);
  same(a.data, b.data, 'ablated logits');
  assert.deepEqual((await engine.stats()).lanes, ['ablate:other', 'ablate:c', 'prompt:p']);
});
