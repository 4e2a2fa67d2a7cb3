// argmax and top-k on every backend. Tolerance: exact. Selection does no arithmetic: the GPU must
// return the same ids as the CPU twin, and top-k values are the logits themselves (read by id).
// Inputs: large magnitudes, −inf, NaN, planted ties (the lower index must win), −0 vs +0. The lens
// rows run on the WebAssembly kernels too (kernels/wasm/lens.as.ts), held to the GPU's tolerance.
import { expect } from 'chai';
import { argmax, lensRows, NONE, topK, type LensRowsResult } from './argmax.cpu.ts';
import { encodeArgmax, encodeLensRows, encodeTopK, LENS_STATS_WORDS, prepareArgmax, prepareLensRows, prepareTopK } from './argmax.gpu.ts';
import { gpuOrSkip, seededValues } from '../../test/support/gpu.ts';
import { packF32, submitChecked } from '../../test/support/gpu-trial.ts';
import type { GpuContext } from '../../src/engine/gpu/context.ts';
import { WeightArena } from '../../src/engine/arena.ts';
import { WasmRuntime } from '../wasm/runtime.ts';
import { wasmKernels, type WasmKernelSet } from '../wasm/kernels.ts';

type Backend = 'cpu' | 'webgpu';
const BACKENDS: Backend[] = ['cpu', 'webgpu'];
const LENS_BACKENDS: (Backend | 'wasm')[] = [...BACKENDS, 'wasm'];

/** A WebAssembly kernel set (threads when the page is cross-origin isolated), made once. */
let wasmSet: Promise<WasmKernelSet> | null = null;
function wasmKernelSet(): Promise<WasmKernelSet> {
  return wasmSet ??= (async () => {
    const arena = new WeightArena(1 << 16, { shared: globalThis.crossOriginIsolated === true });
    if (!await WasmRuntime.preload(arena)) throw new Error(`the WebAssembly kernels did not load: ${WasmRuntime.failure(arena)}`);
    const ks = wasmKernels(WasmRuntime.of(arena)!, { maxRows: 16, maxK: 64, maxOut: 1024, maxPositions: 16, threads: globalThis.crossOriginIsolated ? 3 : 1 });
    await ks.ready();
    return ks;
  })();
}

async function runArgmax(backend: Backend, ctx: GpuContext | null, x: Float32Array, rows: number, cols: number): Promise<number[]> {
  if (backend === 'cpu') {
    const out = new Uint32Array(rows);
    argmax(out, x, rows, cols);
    return Array.from(out);
  }
  const g = ctx!;
  await prepareArgmax(g);
  const { refs: [, rx] } = packF32(g, [new Float32Array(1), x]);
  const out = g.buffer(rows * 4);
  const [r] = await submitChecked(g, (step) => {
    encodeArgmax(g, step, out, rx!, rows, cols);
    return [step.read(out, 0, rows * 4)];
  });
  g.release(out);
  return Array.from(new Uint32Array(r!));
}

async function runTopK(backend: Backend, ctx: GpuContext | null, x: Float32Array, k: number): Promise<{ ids: number[]; values: number[] }> {
  if (backend === 'cpu') {
    const t = topK(x, x.length, k);
    return { ids: Array.from(t.ids), values: Array.from(t.values) };
  }
  const g = ctx!;
  await prepareTopK(g);
  const { refs: [, rx] } = packF32(g, [new Float32Array(3), x]);
  const ids = g.buffer(k * 4), vals = g.buffer(k * 4);
  const [ri, rv] = await submitChecked(g, (step) => {
    encodeTopK(g, step, ids, vals, rx!, x.length, k);
    return [step.read(ids, 0, k * 4), step.read(vals, 0, k * 4)];
  });
  g.release(ids); g.release(vals);
  return { ids: Array.from(new Uint32Array(ri!)), values: Array.from(new Float32Array(rv!)) };
}

async function runLensRows(backend: Backend | 'wasm', ctx: GpuContext | null, x: Float32Array, rows: number, cols: number, k: number, target: number | null): Promise<LensRowsResult> {
  if (backend === 'cpu') return lensRows(x, rows, cols, k, target);
  if (backend === 'wasm') {
    const ks = await wasmKernelSet();
    const a = ks.space.alloc(x.length);                                // the kernel reads rows in its memory
    try {
      const inMemory = ks.space.current(a);
      inMemory.set(x);
      return ks.lensRows(inMemory, rows, cols, k, target);
    } finally {
      ks.space.free(a);
    }
  }
  const g = ctx!;
  await prepareLensRows(g);
  const { refs: [, rx] } = packF32(g, [new Float32Array(5), x]);
  const ids = g.buffer(rows * k * 4), vals = g.buffer(rows * k * 4), stats = g.buffer(rows * LENS_STATS_WORDS * 4);
  const [ri, rv, rs] = await submitChecked(g, (step) => {
    encodeLensRows(g, step, ids, vals, stats, rx!, rows, cols, k, target);
    return [step.read(ids, 0, rows * k * 4), step.read(vals, 0, rows * k * 4), step.read(stats, 0, rows * LENS_STATS_WORDS * 4)];
  });
  for (const b of [ids, vals, stats]) g.release(b);
  const words = new Uint32Array(rs!), bits = new Float32Array(rs!);
  const pick = (j: number) => Array.from({ length: rows }, (_, r) => r * LENS_STATS_WORDS + j);
  return {
    ids: new Uint32Array(ri!), values: new Float32Array(rv!),
    sums: Float32Array.from(pick(0), (i) => bits[i]!), ranks: Uint32Array.from(pick(1), (i) => words[i]!), targetValues: Float32Array.from(pick(2), (i) => bits[i]!),
  };
}

/** Definition by a full sort (value descending, lower id first, NaN dropped): the reference for the CPU twin. */
function sorted(x: Float32Array): number[] {
  return Array.from(x.keys()).filter((i) => !Number.isNaN(x[i]!)).sort((a, b) => (x[b]! - x[a]!) || (a - b));
}

/** Seeded logits with −inf, NaN and a tie for the maximum planted at a higher and a lower index. */
function logits(rows: number, cols: number, seed: number): Float32Array {
  const x = seededValues(rows * cols, seed, 10), coin = seededValues(rows * cols, seed + 1);
  for (let i = 0; i < x.length; i++) {
    if (coin[i]! > 2.5) x[i] = -Infinity;
    else if (coin[i]! < -2.5) x[i] = Number.NaN;
  }
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * cols, (r + 1) * cols);
    const top = sorted(row)[0]!;
    row[Math.min(cols - 1, top + 1 + (r % 3))] = row[top]!;             // a later tie: must lose
    if (r % 2 === 1 && top > 0) row[Math.floor(top / 2)] = row[top]!;   // an earlier tie: must win
  }
  return x;
}

describe('argmax and top-k', () => {
  for (const backend of BACKENDS) {
    it(`[${backend}] argmax seeded trial: odd sizes, ties, −inf, NaN, −0, all −inf and all NaN rows`, async function () {
      const ctx = backend === 'webgpu' ? await gpuOrSkip(this) : null;
      for (const [rows, cols, seed] of [[7, 5003, 51], [3, 32011, 52], [300, 7, 53]] as const) {
        const x = logits(rows, cols, seed);
        x.fill(-Infinity, 0, cols);                         // row 0: all −inf → 0
        x.fill(Number.NaN, cols, 2 * cols);                 // row 1: all NaN → 0
        x.fill(-5, 2 * cols, 3 * cols); x[2 * cols + 3] = -0; x[2 * cols + 4] = 0;   // −0 = +0: index 3
        const got = await runArgmax(backend, ctx, x, rows, cols);
        const want: number[] = [];
        if (backend === 'cpu') for (let r = 0; r < rows; r++) want.push(sorted(x.subarray(r * cols, (r + 1) * cols))[0] ?? 0);
        else want.push(...await runArgmax('cpu', null, x, rows, cols));
        expect(got, `${backend} ${rows}x${cols}`).to.deep.equal(want);
        expect(got.slice(0, 3)).to.deep.equal([0, 0, Math.min(3, cols - 1)]);
      }
    });

    it(`[${backend}] top-k seeded trial: vocabulary-sized row, k up to 64, ties, NaN padding`, async function () {
      const ctx = backend === 'webgpu' ? await gpuOrSkip(this) : null;
      const tied = seededValues(300, 54, 1).map((v) => Math.round(v * 2));  // many ties
      const withNaN = new Float32Array([1, Number.NaN, -Infinity, Number.NaN, 2, Number.NaN]);
      for (const [x, k] of [[logits(1, 50021, 55), 64], [logits(1, 8193, 56), 33], [tied, 7], [tied.subarray(0, 5), 5], [withNaN, 5], [logits(1, 9, 57), 1]] as const) {
        const got = await runTopK(backend, ctx, x, k);
        let want: { ids: number[]; values: number[] };
        if (backend === 'cpu') {
          const ids = sorted(x).slice(0, k);
          want = { ids: ids.concat(Array(k - ids.length).fill(NONE)), values: ids.map((i) => x[i]!).concat(Array(k - ids.length).fill(Number.NaN)) };
        } else {
          want = await runTopK('cpu', null, x, k);
        }
        expect(got.ids, `${backend} ids, cols=${x.length} k=${k}`).to.deep.equal(want.ids);
        expect(got.values, `${backend} values, cols=${x.length} k=${k}`).to.deep.equal(want.values);
      }
    });

    it(`[${backend}] fixed small case`, async function () {
      const ctx = backend === 'webgpu' ? await gpuOrSkip(this) : null;
      const x = new Float32Array([3, 9, -1, 9, Number.NaN, 4, -Infinity, 4]);
      expect(await runArgmax(backend, ctx, x, 2, 4)).to.deep.equal([1, 1]);
      expect(await runTopK(backend, ctx, x, 5)).to.deep.equal({ ids: [1, 3, 5, 7, 0], values: [9, 9, 4, 4, 3] });
      expect(await runTopK(backend, ctx, x, 8)).to.deep.equal({ ids: [1, 3, 5, 7, 0, 2, 6, NONE], values: [9, 9, 4, 4, 3, -1, -Infinity, Number.NaN] });
    });
  }

  // the lens rows also have a WebAssembly kernel (kernels/wasm/lens.as.ts): the same trials
  for (const backend of LENS_BACKENDS) {
    it(`[${backend}] lens rows seeded trial: per row the top k, Σ exp(v − max) and the target's rank and value (ties, −inf, NaN, all −inf and all NaN rows)`, async function () {
      const ctx = backend === 'webgpu' ? await gpuOrSkip(this) : null;
      for (const [rows, cols, k, seed] of [[3, 32011, 64, 61], [70, 257, 5, 62], [5, 4099, 1, 63]] as const) {
        const x = logits(rows, cols, seed);
        x.fill(-Infinity, 0, cols);                                        // row 0: all −inf
        x.fill(Number.NaN, cols, 2 * cols);                                // row 1: all NaN
        const top2 = sorted(x.subarray(2 * cols, 3 * cols));
        for (const target of [null, 0, cols - 1, top2[0]!, top2[Math.min(top2.length - 1, 40)]!]) {
          const got = await runLensRows(backend, ctx, x, rows, cols, k, target);
          const what = `${backend} ${rows}x${cols} k=${k} target=${target}`;
          if (backend === 'cpu') {
            // the definition: a full sort for ids, ranks and values; the sum term by term
            for (let r = 0; r < rows; r++) {
              const row = x.subarray(r * cols, (r + 1) * cols), order = sorted(row);
              const ids = order.slice(0, k);
              expect(Array.from(got.ids.subarray(r * k, (r + 1) * k)), `${what} row ${r} ids`).to.deep.equal(ids.concat(Array(k - ids.length).fill(NONE)));
              const max = row[order[0] ?? 0]!;
              let sum = 0;
              for (const v of row) if (v > -Infinity && max > -Infinity) sum += Math.exp(v - max);
              expect(got.sums[r], `${what} row ${r} sum`).to.equal(Math.fround(sum));
              if (target !== null && !Number.isNaN(row[target]!)) expect(got.ranks[r], `${what} row ${r} rank`).to.equal(order.indexOf(target));
              expect(got.targetValues[r]).to.deep.equal(target === null ? 0 : row[target]!);
            }
          } else {
            const want = await runLensRows('cpu', null, x, rows, cols, k, target);
            expect(got.ids, `${what} ids`).to.deep.equal(want.ids);
            expect(got.values, `${what} values`).to.deep.equal(want.values);
            expect(got.ranks, `${what} ranks`).to.deep.equal(want.ranks);
            expect(got.targetValues, `${what} target values`).to.deep.equal(want.targetValues);
            for (let r = 0; r < rows; r++) expect(Math.abs(got.sums[r]! - want.sums[r]!), `${what} row ${r} sum`).to.be.at.most(1e-5 * want.sums[r]!);
          }
        }
        expect(Array.from((await runLensRows(backend, ctx, x, rows, cols, k, null)).sums.subarray(0, 2)), 'the all −inf and all NaN rows sum to 0').to.deep.equal([0, 0]);
      }
    });
  }
});
