// Opening what the user gives the page — files from a picker or a drop, or local models by URL —
// as a model (with its side files) or as a tokenizer alone.

import { openModel } from '../formats/open.ts';
import type { ModelFile } from '../formats/model.ts';
import type { ByteSource } from '../formats/source.ts';
import { openTokenizer } from '../tokenizer/open.ts';
import { createTokenizer, type Tokenizer } from '../tokenizer/tokenizer.ts';

export interface Opened {
  model: ModelFile | null;
  tokenizer: Tokenizer | null;
}

const TOKENIZER_FILE = /(^|\/)(tokenizer\.(json|model|bin)|tok\d*\.bin|.*vocab.*\.gguf)$/i;
const SIDE_FILE = /(^|\/)(config\.json|tokenizer_config\.json|model\.safetensors\.index\.json)$/i;

export function isTokenizerFile(name: string): boolean {
  return TOKENIZER_FILE.test(name);
}

/** Opens a set of files: one model (plus side files and a llama2.c tokenizer.bin), or one tokenizer. */
export async function openSources(sources: ByteSource[]): Promise<Opened> {
  const tokenizerFiles = sources.filter((s) => isTokenizerFile(s.name));
  const sideFiles = sources.filter((s) => SIDE_FILE.test(s.name));
  const modelFiles = sources.filter((s) => !tokenizerFiles.includes(s) && !sideFiles.includes(s));
  if (modelFiles.length === 0) {
    const main = tokenizerFiles.find((s) => s.name !== 'tokenizer_config.json') ?? tokenizerFiles[0];
    if (!main) throw new Error('No model or tokenizer file among the files given');
    const config = sideFiles.find((s) => s.name === 'tokenizer_config.json');
    return { model: null, tokenizer: await openTokenizer(main, config) };
  }
  const tokBin = tokenizerFiles.find((s) => s.name.endsWith('.bin'));
  const hfTokenizer = tokenizerFiles.filter((s) => s.name.endsWith('.json'));
  const model = await openModel([...modelFiles, ...sideFiles, ...hfTokenizer], { tokenizer: tokBin });
  return { model, tokenizer: model.tokenizer ? createTokenizer(model.tokenizer) : null };
}
