// Worker round trip (issue 5; BENCHMARKS.md "Worker round trip"): the time from a prompt edit to
// the slices an attention view (one layer's pattern, all heads) and a next-token view (the top 20
// of the last row) need being in the caller's hands, and the bytes that crossed for them.
//
// Node part (this script): random-weight GGUFs of the stories15M and TinyLlama-1.1B shapes from
// .cache/bench (synthesised when missing, as `npm run bench` does; stories15M with its context
// stretched from 256 to 512 positions, which changes no weight), run by the Engine
//   thread  — in the calling thread (what Node and the CLI use), and
//   worker  — in a worker_threads worker through comlink (test/bench/worker-roundtrip.worker.ts),
//             slices transferred: the same protocol as the browser's worker, over Node's ports.
// Two edits per prompt length: 'new' (a prompt sharing only BOS with the one before: every
// position recomputed) and 'last' (the last token changed: one position recomputed, the KV cache
// and recorded pattern of the rest reused), the latter repeated and the best kept.
//
//   node --import tsx test/bench/worker-roundtrip.ts [--shapes stories15M,tinyllama-1.1b]
//     [--tokens 16,128,512] [--modes thread,worker] [--repeats 3]
// The browser part (Chromium, CPU and WebGPU): test/bench/worker-roundtrip.browser.ts.

import { Worker } from 'node:worker_threads';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { serialize } from 'node:v8';
import { wrap, type Remote } from 'comlink';
import '../../src/worker/wire.ts';
import { Engine, type EngineApi } from '../../src/engine/api.ts';
import { shapeConfig, synthGgufStream } from '../../src/formats/synth.ts';
import type { TensorTypeName } from '../../src/formats/tensor.ts';
import { Rng } from '../../src/engine/random.ts';
import { diskResolver, nodeEndpoint } from './worker-roundtrip.worker.ts';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
const cacheDir = join(root, '.cache', 'bench');
const TYPES: Record<string, TensorTypeName> = { stories15M: 'Q8_0', 'tinyllama-1.1b': 'Q4_0' };

const { values } = parseArgs({ options: {
  shapes: { type: 'string', default: 'stories15M,tinyllama-1.1b' }, tokens: { type: 'string', default: '16,128,512' },
  modes: { type: 'string', default: 'thread,worker' }, repeats: { type: 'string', default: '3' },
} });
const shapes = values.shapes!.split(',');
const lengths = values.tokens!.split(',').map(Number);
const modes = values.modes!.split(',') as ('thread' | 'worker')[];
const repeats = Number(values.repeats);

/** The shape's config, its context stretched to hold the longest prompt (stories15M's is 256). */
function benchConfig(shape: string) {
  const c = shapeConfig(shape);
  return { ...c, nCtx: Math.max(c.nCtx, ...lengths) };
}

async function modelFile(shape: string): Promise<string> {
  const type = TYPES[shape] ?? 'Q8_0';
  const config = benchConfig(shape);
  const ctx = config.nCtx === shapeConfig(shape).nCtx ? '' : `-ctx${config.nCtx}`;
  const path = join(cacheDir, `${shape}${ctx}-${type}-seed1.gguf`);
  if (existsSync(path)) return path;
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${path}.part-${process.pid}`;
  const fh = await open(tmp, 'w');
  try {
    await synthGgufStream({ config, type, seed: 1, format: 'gguf' }, async (b) => { await fh.write(b); });
  } catch (e) {
    await fh.close();
    rmSync(tmp, { force: true });
    throw e;
  }
  await fh.close();
  renameSync(tmp, path);
  return path;
}

/** An engine in a worker_threads worker, behind comlink (the worker is loaded through tsx). */
function workerEngine(): { engine: Remote<Engine>; stop: () => Promise<number> } {
  // Node runs a worker's .ts only after tsx's loader is registered in it
  const url = pathToFileURL(join(root, 'test/bench/worker-roundtrip.worker.ts')).href;
  const tsx = pathToFileURL(join(root, 'node_modules/tsx/dist/esm/api/index.mjs')).href;
  const w = new Worker(`import(${JSON.stringify(tsx)}).then((t) => { t.register(); return import(${JSON.stringify(url)}); })`, { eval: true });
  return { engine: wrap<Engine>(nodeEndpoint(w)), stop: () => w.terminate() };
}

/** Bytes a value takes in a structured clone, typed arrays counted apart (they are transferred). */
function wireBytes(v: unknown): { cloned: number; transferred: number } {
  let transferred = 0;
  const strip = (x: unknown): unknown => {
    if (ArrayBuffer.isView(x)) { transferred += x.byteLength; return null; }
    if (Array.isArray(x)) return x.map(strip);
    if (x && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, y]) => [k, strip(y)]));
    return x;
  };
  const cloned = serialize(strip(v)).length;
  return { cloned, transferred };
}

interface Row {
  shape: string; mode: string; tokens: number; edit: 'new' | 'last';
  /** Edit → both slices in hand; of which the run() call, the slice calls, and the forward pass in the engine. */
  total_ms: number; run_ms: number; slices_ms: number; engine_ms: number;
  bytes_transferred: number; bytes_cloned: number;
}

async function measure(engine: EngineApi, shape: string, mode: string, layer: number, vocab: number, n: number, rng: Rng): Promise<Row[]> {
  const random = () => 3 + Math.floor(rng.next() * (vocab - 3));
  const prompt = [1, ...Array.from({ length: n - 1 }, random)];
  const once = async (tokens: number[], edit: 'new' | 'last'): Promise<Row> => {
    const t0 = performance.now();
    const h = await engine.run({ tokens, capture: `blocks.${layer}.attn.hook_pattern`, slot: 'cell' });
    const t1 = performance.now();
    const [att, top] = await Promise.all([engine.attention(h, { layer }), engine.topK(h, { k: 20 })]);
    const t2 = performance.now();
    // what came back to the caller: the handle (its tokens included) and the two slices
    const w = [h, att, top].map(wireBytes);
    return {
      shape, mode, tokens: n, edit, total_ms: t2 - t0, run_ms: t1 - t0, slices_ms: t2 - t1, engine_ms: h.ms,
      bytes_transferred: w.reduce((s, x) => s + x.transferred, 0), bytes_cloned: w.reduce((s, x) => s + x.cloned, 0),
    };
  };
  const rows = [await once(prompt, 'new')];
  let best: Row | null = null;
  for (let i = 0; i < repeats; i++) {
    const edited = [...prompt.slice(0, -1), random()];
    const r = await once(edited, 'last');
    if (!best || r.total_ms < best.total_ms) best = r;
  }
  rows.push(best!);
  return rows;
}

console.log(`worker round trip, ${new Date().toISOString().slice(0, 10)}; ${cpus()[0]?.model ?? '?'}, ${cpus().length} cores; load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
const rows: Row[] = [];
for (const shape of shapes) {
  const path = await modelFile(shape);
  const c = benchConfig(shape);
  const layer = c.nLayers >> 1;
  for (const mode of modes) {
    const w = mode === 'worker' ? workerEngine() : null;
    const engine = (w ? w.engine : new Engine({ resolveSource: diskResolver })) as unknown as EngineApi;
    await engine.load({ kind: 'local', paths: [path] }, { backend: 'cpu' });
    // warm-up (compiles the kernels and the slice code): a short prompt in another slot
    const warm = await engine.run({ tokens: [1, 5, 6, 7, 8, 9, 10, 11], capture: `blocks.${layer}.attn.hook_pattern`, slot: 'warm-up' });
    await Promise.all([engine.attention(warm, { layer }), engine.topK(warm, { k: 20 }), engine.release(warm)]);
    const rng = new Rng(7);
    for (const n of lengths) {
      for (const r of await measure(engine, shape, mode, layer, c.vocabSize, n, rng)) {
        rows.push(r);
        console.log(`${shape.padEnd(15)} ${mode.padEnd(6)} ${String(n).padStart(4)} tokens, edit ${r.edit.padEnd(4)}: ${r.total_ms.toFixed(1).padStart(9)} ms (run ${r.run_ms.toFixed(1)} of which forward ${r.engine_ms.toFixed(1)}, slices ${r.slices_ms.toFixed(1)}); ${(r.bytes_transferred / 1024).toFixed(1)} KiB transferred + ${(r.bytes_cloned / 1024).toFixed(1)} KiB cloned`);
      }
    }
    await w?.stop();
  }
}
console.log(JSON.stringify({ date: new Date().toISOString(), cpu: cpus()[0]?.model, cores: cpus().length, rows }));
