// The ablate cell in the app on stories260K (issue 12): it renders, and the numbers it draws are
// an independent in-thread engine's: the clean and the ablated probabilities of every token row
// (softmax of the plain run's and of the run with the same edits written by hand), and the KL.
import { expect } from 'chai';
import '../../src/app/app.ts';
import type { GlassboxApp } from '../../src/app/app.ts';
import { Engine } from '../../src/engine/api.ts';
import { resolveModelSource } from '../../src/worker/loading/index.ts';
import { klDivergence, logSoftmax } from '../../cells/plot/ablate.ts';
import type { FigureExport } from '../../cells/plot/figure.ts';
import { until } from '../support/until.ts';

const MODEL = '/models/local/tinystories-260k/stories260K.gguf';
type CellEl = HTMLElement & { exportFigure(): FigureExport | null; updateComplete: Promise<unknown>; state: { status: string; output: unknown; error: unknown } | null };
const sig4 = (v: number) => Number(v.toPrecision(4));

describe('ablate cell in the app (stories260K)', function () {
  this.timeout(180000);
  let app: GlassboxApp;
  const el = () => app.shadowRoot!.querySelector<CellEl>('section[data-kind="ablate"] glassbox-ablate');
  const attribution = () => app.shadowRoot!.querySelector<CellEl>('section[data-kind="attribution"] glassbox-attribution');

  before(async () => {
    app = document.createElement('glassbox-app') as GlassboxApp;
    app.search = `?notebook=/test/fixtures/notebooks/ablate.md&model=${MODEL}&backend=cpu`;
    app.hash = '';
    app.autosaveId = `ablate-${Date.now()}`;
    document.body.append(app);
    await app.ready;
    await until(() => app.model, 'the model');
    await until(() => ['done', 'error'].includes(el()?.state?.status ?? ''), 'the ablate cell computed');
    await until(() => ['done', 'error'].includes(attribution()?.state?.status ?? ''), 'the attribution cell computed');
    expect(el()!.state!.status, String(el()!.state!.error)).to.equal('done');
    await el()!.updateComplete;
  });
  after(() => app.remove());

  it('draws the engine\'s clean and ablated probabilities and KL', async () => {
    const tokens = (app.shadowRoot!.querySelector<CellEl>('glassbox-prompt')!.state!.output as { ids: number[] }).ids;
    const engine = new Engine({ resolveSource: resolveModelSource });
    await engine.load({ kind: 'local', paths: [MODEL] }, { backend: 'cpu' });
    const last = tokens.length - 1;
    const clean = (await engine.logits(await engine.run({ tokens, slot: 'clean' }), { position: last })).data;
    const ablated = (await engine.logits(await engine.run({ tokens, slot: 'abl', edits: [
      { hook: 'blocks.0.attn.hook_z', op: 'zero', heads: [5] },
      { hook: 'blocks.1.attn.hook_z', op: 'zero', heads: [3] },
      { hook: 'blocks.2.ffn.hook_act', op: 'zero', neurons: [17] },
    ] }), { position: last })).data;
    const lc = logSoftmax(clean), la = logSoftmax(ablated);
    const root = el()!.shadowRoot!;
    expect(root.querySelector('svg[role="img"]')).to.not.equal(null);
    expect(root.querySelector('.error')).to.equal(null);
    const rows = root.querySelectorAll<SVGGElement>('g.tok[data-id]');
    expect(rows.length).to.be.at.least(12);
    for (const g of rows) {
      const id = Number(g.dataset['id']);
      expect(Number(g.querySelector<SVGElement>('rect.clean')!.dataset['v']), `clean p of ${id}`).to.equal(sig4(Math.exp(lc[id]!)));
      expect(Number(g.querySelector<SVGElement>('rect.ablated')!.dataset['v']), `ablated p of ${id}`).to.equal(sig4(Math.exp(la[id]!)));
    }
    expect(Number(root.querySelector<SVGElement>('svg [data-kl]')!.dataset['kl'])).to.equal(sig4(klDivergence(clean, ablated)));
    expect(klDivergence(clean, ablated)).to.be.above(0);
    const f = el()!.exportFigure()!;
    expect(f.rows.length).to.be.at.least(12);
  });

  it('the attribution cell draws the engine\'s direct logit attribution, which sums to the logit', async () => {
    const a = attribution()!;
    expect(a.state!.status, String(a.state!.error)).to.equal('done');
    await a.updateComplete;
    const tokens = (app.shadowRoot!.querySelector<CellEl>('glassbox-prompt')!.state!.output as { ids: number[] }).ids;
    const engine = new Engine({ resolveSource: resolveModelSource });
    await engine.load({ kind: 'local', paths: [MODEL] }, { backend: 'cpu' });
    const trace = await engine.run({ tokens, slot: 'dla', capture: ['hook_embed', 'blocks.*.attn.hook_z', 'blocks.*.hook_ffn_out', 'final_norm.hook_scale'] });
    const want = await engine.attribution(trace, { position: tokens.length - 1 });
    const root = a.shadowRoot!;
    expect(root.querySelector('.error')).to.equal(null);
    let checked = 0;
    for (const m of root.querySelectorAll<SVGElement>('[data-l][data-h][data-v]')) {
      const l = Number(m.dataset['l']), h = Number(m.dataset['h']);
      expect(Number(m.dataset['v']), `head ${l}.${h}`).to.be.closeTo(want.heads[l * want.nHeads + h]!, 1e-3 * (1 + Math.abs(want.heads[l * want.nHeads + h]!)));
      checked++;
    }
    expect(checked).to.equal(want.nLayers * want.nHeads);
    const sum = want.embed + want.heads.reduce((s, v) => s + v, 0) + want.ffn.reduce((s, v) => s + v, 0);
    expect(sum).to.be.closeTo(want.logit, 1e-4);
  });
});
