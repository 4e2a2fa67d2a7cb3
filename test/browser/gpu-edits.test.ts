// Interventions on WebGPU against the CPU (src/engine/edits.ts): every op (zero, mean, patch,
// steer) on rows hooks, heads (q, k, v, z, result, pattern) and neurons, over stories260K in
// chunks, with the captures showing the edited values. Tolerance as in gpu-forward.test.ts:
// |gpu − cpu| ≤ 1e-5 · (1 + max |cpu|) per hook (f32 sums in another order), and logits within
// 1e-4. The CPU runs with exact f32 activations ('none'), as the GPU does.
import { expect } from 'chai';
import { gpuOrSkip } from '../support/gpu.ts';
import { loadStories, storiesRef, firstDivergence, maxAbs } from '../support/gpu-models.ts';
import { Session } from '../../src/engine/session.ts';
import { meanOverPositions, type Edit } from '../../src/engine/edits.ts';
import type { GpuContext } from '../../src/engine/gpu/context.ts';

const webgpu = (ctx: GpuContext, chunkSize = 64) => ({ backend: { kind: 'webgpu' as const, ctx }, chunkSize });

describe('interventions on WebGPU [webgpu]', function () {
  this.timeout(120000);

  it('[webgpu] every op on every kind of hook equals the CPU within tolerance, captures included', async function () {
    const ctx = await gpuOrSkip(this);
    const [weights, ref] = await Promise.all([loadStories(), storiesRef()]);
    const c = weights.config;
    const tokens = ref.token_ids.slice(0, 20), corrupt = ref.token_ids.slice(40, 60);
    const cpu = new Session(weights, { activationQuant: 'none', kernels: 'js' });
    const clean = cpu.run(tokens, { capture: '**' });
    const bad = cpu.run(corrupt, { capture: '**' });
    const dir = Float32Array.from({ length: c.dModel }, (_, i) => Math.cos(i) * 0.5);
    const sets: [string, Edit[]][] = [
      ['zero z heads', [{ hook: 'blocks.1.attn.hook_z', op: 'zero', heads: [0, 3] }]],
      ['zero result head', [{ hook: 'blocks.2.attn.hook_result', op: 'zero', heads: [5], positions: [3, 11, 19] }]],
      ['patch result from the corrupted run', [{ hook: 'blocks.0.attn.hook_result', op: 'patch', heads: [1, 2], values: bad.trace.get('blocks.0.attn.hook_result')!.data }]],
      ['steer result per head', [{ hook: 'blocks.3.attn.hook_result', op: 'steer', heads: [7], vector: dir, strength: 2 }]],
      ['zero and patch pattern', [{ hook: 'blocks.1.attn.hook_pattern', op: 'zero', heads: [2], positions: [5, 17] },
        { hook: 'blocks.4.attn.hook_pattern', op: 'patch', values: bad.trace.get('blocks.4.attn.hook_pattern')!.data }]],
      ['mean k, v (KV heads), q', [{ hook: 'blocks.2.attn.hook_k', op: 'mean', heads: [1], vector: meanOverPositions(clean.trace.get('blocks.2.attn.hook_k')!) },
        { hook: 'blocks.2.attn.hook_v', op: 'zero', heads: [3], positions: [0, 1, 2] },
        { hook: 'blocks.0.attn.hook_rot_q', op: 'patch', values: bad.trace.get('blocks.0.attn.hook_rot_q')!.data, positions: [4] }]],
      ['neurons and ffn out', [{ hook: 'blocks.3.ffn.hook_act', op: 'zero', neurons: [0, 17, 100] },
        { hook: 'blocks.1.ffn.hook_gate', op: 'steer', vector: new Float32Array(c.dFfn).fill(0.1), neurons: [5], strength: -3 },
        { hook: 'blocks.4.hook_ffn_out', op: 'mean', vector: meanOverPositions(bad.trace.get('blocks.4.hook_ffn_out')!) }]],
      ['residual patch at every layer', Array.from({ length: c.nLayers }, (_, l): Edit => ({ hook: `blocks.${l}.hook_resid_pre`, op: 'patch', values: bad.trace.get(`blocks.${l}.hook_resid_pre`)!.data, positions: [6, 7] }))],
      ['steer residuals, embed, final norm', [{ hook: 'blocks.*.hook_resid_post', op: 'steer', vector: dir, strength: 4 },
        { hook: 'hook_embed', op: 'zero', positions: [2] }, { hook: 'final_norm.hook_out', op: 'steer', vector: dir, positions: [19] }]],
    ];
    const cleanLogits = cpu.run(tokens, { logits: 'all' }).logits;
    const gpu = new Session(weights, webgpu(ctx, 7));                     // chunks of 7: edits cross chunk borders
    for (const [what, edits] of sets) {
      const g = await gpu.runAsync(tokens, { capture: '**', logits: 'all', edits });
      const e = cpu.run(tokens, { capture: '**', logits: 'all', edits });
      expect(gpu.backend, what).to.equal('webgpu');
      const bad = firstDivergence(e.trace.keys(), (n) => e.trace.get(n)!, (n) => g.trace.get(n)!, 1e-5);
      expect(bad, `${what}: ${bad}`).to.equal(null);
      expect(maxAbs(g.logits, e.logits), `${what}: logits`).to.be.at.most(1e-4);
      expect(maxAbs(e.logits, cleanLogits), `${what}: the edit changes the logits`).to.be.above(1e-4);
    }
    // and a run without edits afterwards equals a clean run (no stale cache)
    const after = await gpu.runAsync(tokens, { logits: 'all' });
    expect(maxAbs(after.logits, cleanLogits)).to.be.at.most(1e-4);
    expect(after.edits).to.deep.equal([]);
  });

  it('[webgpu] no edits and a patch with the run\'s own values give the clean run bit for bit', async function () {
    const ctx = await gpuOrSkip(this);
    const [weights, ref] = await Promise.all([loadStories(), storiesRef()]);
    const tokens = ref.token_ids.slice(0, 16);
    const s = new Session(weights, webgpu(ctx));
    const clean = await s.runAsync(tokens, { logits: 'all', capture: ['blocks.*.hook_resid_post', 'blocks.2.attn.hook_z', 'blocks.1.attn.hook_result'] });
    const none = await new Session(weights, webgpu(ctx)).runAsync(tokens, { logits: 'all', edits: [] });
    expect(Array.from(none.logits)).to.deep.equal(Array.from(clean.logits));
    const own = await new Session(weights, webgpu(ctx)).runAsync(tokens, { logits: 'all', edits: [
      { hook: 'blocks.2.hook_resid_post', op: 'patch', values: clean.trace.get('blocks.2.hook_resid_post')!.data },
      { hook: 'blocks.2.attn.hook_z', op: 'patch', values: clean.trace.get('blocks.2.attn.hook_z')!.data, heads: [1, 6] },
    ] });
    expect(Array.from(own.logits)).to.deep.equal(Array.from(clean.logits));
  });

  // Decoded tokens (chunks of 1) run fused kernels that fold away the normed x, q and k before
  // RoPE, gate and up, and a sublayer's output before the residual add: a layer whose such hook is edited must run the
  // unfused kernels there. Nothing is captured here, so only the edits keep a layer unfused.
  it('[webgpu] decode (chunks of 1, fused kernels): edits on folded hooks equal the CPU', async function () {
    const ctx = await gpuOrSkip(this);
    const [weights, ref] = await Promise.all([loadStories(), storiesRef()]);
    const c = weights.config;
    const tokens = ref.token_ids.slice(0, 8);
    const cpu = new Session(weights, { activationQuant: 'none', kernels: 'js' });
    const cleanLogits = cpu.run(tokens, { logits: 'all' }).logits;
    const dir = Float32Array.from({ length: c.dModel }, (_, i) => Math.sin(i) * 0.5);
    const sets: [string, Edit[]][] = [
      ['attn_norm out, ffn_norm out', [{ hook: 'blocks.1.attn_norm.hook_out', op: 'steer', vector: dir, strength: 3 },
        { hook: 'blocks.3.ffn_norm.hook_out', op: 'zero', positions: [2, 5] }]],
      ['gate, up', [{ hook: 'blocks.2.ffn.hook_up', op: 'zero', neurons: [1, 50, 99] },
        { hook: 'blocks.0.ffn.hook_gate', op: 'steer', vector: new Float32Array(c.dFfn).fill(0.2), strength: 5 }]],
      ['attn out, ffn out, result', [{ hook: 'blocks.4.hook_attn_out', op: 'steer', vector: dir, strength: -2 },
        { hook: 'blocks.2.hook_ffn_out', op: 'zero', positions: [3] },
        { hook: 'blocks.1.attn.hook_result', op: 'zero', heads: [4] }]],
      ['final norm out', [{ hook: 'final_norm.hook_out', op: 'steer', vector: dir, strength: 2 }]],
      // RoPE is folded into the q, k, v write: q and k before it must be written apart
      ['q, k before RoPE', [{ hook: 'blocks.1.attn.hook_q', op: 'zero', heads: [2, 5] },
        { hook: 'blocks.3.attn.hook_k', op: 'steer', vector: Float32Array.from({ length: c.nKvHeads * c.dHead }, (_, i) => Math.cos(i)), strength: 2 }]],
    ];
    const gpu = new Session(weights, webgpu(ctx, 1));
    for (const [what, edits] of sets) {
      const g = await gpu.runAsync(tokens, { logits: 'all', edits });
      const e = cpu.run(tokens, { logits: 'all', edits });
      expect(gpu.backend, what).to.equal('webgpu');
      expect(maxAbs(g.logits, e.logits), `${what}: logits`).to.be.at.most(1e-4);
      expect(maxAbs(e.logits, cleanLogits), `${what}: the edit changes the logits`).to.be.above(1e-4);
    }
    const after = await gpu.runAsync(tokens, { logits: 'all' });
    expect(maxAbs(after.logits, cleanLogits)).to.be.at.most(1e-4);
  });
});
