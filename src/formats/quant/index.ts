// The tensor-type registry: every TensorType glassbox reads, found by name or by ggml type id.

import { UnsupportedError } from '../../engine/errors.ts';
import type { TensorType, TensorTypeName } from '../tensor.ts';
import { Q4_K, Q5_K, Q8_K } from './kquants.ts';
import { Q2_K, Q3_K, Q6_K } from './kquants16.ts';
import { Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_G64 } from './legacy.ts';
import { BF16, F16, F32 } from './simple.ts';

export { F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_G64, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K };

export const ALL_TENSOR_TYPES: readonly TensorType[] = Object.freeze([
  F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, Q8_G64,
]);

const byName = new Map<string, TensorType>(ALL_TENSOR_TYPES.map((t) => [t.name, t]));
const byGgmlId = new Map<number, TensorType>();
for (const t of ALL_TENSOR_TYPES) if (t.ggmlId !== undefined) byGgmlId.set(t.ggmlId, t);

/** Names of the ggml type ids glassbox does not read, for error messages (ggml.h, enum ggml_type). */
const GGML_UNSUPPORTED_NAMES: Record<number, string> = {
  4: 'Q4_2 (removed from ggml)', 5: 'Q4_3 (removed from ggml)', 9: 'Q8_1',
  16: 'IQ2_XXS', 17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S', 20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S',
  23: 'IQ4_XS', 24: 'I8', 25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64', 29: 'IQ1_M',
  31: 'Q4_0_4_4 (removed from ggml)', 32: 'Q4_0_4_8 (removed from ggml)', 33: 'Q4_0_8_8 (removed from ggml)',
  34: 'TQ1_0', 35: 'TQ2_0',
  36: 'IQ4_NL_4_4 (removed from ggml)', 37: 'IQ4_NL_4_8 (removed from ggml)', 38: 'IQ4_NL_8_8 (removed from ggml)',
  39: 'MXFP4', 40: 'NVFP4', 41: 'Q1_0', 42: 'Q2_0',
};

/** The TensorType called `name`; UnsupportedError for a name glassbox does not know. */
export function getTensorType(name: TensorTypeName): TensorType {
  const t = byName.get(name);
  if (!t) {
    throw new UnsupportedError('tensor type', `unknown tensor type '${String(name)}'; known types: ${[...byName.keys()].join(', ')}`);
  }
  return t;
}

/**
 * The TensorType with ggml type id `id`, as written in a GGUF tensor info. `where` names the file
 * and tensor for the error message, e.g. "model.gguf: tensor 'blk.0.attn_q.weight'".
 */
export function tensorTypeByGgmlId(id: number, where: string): TensorType {
  const t = byGgmlId.get(id);
  if (t) return t;
  const name = GGML_UNSUPPORTED_NAMES[id];
  const what = name ? `type ${name} (id ${id})` : `unknown type id ${id}`;
  throw new UnsupportedError(where, `has ${what} which glassbox does not read`);
}
