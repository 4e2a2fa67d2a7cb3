// The weights loader: stories260K.gguf loaded into the arena and compared tensor by tensor with the
// same model's llama2.c checkpoint (an independent file: llama.cpp's converter wrote the GGUF);
// the half-split -> adjacent row permutation proved on a hand example and by RoPE itself;
// progress and abort; pieces; llama2.c int8 conversion; format detection.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { WeightArena } from '../../src/engine/arena.ts';
import type { ModelConfig } from '../../src/engine/config.ts';
import { readGgufModel } from '../../src/formats/gguf.ts';
import { readLlama2c, relayoutLlama2cQ8, writeLlama2c, type Llama2cParams } from '../../src/formats/llama2c.ts';
import { halfSplitToAdjacentRow, loadWeights, weightBytes } from '../../src/formats/load.ts';
import type { ModelFile } from '../../src/formats/model.ts';
import { fileSource } from '../../src/formats/node-source.ts';
import { detectFormat, openModel } from '../../src/formats/open.ts';
import { getTensorType } from '../../src/formats/quant/index.ts';
import { bytesSource } from '../../src/formats/source.ts';
import { synthModel } from '../../src/formats/synth.ts';
import type { TensorInfo, TensorTypeName } from '../../src/formats/tensor.ts';

const dir = fileURLToPath(new URL('../../../shared/models/tinystories-260k/', import.meta.url));

/** Byte ranges of each of our tensors in the legacy llama2.c stories260K.bin (see models/README). */
function binRanges(): Map<string, [number, number]> {
  const D = 64, H = 172, L = 5, KV = 32, V = 512;
  const out = new Map<string, [number, number]>();
  let at = 28;
  const take = (n: number) => { const r: [number, number] = [at, at + 4 * n]; at += 4 * n; return r; };
  const perLayer = (name: string, n: number) => { for (let l = 0; l < L; l++) out.set(`blocks.${l}.${name}`, take(n)); };
  const embed = take(V * D);
  out.set('embed.weight', embed);
  out.set('unembed.weight', embed); // the checkpoint shares the classifier
  perLayer('attn_norm.weight', D);
  perLayer('attn.wq', D * D);
  perLayer('attn.wk', KV * D);
  perLayer('attn.wv', KV * D);
  perLayer('attn.wo', D * D);
  perLayer('ffn_norm.weight', D);
  perLayer('ffn.w_gate', H * D);
  perLayer('ffn.w_down', D * H);
  perLayer('ffn.w_up', H * D);
  out.set('final_norm.weight', take(D));
  return out;
}

test('stories260K.gguf loads; every tensor equals the llama2.c checkpoint bytes', async () => {
  const src = await fileSource(dir + 'stories260K.gguf');
  try {
    const model = await readGgufModel(src);
    const need = weightBytes(model);
    const arena = new WeightArena(need);
    const capacity = arena.capacity;
    const w = await loadWeights(model, arena);
    assert.equal(arena.capacity, capacity, 'the arena did not grow');
    assert.ok(arena.used <= need);
    assert.equal(w.size, 48);
    const bin = readFileSync(dir + 'stories260K.bin');
    const ranges = binRanges();
    assert.equal(ranges.size, 48);
    for (const [name, [a, b]] of ranges) {
      const t = w.get(name);
      assert.ok(t, `missing ${name}`);
      assert.equal(t.type, 'F32');
      assert.equal(t.data.byteLength, b - a, name);
      assert.ok(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).equals(bin.subarray(a, b)), `${name} differs`);
      assert.equal(t.data.byteOffset % 64, 0, `${name} is 64-byte aligned`);
    }
    assert.deepEqual(w.get('blocks.0.ffn.w_down')!.shape, [64, 172]);
  } finally {
    await src.close?.();
  }
});

test('progress reaches the total; abort stops the load', async () => {
  const src = await fileSource(dir + 'stories260K.gguf');
  try {
    const model = await readGgufModel(src);
    const total = model.tensors.reduce((n, t) => n + t.byteLength, 0);
    const seen: [number, number][] = [];
    await loadWeights(model, new WeightArena(weightBytes(model)), { onProgress: (a, b) => seen.push([a, b]) });
    assert.ok(seen.length >= 48);
    assert.ok(seen.every(([, b]) => b === total));
    assert.ok(seen.every(([a], i) => i === 0 || a >= seen[i - 1]![0]), 'monotonic');
    assert.deepEqual(seen.at(-1), [total, total]);

    const ac = new AbortController();
    let calls = 0;
    await assert.rejects(
      loadWeights(model, new WeightArena(weightBytes(model)), {
        signal: ac.signal,
        onProgress: () => { if (++calls === 3) ac.abort(); },
      }),
      (e: Error) => e.name === 'AbortError');
    assert.equal(calls, 3, 'no piece was read after the abort');
    await assert.rejects(loadWeights(model, new WeightArena(1), { signal: AbortSignal.abort() }), (e: Error) => e.name === 'AbortError');
  } finally {
    await src.close?.();
  }
});

// ---------------------------------------------------------------------------------------------
// The Hugging Face half-split permutation

function tinyConfig(dHead: number, nHeads: number, nKvHeads: number): ModelConfig {
  return {
    arch: 'llama', name: 'tiny', nLayers: 1, dModel: nHeads * dHead, dFfn: 8, nHeads, nKvHeads, dHead, vocabSize: 8,
    nCtx: 16, rmsEps: 1e-5, ropeTheta: 10000, ropeScaling: null, tiedEmbeddings: true, bosId: null, eosId: null,
  };
}

/** A ModelFile holding one tensor of `rows` rows in the given bytes (nothing else is needed to load). */
function oneTensorModel(name: string, type: TensorTypeName, shape: number[], bytes: Uint8Array, config: ModelConfig, layout: 'adjacent' | 'half-split'): ModelFile {
  const info: TensorInfo = { name, fileName: name, type, shape, source: 0, offset: 0, byteLength: bytes.length };
  return { format: 'safetensors', sources: [bytesSource(bytes, 'hand.safetensors')], config, tokenizer: null, tensors: [info], ropeLayout: layout, metadata: {} };
}

test('half-split -> adjacent: hand example (2 heads of d_head 4)', async () => {
  // Row r holds the value r in each of its 4 columns. HF rotates row i with row i + d/2 inside each
  // head: pairs (0,2), (1,3), (4,6), (5,7). llama.cpp's layout rotates adjacent rows, so the rows
  // must come out as 0,2,1,3, 4,6,5,7.
  const rows = 8, cols = 4;
  const x = new Float32Array(rows * cols).map((_, i) => Math.floor(i / cols));
  const m = oneTensorModel('blocks.0.attn.wq', 'F32', [rows, cols], new Uint8Array(x.buffer), tinyConfig(4, 2, 2), 'half-split');
  const w = await loadWeights(m, new WeightArena(weightBytes(m)));
  const t = w.get('blocks.0.attn.wq')!;
  const got = new Float32Array(t.data.slice().buffer);
  assert.deepEqual([...got].filter((_, i) => i % cols === 0), [0, 2, 1, 3, 4, 6, 5, 7]);
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7].map((i) => halfSplitToAdjacentRow(i, 4)), [0, 2, 1, 3, 4, 6, 5, 7]);
  // Other tensors, and adjacent-layout files, are not touched.
  const wv = oneTensorModel('blocks.0.attn.wv', 'F32', [rows, cols], new Uint8Array(x.buffer), tinyConfig(4, 2, 2), 'half-split');
  const v = (await loadWeights(wv, new WeightArena(weightBytes(wv)))).get('blocks.0.attn.wv')!;
  assert.deepEqual(new Float32Array(v.data.slice().buffer), x);
});

test('half-split -> adjacent: RoPE of the permuted rows equals HF RoPE of the original (Q8_0 rows too)', async () => {
  // wk of a GQA model: 2 kv heads of d_head 8, d_model 32, stored as Q8_0 (rows of one 34-byte block).
  const dHead = 8, kvHeads = 2, dModel = 32, rows = kvHeads * dHead;
  let s = 7;
  const rand = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) - 0.5;
  const wf = new Float32Array(rows * dModel).map(rand);
  const q8 = getTensorType('Q8_0');
  const stored = new Uint8Array((rows * dModel / 32) * q8.blockBytes);
  q8.quantize(wf, 0, stored, 0, rows * dModel);
  const hfRows = new Float32Array(rows * dModel);
  q8.dequantize(stored, 0, hfRows, 0, rows * dModel);        // the HF matrix as stored

  const m = oneTensorModel('blocks.0.attn.wk', 'Q8_0', [rows, dModel], stored, tinyConfig(dHead, 4, kvHeads), 'half-split');
  const t = (await loadWeights(m, new WeightArena(weightBytes(m)))).get('blocks.0.attn.wk')!;
  const adjRows = new Float32Array(rows * dModel);
  q8.dequantize(t.data, 0, adjRows, 0, rows * dModel);

  const x = new Float32Array(dModel).map(rand);
  const matvec = (w: Float32Array) => Array.from({ length: rows }, (_, r) => x.reduce((acc, xv, c) => acc + w[r * dModel + c]! * xv, 0));
  const kHf = matvec(hfRows), kAdj = matvec(adjRows);
  const pos = 5, theta = 10000;
  for (let h = 0; h < kvHeads; h++) {
    const o = h * dHead;
    for (let i = 0; i < dHead / 2; i++) {
      const a = pos * Math.pow(theta, (-2 * i) / dHead), cos = Math.cos(a), sin = Math.sin(a);
      // transformers: rotate_half pairs element i with i + d/2
      const hf0 = kHf[o + i]! * cos - kHf[o + i + dHead / 2]! * sin;
      const hf1 = kHf[o + i + dHead / 2]! * cos + kHf[o + i]! * sin;
      // llama.cpp / glassbox: pairs 2i, 2i+1
      const ad0 = kAdj[o + 2 * i]! * cos - kAdj[o + 2 * i + 1]! * sin;
      const ad1 = kAdj[o + 2 * i + 1]! * cos + kAdj[o + 2 * i]! * sin;
      assert.ok(Math.abs(hf0 - ad0) < 1e-9 && Math.abs(hf1 - ad1) < 1e-9, `head ${h} pair ${i}`);
    }
  }
});

test('pieces: small reads give the same tensors (permuted rows, llama2.c int8 groups)', async () => {
  // A half-split F32 wq read 3 rows at a time equals it read whole.
  const rows = 16, cols = 8;
  const x = new Float32Array(rows * cols).map((_, i) => i * 0.5 - 7);
  const m = oneTensorModel('blocks.0.attn.wq', 'F32', [rows, cols], new Uint8Array(x.buffer), tinyConfig(8, 2, 2), 'half-split');
  const whole = (await loadWeights(m, new WeightArena(weightBytes(m)))).get('blocks.0.attn.wq')!.data.slice();
  const calls: number[] = [];
  const pieces = (await loadWeights(m, new WeightArena(weightBytes(m)), { pieceBytes: 3 * cols * 4, onProgress: (a) => calls.push(a) }))
    .get('blocks.0.attn.wq')!.data;
  assert.deepEqual(pieces, whole);
  assert.deepEqual(calls, [96, 192, 288, 384, 480, 512, 512]);

  // A llama2.c version-2 checkpoint: the loader's group-by-group conversion equals
  // llama2c.ts's whole-tensor relayout, whatever the piece size.
  const p: Llama2cParams = { dim: 64, hiddenDim: 128, nLayers: 1, nHeads: 4, nKvHeads: 2, vocabSize: 96, seqLen: 8, sharedClassifier: false };
  let s = 1;
  const bin = writeLlama2c(p, (name) => {
    const n = name.includes('norm') ? 64 : name.includes('embed') ? 96 * 64 : name.includes('ffn') ? 128 * 64 : name.includes('wk') || name.includes('wv') ? 32 * 64 : 64 * 64;
    return new Float32Array(n).map(() => ((s = (s * 69069 + 1) >>> 0) / 2 ** 32) - 0.5);
  }, 2);
  const model = await readLlama2c(bytesSource(bin, 'q8.bin'));
  const w1 = await loadWeights(model, new WeightArena(weightBytes(model)), { pieceBytes: 64 * 3 });
  const w2 = await loadWeights(model, new WeightArena(weightBytes(model)));
  let converted = 0;
  for (const t of model.tensors) {
    const got = w1.get(t.name)!;
    assert.deepEqual(got.data, w2.get(t.name)!.data, t.name);
    if (t.layout) {
      converted++;
      const raw = bin.subarray(t.offset, t.offset + t.byteLength);
      assert.deepEqual(got.data, relayoutLlama2cQ8(raw, t), t.name);
      assert.equal(got.type, 'Q8_G64');
    }
  }
  assert.ok(converted >= 8);
});

test('a file in Node is read in place (readInto): the same bytes as read(), the same errors past the end', async () => {
  const src = await fileSource(dir + 'stories260K.gguf');
  try {
    assert.ok(src.readInto, 'fileSource offers readInto');
    const at = 1000, n = 70_000;
    const dest = new Uint8Array(new SharedArrayBuffer(n + 8)).subarray(4, 4 + n);   // an arena is a shared memory
    await src.readInto!(at, dest);
    assert.deepEqual(dest, await src.read(at, n));
    assert.deepEqual(dest, new Uint8Array(readFileSync(dir + 'stories260K.gguf').subarray(at, at + n)));
    await assert.rejects(src.readInto!(src.size - 10, new Uint8Array(11)), (e: Error) => e.name === 'TruncatedFileError' && e.message.includes('stories260K.gguf'));
    await assert.rejects(src.readInto!(-1, new Uint8Array(1)), (e: Error) => e.name === 'TruncatedFileError');
  } finally {
    await src.close?.();
  }
});

test('openModel tells GGUF, safetensors and llama2.c apart by content', async () => {
  const gguf = await fileSource(dir + 'stories260K.gguf');
  const bin = await fileSource(dir + 'stories260K.bin');
  const tok = await fileSource(dir + 'tok512.bin');
  try {
    assert.equal((await openModel([gguf])).format, 'gguf');
    const l2c = await openModel([bin], { tokenizer: tok });
    assert.equal(l2c.format, 'llama2c');
    assert.equal(l2c.tokenizer?.tokens.length, 512);
    // The same checkpoint under a name that says nothing: the header is recognised.
    const anon = bytesSource(readFileSync(dir + 'stories260K.bin'), 'weights');
    assert.equal(await detectFormat(anon), 'llama2c');
    const st = synthModel({ config: { ...tinyConfig(8, 2, 2), dModel: 16, dFfn: 32, vocabSize: 260 }, type: 'F16', seed: 1, format: 'safetensors' });
    // Names that hide the format: only the content tells.
    const srcs = [bytesSource(st.files[0]!.bytes, 'blob-1'), bytesSource(st.files[1]!.bytes, 'config.json')];
    assert.equal(await detectFormat(srcs[0]!), 'safetensors');
    const m = await openModel([bytesSource(st.files[0]!.bytes, 'model.safetensors'), srcs[1]!]);
    assert.equal(m.format, 'safetensors');
    assert.equal(m.ropeLayout, 'half-split');
  } finally {
    await Promise.all([gguf, bin, tok].map((s) => s.close?.()));
  }
});
