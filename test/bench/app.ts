// The notebook app's latency (issue 7): the BUILT app (vite build + vite preview, as a static host
// serves it) in headless Chromium, driven by puppeteer-core.
//   open → drawn: from navigation to the first notebook fully drawn (every cell done and
//     rendered), the model file already in the browser's HTTP cache (second open of the page);
//   open → lens first drawn: from navigation to the logit-lens cell's first figure (on a long
//     prompt, its preview of the last positions; else the whole lens);
//   keystroke → redrawn: from an input event in the prompt (one character appended) to every
//     dependent cell's element updated and a frame painted.
// The peer, measured in the same page and run, is the engine's own time for the same work
// (the worker's load and run times, from the trace handles): the ratio is what the app adds on
// top of the model. Models: the random-weight GGUFs of `npm run bench` (.cache/bench), served from
// a temporary /models/local/ folder; the notebook: a prompt, attention, next-token and logit-lens.
//
// Two prompts: a short one (13 tokens) and a paragraph (about 100 tokens), where the figures
// hold a hundred times more cells.
//
//   node --import tsx test/bench/app.ts [--quick | --tiny] [--backends cpu,webgpu] [--prompts short,long] [--runs N]

import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { benchModelFile } from './models.ts';
import { serveBuiltApp, launchBrowser, PAGE_HELPERS, waitFor, ALL_DRAWN } from '../support/built-app.mjs';

const { values } = parseArgs({ options: { quick: { type: 'boolean' }, tiny: { type: 'boolean' }, backends: { type: 'string' }, prompts: { type: 'string' }, runs: { type: 'string' } } });
const backends = (values.backends ?? 'cpu,webgpu').split(',');
const PROMPTS: Record<string, string> = {
  short: 'Once upon a time there was a little girl who liked to',
  long: 'Once upon a time there was a little girl named Lily. She liked to play in the park with her dog Max. '
    + 'One day, Lily and Max went to the park and saw a big red ball. Lily wanted to play with the ball, but it belonged '
    + 'to a boy named Tom. Tom was sad because he lost his ball. Lily gave the ball back to Tom and they became friends. They played',
};
const prompts = (values.prompts ?? 'short,long').split(',');
for (const p of prompts) if (!PROMPTS[p]) throw new Error(`--prompts: '${p}' is not one of ${Object.keys(PROMPTS).join(', ')}`);
const RUNS = Number(values.runs ?? 3);
const models = [
  ...(values.tiny ? [] : [{ name: 'stories15M Q8_0', shape: 'stories15M', type: 'Q8_0' as const }]),
  ...(values.quick ? [] : [{ name: 'TinyLlama-1.1B Q4_0', shape: 'tinyllama-1.1b', type: 'Q4_0' as const }]),
];

const NOTEBOOK = (file: string, backend: string, prompt: string) => `---
title: app benchmark
model: /models/local/${file}
backend: ${backend}
---
\`\`\`prompt
${prompt}
\`\`\`

\`\`\`attention
layer: 1
\`\`\`

\`\`\`next-token
\`\`\`

\`\`\`logit-lens
\`\`\`
`;


const dir = mkdtempSync(join(tmpdir(), 'glassbox-appbench-'));
const rows: string[] = [];
const load0 = loadavg();
process.env['GLASSBOX_MODELS'] = dir; // read when the /models/local/ middleware is loaded
const server = await serveBuiltApp({ outDir: 'test/output/dist' });
const browser = await launchBrowser({ webgpu: true });
try {
  for (const m of models) {
    const path = await benchModelFile(m.shape, m.type);
    const file = `${m.shape}-${m.type}.gguf`;
    symlinkSync(path, join(dir, file));
    for (const backend of backends) for (const pr of prompts) {
      writeFileSync(join(dir, `bench-${backend}.md`), NOTEBOOK(file, backend, PROMPTS[pr]!));
      const ctx = await browser.createBrowserContext();
      const page = await ctx.newPage();
      await page.setViewport({ width: 1200, height: 900 });
      await page.evaluateOnNewDocument(PAGE_HELPERS);
      const url = `${server.origin}/?notebook=/models/local/bench-${backend}.md&model=/models/local/${file}&backend=${backend}`;
      const open: number[] = [], openEngine: number[] = [], lensFirst: number[] = [], keys: number[] = [], keysEngine: number[] = [];
      for (let i = 0; i <= RUNS; i++) {
        // The first open fills the HTTP cache and is not counted.
        await page.goto(url, { waitUntil: 'domcontentloaded' });
        // when the logit lens first draws a figure (its preview, on a long prompt), polled every 10 ms
        const lensDrawn = page.evaluate(`new Promise((res) => {
          const poll = () => (window.__gb?.cell?.('logit-lens')?.shadowRoot?.querySelector('canvas') ? res(performance.now()) : setTimeout(poll, 10));
          poll();
        })`) as Promise<number>;
        await waitFor(page, () => window.__gb.app()?.model && window.__gb.app().runs.runs > 0, 'the model and a first run', 600_000);
        const drawn = await page.evaluate(`(${ALL_DRAWN})()`) as number;
        const engine = await page.evaluate(() => window.__gb.app().engineMs?.() ?? 0) as number;
        const lens = await lensDrawn;
        if (i > 0) { open.push(drawn); openEngine.push(engine); lensFirst.push(lens); }
      }
      const nTokens = await page.evaluate(() => window.__gb.tokens().length) as number;
      for (let i = 0; i < RUNS + 1; i++) {
        const r = await page.evaluate(`(async () => {
          const ta = window.__gb.cell('prompt').shadowRoot.querySelector('textarea');
          const before = window.__gb.app().engineMs();
          const t0 = performance.now();
          ta.value += ${JSON.stringify(' abcdefgh'[i % 9])};
          ta.dispatchEvent(new Event('input', { bubbles: true, composed: true }));
          await new Promise((r) => setTimeout(r, 0));
          const t1 = await (${ALL_DRAWN})();
          return [t1 - t0, window.__gb.app().engineMs() - before];
        })()`) as [number, number];
        if (i > 0) { keys.push(r[0]); keysEngine.push(r[1]); }
      }
      const info = await page.evaluate(() => { const m = window.__gb.app().model; return { backend: m.backend, reason: m.backendReason, cpu: m.cpu }; });
      const best = (xs: number[]) => Math.min(...xs);
      const bi = (xs: number[]) => xs.indexOf(best(xs));
      const ko = bi(keys);
      rows.push(`| ${m.name} | ${nTokens} | ${info.backend}${info.backend === 'cpu' ? ` (${info.cpu.kernels}, ${info.cpu.threads} threads)` : ' (SwiftShader)'} | ${best(open).toFixed(0)} | ${lensFirst[bi(open)]!.toFixed(0)} | ${openEngine[bi(open)]!.toFixed(0)} | ${keys[ko]!.toFixed(0)} | ${keysEngine[ko]!.toFixed(0)} | ${(keys[ko]! / Math.max(1, keysEngine[ko]!)).toFixed(2)} |`);
      console.log(rows.at(-1));
      if (backend === 'webgpu' && info.backend !== 'webgpu') console.log(`  (WebGPU refused: ${info.reason})`);
      await ctx.close();
    }
  }
} finally {
  await browser.close();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}
console.log(`\nDate: ${new Date().toISOString()}. Machine: ${cpus()[0]?.model}, ${cpus().length} cores; load average ${load0.map((x) => x.toFixed(2)).join(' ')} → ${loadavg().map((x) => x.toFixed(2)).join(' ')}. Best of ${RUNS}.`);
console.log('| model | prompt tokens | backend | open → drawn ms | open → lens first drawn ms | engine: load + runs ms | keystroke → redrawn ms | engine: run ms | keystroke / engine |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
