// The next-token cell: the engine's sampler stages against a plain step-by-step re-computation on
// seeded logits (ties, −inf, many settings), ranks, entropy against hand values, the view
// parsing, the export rows, a 128k-vocabulary timing, and snapshots of the bar chart.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/engine/random.ts';
import { applyRepetitionPenalty, cutBy, samplingDistribution, samplingStages, sortedCandidates } from '../../src/engine/sampler.ts';
import {
  entropy, nextTokenExport, nextTokenModel, nextTokenSvg, nextTokenView, tokenRank, DEFAULT_VIEW,
  type NextTokenOutput, type NextTokenView,
} from '../../cells/plot/next-token.ts';
import { matchSnapshot } from '../support/snapshot.ts';

// ---------------------------------------------------------------------------------------------
// Data

function randomLogits(n: number, seed: number, opts: { ties?: boolean; masked?: number } = {}): Float32Array {
  const rng = new Rng(seed);
  const l = new Float32Array(n);
  for (let i = 0; i < n; i++) l[i] = opts.ties ? Math.round(rng.gaussian() * 3) / 2 : rng.gaussian() * 2.5;
  for (let k = 0; k < (opts.masked ?? 0); k++) l[rng.int(n)] = -Infinity;
  return l;
}

const WORDS = [' the', ' a', ' little', ' girl', ' boy', ' dog', ' cat', ' time', ' day', ' was', ',', '.', '\n', ' there', ' once',
  ' big', ' happy', ' sun', ' tree', ' park', ' friend', ' named', ' Lily', ' Tom', ' ball', ' red', ' and', ' to', ' play', ' she',
  ' he', ' it', ' upon', ' very', ' old', ' new', 'ing', 'ed', 's', ' in', ' on', ' with', ' her', ' his', ' mom', ' said', '!', ' "',
  '\t', ' supercalifragilistic'];

/** A synthetic output: vocab 50, one clear favourite, a seeded tail. */
function output(target: NextTokenOutput['target'] = null): NextTokenOutput {
  const logits = randomLogits(50, 7);
  logits[2] = 6.1; logits[7] = 5.4; logits[13] = 4.9;          // " little", " time", " there" lead
  return {
    prompt: 'prompt-1', labels: ['BOS', 'Once', '·upon', '·a', '·time'], position: 3, logits,
    pieces: new Map(WORDS.map((w, i) => [i, w])), target,
  };
}

const view = (v: Partial<NextTokenView> = {}): NextTokenView => ({ ...DEFAULT_VIEW, show: 16, ...v });

// ---------------------------------------------------------------------------------------------
// The chain, re-computed plainly: explicit sets and probabilities, stage by stage

interface RefStages { sets: { all: number[]; topK: number[]; topP: number[]; minP: number[] }; ids: number[]; probs: number[] }

function reference(l: Float32Array, o: { temperature: number; topK: number; topP: number; minP: number }): RefStages {
  const all: number[] = [];
  for (let i = 0; i < l.length; i++) if (l[i]! !== -Infinity) all.push(i);
  all.sort((a, b) => (l[a] === l[b] ? a - b : l[b]! > l[a]! ? 1 : -1));
  const topK = o.topK > 0 ? all.slice(0, o.topK) : all;
  const m = l[topK[0]!]!;
  const w = topK.map((id) => Math.exp(l[id]! - m));
  const z = w.reduce((s, v) => s + v, 0);
  let topP = topK;
  if (o.topP < 1) {
    let cum = 0, n = 0;
    while (n < topK.length) { cum += w[n]! / z; n++; if (cum >= o.topP) break; }
    topP = topK.slice(0, n);
  }
  const minP = o.minP > 0 ? topP.filter((id, i) => i === 0 || l[id]! >= m + Math.log(o.minP)) : topP;
  const ids = o.temperature === 0 ? minP.slice(0, 1) : minP;
  const e = ids.map((id) => (o.temperature === 0 ? 1 : Math.exp((l[id]! - m) / o.temperature)));
  const ze = e.reduce((s, v) => s + v, 0);
  return { sets: { all, topK, topP, minP }, ids, probs: e.map((v) => v / ze) };
}

const near = (a: number, b: number, tol = 1e-12) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

test('samplingStages and samplingDistribution agree with a plain re-computation over many settings', () => {
  const rng = new Rng(101);
  const cuts = { 'top-k': 0, 'top-p': 0, 'min-p': 0, greedy: 0 };
  for (let trial = 0; trial < 300; trial++) {
    const l = randomLogits(20 + rng.int(80), 1000 + trial, { ties: trial % 3 === 0, masked: trial % 4 === 0 ? 5 : 0 });
    const o = {
      temperature: [0, 0.05, 0.5, 1, 1.7, 3][rng.int(6)]!,
      topK: [0, 1, 3, 10, 40, 500][rng.int(6)]!,
      topP: [1, 0.99, 0.9, 0.5, 0.1, 1e-6][rng.int(6)]!,
      minP: [0, 0.01, 0.1, 0.5, 1][rng.int(5)]!,
    };
    const what = `trial ${trial} ${JSON.stringify(o)}`;
    const ref = reference(l, o);
    const s = samplingStages(l, [], o);
    const d = samplingDistribution(l, [], o);
    assert.deepEqual([...s.ids], ref.sets.all, `${what}: sorted candidates`);
    assert.deepEqual([...s.ids.subarray(0, s.kept)], ref.ids, `${what}: kept ids`);
    assert.deepEqual(d.ids, ref.ids, `${what}: samplingDistribution ids`);
    ref.probs.forEach((p, i) => {
      assert.ok(near(s.p[i]!, p), `${what}: p[${i}] ${s.p[i]} vs ${p}`);
      assert.ok(near(d.probs[i]!, p), `${what}: distribution p[${i}] ${d.probs[i]} vs ${p}`);
    });
    assert.ok(near([...s.p].reduce((a, b) => a + b, 0), 1), `${what}: kept probabilities sum to 1`);
    // the stage that cut each candidate, from the reference's sets
    const inK = new Set(ref.sets.topK), inP = new Set(ref.sets.topP), inM = new Set(ref.sets.minP), kept = new Set(ref.ids);
    s.ids.forEach((id, i) => {
      const want = kept.has(id) ? null : !inK.has(id) ? 'top-k' : !inP.has(id) ? 'top-p' : !inM.has(id) ? 'min-p' : 'greedy';
      assert.equal(cutBy(s, i), want, `${what}: cut of id ${id}`);
      if (want) cuts[want]++;
    });
    // p0: softmax at temperature 1 over every candidate
    const m = l[s.ids[0]!]!;
    const z = ref.sets.all.reduce((a, id) => a + Math.exp(l[id]! - m), 0);
    s.ids.forEach((id, i) => assert.ok(near(s.p0[i]!, Math.exp(l[id]! - m) / z), `${what}: p0 of ${id}`));
  }
  for (const [k, n] of Object.entries(cuts)) assert.ok(n > 100, `the trials exercise ${k} (${n} cuts)`);
});

test('sortedCandidates orders like a comparator: ties by id, −0 = +0, −inf and NaN left out', () => {
  const l = Float32Array.of(0, -0, 1.5, -Infinity, NaN, 1.5, -2, Infinity, -0, 3e-39, -3e-39, -1e30);
  assert.deepEqual([...sortedCandidates(l)], [7, 2, 5, 9, 0, 1, 8, 10, 6, 11]);
  const big = randomLogits(5000, 3, { ties: true, masked: 40 });
  const want = [...big.keys()].filter((i) => big[i]! > -Infinity).sort((a, b) => big[b]! - big[a]! || a - b);
  assert.deepEqual([...sortedCandidates(big)], want);
});

test('samplingStages reuses a given sort unless the repetition penalty changes the logits', () => {
  const l = randomLogits(64, 11);
  const sorted = sortedCandidates(l);
  assert.equal(samplingStages(l, [], { topK: 5 }, sorted).ids, sorted);
  const pen = samplingStages(l, [sorted[0]!, sorted[1]!], { repeatPenalty: 3 }, sorted);
  assert.notEqual(pen.ids, sorted);
  assert.deepEqual([...pen.ids], [...sortedCandidates(applyRepetitionPenalty(l, [sorted[0]!, sorted[1]!], 3))]);
  assert.notDeepEqual([...pen.ids], [...sorted], 'the penalty moved the favourites down');
  assert.deepEqual(samplingDistribution(l, [sorted[0]!, sorted[1]!], { repeatPenalty: 3 }).ids, [...pen.ids]);
});

test('greedy keeps the most likely alone; the filters before it still name what they cut', () => {
  const s = samplingStages(Float32Array.of(1, 4, 4, 2, 0), [], { temperature: 0, topK: 3 });
  assert.equal(s.kept, 1);
  assert.deepEqual([...s.ids], [1, 2, 3, 0, 4]);
  assert.deepEqual([...s.p], [1]);
  assert.deepEqual([0, 1, 2, 3, 4].map((i) => cutBy(s, i)), [null, 'greedy', 'greedy', 'top-k', 'top-k']);
  assert.deepEqual(samplingDistribution(Float32Array.of(1, 4, 4, 2, 0), [], { temperature: 0 }).ids, [1]);
});

test('entropy in nats against hand values', () => {
  assert.ok(near(entropy([0.25, 0.25, 0.25, 0.25]), Math.log(4)));
  assert.ok(near(entropy([0.25, 0.25, 0.25, 0.25]) / Math.LN2, 2), '2 bits');
  assert.ok(near(entropy([0.5, 0.25, 0.25]) / Math.LN2, 1.5), '1.5 bits');
  assert.equal(entropy([1, 0, 0]), 0);
  // 0.9, 0.1: −(0.9 ln 0.9 + 0.1 ln 0.1) = 0.325083…
  assert.ok(near(entropy([0.9, 0.1, 0]), 0.3250829733914482));
  // the model's entropies are those of p0 and of the final distribution
  const m = nextTokenModel(output(), view({ topK: 2 }));
  const [a, b] = [m.rows[0]!.p, m.rows[1]!.p];
  assert.ok(near(m.entropy.after, -(a * Math.log(a) + b * Math.log(b))));
  assert.ok(near(m.entropy.before, entropy(m.stages.p0)));
  assert.ok(m.entropy.before > m.entropy.after);
  assert.equal(nextTokenModel(output(), view({ temperature: 0 })).entropy.after, 0);
});

test('a typed target: its rank among all tokens, p before and after, and what cuts it', () => {
  const o = output();
  const order = [...o.logits.keys()].sort((a, b) => o.logits[b]! - o.logits[a]! || a - b);
  for (const id of [2, 7, order[9]!, order[30]!, order[49]!]) assert.equal(tokenRank(o.logits, id), order.indexOf(id) + 1, `rank of ${id}`);
  const tied = Float32Array.of(1, 3, 3, -Infinity, 0, -Infinity);
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((i) => tokenRank(tied, i)), [3, 1, 2, 5, 4, 6]);

  const id = order[9]!;
  const target = { text: 'x', id, piece: WORDS[id]! };
  const free = nextTokenModel({ ...o, target }, view());
  assert.equal(free.target!.rank, 10);
  const m = Math.max(...o.logits);
  const z = [...o.logits].reduce((a, v) => a + Math.exp(v - m), 0);
  assert.ok(near(free.target!.p0, Math.exp(o.logits[id]! - m) / z), 'p before = softmax');
  assert.ok(near(free.target!.p, free.target!.p0), 'no filter, T 1: after = before');
  assert.equal(free.target!.cut, null);
  const cut = nextTokenModel({ ...o, target }, view({ topK: 5, temperature: 0.5 }));
  assert.equal(cut.target!.cut, 'top-k');
  assert.equal(cut.target!.p, 0);
  assert.equal(cut.target!.rank, 10);
  // −inf: never a candidate
  const masked = output({ text: 'y', id: 40, piece: ' on' });
  masked.logits[40] = -Infinity;
  const mm = nextTokenModel(masked, view());
  assert.equal(mm.target!.cut, 'masked');
  assert.equal(mm.target!.rank, 50);
  assert.equal(mm.target!.p0, 0);
});

test('view settings: defaults, and bad values fall back', () => {
  assert.deepEqual(nextTokenView({}), { temperature: 1, topK: 0, topP: 1, minP: 0, show: 20 });
  assert.deepEqual(nextTokenView({ temperature: 0.8, top_k: 40, top_p: 0.95, min_p: 0.05, show: 500 }),
    { temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, show: 200 });
  assert.deepEqual(nextTokenView({ temperature: -1, top_k: 1.5, top_p: 0, min_p: 2, show: 0 }), { ...DEFAULT_VIEW });
  assert.deepEqual(nextTokenView({ temperature: '2', top_p: NaN }), { ...DEFAULT_VIEW });
});

test('export: the drawn rows, then the target; the figure carries data-v for every bar', () => {
  const o = output({ text: ' mom', id: 44, piece: ' mom' });
  const m = nextTokenModel(o, view({ topK: 8, show: 10 }));
  const f = nextTokenExport(m);
  assert.equal(f.rows.length, m.target!.rank > 10 ? 11 : 10);
  assert.deepEqual(Object.keys(f.rows[0]!), ['rank', 'id', 'piece', 'logit', 'p_before', 'p_after', 'cut_by']);
  assert.equal(f.rows[9]!['cut_by'], 'top-k');
  assert.ok(near(f.rows.slice(0, 8).reduce((a, r) => a + (r['p_after'] as number), 0), 1));
  const marks = [...f.svg.matchAll(/data-id="(\d+)" data-rank="(\d+)" data-v="([^"]+)" data-p0="([^"]+)"/g)];
  assert.equal(marks.length, f.rows.length);
  for (const [k, mk] of marks.entries()) {
    assert.equal(Number(mk[1]), f.rows[k]!['id']);
    assert.equal(Number(mk[3]), +(f.rows[k]!['p_after'] as number).toPrecision(4));
    assert.equal(Number(mk[4]), +(f.rows[k]!['p_before'] as number).toPrecision(4));
  }
  assert.match(f.svg, />probability</);
  assert.match(f.svg, /role="img" aria-label="Next-token probabilities/);
});

test('a 128k vocabulary: a slider move reuses the one sort and gives what a fresh sort gives', () => {
  const l = randomLogits(128_256, 5, { ties: true, masked: 100 });
  const sorted = sortedCandidates(l);
  const want = [...l.keys()].filter((i) => l[i]! > -Infinity).sort((a, b) => l[b]! - l[a]! || a - b);
  assert.deepEqual([...sorted], want);
  const opts = { temperature: 0.8, topP: 0.95, minP: 0.01 };
  const moved = samplingStages(l, [], opts, sorted);
  assert.equal(moved.ids, sorted, 'no sort of its own');
  const fresh = samplingStages(l, [], opts);
  assert.deepEqual([...moved.ids], [...fresh.ids]);
  assert.deepEqual(moved.p, fresh.p);
  assert.deepEqual(moved.after, fresh.after);
  assert.deepEqual(samplingDistribution(l, [], opts).ids, [...fresh.ids.subarray(0, fresh.kept)]);
});

// ---------------------------------------------------------------------------------------------
// Snapshots

test('snapshots: no filters, each filter cutting, greedy, hot', () => {
  const target = { text: ' girl', id: 3, piece: ' girl' };
  const cases: [string, Partial<NextTokenView>, NextTokenOutput['target']][] = [
    ['plain', {}, target],
    ['top-k', { topK: 6 }, null],
    ['top-p', { topP: 0.8 }, null],
    ['min-p', { minP: 0.05 }, null],
    ['all-filters', { topK: 12, topP: 0.97, minP: 0.05, temperature: 0.7 }, { text: ' dog', id: 5, piece: ' dog' }],
    ['greedy', { temperature: 0 }, null],
    ['hot', { temperature: 2, show: 12 }, null],
  ];
  for (const [name, v, t] of cases) {
    const m = nextTokenModel(output(t), view(v));
    if (name === 'top-k') assert.ok(m.rows.some((r) => r.cut === 'top-k'));
    if (name === 'top-p') assert.ok(m.rows.some((r) => r.cut === 'top-p'));
    if (name === 'min-p') assert.ok(m.rows.some((r) => r.cut === 'min-p'));
    if (name === 'all-filters') for (const c of ['top-k', 'top-p', 'min-p'] as const) assert.ok(m.rows.some((r) => r.cut === c) || m.target?.cut === c, `all-filters: ${c} cuts something`);
    if (name === 'greedy') assert.deepEqual(m.rows.map((r) => r.p), [1, ...Array(15).fill(0)]);
    matchSnapshot(`next-token-${name}`, nextTokenSvg(m));
  }
});
