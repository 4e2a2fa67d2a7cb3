// Limits the page enforces on what it draws (ROBUSTNESS.md, "Limits", lists every limit of the
// app with where it is enforced). A notebook's size is bounded when it is read (persist.ts,
// MAX_NOTEBOOK_BYTES); its number of cells is bounded here, where it is drawn: a 16 MiB file can
// hold a million cells, and a million cell elements (each running the reactive graph) would
// freeze the tab. Past the limit the page draws and computes the first MAX_CELLS cells and says
// so; the text is kept whole, so saving, sharing or autosaving loses none of it.

import type { Notebook } from '../notebook/format.ts';

/** The most cells the page draws and computes. Real notebooks hold tens. */
export const MAX_CELLS = 500;

/** The notebook the page draws: `nb` itself within the limit, else its first MAX_CELLS cells. */
export function shownCells(nb: Notebook, max = MAX_CELLS): Notebook {
  return nb.cells.length <= max ? nb : { ...nb, cells: nb.cells.slice(0, max) };
}

/** What the page tells the user about a notebook past the limit ('' within it). */
export function cellLimitMessage(count: number, max = MAX_CELLS): string {
  if (count <= max) return '';
  return `This notebook has ${count.toLocaleString('en')} cells; glassbox draws at most ${max.toLocaleString('en')}, `
    + `so only the first ${max.toLocaleString('en')} are shown and run. The rest of the text is kept as it is `
    + '(Save downloads all of it): split the notebook into smaller ones to see every cell.';
}
