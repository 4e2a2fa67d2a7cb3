// Which of the files a user gives are the model, its side files and its tokenizer — by name, for a
// picker, a drop, or a list of local paths. (openModel then tells formats by content.)
//   model.gguf                                   → sources [model.gguf]
//   stories15M.bin + tokenizer.bin               → sources [stories15M.bin], tokenizer tokenizer.bin
//   model.safetensors + config.json + tokenizer.json (+ tokenizer_config.json, index)
//                                                → sources [all of them], no separate tokenizer
//   tokenizer.json (+ tokenizer_config.json)     → tokenizer only: no model

const TOKENIZER_FILE = /(^|\/)(tokenizer\.(json|model|bin)|tok\d*\.bin|.*vocab.*\.gguf)$/i;
const SIDE_FILE = /(^|\/)(config\.json|tokenizer_config\.json|generation_config\.json|.*\.safetensors\.index\.json)$/i;

export function isTokenizerFile(name: string): boolean {
  return TOKENIZER_FILE.test(name);
}

export function isSideFile(name: string): boolean {
  return SIDE_FILE.test(name);
}

export interface FileGroup<T> {
  /** Weight files (.gguf, .safetensors, llama2.c .bin). */
  models: T[];
  /** config.json, tokenizer_config.json, a sharded index. */
  sides: T[];
  /** Tokenizer files of any kind. */
  tokenizers: T[];
  /** What openModel gets as its files: models, side files and a tokenizer.json. */
  sources: T[];
  /** What openModel gets as its separate tokenizer: a llama2.c tokenizer.bin / tok512.bin. */
  tokenizer?: T;
}

/** Sorts files by name into the model, its side files and its tokenizer. */
export function groupModelFiles<T extends { name: string }>(items: readonly T[]): FileGroup<T> {
  const tokenizers = items.filter((s) => isTokenizerFile(s.name));
  const sides = items.filter((s) => !tokenizers.includes(s) && isSideFile(s.name));
  const models = items.filter((s) => !tokenizers.includes(s) && !sides.includes(s));
  const hfTokenizers = tokenizers.filter((s) => /\.json$/i.test(s.name));
  const group: FileGroup<T> = { models, sides, tokenizers, sources: [...models, ...sides, ...hfTokenizers] };
  const bin = tokenizers.find((s) => /\.bin$/i.test(s.name));
  if (bin) group.tokenizer = bin;
  return group;
}
