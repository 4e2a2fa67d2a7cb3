// The forward pass on real weights: karpathy's stories260K (5 layers, GQA 8:4, tied embeddings),
// against the golden greedy decode of ../shared/models/tinystories-260k/stories260K_greedy_ref.json
// (llama2.c run.c -t 0, byte for byte), loaded both from the GGUF and from the llama2.c .bin.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { openModel } from '../../src/formats/open.ts';
import { fileSource } from '../../src/formats/node-source.ts';
import { loadModelWeights, type ModelWeights } from '../../src/engine/weights.ts';
import { Session } from '../../src/engine/session.ts';
import { generate } from '../../src/engine/generate.ts';

const dir = fileURLToPath(new URL('../../../shared/models/tinystories-260k/', import.meta.url));

interface Ref {
  token_ids: number[];
  first_16_steps_top5_logits: { pos: number; input: number; argmax: number; top5: [number, number][] }[];
}
const ref = JSON.parse(readFileSync(dir + 'stories260K_greedy_ref.json', 'utf8')) as Ref;

async function load(files: string[]): Promise<ModelWeights> {
  const sources = await Promise.all(files.map((f) => fileSource(dir + f)));
  const model = await openModel(sources.slice(0, 1), sources[1] ? { tokenizer: sources[1] } : {});
  try {
    return await loadModelWeights(model);
  } finally {
    for (const s of sources) await (s as { close?: () => Promise<void> }).close?.();
  }
}

for (const files of [['stories260K.gguf'], ['stories260K.bin', 'tok512.bin']]) {
  test(`stories260K from ${files[0]}: greedy from BOS gives the reference's 256 tokens`, async () => {
    const weights = await load(files);
    const session = new Session(weights);
    const bos = ref.token_ids[0]!;
    assert.equal(bos, weights.config.bosId);
    const ids = [bos, ...generate(session, [bos], { maxTokens: 256, temperature: 0, stopAtEos: false })];
    let same = 0;
    while (same < ids.length && ids[same] === ref.token_ids[same]) same++;
    assert.equal(same, ref.token_ids.length, `first difference at position ${same}: ${ids[same]} vs ${ref.token_ids[same]}`);
    assert.equal(ids.length, ref.token_ids.length);
  });

  test(`stories260K from ${files[0]}: top-5 logits of the first 16 positions within 1e-4`, async () => {
    const weights = await load(files);
    const steps = ref.first_16_steps_top5_logits;
    const inputs = steps.map((s) => s.input);
    const vocab = weights.config.vocabSize;
    // one prefill of all 16 positions (the greedy test above decodes one position at a time)
    const { logits } = new Session(weights).run(inputs, { logits: 'all' });
    for (const step of steps) {
      const row = logits.subarray(step.pos * vocab, (step.pos + 1) * vocab);
      const order = [...row.keys()].sort((a, b) => row[b]! - row[a]! || a - b);
      assert.equal(order[0], step.argmax, `position ${step.pos}: argmax`);
      step.top5.forEach(([id, value], r) => {
        assert.equal(order[r], id, `position ${step.pos}: rank ${r}`);
        assert.ok(Math.abs(row[id]! - value) <= 1e-4, `position ${step.pos}, token ${id}: ${row[id]} vs ${value}`);
      });
    }
  });
}
