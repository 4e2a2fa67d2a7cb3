// The Chromium part of `npm run bench`: glassbox (its worker, on the CPU and on the page's WebGPU
// adapter) vs @wllama/wllama (llama.cpp compiled to WebAssembly) in ONE headless Chromium run
// (issue 6: "at least 5× wllama on the same TinyLlama-shape Q4_0 file, measured in the same browser
// run"). Both engines get the same GGUF bytes (the random-weight models of `npm run bench`,
// .cache/bench), the same prompts (text of exactly P tokens) and the same thread counts (1 and 2),
// one engine loaded at a time; each first runs an untimed warm-up (another prompt and one decoded
// token, whose prefill is the "first prefill"), then N timed runs, best of N per figure. WebGPU
// runs every model on a hardware adapter and only the small ones on a software one (SwiftShader).
//
// The page (browser-cpu.html + browser-cpu.page.ts) is served by a Vite dev server with the
// cross-origin isolation headers (COOP/COEP: SharedArrayBuffer, so threads, in both engines), the
// models under /models/local/ (the app's middleware, pointed at .cache/bench) and wllama's wasm
// from node_modules (never a CDN). No content security policy: the bench is not the site.
//
//   node --import tsx test/bench/browser-cpu.ts [--quick] [--models SHAPE:TYPE,...] [--prompt-tokens 32] [--gen-tokens 8] [--runs 1] [--webgpu auto|all|none] [--no-wllama]
//   --quick: stories15M Q8_0 only; --models: others of .cache/bench (e.g. tinyllama-1.1b:Q8_0,
//   synthesised when missing). `npm run bench` runs it with its own P and G and puts its rows in
//   its one table (test/bench/run.ts).

import { createServer as netServer } from 'node:net';
import { basename, resolve } from 'node:path';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { createServer, type Plugin } from 'vite';
import type { Page } from 'puppeteer-core';
import { statSync } from 'node:fs';
import { benchModelFile, cacheDir } from './models.ts';
import { benchTable, fmt, type TableRow } from './table.ts';
import { launchBrowser } from '../support/built-app.mjs';
import type { TensorTypeName } from '../../src/formats/tensor.ts';
import type { BenchRequest, BenchResult, Prompt } from './browser-cpu.page.ts';
import { tokenizerFromPath } from '../../src/cli/tokenize.ts';
import type { Tokenizer } from '../../src/tokenizer/tokenizer.ts';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
// a variable, so that TypeScript does not look for types of this plain ESM module
const LOCAL_MODELS = '../../src/app/local-models.mjs';

export interface BrowserModel { shape: string; type: TensorTypeName }
export const BROWSER_MODELS: BrowserModel[] = [
  { shape: 'stories15M', type: 'Q8_0' },
  { shape: 'tinyllama-1.1b', type: 'Q4_0' },
  { shape: 'tinyllama-1.1b', type: 'Q4_K' },
];
export const THREADS = [1, 2];

export interface BrowserOptions {
  models: BrowserModel[]; prompt: number; gen: number; runs: number;
  /** glassbox on the page's WebGPU adapter too: 'all' models, 'auto' (all on a hardware adapter,
   *  files under SMALL_MODEL_BYTES on a software one such as SwiftShader: it runs the shaders on
   *  the CPU, a 1B model would take tens of minutes) or 'none'. */
  webgpu: 'all' | 'auto' | 'none';
  /** Run wllama beside glassbox (default true; false: glassbox alone, no ratios). */
  wllama?: boolean;
  log?: (s: string) => void;
}
/** Per model: glassbox CPU and wllama at each thread count, glassbox on WebGPU (or why not). */
export interface BrowserModelResult {
  model: string; prompt: number; gen: number;
  /** wllama is missing when the run left it out (--no-wllama). */
  cpu: { threads: number; glassbox: BenchResult; wllama?: BenchResult }[];
  webgpu: BenchResult | { skipped: string };
}
export interface BrowserBench { browser: string; adapter: string; load_before: number[]; load_after: number[]; models: BrowserModelResult[] }

/** Files at most this large run on a software WebGPU adapter under webgpu: 'auto'. */
export const SMALL_MODEL_BYTES = 100 * 2 ** 20;
/** Adapters that run shaders on the CPU. */
export const SOFTWARE_ADAPTER = /swiftshader|llvmpipe|lavapipe|software|fallback/i;

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = netServer().listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (a && typeof a === 'object' ? res(a.port) : rej(new Error('no port'))));
    });
    s.on('error', rej);
  });
}

/**
 * `runs` prompts of exactly `n` tokens (BOS included), as text: wllama (llama-server inside) takes
 * text only, so both engines get text the synthetic vocabulary covers — random lowercase words of
 * 1 to 3 letters, each one piece ('▁abc') where the vocabulary has it — and glassbox its ids from
 * its own tokenizer (llama.cpp's rules; wllama's prompt_n is checked against their count). Each
 * prompt starts with a different word.
 */
function prompts(tok: Tokenizer, n: number, runs: number): Prompt[] {
  let s = 1234;
  const rnd = (k: number) => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return (s >>> 8) % k; };
  const word = (len: number) => Array.from({ length: len }, () => 'abcdefghijklmnopqrstuvwxyz'[rnd(26)]).join('');
  const out: Prompt[] = [];
  for (let r = 0; r < runs; r++) {
    const words = [word(1 + rnd(3))];
    while (out.some((p) => p.text.split(' ')[0] === words[0])) words[0] = word(3);
    let ids = tok.encode(words.join(' '), { bos: true });
    while (ids.length < n) {
      // a longer word may take more than one piece: a one-letter word ('▁x') fills the last place
      const w = word(ids.length === n - 1 ? 1 : 1 + rnd(3));
      const next = tok.encode([...words, w].join(' '), { bos: true });
      if (next.length > n) continue;
      words.push(w);
      ids = next;
    }
    out.push({ text: words.join(' '), ids });
  }
  return out;
}

/** Runs one engine's measurements in the page: started, then polled every second. */
async function job(page: Page, engine: 'glassbox' | 'wllama', req: BenchRequest, errors: string[]): Promise<BenchResult> {
  await page.evaluate((e, r) => window.__bench.start(e, r), engine, req);
  for (;;) {
    await new Promise((r) => setTimeout(r, 1000));
    const j = await page.evaluate(() => window.__bench.poll());
    if (!j?.done) continue;
    if (j.error !== undefined || !j.result) throw new Error(`${engine} in the page: ${j.error ?? 'no result'}\n${errors.join('\n')}`);
    return j.result;
  }
}

export async function runBrowserBench(o: BrowserOptions): Promise<BrowserBench> {
  const log = o.log ?? ((s: string) => process.stdout.write(s));
  if (o.prompt < 2) throw new Error(`the prompt needs at least 2 tokens (BOS and a word), not ${o.prompt}`);
  const files: string[] = [];
  for (const m of o.models) files.push(await benchModelFile(m.shape, m.type)); // synthesised when missing
  const load0 = loadavg();
  process.env['GLASSBOX_MODELS'] = cacheDir; // read when local-models.mjs is first imported
  const lm = (await import(LOCAL_MODELS)) as { connectLocalModels(): Plugin['configureServer']; ISOLATION_HEADERS: Record<string, string> };
  const port = await freePort();
  const server = await createServer({
    root, configFile: false, logLevel: 'warn', clearScreen: false,
    server: { host: '127.0.0.1', port, strictPort: true, headers: { ...lm.ISOLATION_HEADERS, 'Cross-Origin-Resource-Policy': 'same-origin' }, hmr: false },
    worker: { format: 'es' },
    // no dependency discovery: a late discovery reloads the page in the middle of a run
    optimizeDeps: { noDiscovery: true, include: [] },
    plugins: [{ name: 'bench-local-models', configureServer(s) { s.middlewares.use(lm.connectLocalModels() as never); } }],
  });
  await server.listen();
  const browser = await launchBrowser({ webgpu: o.webgpu !== 'none' });
  try {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push((e as Error).message));
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warn') errors.push(m.text()); });
    page.on('response', (r) => { if (r.status() >= 400) errors.push(`${r.status()} ${r.url()}`); });
    await page.goto(`http://127.0.0.1:${port}/test/bench/browser-cpu.html`, { waitUntil: 'load' });
    await page.waitForFunction(() => window.__bench?.ready, { timeout: 120_000 });
    if (!(await page.evaluate(() => crossOriginIsolated))) throw new Error('the bench page is not cross-origin isolated: no threads');
    const adapter = await page.evaluate(() => window.__bench.adapter());
    const models: BrowserModelResult[] = [];
    for (const [i, m] of o.models.entries()) {
      const ps = prompts(await tokenizerFromPath(files[i]!), o.prompt, o.runs + 1);
      const req = (threads: number, backend: 'cpu' | 'webgpu' = 'cpu'): BenchRequest => ({ url: `/models/local/${basename(files[i]!)}`, backend, threads, gen: o.gen, prompts: ps.slice(1), warmup: ps[0]! });
      const result: BrowserModelResult = { model: `${m.shape} ${m.type}`, prompt: o.prompt, gen: o.gen, cpu: [], webgpu: { skipped: '' } };
      for (const threads of THREADS) {
        const t0 = performance.now();
        log(`  Chromium: ${m.shape} ${m.type}, ${threads} thread(s): glassbox ×${o.runs} ...`);
        const g = await job(page, 'glassbox', req(threads), errors);
        let w: BenchResult | undefined;
        if (o.wllama !== false) {
          log(` wllama ×${o.runs} ...`);
          w = await job(page, 'wllama', req(threads), errors);
        }
        log(` done (${((performance.now() - t0) / 1000).toFixed(0)} s)\n`);
        result.cpu.push({ threads, glassbox: g, ...(w ? { wllama: w } : {}) });
      }
      const size = statSync(files[i]!).size;
      if (o.webgpu === 'none') result.webgpu = { skipped: 'not asked for' };
      else if (/^no /.test(adapter)) result.webgpu = { skipped: adapter };
      else if (o.webgpu === 'auto' && SOFTWARE_ADAPTER.test(adapter) && size > SMALL_MODEL_BYTES) {
        result.webgpu = { skipped: `software adapter, ${(size / 2 ** 20).toFixed(0)} MB file (--webgpu all runs it)` };
      } else {
        const t0 = performance.now();
        log(`  Chromium: ${m.shape} ${m.type}, WebGPU (${adapter}): glassbox ×${o.runs} ...`);
        result.webgpu = await job(page, 'glassbox', req(1, 'webgpu'), errors);
        log(` done (${((performance.now() - t0) / 1000).toFixed(0)} s)\n`);
      }
      models.push(result);
    }
    return { browser: await browser.version(), adapter, load_before: load0, load_after: loadavg(), models };
  } finally {
    await browser.close();
    await server.close();
  }
}

export const bestOf = (r: BenchResult, k: 'prefill_tok_s' | 'decode_tok_s') => Math.max(...r.runs.map((x) => x[k]));
/** Leading greedy tokens (after the first run's prompt) on which the two agree, of those generated. */
export function agreement(g: BenchResult, w: BenchResult): string {
  const a = g.runs[0]!.pieces, text = w.runs[0]!.text;
  // glassbox's tokens, one after another, while their text continues wllama's
  let k = 0, at = 0;
  while (k < a.length && text.startsWith(a[k]!, at)) at += a[k++]!.length;
  return `${k} / ${a.length}`;
}

/**
 * One model's Chromium rows of the bench table: glassbox CPU and wllama at each thread count
 * (glassbox's ratios against wllama at the same count), then glassbox on WebGPU, whose ratios are
 * against `gpuPeer` (npm run bench: native llama.cpp) or else wllama's best CPU row.
 */
export function browserRows(m: BrowserModelResult, gpuPeer?: TableRow['peer']): TableRow[] {
  const rows: TableRow[] = [];
  const fig = (r: BenchResult) => ({ prefill: bestOf(r, 'prefill_tok_s'), cold: r.prefill_cold_tok_s, decode: bestOf(r, 'decode_tok_s') });
  const peers = m.cpu.flatMap((c) => (c.wllama ? [{ threads: c.threads, name: `wllama, ${c.threads} thread${c.threads > 1 ? 's' : ''}`, ...fig(c.wllama) }] : []));
  for (const c of m.cpu) {
    const peer = peers.find((p) => p.threads === c.threads);
    rows.push({ engine: 'glassbox CPU', where: 'Chromium', threads: String(c.threads), ...fig(c.glassbox), ...(peer ? { peer } : {}) });
  }
  for (const c of m.cpu) if (c.wllama) rows.push({ engine: 'wllama', where: 'Chromium', threads: String(c.threads), ...fig(c.wllama), reference: true });
  const best = [...peers].sort((a, b) => b.prefill - a.prefill)[0];
  if ('skipped' in m.webgpu) rows.push({ engine: 'glassbox WebGPU', where: 'Chromium', threads: 'GPU', note: `not run: ${m.webgpu.skipped}` });
  else rows.push({ engine: 'glassbox WebGPU', where: 'Chromium', threads: 'GPU', note: m.webgpu.adapter, ...fig(m.webgpu), ...(gpuPeer ?? best ? { peer: gpuPeer ?? best } : {}) });
  return rows;
}

/** The lines under the table: every run, the greedy agreement, the load average. */
export function browserNotes(b: BrowserBench): string[] {
  const list = (x: BenchResult) => `${x.runs.map((o) => `${fmt(o.prefill_tok_s)}/${fmt(o.decode_tok_s)}`).join(', ')}; load ${x.load_s.toFixed(1)} s`;
  const out = [`In headless Chromium (${b.browser}), one page, cross-origin isolated (threads in both engines); WebGPU adapter: ${b.adapter}. Every run (prefill / decode tok/s):`];
  for (const m of b.models) {
    for (const c of m.cpu) out.push(`  ${m.model}, ${c.threads} thread(s): glassbox ${list(c.glassbox)} (${c.glassbox.detail})${c.wllama ? `; wllama ${list(c.wllama)} (${c.wllama.detail})` : ''}`);
    if (!('skipped' in m.webgpu)) out.push(`  ${m.model}, WebGPU: glassbox ${list(m.webgpu)} (${m.webgpu.detail})`);
    const one = m.cpu[0];
    if (one?.wllama) out.push(`  ${m.model}, greedy tokens glassbox and wllama agree on (leading): ${agreement(one.glassbox, one.wllama)}; glassbox ${JSON.stringify(one.glassbox.runs[0]!.text)}, wllama ${JSON.stringify(one.wllama.runs[0]!.text)}`);
  }
  out.push(`  load average before: ${b.load_before.map((x) => x.toFixed(2)).join(' ')}; after: ${b.load_after.map((x) => x.toFixed(2)).join(' ')}`);
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' }, models: { type: 'string' }, 'prompt-tokens': { type: 'string' }, 'gen-tokens': { type: 'string' }, runs: { type: 'string' }, webgpu: { type: 'string' }, 'no-wllama': { type: 'boolean' } } });
  const int = (s: string | undefined, d: number, flag: string) => {
    const n = Number(s ?? d);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be a positive integer, not '${s}'`);
    return n;
  };
  const webgpu = values.webgpu ?? 'auto';
  if (webgpu !== 'all' && webgpu !== 'auto' && webgpu !== 'none') throw new Error(`--webgpu must be all, auto or none, not '${webgpu}'`);
  const opts: BrowserOptions = {
    models: values.models
      ? values.models.split(',').map((x) => { const [shape, type] = x.split(':'); return { shape: shape!, type: (type ?? 'Q4_0') as TensorTypeName }; })
      : BROWSER_MODELS.filter((m) => !values.quick || m.shape === 'stories15M'),
    prompt: int(values['prompt-tokens'], 32, '--prompt-tokens'), gen: int(values['gen-tokens'], 8, '--gen-tokens'), runs: int(values.runs, 1, '--runs'), webgpu, wllama: !values['no-wllama'],
  };
  console.log(`Date: ${new Date().toISOString()}. Machine: ${cpus()[0]?.model ?? '?'}, ${cpus().length} cores; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const b = await runBrowserBench(opts);
  console.log('');
  for (const line of benchTable(b.models.map((m) => ({ name: m.model, prompt: m.prompt, gen: m.gen, rows: browserRows(m) })))) console.log(line);
  console.log('');
  for (const line of browserNotes(b)) console.log(line);
  console.log(JSON.stringify({ bench: 'browser', ...b }));
}
