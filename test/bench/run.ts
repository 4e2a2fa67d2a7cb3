// `npm run bench`: one table of every engine on the same random-weight GGUFs —
//   stories15M shape, F32 and Q8_0; TinyLlama-1.1B shape, Q4_0 and Q8_0; Llama-3.2-1B shape, Q4_0 —
// prefill of P = 128 prompt tokens, then G generated tokens (greedy), after an untimed warm-up:
//   in Node, each run in its own process (so that each peak RSS is its own): glassbox's CPU engine
//     (the WebAssembly kernels, 1 and 2 threads; `glassbox bench --json`, with the capture
//     overhead on 2 threads), llama.cpp (node-llama-cpp, 2 threads, installed on demand into
//     .cache/llamacpp by test/support/llamacpp.mjs; test/bench/llamacpp-bench.mjs) and, where the
//     optional `webgpu` package (Dawn) is installed, glassbox on WebGPU (a GPU machine with no
//     browser measures WebGPU this way; the row says why when it does not run);
//   in one headless Chromium page (test/bench/browser-cpu.ts), for stories15M Q8_0 and TinyLlama
//     Q4_0: glassbox's worker on the CPU (1 and 2 threads) and on WebGPU (the adapter named;
//     on a software adapter such as SwiftShader only the small model), and @wllama/wllama
//     (llama.cpp in WebAssembly) at the same thread counts.
// The table gives each glassbox row's ratio to its peer (llama.cpp in Node; wllama at the same
// thread count in Chromium; llama.cpp for WebGPU), peak memory and the capture overhead, then the
// issue-6 targets, every run, and one JSON line. The models are synthesised once into .cache/bench/.
//
// The machine is shared and small (2 cores): two-thread runs wait for each other at every step,
// so one busy core can slow them tenfold. Each Node measurement is repeated (--runs, default 3;
// Chromium: --browser-runs, default 1, as wllama takes about a second per TinyLlama token there),
// the best run is reported in the table and every run below it, with the load average.
//
//   npm run bench [-- --quick] [-- --models SHAPE:TYPE,...] [-- --prompt-tokens P] [-- --gen-tokens G] [-- --runs N] [-- --browser-runs N] [-- --no-browser] [-- --webgpu auto|all|none]
//   --quick: the stories15M models only; --models: those of the list (e.g. llama-3.2-1b:Q4_0);
//   --no-browser: no Chromium rows.

import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { benchModelFile } from './models.ts';
import { runBrowserBench, browserRows, browserNotes, bestOf, BROWSER_MODELS, SMALL_MODEL_BYTES, SOFTWARE_ADAPTER, type BrowserBench } from './browser-cpu.ts';
import { benchTable, fmt, type TableModel, type TableRow } from './table.ts';
import { shapeConfig } from '../../src/formats/synth.ts';
import type { TensorTypeName } from '../../src/formats/tensor.ts';
import { ensureLlamaCpp, LLAMACPP_VERSION } from '../support/llamacpp.mjs';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
const LLAMA_THREADS = 2;
/** Every layer's attention pattern and every residual hook (issue 6: at most 1.3× the time). */
const CAPTURE = 'blocks.*.attn.hook_pattern,blocks.*.hook_resid_pre,blocks.*.hook_resid_mid,blocks.*.hook_resid_post';
const TARGETS = { decode: 0.5, prefill: 0.33, memory: 1.2, capture: 1.3, wllama: 5 };

interface Model { shape: string; type: TensorTypeName; prompt: number; gen: number; decodeTarget: boolean }
const MODELS: Model[] = [
  { shape: 'stories15M', type: 'F32', prompt: 128, gen: 32, decodeTarget: true },
  { shape: 'stories15M', type: 'Q8_0', prompt: 128, gen: 32, decodeTarget: false },
  { shape: 'tinyllama-1.1b', type: 'Q4_0', prompt: 128, gen: 16, decodeTarget: true },
  { shape: 'tinyllama-1.1b', type: 'Q8_0', prompt: 128, gen: 16, decodeTarget: true },
  // k-quants: no target, but what most downloaded files (Q4_K_M) mostly hold
  { shape: 'tinyllama-1.1b', type: 'Q4_K', prompt: 128, gen: 16, decodeTarget: false },
  // the shape of the WebGPU target (decode at ≥ 50% of the GPU's memory bandwidth)
  { shape: 'llama-3.2-1b', type: 'Q4_0', prompt: 128, gen: 16, decodeTarget: false },
];

interface Figures { adapter?: string; threads: number; load_s: number; prefill_tok_s: number; prefill_cold_tok_s: number; decode_tok_s: number; peak_rss_mb: number; start_rss_mb: number; capture_overhead?: number; peak_rss_capture_mb?: number }
type Best = Figures & { runs: Figures[] };

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean' }, 'prompt-tokens': { type: 'string' }, 'gen-tokens': { type: 'string' }, runs: { type: 'string' },
    'browser-runs': { type: 'string' }, 'no-browser': { type: 'boolean' }, webgpu: { type: 'string' }, models: { type: 'string' },
  },
});
const positive = (s: string | undefined, flag: string): number | undefined => {
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be a positive integer, not '${s}'`);
  return n;
};
const promptOverride = positive(values['prompt-tokens'], '--prompt-tokens');
const genOverride = positive(values['gen-tokens'], '--gen-tokens');
const RUNS = positive(values.runs, '--runs') ?? 3;
// one run in Chromium by default: wllama takes about a second per TinyLlama token there
const BROWSER_RUNS = positive(values['browser-runs'], '--browser-runs') ?? 1;
const WEBGPU = values.webgpu ?? 'auto';
if (WEBGPU !== 'auto' && WEBGPU !== 'all' && WEBGPU !== 'none') throw new Error(`--webgpu must be auto, all or none, not '${WEBGPU}'`);
const only = values.models?.split(',').map((x) => x.trim());
const unknown = only?.filter((x) => !MODELS.some((m) => `${m.shape}:${m.type}` === x));
if (unknown?.length) throw new Error(`--models: ${unknown.join(', ')} not among ${MODELS.map((m) => `${m.shape}:${m.type}`).join(', ')}`);
const models = MODELS.filter((m) => (!values.quick || m.shape === 'stories15M') && (!only || only.includes(`${m.shape}:${m.type}`)))
  .map((m) => ({ ...m, prompt: promptOverride ?? m.prompt, gen: genOverride ?? m.gen }));

/** Runs a command, returns the JSON object on its last stdout line. */
function runJson(cmd: string, args: string[]): Promise<Record<string, number> & { adapter?: string }> {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b) => { out += b; });
    child.stderr.on('data', (b) => { err += b; });
    child.on('error', rej);
    child.on('close', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      try {
        if (code !== 0) throw new Error(`exit ${code}`);
        res(JSON.parse(last));
      } catch (e) {
        rej(new Error(`${cmd} ${args.join(' ')} failed (${(e as Error).message}):\n${(err || out).trim().split('\n').slice(-10).join('\n')}`));
      }
    });
  });
}

const pick = (o: Record<string, number> & { adapter?: string }): Figures => ({
  ...(o.adapter !== undefined ? { adapter: o.adapter } : {}),
  threads: o.threads!, load_s: o.load_s!, prefill_tok_s: o.prefill_tok_s!, prefill_cold_tok_s: o.prefill_cold_tok_s!, decode_tok_s: o.decode_tok_s!, peak_rss_mb: o.peak_rss_mb!, start_rss_mb: o.start_rss_mb!,
  ...(o.capture_overhead !== undefined ? { capture_overhead: o.capture_overhead, peak_rss_capture_mb: o.peak_rss_capture_mb! } : {}),
});

/** The best of `runs` runs, figure by figure (the least disturbed by other work on the machine). */
async function best(runs: number, cmd: string, args: string[]): Promise<Best> {
  const all: Figures[] = [];
  for (let i = 0; i < runs; i++) all.push(pick(await runJson(cmd, args)));
  const overheads = all.map((f) => f.capture_overhead).filter((x): x is number => x !== undefined);
  return {
    runs: all,
    ...(all[0]!.adapter !== undefined ? { adapter: all[0]!.adapter } : {}),
    threads: all[0]!.threads,
    load_s: Math.min(...all.map((f) => f.load_s)),
    prefill_tok_s: Math.max(...all.map((f) => f.prefill_tok_s)),
    prefill_cold_tok_s: Math.max(...all.map((f) => f.prefill_cold_tok_s)),
    decode_tok_s: Math.max(...all.map((f) => f.decode_tok_s)),
    peak_rss_mb: Math.min(...all.map((f) => f.peak_rss_mb)),
    // the run with the least memory above its start (start and peak from the same process)
    start_rss_mb: all.reduce((a, f) => (f.peak_rss_mb - f.start_rss_mb < a.peak_rss_mb - a.start_rss_mb ? f : a)).start_rss_mb,
    ...(overheads.length ? { capture_overhead: Math.min(...overheads), peak_rss_capture_mb: Math.min(...all.map((f) => f.peak_rss_capture_mb!)) } : {}),
  };
}

/** KV cache bytes glassbox holds after P + G positions (f32 keys and values; capacity doubles from 64). */
function kvBytes(shape: string, positions: number): number {
  const c = shapeConfig(shape);
  let cap = 64;
  while (cap < positions) cap *= 2;
  return c.nLayers * 2 * Math.min(cap, c.nCtx) * c.nKvHeads * c.dHead * 4;
}

const load0 = loadavg();
console.log(`Date: ${new Date().toISOString()}.`);
console.log(`Machine: ${cpus()[0]?.model ?? '?'}, ${cpus().length} cores; load average ${load0.map((x) => x.toFixed(2)).join(' ')}`);
await ensureLlamaCpp();

interface Row { model: Model; file: string; fileMb: number; kvMb: number; g1: Best; g2: Best; llama: Best; gpu: Best | { skipped: string } }
const rows: Row[] = [];
// WebGPU in Node (the optional `webgpu` package, Dawn: how a GPU machine without a browser measures
// it): why it is not run, once that is known for every model
let nodeGpuSkip: string | null = WEBGPU === 'none' ? 'not asked for' : null;
let nodeAdapter: string | null = null;
for (const m of models) {
  const file = await benchModelFile(m.shape, m.type);
  const flags = ['--prompt-tokens', String(m.prompt), '--gen-tokens', String(m.gen)];
  const gb = (threads: number, extra: string[] = []) => ['src/cli/glassbox.mjs', 'bench', file, '--json', '--threads', String(threads), ...flags, ...extra];
  const t0 = performance.now();
  process.stdout.write(`  ${m.shape} ${m.type}: glassbox 1 thread ×${RUNS} ...`);
  const g1 = await best(RUNS, process.execPath, gb(1));
  process.stdout.write(` 2 threads ×${RUNS} ...`);
  // the capture overhead is measured inside the two-thread runs
  const g2 = await best(RUNS, process.execPath, gb(2, ['--capture', CAPTURE]));
  process.stdout.write(` llama.cpp ×${RUNS} ...`);
  const llama = await best(RUNS, process.execPath, ['test/bench/llamacpp-bench.mjs', file, ...flags, '--threads', String(LLAMA_THREADS)]);
  let gpu: Best | { skipped: string };
  const size = statSync(file).size;
  if (nodeGpuSkip) gpu = { skipped: nodeGpuSkip };
  else if (WEBGPU === 'auto' && nodeAdapter && SOFTWARE_ADAPTER.test(nodeAdapter) && size > SMALL_MODEL_BYTES) {
    gpu = { skipped: `software adapter, ${(size / 2 ** 20).toFixed(0)} MB file (--webgpu all runs it)` };
  } else {
    process.stdout.write(` WebGPU in Node ×${RUNS} ...`);
    try {
      gpu = await best(RUNS, process.execPath, ['src/cli/glassbox.mjs', 'bench', file, '--json', '--backend', 'webgpu', ...flags]);
      nodeAdapter = gpu.adapter ?? nodeAdapter;
    } catch (e) {
      // the CLI's own words (the first sentence of its last line), e.g. that the webgpu package
      // is not installed, or that Dawn found no adapter
      const why = (e as Error).message.trim().split('\n').pop()!.replace(/^glassbox( bench)?: (--backend webgpu: )?/, '').split(/\. /)[0]!;
      gpu = { skipped: why };
      nodeGpuSkip = why;
      process.stdout.write(' not run');
    }
  }
  console.log(` done (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  rows.push({ model: m, file, fileMb: size / 2 ** 20, kvMb: kvBytes(m.shape, m.prompt + m.gen + 1) / 2 ** 20, g1, g2, llama, gpu });
}

// ---- the Chromium part: glassbox (CPU, WebGPU) and wllama on the same P and G ----
let browser: BrowserBench | null = null;
if (!values['no-browser']) {
  const bm = BROWSER_MODELS.filter((b) => models.some((m) => m.shape === b.shape && m.type === b.type));
  const pg = models.find((m) => m.shape === bm[0]?.shape);
  // one P and G per run of the page: the Node runs' (all models have the same P unless overridden)
  if (bm.length && pg) {
    const gens = new Set(bm.map((b) => models.find((m) => m.shape === b.shape && m.type === b.type)!.gen));
    console.log('');
    browser = { browser: '', adapter: '', load_before: loadavg(), load_after: [], models: [] };
    for (const gen of gens) {
      const part = await runBrowserBench({
        models: bm.filter((b) => models.find((m) => m.shape === b.shape && m.type === b.type)!.gen === gen),
        prompt: pg.prompt, gen, runs: BROWSER_RUNS, webgpu: WEBGPU,
      });
      browser = { ...part, load_before: browser.load_before, models: [...browser.models, ...part.models] };
    }
  }
}

// ---- the table (Markdown, ready for BENCHMARKS.md) ----
const tableModels: TableModel[] = rows.map(({ model: m, g1, g2, llama, gpu }) => {
  const peer = { name: `llama.cpp, ${llama.threads} threads`, prefill: llama.prefill_tok_s, decode: llama.decode_tok_s };
  const node = (g: Best): TableRow => ({
    engine: 'glassbox CPU', where: 'Node', threads: String(g.threads), prefill: g.prefill_tok_s, cold: g.prefill_cold_tok_s,
    decode: g.decode_tok_s, peakMb: g.peak_rss_mb, startMb: g.start_rss_mb, ...(g.capture_overhead !== undefined ? { capture: g.capture_overhead, captureMb: g.peak_rss_capture_mb! } : {}), peer,
  });
  const b = browser?.models.find((x) => x.model === `${m.shape} ${m.type}`);
  return {
    name: `${m.shape} ${m.type}`, prompt: m.prompt, gen: m.gen,
    rows: [
      node(g1), node(g2),
      { engine: 'llama.cpp', where: 'Node', threads: String(llama.threads), prefill: llama.prefill_tok_s, cold: llama.prefill_cold_tok_s, decode: llama.decode_tok_s, peakMb: llama.peak_rss_mb, startMb: llama.start_rss_mb, reference: true },
      'skipped' in gpu
        ? { engine: 'glassbox WebGPU', where: 'Node', threads: 'GPU', note: `not run: ${gpu.skipped}` }
        : { engine: 'glassbox WebGPU', where: 'Node', threads: 'GPU', note: gpu.adapter, prefill: gpu.prefill_tok_s, cold: gpu.prefill_cold_tok_s, decode: gpu.decode_tok_s, peakMb: gpu.peak_rss_mb, startMb: gpu.start_rss_mb, peer },
      ...(b ? browserRows(b, peer) : []),
    ],
  };
});
const mark = (ok: boolean) => (ok ? 'met' : 'NOT met');
console.log('');
console.log(`glassbox vs llama.cpp (node-llama-cpp ${LLAMACPP_VERSION}, CPU) in Node and vs wllama in headless Chromium${browser ? ` (${browser.browser})` : ' (not run: --no-browser)'}; every engine runs an untimed warm-up first (another prompt and one token: the "first prefill"). Best of ${RUNS} runs in Node, ${BROWSER_RUNS} in Chromium. Ratios: glassbox / the peer named, measured in the same run. Capture: prefill time with every layer's attention pattern and every residual hook recorded / without, and the peak RSS then (the recorded activations included; the peak RSS column is before any capture).`);
console.log('');
for (const line of benchTable(tableModels)) console.log(line);
console.log('');
console.log(`Targets (issue 6; glassbox 2 threads / llama.cpp 2 threads): decode ≥ ${TARGETS.decode}× (TinyLlama Q4_0, Q8_0, stories15M F32), prefill ≥ ${TARGETS.prefill}×, peak memory ≤ ${TARGETS.memory}× (file + KV cache: the memory above the process's start, which holds Node, the TypeScript loader or the llama.cpp library; the whole process's peak beside it), capture ≤ ${TARGETS.capture}× the time; TinyLlama Q4_0 in Chromium ≥ ${TARGETS.wllama}× wllama.`);
for (const { model: m, g2, llama, fileMb, kvMb } of rows) {
  const d = g2.decode_tok_s / llama.decode_tok_s, p = g2.prefill_tok_s / llama.prefill_tok_s;
  const own = g2.peak_rss_mb - g2.start_rss_mb, mem = own / (fileMb + kvMb), whole = g2.peak_rss_mb / (fileMb + kvMb);
  const cap = g2.capture_overhead;
  console.log(`- ${m.shape} ${m.type}: decode ${d.toFixed(2)} ${m.decodeTarget ? mark(d >= TARGETS.decode) : '(no target)'}; prefill ${p.toFixed(2)} ${mark(p >= TARGETS.prefill)}; memory ${mem.toFixed(2)}× (${fmt(own)} / ${fmt(fileMb + kvMb)} MB) ${mark(mem <= TARGETS.memory)} (the whole process ${whole.toFixed(2)}×: ${fmt(g2.peak_rss_mb)} MB)${cap === undefined ? '' : `; capture ×${cap.toFixed(2)} ${mark(cap <= TARGETS.capture)}`}`);
}
for (const { model: m, gpu, fileMb } of rows) {
  if ('skipped' in gpu) continue;
  // the bytes a decoded token reads are about the whole file (less one embedding row per token)
  console.log(`- ${m.shape} ${m.type} on WebGPU in Node (${gpu.adapter}): decode ${fmt(gpu.decode_tok_s)} tok/s reads about ${fmt(fileMb * gpu.decode_tok_s / 1024)} GiB/s of weights; the target is half the GPU's memory bandwidth.`);
}
for (const b of browser?.models ?? []) {
  if (b.model !== 'tinyllama-1.1b Q4_0') continue;
  for (const c of b.cpu) {
    if (!c.wllama) continue;
    const p = bestOf(c.glassbox, 'prefill_tok_s') / bestOf(c.wllama, 'prefill_tok_s'), d = bestOf(c.glassbox, 'decode_tok_s') / bestOf(c.wllama, 'decode_tok_s');
    console.log(`- ${b.model} in Chromium, ${c.threads} thread(s): ${p.toFixed(1)}× wllama (prefill), ${d.toFixed(1)}× (decode) ${mark(Math.min(p, d) >= TARGETS.wllama)}`);
  }
}
console.log('');
console.log('Every run in Node (prefill / decode tok/s):');
for (const { model: m, g1, g2, llama } of rows) {
  const list = (x: { runs: Figures[] }) => x.runs.map((o) => `${fmt(o.prefill_tok_s)}/${fmt(o.decode_tok_s)}`).join(', ');
  console.log(`  ${m.shape} ${m.type}: glassbox 1 thread ${list(g1)}; 2 threads ${list(g2)}; llama.cpp ${list(llama)}`);
}
console.log(`  load average before: ${load0.map((x) => x.toFixed(2)).join(' ')}; after: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
if (browser) for (const line of browserNotes(browser)) console.log(line);
console.log(JSON.stringify({
  bench: 'forward', llamacpp: LLAMACPP_VERSION, runs: RUNS, cpu: cpus()[0]?.model ?? null, cores: cpus().length,
  results: rows.map(({ model, fileMb, kvMb, g1, g2, llama, gpu }) => ({ model: `${model.shape} ${model.type}`, prompt: model.prompt, gen: model.gen, file_mb: fileMb, kv_mb: kvMb, glassbox_1: g1, glassbox_2: g2, llamacpp: llama, glassbox_webgpu: gpu })),
  ...(browser ? { browser } : {}),
}));
