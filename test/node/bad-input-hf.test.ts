// Damaged or foreign safetensors / config.json / tokenizer.json / llama2.c files: each must fail
// fast with the named error class and a message that names the file, never read or allocate
// past what the file's validated sizes allow.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  ConfigError, GlassboxError, ModelFormatError, TokenizerError, TruncatedFileError, UnsupportedError,
} from '../../src/engine/errors.ts';
import { readLlama2c } from '../../src/formats/llama2c.ts';
import { readSafetensorsModel } from '../../src/formats/safetensors.ts';
import { writeSafetensors, type SafetensorsTensor } from '../../src/formats/safetensors-write.ts';
import { bytesSource, type ByteSource } from '../../src/formats/source.ts';
import { json, shard, TINY_CONFIG, tinyTensors } from './hf-fixtures.ts';

const BIN = fileURLToPath(new URL('../../../shared/models/tinystories-260k/stories260K.bin', import.meta.url));
const GGUF = fileURLToPath(new URL('../../../shared/models/tinystories-260k/stories260K.gguf', import.meta.url));

type ErrorClass = new (...args: never[]) => GlassboxError;

/** Runs `fn`, which must reject with `cls`, a message containing every `mentions`, within 1 s. */
async function fails(fn: () => Promise<unknown>, cls: ErrorClass, mentions: string[]): Promise<void> {
  const t0 = performance.now();
  await assert.rejects(fn(), (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${(e as Error).name}: ${(e as Error).message}`);
    for (const m of mentions) assert.ok(e.message.includes(m), `message "${e.message}" should mention "${m}"`);
    return true;
  });
  const ms = performance.now() - t0;
  assert.ok(ms < 1000, `took ${ms.toFixed(0)} ms`);
}

/** A safetensors file from a header given as text, with `dataBytes` zero bytes after it. */
function rawSafetensors(header: string, dataBytes: number, declared?: bigint): Uint8Array {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.byteLength + dataBytes);
  new DataView(out.buffer).setBigUint64(0, declared ?? BigInt(h.byteLength), true);
  out.set(h, 8);
  return out;
}

/** A source that claims a huge size and fails the test if anything large is read from it. */
function hugeSource(name: string, size: number, head: Uint8Array): ByteSource {
  return {
    name, size,
    async read(offset, length) {
      assert.ok(length <= 1 << 20, `read ${length} bytes from a file whose header is not trusted`);
      const out = new Uint8Array(length);
      out.set(head.subarray(offset, offset + length));
      return out;
    },
  };
}

const config = () => json(TINY_CONFIG, 'config.json');
const model = (file: Uint8Array, name = 'model.safetensors') => bytesSource(file, name);

// ----------------------------------------------------------------------------------- safetensors

test('safetensors: invalid JSON header', async () => {
  const file = rawSafetensors('{"a": {"dtype": "F32", ', 16);
  await fails(() => readSafetensorsModel([model(file, 'broken.safetensors'), config()]), ModelFormatError,
    ['broken.safetensors', 'invalid JSON header']);
});

test('safetensors: header length longer than the file', async () => {
  const file = rawSafetensors('{}', 0, 1000n);
  await fails(() => readSafetensorsModel([model(file, 'short.safetensors'), config()]), TruncatedFileError,
    ['short.safetensors', '1000']);
  // A length near 2^64 must not turn into a read or an allocation either.
  const huge = rawSafetensors('{}', 0, 0xffff_ffff_ffff_fff0n);
  await fails(() => readSafetensorsModel([model(huge, 'huge.safetensors'), config()]), TruncatedFileError, ['huge.safetensors']);
});

test('safetensors: a 150 MB JSON header is refused before it is read', async () => {
  const head = rawSafetensors('', 0, 150_000_000n);
  await fails(() => readSafetensorsModel([hugeSource('giant.safetensors', 200_000_000, head), config()]), ModelFormatError,
    ['giant.safetensors', 'JSON header']);
});

test('safetensors: data_offsets past the end of the file', async () => {
  const file = rawSafetensors('{"model.norm.weight":{"dtype":"F32","shape":[16],"data_offsets":[0,64]}}', 32);
  await fails(() => readSafetensorsModel([model(file, 'cut.safetensors'), config()]), TruncatedFileError,
    ['cut.safetensors', 'model.norm.weight', 'data_offsets']);
});

test('safetensors: data_offsets that disagree with shape, or overlap', async () => {
  const wrong = rawSafetensors('{"model.norm.weight":{"dtype":"F32","shape":[16],"data_offsets":[0,60]}}', 64);
  await fails(() => readSafetensorsModel([model(wrong, 'w.safetensors'), config()]), ModelFormatError, ['w.safetensors', 'model.norm.weight']);
  const overlap = rawSafetensors('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}', 24);
  await fails(() => readSafetensorsModel([model(overlap, 'o.safetensors'), config()]), ModelFormatError, ['o.safetensors', 'overlap']);
});

test('safetensors: unsupported dtypes name the tensor and the dtype', async () => {
  for (const dtype of ['I8', 'F8_E4M3', 'Q4_WHATEVER']) {
    const tensors = tinyTensors(TINY_CONFIG, 'F32', true);
    const header = JSON.stringify({ 'model.layers.1.self_attn.q_proj.weight': { dtype, shape: [16, 16], data_offsets: [0, 256] } });
    const file = rawSafetensors(header, 256);
    const rest = writeSafetensors(tensors.filter((t) => t.name !== 'model.layers.1.self_attn.q_proj.weight'));
    await fails(() => readSafetensorsModel([model(file, 'q.safetensors'), model(rest, 'rest.safetensors'), config()]), UnsupportedError,
      ['q.safetensors', 'model.layers.1.self_attn.q_proj.weight', dtype]);
  }
});

test('safetensors: missing config.json', async () => {
  const file = writeSafetensors(tinyTensors(TINY_CONFIG, 'F32', true));
  await fails(() => readSafetensorsModel([model(file, 'alone.safetensors')]), ConfigError, ['alone.safetensors', 'config.json']);
});

test('config.json: missing hidden_size, not JSON, not a Llama', async () => {
  const file = writeSafetensors(tinyTensors(TINY_CONFIG, 'F32', true));
  const { hidden_size: _, ...noHidden } = TINY_CONFIG;
  await fails(() => readSafetensorsModel([model(file), json(noHidden, 'config.json')]), ConfigError, ['config.json', 'hidden_size']);
  await fails(() => readSafetensorsModel([model(file), bytesSource(new TextEncoder().encode('{"hidden_size": 16,'), 'config.json')]),
    ConfigError, ['config.json', 'JSON']);
  await fails(() => readSafetensorsModel([model(file), json({ ...TINY_CONFIG, model_type: 'mistral' }, 'config.json')]),
    UnsupportedError, ['config.json', 'mistral']);
  await fails(() => readSafetensorsModel([model(file), json({ ...TINY_CONFIG, rope_scaling: { type: 'yarn', factor: 4 } }, 'config.json')]),
    UnsupportedError, ['config.json', 'yarn']);
  await fails(() => readSafetensorsModel([model(file), json({ ...TINY_CONFIG, num_key_value_heads: 3 }, 'config.json')]),
    ConfigError, ['config.json', 'n_kv_heads']);
});

test('safetensors: a tensor shape that contradicts config.json', async () => {
  const tensors: SafetensorsTensor[] = tinyTensors(TINY_CONFIG, 'F32', true).map((t) =>
    t.name === 'model.layers.1.mlp.down_proj.weight' ? { ...t, shape: [24, 16] } : t);
  await fails(() => readSafetensorsModel([model(writeSafetensors(tensors), 'bad-shape.safetensors'), config()]), ConfigError,
    ['bad-shape.safetensors', 'model.layers.1.mlp.down_proj.weight', '[24,16]', '[16,24]']);
  const missing = tinyTensors(TINY_CONFIG, 'F32', true).filter((t) => t.name !== 'model.layers.0.self_attn.k_proj.weight');
  await fails(() => readSafetensorsModel([model(writeSafetensors(missing), 'm.safetensors'), config()]), ConfigError,
    ['model.layers.0.self_attn.k_proj.weight', 'm.safetensors']);
});

test('safetensors: a shard the index names is missing; a tensor in two shards', async () => {
  const { sources, index } = shard(tinyTensors(TINY_CONFIG, 'F32', true), 3);
  await fails(() => readSafetensorsModel([sources[0]!, sources[2]!, json(index, 'model.safetensors.index.json'), config()]),
    ModelFormatError, ['model-00002-of-00003.safetensors']);
  const tensors = tinyTensors(TINY_CONFIG, 'F32', true);
  const a = writeSafetensors(tensors), b = writeSafetensors(tensors.slice(0, 1));
  await fails(() => readSafetensorsModel([model(a, 'a.safetensors'), model(b, 'b.safetensors'), config()]),
    ModelFormatError, ['b.safetensors', tensors[0]!.name]);
});

test('tokenizer.json that is not JSON', async () => {
  const file = writeSafetensors(tinyTensors(TINY_CONFIG, 'F32', true));
  const tok = bytesSource(new TextEncoder().encode('{"model": {"type": "BPE", '), 'tokenizer.json');
  await fails(() => readSafetensorsModel([model(file), config(), tok]), TokenizerError, ['tokenizer.json']);
});

// -------------------------------------------------------------------------------------- llama2.c

const bin = readFileSync(BIN);

function header(fields: number[], version?: number, extra?: (dv: DataView) => void): Uint8Array {
  const out = new Uint8Array(version === undefined ? 28 + 64 : 256 + 64);
  const dv = new DataView(out.buffer);
  let at = 0;
  if (version !== undefined) {
    dv.setUint32(0, 0x616b3432, true);
    dv.setInt32(4, version, true);
    at = 8;
  }
  fields.forEach((f, i) => dv.setInt32(at + 4 * i, f, true));
  extra?.(dv);
  return out;
}

test('llama2.c: truncated file, and one with bytes to spare', async () => {
  await fails(() => readLlama2c(bytesSource(bin.subarray(0, bin.byteLength - 1000), 'stories260K.bin')), TruncatedFileError,
    ['stories260K.bin', String(bin.byteLength), String(bin.byteLength - 1000)]);
  await fails(() => readLlama2c(bytesSource(bin.subarray(0, 20), 'tiny.bin')), TruncatedFileError, ['tiny.bin']);
  const longer = new Uint8Array(bin.byteLength + 8);
  longer.set(bin);
  await fails(() => readLlama2c(bytesSource(longer, 'long.bin')), ModelFormatError, ['long.bin', String(bin.byteLength)]);
  // v1/v2 headers are 256 bytes.
  await fails(() => readLlama2c(bytesSource(header([64, 172, 5, 8, 4, 512, 512], 1).subarray(0, 100), 'v1.bin')),
    TruncatedFileError, ['v1.bin', '256']);
});

test('llama2.c: absurd headers (negative, zero, overflowing dims) fail without allocating', async () => {
  await fails(() => readLlama2c(bytesSource(header([-64, 172, 5, 8, 4, 512, 512]), 'neg.bin')), ModelFormatError, ['neg.bin', 'dim']);
  await fails(() => readLlama2c(bytesSource(header([64, 172, 0, 8, 4, 512, 512]), 'zero.bin')), ModelFormatError, ['zero.bin', 'n_layers']);
  await fails(() => readLlama2c(bytesSource(header([0x7fffffff, 172, 5, 8, 4, 512, 512]), 'big.bin')), ModelFormatError, ['big.bin', 'dim']);
  await fails(() => readLlama2c(bytesSource(header([64, 172, 5, 8, 4, -0x80000000, 512]), 'minvocab.bin')), ModelFormatError, ['minvocab.bin']);
  // Each field plausible, but their products overflow int32 (and 2^53): caught by the size check.
  const overflow = header([1 << 24, 1 << 24, 1 << 24, 1 << 12, 1 << 12, 1 << 24, 1 << 24]);
  await fails(() => readLlama2c(hugeSource('overflow.bin', overflow.byteLength, overflow)), TruncatedFileError, ['overflow.bin', 'implies']);
  await fails(() => readLlama2c(bytesSource(header([64, 172, 5, 7, 7, 512, 512]), 'heads.bin')), ModelFormatError, ['heads.bin', 'n_heads']);
  await fails(() => readLlama2c(bytesSource(header([64, 172, 5, 8, 3, 512, 512]), 'kv.bin')), ModelFormatError, ['kv.bin', 'n_kv_heads']);
});

test('llama2.c: unknown version, bad group size, a GGUF given as .bin', async () => {
  await fails(() => readLlama2c(bytesSource(header([64, 172, 5, 8, 4, 512, 512], 3), 'v3.bin')), UnsupportedError, ['v3.bin', 'version 3']);
  await fails(() => readLlama2c(bytesSource(header([64, 172, 5, 8, 4, 512, 512], 2, (dv) => dv.setInt32(37, 0, true)), 'gs0.bin')),
    ModelFormatError, ['gs0.bin', 'group_size']);
  await fails(() => readLlama2c(bytesSource(header([64, 172, 5, 8, 4, 512, 512], 2, (dv) => dv.setInt32(37, 48, true)), 'gs48.bin')),
    ModelFormatError, ['gs48.bin', 'group_size']);
  await fails(() => readLlama2c(bytesSource(readFileSync(GGUF).subarray(0, 4096), 'model.bin')), ModelFormatError, ['model.bin', 'GGUF']);
});
