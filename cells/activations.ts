// <glassbox-activations>: how large the residual stream and its two branches are at each layer
// and position, how one hook's values are distributed, and which FFN neurons fire at a chosen
// token (click one to follow it across positions). Draws the ActivationsOutput the page computed
// (cells/plot/activations.ts); settings are written back into the notebook.

import { html, nothing } from 'lit';
import { customElement } from 'lit/decorators.js';
import { live } from 'lit/directives/live.js';
import { exportMenu, LayerCellElement, settingOf, writeSetting } from './logit-lens.ts';
import {
  activationsExport, histogram, histogramFigure, normsHeatmapFigure, normsLinesFigure, pickedNeuronsFigure, topNeuronsFigure,
  type ActivationsOutput, type NormView,
} from './plot/activations.ts';
import type { Figure } from './plot/logit-lens.ts';
import type { FigureExport } from './plot/figure.ts';

/** The picked neurons as the setting holds them (a list, or one number). */
export function pickedList(v: unknown): number[] {
  const a = Array.isArray(v) ? v : typeof v === 'number' ? [v] : [];
  return a.filter((x): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0);
}

/** Adds a neuron to the picked list, or removes it when already there. */
export function togglePicked(list: readonly number[], n: number): number[] {
  return list.includes(n) ? list.filter((x) => x !== n) : [...list, n];
}

@customElement('glassbox-activations')
export class GlassboxActivations extends LayerCellElement<ActivationsOutput> {
  private get normView(): NormView { return settingOf(this.cell, 'norm_view') === 'lines' ? 'lines' : 'heatmap'; }
  private get bins(): number {
    const b = settingOf(this.cell, 'bins');
    return typeof b === 'number' && Number.isInteger(b) && b >= 1 ? Math.min(b, 400) : 40;
  }
  private get logY(): boolean { return settingOf(this.cell, 'log_y') === true; }
  private get picked(): number[] { return pickedList(settingOf(this.cell, 'neurons')); }

  private norms(out: ActivationsOutput): Figure {
    const w = this.width - 40;
    if (this.normView === 'lines') {
      const pos = this.sel.token;
      return this.cache.get(out, `lines|${w}|${pos}`, () => normsLinesFigure(out, { width: w, position: pos }));
    }
    return this.cache.get(out, `heat|${w}|${this.zoom}`, () => normsHeatmapFigure(out, { width: w, cellWidth: this.zoom ?? undefined }));
  }

  private hist(out: ActivationsOutput): Figure | null {
    if (!out.hist) return null;
    const bins = this.bins, logY = this.logY, w = this.width - 40;
    const h = this.cache.get(out, `bins|${bins}`, () => histogram(out.hist!.values, bins));
    return this.cache.get(out, `hist|${bins}|${logY}|${w}`, () => histogramFigure(h, out.hist!.name, { logY, width: w }));
  }

  exportFigure(): FigureExport | null {
    const out = this.output;
    return out ? activationsExport(out, { normView: this.normView, bins: this.bins, logY: this.logY, selection: this.sel, width: this.width - 40 }) : null;
  }

  private pick(n: number): void {
    writeSetting(this, 'neurons', togglePicked(this.picked, n));
  }

  /** Clicking (or Enter / Space on) a neuron bar picks or unpicks it. */
  private onNeuron(e: Event): void {
    const g = (e.target as Element).closest('[data-n]');
    if (!g || (this.doc?.readonly ?? true)) return;
    if (e instanceof KeyboardEvent) {
      if (e.key !== 'Enter' && e.key !== ' ') return;
      e.preventDefault();
    }
    this.pick(Number(g.getAttribute('data-n')));
  }

  private onNumber(key: string, e: Event, min = 0): void {
    const v = (e.target as HTMLInputElement).value.trim();
    const n = Number(v);
    writeSetting(this, key, v === '' ? undefined : Number.isInteger(n) && n >= min ? n : undefined);
  }

  override render() {
    if (!this.cell) return nothing;
    const out = this.output;
    const ro = this.doc?.readonly ?? true;
    const { busy, error } = this.status();
    const nLayers = this.model?.config.nLayers ?? out?.nLayers ?? 0;
    const layer = settingOf(this.cell, 'layer');
    const position = settingOf(this.cell, 'position');
    const hook = settingOf(this.cell, 'hook');
    const norms = out ? this.norms(out) : null;
    const hist = out ? this.hist(out) : null;
    const top = out ? this.cache.get(out, `top|${this.width}|${this.picked.join(',')}`, () => topNeuronsFigure(out, { picked: this.picked, width: this.width - 40 })) : null;
    const picked = out ? this.cache.get(out, `picked|${this.width}|${this.zoom}`, () => pickedNeuronsFigure(out, { width: this.width - 40, cellWidth: this.zoom ?? undefined })) : null;
    this.figs = [norms, hist, top, picked];
    const hooks = Array.from({ length: nLayers }, (_, l) => [`blocks.${l}.hook_resid_post`, `blocks.${l}.hook_attn_out`, `blocks.${l}.ffn.hook_act`]).flat();
    return html`
      <div class="bar"><div class="controls">
        <label>norms as <select aria-label="Draw the norms as" ?disabled=${ro}
          @change=${(e: Event) => writeSetting(this, 'norm_view', (e.target as HTMLSelectElement).value === 'lines' ? 'lines' : undefined)}>
          <option value="heatmap" ?selected=${this.normView === 'heatmap'}>heatmap</option>
          <option value="lines" ?selected=${this.normView === 'lines'}>lines</option></select></label>
        <label>histogram of <input type="text" list="hooks" aria-label="Hook whose values the histogram counts" placeholder=${`blocks.${typeof layer === 'number' ? layer : 0}.hook_resid_post`}
          .value=${live(typeof hook === 'string' ? hook : '')} ?readonly=${ro} @change=${(e: Event) => writeSetting(this, 'hook', (e.target as HTMLInputElement).value.trim() || undefined)}>
          <datalist id="hooks">${hooks.map((h) => html`<option value=${h}></option>`)}</datalist></label>
        <label>bins <input type="number" min="1" max="400" aria-label="Histogram bins" .value=${live(String(this.bins))} ?readonly=${ro} @change=${(e: Event) => this.onNumber('bins', e, 1)}></label>
        <label><input type="checkbox" .checked=${live(this.logY)} ?disabled=${ro} @change=${(e: Event) => writeSetting(this, 'log_y', (e.target as HTMLInputElement).checked ? true : undefined)}> log count</label>
        <label>neurons of layer <input type="number" min="0" max=${Math.max(0, nLayers - 1)} aria-label="Layer of the FFN neurons" .value=${live(typeof layer === 'number' ? String(layer) : '0')} ?readonly=${ro} @change=${(e: Event) => this.onNumber('layer', e)}></label>
        <label>at position <input type="text" inputmode="numeric" aria-label="Position of the top neurons: last, or a number" placeholder="last"
          .value=${live(typeof position === 'number' ? String(position) : '')} ?readonly=${ro} @change=${(e: Event) => this.onNumber('position', e)}></label>
        ${this.zoomControls(norms)}
        ${busy ? html`<span class="note">updating…</span>` : nothing}
      </div>${out ? exportMenu(this, () => this.exportFigure()) : nothing}</div>
      ${error}
      ${out && norms ? html`<div class=${busy ? 'stale' : ''}>
          ${this.drawn(norms, 0, this.normView === 'lines' ? 'L2 norm of resid_pre, attn_out and ffn_out against layer' : 'L2 norms of resid_pre, attn_out and ffn_out per layer and position', 'act-norms')}
          <div class="readout" role="status">${this.readout}</div>
          ${hist ? this.drawn(hist, 1, `Histogram of the values of ${out.hist!.name}`, 'act-hist') : nothing}
          ${top ? html`<div @click=${this.onNeuron} @keydown=${this.onNeuron}>${this.drawn(top, 2, 'FFN neurons most active at the chosen position; click one to pick it', 'act-top', false)}</div>` : nothing}
          ${this.picked.length ? html`<div class="controls" aria-label="Picked neurons">picked:
            ${this.picked.map((n) => html`<button type="button" aria-label=${`Remove neuron ${n}`} ?disabled=${ro} @click=${() => this.pick(n)}>${n} ×</button>`)}</div>` : nothing}
          ${picked ? this.drawn(picked, 3, 'Picked FFN neurons across positions', 'act-picked') : nothing}
        </div>`
        : html`<p class="note">${this.model ? 'Computing activations…' : 'Load a model to see its activations.'}</p>`}`;
  }
}

declare global {
  interface HTMLElementTagNameMap { 'glassbox-activations': GlassboxActivations }
}
