// <glassbox-patch>: activation patching (issue 12). The prompt above is the clean run; the cell's
// `corrupted` text (the same number of tokens) the corrupted one. Two grids — the residual stream
// (layer × position) and the attention heads (layer × head) — each cell the fraction of the
// logit difference (target − foil) restored by patching that one clean activation into the
// corrupted run. Clicking a cell (or moving with the arrow keys in a focused grid) opens it: its
// run's top next tokens beside the clean and the corrupted run's, its logit difference and fraction.
//
// The page computes the output (src/app/patch.ts through src/engine/patching.ts); `corrupted`,
// `target`, `foil` and `grids` recompute, `open` is the one view key (cells/plot/patch.ts draws).

import { LitElement, css, html, nothing, unsafeCSS } from 'lit';
import { customElement, property } from 'lit/decorators.js';
import { live } from 'lit/directives/live.js';
import { unsafeSVG } from 'lit/directives/unsafe-svg.js';
import { cellCss, statusOf, type CellProps, figureFrame } from './common.ts';
import { linked } from './plot/linked.ts';
import type { FigureExport } from './plot/figure.ts';
import {
  cellAtPoint, cellTitle, moveOpen, openKey, parseOpen, patchDetailSvg, patchExport, patchHeading, patchHeatmap,
  type HeatmapFigure, type OpenCell, type PatchOutput,
} from './plot/patch.ts';
import type { PatchGridName } from '../src/engine/patching.ts';
import type { Cell } from '../src/notebook/format.ts';
import type { CellState } from '../src/notebook/graph.ts';
import type { NotebookDocument } from '../src/notebook/document.ts';
import type { ModelInfo } from '../src/engine/api.ts';
import type { Value } from '../src/notebook/settings.ts';

const FIG_WIDTH = 720;
const GRID_NAMES: Record<PatchGridName, string> = { resid: 'Residual stream', heads: 'Attention heads' };

@customElement('glassbox-patch')
export class GlassboxPatch extends LitElement implements CellProps {
  static override styles = [unsafeCSS(cellCss), css`
    input[type=text] { font: inherit; }
    input.prompt { width: min(36em, 100%); }
    input.tok { width: 7em; }
    input:focus-visible, button:focus-visible, summary:focus-visible, .grid:focus-visible { outline: 2px solid var(--accent, #36c); outline-offset: 1px; }
    .grid { position: relative; overflow-x: auto; margin: 4px 0 10px; }
    .grid svg { display: block; }
    .grid.fit svg { max-width: 100%; height: auto; }
    .grid rect.cell { cursor: pointer; }
    .grid canvas { position: absolute; image-rendering: pixelated; cursor: pointer; }
    .detail svg { max-width: 100%; height: auto; display: block; }
    .readout { font-size: 12px; min-height: 1.2em; white-space: pre-line; color: var(--muted, #666); }
    .stale { opacity: .55; }
  `];

  @property({ attribute: false }) cell: Cell | null = null;
  @property({ attribute: false }) state: CellState | null = null;
  @property({ attribute: false }) doc: NotebookDocument | null = null;
  @property({ attribute: false }) model: ModelInfo | null = null;

  private memo = new Map<string, HeatmapFigure>();
  private memoOf: PatchOutput | null = null;
  private readout = '';

  private get output(): PatchOutput | null {
    const o = this.state?.output as PatchOutput | null | undefined;
    return o && (o.resid || o.heads) && o.clean?.ids instanceof Int32Array ? o : null;
  }

  private get editable(): boolean { return !!this.cell && !!this.doc && !this.doc.readonly; }

  private set(key: string, value: Value | undefined): void {
    if (this.cell && this.doc && !this.doc.readonly) this.doc.setSetting(this.cell.id, key, value);
  }

  /** The open cell of the output (null: none, or one the output does not have). */
  openCell(): OpenCell | null {
    const o = this.output;
    return o ? parseOpen(this.cell?.settings['open'], o) : null;
  }

  /** The figure each canvas shows now. */
  private readonly painted = new WeakMap<HTMLCanvasElement, HeatmapFigure>();

  private figure(o: PatchOutput, which: PatchGridName, open: OpenCell | null): HeatmapFigure {
    if (this.memoOf !== o) { this.memo.clear(); this.memoOf = o; }
    const key = `${which}|${open && open.grid === which ? openKey(open) : ''}`;
    let f = this.memo.get(key);
    if (!f) { f = patchHeatmap(o, which, { width: FIG_WIDTH, open }); this.memo.set(key, f); }
    return f;
  }

  exportFigure(): FigureExport | null {
    const o = this.output;
    return o ? patchExport(o, { width: FIG_WIDTH, open: this.openCell() }) : null;
  }

  private toggle(c: OpenCell | null): void {
    if (!c) return;
    const cur = this.openCell();
    this.set('open', cur && openKey(cur) === openKey(c) ? undefined : openKey(c));
  }

  private onClick(which: PatchGridName, f: HeatmapFigure) {
    return (e: MouseEvent) => {
      const t = e.target as Element;
      const key = t.closest?.('[data-open]')?.getAttribute('data-open');
      if (key && this.output) { this.toggle(parseOpen(key, this.output)); return; }
      if (t instanceof HTMLCanvasElement) this.toggle(this.canvasCell(e, which, f));
    };
  }

  private canvasCell(e: MouseEvent, which: PatchGridName, f: HeatmapFigure): OpenCell | null {
    const c = e.target as HTMLCanvasElement, r = c.getBoundingClientRect();
    return cellAtPoint(f, which, f.grid.left + (e.clientX - r.left), f.grid.top + (e.clientY - r.top));
  }

  private onHover(which: PatchGridName, f: HeatmapFigure) {
    return (e: MouseEvent) => {
      const o = this.output, c = o ? this.canvasCell(e, which, f) : null;
      const text = o && c ? cellTitle(o, c) : '';
      if (text !== this.readout) { this.readout = text; this.requestUpdate(); }
      this.link(c);
    };
  }

  /** Hovering a cell highlights its token and layer (resid) or head (heads) in the other cells. */
  private link(c: OpenCell | null): void {
    const o = this.output, id = this.cell?.id ?? 'patch';
    if (!o || !c) { linked.leave(id); return; }
    linked.hover(c.grid === 'resid' ? { token: c.index, layer: c.layer, prompt: o.prompt } : { layer: c.layer, head: c.index }, id);
  }

  private onOver = (e: MouseEvent): void => {
    const key = (e.target as Element).closest?.('[data-open]')?.getAttribute('data-open');
    const o = this.output;
    if (key && o) this.link(parseOpen(key, o));
  };

  private onKey(which: PatchGridName) {
    return (e: KeyboardEvent) => {
      const o = this.output;
      if (!o) return;
      if (e.key === 'Escape') { this.set('open', undefined); return; }
      const next = moveOpen(this.openCell(), e.key, o, which);
      if (!next) return;
      e.preventDefault();
      this.set('open', openKey(next));
    };
  }

  override updated(): void {
    // paint the canvas grids (long prompts): one pixel per cell, scaled by CSS
    const o = this.output;
    if (!o) return;
    for (const c of this.renderRoot.querySelectorAll<HTMLCanvasElement>('canvas[data-grid]')) {
      const f = this.memo.get(c.dataset['key'] ?? '');
      // painted again for a new figure, even under the same key (a new output: a recompute, or the
      // next partial grid while the runs go on; Lit keeps the canvas element)
      if (!f?.canvas || this.painted.get(c) === f) continue;
      const ctx = c.getContext('2d');
      if (!ctx) continue;
      ctx.putImageData(new ImageData(new Uint8ClampedArray(f.canvas.pixels), f.canvas.cols, f.canvas.rows), 0, 0);
      this.painted.set(c, f);
    }
  }

  private gridView(o: PatchOutput, which: PatchGridName, open: OpenCell | null, busy: boolean) {
    const f = this.figure(o, which, open);
    const key = `${which}|${open && open.grid === which ? openKey(open) : ''}`;
    const c = f.canvas;
    return html`<div class="grid ${c ? '' : 'fit'} ${busy ? 'stale' : ''}" tabindex="0" data-grid=${which} data-testid=${`grid-${which}`}
        role="group" aria-label=${`${GRID_NAMES[which]} patching grid: click a cell, or use the arrow keys, to open its run; Escape closes it`}
        @click=${this.onClick(which, f)} @keydown=${this.onKey(which)} @mouseover=${this.onOver} @mouseleave=${() => this.link(null)}>
      ${unsafeSVG(f.svg)}
      ${c ? html`<canvas data-grid=${which} data-key=${key} width=${c.cols} height=${c.rows} role="img" aria-label=${`${GRID_NAMES[which]} grid drawn as pixels; hover for the numbers`}
        style="left:${c.left}px;top:${c.top}px;width:${c.cols * c.cw}px;height:${c.rows * c.ch}px"
        @mousemove=${this.onHover(which, f)} @mouseleave=${() => { this.readout = ''; this.requestUpdate(); }}></canvas>` : nothing}
    </div>`;
  }

  private controls(ro: boolean) {
    const s = this.cell?.settings ?? {};
    const str = (k: string) => (typeof s[k] === 'string' ? (s[k] as string) : '');
    const grids = Array.isArray(s['grids']) ? (s['grids'] as string[]) : typeof s['grids'] === 'string' ? [s['grids']] : ['resid', 'heads'];
    const text = (k: string) => (e: Event) => { const v = (e.target as HTMLInputElement).value; this.set(k, v === '' ? undefined : v); };
    const toggleGrid = (g: PatchGridName) => (e: Event) => {
      const on = (e.target as HTMLInputElement).checked;
      const next = (['resid', 'heads'] as const).filter((x) => (x === g ? on : grids.includes(x)));
      if (next.length === 0) { (e.target as HTMLInputElement).checked = true; return; }   // at least one grid
      this.set('grids', next.length === 2 ? undefined : [...next]);
    };
    return html`<div class="controls">
      <label>corrupted prompt <input class="prompt" type="text" placeholder="the prompt with the answer changed, same number of tokens"
        aria-label="Corrupted prompt" .value=${live(str('corrupted'))} ?disabled=${ro} @change=${text('corrupted')}></label>
      <label>target <input class="tok" type="text" placeholder="clean top" aria-label="Target token (empty: the clean run's top token)"
        .value=${live(str('target'))} ?disabled=${ro} @change=${text('target')}></label>
      <label>foil <input class="tok" type="text" placeholder="corrupted top" aria-label="Foil token (empty: the corrupted run's top token)"
        .value=${live(str('foil'))} ?disabled=${ro} @change=${text('foil')}></label>
      ${(['resid', 'heads'] as const).map((g) => html`<label><input type="checkbox" .checked=${live(grids.includes(g))} ?disabled=${ro}
        aria-label=${`Draw the ${GRID_NAMES[g].toLowerCase()} grid`} @change=${toggleGrid(g)}>${g}</label>`)}
    </div>`;
  }

  override render() {
    if (!this.cell) return nothing;
    const o = this.output;
    const ro = !this.editable;
    const { busy, err } = statusOf(this.state);
    const dim = busy && this.state?.preview !== true;   // a preview is this run's grids so far: current, not stale
    const open = o && this.openCell();
    const openPending = !!open && !!o![open.grid]?.pending?.[open.layer * o![open.grid]!.cols + open.index];
    return figureFrame({ cell: this.cell, state: this.state, doc: this.doc, model: this.model, output: o, busy, err, controls: this.controls(ro) }, {
      heading: o && patchHeading(o), exportFigure: () => this.exportFigure(),
      noModel: 'Load a model to patch it.', running: 'Running the clean, the corrupted and one patched run per grid cell…',
      idle: 'Nothing yet: this cell reads a prompt cell above it (the clean prompt).', filling: 'filling in (blank cells are still to come)…',
      figure: () => html`
        ${o!.resid ? this.gridView(o!, 'resid', open!, dim) : nothing}
        ${o!.heads ? this.gridView(o!, 'heads', open!, dim) : nothing}
        <div class="readout" role="status">${this.readout}</div>
        ${openPending ? html`<p class="note" data-testid="detail-pending">This cell's patched run has not come back yet: the grid is still computing.</p>`
          : open ? html`<div class="detail ${dim ? 'stale' : ''}" data-testid="detail">${unsafeSVG(patchDetailSvg(o!, open, { width: FIG_WIDTH }))}</div>`
          : html`<p class="note">Click a cell to see its patched run's next tokens beside the clean and the corrupted run's.</p>`}`,
    });
  }
}

declare global {
  interface HTMLElementTagNameMap { 'glassbox-patch': GlassboxPatch }
}
