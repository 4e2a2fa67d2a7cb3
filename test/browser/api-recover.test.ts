// Worker death: the client notices (the worker's Web Lock, or the heartbeat for a worker that does
// not answer), starts a new worker, reloads the model, reruns what the page holds, retries the
// pending call, and says so; the page's handles keep working and the next result is right.
import { expect } from 'chai';
import { Engine } from '../../src/engine/api.ts';
import { createEngineClient, type RecoverEvent } from '../../src/worker/client.ts';
import { WorkerError } from '../../src/engine/errors.ts';
import { wideModelFile, longPrompt, sameSlice, until, STORIES } from './api-fixtures.ts';

describe('engine worker recovery', function () {
  this.timeout(60000);

  it('worker.terminate() mid-run: the run is retried on a new worker, the model reloaded, handles kept', async () => {
    const file = wideModelFile();
    const events: RecoverEvent[] = [];
    const client = createEngineClient({ onRecover: (e) => events.push(e) });
    const near = new Engine();
    try {
      await Promise.all([client.load({ kind: 'files', files: [file] }, { backend: 'cpu' }), near.load({ kind: 'files', files: [file] }, { backend: 'cpu' })]);
      // a cell that already shows something
      const shown = { tokens: longPrompt(40, 1024), capture: 'blocks.2.attn.hook_pattern', slot: 'shown', requestId: 'shown-1' };
      const hShown = await client.run(shown);
      const before = await client.attention(hShown, { layer: 2, head: 1 });
      // a long run, killed after its first chunk
      const req = { tokens: longPrompt(512, 1024).reverse(), capture: 'blocks.4.attn.hook_pattern', slot: 'edit', requestId: 'long-1' };
      const pending = client.run(req);
      await until(async () => (await client.stats()).cachedPositions >= 64, 'the first chunk');
      const dying = client.worker;
      dying.terminate();
      const h = await pending;                                // retried on the new worker
      expect(client.worker).to.not.equal(dying);
      expect(client.restarts).to.equal(1);
      expect(events).to.have.length(1);
      expect(events[0]!.reason).to.match(/stopped/);
      expect(events[0]!.reloaded).to.equal(true);
      expect(events[0]!.rerun).to.equal(1);                  // the 'shown' cell (the long run was retried instead)
      // the next result is right: the same numbers as an engine in the page
      const hl = await near.run(req);
      expect(h.requestId).to.equal('long-1');
      sameSlice(await client.topK(h, { k: 30 }), await near.topK(hl, { k: 30 }), 'topK after restart');
      sameSlice(await client.attention(h, { layer: 4, head: 3, queries: [500, 512] }), await near.attention(hl, { layer: 4, head: 3, queries: [500, 512] }), 'pattern after restart');
      // the handle the page held from the dead worker still answers, under its own id
      const after = await client.attention(hShown, { layer: 2, head: 1 });
      expect(after.traceId).to.equal(hShown.id);
      sameSlice(after, before, 'a slice of a handle from before the crash');
    } finally {
      client.dispose();
    }
  });

  it('a worker that never answers is found by the heartbeat and replaced; too many deaths give a WorkerError', async () => {
    // the first worker is silent (it hangs), later ones are the real engine
    const silent = URL.createObjectURL(new Blob(['onmessage = () => {};'], { type: 'text/javascript' }));
    let made = 0;
    const events: RecoverEvent[] = [];
    const client = createEngineClient({
      createWorker: () => (made++ === 0 ? new Worker(silent) : new Worker(new URL('../../src/worker/worker.ts', import.meta.url), { type: 'module' })),
      heartbeatMs: 100, heartbeatTimeoutMs: 400, onRecover: (e) => events.push(e),
    });
    try {
      const t0 = performance.now();
      const info = await client.load(STORIES, { backend: 'cpu' });        // retried on the second worker
      expect(info.config.nLayers).to.equal(5);
      expect(performance.now() - t0).to.be.below(10000);
      expect(events).to.have.length(1);
      expect(events[0]!.reason).to.match(/did not answer/);
      expect(events[0]!.reloaded).to.equal(false);                         // nothing had been loaded yet
    } finally {
      client.dispose();
    }

    // every worker dies at once: after maxRestartsPerMinute, calls fail with a WorkerError
    const broken = URL.createObjectURL(new Blob(['throw new Error("boom")'], { type: 'text/javascript' }));
    const doomed = createEngineClient({ createWorker: () => new Worker(broken), maxRestartsPerMinute: 2, heartbeatMs: 100, heartbeatTimeoutMs: 400 });
    try {
      const err = await doomed.ping().catch((e: unknown) => e);
      expect(err).to.be.instanceOf(WorkerError);
      expect((err as Error).message).to.match(/stopped 3 times within a minute/);
      expect(doomed.restarts).to.equal(2);
    } finally {
      doomed.dispose();
    }
  });

  it('dispose() ends pending calls with a WorkerError and restarts nothing', async () => {
    const events: RecoverEvent[] = [];
    const client = createEngineClient({ onRecover: (e) => events.push(e) });
    const pending = client.load(STORIES, { backend: 'cpu' });
    client.dispose();
    const err = await pending.catch((e: unknown) => e);
    expect(err).to.be.instanceOf(WorkerError);
    expect((err as Error).message).to.match(/disposed/);
    expect(client.restarts).to.equal(0);
    expect(events).to.have.length(0);
    expect(await client.ping().catch((e: unknown) => e)).to.be.instanceOf(WorkerError);
  });
});
