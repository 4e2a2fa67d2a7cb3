// Steering vectors in llama.cpp's control-vector format (what `llama-cvector-generator` writes and
// `--control-vector[-scaled]` reads): a GGUF file with
//   general.architecture     = 'controlvector'
//   controlvector.model_hint = the model's architecture ('llama')
//   controlvector.layer_count = how many layers the file has a direction for
// and one F32 tensor `direction.{L}` of [d_model] per layer L ≥ 1. llama.cpp adds direction L
// (times the strength) to the output of layer L, i.e. our blocks.L.hook_resid_post; layer 0 has
// none (its index is reserved). controlVectorEdits turns a file into steer edits (edits.ts).

import { ModelFormatError, UsageError } from './errors.ts';
import type { Edit } from './edits.ts';
import type { ByteSource } from '../formats/source.ts';
import { readGguf } from '../formats/gguf.ts';
import { writeGguf } from '../formats/gguf-write.ts';

export interface ControlVector {
  /** The architecture the vector was made for (controlvector.model_hint). */
  modelHint: string;
  /** Floats per direction. */
  dModel: number;
  /** Layer L (≥ 1) → its direction [d_model], added to blocks.L.hook_resid_post. */
  directions: Map<number, Float32Array>;
}

/** A control-vector GGUF in memory. Layers must be ≥ 1 and every direction d_model long. */
export function writeControlVector(cv: ControlVector): Uint8Array {
  const layers = [...cv.directions.keys()].sort((a, b) => a - b);
  if (layers.length === 0) throw new UsageError('control vector directions', 'is empty', 'Give at least one layer’s direction');
  for (const l of layers) {
    if (!Number.isInteger(l) || l < 1) throw new UsageError(`control vector direction.${l}`, 'layers start at 1 (llama.cpp reserves 0)');
    const v = cv.directions.get(l)!;
    if (!(v instanceof Float32Array) || v.length !== cv.dModel) throw new UsageError(`control vector direction.${l}`, `has ${v?.length} floats, not d_model = ${cv.dModel}`);
  }
  return writeGguf({
    metadata: [
      ['general.architecture', { type: 'string', value: 'controlvector' }],
      ['controlvector.model_hint', { type: 'string', value: cv.modelHint }],
      ['controlvector.layer_count', { type: 'i32', value: layers.length }],
    ],
    tensors: layers.map((l) => {
      const v = cv.directions.get(l)!;
      return { name: `direction.${l}`, typeName: 'F32' as const, shape: [cv.dModel], data: new Uint8Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength)) };
    }),
  });
}

/**
 * Reads a control-vector GGUF. With `expect` (the model it will steer), a direction of another
 * length or a layer the model lacks is refused, naming the file and the tensor.
 */
export async function readControlVector(src: ByteSource, expect?: { dModel: number; nLayers: number }): Promise<ControlVector> {
  const f = await readGguf(src);
  const name = src.name;
  const arch = f.metadata.get('general.architecture');
  if (arch !== 'controlvector') {
    throw new ModelFormatError(`${name} general.architecture`, `is ${JSON.stringify(arch ?? null)}, not "controlvector": this is not a control vector`, 'Give a file written by llama-cvector-generator or by glassbox');
  }
  const hint = f.metadata.get('controlvector.model_hint');
  const modelHint = typeof hint === 'string' ? hint : '';
  const directions = new Map<number, Float32Array>();
  let dModel = expect?.dModel ?? -1;
  for (const t of f.tensorInfos) {
    const m = /^direction\.(\d+)$/.exec(t.name);
    if (!m) throw new ModelFormatError(`${name} tensor ${t.name}`, 'is not a direction.{layer} tensor');
    const layer = Number(m[1]);
    const where = `${name} tensor ${t.name}`;
    if (layer < 1) throw new ModelFormatError(where, 'layer 0 has no direction in llama.cpp’s format (layers start at 1)');
    if (t.type !== 'F32') throw new ModelFormatError(where, `is ${t.type}; directions are F32`);
    if (t.dims.length !== 1) throw new ModelFormatError(where, `has dims [${t.dims}]; a direction is one [d_model] vector`);
    const len = t.dims[0]!;
    if (dModel < 0) dModel = len;
    if (len !== dModel) {
      throw new ModelFormatError(where, `has ${len} floats but ${expect ? `the model's d_model is ${dModel}` : `other directions have ${dModel}`}`,
        expect ? 'This control vector was made for another model; use one made for this model' : undefined);
    }
    if (expect && layer >= expect.nLayers) throw new ModelFormatError(where, `is for layer ${layer}; the model has layers 0..${expect.nLayers - 1}`, 'This control vector was made for another model');
    if (directions.has(layer)) throw new ModelFormatError(where, 'appears twice');
    const start = f.dataOffset + t.offset;
    if (t.byteLength !== 4 * len || start + t.byteLength > src.size) throw new ModelFormatError(where, `its ${4 * len} bytes at ${start} lie past the end of the file (${src.size} bytes)`);
    const bytes = await src.read(start, t.byteLength);
    directions.set(layer, new Float32Array(bytes.slice().buffer, 0, len));
  }
  if (directions.size === 0) throw new ModelFormatError(name, 'holds no direction.{layer} tensors', 'Give a file written by llama-cvector-generator or by glassbox');
  const count = f.metadata.get('controlvector.layer_count');
  if (count !== undefined && Number(count) !== directions.size) {
    throw new ModelFormatError(`${name} controlvector.layer_count`, `says ${String(count)} layers but the file holds ${directions.size} directions`);
  }
  return { modelHint, dModel, directions };
}

/**
 * The steer edits that apply a control vector as llama.cpp does: direction L × strength added to
 * blocks.L.hook_resid_post at every position, for the layers in [from, to] (default all).
 */
export function controlVectorEdits(cv: ControlVector, opts: { strength?: number; from?: number; to?: number; positions?: readonly number[] | 'all' } = {}): Edit[] {
  const out: Edit[] = [];
  for (const [l, v] of [...cv.directions].sort((a, b) => a[0] - b[0])) {
    if (l < (opts.from ?? 0) || l > (opts.to ?? Infinity)) continue;
    out.push({ hook: `blocks.${l}.hook_resid_post`, op: 'steer', vector: v, strength: opts.strength ?? 1, positions: opts.positions ?? 'all' });
  }
  return out;
}
