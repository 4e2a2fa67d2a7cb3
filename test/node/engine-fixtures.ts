// Small random-weight models built in memory for the engine tests (not a test file itself): any
// config and tensor type, with separate or tied embeddings, without going through a file format.

import type { ModelConfig } from '../../src/engine/config.ts';
import { modelWeights, type ModelWeights } from '../../src/engine/weights.ts';
import { Rng } from '../../src/engine/random.ts';
import { getTensorType } from '../../src/formats/quant/index.ts';
import { requiredTensors } from '../../src/formats/names.ts';
import { byteSize, numElements, type Tensor, type TensorTypeName } from '../../src/formats/tensor.ts';

export function tinyConfig(over: Partial<ModelConfig> = {}): ModelConfig {
  return {
    arch: 'llama', name: 'tiny', nLayers: 3, dModel: 24, dFfn: 40, nHeads: 6, nKvHeads: 2, dHead: 4,
    vocabSize: 37, nCtx: 48, rmsEps: 1e-5, ropeTheta: 10000, ropeScaling: null, tiedEmbeddings: false,
    bosId: 1, eosId: 2, ...over,
  };
}

/** Random weights (norm weights near 1, matrices ~N(0, 0.5²)) stored as `type` (norms always F32). */
export function randomWeights(c: ModelConfig, type: TensorTypeName = 'F32', seed = 1): ModelWeights {
  const rng = new Rng(seed);
  const tensors = new Map<string, Tensor>();
  for (const req of requiredTensors(c)) {
    const n = numElements(req.shape);
    const values = new Float32Array(n);
    const isNorm = req.shape.length === 1;
    for (let i = 0; i < n; i++) values[i] = isNorm ? 1 + 0.1 * rng.gaussian() : 0.5 * rng.gaussian();
    const t = getTensorType(isNorm ? 'F32' : type);
    const data = new Uint8Array(byteSize(t, n));
    t.quantize(values, 0, data, 0, n);
    tensors.set(req.name, { name: req.name, type: t.name, shape: req.shape, data });
  }
  return modelWeights(c, tensors);
}

/** A tensor dequantized to f32 (for checking products against it). */
export function dense(t: Tensor): Float32Array {
  const out = new Float32Array(numElements(t.shape));
  getTensorType(t.type).dequantize(t.data, 0, out, 0, out.length);
  return out;
}

/** Deterministic token ids in [0, vocab). */
export function randomTokens(n: number, vocab: number, seed = 3): number[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => rng.int(vocab));
}
