// silu-mul on every backend. Tolerance: rtol 2e-5, atol 1e-30. WGSL's exp is accurate to
// 3 + 2·|x| ULP (x = −g), i.e. ≤ 1.1e-5 relative for |g| ≤ 90; beyond that silu(g) is g itself
// (g ≫ 0) or below 1e-30 in magnitude (g ≪ 0, where e^−g overflows to inf and GPUs may flush
// denormals). The division and product add ~2 ULP.
import { expect } from 'chai';
import { siluMul } from './silu-mul.cpu.ts';
import { encodeSiluMul, prepareSiluMul } from './silu-mul.gpu.ts';
import { compare, gpuOrSkip, seededValues } from '../../test/support/gpu.ts';
import { packF32, readF32, submitChecked } from '../../test/support/gpu-trial.ts';
import type { GpuContext } from '../../src/engine/gpu/context.ts';

type Backend = 'cpu' | 'webgpu';
const BACKENDS: Backend[] = ['cpu', 'webgpu'];
const RTOL = 2e-5, ATOL = 1e-30;

async function run(backend: Backend, ctx: GpuContext | null, gate: Float32Array, up: Float32Array, inPlace: boolean): Promise<Float32Array> {
  const n = gate.length;
  if (backend === 'cpu') {
    const out = inPlace ? gate.slice() : new Float32Array(n);
    siluMul(out, inPlace ? out : gate, up, n);
    return out;
  }
  const c = ctx!;
  await prepareSiluMul(c);
  // in place: gate, up and out in ONE buffer at odd offsets (one binding); else three buffers
  const [rg, ru, ro] = inPlace ? packF32(c, [gate, up]).refs : [gate, up, new Float32Array(n)].map((x) => packF32(c, [x]).refs[0]!);
  const out = inPlace ? rg! : ro!;
  const [r] = await submitChecked(c, (step) => {
    encodeSiluMul(c, step, out, rg!, ru!, n);
    return [readF32(step, out, n)];
  });
  return new Float32Array(r!);
}

describe('silu-mul', () => {
  for (const backend of BACKENDS) {
    it(`[${backend}] seeded trial: odd sizes, large magnitudes, in place and not`, async function () {
      const ctx = backend === 'webgpu' ? await gpuOrSkip(this) : null;
      for (const [n, seed, inPlace] of [[257 * 5, 11, false], [30011, 12, true], [7, 13, false]] as const) {
        const gate = seededValues(n, seed, 4), up = seededValues(n, seed + 100, 3);
        const got = await run(backend, ctx, gate, up, inPlace);
        // reference: the CPU twin for the GPU; for the CPU twin itself, the f64 definition
        const ref = new Float32Array(n);
        if (backend === 'cpu') for (let i = 0; i < n; i++) ref[i] = gate[i]! * up[i]! / (1 + Math.exp(-gate[i]!));
        else siluMul(ref, gate, up, n);
        const { worst, at } = compare(got, ref, ATOL, RTOL);
        expect(worst, `n=${n}: element ${at}: ${got[at]} vs ${ref[at]} (gate ${gate[at]}, up ${up[at]})`).to.be.at.most(1);
      }
    });

    it(`[${backend}] fixed small case`, async function () {
      const ctx = backend === 'webgpu' ? await gpuOrSkip(this) : null;
      const got = await run(backend, ctx, new Float32Array([0, 1, -1, 2, 100, -200]), new Float32Array([5, 2, 2, -1, 0.5, 3]), false);
      // silu(1) = 1/(1+e^-1) = 0.7310585786, silu(-1) = -0.2689414214, silu(2) = 1.7615941560
      const want = [0, 1.4621171573, -0.5378828427, -1.7615941560, 50, 0];
      const { worst, at } = compare(got, want, 1e-6, RTOL);
      expect(worst, `element ${at}: ${got[at]} vs ${want[at]}`).to.be.at.most(1);
    });
  }
});
