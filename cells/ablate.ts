// <glassbox-ablate>: knock out attention heads, FFN neurons or whole layer outputs (zero
// ablation) and compare the next-token distribution after the prompt with the clean run's: the
// top tokens side by side with the change, the target token's logit and probability in both
// runs, and KL(clean ‖ ablated).
//
// The page computes the output (src/app/compute.ts: the clean row from the prompt's shared
// trace, the ablated row from a run with the edits in the cell's own slot). The element writes
// the lists back as settings (`heads`, `neurons`, `layers`, `target`: a recompute) and draws with
// the pure functions of cells/plot/ablate.ts; `show` is the one view key.

import { LitElement, css, html, nothing, unsafeCSS } from 'lit';
import { customElement, property } from 'lit/decorators.js';
import { live } from 'lit/directives/live.js';
import { unsafeSVG } from 'lit/directives/unsafe-svg.js';
import { cellCss, statusOf, type CellProps, figureFrame } from './common.ts';
import type { FigureExport } from './plot/figure.ts';
import {
  ablateEdits, ablateExport, ablateModel, ablateShow, ablateSvg, MAX_SHOW, splitList, type AblateModel, type AblateOutput,
} from './plot/ablate.ts';
import type { Cell } from '../src/notebook/format.ts';
import type { CellState } from '../src/notebook/graph.ts';
import type { NotebookDocument } from '../src/notebook/document.ts';
import type { ModelInfo } from '../src/engine/api.ts';
import type { Value } from '../src/notebook/settings.ts';

const FIG_WIDTH = 640;
type ListKey = 'heads' | 'neurons' | 'layers';
const FIELDS: { key: ListKey; label: string; placeholder: string; title: string }[] = [
  { key: 'heads', label: 'heads', placeholder: '1.3, 0.2', title: 'Attention heads as layer.head, e.g. 1.3 (layer 1, head 3)' },
  { key: 'neurons', label: 'neurons', placeholder: '0.12', title: 'FFN neurons as layer.neuron, e.g. 0.12 (layer 0, neuron 12)' },
  { key: 'layers', label: 'layers', placeholder: 'attn.1, ffn.0', title: 'Whole layer outputs: attn.L (attention), ffn.L (FFN), or L for both' },
];

@customElement('glassbox-ablate')
export class GlassboxAblate extends LitElement implements CellProps {
  static override styles = [unsafeCSS(cellCss), css`
    input[type=text] { width: 10em; font: inherit; }
    input[type=number] { width: 4.5em; font: inherit; }
    input[aria-invalid=true] { outline: 2px solid #c0392b; }
    input:focus-visible, button:focus-visible, summary:focus-visible { outline: 2px solid var(--accent, #36c); outline-offset: 1px; }
    .fig svg { max-width: 100%; height: auto; display: block; }
    .stale { opacity: .55; }
    .bad { color: #c0392b; font-size: 12px; }
  `];

  @property({ attribute: false }) cell: Cell | null = null;
  @property({ attribute: false }) state: CellState | null = null;
  @property({ attribute: false }) doc: NotebookDocument | null = null;
  @property({ attribute: false }) model: ModelInfo | null = null;

  /** A field's text that did not parse (kept out of the notebook), with the reason. */
  private invalid: Partial<Record<ListKey, string>> = {};
  private memo: { output: AblateOutput; show: number; model: AblateModel } | null = null;

  private get output(): AblateOutput | null {
    const o = this.state?.output as AblateOutput | null | undefined;
    return o && o.clean instanceof Float32Array && o.ablated instanceof Float32Array ? o : null;
  }

  private get editable(): boolean { return !!this.cell && !!this.doc && !this.doc.readonly; }

  private set(key: string, value: Value | undefined): void {
    if (this.cell && this.doc && !this.doc.readonly) this.doc.setSetting(this.cell.id, key, value);
  }

  figureModel(): AblateModel | null {
    const o = this.output;
    if (!o) return null;
    const show = ablateShow(this.cell?.settings ?? {});
    if (this.memo?.output !== o || this.memo.show !== show) this.memo = { output: o, show, model: ablateModel(o, show) };
    return this.memo.model;
  }

  exportFigure(): FigureExport | null {
    const m = this.figureModel();
    return m ? ablateExport(m, { width: FIG_WIDTH }) : null;
  }

  /** A list field: written as a list of strings ("1.10" stays 1.10) once the model accepts it. */
  private onList(key: ListKey) {
    return (e: Event) => {
      const input = e.target as HTMLInputElement;
      const items = splitList(input.value);
      let bad: string | null = null;
      if (this.model) {
        try { ablateEdits({ [key]: items }, this.model.config); } catch (err) { bad = (err as Error).message; }
      }
      input.setAttribute('aria-invalid', String(!!bad));
      this.invalid = { ...this.invalid, [key]: bad ?? undefined };
      this.requestUpdate();
      if (!bad) this.set(key, items.length ? items : undefined);
    };
  }

  private listText(key: ListKey): string {
    const v = this.cell?.settings[key];
    return Array.isArray(v) ? v.join(', ') : v === undefined || v === null ? '' : String(v);
  }

  private controls(ro: boolean) {
    const typed = this.cell?.settings['target'];
    const show = ablateShow(this.cell?.settings ?? {});
    return html`<div class="controls">
      ${FIELDS.map((f) => html`<label title=${f.title}>${f.label}
        <input type="text" placeholder=${f.placeholder} aria-label=${`Knock out ${f.label}`} .value=${live(this.listText(f.key))} ?disabled=${ro} @change=${this.onList(f.key)}></label>`)}
      <label title="zero: remove the unit's output; mean: replace it by its mean over the prompt's positions (BOS left out)">by
        <select aria-label="Ablation: zero or mean" ?disabled=${ro} @change=${(e: Event) => { const v = (e.target as HTMLSelectElement).value; this.set('mode', v === 'zero' ? undefined : v); }}>
          ${(['zero', 'mean'] as const).map((m) => html`<option value=${m} ?selected=${(this.cell?.settings['mode'] ?? 'zero') === m}>${m === 'zero' ? 'zeroing' : 'the mean'}</option>`)}
        </select></label>
      <label>target
        <input type="text" placeholder="a token" aria-label="Target token" .value=${live(typeof typed === 'string' ? typed : '')} ?disabled=${ro}
          @change=${(e: Event) => { const s = (e.target as HTMLInputElement).value; this.set('target', s === '' ? undefined : s); }}></label>
      <label>rows
        <input type="number" min="1" max=${MAX_SHOW} step="1" aria-label="Number of token rows" .value=${live(String(show))} ?disabled=${ro}
          @change=${(e: Event) => {
            const v = Number((e.target as HTMLInputElement).value);
            if (Number.isInteger(v) && v >= 1 && v <= MAX_SHOW) this.set('show', v === 12 ? undefined : v);
          }}></label>
    </div>
    ${FIELDS.map((f) => (this.invalid[f.key] ? html`<div class="bad" role="status">${this.invalid[f.key]}</div>` : nothing))}`;
  }

  override render() {
    if (!this.cell) return nothing;
    const o = this.output;
    const ro = !this.editable;
    const { busy, err } = statusOf(this.state);
    const m = o && this.figureModel();
    return figureFrame({ cell: this.cell, state: this.state, doc: this.doc, model: this.model, output: o, busy, err, controls: this.controls(ro) }, {
      heading: m?.heading, exportFigure: () => this.exportFigure(),
      noModel: 'Load a model to ablate it.', running: 'Running the clean and the ablated model…',
      figure: () => html`<div class="fig ${busy ? 'stale' : ''}" data-testid="figure" data-kl=${m!.kl}>${unsafeSVG(ablateSvg(m!, { width: FIG_WIDTH, heading: false }))}</div>`,
    });
  }
}

declare global {
  interface HTMLElementTagNameMap { 'glassbox-ablate': GlassboxAblate }
}
