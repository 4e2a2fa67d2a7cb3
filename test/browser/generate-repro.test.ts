// Reproducibility of sampled generation across environments (issue 9): the same seed and chain
// options give the same 64 tokens in Node (test/node/engine-sampler.test.ts checks the fixture
// against src/engine/generate.ts), in the worker on the CPU and in the worker on WebGPU, both
// driven through the notebook's own stepping code (src/app/generation.ts). The draw for position i
// is drawUniform(seed, i) everywhere; stories260K is F32, so the CPU and the GPU compute logits
// that agree to about 1e-6 and the draws land in the same candidates.
import { expect } from 'chai';
import { createEngineClient, type EngineClient } from '../../src/worker/client.ts';
import { BranchTree } from '../../src/engine/branches.ts';
import { resolveOptions } from '../../src/engine/sampling/index.ts';
import { step } from '../../src/app/generation.ts';
import { STORIES } from './api-fixtures.ts';
import { gpuOrSkip } from '../support/gpu.ts';

interface Fixture { prompt: number[]; options: Record<string, number>; seed: number; tokens: number[] }
let fixture: Fixture;

async function generateIn(client: EngineClient): Promise<number[]> {
  const info = (await client.info())!;
  const tree = new BranchTree();
  const env = { client, nCtx: info.config.nCtx, vocabSize: info.config.vocabSize, stopIds: new Set<number>() };
  const req = { promptIds: fixture.prompt, tree, branch: 'main', options: resolveOptions(fixture.options), seed: fixture.seed, slot: 'repro' };
  for (let i = 0; i < fixture.tokens.length; i++) expect(await step(env, req)).to.equal('token');
  return tree.ids('main');
}

describe('seeded generation: the same tokens in Node, the worker on the CPU and on WebGPU', function () {
  this.timeout(180000);
  before(async () => {
    fixture = await (await fetch(new URL('../fixtures/seeded-generation.json', import.meta.url))).json() as Fixture;
  });

  it('the worker on the CPU gives the Node tokens', async () => {
    const client = createEngineClient();
    try {
      const info = await client.load(STORIES, { backend: 'cpu' });
      expect(info.backend).to.equal('cpu');
      expect(await generateIn(client)).to.deep.equal(fixture.tokens);
    } finally {
      client.dispose();
    }
  });

  it('[webgpu] the worker on WebGPU gives the Node tokens', async function () {
    await gpuOrSkip(this);
    const client = createEngineClient();
    try {
      const info = await client.load(STORIES, { backend: 'webgpu' });
      expect(info.backend, info.backendReason ?? '').to.equal('webgpu');
      expect(await generateIn(client)).to.deep.equal(fixture.tokens);
    } finally {
      client.dispose();
    }
  });
});
