// <glassbox-next-token>: the distribution of the next token at one position of a prompt, as bars
// of probability before and after the sampler's filters, with live temperature, top-k, top-p and
// min-p controls, the entropy, and the rank of a token the user types.
//
// The page computes the output once per prompt, position and target (NextTokenOutput: the raw
// logits row). The sampler controls are view settings: they are written back into the notebook
// and the figure is re-derived from the same logits by pure functions (cells/plot/next-token.ts),
// never by rerunning the model. Clicking a token in another cell (the linked selection) moves the
// position there.

import { LitElement, css, html, nothing, unsafeCSS } from 'lit';
import { customElement, property } from 'lit/decorators.js';
import { live } from 'lit/directives/live.js';
import { unsafeSVG } from 'lit/directives/unsafe-svg.js';
import { cellCss, downloadFigure, modelName, statusOf, type CellProps, exportMenu } from './common.ts';
import { visible } from './prompt.ts';
import { LinkedController, linked, type Selection } from './plot/linked.ts';
import type { FigureExport } from './plot/figure.ts';
import { fmt } from './plot/kit.ts';
import {
  cutLabel, DEFAULT_VIEW, MAX_SHOW, nextTokenExport, nextTokenModel, nextTokenSvg, nextTokenView, positionHeading, sig4,
  type NextTokenModel, type NextTokenOutput, type NextTokenView,
} from './plot/next-token.ts';
import type { Cell } from '../src/notebook/format.ts';
import type { CellState } from '../src/notebook/graph.ts';
import type { NotebookDocument } from '../src/notebook/document.ts';
import type { ModelInfo } from '../src/engine/api.ts';
import type { Value } from '../src/notebook/settings.ts';

/** The settings keys that only change the drawing (the page must not recompute for them). */
export const NEXT_TOKEN_VIEW_KEYS = ['temperature', 'top_k', 'top_p', 'min_p', 'show'] as const;

const FIG_WIDTH = 640;
const bits = (nats: number) => nats / Math.LN2;

@customElement('glassbox-next-token')
export class GlassboxNextToken extends LitElement implements CellProps {
  static override styles = [unsafeCSS(cellCss), css`
    input[type=number] { width: 5.5em; font: inherit; }
    input[type=text] { width: 12em; font: inherit; }
    input[type=range] { width: 140px; }
    input[aria-invalid=true] { outline: 2px solid #c0392b; }
    select { font: inherit; max-width: 22em; }
    input:focus-visible, select:focus-visible, button:focus-visible, summary:focus-visible { outline: 2px solid var(--accent, #36c); outline-offset: 1px; }
    .heading { font-weight: 600; }
    .heading.linked { text-decoration: underline; text-decoration-thickness: 2px; }
    .stats { font-size: 13px; display: flex; flex-wrap: wrap; gap: 4px 18px; margin: 4px 0; }
    .fig svg { max-width: 100%; height: auto; display: block; }
    .stale { opacity: .55; }
  `];

  @property({ attribute: false }) cell: Cell | null = null;
  @property({ attribute: false }) state: CellState | null = null;
  @property({ attribute: false }) doc: NotebookDocument | null = null;
  @property({ attribute: false }) model: ModelInfo | null = null;

  private readonly linkedSel = new LinkedController(this);
  /** The pinned selection last seen: only a new pin moves the position (not one older than the cell). */
  private lastPin: Selection = linked.pin;
  private offPin: (() => void) | null = null;
  /** The figure's model for one output and view: re-renders for hover do not redo the O(vocab) work. */
  private memo: { output: NextTokenOutput; key: string; model: NextTokenModel } | null = null;

  override connectedCallback(): void {
    super.connectedCallback();
    this.lastPin = linked.pin;
    this.offPin = linked.subscribe(() => this.onSelection());
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.offPin?.();
    this.offPin = null;
  }

  private get output(): NextTokenOutput | null {
    const o = this.state?.output as NextTokenOutput | null | undefined;
    return o && o.logits instanceof Float32Array ? o : null;
  }

  private get view(): NextTokenView { return nextTokenView(this.cell?.settings ?? {}); }

  private get editable(): boolean { return !!this.cell && !!this.doc && !this.doc.readonly; }

  private set(key: string, value: Value | undefined): void {
    if (this.cell && this.doc && !this.doc.readonly) this.doc.setSetting(this.cell.id, key, value);
  }

  /** A token pinned in another cell of the same prompt becomes this cell's position. */
  private onSelection(): void {
    const pin = linked.pin;
    if (pin === this.lastPin) return;
    this.lastPin = pin;
    const o = this.output;
    if (!o || pin.token === null || pin.prompt !== o.prompt || pin.token >= o.labels.length || !this.editable) return;
    this.setPosition(pin.token, o.labels.length);
  }

  private setPosition(p: number | 'last', length: number): void {
    const now = this.cell?.settings['position'];
    const value = p === 'last' || p === length - 1 ? undefined : p;   // the last token: the default, "last"
    if ((now ?? undefined) !== value) this.set('position', value);
  }

  /** The figure's model, memoized on the output's identity and the view. */
  figureModel(): NextTokenModel | null {
    const o = this.output;
    if (!o) return null;
    const view = this.view;
    const key = JSON.stringify(view);
    if (this.memo?.output !== o || this.memo.key !== key) this.memo = { output: o, key, model: nextTokenModel(o, view) };
    return this.memo.model;
  }

  exportFigure(): FigureExport | null {
    const m = this.figureModel();
    return m ? nextTokenExport(m, { width: FIG_WIDTH }) : null;
  }

  private exportAs(ext: 'svg' | 'png' | 'csv' | 'json'): Promise<void> {
    return downloadFigure(this, this.exportFigure(), ext);
  }

  // -- controls -------------------------------------------------------------------------------

  /** A numeric control: writes the setting when valid (the default removes the key), flags it otherwise. */
  private numeric(key: string, ok: (v: number) => boolean, dflt: number) {
    return (e: Event) => {
      const input = e.target as HTMLInputElement;
      const v = input.value.trim() === '' ? dflt : Number(input.value);
      const valid = Number.isFinite(v) && ok(v);
      input.setAttribute('aria-invalid', String(!valid));
      if (valid) this.set(key, v === dflt ? undefined : v);
    };
  }

  private controls(v: NextTokenView, ro: boolean) {
    const t = this.numeric('temperature', (x) => x >= 0, DEFAULT_VIEW.temperature);
    return html`<div class="controls">
      <label>temperature
        <input type="range" min="0" max="2" step="0.05" aria-label="Temperature" .value=${live(String(Math.min(v.temperature, 2)))} ?disabled=${ro} @input=${t}>
        <input type="number" min="0" step="0.05" aria-label="Temperature value" .value=${live(String(v.temperature))} ?disabled=${ro} @change=${t}>
      </label>
      <label title="Keep the k most likely tokens; 0 turns it off">top-k
        <input type="number" min="0" step="1" aria-label="Top-k (0 = off)" .value=${live(String(v.topK))} ?disabled=${ro}
          @change=${this.numeric('top_k', (x) => Number.isInteger(x) && x >= 0, DEFAULT_VIEW.topK)}></label>
      <label title="Keep the smallest set of most likely tokens whose probability reaches p; 1 turns it off">top-p
        <input type="number" min="0.01" max="1" step="0.01" aria-label="Top-p (1 = off)" .value=${live(String(v.topP))} ?disabled=${ro}
          @change=${this.numeric('top_p', (x) => x > 0 && x <= 1, DEFAULT_VIEW.topP)}></label>
      <label title="Keep tokens at least min-p times as likely as the most likely; 0 turns it off">min-p
        <input type="number" min="0" max="1" step="0.01" aria-label="Min-p (0 = off)" .value=${live(String(v.minP))} ?disabled=${ro}
          @change=${this.numeric('min_p', (x) => x >= 0 && x <= 1, DEFAULT_VIEW.minP)}></label>
      <label>bars
        <input type="number" min="1" max=${MAX_SHOW} step="1" aria-label="Number of bars" .value=${live(String(v.show))} ?disabled=${ro}
          @change=${this.numeric('show', (x) => Number.isInteger(x) && x >= 1 && x <= MAX_SHOW, DEFAULT_VIEW.show)}></label>
    </div>`;
  }

  private positionPicker(o: NextTokenOutput, ro: boolean) {
    const setting = this.cell?.settings['position'];
    const current = typeof setting === 'number' ? String(setting) : 'last';
    const pick = (e: Event) => {
      const value = (e.target as HTMLSelectElement).value;
      this.setPosition(value === 'last' ? 'last' : Number(value), o.labels.length);
    };
    const n = o.labels.length;
    return html`<label class="note">position
      <select aria-label="Position whose next token is shown" ?disabled=${ro} @change=${pick}>
        <option value="last" ?selected=${current === 'last'}>last (${n - 1})</option>
        ${o.labels.map((l, i) => html`<option value=${i} ?selected=${current === String(i)}>${i}: ${l}</option>`)}
      </select></label>`;
  }

  private targetLine(m: NextTokenModel, o: NextTokenOutput) {
    const typed = this.cell?.settings['target'];
    const t = m.target;
    if (!t) return typeof typed === 'string' && typed !== '' ? html`<span class="note">“${typed}”: waiting for its token…</span>` : nothing;
    const first = o.target && o.target.text !== o.target.piece ? html` (its first token)` : nothing;
    return html`<span data-testid="target" data-rank=${t.rank} data-v=${sig4(t.p)} data-p0=${sig4(t.p0)}>
      <b class="mono">${visible(t.piece)}</b>${first} · id ${t.id} · rank <b>${fmt.int(t.rank)}</b> of ${fmt.int(m.vocab)}
      · p before ${fmt.prob(t.p0)} · p after ${fmt.prob(t.p)} · ${t.cut ? html`<b>cut by ${cutLabel(t.cut)}</b>` : 'kept'}</span>`;
  }

  override render() {
    if (!this.cell) return nothing;
    const o = this.output;
    const ro = !this.editable;
    const { busy, err } = statusOf(this.state);
    const v = this.view;
    if (!o) {
      return html`${this.controls(v, ro)}${err}<p class="note">${!this.model ? 'Load a model to see the next token.' : busy ? 'Computing the logits…' : 'No logits yet: this cell reads a prompt cell above it.'}</p>`;
    }
    const m = this.figureModel()!;
    const sel = this.linkedSel.selection;
    const linkedHere = sel.prompt === o.prompt && sel.token === o.position;
    const hover = () => linked.hover({ token: o.position, prompt: o.prompt }, this.cell!.id);
    const leave = () => linked.leave(this.cell!.id);
    const a = m.stages.after;
    const typed = this.cell.settings['target'];
    return html`
      <div class="top">
        <span class="heading ${linkedHere ? 'linked' : ''}" data-testid="heading" @mouseenter=${hover} @mouseleave=${leave}>${positionHeading(o)}</span>
        <span>${this.positionPicker(o, ro)}
          ${exportMenu((x) => this.exportAs(x))}</span>
      </div>
      ${this.controls(v, ro)}
      ${err}
      <div class="stats ${busy ? 'stale' : ''}" data-testid="stats">
        <span>entropy before <b>${fmt.num(m.entropy.before)}</b> nats (${fmt.num(bits(m.entropy.before))} bits)
          → after <b>${fmt.num(m.entropy.after)}</b> nats (${fmt.num(bits(m.entropy.after))} bits)</span>
        <span data-testid="kept" data-v=${m.stages.kept}>kept <b>${fmt.int(m.stages.kept)}</b> of ${fmt.int(m.stages.ids.length)} tokens
          <span class="note">(top-k → ${fmt.int(a.topK)}, top-p → ${fmt.int(a.topP)}, min-p → ${fmt.int(a.minP)}${v.temperature === 0 ? ', T = 0 → 1' : ''})</span></span>
      </div>
      <div class="controls">
        <label>rank of token…
          <input type="text" placeholder="type a token" aria-label="Rank of token" .value=${live(typeof typed === 'string' ? typed : '')} ?disabled=${ro}
            @change=${(e: Event) => { const s = (e.target as HTMLInputElement).value; this.set('target', s === '' ? undefined : s); }}></label>
        ${this.targetLine(m, o)}
      </div>
      ${busy ? html`<span class="note">updating…</span>` : nothing}
      <div class="fig ${busy ? 'stale' : ''}" data-testid="figure">${unsafeSVG(nextTokenSvg(m, { width: FIG_WIDTH, heading: false }))}</div>`;
  }
}

declare global {
  interface HTMLElementTagNameMap { 'glassbox-next-token': GlassboxNextToken }
}
