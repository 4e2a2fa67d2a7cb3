// The engine through its worker (src/worker/client.ts) against the same Engine in the page's own
// thread: the same answers bit for bit, slices that arrive as transferred buffers holding only
// what was asked, named errors that keep their class, cancellation mid-run, slots, and the logit
// lens, logits rows and attention summary on a WebGPU trace.
import { expect } from 'chai';
import { Engine } from '../../src/engine/api.ts';
import { createEngineClient, type EngineClient } from '../../src/worker/client.ts';
import { resolveModelSource } from '../../src/worker/loading/index.ts';
import { CancelledError, UsageError } from '../../src/engine/errors.ts';
import { gpuOrSkip } from '../support/gpu.ts';
import { STORIES, wideModelFile, longPrompt, sameBits, sameSlice, until } from './api-fixtures.ts';

describe('engine API through the worker', function () {
  this.timeout(60000);
  let client: EngineClient;
  const local = new Engine({ resolveSource: resolveModelSource });

  before(async () => {
    client = createEngineClient();
    await Promise.all([client.load(STORIES, { backend: 'cpu' }), local.load(STORIES, { backend: 'cpu' })]);
  });
  after(() => client.dispose());

  it('answers identically in-thread and through the worker, bit for bit', async () => {
    const text = 'Once upon a time, there was a little girl named Lily. She loved to play outside.';
    const [tw, tl] = await Promise.all([client.tokenize(text), local.tokenize(text)]);
    expect(tw).to.deep.equal(tl);
    const req = {
      tokens: tw.ids, requestId: 'prompt-1', slot: 'cell-1', logits: 'all' as const,
      capture: ['blocks.*.attn.hook_pattern', 'blocks.*.hook_resid_post', 'hook_embed', 'blocks.3.ffn.hook_gate'],
      summary: { attention: { size: 7 } },
    };
    const [hw, hl] = await Promise.all([client.run(req), local.run(req)]);
    const { id: _a, ms: _b, ...restW } = hw, { id: _c, ms: _d, ...restL } = hl;
    expect(restW).to.deep.equal(restL);
    expect(hw.requestId).to.equal('prompt-1');
    expect(hw.tokens).to.deep.equal(tw.ids);

    const n = hw.nPos;
    const asks: [string, (e: Engine | EngineClient, id: string) => Promise<object>][] = [
      ['attention all heads', (e, id) => e.attention(id, { layer: 2 })],
      ['attention one head, a window', (e, id) => e.attention(id, { layer: 4, head: 6, queries: [3, n], keys: [0, 9] })],
      ['activation', (e, id) => e.activation(id, 'blocks.3.mlp.hook_pre', { positions: [1, 4] })],
      ['topK', (e, id) => e.topK(id, { position: 7, k: 20, temperature: 0.8 })],
      ['logitLens', (e, id) => e.logitLens(id, { positions: [0, 5, n - 1], k: 10, target: 403 })],
      ['hookNorms', (e, id) => e.hookNorms(id, ['hook_embed', 'blocks.0.attn.hook_pattern', 'blocks.4.hook_resid_post'])],
      ['attentionSummary', (e, id) => e.attentionSummary(id)],
      ['logits', (e, id) => e.logits(id, { position: 5 })],
      ['pca', (e, id) => e.pca(id, { hooks: ['hook_embed', 'blocks.0.hook_resid_post', 'blocks.4.hook_resid_post'], components: 3, positions: [1, n] })],
    ];
    for (const [what, ask] of asks) {
      const [w, l] = await Promise.all([ask(client, hw.id), ask(local, hl.id)]);
      sameSlice(w, l, what);
      expect((w as { traceId: string }).traceId, what).to.equal(hw.id);
      expect((w as { requestId: string }).requestId, what).to.equal('prompt-1');
    }
    // a slice arrives in a buffer of its own, of exactly its size (transferred, not a view of the trace)
    const head = await client.attention(hw, { layer: 1, head: 0, queries: [0, 4], keys: [0, 4] });
    expect(head.data).to.be.instanceOf(Float32Array);
    expect(head.data.buffer.byteLength).to.equal(16 * 4);
    // the slices equal the parts of the whole pattern
    const whole = await client.activation(hw, 'blocks.1.attn.hook_pattern');
    for (let q = 0; q < 4; q++) sameBits(head.data.subarray(q * 4, q * 4 + 4), whole.data.subarray(q * n, q * n + 4), `row ${q}`);
    // the lens at the last layer is the model's own logits
    const lens = await client.logitLens(hw, { layers: [4], positions: [n - 1], k: 20 });
    const top = await client.topK(hw, { k: 20 });
    sameBits(lens.ids, top.ids, 'lens ids');
    sameBits(lens.logits, top.logits, 'lens logits');
    // a lens of every layer and position through the worker reports its progress across the boundary
    const reports: number[][] = [];
    const all = await client.logitLens(hw, { positions: [...Array(n).keys()], k: 3 }, { onProgress: (done, total) => reports.push([done, total]) });
    expect(all.ids.length).to.equal(6 * n * 3);
    await new Promise((r) => setTimeout(r, 0));                         // the last report's message
    expect(reports.length, 'a report before each batch').to.equal(Math.ceil((6 * n) / 64));
    expect(reports.every(([done, total], i) => total === 6 * n && done === 64 * i)).to.equal(true);
    const stats = await client.stats();
    expect(stats.bytesOut).to.be.greaterThan(0);
    expect(await client.pieces(tw.ids)).to.deep.equal(await local.pieces(tw.ids));
    expect(await client.pieces([13])).to.deep.equal(['<0x0A>']);
    // a summary-only run (patterns not stored) gives the same summary through the worker
    const only = { tokens: tw.ids, summary: { attention: { size: 7 } }, slot: 'summary-only', requestId: 'summary-1' };
    const [sw, sl] = await Promise.all([client.run(only), local.run(only)]);
    expect(sw.hooks).to.deep.equal([]);
    sameSlice(await client.attentionSummary(sw), await local.attentionSummary(sl), 'summary only');
    const a = await client.attentionSummary(sw), b = await client.attentionSummary(hw);
    sameBits(a.thumbs, b.thumbs, 'summary from chunks = from the stored patterns');
  });

  it('edits cross to the worker (their arrays copied, the caller keeps them) and give the in-thread answer bit for bit', async () => {
    const tokens = [1, 403, 407, 261, 378, 300];
    const clean = await local.run({ tokens, slot: 'edit-src', capture: 'blocks.2.hook_resid_pre' });
    const values = (await local.activation(clean, 'blocks.2.hook_resid_pre')).data;
    const vector = new Float32Array(64).fill(0.3);
    const req = { tokens: [1, 403, 407, 261, 378, 12], slot: 'edits', requestId: 'edits-1', logits: 'all' as const, capture: 'blocks.2.hook_resid_pre', edits: [
      { hook: 'blocks.2.hook_resid_pre', op: 'patch' as const, values, positions: [0, 1, 2, 3, 4, 5] },
      { hook: 'blocks.1.hook_resid_post', op: 'steer' as const, vector, strength: 2, positions: [5] },
    ] };
    const [hw, hl] = await Promise.all([client.run(req), local.run(req)]);
    expect(values.length, 'the caller still holds its array').to.equal(6 * 64);
    const { id: _a, ms: _b, ...restW } = hw, { id: _c, ms: _d, ...restL } = hl;
    expect(restW).to.deep.equal(restL);
    expect(hw.edits.map((e) => e.op)).to.deep.equal(['patch', 'steer']);
    sameSlice(await client.activation(hw, 'blocks.2.hook_resid_pre'), await local.activation(hl, 'blocks.2.hook_resid_pre'), 'edited resid_pre');
    const bad = await client.run({ tokens, edits: [{ hook: 'blocks.1.hook_resid_post', op: 'steer', vector: new Float32Array(3) }] }).catch((e: unknown) => e);
    expect(bad).to.be.instanceOf(UsageError);
    expect((bad as Error).message).to.match(/edits\[0\]\.vector/);
  });

  it('named errors keep their class and message across the worker', async () => {
    const h = await client.run({ tokens: [1, 403, 407], slot: 'errors' });
    const err = await client.attention(h, { layer: 0 }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(UsageError);
    expect((err as UsageError).code).to.equal('usage');
    expect((err as Error).message).to.match(/holds no blocks\.0\.attn\.hook_pattern.*Capture it/);
    const bad = await client.run({ tokens: [1, 5000] }).catch((e: unknown) => e);
    expect(bad).to.be.instanceOf(UsageError);
    const none = await client.attentionSummary(h).catch((e: unknown) => e);
    expect(none).to.be.instanceOf(UsageError);
    expect((none as Error).message).to.match(/holds no attention summary/);
    const early = await client.logits(h, { position: 0 }).catch((e: unknown) => e);
    expect(early).to.be.instanceOf(UsageError);
    const piece = await client.pieces([512]).catch((e: unknown) => e);
    expect(piece).to.be.instanceOf(UsageError);
    expect((piece as Error).message).to.match(/512 is not a token id: the vocabulary has 512 tokens/);
  });

  it('a newer run in a slot cancels the pending one; an AbortSignal cancels mid-run and the next result is right', async () => {
    const file = wideModelFile();
    const near = new Engine();
    await Promise.all([client.load({ kind: 'files', files: [file] }, { backend: 'cpu' }), near.load({ kind: 'files', files: [file] }, { backend: 'cpu' })]);
    const long = longPrompt(512, 1024);
    // a prompt edit while the previous run is pending
    const first = client.run({ tokens: long, slot: 'cell', requestId: 'edit-1' });
    await until(async () => (await client.stats()).cachedPositions > 0, 'the first chunk');
    const second = client.run({ tokens: long.slice(0, 100), slot: 'cell', requestId: 'edit-2' });
    const e1 = await first.catch((e: unknown) => e);
    expect(e1).to.be.instanceOf(CancelledError);
    expect((e1 as CancelledError).requestId).to.equal('edit-1');
    expect((await second).requestId).to.equal('edit-2');

    // an AbortSignal: rejects at once, and the worker stops between chunks
    const ac = new AbortController();
    const aborted = client.run({ tokens: long, slot: 'other', capture: 'blocks.5.attn.hook_pattern' }, { signal: ac.signal });
    await until(async () => (await client.stats()).cachedPositions >= 64, 'a chunk of the long run');
    ac.abort();
    expect(await aborted.catch((e: unknown) => e)).to.be.instanceOf(CancelledError);
    await until(async () => (await client.stats()).pending === 0, 'the worker to stop');
    const { cachedPositions } = await client.stats();
    expect(cachedPositions).to.be.within(64, 511);
    // the engine is usable and right: the same numbers as a fresh engine in the page
    const next = long.slice(0, 150).concat([9, 8, 7]);
    const req = { tokens: next, capture: 'blocks.5.attn.hook_pattern', requestId: 'after-cancel' };
    const [hw, hl] = await Promise.all([client.run(req), near.run(req)]);
    expect(hw.reused).to.equal(Math.min(cachedPositions, 150));
    sameSlice(await client.topK(hw, { k: 50 }), await near.topK(hl, { k: 50 }), 'topK after cancel');
    sameSlice(await client.attention(hw, { layer: 5 }), await near.attention(hl, { layer: 5 }), 'pattern after cancel');
    await client.load(STORIES, { backend: 'cpu' });
  });

  it('[webgpu] on WebGPU the logit lens at the last layer matches the model logits', async function () {
    await gpuOrSkip(this);
    const gpu = createEngineClient();
    try {
      const info = await gpu.load(STORIES, { backend: 'webgpu' });
      expect(info.backend).to.equal('webgpu');
      const { ids } = await gpu.tokenize('Once upon a time');
      const h = await gpu.run({ tokens: ids, capture: 'blocks.*.hook_resid_post', logits: 'all' });
      expect(h.backend).to.equal('webgpu');
      for (let p = 0; p < h.nPos; p++) {
        const lens = await gpu.logitLens(h, { layers: [4], positions: [p], k: 5 });
        const top = await gpu.topK(h, { position: p, k: 5 });
        expect([...lens.ids], `position ${p}`).to.deep.equal([...top.ids]);
        // the lens runs on the CPU from the GPU's residual; the GPU computed the logits itself
        lens.logits.forEach((v, i) => expect(Math.abs(v - top.logits[i]!)).to.be.below(1e-4));
      }
      // whole logits rows: computed from the GPU's residual by the CPU head, against the GPU's own rows
      const resid = await gpu.run({ tokens: ids, capture: 'blocks.4.hook_resid_post', slot: 'resid' });
      for (let p = 0; p < h.nPos; p++) {
        const own = await gpu.logits(h, { position: p }), computed = await gpu.logits(resid, { position: p });
        expect(computed.data.length).to.equal(512);
        own.data.forEach((v, i) => expect(Math.abs(v - computed.data[i]!), `logits ${p}, ${i}`).to.be.below(1e-4));
      }
      // the attention summary on WebGPU (rows read back from the GPU) against the CPU's
      const long = (await gpu.tokenize('Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog.')).ids;
      const req = { tokens: long, summary: { attention: { size: 9 } }, slot: 'summary' };
      const [sg, sc] = [await gpu.attentionSummary(await gpu.run(req)), await client.attentionSummary(await client.run(req))];
      expect([sg.nLayers, sg.nHeads, sg.nPos, sg.size]).to.deep.equal([sc.nLayers, sc.nHeads, sc.nPos, 9]);
      for (const k of ['thumbs', 'entropy', 'first', 'prev'] as const) {
        sc[k].forEach((v, i) => {
          if (Number.isNaN(v)) expect(Number.isNaN(sg[k][i]!), `${k}[${i}] NaN`).to.equal(true);
          else expect(Math.abs(v - sg[k][i]!), `${k}[${i}]`).to.be.below(1e-4);
        });
      }
      // with the patterns captured too (the summary then comes from the stored rows)
      const both = await gpu.attentionSummary(await gpu.run({ ...req, capture: 'blocks.*.attn.hook_pattern', slot: 'both' }));
      sameBits(both.thumbs, sg.thumbs, 'WebGPU summary from chunks = from stored patterns');
    } finally {
      gpu.dispose();
    }
  });

  it('refuses a capture predicate (it cannot cross to the worker) and traces of an older model', async () => {
    const h = await client.run({ tokens: [1, 403], slot: 'old', capture: 'hook_embed' });
    await client.load(STORIES, { backend: 'cpu' });
    const gone = await client.activation(h, 'hook_embed').catch((e: unknown) => e);
    expect(gone).to.be.instanceOf(UsageError);
    expect((gone as Error).message).to.match(/is gone/);
    const pred = await client.run({ tokens: [1], capture: () => true }).catch((e: unknown) => e);
    expect(pred).to.be.instanceOf(TypeError);
  });
});
