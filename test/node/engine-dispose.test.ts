// Switching models frees the old one: Engine.load disposes the previous session, whose WebAssembly
// worker threads hold the shared weight memory (before the fix, each switch kept ~1 model alive).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/engine/api.ts';
import { synthModel } from '../../src/formats/synth.ts';
import type { ModelConfig } from '../../src/engine/config.ts';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

// A collection between loads, so that what stays is what is still referenced.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const config: ModelConfig = {
  arch: 'llama', name: 'dispose-test', nLayers: 2, dModel: 256, dFfn: 768, nHeads: 4, nKvHeads: 2, dHead: 64,
  vocabSize: 4096, nCtx: 256, rmsEps: 1e-5, ropeTheta: 10000, ropeScaling: null, tiedEmbeddings: false, bosId: 1, eosId: 2,
};

test('loading model after model keeps memory flat (threads and scratch of the old session are freed)', async () => {
  const bytes = synthModel({ config, type: 'F32', seed: 3, format: 'gguf' }).files[0]!.bytes;  // ~12 MB
  const file = () => new File([bytes as Uint8Array<ArrayBuffer>], 'dispose-test.gguf');
  const engine = new Engine();
  const rss: number[] = [];
  for (let i = 0; i < 10; i++) {
    await engine.load({ kind: 'files', files: [file()] }, { threads: 2 });
    await engine.run({ tokens: [1, 5, 9, 13], requestId: `r${i}` });
    gc();
    await new Promise((r) => setTimeout(r, 50));
    rss.push(process.memoryUsage().rss);
  }
  // A leak keeps every 12 MB model: it raises the floor by that much a switch. The allocator's and
  // the collector's timing move single readings by up to ~40 MB either way, but not the lowest of
  // a few: compare the lowest reading of loads 2–4 with that of loads 8–10 (six switches apart,
  // which a leak would raise by 70 MB or more; without the fix it grew 150).
  const floor = (from: number, to: number) => Math.min(...rss.slice(from, to));
  const growth = (floor(7, 10) - floor(1, 4)) / 2 ** 20;
  assert.ok(growth < 30, `RSS floor grew ${growth.toFixed(1)} MB over 6 model switches: ${rss.map((r) => (r / 2 ** 20).toFixed(0)).join(', ')}`);
});
