// Faults injected into the running app (issue 11), on stories260K: the engine worker killed
// mid-generation, the WebGPU device lost mid-generation, IndexedDB refusing a write (quota), a
// model download cut halfway, and the page reloaded during autosave (a real reload, in an iframe).
// Each test checks three things: the notebook's Markdown after the fault is the text it had before
// (or, where the fault hit a generation, the text the same generation gives without a fault), the
// user is told what happened and what to do, and the next result equals a fresh engine's.
import { expect } from 'chai';
import '../../src/app/app.ts';
import type { GlassboxApp } from '../../src/app/app.ts';
import { Engine, type ModelInfo } from '../../src/engine/api.ts';
import { Session } from '../../src/engine/session.ts';
import { resolveModelSource } from '../../src/worker/loading/index.ts';
import { listCached } from '../../src/worker/loading/cache.ts';
import { NotebookDocument } from '../../src/notebook/document.ts';
import { Autosave } from '../../src/notebook/persist.ts';
import { decodeTree, encodeTree, GenerationController, stopIdsOf } from '../../src/app/generation.ts';
import type { GenerateOutput } from '../../cells/plot/generate.ts';
import { gpuOrSkip } from '../support/gpu.ts';
import { loadStories } from '../support/gpu-models.ts';
import { until } from '../support/until.ts';

const MODEL = '/models/local/tinystories-260k/stories260K.gguf';
const NB = '/test/fixtures/notebooks/faults.md';
const PLAIN = '/test/fixtures/notebooks/no-front-matter.md';   // names no model
const SIZE = 1185376;                                            // stories260K.gguf
const run = Date.now();
const FAULT_CHANNEL = 'glassbox-test-faults';                    // test/support/fault-worker.ts listens on it

type CellEl = HTMLElement & { updateComplete: Promise<unknown>; cell: { id: string; settings: Record<string, unknown> }; state: { status: string; output: unknown; error: unknown } | null };

/** Every engine worker the apps of this file made (the fault worker: the real one plus a way to lose its GPU). */
const workers: Worker[] = [];
const faultWorker = (): Worker => {
  const w = new Worker(new URL('../support/fault-worker.ts', import.meta.url), { type: 'module' });
  workers.push(w);
  return w;
};

function mount(search: string, slot: string): GlassboxApp {
  const el = document.createElement('glassbox-app') as GlassboxApp;
  el.search = search;
  el.hash = '';
  el.autosaveId = slot;
  el.createWorker = faultWorker;
  document.body.append(el);
  return el;
}

const $ = <T extends Element = HTMLElement>(app: GlassboxApp, sel: string) => app.shadowRoot!.querySelector<T>(sel);
const cells = (app: GlassboxApp, kind: string) => [...app.shadowRoot!.querySelectorAll<CellEl>(`section[data-kind="${kind}"] glassbox-${kind}`)];
const message = (app: GlassboxApp) => $(app, 'p.message')?.textContent ?? '';
const done = (el: CellEl | undefined) => el?.state?.status === 'done';

/** Waits until every cell has computed (none failed) and no generation runs. */
async function settled(app: GlassboxApp): Promise<void> {
  await app.idle();
  await until(() => {
    const all = [...app.shadowRoot!.querySelectorAll<CellEl>('section[data-kind] > *:last-child')].filter((e) => 'state' in e && e.localName !== 'glassbox-markdown');
    const bad = all.find((e) => e.state?.status === 'error');
    if (bad) throw new Error(`${bad.localName}: ${String(bad.state!.error)}`);
    return all.every(done) && !cells(app, 'generate').some((g) => app.generation.busy(g.cell.id));
  }, 'every cell computed');
  await app.updateComplete;
}

/** Calls `act` once, synchronously, when the notebook's generate cell holds `n` tokens (mid-play: the next step has not started). */
function atToken(app: GlassboxApp, genId: string, n: number, act: () => void): Promise<void> {
  return new Promise((resolve) => {
    const stop = app.doc!.subscribe(() => {
      const tree = decodeTree(app.doc!.cell(genId)?.settings['branches'], app.model!.config.vocabSize);
      if (tree.get(tree.rootId).tokens.length < n) return;
      stop();
      expect(app.generation.busy(genId), 'the generation is still running').to.equal(true);
      act();
      resolve();
    });
  });
}

/** The next-token cell's drawn top token (its first bar). */
async function shownTop(el: CellEl): Promise<{ id: number; p: number }> {
  await el.updateComplete;
  const bar = el.shadowRoot!.querySelector<SVGElement>('[data-id][data-v]')!;
  return { id: Number(bar.dataset['id']), p: Number(bar.dataset['v']) };
}

/** The notebook text after the generate cell `id` runs, fault-free, on an in-thread engine (the app's own write rule). */
async function generatedText(before: string, id: string, promptIds: readonly number[], engine: Engine, info: ModelInfo): Promise<string> {
  const doc = new NotebookDocument(before);
  const ctl = new GenerationController({
    env: () => ({ client: engine, nCtx: info.config.nCtx, vocabSize: info.config.vocabSize, stopIds: stopIdsOf(info) }),
    read: (cid) => ({ promptIds, settings: doc.cell(cid)!.settings, sampler: doc.cell(cid)!.settings }),
    write: (cid, tree, branch) => {
      doc.setSetting(cid, 'branches', tree.list().length === 1 && tree.get(tree.rootId).tokens.length === 0 && !tree.get(tree.rootId).stopped ? undefined : encodeTree(tree));
      if (doc.cell(cid)!.settings['branch'] !== (branch === tree.rootId ? undefined : branch)) doc.setSetting(cid, 'branch', branch === tree.rootId ? undefined : branch);
    },
  });
  const r = await ctl.handle({ cellId: id, action: 'run' });
  expect(r.outcome, r.error).to.not.equal('error');
  return doc.text;
}

describe('faults injected into the app (stories260K)', function () {
  this.timeout(180000);
  let engine: Engine;
  let info: ModelInfo;

  before(async () => {
    engine = new Engine({ resolveSource: resolveModelSource });
    info = await engine.load({ kind: 'local', paths: [MODEL] }, { backend: 'cpu', threads: 1 });
  });
  afterEach(() => { document.querySelectorAll('glassbox-app').forEach((e) => e.remove()); });

  it('the engine worker killed mid-generation: restarted and said so; the notebook and the tokens are those of a run without the fault', async () => {
    const app = mount(`?notebook=${NB}&backend=cpu`, `faults-kill-${run}`);
    await app.ready;
    await until(() => app.model, 'the model');
    await settled(app);
    const gen = cells(app, 'generate')[0]!;
    const promptIds = (cells(app, 'prompt')[0]!.state!.output as { ids: number[] }).ids;
    expect(promptIds).to.deep.equal((await engine.tokenize('Once upon a time there was a little girl')).ids);
    const before = app.doc!.text;
    const expected = await generatedText(before, gen.cell.id, promptIds, engine, info);
    const made = workers.length;

    const killed = atToken(app, gen.cell.id, 3, () => workers.at(-1)!.terminate());   // a crash, an out-of-memory kill
    gen.shadowRoot!.querySelector<HTMLButtonElement>('button[data-action="play"]')!.click();
    await killed;
    await until(() => message(app).includes('restarted'), 'the notice of the restart');
    await settled(app);

    expect(workers.length, 'one new worker').to.equal(made + 1);
    expect(message(app)).to.match(/The engine stopped \(the engine worker stopped .*\) and was restarted; the model was loaded again and the cells recomputed\. Your notebook is unchanged\./);
    // the notebook: exactly the text the same play gives without the fault
    expect(app.doc!.text).to.equal(expected);
    expect(expected).to.not.equal(before);
    // the next result, computed on the new worker: the next-token cells equal the in-thread engine's
    const ids = (gen.state!.output as GenerateOutput).ids;
    for (const [el, tokens] of [[cells(app, 'next-token')[0]!, promptIds], [cells(app, 'next-token')[1]!, ids]] as const) {
      const top = await engine.topK(await engine.run({ tokens: [...tokens], slot: 'check' }), { k: 1 });
      const shown = await shownTop(el);
      expect(shown.id).to.equal(top.ids[0]);
      expect(shown.p).to.be.closeTo(top.probs[0]!, 1e-3);
    }
  });

  it('[webgpu] the GPU device lost mid-generation: the session goes on on the CPU and says so; the tokens are the CPU\'s', async function () {
    await gpuOrSkip(this);
    const app = mount(`?notebook=${NB}&backend=webgpu`, `faults-gpu-${run}`);
    await app.ready;
    await until(() => app.model, 'the model');
    expect(app.model!.backend).to.equal('webgpu');
    await settled(app);
    const gen = cells(app, 'generate')[0]!;
    const promptIds = (cells(app, 'prompt')[0]!.state!.output as { ids: number[] }).ids;
    const before = app.doc!.text;

    // the tokens the CPU gives from the same weights (a WebGPU session keeps exact f32 activations on its CPU fallback)
    const cpu = new Session(await loadStories(), { activationQuant: 'none', threads: 1 });
    const stop = stopIdsOf(app.model!);
    const greedy = [...promptIds];
    for (let i = 0; i < 16; i++) {
      const next = cpu.run(greedy, { logits: 'top' }).top!.ids[0]!;
      if (stop.has(next)) break;
      greedy.push(next);
    }

    const channel = new BroadcastChannel(FAULT_CHANNEL);
    const lost = new Promise<{ destroyed: number }>((r) => { channel.onmessage = (e) => r(e.data as { destroyed: number }); });
    try {
      // a driver reset after 3 tokens: every device of the worker destroyed
      const sent = atToken(app, gen.cell.id, 3, () => channel.postMessage('lose-device'));
      gen.shadowRoot!.querySelector<HTMLButtonElement>('button[data-action="play"]')!.click();
      await sent;
      expect((await lost).destroyed).to.be.greaterThan(0);
      await until(() => message(app).includes('GPU stopped working'), 'the notice of the fallback');
      await settled(app);
    } finally {
      channel.close();
    }
    expect(message(app)).to.match(/The GPU stopped working \(the WebGPU device was lost\b.*[Dd]estroyed.*\)\. The model now runs on the CPU: the same numbers, only slower\./);
    expect(app.model!.backendReason).to.match(/^WebGPU failed, continuing on the CPU: the WebGPU device was lost/);
    expect(message(app)).to.match(/reload the page to try the GPU again/);
    expect($(app, '[data-testid=backend]')!.textContent!.trim()).to.equal('CPU');
    expect(app.model!.backend).to.equal('cpu');
    // the notebook: before plus the generated tokens only (the probabilities stored with them come from two devices, so the branches line is compared as tokens)
    expect(app.doc!.text.replace(/^branches: .*\n/m, '')).to.equal(before);
    expect((gen.state!.output as GenerateOutput).ids).to.deep.equal(greedy);
    // the next result after recovery: run every cell again (Ctrl+Enter), now on the CPU
    app.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', ctrlKey: true, bubbles: true, composed: true }));
    await settled(app);
    const shown = await shownTop(cells(app, 'next-token')[0]!);
    expect(shown.id).to.equal(cpu.run(promptIds, { logits: 'top' }).top!.ids[0]);
    expect((await shownTop(cells(app, 'next-token')[1]!)).id).to.equal(cpu.run(greedy, { logits: 'top' }).top!.ids[0]);
    cpu.dispose();
  });

  it('IndexedDB refusing a write (quota): the notebook stays, the user is told and can download it, the next autosave succeeds', async () => {
    const slot = `faults-quota-${run}`;
    const id = `${slot}:${PLAIN}`;
    const app = mount(`?notebook=${PLAIN}`, slot);
    await app.ready;
    const put = IDBObjectStore.prototype.put;
    let refused = 0;
    IDBObjectStore.prototype.put = function () {
      refused++;
      throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
    };
    let edited = '';
    try {
      app.doc!.insertCell(app.doc!.notebook.cells.length, 'markdown', { text: 'Written while the disk is full.' });
      edited = app.doc!.text;
      const banner = await until(() => $(app, '[data-testid=save-error]'), 'the save error');
      expect(refused).to.be.greaterThan(0);
      expect(banner.getAttribute('role')).to.equal('alert');
      expect(banner.textContent).to.match(/Not saved: the browser has no room left for this site \(storage quota exceeded\)\. The notebook is kept in this tab and saving is retried/);
      expect($(app, 'header .save')!.textContent).to.equal('not saved');
      expect(app.doc!.text).to.equal(edited);
      // the journal holds it: a reload now would bring it back
      expect(JSON.parse(localStorage.getItem(`glassbox:notebook-journal:${id}`)!).text).to.equal(edited);
      // the banner's button downloads the notebook as it is in the page
      const click = HTMLAnchorElement.prototype.click;
      let file: { name: string; href: string } | null = null;
      HTMLAnchorElement.prototype.click = function (this: HTMLAnchorElement) { file = { name: this.download, href: this.href }; };
      try { banner.querySelector('button')!.click(); } finally { HTMLAnchorElement.prototype.click = click; }
      expect(file!.name).to.equal('notebook.md');
      expect(await (await fetch(file!.href)).text()).to.equal(edited);
    } finally {
      IDBObjectStore.prototype.put = put;
    }
    // the store works again: the retry saves, the banner goes, the journal entry is dropped
    await until(() => !$(app, '[data-testid=save-error]') && $(app, 'header .save')?.textContent === 'saved', 'the retried save', 20000);
    expect(localStorage.getItem(`glassbox:notebook-journal:${id}`)).to.equal(null);
    expect((await new Autosave({ id, journal: null }).restore())?.text).to.equal(edited);
    app.remove();
    const again = mount(`?notebook=${PLAIN}`, slot);
    await again.ready;
    expect(again.doc!.text).to.equal(edited);
  });

  it('a model download cut halfway: the user is told and offered Retry, nothing half-written is cached, the retry loads the right model', async () => {
    const key = `app-cut-${run}`;
    const url = `/test-files/stories260K.gguf?cut=${SIZE >> 1}&key=${key}`;
    const ours = async () => (await listCached()).filter((f) => f.url.includes(key));
    const app = mount(`?notebook=${NB}&model=${encodeURIComponent(url)}&backend=cpu`, `faults-cut-${run}`);
    await app.ready;
    const before = app.doc!.text;
    // the downloader resumes a cut connection by itself; this one is cut at the same byte every time, so it gives up
    const seen = new Set<string>();
    const err = await until(() => {
      const t = $(app, '.loading span')?.textContent;
      if (t) seen.add(t);
      return $(app, '[data-testid=load-error]');
    }, 'the load error', 90000);
    expect([...seen].some((t) => /retry \d: the connection (failed|closed) after \d+/.test(t)), [...seen].join(' | ')).to.equal(true);
    expect(err.getAttribute('role')).to.equal('alert');
    expect(err.textContent).to.match(/stories260K\.gguf\?cut=\d+&key=[\w-]+: the connection (failed|closed) after \d+ .*gave up after 5 retries\. Check the connection and the URL, then try again/s);
    expect(err.textContent!.split('stories260K.gguf?').length, 'the URL named once').to.equal(2);
    const retry = [...err.querySelectorAll('button')].find((b) => b.textContent === 'Retry');
    expect(retry, 'a Retry button').to.not.equal(undefined);
    expect(app.model).to.equal(null);
    expect(await ours(), 'nothing cached from the cut download').to.deep.equal([]);
    expect(app.doc!.text).to.equal(before);

    await fetch(`/test-files/_heal?key=${key}`);                 // the network is back
    retry!.click();
    await until(() => app.model, 'the model after Retry', 60000);
    expect($(app, '[data-testid=load-error]')).to.equal(null);
    const cached = await ours();
    expect(cached.length).to.equal(1);
    expect(cached[0]!.size).to.equal(SIZE);
    await settled(app);
    expect(app.doc!.text).to.equal(before);
    const promptIds = (cells(app, 'prompt')[0]!.state!.output as { ids: number[] }).ids;
    expect(promptIds).to.deep.equal((await engine.tokenize('Once upon a time there was a little girl')).ids);
    const top = await engine.topK(await engine.run({ tokens: promptIds, slot: 'check' }), { k: 1 });
    const shown = await shownTop(cells(app, 'next-token')[0]!);
    expect(shown.id).to.equal(top.ids[0]);
    expect(shown.p).to.be.closeTo(top.probs[0]!, 1e-3);
  });

  describe('the page reloaded during autosave (a real reload, in an iframe)', () => {
    const slot = `faults-reload-${run}`;
    const id = `${slot}:${PLAIN}`;
    let frame: HTMLIFrameElement;
    type FrameWindow = Window & typeof globalThis;
    const win = () => frame.contentWindow as FrameWindow;
    const loaded = () => new Promise<void>((r) => { frame.addEventListener('load', () => r(), { once: true }); });
    const frameApp = () => until(() => {
      const a = frame.contentDocument?.querySelector('glassbox-app') as GlassboxApp | null;
      return a?.doc ? a : null;
    }, 'the app in the frame');
    const reload = async () => { const l = loaded(); win().location.reload(); await l; return frameApp(); };
    /** Makes every IndexedDB write of the page in the frame fail, as if the tab died before it. */
    const noWrites = () => { win().IDBObjectStore.prototype.put = function () { throw new (win().DOMException)('the page went away', 'AbortError'); }; };

    before(async () => {
      frame = document.createElement('iframe');
      frame.style.cssText = 'width: 800px; height: 600px';
      const l = loaded();
      frame.src = `/test/support/app-frame.html?slot=${slot}&notebook=${PLAIN}`;
      document.body.append(frame);
      await l;
    });
    after(() => frame.remove());

    it('an edit, then a reload before the debounce fires (IndexedDB never written): the notebook is exactly the last edit, from the journal', async () => {
      const app = await frameApp();
      app.doc!.insertCell(app.doc!.notebook.cells.length, 'markdown', { text: 'Saved in IndexedDB.' });
      await app.flush();
      const saved = app.doc!.text;
      expect((await new Autosave({ id, journal: null }).restore())?.text).to.equal(saved);
      noWrites();
      app.doc!.insertCell(app.doc!.notebook.cells.length, 'markdown', { text: 'Typed just before the reload.' });
      const last = app.doc!.text;
      const again = await reload();
      expect(again.doc!.text).to.equal(last);
      // the restored journal is written through to IndexedDB, then dropped
      await until(() => localStorage.getItem(`glassbox:notebook-journal:${id}`) === null, 'the journal written through');
      expect((await new Autosave({ id, journal: null }).restore())?.text).to.equal(last);
    });

    it('a reload while the IndexedDB write is in flight: the notebook is exactly the last edit', async () => {
      const app = await frameApp();
      app.doc!.insertCell(app.doc!.notebook.cells.length, 'prompt', { text: 'A prompt written as the page reloads' });
      const last = app.doc!.text;
      void app.flush();                                           // the write starts; the page goes before it ends
      const again = await reload();
      expect(again.doc!.text).to.equal(last);
    });

    it('a reload before the debounce with the journal refused too (localStorage full): the previous saved state, never an empty or torn notebook', async () => {
      const app = await frameApp();
      await app.flush();
      const saved = app.doc!.text;
      // fill localStorage so that the journal's write fails
      const fill: string[] = [];
      for (const size of [256 * 1024, 8192, 256, 8, 1]) {
        const chunk = 'x'.repeat(size);
        try {
          for (let i = 0; i < 400; i++) { const k = `faults-fill-${run}-${fill.length}`; localStorage.setItem(k, chunk); fill.push(k); }
        } catch { /* full at this size: try smaller */ }
      }
      try {
        noWrites();
        app.doc!.insertCell(app.doc!.notebook.cells.length, 'markdown', { text: 'Lost: neither store took it.' });
        expect(app.doc!.text).to.not.equal(saved);
        const again = await reload();
        expect(again.doc!.text).to.equal(saved);
      } finally {
        for (const k of fill) localStorage.removeItem(k);
      }
    });
  });
});
