// `npm run fuzz -- [--seed S] [--kind gguf,notebook] [--count N] [--seconds T] [--index I]`
//
// Runs the fuzzer in a worker thread and watches it: an input that runs past the hang limit, or a
// worker that dies (out of memory), is reported with its seed, kind and index like any other
// failure. --count is per kind; --index runs just one input (to reproduce a failure).

import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { describeFailure, runFuzz, type Report, type RunOptions } from './runner.ts';
import { generate, KINDS, type Kind } from './targets.ts';
import { repoRoot } from './corpus.ts';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface FuzzOptions extends Omit<RunOptions, 'progress'> {
  /** An input still running after this long is a hang (default 10 s). */
  hangMs?: number;
  /** Worker heap limit in MB (default 2048). */
  heapMb?: number;
}

const workerUrl = new URL('./worker.ts', import.meta.url).href;

export function fuzzInWorker(opts: FuzzOptions): Promise<Report> {
  const sab = new SharedArrayBuffer(12);
  const progress = new Int32Array(sab);
  const tsx = createRequire(import.meta.url).resolve('tsx/esm/api');
  // tsx's loader must be registered in the worker too (the .ts files are not plain JavaScript).
  const code = `import(${JSON.stringify(new URL(`file://${tsx}`).href.replace(/\.cjs$/, '.mjs'))}).then((t) => { t.register(); return import(${JSON.stringify(workerUrl)}); })`;
  const { hangMs = 10_000, heapMb = 2048, ...run } = opts;
  const w = new Worker(code, { eval: true, workerData: { opts: run, progress: sab }, resourceLimits: { maxOldGenerationSizeMb: heapMb } });
  return new Promise((resolve, reject) => {
    let last = '', since = Date.now(), done = false;
    const stuck = (why: string): Report => {
      const kind = KINDS[Atomics.load(progress, 0)] as Kind;
      const index = Atomics.load(progress, 1);
      return { seed: opts.seed, counts: {}, regressions: 0, ms: 0, failures: [{ kind, seed: opts.seed, index, input: { kind }, message: why, ms: Date.now() - since }] };
    };
    const timer = setInterval(() => {
      const now = `${Atomics.load(progress, 0)}:${Atomics.load(progress, 1)}:${Atomics.load(progress, 2)}`;
      if (now !== last) { last = now; since = Date.now(); return; }
      const warming = Atomics.load(progress, 2) < 2;
      if (Date.now() - since > (warming ? 120_000 : hangMs)) {
        done = true;
        clearInterval(timer);
        void w.terminate();
        resolve(stuck(warming ? 'building the corpus did not finish' : `no answer after ${hangMs} ms: a hang`));
      }
    }, 100);
    w.on('message', (r: Report) => { done = true; clearInterval(timer); void w.terminate(); resolve(r); });
    w.on('error', (e) => {
      if (done) return;
      done = true;
      clearInterval(timer);
      if ((e as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY') resolve(stuck(`the worker ran out of memory (${heapMb} MB heap)`));
      else reject(e);
    });
    w.on('exit', (code) => { if (!done) { done = true; clearInterval(timer); resolve(stuck(`the worker exited with code ${code}`)); } });
  });
}

export function formatReport(r: Report): string {
  const lines = [`seed ${r.seed}: ${(r.ms / 1000).toFixed(1)} s, ${r.regressions} regression inputs`];
  let total = 0;
  for (const [k, c] of Object.entries(r.counts)) {
    total += c.inputs;
    const rej = Object.entries(c.rejected).sort((a, b) => b[1] - a[1]).map(([n, x]) => `${n} ${x}`).join(', ');
    lines.push(`  ${k.padEnd(15)} ${String(c.inputs).padStart(7)} inputs  ${(c.ms / 1000).toFixed(1).padStart(6)} s  (slowest ${c.maxMs.toFixed(0)} ms)  loaded ${c.ok}${rej ? `; refused: ${rej}` : ''}`);
  }
  lines.push(`  total ${total} inputs, ${r.failures.length} failures`);
  for (const f of r.failures) lines.push(describeFailure(f));
  return lines.join('\n');
}

function parseArgs(argv: string[]): FuzzOptions & { inline: boolean } {
  const get = (name: string) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1] : undefined; };
  const num = (name: string) => { const v = get(name); return v === undefined ? undefined : Number(v); };
  const kinds = (get('kind')?.split(',') ?? [...KINDS]) as Kind[];
  for (const k of kinds) if (!KINDS.includes(k)) throw new Error(`--kind ${k}: not one of ${KINDS.join(', ')}`);
  const seed = num('seed') ?? (Date.now() % 2 ** 31);
  const count = num('count') ?? 100_000;
  return {
    seed, kinds, perKind: get('kind') ? count : Math.ceil(count / kinds.length), index: num('index'), seconds: num('seconds'),
    timeLimitMs: num('time-limit-ms'), hangMs: num('hang-ms'), regressions: !argv.includes('--no-regressions'),
    inline: argv.includes('--inline'),
  };
}

/** `--save NAME --note TEXT` with `--kind K --index I`: keeps that input as regressions/NAME.json. */
function save(opts: FuzzOptions, name: string, note: string): void {
  const input = generate(opts.kinds[0]!, opts.seed, opts.index!);
  const path = join(repoRoot, 'test/fuzz/regressions', `${name}.json`);
  writeFileSync(path, JSON.stringify({ note, found: `seed ${opts.seed}, kind ${input.kind}, input ${opts.index}`, ...input }, null, 1) + '\n');
  console.log(`saved ${path}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const argv = process.argv.slice(2);
  const { inline, ...opts } = parseArgs(argv);
  const name = argv.includes('--save') ? argv[argv.indexOf('--save') + 1]! : null;
  if (name !== null) {
    if (opts.index === undefined || opts.kinds.length !== 1) throw new Error('--save needs --kind K --index I');
    save(opts, name, argv.includes('--note') ? argv[argv.indexOf('--note') + 1]! : '');
  }
  console.log(`fuzzing ${opts.kinds.join(', ')}: seed ${opts.seed}, ${opts.index !== undefined ? `input ${opts.index}` : `${opts.perKind} inputs per kind`}${opts.seconds ? `, at most ${opts.seconds} s` : ''}`);
  const report = inline ? await runFuzz(opts) : await fuzzInWorker(opts);
  console.log(formatReport(report));
  process.exitCode = report.failures.length > 0 ? 1 : 0;
}
