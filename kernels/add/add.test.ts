// add on every backend. Tolerance: exact. f32 addition is correctly rounded in WGSL as in
// JavaScript's Math.fround(a + b), so the GPU must reproduce the CPU twin bit for bit.
import { expect } from 'chai';
import { add } from './add.cpu.ts';
import { encodeAdd, prepareAdd } from './add.gpu.ts';
import { gpuOrSkip, seededValues } from '../../test/support/gpu.ts';
import { packF32, readF32, submitChecked } from '../../test/support/gpu-trial.ts';
import type { GpuContext } from '../../src/engine/gpu/context.ts';

type Backend = 'cpu' | 'webgpu';
const BACKENDS: Backend[] = ['cpu', 'webgpu'];

/** out = a + b on a backend; `inPlace` writes into a (the residual connection). */
async function run(backend: Backend, ctx: GpuContext | null, a: Float32Array, b: Float32Array, inPlace: boolean): Promise<Float32Array> {
  const n = a.length;
  if (backend === 'cpu') {
    const out = inPlace ? a.slice() : new Float32Array(n);
    add(out, inPlace ? out : a, b, n);
    return out;
  }
  const c = ctx!;
  await prepareAdd(c);
  // in place: a, b and out packed into ONE buffer at odd offsets, as in an activation arena (one
  // binding); otherwise three buffers (the layout prepareAdd compiles)
  const [ra, rb, ro] = inPlace ? packF32(c, [a, b]).refs : [a, b, new Float32Array(n)].map((x) => packF32(c, [x]).refs[0]!);
  const out = inPlace ? ra! : ro!;
  const [r] = await submitChecked(c, (step) => {
    encodeAdd(c, step, out, ra!, rb!, n);
    return [readF32(step, out, n)];
  });
  return new Float32Array(r!);
}

describe('add', () => {
  for (const backend of BACKENDS) {
    it(`[${backend}] seeded trial: odd sizes, large magnitudes, in place and not`, async function () {
      const ctx = backend === 'webgpu' ? await gpuOrSkip(this) : null;
      for (const [n, seed, inPlace] of [[257 * 3, 1, false], [70001, 2, true], [7, 3, false]] as const) {
        const a = seededValues(n, seed, 1e3), b = seededValues(n, seed + 100, 1e-2);
        const expected = new Float32Array(n);
        // oracle: f32 addition is a single correctly rounded operation
        for (let i = 0; i < n; i++) expected[i] = Math.fround(a[i]! + b[i]!);
        const got = await run(backend, ctx, a, b, inPlace);
        const cpu = new Float32Array(n);
        add(cpu, a, b, n);
        expect(Array.from(cpu), 'CPU twin vs f32 oracle').to.deep.equal(Array.from(expected));
        expect(Array.from(got), `${backend} vs CPU twin, n=${n}`).to.deep.equal(Array.from(cpu));
      }
    });

    it(`[${backend}] fixed small case`, async function () {
      const ctx = backend === 'webgpu' ? await gpuOrSkip(this) : null;
      const got = await run(backend, ctx, new Float32Array([1, -2, 0.5, 1e30, -Infinity]), new Float32Array([2, 2, 0.25, 1e30, 5]), false);
      expect(Array.from(got)).to.deep.equal([3, 0, 0.75, Math.fround(2e30), -Infinity]);
    });
  }
});
