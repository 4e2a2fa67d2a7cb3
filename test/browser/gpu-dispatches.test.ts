// Dispatches per decoded token on WebGPU, fused (kernels/fused-matvec) and unfused, for random
// models with the layer structure of stories15M (its exact shape, Q8_0) and of Llama-3.2-1B (16
// layers, GQA 32:8, tied; its widths cut down, which changes no dispatch count as long as every
// matrix fits one binding, as the real ones do on an H100 and in SwiftShader). The count is what
// carries over from SwiftShader to a real GPU: each dispatch costs ~10 µs of CPU recording there
// (BENCHMARKS.md, issue 6). Greedy decoding: embedding, the layers, final norm + unembedding, argmax.
import { expect } from 'chai';
import { gpuOrSkip } from '../support/gpu.ts';
import { maxAbs } from '../support/gpu-models.ts';
import { synthModel, shapeConfig } from '../../src/formats/synth.ts';
import { bytesSource } from '../../src/formats/source.ts';
import { openModel } from '../../src/formats/open.ts';
import { loadModelWeights } from '../../src/engine/weights.ts';
import { Session } from '../../src/engine/session.ts';
import { generateAsync } from '../../src/engine/generate.ts';
import { setFusion } from '../../src/engine/gpu/fusion.ts';
import type { ModelConfig } from '../../src/engine/config.ts';
import type { GpuContext } from '../../src/engine/gpu/context.ts';

const SHAPES: [string, ModelConfig][] = [
  ['stories15M', { ...shapeConfig('stories15M'), nCtx: 64 }],
  ['Llama-3.2-1B layers (narrow)', { ...shapeConfig('llama-3.2-1b'), dModel: 128, dFfn: 256, dHead: 4, vocabSize: 1000, nCtx: 64, ropeScaling: null }],
];

async function perToken(ctx: GpuContext, config: ModelConfig, fused: boolean): Promise<{ dispatches: number; ids: number[]; logits: Float32Array }> {
  const { files } = synthModel({ config, type: 'Q8_0', seed: 5, format: 'gguf' });
  const weights = await loadModelWeights(await openModel([bytesSource(files[0]!.bytes, 'synth.gguf')]));
  setFusion(ctx, fused);
  try {
    const session = new Session(weights, { backend: { kind: 'webgpu', ctx } });
    const ids: number[] = [];
    const gen = 4;
    const before = ctx.stats.dispatches;
    for await (const id of generateAsync(session, [1], { maxTokens: gen, temperature: 0, stopAtEos: false })) ids.push(id);
    const dispatches = (ctx.stats.dispatches - before) / gen;
    const { logits } = await session.runAsync([1, ...ids], { logits: 'all' });
    return { dispatches, ids, logits };
  } finally {
    setFusion(ctx, true);
  }
}

describe('dispatches per decoded token [webgpu]', function () {
  this.timeout(180000);
  for (const [name, config] of SHAPES) {
    it(`[webgpu] ${name}: 5 per layer + 3 fused, 14 per layer + 4 unfused, the same tokens`, async function () {
      const ctx = await gpuOrSkip(this);
      const fused = await perToken(ctx, config, true);
      const plain = await perToken(ctx, config, false);
      console.log(`${name} (${config.nLayers} layers): ${plain.dispatches} → ${fused.dispatches} dispatches per decoded token`);
      // fused: embedding; per layer norm+q,k,v+RoPE / attention / o+residual /
      // norm+gate,up,SiLU·mul / down+residual; final norm+unembedding; argmax. Unfused: the same
      // with the norms, q, k, v, gate, up, SiLU·mul and the adds apart (RoPE q,k stays one)
      expect(fused.dispatches).to.equal(5 * config.nLayers + 3);
      expect(plain.dispatches).to.equal(14 * config.nLayers + 4);
      expect(fused.ids).to.deep.equal(plain.ids);
      // the same sums in another order (f32): a few ulps of the largest logit
      const scale = plain.logits.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expect(maxAbs(fused.logits, plain.logits)).to.be.at.most(1e-5 * (1 + scale));
    });
  }
});
