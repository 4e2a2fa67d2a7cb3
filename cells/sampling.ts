// <glassbox-sampling>: one step of the sampler chain on a real model, stage by stage. The page
// computes the output once per prompt (SamplingOutput: the last position's logits row, the
// history and the pieces); every control here is a view setting written back into the notebook,
// and the figure is re-derived from the same logits by samplingModel (the engine's runChain),
// never by rerunning the model. The stage order is a list setting, reordered with buttons.

import { LitElement, css, html, nothing, unsafeCSS, type TemplateResult } from 'lit';
import { customElement, property } from 'lit/decorators.js';
import { live } from 'lit/directives/live.js';
import { repeat } from 'lit/directives/repeat.js';
import { unsafeSVG } from 'lit/directives/unsafe-svg.js';
import { cellCss, downloadFigure, errorText, statusOf, type CellProps, exportMenu } from './common.ts';
import { visible } from './prompt.ts';
import { linked } from './plot/linked.ts';
import type { FigureExport } from './plot/figure.ts';
import { fmt } from './plot/kit.ts';
import {
  DEFAULT_SHOW, KNOBS, type Knob, knobAccepts, MAX_SHOW, SAMPLER_KEYS, samplerSettings, samplingExport, samplingModel, samplingSvg, sig4, stageLabel,
  type SamplingModel, type SamplingOutput,
} from './plot/sampling.ts';
import { STAGES, type StageName } from '../src/engine/sampling/index.ts';
import type { Cell } from '../src/notebook/format.ts';
import type { CellState } from '../src/notebook/graph.ts';
import type { NotebookDocument } from '../src/notebook/document.ts';
import type { ModelInfo } from '../src/engine/api.ts';
import type { Value } from '../src/notebook/settings.ts';

/** The settings keys that only change the drawing (the page must not recompute for them). */
export const SAMPLING_VIEW_KEYS = [...SAMPLER_KEYS, 'show'] as const;

export const samplerCss = css`
  .knobs { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 13px; margin: 4px 0; }
  .knobs fieldset { border: 1px solid var(--line, #ddd); border-radius: 6px; padding: 2px 8px 6px; margin: 0; display: flex; gap: 4px 10px; flex-wrap: wrap; }
  .knobs legend { font-size: 12px; color: var(--muted, #666); }
  .knobs label { display: inline-flex; gap: 4px; align-items: center; }
  .knobs input[type=number] { width: 5.2em; font: inherit; }
  input[aria-invalid=true] { outline: 2px solid #c0392b; }
  .order { display: flex; flex-wrap: wrap; gap: 4px; list-style: none; padding: 0; margin: 4px 0; font-size: 13px; align-items: center; }
  .order li { display: inline-flex; align-items: center; gap: 2px; border: 1px solid var(--line, #ddd); border-radius: 6px; padding: 1px 4px; }
  .order button { font: inherit; font-size: 11px; padding: 0 4px; }
  input:focus-visible, select:focus-visible, button:focus-visible, summary:focus-visible { outline: 2px solid var(--accent, #36c); outline-offset: 1px; }
`;

type Setter = (key: string, value: Value | undefined) => void;

const GROUPS: [string, Knob['stage'][]][] = [
  ['temperature', ['temperature']], ['truncation', ['top_k', 'top_p', 'min_p', 'typ_p', 'top_n_sigma']], ['XTC', ['xtc']],
  ['penalties', ['penalties']], ['DRY', ['dry']], ['mirostat', ['mirostat']],
];

/** The sampler knobs, the seed and the stage order (shared by the sampling and generate cells). */
export function samplerControls(host: HTMLElement, settings: Readonly<Record<string, unknown>>, set: Setter, ro: boolean): TemplateResult {
  const onNum = (k: Knob) => (e: Event) => {
    const input = e.target as HTMLInputElement;
    const v = input.value.trim() === '' ? k.dflt : Number(input.value);
    const ok = knobAccepts(k, v);
    input.setAttribute('aria-invalid', String(!ok));
    if (ok) set(k.key, v === k.dflt ? undefined : v);
  };
  const value = (k: Knob) => { const v = settings[k.key]; return typeof v === 'number' ? v : k.dflt; };
  const s = samplerSettings(settings);
  const order = s.order;
  const writeOrder = (next: readonly StageName[], focus?: string) => {
    set('order', [...next]);
    if (focus) void (host as LitElement).updateComplete.then(() => host.shadowRoot?.querySelector<HTMLElement>(`[data-move="${focus}"]`)?.focus());
  };
  const move = (i: number, by: number) => {
    const next = [...order];
    const [x] = next.splice(i, 1);
    next.splice(i + by, 0, x!);
    writeOrder(next, `${x}:${by < 0 ? 'up' : 'down'}`);
  };
  const missing = STAGES.filter((x) => !order.includes(x));
  const seed = () => { const a = new Uint32Array(1); crypto.getRandomValues(a); set('seed', a[0]!); };
  return html`<div class="knobs">
      ${GROUPS.map(([name, stages]) => html`<fieldset><legend>${name}</legend>
        ${KNOBS.filter((k) => stages.includes(k.stage)).map((k) => html`<label title=${k.title}>${k.label}
          <input type="number" step=${k.step} min=${k.min} max=${k.max ?? nothing} aria-label=${`${k.label}: ${k.title}`} data-key=${k.key}
            .value=${live(String(value(k)))} ?disabled=${ro} @change=${onNum(k)}></label>`)}
      </fieldset>`)}
      <fieldset><legend>draw</legend><label title="The draw at position i is drawUniform(seed, i)">seed
        <input type="number" min="0" step="1" aria-label="Seed" data-key="seed" .value=${live(String(s.seed))} ?disabled=${ro}
          @change=${(e: Event) => { const v = Number((e.target as HTMLInputElement).value); const ok = Number.isInteger(v) && v >= 0 && v <= 0xffffffff; (e.target as HTMLInputElement).setAttribute('aria-invalid', String(!ok)); if (ok) set('seed', v === 0 ? undefined : v); }}></label>
        <button ?disabled=${ro} @click=${seed} title="A new random seed">new seed</button></fieldset>
    </div>
    <ol class="order" aria-label="Order of the sampler stages">
      <span class="note">order:</span>
      ${repeat(order, (x) => x, (x, i) => html`<li data-stage=${x}><span>${i + 1}. ${stageLabel(x)}</span>
        <button data-move=${`${x}:up`} aria-label=${`Move ${stageLabel(x)} earlier`} ?disabled=${ro || i === 0} @click=${() => move(i, -1)}>↑</button>
        <button data-move=${`${x}:down`} aria-label=${`Move ${stageLabel(x)} later`} ?disabled=${ro || i === order.length - 1} @click=${() => move(i, 1)}>↓</button>
        <button aria-label=${`Take ${stageLabel(x)} out of the chain`} ?disabled=${ro} @click=${() => writeOrder(order.filter((y) => y !== x))}>✕</button></li>`)}
      ${missing.length ? html`<label class="note">add <select aria-label="Add a stage to the end of the chain" ?disabled=${ro}
          @change=${(e: Event) => { const v = (e.target as HTMLSelectElement).value as StageName; if (v) writeOrder([...order, v]); }}>
          <option value="">stage…</option>${missing.map((x) => html`<option value=${x}>${stageLabel(x)}</option>`)}</select></label>` : nothing}
      <button ?disabled=${ro || settings['order'] === undefined} @click=${() => set('order', undefined)}>default order</button>
    </ol>
    ${s.ignored.length ? html`<p class="note" role="status">ignored (out of range): ${s.ignored.join(', ')}</p>` : nothing}`;
}

@customElement('glassbox-sampling')
export class GlassboxSampling extends LitElement implements CellProps {
  static override styles = [unsafeCSS(cellCss), samplerCss, css`
    .fig { overflow-x: auto; }
    .fig svg { display: block; max-width: none; }
    .stale { opacity: .55; }
    .stats { font-size: 13px; display: flex; flex-wrap: wrap; gap: 4px 18px; margin: 4px 0; }
  `];

  @property({ attribute: false }) cell: Cell | null = null;
  @property({ attribute: false }) state: CellState | null = null;
  @property({ attribute: false }) doc: NotebookDocument | null = null;
  @property({ attribute: false }) model: ModelInfo | null = null;
  /** How long the last figure model took (ms): the redraw after a control change, without the model. */
  lastModelMs = 0;

  private memo: { output: SamplingOutput; key: string; model: SamplingModel } | null = null;

  private get output(): SamplingOutput | null {
    const o = this.state?.output as SamplingOutput | null | undefined;
    return o && o.logits instanceof Float32Array ? o : null;
  }

  private get editable(): boolean { return !!this.cell && !!this.doc && !this.doc.readonly; }

  private set: Setter = (key, value) => {
    if (this.cell && this.doc && !this.doc.readonly) this.doc.setSetting(this.cell.id, key, value);
  };

  private get show(): number {
    const v = this.cell?.settings['show'];
    return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= MAX_SHOW ? v : DEFAULT_SHOW;
  }

  /** The figure's model, memoized on the output's identity and the settings it reads. */
  figureModel(): SamplingModel | null {
    const o = this.output;
    if (!o || !this.cell) return null;
    const s = this.cell.settings;
    const key = JSON.stringify([...SAMPLING_VIEW_KEYS].map((k) => s[k] ?? null));
    if (this.memo?.output !== o || this.memo.key !== key) {
      const t0 = performance.now();
      this.memo = { output: o, key, model: samplingModel(o.logits, s, o.history, { pieces: o.pieces, show: this.show }) };
      this.lastModelMs = performance.now() - t0;
    }
    return this.memo.model;
  }

  exportFigure(): FigureExport | null {
    const m = this.figureModel();
    return m ? samplingExport(m) : null;
  }

  private exportAs(ext: 'svg' | 'png' | 'csv' | 'json'): Promise<void> {
    return downloadFigure(this, this.exportFigure(), ext);
  }

  override render() {
    if (!this.cell) return nothing;
    const o = this.output;
    const ro = !this.editable;
    const { busy, err } = statusOf(this.state);
    const controls = samplerControls(this, this.cell.settings, this.set, ro);
    if (!o) {
      return html`${controls}${err}<p class="note">${!this.model ? 'Load a model to see the sampler at work.' : busy ? 'Computing the logits…' : 'No logits yet: this cell reads a prompt cell above it.'}</p>`;
    }
    let m: SamplingModel;
    try { m = this.figureModel()!; } catch (e) {
      return html`${controls}${err}<div class="error" role="alert">${errorText(e)}</div>`;
    }
    const hover = () => linked.hover({ token: o.position, prompt: o.prompt }, this.cell!.id);
    const leave = () => linked.leave(this.cell!.id);
    return html`${controls}
      <div class="top">
        <span class="heading" @mouseenter=${hover} @mouseleave=${leave}>next token after «${o.labels[o.position] ?? '?'}» (position ${o.position})</span>
        ${exportMenu((x) => this.exportAs(x))}
      </div>
      <div class="stats" data-testid="chosen" data-token=${m.token} data-u=${sig4(m.u)} data-p-before=${sig4(m.pBefore)} data-p-after=${sig4(m.pAfter)}>
        <span>drew <b class="mono">${visible(m.piece)}</b> (id ${m.token})</span>
        <span>u = ${m.u.toFixed(4)}</span>
        <span>p before ${fmt.prob(m.pBefore)} → after ${fmt.prob(m.pAfter)}</span>
        ${m.fallback ? html`<span role="status"><b>${stageLabel(m.fallback.stage)} left no candidates</b>: the argmax of the raw logits instead</span>` : nothing}
        <label class="note">rows per stage <input type="number" min="1" max=${MAX_SHOW} step="1" aria-label="Rows per stage" .value=${live(String(this.show))} ?disabled=${ro}
          @change=${(e: Event) => { const v = Number((e.target as HTMLInputElement).value); if (Number.isInteger(v) && v >= 1 && v <= MAX_SHOW) this.set('show', v === DEFAULT_SHOW ? undefined : v); }}></label>
        <span class="note" data-testid="redraw-ms">chain ${this.lastModelMs.toFixed(1)} ms</span>
      </div>
      ${err}
      ${busy ? html`<span class="note">updating…</span>` : nothing}
      <div class="fig ${busy ? 'stale' : ''}" data-testid="figure">${unsafeSVG(samplingSvg(m))}</div>`;
  }
}

declare global {
  interface HTMLElementTagNameMap { 'glassbox-sampling': GlassboxSampling }
}
