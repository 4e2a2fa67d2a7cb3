// What every cell element receives from the page (or from any other page that hosts one): the
// cell as parsed, its state in the reactive graph, the open document to write settings back to,
// and the loaded model. Elements hold these properties and nothing else.

import type { Cell } from '../src/notebook/format.ts';
import type { CellState } from '../src/notebook/graph.ts';
import type { NotebookDocument } from '../src/notebook/document.ts';
import type { ModelInfo } from '../src/engine/api.ts';
import { download, exportFiles, type FigureExport } from './plot/figure.ts';
import { html, nothing, type TemplateResult } from 'lit';

export interface CellProps {
  cell: Cell | null;
  state: CellState | null;
  doc: NotebookDocument | null;
  model: ModelInfo | null;
}

/** Escapes text for HTML and SVG strings (element text and attribute values). */
export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** 1234567 → "1.23 M" (parameters, elements). */
export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} K`;
  return String(n);
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}

/** Shared look of a cell's box, in each element's shadow root. */
export const cellCss = `
  :host { display: block; }
  .note { color: var(--muted, #666); font-size: 13px; }
  .error { color: #c0392b; background: color-mix(in srgb, #c0392b 10%, transparent); padding: 8px 10px; border-radius: 6px; font-size: 13px; white-space: pre-wrap; }
  .mono { font-family: var(--mono, monospace); }
  .controls { display: flex; flex-wrap: wrap; gap: 6px 16px; align-items: center; font-size: 13px; margin: 4px 0 8px; }
  .controls label { display: inline-flex; gap: 6px; align-items: center; }
  .top { display: flex; justify-content: space-between; align-items: baseline; gap: 12px; flex-wrap: wrap; }
  .export { position: relative; font-size: 13px; }
  .export summary { cursor: pointer; list-style: none; }
  .export div { position: absolute; right: 0; z-index: 2; display: flex; gap: 4px; padding: 4px; background: var(--card, #fff); border: 1px solid var(--line, #ddd); border-radius: 6px; }
`;

/** A cell's status for drawing: whether its output is being recomputed (draw the last one
 *  dimmed), and its failure as an alert box (nothing when it did not fail). */
export function statusOf(state: CellState | null): { busy: boolean; err: TemplateResult | typeof nothing } {
  const st = state?.status;
  return {
    busy: st === 'running' || st === 'stale',
    err: st === 'error' ? html`<div class="error" role="alert">${errorText(state?.error)}</div>` : nothing,
  };
}

/** " 1,280 of 3,312 rows" while a long compute runs and has reported progress (ctx.progress), else ''. */
export function progressText(state: CellState | null): string {
  const p = state?.status === 'running' ? state.progress : undefined;
  return p && p.total > 0 ? ` ${p.done.toLocaleString('en')} of ${p.total.toLocaleString('en')} ${p.what}` : '';
}

/** The message of a cell's failure, for the user. */
export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

/** A model's short name: its catalog name, else the file name without folders. */
export function modelName(m: { entry: { name: string } | null; label: string }): string {
  return m.entry?.name ?? m.label.split(/[/\\]/).pop() ?? m.label;
}

/** Downloads one file (svg, png, csv or json) of a cell's figure, named notebook.cell.model. */
export async function downloadFigure(p: CellProps, f: FigureExport | null, ext: 'svg' | 'png' | 'csv' | 'json'): Promise<void> {
  if (!f || !p.cell) return;
  const title = p.doc?.notebook.frontMatter?.values['title'];
  const name = p.cell.settings['name'];
  const files = await exportFiles(f, {
    notebook: typeof title === 'string' ? title : 'notebook',
    cell: typeof name === 'string' ? name : p.cell.id,
    model: p.model ? modelName(p.model) : 'model',
  });
  const file = files.find((x) => x.name.endsWith(`.${ext}`));
  if (file) download(file.name, file.blob);
}

export type ExportExt = 'svg' | 'png' | 'csv' | 'json';

/** Every figure's "Export ▾" menu: one button per file type, calling `pick` (disabled while there is no figure). */
export function exportMenu(pick: (ext: ExportExt) => unknown, disabled = false): TemplateResult {
  return html`<details class="export"><summary role="button" aria-label="Export the figure">Export ▾</summary><div>
    ${(['svg', 'png', 'csv', 'json'] as const).map((x) => html`<button ?disabled=${disabled} @click=${() => void pick(x)}>${x.toUpperCase()}</button>`)}</div></details>`;
}

/**
 * The frame of an intervention cell: before any output, its controls, the error and a note (what
 * to do, or what is running); after, the heading with the export menu above the controls, the
 * error, an "updating…" note while a newer output is on its way (`filling` while the output shown
 * is this run's preview), then the figure.
 */
export function figureFrame(p: CellProps & { output: unknown; busy: boolean; err: TemplateResult | typeof nothing; controls: TemplateResult },
  o: { heading: unknown; exportFigure: () => FigureExport | null; noModel: string; running: string; idle?: string; filling?: string; figure: () => unknown }): TemplateResult {
  if (!p.output) {
    const note = !p.model ? o.noModel : p.busy ? `${o.running}${progressText(p.state)}` : o.idle ?? 'Nothing yet: this cell reads a prompt cell above it.';
    return html`${p.controls}${p.err}<p class="note" role="status">${note}</p>`;
  }
  return html`
    <div class="top">
      <span class="heading" data-testid="heading">${o.heading}</span>
      ${exportMenu((x) => downloadFigure(p, o.exportFigure(), x))}
    </div>
    ${p.controls}
    ${p.err}
    ${p.busy ? html`<span class="note" role="status">${p.state?.preview ? o.filling ?? 'filling in…' : 'updating…'}${progressText(p.state)}</span>` : nothing}
    ${o.figure()}`;
}
