// The steer cell in the app on stories260K (issue 12): it renders, and its two generations are
// an independent in-thread engine's greedy loops — without edits, and with the mean-difference
// vector (computed here from the engine's activations) added at layers 1-3 × 0.5. A control
// vector of the wrong dimension loaded through the file input is refused in the .error box,
// naming the file and tensor; the cell's own vector saved as GGUF and loaded back through the
// file input keeps the notebook self-contained (base64 in `vector`) and generates the same tokens.
import { expect } from 'chai';
import '../../src/app/app.ts';
import type { GlassboxApp } from '../../src/app/app.ts';
import { Engine } from '../../src/engine/api.ts';
import type { Edit } from '../../src/engine/edits.ts';
import { meanDifference } from '../../src/engine/edits.ts';
import { writeControlVector } from '../../src/engine/control-vector.ts';
import { resolveModelSource } from '../../src/worker/loading/index.ts';
import { vectorFile } from '../../src/app/steer.ts';
import type { SteerOutput } from '../../cells/plot/steer.ts';
import type { FigureExport } from '../../cells/plot/figure.ts';
import { until } from '../support/until.ts';

const MODEL = '/models/local/tinystories-260k/stories260K.gguf';
type CellEl = HTMLElement & {
  exportFigure(): FigureExport | null; loadFile(f: File): Promise<void>; fileError: string | null;
  updateComplete: Promise<unknown>; state: { status: string; output: unknown; error: unknown; runs: number } | null;
};

describe('steer cell in the app (stories260K)', function () {
  this.timeout(180000);
  let app: GlassboxApp;
  let engine: Engine;
  const el = () => app.shadowRoot!.querySelector<CellEl>('section[data-kind="steer"] glassbox-steer');
  const chipIds = (run: string) => [...el()!.shadowRoot!.querySelectorAll<SVGGElement>(`g.chip[data-run="${run}"]`)].map((g) => Number(g.dataset['id']));

  /** The mean over positions 1.. (BOS left out) of hook_resid_post at `layer`. */
  async function row(text: string, layer: number): Promise<Float32Array> {
    const ids = (await engine.tokenize(text)).ids;
    const h = await engine.run({ tokens: ids, capture: `blocks.${layer}.hook_resid_post`, slot: 'vec' });
    const x = (await engine.activation(h, `blocks.${layer}.hook_resid_post`)).data, d = x.length / ids.length;
    const out = new Float64Array(d);
    for (let p = 1; p < ids.length; p++) for (let j = 0; j < d; j++) out[j]! += x[p * d + j]!;
    return Float32Array.from(out, (v) => v / (ids.length - 1));
  }

  async function greedy(tokens0: number[], n: number, edits: Edit[] | undefined, slot: string): Promise<number[]> {
    const tokens = [...tokens0], eos = (await engine.info())!.config.eosId;
    for (let i = 0; i < n; i++) {
      const h = await engine.run({ tokens, slot, ...(edits ? { edits } : {}) });
      const r = (await engine.logits(h, {})).data;
      let best = 0;
      for (let j = 1; j < r.length; j++) if (r[j]! > r[best]!) best = j;
      if (best === eos) break;
      tokens.push(best);
    }
    return tokens.slice(tokens0.length);
  }

  before(async () => {
    app = document.createElement('glassbox-app') as GlassboxApp;
    app.search = `?notebook=/test/fixtures/notebooks/steer.md&model=${MODEL}&backend=cpu`;
    app.hash = '';
    app.autosaveId = `steer-${Date.now()}`;
    document.body.append(app);
    await app.ready;
    await until(() => app.model, 'the model');
    await until(() => ['done', 'error'].includes(el()?.state?.status ?? ''), 'the steer cell computed');
    expect(el()!.state!.status, String(el()!.state!.error)).to.equal('done');
    await el()!.updateComplete;
    engine = new Engine({ resolveSource: resolveModelSource });
    await engine.load({ kind: 'local', paths: [MODEL] }, { backend: 'cpu' });
  });
  after(() => app.remove());

  it('draws both generations, equal to an in-thread engine\'s greedy loops with and without the vector', async () => {
    const tokens = (app.shadowRoot!.querySelector<CellEl>('glassbox-prompt')!.state!.output as { ids: number[] }).ids;
    const edits: Edit[] = [];
    for (const l of [1, 2, 3]) {
      const v = meanDifference([await row('Lily was happy and smiled', l)], [await row('Lily was sad and cried', l)]);
      edits.push({ hook: `blocks.${l}.hook_resid_post`, op: 'steer', vector: v, strength: 0.5 });
    }
    const plain = await greedy(tokens, 24, undefined, 'plain');
    const steered = await greedy(tokens, 24, edits, 'steered');
    const root = el()!.shadowRoot!;
    expect(root.querySelector('.error')).to.equal(null);
    expect(root.querySelector('svg[role="img"]')).to.not.equal(null);
    expect(chipIds('plain')).to.deep.equal(plain);
    expect(chipIds('steered')).to.deep.equal(steered);
    expect(steered).to.not.deep.equal(plain);
    // tokens from the first difference on are highlighted, none before
    let k = 0;
    while (plain[k] === steered[k]) k++;
    const diff = [...root.querySelectorAll<SVGGElement>('g.chip[data-run="steered"]')].map((g) => g.classList.contains('diff'));
    expect(diff.indexOf(true)).to.equal(k);
    expect(Number(root.querySelector<HTMLElement>('[data-testid="figure"]')!.dataset['diverge'])).to.equal(k);
    // the norms drawn are the vector's
    for (const m of root.querySelectorAll<SVGElement>('rect.norm.applied')) {
      const l = Number(m.dataset['l']), v = edits[l - 1]!.vector!;
      expect(Number(m.dataset['v'])).to.be.closeTo(Math.hypot(...v), 1e-3 * Math.hypot(...v));
    }
    expect(el()!.exportFigure()!.rows.length).to.equal(24);
  });

  it('refuses a control vector of the wrong dimension in the .error box, naming the file and tensor', async () => {
    const bytes = writeControlVector({ modelHint: 'llama', dModel: 288, directions: new Map([[1, new Float32Array(288).fill(0.5)]]) });
    const input = el()!.shadowRoot!.querySelector<HTMLInputElement>('input[type=file]')!;
    const dt = new DataTransfer();
    dt.items.add(new File([bytes as Uint8Array<ArrayBuffer>], 'big.gguf'));
    input.files = dt.files;
    input.dispatchEvent(new Event('change'));
    const box = await until(() => el()!.shadowRoot!.querySelector<HTMLElement>('.error[role="alert"][data-testid="file-error"]'), 'the error box');
    expect(box.textContent).to.match(/big\.gguf tensor direction\.1: has 288 floats but the model's d_model is 64/);
    expect(app.doc!.text).to.not.match(/vector:/, 'a refused file is not written to the notebook');
  });

  it('a saved vector loaded back through the file input generates the same tokens', async () => {
    const before = el()!.state!.output as SteerOutput;
    const runs = el()!.state!.runs;
    await el()!.loadFile(new File([vectorFile(before) as Uint8Array<ArrayBuffer>], 'happy.gguf'));
    expect(el()!.fileError).to.equal(null);
    await until(() => el()!.state!.runs > runs && el()!.state!.status === 'done', 'the recompute from the file');
    await el()!.updateComplete;
    const after = el()!.state!.output as SteerOutput;
    expect(after.source).to.deep.equal({ kind: 'file', name: 'happy.gguf' });
    expect(after.steered.ids).to.deep.equal(before.steered.ids);
    expect(after.steered.logp).to.deep.equal(before.steered.logp);
    expect(el()!.shadowRoot!.querySelector('[data-testid="from-file"]')!.textContent).to.match(/happy\.gguf/);
    expect(app.doc!.text).to.match(/vector: [A-Za-z0-9+/]+=*\n/);
    expect(app.doc!.text).to.match(/vector_file: happy\.gguf/);
  });

  it('the strength slider writes on release only, then the cell regenerates', async () => {
    const root = el()!.shadowRoot!;
    const range = root.querySelector<HTMLInputElement>('input[type=range]')!;
    const runs = el()!.state!.runs;
    range.value = '1.2';
    range.dispatchEvent(new Event('input'));
    await el()!.updateComplete;
    expect(range.parentElement!.querySelector('output')!.textContent).to.equal('1.2');
    expect(app.doc!.text).to.not.match(/strength: 1\.2/, 'dragging writes nothing');
    expect(el()!.state!.runs).to.equal(runs);
    range.dispatchEvent(new Event('change'));
    expect(app.doc!.text).to.match(/strength: 1\.2/);
    await until(() => el()!.state!.runs > runs && el()!.state!.status === 'done', 'the recompute');
    expect((el()!.state!.output as SteerOutput).strength).to.equal(1.2);
    // clearing the file's vector goes back to the prompts' vector
    root.querySelector<HTMLElement>('[data-testid="from-file"] button')!.click();
    expect(app.doc!.text).to.not.match(/vector:/);
    await until(() => (el()!.state!.output as SteerOutput).source.kind === 'computed' && el()!.state!.status === 'done', 'the prompts\' vector again');
  });
});
