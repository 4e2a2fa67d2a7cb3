// <glassbox-model>: what is loaded — family, shape, parameter count, tensor types, memory, the
// backend and why — and a diagram of one block with its tensor shapes. The facts and the diagram
// are pure functions of the ModelInfo the worker returned (testable alone, reused by export).

import { LitElement, css, html, nothing, unsafeCSS } from 'lit';
import { customElement, property } from 'lit/decorators.js';
import { unsafeSVG } from 'lit/directives/unsafe-svg.js';
import { cellCss, esc, formatBytes, formatCount, modelName, type CellProps } from './common.ts';
import type { Cell } from '../src/notebook/format.ts';
import type { CellState } from '../src/notebook/graph.ts';
import type { NotebookDocument } from '../src/notebook/document.ts';
import type { ModelInfo } from '../src/engine/api.ts';
import type { ModelSummary } from '../src/formats/describe.ts';

export interface Fact { label: string; value: string; testid: string }

/** The cards of the model cell, in reading order. */
export function modelFacts(m: ModelInfo): Fact[] {
  const c = m.config;
  const f = (label: string, value: string, testid: string): Fact => ({ label, value, testid });
  return [
    f('model', modelName(m), 'name'),
    f('family', m.entry?.family ?? `${c.arch} (${m.summary.format})`, 'family'),
    f('layers', String(c.nLayers), 'layers'),
    f('d_model', String(c.dModel), 'd-model'),
    f('heads', c.nKvHeads === c.nHeads ? `${c.nHeads} × ${c.dHead}` : `${c.nHeads} q / ${c.nKvHeads} kv × ${c.dHead}`, 'heads'),
    f('d_ffn', String(c.dFfn), 'd-ffn'),
    f('vocabulary', String(c.vocabSize), 'vocab'),
    f('context', String(c.nCtx), 'context'),
    f('parameters', formatCount(m.parameterCount), 'parameters'),
    f('weights in memory', formatBytes(m.summary.bytes), 'memory'),
    f('backend', m.backend === 'webgpu' ? 'WebGPU' : 'CPU', 'backend'),
  ];
}

/** Tensor types with their share of the bytes ("Q8_0 · 42 tensors · 1.2 MiB"). */
export function typeRows(s: ModelSummary): string[] {
  return s.types.map((t) => `${t.type} · ${t.tensors} tensors · ${formatBytes(t.bytes)}`);
}

/** A tensor's shape in block `b` from the file, else the config's expected shape. */
function shapeOf(s: ModelSummary, name: string, fallback: number[]): string {
  const t = s.tensors.find((x) => x.name === name);
  return `[${(t?.shape ?? fallback).join(', ')}]`;
}

/**
 * One transformer block as an SVG string: the residual stream down the left, the attention and
 * feed-forward branches with each weight's shape ([rows, cols], as stored), GQA noted when the
 * key/value heads are fewer.
 */
export function blockDiagramSvg(s: ModelSummary, block = 0): string {
  const c = s.config;
  const p = `blocks.${block}.`;
  const qd = c.nHeads * c.dHead, kvd = c.nKvHeads * c.dHead;
  const rows: [string, string, string][] = [            // [label, shape, colour]
    ['attn_norm (RMSNorm)', shapeOf(s, `${p}attn_norm.weight`, [c.dModel]), '#8e8e93'],
    ['wq', shapeOf(s, `${p}attn.wq`, [qd, c.dModel]), '#3a5ccc'],
    ['wk', shapeOf(s, `${p}attn.wk`, [kvd, c.dModel]), '#3a5ccc'],
    ['wv', shapeOf(s, `${p}attn.wv`, [kvd, c.dModel]), '#3a5ccc'],
    [`attention: ${c.nHeads} heads${c.nKvHeads < c.nHeads ? `, ${c.nKvHeads} kv (GQA)` : ''}, RoPE`, `d_head ${c.dHead}`, '#7a4fd0'],
    ['wo', shapeOf(s, `${p}attn.wo`, [c.dModel, qd]), '#3a5ccc'],
    ['ffn_norm (RMSNorm)', shapeOf(s, `${p}ffn_norm.weight`, [c.dModel]), '#8e8e93'],
    ['w_gate', shapeOf(s, `${p}ffn.w_gate`, [c.dFfn, c.dModel]), '#1f9d74'],
    ['w_up', shapeOf(s, `${p}ffn.w_up`, [c.dFfn, c.dModel]), '#1f9d74'],
    ['SiLU(gate) × up', `[T, ${c.dFfn}]`, '#7a4fd0'],
    ['w_down', shapeOf(s, `${p}ffn.w_down`, [c.dModel, c.dFfn]), '#1f9d74'],
  ];
  const W = 420, H = 26, G = 6, X = 70, top = 30;
  const y = (i: number) => top + i * (H + G);
  const out: string[] = [];
  const bottom = y(rows.length) + 4;
  out.push(`<text x="10" y="18" font-size="13" font-weight="600" fill="currentColor">block ${block} of ${c.nLayers}</text>`);
  out.push(`<line x1="30" y1="${top - 4}" x2="30" y2="${bottom + 16}" stroke="#d58a00" stroke-width="3"/>`);
  out.push(`<text x="36" y="${bottom + 14}" font-size="11" fill="#d58a00">residual [T, ${c.dModel}]</text>`);
  for (const [i, [label, shape, colour]] of rows.entries()) {
    out.push(`<g transform="translate(${X},${y(i)})"><rect width="${W - X}" height="${H}" rx="5" fill="${colour}" fill-opacity="0.14" stroke="${colour}"/>`
      + `<text x="8" y="17" font-size="12" fill="currentColor">${esc(label)}</text>`
      + `<text x="${W - X - 8}" y="17" font-size="12" font-family="monospace" text-anchor="end" fill="currentColor">${esc(shape)}</text></g>`);
  }
  // The two adds into the residual stream: after wo and after w_down.
  for (const i of [5, 10]) {
    const cy = y(i) + H / 2;
    out.push(`<line x1="30" y1="${cy}" x2="${X}" y2="${cy}" stroke="#d58a00"/><circle cx="30" cy="${cy}" r="7" fill="#d58a00"/>`
      + `<text x="30" y="${cy + 4}" font-size="12" text-anchor="middle" fill="#fff">+</text>`);
  }
  const h = bottom + 24;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h}" viewBox="0 0 ${W} ${h}" role="img" aria-label="Diagram of block ${block}: attention and feed-forward weights with their shapes" font-family="system-ui, sans-serif">${out.join('')}</svg>`;
}

@customElement('glassbox-model')
export class GlassboxModel extends LitElement implements CellProps {
  static override styles = [unsafeCSS(cellCss), css`
    .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(130px, 1fr)); gap: 8px; }
    .card { background: var(--card, #fff); border: 1px solid var(--line, #ddd); border-radius: 8px; padding: 6px 10px; }
    .card b { display: block; font-size: 16px; overflow-wrap: anywhere; }
    .card small { color: var(--muted, #666); }
    .wrap { display: flex; gap: 24px; flex-wrap: wrap; align-items: flex-start; margin-top: 12px; }
    ul { margin: 4px 0; padding-left: 18px; font-size: 13px; }
    svg { max-width: 100%; height: auto; display: block; }
    select { font: inherit; }
  `];

  @property({ attribute: false }) cell: Cell | null = null;
  @property({ attribute: false }) state: CellState | null = null;
  @property({ attribute: false }) doc: NotebookDocument | null = null;
  @property({ attribute: false }) model: ModelInfo | null = null;

  override render() {
    const m = (this.state?.output as ModelInfo | null | undefined) ?? this.model;
    if (!m) return html`<p class="note">No model loaded yet: pick one in the toolbar.</p>`;
    const b = this.cell?.settings['block'];
    const block = typeof b === 'number' && b < m.config.nLayers ? b : 0;
    const ro = this.doc?.readonly ?? true;
    // The block shown is a setting of the cell: choosing one writes it back into the notebook.
    const pick = (e: Event) => {
      const n = Number((e.target as HTMLSelectElement).value);
      if (this.cell && this.doc && !ro) this.doc.setSetting(this.cell.id, 'block', n === 0 ? undefined : n);
    };
    return html`
      <div class="cards">${modelFacts(m).map((f) => html`<div class="card" data-testid=${f.testid}><small>${f.label}</small><b>${f.value}</b></div>`)}</div>
      <p class="note" data-testid="backend-reason">${m.backend === 'webgpu' ? 'Running on the GPU (WebGPU).' : `Running on the CPU (${m.cpu.detail})${m.backendReason ? `: ${m.backendReason}` : '.'}`}</p>
      ${m.warnings.length ? html`<ul class="note">${m.warnings.map((w) => html`<li>${w}</li>`)}</ul>` : nothing}
      <div class="wrap">
        <div><label class="note">Block <select aria-label="Block to draw" @change=${pick} ?disabled=${ro}>
            ${Array.from({ length: m.config.nLayers }, (_, i) => html`<option value=${i} ?selected=${i === block}>${i}</option>`)}</select></label>
          ${unsafeSVG(blockDiagramSvg(m.summary, block))}</div>
        <div><b>Tensor types</b><ul>${typeRows(m.summary).map((r) => html`<li class="mono">${r}</li>`)}</ul>
          ${m.entry ? html`<p class="note">License: ${m.entry.license}</p>` : nothing}</div>
      </div>`;
  }
}
