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

describe('attention cell on a 1,000-token, 22-layer × 32-head run', function () {
  this.timeout(600000);
  let output: AttentionOutput;

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
    } finally {
      client.dispose();
    }
  });

  for (const view of ['overview', 'heatmap'] as const) {
    it(`draws the ${view} without a long task over ${TARGET_MS} ms`, async () => {
      const doc = new NotebookDocument(`\`\`\`prompt\nx\n\`\`\`\n\n\`\`\`attention\nlayer: ${LAYER}\nview: ${view}\nhead: 5\n\`\`\`\n`);
      const cell = doc.notebook.cells.find((c) => c.kind === 'attention')!;
      const el = document.createElement('glassbox-attention') as HTMLElement & { cell: unknown; state: unknown; doc: unknown; model: unknown; updateComplete: Promise<unknown> };
      document.body.append(el);
      await frames(2);
      const watch = observeLongTasks();
      const t0 = performance.now();
      Object.assign(el, { cell, doc, model: null, state: { status: 'done', output, error: undefined, runs: 1 } });
      await el.updateComplete;
      await frames(3);
      const total = performance.now() - t0;
      const tasks = watch.stop();
      const longest = Math.max(0, ...tasks);
      console.log(`attention ${view}, ${N} tokens, 22 × 32 heads: longest main-thread task ${longest.toFixed(0)} ms (target ${TARGET_MS}), ${tasks.length} long tasks, drawn in ${total.toFixed(0)} ms`);
      expect(el.shadowRoot!.querySelector('canvas'), 'drawn on a canvas').to.not.equal(null);
      expect(longest, `longest task ${longest.toFixed(0)} ms`).to.be.below(BOUND_MS);
      el.remove();
    });
  }
});
