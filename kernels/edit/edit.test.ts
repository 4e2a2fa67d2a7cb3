// edit and pattern-values on every backend, against the CPU twins (edit.cpu.ts).
// Tolerance: zero and set are exact (a copy), add with beta ±1 is one correctly rounded f32
// addition (exact); add with another beta may be fused into one FMA on the GPU: ≤ 1 ulp of the
// result. pattern-values sums kLen f32 products in the same order: ≤ 1e-5 relative (fusing).
import { expect } from 'chai';
import { addPatternValues, editRows, EDIT_ADD, EDIT_SET, EDIT_ZERO, type EditRegion } from './edit.cpu.ts';
import { encodeEdit, encodePatternValues, prepareEdit } from './edit.gpu.ts';
import { gpuOrSkip, seededValues } from '../../test/support/gpu.ts';
import { packF32, readF32, submitChecked, maxAbs } from '../../test/support/gpu-trial.ts';
import type { GpuContext } from '../../src/engine/gpu/context.ts';

type Backend = 'cpu' | 'webgpu';
const BACKENDS: Backend[] = ['cpu', 'webgpu'];

async function runEdit(backend: Backend, ctx: GpuContext | null, x: Float32Array, src: Float32Array, r: EditRegion): Promise<Float32Array> {
  if (backend === 'cpu') { const out = x.slice(); editRows(out, 0, src, r); return out; }
  const c = ctx!;
  await prepareEdit(c);
  // x and src packed into one buffer at odd offsets (aliasing layout), the index in another
  const { refs: [rx, rs] } = packF32(c, [x, src.length ? src : new Float32Array(1)]);
  const idx = new Uint32Array([7, 7, ...r.rows, ...(r.mask ?? [])]);
  const index = c.upload(idx);
  const [out] = await submitChecked(c, (step) => {
    encodeEdit(c, step, rx!, rs!, { buffer: index, rowsAt: 2, maskAt: r.mask ? 2 + r.rows.length : -1 }, r, x.length / r.width);
    return [readF32(step, rx!, x.length)];
  });
  return new Float32Array(out!);
}

describe('edit', () => {
  for (const backend of BACKENDS) {
    it(`[${backend}] seeded trial: every mode, masks of heads and neurons, packed and by-row sources`, async function () {
      const ctx = backend === 'webgpu' ? await gpuOrSkip(this) : null;
      const rows = 37, width = 6 * 13;                                     // 6 heads of 13
      const x = seededValues(rows * width, 1, 1e3);
      const touched = Uint32Array.from([0, 5, 6, 36, 20]);
      const heads = Uint32Array.from([1, 0, 0, 1, 0, 1]);
      const neurons = Uint32Array.from({ length: width }, (_, i) => (i * 7) % 3 === 0 ? 1 : 0);
      const packed = seededValues(touched.length * width, 2, 10), vector = seededValues(width, 3, 1e-2), same = seededValues(rows * width, 4, 1);
      const region = (o: Partial<EditRegion>): EditRegion => ({ rows: touched, width, groupSize: 13, mask: null, mode: EDIT_ZERO, beta: 1, srcOffset: 0, srcStride: width, ...o });
      const trials: [string, Float32Array, EditRegion, number][] = [
        ['zero, heads', packed, region({ mask: heads }), 0],
        ['set packed, neurons', packed, region({ mode: EDIT_SET, groupSize: 1, mask: neurons }), 0],
        ['set vector (stride 0)', vector, region({ mode: EDIT_SET, srcStride: 0 }), 0],
        ['add vector × 3.7, heads', vector, region({ mode: EDIT_ADD, beta: 3.7, srcStride: 0, mask: heads }), 1.2e-7],
        ['subtract by row', same, region({ mode: EDIT_ADD, beta: -1, srcByRow: true }), 0],
        ['add packed, offset', packed, region({ mode: EDIT_ADD, srcOffset: 13, srcStride: width, width: width - 13, groupSize: 1, mask: null }), 0],
      ];
      for (const [what, src, r, rel] of trials) {
        const xs = r.width === width ? x : x.subarray(0, rows * r.width);
        const cpu = xs.slice();
        editRows(cpu, 0, src, r);
        const got = await runEdit(backend, ctx, xs, src, r);
        let worst = 0;
        for (let i = 0; i < cpu.length; i++) worst = Math.max(worst, Math.abs(got[i]! - cpu[i]!) / Math.max(1, Math.abs(cpu[i]!)));
        expect(worst, `${backend} ${what}`).to.be.at.most(rel);
      }
    });

    it(`[${backend}] fixed small case`, async function () {
      const ctx = backend === 'webgpu' ? await gpuOrSkip(this) : null;
      const x = new Float32Array([1, 2, 3, 4, 5, 6]);                       // [3, 2]
      const got = await runEdit(backend, ctx, x, new Float32Array([10, 20]), { rows: Uint32Array.from([2, 0]), width: 2, groupSize: 1, mask: Uint32Array.from([0, 1]), mode: EDIT_ADD, beta: 2, srcOffset: 0, srcStride: 0 });
      expect(Array.from(got)).to.deep.equal([1, 42, 3, 4, 5, 46]);
    });

    it(`[${backend}] pattern-values: z += ΔP · V with GQA`, async function () {
      const ctx = backend === 'webgpu' ? await gpuOrSkip(this) : null;
      const n = 5, start = 4, kLen = start + n, nHeads = 6, nKvHeads = 2, dHead = 7;
      const z = seededValues(n * nHeads * dHead, 5, 10), delta = seededValues(nHeads * n * kLen, 6, 1), v = seededValues(kLen * nKvHeads * dHead, 7, 100);
      const rows = Uint32Array.from([0, 4, 12, 29]);
      const dims = { n, kLen, nHeads, nKvHeads, dHead };
      const cpu = z.slice();
      addPatternValues(cpu, delta, v, rows, dims);
      let got = cpu;
      if (backend === 'webgpu') {
        const c = ctx!;
        await prepareEdit(c);
        const { refs: [rz, rd, rv] } = packF32(c, [z, delta, v]);
        const index = c.upload(Uint32Array.from([9, ...rows]));
        const [out] = await submitChecked(c, (step) => {
          encodePatternValues(c, step, rz!, rd!, rv!, { buffer: index, rowsAt: 1 }, rows.length, dims);
          return [readF32(step, rz!, z.length)];
        });
        got = new Float32Array(out!);
      }
      const scale = maxAbs(cpu);
      for (let i = 0; i < z.length; i++) expect(Math.abs(got[i]! - cpu[i]!), `z[${i}]`).to.be.at.most(1e-5 * scale);
      expect(Array.from(cpu).some((val, i) => val !== z[i]), 'rows changed').to.equal(true);
    });
  }
});
