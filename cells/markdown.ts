// <glassbox-markdown>: prose, rendered by marked and sanitized by DOMPurify (renderMarkdown), so a
// hostile notebook's script, event handlers and javascript: URLs never reach the page.

import { LitElement, css, html, unsafeCSS } from 'lit';
import { customElement, property } from 'lit/decorators.js';
import { renderMarkdown } from '../src/notebook/markdown.ts';
import { cellCss, type CellProps } from './common.ts';
import type { Cell } from '../src/notebook/format.ts';

/** The prose's text (settings.text, else the raw cell). */
export function proseText(cell: Cell): string {
  const t = cell.settings['text'];
  return typeof t === 'string' ? t : cell.raw;
}

@customElement('glassbox-markdown')
export class GlassboxMarkdown extends LitElement implements CellProps {
  static override styles = [unsafeCSS(cellCss), css`
    .prose { line-height: 1.55; }
    .prose :first-child { margin-top: 0; }
    .prose :last-child { margin-bottom: 0; }
    .prose a { color: var(--accent, #36c); }
    .prose code { font-family: var(--mono, monospace); font-size: .92em; }
    .prose pre { background: var(--card, #fff); border: 1px solid var(--line, #ddd); padding: 8px; border-radius: 6px; overflow: auto; }
    .prose img, .prose svg { max-width: 100%; }
  `];

  @property({ attribute: false }) cell: Cell | null = null;
  @property({ attribute: false }) state = null;
  @property({ attribute: false }) doc = null;
  @property({ attribute: false }) model = null;

  private drawn: string | null = null;

  override render() { return html`<div class="prose" part="prose"></div>`; }

  override updated(): void {
    const text = this.cell ? proseText(this.cell) : '';
    if (text === this.drawn) return;
    this.drawn = text;
    this.renderRoot.querySelector('.prose')!.replaceChildren(renderMarkdown(text));
  }
}
