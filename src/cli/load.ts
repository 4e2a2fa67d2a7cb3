// Loading a model for the commands that run it (logits, generate, trace, bench): open the files,
// stream the weights into the arena, build the tokenizer and a session.

import { modelSources } from './model-path.ts';
import { openModel } from '../formats/open.ts';
import type { ModelFile } from '../formats/model.ts';
import { loadModelWeights, type ModelWeights } from '../engine/weights.ts';
import { Session, type SessionOptions } from '../engine/session.ts';
import { createTokenizer, type Tokenizer } from '../tokenizer/tokenizer.ts';
import { UsageError, TokenizerError } from '../engine/errors.ts';
import { ids as idList, str, type Parsed } from './args.ts';
import { chooseBackend } from '../engine/backend.ts';
import { nodeGpu } from '../engine/gpu/node.ts';

/** CPU kernel choices (SessionOptions): the kernels and their threads. */
export type CpuOptions = Pick<SessionOptions, 'kernels' | 'threads'>;

export interface Loaded {
  model: ModelFile;
  weights: ModelWeights;
  tokenizer: Tokenizer | null;
  session: Session;
}

export async function loadModel(path: string, tokenizerPath?: string, backend: 'cpu' | 'webgpu' = 'cpu', cpu: CpuOptions = {}): Promise<Loaded> {
  const files = await modelSources(path, tokenizerPath);
  try {
    const model = await openModel(files.sources, { tokenizer: files.tokenizer });
    const weights = await loadModelWeights(model);
    const tokenizer = model.tokenizer ? createTokenizer(model.tokenizer, files.sources[0]!.name) : null;
    return { model, weights, tokenizer, session: await newSession(weights, backend, cpu) };
  } finally {
    await files.close();
  }
}

/** --backend: 'cpu' (default) or 'webgpu'. */
export function backendFlag(p: Parsed): 'cpu' | 'webgpu' {
  const b = str(p, 'backend') ?? 'cpu';
  if (b !== 'cpu' && b !== 'webgpu') throw new UsageError('--backend', `'${b}' is not a backend`, 'Use cpu or webgpu');
  return b;
}

/** A session on the backend asked for; WebGPU comes from the optional `webgpu` package (Dawn). */
async function newSession(weights: ModelWeights, backend: 'cpu' | 'webgpu', cpu: CpuOptions): Promise<Session> {
  if (backend === 'cpu') {
    const session = new Session(weights, cpu);
    await session.ready();   // start the kernel threads now rather than during the first products
    return session;
  }
  const b = await chooseBackend({ gpu: await nodeGpu(), weights });
  if (b.kind === 'cpu') {
    throw new UsageError('--backend webgpu', b.reason, 'Without a GPU, Dawn can use SwiftShader: VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json LD_LIBRARY_PATH=/usr/lib/chromium; or use --backend cpu');
  }
  let ready = false;
  const session = new Session(weights, {
    backend: b,
    onBackendChange: (c) => { if (ready) console.error(`glassbox: WebGPU failed (${c.reason}); continuing on the CPU`); },
  });
  await session.ready();   // upload and compile now, so that failing to set up is an error, not a quiet CPU run
  if (session.backend !== 'webgpu') throw new UsageError('--backend webgpu', session.backendReason ?? 'WebGPU could not be set up', 'Use --backend cpu');
  ready = true;
  return session;
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
  backend: { type: 'string' },
} as const;
