// The sampling and generate cells in the app, on stories260K (issue 9): the sampling cell's
// stage-by-stage numbers (data-v of every drawn cell) equal the engine's runChain on the same
// logits, which equal an independent in-thread engine's; stepping from the generate cell appends
// runChain's token for the position's draw; play runs to N and grows the text; pause stops a
// play; clicking an alternative forks a branch and makes it current; a next-token cell reading
// the generate cell sees the generated tokens; a sampler change redraws without running the model.
import { expect } from 'chai';
import '../../src/app/app.ts';
import type { GlassboxApp } from '../../src/app/app.ts';
import { Engine } from '../../src/engine/api.ts';
import { resolveModelSource } from '../../src/worker/loading/index.ts';
import { resolveOptions, runChain, type StageReport } from '../../src/engine/sampling/index.ts';
import { drawsAt, samplerSettings } from '../../cells/plot/sampling.ts';
import { decodeTree } from '../../src/app/generation.ts';
import type { GenerateOutput } from '../../cells/plot/generate.ts';
import { until } from '../support/until.ts';

const MODEL = '/models/local/tinystories-260k/stories260K.gguf';


type CellEl = HTMLElement & { updateComplete: Promise<unknown>; cell: { id: string; settings: Record<string, unknown> }; state: { status: string; output: unknown; error: unknown } | null };
const cellEl = (app: GlassboxApp, kind: string) => app.shadowRoot!.querySelector<CellEl>(`section[data-kind="${kind}"] glassbox-${kind}`)!;
const sig4 = (v: number) => Number(v.toPrecision(4));

describe('sampling and generate cells in the app (stories260K)', function () {
  this.timeout(240000);
  let app: GlassboxApp;
  let engine: Engine;
  let promptIds: number[];

  const gen = () => cellEl(app, 'generate');
  const genOut = () => gen().state?.output as GenerateOutput | undefined;
  const button = (action: string) => gen().shadowRoot!.querySelector<HTMLButtonElement>(`button[data-action="${action}"]`)!;
  const generated = () => (genOut()?.ids.length ?? 0) - promptIds.length;
  const settled = async () => { await app.idle(); await until(() => gen().state?.status === 'done' && !app.generation.busy(gen().cell.id), 'the generate cell settled'); };

  before(async () => {
    app = document.createElement('glassbox-app') as GlassboxApp;
    app.search = `?notebook=/test/fixtures/notebooks/generate.md&model=${MODEL}&backend=cpu`;
    app.hash = '';
    app.autosaveId = `generate-${Date.now()}`;
    document.body.append(app);
    await app.ready;
    await until(() => app.model, 'the model');
    for (const k of ['sampling', 'generate', 'next-token']) {
      await until(() => cellEl(app, k)?.state?.status === 'done' || cellEl(app, k)?.state?.status === 'error', `${k} computed`);
      expect(cellEl(app, k).state!.status, `${k}: ${String(cellEl(app, k).state!.error)}`).to.equal('done');
    }
    promptIds = (app.shadowRoot!.querySelector<CellEl>('glassbox-prompt')!.state!.output as { ids: number[] }).ids;
    engine = new Engine({ resolveSource: resolveModelSource });
    await engine.load({ kind: 'local', paths: [MODEL] }, { backend: 'cpu', threads: 1 });
  });
  after(() => app.remove());

  const logitsOf = async (tokens: number[]) => (await engine.logits(await engine.run({ tokens, slot: 'check' }))).data;

  it('the sampling cell\'s stage-by-stage numbers equal runChain on the engine\'s logits', async () => {
    const el = cellEl(app, 'sampling');
    await el.updateComplete;
    const out = el.state!.output as { logits: Float32Array; history: number[] };
    const independent = await logitsOf(promptIds);
    expect(out.logits.length).to.equal(independent.length);
    for (let i = 0; i < independent.length; i++) expect(out.logits[i]).to.be.closeTo(independent[i]!, 1e-4);
    const s = samplerSettings(el.cell.settings);
    const r = runChain(out.logits, resolveOptions(s.options), { history: promptIds, random: drawsAt(s.seed, promptIds.length) });
    const reports: StageReport[] = [r.input, ...r.stages];
    const root = el.shadowRoot!;
    let checked = 0;
    for (const mark of root.querySelectorAll<SVGElement>('g.cell[data-stage][data-id][data-v]')) {
      const rep = reports[Number(mark.dataset['s'])]!;
      expect(rep.stage).to.equal(mark.dataset['stage']);
      const k = [...rep.ids].indexOf(Number(mark.dataset['id']));
      expect(mark.dataset['state'] === 'kept', `${rep.stage} ${mark.dataset['id']}`).to.equal(k >= 0);
      expect(Number(mark.dataset['v'])).to.equal(k >= 0 ? sig4(rep.probs[k]!) : 0);
      checked++;
    }
    expect(checked).to.be.greaterThan(20);
    for (const head of root.querySelectorAll<SVGElement>('g.head[data-stage]')) {
      const rep = reports[Number(head.dataset['s'])]!;
      expect(Number(head.dataset['kept'])).to.equal(rep.ids.length);
      expect(Number(head.dataset['entropy'])).to.equal(sig4(rep.entropy));
    }
    const draw = root.querySelector<SVGElement>('[data-testid=draw]')!;
    expect(Number(draw.dataset['token'])).to.equal(r.token);
    expect(Number(draw.dataset['u'])).to.equal(sig4(r.random.draw));
    expect(Number(draw.dataset['pBefore'])).to.equal(sig4(r.pBefore));
    expect(Number(draw.dataset['pAfter'])).to.equal(sig4(r.pAfter));
  });

  it('a sampler change redraws the sampling cell without running the model', async () => {
    const el = cellEl(app, 'sampling');
    const before = app.runs.runs;
    app.doc!.setSetting(el.cell.id, 'order', ['temperature', 'top_k', 'min_p']);
    app.doc!.setSetting(el.cell.id, 'top_k', 3);
    await app.idle();
    await el.updateComplete;
    expect(app.runs.runs).to.equal(before);
    const stages = [...el.shadowRoot!.querySelectorAll<SVGElement>('g.head[data-stage]')].map((h) => h.dataset['stage']);
    expect(stages).to.deep.equal(['input', 'temperature', 'top_k', 'min_p']);
    expect(el.shadowRoot!.querySelectorAll('g.cell[data-stage="top_k"][data-state="kept"]').length).to.equal(3);
    // the order buttons: moving top_k earlier writes the list
    el.shadowRoot!.querySelector<HTMLButtonElement>('button[data-move="top_k:up"]')!.click();
    expect(app.doc!.cell(el.cell.id)!.settings['order']).to.deep.equal(['top_k', 'temperature', 'min_p']);
  });

  it('Step appends runChain\'s token for the position\'s own draw', async () => {
    expect(generated()).to.equal(0);
    button('step').click();
    await until(() => generated() === 1, 'one generated token');
    await settled();
    const s = samplerSettings(gen().cell.settings);
    const r = runChain(await logitsOf(promptIds), resolveOptions(s.options), { history: promptIds, random: drawsAt(s.seed, promptIds.length) });
    expect(genOut()!.ids.at(-1)).to.equal(r.token);
    expect(app.doc!.text).to.match(/branches: "/);
    const span = gen().shadowRoot!.querySelector<HTMLElement>('.gen[data-step="0"]')!;
    expect(Number(span.dataset['v'])).to.equal(sig4(r.pBefore));
  });

  it('Play runs to N tokens and the next-token cell reading the generate cell sees them', async () => {
    button('play').click();
    await until(() => gen().shadowRoot!.querySelector('button[data-action="pause"]') || generated() >= 7, 'playing');
    await until(() => !app.generation.busy(gen().cell.id), 'play finished');
    await settled();
    expect(generated()).to.equal(7);
    const tree = decodeTree(gen().cell.settings['branches'], app.model!.config.vocabSize);
    expect(tree.get('main').stopped).to.equal('length');
    // every token is runChain's on independent logits of its prefix
    const s = samplerSettings(gen().cell.settings);
    const ids = genOut()!.ids;
    for (let p = promptIds.length; p < ids.length; p += 3) {
      const r = runChain(await logitsOf(ids.slice(0, p)), resolveOptions(s.options), { history: ids.slice(0, p), random: drawsAt(s.seed, p) });
      expect(ids[p], `position ${p}`).to.equal(r.token);
    }
    const nt = cellEl(app, 'next-token');
    await until(() => nt.state?.status === 'done' && (nt.state.output as { labels: string[] }).labels.length === ids.length, 'next-token over the generated tokens');
  });

  it('Pause stops a play', async () => {
    app.doc!.setSetting(gen().cell.id, 'max_tokens', 200);
    await app.idle();
    const start = generated();
    button('play').click();
    // Pause replaces Play with the play's next render; a play of 200 tokens can end before a busy
    // page draws its second token, so Pause is pressed as soon as it shows
    const pause = await until(() => gen().shadowRoot!.querySelector<HTMLButtonElement>('button[data-action="pause"]'), 'the Pause button');
    pause.click();
    await until(() => !app.generation.busy(gen().cell.id), 'play stopped');
    await settled();
    const n = generated();
    expect(n).to.be.lessThan(start + 200);
    await new Promise((r) => setTimeout(r, 300));
    expect(generated()).to.equal(n);
    app.doc!.setSetting(gen().cell.id, 'max_tokens', undefined);
    await settled();
  });

  it('clicking an alternative forks a branch there and makes it current; the browser lists it', async () => {
    const before = genOut()!.ids.slice();
    const span = gen().shadowRoot!.querySelector<HTMLElement>('.gen[data-step="2"]')!;
    span.dispatchEvent(new MouseEvent('mouseenter'));
    await gen().updateComplete;
    const alt = gen().shadowRoot!.querySelector<HTMLButtonElement>('[data-testid=alternatives] button[data-alt]:not([disabled])')!;
    const token = Number(alt.dataset['alt']);
    alt.click();
    await until(() => gen().cell.settings['branch'] === 'b1', 'the fork is current');
    await settled();
    const ids = genOut()!.ids;
    expect(ids.slice(0, promptIds.length + 2)).to.deep.equal(before.slice(0, promptIds.length + 2));
    expect(ids[promptIds.length + 2]).to.equal(token);
    expect(ids.length).to.equal(promptIds.length + 3);
    // stepping the fork continues it
    button('step').click();
    await until(() => generated() === 4, 'a token on the fork');
    await settled();
    const rows = [...gen().shadowRoot!.querySelectorAll<HTMLElement>('.tree li[data-branch]')].map((li) => li.dataset['branch']);
    expect(rows).to.deep.equal(['main', 'b1']);
    // compare, then select main again, then delete the fork
    gen().shadowRoot!.querySelector<HTMLButtonElement>('button[data-compare="main"]')!.click();
    const cmp = await until(() => gen().shadowRoot!.querySelector<HTMLElement>('[data-testid=compare]'), 'the comparison');
    expect(cmp.querySelector('[data-side=left]')!.textContent).to.contain('b1');
    gen().shadowRoot!.querySelector<HTMLButtonElement>('.tree li[data-branch="main"] button.name')!.click();
    await until(() => gen().cell.settings['branch'] === undefined, 'main is current');
    await settled();
    expect(genOut()!.ids).to.deep.equal(before);
    gen().shadowRoot!.querySelector<HTMLButtonElement>('button[data-delete="b1"]')!.click();
    await until(() => !String(gen().cell.settings['branches']).includes('"b1"'), 'b1 deleted');
  });
});
