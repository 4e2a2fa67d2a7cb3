// Micro-benchmark of the WebAssembly matrix products (kernels/wasm) through the kernel set the
// engine uses (activation quantization and threads included), on TinyLlama-1.1B-shaped matrices:
//   decode: one token through the seven matrices of each of L layers (more bytes than the
//           last-level cache, so the weights come from DRAM), in GB/s of weights read;
//   prefill: P tokens through one layer's matrices, in GMAC/s (multiply-adds per second).
// Thread counts alternate within each repetition and the best of the repetitions is printed
// (the machine is shared: compare figures taken in one run, and look at the load average).
//
//   npm run build:wasm && node --import tsx test/bench/matvec.ts [--type Q4_0|Q8_0|Q4_1|Q5_0|Q5_1|Q4_K|Q5_K|Q6_K] [--threads 1,2]
//     [--layers 8] [--tokens 64] [--reps 5]
//
// The weights are random bytes with valid f16 scales: every block holds some levels (and the
// k-quants random sub-block scales), which is
// all the kernels' speed depends on (no model is read, so this runs in seconds).

import { loadavg, cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { WeightArena } from '../../src/engine/arena.ts';
import { getTensorType } from '../../src/formats/quant/index.ts';
import { byteSize, type Tensor, type TensorTypeName } from '../../src/formats/tensor.ts';
import { Rng } from '../../src/engine/random.ts';
import { WasmRuntime } from '../../kernels/wasm/runtime.ts';
import { wasmKernels, type WasmKernelSet } from '../../kernels/wasm/kernels.ts';

const { values } = parseArgs({
  options: { type: { type: 'string' }, threads: { type: 'string' }, layers: { type: 'string' }, tokens: { type: 'string' }, reps: { type: 'string' } },
});
const type = (values.type ?? 'Q4_0') as TensorTypeName;
const threadList = (values.threads ?? '1,2').split(',').map(Number);
const L = Number(values.layers ?? 8), P = Number(values.tokens ?? 64), REPS = Number(values.reps ?? 5);
// where each block's f16 scales lie (a min, stored as −d, at the second offset of Q4_1 / Q5_1)
const SCALES: Partial<Record<TensorTypeName, number[]>> = {
  Q4_0: [0], Q5_0: [0], Q8_0: [0], Q4_1: [0, 2], Q5_1: [0, 2], Q4_K: [0, 2], Q5_K: [0, 2], Q6_K: [208],
};
const scaleAt: number[] = SCALES[type] ?? [];
if (!scaleAt.length) throw new Error(`--type ${type}: one of ${Object.keys(SCALES).join(' ')}`);

const tt = getTensorType(type);
// one layer: wq, wk, wv, wo, w_gate, w_up, w_down  [rows, k]
const LAYER: [number, number][] = [[2048, 2048], [256, 2048], [256, 2048], [2048, 2048], [5632, 2048], [5632, 2048], [2048, 5632]];
const layerBytes = LAYER.reduce((s, [m, k]) => s + byteSize(tt, m * k), 0);
const arena = new WeightArena(L * layerBytes + (64 << 20), { shared: true });
const rng = new Rng(7);

/** A [m, k] weight of random bytes whose block scales (f16, at scaleAt) are 0.001..0.02 (Q4_1/Q5_1's min −d). */
function weight(m: number, k: number): Tensor {
  const bytes = byteSize(tt, m * k);
  const data = arena.bytes(arena.alloc(bytes), bytes);
  const words = new Uint32Array(data.buffer, data.byteOffset, bytes >> 2);
  for (let i = 0; i < words.length; i++) words[i] = (rng.next() * 2 ** 32) >>> 0;
  const f16 = (v: number) => { const u = new Uint32Array(Float32Array.of(v).buffer)[0]!; return ((((u >> 23) & 0xff) - 112) << 10) | ((u >> 13) & 0x3ff); };
  const withMin = type === 'Q4_1' || type === 'Q5_1';
  for (let o = 0; o < bytes; o += tt.blockBytes) {
    scaleAt.forEach((at, j) => {
      const h = f16(0.001 + rng.next() * 0.019) | (j > 0 && withMin ? 0x8000 : 0);
      data[o + at] = h & 255; data[o + at + 1] = h >> 8;
    });
  }
  return { name: `w${m}x${k}`, type, shape: [m, k], data };
}

const layers = Array.from({ length: L }, () => LAYER.map(([m, k]) => weight(m, k)));
const rt = WasmRuntime.of(arena);
if (!rt) throw new Error(`the WebAssembly kernels do not load: ${WasmRuntime.failure(arena)}`);
const sets = new Map<number, WasmKernelSet>();
for (const t of threadList) sets.set(t, wasmKernels(rt, { maxRows: P, maxK: 5632, maxOut: 5632, maxPositions: 16, threads: t }));
await Promise.all([...sets.values()].map((s) => s.ready()));
// activations and outputs in the arena (as the engine's are): no staging copies
const anySet = sets.values().next().value!;
const x = anySet.space.alloc(P * 5632), out = anySet.space.alloc(P * 5632);
for (let i = 0; i < x.length; i++) x[i] = rng.gaussian();

function decodePass(ks: WasmKernelSet): number {
  const t0 = performance.now();
  for (const layer of layers) for (const w of layer) ks.matmul(out, x, w, 1, 'llamacpp');
  return (performance.now() - t0) / 1000;
}
function prefillPass(ks: WasmKernelSet): number {
  const t0 = performance.now();
  for (const w of layers[0]!) ks.matmul(out, x, w, P, 'llamacpp');
  return (performance.now() - t0) / 1000;
}

const decodeBytes = L * layerBytes, prefillMacs = P * LAYER.reduce((s, [m, k]) => s + m * k, 0);
const best = new Map<string, number>();
const keep = (key: string, v: number) => best.set(key, Math.max(best.get(key) ?? 0, v));
console.log(`${type}: decode over ${L} layers (${(decodeBytes / 2 ** 20).toFixed(0)} MiB), prefill of ${P} tokens over one layer; ` +
  `${cpus()[0]?.model ?? '?'}, ${cpus().length} cores; load average ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
for (const [t, ks] of sets) { decodePass(ks); prefillPass(ks); }   // warm-up: compiled code, pages touched
for (let r = 0; r < REPS; r++) {
  for (const [t, ks] of sets) {
    keep(`decode ${t}`, decodeBytes / decodePass(ks) / 1e9);
    keep(`prefill ${t}`, prefillMacs / prefillPass(ks) / 1e9);
  }
}
for (const t of sets.keys()) {
  const d = best.get(`decode ${t}`)!, p = best.get(`prefill ${t}`)!;
  console.log(`  ${t} thread${t > 1 ? 's' : ''}: decode ${d.toFixed(2)} GB/s (${(d * 1e9 / decodeBytes * L / 22).toFixed(1)} TinyLlama layer stacks/s), prefill ${p.toFixed(1)} GMAC/s`);
}
console.log(`load average ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
for (const ks of sets.values()) ks.dispose();
rt.closeThreads();
