// llama.cpp's side of `npm run bench` (test/bench/run.ts): the same measurement as
// `glassbox bench FILE --json` — prefill tok/s of P prompt tokens, decode tok/s of G generated
// tokens (greedy), peak RSS — with node-llama-cpp on the CPU, in its own process so that its peak
// memory is its own. Prints one JSON line with the keys of glassbox bench. As there (and in
// llama-bench), the timed run follows an untimed warm-up: another prompt and one decoded token,
// then the sequence's history is cleared; the warm-up's prefill is prefill_cold_tok_s.
//
//   node test/bench/llamacpp-bench.mjs FILE.gguf [--prompt-tokens P] [--gen-tokens G] [--threads N]

import { parseArgs } from 'node:util';
import { loadLlama } from '../support/llamacpp.mjs';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { 'prompt-tokens': { type: 'string' }, 'gen-tokens': { type: 'string' }, threads: { type: 'string' } },
});
const file = positionals[0];
if (!file) {
  console.error('usage: node test/bench/llamacpp-bench.mjs FILE.gguf [--prompt-tokens P] [--gen-tokens G] [--threads N]');
  process.exit(2);
}
const P = Number(values['prompt-tokens'] ?? 128);
const G = Number(values['gen-tokens'] ?? 32);
const threads = Number(values.threads ?? 2);

// load_s counts reading the model and making the context, as glassbox's counts reading the model
// into its weight arena; not loading the llama.cpp library itself.
const llama = await loadLlama({ maxThreads: threads });
// the runtime's own memory (Node and the llama.cpp library), before the model: peak − start is the model's
const startRss = process.memoryUsage().rss / 2 ** 20;
const t0 = performance.now();
const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
// Room for the prompt, the generated tokens and one more (a full context would shift). One batch
// holds the whole prompt, as glassbox's prefill does. Batches are dispatched on the next tick
// rather than node-llama-cpp's default next event-loop cycle, which adds a timer's wait to every
// step and measures the JavaScript scheduler rather than llama.cpp.
const context = await model.createContext({ contextSize: P + G + 16, batchSize: Math.max(P, 1), threads, sequences: 1, batching: { dispatchSchedule: 'nextTick' } });
const sequence = context.getSequence();
const loadS = (performance.now() - t0) / 1000;

// Random ids from a fixed LCG, avoiding the control tokens 0..2 of the synthetic vocabulary.
const vocab = model.fileInfo.metadata?.tokenizer?.ggml?.tokens?.length ?? 32000;
let s = 1234;
const randomPrompt = () => Array.from({ length: P }, () => {
  s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
  return 3 + (s % (vocab - 3));
});
const warmup = randomPrompt(), prompt = randomPrompt();

/**
 * Prefills `ids` and decodes `gen` more tokens: evaluate() prefills and yields the first greedy
 * token; each later yield is one more decoded position. yieldEogToken keeps it from stopping at a
 * random model's EOS. Returns the seconds of the prefill and of the decoding.
 */
async function timed(ids, gen) {
  let n = 0;
  let prefillS = 0;
  const t1 = performance.now();
  let t2 = t1;
  for await (const _ of sequence.evaluate(ids, { temperature: 0, yieldEogToken: true })) {
    if (n === 0) {
      t2 = performance.now();
      prefillS = (t2 - t1) / 1000;
    }
    if (n === gen) break;
    n++;
  }
  return { prefillS, decodeS: (performance.now() - t2) / 1000 };
}

const cold = await timed(warmup, 1);
await sequence.clearHistory();
const { prefillS: tPrefill, decodeS } = await timed(prompt, G);

const round = (x) => Math.round(x * 100) / 100;
console.log(JSON.stringify({
  backend: 'llama.cpp-cpu', threads, prompt_tokens: P, gen_tokens: G, load_s: round(loadS),
  prefill_tok_s: round(P / tPrefill), prefill_cold_tok_s: round(P / cold.prefillS), decode_tok_s: round(G / decodeS),
  peak_rss_mb: round(process.resourceUsage().maxRSS / 1024), start_rss_mb: round(startRss),
}));
await context.dispose();
await model.dispose();
await llama.dispose();
