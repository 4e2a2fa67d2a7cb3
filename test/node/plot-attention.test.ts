// The attention cell's pure functions on seeded synthetic patterns: SVG snapshots of every view
// (MHA and GQA), the numbers drawn against the pattern, GQA grouping, label thinning, head order,
// the summary against a direct re-computation, canvas pixels on a 1,000-token head, the overview's
// work (thumbnails only, whatever the prompt length), the PNG encoder and the export rows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inflateSync } from 'node:zlib';
import { matchSnapshot } from '../support/snapshot.ts';
import {
  attentionFigure, attentionRowsForExport, attentionRow, binStart, colorLut, encodePng, fromTokenSvg, headStatsRows, heatCellAt,
  heatmapGeom, heatmapSvg, kvGroups, kvHeadOf, layerThumbs, linesHighlightSvg, linesSvg, linesPlan, linesOnCanvas, drawLines, LINES_SVG_LIMIT, lutIndex, multiplesAt, multiplesGeom, multiplesPixels, multiplesUseBins, orderHeads, overviewAt, overviewGeom,
  overviewPixels, overviewSvg, patternPixels, smallMultiplesSvg, summarize, summarizeLayer, summarizeOneLayer, thinLabels, viewState,
  everyLayer, headStat,
  type AttentionOutput, type HeadSummary,
} from '../../cells/plot/attention.ts';
import { colorScale, rgbBytes } from '../../cells/plot/kit.ts';
import { poolAttention } from '../../src/engine/slices.ts';
import { rng } from '../support/mulberry.ts';

/** mulberry32: a small seeded RNG. */

/**
 * [nHeads, n, n] causal softmax patterns with a character per head: head%3 == 0 looks at the
 * previous token, 1 at position 0 (a sink), 2 spreads out.
 */
function patterns(nHeads: number, n: number, seed: number): Float32Array {
  const r = rng(seed), d = new Float32Array(nHeads * n * n);
  for (let h = 0; h < nHeads; h++) for (let q = 0; q < n; q++) {
    const row = (h * n + q) * n;
    let max = -Infinity;
    const s = new Float64Array(q + 1);
    for (let k = 0; k <= q; k++) {
      s[k] = 1.5 * r() + (h % 3 === 0 && k === q - 1 ? 4 : 0) + (h % 3 === 1 && k === 0 ? 3.5 : 0);
      max = Math.max(max, s[k]!);
    }
    let sum = 0;
    for (let k = 0; k <= q; k++) { s[k] = Math.exp(s[k]! - max); sum += s[k]!; }
    for (let k = 0; k <= q; k++) d[row + k] = s[k]! / sum;
  }
  return d;
}

const WORDS = ['<s>', 'Once', '·upon', '·a', '·time', '·there', '·was', '·a', '·little', '·girl', '·named', '·Lily', '.', '·She', '·liked', '·to'];

function output(o: { nLayers: number; nHeads: number; nKvHeads: number; n: number; layer?: number; seed?: number; summary?: boolean; bins?: number }): AttentionOutput {
  const layers = Array.from({ length: o.nLayers }, (_, l) => patterns(o.nHeads, o.n, (o.seed ?? 1) * 100 + l));
  const layer = o.layer ?? 0;
  return {
    prompt: 'prompt-1',
    labels: Array.from({ length: o.n }, (_, i) => WORDS[i % WORDS.length]!),
    layer, nLayers: o.nLayers, nHeads: o.nHeads, nKvHeads: o.nKvHeads,
    pattern: { heads: Array.from({ length: o.nHeads }, (_, h) => h), shape: [o.nHeads, o.n, o.n], data: layers[layer]! },
    summary: o.summary === false ? null : summarize(layers, o.nHeads, o.n, o.bins ?? 8),
  };
}

const attr = (el: string, name: string) => new RegExp(`\\b${name}="([^"]*)"`).exec(el)?.[1];

// ---------------------------------------------------------------------------------------------
// Snapshots

test('snapshot: small multiples, MHA with 2 heads', () => {
  const out = output({ nLayers: 2, nHeads: 2, nKvHeads: 2, n: 12, layer: 1 });
  matchSnapshot('attention-heads-mha', smallMultiplesSvg(out, [0, 1]));
});

test('snapshot: small multiples, GQA (4 heads, 2 KV heads) sorted by prev', () => {
  const out = output({ nLayers: 2, nHeads: 4, nKvHeads: 2, n: 10 });
  const order = orderHeads(out.summary, 0, 'prev');
  const svg = smallMultiplesSvg(out, order, { sort: 'prev' });
  assert.match(svg, /KV head 0: q heads 0–1/);
  assert.match(svg, /KV head 1: q heads 2–3/);
  matchSnapshot('attention-heads-gqa', svg);
});

test('snapshot: small multiples without a summary omit the statistics', () => {
  const out = output({ nLayers: 1, nHeads: 4, nKvHeads: 2, n: 8, summary: false });
  const svg = smallMultiplesSvg(out, [0, 1, 2, 3], { sort: 'entropy' });
  assert.doesNotMatch(svg, /class="stat"/);
  assert.match(svg, /no summary: index order/);
  matchSnapshot('attention-heads-nosummary', svg);
});

test('snapshot: heatmap of one head with token labels', () => {
  const out = output({ nLayers: 2, nHeads: 4, nKvHeads: 2, n: 16, layer: 1 });
  const svg = heatmapSvg(out, 3);
  assert.match(svg, /attention weight \(probability\)/);
  assert.match(svg, /query position \(token\)/);
  assert.match(svg, /key position \(token\)/);
  matchSnapshot('attention-heatmap', svg);
});

test('snapshot: lines view with a highlighted token', () => {
  const out = output({ nLayers: 1, nHeads: 2, nKvHeads: 2, n: 10 });
  const svg = linesSvg(out, 0, { highlight: 6 });
  assert.match(svg, /weights below 0.02 not drawn/);
  matchSnapshot('attention-lines', svg);
});

test('snapshot: from-token view, one head and the mean of heads', () => {
  const out = output({ nLayers: 1, nHeads: 4, nKvHeads: 2, n: 16 });
  const svg = fromTokenSvg(out, 1, 11, { width: 480 });
  const chips = svg.match(/<g class="tok" [^>]*>/g)!;
  assert.equal(chips.length, 12, 'keys 0..11 tinted, later tokens masked');
  for (const el of chips) assert.equal(Number(attr(el, 'data-v')), Number(out.pattern.data[(1 * 16 + 11) * 16 + Number(attr(el, 'data-k'))]!.toPrecision(4)));
  matchSnapshot('attention-from', svg);
  matchSnapshot('attention-from-mean', fromTokenSvg(out, 'mean', 11, { width: 480 }));
});

test('snapshot: overview of a small summary (rects), sorted by first', () => {
  const out = output({ nLayers: 3, nHeads: 4, nKvHeads: 2, n: 12, bins: 6 });
  matchSnapshot('attention-overview', overviewSvg(out.summary!, { sort: 'first', mode: 'rects' }));
});

test('snapshot: heatmap of a 300-token head: canvas frame on screen, aggregated for export', () => {
  const out = output({ nLayers: 1, nHeads: 1, nKvHeads: 1, n: 300, summary: false });
  const frame = heatmapSvg(out, 0);
  assert.doesNotMatch(frame, /data-v=/, 'past SVG_CELL_LIMIT the screen SVG is a frame for the canvas');
  const g = heatmapGeom(out);
  assert.ok(g.labels.length < 80 && g.labels.length > 20, `labels thinned: ${g.labels.length}`);
  const agg = heatmapSvg(out, 0, { mode: 'aggregate' });
  const rects = agg.match(/<rect [^>]*data-q0=/g) ?? [];
  assert.equal(rects.length, (128 * 129) / 2);
  matchSnapshot('attention-heatmap-long-frame', frame);
});

// ---------------------------------------------------------------------------------------------
// Numbers drawn

test('heatmap: the value drawn for (h, q, k) is pattern.data[(h*nQ+q)*nK+k]', () => {
  const out = output({ nLayers: 1, nHeads: 4, nKvHeads: 2, n: 16 });
  for (const h of [0, 3]) {
    const svg = heatmapSvg(out, h);
    const rects = svg.match(/<rect [^>]*data-q="[^"]*"[^>]*>/g)!;
    assert.equal(rects.length, (16 * 17) / 2, 'one rect per causal cell');
    for (const el of rects) {
      const q = Number(attr(el, 'data-q')), k = Number(attr(el, 'data-k'));
      assert.equal(Number(attr(el, 'data-h')), h);
      const want = out.pattern.data[(h * 16 + q) * 16 + k]!;
      assert.ok(k <= q);
      assert.equal(attr(el, 'data-v'), String(Number(want.toPrecision(4))));
      assert.equal(attr(el, 'fill'), colorScale('sequential', 0, 1)(want));
    }
  }
});

test('small multiples: values per tile and the bins past the SVG limit', () => {
  const out = output({ nLayers: 1, nHeads: 4, nKvHeads: 2, n: 9 });
  const svg = smallMultiplesSvg(out, [2, 0]);
  const rects = svg.match(/<rect [^>]*data-q="[^"]*"[^>]*>/g)!;
  assert.equal(rects.length, 2 * 45);
  for (const el of rects) {
    const h = Number(attr(el, 'data-h')), q = Number(attr(el, 'data-q')), k = Number(attr(el, 'data-k'));
    assert.equal(Number(attr(el, 'data-v')), Number(out.pattern.data[(h * 9 + q) * 9 + k]!.toPrecision(4)));
  }
  // 400 tokens × 4 heads: the tiles are the summary's thumbnails.
  const long = output({ nLayers: 1, nHeads: 4, nKvHeads: 2, n: 400, bins: 16 });
  const lsvg = smallMultiplesSvg(long, [0, 1, 2, 3]);
  const bins = lsvg.match(/<rect [^>]*data-q0="[^"]*"[^>]*>/g)!;
  assert.equal(bins.length, 4 * (16 * 17) / 2);
  const el = bins.find((b) => attr(b, 'data-h') === '1' && attr(b, 'data-q0') === String(binStart(5, 400, 16)) && attr(b, 'data-k0') === '0')!;
  let sum = 0, cnt = 0;
  for (let q = binStart(5, 400, 16); q < binStart(6, 400, 16); q++) for (let k = 0; k < binStart(1, 400, 16); k++) { sum += long.pattern.data[(400 + q) * 400 + k]!; cnt++; }
  assert.ok(Math.abs(Number(attr(el, 'data-v')) - sum / cnt) < 1e-3 * (sum / cnt));
});

test('small multiples of a long prompt: one pixel image of the bins, and the bin under a point', () => {
  const out = output({ nLayers: 1, nHeads: 4, nKvHeads: 2, n: 300, bins: 12 });
  const heads = [3, 1, 0, 2];
  assert.ok(multiplesUseBins(out, heads));
  assert.doesNotMatch(smallMultiplesSvg(out, heads, { mode: 'frame' }), /data-q0=/, 'frame: the canvas draws the bins');
  const g = multiplesGeom(out, heads), p = multiplesPixels(out, heads, g);
  assert.deepEqual([p.width, p.height], [Math.ceil(g.width), Math.ceil(g.height)]);
  const s = out.summary!, B = 12, lut = colorLut('sequential', 0, p.hi);
  for (const [h, qi, ki] of [[3, 7, 2], [0, 11, 11], [2, 5, 0]] as const) {
    const t = g.tiles.find((x) => x.head === h)!;
    const x = t.x + ((ki + 0.5) * g.tile) / B, y = t.y + ((qi + 0.5) * g.tile) / B;
    assert.deepEqual(multiplesAt(out, g, x, y), { head: h, qi, ki });
    const v = s.thumbs[(h * B + qi) * B + ki]!, o = (Math.floor(y) * p.width + Math.floor(x)) * 4, c = lutIndex(v, 0, p.hi) * 3;
    assert.deepEqual([...p.pixels.subarray(o, o + 4)], [lut[c], lut[c + 1], lut[c + 2], 255], `head ${h} bin ${qi},${ki}`);
  }
  assert.equal(multiplesAt(out, g, 0, 0), null);
});

test('small multiples of a short prompt: the element\'s canvas draws every causal cell, the frame none', () => {
  const n = 13, out = output({ nLayers: 1, nHeads: 8, nKvHeads: 2, n });
  const heads = [5, 2, 7, 0];
  assert.ok(!multiplesUseBins(out, heads));
  assert.equal((smallMultiplesSvg(out, heads).match(/data-q="/g) ?? []).length, heads.length * n * (n + 1) / 2, 'export: a rect per causal cell');
  const frame = smallMultiplesSvg(out, heads, { mode: 'frame' });
  assert.doesNotMatch(frame, /data-q=|data-q0=|<image /, 'frame: the canvas draws the cells');
  assert.equal((frame.match(/class="tile"/g) ?? []).length, heads.length, 'frame: the tiles still take hovers and clicks');
  const g = multiplesGeom(out, heads), p = multiplesPixels(out, heads, g);
  assert.deepEqual([p.width, p.height, p.hi], [Math.ceil(g.width), Math.ceil(g.height), 1]);
  const lut = colorLut('sequential', 0, 1);
  let drawn = 0, masked = 0;
  for (const t of g.tiles) for (let q = 0; q < n; q++) for (let k = 0; k < n; k++) {
    // the centre of the cell, in SVG units and in pixels
    const x = t.x + ((k + 0.5) * g.tile) / n, y = t.y + ((q + 0.5) * g.tile) / n;
    assert.deepEqual(multiplesAt(out, g, x, y), { head: t.head, qi: q, ki: k });
    const o = (Math.floor(y) * p.width + Math.floor(x)) * 4, px = [...p.pixels.subarray(o, o + 4)];
    if (k > q) { assert.equal(px[3], 0, `head ${t.head} (${q}, ${k}) is masked: transparent`); masked++; continue; }
    const c = lutIndex(out.pattern.data[(t.head * n + q) * n + k]!, 0, 1) * 3;
    assert.deepEqual(px, [lut[c], lut[c + 1], lut[c + 2], 255], `head ${t.head} (${q}, ${k})`);
    drawn++;
  }
  assert.deepEqual([drawn, masked], [heads.length * n * (n + 1) / 2, heads.length * n * (n - 1) / 2]);
  assert.equal(multiplesAt(out, g, g.tiles[0]!.x - 1, g.tiles[0]!.y), null);
});

test('lines: drawn entries are the weights ≥ 0.02; the hover overlay holds exactly the token\'s lines', () => {
  const out = output({ nLayers: 1, nHeads: 2, nKvHeads: 2, n: 12 });
  const n = 12, w = (q: number, k: number) => out.pattern.data[(1 * n + q) * n + k]!;
  const lines = linesSvg(out, 1).match(/<line [^>]*data-q=[^>]*>/g)!;
  let want = 0;
  for (let q = 0; q < n; q++) for (let k = 0; k <= q; k++) if (w(q, k) >= 0.02) want++;
  assert.equal(lines.length, want);
  for (const el of lines) assert.equal(Number(attr(el, 'data-v')), Number(w(Number(attr(el, 'data-q')), Number(attr(el, 'data-k'))).toPrecision(4)));
  const hl = linesHighlightSvg(out, 1, 5).match(/<line [^>]*>/g)!;
  let mine = 0;
  for (let q = 0; q < n; q++) for (let k = 0; k <= q; k++) if ((q === 5 || k === 5) && w(q, k) >= 0.02) mine++;
  assert.equal(hl.length, mine);
  assert.ok(hl.every((el) => attr(el, 'data-q') === '5' || attr(el, 'data-k') === '5'));
});

test('lines on a canvas: drawLines strokes the same lines as linesSvg\'s elements (ends, width, opacity, order); the frame has none', () => {
  const out = output({ nLayers: 1, nHeads: 2, nKvHeads: 2, n: 12 });
  const plan = linesPlan(out, 1);
  const els = linesSvg(out, 1, { plan }).match(/<line [^>]*data-q=[^>]*>/g)!;
  const strokes: number[][] = [];
  let cur: number[] = [];
  const ctx = {
    strokeStyle: '' as string, lineWidth: 0, globalAlpha: 1,
    beginPath() { cur = []; }, moveTo(x: number, y: number) { cur.push(x, y); }, lineTo(x: number, y: number) { cur.push(x, y); },
    stroke() { strokes.push([...cur, ctx.lineWidth, ctx.globalAlpha]); },
  };
  drawLines(ctx, out, plan);
  assert.equal(strokes.length, els.length);
  assert.ok(els.length > 5);
  els.forEach((el, i) => {
    const [x1, y1, x2, y2, width, alpha] = strokes[i]!;
    for (const [name, v] of [['x1', x1], ['y1', y1], ['x2', x2], ['y2', y2], ['stroke-width', width], ['stroke-opacity', alpha]] as const) {
      assert.ok(Math.abs(Number(attr(el, name)) - v!) < 0.006, `line ${i} ${name}: ${attr(el, name)} vs ${v}`);
    }
  });
  assert.equal(ctx.globalAlpha, 1);
  assert.equal(ctx.strokeStyle, attr(els[0]!, 'stroke'));
  const frame = linesSvg(out, 1, { plan, mode: 'frame' });
  assert.equal(frame.match(/<line [^>]*data-q=/g), null);
  assert.match(frame, new RegExp(`${plan.w.length} lines drawn as pixels`));
  assert.equal(linesOnCanvas(plan), plan.w.length > LINES_SVG_LIMIT);
});

test('GQA: heads share KV heads in consecutive runs and are framed by group', () => {
  assert.deepEqual([0, 1, 2, 3].map((h) => kvHeadOf(h, 4, 2)), [0, 0, 1, 1]);
  assert.deepEqual(Array.from({ length: 32 }, (_, h) => kvHeadOf(h, 32, 4)), Array.from({ length: 32 }, (_, h) => Math.floor(h / 8)));
  assert.deepEqual(kvGroups([3, 0, 2, 1], 4, 2), [{ kv: 0, first: 0, last: 1, heads: [0, 1] }, { kv: 1, first: 2, last: 3, heads: [3, 2] }]);
  const out = output({ nLayers: 1, nHeads: 8, nKvHeads: 4, n: 6 });
  const g = multiplesGeom(out, [0, 1, 2, 3, 4, 5, 6, 7], { width: 900 });
  assert.equal(g.frames.length, 4);
  for (const t of g.tiles) {
    const f = g.frames[kvHeadOf(t.head, 8, 4)]!;
    assert.ok(t.x >= f.x && t.x + g.tile <= f.x + f.w && t.y >= f.y && t.y + g.tile <= f.y + f.h, `head ${t.head} inside KV frame ${f.kv}`);
  }
  const mha = output({ nLayers: 1, nHeads: 2, nKvHeads: 2, n: 6 });
  assert.equal(multiplesGeom(mha, [0, 1]).frames.length, 0, 'MHA: no frames');
});

test('thinLabels: every step-th position, at most maxLabels', () => {
  assert.deepEqual(thinLabels(5, 80), [0, 1, 2, 3, 4]);
  assert.deepEqual(thinLabels(10, 4), [0, 3, 6, 9]);
  assert.deepEqual(thinLabels(1000, 80), Array.from({ length: 77 }, (_, i) => i * 13));
  for (const [n, m] of [[81, 80], [1000, 7], [3, 1], [0, 10]] as const) {
    const l = thinLabels(n, m);
    assert.ok(l.length <= Math.max(m, 1) && (n === 0 || l[0] === 0));
  }
});

test('orderHeads: by index, entropy ascending, first and prev descending', () => {
  const s: HeadSummary = {
    nLayers: 2, nHeads: 4, nPos: 4, size: 1, thumbs: new Float32Array(8),
    entropy: new Float32Array([0, 0, 0, 0, 1.2, 0.3, NaN, 0.3]),
    first: new Float32Array([0, 0, 0, 0, 0.1, 0.9, 0.5, 0.2]),
    prev: new Float32Array([0, 0, 0, 0, 0.4, 0.4, 0.7, 0]),
  };
  assert.deepEqual(orderHeads(s, 1, 'index'), [0, 1, 2, 3]);
  assert.deepEqual(orderHeads(s, 1, 'entropy'), [1, 3, 0, 2]);
  assert.deepEqual(orderHeads(s, 1, 'first'), [1, 2, 3, 0]);
  assert.deepEqual(orderHeads(s, 1, 'prev'), [2, 0, 1, 3]);
  assert.deepEqual(orderHeads(null, 1, 'prev', 3), [0, 1, 2]);
  // Export ranks follow the same order.
  const ranks = headStatsRows(s, 'first').filter((r) => r['layer'] === 1).map((r) => r['rank']);
  assert.deepEqual(ranks, [4, 1, 2, 3]);
});

test('summarizeLayer equals a direct computation of thumbnails, entropy, first and prev', () => {
  const nH = 3, n = 13, B = 5, d = patterns(nH, n, 7);
  const s = summarizeLayer(d, nH, n, B);
  const bin = (p: number) => Math.floor((p * B) / n);
  for (let h = 0; h < nH; h++) {
    let ent = 0, first = 0, prev = 0;
    for (let q = 0; q < n; q++) {
      for (let k = 0; k <= q; k++) { const p = d[(h * n + q) * n + k]!; ent -= p > 0 ? p * Math.log(p) : 0; }
      first += d[(h * n + q) * n]!;
      if (q > 0) prev += d[(h * n + q) * n + q - 1]!;
    }
    assert.ok(Math.abs(s.entropy[h]! - ent / n) < 1e-5);
    assert.ok(Math.abs(s.first[h]! - first / n) < 1e-6);
    assert.ok(Math.abs(s.prev[h]! - prev / (n - 1)) < 1e-6);
    for (let i = 0; i < B; i++) for (let j = 0; j < B; j++) {
      const vals: number[] = [];
      for (let q = 0; q < n; q++) for (let k = 0; k <= q; k++) if (bin(q) === i && bin(k) === j) vals.push(d[(h * n + q) * n + k]!);
      const got = s.thumbs[(h * B + i) * B + j]!;
      if (!vals.length) assert.ok(Number.isNaN(got), `bin ${i},${j} has no causal entry`);
      else assert.ok(Math.abs(got - vals.reduce((a, b) => a + b, 0) / vals.length) < 1e-6);
    }
  }
  // binStart agrees with floor(p·B/n).
  for (let i = 0; i <= B; i++) assert.equal(binStart(i, n, B), Array.from({ length: n + 1 }, (_, p) => p).find((p) => p === n || bin(p) >= i));
  // The small multiples use the summary's thumbnails when it matches the pattern.
  const out = output({ nLayers: 2, nHeads: 2, nKvHeads: 2, n: 30, layer: 1, bins: 6 });
  const t = layerThumbs(out);
  assert.equal(t.B, 6);
  assert.deepEqual(t.thumbs, out.summary!.thumbs.subarray(2 * 36, 4 * 36));
});

test('a summary of one layer (the page\'s, for the heads view) holds that layer\'s numbers of the every-layer summary, under model layer numbers', () => {
  const nHeads = 4, n = 20, L = 3;
  const layers = Array.from({ length: L }, (_, l) => patterns(nHeads, n, 300 + l));
  const ids = Array.from({ length: n }, (_, i) => [5, 9, 2, 5, 9, 7][i % 6]!);   // repeats: induction targets
  const every = summarize(layers, nHeads, n, 24, ids);
  const one = summarizeOneLayer(2, layers[2]!, nHeads, n, ids);
  assert.deepEqual([one.firstLayer, one.nLayers, one.size], [2, 1, every.size]);
  for (const k of ['entropy', 'first', 'prev', 'induction'] as const) {
    for (let h = 0; h < nHeads; h++) {
      assert.ok(Number.isFinite(headStat(one, 2, h, k)), `${k} of head ${h}`);
      assert.equal(headStat(one, 2, h, k), headStat(every, 2, h, k), `${k} of head ${h}`);
    }
    assert.ok(Number.isNaN(headStat(one, 1, 0, k)) && Number.isNaN(headStat(one, 3, 0, k)), 'layers it does not hold');
  }
  for (const sort of ['entropy', 'first', 'prev', 'induction'] as const) assert.deepEqual(orderHeads(one, 2, sort), orderHeads(every, 2, sort));
  const out: AttentionOutput = { ...output({ nLayers: L, nHeads, nKvHeads: nHeads, n, layer: 2 }), pattern: { heads: [0, 1, 2, 3], shape: [nHeads, n, n], data: layers[2]! } };
  assert.deepEqual(layerThumbs({ ...out, summary: one }).thumbs, layerThumbs({ ...out, summary: every }).thumbs);
  assert.equal(everyLayer(every, L), true);
  assert.equal(everyLayer(one, L), false);
  // the overview and its export need every layer: a one-layer summary is not drawn as one
  const figure = (summary: HeadSummary) => attentionFigure({ ...out, summary }, viewState({ view: 'overview' }, out)).meta!;
  assert.equal(figure(one)['view'], 'overview');
  assert.ok(!('sort' in figure(one)), 'a one-layer summary: the overview\'s export falls back to the heatmap');
  assert.ok('sort' in figure(every));
});

// ---------------------------------------------------------------------------------------------
// Canvas paths (long prompts)

test('patternPixels on a 1,000-token head: size, colours of cells, masked above the diagonal', () => {
  const n = 1000, d = new Float32Array(n * n), r = rng(42);
  for (let q = 0; q < n; q++) for (let k = 0; k <= q; k++) d[q * n + k] = r() / (q + 1);
  d[5 * n + 3] = 0.75; d[999 * n] = 1; d[500 * n + 499] = 0;
  const out: AttentionOutput = { prompt: 'p', labels: Array.from({ length: n }, (_, i) => `t${i}`), layer: 0, nLayers: 1, nHeads: 2, nKvHeads: 1,
    pattern: { heads: [0, 1], shape: [2, n, n], data: (() => { const a = new Float32Array(2 * n * n); a.set(d, n * n); return a; })() }, summary: null };
  const px = patternPixels(out, 1);
  assert.equal(px.length, n * n * 4);
  const c = colorScale('sequential', 0, 1);
  for (const [q, k] of [[5, 3], [999, 0], [500, 499], [700, 12]] as const) {
    const v = d[q * n + k]!, i = (q * n + k) * 4;
    const want = rgbBytes(c(lutIndex(v, 0, 1) / 255));
    assert.deepEqual([px[i], px[i + 1], px[i + 2], px[i + 3]], [...want, 255], `cell ${q},${k}`);
    const exact = rgbBytes(c(v));
    for (let j = 0; j < 3; j++) assert.ok(Math.abs(px[i + j]! - exact[j]!) <= 4, 'LUT colour within quantization of the exact colour');
  }
  assert.equal(px[(3 * n + 5) * 4 + 3], 0, 'above the diagonal: transparent');
  // The heatmap's hover readout maps a point to its cell.
  const g = heatmapGeom(out, 2);
  assert.deepEqual(heatCellAt(g, g.x0 + 3 * 2 + 1, g.y0 + 5 * 2 + 1), { q: 5, k: 3 });
  assert.equal(heatCellAt(g, g.x0 - 1, g.y0), null);
});

test('overview pixels read only the thumbnails: the same work for 16 and 1,000 tokens', () => {
  let L = 4, H = 6;
  const B = 24;
  const make = (nPos: number, seed: number): HeadSummary => {
    const r = rng(seed), thumbs = new Float32Array(L * H * B * B);
    for (let i = 0; i < thumbs.length; i++) thumbs[i] = (i % B) > Math.floor(i / B) % B ? NaN : r() * 0.2;
    const stat = () => Float32Array.from({ length: L * H }, r);
    return { nLayers: L, nHeads: H, nPos, size: B, thumbs, entropy: stat(), first: stat(), prev: stat() };
  };
  const counted = (s: HeadSummary) => {
    let reads = 0;
    const proxy = new Proxy(s.thumbs, { get(t, p) { if (typeof p === 'string' && /^\d+$/.test(p)) reads++; const v = Reflect.get(t, p); return typeof v === 'function' ? v.bind(t) : v; } });
    const p = overviewPixels(s, 'entropy', proxy as unknown as Float32Array);
    return { reads, p };
  };
  const a = counted(make(16, 1)), b = counted(make(1000, 1));
  assert.equal(a.p.width, H * (B + 1));
  assert.equal(a.p.height, L * (B + 1));
  assert.equal(a.p.pixels.length, b.p.pixels.length);
  // Reads: the max scan over the thumbnails plus one read per bin, independent of nPos.
  assert.equal(a.reads, b.reads);
  assert.equal(b.reads, 2 * L * H * B * B);
  // TinyLlama's shape: 22 layers × 32 heads of 24² bins in one image.
  L = 22; H = 32;
  // A pixel's colour is the thumbnail's value at its (layer, sorted column, bin).
  const s = make(1000, 1), p = overviewPixels(s, 'entropy');
  assert.deepEqual([p.width, p.height], [32 * 25, 22 * 25]);
  const l = 7, col = 3, i = 20, j = 4, h = orderHeads(s, l, 'entropy')[col]!;
  const v = s.thumbs[((l * H + h) * B + i) * B + j]!;
  const lut = colorLut('sequential', 0, p.hi), o = ((l * (B + 1) + i) * p.width + col * (B + 1) + j) * 4;
  assert.deepEqual([...p.pixels.subarray(o, o + 3)], [...lut.subarray(lutIndex(v, 0, p.hi) * 3, lutIndex(v, 0, p.hi) * 3 + 3)]);
  // And hovering that pixel names that head.
  const g = overviewGeom(s, 'entropy');
  assert.deepEqual(overviewAt(g, g.x0 + (col * g.step + j + 0.5) * g.scale, g.y0 + (l * g.step + i + 0.5) * g.scale), { layer: l, head: h, qi: i, ki: j });
});

test('encodePng: a valid PNG whose pixels inflate back to the input', () => {
  const w = 5, h = 3, px = new Uint8ClampedArray(w * h * 4);
  const r = rng(3);
  for (let i = 0; i < px.length; i++) px[i] = Math.floor(r() * 256);
  const png = encodePng(px, w, h);
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const dv = new DataView(png.buffer);
  assert.equal(dv.getUint32(16), w);
  assert.equal(dv.getUint32(20), h);
  const idatLen = dv.getUint32(33);
  const raw = inflateSync(png.subarray(41, 41 + idatLen));
  for (let y = 0; y < h; y++) {
    assert.equal(raw[y * (w * 4 + 1)], 0);
    assert.deepEqual([...raw.subarray(y * (w * 4 + 1) + 1, (y + 1) * (w * 4 + 1))], [...px.subarray(y * w * 4, (y + 1) * w * 4)]);
  }
  // Large images span several stored blocks.
  const big = new Uint8ClampedArray(200 * 100 * 4).fill(7);
  const p2 = encodePng(big, 200, 100), len2 = new DataView(p2.buffer).getUint32(33);
  assert.equal(inflateSync(p2.subarray(41, 41 + len2)).length, 100 * 801);
});

// ---------------------------------------------------------------------------------------------
// Export

test('export rows: causal entries of the shown heads, and the figure per view', () => {
  const out = output({ nLayers: 2, nHeads: 4, nKvHeads: 2, n: 6 });
  const { rows, note } = attentionRowsForExport(out, [2]);
  assert.equal(note, null);
  assert.equal(rows.length, 21);
  assert.deepEqual(Object.keys(rows[0]!), ['layer', 'head', 'query', 'key', 'query_token', 'key_token', 'weight']);
  const r = rows.find((x) => x['query'] === 4 && x['key'] === 2)!;
  assert.equal(r['weight'], Number(out.pattern.data[(2 * 6 + 4) * 6 + 2]!.toPrecision(4)));
  assert.equal(r['key_token'], '·upon');
  // Past the limit small weights are dropped and the note says so.
  const cut = attentionRowsForExport(out, [0, 1, 2, 3], { limit: 20 });
  assert.ok(cut.rows.length <= 20 && cut.rows.every((x) => (x['weight'] as number) >= 0.01));
  assert.match(cut.note!, /weights below 0.01 omitted/);

  const fig = (s: Record<string, unknown>, token: number | null = null) => attentionFigure(out, viewState(s, out, token));
  assert.equal(fig({}).rows.length, 4 * 21);
  assert.match(fig({}).svg, /KV head 1/);
  assert.equal(fig({ view: 'heatmap', head: 3 }).rows.length, 21);
  assert.equal(fig({ view: 'lines', head: 1 }).rows.length, 21);
  const from = fig({ view: 'from', head: 1 }, 3);
  assert.equal(from.rows.length, 4);
  assert.equal(from.meta!['query'], 3);
  assert.equal(fig({ view: 'from', mean: true }).rows.length, 4 * 6);
  const ov = fig({ view: 'overview', sort: 'prev' });
  assert.equal(ov.rows.length, 2 * 4);
  assert.deepEqual(Object.keys(ov.rows[0]!), ['layer', 'head', 'entropy', 'first', 'prev', 'rank']);
  assert.equal(fig({ heads: [1, 3] }).rows.length, 2 * 21);
  // The mean row of "from" is the mean over heads.
  const mean = attentionRow(out, 'mean', 5);
  for (let k = 0; k <= 5; k++) {
    let s = 0;
    for (let h = 0; h < 4; h++) s += out.pattern.data[(h * 6 + 5) * 6 + k]!;
    assert.ok(Math.abs(mean[k]! - s / 4) < 1e-6);
  }
});

test('overview export past the SVG limit embeds one PNG', () => {
  const out = output({ nLayers: 3, nHeads: 4, nKvHeads: 2, n: 12, bins: 6 });
  const big: HeadSummary = { ...out.summary!, nLayers: 3, size: 6 };
  assert.match(overviewSvg(big, { mode: 'image' }), /<image [^>]*href="data:image\/png;base64,/);
  assert.doesNotMatch(overviewSvg(big, { mode: 'frame' }), /data-v=/);
});

/** The output the page computes for a long prompt's heads view: no full pattern, every head pooled. */
function pooledOutput(o: { nHeads: number; nKvHeads: number; n: number; bins: number; seed?: number }): { out: AttentionOutput; full: Float32Array } {
  const full = patterns(o.nHeads, o.n, o.seed ?? 7);
  const base = output({ nLayers: 1, nHeads: o.nHeads, nKvHeads: o.nKvHeads, n: o.n, seed: o.seed ?? 7, bins: 8 });
  const out: AttentionOutput = {
    ...base, pattern: { heads: [], shape: [0, o.n, o.n], data: new Float32Array(0) },
    pooled: { heads: Array.from({ length: o.nHeads }, (_, h) => h), bins: o.bins, reduce: 'max', data: poolAttention(full, o.nHeads, o.n, o.bins, 'max') },
  };
  return { out, full };
}

test('snapshot: pooled small multiples of a long prompt (GQA, max over bins, axes in bins)', () => {
  const { out, full } = pooledOutput({ nHeads: 4, nKvHeads: 2, n: 50, bins: 12 });
  assert.equal(multiplesUseBins(out, [0, 1, 2, 3]), true);
  const svg = smallMultiplesSvg(out, [0, 1, 2, 3]);
  matchSnapshot('attention-heads-pooled', svg);
  assert.match(svg, /rows: query bin, columns: key bin \(12 bins of 4–5 positions; max per bin\)/);
  assert.match(svg, /<title>layer 0, head 2 \(KV head 1\); each pixel the max over 4–5 × 4–5 positions \(query × key\): click to enlarge<\/title>/);
  assert.match(svg, /max attention weight per bin \(12 × 12 bins of 4–5 tokens\)/);
  // every drawn bin is the max of its causal entries in the full pattern
  const rects = [...svg.matchAll(/data-h="(\d+)" data-q0="(\d+)" data-q1="(\d+)" data-k0="(\d+)" data-k1="(\d+)" data-v="([^"]+)"/g)];
  assert.equal(rects.length, 4 * (12 * 13) / 2);
  for (const [, h, q0, q1, k0, k1, v] of rects.filter((_, i) => i % 17 === 0)) {
    let m = 0;
    for (let q = +q0!; q <= +q1!; q++) for (let k = +k0!; k <= Math.min(+k1!, q); k++) m = Math.max(m, full[(+h! * 50 + q) * 50 + k]!);
    assert.equal(Number(v), Number(m.toPrecision(4)));
  }
  // export: one embedded image and a row per causal bin, the figure names the pooling
  const f = attentionFigure(out, viewState({}, out));
  assert.equal((f.svg.match(/<image /g) ?? []).length, 1);
  assert.equal(f.rows.length, 4 * (12 * 13) / 2);
  assert.deepEqual(Object.keys(f.rows[0]!), ['layer', 'head', 'query_from', 'query_to', 'key_from', 'key_to', 'max']);
  const g = multiplesGeom(out, [0, 1, 2, 3]), t = g.tiles[2]!;
  assert.deepEqual(multiplesAt(out, g, t.x + g.tile - 1, t.y + g.tile - 1), { head: t.head, qi: 11, ki: 11 });
});
