// The intervention drivers on WebGPU against the CPU (issue 12: "every intervention works on the
// CPU and on WebGPU with the same results"): the activation-patching grid (src/engine/patching.ts),
// the steering vector of two prompt sets (src/engine/steering.ts) and a steered run, and a mean
// ablation, each through an in-page Engine on stories260K loaded once per backend. The kernels
// behind them are compared op by op in gpu-edits.test.ts; here the whole path is: the engine's
// runs with edits, its KV-cache reuse between patched runs, captures and slices.
//
// Tolerances: the GPU sums f32 in another order than the CPU (stories260K is F32, so neither
// quantizes activations): logits within 1e-3, resid_post rows within 1e-4 · (1 + |x|). A restored
// fraction divides a logit difference by (clean − corrupted), so it is compared through the
// differences it is made of.
import { expect } from 'chai';
import { gpuOrSkip } from '../support/gpu.ts';
import { Engine } from '../../src/engine/api.ts';
import { resolveModelSource } from '../../src/worker/loading/index.ts';
import { patchingGrid } from '../../src/engine/patching.ts';
import { steeringVector, steerEdits } from '../../src/engine/steering.ts';
import { meanOverPositions, type Edit } from '../../src/engine/edits.ts';
import { maxAbs } from '../support/gpu-models.ts';

const MODEL = '/models/local/tinystories-260k/stories260K.gguf';

async function engines(): Promise<{ cpu: Engine; gpu: Engine }> {
  const cpu = new Engine({ resolveSource: resolveModelSource }), gpu = new Engine({ resolveSource: resolveModelSource });
  await cpu.load({ kind: 'local', paths: [MODEL] }, { backend: 'cpu', threads: 1 });
  const info = await gpu.load({ kind: 'local', paths: [MODEL] }, { backend: 'webgpu' });
  expect(info.backend).to.equal('webgpu');
  return { cpu, gpu };
}

async function lastRow(e: Engine, tokens: number[], edits: Edit[], slot: string): Promise<Float32Array> {
  const h = await e.run({ tokens, edits, slot });
  const row = (await e.logits(h, { position: tokens.length - 1 })).data;
  await e.release(h);
  return row;
}

describe('interventions through the engine on WebGPU equal the CPU [webgpu]', function () {
  this.timeout(300000);
  let both: { cpu: Engine; gpu: Engine } | null = null;
  const get = async () => (both ??= await engines());

  it('[webgpu] the patching grid: every cell\'s logit difference, and the same cells skipped', async function () {
    await gpuOrSkip(this);
    const { cpu, gpu } = await get();
    const clean = (await cpu.tokenize('Tom gave Lily the ball. Lily gave it to')).ids;
    const corrupted = (await cpu.tokenize('Sam gave Lily the ball. Lily gave it to')).ids;
    expect(corrupted.length).to.equal(clean.length);
    const T = (await cpu.tokenize('Tom', { bos: false })).ids[0]!, S = (await cpu.tokenize('Sam', { bos: false })).ids[0]!;
    const shape = { nLayers: 5, nHeads: 8 };
    const a = await patchingGrid(cpu, { clean, corrupted, target: T, foil: S }, shape);
    const b = await patchingGrid(gpu, { clean, corrupted, target: T, foil: S }, shape);
    expect(b.runs).to.equal(a.runs);
    expect(Math.abs(b.cleanDiff - a.cleanDiff)).to.be.below(1e-3);
    expect(Math.abs(b.corruptedDiff - a.corruptedDiff)).to.be.below(1e-3);
    for (const g of ['resid', 'heads'] as const) {
      const x = a[g]!, y = b[g]!;
      expect(Array.from(y.skipped), `${g} skipped cells`).to.deep.equal(Array.from(x.skipped));
      expect(maxAbs(y.diff, x.diff), `${g} logit differences`).to.be.below(1e-3);
      // fraction = (diff − corrupted) / (clean − corrupted): its error is the differences' over the span
      const span = Math.abs(a.cleanDiff - a.corruptedDiff);
      expect(maxAbs(y.fraction, x.fraction), `${g} fractions`).to.be.below(3e-3 / span + 1e-5);
      expect(x.skipped.includes(0), `${g}: some cells were run`).to.equal(true);
    }
  });

  it('[webgpu] the steering vector of two prompt sets, and the run it steers', async function () {
    await gpuOrSkip(this);
    const { cpu, gpu } = await get();
    const ids = async (t: string) => (await cpu.tokenize(t)).ids;
    const positive = [await ids('Lily was happy and smiled'), await ids('The sun was warm and bright')];
    const negative = [await ids('Lily was sad and cried'), await ids('The rain was cold and dark')];
    const layers = [1, 2, 3, 4];
    const va = await steeringVector(cpu, { positive, negative, layers, bosId: 1 });
    const vb = await steeringVector(gpu, { positive, negative, layers, bosId: 1 });
    for (const l of layers) {
      const x = va.get(l)!, y = vb.get(l)!;
      const scale = 1 + Math.max(...Array.from(x, Math.abs));
      expect(maxAbs(y, x), `direction.${l}`).to.be.below(1e-4 * scale);
    }
    // both backends steer with the CPU's vector: the rows differ only by the backend
    const prompt = await ids('Once upon a time there was a little girl');
    const edits = steerEdits(va, 0.8, [2, 3]);
    const [ra, rb, plain] = await Promise.all([lastRow(cpu, prompt, edits, 'steer'), lastRow(gpu, prompt, edits, 'steer'), lastRow(cpu, prompt, [], 'plain')]);
    expect(maxAbs(rb, ra), 'steered logits').to.be.below(1e-3);
    expect(maxAbs(ra, plain), 'the vector changes the logits').to.be.above(1e-2);
  });

  it('[webgpu] a run from a start layer on the recorded residual gives the whole run\'s logits', async function () {
    await gpuOrSkip(this);
    const { gpu } = await get();
    const corrupted = (await gpu.tokenize('Sam gave Lily the ball. Lily gave it to')).ids;
    const clean = (await gpu.tokenize('Tom gave Lily the ball. Lily gave it to')).ids;
    const ref = await gpu.run({ tokens: corrupted, capture: ['blocks.3.hook_resid_pre'], slot: 'start' });
    const residual = (await gpu.activation(ref, 'blocks.3.hook_resid_pre')).data;
    const plain = (await gpu.logits(ref, { position: corrupted.length - 1 })).data;   // (the slot's next run replaces its trace)
    const z = await gpu.run({ tokens: clean, capture: ['blocks.3.attn.hook_z'], slot: 'start:clean' });
    const positions = Array.from({ length: corrupted.length - 1 }, (_, i) => i + 1);
    const edits: Edit[] = [{ hook: 'blocks.3.attn.hook_z', op: 'patch', heads: [2], positions, values: (await gpu.activation(z, 'blocks.3.attn.hook_z')).data }];
    const h = await gpu.run({ tokens: corrupted, edits, startLayer: { layer: 3, residual }, slot: 'start' });
    expect(h.reused, 'the prefix before the patch').to.equal(1);
    const fromLayer = (await gpu.logits(h, { position: corrupted.length - 1 })).data;
    const whole = await lastRow(gpu, corrupted, edits, 'start:whole');
    expect(maxAbs(fromLayer, whole), 'from layer 3 vs every layer').to.equal(0);
    expect(maxAbs(whole, plain), 'the patch changes the logits').to.be.above(1e-4);
  });

  it('[webgpu] a mean ablation of heads and neurons', async function () {
    await gpuOrSkip(this);
    const { cpu, gpu } = await get();
    const tokens = (await cpu.tokenize('Once upon a time there was a little girl named Lily')).ids;
    const ref = await cpu.run({ tokens, capture: ['blocks.1.attn.hook_z', 'blocks.3.ffn.hook_act'], slot: 'ref' });
    const edits: Edit[] = [
      { hook: 'blocks.1.attn.hook_z', op: 'mean', heads: [2, 5], vector: meanOverPositions(await cpu.activation(ref, 'blocks.1.attn.hook_z'), 1) },
      { hook: 'blocks.3.ffn.hook_act', op: 'mean', neurons: [4, 40, 99], vector: meanOverPositions(await cpu.activation(ref, 'blocks.3.ffn.hook_act'), 1) },
    ];
    const [ra, rb] = await Promise.all([lastRow(cpu, tokens, edits, 'mean'), lastRow(gpu, tokens, edits, 'mean')]);
    expect(maxAbs(rb, ra), 'mean-ablated logits').to.be.below(1e-3);
    expect(maxAbs(ra, (await cpu.logits(ref, { position: tokens.length - 1 })).data), 'the ablation changes the logits').to.be.above(1e-3);
  });
});
