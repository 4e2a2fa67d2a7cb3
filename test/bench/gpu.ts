// Micro-benchmark of the WebGPU path in Node (the `webgpu` package, Dawn), for a real GPU:
//   round trip: one step with one small dispatch and a 4-byte readback, submitted and awaited —
//     the fixed cost every decoded token pays;
//   encode: the CPU time to record one dispatch (bind group, uniforms), from a 256-dispatch step;
//   matvec: R dispatches of one weight matrix with n = 1 in one step; the time per dispatch is
//     (T(R) − T(1)) / (R − 1), which leaves out the round trip, and is given as GB/s of weights
//     read — against the peer, the GPU's memory bandwidth, which the caller measures in the same
//     run (`--bandwidth GBPS`, e.g. from a device-to-device copy in CUDA) when it can;
//   prefill: the same with n = 128 tokens, in GFLOP/s.
// Shapes are Llama-3.2-1B's (d 2048, ffn 8192, vocab 128256). The weights are random bytes with
// valid f16 scales, so no model file is needed.
//
//   npm install --no-save webgpu
//   node --import tsx test/bench/gpu.ts [--types Q4_0,Q8_0,F32] [--reps 5] [--bandwidth 2900] [--json] [--smoke]

import { parseArgs } from 'node:util';
import { nodeGpu } from '../../src/engine/gpu/node.ts';
import { acquireDevice } from '../../src/engine/gpu/device.ts';
import { GpuContext } from '../../src/engine/gpu/context.ts';
import { uploadTensor, destroyTensor } from '../../src/engine/gpu/tensor.ts';
import { encodeMatmul, prepareMatmul } from '../../kernels/matmul/matmul.gpu.ts';
import { getTensorType } from '../../src/formats/quant/index.ts';
import { byteSize, type TensorTypeName } from '../../src/formats/tensor.ts';
import { Rng } from '../../src/engine/random.ts';

const { values } = parseArgs({ options: { types: { type: 'string' }, reps: { type: 'string' }, bandwidth: { type: 'string' }, json: { type: 'boolean' }, smoke: { type: 'boolean' } } });
const TYPES = (values.types ?? 'Q4_0,Q8_0,F32').split(',') as TensorTypeName[];
const REPS = Number(values.reps ?? 5);
const PEER_GBPS = values.bandwidth ? Number(values.bandwidth) : undefined;
const SHAPES: [string, number, number][] = [
  ['attn q/o 2048×2048', 2048, 2048], ['ffn gate/up 8192×2048', 8192, 2048], ['ffn down 2048×8192', 2048, 8192], ['logits 128256×2048', 128256, 2048],
];
const PREFILL = values.smoke ? 8 : 128;
// --smoke: tiny shapes and few repetitions, to check the script on a software adapter
if (values.smoke) for (const s of SHAPES) { s[1] = Math.max(64, s[1] / 64); s[2] = Math.max(64, s[2] / 16); }

const got = await acquireDevice({ gpu: await nodeGpu() });
if (!got.ok) throw new Error(`no WebGPU device: ${got.reason}`);
const ctx = new GpuContext(got.device, got.caps);
const rng = new Rng(3);
const f16 = (v: number) => { const u = new Uint32Array(Float32Array.of(v).buffer)[0]!; return ((((u >> 23) & 0xff) - 112) << 10) | ((u >> 13) & 0x3ff); };

function weightBytes(type: TensorTypeName, m: number, k: number): Uint8Array {
  const tt = getTensorType(type);
  const bytes = byteSize(tt, m * k);
  const data = new Uint8Array(bytes);
  const words = new Uint32Array(data.buffer, 0, bytes >> 2);
  for (let i = 0; i < words.length; i++) words[i] = (rng.next() * 2 ** 32) >>> 0;
  if (type === 'F32') { const f = new Float32Array(data.buffer); for (let i = 0; i < f.length; i++) f[i] = rng.next() - 0.5; }
  else if (tt.blockSize >= 32) for (let o = 0; o < bytes; o += tt.blockBytes) { const h = f16(0.001 + rng.next() * 0.019); data[o] = h & 255; data[o + 1] = h >> 8; }
  return data;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const best = (xs: number[]) => Math.min(...xs);

async function timeStep(record: (step: ReturnType<GpuContext['begin']>) => void, readFrom: GPUBuffer): Promise<number> {
  const t0 = performance.now();
  const step = ctx.begin('bench');
  record(step);
  const r = step.read(readFrom, 0, 4);
  await step.submit();
  await r;
  return performance.now() - t0;
}

const x = ctx.buffer(PREFILL * 8192 * 4, 'x');
ctx.write(x, 0, Float32Array.from({ length: PREFILL * 8192 }, () => rng.gaussian()));
const out = ctx.buffer(PREFILL * 128256 * 4, 'out');

// A GPU idles at a low clock and takes a moment under load to raise it: keep it busy for 2 s first
// (without this, figures taken seconds apart differed up to fivefold on an H100).
{
  const wa = ctx.device.createBuffer({ size: 64 << 20, usage: 0x4 | 0x8 }), wb = ctx.device.createBuffer({ size: 64 << 20, usage: 0x4 | 0x8 | 0x80 });
  const until = performance.now() + (values.smoke ? 50 : 2000);
  while (performance.now() < until) await timeStep((st) => { for (let i = 0; i < 16; i++) st.copy(wa, 0, wb, 0, 64 << 20); }, wb);
  wa.destroy(); wb.destroy();
}

// round trip and encode cost, with the smallest matvec
await prepareMatmul(ctx, 'F32');
const tiny = uploadTensor(ctx, { name: 'tiny', type: 'F32', shape: [64, 64], data: weightBytes('F32', 64, 64) });
for (let i = 0; i < 5; i++) await timeStep((s) => encodeMatmul(ctx, s, { buffer: out, offset: 0 }, { buffer: x, offset: 0 }, tiny, 1), out);
const trips: number[] = [];
for (let i = 0; i < 30; i++) trips.push(await timeStep((s) => encodeMatmul(ctx, s, { buffer: out, offset: 0 }, { buffer: x, offset: 0 }, tiny, 1), out));
const encodes: number[] = [];
for (let i = 0; i < 5; i++) {
  const step = ctx.begin('encode');
  const t0 = performance.now();
  for (let d = 0; d < 256; d++) encodeMatmul(ctx, step, { buffer: out, offset: 0 }, { buffer: x, offset: 0 }, tiny, 1);
  encodes.push((performance.now() - t0) * 1000 / 256);
  const r = step.read(out, 0, 4);
  await step.submit();
  await r;
}
const tiny256: number[] = [];
for (let i = 0; i < 5; i++) tiny256.push(await timeStep((s) => { for (let d = 0; d < 256; d++) encodeMatmul(ctx, s, { buffer: out, offset: 0 }, { buffer: x, offset: 0 }, tiny, 1); }, out));
destroyTensor(tiny);

// the ceiling WebGPU itself reaches: buffer-to-buffer copies of 256 MiB (bytes read + written per second)
const COPY = values.smoke ? 1 << 20 : 256 << 20;
const ca = ctx.device.createBuffer({ size: COPY, usage: 0x4 | 0x8 }), cb = ctx.device.createBuffer({ size: COPY, usage: 0x4 | 0x8 | 0x80 });
const copies = async (count: number) => timeStep((st) => { for (let i = 0; i < count; i++) st.copy(ca, 0, cb, 0, COPY); }, cb);
await copies(2);
const c1: number[] = [], c8: number[] = [];
for (let i = 0; i < REPS; i++) { c1.push(await copies(1)); c8.push(await copies(8)); }
const copyGbps = (2 * COPY) / (Math.max(1e-6, (best(c8) - best(c1)) / 7) / 1000) / 1e9;
ca.destroy(); cb.destroy();

interface Row { type: string; shape: string; mb: number; decode_us: number; decode_gbps: number; prefill_us: number; prefill_gflops: number }
const rows: Row[] = [];
for (const type of TYPES) {
  for (const [label, m, k] of SHAPES) {
    // as the engine uploads them: Q4_0 / Q8_0 repacked for aligned 16-byte loads (src/engine/gpu/layout.ts)
    const w = uploadTensor(ctx, { name: label, type, shape: [m, k], data: weightBytes(type, m, k) }, undefined, { repack: true });
    await prepareMatmul(ctx, w.layout);
    const mb = byteSize(getTensorType(type), m * k) / 1e6;
    const R = values.smoke ? 3 : Math.max(4, Math.min(64, Math.round(2000 / mb)));
    const per = async (n: number) => {
      const rec = (count: number) => (s: ReturnType<GpuContext['begin']>) => {
        for (let d = 0; d < count; d++) encodeMatmul(ctx, s, { buffer: out, offset: 0 }, { buffer: x, offset: 0 }, w, n);
      };
      await timeStep(rec(2), out);
      const one: number[] = [], many: number[] = [];
      for (let i = 0; i < REPS; i++) { one.push(await timeStep(rec(1), out)); many.push(await timeStep(rec(R), out)); }
      return Math.max(1e-6, (best(many) - best(one)) / (R - 1)) * 1000; // µs
    };
    const dUs = await per(1);
    const pUs = await per(PREFILL);
    rows.push({ type: w.layout, shape: label, mb: +mb.toFixed(2), decode_us: +dUs.toFixed(1), decode_gbps: +(mb * 1e6 / (dUs * 1e-6) / 1e9).toFixed(1),
      prefill_us: +pUs.toFixed(1), prefill_gflops: +((2 * m * k * PREFILL) / (pUs * 1e-6) / 1e9).toFixed(0) });
    destroyTensor(w);
  }
}

console.log(`adapter: ${ctx.caps.adapter}; subgroups ${ctx.caps.subgroups}, shader-f16 ${ctx.caps.shaderF16}`);
console.log(`round trip (1 dispatch + 4-byte readback): median ${median(trips).toFixed(3)} ms, best ${best(trips).toFixed(3)} ms`);
console.log(`WebGPU buffer copy: ${copyGbps.toFixed(0)} GB/s (read + write)${PEER_GBPS ? `, ${(copyGbps / PEER_GBPS * 100).toFixed(0)}% of the peer's ${PEER_GBPS}` : ''}`);
console.log(`encode one dispatch (CPU): ${median(encodes).toFixed(1)} µs; a step of 256 tiny dispatches: ${best(tiny256).toFixed(2)} ms`);
console.log('');
console.log(`| type | matrix | MB | decode µs | decode GB/s${PEER_GBPS ? ' | of peer bandwidth' : ''} | prefill ${PREFILL} µs | prefill GFLOP/s |`);
console.log(`|---|---|---|---|---|${PEER_GBPS ? '---|' : ''}---|---|`);
for (const r of rows) {
  console.log(`| ${r.type} | ${r.shape} | ${r.mb} | ${r.decode_us} | ${r.decode_gbps}${PEER_GBPS ? ` | ${(r.decode_gbps / PEER_GBPS * 100).toFixed(1)}%` : ''} | ${r.prefill_us} | ${r.prefill_gflops} |`);
}
if (values.json) console.log(JSON.stringify({ adapter: ctx.caps.adapter, round_trip_ms: median(trips), encode_us: median(encodes), copy_gbps: copyGbps, rows }));
got.device.destroy();
