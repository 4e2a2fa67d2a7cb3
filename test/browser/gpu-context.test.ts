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

/** SCALE's Params: n (u32) and the factor (f32). */
function scaleParams(n: number, factor: number): Uint8Array {
  const b = new ArrayBuffer(8);
  new Uint32Array(b, 0, 1)[0] = n;
  new Float32Array(b, 4, 1)[0] = factor;
  return new Uint8Array(b);
}

describe('GPU context [webgpu]', () => {
  it('[webgpu] runs dispatches in order with per-dispatch uniforms and reads back once', async function () {
    const ctx = await gpuOrSkip(this);
    const pipe = await ctx.pipeline('scale', () => SCALE);
    const again = await ctx.pipeline('scale', () => { throw new Error('compiled twice'); });
    expect(again).to.equal(pipe);
    const n = 1000;
    const x = ctx.upload(Float32Array.from({ length: n }, (_, i) => i));
    const y = ctx.buffer(n * 4), z = ctx.buffer(n * 4);
    const params = (factor: number) => scaleParams(n, factor);
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

  it('[webgpu] flush() sends work ahead without breaking order; later steps reuse uniform rings and bind groups', async function () {
    const ctx = await gpuOrSkip(this);
    const pipe = await ctx.pipeline('scale', () => SCALE);
    const n = 300;
    const x = ctx.upload(Float32Array.from({ length: n }, (_, i) => i + 1));
    const a = ctx.buffer(n * 4), b = ctx.buffer(n * 4);
    const params = (factor: number) => scaleParams(n, factor);
    // count the bind groups the device is asked for
    const device = ctx.device as GPUDevice & { createBindGroup: GPUDevice['createBindGroup'] };
    const create = device.createBindGroup.bind(device);
    let made = 0;
    device.createBindGroup = (d) => { made++; return create(d); };
    try {
      const run = async (f1: number, f2: number, f3: number) => {
        const before = { ...ctx.stats };
        const step = ctx.begin('flushed');
        step.dispatch(pipe, [x, a], params(f1), [Math.ceil(n / 64)]);      // a = x·f1
        step.flush();                                                        // on its way
        step.dispatch(pipe, [a, b], params(f2), [Math.ceil(n / 64)]);      // b = a·f2: reads the flushed result
        step.flush();
        step.dispatch(pipe, [b, a], params(f3), [Math.ceil(n / 64)]);      // a = b·f3
        const r = step.read(a, 0, n * 4);
        await step.submit();
        expect(ctx.stats.submits - before.submits).to.equal(1);
        expect(ctx.stats.flushes - before.flushes).to.equal(2);
        return new Float32Array(await r);
      };
      const first = await run(2, 3, 5);
      expect(first[0]).to.equal(30);
      expect(first[n - 1]).to.equal(n * 30);
      const madeFirst = made;
      expect(madeFirst).to.equal(3);
      // the same dispatches with other uniform values: new numbers, no new bind group
      const second = await run(1, 0.5, 4);
      expect(second[9]).to.equal(20);
      expect(made).to.equal(madeFirst);
    } finally {
      device.createBindGroup = create;
    }
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
