// Each sampler stage on small logits worked by hand from its definition: the expected ids and
// probabilities below are written from the formulas, not from running the code.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type Candidates, dry, dryRepeatLengths, entropyOf, fromLogits, logitBias, minP, mirostatUpdate, mirostatV1Truncate,
  mirostatV2Truncate, penalties, probsOf, temperature, topK, topNSigma, topP, typicalP, xtc,
} from '../../src/engine/sampling/index.ts';

const cands = (logits: number[]): Candidates => fromLogits(Float32Array.from(logits));
/** Logits whose softmax is `probs`. */
const of = (probs: number[]): Candidates => cands(probs.map((p) => Math.log(p)));
const ids = (c: Candidates) => [...c.ids];

function near(actual: ArrayLike<number>, expected: number[], what: string, tol = 1e-6): void {
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} values, want ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

const P4 = [0.5, 0.3, 0.15, 0.05];
const HALVES = [0.5, 0.25, 0.125, 0.125];

test('candidates: sorted by logit, the lowest id first on ties; −inf and NaN are not candidates; −0 ties with 0', () => {
  const c = cands([1, 3, -Infinity, 3, NaN, 0, -0, -2]);
  assert.deepEqual(ids(c), [1, 3, 0, 5, 6, 7]);
  assert.deepEqual([...c.logits], [3, 3, 1, 0, -0, -2]);
  assert.deepEqual(ids(cands([7, 7, 7, 7])), [0, 1, 2, 3], 'all equal: id order');
  assert.equal(cands([-Infinity, -Infinity]).ids.length, 0, 'all −inf: empty');
  // both signs, large and tiny magnitudes: the radix sort agrees with a plain comparison sort
  const vals = [5e-30, -5e-30, 1e30, -1e30, 0.1, -0.1, 2, -2, 3.5, 3.5, -3.5, 1e-45, -1e-45];
  const want = vals.map((v, i) => [Math.fround(v), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]).map((x) => x[1]);
  assert.deepEqual(ids(cands(vals)), want);
});

test('candidates of long rows, one after another (the sort keeps its working arrays): a plain comparison sort\'s order', () => {
  let seed = 7;
  const rnd = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const row = (n: number) => Float32Array.from({ length: n }, () => {
    const r = rnd();
    return r < 0.01 ? NaN : r < 0.02 ? -Infinity : r < 0.03 ? Infinity : r < 0.2 ? Math.round(rnd() * 8) - 4 : (rnd() - 0.5) * 10 ** (rnd() * 6 - 3);
  });
  const want = (x: Float32Array) => [...x.keys()].filter((i) => x[i]! > -Infinity).sort((a, b) => x[b]! - x[a]! || a - b);
  for (const n of [70000, 50, 128256, 3]) {
    const x = row(n), c = fromLogits(x);
    assert.deepEqual(ids(c), want(x), `a row of ${n}`);
    assert.deepEqual([...c.logits], ids(c).map((i) => x[i]!), `logits of a row of ${n}`);
  }
});

test('softmax and entropy of a set', () => {
  const c = of(HALVES);
  near(probsOf(c), HALVES, 'probs');
  // H = 0.5·ln2 + 0.25·2ln2 + 2·0.125·3ln2 = 1.75 ln 2
  assert.ok(Math.abs(entropyOf(c) - 1.75 * Math.LN2) < 1e-6);
  assert.ok(Math.abs(entropyOf(cands([0, 0, 0, 0])) - Math.log(4)) < 1e-12, 'uniform: ln n');
  assert.equal(entropyOf(cands([5])), 0);
});

test('logit bias adds to listed ids; −Infinity bans; banning all leaves an empty set; the input is unchanged', () => {
  const raw = Float32Array.of(0, 0, 0);
  const c = fromLogits(raw);
  const b = logitBias(c, new Map([[1, -Infinity], [2, 2]]));
  assert.deepEqual(ids(b), [2, 0]);
  const e2 = Math.exp(2);
  near(probsOf(b), [e2 / (e2 + 1), 1 / (e2 + 1)], 'biased');
  assert.deepEqual([...c.logits], [0, 0, 0], 'the input set is not changed');
  assert.deepEqual([...raw], [0, 0, 0], 'the caller\'s logits are not changed');
  assert.equal(logitBias(c, new Map([[0, -Infinity], [1, -Infinity], [2, -Infinity]])).ids.length, 0);
  assert.equal(logitBias(c, new Map()), c, 'no bias: the same set');
  assert.deepEqual(ids(logitBias(c, new Map([[9, 5]]))), [0, 1, 2], 'an id not among the candidates is ignored');
});

test('penalties: repetition divides positive / multiplies negative, then frequency·count + presence', () => {
  const c = cands([2, -1, 0.5, 3]);
  const history = [0, 1, 1, 3, 3, 3];
  // counts {0:1, 1:2, 3:3}; repeat 2, frequency 0.5, presence 0.25:
  // 0: 2/2 − 0.5 − 0.25 = 0.25;  1: −1·2 − 1 − 0.25 = −3.25;  2: 0.5;  3: 3/2 − 1.5 − 0.25 = −0.25
  const p = penalties(c, history, { repeat: 2, frequency: 0.5, presence: 0.25, lastN: 64 });
  assert.deepEqual(ids(p), [2, 0, 3, 1]);
  assert.deepEqual([...p.logits], [0.5, 0.25, -0.25, -3.25]);
  // window of 2: only token 3 (twice): 3/2 − 1 − 0.25 = 0.25
  const w = penalties(c, history, { repeat: 2, frequency: 0.5, presence: 0.25, lastN: 2 });
  assert.deepEqual(ids(w), [0, 2, 3, 1]);
  assert.deepEqual([...w.logits], [2, 0.5, 0.25, -1]);
  assert.equal(penalties(c, history, { repeat: 2, frequency: 1, presence: 1, lastN: 0 }), c, 'lastN 0: off');
  assert.equal(penalties(c, history, { repeat: 1, frequency: 0, presence: 0, lastN: 64 }), c, 'neutral values: off');
  // repetition alone, −1 = the whole history (the existing semantics): 0 → 1, 1 → −2, 3 → 1.5
  assert.deepEqual([...penalties(c, history, { repeat: 2, frequency: 0, presence: 0, lastN: -1 }).logits], [1.5, 1, 0.5, -2]);
  // a penalty that makes a tie: 1.5 − 0.5 = 1 ties token 0's 1 → the lower id first
  assert.deepEqual(ids(penalties(cands([1, 1.5]), [1], { repeat: 1, frequency: 0, presence: 0.5, lastN: 64 })), [0, 1]);
});

test('DRY: repeat lengths by the Z-algorithm, breakers, the window, the penalty multiplier·base^(L − allowed)', () => {
  const [a, b, c, y] = [0, 1, 2, 3];
  const ctx = [a, b, c, c, b, c, y, a, b, c];
  // the tail "a b c" also ends at position 2 (followed by c: length 3); "b c" ends at 5
  // (followed by y: 2); "c" ends at 3 (followed by b: 1)
  const none = { allowedLength: 1, lastN: -1, sequenceBreakers: [] };
  assert.deepEqual([...dryRepeatLengths(ctx, none)].sort(), [[b, 1], [c, 3], [y, 2]]);
  const o = { multiplier: 0.8, base: 1.75, allowedLength: 2, lastN: -1, sequenceBreakers: [] as number[][] };
  const set = cands([0, 0, 0, 0, 0]);                            // a b c y and an unrelated token 4
  const out = dry(set, ctx, o);
  // c: 0.8 · 1.75^(3−2) = 1.4; y: 0.8 · 1.75^0 = 0.8; b's repeat (1) is allowed
  assert.deepEqual(ids(out), [a, b, 4, y, c]);
  near(out.logits, [0, 0, 0, -0.8, -1.4], 'dry logits');
  // a breaker 'a' 2 tokens back: repeats cannot reach past it, so lengths are capped at 2
  near(dry(set, ctx, { ...o, sequenceBreakers: [[a]] }).logits, [0, 0, 0, -0.8, -0.8], 'breaker a');
  // the last token before the end is a breaker 'b': the cap is 1 < allowed length: nothing
  assert.equal(dry(set, ctx, { ...o, sequenceBreakers: [[b]] }), set);
  // 'y' as a single-token breaker: the cap (3) changes nothing, but y itself is never penalized
  const withY = dry(set, ctx, { ...o, sequenceBreakers: [[y]] });
  assert.deepEqual(ids(withY), [a, b, y, 4, c]);
  near(withY.logits, [0, 0, 0, 0, -1.4], 'breaker y');
  // a two-token breaker "y a": ends 2 tokens back, so the cap is 2 and y is penalized
  near(dry(set, ctx, { ...o, sequenceBreakers: [[y, a]] }).logits, [0, 0, 0, -0.8, -0.8], 'breaker y a');
  // a window of the last 4 tokens "y a b c": no repeats
  assert.equal(dry(set, ctx, { ...o, lastN: 4 }), set);
  assert.equal(dry(set, ctx, { ...o, multiplier: 0 }), set, 'multiplier 0: off');
  assert.equal(dry(set, [a, b], o), set, 'a history no longer than the allowed length: nothing');
  // a long run of one token: "x x x x x" → x would extend a repeat of length 4
  assert.deepEqual([...dryRepeatLengths([9, 9, 9, 9, 9], { allowedLength: 2, lastN: -1, sequenceBreakers: [] })], [[9, 4]]);
});

test('top-k keeps the k most likely, the lowest id first on ties; 0 is off; k beyond the vocabulary keeps all', () => {
  const c = cands([1, 3, 2, 3, 0]);
  assert.deepEqual(ids(topK(c, 2)), [1, 3]);
  assert.deepEqual(ids(topK(c, 1)), [1]);
  assert.deepEqual(ids(topK(c, 3)), [1, 3, 2]);
  assert.equal(topK(c, 0), c);
  assert.equal(topK(c, 10), c);
  assert.deepEqual(ids(topK(cands([4, 4, 4, 4]), 2)), [0, 1], 'all equal');
  near(probsOf(topK(c, 2)), [0.5, 0.5], 'renormalised');
});

test('typical-p keeps the tokens nearest the entropy in surprise, until their mass exceeds p', () => {
  const c = of(HALVES);
  // H = 1.75 ln2; surprises [1, 2, 3, 3]·ln2; |surprise − H| = [0.75, 0.25, 1.25, 1.25]·ln2
  // typical order: 1 (0.25), 0 (0.5), 2 (0.125), 3 (0.125); cumulative 0.25, 0.75, 0.875, 1
  assert.deepEqual(ids(typicalP(c, 0.5)), [0, 1]);
  near(probsOf(typicalP(c, 0.5)), [2 / 3, 1 / 3], 'renormalised');
  assert.deepEqual(ids(typicalP(c, 0.2)), [1], 'the most likely token can go');
  assert.deepEqual(ids(typicalP(c, 0.8)), [0, 1, 2], 'equal scores: the lower rank first');
  assert.deepEqual(ids(typicalP(c, 0)), [1], 'p = 0 keeps the single most typical');
  assert.equal(typicalP(c, 1), c, 'p = 1: off');
  assert.deepEqual(ids(typicalP(c, 0.2, 3)), [0, 1, 2], 'min keep');
  // all equal: every surprise is H; rank order; 0.25, 0.5, 0.75 > 0.5 → three
  assert.deepEqual(ids(typicalP(cands([1, 1, 1, 1]), 0.5)), [0, 1, 2]);
});

test('top-p keeps the shortest prefix whose probability reaches p; p = 0 keeps one, p = 1 all', () => {
  const c = of(P4);
  assert.deepEqual(ids(topP(c, 0.75)), [0, 1]);
  near(probsOf(topP(c, 0.75)), [0.5 / 0.8, 0.3 / 0.8], 'top-p 0.75');
  near(probsOf(topP(c, 0.9)), [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95], 'top-p 0.9');
  assert.deepEqual(ids(topP(c, 0)), [0]);
  assert.deepEqual(ids(topP(c, 0.4)), [0]);
  assert.equal(topP(c, 1), c);
  assert.deepEqual(ids(topP(c, 0.4, 3)), [0, 1, 2], 'min keep');
  assert.deepEqual(ids(topP(cands([2, 2, 2, 2]), 0.4)), [0, 1], 'ties: 0.25, 0.5 ≥ 0.4, lowest ids');
});

test('min-p keeps tokens at least p times as likely as the most likely', () => {
  const c = of(P4);
  assert.deepEqual(ids(minP(c, 0.2)), [0, 1, 2]);        // ≥ 0.1
  assert.deepEqual(ids(minP(c, 0.35)), [0, 1]);          // ≥ 0.175
  assert.equal(minP(c, 0), c, 'p = 0: off');
  assert.deepEqual(ids(minP(cands([2, 1, 2, 0]), 1)), [0, 2], 'p = 1: the tied most likely only');
  assert.deepEqual(ids(minP(c, 1, 3)), [0, 1, 2], 'min keep');
});

test('top-nσ keeps logits ≥ max − n·σ (population σ)', () => {
  const c = cands([4, 3, 2, 1, 0]);                      // mean 2, σ² = (4+1+0+1+4)/5 = 2
  assert.deepEqual(ids(topNSigma(c, 1)), [0, 1]);         // ≥ 4 − 1.414
  assert.deepEqual(ids(topNSigma(c, 2)), [0, 1, 2]);      // ≥ 4 − 2.828
  assert.ok(Math.abs((topNSigma(c, 1).detail!.sigma as number) - Math.SQRT2) < 1e-12);
  assert.equal(topNSigma(c, 0), c);
  assert.deepEqual(ids(topNSigma(cands([1, 1, 1]), 1)), [0, 1, 2], 'all equal: σ = 0 keeps all');
  assert.deepEqual(ids(topNSigma(cands([5, 0, 0, 0, 0]), 0.5)), [0], 'σ = 2, keep ≥ 4');
});

test('XTC removes the top choices but the least likely of them, when its random number says so', () => {
  const c = of([0.4, 0.3, 0.2, 0.1]);
  const on = { probability: 0.5, threshold: 0.25 };
  const x = xtc(c, on, 0.3);                             // 0.3 < 0.5: acts; p ≥ 0.25: ranks 0, 1
  assert.deepEqual(ids(x), [1, 2, 3]);
  near(probsOf(x), [0.5, 1 / 3, 1 / 6], 'renormalised');
  assert.deepEqual(ids(xtc(c, on, 0.7)), [0, 1, 2, 3], 'u ≥ probability: does not act');
  assert.deepEqual(ids(xtc(c, { ...on, threshold: 0.35 }, 0)), [0, 1, 2, 3], 'one top choice: nothing to exclude');
  assert.equal(xtc(c, { ...on, threshold: 0.6 }, 0), c, 'threshold > 0.5: off');
  assert.equal(xtc(c, { ...on, probability: 0 }, 0), c, 'probability 0: off');
  assert.deepEqual(ids(xtc(c, { ...on, minKeep: 4 }, 0)), [0, 1, 2, 3], 'min keep');
  assert.deepEqual(ids(xtc(c, { probability: 1, threshold: 0 }, 0.999)), [3], 'threshold 0: all are top choices');
});

test('temperature: divides logits; 0 is greedy (lowest id on ties); tiny temperatures stay finite', () => {
  const c = of(P4);
  const z = P4.reduce((s, p) => s + Math.sqrt(p), 0);
  near(probsOf(temperature(c, { temperature: 2 })), P4.map((p) => Math.sqrt(p) / z), 'T = 2');
  assert.deepEqual(ids(temperature(cands([1, 5, 5, 2]), { temperature: 0 })), [1], 'T = 0: the lowest id of the tie');
  assert.equal(temperature(c, { temperature: 1 }), c);
  for (const t of [1e-6, 1e-300, 5e-324]) {
    const s = temperature(cands([1, 1, 0.5, -3]), { temperature: t });
    const p = probsOf(s);
    assert.ok([...s.logits, ...p].every(Number.isFinite), `T = ${t}: finite`);
    assert.deepEqual([...p.subarray(0, 2)], [0.5, 0.5], `T = ${t}: the tie shares`);
    assert.ok([...p.subarray(2)].every((v) => v === 0), `T = ${t}: the rest 0`);
  }
});

test('dynamic temperature: t ± range, by the normalised entropy to the power exponent', () => {
  const c = of([0.8, 0.2]);
  const hNorm = -(0.8 * Math.log(0.8) + 0.2 * Math.log(0.2)) / Math.log(2);   // 0.721928
  for (const exponent of [1, 2]) {
    const dyn = 0.5 + (1.5 - 0.5) * hNorm ** exponent;                         // t = 1, range 0.5
    const s = temperature(c, { temperature: 1, range: 0.5, exponent });
    assert.ok(Math.abs((s.detail!.temperature as number) - dyn) < 1e-6, `exponent ${exponent}: ${s.detail!.temperature} vs ${dyn}`);
    const w = [0.8 ** (1 / dyn), 0.2 ** (1 / dyn)];
    near(probsOf(s), w.map((v) => v / (w[0]! + w[1]!)), `exponent ${exponent}`);
  }
  // uniform: normalised entropy 1 → the top of the range
  assert.ok(Math.abs((temperature(cands([0, 0, 0]), { temperature: 0.7, range: 0.2 }).detail!.temperature as number) - 0.9) < 1e-12);
  assert.deepEqual(ids(temperature(c, { temperature: 0, range: 0.5 })), [0], 'temperature 0 stays greedy');
});

test('mirostat 1: Zipf exponent from the top m, k = (ε·2^μ / (1 − N^−ε))^(1/s)', () => {
  // p ∝ 1/i² is Zipf with s = 2 exactly, so ε = 1, and with N = 4, μ = 3:
  // k = (8 / (1 − 1/4))^(1/2) = √10.667 = 3.27 → 3
  const c = of([1, 1 / 4, 1 / 9, 1 / 16].map((w) => w / (1 + 1 / 4 + 1 / 9 + 1 / 16)));
  const t = mirostatV1Truncate(c, 3, 100, 4);
  assert.deepEqual(ids(t), [0, 1, 2]);
  assert.ok(Math.abs((t.detail!.s as number) - 2) < 1e-5);
  // μ = 1: k = (2 / 0.75)^(1/2) = 1.63 → 1
  assert.deepEqual(ids(mirostatV1Truncate(c, 1, 100, 4)), [0]);
  // the update: chose a token of probability 0.25 → surprise 2 bits; τ 3, η 0.1 → μ + 0.1
  assert.ok(Math.abs(mirostatUpdate({ mu: 3 }, 0.25, { tau: 3, eta: 0.1 }).mu - 3.1) < 1e-12);
  assert.deepEqual(ids(mirostatV1Truncate(cands([0, 0, 0]), 3, 100, 3)), [0, 1, 2], 'flat: s = 0, keeps all');
});

test('mirostat 2 keeps the prefix with surprise ≤ μ (at least one)', () => {
  const c = of(HALVES);                                   // surprises 1, 2, 3, 3 bits
  assert.deepEqual(ids(mirostatV2Truncate(c, 2.5)), [0, 1]);
  assert.deepEqual(ids(mirostatV2Truncate(c, 3.01)), [0, 1, 2, 3]);
  assert.deepEqual(ids(mirostatV2Truncate(c, 0.5)), [0], 'none under μ: the most likely');
});
