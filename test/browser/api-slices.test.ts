// The attention summary on WebGPU, where the rows are read back from the GPU: against the CPU's
// summary of the same prompt, with the readback budget small enough that the run takes chunks of
// a few positions (the bound that keeps a long prompt's summary from reading back every layer of
// a 64-position chunk at once), and with the patterns captured too (summary from the stored rows).
import { expect } from 'chai';
import { gpuOrSkip } from '../support/gpu.ts';
import { loadStories, storiesRef } from '../support/gpu-models.ts';
import { Session } from '../../src/engine/session.ts';

describe('attention summary on WebGPU [webgpu]', function () {
  this.timeout(120000);

  it('[webgpu] equals the CPU summary, in small chunks under a readback budget, and from stored patterns', async function () {
    const ctx = await gpuOrSkip(this);
    const [weights, ref] = await Promise.all([loadStories(), storiesRef()]);
    const c = weights.config;
    const tokens = ref.token_ids.slice(0, 37);
    const n = tokens.length, rowBytes = 4 * c.nLayers * c.nHeads * n;      // one position of every layer's rows
    const summary = { attention: { size: 6 } };
    const cpu = new Session(weights).run(tokens, { summary }).attentionSummary!;

    const gpu = new Session(weights, { backend: { kind: 'webgpu', ctx }, summaryReadbackBytes: 3 * rowBytes });
    const before = { ...ctx.stats };
    const r = await gpu.runAsync(tokens, { summary });
    expect(gpu.backend).to.equal('webgpu');
    expect(r.reused).to.equal(0);
    expect(r.trace.size).to.equal(0);
    // chunks of 3 positions: 13 steps, none reading back more than the budget (plus the last logits row)
    expect(ctx.stats.submits - before.submits).to.equal(Math.ceil(n / 3));
    expect(ctx.stats.readbackBytes - before.readbackBytes).to.be.at.most(Math.ceil(n / 3) * 3 * rowBytes + 4 * c.vocabSize);
    const s = r.attentionSummary!;
    expect([s.nLayers, s.nHeads, s.nPos, s.size]).to.deep.equal([c.nLayers, c.nHeads, n, 6]);
    for (const k of ['thumbs', 'entropy', 'first', 'prev'] as const) {
      cpu[k].forEach((v, i) => {
        if (Number.isNaN(v)) expect(Number.isNaN(s[k][i]!), `${k}[${i}] NaN`).to.equal(true);
        else expect(Math.abs(v - s[k][i]!), `${k}[${i}]: ${s[k][i]} vs the CPU's ${v}`).to.be.below(1e-5);
      });
    }
    // the same run keeping the patterns: the summary comes from the stored rows, the same numbers
    // (the GPU computes each row the same way whatever the chunk)
    const both = await gpu.runAsync(tokens, { summary, capture: 'blocks.*.attn.hook_pattern' });
    expect(both.trace.size).to.equal(c.nLayers);
    for (const k of ['thumbs', 'entropy', 'first', 'prev'] as const) {
      both.attentionSummary![k].forEach((v, i) => expect(Math.abs(v - s[k][i]!) < 1e-6 || (Number.isNaN(v) && Number.isNaN(s[k][i]!)), `${k}[${i}]`).to.equal(true));
    }
    gpu.dispose();
  });
});
