// The app's pure parts alone (token chips, the block diagram, model names, download progress,
// export) and its keyboard use: shortcuts add, move and undo cells; the help lists them.
import { expect } from 'chai';
import { tokenChips, tokenChipsSvg, visible } from '../../cells/prompt.ts';
import { blockDiagramSvg } from '../../cells/model.ts';
import { unknownNote } from '../../cells/unknown.ts';
import { namedModel, progressText } from '../../src/app/sources.ts';
import { exportHtml } from '../../src/app/export.ts';
import { parseNotebook } from '../../src/notebook/format.ts';
import type { CellState } from '../../src/notebook/graph.ts';
import type { Tokenized } from '../../src/engine/api.ts';
import type { ModelSummary } from '../../src/formats/describe.ts';
import type { ModelConfig } from '../../src/engine/config.ts';
import '../../src/app/app.ts';
import type { GlassboxApp } from '../../src/app/app.ts';

const TOK: Tokenized = {
  text: 'Hi there',
  ids: [1, 500, 301],
  pieces: ['<s>', '▁Hi', '▁there'],
  spans: [[0, 0], [0, 2], [2, 8]],
};

function svgDoc(s: string): Document {
  const d = new DOMParser().parseFromString(s, 'image/svg+xml');
  expect(d.querySelector('parsererror')).to.equal(null);
  return d;
}

describe('app parts', () => {
  it('token chips: BOS named, whitespace visible, ids and pieces in the hover text', () => {
    const chips = tokenChips(TOK, { bosId: 1, eosId: 2 });
    expect(chips.map((c) => c.label)).to.deep.equal(['BOS', 'Hi', '·there']);
    expect(chips.map((c) => c.special)).to.deep.equal([true, false, false]);
    expect(visible('a b\nc\t')).to.equal('a·b↵c→');
    const d = svgDoc(tokenChipsSvg(chips, 80));
    const groups = d.querySelectorAll('g');
    expect(groups.length).to.equal(3);
    expect(groups[2]!.querySelector('title')!.textContent).to.equal('#2 · id 301 · piece "▁there"');
    // Width 80 holds two chips: the third chip starts a new row.
    expect(groups[2]!.getAttribute('transform')).to.equal('translate(0.0,38)');
    const hostile = tokenChipsSvg(tokenChips({ text: '<b>&', ids: [7], pieces: ['<b>&'], spans: [[0, 4]] }));
    expect(hostile).to.contain('&lt;b&gt;&amp;');
  });

  it('block diagram: each weight with its shape from the file, GQA noted', () => {
    const config = { nLayers: 5, dModel: 64, dFfn: 172, nHeads: 8, nKvHeads: 4, dHead: 8 } as ModelConfig;
    const summary = { config, tensors: [{ name: 'blocks.2.attn.wk', shape: [32, 64], type: 'F32', fileName: 'm', bytes: 0 }] } as unknown as ModelSummary;
    const d = svgDoc(blockDiagramSvg(summary, 2));
    const texts = [...d.querySelectorAll('text')].map((t) => t.textContent);
    expect(texts).to.include('block 2 of 5');
    expect(texts).to.include('[32, 64]');                               // from the file
    expect(texts).to.include('[64, 64]');                               // wq from the config
    expect(texts).to.include('[172, 64]');                              // w_gate / w_up
    expect(texts).to.include('[64, 172]');                              // w_down
    expect(texts.some((t) => t!.includes('8 heads, 4 kv (GQA)'))).to.equal(true);
  });

  it('model names: catalog and same-origin load at once, other origins and shared notebooks ask', () => {
    const ids = new Set(['stories15M']);
    const o = 'http://localhost:5173';
    expect(namedModel('stories15M', ids, o)).to.deep.equal({ source: { kind: 'catalog', id: 'stories15M' }, label: 'stories15M', ask: false });
    expect(namedModel('stories15M', ids, o, true)!.ask).to.equal(true);
    expect(namedModel('/models/local/tinystories-260k/stories260K.gguf', ids, o)).to.deep.equal(
      { source: { kind: 'local', paths: ['tinystories-260k/stories260K.gguf'] }, label: 'tinystories-260k/stories260K.gguf', ask: false });
    expect(namedModel('/files/m.gguf', ids, o)!.ask).to.equal(false);
    expect(namedModel('tinystories-260k/stories260K.gguf', ids, o)!.source).to.deep.equal({ kind: 'local', paths: ['tinystories-260k/stories260K.gguf'] });
    expect(namedModel('https://evil.example/m.gguf', ids, o)).to.deep.equal({ source: { kind: 'url', url: 'https://evil.example/m.gguf' }, label: 'https://evil.example/m.gguf', ask: true });
    expect(namedModel('javascript:alert(1)', ids, o)).to.equal(null);
    expect(namedModel('http://plain.example/m.gguf', ids, o)).to.equal(null);
    expect(namedModel('  ', ids, o)).to.equal(null);
  });

  it('download progress in words: received, total, rate, time left', () => {
    expect(progressText({ file: 'm.gguf', received: 3 * 2 ** 20, total: 12 * 2 ** 20, rateBytesPerS: 2 ** 20, etaS: 9.2 }))
      .to.equal('m.gguf: 3.0 MiB of 12.0 MiB · 1.0 MiB/s · 10 s left');
    expect(progressText({ file: 'm.gguf', received: 0, total: null, rateBytesPerS: 0, etaS: null, phase: 'cache' })).to.contain('cache');
  });

  it('export: a standalone page with prose, the prompt\'s tokens as inline SVG, no script', () => {
    const nb = parseNotebook('---\ntitle: T <x>\n---\n# Hello\n\n<img src=x onerror=alert(1)>\n\n```prompt\nHi there\n```\n\n```circuit-graph\nlayer: 1\n```\n');
    const prompt = nb.cells.find((c) => c.kind === 'prompt')!;
    const states = new Map<string, CellState>([[prompt.id, { status: 'done', output: TOK, error: undefined, runs: 1 }]]);
    const page = exportHtml(nb, states, null);
    const d = new DOMParser().parseFromString(page, 'text/html');
    expect(d.title).to.equal('T <x>');
    expect(d.querySelector('h1')!.textContent).to.equal('Hello');
    expect(d.querySelector('section.prompt svg')!.querySelectorAll('g').length).to.equal(3);
    expect(d.querySelector('script')).to.equal(null);
    expect(page).not.to.contain('onerror');
    expect(d.querySelector('section.other pre')!.textContent).to.contain('```circuit-graph');
    expect(unknownNote(nb.cells.find((c) => c.kind === 'unknown')!)).to.contain('"circuit-graph"');
  });
});

describe('app keyboard', function () {
  this.timeout(60000);

  it('Alt+N adds a cell, Alt+↑ moves it, Ctrl+Z undoes, ? opens the help', async () => {
    const app = document.createElement('glassbox-app') as GlassboxApp;
    app.search = '?model=/models/local/tinystories-260k/stories260K.gguf&backend=cpu';
    app.hash = '';
    app.autosaveId = `keys-${Date.now()}`;
    document.body.append(app);
    await app.ready;
    await app.updateComplete;
    const key = (init: KeyboardEventInit) => app.dispatchEvent(new KeyboardEvent('keydown', { bubbles: true, composed: true, ...init }));
    const kinds = () => app.doc!.notebook.cells.map((c) => c.kind);
    const before = kinds();
    key({ key: 'n', altKey: true });
    await app.updateComplete;
    expect(kinds()).to.deep.equal([...before, 'prompt']);
    key({ key: 'ArrowUp', altKey: true });
    await app.updateComplete;
    expect(kinds()).to.deep.equal([...before.slice(0, -1), 'prompt', before.at(-1)]);
    key({ key: 'z', ctrlKey: true });
    key({ key: 'z', ctrlKey: true });
    await app.updateComplete;
    expect(kinds()).to.deep.equal(before);
    key({ key: 'y', ctrlKey: true });
    expect(kinds()).to.deep.equal([...before, 'prompt']);
    key({ key: '?' });
    await app.updateComplete;
    const help = app.shadowRoot!.querySelector('[role=dialog]')!;
    expect(help.textContent).to.contain('Alt+N');
    // Every toolbar control is a focusable, labelled control.
    for (const c of app.shadowRoot!.querySelectorAll<HTMLElement>('header button, header select, header a, header label.button')) {
      expect(c.tabIndex, c.outerHTML).to.be.greaterThan(-1);
      const name = c.getAttribute('aria-label') ?? c.textContent!.trim() ?? (c.id && app.shadowRoot!.querySelector(`label[for=${c.id}]`)?.textContent);
      expect(name || app.shadowRoot!.querySelector(`label[for=${c.id}]`), c.outerHTML).to.be.ok;
    }
    app.remove();
  });

  it('the model picker lists the local models; picking one loads it and records it in the front matter', async () => {
    const app = document.createElement('glassbox-app') as GlassboxApp;
    app.search = '?notebook=/test/fixtures/notebooks/no-front-matter.md&backend=cpu';
    app.hash = '';
    app.autosaveId = `picker-${Date.now()}`;
    document.body.append(app);
    await app.ready;
    await app.updateComplete;
    const root = app.shadowRoot!;
    root.querySelector<HTMLButtonElement>('[data-testid=model-button]')!.click();
    await app.updateComplete;
    const picker = root.querySelector('glassbox-model-picker')!;
    const load = await until(() => picker.shadowRoot?.querySelector<HTMLButtonElement>('button[aria-label="Load tinystories-260k/stories260K.gguf"]'));
    load.click();
    await until(() => app.model);
    expect(app.model!.config.nLayers).to.equal(5);
    expect(app.doc!.notebook.frontMatter!.values['model']).to.equal('/models/local/tinystories-260k/stories260K.gguf');
    expect(root.querySelector('[data-testid=backend]')!.textContent!.trim()).to.equal('CPU');
    app.remove();
  });

  it('?notebook=X keeps its edits in its own slot: a reload brings them back, the own notebook stays', async () => {
    const slot = `nburl-${Date.now()}`;
    const make = (search: string) => {
      const app = document.createElement('glassbox-app') as GlassboxApp;
      Object.assign(app, { search, hash: '', autosaveId: slot });
      document.body.append(app);
      return app;
    };
    const own = make('');
    await own.ready;
    const ownText = own.doc!.text;
    own.remove();
    const a = make('?notebook=/test/fixtures/notebooks/no-front-matter.md');
    await a.ready;
    const id = a.doc!.insertCell(0, 'prompt', { text: 'edited' });
    expect(id).to.be.a('string');
    const edited = a.doc!.text;
    await a.flush();
    a.remove();
    const b = make('?notebook=/test/fixtures/notebooks/no-front-matter.md');
    await b.ready;
    expect(b.doc!.text).to.equal(edited);
    b.remove();
    const c = make('');
    await c.ready;
    expect(c.doc!.text).to.equal(ownText);
    c.remove();
  });

  it('drag and drop opens a .md file; an unknown kind shows its kept text; too-long share links say so', async () => {
    const app = document.createElement('glassbox-app') as GlassboxApp;
    app.search = '?notebook=/test/fixtures/notebooks/no-front-matter.md';
    app.hash = '';
    app.autosaveId = `drop-${Date.now()}`;
    document.body.append(app);
    await app.ready;
    const root = app.shadowRoot!;
    const text = await (await fetch('/test/fixtures/notebooks/unknown-kind.md')).text();
    const dt = new DataTransfer();
    dt.items.add(new File([text], 'unknown-kind.md', { type: 'text/markdown' }));
    root.querySelector('.app')!.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    await until(() => app.doc!.text === text);
    await app.updateComplete;
    const unknown = await until(() => root.querySelector('glassbox-unknown')?.shadowRoot?.querySelector('pre'));
    const cell = app.doc!.notebook.cells.find((c) => c.kind === 'unknown')!;
    expect(unknown.textContent).to.equal(cell.raw);
    // The opened file names a model: the app offers it, and loads nothing until asked.
    expect(root.querySelector('[role=alertdialog]')?.textContent).to.contain('stories260K');
    expect(app.model).to.equal(null);
    // A notebook too big for a link (random text does not compress): the app says so.
    let big = '';
    for (let i = 0; i < 6000; i++) big += Math.random().toString(36).slice(2, 10);
    app.doc!.setText(app.doc!.notebook.cells.find((c) => c.kind === 'markdown')!.id, big);
    root.querySelector<HTMLButtonElement>('button[title^="Copy a link"]')!.click();
    const msg = await until(() => { const t = root.querySelector('.message')?.textContent; return t?.includes('KiB') ? t : null; });
    expect(msg).to.match(/share links are at most 32 KiB/);
    app.remove();
  });
});

async function until<T>(f: () => T | null | undefined, ms = 20000): Promise<T> {
  const t0 = performance.now();
  for (;;) {
    const v = f();
    if (v) return v;
    if (performance.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 40));
  }
}
