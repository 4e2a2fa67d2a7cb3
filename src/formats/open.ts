// Opens a model from whatever files the user gave, telling the format by content, not by name:
//   GGUF         starts with the magic "GGUF"
//   safetensors  u64 LE header length N, then N bytes of JSON beginning with '{'
//   llama2.c     magic 0x616b3432 ("ak42", version 1/2 exports), or the legacy 7 × int32 header
//                (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len) when its
//                numbers are plausible, or else by elimination when the file is named *.bin
// JSON side files (config.json, tokenizer.json, *.safetensors.index.json) go with safetensors.

import { ModelFormatError, UsageError } from '../engine/errors.ts';
import { readGgufModel } from './gguf.ts';
import { readLlama2c } from './llama2c.ts';
import type { FormatName, ModelFile } from './model.ts';
import { readSafetensorsModel } from './safetensors.ts';
import type { ByteSource } from './source.ts';

export type DetectedKind = FormatName | 'json';

const ACCEPTED = 'glassbox opens GGUF (.gguf), safetensors (.safetensors with its config.json) and llama2.c checkpoints (.bin with --tokenizer)';
const LLAMA2C_MAGIC = 0x616b3432;

function baseName(name: string): string {
  return name.replace(/[?#].*$/, '').split(/[\\/]/).pop() ?? name;
}

/** What kind of file `src` is, from its first bytes (and its name for JSON side files and .bin). */
export async function detectFormat(src: ByteSource): Promise<DetectedKind> {
  if (src.size === 0) throw new ModelFormatError(src.name, 'is empty', 'Pick the model file itself; this one has no bytes');
  const head = await src.read(0, Math.min(src.size, 32));
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const name = baseName(src.name).toLowerCase();
  if (head.length >= 4 && dv.getUint32(0, true) === 0x46554747) return 'gguf';
  if (head.length >= 9 && head[8] === 0x7b /* { */) {
    const n = dv.getBigUint64(0, true);
    if (n >= 2n && n <= BigInt(src.size - 8)) return 'safetensors';
  }
  if (name.endsWith('.json')) return 'json';
  if (head.length >= 4 && dv.getUint32(0, true) === LLAMA2C_MAGIC) return 'llama2c';
  if (head.length >= 28) {
    const h = Array.from({ length: 7 }, (_, i) => dv.getInt32(4 * i, true));
    const [dim, hidden, layers, heads, kvHeads, vocab, seqLen] = h as [number, number, number, number, number, number, number];
    const plausible = dim > 0 && dim <= 65536 && hidden > 0 && hidden <= 1 << 20 && layers > 0 && layers <= 1024 &&
      heads > 0 && heads <= dim && kvHeads > 0 && kvHeads <= heads && vocab !== 0 && Math.abs(vocab) <= 1 << 22 &&
      seqLen > 0 && seqLen <= 1 << 24;
    if (plausible || name.endsWith('.bin')) return 'llama2c';
  }
  throw new ModelFormatError(src.name, 'is not a model file glassbox can read (no GGUF magic, no safetensors header, no llama2.c header)', ACCEPTED);
}

/**
 * Reads the model description from the given files: one .gguf; or .safetensors file(s) with
 * config.json (and optionally tokenizer.json, tokenizer_config.json, an index); or a llama2.c .bin.
 * `opts.tokenizer` is the separate tokenizer: tokenizer.bin for llama2.c, tokenizer.json for
 * safetensors (same as listing it among the sources); a GGUF carries its own and ignores it.
 */
export async function openModel(sources: ByteSource[], opts: { tokenizer?: ByteSource } = {}): Promise<ModelFile> {
  if (sources.length === 0) throw new UsageError('model', 'no files were given', ACCEPTED);
  const kinds = await Promise.all(sources.map(detectFormat));
  const of = (k: DetectedKind) => sources.filter((_, i) => kinds[i] === k);
  const gguf = of('gguf'), st = of('safetensors'), l2c = of('llama2c'), json = of('json');
  const list = sources.map((s) => s.name).join(', ');

  if (gguf.length > 0) {
    if (gguf.length > 1 || st.length + l2c.length > 0) {
      throw new UsageError(list, 'more than one model file was given', 'Open one .gguf file (split GGUFs are not supported)');
    }
    return readGgufModel(gguf[0]!);
  }
  if (st.length > 0 || json.some((s) => baseName(s.name).endsWith('.safetensors.index.json'))) {
    if (l2c.length > 0) throw new UsageError(list, 'safetensors and llama2.c files were given together', 'Open the files of one model');
    const files = [...sources];
    if (opts.tokenizer) files.push(opts.tokenizer);
    return readSafetensorsModel(files);
  }
  if (l2c.length > 0) {
    if (l2c.length > 1) throw new UsageError(list, 'more than one llama2.c checkpoint was given', 'Open one .bin with its tokenizer');
    return readLlama2c(l2c[0]!, opts.tokenizer);
  }
  throw new ModelFormatError(list, 'holds only JSON files and no weights', ACCEPTED);
}
