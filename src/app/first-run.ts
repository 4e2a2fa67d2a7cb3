// The first-run experience, drawn by the app (src/app/app.ts): a banner above the welcome
// notebook that names the model it loads with its download size and, once loaded, the backend
// chosen and why; the Demos panel (the gallery, also at ?gallery); and a tour of the interface,
// a small non-modal dialog stepping through the toolbar, the cells, the prompt and a visual cell
// (Escape, or its Close button, ends it; ← and → step), started from the banner or the ? panel. Pure templates and step data: the app
// owns the state.

import { html, nothing, type TemplateResult } from 'lit';
import { DEMOS, demoHref } from './gallery-data.ts';
import type { ModelInfo } from '../engine/api.ts';

/** What a tour step points at: the toolbar, or the first cell of a sort. */
export type TourTarget = 'toolbar' | 'cell' | 'prompt' | 'visual' | 'demos';

export interface TourStep { target: TourTarget; title: string; text: string }

export const TOUR: readonly TourStep[] = [
  { target: 'toolbar', title: 'The toolbar',
    text: 'Open, save, share or export the notebook, add a cell, undo. On the right: the loaded model (click to pick another), the backend it runs on (hover for why), and ? for the keyboard shortcuts.' },
  { target: 'cell', title: 'Cells',
    text: 'A notebook is a list of cells between paragraphs of text. Hover a cell for its tools: move it, delete it, edit the text. The whole notebook is a Markdown file: Save downloads it, and every change is kept in this browser.' },
  { target: 'prompt', title: 'The prompt',
    text: 'Type here. The chips are the tokens the model reads (hover one for its id); every cell below that reads this prompt follows your typing.' },
  { target: 'visual', title: 'A visual cell',
    text: 'Each visual cell draws what happens inside the model on that prompt. Hover for exact numbers, click to select: a selected token or head is highlighted in every cell. Its settings are written into the notebook; Export ▾ saves the figure.' },
  { target: 'demos', title: 'Demos',
    text: 'Teaching notebooks: tokens, attention, induction heads, the logit lens, sampling, and the inside of one block, each running with the model loaded now. Open them from the ? button (or the welcome banner), which also lists the keyboard shortcuts and starts this tour again.' },
];

/** The id of the cell a step points at (null: the step points at the toolbar or nothing fits). */
export function tourCell(step: TourStep, cells: readonly { id: string; kind: string }[]): string | null {
  const visual = (k: string) => !['markdown', 'prompt', 'model', 'unknown'].includes(k);
  const pick = step.target === 'cell' ? cells.find((c) => c.kind !== 'markdown') ?? cells[0]
    : step.target === 'prompt' ? cells.find((c) => c.kind === 'prompt')
      : step.target === 'visual' ? cells.find((c) => visual(c.kind)) : undefined;
  return pick?.id ?? null;
}

export function tourDialog(i: number, on: { step(to: number): void; close(): void }): TemplateResult {
  const s = TOUR[i]!, last = i === TOUR.length - 1;
  const key = (e: KeyboardEvent) => {
    if (e.key === 'ArrowRight' && !last) { e.preventDefault(); on.step(i + 1); }
    else if (e.key === 'ArrowLeft' && i > 0) { e.preventDefault(); on.step(i - 1); }
  };
  return html`<div class="tour" role="dialog" aria-modal="false" aria-labelledby="tour-title" aria-describedby="tour-text" tabindex="-1" @keydown=${key} data-testid="tour">
    <p class="tour-count">Tour · ${i + 1} of ${TOUR.length}</p>
    <h2 id="tour-title">${s.title}</h2>
    <p id="tour-text">${s.text}</p>
    <div class="tour-buttons">
      <button @click=${() => on.step(i - 1)} ?disabled=${i === 0}>Back</button>
      ${last ? html`<button @click=${on.close} data-testid="tour-done">Done</button>` : html`<button @click=${() => on.step(i + 1)} data-testid="tour-next">Next</button>`}
      <button class="close" @click=${on.close} aria-label="Close the tour (Escape)">×</button>
    </div></div>`;
}

export function galleryPanel(search: string, close: () => void): TemplateResult {
  return html`<section class="panel gallery" aria-label="Demos" data-testid="gallery">
    <button class="close" @click=${close} aria-label="Close the demos">×</button>
    <h2>Demos</h2>
    <p class="note">Teaching notebooks for anyone who knows what a neural network is but not a transformer. Each runs with the default model and with any catalog model.</p>
    <ul class="cards">${DEMOS.map((d) => html`<li><a href=${demoHref(d, search)} data-demo=${d.slug}>
      <img src=${d.thumb} alt="" width="240" height="150" loading="lazy">
      <b>${d.title}</b><span>${d.description}</span></a></li>`)}</ul></section>`;
}

export interface FirstRunInfo {
  /** The model the welcome notebook names, with its download size when the catalog knows it. */
  label: string;
  bytes: number | null;
}

const size = (n: number) => (n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${Math.max(1, Math.round(n / 1024))} KiB`);

/** Above the welcome notebook: the model and its size, then the backend and why. */
export function firstRunBanner(info: FirstRunInfo, model: ModelInfo | null, loading: boolean,
  on: { tour(): void; demos(): void; models(): void; dismiss(): void }): TemplateResult {
  const backend = model ? html`<p data-testid="backend-why">Running on <b>${model.backend === 'webgpu' ? 'WebGPU' : 'the CPU'}</b>:
      ${model.backendReason ?? (model.backend === 'webgpu' ? 'WebGPU is available and the model fits in its limits' : 'the CPU was asked for')}.</p>` : nothing;
  return html`<div class="first-run" role="region" aria-label="Welcome" data-testid="first-run">
    <p>This notebook runs <b>${info.label}</b>${info.bytes !== null ? html` (<span data-testid="model-size">${size(info.bytes)}</span>)` : nothing}
      in this page: ${loading ? 'it is downloading now, once; the browser keeps it for next time.' : model ? 'loaded.' : 'it loads when the notebook opens.'}
      Nothing you type leaves the page.</p>
    ${backend}
    <p class="first-run-buttons"><button @click=${on.tour} data-testid="tour-button">Take the tour</button>
      <button @click=${on.demos}>Demos</button>
      <button @click=${on.models}>Pick another model</button>
      <button class="close" @click=${on.dismiss} aria-label="Hide this welcome">×</button></p></div>`;
}
