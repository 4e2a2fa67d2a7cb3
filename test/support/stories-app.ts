// The in-thread stories260K engine the page-compute tests share (test/node/app-*.test.ts): one
// Engine with the model loaded (one thread) and the PromptRuns the page would give it, made once
// per test file.

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine, type ModelInfo } from '../../src/engine/api.ts';
import { PromptRuns } from '../../src/app/runs.ts';
import type { EngineClient } from '../../src/worker/client.ts';

export const repoRoot = resolve(fileURLToPath(import.meta.url), '../../..');
export const storiesPath = resolve(repoRoot, '../shared/models/tinystories-260k/stories260K.gguf');

export interface StoriesApp { engine: Engine; info: ModelInfo; runs: PromptRuns }

let once: Promise<StoriesApp> | null = null;

export function storiesApp(): Promise<StoriesApp> {
  once ??= (async () => {
    const engine = new Engine();
    const info = await engine.load({ kind: 'files', files: [new File([readFileSync(storiesPath)], 'stories260K.gguf')] }, { threads: 1 });
    return { engine, info, runs: new PromptRuns(() => engine as unknown as EngineClient) };
  })();
  return once;
}
