// glassbox tokenize MODEL --text T [--bos] [--special]: ids and pieces. MODEL may be a model file or
// a tokenizer alone (tokenizer.json, tiktoken tokenizer.model, llama2.c tokenizer.bin, vocab GGUF).

import type { Command } from './main.ts';
import { parse, str, flag, onePositional } from './args.ts';
import { modelSources } from './model-path.ts';
import { openModel } from '../formats/open.ts';
import { fileSource } from '../formats/node-source.ts';
import { openTokenizer } from '../tokenizer/open.ts';
import { createTokenizer, type Tokenizer } from '../tokenizer/tokenizer.ts';
import { TokenizerError, UsageError } from '../engine/errors.ts';
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** A tokenizer from a path: a tokenizer file directly, else the tokenizer inside a model. */
export async function tokenizerFromPath(path: string, tokenizerPath?: string): Promise<Tokenizer> {
  const isTokenizerFile = /(^tokenizer\.(json|model|bin)$)|(^tok\d*\.bin$)|(\.gguf$)/.test(basename(path));
  if (!tokenizerPath && existsSync(path) && statSync(path).isFile() && isTokenizerFile) {
    const src = await fileSource(path);
    const cfgPath = join(dirname(path), 'tokenizer_config.json');
    const cfg = path.endsWith('.json') && existsSync(cfgPath) ? await fileSource(cfgPath) : undefined;
    try {
      return await openTokenizer(src, cfg);
    } finally {
      await src.close?.();
      await cfg?.close?.();
    }
  }
  const files = await modelSources(path, tokenizerPath);
  try {
    const model = await openModel(files.sources, { tokenizer: files.tokenizer });
    if (!model.tokenizer) throw new TokenizerError(path, 'has no tokenizer', 'Give one with --tokenizer');
    return createTokenizer(model.tokenizer);
  } finally {
    await files.close();
  }
}

export const tokenize: Command = {
  summary: 'Token ids and pieces of a text. BOS is added only with --bos; special-token text is parsed only with --special.',
  usage: 'glassbox tokenize MODEL|TOKENIZER --text T [--bos] [--special] [--tokenizer FILE] [--json]',
  async run(argv) {
    const p = parse('tokenize', argv, {
      text: { type: 'string' }, bos: { type: 'boolean' }, special: { type: 'boolean' }, tokenizer: { type: 'string' },
    });
    const text = str(p, 'text');
    if (text === undefined) throw new UsageError('glassbox tokenize', '--text is required');
    const tok = await tokenizerFromPath(onePositional(p, 'tokenize'), str(p, 'tokenizer'));
    const ids = tok.encode(text, { bos: flag(p, 'bos'), special: flag(p, 'special') });
    const pieces = ids.map((id) => tok.piece(id));
    if (flag(p, 'json')) {
      console.log(JSON.stringify({ ids, pieces }));
    } else {
      console.log(ids.map((id, i) => `${id}\t${JSON.stringify(pieces[i])}`).join('\n'));
      console.log(`${ids.length} tokens`);
    }
  },
};
