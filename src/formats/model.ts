// One model description comes out of every format (GGUF, safetensors + config.json, llama2.c):
// its config, the data of its tokenizer, and where each weight tensor lies, under one naming
// scheme (names.ts). Nothing here holds weights: load.ts streams them into the weight arena.

import type { ModelConfig } from '../engine/config.ts';
import type { TokenizerData } from '../tokenizer/data.ts';
import type { ByteSource } from './source.ts';
import type { TensorInfo } from './tensor.ts';

export type FormatName = 'gguf' | 'safetensors' | 'llama2c';

/**
 * How Q and K rows are ordered for RoPE. glassbox's internal convention is 'adjacent' (rotate
 * x[2i], x[2i+1]: GGUF and llama2.c). Hugging Face checkpoints store 'half-split' rows
 * (x[i], x[i+d/2]); their loader permutes wq/wk rows to 'adjacent' at load time.
 */
export type RopeLayout = 'adjacent' | 'half-split';

export interface ModelFile {
  format: FormatName;
  /** The files the model is read from (one, or the shards of a safetensors index). */
  sources: ByteSource[];
  config: ModelConfig;
  /** The tokenizer inside the file (GGUF), or null when it comes separately (tokenizer.bin/json). */
  tokenizer: TokenizerData | null;
  /** Tensors under our names, in file order. */
  tensors: TensorInfo[];
  /** Layout of the wq/wk rows in the file; the loader converts 'half-split' to 'adjacent'. */
  ropeLayout: RopeLayout;
  /** Everything else the file says, for `glassbox inspect` (GGUF key/values, config.json, ...). */
  metadata: Record<string, unknown>;
}
