// <glassbox-attribution>: direct logit attribution (issue 12). Which heads and FFN layers write the
// chosen token's logit at a position, through the final RMSNorm with the run's scale frozen; the
// waterfall under the heatmap shows that the terms sum to the logit. The page computes the
// AttributionOutput (src/app/compute.ts, the engine's attribution slice); this element draws it
// with cells/plot/attribution.ts. target and position recompute (they are not view keys).

import { html, nothing } from 'lit';
import { customElement } from 'lit/decorators.js';
import { exportMenu, LayerCellElement, settingOf, writeSetting } from './logit-lens.ts';
import { attributionExport, attributionFigure, type AttributionOutput } from './plot/attribution.ts';
import type { Figure } from './plot/logit-lens.ts';
import type { FigureExport } from './plot/figure.ts';

@customElement('glassbox-attribution')
export class GlassboxAttribution extends LayerCellElement<AttributionOutput> {
  private figure(out: AttributionOutput): Figure {
    const w = this.width - 40;
    return this.cache.get(out, `attr|${w}`, () => attributionFigure(out, { width: w }));
  }

  exportFigure(): FigureExport | null {
    const out = this.output;
    return out ? attributionExport(out, { width: this.width - 40 }) : null;
  }

  private onTarget(e: Event): void {
    const v = (e.target as HTMLInputElement).value;
    writeSetting(this, 'target', v === '' ? undefined : v);
  }

  private onPosition(e: Event): void {
    const v = (e.target as HTMLSelectElement).value;
    writeSetting(this, 'position', v === 'last' ? undefined : Number(v));
  }

  override render() {
    if (!this.cell) return nothing;
    const out = this.output;
    const ro = this.doc?.readonly ?? true;
    const { busy, error } = this.status();
    const target = settingOf(this.cell, 'target');
    const position = settingOf(this.cell, 'position') ?? 'last';
    const labels = out?.labels ?? [];
    const fig = out ? this.figure(out) : null;
    this.figs = [fig];
    return html`
      <div class="bar"><div class="controls">
        <label>token <input type="text" placeholder="top token" aria-label="Token to attribute (empty: the most likely next token)"
          .value=${typeof target === 'string' ? target : ''} ?disabled=${ro} @change=${this.onTarget}></label>
        <label>position <select aria-label="Position whose next-token logit is attributed" ?disabled=${ro} @change=${this.onPosition}>
          <option value="last" ?selected=${position === 'last'}>last</option>
          ${labels.map((t, i) => html`<option value=${i} ?selected=${position === i}>${i}: ${t}</option>`)}</select></label>
        ${out ? html`<span class="note">${out.token.typed === null ? 'top token' : 'target'} ${JSON.stringify(out.token.piece)}: logit ${out.logit.toPrecision(4)}, residual ${out.residual.toExponential(1)}</span>` : nothing}
        ${busy ? html`<span class="note">updating…</span>` : nothing}
      </div>${out ? exportMenu(this, () => this.exportFigure()) : nothing}</div>
      ${error}
      ${out && fig ? html`<div class=${busy ? 'stale' : ''}>
          ${this.drawn(fig, 0, `Direct logit attribution of ${JSON.stringify(out.token.piece)} to each head and FFN layer, and their sum`, 'attribution-figure')}
          <div class="readout" role="status">${this.readout}</div></div>`
        : html`<p class="note">${this.model ? 'Computing the attribution…' : 'Load a model to see the attribution.'}</p>`}`;
  }
}

declare global {
  interface HTMLElementTagNameMap { 'glassbox-attribution': GlassboxAttribution }
}
