// A 1,000-token prompt on a random-weight model with TinyLlama's 22 layers and 32 query heads
// (4 KV heads; d_model shrunk to 256 so the run takes seconds): the attention cell's model
// overview (every layer × head) and one head's heatmap draw without a main-thread task over
// 200 ms. The run happens in the engine's worker, so the long tasks observed on this thread are
// the drawing's. The figures are printed; the test fails only past a generous bound.
import { expect } from 'chai';
import '../../cells/attention.ts';
import { createEngineClient } from '../../src/worker/client.ts';
import { synthModel, shapeConfig } from '../../src/formats/synth.ts';
import { NotebookDocument } from '../../src/notebook/document.ts';
import type { AttentionOutput } from '../../cells/plot/attention.ts';
import { computeCell, LAYER_PATTERN_BYTES } from '../../src/app/compute.ts';
import { PromptRuns } from '../../src/app/runs.ts';
import { binStart } from '../../src/engine/attention-summary.ts';
import type { ComputeContext } from '../../src/notebook/graph.ts';

const N = 1000, LAYER = 11;
/** What the issue allows per task; the test fails only past BOUND (shared CI machines stall). */
const TARGET_MS = 200, BOUND_MS = 1500;

function observeLongTasks(): { stop(): number[] } {
  const seen: number[] = [];
  const po = new PerformanceObserver((list) => { for (const e of list.getEntries()) seen.push(e.duration); });
  po.observe({ type: 'longtask', buffered: false });
  return { stop: () => { po.takeRecords().forEach((e) => seen.push(e.duration)); po.disconnect(); return seen; } };
}

/** n painted frames; a page that is not the visible tab gets no animation frames, so timers stand in. */
const frames = (n: number) => new Promise<void>((r) => {
  const next = (f: () => void) => (document.visibilityState === 'visible' ? requestAnimationFrame(f) : setTimeout(f, 16));
  let i = 0;
  const f = () => (++i >= n ? r() : next(f));
  next(f);
});

/** Draws an attention cell with these settings and output, watching the main thread's long tasks. */
async function drawWatched(settings: string, out: unknown) {
  const doc = new NotebookDocument(`\`\`\`prompt\nx\n\`\`\`\n\n\`\`\`attention\n${settings}\n\`\`\`\n`);
  const cell = doc.notebook.cells.find((c) => c.kind === 'attention')!;
  const el = document.createElement('glassbox-attention') as HTMLElement & { cell: unknown; state: unknown; doc: unknown; model: unknown; updateComplete: Promise<unknown> };
  document.body.append(el);
  await frames(2);
  const watch = observeLongTasks();
  const t0 = performance.now();
  Object.assign(el, { cell, doc, model: null, state: { status: 'done', output: out, error: undefined, runs: 1 } });
  await el.updateComplete;
  await frames(3);
  const total = performance.now() - t0;
  const tasks = watch.stop();
  return { el, tasks, total, longest: Math.max(0, ...tasks) };
}

describe('attention cell on a 1,000-token, 22-layer × 32-head run', function () {
  this.timeout(600000);
  let output: AttentionOutput;
  /** What the page computes (src/app/compute.ts) for the heads view and for head 5's heatmap. */
  let headsOut: AttentionOutput, headOut: AttentionOutput, sortedOut: AttentionOutput;

  before(async () => {
    const config = { ...shapeConfig('tinyllama-1.1b'), dModel: 256, dHead: 8, dFfn: 512, vocabSize: 512, nCtx: 1024 };
    const { files } = synthModel({ config, type: 'F32', seed: 3, format: 'gguf' });
    const client = createEngineClient();
    try {
      await client.load({ kind: 'files', files: [new File([files[0]!.bytes as Uint8Array<ArrayBuffer>], 'long-22x32.gguf')] }, { backend: 'cpu' });
      const tokens = Array.from({ length: N }, (_, i) => (i * 7919 + 13) % 509 + 3);
      const trace = await client.run({ tokens, capture: [`blocks.${LAYER}.attn.hook_pattern`], summary: { attention: {} } });
      const [slice, summary] = await Promise.all([client.attention(trace, { layer: LAYER }), client.attentionSummary(trace)]);
      output = {
        prompt: 'prompt-1', labels: tokens.map((t) => `t${t}`), layer: LAYER, nLayers: 22, nHeads: 32, nKvHeads: 4,
        pattern: { heads: slice.heads, shape: slice.shape, data: slice.data }, summary,
      };
      const model = (await client.info())!;
      const runs = new PromptRuns(() => client);
      const tok = { text: '', ids: tokens, pieces: tokens.map((t) => `t${t}`), spans: tokens.map(() => [0, 0] as [number, number]) };
      // what the page computes (src/app/compute.ts) through PromptRuns, for two settings
      const compute = async (settings: ComputeContext['settings']) => {
        const doc = new NotebookDocument(`\`\`\`prompt\nx\n\`\`\`\n\n\`\`\`attention\nlayer: ${LAYER}\n\`\`\`\n`);
        const cell = doc.notebook.cells.find((c) => c.kind === 'attention')!;
        const ctx: ComputeContext = {
          cell, settings, signal: new AbortController().signal, upstream: new Map([['prompt-1', tok]]), inputs: new Map(), notebook: doc.notebook,
        };
        return await computeCell(ctx, client, runs, model) as AttentionOutput;
      };
      headsOut = await compute({ layer: LAYER, view: 'heads' });
      sortedOut = await compute({ layer: LAYER, view: 'heads', sort: 'entropy' });
      headOut = await compute({ layer: LAYER, view: 'heatmap', head: 5 });
    } finally {
      client.dispose();
    }
  });

  it('a long prompt: the heads view fetches pooled thumbnails, not the layer; one head\'s view fetches that head', () => {
    expect(32 * N * N * 4, 'this prompt counts as long').to.be.above(LAYER_PATTERN_BYTES);
    const bytes = headsOut.pattern.data.byteLength + (headsOut.pooled?.data.byteLength ?? 0);
    console.log(`heads view at ${N} tokens × 32 heads: ${(bytes / 2 ** 20).toFixed(2)} MiB fetched (the whole layer would be ${(32 * N * N * 4 / 2 ** 20).toFixed(0)} MiB)`);
    expect(bytes).to.be.at.most(16 * 2 ** 20);
    const pooled = headsOut.pooled!;
    expect(pooled.heads.length).to.equal(32);
    expect(pooled.reduce).to.equal('max');
    // each pooled value is the max of the engine's pattern over its bin (positions split as the summary's bins)
    const B = pooled.bins, start = (b: number) => binStart(b, N, B);
    for (const [h, qb, kb] of [[0, 0, 0], [5, B - 1, 0], [31, B - 1, B - 1], [7, 40, 12]] as const) {
      let m = -Infinity;
      for (let q = start(qb); q < start(qb + 1); q++) for (let k = start(kb); k < Math.min(start(kb + 1), q + 1); k++) m = Math.max(m, output.pattern.data[(h * N + q) * N + k]!);
      expect(pooled.data[(h * B + qb) * B + kb], `head ${h}, bin (${qb}, ${kb})`).to.be.closeTo(m, 1e-7);
    }
    // sorted by a statistic, the pooled heads come with their layer's statistics: the run's
    // every-layer summary at this layer, bit for bit, without a run that computes it
    expect(headsOut.summary, 'in index order: no statistics').to.equal(null);
    const s = sortedOut.summary!, all = output.summary!;
    expect([s.firstLayer, s.nLayers, s.size]).to.deep.equal([LAYER, 1, all.size]);
    for (const k of ['entropy', 'first', 'prev'] as const) expect(s[k], k).to.deep.equal(all[k].subarray(LAYER * 32, (LAYER + 1) * 32));
    expect(headOut.pattern.shape).to.deep.equal([1, N, N]);
    expect(headOut.pooled ?? null).to.equal(null);
    for (const [q, k] of [[0, 0], [1, 0], [500, 3], [999, 998], [999, 0], [640, 640]] as const) {
      expect(headOut.pattern.data[q * N + k], `(${q}, ${k})`).to.equal(output.pattern.data[(5 * N + q) * N + k]);
    }
  });

  it(`draws the pooled heads view without a long task over ${TARGET_MS} ms`, async () => {
    const { el, longest, tasks, total } = await drawWatched(`layer: ${LAYER}`, headsOut);
    console.log(`attention heads (pooled), ${N} tokens, 22 × 32 heads: longest main-thread task ${longest.toFixed(0)} ms (target ${TARGET_MS}), ${tasks.length} long tasks, drawn in ${total.toFixed(0)} ms`);
    const canvas = el.shadowRoot!.querySelector('canvas');
    expect(canvas, 'tiles drawn on a canvas').to.not.equal(null);
    expect(el.shadowRoot!.querySelectorAll('.tile').length).to.equal(32);
    expect(el.shadowRoot!.textContent).to.match(/max over 10–11 × 10–11 positions/);
    expect(longest, `longest task ${longest.toFixed(0)} ms`).to.be.below(TARGET_MS);
    el.remove();
  });

  it('draws a broad head\'s lines view (20,000 lines) on a canvas; a hovered token\'s own lines come as elements', async () => {
    // head 5 made to spread each query over its last 30 keys: 28,000 lines ≥ 0.02, the 20,000 heaviest drawn
    const data = new Float32Array(N * N);
    for (let q = 0; q < N; q++) { const from = Math.max(0, q - 29); for (let k = from; k <= q; k++) data[q * N + k] = 1 / (q - from + 1); }
    const broad: AttentionOutput = { ...headOut, pattern: { heads: [5], shape: [1, N, N], data } };
    const { el, longest, tasks, total } = await drawWatched(`layer: ${LAYER}\nview: lines\nhead: 5`, broad);
    console.log(`attention lines, ${N} tokens, 20,000 lines on a canvas: longest main-thread task ${longest.toFixed(0)} ms, ${tasks.length} long tasks, drawn in ${total.toFixed(0)} ms`);
    const root = el.shadowRoot!;
    const canvas = root.querySelector<HTMLCanvasElement>('canvas.lines');
    expect(canvas, 'lines on a canvas').to.not.equal(null);
    expect(canvas!.dataset['drawn']).to.equal('lpx|5');
    expect(canvas!.width * canvas!.height, 'a bounded canvas').to.be.at.most(16e6 + 2e4);
    expect(canvas!.height).to.be.at.most(32000);
    // ink where a line runs: the middle of the band between the key and query columns is not blank
    const ctx = canvas!.getContext('2d')!, img = ctx.getImageData(0, 0, canvas!.width, canvas!.height).data;
    let inked = 0;
    for (let i = 3; i < img.length; i += 4) if (img[i]! > 0) inked++;
    expect(inked, 'pixels drawn').to.be.above(canvas!.width * canvas!.height * 0.05);
    expect(root.querySelectorAll('svg:not(.overlay) .lines line').length, 'no line elements under the labels').to.equal(0);
    expect(root.textContent).to.match(/20,000 lines drawn as pixels/);
    // hovering a token lays its own lines (with titles) over the canvas
    const label = root.querySelector<SVGTextElement>('text.tok[data-t="500"]')!;
    label.dispatchEvent(new MouseEvent('mouseover', { bubbles: true, composed: true }));
    await (el as unknown as { updateComplete: Promise<unknown> }).updateComplete;
    const own = root.querySelectorAll('svg.overlay line');
    expect(own.length, 'query 500 attends to 30 keys; key 500 is read by 30 queries').to.equal(59);
    expect(own[0]!.querySelector('title')?.textContent).to.match(/head 5/);
    expect(root.querySelector('.fig.hl'), 'the canvas fades while a token is hovered').to.not.equal(null);
    el.remove();
  });

  for (const view of ['overview', 'heatmap'] as const) {
    it(`draws the ${view} without a long task over ${TARGET_MS} ms`, async () => {
      const { el, longest, tasks, total } = await drawWatched(`layer: ${LAYER}\nview: ${view}\nhead: 5`, output);
      console.log(`attention ${view}, ${N} tokens, 22 × 32 heads: longest main-thread task ${longest.toFixed(0)} ms (target ${TARGET_MS}), ${tasks.length} long tasks, drawn in ${total.toFixed(0)} ms`);
      expect(el.shadowRoot!.querySelector('canvas'), 'drawn on a canvas').to.not.equal(null);
      expect(longest, `longest task ${longest.toFixed(0)} ms`).to.be.below(BOUND_MS);
      el.remove();
    });
  }
});
