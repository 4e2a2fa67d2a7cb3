// <glassbox-embeddings>: the prompt's tokens in the plane of the residual stream's first two
// principal components, at one layer (a labelled scatter) or across every layer (trajectories).
// The PCA is computed in the worker; this element draws the EmbeddingsOutput the page hands it.

import { html, nothing } from 'lit';
import { customElement } from 'lit/decorators.js';
import { exportMenu, LayerCellElement, settingOf, writeSetting } from './logit-lens.ts';
import { embeddingsExport, embeddingsFigure, type EmbeddingsOutput } from './plot/embeddings.ts';
import type { Figure } from './plot/logit-lens.ts';
import type { FigureExport } from './plot/figure.ts';

@customElement('glassbox-embeddings')
export class GlassboxEmbeddings extends LayerCellElement<EmbeddingsOutput> {
  private get labels(): boolean { return settingOf(this.cell, 'labels') !== false; }

  private figure(out: EmbeddingsOutput): Figure {
    const labels = this.labels, w = this.width - 40;
    return this.cache.get(out, `emb|${labels}|${w}`, () => embeddingsFigure(out, { labels, width: w }));
  }

  exportFigure(): FigureExport | null {
    const out = this.output;
    return out ? embeddingsExport(out, { labels: this.labels, selection: this.sel, width: this.width - 40 }) : null;
  }

  private onLayer(e: Event): void {
    const v = (e.target as HTMLSelectElement).value;
    writeSetting(this, 'layer', v === 'last' ? undefined : v === 'all' ? 'all' : Number(v));
  }

  override render() {
    if (!this.cell) return nothing;
    const out = this.output;
    const ro = this.doc?.readonly ?? true;
    const { busy, error } = this.status();
    const nLayers = this.model?.config.nLayers ?? 0;
    const layer = settingOf(this.cell, 'layer') ?? 'last';
    const fig = out ? this.figure(out) : null;
    this.figs = [fig];
    return html`
      <div class="bar"><div class="controls">
        <label>layer <select aria-label="Layer to project (or all: trajectories)" ?disabled=${ro} @change=${this.onLayer}>
          <option value="last" ?selected=${layer === 'last'}>last</option>
          <option value="all" ?selected=${layer === 'all'}>all (trajectories)</option>
          ${Array.from({ length: nLayers }, (_, l) => html`<option value=${l} ?selected=${layer === l}>${l}</option>`)}</select></label>
        <label><input type="checkbox" .checked=${this.labels} ?disabled=${ro}
          @change=${(e: Event) => writeSetting(this, 'labels', (e.target as HTMLInputElement).checked ? undefined : false)}> token labels</label>
        ${busy ? html`<span class="note">updating…</span>` : nothing}
      </div>${out ? exportMenu(this, () => this.exportFigure()) : nothing}</div>
      ${error}
      ${out && fig ? html`<div class=${busy ? 'stale' : ''}>
          ${this.drawn(fig, 0, out.layers.length > 1 ? 'Trajectories of the tokens across layers in the plane of the first two principal components' : 'The tokens in the plane of the first two principal components', 'emb-figure')}
          <div class="readout" role="status">${this.readout}</div></div>`
        : html`<p class="note">${this.model ? 'Computing the projection…' : 'Load a model to see the embeddings.'}</p>`}`;
  }
}

declare global {
  interface HTMLElementTagNameMap { 'glassbox-embeddings': GlassboxEmbeddings }
}
