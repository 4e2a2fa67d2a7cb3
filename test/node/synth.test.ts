// Synthetic models: for every tensor type with a GGUF id, a tiny model written as GGUF, read back
// and loaded; its weights are checked against values drawn here from the documented recipe (the
// seeded stream, in requiredTensors order, with the documented scales). Then the safetensors twin
// (same seed) must load to the very same bytes, llama3 RoPE scaling must survive both formats,
// and shapes whose rows do not fit a type's blocks fall back as llama.cpp does.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WeightArena } from '../../src/engine/arena.ts';
import type { ModelConfig } from '../../src/engine/config.ts';
import { UsageError } from '../../src/engine/errors.ts';
import { Rng } from '../../src/engine/random.ts';
import { llama3RopeFactors, readGgufModel } from '../../src/formats/gguf.ts';
import { loadWeights, weightBytes, type Weights } from '../../src/formats/load.ts';
import type { ModelFile } from '../../src/formats/model.ts';
import { requiredTensors } from '../../src/formats/names.ts';
import { ALL_TENSOR_TYPES, getTensorType } from '../../src/formats/quant/index.ts';
import { readSafetensorsModel } from '../../src/formats/safetensors.ts';
import { bytesSource } from '../../src/formats/source.ts';
import { SHAPES, shapeConfig, synthGgufStream, synthModel, type SynthResult } from '../../src/formats/synth.ts';
import { numElements, type TensorTypeName } from '../../src/formats/tensor.ts';

/** The smallest Llama whose every row is a multiple of 256 (so K types need no fallback). */
const TINY: ModelConfig = {
  arch: 'llama', name: 'tiny-synth', nLayers: 2, dModel: 256, dFfn: 256, nHeads: 2, nKvHeads: 1, dHead: 128,
  vocabSize: 260, nCtx: 64, rmsEps: 1e-5, ropeTheta: 10000, ropeScaling: null, tiedEmbeddings: false, bosId: 1, eosId: 2,
};

async function open(r: SynthResult): Promise<{ model: ModelFile; weights: Weights }> {
  const srcs = r.files.map((f) => bytesSource(f.bytes, f.name));
  const model = r.files[0]!.name.endsWith('.gguf') ? await readGgufModel(srcs[0]!) : await readSafetensorsModel(srcs);
  return { model, weights: await loadWeights(model, new WeightArena(weightBytes(model))) };
}

/** The values the recipe in synth.ts documents, drawn independently here. */
function recipe(config: ModelConfig, seed: number): Map<string, Float32Array> {
  const rng = new Rng(seed);
  const out = new Map<string, Float32Array>();
  for (const r of requiredTensors(config)) {
    const x = new Float32Array(numElements(r.shape));
    if (r.shape.length === 1) rng.fillGaussian(x, 0.05, 1);
    else rng.fillGaussian(x, r.role === 'embed' || r.role === 'unembed' ? 0.02 : 0.5 / Math.sqrt(r.shape[1]!));
    out.set(r.name, x);
  }
  return out;
}

/** Relative RMS error each type's reference quantizer stays under on gaussian data. */
const TOLERANCE: Record<string, number> = {
  F32: 0, F16: 1e-3, BF16: 8e-3, Q8_0: 8e-3, Q8_K: 8e-3, Q6_K: 0.03, Q5_0: 0.06, Q5_1: 0.06, Q5_K: 0.06,
  Q4_0: 0.12, Q4_1: 0.12, Q4_K: 0.12, Q3_K: 0.25, Q2_K: 0.5,
};

const GGUF_TYPES = ALL_TENSOR_TYPES.filter((t) => t.ggmlId !== undefined);

for (const tt of GGUF_TYPES) {
  test(`GGUF synth ${tt.name}: config and weights round trip`, async () => {
    const r = synthModel({ config: TINY, type: tt.name, seed: 42, format: 'gguf' });
    assert.deepEqual(r.fallbacks, []);
    const { model, weights } = await open(r);
    assert.deepEqual(model.config, { ...TINY });
    assert.equal(model.tokenizer?.tokens.length, 260);
    const want = recipe(TINY, 42);
    assert.equal(weights.size, want.size);
    for (const [name, x] of want) {
      const t = weights.get(name)!;
      const type = t.shape.length === 1 ? 'F32' : tt.name;
      assert.equal(t.type, type, name);
      const back = new Float32Array(x.length);
      getTensorType(type).dequantize(t.data, 0, back, 0, x.length);
      let err = 0, sig = 0;
      for (let i = 0; i < x.length; i++) { err += (back[i]! - x[i]!) ** 2; sig += x[i]! ** 2; }
      assert.ok(Math.sqrt(err / sig) <= TOLERANCE[type]!, `${name}: relative error ${Math.sqrt(err / sig)}`);
    }
    // Exactly the reference quantizer's bytes (checked on the smallest matrix).
    const wk = want.get('blocks.1.attn.wk')!;
    const q = new Uint8Array(weights.get('blocks.1.attn.wk')!.data.length);
    tt.quantize(wk, 0, q, 0, wk.length);
    assert.deepEqual(weights.get('blocks.1.attn.wk')!.data, q);
  });
}

test('safetensors synth (F32, F16, BF16) loads to the same bytes as the GGUF synth', async () => {
  for (const type of ['F32', 'F16', 'BF16'] as TensorTypeName[]) {
    const config = { ...TINY, dModel: 64, dFfn: 96, nHeads: 4, nKvHeads: 2, dHead: 16, tiedEmbeddings: true };
    const g = await open(synthModel({ config, type, seed: 7, format: 'gguf' }));
    const st = synthModel({ config, type, seed: 7, format: 'safetensors' });
    assert.deepEqual(st.files.map((f) => f.name), ['model.safetensors', 'config.json']);
    const s = await open(st);
    assert.equal(s.model.ropeLayout, 'half-split');
    const { eosIds: _e, ...sConfig } = s.model.config;
    assert.deepEqual(sConfig, g.model.config);
    assert.deepEqual([...s.weights.keys()].sort(), [...g.weights.keys()].sort());
    for (const [name, t] of g.weights) assert.deepEqual(s.weights.get(name)!.data, t.data, `${type} ${name}`);
  }
});

test('llama3 RoPE scaling survives GGUF (as rope_freqs) and safetensors (as config.json)', async () => {
  const config: ModelConfig = {
    ...TINY, dModel: 64, dFfn: 128, nHeads: 2, nKvHeads: 1, dHead: 32, ropeTheta: 500000, nCtx: 1024,
    ropeScaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 8192 },
  };
  const g = await open(synthModel({ config, type: 'F32', seed: 1, format: 'gguf' }));
  assert.deepEqual(g.model.config.ropeScaling, config.ropeScaling);
  assert.deepEqual(g.model.config.ropeFreqFactors, llama3RopeFactors(32, 500000, config.ropeScaling as never));
  assert.ok(g.model.tensors.some((t) => t.name === 'rope_freqs' && t.fileName === 'rope_freqs.weight'));
  const s = await open(synthModel({ config, type: 'F32', seed: 1, format: 'safetensors' }));
  assert.deepEqual(s.model.config.ropeScaling, config.ropeScaling);
});

test('fallbacks where blocks do not fit the rows (stories260K shape as Q4_K)', () => {
  const config = shapeConfig('stories260K');
  config.nLayers = 1;
  const r = synthModel({ config, type: 'Q4_K', seed: 3, format: 'gguf' });
  // Rows of 64 take Q5_0 (llama.cpp's choice for Q4_K); the 172-wide rows of w_down take F16.
  assert.equal(r.types['blocks.0.attn.wq'], 'Q5_0');
  assert.equal(r.types['embed.weight'], 'Q5_0');
  assert.equal(r.types['blocks.0.ffn.w_down'], 'F16');
  assert.equal(r.types['blocks.0.attn_norm.weight'], 'F32');
  assert.equal(r.fallbacks.length, 8);
  assert.deepEqual(r.fallbacks.find((f) => f.tensor === 'blocks.0.ffn.w_down'), { tensor: 'blocks.0.ffn.w_down', from: 'Q4_K', to: 'F16' });
});

test('streaming GGUF synth writes the same bytes as the in-memory one', async () => {
  const opts = { config: { ...TINY, nLayers: 1 }, type: 'Q8_0' as const, seed: 5, format: 'gguf' as const };
  const chunks: Uint8Array[] = [];
  const info = await synthGgufStream(opts, (b) => { chunks.push(b.slice()); });
  const joined = new Uint8Array(info.size);
  let at = 0;
  for (const c of chunks) { joined.set(c, at); at += c.length; }
  assert.equal(at, info.size);
  assert.deepEqual(joined, synthModel(opts).files[0]!.bytes);
});

test('shapes table and refusals', () => {
  assert.deepEqual(Object.keys(SHAPES), ['stories260K', 'stories15M', 'stories110M', 'smollm2-135m', 'tinyllama-1.1b', 'llama-3.2-1b', 'llama-3-8b']);
  const l3 = SHAPES['llama-3.2-1b'];
  assert.deepEqual([l3.nLayers, l3.dModel, l3.dFfn, l3.nHeads, l3.nKvHeads, l3.vocabSize, l3.tiedEmbeddings, l3.ropeTheta],
    [16, 2048, 8192, 32, 8, 128256, true, 500000]);
  assert.equal(l3.ropeScaling?.type, 'llama3');
  assert.deepEqual([SHAPES['llama-3-8b'].dFfn, SHAPES['tinyllama-1.1b'].nKvHeads, SHAPES['smollm2-135m'].nHeads], [14336, 4, 9]);
  assert.throws(() => shapeConfig('gpt-5'), UsageError);
  assert.throws(() => synthModel({ config: TINY, type: 'Q4_0', seed: 1, format: 'safetensors' }), UsageError);
  assert.throws(() => synthModel({ config: TINY, type: 'Q8_G64', seed: 1, format: 'gguf' }), UsageError);
  assert.throws(() => synthModel({ config: { ...TINY, vocabSize: 100 }, type: 'F32', seed: 1, format: 'gguf' }), UsageError);
});
