// The visual cells' cost on the page (issue 8): for prompts of 16, 128 and 1,000 tokens, the
// main-thread time each cell takes to draw its output (set as a deep copy, so nothing is
// memoized; measured from the assignment to the element's update done and a frame painted), and
// the bytes of trace it fetched from the worker (the typed arrays in its output). In the built app
// (vite build + preview) in headless Chromium, CPU backend, on the random-weight GGUFs of
// `npm run bench`. The peer in the same run: the engine's time for the prompt's run.
//
//   node --import tsx test/bench/cells.ts [--quick]

import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { benchModelFile } from './models.ts';
import { serveBuiltApp, launchBrowser, PAGE_HELPERS, waitFor } from '../support/built-app.mjs';

const { values } = parseArgs({ options: { quick: { type: 'boolean' } } });
const KINDS = ['attention', 'next-token', 'logit-lens', 'activations', 'embeddings'];
const cases = [
  { name: 'stories15M Q8_0', shape: 'stories15M', type: 'Q8_0' as const, sizes: [16, 128] },
  ...(values.quick ? [] : [{ name: 'TinyLlama-1.1B Q4_0', shape: 'tinyllama-1.1b', type: 'Q4_0' as const, sizes: [16, 128, 1000] }]),
];

/** A prompt of about n tokens (the tokenizer decides exactly; the table reports the count). */
const words = 'once upon a time there was a little girl who lived in a village near the forest and she liked to play with her dog'.split(' ');
const prompt = (n: number) => Array.from({ length: n - 1 }, (_, i) => words[i % words.length]).join(' ');

const notebook = (file: string, n: number) => `---
title: cells benchmark
model: /models/local/${file}
---
\`\`\`prompt
${prompt(n)}
\`\`\`

\`\`\`attention
layer: 1
\`\`\`

\`\`\`next-token
\`\`\`

\`\`\`logit-lens
\`\`\`

\`\`\`activations
layer: 1
\`\`\`

\`\`\`embeddings
layer: all
\`\`\`
`;

const MEASURE = `async (kinds) => {
  const app = window.__gb.app();
  await app.idle();
  const bytesOf = (o, seen = new Set()) => {
    if (!o || typeof o !== 'object' || seen.has(o)) return 0;
    seen.add(o);
    if (ArrayBuffer.isView(o)) return o.byteLength;
    if (o instanceof Map) return [...o.values()].reduce((s, v) => s + bytesOf(v, seen), 0);
    return Object.values(o).reduce((s, v) => s + bytesOf(v, seen), 0);
  };
  const out = {};
  for (const k of kinds) {
    const el = window.__gb.cell(k);
    const st = el.state;
    if (st.status !== 'done') { out[k] = { error: String(st.error) }; continue; }
    let best = Infinity;
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
      const t0 = performance.now();
      el.state = { ...st, output: structuredClone(st.output) };
      await el.updateComplete;
      const t1 = performance.now();
      best = Math.min(best, t1 - t0);
    }
    out[k] = { ms: best, bytes: bytesOf(st.output) };
  }
  const tokens = window.__gb.tokens().length;
  return { out, tokens, engineMs: app.runs.engineMs };
}`;

const dir = mkdtempSync(join(tmpdir(), 'glassbox-cellbench-'));
process.env['GLASSBOX_MODELS'] = dir;
const load0 = loadavg();
const server = await serveBuiltApp({ outDir: 'test/output/dist' });
const browser = await launchBrowser();
const rows: string[] = [];
const kib = (b: number) => (b >= 2 ** 20 ? `${(b / 2 ** 20).toFixed(1)} MiB` : `${(b / 1024).toFixed(0)} KiB`);
try {
  for (const c of cases) {
    const file = `${c.shape}-${c.type}.gguf`;
    symlinkSync(await benchModelFile(c.shape, c.type), join(dir, file));
    for (const n of c.sizes) {
      writeFileSync(join(dir, `cells-${n}.md`), notebook(file, n));
      const ctx = await browser.createBrowserContext();
      const page = await ctx.newPage();
      await page.setViewport({ width: 1200, height: 900 });
      await page.evaluateOnNewDocument(PAGE_HELPERS);
      await page.goto(`${server.origin}/?notebook=/models/local/cells-${n}.md&model=/models/local/${file}&backend=cpu`, { waitUntil: 'domcontentloaded' });
      await waitFor(page, (ks: string[]) => window.__gb.app()?.model && ks.every((k) => { const st = window.__gb.cell(k)?.state; return st?.status === 'error' || (st?.status === 'done' && st.output); }),
        'the model and every cell computed', 1_200_000, KINDS);
      const r = await page.evaluate(`(${MEASURE})(${JSON.stringify(KINDS)})`) as { out: Record<string, { ms?: number; bytes?: number; error?: string }>; tokens: number; engineMs: number };
      const cells = KINDS.map((k) => (r.out[k]!.error ? `error: ${r.out[k]!.error}` : `${r.out[k]!.ms!.toFixed(1)} ms / ${kib(r.out[k]!.bytes!)}`));
      rows.push(`| ${c.name} | ${r.tokens} | ${(r.engineMs / 1000).toFixed(2)} s | ${cells.join(' | ')} |`);
      console.log(rows.at(-1));
      await ctx.close();
    }
  }
} finally {
  await browser.close();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}
console.log(`\nDate: ${new Date().toISOString()}. Machine: ${cpus()[0]?.model}, ${cpus().length} cores; load average ${load0.map((x) => x.toFixed(2)).join(' ')} → ${loadavg().map((x) => x.toFixed(2)).join(' ')}. Best of 3 draws.`);
console.log(`| model | tokens | engine run | ${KINDS.map((k) => `${k}: draw / fetched`).join(' | ')} |`);
console.log(`|---|---|---|${KINDS.map(() => '---').join('|')}|`);
for (const r of rows) console.log(r);
