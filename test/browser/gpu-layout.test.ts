// The GPU-only repacked layouts of Q4_0 and Q8_0 (src/engine/gpu/layout.ts): the byte permutation
// itself on fixed bytes, which matrices get it, and whole random-weight models run with repacking
// on (uploadWeights' default) and off. The kernels on their own are checked in
// kernels/{matmul,fused-matvec,embedding}/*.test.ts.
//
// Repacking changes only where the kernels load each byte from, never a value or the order of a
// sum, so the logits with it on must equal those with it off BIT FOR BIT; against the CPU twin the
// bound is gpu-types.test.ts's (2e-6 · (1 + max |logit|)).
import { expect } from 'chai';
import { gpuOrSkip } from '../support/gpu.ts';
import { maxAbs } from '../support/gpu-models.ts';
import { synthModel } from '../../src/formats/synth.ts';
import { bytesSource } from '../../src/formats/source.ts';
import { openModel } from '../../src/formats/open.ts';
import { loadModelWeights, type ModelWeights } from '../../src/engine/weights.ts';
import { Session } from '../../src/engine/session.ts';
import { selectHooks } from '../../src/engine/hooks.ts';
import type { ModelConfig } from '../../src/engine/config.ts';
import type { TensorTypeName } from '../../src/formats/tensor.ts';
import type { GpuContext } from '../../src/engine/gpu/context.ts';
import { layoutFor, repackInto, type GpuLayout, type RepackedLayout } from '../../src/engine/gpu/layout.ts';
import { uploadWeights, destroyWeights, type UploadOptions } from '../../src/engine/gpu/weights.ts';
import { GpuRunState } from '../../src/engine/gpu/state.ts';
import { forwardGpu, prepareForward } from '../../src/engine/gpu/forward.ts';

// tied, so that one repacked upload is both the embedding lookup's table and the unembedding;
// d_ffn 640 is not whole groups of 256, so w_down [256, 640] keeps the stored layout beside
// repacked gate and up [640, 256] (one fused SwiGLU dispatch reads two of them)
const CONFIG: ModelConfig = {
  arch: 'llama', name: 'synth-2x256-tied', nLayers: 2, dModel: 256, dFfn: 640, nHeads: 4, nKvHeads: 2, dHead: 64,
  vocabSize: 300, nCtx: 64, rmsEps: 1e-5, ropeTheta: 10000, ropeScaling: null, tiedEmbeddings: true, bosId: 1, eosId: 2,
};
const BOUND = 2e-6;

async function synthWeights(type: TensorTypeName): Promise<ModelWeights> {
  const { files } = synthModel({ config: CONFIG, type, seed: 5, format: 'gguf' });
  return loadModelWeights(await openModel([bytesSource(files[0]!.bytes, `synth-${type}.gguf`)]));
}

/** A prefill of all tokens but the last, then one decoded token, on the GPU: their logits and the
 *  layouts the upload chose. */
async function gpuLogits(ctx: GpuContext, w: ModelWeights, tokens: number[], opts: UploadOptions) {
  const g = uploadWeights(ctx, w, opts);
  const s = new GpuRunState(ctx, w.config);
  try {
    await prepareForward(ctx, g);
    const hooks = selectHooks(w.config, null);
    const n = tokens.length - 1;
    const run = (ids: number[], start: number) => forwardGpu(ctx, g, s, ids, start, { hooks, recorder: null, logits: { rows: ids.length }, cpuWeights: w });
    const prefill = (await run(tokens.slice(0, n), 0)).logits;
    const decode = (await run(tokens.slice(n), n)).logits;
    const b = g.blocks[0]!;
    const layouts = { embed: g.embed.layout, unembed: g.unembed.layout, wq: b.wq.layout, wGate: b.wGate.layout, wDown: b.wDown.layout, matmul: [...g.matmulLayouts].sort() };
    return { prefill, decode, layouts, tied: g.unembed === g.embed, parts: g.embed.parts.length };
  } finally {
    s.destroy();
    destroyWeights(g);
  }
}

function sameBits(a: Float32Array, b: Float32Array): number {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  if (ua.length !== ub.length) return 0;
  return ua.findIndex((v, i) => v !== ub[i]);
}

describe('repacked weight layouts on WebGPU (Q4_0_X8, Q8_0_X8)', function () {
  this.timeout(120000);

  it('repackInto: per group of 8 blocks, the 8 quant runs back to back, then the 8 f16 scales; a source at an odd byte offset', () => {
    for (const [layout, blockBytes] of [['Q4_0_X8', 18], ['Q8_0_X8', 34]] as [RepackedLayout, number][]) {
      const q = blockBytes - 2, group = 8 * blockBytes, groups = 3;
      const backing = new Uint8Array(1 + groups * group);
      for (let i = 0; i < backing.length; i++) backing[i] = (i * 37 + 11) & 255;
      for (const src of [backing.subarray(1), backing.subarray(0, groups * group)]) {
        const dst = new Uint8Array(groups * group);
        repackInto(layout, src, dst);
        for (let g = 0; g < groups; g++) {
          for (let j = 0; j < 8; j++) {
            const from = g * group + j * blockBytes;
            for (let i = 0; i < q; i++) expect(dst[g * group + j * q + i], `${layout} group ${g} block ${j} quant ${i}`).to.equal(src[from + 2 + i]);
            for (let h = 0; h < 2; h++) expect(dst[g * group + 8 * q + 2 * j + h], `${layout} group ${g} scale ${j}`).to.equal(src[from + h]);
          }
        }
      }
      expect(() => repackInto(layout, backing.subarray(0, group + 2), new Uint8Array(group + 2))).to.throw(/whole groups/);
    }
  });

  it('layoutFor: Q4_0 and Q8_0 rows of whole 256-element groups, with repack on; everything else as stored', () => {
    const cases: [TensorTypeName, number, boolean, GpuLayout][] = [
      ['Q4_0', 256, true, 'Q4_0_X8'], ['Q4_0', 2048, true, 'Q4_0_X8'], ['Q8_0', 8192, true, 'Q8_0_X8'],
      ['Q4_0', 2048, false, 'Q4_0'], ['Q8_0', 288, true, 'Q8_0'], ['Q4_0', 160, true, 'Q4_0'],
      ['Q4_K', 2048, true, 'Q4_K'], ['Q4_1', 2048, true, 'Q4_1'], ['F32', 2048, true, 'F32'],
    ];
    for (const [type, cols, repack, want] of cases) expect(layoutFor(type, cols, repack), `${type} rows of ${cols}, repack ${repack}`).to.equal(want);
  });

  for (const [type, layout] of [['Q4_0', 'Q4_0_X8'], ['Q8_0', 'Q8_0_X8']] as const) {
    it(`[webgpu] ${type} tied model: logits with repacking on equal those with it off bit for bit, and the CPU's; split parts too`, async function () {
      const ctx = await gpuOrSkip(this);
      const w = await synthWeights(type);
      expect(w.embed.type).to.equal(type);
      expect(w.unembed).to.equal(w.embed);
      const tokens = [1, 17, 250, 3, 99, 42, 7, 299];
      const cpu = new Session(w, { activationQuant: 'none' }).run(tokens, { logits: 'all' }).logits;
      const bound = BOUND * (1 + maxAbs(cpu, new Float32Array(cpu.length)));
      const v = CONFIG.vocabSize, n = tokens.length - 1;
      const on = await gpuLogits(ctx, w, tokens, {});
      const off = await gpuLogits(ctx, w, tokens, { repack: false });
      expect(on.tied).to.equal(true);
      expect(on.layouts).to.deep.equal({ embed: layout, unembed: layout, wq: layout, wGate: layout, wDown: type, matmul: [type, layout].sort() });
      expect(off.layouts).to.deep.equal({ embed: type, unembed: type, wq: type, wGate: type, wDown: type, matmul: [type] });
      expect(sameBits(on.prefill, off.prefill), 'prefill: first logit that differs').to.equal(-1);
      expect(sameBits(on.decode, off.decode), 'decode: first logit that differs').to.equal(-1);
      const dPrefill = maxAbs(on.prefill, cpu.subarray(0, n * v)), dDecode = maxAbs(on.decode, cpu.subarray(n * v));
      console.log(`${layout}: max |gpu − cpu| prefill ${dPrefill.toExponential(2)}, decode ${dDecode.toExponential(2)}, bound ${bound.toExponential(2)}`);
      expect(dPrefill, 'prefill').to.be.at.most(bound);
      expect(dDecode, 'decode').to.be.at.most(bound);
      // the embedding (300 rows) in parts of 64 rows: the lookup and the unembedding across 5 bindings
      const rowBytes = w.embed.data.byteLength / v;
      const split = await gpuLogits(ctx, w, tokens, { maxPartBytes: 64 * rowBytes + 5 });
      expect(split.parts).to.equal(5);
      expect(split.layouts.embed).to.equal(layout);
      expect(sameBits(split.prefill, off.prefill), 'split prefill').to.equal(-1);
      expect(sameBits(split.decode, off.decode), 'split decode').to.equal(-1);
    });
  }
});
