// Token embedding lookup: row `id` of the embedding matrix, dequantized from its stored type.

import { getTensorType } from '../../src/formats/quant/index.ts';
import { byteSize, type Tensor } from '../../src/formats/tensor.ts';

/** out: [n, d] = table: [vocab, d] rows ids[0..n). Ids must already be checked to be < vocab. */
export function embedding(out: Float32Array, table: Tensor, ids: ArrayLike<number>, n: number = ids.length): void {
  const [vocab, d] = table.shape as [number, number];
  const type = getTensorType(table.type);
  const rowBytes = byteSize(type, d);
  for (let t = 0; t < n; t++) {
    const id = ids[t]!;
    if (!(id >= 0 && id < vocab)) throw new RangeError(`embedding: token id ${id} is outside the vocabulary of ${vocab}`);
    type.dequantize(table.data, id * rowBytes, out, t * d, d);
  }
}
