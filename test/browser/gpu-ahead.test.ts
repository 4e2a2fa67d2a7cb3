// Greedy look-ahead on WebGPU (src/engine/session.ts RunOptions.ahead): generateAsync keeps the next
// decode steps submitted, each fed the previous step's argmax on the GPU. What must hold: the same
// tokens (the golden stories260K decode), every step after the first fed on the GPU, the cache
// those steps wrote as good as a fresh run's, and any run that does not follow the look-ahead
// (another token, a capture, a reset, the end of the context) computed as if there had been none.
import { expect } from 'chai';
import { gpuOrSkip } from '../support/gpu.ts';
import { loadStories, storiesRef, maxAbs } from '../support/gpu-models.ts';
import { Session } from '../../src/engine/session.ts';
import { generateAsync } from '../../src/engine/generate.ts';
import type { GpuContext } from '../../src/engine/gpu/context.ts';

/** A fresh WebGPU session's answer for `tokens`: nothing cached, nothing ahead. */
async function fresh(ctx: GpuContext, tokens: number[], options: Parameters<Session['runAsync']>[1] = {}) {
  const session = new Session(await loadStories(), { backend: { kind: 'webgpu', ctx } });
  return session.runAsync(tokens, options);
}

/** Greedy decoding one runAsync at a time, never ahead. */
async function stepwise(session: Session, prompt: number[], n: number): Promise<number[]> {
  const tokens = [...prompt];
  for (let i = 0; i < n && tokens.length <= session.config.nCtx; i++) {
    const { top } = await session.runAsync(tokens, { logits: 'top', topK: 1 });
    tokens.push(top!.ids[0]!);
  }
  return tokens.slice(prompt.length);
}

describe('WebGPU greedy look-ahead [webgpu]', function () {
  this.timeout(180000);

  it('[webgpu] generateAsync: the golden tokens, every step after the first fed on the GPU (the KV cache growing under them), and a cache as good as a fresh run', async function () {
    const ctx = await gpuOrSkip(this);
    const [weights, ref] = await Promise.all([loadStories(), storiesRef()]);
    const session = new Session(weights, { backend: { kind: 'webgpu', ctx } });
    const before = { ...ctx.stats };
    const ids: number[] = [];
    // 70 tokens: the cache grows from 64 positions to 128 while steps are ahead (gpu/state.ts)
    for await (const id of generateAsync(session, [1], { maxTokens: 70, temperature: 0, stopAtEos: false })) ids.push(id);
    expect(ids).to.deep.equal(ref.token_ids.slice(1, 71));
    expect(ctx.stats.chained - before.chained).to.equal(69);
    expect(ctx.stats.submits - before.submits).to.equal(70);     // nothing computed past the last token
    expect(ctx.stats.readbackBytes - before.readbackBytes).to.equal(70 * 4);
    // the next position from the cached rows the chained steps wrote, against a full recomputation
    const next = await session.runAsync([1, ...ids], { logits: 'last' });
    expect(next.reused).to.equal(70);
    const full = await fresh(ctx, [1, ...ids], { logits: 'last' });
    const scale = full.logits.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(maxAbs(next.logits, full.logits)).to.be.at.most(1e-5 * (1 + scale));
    // sampling (top-k 40, temperature 1) needs its logits on the CPU: nothing is chained
    const chained = ctx.stats.chained;
    for await (const _ of generateAsync(session, [1], { maxTokens: 5, temperature: 1, topK: 40, seed: 3 })) { /* drawn */ }
    expect(ctx.stats.chained).to.equal(chained);
  });

  it('[webgpu] another token, a capture, a reset: the steps ahead are dropped and the run is a fresh one', async function () {
    const ctx = await gpuOrSkip(this);
    const [weights, ref] = await Promise.all([loadStories(), storiesRef()]);
    const session = new Session(weights, { backend: { kind: 'webgpu', ctx } });
    const prompt = ref.token_ids.slice(0, 12);
    const argmax = ref.token_ids[12]!;
    const other = argmax === 7 ? 8 : 7;

    // another token than the argmax the look-ahead was fed
    let chained = ctx.stats.chained;
    const first = await session.runAsync(prompt, { logits: 'top', topK: 1, ahead: 3 });
    expect(first.top!.ids[0]).to.equal(argmax);
    expect(ctx.stats.chained - chained).to.equal(3);
    const swapped = await session.runAsync([...prompt, other], { logits: 'last' });
    expect(swapped.reused).to.equal(12);
    const swappedRef = await fresh(ctx, [...prompt, other], { logits: 'last' });
    expect(maxAbs(swapped.logits, swappedRef.logits)).to.be.at.most(1e-4);
    // ... and greedy decoding from there: the tokens of decoding without look-ahead
    const after = await stepwise(session, [...prompt, other], 6);
    const ahead: number[] = [];
    session.reset();
    for await (const id of generateAsync(session, [...prompt, other], { maxTokens: 6, temperature: 0, stopAtEos: false })) ahead.push(id);
    expect(ahead).to.deep.equal(after);

    // the argmax itself, but with a capture: recomputed with the hook recorded
    session.reset();
    await session.runAsync(prompt, { logits: 'top', topK: 1, ahead: 3 });
    const captured = await session.runAsync([...prompt, argmax], { logits: 'top', topK: 1, capture: ['blocks.0.hook_resid_post'] });
    const capturedRef = await fresh(ctx, [...prompt, argmax], { logits: 'top', topK: 1, capture: ['blocks.0.hook_resid_post'] });
    expect(captured.top!.ids[0]).to.equal(capturedRef.top!.ids[0]).and.to.equal(ref.token_ids[13]);
    const a = captured.trace.get('blocks.0.hook_resid_post')!, b = capturedRef.trace.get('blocks.0.hook_resid_post')!;
    expect(a.shape).to.deep.equal([13, weights.config.dModel]);
    expect(maxAbs(a.data, b.data)).to.be.at.most(1e-5);

    // a reset while steps are ahead, then an unrelated prompt
    chained = ctx.stats.chained;
    await session.runAsync(prompt, { logits: 'top', topK: 1, ahead: 2 });
    expect(ctx.stats.chained - chained).to.equal(2);
    session.reset();
    const unrelated = [1, 400, 401, 402];
    const r = await session.runAsync(unrelated, { logits: 'last' });
    expect(r.reused).to.equal(0);
    const rRef = await fresh(ctx, unrelated, { logits: 'last' });
    expect(maxAbs(r.logits, rRef.logits)).to.be.at.most(1e-5);
  });

  it('[webgpu] at the end of the context: no step ahead past it, the same tokens as without look-ahead', async function () {
    const ctx = await gpuOrSkip(this);
    // the context cut to 40 positions (stories260K's 512 take minutes to fill on SwiftShader)
    const loaded = await loadStories();
    const weights = { ...loaded, config: { ...loaded.config, nCtx: 40 } };
    const nCtx = weights.config.nCtx;
    const prompt = Array.from({ length: nCtx - 4 }, (_, i) => 1 + ((i * 37) % 500));
    const session = new Session(weights, { backend: { kind: 'webgpu', ctx } });
    const plain = await stepwise(session, prompt, 10);
    expect(plain.length).to.equal(5);                             // positions nCtx − 4 .. nCtx fill it
    session.reset();
    const before = ctx.stats.chained;
    const ids: number[] = [];
    for await (const id of generateAsync(session, prompt, { maxTokens: 10, temperature: 0, stopAtEos: false })) ids.push(id);
    expect(ids).to.deep.equal(plain);
    expect(ctx.stats.chained - before).to.equal(4);              // the steps at positions nCtx − 4 .. nCtx − 1
    // more look-ahead asked than the context holds: clamped, and the run answers
    session.reset();
    const last = await session.runAsync([...prompt, ...plain.slice(0, 3)], { logits: 'top', topK: 1, ahead: 4 });
    expect(last.top!.ids[0]).to.equal(plain[3]);
  });
});
