// <glassbox-logit-lens>: what each layer would predict if the model stopped there. The grid of
// top tokens (layers × positions) and, for a target token the user types, its probability and
// rank across layers at the selected position. The page computes the LogitLensOutput; this
// element only draws it (cells/plot/logit-lens.ts) and writes its settings back.
//
// The first part of this file is what the three layer × position elements share (logit lens,
// activations, embeddings): drawing a Figure (SVG + canvas panels + selection overlay), hover →
// linked selection and a readout, the export menu, memoization per output object.

import { LitElement, css, html, nothing, unsafeCSS, type PropertyValues, type TemplateResult } from 'lit';
import { customElement, property, state } from 'lit/decorators.js';
import { unsafeSVG } from 'lit/directives/unsafe-svg.js';
import { live } from 'lit/directives/live.js';
import { cellCss, downloadFigure, errorText, modelName, progressText, type CellProps } from './common.ts';
import { linked, LinkedController, type Selection } from './plot/linked.ts';
import type { FigureExport } from './plot/figure.ts';
import {
  lensTargetFigure, logitLensExport, logitLensFigure, svgOpen, type CanvasPanel, type Figure, type LensView, type LogitLensOutput, type Sel, type VectorLayer,
} from './plot/logit-lens.ts';
import type { Cell } from '../src/notebook/format.ts';
import type { CellState } from '../src/notebook/graph.ts';
import type { NotebookDocument } from '../src/notebook/document.ts';
import type { Value } from '../src/notebook/settings.ts';
import type { ModelInfo } from '../src/engine/api.ts';

// =============================================================================================
// Shared by the layer × position elements

/** Derived figures per output object: a new output (a recompute) starts a new cache. */
export class FigureCache {
  private map = new WeakMap<object, Map<string, unknown>>();
  get<T>(out: object, key: string, make: () => T): T {
    let m = this.map.get(out);
    if (!m) { m = new Map(); this.map.set(out, m); }
    if (!m.has(key)) {
      if (m.size > 32) m.clear();                     // zoom and width steps: keep it bounded
      m.set(key, make());
    }
    return m.get(key) as T;
  }
}

/** The part of the page's selection that concerns a figure of prompt `prompt`. */
export function selFor(s: Selection, prompt: string): Sel {
  return { token: s.prompt === null || s.prompt === prompt ? s.token : null, layer: s.layer };
}

export function settingOf(cell: Cell | null, key: string): Value | undefined {
  return cell?.settings[key];
}

/** Writes a setting back (nothing when the notebook is read-only). */
export function writeSetting(p: CellProps, key: string, value: Value | undefined): void {
  if (p.cell && p.doc && !p.doc.readonly) p.doc.setSetting(p.cell.id, key, value);
}

export const plotCss = css`
  .fig { position: relative; }
  .scroll { overflow: auto; max-width: 100%; max-height: 640px; }
  .fig svg { display: block; }
  .fig canvas { position: absolute; image-rendering: pixelated; cursor: crosshair; }
  .fig [data-t], .fig [data-l], .fig [data-n] { cursor: pointer; }
  .fig .neuron:focus-visible { outline: 2px solid var(--accent, #36c); }
  .stale { opacity: .55; }
  .controls { display: flex; gap: 14px; align-items: center; flex-wrap: wrap; margin: 4px 0 8px; font-size: 13px; }
  .controls input[type=text] { width: 12em; }
  .controls input[type=number] { width: 5.5em; }
  .controls input, .controls select, .controls button { font: inherit; }
  .readout { min-height: 1.3em; font: 12px/1.35 var(--mono, monospace); white-space: pre-wrap; color: var(--muted, #555); margin: 4px 0; }
  .bar { display: flex; justify-content: space-between; align-items: flex-start; gap: 8px; }
  details.export { position: relative; font-size: 13px; }
  details.export summary { cursor: pointer; list-style: none; white-space: nowrap; padding: 2px 8px; border: 1px solid var(--line, #ccc); border-radius: 6px; }
  details.export div { position: absolute; right: 0; z-index: 2; display: flex; flex-direction: column; background: var(--card, #fff);
    border: 1px solid var(--line, #ccc); border-radius: 6px; padding: 4px; }
  details.export button { font: inherit; text-align: left; border: 0; background: none; padding: 3px 10px; cursor: pointer; color: inherit; }
  details.export button:hover, details.export button:focus-visible { background: color-mix(in srgb, var(--accent, #36c) 15%, transparent); }
`;

/** Hover hit: the position and layer a mark stands for, and its text (a <title>, a readout). */
export interface Hit { token: number | null; layer: number | null; text: string | null; el: Element | null }

const num = (s: string | null | undefined) => (s === null || s === undefined || s === '' ? null : Number(s));

/** What is under a pointer event in a figure drawn by figureTemplate. */
export function hitOf(e: MouseEvent, fig: Figure): Hit | null {
  const t = e.target as Element | null;
  if (!t) return null;
  if (t instanceof HTMLCanvasElement) {
    const p = fig.canvases[Number(t.dataset['panel'])];
    if (!p) return null;
    const r = t.getBoundingClientRect();
    const col = Math.floor(((e.clientX - r.left) / r.width) * p.cols), row = Math.floor(((e.clientY - r.top) / r.height) * p.rows);
    if (col < 0 || col >= p.cols || row < 0 || row >= p.rows) return null;
    return { token: p.token(col), layer: p.layer(row), text: p.readout(row, col), el: t };
  }
  const el = t.closest('[data-t], [data-l], [data-n]');
  if (!el) return null;
  const title = [...el.children].find((c) => c.tagName.toLowerCase() === 'title');
  return { token: num(el.getAttribute('data-t')), layer: num(el.getAttribute('data-l')), text: title?.textContent ?? null, el };
}

/** Draws a figure's vector layer (paths, then dots, then labels) at the canvas's pixel ratio. */
export function paintVector(c: HTMLCanvasElement, v: VectorLayer, ratio: number): void {
  const ctx = c.getContext('2d');
  if (!ctx) return;
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, c.width, c.height);
  ctx.lineJoin = 'round';
  for (const p of v.paths) {
    ctx.beginPath();
    for (let i = 0; i < p.xy.length; i += 2) (i ? ctx.lineTo : ctx.moveTo).call(ctx, p.xy[i]!, p.xy[i + 1]!);
    ctx.strokeStyle = p.color; ctx.globalAlpha = p.opacity; ctx.lineWidth = p.width;
    ctx.stroke();
  }
  ctx.globalAlpha = 1;
  ctx.strokeStyle = '#fff'; ctx.lineWidth = 0.8;
  for (const d of v.dots) {
    ctx.beginPath();
    ctx.arc(d.x, d.y, d.r, 0, 2 * Math.PI);
    ctx.fillStyle = d.color;
    ctx.fill(); ctx.stroke();
  }
  ctx.font = '10px monospace';
  ctx.fillStyle = getComputedStyle(c).color || '#1d1d1f';
  for (const l of v.labels) ctx.fillText(l.text, l.x, l.y);
}

/** Paints the canvas panels of the figures in `root` (once per panel object). */
const painted = new WeakMap<HTMLCanvasElement, CanvasPanel | VectorLayer>();
export function paintCanvases(root: ParentNode, figs: (Figure | null)[]): void {
  for (const c of root.querySelectorAll<HTMLCanvasElement>('canvas[data-vector]')) {
    const v = figs[Number(c.dataset['fig'])]?.vector;
    if (!v || painted.get(c) === v) continue;
    paintVector(c, v, Number(c.dataset['ratio']) || 1);
    painted.set(c, v);
  }
  for (const c of root.querySelectorAll<HTMLCanvasElement>('canvas[data-panel]')) {
    const p = figs[Number(c.dataset['fig'])]?.canvases[Number(c.dataset['panel'])];
    if (!p || painted.get(c) === p) continue;
    const ctx = c.getContext('2d');
    if (!ctx) continue;
    ctx.putImageData(new ImageData(p.pixels() as Uint8ClampedArray<ArrayBuffer>, p.cols, p.rows), 0, 0);
    painted.set(c, p);
  }
}

/**
 * A figure: its SVG (parsed once per string: Lit skips an unchanged value), its canvas panels laid
 * over the empty plot areas, and an overlay SVG with the selection (the only part that changes on
 * hover). `index` tells paintCanvases which figure a canvas belongs to.
 */
export function figureTemplate(fig: Figure, sel: Sel, index: number, label: string, testid: string): TemplateResult {
  const marks = fig.overlay(sel);
  const ratio = Math.min(2, Math.max(1, globalThis.devicePixelRatio || 1));
  return html`<div class="scroll"><div class="fig" aria-label=${label} data-testid=${testid} style="width:${fig.width}px;height:${fig.height}px">
    ${unsafeSVG(fig.svg)}
    ${fig.canvases.map((p, i) => html`<canvas data-fig=${index} data-panel=${i} width=${p.cols} height=${p.rows} role="img" aria-label=${`${label} (hover for the numbers)`}
      style="left:${p.left}px;top:${p.top}px;width:${p.cols * p.cw}px;height:${p.rows * p.ch}px"></canvas>`)}
    ${fig.over ? html`<div style="position:absolute;inset:0;pointer-events:none">${unsafeSVG(`${svgOpen(fig.width, fig.height, 'labels').replace('role="img"', 'aria-hidden="true"')}${fig.over}</svg>`)}</div>` : nothing}
    ${fig.vector ? html`<canvas data-fig=${index} data-vector data-ratio=${ratio} width=${Math.round(fig.width * ratio)} height=${Math.round(fig.height * ratio)}
      style="left:0;top:0;width:${fig.width}px;height:${fig.height}px;pointer-events:none"></canvas>` : nothing}
    ${marks ? html`<div style="position:absolute;inset:0;pointer-events:none">${unsafeSVG(`${svgOpen(fig.width, fig.height, 'selection').replace('role="img"', 'aria-hidden="true"')}${marks}</svg>`)}</div>` : nothing}
  </div></div>`;
}

export type ExportKind = 'svg' | 'png' | 'csv' | 'json';

/** The "Export ▾" menu: each entry builds the figure's files and downloads one. */
export function exportMenu(p: CellProps, make: () => FigureExport | null): TemplateResult {
  const save = async (ext: ExportKind, e: Event) => {
    (e.target as HTMLElement).closest('details')?.removeAttribute('open');
    await downloadFigure(p, make(), ext);
  };
  return html`<details class="export"><summary aria-label="Export this figure">Export ▾</summary><div>
    ${(['svg', 'png', 'csv', 'json'] as const).map((x) => html`<button type="button" data-export=${x} @click=${(e: Event) => save(x, e)}>${x.toUpperCase()}</button>`)}
  </div></details>`;
}

/**
 * The shared element: CellProps, the linked selection, hover → linked.hover and the readout,
 * click → linked.select, canvas painting after each render, the stale and error states, and a
 * width that follows the element's box (in steps, so that a resize redraws rarely).
 */
export abstract class LayerCellElement<Out extends { prompt: string }> extends LitElement implements CellProps {
  static override styles = [unsafeCSS(cellCss), plotCss];

  @property({ attribute: false }) cell: Cell | null = null;
  @property({ attribute: false }) state: CellState | null = null;
  @property({ attribute: false }) doc: NotebookDocument | null = null;
  @property({ attribute: false }) model: ModelInfo | null = null;

  @state() protected readout = '';
  @state() protected width = 720;
  protected readonly linkedSel = new LinkedController(this);
  protected readonly cache = new FigureCache();
  /** The figures of the last render, in the order their canvases were numbered. */
  protected figs: (Figure | null)[] = [];
  private lastHover = '';
  private resize: ResizeObserver | null = null;

  protected get output(): Out | null {
    return (this.state?.output as Out | null | undefined) ?? null;
  }

  protected get sel(): Sel {
    const out = this.output;
    return out ? selFor(this.linkedSel.selection, out.prompt) : { token: null, layer: null };
  }

  override connectedCallback(): void {
    super.connectedCallback();
    if (typeof ResizeObserver !== 'undefined') {
      this.resize = new ResizeObserver(([e]) => {
        const w = Math.max(360, Math.min(1400, Math.floor((e?.contentRect.width ?? 720) / 80) * 80));
        if (w !== this.width) this.width = w;
      });
      this.resize.observe(this);
    }
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.resize?.disconnect();
    this.resize = null;
    linked.leave(this.cell?.id ?? '');
  }

  protected override updated(changed: PropertyValues): void {
    super.updated(changed);
    paintCanvases(this.renderRoot, this.figs);
  }

  protected onMove(e: PointerEvent, fig: Figure | null): void {
    const out = this.output;
    if (!out || !fig) return;
    const h = hitOf(e, fig);
    const key = h ? `${h.token}|${h.layer}|${h.text}` : '';
    if (key === this.lastHover) return;
    this.lastHover = key;
    this.readout = h?.text ?? '';
    if (!h || (h.token === null && h.layer === null)) { linked.leave(this.cell?.id ?? ''); return; }
    const part: Partial<Selection> = {};
    if (h.token !== null) { part.token = h.token; part.prompt = out.prompt; }
    if (h.layer !== null) part.layer = h.layer;
    linked.hover(part, this.cell?.id ?? '');
  }

  protected onLeave(): void {
    this.lastHover = '';
    this.readout = '';
    linked.leave(this.cell?.id ?? '');
  }

  protected onClick(e: MouseEvent, fig: Figure | null): void {
    const out = this.output;
    const h = out && fig ? hitOf(e, fig) : null;
    if (!out || !h || (h.token === null && h.layer === null)) return;
    const part: Partial<Selection> = {};
    if (h.token !== null) { part.token = h.token; part.prompt = out.prompt; }
    if (h.layer !== null) part.layer = h.layer;
    linked.select(part, this.cell?.id ?? '');
  }

  /** A figure with its pointer handlers; `index` numbers its canvases for paintCanvases. */
  protected drawn(fig: Figure, index: number, label: string, testid: string, pin = true): TemplateResult {
    return html`<div @pointermove=${(e: PointerEvent) => this.onMove(e, fig)} @pointerleave=${() => this.onLeave()}
      @click=${(e: MouseEvent) => { if (pin) this.onClick(e, fig); }}>${figureTemplate(fig, this.sel, index, label, testid)}</div>`;
  }

  /** The error box, and whether the figure is stale (recomputing). */
  protected status(): { busy: boolean; error: TemplateResult | typeof nothing } {
    const st = this.state?.status;
    return {
      busy: st === 'running' || st === 'stale',
      error: st === 'error' ? html`<div class="error" role="alert">${errorText(this.state?.error)}</div>` : nothing,
    };
  }

  /** Canvas zoom (cell width in px; null: fit the width). Not a setting: it is how this screen looks. */
  @state() protected zoom: number | null = null;
  protected zoomControls(fig: Figure | null): TemplateResult | typeof nothing {
    if (!fig?.canvases.length) return nothing;
    const cw = fig.canvases[0]!.cw;
    return html`<span role="group" aria-label="Zoom">zoom
      <button type="button" aria-label="Zoom out" @click=${() => { this.zoom = Math.max(1, Math.floor(cw / 2)); }}>−</button>
      <button type="button" aria-label="Zoom in" @click=${() => { this.zoom = Math.min(64, cw * 2); }}>+</button>
      <button type="button" @click=${() => { this.zoom = null; }}>fit</button></span>`;
  }

  abstract exportFigure(): FigureExport | null;
}

// =============================================================================================
// The logit lens element

@customElement('glassbox-logit-lens')
export class GlassboxLogitLens extends LayerCellElement<LogitLensOutput> {
  private get view(): LensView {
    return settingOf(this.cell, 'view') === 'target' ? 'target' : 'grid';
  }

  private grid(out: LogitLensOutput): Figure {
    const view = this.view, zoom = this.zoom;
    return this.cache.get(out, `grid|${view}|${this.width}|${zoom}`, () =>
      logitLensFigure(out, { view, width: this.width - 40, cellWidth: zoom ?? undefined, mode: 'canvas' }));
  }

  private target(out: LogitLensOutput): Figure | null {
    const pos = this.sel.token;
    return this.cache.get(out, `target|${pos}|${this.width}`, () => lensTargetFigure(out, { position: pos ?? undefined, width: this.width - 40 }));
  }

  /** What a first, partial answer shows (the graph's preview: the last positions before all of them). */
  private previewText(out: LogitLensOutput): string {
    const n = out.positions.length;
    return this.state?.status === 'running' ? ` showing the last ${n} position${n === 1 ? '' : 's'} first;` : ` only the last ${n} position${n === 1 ? ' was' : 's were'} computed.`;
  }

  exportFigure(): FigureExport | null {
    const out = this.output;
    return out ? logitLensExport(out, { view: this.view, selection: this.sel, width: this.width - 40 }) : null;
  }

  private onTarget(e: Event): void {
    const v = (e.target as HTMLInputElement).value;
    writeSetting(this, 'target', v === '' ? undefined : v);
  }

  private onPositions(e: Event): void {
    const v = (e.target as HTMLInputElement).value.trim();
    const n = Number(v);
    writeSetting(this, 'positions', v === '' || v === 'all' ? undefined : Number.isInteger(n) && n > 0 ? n : undefined);
  }

  override render() {
    if (!this.cell) return nothing;
    const out = this.output;
    const ro = this.doc?.readonly ?? true;
    const { busy, error } = this.status();
    const preview = out !== null && this.state?.preview === true;   // this run's first answer: current, not stale
    const target = settingOf(this.cell, 'target');
    const positions = settingOf(this.cell, 'positions');
    const grid = out ? this.grid(out) : null;
    const chart = out ? this.target(out) : null;
    this.figs = [grid, chart];
    return html`
      <div class="bar"><div class="controls">
        <label>target token <input type="text" aria-label="Target token" placeholder="e.g.  the" .value=${live(typeof target === 'string' ? target : '')}
          ?readonly=${ro} @change=${this.onTarget}></label>
        <label>positions <input type="text" inputmode="numeric" aria-label="Positions shown: all, or the last N" placeholder="all"
          .value=${live(typeof positions === 'number' ? String(positions) : '')} ?readonly=${ro} @change=${this.onPositions}></label>
        <label>colour by <select aria-label="Colour the grid by" ?disabled=${ro}
          @change=${(e: Event) => writeSetting(this, 'view', (e.target as HTMLSelectElement).value === 'target' ? 'target' : undefined)}>
          <option value="grid" ?selected=${this.view === 'grid'}>top token</option>
          <option value="target" ?selected=${this.view === 'target'} ?disabled=${!out?.target}>target token</option></select></label>
        ${this.zoomControls(grid)}
        ${busy || preview ? html`<span class="note" role="status">${busy ? 'updating…' : ''}${preview ? this.previewText(out!) : ''}${progressText(this.state)}</span>` : nothing}
      </div>${out ? exportMenu(this, () => this.exportFigure()) : nothing}</div>
      ${error}
      ${out && grid ? html`<div class=${busy && !preview ? 'stale' : ''}>
          ${this.drawn(grid, 0, 'Logit lens: the top token of each layer at each position (drawn on a canvas; hover a cell for its numbers)', 'lens-grid')}
          <div class="readout" role="status">${this.readout}</div>
          ${chart ? this.drawn(chart, 1, `Probability and rank of the target token across layers`, 'lens-target')
            : out.target ? nothing : html`<p class="note">Type a target token to follow its probability and rank across layers.</p>`}
        </div>`
        : html`<p class="note" role="status">${this.model ? `Computing the logit lens…${progressText(this.state)}` : 'Load a model to see the logit lens.'}</p>`}`;
  }
}

declare global {
  interface HTMLElementTagNameMap { 'glassbox-logit-lens': GlassboxLogitLens }
}
