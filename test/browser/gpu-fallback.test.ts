// Backend choice and device loss: a session whose GPU disappears mid-generation finishes on the
// CPU with the same tokens, and says so; a refused adapter names its reason.
import { expect } from 'chai';
import { gpuOrSkip } from '../support/gpu.ts';
import { loadStories, storiesRef } from '../support/gpu-models.ts';
import { Session, type BackendChange } from '../../src/engine/session.ts';
import { generateAsync } from '../../src/engine/generate.ts';
import { chooseBackend } from '../../src/engine/backend.ts';
import { UsageError } from '../../src/engine/errors.ts';

describe('WebGPU backend choice and fallback [webgpu]', function () {
  this.timeout(120000);

  it('[webgpu] device destroyed mid-generation: the run finishes on the CPU with the golden tokens, and the notice fires', async function () {
    await gpuOrSkip(this);
    const [weights, ref] = await Promise.all([loadStories(), storiesRef()]);
    const backend = await chooseBackend({ weights });           // a device of its own: this test destroys it
    expect(backend.kind).to.equal('webgpu');
    if (backend.kind !== 'webgpu') return;
    const changes: BackendChange[] = [];
    const session = new Session(weights, { backend, onBackendChange: (c) => changes.push(c) });
    expect(() => session.run([1])).to.throw(UsageError, /runAsync/);
    const ids = [1];
    for await (const id of generateAsync(session, [1], { maxTokens: 64, temperature: 0, stopAtEos: false })) {
      ids.push(id);
      if (ids.length === 21) backend.ctx.device.destroy();      // after 20 tokens on the GPU
    }
    expect(ids).to.deep.equal(ref.token_ids.slice(0, 65));
    expect(changes.length).to.equal(1);
    expect(changes[0]!.to).to.equal('cpu');
    expect(changes[0]!.reason).to.match(/lost|destroyed/i);
    expect(session.backend).to.equal('cpu');
    expect(session.backendReason).to.match(/continuing on the CPU/);
    // and the CPU session keeps working synchronously
    expect(session.run(ref.token_ids.slice(0, 66), { logits: 'top' }).top!.ids[0]).to.equal(ref.token_ids[66]);
  });

  it('[webgpu] chooseBackend: the CPU when asked, or with the reason when the model cannot be bound', async function () {
    await gpuOrSkip(this);
    const weights = await loadStories();
    const cpu = await chooseBackend({ prefer: 'cpu' });
    expect(cpu.kind).to.equal('cpu');
    // a binding limit below one row of the 512-wide logits (2 KiB): refused, with the reason
    const tiny = await chooseBackend({ weights, maxBindingBytes: 1024 });
    expect(tiny.kind).to.equal('cpu');
    if (tiny.kind === 'cpu') expect(tiny.reason).to.match(/binds at most 1024/);
    const none = await chooseBackend({ gpu: { requestAdapter: async () => null } as unknown as GPU });
    expect(none.kind).to.equal('cpu');
    if (none.kind === 'cpu') expect(none.reason).to.match(/no WebGPU adapter/);
  });
});
