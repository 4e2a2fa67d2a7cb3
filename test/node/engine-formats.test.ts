// The same random model written as GGUF and as Hugging Face safetensors (src/formats/synth.ts, one
// seeded stream for both) must give the same logits. Safetensors stores Q/K rows in the half-split
// RoPE layout and the loader permutes them to glassbox's adjacent pairs, so this checks that
// conversion end to end, and the llama3 RoPE scaling read from config.json vs GGUF's rope_freqs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { synthModel } from '../../src/formats/synth.ts';
import { openModel } from '../../src/formats/open.ts';
import { bytesSource } from '../../src/formats/source.ts';
import { loadModelWeights } from '../../src/engine/weights.ts';
import { Session } from '../../src/engine/session.ts';
import { randomTokens, tinyConfig } from './engine-fixtures.ts';

async function logits(format: 'gguf' | 'safetensors', type: 'F32' | 'F16' | 'BF16', config: ReturnType<typeof tinyConfig>, tokens: number[]) {
  const synth = synthModel({ config, type, seed: 17, format });
  const model = await openModel(synth.files.map((f) => bytesSource(f.bytes, f.name)));
  assert.equal(model.format, format);
  assert.equal(model.ropeLayout, format === 'gguf' ? 'adjacent' : 'half-split');
  const weights = await loadModelWeights(model, { shared: false });
  return new Session(weights).run(tokens, { logits: 'all' }).logits;
}

const cases = [
  ['plain RoPE, GQA 6:2, untied', tinyConfig({ vocabSize: 300, nCtx: 64 })],
  ['llama3 RoPE scaling, tied', tinyConfig({
    vocabSize: 300, nCtx: 64, tiedEmbeddings: true, ropeTheta: 500000,
    ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 8 },
  })],
] as const;

for (const [what, config] of cases) {
  for (const type of ['F32', 'F16', 'BF16'] as const) {
    test(`GGUF and safetensors give the same logits (${what}, ${type})`, async () => {
      const tokens = randomTokens(17, config.vocabSize, 4);
      const a = await logits('gguf', type, config, tokens);
      const b = await logits('safetensors', type, config, tokens);
      assert.equal(a.length, tokens.length * config.vocabSize);
      // identical weights; the only difference allowed is RoPE frequencies computed from
      // rope_freqs (GGUF, f32 factors) vs from the llama3 formula (config.json) in f64
      let max = 0;
      for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
      assert.ok(max <= (config.ropeScaling ? 1e-4 : 0), `max |Δlogit| = ${max}`);
    });
  }
}
