// glassbox bench MODEL: prefill and decode speed and peak memory of this engine on one model.
// `npm run bench` (test/bench/run.ts) runs it beside llama.cpp on the same files.
//
// Like llama.cpp's llama-bench, the timed runs follow an untimed warm-up (another prompt of the
// same length, then one decoded token): the first run of a process pays for compiling and tiering
// up code, starting the threads and first touching scratch memory, which a notebook pays once, not
// on every edit. That first prefill is still reported, as prefill_cold_tok_s.

import type { Command } from './main.ts';
import { parse, num, str, flag, onePositional } from './args.ts';
import { loadModel, backendFlag } from './load.ts';
import { generateAsync } from '../engine/generate.ts';
import { Rng } from '../engine/random.ts';
import { UsageError } from '../engine/errors.ts';

export interface BenchResult {
  backend: 'cpu' | 'webgpu';
  threads: number;
  prompt_tokens: number;
  gen_tokens: number;
  load_s: number;
  /** After the warm-up. */
  prefill_tok_s: number;
  /** The warm-up's prefill: the first run of the process. */
  prefill_cold_tok_s: number;
  decode_tok_s: number;
  /** Peak resident memory of the process after the prefill and decode, before any capture. */
  peak_rss_mb: number;
  /** Resident memory when the command started, before the model was opened: the runtime's own
   *  (Node, the TypeScript loader, the engine's code), so peak − start is what the model costs. */
  start_rss_mb: number;
  /** With --capture: the peak after the runs that record (the recorded activations included). */
  peak_rss_capture_mb?: number;
  /** CPU only: 'wasm' (WebAssembly SIMD) or 'js' (the twins). */
  kernels?: 'wasm' | 'js';
  /** With --capture: prefill tok/s without and with those hooks recorded (best of 3–10 each, alternating), and their time ratio. */
  prefill_plain_tok_s?: number;
  prefill_capture_tok_s?: number;
  capture_overhead?: number;
  /** WebGPU only: the adapter, and per decoded token the dispatches, submits and bytes read back. */
  adapter?: string;
  dispatches_per_token?: number;
  submits_per_token?: number;
  readback_bytes_per_token?: number;
}

export const bench: Command = {
  summary: 'Prefill and decode tokens per second and peak memory, on random token ids.',
  usage: 'glassbox bench MODEL [--backend cpu|webgpu] [--threads N] [--prompt-tokens 128] [--gen-tokens 32] [--capture HOOKS,...] [--json]',
  async run(argv) {
    const p = parse('bench', argv, {
      backend: { type: 'string' }, threads: { type: 'string' }, 'prompt-tokens': { type: 'string' },
      'gen-tokens': { type: 'string' }, tokenizer: { type: 'string' }, capture: { type: 'string' },
    });
    const capture = str(p, 'capture')?.split(',').filter((h) => h.length > 0);
    const backend = backendFlag(p);
    const startRss = process.memoryUsage().rss / 2 ** 20;
    const asked = p.values.threads === undefined ? undefined : num(p, 'threads', 1, { min: 1, max: 32, integer: true });
    const t0 = performance.now();
    const loaded = await loadModel(onePositional(p, 'bench'), str(p, 'tokenizer'), backend, { threads: asked });
    const cpu = loaded.session.cpuKernels;
    if (asked !== undefined && cpu.threads !== asked && backend === 'cpu') {
      throw new UsageError('--threads', `${asked} threads were asked for but ${cpu.reason ?? 'fewer are available'}`);
    }
    const threads = backend === 'cpu' ? cpu.threads : 1;
    const loadS = (performance.now() - t0) / 1000;
    const c = loaded.model.config;
    const promptTokens = num(p, 'prompt-tokens', 128, { min: 1, max: c.nCtx, integer: true });
    const genTokens = num(p, 'gen-tokens', 32, { min: 1, max: c.nCtx - promptTokens, integer: true });
    const rng = new Rng(1234);
    const randomPrompt = () => Array.from({ length: promptTokens }, () => Math.floor(rng.next() * c.vocabSize));
    const warmup = randomPrompt(), prompt = randomPrompt();

    const t0w = performance.now();
    await loaded.session.runAsync(warmup);
    const coldS = (performance.now() - t0w) / 1000;
    for await (const _ of generateAsync(loaded.session, warmup, { maxTokens: 1, temperature: 0, stopAtEos: false })) { /* warm-up */ }
    loaded.session.reset();

    const t1 = performance.now();
    await loaded.session.runAsync(prompt);
    const prefillS = (performance.now() - t1) / 1000;

    // Decode from the cached prompt: each step is one new position.
    const gpu = loaded.session.gpuContext;
    const before = gpu ? { ...gpu.stats } : null;
    const t2 = performance.now();
    let n = 0;
    for await (const _ of generateAsync(loaded.session, prompt, { maxTokens: genTokens, temperature: 0, stopAtEos: false })) n++;
    const decodeS = (performance.now() - t2) / 1000;
    const after = gpu ? { ...gpu.stats } : null;
    // the engine's own peak, before any recording (captured activations are the caller's memory)
    const peakRss = process.resourceUsage().maxRSS / 1024;

    // The cost of recording: the same prefill without and with the hooks, alternating, best of
    // each: 3 rounds, and up to 10 while they take less than 5 s in all (a small model's prefill
    // takes tens of milliseconds, and its first recording runs pay for compiling the recording
    // code and for collecting the garbage of the runs before).
    let plainS = Infinity, capturedS = Infinity;
    const tc = performance.now();
    for (let r = 0; capture && (r < 3 || (r < 10 && performance.now() - tc < 5000)); r++) {
      for (const spec of [undefined, capture]) {
        loaded.session.reset();
        const t = performance.now();
        await loaded.session.runAsync(prompt, { capture: spec });
        const s = (performance.now() - t) / 1000;
        if (spec) capturedS = Math.min(capturedS, s); else plainS = Math.min(plainS, s);
      }
    }

    const result: BenchResult = {
      backend: loaded.session.backend, threads, prompt_tokens: promptTokens, gen_tokens: n, load_s: round(loadS),
      prefill_tok_s: round(promptTokens / prefillS), prefill_cold_tok_s: round(promptTokens / coldS), decode_tok_s: round(n / decodeS),
      peak_rss_mb: round(peakRss), start_rss_mb: round(startRss),
    };
    if (backend === 'cpu') result.kernels = cpu.name;
    if (capture) {
      result.prefill_plain_tok_s = round(promptTokens / plainS);
      result.prefill_capture_tok_s = round(promptTokens / capturedS);
      result.capture_overhead = round(capturedS / plainS);
      result.peak_rss_capture_mb = round(process.resourceUsage().maxRSS / 1024);
    }
    if (gpu && before && after && n > 0) {
      result.adapter = gpu.caps.adapter;
      result.dispatches_per_token = round((after.dispatches - before.dispatches) / n);
      result.submits_per_token = round((after.submits - before.submits) / n);
      result.readback_bytes_per_token = round((after.readbackBytes - before.readbackBytes) / n);
    }
    if (flag(p, 'json')) console.log(JSON.stringify(result));
    else {
      console.log(`${loaded.model.sources[0]!.name} on ${result.backend}${result.kernels ? ` (${result.kernels}, ${threads} thread${threads > 1 ? 's' : ''})` : ''}: prefill ${result.prefill_tok_s} tok/s (${promptTokens} tokens; the first run ${result.prefill_cold_tok_s}), decode ${result.decode_tok_s} tok/s (${n} tokens), load ${result.load_s} s, peak RSS ${result.peak_rss_mb} MB (${round(result.peak_rss_mb - result.start_rss_mb)} MB above the ${result.start_rss_mb} MB at start)`);
      if (capture) console.log(`  capture of ${capture.join(', ')}: prefill ${result.prefill_capture_tok_s} tok/s vs ${result.prefill_plain_tok_s} without (×${result.capture_overhead} the time)`);
      if (result.adapter) console.log(`  adapter ${result.adapter}: ${result.dispatches_per_token} dispatches, ${result.submits_per_token} submits and ${result.readback_bytes_per_token} bytes read back per decoded token`);
    }
  },
};

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
