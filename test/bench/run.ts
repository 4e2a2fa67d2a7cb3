// `npm run bench`: glassbox and llama.cpp (node-llama-cpp, installed on demand into
// .cache/llamacpp by test/support/llamacpp.mjs) on the same random-weight GGUFs, one process
// each (so that each peak RSS is its own), in one run:
//   stories15M shape, F32 and Q8_0       P=128 prompt tokens, G=16 generated
//   TinyLlama-1.1B shape, Q4_0 and Q8_0  P=32, G=8 (the plain-JS engine takes seconds a token)
// The models are synthesised once into .cache/bench/ and reused. Prints a table with each
// figure and the ratio glassbox / llama.cpp, then one JSON line.
//
// The machine is shared and small (2 cores): llama.cpp's threads wait for each other at every
// step, so one busy core can slow it tenfold (measured here: 27 and 1.2 tok/s a few seconds
// apart). Each measurement is therefore repeated (--runs, default 5; glassbox on TinyLlama once,
// it takes minutes), the best run is reported in the table and every run in the JSON line, and
// the load average is printed before and after.
//
//   npm run bench [-- --quick] [-- --prompt-tokens P] [-- --gen-tokens G]
//   --quick: the stories15M models only. --prompt-tokens/--gen-tokens: for every model.
//   --runs N: repeat each measurement N times and keep the best (default 3).

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { shapeConfig, synthGgufStream } from '../../src/formats/synth.ts';
import type { TensorTypeName } from '../../src/formats/tensor.ts';
import { ensureLlamaCpp, LLAMACPP_VERSION } from '../support/llamacpp.mjs';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
const cacheDir = join(root, '.cache', 'bench');
const SEED = 1;
const LLAMA_THREADS = 2;

interface Model { shape: string; type: TensorTypeName; prompt: number; gen: number }
const MODELS: Model[] = [
  { shape: 'stories15M', type: 'F32', prompt: 128, gen: 16 },
  { shape: 'stories15M', type: 'Q8_0', prompt: 128, gen: 16 },
  { shape: 'tinyllama-1.1b', type: 'Q4_0', prompt: 32, gen: 8 },
  { shape: 'tinyllama-1.1b', type: 'Q8_0', prompt: 32, gen: 8 },
];

interface Figures { threads: number; load_s: number; prefill_tok_s: number; decode_tok_s: number; peak_rss_mb: number }

const { values } = parseArgs({
  options: { quick: { type: 'boolean' }, 'prompt-tokens': { type: 'string' }, 'gen-tokens': { type: 'string' }, runs: { type: 'string' } },
});
const positive = (s: string | undefined, flag: string): number | undefined => {
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be a positive integer, not '${s}'`);
  return n;
};
const promptOverride = positive(values['prompt-tokens'], '--prompt-tokens');
const genOverride = positive(values['gen-tokens'], '--gen-tokens');
const RUNS = positive(values.runs, '--runs') ?? 5;
const models = MODELS.filter((m) => !values.quick || m.shape === 'stories15M')
  .map((m) => ({ ...m, prompt: promptOverride ?? m.prompt, gen: genOverride ?? m.gen }));

/** The model's GGUF in .cache/bench, synthesised (streamed, with progress) when missing. */
async function modelFile(m: Model): Promise<string> {
  const path = join(cacheDir, `${m.shape}-${m.type}-seed${SEED}.gguf`);
  if (existsSync(path)) return path;
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${path}.part-${process.pid}`;
  const fh = await open(tmp, 'w');
  const t0 = performance.now();
  let written = 0;
  let shown = -1;
  try {
    // synthGgufStream reports the total size only at the end; the tensor sizes are known up front
    // but not exported, so progress is shown in MB written.
    await synthGgufStream({ config: shapeConfig(m.shape), type: m.type, seed: SEED, format: 'gguf' }, async (b) => {
      await fh.write(b);
      written += b.length;
      const mb = Math.floor(written / 2 ** 20 / 100);
      if (mb !== shown) {
        shown = mb;
        process.stdout.write(`\r  synth ${m.shape} ${m.type}: ${(written / 2 ** 20).toFixed(0)} MB, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
      }
    });
  } catch (e) {
    await fh.close();
    rmSync(tmp, { force: true });
    throw e;
  }
  await fh.close();
  renameSync(tmp, path);
  console.log(`\r  synth ${m.shape} ${m.type}: ${(written / 2 ** 20).toFixed(0)} MB in ${((performance.now() - t0) / 1000).toFixed(0)} s → ${path}`);
  return path;
}

/** Runs a command, returns the JSON object on its last stdout line. */
function runJson(cmd: string, args: string[]): Promise<Record<string, number>> {
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

const pick = (o: Record<string, number>): Figures => ({
  threads: o.threads!, load_s: o.load_s!, prefill_tok_s: o.prefill_tok_s!, decode_tok_s: o.decode_tok_s!, peak_rss_mb: o.peak_rss_mb!,
});

/** The best of `runs` runs, figure by figure (the least disturbed by other work on the machine). */
async function best(runs: number, cmd: string, args: string[]): Promise<Figures & { runs: Figures[] }> {
  const all: Figures[] = [];
  for (let i = 0; i < runs; i++) all.push(pick(await runJson(cmd, args)));
  return {
    runs: all,
    threads: all[0]!.threads,
    load_s: Math.min(...all.map((f) => f.load_s)),
    prefill_tok_s: Math.max(...all.map((f) => f.prefill_tok_s)),
    decode_tok_s: Math.max(...all.map((f) => f.decode_tok_s)),
    peak_rss_mb: Math.min(...all.map((f) => f.peak_rss_mb)),
  };
}

console.log(`glassbox vs llama.cpp (node-llama-cpp ${LLAMACPP_VERSION}, CPU, ${LLAMA_THREADS} threads); glassbox's CPU engine is single-threaded.`);
console.log(`Defaults: stories15M P=128 G=16, TinyLlama P=32 G=8 (plain JavaScript takes seconds per TinyLlama token).`);
console.log(`Best of ${RUNS} runs per figure (glassbox on TinyLlama: 1 run); every run is listed below the table.`);
console.log(`Machine: ${cpus()[0]?.model ?? '?'}, ${cpus().length} cores; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
await ensureLlamaCpp();

const rows: { model: string; prompt: number; gen: number; glassbox: Figures & { runs: Figures[] }; llamacpp: Figures & { runs: Figures[] } }[] = [];
for (const m of models) {
  const file = await modelFile(m);
  const flags = ['--prompt-tokens', String(m.prompt), '--gen-tokens', String(m.gen)];
  const name = `${m.shape} ${m.type}`;
  const gRuns = m.shape === 'stories15M' ? RUNS : 1;
  const t0 = performance.now();
  process.stdout.write(`  ${name}: glassbox ×${gRuns} ...`);
  const g = await best(gRuns, process.execPath, ['src/cli/glassbox.mjs', 'bench', file, '--json', ...flags]);
  process.stdout.write(` llama.cpp ×${RUNS} ...`);
  const l = await best(RUNS, process.execPath, ['test/bench/llamacpp-bench.mjs', file, ...flags, '--threads', String(LLAMA_THREADS)]);
  console.log(` done (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  rows.push({ model: name, prompt: m.prompt, gen: m.gen, glassbox: g, llamacpp: l });
}

// ---- the table (Markdown, ready for BENCHMARKS.md) ----
const f = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(a / b >= 1 ? 2 : 3) : '–');
console.log('');
console.log('| model | P / G | engine | threads | load s | prefill tok/s | decode tok/s | peak RSS MB |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  const { glassbox: g, llamacpp: l } = r;
  console.log(`| ${r.model} | ${r.prompt} / ${r.gen} | glassbox | ${g.threads} | ${f(g.load_s)} | ${f(g.prefill_tok_s)} | ${f(g.decode_tok_s)} | ${f(g.peak_rss_mb)} |`);
  console.log(`| | | llama.cpp | ${l.threads} | ${f(l.load_s)} | ${f(l.prefill_tok_s)} | ${f(l.decode_tok_s)} | ${f(l.peak_rss_mb)} |`);
  console.log(`| | | ratio glassbox / llama.cpp | | ${ratio(g.load_s, l.load_s)} | ${ratio(g.prefill_tok_s, l.prefill_tok_s)} | ${ratio(g.decode_tok_s, l.decode_tok_s)} | ${ratio(g.peak_rss_mb, l.peak_rss_mb)} |`);
}
console.log('');
console.log('Every run (prefill / decode tok/s):');
for (const r of rows) {
  const list = (x: { runs: Figures[] }) => x.runs.map((o) => `${f(o.prefill_tok_s)}/${f(o.decode_tok_s)}`).join(', ');
  console.log(`  ${r.model}: glassbox ${list(r.glassbox)}; llama.cpp ${list(r.llamacpp)}`);
}
console.log('');
console.log(`load average after: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log(JSON.stringify({ bench: 'forward-cpu', llamacpp: LLAMACPP_VERSION, runs: RUNS, cpu: cpus()[0]?.model ?? null, cores: cpus().length, results: rows }));
