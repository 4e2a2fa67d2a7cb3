// The patch cell in the app on stories260K (issue 12): it renders both grids, the numbers it draws
// (data-v of grid cells in both grids, the clean and corrupted differences) are an independent
// in-thread engine's patchingGrid, spot-checked against plain engine.run patches; clicking a cell
// opens its detail with that patched run's top tokens.
import { expect } from 'chai';
import '../../src/app/app.ts';
import type { GlassboxApp } from '../../src/app/app.ts';
import { Engine } from '../../src/engine/api.ts';
import { resolveModelSource } from '../../src/worker/loading/index.ts';
import { patchingGrid, topTokens, type PatchingResult } from '../../src/engine/patching.ts';
import type { FigureExport } from '../../cells/plot/figure.ts';
import { until } from '../support/until.ts';

const MODEL = '/models/local/tinystories-260k/stories260K.gguf';
const CORRUPT = 'Lily gave the ball to Sam. Then Sam gave it back to';
type CellEl = HTMLElement & { exportFigure(): FigureExport | null; updateComplete: Promise<unknown>; state: { status: string; output: unknown; error: unknown; runs: number } | null };
const sig4 = (v: number) => Number(v.toPrecision(4));

describe('patch cell in the app (stories260K)', function () {
  this.timeout(180000);
  let app: GlassboxApp;
  let engine: Engine;
  let want: PatchingResult;
  let clean: number[], corrupted: number[];
  const el = () => app.shadowRoot!.querySelector<CellEl>('section[data-kind="patch"] glassbox-patch');

  before(async () => {
    app = document.createElement('glassbox-app') as GlassboxApp;
    app.search = `?notebook=/test/fixtures/notebooks/patch.md&model=${MODEL}&backend=cpu`;
    app.hash = '';
    app.autosaveId = `patch-${Date.now()}`;
    document.body.append(app);
    await app.ready;
    await until(() => app.model, 'the model');
    await until(() => ['done', 'error'].includes(el()?.state?.status ?? ''), 'the patch cell computed');
    expect(el()!.state!.status, String(el()!.state!.error)).to.equal('done');
    await el()!.updateComplete;
    engine = new Engine({ resolveSource: resolveModelSource });
    const info = await engine.load({ kind: 'local', paths: [MODEL] }, { backend: 'cpu' });
    clean = (app.shadowRoot!.querySelector<CellEl>('glassbox-prompt')!.state!.output as { ids: number[] }).ids;
    corrupted = (await engine.tokenize(CORRUPT)).ids;
    const T = (await engine.tokenize('Tom', { bos: false })).ids[0]!, S = (await engine.tokenize('Sam', { bos: false })).ids[0]!;
    want = await patchingGrid(engine, { clean, corrupted, target: T, foil: S, slot: 'want' }, info.config);
  });
  after(() => app.remove());

  it('draws both grids with the engine\'s restored fractions', async () => {
    const root = el()!.shadowRoot!;
    expect(root.querySelector('.error')).to.equal(null);
    for (const [which, g, attr] of [['resid', want.resid!, 't'], ['heads', want.heads!, 'h']] as const) {
      const cells = root.querySelectorAll<SVGRectElement>(`[data-testid="grid-${which}"] rect.cell`);
      expect(cells.length, which).to.equal(g.rows * g.cols);
      for (const r of cells) {
        const k = Number(r.dataset['l']) * g.cols + Number(r.dataset[attr]);
        expect(Number(r.dataset['v']), `${which} ${r.dataset['l']}.${r.dataset[attr]}`).to.equal(sig4(g.fraction[k]!));
        expect(Number(r.dataset['diff'])).to.equal(sig4(g.diff[k]!));
      }
    }
    expect(want.cleanDiff).to.be.above(1);
    expect(want.corruptedDiff).to.be.below(-1);
    expect(el()!.exportFigure()!.rows.length).to.equal(want.resid!.fraction.length + want.heads!.fraction.length);
  });

  it('a cell\'s number is a plain engine run with that patch', async () => {
    const values = (await engine.activation(await engine.run({ tokens: clean, slot: 'c', capture: ['blocks.1.hook_resid_pre'] }), 'blocks.1.hook_resid_pre')).data;
    const row = (await engine.logits(await engine.run({ tokens: corrupted, slot: 'p', edits: [{ hook: 'blocks.1.hook_resid_pre', op: 'patch', positions: [14], values }] }))).data;
    const d = row[want.target]! - row[want.foil]!;
    const f = (d - want.corruptedDiff) / (want.cleanDiff - want.corruptedDiff);
    const r = el()!.shadowRoot!.querySelector<SVGRectElement>('[data-testid="grid-resid"] rect.cell[data-l="1"][data-t="14"]')!;
    expect(Number(r.dataset['v'])).to.equal(sig4(f));
  });

  it('clicking a cell opens its run: the patched top tokens beside the clean and corrupted ones', async () => {
    const e = el()!;
    const root = e.shadowRoot!;
    expect(root.querySelector('[data-testid="detail"]')).to.equal(null);
    const runs = e.state!.runs;
    root.querySelector<SVGRectElement>('[data-testid="grid-heads"] rect.cell[data-l="2"][data-h="5"]')!.dispatchEvent(new MouseEvent('click', { bubbles: true, composed: true }));
    await until(() => root.querySelector('[data-testid="detail"]'), 'the detail panel');
    await e.updateComplete;
    const k = 2 * want.nHeads + 5;
    const patched = [...root.querySelectorAll<SVGGElement>('[data-testid="detail"] g.tok[data-run="patched"]')];
    expect(patched.map((g) => Number(g.dataset['id']))).to.deep.equal([...want.heads!.topIds.subarray(k * 5, k * 5 + 5)]);
    patched.forEach((g, j) => expect(Number(g.dataset['v'])).to.equal(sig4(want.heads!.topProbs[k * 5 + j]!)));
    const cleanIds = [...root.querySelectorAll<SVGGElement>('[data-testid="detail"] g.tok[data-run="clean"]')].map((g) => Number(g.dataset['id']));
    expect(cleanIds).to.deep.equal([...want.clean.ids]);
    // the engine's own top-5 of the same patched run
    const z = (await engine.activation(await engine.run({ tokens: clean, slot: 'c', capture: ['blocks.2.attn.hook_z'] }), 'blocks.2.attn.hook_z')).data;
    const row = (await engine.logits(await engine.run({ tokens: corrupted, slot: 'p', edits: [{ hook: 'blocks.2.attn.hook_z', op: 'patch', heads: [5], values: z }] }))).data;
    expect(patched.map((g) => Number(g.dataset['id']))).to.deep.equal([...topTokens(row, 5).ids]);
    expect(Number(root.querySelector<SVGElement>('[data-testid="detail"] .metric')!.dataset['v'])).to.equal(sig4(want.heads!.fraction[k]!));
    // the open cell is written to the notebook (a view key) and outlined
    expect(e.shadowRoot!.querySelector('[data-testid="grid-heads"] g.open')!.getAttribute('data-open')).to.equal('head:2:5');
    // arrow keys move it
    root.querySelector<HTMLElement>('[data-testid="grid-heads"]')!.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowRight', bubbles: true, composed: true }));
    await until(() => e.shadowRoot!.querySelector('[data-testid="grid-heads"] g.open')?.getAttribute('data-open') === 'head:2:6', 'the arrow key moved the open cell');
    expect(e.state!.status).to.equal('done');
    expect(e.state!.runs, 'open is a view key: no recompute').to.equal(runs);
  });

  it('a new target or foil is rescored from the runs kept: no model run, the numbers of a fresh grid', async () => {
    const e = el()!;
    const client = (app as unknown as { client: { stats(): Promise<{ runs: number }> } }).client;
    const id = (e as unknown as { cell: { id: string } }).cell.id;
    const modelRuns = (await client.stats()).runs, computed = e.state!.runs;
    app.doc!.setSetting(id, 'foil', 'ball');
    await until(() => e.state!.runs > computed && e.state!.status === 'done', 'the cell computed again');
    await e.updateComplete;
    expect((await client.stats()).runs, 'no model run').to.equal(modelRuns);
    const ball = (await engine.tokenize('ball', { bos: false })), foil = ball.ids[ball.pieces[0] === '▁' && ball.ids.length > 1 ? 1 : 0]!;
    const fresh = await patchingGrid(engine, { clean, corrupted, target: want.target, foil, slot: 'fresh' }, { nLayers: want.nLayers, nHeads: want.nHeads });
    const cells = e.shadowRoot!.querySelectorAll<SVGRectElement>('[data-testid="grid-resid"] rect.cell');
    expect(cells.length).to.equal(fresh.resid!.fraction.length);
    let changed = 0;
    for (const r of cells) {
      const k = Number(r.dataset['l']) * fresh.resid!.cols + Number(r.dataset['t']);
      expect(Number(r.dataset['v']), `resid ${k}`).to.equal(sig4(fresh.resid!.fraction[k]!));
      if (fresh.resid!.fraction[k] !== want.resid!.fraction[k]) changed++;
    }
    expect(changed, 'another foil, other fractions').to.be.above(0);
    app.doc!.setSetting(id, 'foil', 'Sam');
    await until(() => e.state!.runs > computed + 1 && e.state!.status === 'done', 'back to Sam');
    expect((await client.stats()).runs, 'still no model run').to.equal(modelRuns);
  });
});

describe('patch cell, a long prompt: the residual grid on a canvas', () => {
  it('paints one pixel per cell and reads out the cell under the mouse', async () => {
    await import('../../cells/patch.ts');
    const L = 24, P = 900, H = 8, top = 5;
    const n = L * P, fraction = Float32Array.from({ length: n }, (_, i) => ((i * 7919) % 1000) / 1000);
    const resid = { rows: L, cols: P, fraction, diff: fraction.map((f) => 2 * f - 1), topIds: new Int32Array(n * top), topProbs: new Float32Array(n * top).fill(0.2), skipped: new Uint8Array(n) };
    const heads = { rows: L, cols: H, fraction: new Float32Array(L * H).fill(0.5), diff: new Float32Array(L * H), topIds: new Int32Array(L * H * top), topProbs: new Float32Array(L * H * top), skipped: new Uint8Array(L * H) };
    const out = {
      prompt: 'prompt-1', labels: Array.from({ length: P }, (_, p) => `t${p}`), corruptedLabels: Array.from({ length: P }, (_, p) => `t${p}`),
      nLayers: L, nHeads: H, nKvHeads: 2, nPos: P, target: { id: 1, piece: 'a', typed: null }, foil: { id: 2, piece: 'b', typed: null }, top,
      clean: { diff: 1, ids: new Int32Array(top), probs: new Float32Array(top) }, corrupted: { diff: -1, ids: new Int32Array(top), probs: new Float32Array(top) },
      resid, heads, pieces: new Map([[0, 'x'], [1, 'a'], [2, 'b']]), runs: n,
    };
    const el = document.createElement('glassbox-patch') as HTMLElement & { cell: unknown; state: unknown; updateComplete: Promise<unknown> };
    el.cell = { id: 'patch-1', kind: 'patch', settings: {} };
    el.state = { status: 'done', output: out, error: null, runs: 1 };
    document.body.append(el);
    await el.updateComplete;
    await el.updateComplete;
    const canvas = el.shadowRoot!.querySelector<HTMLCanvasElement>('canvas[data-grid="resid"]')!;
    expect(canvas, 'a canvas').to.not.equal(null);
    expect([canvas.width, canvas.height]).to.deep.equal([P, L]);
    expect(el.shadowRoot!.querySelectorAll('[data-testid="grid-resid"] rect.cell').length).to.equal(0);
    const px = canvas.getContext('2d')!.getImageData(0, 0, P, L).data;
    let opaque = 0;
    for (let i = 3; i < px.length; i += 4) if (px[i] === 255) opaque++;
    expect(opaque).to.equal(n);
    expect(el.shadowRoot!.querySelectorAll('[data-testid="grid-heads"] rect.cell').length).to.equal(L * H);
    const r = canvas.getBoundingClientRect();
    const cw = r.width / P, ch = r.height / L;
    canvas.dispatchEvent(new MouseEvent('mousemove', { clientX: r.left + (517 + 0.5) * cw, clientY: r.top + (13 + 0.5) * ch, bubbles: true }));
    await el.updateComplete;
    const readout = el.shadowRoot!.querySelector('.readout')!.textContent!;
    expect(readout).to.contain('layer 13 at position 517');
    expect(readout).to.contain(`exact ${fraction[13 * P + 517]}`);

    // a partial grid (the graph's preview while the runs go on): its pending cells are blank, not
    // dimmed, and hovering one says it has not run; then the whole grid repaints the same canvas
    const pending = Uint8Array.from({ length: n }, (_, i) => (i % P >= P / 2 ? 1 : 0));
    const partial = { ...out, resid: { ...resid, pending, fraction: fraction.map((f, i) => (pending[i] ? NaN : f)), diff: resid.diff.map((d, i) => (pending[i] ? NaN : d)) } };
    el.state = { status: 'running', output: partial, error: null, runs: 2, preview: true, progress: { done: 12, total: 20, what: 'runs' } };
    await el.updateComplete;
    await el.updateComplete;
    const opaqueNow = () => { const d = canvas.getContext('2d')!.getImageData(0, 0, P, L).data; let k = 0; for (let i = 3; i < d.length; i += 4) if (d[i] === 255) k++; return k; };
    expect(el.shadowRoot!.querySelector<HTMLCanvasElement>('canvas[data-grid="resid"]'), 'the same canvas').to.equal(canvas);
    expect(opaqueNow(), 'the pending half is blank').to.equal(n / 2);
    expect(el.shadowRoot!.querySelector('[data-testid="grid-resid"]')!.classList.contains('stale')).to.equal(false);
    expect(el.shadowRoot!.textContent).to.contain('12 of 20 runs');
    const r2 = canvas.getBoundingClientRect();                          // the note above moved it
    canvas.dispatchEvent(new MouseEvent('mousemove', { clientX: r2.left + (P - 2 + 0.5) * cw, clientY: r2.top + 0.5 * ch, bubbles: true }));
    await el.updateComplete;
    expect(el.shadowRoot!.querySelector('.readout')!.textContent).to.contain('not run yet');
    el.state = { status: 'done', output: out, error: null, runs: 2 };
    await el.updateComplete;
    await el.updateComplete;
    expect(opaqueNow(), 'the whole grid, painted again').to.equal(n);
    el.remove();
  });
});
