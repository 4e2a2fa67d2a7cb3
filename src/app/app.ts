// <glassbox-app>: the page. It opens a notebook (a share link, ?notebook=, the autosaved one, or
// the welcome), loads the model it names (asking first when it comes from elsewhere), runs the
// reactive graph over the cells and draws each one with its <glassbox-kind> element. The toolbar
// opens, saves, shares and exports; every edit goes through the NotebookDocument, so the Markdown
// is the whole state and autosave keeps it.

import { LitElement, html, nothing } from 'lit';
import { html as staticHtml, unsafeStatic } from 'lit/static-html.js';
import { customElement, property, state } from 'lit/decorators.js';
import { NotebookDocument, type DocumentChange } from '../notebook/document.ts';
import { ReactiveGraph, type CellState } from '../notebook/graph.ts';
import { cellKinds } from '../notebook/registry.ts';
import { Autosave, openFile, openUrl, downloadNotebook, notebookFileName, type SaveStatus } from '../notebook/persist.ts';
import { openShared, shareLink } from '../notebook/share.ts';
import type { Notebook } from '../notebook/format.ts';
import { createEngineClient, type EngineClient } from '../worker/client.ts';
import type { LoadProgress, ModelInfo } from '../engine/api.ts';
import { computeCell } from './compute.ts';
import { PromptRuns } from './runs.ts';
import { forgetPatchGrids } from './patch.ts';
import { encodeTree, GENERATE_EVENT, GenerationController, stopIdsOf, type GenerateAction } from './generation.ts';
import type { BranchTree } from '../engine/branches.ts';
import type { Tokenized } from '../engine/api.ts';
import { loadCatalog } from '../worker/loading/catalog.ts';
import { elementFor } from '../../cells/index.ts';
import { errorText, modelName } from '../../cells/common.ts';
import { WELCOME } from './welcome.ts';
import { namedModel, progressText, type NamedModel } from './sources.ts';
import { exportHtml } from './export.ts';
import { cellLimitMessage, shownCells } from './limits.ts';
import { appStyles } from './app-style.ts';
import { findDemo, demoLink, dataUrlText, demoHref } from './gallery-data.ts';
import { TOUR, tourCell, tourDialog, galleryPanel, firstRunBanner, type FirstRunInfo } from './first-run.ts';
import './model-picker.ts';
import type { PickDetail } from './model-picker.ts';

type Panel = 'models' | 'help' | 'demos' | null;

export const SHORTCUTS: readonly [string, string][] = [
  ['Alt+N', 'add a cell (the kind chosen beside "Add cell") below the current one'],
  ['Alt+↑ / Alt+↓', 'move the current cell up / down'],
  ['Ctrl+Enter', 'run the notebook again (every cell that reads the model)'],
  ['Ctrl+Z', 'undo'],
  ['Ctrl+Shift+Z or Ctrl+Y', 'redo'],
  ['Alt+M', 'open the model picker'],
  ['?', 'this help (outside a text field); Escape closes it'],
  ['← / →', 'during the tour: the previous / next step; Escape ends it'],
];

@customElement('glassbox-app')
export class GlassboxApp extends LitElement {
  static override styles = appStyles;

  /** Query string and fragment to read (default: the page's). Tests set them. */
  @property({ attribute: false }) search: string | null = null;
  @property({ attribute: false }) hash: string | null = null;
  /** The autosave slot (tests use their own). */
  @property({ attribute: 'autosave-id' }) autosaveId = 'current';
  /** Makes the engine worker (default src/worker/worker.ts); the fault-injection tests wrap it. */
  @property({ attribute: false }) createWorker: (() => Worker) | undefined = undefined;

  @state() doc: NotebookDocument | null = null;
  @state() private nb: Notebook | null = null;
  @state() private states: ReadonlyMap<string, CellState> = new Map();
  @state() model: ModelInfo | null = null;
  @state() private loading: { label: string; progress: LoadProgress | null; id: string } | null = null;
  @state() private loadError = '';
  /** The last model asked for: the Retry of a failed load asks for it again. */
  private lastAsked: { source: PickDetail['source']; label: string } | null = null;
  @state() private ask: NamedModel | null = null;
  @state() private message = '';
  @state() private saveStatus: SaveStatus | null = null;
  @state() private panel: Panel = null;
  @state() private selected: string | null = null;
  @state() private addKind = 'prompt';
  @state() private editing: ReadonlySet<string> = new Set();
  @state() private over = false;
  @state() private shareUrl = '';
  /** The welcome notebook's first-run banner (null: not the welcome notebook, or hidden). */
  @state() private firstRun: FirstRunInfo | null = null;
  /** The tour's step (null: no tour). */
  @state() private tour: number | null = null;

  private client: EngineClient | null = null;
  /** One model run per prompt, shared by the cells that read it. */
  readonly runs = new PromptRuns(() => this.client);
  private graph: ReactiveGraph | null = null;
  /** The generate cells' steps (their elements ask with 'glassbox-generate' events). */
  readonly generation = new GenerationController({
    env: () => (this.client && this.model
      ? { client: this.client, nCtx: this.model.config.nCtx, vocabSize: this.model.config.vocabSize, stopIds: stopIdsOf(this.model) } : null),
    read: (id) => this.generateInputs(id),
    write: (id, tree, branch) => this.writeGeneration(id, tree, branch),
  });
  private autosave: Autosave | null = null;
  private unsubscribe: (() => void) | null = null;
  private loads = 0;
  /** Resolves once the notebook is open (the model may still be loading). */
  ready: Promise<void> = Promise.resolve();

  private get params(): URLSearchParams { return new URLSearchParams(this.search ?? location.search); }
  private get backend(): 'auto' | 'cpu' | 'webgpu' {
    const b = this.params.get('backend');
    return b === 'cpu' || b === 'webgpu' ? b : 'auto';
  }

  override connectedCallback(): void {
    super.connectedCallback();
    this.addEventListener('keydown', this.onKey);
    this.addEventListener('click', this.onLinkClick);
    this.addEventListener(GENERATE_EVENT, this.onGenerate);
    addEventListener('pagehide', this.onHide);
    addEventListener('pageshow', this.onShow);
    this.ready = this.start();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.removeEventListener('keydown', this.onKey);
    this.removeEventListener('click', this.onLinkClick);
    this.removeEventListener(GENERATE_EVENT, this.onGenerate);
    removeEventListener('pagehide', this.onHide);
    removeEventListener('pageshow', this.onShow);
    void this.autosave?.flush();
    this.unsubscribe?.();
    this.graph?.dispose();
    this.stopEngine();
  }

  /** Ends the engine worker (a later loadModel starts a new one). */
  private stopEngine(): void {
    this.generation.cancel(undefined, 'the page closed');
    this.client?.dispose();
    this.client = null;
  }

  /** The model to load again when the page comes back from the back-forward cache. */
  private resumeWith: { source: PickDetail['source']; label: string } | null = null;
  /** Between pagehide and pageshow: no engine is started (a load asked meanwhile waits for the show). */
  private pageHidden = false;

  /**
   * The tab is going away: write the debounced edit now (the journal already holds it), and end
   * the engine worker here rather than leave it to the document's teardown or to the
   * back-forward cache. Left running, leaving a page within a second of opening it (a click on a
   * demo link while the model loads) crashed the next page's renderer in about 1 in 6 tries in
   * headless Chromium 156 (a SIGTRAP in a worker thread; test/e2e/demos.test.mjs, the gallery
   * test); ended here, in 0 of 70. It also frees the model's memory while the page is cached.
   * A page that comes back from the cache loads its model again (onShow).
   */
  private onHide = (e: Event): void => {
    void this.autosave?.flush();
    this.resumeWith = (e as PageTransitionEvent).persisted ? this.lastAsked : null;
    this.pageHidden = true;
    this.stopEngine();
  };

  private onShow = (e: Event): void => {
    const asked = this.resumeWith;
    this.resumeWith = null;
    this.pageHidden = false;
    if ((e as PageTransitionEvent).persisted && asked) void this.loadModel(asked.source, asked.label);
  };

  /** Writes pending edits to IndexedDB now. */
  async flush(): Promise<void> { await this.autosave?.flush(); }
  /** Engine time spent for this page: the model load and every run (the app benchmark's peer). */
  engineMs(): number { return this.loadMs + this.runs.engineMs; }
  private loadMs = 0;
  /** Resolves when every cell has finished computing. */
  async idle(): Promise<void> { await this.graph?.idle(); }

  // ---------------------------------------------------------------------------------------------
  // Opening

  private async start(): Promise<void> {
    const hash = this.hash ?? location.hash;
    const p = this.params;
    // ?demo=<slug> (or ?notebook=demos/<slug>.md): a demo notebook bundled with the app (the gallery)
    const demo = findDemo(p.get('demo'), p.get('notebook'));
    const nbUrl = demo ? `demos/${demo.slug}.md` : p.get('notebook');
    if (p.has('gallery')) this.panel = 'demos';
    // A notebook opened by URL keeps its edits in its own slot: reloading ?notebook=X brings back
    // the edited X, and the user's own notebook (slot 'current') is left alone.
    this.autosave = new Autosave({ id: nbUrl ? `${this.autosaveId}:${nbUrl}` : this.autosaveId, onStatus: (s) => { this.saveStatus = s; } });
    let text = WELCOME, readonly = false, shared = false, foreign = false;
    try {
      const fromLink = hash.startsWith('#nb=') ? await openShared(hash) : null;
      if (fromLink) { text = fromLink.text; readonly = true; shared = true; }
      else {
        const saved = await this.autosave.restore();
        if (saved) text = saved.text;
        else if (demo) text = dataUrlText(demo.url) ?? (await openUrl(demo.url)).text;
        else if (nbUrl) text = (await openUrl(nbUrl)).text;
        if (nbUrl && !demo) foreign = new URL(nbUrl, location.href).origin !== location.origin;
      }
    } catch (e) {
      this.message = `The notebook could not be opened: ${errorText(e)}. Showing the welcome notebook instead.`;
    }
    this.setDocument(new NotebookDocument(text, { readonly }));
    if (text === WELCOME) void this.welcome();
    // A model named by a shared notebook, or by one from another site, is offered, not fetched.
    await this.namedByNotebook(p.get('model'), (shared || foreign) && !p.get('model'));
  }

  /** Loads (or offers, when `ask`) the model `?model=` or the notebook's front matter names. */
  private async namedByNotebook(param: string | null, ask: boolean): Promise<void> {
    const fm = this.doc!.notebook.frontMatter?.values['model'];
    const name = param ?? (typeof fm === 'string' ? fm : '');
    if (!name) return;
    const ids = await loadCatalog('/models.json').then((c) => new Set(c.models.map((m) => m.id)), () => new Set<string>());
    const m = namedModel(name, ids, location.origin, ask);
    if (!m) this.loadError = `"${name}" is not a catalog model or a URL the app can load (https, or a path on this site).`;
    else if (this.model && (this.model.entry?.id === name || this.model.label === m.label)) return;
    else if (m.ask) this.ask = m;
    else void this.loadModel(m.source, m.label);
  }

  /** The first-run banner: the welcome notebook's model and its download size (from the catalog). */
  private async welcome(): Promise<void> {
    try { if (localStorage.getItem('glassbox.welcome.hidden') === '1') return; } catch { /* storage off: show it */ }
    const fm = this.doc?.notebook.frontMatter?.values['model'];
    const id = this.params.get('model') ?? (typeof fm === 'string' ? fm : '');
    this.firstRun = { label: id, bytes: null };
    const entry = await loadCatalog('/models.json').then((c) => c.models.find((m) => m.id === id), () => undefined);
    if (entry && this.firstRun) this.firstRun = { label: entry.name, bytes: entry.files.reduce((a, f) => a + f.size, 0) };
  }

  private hideWelcome(): void {
    this.firstRun = null;
    try { localStorage.setItem('glassbox.welcome.hidden', '1'); } catch { /* nothing to keep it in */ }
  }

  /** Shows tour step i (out of range: ends the tour), its target scrolled into view, focus on the dialog. */
  startTour(i = 0): void {
    if (i < 0 || i >= TOUR.length) { this.endTour(); return; }
    this.tour = i;
    this.panel = null;
    void this.updateComplete.then(() => {
      const step = TOUR[i]!, id = this.nb ? tourCell(step, this.nb.cells) : null;
      const target = id ? this.renderRoot.querySelector<HTMLElement>(`[data-cell="${id}"]`)
        : this.renderRoot.querySelector<HTMLElement>('header');
      target?.scrollIntoView?.({ block: 'nearest' });
      this.renderRoot.querySelector<HTMLElement>('.tour')?.focus();
    });
  }

  private endTour(): void {
    this.tour = null;
    // focus back where the tour was started from (the banner's button, else the help button)
    void this.updateComplete.then(() => (this.renderRoot.querySelector<HTMLElement>('[data-testid=tour-button]')
      ?? this.renderRoot.querySelector<HTMLElement>('button[aria-label="Keyboard shortcuts"]'))?.focus());
  }

  /** A link in a demo's prose to another demo ("attention.md") opens that demo in the app. */
  private onLinkClick = (e: MouseEvent): void => {
    if (e.defaultPrevented || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey) return;
    const a = e.composedPath().find((t): t is HTMLAnchorElement => t instanceof HTMLAnchorElement);
    const d = a ? demoLink(a.getAttribute('href') ?? '') : null;
    if (!d) return;
    e.preventDefault();
    location.assign(demoHref(d, this.search ?? location.search));
  };

  private setDocument(doc: NotebookDocument): void {
    this.generation.cancel(undefined, 'another notebook was opened');
    this.unsubscribe?.();
    this.graph?.dispose();
    this.doc = doc;
    this.states = new Map();
    this.graph = new ReactiveGraph({
      compute: (ctx) => computeCell(ctx, this.client, this.runs, this.model),
      onState: (id, st) => { const m = new Map(this.states); m.set(id, st); this.states = m; },
      checkContext: () => (this.model ? { config: this.model.config } : {}),
    });
    if (this.model) this.graph.setInput('model', this.model);
    this.unsubscribe = doc.subscribe((c) => this.onChange(c));
    this.nb = doc.notebook;
    this.graph.update(shownCells(doc.notebook));
  }

  private onChange(c: DocumentChange): void {
    this.nb = c.notebook;
    this.graph?.update(shownCells(c.notebook));
    if (!this.doc?.readonly) this.autosave?.schedule(this.doc!.text);
  }

  private async loadModel(source: PickDetail['source'], label: string): Promise<void> {
    if (this.pageHidden) { this.resumeWith = this.lastAsked = { source, label }; return; }
    this.ask = null;
    this.loadError = '';
    this.lastAsked = { source, label };
    this.client ??= createEngineClient({
      ...(this.createWorker ? { createWorker: this.createWorker } : {}),
      onRecover: (e) => {
        if (e.error) {
          this.message = `The engine stopped (${e.reason}) and was restarted, but the model could not be loaded again: ${errorText(e.error)}. Your notebook is unchanged; pick the model again.`;
        } else {
          this.message = `The engine stopped (${e.reason}) and was restarted${e.reloaded ? '; the model was loaded again and the cells recomputed' : ''}. Your notebook is unchanged.`;
        }
      },
      onBackendChange: (info) => {
        if (!this.model || info.key !== this.model.key) return;
        this.model = { ...this.model, backend: info.backend, backendReason: info.backendReason };
        this.message = info.backend === 'cpu'
          ? `The GPU stopped working (${(info.backendReason ?? '').replace(/^WebGPU failed, continuing on the CPU: /, '') || 'WebGPU failed'}). The model now runs on the CPU: the same numbers, only slower. Your notebook is unchanged; reload the page to try the GPU again.`
          : `The model runs on ${info.backend === 'webgpu' ? 'the GPU (WebGPU)' : 'the CPU'} again.`;
      },
    });
    const id = `load-${++this.loads}`;
    this.generation.cancel(undefined, 'another model is loading');
    this.loading = { label, progress: null, id };
    const t0 = performance.now();
    try {
      const info = await this.client.load(source, {
        backend: this.backend, requestId: id,
        onProgress: (p) => { if (this.loading?.id === id) this.loading = { label, progress: p, id }; },
      });
      if (this.loading?.id !== id) return;
      this.runs.reset();
      forgetPatchGrids();
      this.loadMs += performance.now() - t0;
      this.model = info;
      this.graph?.setInput('model', info);
    } catch (e) {
      // (an error that names the file or URL already is not prefixed with it again)
      if (this.loading?.id === id) { const text = errorText(e); this.loadError = text.startsWith(label) ? text : `${label}: ${text}`; }
    } finally {
      if (this.loading?.id === id) this.loading = null;
      void this.renderRoot.querySelector<HTMLElement & { refresh(): Promise<void> }>('glassbox-model-picker')?.refresh();
    }
  }

  private cancelLoad(): void {
    if (this.loading) void this.client?.cancel(this.loading.id);
    this.loading = null;
  }

  private onPick(e: CustomEvent<PickDetail>): void {
    this.panel = null;
    if (this.doc && !this.doc.readonly) this.doc.setFrontMatter('model', e.detail.name);
    void this.loadModel(e.detail.source, e.detail.label);
  }

  // ---------------------------------------------------------------------------------------------
  // Generation: a generate cell's element asks, the page steps and writes the tree back

  private onGenerate = (e: Event): void => {
    const d = (e as CustomEvent<GenerateAction>).detail;
    if (!d || typeof d.cellId !== 'string') return;
    d.done = this.generation.handle(d);
  };

  /** A generate cell's prompt tokens (its prompt's finished output) and sampler settings. */
  private generateInputs(id: string) {
    const doc = this.doc, graph = this.graph;
    const cell = doc?.cell(id);
    if (!doc || !graph || !cell || cell.kind !== 'generate') return 'the cell is gone';
    if (doc.readonly) return 'this shared notebook is read-only: make a copy to generate';
    const dep = graph.dependencies(id).find((d) => d.cell !== undefined && d.key === undefined);
    const st = dep?.cell ? graph.state(dep.cell) : undefined;
    if (!st) return 'it has no prompt to read';
    if (st.status !== 'done') return 'its prompt is still being computed (or failed)';
    const tok = st.output as Tokenized | null;
    if (!tok || !Array.isArray(tok.ids) || tok.ids.length === 0) return 'its prompt has no tokens';
    const ref = cell.settings['sampler'];
    const from = typeof ref === 'string' ? doc.notebook.cells.find((c) => c.kind === 'sampling' && (c.id === ref || c.settings['name'] === ref)) : undefined;
    if (typeof ref === 'string' && !from) return `"sampler: ${ref}" names no sampling cell`;
    return { promptIds: tok.ids, settings: cell.settings, sampler: from?.settings ?? cell.settings };
  }

  private writeGeneration(id: string, tree: BranchTree, branch: string): void {
    const doc = this.doc;
    const cell = doc?.cell(id);
    if (!doc || doc.readonly || !cell) return;
    doc.setSetting(id, 'branches', tree.list().length === 1 && tree.get(tree.rootId).tokens.length === 0 && !tree.get(tree.rootId).stopped ? undefined : encodeTree(tree));
    const now = cell.settings['branch'];
    const value = branch === tree.rootId ? undefined : branch;
    if (now !== value) doc.setSetting(id, 'branch', value);
  }

  // ---------------------------------------------------------------------------------------------
  // Toolbar actions

  private async openText(text: string, what: string): Promise<void> {
    this.dropShareHash();
    this.setDocument(new NotebookDocument(text));
    this.autosave?.schedule(text, 0);
    this.message = `Opened ${what}.`;
    // A file from elsewhere may name any model: offer it, never fetch it unasked.
    await this.namedByNotebook(null, true);
  }

  private async onFile(e: Event): Promise<void> {
    const input = e.target as HTMLInputElement;
    const f = input.files?.[0];
    input.value = '';
    if (f) await this.openBlob(f);
  }

  private async openBlob(f: File): Promise<void> {
    try {
      const { text, name } = await openFile(f);
      await this.openText(text, name);
    } catch (e) { this.message = errorText(e); }
  }

  private onDrop(e: DragEvent): void {
    e.preventDefault();
    this.over = false;
    const f = e.dataTransfer?.files[0];
    if (f) void this.openBlob(f);
  }

  private save(): void {
    if (!this.doc) return;
    downloadNotebook(this.doc.text, notebookFileName(this.doc.notebook.frontMatter?.values['title']));
  }

  private async share(): Promise<void> {
    if (!this.doc) return;
    try {
      this.shareUrl = await shareLink(this.doc.text, location.href.replace(/[?#].*$/, ''));
      try { await navigator.clipboard.writeText(this.shareUrl); this.message = 'Share link copied. It holds the whole notebook; nothing is sent to a server.'; }
      catch { this.message = 'Share link ready below: copy it from the field.'; }
    } catch (e) {
      this.shareUrl = '';
      this.message = errorText(e);
    }
  }

  private exportFile(): void {
    if (!this.nb) return;
    const text = exportHtml(this.nb, this.states, this.model);
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([text], { type: 'text/html' }));
    a.download = notebookFileName(this.nb.frontMatter?.values['title']).replace(/\.md$/, '.html');
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }

  private makeCopy(): void {
    if (!this.doc) return;
    this.setDocument(this.doc.makeCopy());
    this.autosave?.schedule(this.doc.text, 0);
    this.dropShareHash();
    this.message = 'This is your copy now: edits are saved in this browser.';
  }

  /** Once the notebook is the user's own, the address no longer carries the shared one. */
  private dropShareHash(): void {
    if (this.hash === null && location.hash.startsWith('#nb=')) history.replaceState(null, '', location.pathname + location.search);
    this.hash = '';
  }

  private addCell(): void {
    const doc = this.doc;
    if (!doc || doc.readonly) return;
    const cells = doc.notebook.cells;
    const at = this.selected ? cells.findIndex((c) => c.id === this.selected) + 1 : cells.length;
    const settings: Record<string, string> = this.addKind === 'markdown' ? { text: 'New text: click Edit to write.' } : this.addKind === 'prompt' ? { text: 'Once upon a time' } : {};
    try {
      const id = doc.insertCell(at <= 0 ? cells.length : at, this.addKind, settings);
      this.selected = id;
      void this.updateComplete.then(() => this.renderRoot.querySelector<HTMLElement>(`[data-cell="${id}"]`)?.focus());
    } catch (e) { this.message = errorText(e); }
  }

  private move(id: string, by: number): void {
    const doc = this.doc;
    if (!doc || doc.readonly) return;
    const i = doc.notebook.cells.findIndex((c) => c.id === id);
    const to = i + by;
    if (i < 0 || to < 0 || to >= doc.notebook.cells.length) return;
    doc.moveCell(id, to);
    void this.updateComplete.then(() => this.renderRoot.querySelector<HTMLElement>(`[data-cell="${id}"]`)?.focus());
  }

  /** Ctrl+Enter: every cell that reads the model computes again, with fresh model runs. */
  private rerun(): void {
    this.runs.reset();
    forgetPatchGrids();
    if (this.model) this.graph?.setInput('model', { ...this.model });
  }

  private onKey = (e: KeyboardEvent): void => {
    const mod = e.ctrlKey || e.metaKey;
    const inText = e.composedPath().some((t) => t instanceof HTMLTextAreaElement || (t instanceof HTMLInputElement && t.type !== 'checkbox'));
    const k = e.key.toLowerCase();
    let done = true;
    if (mod && k === 'z' && !e.shiftKey) this.doc?.undo();
    else if (mod && ((k === 'z' && e.shiftKey) || k === 'y')) this.doc?.redo();
    else if (e.altKey && k === 'n') this.addCell();
    else if (e.altKey && k === 'm') this.panel = 'models';
    else if (e.altKey && (e.key === 'ArrowUp' || e.key === 'ArrowDown') && this.selected) this.move(this.selected, e.key === 'ArrowUp' ? -1 : 1);
    else if (mod && e.key === 'Enter') this.rerun();
    else if (e.key === '?' && !inText) this.panel = this.panel === 'help' ? null : 'help';
    else if (e.key === 'Escape' && this.tour !== null) this.endTour();
    else if (e.key === 'Escape' && this.panel) this.panel = null;
    else done = false;
    if (done) e.preventDefault();
  };

  // ---------------------------------------------------------------------------------------------
  // Drawing

  private renderLoading() {
    const l = this.loading;
    if (!l) return nothing;
    const p = l.progress;
    let value: number | null = null, max = 1, text = `Loading ${l.label}…`;
    if (p?.stage === 'download') { value = p.download.received; max = p.download.total ?? 0; text = progressText(p.download); }
    else if (p?.stage === 'weights') { value = p.loaded; max = p.total; text = `Reading weights: ${Math.round((100 * p.loaded) / Math.max(1, p.total))}%`; }
    else if (p?.stage === 'backend') text = `Setting up the ${p.backend === 'webgpu' ? 'GPU' : 'CPU'} backend…`;
    return html`<div class="loading" role="status">
      ${value === null || !max ? html`<progress aria-label="Loading ${l.label}"></progress>`
        : html`<progress aria-label="Loading ${l.label}" .value=${value} max=${max}></progress>`}
      <span>${text}</span><button @click=${this.cancelLoad}>Cancel</button></div>`;
  }

  private renderToolbar() {
    const doc = this.doc, ro = doc?.readonly ?? true;
    const m = this.model;
    const save = this.saveStatus;
    const tourBar = this.tour !== null && (TOUR[this.tour]!.target === 'toolbar' || TOUR[this.tour]!.target === 'demos');
    return html`<header role="toolbar" aria-label="Notebook" class=${tourBar ? 'tour-target' : ''}>
      <span class="brand">glassbox</span>
      <label class="button" role="button" tabindex="0" @keydown=${(e: KeyboardEvent) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); (e.currentTarget as HTMLElement).querySelector('input')!.click(); } }}>
        Open<input type="file" accept=".md,.markdown,text/markdown,text/plain" @change=${this.onFile} hidden></label>
      <button @click=${this.save} title="Download the notebook as Markdown">Save</button>
      <button @click=${this.share} title="Copy a link that holds the whole notebook">Share</button>
      <button @click=${this.exportFile} title="Download a standalone HTML page">Export</button>
      <span class="group">
        <label for="kind" class="sr">Kind of cell to add</label>
        <select id="kind" .value=${this.addKind} @change=${(e: Event) => { this.addKind = (e.target as HTMLSelectElement).value; }} ?disabled=${ro}>
          ${cellKinds.list().map((k) => html`<option value=${k.kind} ?selected=${k.kind === this.addKind}>${k.label}</option>`)}
        </select>
        <button @click=${this.addCell} ?disabled=${ro} title="Alt+N">Add cell</button>
      </span>
      <button @click=${() => doc?.undo()} ?disabled=${!doc?.canUndo} title="Ctrl+Z" aria-label="Undo">↶</button>
      <button @click=${() => doc?.redo()} ?disabled=${!doc?.canRedo} title="Ctrl+Shift+Z" aria-label="Redo">↷</button>
      <span class="spacer"></span>
      <button class="model" title=${m ? `${m.label} — pick another model` : 'Pick a model'} @click=${() => { this.panel = this.panel === 'models' ? null : 'models'; }} aria-expanded=${this.panel === 'models'} data-testid="model-button">
        ${m ? modelName(m) : 'Pick a model'}</button>
      <span class="badge" data-testid="backend" title=${m ? (m.backendReason ?? 'WebGPU is available and the model fits') : 'No model loaded'}>
        ${m ? (m.backend === 'webgpu' ? 'WebGPU' : 'CPU') : '—'}</span>
      <span class="save" aria-live="polite" title=${save?.state === 'error' ? save.message : ''}>${ro ? 'read-only' : save?.state === 'pending' ? 'saving…' : save?.state === 'error' ? 'not saved' : 'saved'}</span>
      <button @click=${() => { this.panel = this.panel === 'help' ? null : 'help'; }} aria-label="Keyboard shortcuts" aria-expanded=${this.panel === 'help'}>?</button>
      <a href="?inspect" class="button" title="The model-file inspector">Inspector</a>
    </header>`;
  }

  private renderPanel() {
    if (this.panel === 'demos') return galleryPanel(this.search ?? location.search, () => { this.panel = null; });
    if (this.panel === 'models') {
      return html`<section class="panel" aria-label="Models"><button class="close" @click=${() => { this.panel = null; }} aria-label="Close the model picker">×</button>
        ${this.model ? html`<p class="note">Backend: <b>${this.model.backend === 'webgpu' ? 'WebGPU' : 'CPU'}</b>${this.model.backendReason ? ` — ${this.model.backendReason}` : ''}</p>` : nothing}
        <glassbox-model-picker @pick=${this.onPick}></glassbox-model-picker></section>`;
    }
    if (this.panel === 'help') {
      return html`<section class="panel" role="dialog" aria-label="Keyboard shortcuts"><button class="close" @click=${() => { this.panel = null; }} aria-label="Close the help">×</button>
        <p><button @click=${() => this.startTour(0)} data-testid="tour-help">Take the tour of the interface</button>
          <button @click=${() => { this.panel = 'demos'; }} data-testid="demos-help">Demos: teaching notebooks</button></p>
        <h2>Keyboard shortcuts</h2><dl>${SHORTCUTS.map(([k, v]) => html`<dt><kbd>${k}</kbd></dt><dd>${v}</dd>`)}</dl>
        <p class="note">Every control is reachable with Tab; buttons act on Enter or Space.</p></section>`;
    }
    return nothing;
  }

  private renderCell(cell: Notebook['cells'][number], i: number, n: number) {
    const doc = this.doc!, ro = doc.readonly;
    const st = this.states.get(cell.id) ?? null;
    const tag = unsafeStatic(elementFor(cell.kind));
    const editing = this.editing.has(cell.id);
    const toggleEdit = () => { const s = new Set(this.editing); if (editing) s.delete(cell.id); else s.add(cell.id); this.editing = s; };
    const problems = cell.problems.filter((p) => p.severity === 'error');
    const toured = this.tour !== null && this.nb !== null && tourCell(TOUR[this.tour]!, this.nb.cells) === cell.id;
    return html`<section class="cell ${this.selected === cell.id ? 'selected' : ''} ${toured ? 'tour-target' : ''}" data-cell=${cell.id} data-kind=${cell.kind} tabindex="-1"
        aria-label="${cellKinds.get(cell.kind)?.label ?? cell.kind} cell ${i + 1} of ${n}" @focusin=${() => { this.selected = cell.id; }}>
      ${ro ? nothing : html`<div class="cell-tools">
        ${cell.kind === 'markdown' ? html`<button @click=${toggleEdit} aria-pressed=${editing}>${editing ? 'Done' : 'Edit'}</button>` : nothing}
        <button @click=${() => this.move(cell.id, -1)} ?disabled=${i === 0} aria-label="Move cell up" title="Alt+↑">↑</button>
        <button @click=${() => this.move(cell.id, 1)} ?disabled=${i === n - 1} aria-label="Move cell down" title="Alt+↓">↓</button>
        <button @click=${() => doc.removeCell(cell.id)} aria-label="Delete cell">✕</button></div>`}
      ${editing ? html`<textarea class="prose-edit" aria-label="Markdown text" .value=${String(cell.settings['text'] ?? '')}
          @input=${(e: Event) => doc.setText(cell.id, (e.target as HTMLTextAreaElement).value)}></textarea>` : nothing}
      ${problems.length ? html`<ul class="problems" role="alert">${problems.map((p) => html`<li>${p.message}</li>`)}</ul>` : nothing}
      ${staticHtml`<${tag} .cell=${cell} .state=${st} .doc=${doc} .model=${this.model}></${tag}>`}
    </section>`;
  }

  override render() {
    const doc = this.doc, nb = this.nb;
    return html`<div class="app ${this.over ? 'over' : ''}" @dragover=${(e: DragEvent) => { e.preventDefault(); this.over = true; }}
        @dragleave=${() => { this.over = false; }} @drop=${this.onDrop}>
      ${this.renderToolbar()}
      ${this.renderLoading()}
      ${this.renderPanel()}
      <main>
        ${this.firstRun ? firstRunBanner(this.firstRun, this.model, this.loading !== null, {
          tour: () => this.startTour(0), demos: () => { this.panel = 'demos'; }, models: () => { this.panel = 'models'; }, dismiss: () => this.hideWelcome(),
        }) : nothing}
        ${this.message ? html`<p class="message" role="status">${this.message} <button @click=${() => { this.message = ''; }} aria-label="Dismiss">×</button></p>` : nothing}
        ${this.shareUrl ? html`<p class="message"><label>Share link <input readonly .value=${this.shareUrl} @focus=${(e: Event) => (e.target as HTMLInputElement).select()} data-testid="share-url"></label>
          <button @click=${() => { this.shareUrl = ''; }} aria-label="Close the share link">×</button></p>` : nothing}
        ${this.loadError ? html`<p class="error" role="alert" data-testid="load-error">${this.loadError}
          ${this.lastAsked && !this.loading ? html`<button @click=${() => this.lastAsked && this.loadModel(this.lastAsked.source, this.lastAsked.label)}>Retry</button>` : nothing}</p>` : nothing}
        ${this.saveStatus?.state === 'error' && !doc?.readonly ? html`<p class="error" role="alert" data-testid="save-error">${this.saveStatus.message}
          <button @click=${this.save}>Download the notebook (.md)</button></p>` : nothing}
        ${this.ask ? html`<div class="ask" role="alertdialog" aria-label="Load this model?">
            <p>This notebook asks to load <b>${this.ask.label}</b>. It comes from ${this.ask.source.kind === 'url' ? 'another site' : 'a shared notebook'}: load it only if you trust it.</p>
            <button @click=${() => this.ask && this.loadModel(this.ask.source, this.ask.label)}>Load it</button>
            <button @click=${() => { this.ask = null; }}>Not now</button></div>` : nothing}
        ${doc?.readonly ? html`<div class="readonly" role="note">This shared notebook is read-only.
            <button @click=${this.makeCopy}>Make a copy</button></div>` : nothing}
        ${nb && cellLimitMessage(nb.cells.length) ? html`<p class="error" role="alert" data-testid="cell-limit">${cellLimitMessage(nb.cells.length)}</p>` : nothing}
        ${nb ? shownCells(nb).cells.map((c, i, shown) => this.renderCell(c, i, shown.length)) : html`<p class="note">Opening…</p>`}
      </main>
      ${this.tour !== null ? tourDialog(this.tour, { step: (i) => this.startTour(i), close: () => this.endTour() }) : nothing}
    </div>`;
  }
}
