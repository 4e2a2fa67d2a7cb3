// Sampling and generation in the notebook (issue 9), in the BUILT app (vite build + preview) in
// headless Chromium, CPU backend, on the random-weight stories15M GGUF of `npm run bench`:
//   sampling redraw: from a sampler setting written (temperature, top-k, …: no model run) to the
//     sampling cell redrawn and a frame painted; the peer in the same page is the chain's own time
//     (runChain on the cached logits, what the cell reports as redraw-ms);
//   generation: tokens per second of a generate cell playing G tokens, alone in its notebook, and
//     with a sampling cell and an attention cell that read it (each redraws after every token):
//     the ratio is what the visible cells cost.
//
//   node --import tsx test/bench/generate.ts [--tokens G] [--runs N]

import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { benchModelFile } from './models.ts';
import { serveBuiltApp, launchBrowser, PAGE_HELPERS, waitFor, ALL_DRAWN } from '../support/built-app.mjs';

const { values } = parseArgs({ options: { tokens: { type: 'string' }, runs: { type: 'string' } } });
const G = Number(values.tokens ?? 48);
const RUNS = Number(values.runs ?? 3);

const head = (file: string) => `---
title: generation benchmark
model: /models/local/${file}
backend: cpu
---
\`\`\`prompt
Once upon a time there was a little girl who liked to
\`\`\`
`;
const generate = `
\`\`\`generate
name: story
temperature: 0.9
top_k: 40
seed: 3
max_tokens: ${G}
\`\`\`
`;
const withCells = `${generate}
\`\`\`sampling
prompt: story
temperature: 0.9
top_k: 40
seed: 3
\`\`\`

\`\`\`attention
prompt: story
layer: 1
\`\`\`
`;


/** In the page: plays the generate cell to its max_tokens from an empty tree; [ms, tokens]. */
const PLAY = `async () => {
  const el = window.__gb.cell('generate');
  const reset = { cellId: el.cell.id, action: 'reset' };
  el.dispatchEvent(new CustomEvent('glassbox-generate', { detail: reset, bubbles: true, composed: true }));
  await reset.done;
  await (${ALL_DRAWN})();
  const detail = { cellId: el.cell.id, action: 'play' };
  const t0 = performance.now();
  el.dispatchEvent(new CustomEvent('glassbox-generate', { detail, bubbles: true, composed: true }));
  const r = await detail.done;
  const t1 = await (${ALL_DRAWN})();
  return [t1 - t0, r.steps, r.outcome];
}`;

const dir = mkdtempSync(join(tmpdir(), 'glassbox-genbench-'));
const load0 = loadavg();
process.env['GLASSBOX_MODELS'] = dir;
const server = await serveBuiltApp({ outDir: 'test/output/dist' });
const browser = await launchBrowser({ webgpu: false });
const lines: string[] = [];
try {
  const path = await benchModelFile('stories15M', 'Q8_0');
  const file = 'stories15M-Q8_0.gguf';
  symlinkSync(path, join(dir, file));
  writeFileSync(join(dir, 'alone.md'), head(file) + generate);
  writeFileSync(join(dir, 'cells.md'), head(file) + withCells);
  const ctx = await browser.createBrowserContext();
  const page = await ctx.newPage();
  await page.setViewport({ width: 1200, height: 1400 });
  await page.evaluateOnNewDocument(PAGE_HELPERS);
  const open = async (nb: string) => {
    await page.goto(`${server.origin}/?notebook=/models/local/${nb}&model=/models/local/${file}&backend=cpu`, { waitUntil: 'domcontentloaded' });
    await waitFor(page, () => window.__gb.app()?.model && window.__gb.tokens().length > 0, 'the model and the prompt', 300_000);
    await page.evaluate(`(${ALL_DRAWN})()`);
  };

  const rate: Record<string, number[]> = { alone: [], cells: [] };
  for (const nb of ['alone', 'cells'] as const) {
    await open(`${nb}.md`);
    for (let i = 0; i < RUNS; i++) {
      const [ms, steps, outcome] = await page.evaluate(`(${PLAY})()`) as [number, number, string];
      if (steps !== G) throw new Error(`${nb}: played ${steps} tokens (${outcome}), expected ${G}`);
      rate[nb]!.push(steps / (ms / 1000));
    }
  }

  // the sampling cell's redraw after a sampler setting changes (the notebook with cells is open)
  const redraw: number[] = [], chain: number[] = [];
  // every change is to a new value (an unchanged setting would redraw nothing)
  const knobs: [string, number[]][] = [['temperature', [0.7, 1.2, 0.8, 1.1]], ['top_k', [20, 60, 30, 50]], ['top_p', [0.9, 0.8, 0.95, 0.85]], ['min_p', [0.05, 0.1, 0.02, 0.08]]];
  for (let i = 0; i < RUNS * 6; i++) {
    const [key, vals] = knobs[i % knobs.length]!;
    const value = vals[Math.floor(i / knobs.length) % vals.length]!;
    const r = await page.evaluate(`(async () => {
      const el = window.__gb.cell('sampling');
      const app = window.__gb.app();
      const t0 = performance.now();
      app.doc.setSetting(el.cell.id, ${JSON.stringify(key)}, ${value});
      await el.updateComplete;
      const t1 = await (${ALL_DRAWN})();
      return [t1 - t0, el.lastModelMs];
    })()`) as [number, number];
    redraw.push(r[0]); chain.push(r[1]);
  }
  const best = (xs: number[]) => Math.min(...xs);
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  lines.push(`| sampling cell: setting → redrawn | ${med(redraw).toFixed(1)} ms (best ${best(redraw).toFixed(1)}) | chain alone ${med(chain).toFixed(1)} ms | ${(med(redraw) / Math.max(0.01, med(chain))).toFixed(1)} |`);
  const a = Math.max(...rate.alone!), c = Math.max(...rate.cells!);
  lines.push(`| generate, ${G} tokens played: alone | ${a.toFixed(1)} tok/s | | 1 |`);
  lines.push(`| generate, ${G} tokens played: sampling + attention cells reading it | ${c.toFixed(1)} tok/s | | ${(c / a).toFixed(2)} |`);
  await ctx.close();
} finally {
  await browser.close();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}
console.log(`Date: ${new Date().toISOString()}. Machine: ${cpus()[0]?.model}, ${cpus().length} cores; load average ${load0.map((x) => x.toFixed(2)).join(' ')} → ${loadavg().map((x) => x.toFixed(2)).join(' ')}. stories15M Q8_0, CPU; best of ${RUNS} (redraw: median of ${RUNS * 6}).`);
console.log('| what | time / rate | peer | ratio |');
console.log('|---|---|---|---|');
for (const l of lines) console.log(l);
