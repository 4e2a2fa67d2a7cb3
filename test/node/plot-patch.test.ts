// The patch cell's pure side (cells/plot/patch.ts) on seeded synthetic grids: the open-cell
// setting and its keyboard moves, the colour domain, the marks' data attributes and titles
// against the grid's own numbers, the detail panel's three runs, the export rows, the canvas path
// for a long prompt, and snapshots (an MHA model, a GQA model, a long prompt, a single grid).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rng } from '../support/mulberry.ts';
import { matchSnapshot } from '../support/snapshot.ts';
import { SVG_CELL_LIMIT } from '../../cells/plot/kit.ts';
import {
  bestCell, cellAtPoint, cellText, cellTitle, colorDomain, detailRuns, metricName, moveOpen, openKey, parseOpen, patchDetailSvg, patchExport,
  patchHeatmap, patchMode, patchRows, patchSvg, type PatchOutput,
} from '../../cells/plot/patch.ts';
import type { PatchGrid } from '../../src/engine/patching.ts';

const sig4 = (v: number) => String(Number(v.toPrecision(4)));

function grid(r: () => number, rows: number, cols: number, top: number, vocab: number): PatchGrid {
  const n = rows * cols;
  const g: PatchGrid = {
    rows, cols, fraction: new Float32Array(n), diff: new Float32Array(n), topIds: new Int32Array(n * top), topProbs: new Float32Array(n * top), skipped: new Uint8Array(n),
  };
  for (let i = 0; i < n; i++) {
    const f = r() < 0.15 ? 0 : (r() - 0.25) * 1.4;     // mostly in [−0.35, 1.05], some exact zeros
    g.fraction[i] = f;
    g.skipped[i] = f === 0 ? 1 : 0;
    g.diff[i] = -2 + 4 * f;
    let left = 1;
    for (let k = 0; k < top; k++) {
      g.topIds[i * top + k] = Math.floor(r() * vocab);
      const p = left * (0.3 + 0.4 * r());
      g.topProbs[i * top + k] = p; left -= p;
    }
  }
  return g;
}

function synth(seed: number, o: { nLayers: number; nHeads: number; nKvHeads: number; nPos: number; grids?: ('resid' | 'heads')[] }): PatchOutput {
  const r = rng(seed), top = 5, vocab = 40;
  const words = ['▁Lily', '▁gave', '▁the', '▁ball', '▁to', '▁T', 'om', '.', '▁Then', '▁it', '▁back'];
  const labels = Array.from({ length: o.nPos }, (_, p) => (p === 0 ? '<s>' : words[Math.floor(r() * words.length)]!));
  const corruptedLabels = labels.map((l, p) => (p % 7 === 3 ? '▁S' : l));
  const pieces = new Map(Array.from({ length: vocab }, (_, i) => [i, i % 2 ? `▁w${i}` : `t${i}`] as [number, string]));
  const grids = o.grids ?? ['resid', 'heads'];
  const ids = (k: number) => Int32Array.from({ length: top }, (_, j) => (k + j * 3) % vocab);
  return {
    prompt: 'prompt-1', labels, corruptedLabels, nLayers: o.nLayers, nHeads: o.nHeads, nKvHeads: o.nKvHeads, nPos: o.nPos,
    target: { id: 3, piece: '▁T', typed: 'Tom' }, foil: { id: 5, piece: '▁S', typed: null }, top,
    clean: { diff: 2, ids: ids(3), probs: Float32Array.from([0.4, 0.2, 0.1, 0.05, 0.01]) },
    corrupted: { diff: -2, ids: ids(5), probs: Float32Array.from([0.5, 0.1, 0.08, 0.04, 0.02]) },
    resid: grids.includes('resid') ? grid(r, o.nLayers, o.nPos, top, vocab) : null,
    heads: grids.includes('heads') ? grid(r, o.nLayers, o.nHeads, top, vocab) : null,
    pieces, runs: 123,
  };
}

const attrs = (svg: string, sel: RegExp) => [...svg.matchAll(sel)].map((m) => m[0]);

test('the open setting: parsed against the output, keyed back, moved by the arrow keys', () => {
  const o = synth(1, { nLayers: 4, nHeads: 6, nKvHeads: 6, nPos: 9 });
  assert.deepEqual(parseOpen('resid:2:8', o), { grid: 'resid', layer: 2, index: 8 });
  assert.deepEqual(parseOpen(' head:3:5 ', o), { grid: 'heads', layer: 3, index: 5 });
  for (const bad of ['resid:4:0', 'resid:0:9', 'head:0:6', 'heads:0:1', 'resid:1', 'x', 3, undefined, null]) assert.equal(parseOpen(bad, o), null, String(bad));
  assert.equal(parseOpen('head:0:0', { ...o, heads: null }), null);
  assert.equal(openKey({ grid: 'heads', layer: 1, index: 2 }), 'head:1:2');
  assert.equal(openKey({ grid: 'resid', layer: 1, index: 2 }), 'resid:1:2');
  const c = { grid: 'resid' as const, layer: 1, index: 4 };
  assert.deepEqual(moveOpen(c, 'ArrowRight', o, 'resid'), { grid: 'resid', layer: 1, index: 5 });
  assert.deepEqual(moveOpen(c, 'ArrowUp', o, 'resid'), { grid: 'resid', layer: 0, index: 4 });
  assert.deepEqual(moveOpen({ ...c, layer: 3 }, 'ArrowDown', o, 'resid'), { grid: 'resid', layer: 3, index: 4 }, 'clamped at the last layer');
  assert.deepEqual(moveOpen({ ...c, index: 0 }, 'ArrowLeft', o, 'resid'), { grid: 'resid', layer: 1, index: 0 });
  assert.deepEqual(moveOpen(c, 'End', o, 'resid'), { grid: 'resid', layer: 1, index: 8 });
  assert.deepEqual(moveOpen(c, 'Home', o, 'resid'), { grid: 'resid', layer: 1, index: 0 });
  assert.equal(moveOpen(c, 'a', o, 'resid'), null);
  // from nothing (or the other grid) the first key opens a cell of this grid
  assert.deepEqual(moveOpen(null, 'ArrowRight', o, 'resid'), { grid: 'resid', layer: 0, index: 8 });
  assert.deepEqual(moveOpen(c, 'ArrowRight', o, 'heads'), { grid: 'heads', layer: 0, index: 0 });
});

test('cell text: two decimals, a true minus, ≈0 for tiny nonzero values', () => {
  assert.equal(cellText(0), '0');
  assert.equal(cellText(-7.81e-7), '≈0');
  assert.equal(cellText(0.004), '≈0');
  assert.equal(cellText(0.005), '0.01');
  assert.equal(cellText(1.2149), '1.21');
  assert.equal(cellText(-0.178), '−0.18');
  assert.equal(cellText(NaN), 'NaN');
});

test('colour domain: ±max |fraction|, never less than 1', () => {
  const o = synth(2, { nLayers: 3, nHeads: 4, nKvHeads: 4, nPos: 5 });
  o.resid!.fraction.fill(0.2); o.heads!.fraction.fill(-0.5);
  assert.equal(colorDomain(o.resid, o.heads), 1);
  o.heads!.fraction[3] = -2.5;
  o.resid!.fraction[1] = NaN;
  assert.equal(colorDomain(o.resid, o.heads), 2.5);
  assert.equal(colorDomain(null, null), 1);
  assert.equal(patchMode(10, SVG_CELL_LIMIT / 10), 'svg');
  assert.equal(patchMode(10, SVG_CELL_LIMIT / 10 + 1), 'canvas');
});

test('every grid mark carries its cell\'s numbers: data-v, data-l, data-t / data-h, a title with the exact value', () => {
  const o = synth(3, { nLayers: 4, nHeads: 8, nKvHeads: 4, nPos: 13 });
  for (const which of ['resid', 'heads'] as const) {
    const g = o[which]!, svg = patchHeatmap(o, which).svg;
    const rects = attrs(svg, /<rect [^>]*class="cell[^"]*"[^>]*>[\s\S]*?<\/rect>/g);
    assert.equal(rects.length, g.rows * g.cols, which);
    for (const r of rects) {
      const l = Number(/data-l="(\d+)"/.exec(r)![1]), i = Number((which === 'resid' ? /data-t="(\d+)"/ : /data-h="(\d+)"/).exec(r)![1]);
      const k = l * g.cols + i;
      assert.equal(/data-v="([^"]+)"/.exec(r)![1], sig4(g.fraction[k]!));
      assert.equal(/data-diff="([^"]+)"/.exec(r)![1], sig4(g.diff[k]!));
      assert.ok(r.includes(`exact ${g.fraction[k]}`), 'the title holds the exact fraction');
      assert.equal(/data-open="([^"]+)"/.exec(r)![1], `${which === 'resid' ? 'resid' : 'head'}:${l}:${i}`);
    }
  }
  // the legend and the axes name their units
  const svg = patchHeatmap(o, 'resid').svg;
  assert.ok(svg.includes('restored fraction: 0 corrupted, 1 clean'));
  assert.ok(patchSvg(o).includes(esc(metricName(o))));
  assert.ok(svg.includes('>layer<') && svg.includes('position (token'));
  assert.ok(patchHeatmap(o, 'heads').svg.includes('4 KV groups'));
  assert.equal(attrs(patchHeatmap(o, 'heads').svg, /class="kv"/g).length, 3);
});

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

test('the open cell is outlined in its grid only, and its detail shows the three runs\' top tokens', () => {
  const o = synth(4, { nLayers: 4, nHeads: 6, nKvHeads: 6, nPos: 10 });
  const open = { grid: 'heads' as const, layer: 2, index: 3 };
  assert.ok(patchHeatmap(o, 'heads', { open }).svg.includes('class="open" data-open="head:2:3"'));
  assert.ok(!patchHeatmap(o, 'resid', { open }).svg.includes('class="open"'));
  const runs = detailRuns(o, open);
  const k = (2 * 6 + 3) * o.top;
  assert.deepEqual(runs.map((r) => r.run), ['clean', 'corrupted', 'patched']);
  assert.deepEqual(runs[2]!.ids, [...o.heads!.topIds.subarray(k, k + o.top)]);
  assert.deepEqual(runs[2]!.probs, [...o.heads!.topProbs.subarray(k, k + o.top)]);
  assert.equal(runs[2]!.diff, o.heads!.diff[2 * 6 + 3]);
  assert.deepEqual(runs[0]!.ids, [...o.clean.ids]);
  const svg = patchDetailSvg(o, open);
  assert.ok(svg.includes('data-grid="heads" data-l="2" data-h="3"'));
  assert.equal(/class="metric" data-v="([^"]+)"/.exec(svg)![1], sig4(o.heads!.fraction[2 * 6 + 3]!));
  for (const run of ['clean', 'corrupted', 'patched']) {
    const toks = attrs(svg, new RegExp(`<g class="tok" data-run="${run}" data-id="(\\d+)" data-v="([^"]+)"`, 'g'));
    assert.equal(toks.length, o.top, run);
  }
  const firstPatched = /<g class="tok" data-run="patched" data-id="(\d+)" data-v="([^"]+)"/.exec(svg)!;
  assert.equal(Number(firstPatched[1]), o.heads!.topIds[k]);
  assert.equal(firstPatched[2], sig4(o.heads!.topProbs[k]!));
  assert.ok(cellTitle(o, open).includes(`patched ${o.heads!.diff[2 * 6 + 3]! < 0 ? '−' : ''}`));
});

test('export rows: every cell of both grids, in layer-major order, with the grid\'s own numbers', () => {
  const o = synth(5, { nLayers: 3, nHeads: 4, nKvHeads: 2, nPos: 7 });
  const rows = patchRows(o);
  assert.equal(rows.length, 3 * 7 + 3 * 4);
  const r = rows[1 * 7 + 3]!;
  assert.deepEqual([r['grid'], r['layer'], r['position'], r['head']], ['resid', 1, 3, null]);
  assert.equal(r['fraction'], o.resid!.fraction[10]);
  assert.equal(r['logit_diff'], o.resid!.diff[10]);
  assert.equal(r['top_id'], o.resid!.topIds[10 * 5]);
  assert.equal(r['token_corrupted'], '▁S');
  const h = rows[21 + 2 * 4 + 1]!;
  assert.deepEqual([h['grid'], h['layer'], h['position'], h['head']], ['heads', 2, null, 1]);
  assert.equal(h['fraction'], o.heads!.fraction[9]);
  const f = patchExport(o, { open: { grid: 'resid', layer: 0, index: 3 } });
  assert.equal(f.meta!['open'], 'resid:0:3');
  assert.equal(f.meta!['clean_diff'], 2);
  assert.ok(f.svg.includes('class="detail"') || f.svg.includes('Open: resid_pre of layer 0'));
  const b = bestCell(o, 'resid')!;
  assert.equal(b.value, Math.max(...o.resid!.fraction));
  assert.ok(!('not_run_yet' in r) && !('partial' in f.meta!), 'a whole grid: no pending column');
});

test('a grid still filling in: its pending cells draw nothing, say so when hovered, and export without numbers', () => {
  const o = synth(5, { nLayers: 3, nHeads: 4, nKvHeads: 2, nPos: 7 });
  const pending = Uint8Array.from({ length: 21 }, (_, i) => (i % 7 >= 4 ? 1 : 0));
  const g = o.resid!;
  const partial: PatchOutput = { ...o, resid: { ...g, pending, fraction: g.fraction.map((v, i) => (pending[i] ? NaN : v)), diff: g.diff.map((v, i) => (pending[i] ? NaN : v)) } };
  const svg = patchHeatmap(partial, 'resid', { width: 720 }).svg;
  const cells = attrs(svg, /<rect [^>]*class="cell[^"]*"[^>]*>/g);
  assert.equal(cells.length, 21, 'every cell has its rect (and its title)');
  assert.equal(cells.filter((c) => c.includes('fill="none"')).length, 9, 'the 9 pending cells are blank');
  assert.ok(!svg.includes('>NaN<'), 'no NaN written in a cell');
  assert.match(cellTitle(partial, { grid: 'resid', layer: 1, index: 5 }), /not run yet/);
  assert.doesNotMatch(cellTitle(partial, { grid: 'resid', layer: 1, index: 2 }), /not run yet/);
  const rows = patchRows(partial), f = patchExport(partial);
  const pend = rows[1 * 7 + 5]!, done = rows[1 * 7 + 2]!;
  assert.deepEqual([pend['not_run_yet'], pend['fraction'], pend['top_id']], [true, null, null]);
  assert.deepEqual([done['not_run_yet'], done['fraction']], [false, g.fraction[9]]);
  assert.match(String(f.meta!['partial']), /filling in/);
});

test('a long prompt draws the residual grid as canvas pixels, and the point → cell mapping inverts the layout', () => {
  const o = synth(6, { nLayers: 24, nHeads: 16, nKvHeads: 4, nPos: 900 });
  const f = patchHeatmap(o, 'resid', { width: 900 });
  assert.ok(f.canvas, 'past the limit');
  assert.equal(f.canvas!.pixels.length, 24 * 900 * 4);
  assert.ok(!f.svg.includes('class="cell'));
  assert.ok(f.svg.includes('class="canvas-slot"'));
  // thinned labels: at most ~80
  assert.ok(attrs(f.svg, /<text transform="[^"]*" text-anchor="end" data-t=/g).length <= 81);
  const g = f.grid;
  const c = cellAtPoint(f, 'resid', g.left + 517 * g.cw + g.cw / 2, g.top + 13 * g.ch + 1)!;
  assert.deepEqual(c, { grid: 'resid', layer: 13, index: 517 });
  assert.equal(cellAtPoint(f, 'resid', g.left - 1, g.top), null);
  // the pixel of a cell is the colour of its value: a skipped (0) cell is the scale's centre
  const zero = o.resid!.fraction.findIndex((v) => v === 0);
  const mid = [...f.canvas!.pixels.subarray(zero * 4, zero * 4 + 3)];
  assert.ok(mid.every((v) => v > 230), `centre colour ${mid}`);
  // the heads grid stays SVG
  assert.equal(patchHeatmap(o, 'heads').canvas, null);
  // the export embeds the pixels as a PNG
  assert.ok(patchSvg(o).includes('href="data:image/png;base64,'));
});

test('snapshots', () => {
  matchSnapshot('patch-mha', patchSvg(synth(7, { nLayers: 5, nHeads: 8, nKvHeads: 8, nPos: 12 }), { open: { grid: 'resid', layer: 2, index: 3 } }));
  matchSnapshot('patch-gqa', patchSvg(synth(8, { nLayers: 6, nHeads: 8, nKvHeads: 2, nPos: 16 }), { open: { grid: 'heads', layer: 4, index: 5 } }));
  matchSnapshot('patch-long', patchHeatmap(synth(9, { nLayers: 6, nHeads: 8, nKvHeads: 2, nPos: 140, grids: ['resid'] }), 'resid', { width: 900 }).svg);
  matchSnapshot('patch-heads-only', patchSvg(synth(10, { nLayers: 4, nHeads: 6, nKvHeads: 6, nPos: 8, grids: ['heads'] })));
});
