// Runs fuzz inputs in this thread: generate, check, time, guard, tally. main.ts runs this in a
// worker thread so that a hang or an out-of-memory can be caught and reported with its seed.

import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { BASES, getBase, repoRoot } from './corpus.ts';
import { installGuard, setCap, violations } from './guard.ts';
import { check, generate, inputBytes, KINDS, PropertyFailure, promptTokenizer, type Input, type Kind } from './targets.ts';

export interface RunOptions {
  seed: number;
  kinds: readonly Kind[];
  /** Inputs per kind. */
  perKind: number;
  /** Run only this input of each kind (reproducing a failure). */
  index?: number;
  /** Stop starting new inputs after this many seconds. */
  seconds?: number;
  /** An input that takes longer than this fails (default 1000 ms). */
  timeLimitMs?: number;
  /** Also run the saved regression inputs (regressions/*.json). */
  regressions?: boolean;
  /** Where the worker says what it is running: [kind index, input index, phase]. */
  progress?: Int32Array;
  /** Stop after this many failures (default 20). */
  maxFailures?: number;
}

export interface Failure { kind: Kind; seed: number; index: number; input: Input; message: string; ms: number; source?: string }
export interface KindCount { inputs: number; ok: number; rejected: Record<string, number>; ms: number; maxMs: number }
export interface Report { seed: number; counts: Partial<Record<Kind, KindCount>>; failures: Failure[]; regressions: number; ms: number }

const CAP_FLOOR = 32 << 20;

/** Builds every base and tokenizer first, so that no input pays for them. */
export async function warmUp(kinds: readonly Kind[]): Promise<void> {
  for (const k of kinds) {
    if (k === 'prompt') { for (const t of ['tok512', 'llama2', 'llama3']) await promptTokenizer(t); continue; }
    for (const id of BASES[k]!) getBase(id);
    generate(k, 0, 0); // computes the field maps
  }
}

export function loadRegressions(): { file: string; input: Input & { note?: string } }[] {
  const dir = join(repoRoot, 'test/fuzz/regressions');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith('.json')).sort()
    .map((f) => ({ file: f, input: JSON.parse(readFileSync(join(dir, f), 'utf8')) as Input & { note?: string } }));
}

async function runOne(input: Input, timeLimitMs: number): Promise<{ outcome?: string; error?: string; ms: number }> {
  setCap(CAP_FLOOR + 4 * inputBytes(input));
  const t0 = performance.now();
  let outcome: string | undefined, error: string | undefined;
  try {
    outcome = await check(input);
  } catch (e) {
    const err = e as Error;
    error = e instanceof PropertyFailure ? err.message
      : `unexpected ${err?.name ?? typeof e}: ${err?.message ?? String(e)}\n${(err?.stack ?? '').split('\n').slice(1, 6).join('\n')}`;
  }
  setCap(Infinity);
  const ms = performance.now() - t0;
  if (!error && violations.length > 0) error = `allocation beyond the input's sizes: ${violations[0]}`;
  // A second for an input of up to 4 MiB, proportionally more for the 9 MB tokenizer.json.
  const limit = timeLimitMs * Math.max(1, inputBytes(input) / (4 << 20));
  if (!error && ms > limit) error = `took ${ms.toFixed(0)} ms (limit ${limit.toFixed(0)} ms)`;
  return { outcome, error, ms };
}

export async function runFuzz(opts: RunOptions): Promise<Report> {
  installGuard();
  const t0 = performance.now();
  const limit = opts.timeLimitMs ?? 1000;
  const maxFailures = opts.maxFailures ?? 20;
  const report: Report = { seed: opts.seed, counts: {}, failures: [], regressions: 0, ms: 0 };
  const progress = opts.progress;
  if (progress) Atomics.store(progress, 2, 1); // warming up
  await warmUp(opts.kinds);
  if (progress) Atomics.store(progress, 2, 2);

  if (opts.regressions) {
    for (const { file, input } of loadRegressions()) {
      if (!opts.kinds.includes(input.kind)) continue;
      if (progress) { Atomics.store(progress, 0, KINDS.indexOf(input.kind)); Atomics.add(progress, 1, 1); }
      const r = await runOne(input, limit);
      report.regressions++;
      if (r.error) report.failures.push({ kind: input.kind, seed: opts.seed, index: -1, input, message: r.error, ms: r.ms, source: `regressions/${file}` });
    }
  }

  for (const k of opts.kinds) report.counts[k] = { inputs: 0, ok: 0, rejected: {}, ms: 0, maxMs: 0 };
  const first = opts.index ?? 0, end = opts.index !== undefined ? opts.index + 1 : opts.perKind;
  outer: for (let i = first; i < end; i++) {
    for (const [ki, k] of opts.kinds.entries()) {
      if (opts.seconds !== undefined && performance.now() - t0 > opts.seconds * 1000) break outer;
      if (report.failures.length >= maxFailures) break outer;
      if (progress) { Atomics.store(progress, 0, KINDS.indexOf(k)); Atomics.store(progress, 1, i); }
      void ki;
      const input = generate(k, opts.seed, i);
      const r = await runOne(input, limit);
      const c = report.counts[k]!;
      c.inputs++;
      c.ms += r.ms;
      c.maxMs = Math.max(c.maxMs, r.ms);
      if (r.error) report.failures.push({ kind: k, seed: opts.seed, index: i, input, message: r.error, ms: r.ms });
      else if (r.outcome === 'ok') c.ok++;
      else c.rejected[r.outcome!] = (c.rejected[r.outcome!] ?? 0) + 1;
    }
  }
  report.ms = performance.now() - t0;
  return report;
}

/** One line per failure, with what reproduces it. */
export function describeFailure(f: Failure): string {
  const recipe = JSON.stringify(f.input, (_k, v) => (typeof v === 'string' && v.length > 200 ? `${v.slice(0, 200)}…(${v.length})` : v));
  const how = f.source ? `regression ${f.source}` : `reproduce: npm run fuzz -- --seed ${f.seed} --kind ${f.kind} --index ${f.index}`;
  return `FAIL ${f.kind} seed ${f.seed} input ${f.index} (${f.ms.toFixed(0)} ms): ${f.message}\n  ${how}\n  input: ${recipe.slice(0, 1500)}`;
}
