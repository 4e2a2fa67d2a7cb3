// Sampling: each filter on small hand-made logits, the draw's frequencies, seeded reproducibility,
// and generation (top-k 1 = greedy, fixed seed = same tokens, EOS and context-end stops).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyRepetitionPenalty, argmax, draw, Sampler, samplingDistribution } from '../../src/engine/sampler.ts';
import { generate } from '../../src/engine/generate.ts';
import { Session } from '../../src/engine/session.ts';
import { UsageError } from '../../src/engine/errors.ts';
import { randomTokens, randomWeights, tinyConfig } from './engine-fixtures.ts';
import { readFileSync } from 'node:fs';
import { openModel } from '../../src/formats/open.ts';
import { bytesSource } from '../../src/formats/source.ts';
import { loadModelWeights } from '../../src/engine/weights.ts';

/** Logits whose softmax is exactly `probs`. */
const logitsOf = (probs: number[]) => Float32Array.from(probs, (p) => Math.log(p));
const P4 = [0.5, 0.3, 0.15, 0.05];

function probsNear(actual: Float64Array, expected: number[], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} candidates, want ${expected.length}`);
  expected.forEach((e, i) => assert.ok(Math.abs(actual[i]! - e) < 1e-6, `${what}[${i}]: ${actual[i]} vs ${e}`));
}

test('argmax and greedy: the lowest id wins a tie', () => {
  assert.equal(argmax([1, 5, 2, 5]), 1);
  const d = samplingDistribution(Float32Array.of(0, 7, 7, -1), [], { temperature: 0 });
  assert.deepEqual(d.ids, [1]);
  assert.equal(new Sampler({ temperature: 0 }).sample(Float32Array.of(3, 9, 9)), 1);
});

test('repetition penalty divides positive logits and multiplies negative ones of recent tokens only', () => {
  const l = Float32Array.of(2, -1, 0.5, 3);
  assert.deepEqual([...applyRepetitionPenalty(l, [0, 1, 1], 2)], [1, -2, 0.5, 3]);
  assert.deepEqual([...applyRepetitionPenalty(l, [0, 1, 3], 2, 2)], [2, -2, 0.5, 1.5], 'only the last 2 tokens');
  assert.deepEqual([...applyRepetitionPenalty(l, [0, 1, 3], 2, -1)], [1, -2, 0.5, 1.5], '−1: all of them');
  assert.deepEqual([...l], [2, -1, 0.5, 3], 'the input is not changed');
  // greedy after the penalty: token 3 (3 → 1.5) loses to token 0 (2, not penalized)
  assert.equal(new Sampler({ temperature: 0, repeatPenalty: 2 }).sample(l, [3]), 0);
});

test('top-k keeps the k most likely (lowest id first on ties), renormalized', () => {
  const d = samplingDistribution(Float32Array.of(1, 3, 2, 3, 0), [], { topK: 2 });
  assert.deepEqual(d.ids, [1, 3]);
  probsNear(d.probs, [0.5, 0.5], 'top-k 2');
  assert.deepEqual(samplingDistribution(Float32Array.of(1, 3, 2, 3, 0), [], { topK: 1 }).ids, [1]);
  assert.equal(samplingDistribution(Float32Array.of(1, 3, 2), [], { topK: 10 }).ids.length, 3);
});

test('top-p keeps the shortest prefix whose probability reaches p', () => {
  const l = logitsOf(P4);
  probsNear(samplingDistribution(l, [], { topP: 0.75 }).probs, [0.5 / 0.8, 0.3 / 0.8], 'top-p 0.75');
  probsNear(samplingDistribution(l, [], { topP: 0.9 }).probs, [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95], 'top-p 0.9');
  assert.deepEqual(samplingDistribution(l, [], { topP: 0.4 }).ids, [0]);
  assert.deepEqual(samplingDistribution(l, [], { topP: 1 }).ids, [0, 1, 2, 3]);
});

test('min-p keeps tokens at least min-p times as likely as the most likely', () => {
  const l = logitsOf(P4);
  assert.deepEqual(samplingDistribution(l, [], { minP: 0.2 }).ids, [0, 1, 2]);   // ≥ 0.1
  assert.deepEqual(samplingDistribution(l, [], { minP: 0.35 }).ids, [0, 1]);     // ≥ 0.175
  assert.deepEqual(samplingDistribution(l, [], { minP: 0.05 }).ids, [0, 1, 2, 3]);
  probsNear(samplingDistribution(l, [], { minP: 0.35 }).probs, [0.5 / 0.8, 0.3 / 0.8], 'min-p renormalizes');
});

test('temperature reshapes what the filters kept; −inf logits are never candidates', () => {
  const l = logitsOf(P4);
  const z = P4.reduce((s, p) => s + Math.sqrt(p), 0);
  probsNear(samplingDistribution(l, [], { temperature: 2 }).probs, P4.map((p) => Math.sqrt(p) / z), 'T = 2');
  // top-p is applied before the temperature (llama.cpp's order): a hot temperature keeps the same set
  assert.deepEqual(samplingDistribution(l, [], { topP: 0.75, temperature: 50 }).ids, [0, 1]);
  const masked = Float32Array.of(-Infinity, 0, -Infinity, 0);
  assert.deepEqual(samplingDistribution(masked, []).ids, [1, 3]);
  assert.throws(() => samplingDistribution(Float32Array.of(-Infinity), []), UsageError);
});

test('draws follow the distribution; a seed repeats its draws', () => {
  const d = samplingDistribution(logitsOf(P4), []);
  assert.equal(draw(d, 0), 0);
  assert.equal(draw(d, 0.49), 0);
  assert.equal(draw(d, 0.51), 1);
  assert.equal(draw(d, 0.9), 2);
  assert.equal(draw(d, 0.999), 3);
  const s = new Sampler({}, 42);
  const counts = [0, 0, 0, 0];
  const l = logitsOf(P4);
  const n = 20000;
  const first: number[] = [];
  for (let i = 0; i < n; i++) { const id = s.sample(l); counts[id]!++; if (i < 50) first.push(id); }
  counts.forEach((c, i) => assert.ok(Math.abs(c / n - P4[i]!) < 0.015, `token ${i}: ${c / n} vs ${P4[i]}`));
  const again = new Sampler({}, 42);
  assert.deepEqual(first, Array.from({ length: 50 }, () => again.sample(l)));
  const other = new Sampler({}, 43);
  assert.notDeepEqual(first, Array.from({ length: 50 }, () => other.sample(l)));
});

test('bad sampler settings are UsageErrors', () => {
  for (const o of [{ temperature: -1 }, { topK: 1.5 }, { topP: 0 }, { topP: 1.1 }, { minP: -0.1 }, { repeatPenalty: 0 }, { temperature: NaN }]) {
    assert.throws(() => new Sampler(o), UsageError, JSON.stringify(o));
  }
});

const config = tinyConfig();
const weights = randomWeights(config, 'F32', 7);
const prompt = [1, ...randomTokens(5, config.vocabSize, 9)];

test('generation: a fixed seed is reproducible, another seed differs, top-k 1 equals greedy', () => {
  const opts = { maxTokens: 20, temperature: 1, seed: 1234, stopAtEos: false };
  const a = [...generate(new Session(weights), prompt, opts)];
  const b = [...generate(new Session(weights), prompt, opts)];
  assert.equal(a.length, 20);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, [...generate(new Session(weights), prompt, { ...opts, seed: 4321 })]);
  // the same session, reused for a second generation, gives the same tokens (prefix reuse is exact)
  const s = new Session(weights);
  const first = [...generate(s, prompt, opts)];
  assert.deepEqual([...generate(s, prompt, opts)], first);

  const greedy = [...generate(new Session(weights), prompt, { maxTokens: 20, temperature: 0, stopAtEos: false })];
  const topK1 = [...generate(new Session(weights), prompt, { maxTokens: 20, temperature: 0.8, topK: 1, seed: 5, stopAtEos: false })];
  assert.deepEqual(topK1, greedy);
  // greedy is the argmax of each step's logits
  const check = new Session(weights);
  const seq = [...prompt];
  for (const id of greedy) {
    assert.equal(argmax(check.run(seq).logits), id);
    seq.push(id);
  }
});

test('generation stops at EOS / stop ids (not yielded) and at the end of the context', () => {
  const greedy = [...generate(new Session(weights), prompt, { maxTokens: 5, temperature: 0, stopAtEos: false })];
  const stopped = [...generate(new Session(weights), prompt, { maxTokens: 5, temperature: 0, stopIds: [greedy[2]!] })];
  assert.deepEqual(stopped, greedy.slice(0, greedy.indexOf(greedy[2]!)));
  const nearFull = randomTokens(config.nCtx - 3, config.vocabSize, 2);
  const tail = [...generate(new Session(weights), nearFull, { maxTokens: 100, temperature: 0, stopAtEos: false })];
  assert.equal(tail.length, 4, 'positions nCtx−3 .. nCtx−1 each give one token');
  assert.equal([...generate(new Session(weights), prompt, { maxTokens: 0 })].length, 0);
});

test('the seeded-generation fixture is what Node generates (the browser test compares the worker and WebGPU with it)', async () => {
  const fx = JSON.parse(readFileSync(new URL('../fixtures/seeded-generation.json', import.meta.url), 'utf8')) as
    { prompt: number[]; options: Record<string, number>; seed: number; tokens: number[] };
  const bytes = readFileSync(new URL('../../../shared/models/tinystories-260k/stories260K.gguf', import.meta.url));
  const w = await loadModelWeights(await openModel([bytesSource(bytes, 'stories260K.gguf')]));
  const got = [...generate(new Session(w), fx.prompt, { ...fx.options, seed: fx.seed, maxTokens: fx.tokens.length, stopAtEos: false })];
  assert.deepEqual(got, fx.tokens);
});
