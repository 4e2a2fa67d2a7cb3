// Loading a model for the commands that run it (logits, generate, trace, bench): open the files,
// stream the weights into the arena, build the tokenizer and a session.

import { modelSources } from './model-path.ts';
import { openModel } from '../formats/open.ts';
import type { ModelFile } from '../formats/model.ts';
import { loadModelWeights, type ModelWeights } from '../engine/weights.ts';
import { Session } from '../engine/session.ts';
import { createTokenizer, type Tokenizer } from '../tokenizer/tokenizer.ts';
import { UsageError, TokenizerError } from '../engine/errors.ts';
import { ids as idList, str, type Parsed } from './args.ts';

export interface Loaded {
  model: ModelFile;
  weights: ModelWeights;
  tokenizer: Tokenizer | null;
  session: Session;
}

export async function loadModel(path: string, tokenizerPath?: string): Promise<Loaded> {
  const files = await modelSources(path, tokenizerPath);
  try {
    const model = await openModel(files.sources, { tokenizer: files.tokenizer });
    const weights = await loadModelWeights(model);
    const tokenizer = model.tokenizer ? createTokenizer(model.tokenizer, files.sources[0]!.name) : null;
    return { model, weights, tokenizer, session: new Session(weights) };
  } finally {
    await files.close();
  }
}

/** The prompt's token ids: --tokens as given (no BOS added), or --prompt tokenized with the model's BOS rule. */
export function promptIds(p: Parsed, loaded: Loaded, command: string): number[] {
  const raw = idList(p, 'tokens');
  const text = str(p, 'prompt');
  if ((raw === undefined) === (text === undefined)) {
    throw new UsageError(`glassbox ${command}`, 'give exactly one of --prompt and --tokens');
  }
  if (raw) {
    const bad = raw.find((id) => id >= loaded.model.config.vocabSize);
    if (bad !== undefined) throw new UsageError('--tokens', `token id ${bad} is outside the vocabulary of ${loaded.model.config.vocabSize}`);
    return raw;
  }
  if (!loaded.tokenizer) throw new TokenizerError(loaded.model.sources[0]!.name, 'has no tokenizer to read --prompt with', 'Give --tokenizer, or use --tokens');
  const ids = loaded.tokenizer.encode(text!);
  if (ids.length === 0) throw new UsageError('--prompt', 'the prompt is empty and the model adds no BOS', 'Give a non-empty prompt');
  return ids;
}

export const PROMPT_OPTIONS = {
  prompt: { type: 'string' },
  tokens: { type: 'string' },
  tokenizer: { type: 'string' },
} as const;
