// Random-weight models of every tensor type (2 layers, d_model 256 so that K-type blocks of 256
// fit every row, d_ffn 512, GQA 4:2, untied): the WebGPU logits match the CPU's, for a prefill
// (the matmul's many-token path) and a decode step (its one-token path).
//
// Bound, per type: |gpu − cpu| ≤ BOUND[type] · (1 + max |cpu logit|). Both engines dequantize the
// same stored bytes to the same f32 values; what differs is only the order and precision of the
// sums (f32 on the GPU, f64 in the CPU's dot), over rows of 256 or 512 terms through two layers.
// That is a few f32 ulps of the largest terms, for every type alike: measured at most 3.6e-7 with
// max |logit| ≈ 1.1 on SwiftShader, so the bound (≈ 4e-6 here) leaves a margin of 10.
import { expect } from 'chai';
import { gpuOrSkip } from '../support/gpu.ts';
import { maxAbs } from '../support/gpu-models.ts';
import { synthModel } from '../../src/formats/synth.ts';
import { bytesSource } from '../../src/formats/source.ts';
import { openModel } from '../../src/formats/open.ts';
import { loadModelWeights, type ModelWeights } from '../../src/engine/weights.ts';
import { Session } from '../../src/engine/session.ts';
import { getTensorType } from '../../src/formats/quant/index.ts';
import { byteSize, numElements, type Tensor, type TensorTypeName } from '../../src/formats/tensor.ts';
import type { ModelConfig } from '../../src/engine/config.ts';

const CONFIG: ModelConfig = {
  arch: 'llama', name: 'synth-2x256', nLayers: 2, dModel: 256, dFfn: 512, nHeads: 4, nKvHeads: 2, dHead: 64,
  vocabSize: 300, nCtx: 64, rmsEps: 1e-5, ropeTheta: 10000, ropeScaling: null, tiedEmbeddings: false, bosId: 1, eosId: 2,
};

const GGML_TYPES: TensorTypeName[] = ['F32', 'F16', 'BF16', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q8_0', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K', 'Q8_K'];
const BOUND: Record<TensorTypeName, number> = {
  F32: 2e-6, F16: 2e-6, BF16: 2e-6, Q4_0: 2e-6, Q4_1: 2e-6, Q5_0: 2e-6, Q5_1: 2e-6, Q8_0: 2e-6,
  Q2_K: 2e-6, Q3_K: 2e-6, Q4_K: 2e-6, Q5_K: 2e-6, Q6_K: 2e-6, Q8_K: 2e-6, Q8_G64: 2e-6,
};

async function synthWeights(type: TensorTypeName): Promise<ModelWeights> {
  const { files } = synthModel({ config: CONFIG, type, seed: 11, format: 'gguf' });
  return loadModelWeights(await openModel([bytesSource(files[0]!.bytes, `synth-${type}.gguf`)]));
}

/** The same model with every matrix re-quantized to `type` (Q8_G64 has no GGUF id to synth). */
function requantize(w: ModelWeights, type: TensorTypeName): ModelWeights {
  const tt = getTensorType(type);
  const q = (t: Tensor): Tensor => {
    const n = numElements(t.shape);
    const f = new Float32Array(n);
    getTensorType(t.type).dequantize(t.data, 0, f, 0, n);
    const data = new Uint8Array(byteSize(tt, n));
    tt.quantize(f, 0, data, 0, n);
    return { name: t.name, type, shape: t.shape, data };
  };
  const embed = q(w.embed);
  return {
    config: w.config, embed, finalNorm: w.finalNorm, unembed: w.unembed === w.embed ? embed : q(w.unembed),
    blocks: w.blocks.map((b) => ({ ...b, wq: q(b.wq), wk: q(b.wk), wv: q(b.wv), wo: q(b.wo), wGate: q(b.wGate), wUp: q(b.wUp), wDown: q(b.wDown) })),
  };
}

describe('random-weight models of every tensor type on WebGPU [webgpu]', function () {
  this.timeout(120000);
  const tokens = [1, 17, 250, 3, 99, 42, 7];

  for (const type of [...GGML_TYPES, 'Q8_G64' as const]) {
    it(`[webgpu] ${type}: prefill and decode logits match the CPU within ${BOUND[type]} · (1 + max|logit|)`, async function () {
      const ctx = await gpuOrSkip(this);
      const w = type === 'Q8_G64' ? requantize(await synthWeights('F32'), 'Q8_G64') : await synthWeights(type);
      expect(w.blocks[0]!.wDown.type).to.equal(type);
      // The CPU twin with exact f32 activations: the GPU kernels' specification.
      const cpu = new Session(w, { activationQuant: 'none' }).run(tokens, { logits: 'all' }).logits;
      const bound = BOUND[type] * (1 + maxAbs(cpu, new Float32Array(cpu.length)));
      const gpu = new Session(w, { backend: { kind: 'webgpu', ctx } });
      const prefill = await gpu.runAsync(tokens.slice(0, -1), { logits: 'all' });
      const decode = await gpu.runAsync(tokens);                                   // one new position
      expect(gpu.backend, gpu.backendReason ?? '').to.equal('webgpu');
      expect(decode.reused).to.equal(tokens.length - 1);
      const v = CONFIG.vocabSize;
      const dPrefill = maxAbs(prefill.logits, cpu.subarray(0, (tokens.length - 1) * v));
      const dDecode = maxAbs(decode.logits, cpu.subarray((tokens.length - 1) * v));
      console.log(`${type}: max |gpu − cpu| prefill ${dPrefill.toExponential(2)}, decode ${dDecode.toExponential(2)}, bound ${bound.toExponential(2)}`);
      expect(dPrefill, 'prefill').to.be.at.most(bound);
      expect(dDecode, 'decode').to.be.at.most(bound);
    });
  }
});
