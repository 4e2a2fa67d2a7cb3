// What a cell shows while a long compute runs. The logit-lens element drawing a preview (the
// graph's partial answer: the lens's last positions while the rest computes): drawn at full
// strength with a note naming what it shows, where a recomputing cell's last figure is dimmed; a
// preview left by a failed run says it is partial. The patch element (an intervention cell, through
// figureFrame) counting its runs before its first grid and while a new one computes.
import { expect } from 'chai';
import '../../cells/logit-lens.ts';
import '../../cells/patch.ts';
import { NotebookDocument } from '../../src/notebook/document.ts';
import type { LogitLensOutput } from '../../cells/plot/logit-lens.ts';
import type { CellState } from '../../src/notebook/graph.ts';

/** A lens output over the last `n` of 40 positions, 3 layers, k = 2 (the numbers matter little here). */
function output(n: number): LogitLensOutput {
  const L = 3, k = 2, R = L * n;
  return {
    prompt: 'prompt-1', labels: Array.from({ length: 40 }, (_, i) => `t${i}`), layers: [-1, 0, 1],
    positions: Array.from({ length: n }, (_, i) => 40 - n + i), k,
    ids: Int32Array.from({ length: R * k }, (_, i) => i % 4), probs: Float32Array.from({ length: R * k }, (_, i) => (i % 2 ? 0.2 : 0.7)),
    pieces: new Map([[0, 'a'], [1, 'b'], [2, 'c'], [3, 'd']]), target: null, targetProbs: null, targetRanks: null,
  };
}

describe('logit-lens element: a preview', () => {
  const doc = new NotebookDocument('```prompt\nx\n```\n\n```logit-lens\n```\n');
  const cell = doc.notebook.cells.find((c) => c.kind === 'logit-lens')!;
  let el: HTMLElement & { cell: unknown; state: CellState | null; doc: unknown; model: unknown; updateComplete: Promise<unknown> };

  before(() => {
    el = document.createElement('glassbox-logit-lens') as typeof el;
    document.body.append(el);
    Object.assign(el, { cell, doc, model: { info: { config: { nLayers: 2 } } } });
  });
  after(() => el.remove());

  async function show(state: CellState) {
    el.state = state;
    await el.updateComplete;
    const root = el.shadowRoot!;
    const wrap = root.querySelector('canvas')?.closest('div.stale, div');
    return { note: root.querySelector('.controls [role="status"]')?.textContent ?? '', stale: !!root.querySelector('div.stale'), canvas: !!wrap };
  }

  it('draws a running preview undimmed and says it shows the last positions first, with the progress', async () => {
    const s = await show({ status: 'running', output: output(16), error: undefined, runs: 1, preview: true, progress: { done: 48, total: 123, what: 'rows' } });
    expect(s.canvas).to.equal(true);
    expect(s.stale).to.equal(false);
    expect(s.note).to.contain('showing the last 16 positions first');
    expect(s.note).to.contain('48 of 123 rows');
  });

  it('dims the last whole answer while a new run has no preview yet', async () => {
    const s = await show({ status: 'running', output: output(40), error: undefined, runs: 2, preview: false });
    expect(s.stale).to.equal(true);
    expect(s.note).to.contain('updating');
    expect(s.note).not.to.contain('showing');
  });

  it('says a preview left by a failed run is partial, beside the error', async () => {
    const s = await show({ status: 'error', output: output(16), error: new Error('the GPU was lost'), runs: 3, preview: true });
    expect(s.note).to.contain('only the last 16 positions were computed');
    expect(el.shadowRoot!.textContent).to.contain('the GPU was lost');
    expect(s.stale).to.equal(false);
  });

  it('a whole answer has no note', async () => {
    const s = await show({ status: 'done', output: output(40), error: undefined, runs: 4, preview: false });
    expect(s.note).to.equal('');
    expect(s.stale).to.equal(false);
  });
});

describe('patch element: its runs counted while the grid computes', () => {
  const doc = new NotebookDocument('```prompt\nx\n```\n\n```patch\ncorrupted: y\n```\n');
  const cell = doc.notebook.cells.find((c) => c.kind === 'patch')!;
  it('names the runs done of all before the first grid, and stops counting when the run is over', async () => {
    const el = document.createElement('glassbox-patch') as HTMLElement & { cell: unknown; state: CellState | null; doc: unknown; model: unknown; updateComplete: Promise<unknown> };
    document.body.append(el);
    try {
      Object.assign(el, { cell, doc, model: { info: { config: { nLayers: 2 } } } });
      el.state = { status: 'running', output: undefined, error: undefined, runs: 1, progress: { done: 120, total: 442, what: 'runs' } };
      await el.updateComplete;
      const note = () => el.shadowRoot!.querySelector('[role="status"]')?.textContent ?? '';
      expect(note()).to.contain('Running the clean');
      expect(note()).to.contain('120 of 442 runs');
      el.state = { status: 'error', output: undefined, error: new Error('stopped'), runs: 1, progress: { done: 120, total: 442, what: 'runs' } };
      await el.updateComplete;
      expect(el.shadowRoot!.textContent).not.to.contain('120 of 442');
    } finally {
      el.remove();
    }
  });
});
