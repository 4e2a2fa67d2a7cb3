// The notebook app's latency (issue 7): the BUILT app (vite build + vite preview, as a static host
// serves it) in headless Chromium, driven by puppeteer-core.
//   open → drawn: from navigation to the first notebook fully drawn (every cell done and
//     rendered), the model file already in the browser's HTTP cache (second open of the page);
//   open → lens first drawn: from navigation to the logit-lens cell's first figure (on a long
//     prompt, its preview of the last positions; else the whole lens);
//   keystroke → redrawn: from an input event in the prompt (one character appended) to every
//     dependent cell's element updated and a frame painted.
//   generate: the generate cell's Play to N tokens (temperature 0.8, seeded), from the click to
//     the last token drawn, against the same worker running the same N single-position steps
//     with nothing else (greedy on the logits row it sends back: no sampler, no cells): the page's
//     per-token cost on top of the engine's (the sampler chain over the vocabulary, the tree, the
//     redraws).
// The peer, measured in the same page and run, is the engine's own time for the same work
// (the worker's load and run times, from the trace handles): the ratio is what the app adds on
// top of the model. Models: the random-weight GGUFs of `npm run bench` (.cache/bench), served from
// a temporary /models/local/ folder; the notebook: a prompt, attention, next-token and logit-lens.
//
// Two prompts: a short one (13 tokens) and a paragraph (about 100 tokens), where the figures
// hold a hundred times more cells. `--cells` picks the notebook's cells after the prompt (default
// attention,next-token,logit-lens; also sampling, model, activations, embeddings, attribution,
// ablate (heads 1.2 and 3.4 knocked out: a second run per keystroke beside the prompt's own) and
// steer (4 tokens with and without a vector from one word each).
//
//   node --import tsx test/bench/app.ts [--quick | --tiny | --models shape:TYPE,…] [--backends cpu,webgpu] [--prompts short,long] [--cells kind,…] [--runs N] [--gen-tokens N]
//   (--models names any shapes of test/bench/models.ts, e.g. llama-3.2-1b:Q4_0 for a 128,256-token vocabulary)

import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { benchModelFile } from './models.ts';
import type { TensorTypeName } from '../../src/formats/tensor.ts';
import { serveBuiltApp, launchBrowser, PAGE_HELPERS, waitFor, ALL_DRAWN } from '../support/built-app.mjs';

const { values } = parseArgs({ options: { quick: { type: 'boolean' }, tiny: { type: 'boolean' }, models: { type: 'string' }, backends: { type: 'string' }, prompts: { type: 'string' }, cells: { type: 'string' }, runs: { type: 'string' }, 'gen-tokens': { type: 'string' } } });
const backends = (values.backends ?? 'cpu,webgpu').split(',');
const PROMPTS: Record<string, string> = {
  short: 'Once upon a time there was a little girl who liked to',
  long: 'Once upon a time there was a little girl named Lily. She liked to play in the park with her dog Max. '
    + 'One day, Lily and Max went to the park and saw a big red ball. Lily wanted to play with the ball, but it belonged '
    + 'to a boy named Tom. Tom was sad because he lost his ball. Lily gave the ball back to Tom and they became friends. They played',
};
const prompts = (values.prompts ?? 'short,long').split(',');
for (const p of prompts) if (!PROMPTS[p]) throw new Error(`--prompts: '${p}' is not one of ${Object.keys(PROMPTS).join(', ')}`);
/** The bodies of the cells --cells may name. */
const CELLS: Record<string, string> = {
  attention: 'layer: 1\n', 'next-token': '', 'logit-lens': '', sampling: '', model: '', activations: 'layer: 1\n', embeddings: '',
  attribution: '', ablate: 'heads: [1.2, 3.4]\n', steer: 'positive: [happy]\nnegative: [sad]\nlayers: 2\ntokens: 4\n',
};
const cells = (values.cells ?? 'attention,next-token,logit-lens').split(',');
for (const c of cells) if (CELLS[c] === undefined) throw new Error(`--cells: '${c}' is not one of ${Object.keys(CELLS).join(', ')}`);
const RUNS = Number(values.runs ?? 3);
/** Tokens a generate cell plays (0: no generation measurement). */
const GEN_TOKENS = Number(values['gen-tokens'] ?? 64);
const models = values.models ? values.models.split(',').map((spec) => {
  const [shape, type] = spec.split(':');
  if (!shape || !type) throw new Error(`--models: '${spec}' is not shape:TYPE (e.g. llama-3.2-1b:Q4_0)`);
  return { name: `${shape} ${type}`, shape, type: type as TensorTypeName };
}) : [
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
${cells.map((c) => `\n\`\`\`${c}\n${CELLS[c]}\`\`\`\n`).join('')}`;


const GEN_NOTEBOOK = (file: string, backend: string) => `---
title: app benchmark, generation
model: /models/local/${file}
backend: ${backend}
---
\`\`\`prompt
${PROMPTS['short']}
\`\`\`

\`\`\`generate
max_tokens: ${GEN_TOKENS}
temperature: 0.8
seed: 1
\`\`\`
`;

/** In the page: Play the generate cell to its max_tokens (after a reset), then the same number of
 *  single-position steps through the app's own worker client with nothing else; [play ms, tokens,
 *  engine-alone ms]. Best of `runs`. */
const GENERATE = (runs: number) => `(async () => {
  const app = window.__gb.app(), gen = window.__gb.cell('generate');
  const btn = (a) => gen.shadowRoot.querySelector('button[data-action="' + a + '"]');
  const prompt = window.__gb.cell('prompt').state.output.ids;
  let best = null;
  for (let r = 0; r < ${runs}; r++) {
    btn('reset').click();
    while (gen.state.output.ids.length !== prompt.length || app.generation.busy(gen.cell.id)) await new Promise((res) => setTimeout(res, 5));
    await (${ALL_DRAWN})();
    const t0 = performance.now();
    btn('play').click();
    await new Promise((res) => setTimeout(res, 20));
    while (app.generation.busy(gen.cell.id)) await new Promise((res) => setTimeout(res, 5));
    const t1 = await (${ALL_DRAWN})();
    const ids = gen.state.output.ids, n = ids.length - prompt.length;
    // the peer: the same worker, the same sequence lengths, one position a step, no sampler
    const c = app.client, seq = [...prompt];
    const e0 = performance.now();
    for (let i = 0; i < n; i++) {
      const h = await c.run({ tokens: seq, slot: 'bench-engine' });
      const row = (await c.logits(h, { position: seq.length - 1 })).data;
      let arg = 0;
      for (let j = 1; j < row.length; j++) if (row[j] > row[arg]) arg = j;
      seq.push(ids[prompt.length + i]);   // the played tokens, so both see the same sequences
    }
    const e1 = performance.now();
    if (!best || t1 - t0 < best[0]) best = [t1 - t0, n, e1 - e0];
  }
  return best;
})()`;

const dir = mkdtempSync(join(tmpdir(), 'glassbox-appbench-'));
const rows: string[] = [];
const genRows: string[] = [];
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
        const lensDrawn = !cells.includes('logit-lens') ? Promise.resolve(Number.NaN) : page.evaluate(`new Promise((res) => {
          const poll = () => (window.__gb?.cell?.('logit-lens')?.shadowRoot?.querySelector('canvas') ? res(performance.now()) : setTimeout(poll, 10));
          poll();
        })`) as Promise<number>;
        // every cell done (a notebook of cells that make their own runs has no prompt run)
        await waitFor(page, () => {
          const app = window.__gb.app();
          if (!app?.model) return false;
          const cells = [...app.shadowRoot.querySelectorAll('section[data-cell] > *:last-child')] as { state?: { status: string } }[];
          return cells.length > 0 && cells.every((c) => c.state?.status === 'done' || c.state?.status === 'error');
        }, 'the model and every cell done', 600_000);
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
      rows.push(`| ${m.name} | ${nTokens} | ${info.backend}${info.backend === 'cpu' ? ` (${info.cpu.kernels}, ${info.cpu.threads} threads)` : ' (SwiftShader)'} | ${best(open).toFixed(0)} | ${Number.isNaN(lensFirst[bi(open)]!) ? '–' : lensFirst[bi(open)]!.toFixed(0)} | ${openEngine[bi(open)]!.toFixed(0)} | ${keys[ko]!.toFixed(0)} | ${keysEngine[ko]!.toFixed(0)} | ${(keys[ko]! / Math.max(1, keysEngine[ko]!)).toFixed(2)} |`);
      console.log(rows.at(-1));
      if (backend === 'webgpu' && info.backend !== 'webgpu') console.log(`  (WebGPU refused: ${info.reason})`);
      await ctx.close();
    }
    for (const backend of GEN_TOKENS > 0 ? backends : []) {
      writeFileSync(join(dir, `gen-${backend}.md`), GEN_NOTEBOOK(file, backend));
      const ctx = await browser.createBrowserContext();
      const page = await ctx.newPage();
      await page.setViewport({ width: 1200, height: 900 });
      await page.evaluateOnNewDocument(PAGE_HELPERS);
      await page.goto(`${server.origin}/?notebook=/models/local/gen-${backend}.md&model=/models/local/${file}&backend=${backend}`, { waitUntil: 'domcontentloaded' });
      await waitFor(page, () => window.__gb.app()?.model && window.__gb.cell('generate')?.state?.status === 'done', 'the generate cell', 600_000);
      const [playMs, n, engineMs] = await page.evaluate(GENERATE(RUNS)) as [number, number, number];
      const info = await page.evaluate(() => { const m = window.__gb.app().model; return { backend: m.backend, cpu: m.cpu }; });
      genRows.push(`| ${m.name} | ${info.backend}${info.backend === 'cpu' ? ` (${info.cpu.kernels}, ${info.cpu.threads} threads)` : ' (SwiftShader)'} | ${n} | ${(n / playMs * 1000).toFixed(1)} | ${(n / engineMs * 1000).toFixed(1)} | ${(engineMs / playMs).toFixed(2)} |`);
      console.log(genRows.at(-1));
      await ctx.close();
    }
  }
} finally {
  await browser.close();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}
console.log(`\nDate: ${new Date().toISOString()}. Machine: ${cpus()[0]?.model}, ${cpus().length} cores; load average ${load0.map((x) => x.toFixed(2)).join(' ')} → ${loadavg().map((x) => x.toFixed(2)).join(' ')}. Best of ${RUNS}. Cells after the prompt: ${cells.join(', ')}.`);
console.log('| model | prompt tokens | backend | open → drawn ms | open → lens first drawn ms | engine: load + runs ms | keystroke → redrawn ms | engine: run ms | keystroke / engine |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
if (genRows.length) {
  console.log('\n| model | backend | tokens played | play tok/s | engine alone tok/s | play / engine alone |');
  console.log('|---|---|---|---|---|---|');
  for (const r of genRows) console.log(r);
}
