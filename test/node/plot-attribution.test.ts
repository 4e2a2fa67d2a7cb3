// The attribution plot: the totals and the waterfall against a re-computation, every mark's data-v
// against the output, the export rows, and snapshots (a small GQA model, and a 32 × 32 model shape
// where head labels thin out).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matchSnapshot } from '../support/snapshot.ts';
import { toCsv } from '../../cells/plot/figure.ts';
import { colorScale } from '../../cells/plot/kit.ts';
import { withOverlay } from '../../cells/plot/logit-lens.ts';
import { attributionExport, attributionFigure, attributionTotals, headLabelStep, waterfall, type AttributionOutput } from '../../cells/plot/attribution.ts';
import { rng } from '../support/mulberry.ts';


function output(nLayers: number, nHeads: number, nKvHeads: number, seed: number): AttributionOutput {
  const r = rng(seed);
  const heads = Float32Array.from({ length: nLayers * nHeads }, () => (r() - 0.5) * 2 * (r() < 0.1 ? 3 : 0.4));
  const ffn = Float32Array.from({ length: nLayers }, () => (r() - 0.4) * 3);
  const embed = 0.7, residual = 3e-6;
  let sum = embed + residual;
  for (const v of heads) sum += v;
  for (const v of ffn) sum += v;
  return {
    prompt: 'p1', labels: ['BOS', '·Once', '·upon', '·a', '·time'], position: 4,
    token: { id: 42, piece: '▁there', typed: null }, nLayers, nHeads, nKvHeads,
    heads, ffn, embed, logit: sum, scale: 1.54, residual,
  };
}

test('attributionTotals and waterfall: parts sum to the logit, each segment starts where the last ended', () => {
  const o = output(5, 8, 4, 3);
  const t = attributionTotals(o);
  let h = 0, f = 0;
  for (let i = 0; i < o.heads.length; i++) h += o.heads[i]!;
  for (let i = 0; i < o.ffn.length; i++) f += o.ffn[i]!;
  assert.ok(Math.abs(t.heads - h) < 1e-9 && Math.abs(t.ffn - f) < 1e-9);
  assert.ok(Math.abs(t.sum + t.residual - o.logit) < 1e-6);
  const w = waterfall(o);
  assert.deepEqual(w.map((s) => s.part), ['embed', 'heads', 'ffn', 'residual', 'logit']);
  assert.equal(w[0]!.from, 0);
  for (let i = 1; i < 4; i++) assert.equal(w[i]!.from, w[i - 1]!.to);
  assert.ok(Math.abs(w[3]!.to - o.logit) < 1e-6, 'the running sum ends at the logit');
  assert.equal(w[4]!.from, 0);
  assert.equal(w[4]!.to, o.logit);
  assert.equal(headLabelStep(32), 1);
  assert.equal(headLabelStep(7), 2);
  assert.equal(headLabelStep(4), 4);
});

test('attribution figure: one head rect per (layer, head) and one FFN bar per layer, data-v = the output', () => {
  const o = output(5, 8, 4, 3);
  const f = attributionFigure(o, { width: 720 });
  const heads = [...f.svg.matchAll(/class="head"[^>]*data-l="(\d+)" data-h="(\d+)" data-v="([^"]+)"/g)];
  assert.equal(heads.length, 40);
  for (const [, l, h, v] of heads) assert.equal(Number(v), Number(o.heads[Number(l) * 8 + Number(h)]!.toPrecision(4)));
  const ffn = [...f.svg.matchAll(/class="ffn"[^>]*data-l="(\d+)" data-part="ffn" data-v="([^"]+)"/g)];
  assert.equal(ffn.length, 5);
  for (const [, l, v] of ffn) assert.equal(Number(v), Number(o.ffn[Number(l)]!.toPrecision(4)));
  const logit = /data-part="logit" data-v="([^"]+)"/.exec(f.svg)!;
  assert.equal(Number(logit[1]), Number(o.logit.toPrecision(4)));
  // the heatmap is centred on 0: a zero-valued head gets the diverging scale's midpoint
  const z = { ...o, heads: o.heads.slice() }; z.heads[0] = 0;
  const mid = /class="head" x="\d+" y="\d+" width="\d+" height="\d+" fill="([^"]+)" data-l="0" data-h="0"/.exec(attributionFigure(z).svg)![1];
  assert.equal(mid, colorScale('diverging', -1, 1)(0));
  assert.ok(f.overlay({ token: null, layer: 2 }).includes('stroke-width="2"'));
  assert.equal(f.overlay({ token: null, layer: null }), '');
  assert.equal(f.overlay({ token: null, layer: 9 }), '');
});

test('attribution export: a row per term, the same values', () => {
  const o = output(5, 8, 4, 3);
  const e = attributionExport(o);
  assert.equal(e.rows.length, 1 + 5 * 8 + 5 + 2);
  assert.deepEqual(e.rows[0], { component: 'embed', layer: null, head: null, value: 0.7 });
  assert.equal(e.rows.find((r) => r.component === 'head' && r.layer === 3 && r.head === 5)!.value, o.heads[3 * 8 + 5]);
  assert.equal(e.rows.find((r) => r.component === 'ffn' && r.layer === 4)!.value, o.ffn[4]);
  assert.equal(e.rows.at(-1)!.value, o.logit);
  const sum = e.rows.filter((r) => r.component !== 'logit').reduce((s, r) => s + Number(r.value), 0);
  assert.ok(Math.abs(sum - o.logit) < 1e-5);
  assert.ok(toCsv(e.rows).startsWith('component,layer,head,value\r\nembed,,,0.7\r\n'));
});

test('attribution snapshots: GQA 5 × 8 (4 KV heads), a 32 × 32 model shape, a narrow figure', () => {
  matchSnapshot('attribution-gqa', withOverlay(attributionFigure(output(5, 8, 4, 3), { width: 720 }), { token: null, layer: 1 }));
  const big = attributionFigure(output(32, 32, 8, 11), { width: 720 });
  assert.equal([...big.svg.matchAll(/class="head"/g)].length, 32 * 32);
  matchSnapshot('attribution-32x32', big.svg);
  matchSnapshot('attribution-narrow', attributionFigure(output(4, 4, 2, 5), { width: 360 }).svg);
});
