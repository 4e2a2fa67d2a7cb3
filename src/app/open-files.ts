// Opening what the user gives the page — files from a picker or a drop, or local models by URL —
// as a model (with its side files) or as a tokenizer alone. Which file is which comes from
// src/worker/loading/group.ts, shared with the worker's model loading.

import { openModel } from '../formats/open.ts';
import type { ModelFile } from '../formats/model.ts';
import type { ByteSource } from '../formats/source.ts';
import { openTokenizer } from '../tokenizer/open.ts';
import { createTokenizer, type Tokenizer } from '../tokenizer/tokenizer.ts';
import { groupModelFiles, isTokenizerFile } from '../worker/loading/group.ts';

export { isTokenizerFile };

export interface Opened {
  model: ModelFile | null;
  tokenizer: Tokenizer | null;
}

/** Opens a set of files: one model (plus side files and a llama2.c tokenizer.bin), or one tokenizer. */
export async function openSources(sources: ByteSource[]): Promise<Opened> {
  const g = groupModelFiles(sources);
  if (g.models.length === 0) {
    const main = g.tokenizers.find((s) => s.name !== 'tokenizer_config.json') ?? g.tokenizers[0];
    if (!main) throw new Error('No model or tokenizer file among the files given');
    const config = g.sides.find((s) => s.name === 'tokenizer_config.json');
    return { model: null, tokenizer: await openTokenizer(main, config) };
  }
  const model = await openModel(g.sources, { tokenizer: g.tokenizer });
  return { model, tokenizer: model.tokenizer ? createTokenizer(model.tokenizer) : null };
}
