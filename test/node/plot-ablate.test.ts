// The ablate cell's pure side: settings → zero-ablation edits (grouping, number and string items,
// every out-of-range and malformed item refused naming the setting), the probabilities and KL
// against a plain re-computation and hand values, the comparison rows, the export, and snapshots.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/engine/random.ts';
import { UsageError } from '../../src/engine/errors.ts';
import {
  ablateEdits, ablateExport, ablateMode, ablateModel, ablateShow, ablateSvg, klDivergence, knockedOut, logSoftmax, meanEdits, meanFrom, parseLayers, parsePairs, splitList,
  type AblateOutput,
} from '../../cells/plot/ablate.ts';
import { matchSnapshot } from '../support/snapshot.ts';

const SHAPE = { nLayers: 4, nHeads: 8, dFfn: 64 };

test('heads, neurons and layers become zero edits, grouped by layer, sorted, deduplicated', () => {
  const edits = ablateEdits({ heads: ['1.3', 2.0, 1.1, '1.3', '0.7'], neurons: ['0.12', '3.63', '0.2'], layers: ['attn.1', 'ffn.0', 2, 'ffn.2', 'attn1'] }, SHAPE);
  assert.deepEqual(edits, [
    { hook: 'blocks.0.attn.hook_z', op: 'zero', heads: [7] },
    { hook: 'blocks.1.attn.hook_z', op: 'zero', heads: [1, 3] },
    { hook: 'blocks.2.attn.hook_z', op: 'zero', heads: [0] },            // 2.0 reads as the number 2: head 0 of layer 2
    { hook: 'blocks.0.ffn.hook_act', op: 'zero', neurons: [2, 12] },
    { hook: 'blocks.3.ffn.hook_act', op: 'zero', neurons: [63] },
    { hook: 'blocks.0.hook_ffn_out', op: 'zero' },
    { hook: 'blocks.1.hook_attn_out', op: 'zero' },
    { hook: 'blocks.2.hook_attn_out', op: 'zero' },
    { hook: 'blocks.2.hook_ffn_out', op: 'zero' },
  ]);
  assert.deepEqual(knockedOut(edits), ['head 0.7', 'head 1.1', 'head 1.3', 'head 2.0', 'neuron 0.2', 'neuron 0.12', 'neuron 3.63', 'ffn 0', 'attn 1', 'attn 2', 'ffn 2']);
  // "1.10" as a string is head 10 (a bare 1.10 would be the number 1.1)
  assert.deepEqual(parsePairs('heads', ['1.10'], { ...SHAPE, nHeads: 12 }), [{ layer: 1, index: 10 }]);
  assert.deepEqual(parsePairs('heads', 1.1, SHAPE), [{ layer: 1, index: 1 }]);
  assert.deepEqual(parseLayers(3, SHAPE), [{ layer: 3, part: 'attn' }, { layer: 3, part: 'ffn' }]);
  assert.deepEqual(ablateEdits({}, SHAPE), []);
  assert.deepEqual(ablateEdits({ heads: [], neurons: null, layers: '' }, SHAPE), []);
  assert.deepEqual(splitList(' 1.3, 2.0;0.1  4.2 ,'), ['1.3', '2.0', '0.1', '4.2']);
});

test('out-of-range and malformed items are UsageErrors naming the setting and item', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ heads: ['1.3', '4.0'] }, /ablate: heads\[1\].*layer 4 is past the model's 4 layers \(0 to 3\)/],
    [{ heads: ['0.8'] }, /ablate: heads\[0\].*head 8 is past the model's 8 heads/],
    [{ neurons: ['0.64'] }, /ablate: neurons\[0\].*neuron 64 is past the model's 64 neurons/],
    [{ neurons: ['9.0'] }, /ablate: neurons\[0\].*layer 9/],
    [{ layers: ['attn.4'] }, /ablate: layers\[0\].*layer 4 is past/],
    [{ layers: ['mlp.1'] }, /ablate: layers\[0\].*not a layer/],
    [{ heads: ['h3'] }, /ablate: heads\[0\].*not layer\.head/],
    [{ heads: [-1.2] }, /ablate: heads\[0\]/],
    [{ heads: [true] }, /ablate: heads\[0\]/],
  ];
  for (const [s, re] of cases) {
    assert.throws(() => ablateEdits(s, SHAPE), (e: unknown) => e instanceof UsageError && re.test(e.message), JSON.stringify(s));
  }
});

// ---------------------------------------------------------------------------------------------
// Numbers

function randomRow(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.gaussian() * 2.5);
}

test('log softmax and KL against a plain re-computation and hand values', () => {
  const a = randomRow(300, 1), b = randomRow(300, 2);
  const pa = Array.from(a, Math.exp), sa = pa.reduce((x, y) => x + y);
  const pb = Array.from(b, Math.exp), sb = pb.reduce((x, y) => x + y);
  const lsa = logSoftmax(a);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(Math.exp(lsa[i]!) - pa[i]! / sa) < 1e-12);
  let kl = 0;
  for (let i = 0; i < a.length; i++) kl += (pa[i]! / sa) * Math.log((pa[i]! / sa) / (pb[i]! / sb));
  assert.ok(Math.abs(klDivergence(a, b) - kl) < 1e-10);
  assert.equal(klDivergence(a, a), 0);
  // two tokens, p = (1/2, 1/2) vs q = (e/(1+e), 1/(1+e)): KL = ½ln(½(1+e)/e) + ½ln(½(1+e))
  const e = Math.E;
  const hand = 0.5 * Math.log(0.5 * (1 + e) / e) + 0.5 * Math.log(0.5 * (1 + e));
  assert.ok(Math.abs(klDivergence([0, 0], [1, 0]) - hand) < 1e-12);
  // a token the ablated run masks (−inf) while the clean one gives it mass: infinite KL
  assert.equal(klDivergence([0, 0], [0, -Infinity]), Infinity);
  assert.equal(klDivergence([0, -Infinity], [0, 0]), Math.log(2));
});

const WORDS = [' the', ' a', ' little', ' girl', ' boy', ' dog', ' cat', ' time', ' day', ' was', ',', '.', '\n', ' there', ' once',
  ' big', ' happy', ' sun', ' tree', ' park', ' friend', ' named', ' Lily', ' Tom', ' ball', ' red', ' and', ' to', ' play', ' she'];

function output(o: { same?: boolean; target?: number | null; vocab?: number } = {}): AblateOutput {
  const vocab = o.vocab ?? 30;
  const clean = randomRow(vocab, 7);
  clean[2] = 6.1; clean[7] = 5.4; clean[13] = 4.9;
  const ablated = o.same ? clean : Float32Array.from(clean, (v, i) => v + (i === 2 ? -2.5 : i === 21 ? 8 : 0.3 * Math.sin(i)));
  const t = o.target === undefined ? 7 : o.target;
  return {
    prompt: 'prompt-1', labels: ['BOS', 'Once', '·upon', '·a', '·time'], position: 4, clean, ablated,
    pieces: new Map(WORDS.map((w, i) => [i, w])),
    target: t === null ? null : { text: WORDS[t % WORDS.length]!, id: t, piece: WORDS[t % WORDS.length]! },
    knocked: o.same ? [] : ['head 1.3', 'neuron 0.12'], mode: 'zero', edits: [],
  };
}

test('the comparison rows: union of both top lists, probabilities, ranks, target, KL', () => {
  const o = output();
  const m = ablateModel(o, 5);
  const softmax = (r: Float32Array) => { const e = Array.from(r, Math.exp), s = e.reduce((x, y) => x + y); return e.map((v) => v / s); };
  const pc = softmax(o.clean), pa = softmax(o.ablated);
  const top = (p: number[]) => p.map((v, i) => [v, i] as const).sort((x, y) => y[0] - x[0]).slice(0, 5).map(([, i]) => i);
  const ids = new Set([...top(pc), ...top(pa)]);
  assert.deepEqual(new Set(m.rows.map((r) => r.id)), ids);
  assert.ok(m.rows.length > 5, 'the ablation moved a token into the top 5');
  for (let k = 1; k < m.rows.length; k++) {
    const a = m.rows[k - 1]!, b = m.rows[k]!;
    assert.ok(Math.max(a.pClean, a.pAblated) >= Math.max(b.pClean, b.pAblated));
  }
  for (const r of m.rows) {
    assert.ok(Math.abs(r.pClean - pc[r.id]!) < 1e-9);
    assert.ok(Math.abs(r.pAblated - pa[r.id]!) < 1e-9);
    assert.equal(r.rankClean, pc.filter((v) => v > pc[r.id]!).length + 1);
    assert.equal(r.rankAblated, pa.filter((v) => v > pa[r.id]!).length + 1);
    assert.equal(r.piece, WORDS[r.id]);
  }
  assert.equal(m.rows.find((r) => r.id === 21)!.rankAblated, 1, ' named: +8 makes it the favourite');
  assert.equal(m.target!.id, 7);
  assert.equal(m.target!.logitClean, o.clean[7]);
  assert.equal(m.target!.logitAblated, o.ablated[7]);
  assert.ok(Math.abs(m.kl - klDivergence(o.clean, o.ablated)) < 1e-15 && m.kl > 0.1);
  assert.equal(m.same, false);
  const same = ablateModel(output({ same: true }));
  assert.equal(same.same, true);
  assert.equal(same.kl, 0);
  for (const r of same.rows) assert.equal(r.pClean, r.pAblated);
  assert.equal(ablateShow({ show: 7 }), 7);
  assert.equal(ablateShow({ show: 500 }), 50);
  assert.equal(ablateShow({ show: 'x' }), 12);
});

test('export rows and meta carry the drawn numbers', () => {
  const m = ablateModel(output({ target: 28 }), 4);
  const f = ablateExport(m);
  assert.equal(f.rows.length, m.rows.length + 1, 'the target below the top rows is appended');
  const last = f.rows.at(-1)!;
  assert.equal(last['id'], 28);
  assert.equal(last['dp'], m.target!.pAblated - m.target!.pClean);
  assert.deepEqual((f.meta as { knocked_out: string[] }).knocked_out, ['head 1.3', 'neuron 0.12']);
  assert.equal((f.meta as { kl_nats: number }).kl_nats, m.kl);
  // every bar has its number and every token row a title
  const svg = ablateSvg(m);
  assert.equal((svg.match(/class="clean" data-v=/g) ?? []).length, m.rows.length + 1);
  assert.equal((svg.match(/<title>/g) ?? []).length, m.rows.length + 1);
  const r0 = m.rows[0]!;
  assert.ok(svg.includes(`data-id="${r0.id}"`));
  assert.match(svg, /role="img" aria-label="Next-token probabilities with and without the ablation/);
});

test('a 128k vocabulary: ranks and the KL divergence count every token', () => {
  // (its speed is a benchmark's business, not a test's)
  const o = output({ vocab: 128_000 });
  const m = ablateModel(o, 12);
  assert.ok(m.rows.length >= 12);
  const logSoft = (r: Float32Array) => { let mx = -Infinity; for (const v of r) mx = Math.max(mx, v); let s = 0; for (const v of r) s += Math.exp(v - mx); return Array.from(r, (v) => v - mx - Math.log(s)); };
  const lc = logSoft(o.clean), la = logSoft(o.ablated);
  for (const r of m.rows) {
    assert.equal(r.rankClean, lc.filter((v) => v > lc[r.id]!).length + 1, `token ${r.id}, clean`);
    assert.equal(r.rankAblated, la.filter((v) => v > la[r.id]!).length + 1, `token ${r.id}, ablated`);
  }
  assert.ok(Math.abs(m.kl - klDivergence(o.clean, o.ablated)) < 1e-12);
  assert.match(ablateSvg(m), /role="img"/);
});

test('snapshots', () => {
  matchSnapshot('ablate-target', ablateSvg(ablateModel(output(), 8)));
  matchSnapshot('ablate-target-below', ablateSvg(ablateModel(output({ target: 28 }), 6)));
  matchSnapshot('ablate-nothing', ablateSvg(ablateModel(output({ same: true, target: null }), 8), { heading: false }));
});

test('mode: zero by default, mean on request; mean edits keep each edit\'s units and carry the mean row', () => {
  assert.equal(ablateMode({}), 'zero');
  assert.equal(ablateMode({ mode: 'mean' }), 'mean');
  assert.throws(() => ablateMode({ mode: 'resample' }), (e: unknown) => e instanceof UsageError && /ablate: mode/.test(e.message));
  const zero = ablateEdits({ heads: ['1.3'], neurons: ['0.12'] }, SHAPE);
  const rows = new Map([['blocks.1.attn.hook_z', new Float32Array([1, 2])], ['blocks.0.ffn.hook_act', new Float32Array([3])]]);
  const mean = meanEdits(zero, (h) => rows.get(h)!);
  assert.deepEqual(mean.map((e) => [e.hook, e.op, e.heads, e.neurons, e.vector]), [
    ['blocks.1.attn.hook_z', 'mean', [3], undefined, rows.get('blocks.1.attn.hook_z')],
    ['blocks.0.ffn.hook_act', 'mean', undefined, [12], rows.get('blocks.0.ffn.hook_act')],
  ]);
  assert.equal(meanFrom([1, 5, 6], 1), 1, 'a leading BOS is left out of the mean');
  assert.equal(meanFrom([1], 1), 0, 'unless it is the only position');
  assert.equal(meanFrom([5, 1], 1), 0);
  assert.equal(meanFrom([1, 5], null), 0);
  const m = ablateModel({ ...output({}), mode: 'mean' }, 4);
  assert.match(ablateSvg(m), /mean-ablated/);
  assert.equal((ablateExport(m).meta as { ablation: string }).ablation, 'mean');
});
