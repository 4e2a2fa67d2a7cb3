// glassbox bench MODEL: prefill and decode speed and peak memory of this engine on one model.
// `npm run bench` (test/bench/run.ts) runs it beside llama.cpp on the same files.

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
  prefill_tok_s: number;
  decode_tok_s: number;
  peak_rss_mb: number;
}

export const bench: Command = {
  summary: 'Prefill and decode tokens per second and peak memory, on random token ids.',
  usage: 'glassbox bench MODEL [--backend cpu|webgpu] [--threads N] [--prompt-tokens 128] [--gen-tokens 32] [--json]',
  async run(argv) {
    const p = parse('bench', argv, {
      backend: { type: 'string' }, threads: { type: 'string' }, 'prompt-tokens': { type: 'string' },
      'gen-tokens': { type: 'string' }, tokenizer: { type: 'string' },
    });
    const backend = backendFlag(p);
    const threads = num(p, 'threads', 1, { min: 1, max: 256, integer: true });
    if (threads !== 1) throw new UsageError('--threads', 'the CPU engine is single-threaded in this version', 'Use --threads 1');
    const t0 = performance.now();
    const loaded = await loadModel(onePositional(p, 'bench'), str(p, 'tokenizer'), backend);
    const loadS = (performance.now() - t0) / 1000;
    const c = loaded.model.config;
    const promptTokens = num(p, 'prompt-tokens', 128, { min: 1, max: c.nCtx, integer: true });
    const genTokens = num(p, 'gen-tokens', 32, { min: 1, max: c.nCtx - promptTokens, integer: true });
    const rng = new Rng(1234);
    const prompt = Array.from({ length: promptTokens }, () => Math.floor(rng.next() * c.vocabSize));

    const t1 = performance.now();
    await loaded.session.runAsync(prompt);
    const prefillS = (performance.now() - t1) / 1000;

    // Decode from the cached prompt: each step is one new position.
    const t2 = performance.now();
    let n = 0;
    for await (const _ of generateAsync(loaded.session, prompt, { maxTokens: genTokens, temperature: 0, stopAtEos: false })) n++;
    const decodeS = (performance.now() - t2) / 1000;

    const result: BenchResult = {
      backend: loaded.session.backend, threads, prompt_tokens: promptTokens, gen_tokens: n, load_s: round(loadS),
      prefill_tok_s: round(promptTokens / prefillS), decode_tok_s: round(n / decodeS),
      peak_rss_mb: round(process.resourceUsage().maxRSS / 1024),
    };
    if (flag(p, 'json')) console.log(JSON.stringify(result));
    else console.log(`${loaded.model.sources[0]!.name}: prefill ${result.prefill_tok_s} tok/s (${promptTokens} tokens), decode ${result.decode_tok_s} tok/s (${n} tokens), load ${result.load_s} s, peak RSS ${result.peak_rss_mb} MB`);
  },
};

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
