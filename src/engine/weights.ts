// The model's weights, typed (the second of run.c's three kinds: Config, Weights, RunState).
//
// Matrices stay in their stored type, as views into the weight arena (src/engine/arena.ts), and
// are only ever touched through kernels/matmul and kernels/embedding, which dequantize on the fly.
// Norm weights are tiny and read on every position, so they are dequantized once to f32 here.

import type { ModelConfig } from './config.ts';
import { ConfigError } from './errors.ts';
import { getTensorType } from '../formats/quant/index.ts';
import { expectedShape, tensorName, type Role } from '../formats/names.ts';
import { byteSize, numElements, type Tensor, type TensorTypeName } from '../formats/tensor.ts';
import { loadWeights, weightBytes, type LoadOptions } from '../formats/load.ts';
import type { ModelFile } from '../formats/model.ts';
import { WeightArena, type ArenaOptions } from './arena.ts';
import { WasmRuntime } from '../../kernels/wasm/runtime.ts';
import { chooseBuild } from '../../kernels/wasm/calibrate.ts';

export interface BlockWeights {
  attnNorm: Float32Array;   // [d_model]
  wq: Tensor;               // [n_heads * d_head, d_model]      rows in adjacent-pair RoPE layout
  wk: Tensor;               // [n_kv_heads * d_head, d_model]   rows in adjacent-pair RoPE layout
  wv: Tensor;               // [n_kv_heads * d_head, d_model]
  wo: Tensor;               // [d_model, n_heads * d_head]
  ffnNorm: Float32Array;    // [d_model]
  wGate: Tensor;            // [d_ffn, d_model]
  wUp: Tensor;              // [d_ffn, d_model]
  wDown: Tensor;            // [d_model, d_ffn]
}

export interface ModelWeights {
  config: ModelConfig;
  embed: Tensor;            // [vocab, d_model]
  blocks: BlockWeights[];   // [n_layers]
  finalNorm: Float32Array;  // [d_model]
  unembed: Tensor;          // [vocab, d_model]; the same object as `embed` when tied
}

/**
 * Picks the tensors of a loaded model (src/formats/load.ts: our names → Tensor) and checks each
 * one's shape and byte length against the config, so that the kernels can trust them.
 */
export function modelWeights(config: ModelConfig, tensors: ReadonlyMap<string, Tensor>): ModelWeights {
  const get = (role: Role, layer?: number): Tensor => {
    const name = tensorName('ours', role, layer);
    const t = tensors.get(name);
    if (!t) throw new ConfigError(config.name, `the tensor ${name} is missing`);
    const want = expectedShape(config, role);
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
      throw new ConfigError(config.name, `the tensor ${name} has shape [${t.shape}] but the config implies [${want}]`);
    }
    const type = getTensorType(t.type);
    const rowLength = want[want.length - 1]!;
    if (rowLength % type.blockSize !== 0) {
      throw new ConfigError(config.name, `the rows of ${name} (${rowLength}) are not a whole number of ${t.type} blocks of ${type.blockSize}`);
    }
    const bytes = byteSize(type, numElements(want));
    if (t.data.byteLength !== bytes) {
      throw new ConfigError(config.name, `the tensor ${name} holds ${t.data.byteLength} bytes; ${t.type} [${want}] needs ${bytes}`);
    }
    return t;
  };
  const f32 = (t: Tensor): Float32Array => {
    const out = new Float32Array(numElements(t.shape));
    getTensorType(t.type).dequantize(t.data, 0, out, 0, out.length);
    return out;
  };

  const embed = get('embed');
  const blocks: BlockWeights[] = [];
  for (let i = 0; i < config.nLayers; i++) {
    blocks.push({
      attnNorm: f32(get('attn_norm', i)),
      wq: get('wq', i), wk: get('wk', i), wv: get('wv', i), wo: get('wo', i),
      ffnNorm: f32(get('ffn_norm', i)),
      wGate: get('w_gate', i), wUp: get('w_up', i), wDown: get('w_down', i),
    });
  }
  return {
    config,
    embed,
    blocks,
    finalNorm: f32(get('final_norm')),
    unembed: config.tiedEmbeddings ? embed : get('unembed'),
  };
}

/** The tensor type that holds most of the model's bytes. */
export function mainWeightType(model: ModelFile): TensorTypeName {
  const bytes = new Map<TensorTypeName, number>();
  for (const t of model.tensors) bytes.set(t.type, (bytes.get(t.type) ?? 0) + t.byteLength);
  let main: TensorTypeName = 'F32', most = -1;
  for (const [type, n] of bytes) if (n > most) { main = type; most = n; }
  return main;
}

/**
 * Loads a model's weights into a new weight arena (sized up front so that it never grows) and
 * types them: the usual way from an opened ModelFile (src/formats/open.ts) to a Session.
 */
export async function loadModelWeights(model: ModelFile, options: LoadOptions & ArenaOptions = {}): Promise<ModelWeights> {
  // The build of the WebAssembly kernels that multiplies the model's main weight type faster here
  // (relaxed SIMD or plain: the same bits), timed once per type and page where there is a choice.
  await chooseBuild(mainWeightType(model));
  const arena = new WeightArena(weightBytes(model), options);
  // Compile the WebAssembly kernels meanwhile (browsers compile asynchronously only), so that a
  // Session made from these weights has them; when they cannot load, Sessions use the twins.
  const kernels = WasmRuntime.preload(arena);
  const tensors = await loadWeights(model, arena, options);
  await kernels;
  return modelWeights(model.config, tensors);
}
