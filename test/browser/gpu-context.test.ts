// The GPU context itself: pipelines compile once, a step's dispatches run in order with their own
// uniforms, and one submit resolves every readback.
import { expect } from 'chai';
import { gpuOrSkip } from '../support/gpu.ts';

const SCALE = /* wgsl */ `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
struct Params { n: u32, factor: f32 }
@group(0) @binding(2) var<uniform> p: Params;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u) {
  if (id.x < p.n) { y[id.x] = x[id.x] * p.factor; }
}`;

describe('GPU context [webgpu]', () => {
  it('[webgpu] runs dispatches in order with per-dispatch uniforms and reads back once', async function () {
    const ctx = await gpuOrSkip(this);
    const pipe = await ctx.pipeline('scale', () => SCALE);
    const again = await ctx.pipeline('scale', () => { throw new Error('compiled twice'); });
    expect(again).to.equal(pipe);
    const n = 1000;
    const x = ctx.upload(Float32Array.from({ length: n }, (_, i) => i));
    const y = ctx.buffer(n * 4), z = ctx.buffer(n * 4);
    const params = (factor: number) => {
      const b = new ArrayBuffer(8);
      new Uint32Array(b, 0, 1)[0] = n;
      new Float32Array(b, 4, 1)[0] = factor;
      return new Uint8Array(b);
    };
    const before = ctx.stats.submits;
    const step = ctx.begin();
    step.dispatch(pipe, [x, y], params(2), [Math.ceil(n / 64)]);
    step.dispatch(pipe, [y, z], params(3), [Math.ceil(n / 64)]);
    const ry = step.read(y, 0, n * 4);
    const rz = step.read(z, 4 * 10, 4 * 5);
    await step.submit();
    expect(ctx.stats.submits - before).to.equal(1);
    const fy = new Float32Array(await ry), fz = new Float32Array(await rz);
    expect(fy[999]).to.equal(1998);
    expect(Array.from(fz)).to.deep.equal([60, 66, 72, 78, 84]);
  });

  it('[webgpu] reports WGSL compile errors with the kernel name and line', async function () {
    const ctx = await gpuOrSkip(this);
    try {
      await ctx.pipeline('broken', () => 'fn main() { let x: f32 = true; }');
      expect.fail('should not compile');
    } catch (e) {
      expect((e as Error).message).to.match(/broken/);
    }
  });
});
