// From a path on the command line to the ByteSources of a model: a .gguf; a .safetensors, its
// folder or its sharded index (config.json, tokenizer.json and tokenizer_config.json are picked up
// beside it); or a llama2.c .bin with its tokenizer.bin (--tokenizer, or tokenizer.bin beside it).

import { readdirSync, statSync, existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileSource } from '../formats/node-source.ts';
import type { ByteSource } from '../formats/source.ts';
import { ModelFormatError } from '../engine/errors.ts';

const HF_SIDE_FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors.index.json'];

export interface ModelSources {
  sources: ByteSource[];
  tokenizer?: ByteSource;
  close(): Promise<void>;
}

export async function modelSources(path: string, tokenizerPath?: string): Promise<ModelSources> {
  if (!existsSync(path)) throw new ModelFormatError(path, 'does not exist', 'Check the path');
  const paths: string[] = [];
  const isDir = statSync(path).isDirectory();
  if (isDir || path.endsWith('.safetensors') || path.endsWith('.safetensors.index.json')) {
    const dir = isDir ? path : dirname(path);
    const names = readdirSync(dir);
    const index = names.includes('model.safetensors.index.json');
    if (isDir || index || path.endsWith('.index.json')) {
      paths.push(...names.filter((n) => n.endsWith('.safetensors')).sort().map((n) => join(dir, n)));
    } else {
      paths.push(path);
    }
    for (const n of HF_SIDE_FILES) if (names.includes(n)) paths.push(join(dir, n));
    if (paths.length === 0) throw new ModelFormatError(path, 'holds no model file', 'Give a .gguf, a .safetensors or a llama2.c .bin');
  } else {
    paths.push(path);
  }
  let tokPath = tokenizerPath;
  if (!tokPath && path.endsWith('.bin')) {
    const beside = join(dirname(path), 'tokenizer.bin');
    if (existsSync(beside) && basename(path) !== 'tokenizer.bin') tokPath = beside;
  }
  const sources = await Promise.all(paths.map(fileSource));
  const tokenizer = tokPath ? await fileSource(tokPath) : undefined;
  return {
    sources,
    tokenizer,
    async close() {
      await Promise.all([...sources, ...(tokenizer ? [tokenizer] : [])].map((s) => s.close?.()));
    },
  };
}
