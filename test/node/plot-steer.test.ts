// The steer cell's pure side: the layer setting (ranges, lists, every malformed or out-of-range
// item refused naming it), the first difference of two generations, the norms per layer, the chip
// layout, the figure's numbers (data-v on every mark equals the data) and its export rows, and
// snapshots on seeded synthetic data (a short run that diverges, an equal pair, a long one).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UsageError } from '../../src/engine/errors.ts';
import {
  defaultLayers, firstDivergence, layerText, layoutChips, parseLayerSpec, steerExport, steerModel, steerSvg, vectorNorms,
  type SteerOutput, type SteerRun,
} from '../../cells/plot/steer.ts';
import { rng } from '../support/mulberry.ts';
import { matchSnapshot } from '../support/snapshot.ts';

const WORDS = [' the', ' cat', ' sat', ' on', ' a', ' mat', '.', ' Lily', ' was', ' happy', ' sad', ' and', ' smiled', ' cried', '\n', ' park'];

function run(r: () => number, n: number, ids?: number[]): SteerRun {
  const out = ids ?? Array.from({ length: n }, () => Math.floor(r() * WORDS.length));
  return {
    ids: out, texts: out.map((i) => WORDS[i]!),
    logp: out.map(() => -r() * 4), top: out.map(() => 0.2 + r() * 0.8), stopped: 'length',
  };
}

function synthetic(seed: number, o: { n?: number; same?: boolean; split?: number; file?: boolean } = {}): SteerOutput {
  const r = rng(seed), n = o.n ?? 12, d = 16, L = 6;
  const directions = new Map(Array.from({ length: L - 1 }, (_, k) => [k + 1, Float32Array.from({ length: d }, () => (r() - 0.5) * (k + 1))] as const));
  const plain = run(r, n);
  const split = o.split ?? 4;
  const steeredIds = o.same ? [...plain.ids] : [...plain.ids.slice(0, split), ...Array.from({ length: n - split }, () => Math.floor(r() * WORDS.length))];
  if (!o.same && steeredIds[split] === plain.ids[split]) steeredIds[split] = (plain.ids[split]! + 1) % WORDS.length;
  const steered = run(r, n, steeredIds);
  return {
    prompt: 'prompt-1', promptText: 'Once upon a time', promptLength: 5, nLayers: L, dModel: d, directions, layers: [2, 3, 4], strength: 4,
    source: o.file ? { kind: 'file', name: 'happy.gguf' } : { kind: 'computed', positive: ['Lily was happy'], negative: ['Lily was sad'], reduce: 'mean' },
    sampler: { temperature: 0, seed: 0, tokens: n },
    plain, steered,
    cross: { kl: plain.ids.map((_, i) => (o.same ? 0 : r() * 2 * (i + 1) / n)), logp: plain.ids.map(() => -r() * 6) },
  };
}

test('layers: ranges, lists and numbers, sorted and deduplicated; the default is every layer from 1', () => {
  assert.deepEqual(parseLayerSpec('2-4', 6), [2, 3, 4]);
  assert.deepEqual(parseLayerSpec('1, 3-4 ,0', 6), [0, 1, 3, 4]);
  assert.deepEqual(parseLayerSpec(3, 6), [3]);
  assert.deepEqual(parseLayerSpec([4, '1-2', 2], 6), [1, 2, 4]);
  assert.deepEqual(parseLayerSpec(undefined, 6), [1, 2, 3, 4, 5]);
  assert.deepEqual(parseLayerSpec('all', 6), [1, 2, 3, 4, 5]);
  assert.deepEqual(defaultLayers(1), [0]);
  const bad: [unknown, RegExp][] = [
    ['2-7', /steer: layers: "2-7": layer 6 is past the model's 6 layers \(0 to 5\)/],
    ['4-2', /"4-2" runs backwards/],
    ['x', /"x" is not a layer or a range/],
    [1.5, /1\.5 is not a layer index/],
    [[true], /true is not a layer/],
    [' , ', /names no layer/],
  ];
  for (const [v, re] of bad) assert.throws(() => parseLayerSpec(v, 6), (e: unknown) => e instanceof UsageError && re.test(e.message), String(v));
  assert.equal(layerText([1, 2, 3, 5, 7, 8]), '1–3, 5, 7–8');
  assert.equal(layerText([0]), '0');
});

test('first difference: a token, one run ending first, or none', () => {
  assert.equal(firstDivergence([1, 2, 3], [1, 2, 3]), -1);
  assert.equal(firstDivergence([1, 2, 3], [1, 5, 3]), 1);
  assert.equal(firstDivergence([1, 2], [1, 2, 3]), 2);
  assert.equal(firstDivergence([], []), -1);
  assert.equal(firstDivergence([7], [8]), 0);
});

test('norms per layer equal a plain re-computation; the model marks the applied layers', () => {
  const o = synthetic(3);
  const norms = vectorNorms(o.directions);
  assert.deepEqual(norms.map((n) => n.layer), [1, 2, 3, 4, 5]);
  for (const n of norms) {
    const v = o.directions.get(n.layer)!;
    assert.ok(Math.abs(n.norm - Math.hypot(...v)) < 1e-9);
  }
  assert.deepEqual(vectorNorms(new Map([[2, Float32Array.of(3, 4)]])), [{ layer: 2, norm: 5 }]);
  const m = steerModel(o);
  assert.deepEqual(m.norms.filter((n) => n.applied).map((n) => n.layer), [2, 3, 4]);
  assert.equal(m.diverge, 4);
  assert.equal(m.steps, 12);
  assert.equal(m.heading, 'steering with strength 4 on layers 2–4');
  assert.match(steerModel(synthetic(3, { file: true })).source, /from file happy\.gguf/);
});

test('chips wrap at the width, a newline starts a row, labels show whitespace', () => {
  const { chips, height } = layoutChips([' the', ' cat', '\n', 'x'], 60);
  assert.deepEqual(chips.map((c) => c.label), ['·the', '·cat', '↵', 'x']);
  assert.deepEqual(chips.map((c) => [c.x, c.y]), [[0, 0], [0, 20], [36, 20], [0, 40]]);
  assert.equal(height, 60);
  for (const c of layoutChips(WORDS, 100).chips) assert.ok(c.x === 0 || c.x + c.w <= 100);
  assert.deepEqual(layoutChips([], 100), { chips: [], height: 0 });
});

test('every mark carries its number; tokens from the first difference on are highlighted', () => {
  const o = synthetic(11);
  const svg = steerSvg(o);
  const marks = [...svg.matchAll(/<g class="chip( diff)?" data-run="(\w+)" data-t="(\d+)" data-id="(\d+)" data-v="([^"]+)">/g)];
  assert.equal(marks.length, o.plain.ids.length + o.steered.ids.length);
  for (const [, diff, runName, t, id, v] of marks) {
    const r = o[runName as 'plain' | 'steered'], i = Number(t);
    assert.equal(Number(id), r.ids[i]);
    assert.equal(Number(v), +r.logp[i]!.toPrecision(4));
    assert.equal(!!diff, i >= 4, `${runName} ${i}`);
  }
  const norms = [...svg.matchAll(/<rect class="norm( applied)?" data-l="(\d+)" data-v="([^"]+)"/g)];
  assert.deepEqual(norms.map((m) => Number(m[2])), [1, 2, 3, 4, 5]);
  for (const [, applied, l, v] of norms) {
    assert.equal(Number(v), +Math.hypot(...o.directions.get(Number(l))!).toPrecision(4));
    assert.equal(!!applied, o.layers.includes(Number(l)));
  }
  const kl = [...svg.matchAll(/<rect class="kl" data-t="(\d+)" data-v="([^"]+)"/g)];
  assert.equal(kl.length, o.cross.kl.length);
  for (const [, t, v] of kl) assert.equal(Number(v), +o.cross.kl[Number(t)]!.toPrecision(4));
  const lp = [...svg.matchAll(/<circle class="lp" data-run="(\w+)" data-t="(\d+)" data-v="([^"]+)"/g)];
  assert.equal(lp.length, 3 * 12);
  for (const [, s, t, v] of lp) {
    const want = s === 'cross' ? o.cross.logp[Number(t)]! : o[s as 'plain' | 'steered'].logp[Number(t)]!;
    assert.equal(Number(v), +want.toPrecision(4));
  }
  assert.equal((svg.match(/<title>/g) ?? []).length, marks.length + norms.length + kl.length + lp.length + 1, 'every mark has hover text (and the divergence line)');
  assert.match(svg, /role="img" aria-label="steering with strength 4/);
});

test('export rows: one per step, both runs, the KL and the difference flag', () => {
  const o = synthetic(5, { n: 6, split: 2 });
  o.steered = { ...o.steered, ids: o.steered.ids.slice(0, 4), texts: o.steered.texts.slice(0, 4), logp: o.steered.logp.slice(0, 4), top: o.steered.top.slice(0, 4), stopped: 'eos' };
  const f = steerExport(o);
  assert.equal(f.rows.length, 6);
  assert.deepEqual(f.rows.map((r) => r['differs']), [false, false, true, true, true, true]);
  assert.equal(f.rows[5]!['steered_id'], null);
  assert.equal(f.rows[3]!['kl_plain_steered'], o.cross.kl[3]);
  assert.equal(f.rows[1]!['plain_logp'], o.plain.logp[1]);
  assert.equal((f.meta as { first_difference: number }).first_difference, 2);
  assert.match(f.svg, /stopped: an end token/);
});

test('snapshots', () => {
  matchSnapshot('steer-diverge', steerSvg(synthetic(1)));
  matchSnapshot('steer-same', steerSvg(synthetic(2, { same: true, n: 8, file: true })));
  matchSnapshot('steer-long', steerSvg(synthetic(4, { n: 96, split: 30 }), { width: 900 }));
});
