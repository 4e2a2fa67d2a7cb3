// Export: the whole notebook as one standalone HTML file — prose rendered (sanitized), each cell's
// figure as inline SVG drawn by the same pure functions the cell elements use (cells/figures.ts for
// the visual kinds). No script at all.

import type { Notebook } from '../notebook/format.ts';
import type { CellState } from '../notebook/graph.ts';
import type { ModelInfo, Tokenized } from '../engine/api.ts';
import { renderMarkdownHtml } from '../notebook/markdown.ts';
import { esc } from '../../cells/common.ts';
import { tokenChips, tokenChipsSvg } from '../../cells/prompt.ts';
import { blockDiagramSvg, modelFacts } from '../../cells/model.ts';
import { proseText } from '../../cells/markdown.ts';
import { figureOf } from '../../cells/figures.ts';

const STYLE = `
  :root { color-scheme: light dark; --fg: #1d1d1f; --bg: #fbfaf7; --muted: #6b6b70; --line: #e3e1da; }
  @media (prefers-color-scheme: dark) { :root { --fg: #ececec; --bg: #151517; --muted: #9a9aa2; --line: #2c2c31; } }
  body { font: 16px/1.55 system-ui, sans-serif; color: var(--fg); background: var(--bg); max-width: 820px; margin: 2em auto; padding: 0 1em; }
  .cell { margin: 1.2em 0; } pre { white-space: pre-wrap; border: 1px solid var(--line); border-radius: 6px; padding: 8px; }
  table { border-collapse: collapse; } td { padding: 2px 10px 2px 0; } td:first-child { color: var(--muted); }
  svg { max-width: 100%; height: auto; } footer { color: var(--muted); font-size: 13px; margin-top: 3em; }`;

/** The notebook as HTML text; `states` holds each cell's last output (the tokens of a prompt). */
export function exportHtml(nb: Notebook, states: ReadonlyMap<string, CellState>, model: ModelInfo | null): string {
  const title = String(nb.frontMatter?.values['title'] ?? 'glassbox notebook');
  const body: string[] = [];
  for (const cell of nb.cells) {
    const out = states.get(cell.id)?.output;
    const fig = figureOf(cell.kind, out, cell.settings);
    if (cell.kind === 'markdown') {
      body.push(`<section class="cell prose">${renderMarkdownHtml(proseText(cell))}</section>`);
    } else if (cell.kind === 'prompt') {
      const text = String(cell.settings['text'] ?? '');
      const t = out as Tokenized | null | undefined;
      const fig = t ? tokenChipsSvg(tokenChips(t, { bosId: model?.tokenizer?.bosId, eosId: model?.tokenizer?.eosId })) : '<p>(no model was loaded: no tokens)</p>';
      body.push(`<section class="cell prompt"><pre>${esc(text)}</pre>${fig}</section>`);
    } else if (cell.kind === 'model' && model) {
      const rows = modelFacts(model).map((f) => `<tr><td>${esc(f.label)}</td><td>${esc(f.value)}</td></tr>`).join('');
      const b = cell.settings['block'];
      body.push(`<section class="cell model"><table>${rows}</table>${blockDiagramSvg(model.summary, typeof b === 'number' && b < model.config.nLayers ? b : 0)}</section>`);
    } else if (fig) {
      body.push(`<section class="cell figure ${esc(cell.kind)}">${fig.svg}</section>`);
    } else {
      body.push(`<section class="cell other"><pre>${esc(cell.raw)}</pre></section>`);
    }
  }
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">`
    + `<title>${esc(title)}</title><style>${STYLE}</style></head><body>\n${body.join('\n')}\n`
    + `<footer>Exported from glassbox${model ? ` with ${esc(model.label)}` : ''}.</footer></body></html>\n`;
}
