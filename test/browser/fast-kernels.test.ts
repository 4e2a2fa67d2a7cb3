// The WebAssembly kernels in Chromium: the module loads through the browser path of the loader
// (fetch + asynchronous compile), its products match the twins, and, when the page is
// cross-origin isolated (the test server sends COOP/COEP), Web Workers share the memory and split
// the products without changing a bit. The relaxed-SIMD build (which Chromium runs) gives the same
// bits as the build without it. Then a Session on the fast path reproduces the golden stories260K
// greedy decode. The Node tests (test/node/fast-kernels.test.ts) cover every type
// and shape; this file checks that the same code runs in a browser.
import { expect } from 'chai';
import { WeightArena } from '../../src/engine/arena.ts';
import { WasmRuntime } from '../../kernels/wasm/runtime.ts';
import { preferRelaxedSimd, relaxedSimdSupported, usesRelaxedSimd } from '../../kernels/wasm/load.ts';
import { buildChoice, buildFailure, chooseBuild, pickRelaxed } from '../../kernels/wasm/calibrate.ts';
import { wasmKernels } from '../../kernels/wasm/kernels.ts';
import { matmul } from '../../kernels/matmul/matmul.cpu.ts';
import { getTensorType } from '../../src/formats/quant/index.ts';
import { byteSize, type Tensor, type TensorTypeName } from '../../src/formats/tensor.ts';
import { Rng } from '../../src/engine/random.ts';
import { Session } from '../../src/engine/session.ts';
import { generate } from '../../src/engine/generate.ts';
import { loadStories, storiesRef } from '../support/gpu-models.ts';

function weight(arena: WeightArena, type: TensorTypeName, m: number, k: number, rng: Rng): Tensor {
  const t = getTensorType(type);
  const bytes = byteSize(t, m * k);
  const data = arena.bytes(arena.alloc(bytes), bytes);
  t.quantize(Float32Array.from({ length: m * k }, () => rng.gaussian()), 0, data, 0, m * k);
  return { name: `w.${type}`, type, shape: [m, k], data };
}

describe('WebAssembly kernels in the browser', function () {
  this.timeout(60000);

  it('load (fetch, asynchronous compile) and match the twins on one thread', async () => {
    const arena = new WeightArena(1 << 20, { shared: false });
    expect(await WasmRuntime.preload(arena), String(WasmRuntime.failure(arena))).to.equal(true);
    const ks = wasmKernels(WasmRuntime.of(arena)!, { maxRows: 8, maxK: 1024, maxOut: 1024, maxPositions: 64, threads: 1 });
    const rng = new Rng(3);
    for (const type of ['F32', 'F16', 'Q4_0', 'Q8_0', 'Q4_K', 'Q6_K'] as const) {
      const k = getTensorType(type).blockSize === 256 ? 512 : 96, m = 7, n = 5;
      const w = weight(arena, type, m, k, rng);
      const x = Float32Array.from({ length: n * k }, () => rng.gaussian() * 20);
      const want = new Float32Array(n * m), got = new Float32Array(n * m);
      matmul(want, x, w, n, 'llamacpp');
      ks.matmul(got, x, w, n, 'llamacpp');
      for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!), `${type} [${i}]`).to.be.below(1e-4 * Math.max(1, Math.abs(want[i]!)));
    }
    expect(ks.fallbacks).to.equal(0);
  });

  it('split products over Web Workers when cross-origin isolated, bit for bit', async function () {
    if (!globalThis.crossOriginIsolated) {
      console.log('SKIPPED: the page is not cross-origin isolated, so there is no shared memory for threads');
      this.skip();
    }
    const arena = new WeightArena(4 << 20, { shared: true });
    expect(await WasmRuntime.preload(arena), String(WasmRuntime.failure(arena))).to.equal(true);
    const rt = WasmRuntime.of(arena)!;
    const one = wasmKernels(rt, { maxRows: 8, maxK: 1024, maxOut: 1024, maxPositions: 64, threads: 1 });
    const three = wasmKernels(rt, { maxRows: 8, maxK: 1024, maxOut: 1024, maxPositions: 64, threads: 3 });
    await three.ready();
    const rng = new Rng(4);
    for (const type of ['F32', 'Q4_0', 'Q4_K'] as const) {
      const m = 131, k = type === 'Q4_K' ? 1024 : 992, n = 5;      // 131 rows do not split evenly
      const w = weight(arena, type, m, k, rng);
      const x = Float32Array.from({ length: n * k }, () => rng.gaussian());
      const a = new Float32Array(n * m), b = new Float32Array(n * m);
      one.matmul(a, x, w, n, 'llamacpp');
      three.matmul(b, x, w, n, 'llamacpp');
      expect([...b], type).to.deep.equal([...a]);
    }
    expect(three.threadedJobs, 'jobs ran on several threads').to.be.above(0);
  });

  it('the relaxed-SIMD build: Chromium has it, and the types it speeds up give the bits of the build without it (1 and 3 threads, 1..9 tokens)', async function () {
    if (!relaxedSimdSupported()) {
      console.log('SKIPPED: this browser has no relaxed SIMD, so the relaxed build cannot run');
      this.skip();
    }
    const shared = globalThis.crossOriginIsolated === true;
    const make = async (relaxed: boolean) => {
      preferRelaxedSimd(relaxed);
      try {
        const arena = new WeightArena(8 << 20, { shared });
        expect(await WasmRuntime.preload(arena), String(WasmRuntime.failure(arena))).to.equal(true);
        const rt = WasmRuntime.of(arena)!;
        expect(rt.c.RELAXED, 'the module says which build it is').to.equal(relaxed ? 1 : 0);
        const opts = { maxRows: 16, maxK: 1024, maxOut: 1024, maxPositions: 64 };
        const ks = [wasmKernels(rt, { ...opts, threads: 1 }), ...(shared ? [wasmKernels(rt, { ...opts, threads: 3 })] : [])];
        for (const k of ks) await k.ready();
        return { arena, ks };
      } finally {
        preferRelaxedSimd(true);
      }
    };
    const relaxed = await make(true), plain = await make(false);
    for (const type of ['Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q8_0', 'Q4_K', 'Q5_K', 'Q6_K'] as const) {
      const m = 37, k = type.endsWith('_K') ? 1024 : 992;
      const wr = weight(relaxed.arena, type, m, k, new Rng(7)), wp = weight(plain.arena, type, m, k, new Rng(7));
      for (const n of [1, 4, 5, 8, 9]) {
        const x = Float32Array.from({ length: n * k }, (_, i) => Math.sin(i * 0.37 + n) * (i % 7 === 0 ? 40 : 1));
        const want = new Float32Array(n * m);
        plain.ks[0]!.matmul(want, x, wp, n, 'llamacpp');
        const twin = new Float32Array(n * m);
        matmul(twin, x, wp, n, 'llamacpp');
        for (let i = 0; i < want.length; i++) expect(Math.abs(want[i]! - twin[i]!), `${type} n=${n} [${i}] vs the twin`).to.be.below(1e-4 * Math.max(1, Math.abs(twin[i]!)));
        for (const [j, ks] of relaxed.ks.entries()) {
          const got = new Float32Array(n * m);
          ks.matmul(got, x, wr, n, 'llamacpp');
          expect([...got], `${type}, n = ${n}, ${j === 0 ? 1 : 3} thread(s): relaxed build = plain build`).to.deep.equal([...want]);
        }
      }
    }
    console.log(`relaxed SIMD checked against the plain build on ${relaxed.ks.length} thread count(s)${shared ? '' : ' (not cross-origin isolated: 1 thread only)'}`);
  });

  it('times the two builds on a weight type they multiply differently, takes the faster, and keeps the answer', async function () {
    // Chromium (what the tests run in) has relaxed SIMD; a browser without it loads the plain
    // build with no timing at all, which is not a feature to test here.
    if (!relaxedSimdSupported()) {
      console.log('SKIPPED: this browser has no relaxed SIMD, so there is no build to choose');
      this.skip();
    }
    try {
      const choice = (await chooseBuild('Q4_0'))!;
      expect(choice, String(buildFailure())).to.not.equal(null);
      expect(choice.type).to.equal('Q4_0');
      expect(choice.relaxedMs).to.be.above(0);
      expect(choice.plainMs).to.be.above(0);
      expect(choice.relaxed).to.equal(pickRelaxed(choice.relaxedMs, choice.plainMs));
      expect(usesRelaxedSimd(), 'modules load from the chosen build').to.equal(choice.relaxed);
      console.log(`Q4_0 here: relaxed build ${choice.relaxedMs.toFixed(2)} ms, plain ${choice.plainMs.toFixed(2)} ms: ${choice.relaxed ? 'relaxed' : 'plain'}`);
      preferRelaxedSimd(!choice.relaxed);
      expect(await chooseBuild('Q4_0'), 'timed once per page').to.equal(choice);
      expect(usesRelaxedSimd()).to.equal(choice.relaxed);
      expect(buildChoice('Q4_0')).to.equal(choice);
      expect(await chooseBuild('Q8_0'), 'both builds multiply Q8_0 alike').to.equal(null);
    } finally {
      preferRelaxedSimd(true);
    }
  });

  it('a Session on the fast path decodes stories260K exactly as the golden file', async () => {
    const [weights, ref] = await Promise.all([loadStories(), storiesRef()]);
    const session = new Session(weights);
    expect(session.cpuKernels.name, String(session.cpuKernels.reason)).to.equal('wasm');
    // the model cell shows this: the relaxed build where the browser has relaxed SIMD
    expect(session.cpuKernels.detail).to.match(relaxedSimdSupported() ? /^WebAssembly SIMD kernels \(relaxed SIMD\), \d+ threads?$/ : /^WebAssembly SIMD kernels, \d+ threads?$/);
    await session.ready();
    const bos = ref.token_ids[0]!;
    const ids = [bos, ...generate(session, [bos], { maxTokens: 256, temperature: 0, stopAtEos: false })];
    let same = 0;
    while (same < ids.length && ids[same] === ref.token_ids[same]) same++;
    expect(same, `first difference at position ${same}`).to.equal(ref.token_ids.length);
    console.log(`fast-path session: ${session.cpuKernels.threads} thread(s)${session.cpuKernels.reason ? ` (${session.cpuKernels.reason})` : ''}`);
  });
});
