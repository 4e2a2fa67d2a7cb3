// <glassbox-attention>: one layer's attention heads as small multiples (query heads framed by the
// KV head they share), one head enlarged as a query × key heatmap, a lines view, the prompt tinted
// by one token's attention, and an overview of every layer × head. The element draws what the
// page computed (state.output: AttentionOutput); view controls write the cell's view keys back
// into the notebook (view, head, heads, sort, mean) and re-draw from the same output, the layer
// key makes the page recompute. The small multiples (always) and long prompts' views draw on
// canvases: the pixels are computed once per output (memoized on its identity) and put with
// putImageData; SVG draws only their frames, and hover readouts come from the geometry.

import { LitElement, css, html, nothing, unsafeCSS, type PropertyValues } from 'lit';
import { customElement, property } from 'lit/decorators.js';
import { live } from 'lit/directives/live.js';
import { unsafeHTML } from 'lit/directives/unsafe-html.js';
import { cellCss, downloadFigure, errorText, modelName, type CellProps, exportMenu } from './common.ts';
import { linked, LinkedController } from './plot/linked.ts';
import type { FigureExport } from './plot/figure.ts';
import { SVG_CELL_LIMIT } from './plot/kit.ts';
import {
  attentionFigure, defaultCell, everyLayer, fromTokenSvg, headStat, heatCellAt, heatmapGeom, heatmapHighlightSvg, heatmapSvg, kvHeadOf, linesSvg, linesPlan, linesOnCanvas, drawLines, linesGeom, type LinesPlan,
  linesHighlightSvg, multiplesAt, multiplesGeom, multiplesHighlightSvg, multiplesPixels, multiplesUseBins, orderHeads, overviewAt, overviewGeom, overviewHighlightSvg, overviewPixels, overviewSvg,
  binReadout, headIndex, layerThumbs, patternPixels, poolNote, readout, shownHeads, sig4, smallMultiplesSvg, binStart, viewState, weightAt, SORTS, VIEWS,
  type AttentionOutput, type AttentionView, type AttentionViewState, type HeadSort,
} from './plot/attention.ts';
import type { Cell } from '../src/notebook/format.ts';
import type { Value } from '../src/notebook/settings.ts';
import type { CellState } from '../src/notebook/graph.ts';
import type { NotebookDocument } from '../src/notebook/document.ts';
import type { ModelInfo } from '../src/engine/api.ts';

const VIEW_LABEL: Record<AttentionView, string> = {
  heads: 'heads of this layer', heatmap: 'one head (heatmap)', lines: 'lines', from: 'from this token', overview: 'model overview',
};
const SORT_LABEL: Record<HeadSort, string> = { index: 'index', entropy: 'entropy (low first)', first: 'attention to first token', prev: 'previous-token score', induction: 'induction score' };
const ZOOMS = [0.25, 0.5, 1, 1.5, 2, 3, 4, 6, 8, 12, 16];

/** Memo of derived figures per output object (the page replaces the output when it recomputes). */
const memo = new WeakMap<AttentionOutput, Map<string, unknown>>();
function cached<T>(out: AttentionOutput, key: string, make: () => T): T {
  let m = memo.get(out);
  if (!m) memo.set(out, (m = new Map()));
  if (!m.has(key)) { if (m.size > 24) m.clear(); m.set(key, make()); }
  return m.get(key) as T;
}

interface Pixels { pixels: Uint8ClampedArray<ArrayBuffer>; width: number; height: number }

@customElement('glassbox-attention')
export class GlassboxAttention extends LitElement implements CellProps {
  static override styles = [unsafeCSS(cellCss), css`
    .controls { display: flex; flex-wrap: wrap; gap: 6px 14px; align-items: center; font-size: 13px; margin-bottom: 8px; }
    select, input, button { font: inherit; font-size: 13px; }
    input.heads { width: 9em; }
    .fig { position: relative; display: inline-block; max-width: 100%; }
    .fig > svg { display: block; max-width: 100%; height: auto; position: relative; }
    .fig > canvas.under { left: 0; top: 0; width: 100%; height: 100%; pointer-events: none; }
    .fig.hl .lines line { stroke-opacity: .08; }
    .fig > canvas.lines { image-rendering: auto; }
    .fig.hl > canvas.lines { opacity: .15; }
    .fig > svg.overlay { position: absolute; inset: 0; width: 100%; height: 100%; pointer-events: none; }
    .scroll { overflow: auto; max-height: 760px; max-width: 100%; border: 1px solid var(--line, #ddd); border-radius: 6px; }
    .scroll .fig { max-width: none; }
    .scroll .fig > svg { max-width: none; }
    canvas { position: absolute; image-rendering: pixelated; cursor: crosshair; }
    .tile, .tok, .thumb, [data-q] { cursor: pointer; }
    .readout { min-height: 1.4em; font-size: 12px; font-family: var(--mono, monospace); color: var(--muted, #555); }
    .stale { opacity: .55; }
    .zoom button { min-width: 2em; }
    details.export { position: relative; }
    details.export > div { position: absolute; z-index: 2; display: flex; flex-direction: column; background: var(--card, #fff);
      border: 1px solid var(--line, #ccc); border-radius: 6px; padding: 4px; }
    summary { cursor: pointer; }
  `];

  @property({ attribute: false }) cell: Cell | null = null;
  @property({ attribute: false }) state: CellState | null = null;
  @property({ attribute: false }) doc: NotebookDocument | null = null;
  @property({ attribute: false }) model: ModelInfo | null = null;

  private readonly sel = new LinkedController(this);
  private zoom = 1;                 // heatmap canvas: × defaultCell (element state, not in the notebook)
  private hoverText = '';

  private get output(): AttentionOutput | null {
    const o = this.state?.output as AttentionOutput | null | undefined;
    return o && o.pattern && o.labels ? o : null;
  }
  private get cellId(): string { return this.cell?.id ?? 'attention'; }
  private get ro(): boolean { return this.doc?.readonly ?? true; }

  private set(key: string, value: Value | undefined): void {
    if (this.cell && this.doc && !this.doc.readonly) this.doc.setSetting(this.cell.id, key, value);
  }

  /** The linked token, when it belongs to this output's prompt. */
  private token(out: AttentionOutput): number | null {
    const s = this.sel.selection;
    return s.token !== null && s.prompt === out.prompt && s.token < out.labels.length ? s.token : null;
  }

  private view(out: AttentionOutput | null): AttentionViewState {
    return viewState(this.cell?.settings ?? {}, out, out ? this.token(out) : null);
  }

  exportFigure(): FigureExport | null {
    const out = this.output;
    if (!out) return null;
    try { return attentionFigure(out, this.view(out)); } catch (e) { if (e instanceof RangeError) return null; throw e; }
  }

  private exportAs(ext: 'svg' | 'png' | 'csv' | 'json'): Promise<void> {
    return downloadFigure(this, this.exportFigure(), ext);
  }

  // -- events -----------------------------------------------------------------------------------

  private readoutFrom(el: Element, out: AttentionOutput): void {
    const d = (el as HTMLElement | SVGElement).dataset;
    if (d['q'] !== undefined && d['k'] !== undefined && d['h'] !== undefined) {
      const h = d['h'] === 'mean' ? 'mean' : Number(d['h']);
      this.hoverText = readout(out, h, Number(d['q']), Number(d['k']), Number(d['v']));
    } else if (d['q0'] !== undefined) {
      this.hoverText = `head ${d['h']}: queries ${d['q0']}–${d['q1']}, keys ${d['k0']}–${d['k1']}: ${out.pooled ? layerThumbs(out).reduce : 'mean'} ${d['v']}`;
    }
  }

  /** Hover over an SVG view: tokens (labels, rows) and heads (tiles) go to the linked selection. */
  private onOver(e: Event): void {
    const out = this.output;
    if (!out) return;
    const t = e.target as Element;
    const mark = t.closest('[data-v]');
    if (mark) this.readoutFrom(mark, out);
    const tok = t.closest('[data-t]') ?? (this.view(out).view === 'heatmap' ? t.closest('[data-q]') : null);
    const tile = t.closest('.tile');
    const cur = this.sel.selection;
    if (tok) {
      const d = (tok as SVGElement).dataset, token = Number(d['t'] ?? d['q']);
      if (cur.token !== token || cur.prompt !== out.prompt) linked.hover({ token, prompt: out.prompt }, this.cellId);
    } else if (tile) {
      const head = Number((tile as SVGElement).dataset['h']);
      if (cur.layer !== out.layer || cur.head !== head) linked.hover({ layer: out.layer, head }, this.cellId);
    }
    this.requestUpdate();
  }

  private onLeave(): void {
    this.hoverText = '';
    linked.leave(this.cellId);
    this.requestUpdate();
  }

  private onClick(e: Event): void {
    const out = this.output;
    if (!out) return;
    const t = e.target as Element;
    const tile = t.closest('.tile');
    const tok = t.closest('[data-t]');
    if (tile) {
      const h = Number((tile as SVGElement).dataset['h']);
      linked.select({ layer: out.layer, head: h }, this.cellId);
      this.set('head', h);
      this.set('view', 'heatmap');
    } else if (tok) {
      linked.select({ token: Number((tok as SVGElement).dataset['t']), prompt: out.prompt }, this.cellId);
    }
  }

  /** Canvas heatmap: the cell under the mouse, from its position. */
  private onHeatMove(e: MouseEvent, out: AttentionOutput, head: number, cell: number): void {
    const box = (e.currentTarget as HTMLElement).getBoundingClientRect();
    const g = cached(out, `hgeom|${cell}`, () => heatmapGeom(out, cell));
    const at = heatCellAt(g, g.x0 + (e.clientX - box.left), g.y0 + (e.clientY - box.top));
    if (!at) return;
    this.hoverText = at.k <= at.q ? readout(out, head, at.q, at.k, weightAt(out, head, at.q, at.k)) : `query ${at.q}, key ${at.k}: masked (key after query)`;
    if (this.sel.selection.token !== at.q) linked.hover({ token: at.q, prompt: out.prompt }, this.cellId);
    this.requestUpdate();
  }

  private onOverviewMove(e: MouseEvent, out: AttentionOutput, sort: HeadSort): void {
    const s = out.summary!;
    const g = cached(out, `ogeom|${sort}`, () => overviewGeom(s, sort));
    const box = (e.currentTarget as HTMLElement).getBoundingClientRect();
    const at = overviewAt(g, g.x0 + (e.clientX - box.left), g.y0 + (e.clientY - box.top));
    if (!at) return;
    const B = s.size, v = s.thumbs[((at.layer * s.nHeads + at.head) * B + at.qi) * B + at.ki]!;
    const st = (k: 'entropy' | 'first' | 'prev' | 'induction') => sig4(headStat(s, at.layer, at.head, k));
    this.hoverText = `layer ${at.layer}, head ${at.head} (KV ${kvHeadOf(at.head, s.nHeads, out.nKvHeads)}): entropy ${st('entropy')}, first ${st('first')}, prev ${st('prev')}`
      + (s.induction?.some((x) => Number.isFinite(x)) ? `, induction ${st('induction')}` : '')
      + ` · queries ${binStart(at.qi, s.nPos, B)}–${binStart(at.qi + 1, s.nPos, B) - 1}, keys ${binStart(at.ki, s.nPos, B)}–${binStart(at.ki + 1, s.nPos, B) - 1}: ${Number.isFinite(v) ? `mean ${sig4(v)}` : 'masked'}`;
    const cur = this.sel.selection;
    if (cur.layer !== at.layer || cur.head !== at.head) linked.hover({ layer: at.layer, head: at.head }, this.cellId);
    this.requestUpdate();
  }

  private onOverviewClick(e: MouseEvent, out: AttentionOutput, sort: HeadSort): void {
    const g = cached(out, `ogeom|${sort}`, () => overviewGeom(out.summary!, sort));
    const box = (e.currentTarget as HTMLElement).getBoundingClientRect();
    const at = overviewAt(g, g.x0 + (e.clientX - box.left), g.y0 + (e.clientY - box.top));
    if (!at) return;
    linked.select({ layer: at.layer, head: at.head }, this.cellId);
    this.set('layer', at.layer);
    this.set('head', at.head);
    this.set('view', 'heatmap');
  }

  private onWheel(e: WheelEvent): void {
    if (!e.ctrlKey) return;
    e.preventDefault();
    this.stepZoom(e.deltaY < 0 ? 1 : -1);
  }

  private stepZoom(d: number): void {
    const i = ZOOMS.indexOf(this.zoom);
    this.zoom = ZOOMS[Math.max(0, Math.min(ZOOMS.length - 1, (i < 0 ? 2 : i) + d))]!;
    this.requestUpdate();
  }

  // -- canvases ----------------------------------------------------------------------------------

  /** Puts memoized pixels into each canvas whose content key changed (not on every render). */
  protected override updated(_changed: PropertyValues): void {
    const out = this.output;
    if (!out) return;
    for (const c of this.renderRoot.querySelectorAll<HTMLCanvasElement>('canvas[data-key]')) {
      const key = c.dataset['key']!;
      if (c.dataset['drawn'] === key) continue;
      if (key.startsWith('lpx|')) { drawLinesCanvas(c, out, Number(key.slice(4))); c.dataset['drawn'] = key; continue; }
      const p = cached<Pixels>(out, key, () => this.pixelsFor(out, key));
      c.width = p.width; c.height = p.height;
      c.getContext('2d')?.putImageData(new ImageData(p.pixels, p.width, p.height), 0, 0);
      c.dataset['drawn'] = key;
    }
  }

  private pixelsFor(out: AttentionOutput, key: string): Pixels {
    const [kind, arg] = key.split('|');
    if (kind === 'hpx') { const n = out.labels.length; return { pixels: patternPixels(out, Number(arg)), width: n, height: n }; }
    if (kind === 'mpx') { const heads = arg ? arg.split(',').map(Number) : []; return multiplesPixels(out, heads, multiplesGeom(out, heads)); }
    return overviewPixels(out.summary!, arg as HeadSort);
  }

  // -- views -------------------------------------------------------------------------------------

  private figure(out: AttentionOutput, v: AttentionViewState) {
    const sel = this.sel.selection, tok = this.token(out);
    const events = { over: (e: Event) => this.onOver(e), leave: () => this.onLeave(), click: (e: Event) => this.onClick(e) };
    const n = out.labels.length;
    // Long prompts fetch only the head a one-head view shows (src/app/compute.ts): another head,
    // or the mean over heads, waits for the page to recompute with it.
    const oneHead = v.view === 'heatmap' || v.view === 'lines' || (v.view === 'from' && !v.mean);
    if ((oneHead && headIndex(out, v.head) < 0) || (v.view === 'from' && v.mean && out.pattern.heads.length < out.nHeads)
      || (v.view === 'heads' && !out.pooled && out.pattern.heads.length === 0)) {
      return html`<p class="note" data-testid="attention-not-loaded">${n} tokens: this output holds ${out.pattern.heads.length ? `head ${out.pattern.heads.join(', ')}` : 'no head'}'s full pattern;
        ${v.view === 'heads' ? 'the heads view' : v.mean ? 'the mean over heads' : `head ${v.head}`} loads when the cell recomputes.</p>`;
    }
    switch (v.view) {
      case 'heads': {
        const order = shownHeads(v.heads, orderHeads(out.summary, out.layer, v.sort, out.nHeads));
        const bins = multiplesUseBins(out, order);
        const k = `heads|${v.sort}|${order.join(',')}`;
        // The tiles' cells (or bins) go on one canvas under the SVG (labels, frames, stats); the
        // readout comes from the geometry.
        const svg = cached(out, k, () => smallMultiplesSvg(out, order, { sort: v.sort, mode: 'frame' }));
        const g = cached(out, `g${k}`, () => multiplesGeom(out, order));
        const hl = sel.layer === null || sel.layer === out.layer ? sel.head : null;
        const move = (e: MouseEvent) => {
          const box = (e.currentTarget as HTMLElement).getBoundingClientRect();
          const f = g.width / box.width;
          const at = multiplesAt(out, g, (e.clientX - box.left) * f, (e.clientY - box.top) * f);
          if (!at) return;
          if (bins) {
            const t = layerThumbs(out);
            this.hoverText = binReadout(t, n, at.head, at.qi, at.ki) + (out.pooled ? ` (${poolNote(t, n)})` : '');
          } else {
            this.hoverText = at.ki <= at.qi ? readout(out, at.head, at.qi, at.ki, weightAt(out, at.head, at.qi, at.ki))
              : `head ${at.head}: query ${at.qi}, key ${at.ki}: masked (key after query)`;
          }
          this.requestUpdate();
        };
        return html`<div class="fig" @mouseover=${events.over} @mousemove=${move} @mouseleave=${events.leave} @click=${events.click}>
          <canvas class="under" data-key=${`mpx|${order.join(',')}`} aria-hidden="true"></canvas>
          ${unsafeHTML(svg)}${unsafeHTML(overlay(multiplesHighlightSvg(g, hl)))}</div>
          <p class="note">Click a head to enlarge it.${order.length < out.nHeads ? ` Showing ${order.length} of ${out.nHeads} heads.` : ''}${out.pooled ? ` ${n} tokens: each tile pixel is the ${poolNote(layerThumbs(out), n)}.` : bins ? ` ${n} tokens: tiles show bin means.` : ''}</p>`;
      }
      case 'heatmap': {
        if (n * n <= SVG_CELL_LIMIT) {
          const svg = cached(out, `hm|${v.head}`, () => heatmapSvg(out, v.head));
          const g = cached(out, `hgeom|${defaultCell(n)}`, () => heatmapGeom(out));
          return html`<div class="fig" @mouseover=${events.over} @mouseleave=${events.leave} @click=${events.click}>
            ${unsafeHTML(svg)}${unsafeHTML(overlay(heatmapHighlightSvg(g, tok)))}</div>`;
        }
        const cell = defaultCell(n) * this.zoom;
        const g = cached(out, `hgeom|${cell}`, () => heatmapGeom(out, cell));
        const frame = cached(out, `hmf|${v.head}|${cell}`, () => heatmapSvg(out, v.head, { cell, mode: 'frame' }));
        return html`<div class="zoom controls" role="group" aria-label="Zoom">
            <button aria-label="Zoom out" @click=${() => this.stepZoom(-1)}>−</button>
            <button aria-label="Fit" @click=${() => { this.zoom = 1; this.requestUpdate(); }}>fit</button>
            <button aria-label="Zoom in" @click=${() => this.stepZoom(1)}>+</button>
            <span class="note">${Math.round(this.zoom * 100)}% · ctrl + wheel zooms · ${n} tokens drawn as pixels</span></div>
          <div class="scroll" @wheel=${(e: WheelEvent) => this.onWheel(e)}>
            <div class="fig" @mouseover=${events.over} @mouseleave=${events.leave} @click=${events.click}>
              ${unsafeHTML(frame)}
              <canvas data-key=${`hpx|${v.head}`} role="img" aria-label=${`Attention of layer ${out.layer}, head ${v.head}: ${n} × ${n} pixels, one per query and key`}
                style=${`left:${g.x0}px;top:${g.y0}px;width:${n * cell}px;height:${n * cell}px;image-rendering:${cell >= 1 ? 'pixelated' : 'auto'}`}
                @mousemove=${(e: MouseEvent) => this.onHeatMove(e, out, v.head, cell)}
                @click=${() => { if (tok !== null) linked.select({ token: tok, prompt: out.prompt }, this.cellId); }}></canvas>
              ${unsafeHTML(overlay(heatmapHighlightSvg(g, tok)))}
            </div></div>`;
      }
      case 'lines': {
        // The lines are parsed once per head; a hovered token fades them by CSS and its own lines
        // are drawn on an overlay (a few elements), so hovering a 1,000-token view stays fast.
        // Past LINES_SVG_LIMIT lines (a long prompt's broad head) they go on a canvas under the
        // labels instead of thousands of titled elements; the hovered token's lines keep titles.
        const plan = cached(out, `lnp|${v.head}`, () => linesPlan(out, v.head));
        const onCanvas = linesOnCanvas(plan);
        const svg = cached(out, `ln|${v.head}`, () => linesSvg(out, v.head, { plan, mode: onCanvas ? 'frame' : 'svg' }));
        return html`<div class="${n > 60 ? 'scroll' : ''}"><div class="fig ${tok !== null ? 'hl' : ''}" @mouseover=${events.over} @mouseleave=${events.leave} @click=${events.click}>
          ${onCanvas ? html`<canvas class="under lines" data-key=${`lpx|${v.head}`} aria-hidden="true"></canvas>` : nothing}
          ${unsafeHTML(svg)}${unsafeHTML(overlay(linesHighlightSvg(out, v.head, tok)))}</div></div>`;
      }
      case 'from': {
        const q = tok ?? n - 1;
        const svg = cached(out, `from|${v.mean ? 'mean' : v.head}|${q}`, () => fromTokenSvg(out, v.mean ? 'mean' : v.head, q));
        return html`<div class="${n > 200 ? 'scroll' : ''}"><div class="fig" @mouseover=${events.over} @mouseleave=${events.leave} @click=${events.click}>${unsafeHTML(svg)}</div></div>
          <p class="note">Hover a token to see where it looks; click to keep it.</p>`;
      }
      case 'overview': {
        const s = out.summary;
        if (!everyLayer(s, out.nLayers)) return html`<p class="note">The overview needs the per-head summary of every layer, which this output does not have.</p>`;
        const g = cached(out, `ogeom|${v.sort}`, () => overviewGeom(s, v.sort));
        const frame = cached(out, `ov|${v.sort}`, () => overviewSvg(s, { sort: v.sort, mode: 'frame' }));
        const w = s.nHeads * g.step * g.scale, h = s.nLayers * g.step * g.scale;
        return html`<div class="scroll"><div class="fig" @mouseleave=${events.leave}>
            ${unsafeHTML(frame)}
            <canvas data-key=${`opx|${v.sort}`} role="img" aria-label=${`Attention thumbnails of ${s.nLayers} layers × ${s.nHeads} heads; click one to open it`}
              style=${`left:${g.x0}px;top:${g.y0}px;width:${w}px;height:${h}px`}
              @mousemove=${(e: MouseEvent) => this.onOverviewMove(e, out, v.sort)}
              @click=${(e: MouseEvent) => this.onOverviewClick(e, out, v.sort)}></canvas>
            ${unsafeHTML(overlay(overviewHighlightSvg(g, sel.layer, sel.head)))}
          </div></div><p class="note">Click a thumbnail to open that head.</p>`;
      }
    }
  }

  private controls(out: AttentionOutput | null, v: AttentionViewState) {
    const ro = this.ro;
    const nLayers = out?.nLayers ?? this.model?.config.nLayers ?? 0;
    const nHeads = out?.nHeads ?? this.model?.config.nHeads ?? 0;
    const layer = typeof this.cell?.settings['layer'] === 'number' ? (this.cell.settings['layer'] as number) : 0;
    const pickInt = (key: string) => (e: Event) => this.set(key, Number((e.target as HTMLSelectElement).value));
    const headsText = Array.isArray(v.heads) ? v.heads.join(', ') : 'all';
    const onHeads = (e: Event) => {
      const input = e.target as HTMLInputElement, t = input.value.trim();
      const list = t.split(/[\s,]+/).filter(Boolean).map(Number);
      const ok = t === '' || t === 'all' || list.every((h) => Number.isInteger(h) && h >= 0 && h < nHeads);
      input.setAttribute('aria-invalid', String(!ok));
      if (ok) this.set('heads', t === '' || t === 'all' ? undefined : [...new Set(list)].sort((a, b) => a - b));
    };
    const showHead = v.view === 'heatmap' || v.view === 'lines' || (v.view === 'from' && !v.mean);
    return html`<div class="controls">
      <label>layer <select aria-label="Layer" ?disabled=${ro || !nLayers} @change=${pickInt('layer')}>
        ${Array.from({ length: nLayers }, (_, i) => html`<option value=${i} ?selected=${i === layer}>${i}</option>`)}</select></label>
      <label>view <select aria-label="View" ?disabled=${ro} @change=${(e: Event) => this.set('view', (e.target as HTMLSelectElement).value === 'heads' ? undefined : (e.target as HTMLSelectElement).value)}>
        ${VIEWS.map((x) => html`<option value=${x} ?selected=${x === v.view}>${VIEW_LABEL[x]}</option>`)}</select></label>
      ${showHead ? html`<label>head <select aria-label="Head" ?disabled=${ro} @change=${pickInt('head')}>
        ${Array.from({ length: nHeads }, (_, h) => html`<option value=${h} ?selected=${h === v.head}>${h}${out && out.nKvHeads < out.nHeads ? ` (KV ${kvHeadOf(h, out.nHeads, out.nKvHeads)})` : ''}</option>`)}</select></label>` : nothing}
      ${v.view === 'heads' || v.view === 'overview' ? html`<label>sort heads by <select aria-label="Sort heads by" ?disabled=${ro}
          @change=${(e: Event) => { const s = (e.target as HTMLSelectElement).value; this.set('sort', s === 'index' ? undefined : s); }}>
        ${SORTS.map((s) => html`<option value=${s} ?selected=${s === v.sort}>${SORT_LABEL[s]}</option>`)}</select></label>` : nothing}
      ${v.view === 'heads' ? html`<label title="all, or head numbers separated by commas">heads <input class="heads" aria-label="Heads to show (all, or a list)"
          .value=${live(headsText)} ?disabled=${ro} @change=${onHeads}></label>` : nothing}
      ${v.view === 'from' ? html`<label><input type="checkbox" aria-label="Mean over the layer's heads" .checked=${live(v.mean)} ?disabled=${ro}
          @change=${(e: Event) => this.set('mean', (e.target as HTMLInputElement).checked ? true : undefined)}> mean over heads</label>` : nothing}
      ${exportMenu((x) => this.exportAs(x), !out)}
    </div>`;
  }

  override render() {
    if (!this.cell) return nothing;
    const out = this.output;
    const v = this.view(out);
    const st = this.state?.status;
    const busy = st === 'running' || st === 'stale';
    return html`
      ${this.controls(out, v)}
      ${st === 'error' ? html`<div class="error" role="alert">${errorText(this.state!.error)}</div>` : nothing}
      ${out ? html`<div class=${busy ? 'stale' : ''} data-testid="attention-figure">
          ${busy ? html`<p class="note">updating…</p>` : nothing}
          ${this.figure(out, v)}
          <div class="readout" aria-live="polite">${this.hoverText || '\u00a0'}</div></div>`
        : st !== 'error' ? html`<p class="note">${this.model ? 'Waiting for the prompt…' : 'Load a model to see its attention.'}</p>` : nothing}`;
  }
}

/** An overlay SVG (highlights) laid over its figure at the same size. */
function overlay(svg: string): string {
  return svg.replace('<svg ', '<svg class="overlay" ');
}

/** Pixels a lines canvas may take (its 2D backing store: 4 bytes each), and the longest side browsers draw. */
const LINES_CANVAS_PIXELS = 16e6, CANVAS_SIDE = 32000;

/** Draws a head's lines (the lines view past LINES_SVG_LIMIT) on `c`, at the device's pixel ratio
 *  where the canvas stays within LINES_CANVAS_PIXELS and CANVAS_SIDE (a long prompt's view is tall). */
function drawLinesCanvas(c: HTMLCanvasElement, out: AttentionOutput, head: number): void {
  const g = linesGeom(out), plan = cached<LinesPlan>(out, `lnp|${head}`, () => linesPlan(out, head));
  const ratio = Math.min(globalThis.devicePixelRatio || 1, 2, Math.sqrt(LINES_CANVAS_PIXELS / (g.width * g.height)), CANVAS_SIDE / g.height);
  c.width = Math.max(1, Math.round(g.width * ratio));
  c.height = Math.max(1, Math.round(g.height * ratio));
  const ctx = c.getContext('2d');
  if (!ctx) return;
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  drawLines(ctx, out, plan);
}
