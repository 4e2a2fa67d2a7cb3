// The visual cells in the app, on stories260K (issue 8): every kind renders; what is drawn equals
// an independent in-thread engine's trace of the same tokens (the attention heatmap's cell for
// query 5, key 3 is blocks.1.attn.hook_pattern[h, 5, 3]); the logit lens at the last layer agrees
// with the next-token cell; hovering a token in one cell highlights it in the others; each cell
// exports SVG, PNG, CSV and JSON that parse; one prompt edit runs the model once for all cells.
import { expect } from 'chai';
import '../../src/app/app.ts';
import type { GlassboxApp } from '../../src/app/app.ts';
import { Engine } from '../../src/engine/api.ts';
import { resolveModelSource } from '../../src/worker/loading/index.ts';
import { svgToPng, toCsv, toJson, type FigureExport } from '../../cells/plot/figure.ts';
import { linked } from '../../cells/plot/linked.ts';
import { colorLut, lutIndex } from '../../cells/plot/attention.ts';
import { topNeurons, type ActivationsOutput } from '../../cells/plot/activations.ts';
import type { EmbeddingsOutput } from '../../cells/plot/embeddings.ts';
import { exportHtml } from '../../src/app/export.ts';
import { until } from '../support/until.ts';

const MODEL = '/models/local/tinystories-260k/stories260K.gguf';
const KINDS = ['attention', 'next-token', 'logit-lens', 'activations', 'embeddings'] as const;


type CellEl = HTMLElement & { exportFigure(): FigureExport | null; updateComplete: Promise<unknown>; state: { status: string; output: unknown; error: unknown } | null };
const cellEl = (app: GlassboxApp, kind: string) => app.shadowRoot!.querySelector<CellEl>(`section[data-kind="${kind}"] glassbox-${kind}`);
const sig4 = (v: number) => Number(v.toPrecision(4));

describe('visual cells in the app (stories260K)', function () {
  this.timeout(180000);
  let app: GlassboxApp;
  let tokens: number[];

  before(async () => {
    app = document.createElement('glassbox-app') as GlassboxApp;
    app.search = `?notebook=/test/fixtures/notebooks/visual-cells.md&model=${MODEL}&backend=cpu`;
    app.hash = '';
    app.autosaveId = `cells-${Date.now()}`;
    document.body.append(app);
    await app.ready;
    await until(() => app.model, 'the model');
    await until(() => KINDS.every((k) => cellEl(app, k)?.state?.status === 'done') || KINDS.find((k) => cellEl(app, k)?.state?.status === 'error'), 'every visual cell computed');
    for (const k of KINDS) {
      const st = cellEl(app, k)!.state!;
      expect(st.status, `${k}: ${String(st.error)}`).to.equal('done');
    }
    await Promise.all(KINDS.map((k) => cellEl(app, k)!.updateComplete));
    tokens = (app.shadowRoot!.querySelector<CellEl>('glassbox-prompt')!.state!.output as { ids: number[] }).ids;
  });
  after(() => app.remove());

  it('renders every kind with a figure', () => {
    for (const k of KINDS) {
      const root = cellEl(app, k)!.shadowRoot!;
      expect(root.querySelector('svg, canvas'), `${k} draws a figure`).to.not.equal(null);
      expect(root.querySelector('.error'), `${k} shows no error`).to.equal(null);
    }
  });

  it('ran the model once for the five cells of the prompt', () => {
    expect(app.runs.runs).to.equal(1);
  });

  it('draws the attention heatmap from the trace: query 5, key 3 is blocks.1.attn.hook_pattern[2, 5, 3]', async () => {
    const engine = new Engine({ resolveSource: resolveModelSource });
    await engine.load({ kind: 'local', paths: [MODEL] }, { backend: 'cpu' });
    const trace = await engine.run({ tokens, capture: ['blocks.1.attn.hook_pattern', 'blocks.4.hook_resid_post'] });
    const slice = await engine.attention(trace, { layer: 1, head: 2 });
    const n = tokens.length;
    const root = cellEl(app, 'attention')!.shadowRoot!;
    const rect = root.querySelector<SVGElement>('[data-h="2"][data-q="5"][data-k="3"]');
    expect(rect, 'the heatmap has a mark for (head 2, query 5, key 3)').to.not.equal(null);
    expect(Number(rect!.dataset['v'])).to.equal(sig4(slice.data[5 * n + 3]!));
    // Every drawn mark, not only one.
    let checked = 0;
    for (const m of root.querySelectorAll<SVGElement>('[data-h="2"][data-q][data-k][data-v]')) {
      const q = Number(m.dataset['q']), k = Number(m.dataset['k']);
      expect(Number(m.dataset['v']), `(${q}, ${k})`).to.be.closeTo(slice.data[q * n + k]!, 5e-4 * Math.max(1e-3, slice.data[q * n + k]!) + 1e-7);
      checked++;
    }
    expect(checked).to.equal(n * (n + 1) / 2);

    // The next-token cell's distribution is the model's last logits row.
    const top = await engine.topK(trace, { k: 1 });
    const nt = cellEl(app, 'next-token')!.shadowRoot!;
    const first = nt.querySelector<SVGElement>('[data-id][data-v]')!;
    expect(Number(first.dataset['id'])).to.equal(top.ids[0]);
    expect(Number(first.dataset['v'])).to.be.closeTo(top.probs[0]!, 1e-3);
  });

  it('the logit lens at the last layer equals the next-token cell', () => {
    const lens = cellEl(app, 'logit-lens')!.state!.output as { layers: number[]; positions: number[]; k: number; ids: Int32Array; probs: Float32Array };
    const last = lens.layers.length - 1, p = lens.positions.length - 1;
    const at = (last * lens.positions.length + p) * lens.k;
    const nt = cellEl(app, 'next-token')!.shadowRoot!;
    const bars = [...nt.querySelectorAll<SVGElement>('[data-id][data-v]')].slice(0, lens.k);
    expect(bars.map((b) => Number(b.dataset['id']))).to.deep.equal([...lens.ids.subarray(at, at + lens.k)]);
    bars.forEach((b, i) => expect(Number(b.dataset['p0'] ?? b.dataset['v'])).to.be.closeTo(lens.probs[at + i]!, 1e-3));
  });

  it('the logit lens draws its grid on a canvas with the top token written in each cell; hovering a cell reads it out and links its token', async () => {
    const el = cellEl(app, 'logit-lens')!;
    const lens = el.state!.output as { layers: number[]; positions: number[]; k: number; ids: Int32Array; probs: Float32Array; pieces: Map<number, string> };
    const root = el.shadowRoot!;
    const fig = root.querySelector<HTMLElement>('[data-testid=lens-grid]')!;
    const canvas = fig.querySelector<HTMLCanvasElement>('canvas[data-panel]')!;
    const L = lens.layers.length, P = lens.positions.length;
    expect([canvas.height, canvas.width]).to.deep.equal([L, P]);
    expect(fig.querySelector('[data-v]'), 'no SVG element per cell').to.equal(null);
    const texts = fig.querySelectorAll('g.pieces text');
    expect(texts.length, 'a text per cell').to.equal(L * P);
    const box = canvas.getBoundingClientRect();
    for (const [li, pi] of [[L - 1, P - 1], [0, 0], [1, 3]] as const) {
      const r = L - 1 - li;   // the top row is the last layer
      const top = lens.ids[(li * P + pi) * lens.k]!;
      const piece = lens.pieces.get(top) ?? '', shown = texts[r * P + pi]!.textContent!;
      expect(piece.startsWith(shown.replace(/…$/, '')), `cell (${li}, ${pi}) shows "${shown}" for its top token "${piece}"`).to.equal(true);
      canvas.dispatchEvent(new PointerEvent('pointermove', { bubbles: true, composed: true, clientX: box.left + ((pi + 0.5) * box.width) / P, clientY: box.top + ((r + 0.5) * box.height) / L }));
      await el.updateComplete;
      const readout = root.querySelector('.readout')!.textContent!;
      expect(readout, `readout of (${li}, ${pi})`).to.contain(`position ${lens.positions[pi]} `).and.contain(`1. ${JSON.stringify(lens.pieces.get(top) ?? `#${top}`)}`);
      expect(linked.current.token).to.equal(lens.positions[pi]);
      expect(linked.current.layer).to.equal(lens.layers[li]);
    }
    fig.parentElement!.parentElement!.dispatchEvent(new PointerEvent('pointerleave'));   // the handler's element
    linked.leave('test');
  });

  it('hovering a token in the attention cell highlights it in the prompt and the other cells', async () => {
    const root = cellEl(app, 'attention')!.shadowRoot!;
    const mark = root.querySelector<SVGElement>('[data-h="2"][data-q="4"][data-k="1"]')!;
    mark.dispatchEvent(new MouseEvent('mouseover', { bubbles: true, composed: true }));
    expect(linked.current.token).to.equal(4);
    const prompt = app.shadowRoot!.querySelector<CellEl>('glassbox-prompt')!;
    await prompt.updateComplete;
    const chip = prompt.shadowRoot!.querySelector<HTMLElement>('.tok.linked');
    expect(chip?.dataset['t']).to.equal('4');
    const lens = cellEl(app, 'logit-lens')!;
    await lens.updateComplete;
    const outline = lens.shadowRoot!.querySelector('svg[aria-label=selection]');
    expect(outline?.childElementCount ?? 0, 'the logit lens outlines the token').to.be.greaterThan(0);
    mark.dispatchEvent(new MouseEvent('mouseout', { bubbles: true, composed: true }));
    root.querySelector('[data-testid=attention-figure]')?.dispatchEvent(new MouseEvent('mouseleave', { bubbles: false }));
    linked.leave('test');
  });

  it('exports SVG, PNG, CSV and JSON from every cell, and they parse', async () => {
    for (const k of KINDS) {
      const f = cellEl(app, k)!.exportFigure();
      expect(f, `${k} has a figure to export`).to.not.equal(null);
      const svg = new DOMParser().parseFromString(f!.svg.includes('xmlns=') ? f!.svg : f!.svg.replace('<svg', '<svg xmlns="http://www.w3.org/2000/svg"'), 'image/svg+xml');
      expect(svg.querySelector('parsererror'), `${k}: SVG parses`).to.equal(null);
      expect(svg.documentElement.nodeName).to.equal('svg');
      const csv = toCsv(f!.rows).trim().split('\r\n');
      expect(csv.length, `${k}: CSV has a header and rows`).to.be.greaterThan(1);
      const cols = csv[0]!.split(',').length;
      expect(csv.slice(1).every((l) => !l.includes('"') ? l.split(',').length === cols : true), `${k}: CSV rows have ${cols} fields`).to.equal(true);
      const json = JSON.parse(toJson(f!)) as { rows: unknown[] };
      expect(json.rows.length).to.equal(f!.rows.length);
      const png = await svgToPng(f!.svg, 1);
      expect(png.type).to.equal('image/png');
      const head = new Uint8Array(await png.slice(0, 8).arrayBuffer());
      expect([...head]).to.deep.equal([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    }
  });

  it('the standalone HTML export inlines every visual cell\'s figure as SVG and holds no script', () => {
    const states = new Map(KINDS.map((k) => { const el = cellEl(app, k) as unknown as { cell: { id: string }; state: never }; return [el.cell.id, el.state]; }));
    const html = exportHtml(app.doc!.notebook, states, app.model);
    const d = new DOMParser().parseFromString(html, 'text/html');
    for (const k of KINDS) expect(d.querySelector(`section.figure.${k} svg`), `${k} figure`).to.not.equal(null);
    expect(d.querySelector('script')).to.equal(null);
  });

  it('a temperature change redraws the next-token cell without running the model', async () => {
    const before = app.runs.runs;
    const nt = cellEl(app, 'next-token')!;
    const id = (nt as unknown as { cell: { id: string } }).cell.id;
    app.doc!.setSetting(id, 'temperature', 0.5);
    await app.idle();
    await nt.updateComplete;
    expect(app.runs.runs).to.equal(before);
    expect(app.doc!.text).to.contain('temperature: 0.5');
  });

  it('the heads view draws every head\'s causal cells on a canvas, and hovering one reads its weight from the trace', async () => {
    const engine = new Engine({ resolveSource: resolveModelSource });
    await engine.load({ kind: 'local', paths: [MODEL] }, { backend: 'cpu' });
    const trace = await engine.run({ tokens, capture: ['blocks.1.attn.hook_pattern'] });
    const slice = await engine.attention(trace, { layer: 1 });
    const n = tokens.length, nHeads = slice.shape[0];
    const el = cellEl(app, 'attention')!;
    const id = (el as unknown as { cell: { id: string } }).cell.id;
    const runs = app.runs.runs;
    app.doc!.setSetting(id, 'view', undefined);   // the default view: every head of the layer
    await app.idle();
    await el.updateComplete;
    expect(app.runs.runs, 'a view key redraws without running').to.equal(runs);
    const root = el.shadowRoot!;
    expect(root.querySelectorAll('.tile').length).to.equal(nHeads);
    expect(root.querySelector('[data-q]'), 'no SVG element per cell').to.equal(null);
    const canvas = root.querySelector<HTMLCanvasElement>('canvas.under')!;
    expect(canvas.dataset['drawn']).to.equal(canvas.dataset['key']);
    const fig = canvas.parentElement!, box = fig.getBoundingClientRect();
    const svg = fig.querySelector('svg')!, scale = box.width / Number(svg.getAttribute('width'));
    const ctx = canvas.getContext('2d')!;
    const lut = colorLut('sequential', 0, 1);
    const tiles = [...root.querySelectorAll<SVGGElement>('.tile')];
    let checked = 0;
    for (const [h, q, k] of [[0, 5, 3], [nHeads - 1, n - 1, 0], [2, 4, 4], [1, n - 1, n - 1]] as const) {
      const tile = tiles.find((t) => t.dataset['h'] === String(h))!;
      const bg = tile.querySelector('rect.bg')!, tb = bg.getBoundingClientRect();
      const x = tb.left + ((k + 0.5) * tb.width) / n, y = tb.top + ((q + 0.5) * tb.height) / n;
      const want = slice.data[(h * n + q) * n + k]!;
      const px = ctx.getImageData(Math.floor((x - box.left) / scale), Math.floor((y - box.top) / scale), 1, 1).data;
      const c = lutIndex(want, 0, 1) * 3;
      expect([...px], `pixel of head ${h} (${q}, ${k})`).to.deep.equal([lut[c], lut[c + 1], lut[c + 2], 255]);
      fig.dispatchEvent(new MouseEvent('mousemove', { bubbles: true, composed: true, clientX: x, clientY: y }));
      await el.updateComplete;
      expect(root.querySelector('.readout')!.textContent, `readout of head ${h} (${q}, ${k})`).to.contain(`query ${q} `).and.contain(`→ key ${k} `)
        .and.contain(`: ${sig4(want)} (layer 1, head ${h})`);
      checked++;
    }
    expect(checked).to.equal(4);
    app.doc!.setSetting(id, 'view', 'heatmap');
    await app.idle();
  });

  it('a layer change in the activations and embeddings cells runs no model (every layer\'s hooks are captured) and draws that layer as the engine computes it', async () => {
    const engine = new Engine({ resolveSource: resolveModelSource });
    await engine.load({ kind: 'local', paths: [MODEL] }, { backend: 'cpu' });
    const trace = await engine.run({ tokens, capture: ['blocks.3.ffn.hook_act', 'blocks.3.hook_resid_post', 'blocks.2.hook_resid_post'] });
    const act = cellEl(app, 'activations')!, emb = cellEl(app, 'embeddings')!;
    const idOf = (el: CellEl) => (el as unknown as { cell: { id: string } }).cell.id;
    const runs = app.runs.runs;
    app.doc!.setSetting(idOf(act), 'layer', 3);
    app.doc!.setSetting(idOf(emb), 'layer', 2);
    await app.idle();
    await Promise.all([act.updateComplete, emb.updateComplete]);
    expect(app.runs.runs, 'no model run').to.equal(runs);
    const a = act.state!.output as ActivationsOutput, e = emb.state!.output as EmbeddingsOutput;
    const h = await engine.activation(trace, 'blocks.3.ffn.hook_act'), r = await engine.activation(trace, 'blocks.3.hook_resid_post');
    const d = h.shape[1]!, pos = a.neurons!.position;
    expect(a.neurons!.layer).to.equal(3);
    expect(a.neurons!.top).to.deep.equal(topNeurons(h.data.subarray(pos * d, (pos + 1) * d), 20));
    expect([a.hist!.name, a.hist!.values]).to.deep.equal(['blocks.3.hook_resid_post', r.data]);
    const pca = await engine.pca(trace, { hooks: ['blocks.2.hook_resid_post'], components: 2 });
    expect(e.layers).to.deep.equal([2]);
    expect(e.points).to.deep.equal(pca.points);
    app.doc!.setSetting(idOf(act), 'layer', 1);
    app.doc!.setSetting(idOf(emb), 'layer', 'all');
    await app.idle();
  });

  it('the heads view\'s statistics are the engine\'s summary of that layer, computed on the page; the overview fetches the summary of every layer', async () => {
    const engine = new Engine({ resolveSource: resolveModelSource });
    const info = await engine.load({ kind: 'local', paths: [MODEL] }, { backend: 'cpu' });
    const trace = await engine.run({ tokens, capture: ['blocks.1.attn.hook_pattern'], summary: { attention: {} } });
    const want = (await engine.attentionSummary(trace))!;
    const L = info.config.nLayers, H = info.config.nHeads, B = want.size;
    const el = cellEl(app, 'attention')!;
    const id = (el as unknown as { cell: { id: string } }).cell.id;
    const out = () => el.state!.output as { summary: { nLayers: number; firstLayer?: number; size: number; thumbs: Float32Array; entropy: Float32Array; first: Float32Array; prev: Float32Array; induction?: Float32Array } };
    app.doc!.setSetting(id, 'view', undefined);   // heads
    app.doc!.setSetting(id, 'sort', 'entropy');
    await app.idle();
    await el.updateComplete;
    const one = out().summary;
    expect([one.firstLayer, one.nLayers, one.size]).to.deep.equal([1, 1, B]);
    const layer1 = (a: Float32Array, per: number) => a.subarray(per, 2 * per);
    expect(one.thumbs, 'thumbnails').to.deep.equal(layer1(want.thumbs, H * B * B));
    for (const k of ['entropy', 'first', 'prev', 'induction'] as const) expect(one[k], k).to.deep.equal(layer1(want[k], H));
    // drawn under each tile
    const root = el.shadowRoot!;
    const drawn = [...root.querySelectorAll<SVGTextElement>('text.stat[data-stat=entropy]')];
    expect(drawn.length).to.equal(H);
    expect(drawn.map((t) => Number(t.dataset['v']))).to.deep.equal(drawn.map((t) => sig4(want.entropy[H + Number(t.dataset['h'])]!)));
    // the overview: the every-layer summary, from the worker
    app.doc!.setSetting(id, 'view', 'overview');
    await app.idle();
    await el.updateComplete;
    const all = out().summary;
    expect([all.firstLayer ?? 0, all.nLayers]).to.deep.equal([0, L]);
    expect(all.thumbs).to.deep.equal(want.thumbs);
    expect(root.querySelector('canvas[data-key^="opx|"]'), 'the overview draws').to.not.equal(null);
    app.doc!.setSetting(id, 'view', 'heatmap');
    app.doc!.setSetting(id, 'sort', undefined);
    await app.idle();
  });
  it('a cell whose own capture the engine would refuse (a hook that does not exist) fails alone: the other cells of the prompt still compute', async () => {
    const act = cellEl(app, 'activations')!;
    const id = (act as unknown as { cell: { id: string } }).cell.id;
    app.doc!.setSetting(id, 'hook', 'blocks.99.hook_resid_post');
    // and a prompt edit, so that every cell of the prompt asks for a new run
    const promptEl = app.shadowRoot!.querySelector<HTMLElement & { cell: { id: string; text?: string } }>('glassbox-prompt')!;
    const ta = promptEl.shadowRoot!.querySelector('textarea')!;
    ta.value += ' and';
    ta.dispatchEvent(new Event('input', { bubbles: true, composed: true }));
    await until(() => act.state?.status === 'error' && KINDS.every((k) => k === 'activations' || cellEl(app, k)?.state?.status === 'done' || cellEl(app, k)?.state?.status === 'error'), 'the cells settled');
    await app.idle();
    expect(String(act.state!.error)).to.match(/capture: there is no hook named "blocks\.99\.hook_resid_post"/);
    for (const k of KINDS.filter((x) => x !== 'activations')) expect(cellEl(app, k)!.state!.status, `${k}: ${String(cellEl(app, k)!.state!.error)}`).to.equal('done');
    app.doc!.setSetting(id, 'hook', undefined);
    await app.idle();
    await until(() => act.state?.status === 'done', 'the activations cell again');
  });
});
