// llama2.c checkpoints (karpathy/llama2.c) -> ModelFile, and a writer for the tests.
//
// Three layouts, all little-endian, no tensor names, no alignment beyond 4 bytes:
//   legacy (v0): 7 × int32 header (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
//                seq_len; a negative vocab_size means the classifier is NOT shared), then fp32:
//                embed, per-layer arrays grouped by kind, final norm, the RoPE tables
//                freq_cis_real/imag [seq_len, head_size/2] (skipped), [classifier].
//   v1:          256-byte header: u32 magic "ak42", int32 version, the 7 int32s, u8 shared flag;
//                then fp32: the norms first, then embed, the matrices, [classifier].
//   v2:          as v1 plus int32 group_size after the flag; norms in fp32, then each matrix as
//                int8 values immediately followed by its f32 scales (one per group_size values,
//                groups running across row ends).
// Nothing in the file names its size, so the header's dimensions must imply exactly the file's
// length: that is how a truncated or foreign .bin is caught before anything is read.

import { validateConfig, type ModelConfig } from '../engine/config.ts';
import { ModelFormatError, TokenizerError, TruncatedFileError, UnsupportedError, UsageError } from '../engine/errors.ts';
import { tokenizerDataFromLlama2cBin } from '../tokenizer/llama2c-bin.ts';
import type { ModelFile } from './model.ts';
import { tensorName, type Role } from './names.ts';
import { readAll, type ByteSource } from './source.ts';
import { numElements, type TensorInfo } from './tensor.ts';

const MAGIC = 0x616b3432;        // "ak42" read as a little-endian u32
const V1_HEADER_BYTES = 256;
const LEGACY_HEADER_BYTES = 28;
const MAX_DIM = 1 << 24;         // validateConfig's bound; larger fields are not a real header
const Q8_GROUP = 64;             // the only group size the Q8_G64 tensor type holds
const MAX_TOKENIZER_BYTES = 64 * 1024 * 1024;

export interface Llama2cParams {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;             // always positive here; the legacy sign is in sharedClassifier
  seqLen: number;
  sharedClassifier: boolean;
}

export interface Llama2cHeader extends Llama2cParams {
  version: 0 | 1 | 2;
  headerBytes: number;
  groupSize: number | null;      // v2 only
}

// ---------------------------------------------------------------------------------------------
// File order of the arrays (one table serves the reader and the writer)

interface Slot {
  fileName: string;
  role: Role | null;             // null: RoPE tables, skipped
  layer?: number;
  shape: number[];
  q8: boolean;                   // int8 values + f32 scales (v2) rather than fp32
}

function slots(h: Llama2cHeader): Slot[] {
  const { dim: D, hiddenDim: H, nLayers: L, seqLen } = h;
  const hs = D / h.nHeads, kv = h.nKvHeads * hs;
  const q8 = h.version === 2;
  const shapes: Record<Role, number[]> = {
    embed: [h.vocabSize, D], unembed: [h.vocabSize, D], final_norm: [D], attn_norm: [D], ffn_norm: [D],
    wq: [D, D], wk: [kv, D], wv: [kv, D], wo: [D, D], w_gate: [H, D], w_down: [D, H], w_up: [H, D],
  };
  const fileNames: Record<Role, string> = {
    embed: 'token_embedding_table', unembed: 'wcls', final_norm: 'rms_final_weight', attn_norm: 'rms_att_weight',
    ffn_norm: 'rms_ffn_weight', wq: 'wq', wk: 'wk', wv: 'wv', wo: 'wo', w_gate: 'w1', w_down: 'w2', w_up: 'w3',
  };
  const one = (role: Role, quantized: boolean): Slot =>
    ({ fileName: fileNames[role], role, shape: shapes[role], q8: quantized });
  const perLayer = (role: Role, quantized: boolean): Slot[] => Array.from({ length: L }, (_, i) =>
    ({ fileName: `${fileNames[role]}[${i}]`, role, layer: i, shape: shapes[role], q8: quantized }));
  const matrices = (['wq', 'wk', 'wv', 'wo', 'w_gate', 'w_down', 'w_up'] as Role[]).flatMap((r) => perLayer(r, q8));
  const cls = h.sharedClassifier ? [] : [one('unembed', q8)];
  if (h.version === 0) {
    const rope = (n: string): Slot => ({ fileName: n, role: null, shape: [seqLen, hs / 2], q8: false });
    return [
      one('embed', false), ...perLayer('attn_norm', false),
      ...matrices.slice(0, 4 * L), ...perLayer('ffn_norm', false), ...matrices.slice(4 * L),
      one('final_norm', false), rope('freq_cis_real'), rope('freq_cis_imag'), ...cls,
    ];
  }
  return [
    ...perLayer('attn_norm', false), ...perLayer('ffn_norm', false), one('final_norm', false),
    one('embed', q8), ...matrices, ...cls,
  ];
}

/** File size the header implies, computed without building the per-layer table (a damaged
 *  n_layers must not make us allocate millions of entries) and in BigInt (no overflow). */
function impliedSize(h: Llama2cHeader): bigint {
  const [D, H, L, V, S] = [h.dim, h.hiddenDim, h.nLayers, h.vocabSize, h.seqLen].map(BigInt) as bigint[];
  const hs = D! / BigInt(h.nHeads), kv = BigInt(h.nKvHeads) * hs;
  const matrixElems = L! * (D! * D! * 2n + kv * D! * 2n + H! * D! * 3n) + V! * D! * (h.sharedClassifier ? 1n : 2n);
  const normElems = L! * D! * 2n + D!;
  if (h.version === 2) {
    const gs = BigInt(h.groupSize!);
    return BigInt(h.headerBytes) + normElems * 4n + matrixElems + (matrixElems / gs) * 4n;
  }
  const ropeElems = h.version === 0 ? S! * hs : 0n; // two tables of [seq_len, hs/2]
  return BigInt(h.headerBytes) + (matrixElems + normElems + ropeElems) * 4n;
}

// ---------------------------------------------------------------------------------------------
// Reader

function parseHeader(bytes: Uint8Array, src: ByteSource): Llama2cHeader {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength >= 4 && new TextDecoder().decode(bytes.subarray(0, 4)) === 'GGUF') {
    throw new ModelFormatError(src.name, 'is a GGUF file, not a llama2.c checkpoint', 'Open it as a .gguf model');
  }
  let version: 0 | 1 | 2 = 0, at = 0;
  if (bytes.byteLength >= 8 && dv.getUint32(0, true) === MAGIC) {
    const v = dv.getInt32(4, true);
    if (v !== 1 && v !== 2) {
      throw new UnsupportedError(src.name, `is a llama2.c checkpoint of version ${v}; glassbox reads versions 0 (legacy), 1 and 2`,
        'Export it again with llama2.c export.py --version 1 or 2');
    }
    if (src.size < V1_HEADER_BYTES) {
      throw new TruncatedFileError(src.name, `is ${src.size} bytes long, shorter than its ${V1_HEADER_BYTES}-byte header`);
    }
    version = v;
    at = 8;
  } else if (src.size < LEGACY_HEADER_BYTES) {
    throw new TruncatedFileError(src.name, `is ${src.size} bytes long, shorter than the 28-byte llama2.c header`);
  }
  const fields = ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len'];
  const v = fields.map((_, i) => dv.getInt32(at + 4 * i, true));
  const shared = version === 0 ? v[5]! > 0 : bytes[36] !== 0;
  if (version === 0) v[5] = Math.abs(v[5]!);
  fields.forEach((f, i) => {
    if (!(v[i]! > 0 && v[i]! <= MAX_DIM)) {
      throw new ModelFormatError(src.name, `header field ${f} is ${v[i]}; this is not a llama2.c checkpoint (or it is damaged)`);
    }
  });
  const h: Llama2cHeader = {
    version, headerBytes: version === 0 ? LEGACY_HEADER_BYTES : V1_HEADER_BYTES,
    dim: v[0]!, hiddenDim: v[1]!, nLayers: v[2]!, nHeads: v[3]!, nKvHeads: v[4]!, vocabSize: v[5]!, seqLen: v[6]!,
    sharedClassifier: shared, groupSize: version === 2 ? dv.getInt32(37, true) : null,
  };
  if (h.dim % h.nHeads !== 0 || (h.dim / h.nHeads) % 2 !== 0) {
    throw new ModelFormatError(src.name, `dim ${h.dim} is not n_heads (${h.nHeads}) × an even head size`);
  }
  if (h.nHeads % h.nKvHeads !== 0) {
    throw new ModelFormatError(src.name, `n_heads (${h.nHeads}) is not a multiple of n_kv_heads (${h.nKvHeads})`);
  }
  if (version === 2) {
    const gs = h.groupSize!;
    const kv = h.nKvHeads * (h.dim / h.nHeads);
    if (!(gs > 0) || [h.dim * h.dim, kv * h.dim, h.hiddenDim * h.dim, h.vocabSize * h.dim].some((n) => n % gs !== 0)) {
      throw new ModelFormatError(src.name, `group_size ${gs} does not divide every quantized tensor`);
    }
  }
  return h;
}

/** Reads and checks the header alone (for `glassbox inspect`, and readLlama2c). */
export async function readLlama2cHeader(src: ByteSource): Promise<Llama2cHeader> {
  const h = parseHeader(await src.read(0, Math.min(src.size, V1_HEADER_BYTES)), src);
  const want = impliedSize(h);
  if (want !== BigInt(src.size)) {
    const what = `the header (version ${h.version}, dim ${h.dim}, hidden_dim ${h.hiddenDim}, n_layers ${h.nLayers}, ` +
      `vocab ${h.vocabSize}${h.sharedClassifier ? '' : ' + classifier'}) implies ${want} bytes but the file is ${src.size} bytes`;
    if (want > BigInt(src.size)) throw new TruncatedFileError(src.name, what, 'The file is incomplete, or not a llama2.c checkpoint; download it again');
    throw new ModelFormatError(src.name, what, 'This is not a llama2.c checkpoint, or its header is damaged');
  }
  return h;
}

/**
 * Reads a llama2.c checkpoint (.bin, legacy / v1 / v2) and, when given, its tokenizer.bin.
 * v2 matrices are listed as Q8_G64 (or F32 when rows are not whole groups of 64) with a
 * 'llama2c-q8' layout: the loader converts them with relayoutLlama2cQ8.
 */
export async function readLlama2c(src: ByteSource, tokenizer?: ByteSource): Promise<ModelFile> {
  const h = await readLlama2cHeader(src);
  const config: ModelConfig = validateConfig({
    arch: 'llama',
    name: (src.name.split(/[\\/]/).pop() ?? src.name).replace(/\.bin$/i, ''),
    nLayers: h.nLayers, dModel: h.dim, dFfn: h.hiddenDim, nHeads: h.nHeads, nKvHeads: h.nKvHeads,
    dHead: h.dim / h.nHeads, vocabSize: h.vocabSize, nCtx: h.seqLen,
    rmsEps: 1e-5, ropeTheta: 10000, ropeScaling: null,
    tiedEmbeddings: h.sharedClassifier, bosId: 1, eosId: 2,
  }, src.name);

  const tensors: TensorInfo[] = [];
  let offset = h.headerBytes;
  for (const s of slots(h)) {
    const n = numElements(s.shape);
    const stored = s.q8 ? n + (n / h.groupSize!) * 4 : n * 4;
    if (s.role !== null) {
      const info: TensorInfo = {
        name: tensorName('ours', s.role, s.layer), fileName: s.fileName, type: 'F32', shape: s.shape,
        source: 0, offset, byteLength: stored,
      };
      if (s.q8) {
        // Q8_G64 blocks lie along a row, so a row must be whole groups of 64; otherwise (other
        // group sizes: export.py uses 32 for dim 288, or rows of 172) dequantize, exactly.
        info.type = h.groupSize === Q8_GROUP && s.shape[s.shape.length - 1]! % Q8_GROUP === 0 ? 'Q8_G64' : 'F32';
        info.layout = { kind: 'llama2c-q8', groupSize: h.groupSize!, scalesOffset: n };
      }
      tensors.push(info);
    }
    offset += stored;
  }

  let tok = null;
  if (tokenizer) {
    if (tokenizer.size > MAX_TOKENIZER_BYTES) {
      throw new TokenizerError(tokenizer.name, `is ${tokenizer.size} bytes; a llama2.c tokenizer.bin is at most a few MB`);
    }
    tok = tokenizerDataFromLlama2cBin(await readAll(tokenizer), tokenizer.name, h.vocabSize);
  }
  const metadata: Record<string, unknown> = {
    'llama2c.version': h.version, 'llama2c.dim': h.dim, 'llama2c.hidden_dim': h.hiddenDim, 'llama2c.n_layers': h.nLayers,
    'llama2c.n_heads': h.nHeads, 'llama2c.n_kv_heads': h.nKvHeads, 'llama2c.vocab_size': h.vocabSize,
    'llama2c.seq_len': h.seqLen, 'llama2c.shared_classifier': h.sharedClassifier,
  };
  if (h.groupSize !== null) metadata['llama2c.group_size'] = h.groupSize;
  return { format: 'llama2c', sources: [src], config, tokenizer: tok, tensors, ropeLayout: 'adjacent', metadata };
}

/** Bytes a tensor takes once loaded: its type's size when the loader converts it (`layout`),
 *  else the bytes stored in the file. */
export function loadedByteLength(info: Pick<TensorInfo, 'type' | 'shape' | 'byteLength' | 'layout'>): number {
  if (!info.layout) return info.byteLength;
  const n = numElements(info.shape);
  return info.type === 'Q8_G64' ? (n / Q8_GROUP) * (4 + Q8_GROUP) : n * 4;
}

/**
 * Converts whole groups of llama2.c int8 data: `values` (k × groupSize int8) and their `scales`
 * (k × f32 LE) into `out`: k Q8_G64 blocks [f32 scale][64 × int8] (a lossless copy; groupSize
 * must be 64), or k × groupSize F32 values q × scale (exactly what llama2.c's runq.c dequantizes
 * to). Group g of a tensor lands at byte g × 68 (Q8_G64) or g × groupSize × 4 (F32) of the
 * loaded tensor, so a loader may convert a tensor piece by piece.
 */
export function relayoutLlama2cQ8Groups(values: Uint8Array, scales: Uint8Array, groupSize: number, type: 'Q8_G64' | 'F32', out: Uint8Array): void {
  const k = values.byteLength / groupSize;
  const outBytes = type === 'Q8_G64' ? k * (4 + Q8_GROUP) : k * groupSize * 4;
  if (!Number.isInteger(k) || scales.byteLength !== k * 4 || out.byteLength !== outBytes || (type === 'Q8_G64' && groupSize !== Q8_GROUP)) {
    throw new UsageError('relayoutLlama2cQ8Groups',
      `${values.byteLength} values, ${scales.byteLength} scale bytes and ${out.byteLength} output bytes do not fit ${type} in groups of ${groupSize}`);
  }
  if (type === 'Q8_G64') {
    for (let g = 0; g < k; g++) {
      const b = g * (4 + Q8_GROUP);
      out.set(scales.subarray(4 * g, 4 * g + 4), b); // the scale's bytes as stored
      out.set(values.subarray(g * Q8_GROUP, (g + 1) * Q8_GROUP), b + 4);
    }
    return;
  }
  const q = new Int8Array(values.buffer, values.byteOffset, values.byteLength);
  const s = new DataView(scales.buffer, scales.byteOffset, scales.byteLength);
  const o = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let g = 0; g < k; g++) {
    const scale = s.getFloat32(4 * g, true);
    for (let i = g * groupSize; i < (g + 1) * groupSize; i++) o.setFloat32(4 * i, q[i]! * scale, true);
  }
}

/**
 * Converts a whole v2 tensor: `raw` is the info.byteLength bytes read at info.offset (int8 values,
 * then f32 scales at layout.scalesOffset). Returns (or fills `out`, of loadedByteLength(info)
 * bytes) the tensor in info.type.
 */
export function relayoutLlama2cQ8(raw: Uint8Array, info: Pick<TensorInfo, 'name' | 'type' | 'shape' | 'byteLength' | 'layout'>, out?: Uint8Array): Uint8Array {
  const layout = info.layout;
  if (!layout || layout.kind !== 'llama2c-q8') throw new UsageError(info.name, 'has no llama2c-q8 layout to convert');
  if (info.type !== 'Q8_G64' && info.type !== 'F32') throw new UsageError(info.name, `llama2c-q8 data cannot become ${info.type}`);
  const n = numElements(info.shape), groups = n / layout.groupSize;
  if (!Number.isInteger(groups) || layout.scalesOffset < n || raw.byteLength < layout.scalesOffset + groups * 4) {
    throw new ModelFormatError(info.name, `llama2.c int8 data of ${raw.byteLength} bytes does not hold ${n} values and ${groups} scales`);
  }
  const dst = out ?? new Uint8Array(loadedByteLength(info));
  relayoutLlama2cQ8Groups(raw.subarray(0, n), raw.subarray(layout.scalesOffset, layout.scalesOffset + groups * 4), layout.groupSize, info.type, dst);
  return dst;
}

// ---------------------------------------------------------------------------------------------
// Writer (tests, synth): the same slot table, the export.py numerics

/** Round half to even, as torch.round does in export.py's quantizer. */
function roundEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Writes a llama2.c checkpoint of `version` (0 legacy, 1 fp32, 2 int8 in groups of `groupSize`).
 * `weight(name)` returns each of our tensors (names.ts) as f32, row-major.
 */
export function writeLlama2c(p: Llama2cParams, weight: (name: string) => Float32Array, version: 0 | 1 | 2, groupSize = 64): Uint8Array {
  const h: Llama2cHeader = { ...p, version, headerBytes: version === 0 ? LEGACY_HEADER_BYTES : V1_HEADER_BYTES, groupSize: version === 2 ? groupSize : null };
  const out = new Uint8Array(Number(impliedSize(h)));
  const dv = new DataView(out.buffer);
  let at = 0;
  if (version > 0) {
    dv.setUint32(0, MAGIC, true);
    dv.setInt32(4, version, true);
    at = 8;
  }
  const vocab = version === 0 && !p.sharedClassifier ? -p.vocabSize : p.vocabSize;
  [p.dim, p.hiddenDim, p.nLayers, p.nHeads, p.nKvHeads, vocab, p.seqLen].forEach((x, i) => dv.setInt32(at + 4 * i, x, true));
  if (version > 0) out[36] = p.sharedClassifier ? 1 : 0;
  if (version === 2) dv.setInt32(37, groupSize, true);

  const hs = p.dim / p.nHeads;
  at = h.headerBytes;
  const putF32 = (x: Float32Array) => { for (const v of x) { dv.setFloat32(at, v, true); at += 4; } };
  for (const s of slots(h)) {
    const n = numElements(s.shape);
    let x: Float32Array;
    if (s.role === null) {
      // llama2.c's precomputed RoPE tables: cos / sin of pos × theta^(-2i/hs)
      x = new Float32Array(n);
      const sin = s.fileName.endsWith('imag');
      for (let t = 0; t < p.seqLen; t++) {
        for (let i = 0; i < hs / 2; i++) {
          const a = t * Math.pow(10000, -(2 * i) / hs);
          x[t * (hs / 2) + i] = sin ? Math.sin(a) : Math.cos(a);
        }
      }
    } else {
      x = weight(tensorName('ours', s.role, s.layer));
      if (x.length !== n) throw new UsageError(s.fileName, `has ${x.length} values, expected ${n}`);
    }
    if (!s.q8) { putF32(x); continue; }
    const scales = new Float32Array(n / groupSize);
    for (let g = 0; g < scales.length; g++) {
      let max = 0;
      for (let i = g * groupSize; i < (g + 1) * groupSize; i++) max = Math.max(max, Math.abs(x[i]!));
      const scale = Math.fround(max / 127);
      scales[g] = scale;
      for (let i = g * groupSize; i < (g + 1) * groupSize; i++) {
        dv.setInt8(at + i, scale === 0 ? 0 : roundEven(Math.fround(x[i]! / scale)));
      }
    }
    at += n;
    putF32(scales);
  }
  return out;
}
