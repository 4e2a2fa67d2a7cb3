// The forward pass on WebGPU against the CPU engine (its oracle) and the golden files: stories260K
// greedy decoding and logits, every hook of a run, the capture store's prefix reuse, recorded norms, split
// bindings, and the readback budget. Random-weight models of every tensor type are in
// gpu-types.test.ts; device loss in gpu-fallback.test.ts.
import { expect } from 'chai';
import { gpuOrSkip } from '../support/gpu.ts';
import { loadStories, storiesRef, firstDivergence, maxAbs } from '../support/gpu-models.ts';
import { Session } from '../../src/engine/session.ts';
import { generate, generateAsync } from '../../src/engine/generate.ts';
import { chooseBackend } from '../../src/engine/backend.ts';
import { hookNames, rowNorm } from '../../src/engine/hooks.ts';
import type { GpuContext } from '../../src/engine/gpu/context.ts';
import { setFusion } from '../../src/engine/gpu/fusion.ts';

const webgpu = (ctx: GpuContext) => ({ backend: { kind: 'webgpu' as const, ctx } });

describe('forward pass on WebGPU [webgpu]', function () {
  this.timeout(120000);

  it('[webgpu] stories260K: greedy 256 tokens from BOS equal the golden ids, reading back 4 bytes per token', async function () {
    const ctx = await gpuOrSkip(this);
    const [weights, ref] = await Promise.all([loadStories(), storiesRef()]);
    const session = new Session(weights, webgpu(ctx));
    const bos = ref.token_ids[0]!;
    const ids = [bos];
    const before = { ...ctx.stats };
    for await (const id of generateAsync(session, [bos], { maxTokens: 256, temperature: 0, stopAtEos: false })) ids.push(id);
    expect(session.backend).to.equal('webgpu');
    let same = 0;
    while (same < ids.length && ids[same] === ref.token_ids[same]) same++;
    expect(same, `first difference at position ${same}: ${ids[same]} vs ${ref.token_ids[same]}`).to.equal(ref.token_ids.length);
    // greedy decoding reads back the argmax id only: 4 bytes a token, one submit a token
    expect(ctx.stats.readbackBytes - before.readbackBytes).to.equal(4 * 256);
    expect(ctx.stats.submits - before.submits).to.equal(256);
    // decoded tokens run the fused kernels: 5 dispatches per layer (5 layers) + embedding,
    // final norm with the unembedding, argmax
    const perToken = (ctx.stats.dispatches - before.dispatches) / 256;
    console.log(`stories260K greedy: ${perToken.toFixed(1)} dispatches per token`);
    expect(perToken).to.equal(5 * weights.config.nLayers + 3);
  });

  it('[webgpu] stories260K: top-5 logits of the first 16 positions within 1e-4 of the CPU and the golden file', async function () {
    const ctx = await gpuOrSkip(this);
    const [weights, ref] = await Promise.all([loadStories(), storiesRef()]);
    const steps = ref.first_16_steps_top5_logits;
    const inputs = steps.map((s) => s.input);
    const vocab = weights.config.vocabSize;
    const gpu = await new Session(weights, webgpu(ctx)).runAsync(inputs, { logits: 'all' });
    const cpu = new Session(weights).run(inputs, { logits: 'all' });
    for (const step of steps) {
      const row = gpu.logits.subarray(step.pos * vocab, (step.pos + 1) * vocab);
      const cpuRow = cpu.logits.subarray(step.pos * vocab, (step.pos + 1) * vocab);
      const order = [...row.keys()].sort((a, b) => row[b]! - row[a]! || a - b);
      step.top5.forEach(([id, value], r) => {
        expect(order[r], `position ${step.pos}: rank ${r}`).to.equal(id);
        expect(Math.abs(row[id]! - cpuRow[id]!), `position ${step.pos}, token ${id} vs the CPU`).to.be.at.most(1e-4);
        expect(Math.abs(row[id]! - value), `position ${step.pos}, token ${id} vs the golden file`).to.be.at.most(1e-4);
      });
    }
  });

  it('[webgpu] every hook of a 32-token run matches the CPU (naming the first that diverges)', async function () {
    const ctx = await gpuOrSkip(this);
    const [weights, ref] = await Promise.all([loadStories(), storiesRef()]);
    const tokens = ref.token_ids.slice(0, 32);
    // prefill in chunks of 12 so that the trace is assembled from several steps, like the CPU's
    const gpu = await new Session(weights, { ...webgpu(ctx), chunkSize: 12 }).runAsync(tokens, { capture: '**' });
    const cpu = new Session(weights).run(tokens, { capture: '**' });
    const names = hookNames(weights.config);
    expect([...gpu.trace.keys()]).to.deep.equal(names);
    // Tolerance: |gpu − cpu| ≤ 1e-5 · (1 + max |cpu| of the hook). The GPU sums in f32 and the CPU
    // in f64 over rows of at most 172 terms, a few ulps apart, growing slowly through 5 layers.
    const bad = firstDivergence(names, (n) => cpu.trace.get(n)!, (n) => gpu.trace.get(n)!, 1e-5);
    expect(bad, bad ?? '').to.equal(null);
  });

  it('[webgpu] a trace with prefix reuse equals the trace from scratch; capturing nothing reads back only the logits', async function () {
    const ctx = await gpuOrSkip(this);
    const [weights, ref] = await Promise.all([loadStories(), storiesRef()]);
    const tokens = ref.token_ids.slice(0, 24);
    const capture = ['blocks.*.attn.hook_pattern', 'blocks.1.hook_resid_post', 'hook_logits', 'blocks.2.attn.hook_result'];
    const s = new Session(weights, webgpu(ctx));
    await s.runAsync(tokens.slice(0, 10), { capture });
    const grown = await s.runAsync(tokens, { capture });
    expect(grown.reused).to.equal(10);
    const fresh = await new Session(weights, webgpu(ctx)).runAsync(tokens, { capture });
    const bad = firstDivergence(grown.trace.keys(), (n) => fresh.trace.get(n)!, (n) => grown.trace.get(n)!, 1e-6);
    expect(bad, bad ?? '').to.equal(null);
    const cpu = new Session(weights).run(tokens, { capture });
    const vsCpu = firstDivergence(cpu.trace.keys(), (n) => cpu.trace.get(n)!, (n) => grown.trace.get(n)!, 1e-5);
    expect(vsCpu, vsCpu ?? '').to.equal(null);

    // capture nothing: the last row of logits, and nothing else, comes back
    const plain = new Session(weights, webgpu(ctx));
    const before = ctx.stats.readbackBytes;
    const r = await plain.runAsync(tokens);
    expect(r.trace.size).to.equal(0);
    expect(ctx.stats.readbackBytes - before).to.equal(4 * weights.config.vocabSize);
    expect(maxAbs(r.logits, cpu.trace.get('hook_logits')!.data.subarray(23 * weights.config.vocabSize))).to.be.at.most(1e-4);

    // 'new': the rows of the positions this run computed, after the reused prefix
    const longer = [...tokens, 5, 6, 7];
    const nw = await plain.runAsync(longer, { logits: 'new' });
    expect(nw.reused).to.equal(24);
    const cpuNew = new Session(weights).run(longer, { logits: 'all' }).logits.subarray(24 * weights.config.vocabSize);
    expect(maxAbs(nw.logits, cpuNew)).to.be.at.most(1e-4);
  });

  it('[webgpu] recorded norms (`:norm`) are the norms of the rows the GPU reads back, bit for bit, with prefix reuse', async function () {
    const ctx = await gpuOrSkip(this);
    const [weights, ref] = await Promise.all([loadStories(), storiesRef()]);
    const tokens = ref.token_ids.slice(0, 20);
    const hooks = ['blocks.*.hook_resid_pre', 'blocks.3.ffn.hook_act'];
    const rows = await new Session(weights, webgpu(ctx)).runAsync(tokens, { capture: hooks });
    const s = new Session(weights, webgpu(ctx));
    await s.runAsync(tokens.slice(0, 12), { capture: hooks.map((h) => `${h}:norm`) });
    const normed = await s.runAsync(tokens, { capture: hooks.map((h) => `${h}:norm`) });
    expect(normed.reused).to.equal(12);
    expect([...normed.trace.keys()].every((n) => n.endsWith(':norm'))).to.equal(true);
    for (const name of rows.trace.keys()) {
      const d = rows.trace.get(name)!.data, size = d.length / tokens.length;
      const want = Float32Array.from(tokens, (_, p) => rowNorm(d, p * size, (p + 1) * size));
      const got = normed.trace.get(`${name}:norm`)!.data;
      expect(Array.from(new Uint32Array(got.buffer, got.byteOffset, got.length)), name).to.deep.equal(Array.from(new Uint32Array(want.buffer)));
    }
  });

  it('[webgpu] split bindings: a binding limit below the output matrix gives the same logits', async function () {
    await gpuOrSkip(this);
    const weights = await loadStories();
    // 40 000 bytes: the 512 x 64 f32 embedding/unembedding (128 KiB) is bound in 4 parts, and the
    // logits of a chunk (2 KiB a row) are computed 19 rows at a time
    const backend = await chooseBackend({ maxBindingBytes: 40000 });
    // an adapter that refuses such a small binding limit cannot run this case: skipped, and mocha reports it
    if (backend.kind !== 'webgpu') this.skip();
    const b = backend as Extract<typeof backend, { kind: 'webgpu' }>;
    expect(b.ctx.caps.maxStorageBufferBindingSize).to.equal(40000);
    const tokens = (await storiesRef()).token_ids.slice(0, 40);
    const split = await new Session(weights, { backend: b, chunkSize: 32 }).runAsync(tokens, { logits: 'all' });
    const cpu = new Session(weights).run(tokens, { logits: 'all' });
    expect(maxAbs(split.logits, cpu.logits)).to.be.at.most(1e-4);
    // and the same through uploadTensor's part size alone, on the usual limits
    const ctx = await gpuOrSkip(this);
    const parts = await new Session(weights, { backend: { kind: 'webgpu', ctx, maxPartBytes: 20000 } }).runAsync(tokens, { logits: 'all' });
    expect(maxAbs(parts.logits, cpu.logits)).to.be.at.most(1e-4);
    b.ctx.device.destroy();
  });

  it('[webgpu] sampling with top-k reads back k ids and logits and gives the CPU\'s tokens', async function () {
    const ctx = await gpuOrSkip(this);
    const weights = await loadStories();
    const opts = { maxTokens: 24, temperature: 0.9, topK: 20, topP: 0.9, seed: 7, stopAtEos: false };
    const cpu = [...generate(new Session(weights), [1], opts)];
    const gpuIds: number[] = [];
    const before = ctx.stats.readbackBytes;
    for await (const id of generateAsync(new Session(weights, webgpu(ctx)), [1], opts)) gpuIds.push(id);
    expect(gpuIds).to.deep.equal(cpu);
    expect(ctx.stats.readbackBytes - before).to.equal(24 * 20 * 8);
  });

  // Decoded tokens (chunks of 1) run fused kernels (kernels/fused-matvec): a layer whose folded
  // activations are hooked runs the unfused kernels for them. Both paths against the CPU, and the
  // fused path against the unfused one (fusion turned off) on the same device.
  it('[webgpu] decode, fused and unfused: hooks on some layers, every hook, and no hook match the CPU', async function () {
    const ctx = await gpuOrSkip(this);
    const [weights, ref] = await Promise.all([loadStories(), storiesRef()]);
    const tokens = ref.token_ids.slice(0, 12);
    const decode = { ...webgpu(ctx), chunkSize: 1 };
    const some = ['blocks.1.attn_norm.hook_out', 'blocks.2.ffn.hook_gate', 'blocks.3.hook_attn_out', 'blocks.0.hook_ffn_out',
      'blocks.4.ffn_norm.hook_scale', 'blocks.*.hook_resid_post', 'blocks.2.attn.hook_rot_k', 'blocks.3.attn.hook_q', 'blocks.0.attn.hook_k', 'hook_logits'];
    for (const capture of [some, '**']) {
      const cpu = new Session(weights).run(tokens, { capture });
      const gpu = await new Session(weights, decode).runAsync(tokens, { capture });
      const bad = firstDivergence(cpu.trace.keys(), (n) => cpu.trace.get(n)!, (n) => gpu.trace.get(n)!, 1e-5);
      expect(bad, `${capture}: ${bad}`).to.equal(null);
    }
    // no hook: every layer fused; the same logits as the unfused kernels and the CPU
    const cpu = new Session(weights).run(tokens, { logits: 'all' });
    const before = ctx.stats.dispatches;
    const fused = await new Session(weights, decode).runAsync(tokens, { logits: 'all' });
    const fusedDispatches = ctx.stats.dispatches - before;
    setFusion(ctx, false);
    let plain;
    const mid = ctx.stats.dispatches;
    try {
      plain = await new Session(weights, decode).runAsync(tokens, { logits: 'all' });
    } finally {
      setFusion(ctx, true);
    }
    const plainDispatches = ctx.stats.dispatches - mid;
    expect(maxAbs(fused.logits, cpu.logits)).to.be.at.most(1e-4);
    expect(maxAbs(fused.logits, plain.logits)).to.be.at.most(1e-4);
    // per token: 5 a layer + 2 fused (embedding; final norm and unembedding; RoPE in the q, k, v
    // write), 14 a layer + 3 unfused (RoPE of q and k in one dispatch); no argmax here (logits: 'all')
    const L = weights.config.nLayers;
    expect(fusedDispatches).to.equal(tokens.length * (5 * L + 2));
    expect(plainDispatches).to.equal(tokens.length * (14 * L + 3));
  });
});
