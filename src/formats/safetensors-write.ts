// Writes a .safetensors file (for `glassbox synth` and the tests): u64 LE header length, the JSON
// header padded with spaces so that the data region starts on an 8-byte boundary (as the
// reference implementation does), then the tensors' bytes back to back in the order given.

import { UsageError } from '../engine/errors.ts';
import { numElements } from './tensor.ts';
import { SAFETENSORS_DTYPES, type SafetensorsDtype } from './safetensors.ts';

export interface SafetensorsTensor {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];            // row-major, PyTorch order
  data: Uint8Array;           // little-endian elements, numel × dtype size bytes
}

export function writeSafetensors(tensors: SafetensorsTensor[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header['__metadata__'] = metadata;
  let end = 0;
  for (const t of tensors) {
    const want = numElements(t.shape) * SAFETENSORS_DTYPES[t.dtype];
    if (t.data.byteLength !== want) {
      throw new UsageError(`tensor "${t.name}"`, `has ${t.data.byteLength} bytes but shape [${t.shape}] of ${t.dtype} needs ${want}`);
    }
    if (t.name in header) throw new UsageError(`tensor "${t.name}"`, 'is given twice');
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [end, end + want] };
    end += want;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  if (padded !== json.byteLength) {
    const p = new Uint8Array(padded).fill(0x20); // trailing spaces are valid JSON whitespace
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.byteLength + end);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  let at = 8 + json.byteLength;
  for (const t of tensors) {
    out.set(t.data, at);
    at += t.data.byteLength;
  }
  return out;
}
