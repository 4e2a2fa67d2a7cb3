// The WebAssembly kernels (kernels/wasm) against their CPU twins, on seeded random trials with odd
// sizes and large magnitudes: matmul for every tensor type (quantized weights with llama.cpp's
// activation rounding, as the fast path runs them; the float types also without), attention with
// and without captured scores and pattern, with threads on and off. Threading and the number of
// tokens per call must not change a single bit (a thread count that does not divide the rows,
// one token vs many).
//
// Tolerance: the twins sum in f64, the kernels in f32 lanes (quantized: exact integer block sums,
// then f32), so an output may differ by the round-off of an f32 sum, bounded (as in
// kernels/matmul/matmul.test.ts) by TOL · sqrt(k) · 2^-24 · S with S = Σ|w·x|.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WeightArena } from '../../src/engine/arena.ts';
import { WasmRuntime } from '../../kernels/wasm/runtime.ts';
import { wasmKernels, type WasmKernelSet } from '../../kernels/wasm/kernels.ts';
import { matmul } from '../../kernels/matmul/matmul.cpu.ts';
import { attention } from '../../kernels/attention/attention.cpu.ts';
import { siluMul } from '../../kernels/silu-mul/silu-mul.cpu.ts';
import { rmsnorm } from '../../kernels/rmsnorm/rmsnorm.cpu.ts';
import { lensRows } from '../../kernels/argmax/argmax.cpu.ts';
import { ALL_TENSOR_TYPES, getTensorType } from '../../src/formats/quant/index.ts';
import { byteSize, type Tensor, type TensorTypeName } from '../../src/formats/tensor.ts';
import { Rng } from '../../src/engine/random.ts';

const U = 2 ** -24;
const TOL = 4;

/** A weight of `type`, quantized from N(0, scale²) values, at an odd byte offset of `arena` (or of a plain buffer). */
function weight(type: TensorTypeName, m: number, k: number, rng: Rng, scale: number, arena: WeightArena | null): Tensor {
  const t = getTensorType(type);
  const values = Float32Array.from({ length: m * k }, () => rng.gaussian() * scale);
  const bytes = byteSize(t, m * k);
  const data = arena ? arena.bytes(arena.alloc(bytes + 3) + 3, bytes) : new Uint8Array(bytes + 5).subarray(5);
  t.quantize(values, 0, data, 0, m * k);
  return { name: `w.${type}`, type, shape: [m, k], data };
}

/** S = Σ|w·x| per output (the error scale), from the dequantized weights. */
function magnitudes(w: Tensor, x: Float32Array, n: number): Float64Array {
  const [m, k] = w.shape as [number, number];
  const deq = new Float32Array(m * k);
  getTensorType(w.type).dequantize(w.data, 0, deq, 0, m * k);
  const s = new Float64Array(n * m);
  for (let t = 0; t < n; t++) for (let i = 0; i < m; i++) {
    let a = 0;
    for (let j = 0; j < k; j++) a += Math.abs(deq[i * k + j]! * x[t * k + j]!);
    s[t * m + i] = a;
  }
  return s;
}

function kernels(arena: WeightArena, threads: number, maxK = 2048, maxOut = 4096): WasmKernelSet {
  const rt = WasmRuntime.of(arena);
  assert.ok(rt, `the WebAssembly kernels load: ${WasmRuntime.failure(arena)}`);
  return wasmKernels(rt, { maxRows: 16, maxK, maxOut, maxPositions: 256, threads });
}

test('matmul: every tensor type against its twin (odd m, n of 1..9, large values)', () => {
  const rng = new Rng(6);
  const arena = new WeightArena(1 << 16, { shared: false });
  const ks = kernels(arena, 1);
  let worst = 0;
  for (const type of ALL_TENSOR_TYPES) {
    const bs = type.blockSize;
    const floatInput = ['F32', 'F16', 'BF16', 'Q8_G64'].includes(type.name);
    for (const k of bs === 1 ? [1, 7, 67, 150] : [bs, 3 * bs]) {
      for (const [m, n, scale] of [[13, 1, 1], [5, 3, 300], [7, 9, 0.02], [1, 5, 1]] as const) {
        // weights half in the arena (read in place), half in plain buffers (copied in once)
        const w = weight(type.name, m, k, rng, scale, n % 2 ? arena : null);
        const x = Float32Array.from({ length: n * k }, () => rng.gaussian() * 50);
        const mag = magnitudes(w, x, n);
        for (const aq of floatInput ? ['none', 'llamacpp'] as const : ['llamacpp'] as const) {
          const want = new Float32Array(n * m), got = new Float32Array(n * m).fill(NaN);
          matmul(want, x, w, n, aq);
          ks.matmul(got, x, w, n, aq);
          for (let i = 0; i < n * m; i++) {
            const err = Math.abs(got[i]! - want[i]!), bound = TOL * Math.sqrt(k) * U * mag[i]! + 1e-30;
            worst = Math.max(worst, err / bound * TOL);
            assert.ok(err <= bound, `${type.name} ${aq} m=${m} k=${k} n=${n} [${i}]: ${got[i]} vs ${want[i]} (bound ${bound})`);
          }
        }
      }
    }
  }
  assert.equal(ks.fallbacks, 0, 'no call fell back to the twin');
  console.log(`# worst error ${worst.toFixed(3)} · sqrt(k) · 2^-24 · S`);
});

test('matmul: quantized weights with exact activations (activationQuant none) are the twin itself', () => {
  const rng = new Rng(2);
  const arena = new WeightArena(1 << 16, { shared: false });
  const ks = kernels(arena, 1);
  const w = weight('Q4_K', 5, 256, rng, 1, arena);
  const x = Float32Array.from({ length: 2 * 256 }, () => rng.gaussian());
  const a = new Float32Array(10), b = new Float32Array(10);
  matmul(a, x, w, 2, 'none');
  ks.matmul(b, x, w, 2, 'none');
  assert.deepEqual(b, a);
});

test('matmul: one token at a time gives the same bits as many at once, and threads (1, 2, 3) change nothing', async () => {
  const rng = new Rng(11);
  const arena = new WeightArena(1 << 20, { shared: true });
  const sets = [kernels(arena, 1, 4160), kernels(arena, 2, 4160), kernels(arena, 3, 4160)];
  await Promise.all(sets.map((s) => s.ready()));
  // k: rows short enough for the matrix-vector products to read ahead, and (the last two) longer
  // ones, which they do not (kernels/wasm/matmul.as.ts READ_AHEAD_MAX)
  const cases = [['F32', 1030], ['F16', 1030], ['Q4_0', 1024], ['Q4_1', 1024], ['Q5_0', 1024], ['Q5_1', 1024], ['Q8_0', 1024],
    ['Q4_K', 1280], ['Q5_K', 1280], ['Q6_K', 1280], ['Q2_K', 1280], ['Q3_K', 1280], ['Q4_0', 4160], ['Q8_0', 2208], ['Q4_K', 4096]] as const;
  for (const [type, k] of cases) {
    const m = 131, n = 7;   // m·k·n large enough to use the threads
    const w = weight(type, m, k, rng, 1, arena);
    const x = Float32Array.from({ length: n * k }, () => rng.gaussian() * 10);
    const outs = sets.map((s) => { const o = new Float32Array(n * m); s.matmul(o, x, w, n, 'llamacpp'); return o; });
    assert.deepEqual(outs[1], outs[0], `${type}: 2 threads`);
    assert.deepEqual(outs[2], outs[0], `${type}: 3 threads (131 rows do not split evenly)`);
    for (let t = 0; t < n; t++) {
      const one = new Float32Array(m);
      sets[1]!.matmul(one, x.subarray(t * k, (t + 1) * k), w, 1, 'llamacpp');
      assert.deepEqual(one, outs[0]!.subarray(t * m, (t + 1) * m), `${type}: token ${t} alone`);
    }
    // three tokens still take the matrix-vector path (fewer than four)
    const three = new Float32Array(3 * m);
    sets[2]!.matmul(three, x.subarray(2 * k, 5 * k), w, 3, 'llamacpp');
    assert.deepEqual(three, outs[0]!.subarray(2 * m, 5 * m), `${type}: tokens 2..4 as a call of three`);
  }
  assert.ok(sets[1]!.threadedJobs > 0 && sets[2]!.threadedJobs > 0, 'the products ran on several threads');
  for (const ks of sets) assert.equal(ks.fallbacks, 0, 'no call fell back to the twin');
});

test('matmul: a last group of two or three tokens (padded to four) writes only its own rows, and gives the one-token bits', () => {
  const rng = new Rng(13);
  const arena = new WeightArena(1 << 20, { shared: false });
  const ks = kernels(arena, 1, 1024);
  for (const type of ['Q4_0', 'Q8_0', 'Q5_1', 'Q4_K', 'Q6_K', 'Q2_K'] as const) {
    const m = 37, k = 256;
    const w = weight(type, m, k, rng, 1, arena);
    for (const n of [5, 6, 7, 10, 11]) {
      const x = Float32Array.from({ length: n * k }, () => rng.gaussian() * 10);
      // the output in the memory (written in place), one more row of sentinels after it
      const oa = ks.space.alloc((n + 1) * m);
      const out = ks.space.current(oa);
      out.fill(Number.NaN);
      out.fill(7.5, n * m);
      ks.matmul(out.subarray(0, n * m), x, w, n, 'llamacpp');
      const o = ks.space.current(oa);
      assert.ok(o.subarray(n * m).every((v) => v === 7.5), `${type} n=${n}: the row after the output is untouched`);
      for (let t = 0; t < n; t++) {
        const one = new Float32Array(m);
        ks.matmul(one, x.subarray(t * k, (t + 1) * k), w, 1, 'llamacpp');
        assert.deepEqual(o.subarray(t * m, (t + 1) * m), one, `${type} n=${n}: token ${t}`);
      }
      ks.space.free(oa);
    }
  }
});

function attentionTrial(rng: Rng, s: { nq: number; start: number; nHeads: number; nKvHeads: number; dHead: number }, scale: number) {
  const kLen = s.start + s.nq;
  const q = Float32Array.from({ length: s.nq * s.nHeads * s.dHead }, () => rng.gaussian() * scale);
  const kc = Float32Array.from({ length: (kLen + 3) * s.nKvHeads * s.dHead }, () => rng.gaussian() * scale);
  const vc = Float32Array.from({ length: (kLen + 3) * s.nKvHeads * s.dHead }, () => rng.gaussian() * 10);
  return { q, kc, vc, kLen };
}

test('attention: against the twin, with and without captured scores and pattern, threads on and off', async () => {
  const rng = new Rng(5);
  const arena = new WeightArena(1 << 16, { shared: true });
  const sets = [kernels(arena, 1, 2048, 1 << 17), kernels(arena, 3, 2048, 1 << 17)];   // room to stage q, z and the cache
  await Promise.all(sets.map((k) => k.ready()));
  const shapes = [
    { nq: 1, start: 0, nHeads: 1, nKvHeads: 1, dHead: 4 },
    { nq: 5, start: 3, nHeads: 6, nKvHeads: 2, dHead: 14 },
    { nq: 1, start: 40, nHeads: 8, nKvHeads: 4, dHead: 16 },
    { nq: 13, start: 0, nHeads: 4, nKvHeads: 4, dHead: 64 },
    { nq: 16, start: 100, nHeads: 12, nKvHeads: 3, dHead: 64 },   // enough work for the threads
  ];
  for (const s of shapes) {
    for (const scale of [1, 6, 40]) {      // 6: sharp softmax rows; 40: exponents below −708 too (the scalar exp)
      const { q, kc, vc, kLen } = attentionTrial(rng, s, scale);
      const n = s.nHeads * s.nq * kLen;
      const want = new Float32Array(q.length), ws = new Float32Array(n), wp = new Float32Array(n);
      attention(want, q, kc, vc, s, ws, wp);
      const ws0 = new Float32Array(n), wp0 = new Float32Array(n);
      attention(null, q, kc, vc, s, ws0, wp0);
      assert.deepEqual([ws0, wp0], [ws, wp], `${JSON.stringify(s)}: the twin's rows without z`);
      // The twin's q·k is an f64 sum, the kernel's an f32 one: a score may differ by E (below),
      // a pattern entry by about 2E, an output by 2E·max|v|.
      let qk = 0, vmax = 0;
      for (let i = 0; i < vc.length; i++) vmax = Math.max(vmax, Math.abs(vc[i]!));
      for (let t = 0; t < s.nq; t++) for (let h = 0; h < s.nHeads; h++) for (let j = 0; j < kLen; j++) {
        let a = 0;
        const kvh = Math.floor(h / (s.nHeads / s.nKvHeads));
        for (let i = 0; i < s.dHead; i++) a += Math.abs(q[(t * s.nHeads + h) * s.dHead + i]! * kc[(j * s.nKvHeads + kvh) * s.dHead + i]!);
        qk = Math.max(qk, a);
      }
      const E = TOL * Math.sqrt(s.dHead) * U * qk * (1 / Math.sqrt(s.dHead)) + 1e-7;   // scores are scaled by 1/sqrt(d_head)
      const outs: Float32Array[] = [];
      for (const ks of sets) {
        for (const capture of [true, false]) {
          const z = new Float32Array(q.length).fill(NaN);
          const sc = capture ? new Float32Array(n).fill(NaN) : null, pa = capture ? new Float32Array(n).fill(NaN) : null;
          ks.attention(z, q, kc, vc, s, sc, pa);
          const what = `${JSON.stringify(s)} scale ${scale} threads ${ks.threads} capture ${capture}`;
          for (let i = 0; i < z.length; i++) {
            assert.ok(Math.abs(z[i]! - want[i]!) <= 1e-5 * Math.max(1, Math.abs(want[i]!)) + 2 * E * vmax, `${what}: z[${i}] ${z[i]} vs ${want[i]}`);
          }
          if (sc && pa) {
            // the rows alone (z null, as a recomputation of recorded rows asks): the same bits
            const sc0 = new Float32Array(n).fill(NaN), pa0 = new Float32Array(n).fill(NaN);
            ks.attention(null, q, kc, vc, s, sc0, pa0);
            assert.deepEqual([sc0, pa0], [sc, pa], `${what}: rows without z`);
            for (let i = 0; i < n; i++) {
              if (ws[i] === -Infinity) assert.equal(sc[i], -Infinity, `${what}: masked score ${i}`);
              else assert.ok(Math.abs(sc[i]! - ws[i]!) <= 1e-6 * Math.abs(ws[i]!) + E, `${what}: score ${i}: ${sc[i]} vs ${ws[i]}`);
              assert.ok(Math.abs(pa[i]! - wp[i]!) <= 1e-6 + 2 * E, `${what}: pattern ${i}: ${pa[i]} vs ${wp[i]}`);
              if (ws[i] === -Infinity) assert.equal(pa[i], 0, `${what}: masked pattern ${i}`);
            }
          }
          outs.push(z);
        }
      }
      for (const z of outs) assert.deepEqual(z, outs[0], `${JSON.stringify(s)}: threads and capture change nothing`);
    }
  }
  assert.ok(sets[1]!.threadedJobs > 0, 'attention ran on several threads');
  for (const ks of sets) assert.equal(ks.fallbacks, 0);
});

test('siluMul: against the twin within a few f32 ulps, odd lengths, large and tiny values, in place', () => {
  const rng = new Rng(9);
  const arena = new WeightArena(1 << 16, { shared: false });
  const ks = kernels(arena, 1);
  for (const n of [1, 3, 4, 37, 1001]) {
    // the arrays live in the arena (the kernel runs in place there; plain arrays go to the twin)
    const gate = ks.space.alloc(n), up = ks.space.alloc(n), out = ks.space.alloc(n);
    for (let i = 0; i < n; i++) {
      gate[i] = i % 7 === 0 ? (rng.next() - 0.5) * 400 : rng.gaussian() * 4;   // ±200: e^−g over- and underflows (results below 1e-30 count as 0)
      up[i] = rng.gaussian() * 3;
    }
    const want = new Float32Array(n);
    siluMul(want, gate, up, n);
    ks.siluMul(out, gate, up, n);
    for (let i = 0; i < n; i++) {
      assert.ok(Math.abs(out[i]! - want[i]!) <= 4 * U * Math.abs(want[i]!) + 1e-30, `n=${n} [${i}]: silu(${gate[i]})·${up[i]} = ${out[i]} vs ${want[i]}`);
    }
    ks.siluMul(up, gate, up, n);                         // in place, as the forward pass does
    assert.deepEqual(up, out);
  }
});

test('rmsnorm: the twin\'s bits (its f64 arithmetic in its order), odd widths, several rows, in place, weights outside the memory; hooks and plain activations go to the twin', () => {
  const rng = new Rng(10);
  const arena = new WeightArena(1 << 16, { shared: false });
  const ks = kernels(arena, 1);
  for (const [n, d] of [[1, 1], [1, 7], [3, 64], [5, 288], [2, 1001]] as const) {
    const xa = ks.space.alloc(n * d), wa = ks.space.alloc(d), oa = ks.space.alloc(n * d);
    // (an allocation may grow the memory: the live views after the last one)
    const x = ks.space.current(xa), w = ks.space.current(wa), out = ks.space.current(oa);
    for (let i = 0; i < n * d; i++) x[i] = i % 11 === 0 ? rng.gaussian() * 300 : rng.gaussian();
    for (let i = 0; i < d; i++) w[i] = 1 + rng.gaussian() * 0.3;
    for (const eps of [1e-5, 1e-6]) {
      const want = new Float32Array(n * d);
      rmsnorm(want, x, w, n, d, eps);
      ks.rmsnorm(out, x, w, n, d, eps);
      assert.deepEqual(out, want, `n=${n} d=${d} eps=${eps}`);
      ks.rmsnorm(out, x, Float32Array.from(w), n, d, eps);   // the model's norm weights are plain arrays
      assert.deepEqual(out, want, `n=${n} d=${d} eps=${eps}, weight outside the memory`);
    }
    // with the hooks' intermediate results, and on plain arrays: the twin, the same numbers
    const scale = new Float32Array(n), normalized = new Float32Array(n * d), plain = new Float32Array(n * d);
    ks.rmsnorm(plain, Float32Array.from(x), Float32Array.from(w), n, d, 1e-5, scale, normalized);
    const want = new Float32Array(n * d);
    rmsnorm(want, x, w, n, d, 1e-5);
    assert.deepEqual(plain, want);
    ks.rmsnorm(x, x, w, n, d, 1e-5);                    // in place, as the forward pass may
    assert.deepEqual(x, want);
  }
});

test('lensRows: the twin\'s ids, values, ranks and target values exactly and its sums within 1e-6, threads (1, 2, 3) giving the same bits; rows outside the memory and k over 64 are the twin\'s', async () => {
  const rng = new Rng(12);
  const arena = new WeightArena(1 << 16, { shared: true });
  // maxRows 16: 37 rows go through in three pieces
  const sets = [kernels(arena, 1, 64, 32000), kernels(arena, 2, 64, 32000), kernels(arena, 3, 64, 32000)];
  await Promise.all(sets.map((s) => s.ready()));
  for (const [rows, cols, k, spread] of [[37, 4099, 5, 20], [3, 32000, 64, 3], [5, 3, 5, 1], [20, 257, 1, 200]] as const) {
    const xa = sets[0]!.space.alloc(rows * cols);
    const x = sets[0]!.space.current(xa);
    for (let i = 0; i < x.length; i++) {
      const u = rng.next();
      x[i] = u < 0.02 ? -Infinity : u < 0.04 ? Number.NaN : u < 0.06 ? Math.round(rng.gaussian() * 2) : u < 0.07 ? -0 : rng.gaussian() * spread;
    }
    x.fill(-Infinity, 0, cols);                                          // row 0: all −inf
    x.fill(Number.NaN, cols, 2 * cols);                                  // row 1: all NaN
    if (rows > 3) {
      x[3 * cols + 1] = Infinity;                                        // row 3: +inf (the sum is NaN, as the twin's)
      x.fill(Number.NaN, 4 * cols, 5 * cols);
      x[4 * cols + cols - 1] = 2;                                        // row 4: fewer values than k (padding)
    }
    const plain = Float32Array.from(x);
    for (const target of [null, 0, cols - 1, Math.floor(cols / 2)]) {
      const want = lensRows(plain, rows, cols, k, target);
      const what = `${rows}x${cols} k=${k} target=${target}`;
      const outs = sets.map((s) => s.lensRows(x, rows, cols, k, target));
      assert.deepEqual(outs[0]!.ids, want.ids, `${what}: ids`);
      assert.deepEqual(outs[0]!.values, want.values, `${what}: values`);
      assert.deepEqual(outs[0]!.ranks, want.ranks, `${what}: ranks`);
      assert.deepEqual(outs[0]!.targetValues, want.targetValues, `${what}: target values`);
      for (let r = 0; r < rows; r++) {
        const a = outs[0]!.sums[r]!, b = want.sums[r]!;
        assert.ok(Object.is(a, b) || Math.abs(a - b) <= 1e-6 * b, `${what} row ${r}: sum ${a} vs ${b}`);
      }
      assert.deepEqual(outs[1], outs[0], `${what}: 2 threads`);
      assert.deepEqual(outs[2], outs[0], `${what}: 3 threads`);
    }
    // the twin's own answer where the fast path does not apply
    assert.deepEqual(sets[1]!.lensRows(plain, rows, cols, k, 1), lensRows(plain, rows, cols, k, 1), 'rows outside the memory');
    sets[0]!.space.free(xa);
  }
  assert.deepEqual(sets[0]!.lensRows(sets[0]!.space.alloc(200), 2, 100, 65, null), lensRows(new Float32Array(200), 2, 100, 65, null), 'k = 65');
  assert.ok(sets[1]!.threadedJobs > 0 && sets[2]!.threadedJobs > 0, 'the rows ran on several threads');
});
