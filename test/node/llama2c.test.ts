// llama2.c checkpoints: the real stories260K legacy file (checked tensor by tensor against the
// same model's GGUF, which llama.cpp's converter wrote independently), then v1/v2 files written
// from it and read back.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  loadedByteLength, readLlama2c, relayoutLlama2cQ8, relayoutLlama2cQ8Groups, writeLlama2c, type Llama2cParams,
} from '../../src/formats/llama2c.ts';
import { parseTensorName, tensorName } from '../../src/formats/names.ts';
import { fileSource } from '../../src/formats/node-source.ts';
import { Q8_G64 } from '../../src/formats/quant/legacy.ts';
import { bytesSource } from '../../src/formats/source.ts';
import { numElements, type TensorInfo } from '../../src/formats/tensor.ts';

const dir = fileURLToPath(new URL('../../../shared/models/tinystories-260k/', import.meta.url));
const BIN = dir + 'stories260K.bin', GGUF = dir + 'stories260K.gguf', TOK = dir + 'tok512.bin';
const binBytes = readFileSync(BIN);

/** A minimal GGUF v3 tensor-table parser, written here so the check does not lean on gguf.ts:
 *  name -> {dims (ne order), ggml type, absolute offset}. */
function ggufTensors(b: Buffer): Map<string, { dims: number[]; type: number; offset: number }> {
  let at = 0;
  const u32 = () => { const v = b.readUInt32LE(at); at += 4; return v; };
  const u64 = () => { const v = Number(b.readBigUInt64LE(at)); at += 8; return v; };
  const str = () => { const n = u64(); const s = b.toString('utf8', at, at + n); at += n; return s; };
  const SIZES = [1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8];
  const skip = (type: number): unknown => {
    if (type === 8) return str();
    if (type === 9) { const t = u32(); const n = u64(); for (let i = 0; i < n; i++) skip(t); return undefined; }
    const v = type === 4 ? b.readUInt32LE(at) : undefined;
    at += SIZES[type]!;
    return v;
  };
  assert.equal(b.toString('latin1', 0, 4), 'GGUF');
  at = 4;
  assert.equal(u32(), 3);
  const nTensors = u64(), nKv = u64();
  let alignment = 32;
  for (let i = 0; i < nKv; i++) {
    const key = str();
    const v = skip(u32());
    if (key === 'general.alignment') alignment = v as number;
  }
  const infos: [string, { dims: number[]; type: number; offset: number }][] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const dims = Array.from({ length: u32() }, u64);
    infos.push([name, { dims, type: u32(), offset: u64() }]);
  }
  const data = Math.ceil(at / alignment) * alignment;
  for (const [, t] of infos) t.offset += data;
  return new Map(infos);
}

const PARAMS: Llama2cParams = {
  dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512, sharedClassifier: true,
};

function f32(bytes: Uint8Array): Float32Array {
  const copy = new Uint8Array(bytes.byteLength); // (Buffer.slice would share Node's pool)
  copy.set(bytes);
  return new Float32Array(copy.buffer);
}

/** Our tensors of the legacy file as f32 arrays. */
async function legacyWeights(): Promise<Map<string, Float32Array>> {
  const m = await readLlama2c(bytesSource(binBytes, 'stories260K.bin'));
  return new Map(m.tensors.map((t) => [t.name, f32(binBytes.subarray(t.offset, t.offset + t.byteLength))]));
}

test('stories260K.bin: config from the legacy header', async () => {
  const src = await fileSource(BIN);
  try {
    const m = await readLlama2c(src);
    assert.equal(m.format, 'llama2c');
    assert.equal(m.ropeLayout, 'adjacent');
    assert.equal(m.tokenizer, null);
    const c = m.config;
    assert.deepEqual(
      [c.nLayers, c.dModel, c.dFfn, c.nHeads, c.nKvHeads, c.dHead, c.vocabSize, c.nCtx],
      [5, 64, 172, 8, 4, 8, 512, 512]);
    assert.equal(c.tiedEmbeddings, true);
    assert.equal(c.name, 'stories260K');
    assert.equal(c.bosId, 1);
    assert.equal(c.eosId, 2);
    assert.equal(c.rmsEps, 1e-5);
    assert.equal(c.ropeTheta, 10000);
    assert.equal(m.metadata['llama2c.version'], 0);
    assert.equal(m.tensors.length, 2 + 9 * 5); // embed, final norm, 9 per block, no unembed
    assert.ok(!m.tensors.some((t) => t.name === 'unembed.weight'));
    assert.equal(m.tensors[0]!.offset, 28);
  } finally {
    await src.close?.();
  }
});

test('stories260K.bin: every tensor is bit-identical to the GGUF conversion of the same model', async () => {
  const m = await readLlama2c(bytesSource(binBytes, 'stories260K.bin'));
  const ggufBytes = readFileSync(GGUF);
  const byName = ggufTensors(ggufBytes);
  // The GGUF also stores the shared classifier as output.weight: it must equal our embedding.
  assert.equal(byName.size, m.tensors.length + 1);
  const out = byName.get('output.weight')!, embed = m.tensors.find((t) => t.name === 'embed.weight')!;
  assert.ok(ggufBytes.subarray(out.offset, out.offset + embed.byteLength).equals(binBytes.subarray(embed.offset, embed.offset + embed.byteLength)));
  for (const t of m.tensors) {
    const p = parseTensorName('ours', t.name)!;
    const gt = byName.get(tensorName('gguf', p.role, p.layer));
    assert.ok(gt, `GGUF has ${t.name}`);
    assert.deepEqual([...gt.dims].reverse(), t.shape, `${t.name} shape`);
    assert.equal(gt.type, 0); // F32
    const ours = binBytes.subarray(t.offset, t.offset + t.byteLength);
    const theirs = ggufBytes.subarray(gt.offset, gt.offset + t.byteLength);
    assert.ok(Buffer.from(ours).equals(Buffer.from(theirs)), `${t.name} bytes`);
  }
});

test('stories260K.bin with tok512.bin: tokenizer read alongside', async () => {
  const m = await readLlama2c(bytesSource(binBytes, 'stories260K.bin'), bytesSource(readFileSync(TOK), 'tok512.bin'));
  assert.ok(m.tokenizer);
  assert.equal(m.tokenizer.kind, 'spm');
  assert.equal(m.tokenizer.tokens.length, 512);
});

test('legacy writer reproduces the real file (RoPE tables within float error)', async () => {
  const w = await legacyWeights();
  const out = writeLlama2c(PARAMS, (n) => w.get(n)!, 0);
  assert.equal(out.byteLength, binBytes.byteLength);
  const ropeStart = binBytes.byteLength - 2 * 512 * 4 * 4; // two [512, 4] f32 tables at the end
  assert.ok(Buffer.from(out.subarray(0, ropeStart)).equals(binBytes.subarray(0, ropeStart)));
  const a = f32(out.subarray(ropeStart)), b = f32(binBytes.subarray(ropeStart));
  let maxErr = 0;
  for (let i = 0; i < a.length; i++) maxErr = Math.max(maxErr, Math.abs(a[i]! - b[i]!));
  assert.ok(maxErr < 1e-4, `RoPE tables differ by ${maxErr}`);
});

test('version 1 (tied and untied) reads back bit-identical', async () => {
  const w = await legacyWeights();
  const unembed = w.get('embed.weight')!.map((x, i) => x * 0.5 + (i % 7) * 1e-3);
  for (const shared of [true, false]) {
    for (const version of [0, 1] as const) {
      const bytes = writeLlama2c({ ...PARAMS, sharedClassifier: shared },
        (n) => (n === 'unembed.weight' ? unembed : w.get(n)!), version);
      const m = await readLlama2c(bytesSource(bytes, 'v.bin'));
      assert.equal(m.metadata['llama2c.version'], version);
      assert.equal(m.config.tiedEmbeddings, shared);
      assert.equal(m.tensors.length, shared ? 47 : 48);
      for (const t of m.tensors) {
        assert.equal(t.type, 'F32');
        assert.equal(t.layout, undefined);
        const want = t.name === 'unembed.weight' ? unembed : w.get(t.name)!;
        assert.deepEqual(f32(bytes.subarray(t.offset, t.offset + t.byteLength)), want, `v${version} shared=${shared} ${t.name}`);
      }
      if (!shared) assert.equal(m.tensors.at(-1)!.name, 'unembed.weight');
    }
  }
});

function dequantizeLoaded(t: TensorInfo, loaded: Uint8Array): Float32Array {
  const n = numElements(t.shape);
  if (t.type === 'F32') return f32(loaded);
  const out = new Float32Array(n);
  Q8_G64.dequantize(loaded, 0, out, 0, n);
  return out;
}

test('version 2: int8 groups become Q8_G64 (F32 where rows are not whole groups) within quantization error', async () => {
  const w = await legacyWeights();
  for (const shared of [true, false]) {
    const bytes = writeLlama2c({ ...PARAMS, sharedClassifier: shared }, (n) => w.get(n === 'unembed.weight' ? 'embed.weight' : n)!, 2);
    const m = await readLlama2c(bytesSource(bytes, 'q80.bin'));
    assert.equal(m.metadata['llama2c.group_size'], 64);
    assert.equal(m.config.tiedEmbeddings, shared);
    // File order: the fp32 norms come first, then the quantized matrices.
    assert.deepEqual(m.tensors.slice(0, 11).map((t) => t.type), Array(11).fill('F32'));
    let quantized = 0;
    for (const t of m.tensors) {
      const orig = w.get(t.name === 'unembed.weight' ? 'embed.weight' : t.name)!;
      const raw = bytes.subarray(t.offset, t.offset + t.byteLength);
      if (!t.layout) {
        assert.ok(t.name.endsWith('norm.weight'), t.name);
        assert.deepEqual(f32(raw), orig);
        continue;
      }
      quantized++;
      const n = numElements(t.shape);
      assert.equal(t.byteLength, n + (n / 64) * 4);
      assert.equal(t.layout.scalesOffset, n);
      // Only w_down's rows (172) are not whole groups of 64.
      assert.equal(t.type, t.name.endsWith('w_down') ? 'F32' : 'Q8_G64', t.name);
      const loaded = relayoutLlama2cQ8(raw, t);
      assert.equal(loaded.byteLength, loadedByteLength(t));
      const got = dequantizeLoaded(t, loaded);
      for (let g = 0; g < n / 64; g++) {
        let max = 0;
        for (let i = g * 64; i < g * 64 + 64; i++) max = Math.max(max, Math.abs(orig[i]!));
        for (let i = g * 64; i < g * 64 + 64; i++) {
          assert.ok(Math.abs(got[i]! - orig[i]!) <= (max / 127) * 0.5 + 1e-7, `${t.name}[${i}]: ${got[i]} vs ${orig[i]}`);
        }
      }
      if (t.type === 'Q8_G64') {
        // The quant helper's Q8_G64 quantizer (export.py's numerics) gives the very same blocks.
        const ref = new Uint8Array(loaded.byteLength);
        Q8_G64.quantize(orig, 0, ref, 0, n);
        assert.ok(Buffer.from(ref).equals(Buffer.from(loaded)), `${t.name}: relayout equals Q8_G64.quantize`);
      }
    }
    assert.equal(quantized, 1 + 7 * 5 + (shared ? 0 : 1));
  }
});

test('relayoutLlama2cQ8Groups piece by piece equals the whole tensor', async () => {
  const w = await legacyWeights();
  const bytes = writeLlama2c(PARAMS, (n) => w.get(n)!, 2);
  const m = await readLlama2c(bytesSource(bytes, 'q80.bin'));
  for (const name of ['blocks.2.attn.wq', 'blocks.2.ffn.w_down']) {
    const t = m.tensors.find((x) => x.name === name)!;
    const raw = bytes.subarray(t.offset, t.offset + t.byteLength);
    const whole = relayoutLlama2cQ8(raw, t);
    const pieces = new Uint8Array(whole.byteLength);
    const n = numElements(t.shape), groups = n / 64, per = whole.byteLength / groups;
    for (let g0 = 0; g0 < groups; g0 += 5) {
      const k = Math.min(5, groups - g0);
      relayoutLlama2cQ8Groups(raw.subarray(g0 * 64, (g0 + k) * 64), raw.subarray(n + 4 * g0, n + 4 * (g0 + k)), 64,
        t.type as 'Q8_G64' | 'F32', pieces.subarray(g0 * per, (g0 + k) * per));
    }
    assert.ok(Buffer.from(pieces).equals(Buffer.from(whole)), name);
  }
});

test('version 2 with groups of 32 (export.py for dim 288) loads as exactly dequantized F32', async () => {
  const w = await legacyWeights();
  const bytes = writeLlama2c(PARAMS, (n) => w.get(n)!, 2, 32);
  const m = await readLlama2c(bytesSource(bytes, 'gs32.bin'));
  const t = m.tensors.find((x) => x.name === 'blocks.1.attn.wq')!;
  assert.equal(t.type, 'F32');
  const out = relayoutLlama2cQ8(bytes.subarray(t.offset, t.offset + t.byteLength), t);
  const got = new Float32Array(out.buffer, out.byteOffset, out.byteLength / 4);
  // Worked out independently from the file: value = int8 × the f32 scale of its group of 32.
  const n = numElements(t.shape);
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  for (const i of [0, 1, 31, 32, 33, n - 1]) {
    const q = (bytes[t.offset + i]! << 24) >> 24;
    const scale = view.getFloat32(t.offset + n + 4 * Math.floor(i / 32), true);
    assert.equal(got[i], Math.fround(q * scale), `element ${i}`);
  }
});
