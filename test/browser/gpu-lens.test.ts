// The logit lens on a WebGPU session runs the output head on the GPU (src/engine/gpu/forward.ts
// lensHeadGpu: the logits reduced there to each row's top k, sum of exponentials and the target's
// rank, the readback 8·k + 12 bytes a row): at the last layer it equals the logits the GPU forward pass computed for the same
// rows; at every layer it equals the CPU engine's lens within the two backends' f32 agreement
// (stories260K is F32: logits within 1e-3, the top ids the same where the top two are apart); it
// stays cancellable, and a GPU that disappears leaves the lens to the CPU with the same answers.
import { expect } from 'chai';
import { gpuOrSkip } from '../support/gpu.ts';
import { Engine } from '../../src/engine/api.ts';
import { resolveModelSource } from '../../src/worker/loading/index.ts';
import { CancelledError } from '../../src/engine/errors.ts';
import { maxAbs, loadStories } from '../support/gpu-models.ts';
import { Session, type BackendChange } from '../../src/engine/session.ts';
import { chooseBackend } from '../../src/engine/backend.ts';
import { lensRows } from '../../kernels/argmax/argmax.cpu.ts';

const MODEL = '/models/local/tinystories-260k/stories260K.gguf';
const CAPTURE = ['hook_embed', 'blocks.*.hook_resid_post'];

describe('logit lens on WebGPU [webgpu]', function () {
  this.timeout(300000);

  it('[webgpu] the output head on the GPU: the last layer is the model\'s GPU logits, every layer the CPU lens within f32 agreement', async function () {
    await gpuOrSkip(this);
    const cpu = new Engine({ resolveSource: resolveModelSource }), gpu = new Engine({ resolveSource: resolveModelSource });
    await cpu.load({ kind: 'local', paths: [MODEL] }, { backend: 'cpu', threads: 1 });
    expect((await gpu.load({ kind: 'local', paths: [MODEL] }, { backend: 'webgpu' })).backend).to.equal('webgpu');
    const tokens = (await cpu.tokenize('Once upon a time there was a little girl named Lily. She liked to play')).ids;
    const n = tokens.length;
    const [hc, hg] = [await cpu.run({ tokens, capture: CAPTURE }), await gpu.run({ tokens, capture: CAPTURE, logits: 'all' })];
    const query = { positions: [...tokens.keys()], k: 5, target: 403 };
    const [lc, lg] = [await cpu.logitLens(hc, query), await gpu.logitLens(hg, query)];
    const L = lg.layers.length;
    expect(L * n, 'more rows than one batch of 64').to.be.above(64);
    // the last layer: the GPU forward pass's own logits (rows the prefill computed with the same kernels)
    const gpuLogits = (await gpu.logits(hg, { position: n - 1 })).data;
    const last = ((L - 1) * n + n - 1) * 5;
    const order = [...gpuLogits.keys()].sort((a, b) => gpuLogits[b]! - gpuLogits[a]! || a - b).slice(0, 5);
    expect([...lg.ids.subarray(last, last + 5)]).to.deep.equal(order);
    // the same kernels on the same rows: the same bits, at every position (the CPU head differs in the last bits)
    for (let p = 0; p < n; p++) {
      const row = (await gpu.logits(hg, { position: p })).data, o = ((L - 1) * n + p) * 5;
      expect([...lg.logits.subarray(o, o + 5)], `position ${p}`).to.deep.equal([...lg.ids.subarray(o, o + 5)].map((i) => row[i]!));
    }
    // every layer and position: the CPU lens within f32 agreement
    expect(maxAbs(lg.logits, lc.logits), 'top logits').to.be.below(1e-3);
    expect(maxAbs(lg.probs, lc.probs), 'top probabilities').to.be.below(1e-4);
    expect(maxAbs(lg.targetProbs!, lc.targetProbs!), 'target probabilities').to.be.below(1e-4);
    let same = 0, close = 0;
    for (let r = 0; r < L * n; r++) {
      const gap = lc.logits[r * 5]! - lc.logits[r * 5 + 1]!;
      if (gap > 1e-2) { expect(lg.ids[r * 5], `row ${r}: the top id`).to.equal(lc.ids[r * 5]); same++; } else close++;
    }
    expect(same, `${close} near-ties skipped`).to.be.above(L * n * 0.9);
    // cancellable on the GPU too
    const pending = gpu.logitLens(hg, { ...query, k: 4 }, { requestId: 'gpu-lens' });
    expect(await gpu.cancel('gpu-lens')).to.equal(true);
    let error: unknown = null;
    await pending.catch((e: unknown) => { error = e; });
    expect(error).to.be.instanceOf(CancelledError);
    expect((await gpu.stats()).pending).to.equal(0);
  });

  it('[webgpu] Session.outputHeadAsync runs on the GPU (two dispatches a batch), lensHeadAsync reduces the rows there (three), and both run on the CPU once the device is gone (the lens head still reducing the rows)', async function () {
    await gpuOrSkip(this);
    const weights = await loadStories();
    const backend = await chooseBackend({ weights });           // a device of its own: this test destroys it
    if (backend.kind !== 'webgpu') throw new Error(`no WebGPU backend: ${backend.reason}`);
    const changes: BackendChange[] = [];
    const session = new Session(weights, { backend, onBackendChange: (c) => changes.push(c) });
    await session.ready();
    const d = weights.config.dModel, n = 100;
    const x = new Float32Array(n * d);
    for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.37) * 2;
    const before = backend.ctx.stats.dispatches, readBefore = backend.ctx.stats.readbackBytes;
    const onGpu = await session.outputHeadAsync(x, n);
    expect(backend.ctx.stats.dispatches - before, 'rmsnorm and one matmul').to.equal(2);
    expect(backend.ctx.stats.readbackBytes - readBefore, 'the logits').to.equal(4 * n * weights.config.vocabSize);
    const onCpu = session.outputHead(x, n);
    expect(onGpu.length).to.equal(n * weights.config.vocabSize);
    expect(maxAbs(onGpu, onCpu)).to.be.below(1e-3);
    // the lens head: the same logits reduced on the GPU (three dispatches), what lensRows makes of them
    const V = weights.config.vocabSize, k = 7, target = 403;
    const mark = backend.ctx.stats.dispatches, read = backend.ctx.stats.readbackBytes;
    const reduced = await session.lensHeadAsync(x, n, k, target);
    expect(backend.ctx.stats.dispatches - mark, 'rmsnorm, one matmul, lens rows').to.equal(3);
    expect(backend.ctx.stats.readbackBytes - read, 'ids, values and 3 words a row; not the logits').to.equal(n * (8 * k + 12));
    if (reduced instanceof Float32Array) throw new Error('the lens head read back the logits');
    const want = lensRows(onGpu, n, V, k, target);
    expect(reduced.ids).to.deep.equal(want.ids);
    expect(reduced.values).to.deep.equal(want.values);
    expect(reduced.ranks).to.deep.equal(want.ranks);
    expect(reduced.targetValues).to.deep.equal(want.targetValues);
    for (let r = 0; r < n; r++) expect(Math.abs(reduced.sums[r]! - want.sums[r]!), `row ${r} sum`).to.be.at.most(1e-5 * want.sums[r]!);
    expect(await session.lensHeadAsync(x, n, 65, target), 'k over 64: the logits').to.be.instanceOf(Float32Array);
    backend.ctx.device.destroy();
    const after = await session.outputHeadAsync(x, n);
    expect(session.backend).to.equal('cpu');
    expect(changes.map((c) => c.to)).to.deep.equal(['cpu']);
    expect(after).to.deep.equal(session.outputHead(x, n));
    // on the CPU the rows are reduced too (the kernels' lensRows), the twin's answer on the CPU's logits
    const onCpuReduced = await session.lensHeadAsync(x, n, k, target);
    if (onCpuReduced instanceof Float32Array) throw new Error('the CPU lens head gave the logits');
    expect(onCpuReduced).to.deep.equal(session.lensHead(x, n, k, target));
    const cpuWant = lensRows(session.outputHead(x, n), n, V, k, target);
    expect(onCpuReduced.ids).to.deep.equal(cpuWant.ids);
    expect(onCpuReduced.values).to.deep.equal(cpuWant.values);
    expect(onCpuReduced.ranks).to.deep.equal(cpuWant.ranks);
    for (let r = 0; r < n; r++) expect(Math.abs(onCpuReduced.sums[r]! - cpuWant.sums[r]!), `CPU row ${r} sum`).to.be.at.most(1e-5 * cpuWant.sums[r]!);
  });
});
