// <glassbox-steer>: a steering vector and what it does to generation. The vector is the mean
// difference of blocks.L.hook_resid_post between the `positive` and the `negative` prompts (or a
// llama.cpp control-vector GGUF loaded from disk, kept in the notebook as base64 in `vector`); it
// is added × `strength` at the chosen `layers`, and the prompt above is continued twice, without
// and with it, with the same sampler and seed, side by side.
//
// The page computes the output (src/app/steer.ts); every setting changes what is generated, so
// there are no view keys. The strength slider writes on release (`change`), not while dragging
// (`input` only moves the number beside it), like the sampler knobs: a drag is one recompute,
// and a newer one aborts the older through the graph's AbortSignal.

import { LitElement, css, html, nothing, unsafeCSS } from 'lit';
import { customElement, property, state } from 'lit/decorators.js';
import { live } from 'lit/directives/live.js';
import { unsafeSVG } from 'lit/directives/unsafe-svg.js';
import { cellCss, errorText, modelName, statusOf, type CellProps, figureFrame } from './common.ts';
import { download, slug, type FigureExport } from './plot/figure.ts';
import {
  DEFAULT_STEER_TOKENS, MAX_STEER_TOKENS, parseLayerSpec, STRENGTH_RANGE, steerExport, steerModel, steerSvg, type SteerOutput,
} from './plot/steer.ts';
import { MAX_VECTOR_BYTES, readVectorBytes, toBase64, vectorFile } from '../src/app/steer.ts';
import { UsageError } from '../src/engine/errors.ts';
import type { Cell } from '../src/notebook/format.ts';
import type { CellState } from '../src/notebook/graph.ts';
import type { NotebookDocument } from '../src/notebook/document.ts';
import type { ModelInfo } from '../src/engine/api.ts';
import type { Value } from '../src/notebook/settings.ts';

const FIG_WIDTH = 720;

const lines = (v: unknown): string => (Array.isArray(v) ? v.join('\n') : typeof v === 'string' ? v : '');

@customElement('glassbox-steer')
export class GlassboxSteer extends LitElement implements CellProps {
  static override styles = [unsafeCSS(cellCss), css`
    textarea { font: inherit; font-size: 13px; width: 22em; min-height: 3.2em; }
    input[type=text] { width: 7em; font: inherit; }
    input[type=number] { width: 5em; font: inherit; }
    input[type=range] { width: 12em; }
    input[aria-invalid=true] { outline: 2px solid #c0392b; }
    input:focus-visible, button:focus-visible, summary:focus-visible, textarea:focus-visible, select:focus-visible { outline: 2px solid var(--accent, #36c); outline-offset: 1px; }
    .prompts { display: flex; flex-wrap: wrap; gap: 8px 16px; font-size: 13px; }
    .prompts label { display: flex; flex-direction: column; gap: 2px; }
    .file { display: flex; flex-wrap: wrap; gap: 6px 12px; align-items: center; font-size: 13px; margin: 4px 0; }
    .fig svg { max-width: 100%; height: auto; display: block; }
    .stale { opacity: .55; }
    .bad { color: #c0392b; font-size: 12px; }
    output { font-variant-numeric: tabular-nums; min-width: 3em; display: inline-block; }
  `];

  @property({ attribute: false }) cell: Cell | null = null;
  @property({ attribute: false }) state: CellState | null = null;
  @property({ attribute: false }) doc: NotebookDocument | null = null;
  @property({ attribute: false }) model: ModelInfo | null = null;

  /** Why the last file could not be loaded (it was not written to the notebook), or why a save failed. */
  @state() fileError: string | null = null;
  /** The slider's value while it is dragged (written on release). */
  @state() private dragging: number | null = null;
  @state() private layersBad: string | null = null;

  private get output(): SteerOutput | null {
    const o = this.state?.output as SteerOutput | null | undefined;
    return o && o.directions instanceof Map && o.plain && o.steered ? o : null;
  }

  private get editable(): boolean { return !!this.cell && !!this.doc && !this.doc.readonly; }

  private set(key: string, value: Value | undefined): void {
    if (this.cell && this.doc && !this.doc.readonly) this.doc.setSetting(this.cell.id, key, value);
  }

  exportFigure(): FigureExport | null {
    const o = this.output;
    return o ? steerExport(o, { width: FIG_WIDTH }) : null;
  }

  /** Reads a control-vector file: checked against the model, then kept in the notebook (base64). */
  async loadFile(file: File): Promise<void> {
    this.fileError = null;
    try {
      if (!this.model) throw new UsageError(file.name, 'cannot be checked: no model is loaded', 'Load a model first');
      if (file.size > MAX_VECTOR_BYTES) {
        throw new UsageError(file.name, `is ${(file.size / 2 ** 20).toFixed(1)} MiB; at most ${MAX_VECTOR_BYTES / 2 ** 20} MiB are kept in a notebook`, 'Use a control vector with fewer layers');
      }
      const bytes = new Uint8Array(await file.arrayBuffer());
      await readVectorBytes(bytes, file.name, this.model.config);
      this.set('vector_file', file.name);
      this.set('vector', toBase64(bytes));
    } catch (e) {
      this.fileError = errorText(e);
    }
  }

  /** Downloads the vector applied now as a control-vector GGUF. */
  saveFile(): void {
    const o = this.output;
    if (!o) return;
    this.fileError = null;
    try {
      const bytes = vectorFile(o, this.model?.config.arch ?? 'llama');
      const name = typeof this.cell?.settings['name'] === 'string' ? this.cell.settings['name'] : this.cell?.id ?? 'steer';
      download(`${slug(name)}.${this.model ? slug(modelName(this.model)) : 'model'}.gguf`, new Blob([bytes as Uint8Array<ArrayBuffer>], { type: 'application/octet-stream' }));
    } catch (e) {
      this.fileError = errorText(e);
    }
  }

  private onLayers(e: Event): void {
    const input = e.target as HTMLInputElement;
    const text = input.value.trim();
    let bad: string | null = null;
    if (text && this.model) {
      try { parseLayerSpec(text, this.model.config.nLayers); } catch (err) { bad = (err as Error).message; }
    }
    input.setAttribute('aria-invalid', String(!!bad));
    this.layersBad = bad;
    if (!bad) this.set('layers', text === '' ? undefined : text);
  }

  private num(key: string, ok: (v: number) => boolean, dflt: number) {
    return (e: Event) => {
      const input = e.target as HTMLInputElement;
      const v = input.value.trim() === '' ? dflt : Number(input.value);
      const good = Number.isFinite(v) && ok(v);
      input.setAttribute('aria-invalid', String(!good));
      if (good) this.set(key, v === dflt ? undefined : v);
    };
  }

  private controls(ro: boolean) {
    const s = this.cell?.settings ?? {};
    const fromFile = typeof s['vector'] === 'string' && s['vector'] !== '';
    const fileName = typeof s['vector_file'] === 'string' ? s['vector_file'] : 'the notebook';
    const strength = this.dragging ?? (typeof s['strength'] === 'number' ? s['strength'] : 1);
    const layers = Array.isArray(s['layers']) ? s['layers'].join(', ') : s['layers'] === undefined ? '' : String(s['layers']);
    const onPrompts = (key: 'positive' | 'negative') => (e: Event) => {
      const list = (e.target as HTMLTextAreaElement).value.split('\n').map((x) => x.trim()).filter((x) => x !== '');
      this.set(key, list.length ? list : undefined);
    };
    return html`
      ${fromFile ? html`<div class="file" data-testid="from-file"><span>vector from file <b class="mono">${fileName}</b> (it replaces the prompts' vector)</span>
          <button ?disabled=${ro} @click=${() => { this.set('vector', undefined); this.set('vector_file', undefined); }}>clear</button></div>`
        : html`<div class="prompts">
          <label>positive prompts (one per line)<textarea aria-label="Positive prompts, one per line" ?disabled=${ro} .value=${live(lines(s['positive']))} @change=${onPrompts('positive')}></textarea></label>
          <label>negative prompts (one per line)<textarea aria-label="Negative prompts, one per line" ?disabled=${ro} .value=${live(lines(s['negative']))} @change=${onPrompts('negative')}></textarea></label>
        </div>`}
      <div class="controls">
        <label title="Layers whose output (hook_resid_post) gets the vector: 2-4, or 1, 3 (default every layer from 1)">layers
          <input type="text" placeholder="all" aria-label="Layers to steer" .value=${live(layers)} ?disabled=${ro} @change=${(e: Event) => this.onLayers(e)}></label>
        ${fromFile ? nothing : html`<label title="One row per prompt: the mean over its positions (BOS left out) or its last position">rows
          <select aria-label="How each prompt becomes one row" ?disabled=${ro} .value=${live(s['reduce'] === 'last' ? 'last' : 'mean')}
            @change=${(e: Event) => { const v = (e.target as HTMLSelectElement).value; this.set('reduce', v === 'mean' ? undefined : v); }}>
            <option value="mean">mean</option><option value="last">last</option></select></label>`}
        <label title="The vector's multiplier (written when the slider is released)">strength
          <input type="range" min=${STRENGTH_RANGE.min} max=${STRENGTH_RANGE.max} step=${STRENGTH_RANGE.step} aria-label="Strength" data-key="strength"
            .value=${live(String(strength))} ?disabled=${ro}
            @input=${(e: Event) => { this.dragging = Number((e.target as HTMLInputElement).value); }}
            @change=${(e: Event) => { const v = Number((e.target as HTMLInputElement).value); this.dragging = null; this.set('strength', v === 1 ? undefined : v); }}>
          <output>${strength.toFixed(1)}</output></label>
        <label>tokens <input type="number" min="1" max=${MAX_STEER_TOKENS} step="1" aria-label="Tokens to generate" ?disabled=${ro}
          .value=${live(String(typeof s['tokens'] === 'number' ? s['tokens'] : DEFAULT_STEER_TOKENS))}
          @change=${this.num('tokens', (v) => Number.isInteger(v) && v >= 1 && v <= MAX_STEER_TOKENS, DEFAULT_STEER_TOKENS)}></label>
        <label title="0: greedy (the comparison is deterministic)">temperature <input type="number" min="0" step="0.1" aria-label="Temperature" ?disabled=${ro}
          .value=${live(String(typeof s['temperature'] === 'number' ? s['temperature'] : 0))} @change=${this.num('temperature', (v) => v >= 0, 0)}></label>
        <label>seed <input type="number" min="0" step="1" aria-label="Seed" ?disabled=${ro}
          .value=${live(String(typeof s['seed'] === 'number' ? s['seed'] : 0))} @change=${this.num('seed', (v) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff, 0)}></label>
      </div>
      ${this.layersBad ? html`<div class="bad" role="status">${this.layersBad}</div>` : nothing}
      <div class="file">
        <label>load a control vector (.gguf)
          <input type="file" accept=".gguf" aria-label="Load a control vector GGUF" ?disabled=${ro || !this.model}
            @change=${(e: Event) => { const input = e.target as HTMLInputElement; const f = input.files?.[0]; input.value = ''; if (f) void this.loadFile(f); }}></label>
        <button ?disabled=${!this.output} @click=${() => this.saveFile()} title="The applied directions in llama.cpp's control-vector format">Save .gguf</button>
      </div>
      ${this.fileError ? html`<div class="error" role="alert" data-testid="file-error">${this.fileError}</div>` : nothing}`;
  }

  override render() {
    if (!this.cell) return nothing;
    const o = this.output;
    const ro = !this.editable;
    const { busy, err } = statusOf(this.state);
    const m = o && steerModel(o);
    return figureFrame({ cell: this.cell, state: this.state, doc: this.doc, model: this.model, output: o, busy, err, controls: this.controls(ro) }, {
      heading: m?.heading, exportFigure: () => this.exportFigure(),
      noModel: 'Load a model to steer it.', running: 'Computing the vector and generating with and without it…',
      figure: () => html`<div class="fig ${busy ? 'stale' : ''}" data-testid="figure" data-diverge=${m!.diverge}>${unsafeSVG(steerSvg(o!, { width: FIG_WIDTH, heading: false }))}</div>`,
    });
  }
}

declare global {
  interface HTMLElementTagNameMap { 'glassbox-steer': GlassboxSteer }
}
