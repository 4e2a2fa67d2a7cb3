// The embeddings plot: a PCA scatter at one layer, trajectories across layers, a long prompt
// (paths kept, per-layer dots dropped), the order of trajectory points, one scale on both axes,
// and the export rows.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matchSnapshot } from '../support/snapshot.ts';
import { toCsv } from '../../cells/plot/figure.ts';
import { withOverlay } from '../../cells/plot/logit-lens.ts';
import { axisTitle, embeddingsExport, embeddingsFigure, embeddingsMode, equalScales, POINT_LIMIT, trajectories, type EmbeddingsOutput } from '../../cells/plot/embeddings.ts';
import { rng } from '../support/mulberry.ts';


const TOKENS = ['BOS', '·Once', '·upon', '·a', '·time', '·there', '·was'];

/** Each token walks from a start point, drifting outward layer by layer. */
function embOutput(layers: number[], nPos: number, seed: number): EmbeddingsOutput {
  const r = rng(seed), L = layers.length;
  const points = new Float32Array(L * nPos * 2);                          // [layers, positions, 2]
  for (let p = 0; p < nPos; p++) {
    let x = (r() - 0.5) * 2, y = (r() - 0.5) * 2;
    const a = (p / Math.max(1, nPos)) * 2 * Math.PI;
    for (let li = 0; li < L; li++) {
      points[(li * nPos + p) * 2] = x; points[(li * nPos + p) * 2 + 1] = y;
      x += 0.6 * Math.cos(a) + (r() - 0.5) * 0.3; y += 0.4 * Math.sin(a) + (r() - 0.5) * 0.3;
    }
  }
  return { prompt: 'prompt-1', labels: Array.from({ length: nPos }, (_, i) => TOKENS[i % TOKENS.length]!), layers, points, explained: [0.431, 0.12] };
}

function marks(svg: string): Record<string, string>[] {
  return [...svg.matchAll(/<circle\b([^>]*\bdata-pc1="[^"]*"[^>]*)>/g)].map((m) =>
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

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 5e-4 * Math.abs(b) + 1e-6, `${what}: ${a} vs ${b}`);

test('scatter at one layer: snapshot (labels, a selected token), points carry their coordinates', () => {
  const out = embOutput([3], 7, 1);
  const f = embeddingsFigure(out);
  matchSnapshot('embeddings-scatter', withOverlay(f, { token: 4, layer: null }));
  const pts = marks(f.svg);
  assert.equal(pts.length, 7);
  for (const m of pts) {
    const p = Number(m['data-t']);
    assert.equal(m['data-l'], '3');
    close(Number(m['data-pc1']), out.points[p * 2]!, `pc1 of ${p}`);
    close(Number(m['data-pc2']), out.points[p * 2 + 1]!, `pc2 of ${p}`);
  }
  assert.match(f.svg, /PC1 \(43\.1% of variance\)/);
  assert.match(f.svg, /PC2 \(12\.0% of variance\)/);
  assert.equal(axisTitle(2, 0.5), 'PC2 (50.0% of variance)');
});

test('scatter without labels: snapshot', () => {
  const f = embeddingsFigure(embOutput([0], 7, 2), { labels: false });
  assert.ok(!f.svg.includes('class="labels"'), 'no labels');
  matchSnapshot('embeddings-scatter-nolabels', f.svg);
});

test('trajectories across 4 layers: snapshot (a selected token and layer)', () => {
  const out = embOutput([0, 1, 2, 3], 7, 3);
  const f = embeddingsFigure(out);
  matchSnapshot('embeddings-trajectories', withOverlay(f, { token: 2, layer: 1 }));
  assert.equal(marks(f.svg).length, 4 * 7);
  assert.equal((f.svg.match(/<path /g) ?? []).length, 7);
});

test('trajectory points follow the layers in ascending order, whatever order they are listed in', () => {
  const sorted = embOutput([0, 1, 2], 5, 4);
  // the same data with the layers listed as [2, 0, 1]: rows of points permuted to match
  const perm = [2, 0, 1];
  const points = new Float32Array(sorted.points.length);
  perm.forEach((layer, i) => points.set(sorted.points.subarray(layer * 10, layer * 10 + 10), i * 10));
  const shuffled: EmbeddingsOutput = { ...sorted, layers: perm, points };
  const a = trajectories(sorted), b = trajectories(shuffled);
  assert.deepEqual(b, a);
  assert.deepEqual(a[3]!.points.map((q) => q.layer), [0, 1, 2]);
  assert.equal(a[3]!.points[1]!.x, sorted.points[(1 * 5 + 3) * 2]);
  assert.equal(a[3]!.token, '·a');
  // the drawn path visits the same points in the same order
  const f = embeddingsFigure(shuffled, { labels: false });
  const d = /<path d="([^"]+)"[^>]*data-t="3"/.exec(f.svg)![1]!;
  const xs = [...d.matchAll(/[ML]([-\d.]+),/g)].map((m) => Number(m[1]));
  const dots = [...f.svg.matchAll(/<circle cx="([-\d.]+)"[^>]*data-t="3" data-l="(\d+)"/g)].map((m) => ({ x: Number(m[1]), layer: Number(m[2]) }));
  assert.deepEqual(dots.map((q) => q.layer), [0, 1, 2]);
  assert.deepEqual(xs, dots.map((q) => q.x));
});

test('one scale for both axes: equal data distances are equal distances on screen', () => {
  const s = equalScales([0, 10], [0, 2], 400, 300);
  assert.ok(Math.abs((s.x(1) - s.x(0)) - (s.y(0) - s.y(1))) < 1e-9, 'same px per unit');
  assert.ok(s.x(0) >= 0 && s.x(10) <= 400 && s.y(2) >= 0 && s.y(0) <= 300, 'inside the plot');
  const t = equalScales([5], [5], 100, 100);                                // a single point: centred
  assert.ok(Math.abs(t.x(5) - 50) < 1e-9 && Math.abs(t.y(5) - 50) < 1e-9, 'centred');
});

test('long prompt (22 layers × 200 positions): paths on a canvas layer, hit dots in the SVG; export keeps SVG paths', () => {
  const out = embOutput(Array.from({ length: 22 }, (_, i) => i), 200, 5);
  assert.ok(22 * 200 > POINT_LIMIT, 'past the point limit');
  assert.equal(embeddingsMode(out), 'canvas');
  assert.equal(embeddingsMode(embOutput([0, 1, 2, 3], 7, 3)), 'svg');
  const f = embeddingsFigure(out);
  const v = f.vector!;
  assert.equal(v.paths.length, 200);
  assert.ok(v.paths.every((p) => p.xy.length === 44), 'one vertex per layer');
  assert.equal(v.dots.length, 200);
  assert.equal(v.labels.length, 67);                                        // every 3rd of 200
  assert.equal(v.labels[1]!.text, out.labels[3]);
  assert.ok(!f.svg.includes('<path '), 'no SVG paths');
  const hits = marks(f.svg);
  assert.equal(hits.length, 200);
  assert.ok(hits.every((m) => m['data-l'] === '21'), 'hit dots at the last layer');
  // the canvas path of token 7 starts at its layer-0 point and ends at its hit dot
  const t7 = hits.find((m) => m['data-t'] === '7')!;
  const cx = Number(/cx="([-\d.]+)"[^>]*data-t="7"/.exec(f.svg)![1]);
  assert.ok(Math.abs(v.paths[7]!.xy[42]! - cx) < 0.01, 'path ends at the hit dot');
  close(Number(t7['data-pc1']), out.points[(21 * 200 + 7) * 2]!, 'pc1 of the last point');
  matchSnapshot('embeddings-long', withOverlay(f, { token: 100, layer: 10 }));
  const svg = embeddingsFigure(out, { mode: 'svg' }).svg;                  // what export draws
  assert.equal((svg.match(/<path /g) ?? []).length, 200);
  assert.equal(marks(svg).length, 200, 'dots only at the last layer');
  assert.equal((svg.match(/<text [^>]*data-t=/g) ?? []).length, 67);
});

test('export: a row per (layer, position), CSV parses back', () => {
  const out = embOutput([1, 0], 3, 6);
  const e = embeddingsExport(out, { selection: { token: 1, layer: null } });
  assert.equal(e.rows.length, 6);
  assert.deepEqual(e.rows.map((r) => [r['layer'], r['position']]), [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]);
  assert.equal(e.rows[4]!['pc1'], out.points[(0 * 3 + 1) * 2]);          // layer 1 is listed first in `layers`
  assert.equal(e.rows[4]!['token'], '·Once');
  const csv = parseCsv(toCsv(e.rows));
  assert.deepEqual(csv[0], ['layer', 'position', 'token', 'pc1', 'pc2']);
  for (const [i, r] of e.rows.entries()) assert.deepEqual(csv[i + 1], Object.values(r).map(String));
  assert.deepEqual(e.meta?.['explained'], [0.431, 0.12]);
  assert.match(e.svg, /class="selection"/);
});
