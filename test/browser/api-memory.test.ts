// Memory: 200 successive prompt edits on stories260K, each followed by the slices a page asks for
// (an attention view, a next-token view, the logit lens), leave the worker's memory flat.
//
// Measured with performance.measureUserAgentSpecificMemory() (the page is cross-origin isolated),
// which reports the worker's JavaScript memory, ArrayBuffers included, at its next garbage
// collection: the test keeps the worker allocating until the measurement arrives. The engine's own
// count of the traces it holds is checked too.
import { expect } from 'chai';
import { createEngineClient, type EngineClient } from '../../src/worker/client.ts';
import { STORIES } from './api-fixtures.ts';

interface Measurement { breakdown: { bytes: number; attribution: { scope: string }[] }[] }
type Measure = () => Promise<Measurement>;

/** The worker's bytes at its next GC (made to come soon by tokenizing a long text in it). */
async function workerBytes(client: EngineClient, measure: Measure): Promise<number> {
  const p = measure();
  let done = false;
  void p.then(() => { done = true; }, () => { done = true; });
  while (!done) await client.tokenize('and then '.repeat(3000));
  const m = await p;
  return m.breakdown.filter((b) => b.attribution.some((a) => a.scope === 'DedicatedWorkerGlobalScope')).reduce((s, b) => s + b.bytes, 0);
}

describe('engine worker memory', function () {
  this.timeout(90000);

  it('200 prompt edits leave the worker\'s memory flat (measureUserAgentSpecificMemory)', async function () {
    const perf = performance as Performance & { measureUserAgentSpecificMemory?: Measure };
    if (!globalThis.crossOriginIsolated || !perf.measureUserAgentSpecificMemory) {
      console.warn('SKIPPED: measureUserAgentSpecificMemory needs a cross-origin isolated page');
      this.skip();
    }
    const measure = perf.measureUserAgentSpecificMemory.bind(perf);
    const client = createEngineClient();
    try {
      // one kernel thread: Chromium's measurement waits on every worker of the page, and kernel
      // threads idling in Atomics.wait never answer it (the traces live in the engine's thread)
      await client.load(STORIES, { backend: 'cpu', threads: 1 });
      // Chromium answers the first measurement of a page late (~10 s): take it during the warm-up
      const primed = workerBytes(client, measure);
      const capture = ['blocks.*.attn.hook_pattern', 'blocks.*.hook_resid_post', 'hook_embed'];
      let prompt = (await client.tokenize('Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends.')).ids;
      let before = 0, maxTraceBytes = 0;
      for (let edit = 0; edit < 200; edit++) {
        // an edit: mostly near the end (typing), every tenth in the middle; a token added, then one deleted
        prompt = [...prompt];
        const at = edit % 10 === 0 ? 1 + (edit * 7) % (prompt.length - 1) : prompt.length - 1 - (edit % 3);
        prompt[at] = 3 + (edit * 13) % 500;
        if (edit % 2 === 0) prompt.push(5 + edit % 400); else prompt.pop();
        const h = await client.run({ tokens: prompt, capture, slot: 'cell', requestId: `edit-${edit}` });
        expect(h.requestId).to.equal(`edit-${edit}`);
        await Promise.all([client.attention(h, { layer: edit % 5 }), client.topK(h, { k: 20 }), client.logitLens(h, { k: 5 })]);
        const s = await client.stats();
        expect(s.traces, `traces held after edit ${edit}`).to.equal(1);
        maxTraceBytes = Math.max(maxTraceBytes, s.traceBytes);
        if (edit === 19) { await primed; before = await workerBytes(client, measure); }
      }
      const after = await workerBytes(client, measure);
      const growth = after - before;
      // Keeping the 180 superseded traces would add 180 × ~maxTraceBytes (about 60 MB); the bound
      // is a small fraction of that, and of the worker's whole memory.
      const bound = 2 << 20;
      console.log(`worker memory after edit 20: ${(before / 2 ** 20).toFixed(2)} MiB, after 200: ${(after / 2 ** 20).toFixed(2)} MiB, growth ${(growth / 1024).toFixed(0)} KiB (bound ${bound / 2 ** 20} MiB; one trace ${(maxTraceBytes / 1024).toFixed(0)} KiB)`);
      expect(180 * maxTraceBytes).to.be.above(8 * bound);
      expect(growth).to.be.below(bound);
    } finally {
      client.dispose();
    }
  });
});
