// glassbox synth --shape NAME|--config FILE --type T --seed S --out FILE(.gguf|.safetensors):
// random-weight models of any shape and tensor type, for tests and benchmarks.

import { open, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Command } from './main.ts';
import { parse, num, str, flag } from './args.ts';
import { SHAPES, shapeConfig, synthGgufStream, synthModel } from '../formats/synth.ts';
import { configFromHf } from '../formats/hf-config.ts';
import { validateConfig, type ModelConfig } from '../engine/config.ts';
import { getTensorType } from '../formats/quant/index.ts';
import type { TensorTypeName } from '../formats/tensor.ts';
import { ConfigError, UsageError } from '../engine/errors.ts';

/** A config file: a Hugging Face config.json, or a glassbox ModelConfig as JSON. */
async function configFile(path: string): Promise<ModelConfig> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new ConfigError(path, `is not readable JSON (${(e as Error).message})`, 'Give a config.json');
  }
  const o = json as Record<string, unknown>;
  if (o && typeof o === 'object' && 'hidden_size' in o) return configFromHf(o, path);
  return validateConfig({ arch: 'llama', name: 'synth', ropeScaling: null, tiedEmbeddings: false, bosId: 1, eosId: 2, ...(o as object) } as ModelConfig, path);
}

export const synth: Command = {
  summary: `Writes a random-weight model. Shapes: ${Object.keys(SHAPES).join(', ')}. Types: F32, F16, BF16 (GGUF or safetensors), Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K..Q6_K (GGUF). A safetensors model gets its config.json beside it.`,
  usage: 'glassbox synth (--shape NAME | --config FILE) --type TYPE [--seed S] --out FILE.gguf|FILE.safetensors [--json]',
  async run(argv) {
    const p = parse('synth', argv, { shape: { type: 'string' }, config: { type: 'string' }, type: { type: 'string' }, seed: { type: 'string' }, out: { type: 'string' } });
    const shape = str(p, 'shape');
    const cfgPath = str(p, 'config');
    if ((shape === undefined) === (cfgPath === undefined)) throw new UsageError('glassbox synth', 'give exactly one of --shape and --config');
    const config = shape !== undefined ? shapeConfig(shape) : await configFile(cfgPath!);
    const typeName = (str(p, 'type') ?? 'F32').toUpperCase() as TensorTypeName;
    getTensorType(typeName); // throws for unknown type names
    const seed = num(p, 'seed', 0, { min: 0, max: 2 ** 32 - 1, integer: true });
    const out = str(p, 'out');
    if (!out || !/\.(gguf|safetensors)$/.test(out)) throw new UsageError('--out', 'must name a .gguf or .safetensors file');
    const format = out.endsWith('.gguf') ? 'gguf' : 'safetensors';
    let written: string[];
    let fallbacks: { tensor: string; from: string; to: string }[];
    if (format === 'gguf') {
      // Streamed: a Llama-3-8B-shaped file never sits in memory whole.
      const fh = await open(out, 'w');
      try {
        const r = await synthGgufStream({ config, type: typeName, seed, format }, async (b) => { await fh.write(b); });
        fallbacks = r.fallbacks;
      } finally {
        await fh.close();
      }
      written = [out];
    } else {
      const r = synthModel({ config, type: typeName, seed, format });
      written = [];
      for (const f of r.files) {
        const path = f.name.endsWith('.safetensors') ? out : join(dirname(out), f.name);
        await writeFile(path, f.bytes);
        written.push(path);
      }
      fallbacks = r.fallbacks;
    }
    if (flag(p, 'json')) {
      console.log(JSON.stringify({ files: written, type: typeName, seed, config, fallbacks }));
    } else {
      console.log(`wrote ${written.join(', ')}: ${config.name}, ${typeName}, seed ${seed}`);
      for (const f of fallbacks) console.log(`  ${f.tensor}: ${f.from} does not fit its rows, stored as ${f.to}`);
    }
  },
};
