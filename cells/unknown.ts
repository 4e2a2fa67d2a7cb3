// <glassbox-unknown>: a cell this version cannot show (an unregistered kind, or a registered kind
// whose element has not arrived yet). Its text is kept as written and saved unchanged.

import { LitElement, css, html, unsafeCSS } from 'lit';
import { customElement, property } from 'lit/decorators.js';
import { cellCss, type CellProps } from './common.ts';
import type { Cell } from '../src/notebook/format.ts';
import { cellKinds } from '../src/notebook/registry.ts';

/** Why the cell is shown as text: the note above it. */
export function unknownNote(cell: Cell): string {
  const word = cell.info.trim().split(/\s+/)[0] ?? cell.kind;
  if (cell.kind !== 'unknown' && cellKinds.has(cell.kind)) {
    return `"${cell.kind}" cells cannot be drawn by this version yet; the cell is kept as written.`;
  }
  return `Unknown cell kind "${word}": this version cannot show it. It is kept as written and saved unchanged.`;
}

@customElement('glassbox-unknown')
export class GlassboxUnknown extends LitElement implements CellProps {
  static override styles = [unsafeCSS(cellCss), css`
    pre { margin: 6px 0 0; padding: 8px; border: 1px dashed var(--line, #ccc); border-radius: 6px; overflow: auto; font-size: 13px; }
  `];

  @property({ attribute: false }) cell: Cell | null = null;
  @property({ attribute: false }) state = null;
  @property({ attribute: false }) doc = null;
  @property({ attribute: false }) model = null;

  override render() {
    if (!this.cell) return html``;
    return html`<p class="note" role="note">${unknownNote(this.cell)}</p><pre class="mono">${this.cell.raw}</pre>`;
  }
}
