// The sampler chain: the per-stage report, the draw's place in the cumulative distribution,
// reordering, greedy and the empty-set fallback, mirostat's state, option validation, seeded
// determinism, agreement with the older sampler.ts functions, and a chi-squared test of the draws.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ChainSampler, type ChainOptions, DEFAULT_ORDER, finalDistribution, fromLogits, probAt, probsOf, resolveOptions, runChain,
} from '../../src/engine/sampling/index.ts';
import { draw, samplingDistribution, sortedCandidates } from '../../src/engine/sampler.ts';
import { drawUniform } from '../../src/engine/branches.ts';
import { UsageError } from '../../src/engine/errors.ts';
import { Rng } from '../../src/engine/random.ts';

const logitsOf = (probs: number[]) => Float32Array.from(probs, (p) => Math.log(p));
const P4 = [0.5, 0.3, 0.15, 0.05];

function near(actual: ArrayLike<number>, expected: number[], what: string, tol = 1e-6): void {
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} values, want ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

test('no options: every stage is off and the draw is from the softmax', () => {
  const r = runChain(logitsOf(P4), {}, { random: { draw: 0.6 } });
  assert.deepEqual(r.stages.map((s) => s.stage), [...DEFAULT_ORDER]);
  assert.ok(r.stages.every((s) => !s.active && s.removed.length === 0 && s.ids.length === 4));
  near(finalDistribution(r).probs, P4, 'final');
  // cumulative 0.5, 0.8: u = 0.6 falls in [0.5, 0.8), the second token
  assert.equal(r.token, 1);
  assert.equal(r.draw!.rank, 1);
  near([r.draw!.lower, r.draw!.upper], [0.5, 0.8], 'draw interval');
  near([r.pBefore, r.pAfter], [0.3, 0.3], 'p before/after');
  assert.deepEqual(r.random, { draw: 0.6, xtc: null });
});

test('the report: each stage\'s set, what it removed, renormalised probabilities, entropy', () => {
  // top-k 3 then top-p 0.75 (of 0.5, 0.3, 0.15 renormalised over 0.95: 0.526, 0.842 → two), then T = 2
  const r = runChain(logitsOf(P4), { topK: 3, topP: 0.75, temperature: 2 }, { random: { draw: 0.6 } });
  const by = Object.fromEntries(r.stages.map((s) => [s.stage, s]));
  assert.deepEqual([...by.top_k!.ids], [0, 1, 2]);
  assert.deepEqual([...by.top_k!.removed], [3]);
  near(by.top_k!.probs, [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95], 'top-k renormalised');
  assert.deepEqual([...by.top_p!.removed], [2]);
  near(by.top_p!.probs, [0.625, 0.375], 'top-p');
  const a = Math.sqrt(0.5), b = Math.sqrt(0.3);
  near(by.temperature!.probs, [a / (a + b), b / (a + b)], 'T = 2');
  assert.deepEqual([...by.temperature!.removed], []);
  const h = -(0.625 * Math.log(0.625) + 0.375 * Math.log(0.375));
  assert.ok(Math.abs(by.top_p!.entropy - h) < 1e-6, 'entropy in nats');
  assert.ok(Math.abs(r.input.entropy + P4.reduce((s, p) => s + p * Math.log(p), 0)) < 1e-6, 'input entropy');
  // cumulative a/(a+b) = 0.5635, 1: u = 0.6 falls on the second
  assert.equal(r.token, 1);
  near([r.pBefore, r.pAfter], [0.3, b / (a + b)], 'p before/after');
  assert.ok(by.min_p!.active === false && by.top_p!.active && by.temperature!.active);
});

test('a reordered chain gives a different, hand-checked result', () => {
  const logits = logitsOf(P4);
  // default order: top-p 0.75 first keeps {0, 1}; T = 2 then gives √p renormalised
  const d = finalDistribution(runChain(logits, { topP: 0.75, temperature: 2 }, { random: { draw: 0 } }));
  const s = P4.map(Math.sqrt);                           // 0.70711, 0.54772, 0.38730, 0.22361
  assert.deepEqual([...d.ids], [0, 1]);
  near(d.probs, [s[0]! / (s[0]! + s[1]!), s[1]! / (s[0]! + s[1]!)], 'top-p then T');
  // temperature first: √p / Σ√p = 0.37900, 0.29357, 0.20758, 0.11985; cumulative 0.379, 0.673,
  // 0.880 ≥ 0.75 → three tokens
  const e = finalDistribution(runChain(logits, { topP: 0.75, temperature: 2, order: ['temperature', 'top_p', 'dist'] }, { random: { draw: 0 } }));
  assert.deepEqual([...e.ids], [0, 1, 2]);
  const z = s[0]! + s[1]! + s[2]!;
  near(e.probs, [s[0]! / z, s[1]! / z, s[2]! / z], 'T then top-p');
  // a stage left out of the order does not run
  assert.deepEqual([...finalDistribution(runChain(logits, { topK: 1, order: ['top_p'] }, { random: { draw: 0 } })).ids], [0, 1, 2, 3]);
});

test('temperature 0 is greedy, the lowest id on ties, whatever the random number', () => {
  const logits = Float32Array.of(0, 7, 7, -1);
  for (const u of [0, 0.5, 0.999999]) {
    const r = runChain(logits, { temperature: 0 }, { random: { draw: u } });
    assert.equal(r.token, 1);
    assert.equal(r.pAfter, 1);
  }
  assert.equal(new ChainSampler({ temperature: 0 }, 5).sample(Float32Array.of(3, 9, 9)), 1);
});

test('an empty candidate set falls back to the argmax of the raw logits, flagged', () => {
  const logits = Float32Array.of(1, 4, 4, 2);
  const ban = { logitBias: { 0: -Infinity, 1: -Infinity, 2: -Infinity, 3: -Infinity } };
  const r = runChain(logits, ban, { random: { draw: 0.3 } });
  assert.equal(r.token, 1, 'the raw argmax, the lowest id of the tie');
  assert.deepEqual(r.fallback, { stage: 'logit_bias', reason: 'logit_bias left no candidates' });
  assert.equal(r.draw, null);
  assert.equal(r.stages.length, 1, 'the chain stops at the empty set');
  assert.ok(Math.abs(r.pBefore - Math.exp(4) / (Math.exp(1) + 2 * Math.exp(4) + Math.exp(2))) < 1e-6);
  const all = runChain(Float32Array.of(-Infinity, -Infinity, NaN), {}, { random: { draw: 0.3 } });
  assert.equal(all.token, 0);
  assert.equal(all.fallback!.stage, 'input');
  assert.equal(all.pBefore, 0);
  // through the sampler too: no throw
  assert.equal(new ChainSampler(ban).sample(logits), 1);
});

test('very small temperatures give finite probabilities and pick the most likely', () => {
  const logits = Float32Array.of(1, 3, 2.9999, -Infinity, 0);
  for (const temperature of [1e-6, 1e-30]) {
    const r = runChain(logits, { temperature }, { random: { draw: 0.99 } });
    assert.equal(r.token, 1);
    assert.ok(r.stages.every((s) => [...s.probs].every(Number.isFinite) && Number.isFinite(s.entropy)));
    assert.equal(r.pAfter, 1);
  }
});

test('mirostat 2 in the chain: truncates by μ, draws, and updates μ by the observed surprise', () => {
  const logits = logitsOf([0.5, 0.25, 0.125, 0.125]);  // surprises 1, 2, 3, 3 bits
  const o: ChainOptions = { mirostat: 2, mirostatTau: 2, mirostatEta: 0.1 };
  // μ = 2.5 keeps {0, 1} renormalised to 2/3, 1/3; u = 0.1 → token 0, surprise log2(1.5)
  const r = runChain(logits, o, { random: { draw: 0.1 }, mirostat: { mu: 2.5 } });
  assert.equal(r.token, 0);
  assert.deepEqual(r.stages.map((s) => s.stage), ['logit_bias', 'temperature', 'mirostat']);
  assert.deepEqual([...r.stages[2]!.removed], [2, 3]);
  assert.ok(Math.abs(r.pAfter - 2 / 3) < 1e-6);
  assert.ok(Math.abs(r.mirostat!.mu - (2.5 - 0.1 * (Math.log2(1.5) - 2))) < 1e-6);
  // u = 0.9 → token 1, surprise log2 3 = 1.585 bits
  const r2 = runChain(logits, o, { random: { draw: 0.9 }, mirostat: { mu: 2.5 } });
  assert.equal(r2.token, 1);
  assert.ok(Math.abs(r2.mirostat!.mu - (2.5 - 0.1 * (Math.log2(3) - 2))) < 1e-6);
  // no state given: μ starts at 2τ = 4, which keeps all four
  assert.equal(runChain(logits, o, { random: { draw: 0.99 } }).token, 3);
});

test('mirostat 1 in the chain, and the sampler carries μ from token to token', () => {
  const w = [1, 1 / 4, 1 / 9, 1 / 16], z = w.reduce((a, b) => a + b);
  const logits = logitsOf(w.map((v) => v / z));
  // s = 2, N = 4, μ = 3 → k = 3; top 3 renormalised: 1, 1/4, 1/9 over 1.3611; u = 0.8 > 0.7347 → token 1
  const o: ChainOptions = { mirostat: 1, mirostatTau: 3, mirostatEta: 0.1 };
  const r = runChain(logits, o, { random: { draw: 0.8 }, mirostat: { mu: 3 } });
  const z3 = 1 + 1 / 4 + 1 / 9;
  assert.equal(r.token, 1);
  assert.ok(Math.abs(r.pAfter - 0.25 / z3) < 1e-6);
  assert.ok(Math.abs(r.mirostat!.mu - (3 - 0.1 * (-Math.log2(0.25 / z3) - 3))) < 1e-6);
  // the sampler: μ starts at 2τ and follows the update after every token
  const s = new ChainSampler(o, 11);
  let mu = 6;
  for (let i = 0; i < 5; i++) {
    const step = s.step(logits);
    mu = mu - 0.1 * (-Math.log2(step.pAfter) - 3);
    assert.ok(Math.abs(s.mu! - mu) < 1e-9, `μ after token ${i}`);
  }
});

test('XTC in the chain uses its own random number; the draw stream stays aligned with XTC on or off', () => {
  const logits = logitsOf([0.4, 0.3, 0.2, 0.1]);
  const o = { xtcProbability: 0.5, xtcThreshold: 0.25 };
  const acts = runChain(logits, o, { random: { draw: 0, xtc: 0.2 } });
  assert.equal(acts.token, 1, 'the first top choice excluded');
  assert.deepEqual(acts.random, { draw: 0, xtc: 0.2 });
  assert.equal(runChain(logits, o, { random: { draw: 0, xtc: 0.8 } }).token, 0, 'XTC did not act');
  assert.throws(() => runChain(logits, o, { random: { draw: 0 } }), /random\.xtc/);
  const on = new ChainSampler(o, 3), off = new ChainSampler({}, 3);
  const history: number[] = [];
  for (let i = 0; i < 20; i++) {
    const a = on.step(logits, history), b = off.step(logits, history);
    assert.equal(a.random.draw, b.random.draw);
    assert.equal(a.random.draw, drawUniform(3, i), 'the draw for position i is drawUniform(seed, i)');
    history.push(b.token);
  }
});

test('options are validated with messages that name the field', () => {
  const cases: [ChainOptions, RegExp][] = [
    [{ topP: 1.5 }, /topP is 1\.5/], [{ topK: -1 }, /topK is -1/], [{ topK: 2.5 }, /topK/],
    [{ temperature: NaN }, /temperature is NaN/], [{ temperature: -1 }, /temperature/], [{ minP: 2 }, /minP/],
    [{ typicalP: -0.1 }, /typicalP/], [{ repeatPenalty: 0 }, /repeatPenalty/], [{ repeatLastN: -2 }, /repeatLastN/],
    [{ frequencyPenalty: Infinity }, /frequencyPenalty/], [{ dryBase: 0.5 }, /dryBase/], [{ dryAllowedLength: -1 }, /dryAllowedLength/],
    [{ drySequenceBreakers: [[]] }, /drySequenceBreakers/], [{ xtcThreshold: 1.1 }, /xtcThreshold/], [{ mirostat: 3 }, /mirostat is 3/],
    [{ dynatempRange: -1 }, /dynatempRange/], [{ topNSigma: -1 }, /topNSigma/], [{ minKeep: -1 }, /minKeep/],
    [{ logitBias: { 3: Infinity } }, /logitBias\[3\]/], [{ logitBias: new Map([[-1, 1]]) }, /logitBias key -1/],
    [{ order: ['top_k', 'bogus'] }, /unknown stage 'bogus'/], [{ order: ['top_k', 'top_k'] }, /'top_k' twice/],
    [{ order: ['dist', 'top_k'] }, /unknown stage 'dist'.*only come last/],
  ];
  for (const [o, re] of cases) assert.throws(() => resolveOptions(o), (e: unknown) => e instanceof UsageError && re.test(e.message), JSON.stringify(o));
  const l = Float32Array.of(0, 1);
  assert.throws(() => runChain(l, { logitBias: { 2: 1 } }, { random: { draw: 0 } }), /logitBias names token 2 but the vocabulary has 2/);
  assert.throws(() => runChain(l, {}, { random: { draw: 1 } }), /random\.draw is 1/);
  assert.throws(() => new ChainSampler({ topP: 2 }), UsageError);
});

test('determinism: the same seed, options and logits give the same tokens; the caller\'s logits are untouched', () => {
  const rng = new Rng(7);
  const logits = rng.fillGaussian(new Float32Array(500), 2);
  const copy = logits.slice();
  const o: ChainOptions = { topK: 50, topP: 0.9, minP: 0.02, temperature: 0.9, repeatPenalty: 1.2, presencePenalty: 0.3, dryMultiplier: 0.8, xtcProbability: 0.5, typicalP: 0.95 };
  const run = (seed: number) => {
    const s = new ChainSampler(o, seed), out: number[] = [];
    for (let i = 0; i < 64; i++) out.push(s.sample(logits, out));
    return out;
  };
  assert.deepEqual(run(42), run(42));
  assert.notDeepEqual(run(42), run(43));
  assert.deepEqual(logits, copy);
});

test('given only the older options, the chain keeps what sampler.ts keeps and draws the same tokens', () => {
  const rng = new Rng(3);
  const logits = rng.fillGaussian(new Float32Array(1000), 3);
  const history = Array.from({ length: 100 }, () => rng.int(1000));
  const sets = [{}, { topK: 40 }, { topP: 0.9 }, { minP: 0.05 }, { topK: 40, topP: 0.95, minP: 0.05, temperature: 0.7 }, { temperature: 1.5, repeatPenalty: 1.3, repeatLastN: 32 }];
  for (const o of sets) {
    const old = samplingDistribution(logits, history, o);
    const now = finalDistribution(runChain(logits, o, { history, random: { draw: 0 } }));
    assert.deepEqual([...now.ids], old.ids, JSON.stringify(o));
    near(now.probs, [...old.probs], JSON.stringify(o), 1e-9);
    // and the token is where drawUniform(seed, position) falls in the older distribution
    const b = new ChainSampler(o, 9);
    const seq = [...history];
    for (let i = 0; i < 64; i++) {
      const want = draw(samplingDistribution(logits, seq, o), drawUniform(9, seq.length));
      const got = b.sample(logits, seq);
      assert.equal(got, want, `token ${i}, ${JSON.stringify(o)}`);
      seq.push(got);
    }
  }
});

test('chi-squared: 20,000 draws at temperature 1 match the softmax', () => {
  const logits = Float32Array.of(2, 1.5, 1, 0.5, 0, -0.5, -1, -1.5, -2, -2.5);
  const w = [...logits].map(Math.exp), z = w.reduce((a, b) => a + b);
  const raw = fromLogits(logits), options = resolveOptions({}), rng = new Rng(2024);
  const N = 20000, counts = new Array(10).fill(0);
  for (let i = 0; i < N; i++) counts[runChain(logits, options, { raw, random: { draw: rng.next() } }).token]++;
  let chi2 = 0;
  for (let i = 0; i < 10; i++) {
    const expected = (N * w[i]!) / z;                     // the smallest is 88, well above 5
    chi2 += (counts[i] - expected) ** 2 / expected;
  }
  // 9 degrees of freedom, significance 0.001: the critical value of χ²(9) is 27.877
  assert.ok(chi2 < 27.877, `χ² = ${chi2.toFixed(2)} ≥ 27.877: the draws do not follow the softmax (counts ${counts})`);
});

test('a 128k vocabulary: the one sort agrees with sampler.ts', () => {
  const rng = new Rng(5);
  const logits = rng.fillGaussian(new Float32Array(128256), 3);
  for (let i = 0; i < 200; i++) logits[rng.int(logits.length)] = logits[rng.int(logits.length)]!;   // ties
  logits[17] = -Infinity;
  const raw = fromLogits(logits);
  assert.deepEqual(raw.ids, sortedCandidates(logits));
  const history = Array.from({ length: 256 }, () => rng.int(logits.length));
  const o = resolveOptions({ topK: 40, topP: 0.95, minP: 0.05, temperature: 0.8, repeatPenalty: 1.1, presencePenalty: 0.1, dryMultiplier: 0.8 });
  const r = runChain(logits, o, { history, random: { draw: 0.5 } });
  assert.equal(r.stages.find((s) => s.stage === 'top_k')!.ids.length, 40);
  assert.equal(r.stages.find((s) => s.stage === 'top_k')!.removed.length, 128255 - 40);
});

test('probAt and the draw use probsOf\'s numbers exactly, without the array', () => {
  const rng = new Rng(7);
  for (let trial = 0; trial < 20; trial++) {
    const n = 1 + Math.floor(rng.next() * 3000);
    const spread = trial % 4 === 0 ? 80 : 4;             // wide rows underflow most exponentials to 0
    const logits = Float32Array.from({ length: n }, () => (rng.next() - 0.5) * spread);
    if (trial % 5 === 1) logits[Math.floor(rng.next() * n)] = -Infinity;
    const options = resolveOptions(trial % 3 === 0 ? { temperature: 0.7 } : trial % 3 === 1 ? { topK: 50, minP: 0.01 } : {});
    // a fresh set per question, so that probAt never finds probsOf's array in its cache
    for (let rank = 0; rank < n; rank += 1 + Math.floor(n / 17)) {
      const fresh = fromLogits(logits);
      if (rank < fresh.ids.length) assert.equal(probAt(fresh, rank), probsOf(fromLogits(logits))[rank], `trial ${trial}, rank ${rank}`);
    }
    for (const u of [0, rng.next(), rng.next(), 0.5, 1 - 1e-12]) {
      const r = runChain(logits, options, { random: { draw: u } });
      // the draw as it was written before probAt: a search over probsOf's array
      const last = finalDistribution(r), probs = probsOf({ ids: last.ids, logits: r.stages.at(-1)!.logits });
      let rank = -1, lower = 0, cum = 0;
      for (let i = 0; i < probs.length; i++) {
        if (probs[i]! === 0) continue;
        lower = cum; cum += probs[i]!; rank = i;
        if (u < cum) break;
      }
      assert.deepEqual(r.draw, { rank, lower, upper: cum }, `trial ${trial}, u ${u}`);
      assert.equal(r.pAfter, probs[rank]);
      assert.equal(r.token, last.ids[rank]);
      const raw = fromLogits(logits);
      assert.equal(r.pBefore, probsOf(raw)[raw.ids.indexOf(r.token)]);
    }
  }
});
