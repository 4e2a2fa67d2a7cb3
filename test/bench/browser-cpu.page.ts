// The page side of test/bench/browser-cpu.ts: glassbox's engine in its worker (src/worker/client.ts;
// CPU, or WebGPU on the page's adapter) and @wllama/wllama (llama.cpp compiled to WebAssembly, in
// its own worker) on the same GGUF bytes, in the same headless Chromium page. The driver calls
// window.__bench.glassbox / .wllama with the same prompts; each loads the model, runs
// `prompts.length` times (prefill of the prompt, then `gen` greedy tokens) and unloads it, so that
// only one engine holds the model at a time.
//
// Timings are the engines' own, so that both sides count the same work:
//   glassbox: TraceHandle.ms of the prompt's run (prefill) and of each one-position run (decode);
//   wllama: llama-server's timings (prompt_ms over prompt_n; predicted_ms, which spans the
//     predicted_n − 1 forward passes after the first token, the prompt's, was sampled).
// The page's wall-clock time of the whole request (worker messages included) is kept beside them.

import { createEngineClient } from '../../src/worker/client.ts';
import { Wllama, type RawCompletionParams, type RawCompletionResponse } from '@wllama/wllama/esm/index.js';

export interface BenchRequest {
  /** Same-origin URL of the GGUF (the driver's /models/local/). */
  url: string;
  /** glassbox's backend (default 'cpu'); wllama always runs on the CPU. */
  backend?: 'cpu' | 'webgpu';
  threads: number;
  /** One prompt per run, no two with a common first word; the first run's greedy tokens are compared across engines. */
  prompts: Prompt[];
  /** Run once first, untimed, in the same way (another prompt of the same length). */
  warmup: Prompt;
  gen: number;
}

/** A prompt as text (wllama takes text only) and as glassbox's tokenizer encodes it (BOS first). */
export interface Prompt { text: string; ids: number[] }

export interface RunFigures {
  prefill_tok_s: number; decode_tok_s: number; wall_ms: number;
  /** The generated text; glassbox also gives its ids and their pieces' text. */
  text: string; ids: number[]; pieces: string[];
}

export interface BenchResult {
  engine: 'glassbox' | 'wllama';
  backend: 'cpu' | 'webgpu';
  /** WebGPU: the adapter as the page's navigator.gpu describes it. */
  adapter?: string;
  threads: number;
  /** What the engine says it runs on (kernels, threads, isolation). */
  detail: string;
  load_s: number;
  /** The warm-up's prefill (another prompt of the same length, the engine's first): before the timed runs. */
  prefill_cold_tok_s: number;
  runs: RunFigures[];
}

// The wasm file is served from node_modules by the bench's server, never from a CDN.
const WLLAMA_WASM = '/node_modules/@wllama/wllama/esm/wasm/wllama.wasm';

const blobs = new Map<string, Promise<File>>();
/** The model as a File, fetched once per page and handed to both engines (the same bytes). */
function modelFile(url: string): Promise<File> {
  let p = blobs.get(url);
  if (!p) {
    p = (async () => {
      const r = await fetch(url);
      if (!r.ok) throw new Error(`GET ${url}: ${r.status} ${r.statusText}`);
      return new File([await r.blob()], url.split('/').pop() ?? 'model.gguf');
    })();
    blobs.set(url, p);
  }
  return p;
}

/** The page's WebGPU adapter in words (vendor, architecture, device, description), or why there is none. */
async function adapterName(): Promise<string> {
  if (!('gpu' in navigator)) return 'no navigator.gpu';
  const a = await navigator.gpu.requestAdapter();
  if (!a) return 'no adapter';
  const i = a.info;
  return [i.vendor, i.architecture, i.device, i.description].filter((x) => x).join(' ') || 'an adapter with no description';
}

async function glassbox(req: BenchRequest): Promise<BenchResult> {
  const file = await modelFile(req.url);
  const backend = req.backend ?? 'cpu';
  const client = createEngineClient();
  try {
    const t0 = performance.now();
    const info = await client.load({ kind: 'files', files: [file] }, { backend, threads: req.threads });
    const loadS = (performance.now() - t0) / 1000;
    if (backend === 'webgpu' && info.backend !== 'webgpu') {
      throw new Error(`glassbox: asked for WebGPU, got ${info.backend} (${info.backendReason ?? 'no reason given'})`);
    }
    if (backend === 'cpu' && (info.backend !== 'cpu' || info.cpu.threads !== req.threads)) {
      throw new Error(`glassbox: asked for the CPU on ${req.threads} thread(s), got ${info.backend} ${info.cpu.kernels} on ${info.cpu.threads} (${info.cpu.reason ?? info.backendReason ?? 'no reason given'})`);
    }
    const adapter = backend === 'webgpu' ? await adapterName() : undefined;
    // warm-up: compiles the kernels' code paths and starts the thread pool (another prompt and
    // one decoded token)
    const warmIds = [...req.warmup.ids];
    let cold = 0;
    for (let i = 0; i <= 1; i++) {
      const h = await client.run({ tokens: warmIds, slot: 'warm-up' });
      if (i === 0) cold = warmIds.length / (h.ms / 1000);
      warmIds.push((await client.topK(h, { k: 1 })).ids[0]!);
    }
    // ids that share no prefix with the prompts (BOS first): run before each prompt, they replace
    // the previous one in the KV cache, so that every prefill computes every position
    const evict = { tokens: [3, 4, 5, 6], slot: 'warm-up' };
    const runs: RunFigures[] = [];
    for (const [r, { ids: prompt }] of req.prompts.entries()) {
      const slot = `run-${r}`;
      await client.release(await client.run(evict));
      const w0 = performance.now();
      let h = await client.run({ tokens: prompt, slot });
      if (h.reused !== 0) throw new Error(`glassbox: the prompt of run ${r} reused ${h.reused} cached positions`);
      const prefillMs = h.ms;
      const ids = [(await client.topK(h, { k: 1 })).ids[0]!];
      let decodeMs = 0;
      for (let i = 0; i < req.gen; i++) {
        h = await client.run({ tokens: [...prompt, ...ids], slot });
        if (h.nPos - h.reused !== 1) throw new Error(`glassbox: decode step ${i} computed ${h.nPos - h.reused} positions, not 1`);
        decodeMs += h.ms;
        ids.push((await client.topK(h, { k: 1 })).ids[0]!);
      }
      await client.release(h);
      const wall = performance.now() - w0;
      // each piece's text as decoded after the ones before it ('▁' a space; the first keeps its space, as llama.cpp's does after a prompt)
      const pieces = (await client.pieces(ids)).map((p) => p.replaceAll('\u2581', ' '));
      runs.push({ prefill_tok_s: prompt.length / (prefillMs / 1000), decode_tok_s: req.gen / (decodeMs / 1000), wall_ms: wall, text: pieces.join(''), ids, pieces });
    }
    const detail = adapter ? `WebGPU, adapter ${adapter}` : `${info.cpu.detail}, crossOriginIsolated ${crossOriginIsolated}`;
    return { engine: 'glassbox', backend, ...(adapter ? { adapter } : {}), threads: backend === 'cpu' ? info.cpu.threads : 0, detail, load_s: loadS, prefill_cold_tok_s: cold, runs };
  } finally {
    client.dispose();
  }
}

async function wllama(req: BenchRequest): Promise<BenchResult> {
  const file = await modelFile(req.url);
  const quiet = { debug: () => {}, log: () => {}, warn: (...a: unknown[]) => console.warn(...a), error: (...a: unknown[]) => console.error(...a) };
  const w = new Wllama({ default: WLLAMA_WASM }, { suppressNativeLog: true, logger: quiet });
  try {
    const t0 = performance.now();
    const longest = Math.max(...req.prompts.map((p) => p.ids.length));
    // CPU only (n_gpu_layers 0); one batch holds the whole prompt, as glassbox's prefill does
    await w.loadModel([file], { n_threads: req.threads, n_gpu_layers: 0, n_ctx: longest + req.gen + 16, n_batch: Math.max(512, longest), n_ubatch: Math.max(512, longest), n_parallel: 1 });
    const loadS = (performance.now() - t0) / 1000;
    const threads = w.getNumThreads();
    if (threads !== req.threads || (req.threads > 1 && !w.isMultithread())) {
      throw new Error(`wllama: asked for ${req.threads} thread(s), got ${threads} (multithread ${w.isMultithread()}, crossOriginIsolated ${crossOriginIsolated})`);
    }
    // greedy; the text is tokenized with BOS (prompt_n counts it); no prompt cache across runs
    const complete = (prompt: string, maxTokens: number): Promise<RawCompletionResponse> =>
      w.createCompletion({ prompt, max_tokens: maxTokens, temperature: 0, top_k: 1, ignore_eos: true, cache_prompt: false } as RawCompletionParams & { stream?: false });
    const warm = (await complete(req.warmup.text, 2)).timings;
    const cold = warm ? warm.prompt_n / (warm.prompt_ms / 1000) : 0;
    const runs: RunFigures[] = [];
    for (const [r, { text, ids: prompt }] of req.prompts.entries()) {
      const w0 = performance.now();
      // the first token comes from the prompt's pass; the gen more each from one decode pass
      const res = await complete(text, req.gen + 1);
      const wall = performance.now() - w0;
      const t = res.timings;
      if (!t) throw new Error('wllama: the completion carries no timings');
      if (t.prompt_n !== prompt.length || t.cache_n !== 0) throw new Error(`wllama: run ${r} processed ${t.prompt_n} prompt tokens (${t.cache_n} cached), not ${prompt.length}`);
      if (t.predicted_n !== req.gen + 1) throw new Error(`wllama: run ${r} generated ${t.predicted_n} tokens, not ${req.gen + 1}`);
      runs.push({ prefill_tok_s: t.prompt_n / (t.prompt_ms / 1000), decode_tok_s: (t.predicted_n - 1) / (t.predicted_ms / 1000), wall_ms: wall, text: res.choices[0]?.text ?? '', ids: [], pieces: [] });
    }
    return { engine: 'wllama', backend: 'cpu', threads, detail: `wllama ${Wllama.getLibllamaVersion()}, ${threads} thread(s), multithread ${w.isMultithread()}, crossOriginIsolated ${crossOriginIsolated}`, load_s: loadS, prefill_cold_tok_s: cold, runs };
  } finally {
    await w.exit();
  }
}

/** The job running now. The driver starts it and polls, so that no DevTools call lasts as long as
 *  a slow engine's runs (puppeteer gives up on one after its protocolTimeout). */
export interface Job { done: boolean; result?: BenchResult; error?: string }
let job: Job | null = null;
function start(engine: 'glassbox' | 'wllama', req: BenchRequest): void {
  if (job && !job.done) throw new Error('a benchmark job is already running');
  const j: Job = { done: false };
  job = j;
  (engine === 'glassbox' ? glassbox : wllama)(req).then(
    (r) => { j.result = r; j.done = true; },
    (e: unknown) => { j.error = e instanceof Error ? `${e.message}\n${e.stack ?? ''}` : String(e); j.done = true; });
}

declare global {
  interface Window { __bench: { start: typeof start; poll: () => Job | null; adapter: typeof adapterName; ready: true } }
}
window.__bench = { start, poll: () => job, adapter: adapterName, ready: true };
