// A session's lanes on WebGPU (src/engine/session.ts RunOptions.lane): the KV cache buffers of the
// lanes not in use are swapped out of the run state and back, a run that records nothing copies
// another lane's KV rows on the GPU, and a lane change drops the greedy look-ahead. Each result is
// checked against the CPU (exact f32 activations, the readable twins) within the tolerance of
// gpu-forward.test.ts, and the reuse counts show that each lane kept its own prefix. An attention
// summary resumes the lane's last one, as on the CPU.
import { expect } from 'chai';
import { gpuOrSkip } from '../support/gpu.ts';
import { loadStories, storiesRef, maxAbs } from '../support/gpu-models.ts';
import { Session } from '../../src/engine/session.ts';
import type { Edit } from '../../src/engine/edits.ts';

describe('lanes on WebGPU [webgpu]', function () {
  this.timeout(120000);

  it('[webgpu] a clean lane and an ablated lane taking turns each reuse their own prefix; a new lane copies KV rows', async function () {
    const ctx = await gpuOrSkip(this);
    const [weights, ref] = await Promise.all([loadStories(), storiesRef()]);
    const ablate: Edit[] = [{ hook: 'blocks.2.attn.hook_z', op: 'zero', heads: [1, 4] }];
    const cpu = new Session(weights, { activationQuant: 'none', kernels: 'js' });
    const gpu = new Session(weights, { backend: { kind: 'webgpu', ctx }, chunkSize: 7 });
    const capture = ['blocks.*.hook_resid_post'];
    // from 60 positions to 75: the active lane's cache grows past 64 positions while another is parked
    const long = ref.token_ids.slice(0, 75);
    for (let n = 60; n <= long.length; n += 5) {
      const t = long.slice(0, n);
      const a = await gpu.runAsync(t, { lane: 'prompt', capture, logits: 'all' });
      const b = await gpu.runAsync(t, { lane: 'ablate', edits: ablate });
      expect(gpu.backend).to.equal('webgpu');
      if (n > 60) {
        expect(a.reused, `prompt lane at ${n}`).to.equal(n - 5);
        expect(b.reused, `ablate lane at ${n}`).to.equal(n - 5);
      }
      const ea = cpu.run(t, { capture, logits: 'all' }), eb = cpu.run(t, { edits: ablate });
      expect(maxAbs(a.logits, ea.logits), `prompt lane logits at ${n}`).to.be.at.most(1e-4);
      for (const [name, e] of ea.trace) {
        const scale = e.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        expect(maxAbs(a.trace.get(name)!.data, e.data), `${name} at ${n}`).to.be.at.most(1e-5 * (1 + scale));
      }
      expect(maxAbs(b.logits, eb.logits), `ablate lane logits at ${n}`).to.be.at.most(1e-4);
      expect(maxAbs(a.logits.subarray(a.logits.length - b.logits.length), b.logits), 'the ablation changes the logits').to.be.above(1e-4);
    }
    // a new lane that records nothing: the prompt lane's rows copied on the GPU
    const next = [...long, 9];
    const g = await gpu.runAsync(next, { lane: 'generate' });
    expect(g.reused).to.equal(long.length);
    expect(maxAbs(g.logits, cpu.run(next).logits), 'copied lane logits').to.be.at.most(1e-4);
    expect(gpu.lanes).to.deep.equal(['generate', 'ablate', 'prompt']);
    gpu.dispose();
  });

  it('[webgpu] an attention summary over as many positions resumes the lane\'s last one from the changed bin', async function () {
    const ctx = await gpuOrSkip(this);
    const [weights, ref] = await Promise.all([loadStories(), storiesRef()]);
    const prompt = ref.token_ids.slice(0, 40), size = 6;
    const o = { summary: { attention: { size } }, lane: 'overview' };
    const gpu = new Session(weights, { backend: { kind: 'webgpu', ctx }, chunkSize: 7 });
    const fresh = async (t: number[]) => {
      const s = new Session(weights, { backend: { kind: 'webgpu', ctx }, chunkSize: 7 });
      try { return await s.runAsync(t, o); } finally { s.dispose(); }
    };
    const cpu = new Session(weights, { activationQuant: 'none', kernels: 'js' });
    expect((await gpu.runAsync(prompt, o)).reused).to.equal(0);
    let tokens = prompt;
    for (const at of [39, 17]) {
      tokens = tokens.map((t, i) => (i === at ? (t + 3) % weights.config.vocabSize : t));
      const r = await gpu.runAsync(tokens, o);
      expect(gpu.backend).to.equal('webgpu');
      // the forward pass reruns from the first position of the changed position's bin, not from 0
      expect(r.reused, `change at ${at}`).to.equal(Math.ceil((Math.floor((at * size) / 40) * 40) / size));
      expect(r.attentionSummary, `change at ${at}: a fresh session's summary, bit for bit`).to.deep.equal((await fresh(tokens)).attentionSummary);
      const want = cpu.run(tokens, o).attentionSummary!;
      expect(maxAbs(r.attentionSummary!.thumbs, want.thumbs), `change at ${at}: the CPU's thumbnails`).to.be.at.most(1e-5);
      expect(maxAbs(r.attentionSummary!.entropy, want.entropy), `change at ${at}: the CPU's entropies`).to.be.at.most(1e-4);
    }
    gpu.dispose();
  });

  it('[webgpu] greedy steps ahead in one lane are dropped by a run in another, and decoding goes on right', async function () {
    const ctx = await gpuOrSkip(this);
    const [weights, ref] = await Promise.all([loadStories(), storiesRef()]);
    const prompt = ref.token_ids.slice(0, 12);
    const cpu = new Session(weights, { activationQuant: 'none', kernels: 'js' });
    const gpu = new Session(weights, { backend: { kind: 'webgpu', ctx } });
    const seq = [...prompt];
    for (let step = 0; step < 6; step++) {
      const r = await gpu.runAsync(seq, { lane: 'gen', logits: 'top', topK: 1, ahead: 3 });
      const want = cpu.run(seq, { logits: 'top', topK: 1 }).top!.ids[0]!;
      expect(r.top!.ids[0], `step ${step}`).to.equal(want);
      seq.push(want);
      // another lane runs between the steps (its own tokens: nothing to copy)
      if (step % 2 === 0) await gpu.runAsync(ref.token_ids.slice(40, 50 + step), { lane: 'other', capture: ['hook_embed'] });
    }
    expect(gpu.backend).to.equal('webgpu');
    gpu.dispose();
  });
});
