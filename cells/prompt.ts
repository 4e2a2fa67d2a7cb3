// <glassbox-prompt>: an editable text with its tokens drawn underneath (ids and pieces on hover,
// BOS shown, chat-template mode for instruct models). Typing writes the text back into the
// notebook (doc.setText), so the Markdown is the whole state; the page's reactive graph then asks
// the worker for the tokens and hands them back as this cell's state.output.

import { LitElement, css, html, nothing, unsafeCSS } from 'lit';
import { customElement, property, state } from 'lit/decorators.js';
import { live } from 'lit/directives/live.js';
import { cellCss, errorText, esc, type CellProps } from './common.ts';
import { linked, LinkedController } from './plot/linked.ts';
import type { Cell } from '../src/notebook/format.ts';
import type { CellState } from '../src/notebook/graph.ts';
import type { NotebookDocument } from '../src/notebook/document.ts';
import type { ModelInfo, TokenizeOptions, Tokenized } from '../src/engine/api.ts';

export interface TokenChip {
  id: number;
  /** The vocabulary's piece (what hover shows). */
  piece: string;
  /** What the chip shows: the token's slice of the text, whitespace made visible; BOS/EOS named. */
  label: string;
  /** A control token that covers no text (BOS, the chat template's markers). */
  special: boolean;
}

/** Bidirectional controls (embeddings, overrides, isolates, marks) and zero-width characters:
 *  shown as a visible ⟨U+XXXX⟩ so that a piece holding one cannot reorder or hide what is drawn
 *  around it (a vocabulary may hold U+202E RIGHT-TO-LEFT OVERRIDE as a token). */
const INVISIBLE = /[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/g;

/** Spaces, tabs and newlines as visible marks, so "▁the" and "the" look different; bidi and
 *  zero-width controls as their code points. */
export function visible(s: string): string {
  return s.replace(/ /g, '·').replace(/\n/g, '↵').replace(/\t/g, '→')
    .replace(INVISIBLE, (c) => `⟨U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}⟩`);
}

/** The chips of a tokenization: one per token, in order. */
export function tokenChips(t: Tokenized, specials: { bosId?: number | null; eosId?: number | null } = {}): TokenChip[] {
  return t.ids.map((id, i) => {
    const [a, b] = t.spans[i] ?? [0, 0];
    const piece = t.pieces[i] ?? '';
    const slice = t.text.slice(a, b);
    if (id === specials.bosId && slice === '') return { id, piece, label: 'BOS', special: true };
    if (id === specials.eosId && slice === '') return { id, piece, label: 'EOS', special: true };
    const special = slice === '' || /^<\|.*\|>$|^<\/?s>$/.test(slice);
    return { id, piece, label: visible(slice === '' ? piece : slice), special };
  });
}

/** The hover text of a chip. */
export function chipTitle(c: TokenChip, index: number): string {
  return `#${index} · id ${c.id} · piece ${JSON.stringify(c.piece)}`;
}

/** The axis label of each token of a tokenization (the chips' labels, BOS and EOS named by the model's tokenizer). */
export function tokenLabels(t: Tokenized, model: Pick<ModelInfo, 'tokenizer'>): string[] {
  return tokenChips(t, { bosId: model.tokenizer?.bosId, eosId: model.tokenizer?.eosId }).map((c) => c.label);
}

/** How a prompt cell's settings tokenize its text: `chat` wraps it in the chat template, `bos` overrides the BOS rule. */
export function promptTokenizeSettings(s: Readonly<Record<string, unknown>>): TokenizeOptions {
  return { ...(s['chat'] === true ? { chat: true } : {}), ...(typeof s['bos'] === 'boolean' ? { bos: s['bos'] } : {}) };
}

const CHAR_W = 7.8, CHIP_H = 34, GAP = 4, PAD = 5;

/** The chips as a standalone SVG (export; a figure without the page's styles). Rows wrap at `width`. */
export function tokenChipsSvg(chips: readonly TokenChip[], width = 720): string {
  let x = 0, y = 0;
  const parts: string[] = [];
  for (const [i, c] of chips.entries()) {
    const w = Math.max(c.label.length, String(c.id).length) * CHAR_W + 2 * PAD;
    if (x > 0 && x + w > width) { x = 0; y += CHIP_H + GAP; }
    const fill = c.special ? '#f3e3c3' : i % 2 ? '#dde6fb' : '#e9eefc';
    parts.push(`<g transform="translate(${x.toFixed(1)},${y})"><title>${esc(chipTitle(c, i))}</title>`
      + `<rect width="${w.toFixed(1)}" height="${CHIP_H}" rx="4" fill="${fill}"/>`
      + `<text x="${PAD}" y="15" font-family="monospace" font-size="13" fill="#1d1d1f" xml:space="preserve">${esc(c.label)}</text>`
      + `<text x="${PAD}" y="29" font-family="monospace" font-size="10" fill="#6b6b70">${c.id}</text></g>`);
    x += w + GAP;
  }
  const h = chips.length ? y + CHIP_H : 0;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${h}" viewBox="0 0 ${width} ${h}" role="img" aria-label="${chips.length} tokens">${parts.join('')}</svg>`;
}

@customElement('glassbox-prompt')
export class GlassboxPrompt extends LitElement implements CellProps {
  static override styles = [unsafeCSS(cellCss), css`
    textarea { width: 100%; box-sizing: border-box; min-height: 64px; padding: 8px 10px; font: 15px/1.45 var(--mono, monospace);
      border-radius: 8px; border: 1px solid var(--line, #ccc); background: var(--card, #fff); color: inherit; resize: vertical; }
    textarea:focus-visible, input:focus-visible { outline: 2px solid var(--accent, #36c); outline-offset: 1px; }
    .row { display: flex; gap: 14px; align-items: center; margin: 6px 0; font-size: 13px; flex-wrap: wrap; }
    .tokens { display: flex; flex-wrap: wrap; gap: 3px; margin-top: 6px; font-family: var(--mono, monospace); font-size: 13px; }
    .tok { unicode-bidi: isolate; padding: 2px 5px; border-radius: 4px; white-space: pre; background: color-mix(in srgb, var(--accent, #36c) 12%, transparent); }
    .tok:nth-child(even) { background: color-mix(in srgb, var(--accent, #36c) 22%, transparent); }
    .tok.special { background: color-mix(in srgb, #d58a00 25%, transparent); }
    .tok small { display: block; font-size: 10px; color: var(--muted, #666); text-align: center; }
    .stale { opacity: .55; }
    .tok { cursor: pointer; }
    .tok.linked { outline: 2px solid var(--accent, #36c); outline-offset: 0; }
    .tok.pinned { box-shadow: inset 0 -3px 0 var(--accent, #36c); }
  `];

  /** Hovering a chip highlights that token in every cell; a click pins it (Escape or a second click unpins). */
  private readonly sel = new LinkedController(this);

  @property({ attribute: false }) cell: Cell | null = null;
  @property({ attribute: false }) state: CellState | null = null;
  @property({ attribute: false }) doc: NotebookDocument | null = null;
  @property({ attribute: false }) model: ModelInfo | null = null;

  /** The chip that takes the Tab stop: the chips are one stop, arrows move within (a roving tabindex). */
  @state() private focusIdx = 0;

  private moveFocus(to: number, n: number): void {
    const j = Math.max(0, Math.min(n - 1, to));
    this.focusIdx = j;
    void this.updateComplete.then(() => this.shadowRoot?.querySelector<HTMLElement>(`.tok[data-t="${j}"]`)?.focus());
  }

  private onChipKey(e: KeyboardEvent, i: number, n: number, id: string): void {
    const to = e.key === 'ArrowRight' || e.key === 'ArrowDown' ? i + 1 : e.key === 'ArrowLeft' || e.key === 'ArrowUp' ? i - 1
      : e.key === 'Home' ? 0 : e.key === 'End' ? n - 1 : null;
    if (to !== null) { e.preventDefault(); this.moveFocus(to, n); return; }
    if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); linked.select({ token: i, prompt: id }, id); }
  }

  private get text(): string {
    const t = this.cell?.settings['text'];
    return typeof t === 'string' ? t : '';
  }

  private onInput(e: Event): void {
    const value = (e.target as HTMLTextAreaElement).value;
    if (this.cell && this.doc && !this.doc.readonly) this.doc.setText(this.cell.id, value);
  }

  private onChat(e: Event): void {
    const on = (e.target as HTMLInputElement).checked;
    if (this.cell && this.doc && !this.doc.readonly) this.doc.setSetting(this.cell.id, 'chat', on ? true : undefined);
  }

  override render() {
    if (!this.cell) return nothing;
    const id = this.cell.id;
    const ro = this.doc?.readonly ?? true;
    const chat = this.cell.settings['chat'] === true;
    const hasTemplate = this.model?.tokenizer?.chatTemplate ?? false;
    const out = this.state?.output as Tokenized | null | undefined;
    const tok = this.model?.tokenizer;
    const chips = out ? tokenChips(out, { bosId: tok?.bosId, eosId: tok?.eosId }) : [];
    const busy = this.state?.status === 'running' || this.state?.status === 'stale';
    return html`
      <label class="note" for="text">Prompt${this.cell.settings['name'] ? html` <b>${String(this.cell.settings['name'])}</b>` : nothing}</label>
      <textarea id="text" aria-label="Prompt text (${id})" .value=${live(this.text)} ?readonly=${ro} @input=${this.onInput}></textarea>
      <div class="row">
        <label title=${hasTemplate ? 'Wrap the text in the model\'s chat template' : 'The loaded model has no chat template'}>
          <input type="checkbox" .checked=${live(chat)} ?disabled=${ro || (!hasTemplate && !chat)} @change=${this.onChat}> chat template
        </label>
        <span class="note" data-testid="token-count">${out ? `${chips.length} tokens` : this.model ? 'tokenizing…' : 'load a model to see the tokens'}</span>
      </div>
      ${out && this.model && chips.length > this.model.config.nCtx ? html`<div class="error" role="alert" data-testid="context-limit">The prompt is
        ${chips.length} tokens but the model's context is ${this.model.config.nCtx} tokens: the cells that run the model refuse it. Shorten the prompt.</div>` : nothing}
      ${this.state?.status === 'error' ? html`<div class="error" role="alert">${errorText(this.state.error)}</div>` : nothing}
      <div class="tokens ${busy ? 'stale' : ''}" data-testid="tokens" role="toolbar" aria-label="Tokens (arrow keys move between them)">
        ${chips.map((c, i) => {
          const here = this.sel.selection.prompt === id;
          const cls = `tok ${c.special ? 'special' : ''} ${here && this.sel.selection.token === i ? 'linked' : ''} ${here && linked.pin.token === i && linked.pin.prompt === id ? 'pinned' : ''}`;
          return html`<span class=${cls} title=${chipTitle(c, i)} data-id=${c.id} data-t=${i} tabindex=${i === Math.min(this.focusIdx, chips.length - 1) ? 0 : -1} role="button"
            aria-label="Token ${i}: ${c.label}, id ${c.id}"
            @mouseenter=${() => linked.hover({ token: i, prompt: id }, id)} @mouseleave=${() => linked.leave(id)}
            @focus=${() => { this.focusIdx = i; linked.hover({ token: i, prompt: id }, id); }} @blur=${() => linked.leave(id)}
            @click=${() => linked.select({ token: i, prompt: id }, id)}
            @keydown=${(e: KeyboardEvent) => this.onChipKey(e, i, chips.length, id)}
            >${c.label}<small>${c.id}</small></span>`;
        })}
      </div>`;
  }
}
