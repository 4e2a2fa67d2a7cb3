// The logit-lens plot functions: snapshots of the grid (top token and target views), the target
// chart, a long prompt drawn through the canvas path and through export aggregation; and the
// numbers drawn checked against the data they came from.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matchSnapshot } from '../support/snapshot.ts';
import { colorScale, heatmapPixels, rgbBytes } from '../../cells/plot/kit.ts';
import { toCsv } from '../../cells/plot/figure.ts';
import {
  aggregateColumns, cellAt, exportGroup, labelStep, lutPixels, lensMatrix, lensPosition, lensTargetFigure, logitLensExport, logitLensFigure,
  thinned, withOverlay, type LogitLensOutput,
} from '../../cells/plot/logit-lens.ts';
import { rng } from '../support/mulberry.ts';

/** mulberry32: a small seeded RNG (never Math.random in tests). */

const WORDS = ['▁the', '▁cat', '▁sat', '▁on', '▁mat', '.', '▁a', '▁dog', '▁ran', '▁home', ',', '▁and', '▁was', '▁happy', '▁big', '▁red'];

/** A lens output whose top-k, target probability and rank all come from one softmax per cell. */
function lensOutput(layers: number[], nPos: number, k: number, seed: number, targetId: number | null): LogitLensOutput {
  const r = rng(seed), V = WORDS.length, L = layers.length;
  const ids = new Int32Array(L * nPos * k), probs = new Float32Array(L * nPos * k);
  const tp = new Float32Array(L * nPos), tr = new Int32Array(L * nPos);
  for (let li = 0; li < L; li++) {
    for (let p = 0; p < nPos; p++) {
      const sharp = 1 + 3 * (li / Math.max(1, L - 1));          // deeper layers: more confident
      const logits = Array.from({ length: V }, () => (r() - 0.5) * 4 * sharp);
      const m = Math.max(...logits), e = logits.map((x) => Math.exp(x - m)), s = e.reduce((a, b) => a + b, 0);
      const pr = e.map((x) => x / s);
      const order = pr.map((_, i) => i).sort((a, b) => pr[b]! - pr[a]! || a - b);
      for (let j = 0; j < k; j++) { ids[(li * nPos + p) * k + j] = order[j]!; probs[(li * nPos + p) * k + j] = pr[order[j]!]!; }
      if (targetId !== null) { tp[li * nPos + p] = pr[targetId]!; tr[li * nPos + p] = order.indexOf(targetId); }
    }
  }
  const labels = Array.from({ length: nPos }, (_, i) => (i === 0 ? 'BOS' : WORDS[(i * 7) % V]!.replace('▁', '·')));
  return {
    prompt: 'prompt-1', labels, layers, positions: Array.from({ length: nPos }, (_, i) => i), k, ids, probs,
    pieces: new Map(WORDS.map((w, i) => [i, w])),
    target: targetId === null ? null : { text: WORDS[targetId]!.replace('▁', ' '), id: targetId, piece: WORDS[targetId]! },
    targetProbs: targetId === null ? null : tp, targetRanks: targetId === null ? null : tr,
  };
}

const small = () => lensOutput([-1, 0, 1, 2], 7, 5, 7, 4);
const long = () => lensOutput([-1, ...Array.from({ length: 22 }, (_, i) => i)], 1000, 3, 11, null);

/** The attributes of every element carrying data-v. */
function marks(svg: string): Record<string, string>[] {
  return [...svg.matchAll(/<(?:rect|circle|g)\b([^>]*\bdata-v="[^"]*"[^>]*)>/g)].map((m) =>
    Object.fromEntries([...m[1]!.matchAll(/([\w-]+)="([^"]*)"/g)].map((a) => [a[1]!, a[2]!])));
}

/** RFC 4180 CSV → rows of strings (quotes, doubled quotes, CRLF). */
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

test('lens grid: snapshot (top-token view, a selected column and row)', () => {
  const f = logitLensFigure(small(), { view: 'grid' });
  assert.equal(f.canvases.length, 0);
  matchSnapshot('logit-lens-grid', withOverlay(f, { token: 3, layer: 0 }));
});

test('lens grid: snapshot (target view: coloured by the target probability, ranks written)', () => {
  matchSnapshot('logit-lens-target-grid', logitLensFigure(small(), { view: 'target' }).svg);
});

test('lens target chart: snapshot at the last position and at a selected one', () => {
  const out = small();
  const f = lensTargetFigure(out)!;
  matchSnapshot('logit-lens-target-chart', withOverlay(f, { token: null, layer: 1 }));
  const at2 = lensTargetFigure(out, { position: 2 })!;
  const pts = marks(at2.svg).filter((m) => m['data-prob']);
  assert.deepEqual(pts.map((m) => Number(m['data-l'])), out.layers);
  for (const [li, m] of pts.entries()) {
    assert.equal(m['data-t'], '2');
    assert.ok(Math.abs(Number(m['data-v']) - out.targetProbs![li * 7 + 2]!) <= 5e-4 * out.targetProbs![li * 7 + 2]! + 1e-12, `layer ${m['data-l']}`);
  }
  const ranks = marks(at2.svg).filter((m) => m['data-rank']);
  assert.deepEqual(ranks.map((m) => Number(m['data-v'])), out.layers.map((_, li) => out.targetRanks![li * 7 + 2]!));
  assert.equal(lensTargetFigure(lensOutput([-1, 0], 3, 2, 1, null)), null);
});

test('lens grid: the value drawn at (layer, position) is the top probability, the id the top id', () => {
  const out = small();
  const cells = marks(logitLensFigure(out).svg);
  assert.equal(cells.length, out.layers.length * out.positions.length);
  for (const m of cells) {
    const li = out.layers.indexOf(Number(m['data-l'])), pi = out.positions.indexOf(Number(m['data-t']));
    const want = out.probs[(li * 7 + pi) * out.k]!;
    assert.ok(Math.abs(Number(m['data-v']) - want) <= 5e-4 * want, `layer ${m['data-l']} position ${m['data-t']}: ${m['data-v']} vs ${want}`);
    assert.equal(Number(m['data-id']), out.ids[(li * 7 + pi) * out.k]!);
  }
  // target view: the value is the target's probability, the rank its rank
  for (const m of marks(logitLensFigure(out, { view: 'target' }).svg)) {
    const li = out.layers.indexOf(Number(m['data-l'])), pi = Number(m['data-t']);
    const want = out.targetProbs![li * 7 + pi]!;
    assert.ok(Math.abs(Number(m['data-v']) - want) <= 5e-4 * want, `target at ${m['data-l']}, ${pi}`);
    assert.equal(Number(m['data-rank']), out.targetRanks![li * 7 + pi]!);
    assert.equal(Number(m['data-id']), 4);
  }
});

test('lens grid: rows run from the last layer (top) down to the embedding (bottom)', () => {
  const out = small();
  const ys = new Map<string, number>();
  for (const m of logitLensFigure(out).svg.matchAll(/<rect x="[\d.]+" y="([\d.]+)"[^>]*data-l="(-?\d+)" data-t="0"/g)) ys.set(m[2]!, Number(m[1]));
  assert.ok(ys.get('2')! < ys.get('1')! && ys.get('1')! < ys.get('0')! && ys.get('0')! < ys.get('-1')!, `row tops ${[...ys]}`);
  const m = lensMatrix(out, 'grid');
  assert.equal(m[0], out.probs[(3 * 7 + 0) * out.k]);                   // row 0 = layer index 3
  assert.equal(m[3 * 7 + 6], out.probs[(0 * 7 + 6) * out.k]);           // last row = the embedding
});

test('long prompt (22 layers + embedding × 1000 positions): canvas, pixels equal the colour of each value', () => {
  const out = long();
  const f = logitLensFigure(out);
  assert.equal(f.canvases.length, 1);
  assert.ok(!f.svg.includes('data-v='), 'no per-cell SVG marks on the canvas path');
  const labels = f.svg.match(/class="tok"/g)?.length ?? 0;
  assert.ok(labels <= 80 && labels >= 70, `${labels} thinned token labels`);
  matchSnapshot('logit-lens-long-canvas', withOverlay(f, { token: 500, layer: 10 }));
  const p = f.canvases[0]!;
  assert.equal(p.rows, 23);
  assert.equal(p.cols, 1000);
  const px = p.pixels();
  assert.equal(px.length, 23 * 1000 * 4);
  const color = colorScale('sequential', 0, 1);
  for (const [r, c] of [[0, 0], [5, 123], [22, 999], [11, 500]] as const) {
    const v = out.probs[((22 - r) * 1000 + c) * out.k]!;
    const want = rgbBytes(color(v));
    const got = [px[(r * 1000 + c) * 4]!, px[(r * 1000 + c) * 4 + 1]!, px[(r * 1000 + c) * 4 + 2]!];
    for (let i = 0; i < 3; i++) assert.ok(Math.abs(got[i]! - want[i]!) <= 2, `pixel ${r},${c}`);
  }
  assert.equal(p.token(999), 999);
  assert.equal(p.layer(0), 21);
  assert.equal(p.layer(22), -1);
  assert.match(p.readout(22, 3), /^embedding · position 3 /);
  assert.equal(p.pixels(), px, 'pixels are computed once');
});

test('the page\'s canvas grid of a short prompt: the SVG grid\'s colours, texts and titles, without an element per cell', () => {
  const out = small();
  for (const view of ['grid', 'target'] as const) {
    const svgFig = logitLensFigure(out, { view, mode: 'svg' }), f = logitLensFigure(out, { view, mode: 'canvas' });
    assert.deepEqual([f.width, f.height], [svgFig.width, svgFig.height], `${view}: the same size`);
    assert.ok(!f.svg.includes('data-v='), `${view}: no per-cell marks`);
    assert.equal(f.canvases.length, 1);
    // The texts drawn above the canvas are the SVG grid's, at the same places.
    const pieces = /<g class="pieces"[\s\S]*?<\/g>/.exec(svgFig.svg)![0];
    assert.equal(f.over, pieces, `${view}: the cell texts`);
    assert.equal((f.over!.match(/<text /g) ?? []).length, 4 * 7);
    // Each cell's readout is its SVG title, its pixel its rect's colour, its position and layer its data attributes.
    const p = f.canvases[0]!, px = p.pixels();
    const rects = [...svgFig.svg.matchAll(/<rect x="([\d.]+)" y="([\d.]+)"[^>]*fill="([^"]+)" data-l="(-?\d+)" data-t="(\d+)"[^>]*><title>([^<]*)<\/title>/g)];
    assert.equal(rects.length, 4 * 7);
    for (const [, x, y, fill, l, t, title] of rects) {
      const c = Math.round((Number(x) - p.left) / p.cw), r = Math.round((Number(y) - p.top) / p.ch);
      assert.equal(p.readout(r, c), title!.replace(/&quot;/g, '"').replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>'), `${view} (${r}, ${c})`);
      assert.deepEqual([p.layer(r), p.token(c)], [Number(l), Number(t)]);
      const want = rgbBytes(fill!), at = (r * p.cols + c) * 4;
      for (let i = 0; i < 3; i++) assert.ok(Math.abs(px[at + i]! - want[i]!) <= 2, `${view} pixel (${r}, ${c})`);
    }
  }
  // Zoomed out until no piece fits: no texts.
  assert.equal(logitLensFigure(out, { mode: 'canvas', cellWidth: 8 }).over, undefined);
  // A grid past LENS_SVG_LIMIT keeps the canvas without texts.
  assert.equal(logitLensFigure(long(), { mode: 'canvas', cellWidth: 40 }).over, undefined);
});

test('long prompt export: aggregated columns (mean of each group), snapshot at a small limit', () => {
  const out = long();
  const f = logitLensFigure(out, { mode: 'aggregate', limit: 23 * 16 });
  const group = exportGroup(23, 1000, 23 * 16);
  assert.equal(group, 63);
  const cells = marks(f.svg);
  assert.equal(cells.length, 23 * 16);
  const m = lensMatrix(out, 'grid');
  for (const cell of cells.filter((_, i) => i % 23 === 0)) {
    const t0 = Number(cell['data-t']), t1 = Number(cell['data-t1']), r = 21 - Number(cell['data-l']);
    let s = 0;
    for (let c = t0; c <= t1; c++) s += m[r * 1000 + c]!;
    assert.ok(Math.abs(Number(cell['data-v']) - s / (t1 - t0 + 1)) < 1e-3, `group ${t0}–${t1} of row ${r}`);
  }
  matchSnapshot('logit-lens-long-aggregate', f.svg);
});

test('aggregateColumns: mean and max of each group, the last group shorter', () => {
  const m = Float32Array.from([1, 2, 3, 4, 5, 10, 20, 30, 40, 50]);       // [2, 5]
  const a = aggregateColumns(m, 2, 5, 2);
  assert.equal(a.cols, 3);
  assert.deepEqual([...a.mean], [1.5, 3.5, 5, 15, 35, 50]);
  assert.deepEqual([...a.max], [2, 4, 5, 20, 40, 50]);
});

test('label thinning and hit testing', () => {
  assert.equal(labelStep(80), 1);
  assert.equal(labelStep(81), 2);
  assert.equal(labelStep(1000), 13);
  assert.deepEqual(thinned(7), [0, 1, 2, 3, 4, 5, 6]);
  const t = thinned(1000);
  assert.ok(t.length <= 80, `${t.length} labels`);
  assert.deepEqual(t.slice(0, 3), [0, 13, 26]);
  const g = { left: 10, top: 20, cw: 4, ch: 6, rows: 3, cols: 5 };
  assert.deepEqual(cellAt(g, 10, 20), { row: 0, col: 0 });
  assert.deepEqual(cellAt(g, 29.9, 37.9), { row: 2, col: 4 });
  assert.equal(cellAt(g, 30, 20), null);
  assert.equal(cellAt(g, 9, 25), null);
});

test('lensPosition: the selected token when shown, else the last position', () => {
  const out = { ...small(), positions: [3, 4, 5, 6] };
  assert.equal(lensPosition(out, null), 6);
  assert.equal(lensPosition(out, 4), 4);
  assert.equal(lensPosition(out, 1), 6);
});

test('export: rows for every (layer, position, rank), CSV parses back', () => {
  const out = small();
  const e = logitLensExport(out, { selection: { token: 2, layer: null } });
  assert.equal(e.rows.length, 4 * 7 * 5);
  assert.deepEqual(Object.keys(e.rows[0]!), ['layer', 'position', 'token', 'rank', 'id', 'piece', 'prob', 'target_prob', 'target_rank']);
  const r = e.rows[(2 * 7 + 3) * 5 + 1]!;                                  // layer index 2, position 3, rank 1
  assert.equal(r['layer'], 1);
  assert.equal(r['position'], 3);
  assert.equal(r['id'], out.ids[(2 * 7 + 3) * 5 + 1]);
  assert.equal(r['piece'], WORDS[r['id'] as number]);
  assert.equal(r['prob'], out.probs[(2 * 7 + 3) * 5 + 1]);
  const csv = parseCsv(toCsv(e.rows));
  assert.equal(csv.length, e.rows.length + 1);
  assert.deepEqual(csv[0], Object.keys(e.rows[0]!));
  for (const [i, row] of e.rows.entries()) assert.deepEqual(csv[i + 1], Object.values(row).map(String));
  assert.match(e.svg, /^<svg[^>]*role="img"/);
  assert.equal((e.svg.match(/<svg/g) ?? []).length, 3, 'grid and target chart stacked');
  assert.match(e.svg, /p\(&quot;▁mat&quot;\) at position 2/);
});

test('export of a long prompt aggregates past the SVG limit but keeps every row', () => {
  const out = long();
  const e = logitLensExport(out);
  assert.equal(e.rows.length, 23 * 1000 * 3);
  assert.ok((e.svg.match(/<rect /g) ?? []).length <= 20_000 + 200, 'rects in the export');
  assert.match(e.svg, /each column: the mean of 2 positions/);
});

test('lutPixels: the colour table gives (almost) the colours kit.heatmapPixels gives; NaN stays transparent', () => {
  const r = rng(3);
  const m = Float32Array.from({ length: 600 }, () => (r() - 0.3) * 7);
  m[5] = NaN; m[9] = -Infinity;
  for (const scheme of ['sequential', 'secondary', 'diverging'] as const) {
    const [lo, hi] = [-2.1, 4.9];
    const a = lutPixels(m, 20, 30, scheme, lo, hi), b = heatmapPixels(m, 20, 30, colorScale(scheme, lo, hi));
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    assert.ok(worst <= 3, `${scheme}: worst channel difference ${worst}`);
    assert.equal(a[5 * 4 + 3], 0);
    assert.equal(a[9 * 4 + 3], 0);
  }
});
