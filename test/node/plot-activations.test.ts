// The activations plot functions: norms as heatmaps (SVG, canvas, export aggregation) and as
// lines, the histogram (counts checked against d3.bin and a naive count), the top neurons and
// the picked-neuron heatmap; numbers drawn checked against the data.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matchSnapshot } from '../support/snapshot.ts';
import { colorScale, extent, rgbBytes } from '../../cells/plot/kit.ts';
import { toCsv } from '../../cells/plot/figure.ts';
import { withOverlay } from '../../cells/plot/logit-lens.ts';
import {
  activationsExport, histogram, histogramD3, histogramFigure, normAt, normsHeatmapFigure, normsLinesFigure, normsMatrix, normStats,
  pickedNeuronsFigure, topNeurons, topNeuronsFigure, type ActivationsOutput,
} from '../../cells/plot/activations.ts';
import { rng } from '../support/mulberry.ts';

/** Roughly normal (sum of uniforms), seeded. */
const gauss = (r: () => number) => r() + r() + r() + r() - 2;

const KINDS = ['resid_pre', 'attn_out', 'ffn_out'];

function actOutput(nLayers: number, nPos: number, seed: number, o: { dFfn?: number; picked?: number[]; hist?: number } = {}): ActivationsOutput {
  const r = rng(seed);
  const data = new Float32Array(KINDS.length * nLayers * nPos);           // [kinds, layers, positions]
  for (let k = 0; k < KINDS.length; k++) {
    for (let l = 0; l < nLayers; l++) {
      for (let p = 0; p < nPos; p++) {
        const grow = k === 0 ? 2 + l * 1.5 : 1 + 0.3 * l;                   // the residual grows with depth
        data[(k * nLayers + l) * nPos + p] = (p === 0 ? 4 : 1) * grow * (0.6 + 0.8 * r());   // position 0 (BOS) is large
      }
    }
  }
  const dFfn = o.dFfn ?? 32;
  const act = new Float32Array(nPos * dFfn).map(() => gauss(r) * 0.8);    // [positions, d_ffn]
  const layer = Math.min(2, nLayers - 1), position = nPos - 1;
  const labels = Array.from({ length: nPos }, (_, i) => (i === 0 ? 'BOS' : ['·Once', '·upon', '·a', '·time', '·there', '·was'][(i - 1) % 6]!));
  const hist = o.hist ?? 4 * nLayers * 16;
  const values = new Float32Array(hist).map(() => gauss(r) * 3);
  if (values.length > 10) { values[3] = NaN; values[7] = Infinity; }
  return {
    prompt: 'prompt-1', labels, nLayers,
    norms: { kinds: KINDS, data },
    hist: { name: `blocks.${layer}.hook_resid_post`, values },
    neurons: {
      layer, position,
      top: topNeurons(act.subarray(position * dFfn, (position + 1) * dFfn), 8),
      picked: (o.picked ?? [3, 17, 30]).map((index) => ({ index, values: Float32Array.from({ length: nPos }, (_, p) => act[p * dFfn + index]!) })),
    },
  };
}

const small = () => actOutput(4, 7, 3);
const long = () => actOutput(22, 1000, 5, { picked: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21], hist: 22 * 1000 * 8 });

function marks(svg: string): Record<string, string>[] {
  return [...svg.matchAll(/<(?:rect|circle|g)\b([^>]*\bdata-v="[^"]*"[^>]*)>/g)].map((m) =>
    Object.fromEntries([...m[1]!.matchAll(/([\w-]+)="([^"]*)"/g)].map((a) => [a[1]!, a[2]!])));
}

function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [], f = '', q = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (q) {
      if (c === '"' && text[i + 1] === '"') { f += '"'; i++; } else if (c === '"') q = false; else f += c;
    } else if (c === '"') q = true;
    else if (c === ',') { row.push(f); f = ''; }
    else if (c === '\r' && text[i + 1] === '\n') { row.push(f); rows.push(row); row = []; f = ''; i++; }
    else f += c;
  }
  return rows;
}

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 5e-4 * Math.abs(b) + 1e-12, `${what}: ${a} vs ${b}`);

test('norms heatmap: snapshot (three panels, a selected position and layer)', () => {
  const f = normsHeatmapFigure(small());
  assert.equal(f.canvases.length, 0);
  matchSnapshot('activations-norms-heatmap', withOverlay(f, { token: 5, layer: 1 }));
});

test('norms heatmap: the value drawn at (kind, layer, position) is the norm', () => {
  const out = small();
  const cells = marks(normsHeatmapFigure(out).svg);
  assert.equal(cells.length, 3 * 4 * 7);
  for (const m of cells) {
    const k = KINDS.indexOf(m['data-kind']!), l = Number(m['data-l']), p = Number(m['data-t']);
    close(Number(m['data-v']), out.norms.data[(k * 4 + l) * 7 + p]!, `${m['data-kind']} ${l} ${p}`);
  }
  const mat = normsMatrix(out, 1);
  assert.equal(mat[0], normAt(out, 1, 3, 0));                              // top row: the last layer
  assert.equal(mat[3 * 7 + 6], normAt(out, 1, 0, 6));
});

test('norms lines: snapshot, and the mean drawn is the mean over positions', () => {
  const out = small();
  const f = normsLinesFigure(out, { position: 2 });
  matchSnapshot('activations-norms-lines', withOverlay(f, { token: null, layer: 2 }));
  const st = normStats(out, 0);
  for (let l = 0; l < 4; l++) {
    let s = 0;
    for (let p = 0; p < 7; p++) s += out.norms.data[l * 7 + p]!;
    close(st.mean[l]!, s / 7, `mean at layer ${l}`);
  }
  const means = marks(f.svg).filter((m) => m['data-kind'] === 'resid_pre' && m['data-t'] === undefined);
  assert.deepEqual(means.map((m) => Number(m['data-l'])), [0, 1, 2, 3]);
  means.forEach((m, l) => close(Number(m['data-v']), st.mean[l]!, `drawn mean at layer ${l}`));
  const sel = marks(f.svg).filter((m) => m['data-kind'] === 'ffn_out' && m['data-t'] === '2');
  sel.forEach((m, l) => close(Number(m['data-v']), normAt(out, 2, l, 2), `position 2 at layer ${l}`));
});

test('histogram: counts sum to the finite values and equal d3.bin and a naive count', () => {
  const out = small();
  const v = out.hist!.values;
  for (const bins of [1, 7, 40]) {
    const h = histogram(v, bins);
    assert.equal(h.counts.length, bins);
    assert.equal(h.skipped, 2);
    assert.equal(h.total, v.length - 2);
    assert.equal(h.counts.reduce((a, b) => a + b, 0), h.total);
    assert.deepEqual(h.counts, histogramD3(v, h.edges));
    const naive = h.counts.map((_, i) => Array.from(v).filter((x) => Number.isFinite(x) && x >= h.edges[i]! && (i === bins - 1 ? x <= h.edges[i + 1]! : x < h.edges[i + 1]!)).length);
    assert.deepEqual(h.counts, naive);
  }
  // values on the edges: an edge belongs to the bin above it, the maximum to the last bin
  const edge = histogram(Float32Array.from([0, 1, 2, 3, 4]), 4);
  assert.deepEqual(edge.edges, [0, 1, 2, 3, 4]);
  assert.deepEqual(edge.counts, [1, 1, 1, 2]);
  assert.deepEqual(histogram(Float32Array.from([5, 5, 5]), 3).counts, [3, 0, 0]);
});

test('histogram figure: snapshots (linear and log count), bars carry their counts', () => {
  const out = small();
  const h = histogram(out.hist!.values, 24);
  const f = histogramFigure(h, out.hist!.name);
  matchSnapshot('activations-histogram', f.svg);
  matchSnapshot('activations-histogram-log', histogramFigure(h, out.hist!.name, { logY: true }).svg);
  const bars = marks(f.svg);
  assert.deepEqual(bars.map((b) => Number(b['data-v'])), h.counts);
});

test('topNeurons: by |value|, ties to the lower index, NaN never ranks', () => {
  const row = Float32Array.from([0.5, -2, 1, NaN, 2, -0.1, 1]);
  assert.deepEqual(topNeurons(row, 4), [{ index: 1, value: -2 }, { index: 4, value: 2 }, { index: 2, value: 1 }, { index: 6, value: 1 }]);
  const r = rng(9), big = new Float32Array(500).map(() => gauss(r));
  const want = Array.from(big.keys()).sort((a, b) => Math.abs(big[b]!) - Math.abs(big[a]!) || a - b).slice(0, 20);
  assert.deepEqual(topNeurons(big, 20).map((t) => t.index), want);
});

test('top neurons: snapshot, bars in the given order with their values; picked ones marked', () => {
  const out = small();
  const f = topNeuronsFigure(out)!;
  matchSnapshot('activations-top-neurons', f.svg);
  const bars = marks(f.svg);
  assert.deepEqual(bars.map((b) => Number(b['data-n'])), out.neurons!.top.map((t) => t.index));
  bars.forEach((b, i) => close(Number(b['data-v']), out.neurons!.top[i]!.value, `bar ${i}`));
  const pickedTop = out.neurons!.top[0]!.index;
  assert.match(topNeuronsFigure(out, { picked: [pickedTop] })!.svg, new RegExp(`data-n="${pickedTop}"[^>]*aria-pressed="true"`));
});

test('picked neurons heatmap: snapshot (diverging, centred on 0), values equal the input', () => {
  const out = small();
  const f = pickedNeuronsFigure(out)!;
  matchSnapshot('activations-picked', withOverlay(f, { token: 6, layer: null }));
  for (const m of marks(f.svg)) {
    const p = out.neurons!.picked.find((x) => x.index === Number(m['data-n']))!;
    close(Number(m['data-v']), p.values[Number(m['data-t'])]!, `neuron ${m['data-n']} at ${m['data-t']}`);
  }
  assert.equal(pickedNeuronsFigure({ ...out, neurons: { ...out.neurons!, picked: [] } }), null);
});

test('long prompt (22 layers × 1000 positions): norms and picked neurons on canvases', () => {
  const out = long();
  const f = normsHeatmapFigure(out);
  assert.equal(f.canvases.length, 3);
  assert.ok(!f.svg.includes('data-v='), 'no per-cell marks in the SVG');
  matchSnapshot('activations-long-canvas', withOverlay(f, { token: 400, layer: 3 }));
  const p = f.canvases[2]!;                                               // ffn_out
  const px = p.pixels();
  const [lo, hi] = extent(normsMatrix(out, 2));
  const color = colorScale('secondary', lo, hi);
  for (const [r, c] of [[0, 0], [21, 999], [7, 345]] as const) {
    const want = rgbBytes(color(normAt(out, 2, 21 - r, c)));
    for (let i = 0; i < 3; i++) assert.ok(Math.abs(px[(r * 1000 + c) * 4 + i]! - want[i]!) <= 2, `pixel ${r},${c}`);
  }
  assert.equal(p.layer(0), 21);
  assert.match(p.readout(21, 5), /^ffn_out · layer 0 · position 5 /);
  const picked = pickedNeuronsFigure(out)!;
  assert.equal(picked.canvases.length, 1);
  const h = histogram(out.hist!.values, 40);
  assert.equal(h.total + h.skipped, 22 * 1000 * 8);
});

test('long prompt export: heatmaps aggregated past the SVG limit (snapshot at a small limit), every row kept', () => {
  const out = long();
  const f = normsHeatmapFigure(out, { mode: 'aggregate', limit: 3 * 22 * 5 });
  const cells = marks(f.svg);
  assert.equal(cells.length, 3 * 22 * 5);
  const c = cells.find((m) => m['data-kind'] === 'attn_out' && m['data-l'] === '4' && m['data-t'] === '400')!;
  let s = 0;
  for (let p = 400; p <= Number(c['data-t1']); p++) s += normAt(out, 1, 4, p);
  close(Number(c['data-v']), s / (Number(c['data-t1']) - 399), 'mean of the group');
  matchSnapshot('activations-long-aggregate', f.svg);
  const e = activationsExport(out);
  assert.equal(e.rows.filter((r) => r['section'] === 'norm').length, 3 * 22 * 1000);
  assert.ok((e.svg.match(/<rect /g) ?? []).length < 2 * 20_000 + 500, 'export rects bounded');
});

test('export: one table with a section column; CSV parses back', () => {
  const out = small();
  const e = activationsExport(out, { bins: 10 });
  const cols = ['section', 'name', 'layer', 'position', 'token', 'neuron', 'bin_lo', 'bin_hi', 'value'];
  for (const r of e.rows) assert.deepEqual(Object.keys(r), cols);
  const by = (s: string) => e.rows.filter((r) => r['section'] === s);
  assert.equal(by('norm').length, 3 * 4 * 7);
  assert.equal(by('histogram').length, 10);
  assert.equal(by('histogram').reduce((a, r) => a + (r['value'] as number), 0), out.hist!.values.length - 2);
  assert.equal(by('top_neuron').length, 8);
  assert.equal(by('neuron').length, 3 * 7);
  const n = by('norm').find((r) => r['name'] === 'attn_out' && r['layer'] === 2 && r['position'] === 5)!;
  assert.equal(n['value'], normAt(out, 1, 2, 5));
  const csv = parseCsv(toCsv(e.rows));
  assert.deepEqual(csv[0], cols);
  assert.equal(csv.length, e.rows.length + 1);
  for (const [i, r] of e.rows.entries()) assert.deepEqual(csv[i + 1], Object.values(r).map((v) => (v === null ? '' : String(v))));
  assert.equal((e.svg.match(/<svg/g) ?? []).length, 5, 'norms, histogram, top neurons, picked stacked');
});
