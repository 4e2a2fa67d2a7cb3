// The random-weight benchmark models (shared by `npm run bench` and test/bench/app.ts): GGUFs of
// the real shapes with seeded weights, synthesised once into .cache/bench/ and reused.

import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { shapeConfig, synthGgufStream } from '../../src/formats/synth.ts';
import type { TensorTypeName } from '../../src/formats/tensor.ts';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
export const cacheDir = join(root, '.cache', 'bench');
export const SEED = 1;

/** The model's GGUF in .cache/bench, synthesised (streamed, with progress) when missing. */
export async function benchModelFile(shape: string, type: TensorTypeName): Promise<string> {
  const m = { shape, type };
  const path = join(cacheDir, `${m.shape}-${m.type}-seed${SEED}.gguf`);
  if (existsSync(path)) return path;
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${path}.part-${process.pid}`;
  const fh = await open(tmp, 'w');
  const t0 = performance.now();
  let written = 0;
  let shown = -1;
  try {
    await synthGgufStream({ config: shapeConfig(m.shape), type: m.type, seed: SEED, format: 'gguf' }, async (b) => {
      await fh.write(b);
      written += b.length;
      const mb = Math.floor(written / 2 ** 20 / 100);
      if (mb !== shown) {
        shown = mb;
        process.stdout.write(`\r  synth ${m.shape} ${m.type}: ${(written / 2 ** 20).toFixed(0)} MB, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
      }
    });
  } catch (e) {
    await fh.close();
    rmSync(tmp, { force: true });
    throw e;
  }
  await fh.close();
  renameSync(tmp, path);
  console.log(`\r  synth ${m.shape} ${m.type}: ${(written / 2 ** 20).toFixed(0)} MB in ${((performance.now() - t0) / 1000).toFixed(0)} s → ${path}`);
  return path;
}

