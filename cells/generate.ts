// <glassbox-generate>: text generated after a prompt, one token at a time, with branches. Step,
// play/pause, run N, undo and reset; each generated token on the colour of its probability;
// hovering (or focusing) a token shows its alternatives, and clicking one forks a branch there.
// A branch browser lists the tree, selects, compares two branches side by side and deletes.
//
// The element never calls the worker: it asks the page with a bubbling, composed
// 'glassbox-generate' event (GenerateAction; the page sets detail.done, a promise of the
// result). The page steps (src/app/generation.ts) and writes the tree back into the cell's
// `branches` and `branch` settings; the cell's output (prompt + current branch, as tokens) then
// comes back through the reactive graph. The sampler knobs, N, the colouring and the compared
// branch are view settings the element writes itself.

import { LitElement, css, html, nothing, unsafeCSS } from 'lit';
import { customElement, property, state } from 'lit/decorators.js';
import { live } from 'lit/directives/live.js';
import { unsafeSVG } from 'lit/directives/unsafe-svg.js';
import { cellCss, downloadFigure, errorText, statusOf, type CellProps, exportMenu } from './common.ts';
import { samplerControls, samplerCss } from './sampling.ts';
import { linked } from './plot/linked.ts';
import type { FigureExport } from './plot/figure.ts';
import { fmt, legendSvg } from './plot/kit.ts';
import {
  branchTokens, compareBranches, generateExport, generateView, probOf, promptRuns, STOP_TEXT, tokenColors, tokenTitle, treeRows,
  type GenerateOutput, type GenerateView, type TokenView,
} from './plot/generate.ts';
import { GENERATE_EVENT, type GenerateAction, type GenerateResult } from '../src/app/generation.ts';
import type { Cell } from '../src/notebook/format.ts';
import type { CellState } from '../src/notebook/graph.ts';
import type { NotebookDocument } from '../src/notebook/document.ts';
import type { ModelInfo } from '../src/engine/api.ts';
import type { Value } from '../src/notebook/settings.ts';

const OUTCOME: Record<GenerateResult['outcome'], string> = {
  token: 'one token', eos: 'stopped: an end token', context: 'stopped: the context is full', length: 'stopped: N tokens',
  paused: 'paused', busy: 'busy: pause first', done: '', error: 'error',
};

@customElement('glassbox-generate')
export class GlassboxGenerate extends LitElement implements CellProps {
  static override styles = [unsafeCSS(cellCss), samplerCss, css`
    .bar { display: flex; flex-wrap: wrap; gap: 6px 10px; align-items: center; font-size: 13px; margin: 4px 0 8px; }
    .bar input[type=number] { width: 5em; font: inherit; }
    .text { font: 14px/1.9 var(--mono, monospace); white-space: pre-wrap; word-break: break-word; border: 1px solid var(--line, #ddd); border-radius: 8px; padding: 8px 10px; min-height: 2em; }
    .text .prompt { color: var(--muted, #666); }
    .text .prompt .special { background: color-mix(in srgb, #d58a00 25%, transparent); border-radius: 3px; color: var(--fg, inherit); }
    .gen { unicode-bidi: isolate; border-radius: 3px; padding: 1px 0; cursor: default; }
    .gen.active { outline: 2px solid var(--accent, #36c); }
    .gen:focus-visible { outline: 2px solid var(--accent, #36c); }
    .alts { font-size: 13px; margin: 6px 0; display: flex; flex-wrap: wrap; gap: 4px 8px; align-items: center; min-height: 1.8em; }
    .alts button { font: 13px var(--mono, monospace); }
    .alts button[aria-current=true] { font-weight: 700; }
    .tree { list-style: none; padding: 0; margin: 4px 0; font-size: 13px; }
    .tree li { display: flex; gap: 6px; align-items: center; padding: 1px 0; }
    .tree li.current > .name { font-weight: 700; }
    .tree .departs { font-family: var(--mono, monospace); color: var(--muted, #666); white-space: pre; overflow: hidden; text-overflow: ellipsis; max-width: 28em; }
    .compare { display: grid; grid-template-columns: 1fr 1fr; gap: 8px; font: 13px/1.8 var(--mono, monospace); white-space: pre-wrap; }
    .compare .shared { grid-column: 1 / span 2; color: var(--muted, #666); }
    .compare > div { border: 1px solid var(--line, #ddd); border-radius: 6px; padding: 6px; }
    .stale { opacity: .55; }
    .legend svg { display: block; }
  `];

  @property({ attribute: false }) cell: Cell | null = null;
  @property({ attribute: false }) state: CellState | null = null;
  @property({ attribute: false }) doc: NotebookDocument | null = null;
  @property({ attribute: false }) model: ModelInfo | null = null;

  /** The step whose alternatives are shown (hover or focus). */
  @state() active: number | null = null;
  @state() playing = false;
  @state() pending = false;
  @state() last: GenerateResult | null = null;

  private get output(): GenerateOutput | null {
    const o = this.state?.output as GenerateOutput | null | undefined;
    return o && Array.isArray(o.ids) && o.tree && Array.isArray(o.tree.branches) ? o : null;
  }

  private get view(): GenerateView { return generateView(this.cell?.settings ?? {}); }
  private get editable(): boolean { return !!this.cell && !!this.doc && !this.doc.readonly; }

  private set = (key: string, value: Value | undefined): void => {
    if (this.cell && this.doc && !this.doc.readonly) this.doc.setSetting(this.cell.id, key, value);
  };

  /** Asks the page for an action; resolves with its result (null when no page listens). */
  send(action: GenerateAction['action'], extra: Partial<GenerateAction> = {}): Promise<GenerateResult> | null {
    if (!this.cell) return null;
    const detail: GenerateAction = { cellId: this.cell.id, action, ...extra };
    this.dispatchEvent(new CustomEvent(GENERATE_EVENT, { detail, bubbles: true, composed: true }));
    const done = detail.done;
    if (!done) return null;
    if (action !== 'pause') {
      this.pending = true;
      if (action === 'play' || action === 'run') this.playing = true;
      void done.then((r) => { this.last = r; }, (e: unknown) => { this.last = { outcome: 'error', steps: 0, error: errorText(e) }; })
        .finally(() => { this.pending = false; this.playing = false; });
    }
    return done;
  }

  exportFigure(): FigureExport | null {
    const o = this.output;
    return o ? generateExport(o, this.view) : null;
  }

  private exportAs(ext: 'svg' | 'png' | 'csv' | 'json'): Promise<void> {
    return downloadFigure(this, this.exportFigure(), ext);
  }

  private toolbar(o: GenerateOutput | null, ro: boolean) {
    const v = this.view;
    const can = !ro && !!this.model && !!o;
    const busy = this.pending;
    const cur = o?.tree.branches.find((b) => b.id === o.branch);
    const n = cur?.tokens.length ?? 0;
    return html`<div class="bar" role="toolbar" aria-label="Generation">
      <button data-action="step" ?disabled=${!can || busy} @click=${() => this.send('step')} title="Generate one token">Step</button>
      ${this.playing
        ? html`<button data-action="pause" @click=${() => this.send('pause')} title="Stop after this token">Pause</button>`
        : html`<button data-action="play" ?disabled=${!can || busy} @click=${() => this.send('play')} title="Generate token by token until N, an end token or Pause">Play</button>`}
      <button data-action="run" ?disabled=${!can || busy} @click=${() => this.send('run')} title="Generate N tokens, drawing at the end">Run N</button>
      <label>N <input type="number" min="1" step="1" aria-label="Tokens per play or run (N)" .value=${live(String(v.maxTokens))} ?disabled=${ro}
        @change=${(e: Event) => { const x = Number((e.target as HTMLInputElement).value); if (Number.isInteger(x) && x >= 1 && x <= 100000) this.set('max_tokens', x === 64 ? undefined : x); }}></label>
      <button data-action="undo" ?disabled=${!can || busy || n === 0} @click=${() => this.send('undo')} title="Take the last token back">Undo</button>
      <button data-action="reset" ?disabled=${!can || busy || !o || o.tree.branches.every((b) => b.tokens.length === 0)} @click=${() => this.send('reset')} title="Delete every branch">Reset</button>
      <label>colour by <select aria-label="Colour tokens by" ?disabled=${ro} @change=${(e: Event) => this.set('color', (e.target as HTMLSelectElement).value === 'after' ? 'after' : undefined)}>
        <option value="before" ?selected=${v.color === 'before'}>p before sampling</option>
        <option value="after" ?selected=${v.color === 'after'}>p after sampling</option></select></label>
      <span class="note" role="status" data-testid="status">${this.playing ? 'generating…' : this.last ? `${OUTCOME[this.last.outcome]}${this.last.error ? `: ${this.last.error}` : ''}` : ''}
        ${cur?.stopped && !this.playing ? ` · ${STOP_TEXT[cur.stopped] ?? cur.stopped}` : ''}</span>
    </div>`;
  }

  private tokenSpan(t: TokenView) {
    const v = probOf(t, this.view), c = tokenColors(v);
    const focus = this.active ?? 0;
    return html`<span class="gen ${this.active === t.step ? 'active' : ''}" style="background:${c.bg};color:${c.fg}" tabindex=${t.step === focus ? 0 : -1}
      data-step=${t.step} data-t=${t.position} data-id=${t.id} data-v=${+v.toPrecision(4)} title=${tokenTitle(t)}
      @mouseenter=${() => this.showStep(t)} @focus=${() => this.showStep(t)}
      @keydown=${(e: KeyboardEvent) => this.onTokenKey(e, t.step)}>${t.text}</span>`;
  }

  private showStep(t: TokenView): void {
    this.active = t.step;
    if (this.output && this.cell) linked.hover({ token: t.position, prompt: this.cell.id }, this.cell.id);
  }

  private onTokenKey(e: KeyboardEvent, step: number): void {
    const by = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
    if (!by) return;
    e.preventDefault();
    const next = this.renderRoot.querySelector<HTMLElement>(`.gen[data-step="${step + by}"]`);
    next?.focus();
  }

  private alternatives(o: GenerateOutput, tokens: TokenView[], ro: boolean) {
    const t = this.active !== null ? tokens[this.active] : undefined;
    if (!t) return html`<div class="alts note">Hover or focus a generated token (← → move) to see its alternatives; click one to fork a branch there.</div>`;
    return html`<div class="alts" data-testid="alternatives" data-step=${t.step}>
      <span>step ${t.step} · p before ${fmt.prob(t.pBefore)} · after ${fmt.prob(t.pAfter)}${t.u === null ? '' : ` · u ${t.u.toFixed(4)}`} · alternatives:</span>
      ${t.alternatives.map((a) => html`<button data-alt=${a.id} data-v=${a.p} aria-current=${a.chosen} ?disabled=${ro || !this.model || this.pending || a.chosen}
        title=${a.chosen ? 'the token taken' : `fork a branch with this token at step ${t.step}`}
        @click=${() => this.send('fork', { branch: o.branch, at: t.step, token: a.id })}>${a.chosen ? '▸ ' : ''}${JSON.stringify(a.text)} ${fmt.prob(a.p)}</button>`)}
    </div>`;
  }

  private browser(o: GenerateOutput, ro: boolean) {
    const rows = treeRows(o);
    if (rows.length < 2 && rows[0]?.length === 0) return nothing;
    const cmp = this.view.compare;
    return html`<details open><summary>Branches (${rows.length})</summary>
      <ul class="tree" aria-label="Branches">
        ${rows.map((r) => html`<li class=${r.id === o.branch ? 'current' : ''} data-branch=${r.id} style="padding-left:${r.depth * 18}px">
          <button class="name" aria-pressed=${r.id === o.branch} ?disabled=${ro || this.pending} @click=${() => this.send('select', { branch: r.id })}
            title="Show this branch">${r.id}</button>
          <span class="note">${r.parent === null ? '' : `from step ${r.forkAt} · `}${r.length} tokens${r.stopped ? ` · ${r.stopped}` : ''}</span>
          <span class="departs">${r.departs}</span>
          ${r.id === o.branch ? nothing : html`<button data-compare=${r.id} aria-pressed=${cmp === r.id} ?disabled=${ro}
            @click=${() => this.set('compare', cmp === r.id ? undefined : r.id)}>compare</button>`}
          ${r.parent === null ? nothing : html`<button data-delete=${r.id} aria-label=${`Delete branch ${r.id}`} ?disabled=${ro || this.pending}
            @click=${() => this.send('delete', { branch: r.id })}>✕</button>`}
        </li>`)}
      </ul></details>`;
  }

  private comparison(o: GenerateOutput) {
    const cmp = this.view.compare;
    if (!cmp || cmp === o.branch || !o.tree.branches.some((b) => b.id === cmp)) return nothing;
    const c = compareBranches(o, o.branch, cmp);
    const span = (t: TokenView) => { const k = tokenColors(probOf(t, this.view)); return html`<span class="gen" style="background:${k.bg};color:${k.fg}" title=${tokenTitle(t)}>${t.text}</span>`; };
    return html`<div class="compare" data-testid="compare" aria-label=${`Branch ${o.branch} beside branch ${cmp}`}>
      <div class="shared"><span class="note">shared (${c.shared.length} tokens):</span> ${o.text.slice(0, o.promptText)}${c.shared.map((t) => t.text).join('')}</div>
      <div data-side="left"><b>${o.branch}</b><br>${c.left.map(span)}</div>
      <div data-side="right"><b>${cmp}</b><br>${c.right.map(span)}</div>
    </div>`;
  }

  override render() {
    if (!this.cell) return nothing;
    const o = this.output;
    const ro = !this.editable;
    const { busy, err } = statusOf(this.state);
    const s = this.cell.settings;
    const fromCell = typeof s['sampler'] === 'string' ? s['sampler'] : null;
    const sampler = html`<details><summary>Sampler ${fromCell ? html`(settings of the sampling cell <b>${fromCell}</b>)` : '(this cell\'s settings)'}</summary>
      ${fromCell ? html`<p class="note">Steps use the settings of sampling cell "${fromCell}". <button ?disabled=${ro} @click=${() => this.set('sampler', undefined)}>use this cell's own</button></p>`
        : samplerControls(this, s, this.set, ro)}</details>`;
    if (!o) {
      return html`${this.toolbar(null, ro)}${err}${sampler}<p class="note">${!this.model ? 'Load a model to generate.' : busy ? 'Reading the prompt…' : 'Nothing yet: this cell reads a prompt cell above it.'}</p>`;
    }
    const tokens = branchTokens(o, o.branch);
    const label = this.view.color === 'after' ? 'p after sampling' : 'p before sampling (raw softmax)';
    return html`${this.toolbar(o, ro)}${err}
      <div class="top"><span class="legend">${unsafeSVG(`<svg width="250" height="46" role="img" aria-label="Colour legend: ${label}, 0 to 1">${legendSvg({ label, lo: 0, hi: 1, scheme: 'sequential', width: 220, x: 2, y: 0 })}</svg>`)}</span>
        ${exportMenu((x) => this.exportAs(x))}</div>
      <div class="text ${busy ? 'stale' : ''}" data-testid="text" role="group" aria-label=${`Prompt and ${tokens.length} generated tokens`}
        @mouseleave=${() => this.cell && linked.leave(this.cell.id)}><span class="prompt">${promptRuns(o).map((r) => r.special ? html`<span class="special" title="template token">${r.text}</span>` : r.text)}</span>${tokens.map((t) => this.tokenSpan(t))}</div>
      ${this.alternatives(o, tokens, ro)}
      ${this.browser(o, ro)}
      ${this.comparison(o)}
      ${sampler}`;
  }
}

declare global {
  interface HTMLElementTagNameMap { 'glassbox-generate': GlassboxGenerate }
}
