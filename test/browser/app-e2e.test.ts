// The app end to end in Chromium: stories260K from /models/local/, the model cell, tokens that
// follow typing, a "reload" (a new element over the same IndexedDB and localStorage) that brings
// the notebook back exactly, a share link opened read-only, and a hostile notebook that runs
// nothing.
import { expect } from 'chai';
import { emulateMedia, setViewport } from '@web/test-runner-commands';
import '../../src/app/app.ts';
import type { GlassboxApp } from '../../src/app/app.ts';
import { shareLink } from '../../src/notebook/share.ts';
import { Engine } from '../../src/engine/api.ts';
import { resolveModelSource } from '../../src/worker/loading/index.ts';
import { gpuOrSkip } from '../support/gpu.ts';
import { listCached } from '../../src/worker/loading/cache.ts';
import { until } from '../support/until.ts';

const MODEL = '?model=/models/local/tinystories-260k/stories260K.gguf&backend=cpu';


function mount(opts: { search?: string; hash?: string; slot: string }): GlassboxApp {
  const el = document.createElement('glassbox-app') as GlassboxApp;
  el.search = opts.search ?? '';
  el.hash = opts.hash ?? '';
  el.autosaveId = opts.slot;
  document.body.append(el);
  return el;
}

/** The element of the first cell of `kind`, inside the app's shadow root. */
function cellEl(app: GlassboxApp, kind: string): HTMLElement | null {
  return app.shadowRoot!.querySelector<HTMLElement>(`section[data-kind=${kind}] glassbox-${kind}`);
}

function layersShown(app: GlassboxApp): string | null {
  const card = cellEl(app, 'model')?.shadowRoot?.querySelector('[data-testid=layers] b');
  return card?.textContent ?? null;
}

function tokenIds(app: GlassboxApp): string[] {
  const chips = cellEl(app, 'prompt')?.shadowRoot?.querySelectorAll<HTMLElement>('[data-testid=tokens] .tok') ?? [];
  return [...chips].map((c) => c.dataset['id']!);
}

async function typeInto(app: GlassboxApp, text: string): Promise<void> {
  const ta = await until(() => cellEl(app, 'prompt')?.shadowRoot?.querySelector('textarea'), 'the prompt text area');
  ta.value = text;
  ta.dispatchEvent(new Event('input', { bubbles: true, composed: true }));
}

describe('<glassbox-app> end to end', function () {
  this.timeout(90000);
  const slot = `e2e-${Date.now()}`;

  before(async () => {
    const link = Object.assign(document.createElement('link'), { rel: 'stylesheet', href: '/src/app/style.css' });
    document.head.append(link);
    await new Promise((r) => { link.onload = r; link.onerror = r; });
  });
  afterEach(() => { document.querySelectorAll('glassbox-app').forEach((e) => e.remove()); });

  it('loads stories260K: the model cell shows 5 layers and the prompt its tokens, which follow typing', async () => {
    const app = mount({ search: MODEL, slot });
    await until(() => layersShown(app) === '5', 'the model cell to show 5 layers');
    const before = await until(() => { const t = tokenIds(app); return t.length > 3 ? t : null; }, 'the tokens');
    expect(before[0]).to.equal('1');                                  // BOS first
    const bos = cellEl(app, 'prompt')!.shadowRoot!.querySelector('.tok.special')!;
    expect(bos.textContent).to.contain('BOS');
    expect(bos.getAttribute('title')).to.match(/id 1 · piece/);
    await typeInto(app, 'Once upon a time there was a big dog named Max');
    const after = await until(() => { const t = tokenIds(app); return t.length > before.length + 2 ? t : null; }, 'the tokens of the new text');
    expect(after.slice(0, 3)).to.deep.equal(before.slice(0, 3));       // "Once upon a" is the same prefix
    // The edit is in the Markdown: the text is the whole state.
    expect(app.doc!.text).to.contain('```prompt\nOnce upon a time there was a big dog named Max\n```');
    expect(app.shadowRoot!.querySelector('[data-testid=backend]')!.textContent!.trim()).to.equal('CPU');

    // The model cell's block picker writes its value into the notebook and redraws that block.
    const modelEl = cellEl(app, 'model')! as HTMLElement & { updateComplete: Promise<unknown> };
    const sel = modelEl.shadowRoot!.querySelector('select')!;
    sel.value = '3';
    sel.dispatchEvent(new Event('change'));
    await app.updateComplete;
    await modelEl.updateComplete;
    expect(app.doc!.text).to.contain('```model\nblock: 3\n```');
    expect([...modelEl.shadowRoot!.querySelectorAll('svg text')].map((t) => t.textContent)).to.include('block 3 of 5');

    // A fast run of edits ends with the tokens of the last text (stale runs are dropped), the same
    // ids the engine gives in this thread.
    const last = 'Lily and Ben went to the park';
    for (const t of ['L', 'Li', 'Lily and', 'Lily and Be', last]) await typeInto(app, t);
    await app.idle();
    await app.updateComplete;
    await (cellEl(app, 'prompt') as HTMLElement & { updateComplete: Promise<unknown> }).updateComplete;
    const engine = new Engine({ resolveSource: resolveModelSource });
    await engine.load({ kind: 'local', paths: ['tinystories-260k/stories260K.gguf'] }, { backend: 'cpu' });
    const expected = (await engine.tokenize(last)).ids.map(String);
    expect(tokenIds(app)).to.deep.equal(expected);
  });

  it('persists: after an edit and a "reload" the notebook is back exactly', async () => {
    const app = mount({ search: MODEL, slot: `${slot}-persist` });
    await until(() => tokenIds(app).length > 0, 'the tokens');
    await typeInto(app, 'The cat sat\non the mat. ');
    app.doc!.insertCell(app.doc!.notebook.cells.length, 'markdown', { text: '## Added by the test\n\nwith *emphasis*' });
    const text = app.doc!.text;
    await app.flush();
    app.remove();
    const again = mount({ search: MODEL, slot: `${slot}-persist` });
    await again.ready;
    expect(again.doc!.text).to.equal(text);
    await until(() => tokenIds(again).length > 5, 'the restored prompt\'s tokens');
    const prose = [...again.shadowRoot!.querySelectorAll('glassbox-markdown')].map((m) => m.shadowRoot!.innerHTML).join('');
    expect(prose).to.contain('<em>emphasis</em>');
  });

  it('shares: a link opened in a fresh app shows the same notebook, read-only, with "make a copy"', async () => {
    const app = mount({ search: MODEL, slot: `${slot}-share` });
    await app.ready;
    await typeInto(app, 'A shared prompt');
    const text = app.doc!.text;
    const link = await shareLink(text, 'http://localhost/');
    app.remove();
    const fresh = mount({ hash: link.slice(link.indexOf('#')), slot: `${slot}-share-fresh` });
    await fresh.ready;
    expect(fresh.doc!.text).to.equal(text);
    expect(fresh.doc!.readonly).to.equal(true);
    const root = fresh.shadowRoot!;
    // The shared notebook names a model (front matter); it is not loaded without asking.
    expect(root.querySelector('[role=alertdialog]')?.textContent).to.contain('stories260K');
    const ta = await until(() => cellEl(fresh, 'prompt')?.shadowRoot?.querySelector('textarea'), 'the prompt');
    expect(ta.readOnly).to.equal(true);
    const copy = [...root.querySelectorAll('button')].find((b) => b.textContent!.includes('Make a copy'))!;
    copy.click();
    await fresh.updateComplete;
    expect(fresh.doc!.readonly).to.equal(false);
    expect(fresh.doc!.text).to.equal(text);
  });

  it('runs nothing from a hostile notebook and does not fetch the model it names', async () => {
    const hits: string[] = [];
    (window as unknown as { __gbHit: (n: string) => void }).__gbHit = (n) => hits.push(String(n));
    const app = mount({ search: '?notebook=/test/fixtures/notebooks/hostile.md', slot: `${slot}-hostile` });
    await app.ready;
    await until(() => app.shadowRoot!.querySelectorAll('glassbox-markdown').length > 0, 'the prose');
    await new Promise((r) => setTimeout(r, 800));                     // let images fail, handlers fire
    for (const el of app.shadowRoot!.querySelectorAll('glassbox-markdown')) {
      // A safe link that survives sanitizing opens a new tab when clicked (target=_blank), which
      // would hide this test page (no more animation frames for the next test files): default
      // actions are cancelled, while any handler that was left would still run.
      el.shadowRoot!.addEventListener('click', (e) => e.preventDefault(), true);
      for (const n of el.shadowRoot!.querySelectorAll('*')) {
        n.dispatchEvent(new MouseEvent('mouseover', { bubbles: true }));
        n.dispatchEvent(new MouseEvent('click', { bubbles: true }));
        n.dispatchEvent(new FocusEvent('focus'));
      }
      expect(el.shadowRoot!.querySelector('script, iframe, object, embed')).to.equal(null);
    }
    expect(hits).to.deep.equal([]);
    const ask = app.shadowRoot!.querySelector('[role=alertdialog]');
    expect(ask?.textContent).to.contain('https://evil.example/model.gguf');
    expect(performance.getEntriesByType('resource').some((r) => r.name.includes('evil.example'))).to.equal(false);
    app.remove();
    expect(document.visibilityState, 'the test page is still the visible tab').to.equal('visible');
  });

  it('leaving the page ends the engine worker; back from the back-forward cache, the model loads again and every cell recomputes', async () => {
    const workers: Worker[] = [];
    const terminated = new Set<Worker>();
    const app = mount({ search: MODEL, slot: `${slot}-bfcache` });
    app.createWorker = () => {
      const w = new Worker(new URL('../../src/worker/worker.ts', import.meta.url), { type: 'module' });
      const end = w.terminate.bind(w);
      w.terminate = () => { terminated.add(w); end(); };
      workers.push(w);
      return w;
    };
    await until(() => tokenIds(app).length > 3, 'the tokens');
    await app.idle();
    const runs = (id: string) => (app as unknown as { states: Map<string, { runs: number; status: string }> }).states.get(id);
    const ids = [...app.shadowRoot!.querySelectorAll<HTMLElement>('section[data-cell]')].filter((s) => s.dataset['kind'] !== 'markdown').map((s) => s.dataset['cell']!);
    expect(ids.length).to.be.greaterThan(2);
    const before = new Map(ids.map((id) => [id, runs(id)?.runs ?? 0]));
    const model = app.model;
    expect(workers.length).to.equal(1);

    window.dispatchEvent(new PageTransitionEvent('pagehide', { persisted: true }));
    expect(terminated.has(workers[0]!), 'the worker ended when the page was hidden').to.equal(true);
    // a load asked while hidden (an async start finishing late) starts no worker; it waits for the show
    const internals = app as unknown as { lastAsked: unknown; loadModel(source: unknown, label: string): Promise<void> };
    const asked = internals.lastAsked as { source: unknown; label: string };
    await internals.loadModel(asked.source, asked.label);
    expect(workers.length, 'no worker while hidden').to.equal(1);
    window.dispatchEvent(new PageTransitionEvent('pageshow', { persisted: true }));
    await until(() => app.model && app.model !== model ? app.model : null, 'the model loaded again');
    await app.idle();
    expect(workers.length).to.equal(2);
    expect(terminated.has(workers[1]!)).to.equal(false);
    for (const id of ids) {
      const st = runs(id)!;
      expect(st, `cell ${id} has a state`).to.not.equal(undefined);
      expect(st.status, `cell ${id}`).to.equal('done');
      expect(st.runs, `cell ${id} recomputed`).to.be.greaterThan(before.get(id)!);
    }
    expect(tokenIds(app).length).to.be.greaterThan(3);

    // a page that is unloaded for good ends its worker too, and loads nothing on the way out
    window.dispatchEvent(new PageTransitionEvent('pagehide', { persisted: false }));
    expect(terminated.has(workers[1]!)).to.equal(true);
    window.dispatchEvent(new PageTransitionEvent('pageshow', { persisted: false }));
    await new Promise((r) => setTimeout(r, 200));
    expect(workers.length).to.equal(2);
  });

  it('a download shows its progress (received, total, rate), then the cached list offers delete', async () => {
    const url = `/test-files/stories260K.gguf?slow=1&key=app-${Date.now()}`;
    const app = mount({ search: `?model=${encodeURIComponent(url)}&backend=cpu`, slot: `${slot}-download` });
    const seen = new Set<string>();
    let bar: HTMLProgressElement | null = null;
    await until(() => {
      const t = app.shadowRoot!.querySelector('.loading span')?.textContent;
      if (t) seen.add(t);
      bar ??= app.shadowRoot!.querySelector<HTMLProgressElement>('.loading progress[max]');
      return layersShown(app) === '5';
    }, 'the downloaded model', 60000);
    const words = [...seen].find((t) => /stories260K\.gguf: .* of 1\.1 MiB · .*\/s/.test(t));
    expect(words, [...seen].join(' | ')).to.be.a('string');
    expect(bar).to.not.equal(null);
    // The picker lists the file as cached; Delete removes it from the browser's cache.
    app.shadowRoot!.querySelector<HTMLButtonElement>('[data-testid=model-button]')!.click();
    await app.updateComplete;
    const picker = app.shadowRoot!.querySelector('glassbox-model-picker')!;
    const del = await until(() => [...picker.shadowRoot!.querySelectorAll<HTMLButtonElement>('button')]
      .find((b) => b.getAttribute('aria-label')?.startsWith('Delete stories260K.gguf')), 'the cached file');
    const cached = async () => (await listCached()).filter((f) => f.url.includes(url)).length;
    expect(await cached()).to.equal(1);
    del.click();
    for (let i = 0; i < 100 && (await cached()) > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await cached()).to.equal(0);
  });

  it('?backend=webgpu runs the model on the GPU and says so in the toolbar and the model cell', async function () {
    await gpuOrSkip(this);
    const app = mount({ search: MODEL.replace('backend=cpu', 'backend=webgpu'), slot: `${slot}-gpu` });
    await until(() => layersShown(app) === '5', 'the model cell');
    expect(app.model!.backend).to.equal('webgpu');
    expect(app.shadowRoot!.querySelector('[data-testid=backend]')!.textContent!.trim()).to.equal('WebGPU');
    const reason = cellEl(app, 'model')!.shadowRoot!.querySelector('[data-testid=backend-reason]')!.textContent!;
    expect(reason).to.contain('GPU');
    await until(() => tokenIds(app).length > 3, 'the tokens');
  });

  it('draws in both themes (screenshots: test/e2e/built-app.test.mjs)', async () => {
    await setViewport({ width: 1100, height: 900 });
    for (const scheme of ['light', 'dark'] as const) {
      await emulateMedia({ colorScheme: scheme });
      const app = mount({ search: MODEL, slot: `${slot}-theme` });
      await until(() => layersShown(app) === '5', 'the model cell');
      const bg = getComputedStyle(document.documentElement).backgroundColor;
      expect(bg).to.equal(scheme === 'dark' ? 'rgb(21, 21, 23)' : 'rgb(251, 250, 247)');
      app.remove();
    }
    await emulateMedia({ colorScheme: 'light' });
  });
});
