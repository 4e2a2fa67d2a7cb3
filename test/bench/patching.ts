// The time of a full activation-patching grid (issue 12): src/engine/patching.ts's patchingGrid on
// a random-weight model, the residual grid (layers × positions) and the heads grid (layers ×
// heads), for several prompt lengths, on the CPU and on WebGPU.
//
// The peer, measured in the same run: the naive grid, one full forward pass of the whole prompt
// per cell (what a loop of independent patched runs without a KV cache costs): cells × the time
// of one P-token run from position 0 (median of 6, alternating two prompts whose first tokens
// differ, so that no run reuses the other's cache).
//
// Each patched run starts at its patched layer (RunRequest.startLayer): the blocks below it are
// counted as skipped.
//
// The corrupted prompt is the clean one with the tokens at P/4 and P/2 replaced, as in a typical
// patching experiment (a name swapped); cells before the first changed position patch in values
// equal to the corrupted run's own, which patchingGrid skips exactly (they are counted apart).
//
//   node --import tsx test/bench/patching.ts [--backend cpu|webgpu] [--shape stories15M] [--type Q8_0]
//        [--positions 8,16,32] [--threads 2]
// WebGPU in Node needs the `webgpu` package (npm install --no-save webgpu); without a GPU, Dawn
// finds SwiftShader with VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json
// LD_LIBRARY_PATH=/usr/lib/chromium (its times only guard against regressions).

import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { cpus, loadavg } from 'node:os';
import { Engine } from '../../src/engine/api.ts';
import { patchingGrid } from '../../src/engine/patching.ts';
import { nodeGpu } from '../../src/engine/gpu/node.ts';
import { Rng } from '../../src/engine/random.ts';
import type { TensorTypeName } from '../../src/formats/tensor.ts';
import { benchModelFile } from './models.ts';

const { values } = parseArgs({
  options: {
    backend: { type: 'string' }, shape: { type: 'string' }, type: { type: 'string' }, positions: { type: 'string' }, threads: { type: 'string' },
  },
});
const backend = (values.backend ?? 'cpu') as 'cpu' | 'webgpu';
const shape = values.shape ?? 'stories15M';
const type = (values.type ?? 'Q8_0') as TensorTypeName;
const lengths = (values.positions ?? '8,16,32').split(',').map(Number);
const threads = Number(values.threads ?? 2);

const file = await benchModelFile(shape, type);
const engine = new Engine({ ...(backend === 'webgpu' ? { gpu: await nodeGpu() } : {}) });
const info = await engine.load({ kind: 'files', files: [new File([readFileSync(file)], basename(file))] }, { backend, threads });
const c = info.config;
console.log(`patching grid, ${shape} ${type} (random weights, ${c.nLayers} layers × ${c.nHeads} heads), ${info.backend}`
  + `${info.backend === 'cpu' ? ` (${info.cpu.kernels}, ${info.cpu.threads} threads)` : ''}; ${cpus()[0]?.model ?? '?'}, ${cpus().length} cores, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log('| P | resid cells (run / skipped) | heads cells (run / skipped) | positions computed / reused | blocks computed / skipped below the patch | grid s | one P-token run ms | naive grid s (peer) | grid / naive |');
console.log('|---|---|---|---|---|---|---|---|---|');

const rng = new Rng(7);
const ids = (n: number) => Array.from({ length: n }, () => 1 + Math.floor(rng.next() * (c.vocabSize - 1)));
for (const P of lengths) {
  const clean = ids(P);
  const corrupted = [...clean];
  for (const p of [Math.floor(P / 4), Math.floor(P / 2)]) corrupted[p] = (clean[p]! + 17) % c.vocabSize;

  // the peer: one full P-token run, no cache reuse (two prompts with different first tokens)
  const other = [(clean[0]! + 1) % c.vocabSize, ...clean.slice(1)];
  const times: number[] = [];
  for (let i = 0; i < 6; i++) {
    const t0 = performance.now();
    const h = await engine.run({ tokens: i % 2 ? other : clean, slot: 'bench:full' });
    await engine.logits(h, { position: P - 1 });
    times.push(performance.now() - t0);
    if (h.reused !== 0) throw new Error(`the full run reused ${h.reused} positions`);
    await engine.release(h);
  }
  times.sort((a, b) => a - b);
  const full = (times[2]! + times[3]!) / 2;

  // random weights: the two prompts often share their top token, so target and foil are the
  // clean run's first and second (a run the grid's own clean run then repeats)
  const row = (await engine.logits(await engine.run({ tokens: clean, slot: 'bench:top' }), { position: P - 1 })).data;
  const [target, foil] = [...row.keys()].sort((a, b) => row[b]! - row[a]!);
  const t0 = performance.now();
  const r = await patchingGrid(engine, { clean, corrupted, target, foil, slot: 'bench:grid' }, c);
  const s = (performance.now() - t0) / 1000;
  const count = (g: typeof r.resid) => { let k = 0; for (const v of g!.skipped) k += v; return `${g!.skipped.length - k} / ${k}`; };
  const cells = c.nLayers * (P + c.nHeads);
  const naive = cells * full / 1000;
  const blocks = r.computedPositions * c.nLayers - r.skippedBlocks;
  console.log(`| ${P} | ${count(r.resid)} | ${count(r.heads)} | ${r.computedPositions} / ${r.reusedPositions} | ${blocks} / ${r.skippedBlocks} | ${s.toFixed(2)} | ${full.toFixed(1)} | ${naive.toFixed(2)} | ${(s / naive).toFixed(2)} |`);
}
