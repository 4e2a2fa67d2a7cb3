// rmsnorm on every backend. Tolerance: rtol 1e-5 (atol 1e-30 for exact zeros). The GPU sums
// squares in f32 (a few strided terms per thread, then an 8-level tree): relative error
// ≲ (d/256 + 8)·2⁻²⁴ ≈ 1e-6 on the sum, half that on rms; sqrt, 1/rms and the two products add a
// few ULP (WGSL: sqrt and division ≤ 2.5 ULP). No cancellation: every output is a product.
import { expect } from 'chai';
import { rmsnorm } from './rmsnorm.cpu.ts';
import { encodeRmsnorm, prepareRmsnorm } from './rmsnorm.gpu.ts';
import { compare, gpuOrSkip, seededValues } from '../../test/support/gpu.ts';
import { packF32, readF32, submitChecked } from '../../test/support/gpu-trial.ts';
import type { GpuContext } from '../../src/engine/gpu/context.ts';

type Backend = 'cpu' | 'webgpu';
const BACKENDS: Backend[] = ['cpu', 'webgpu'];
const RTOL = 1e-5, ATOL = 1e-30;

interface Case { n: number; d: number; eps: number; seed: number; capture: boolean; inPlace: boolean; oneBuffer: boolean }
interface Result { out: Float32Array; scale: Float32Array | null; normalized: Float32Array | null }

async function run(backend: Backend, ctx: GpuContext | null, c: Case, x: Float32Array, w: Float32Array): Promise<Result> {
  const { n, d, eps, capture } = c;
  if (backend === 'cpu') {
    const out = c.inPlace ? x.slice() : new Float32Array(n * d);
    const scale = capture ? new Float32Array(n) : null, normalized = capture ? new Float32Array(n * d) : null;
    rmsnorm(out, c.inPlace ? out : x, w, n, d, eps, scale, normalized);
    return { out, scale, normalized };
  }
  const g = ctx!;
  await prepareRmsnorm(g);
  const arrays = [x, w, new Float32Array(n * d), new Float32Array(n), new Float32Array(n * d)];
  // oneBuffer: every operand in one buffer at odd offsets (an arena: one binding, aliasing layout)
  const refs = c.oneBuffer ? packF32(g, arrays).refs : arrays.map((a) => packF32(g, [a]).refs[0]!);
  const [rx, rw, ro, rs, rz] = refs as [typeof refs[0], typeof refs[0], typeof refs[0], typeof refs[0], typeof refs[0]];
  const out = c.inPlace ? rx : ro;
  const reads = await submitChecked(g, (step) => {
    encodeRmsnorm(g, step, out, rx, rw, n, d, eps, capture ? rs : null, capture ? rz : null);
    return [readF32(step, out, n * d), ...(capture ? [readF32(step, rs, n), readF32(step, rz, n * d)] : [])];
  });
  return {
    out: new Float32Array(reads[0]!),
    scale: capture ? new Float32Array(reads[1]!) : null,
    normalized: capture ? new Float32Array(reads[2]!) : null,
  };
}

/** The f64 definition, the reference for the CPU twin itself. */
function definition(x: Float32Array, w: Float32Array, n: number, d: number, eps: number): Result {
  const out = new Float32Array(n * d), scale = new Float32Array(n), normalized = new Float32Array(n * d);
  for (let r = 0; r < n; r++) {
    let ss = 0;
    for (let i = 0; i < d; i++) ss += x[r * d + i]! ** 2;
    const rms = Math.sqrt(ss / d + eps);
    scale[r] = rms;
    for (let i = 0; i < d; i++) { normalized[r * d + i] = x[r * d + i]! / rms; out[r * d + i] = (x[r * d + i]! / rms) * w[i]!; }
  }
  return { out, scale, normalized };
}

function expectClose(name: string, got: Float32Array | null, want: Float32Array | null): void {
  if (!got || !want) return;
  const { worst, at } = compare(got, want, ATOL, RTOL);
  expect(worst, `${name}[${at}]: ${got[at]} vs ${want[at]}`).to.be.at.most(1);
}

describe('rmsnorm', () => {
  for (const backend of BACKENDS) {
    it(`[${backend}] seeded trial: odd sizes, large magnitudes, captures, in place, one buffer`, async function () {
      const ctx = backend === 'webgpu' ? await gpuOrSkip(this) : null;
      const cases: Case[] = [
        { n: 7, d: 257, eps: 1e-5, seed: 21, capture: true, inPlace: false, oneBuffer: true },
        { n: 3, d: 2051, eps: 1e-6, seed: 22, capture: false, inPlace: true, oneBuffer: false },
        { n: 2, d: 5, eps: 1e-5, seed: 23, capture: true, inPlace: false, oneBuffer: false },
        { n: 300, d: 64, eps: 1e-5, seed: 24, capture: false, inPlace: true, oneBuffer: true },
      ];
      for (const c of cases) {
        const x = seededValues(c.n * c.d, c.seed, 30), w = seededValues(c.d, c.seed + 50, 2);
        const got = await run(backend, ctx, c, x, w);
        const want: Result = backend === 'cpu' ? definition(x, w, c.n, c.d, c.eps) : await run('cpu', null, c, x, w);
        const tag = `${backend} n=${c.n} d=${c.d}`;
        expectClose(`${tag} out`, got.out, want.out);
        expectClose(`${tag} scale`, got.scale, want.scale);
        expectClose(`${tag} normalized`, got.normalized, want.normalized);
      }
    });

    it(`[${backend}] fixed small case`, async function () {
      const ctx = backend === 'webgpu' ? await gpuOrSkip(this) : null;
      const c: Case = { n: 2, d: 2, eps: 0, seed: 0, capture: true, inPlace: false, oneBuffer: false };
      const got = await run(backend, ctx, c, new Float32Array([3, 4, 0, -1]), new Float32Array([1, 2]));
      // row 0: rms = sqrt(12.5) = 3.5355339; row 1: rms = sqrt(0.5) = 0.70710678
      expectClose('out', got.out, new Float32Array([0.84852814, 2.2627417, 0, -2.8284271]));
      expectClose('scale', got.scale, new Float32Array([3.5355339, 0.70710678]));
      expectClose('normalized', got.normalized, new Float32Array([0.84852814, 1.1313708, 0, -1.4142136]));
    });
  }
});
