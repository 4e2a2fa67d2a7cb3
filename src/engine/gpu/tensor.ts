// Tensors on the GPU. Activations are f32 regions of storage buffers (F32Ref); weights stay in
// their stored type and are split by rows across buffers so that no part exceeds the binding limit.
// Q4_0 and Q8_0 matrices may be repacked on the way up into a GPU-only layout read with aligned
// 16-byte loads (layout.ts); the kernels pick their decoder by `layout`.

import type { Tensor, TensorTypeName } from '../../formats/tensor.ts';
import { byteSize } from '../../formats/tensor.ts';
import { getTensorType } from '../../formats/quant/index.ts';
import type { GpuContext } from './context.ts';
import { isRepacked, layoutFor, repackInto, type GpuLayout } from './layout.ts';

export interface F32Ref { buffer: GPUBuffer; offset: number }          // offset in f32 elements
/** A weight matrix [rows, cols] in its stored type, split by rows across buffers so that no part
 *  exceeds the binding limit. Row r lives in the part with firstRow <= r < firstRow + rows, at byte
 *  (r - firstRow) * rowBytes of that part's buffer, laid out as `layout`. */
export interface GpuTensor {
  name: string;
  type: TensorTypeName;            // the stored type (what the CPU has)
  layout: GpuLayout;               // what the kernels decode: `type`, or its repacking (layout.ts)
  shape: number[];                 // [rows, cols] (1-D tensors: [n])
  rowBytes: number;                // bytes of one row in the stored type
  parts: { buffer: GPUBuffer; firstRow: number; rows: number }[];
}

// ---------------------------------------------------------------------------------------------
// Uploading

/**
 * Uploads a tensor in its stored type. A matrix [rows, cols] is split by whole rows so that no
 * part exceeds `maxPartBytes` (a 128k-vocabulary embedding does not fit one binding); a 1-D tensor
 * (a norm weight) is one part. Throws when a single row is larger than the limit.
 * `repack`: a Q4_0 or Q8_0 matrix whose rows are whole groups of 256 elements is rearranged into
 * its GPU-only layout (layout.ts; as many bytes per row), part by part, straight into the new
 * buffer's mapped memory. Off by default here, so that a caller who prepares pipelines by the
 * stored type keeps working; uploadWeights turns it on.
 */
export function uploadTensor(
  ctx: GpuContext, t: Tensor, maxPartBytes = ctx.caps.maxStorageBufferBindingSize, { repack = false }: { repack?: boolean } = {},
): GpuTensor {
  const type = getTensorType(t.type);
  const oneD = t.shape.length === 1;
  const rows = oneD ? 1 : t.shape[0]!;
  const cols = oneD ? t.shape[0]! : t.shape[t.shape.length - 1]!;
  const rowBytes = byteSize(type, cols);
  if (t.data.byteLength !== rows * rowBytes) {
    throw new Error(`uploadTensor ${t.name}: ${t.data.byteLength} bytes, but ${t.type} [${t.shape}] needs ${rows * rowBytes}`);
  }
  // each part is its own buffer, padded to 4 bytes by ctx.upload: keep the padded size in bounds
  const limit = Math.floor(Math.min(maxPartBytes, ctx.caps.maxBufferSize) / 4) * 4;
  const perPart = oneD ? 1 : Math.floor(limit / rowBytes);
  if (perPart < 1 || (oneD && rowBytes > limit)) {
    throw new Error(`uploadTensor ${t.name}: one row takes ${rowBytes} bytes, more than the binding limit of ${limit}`);
  }
  const layout = oneD ? t.type : layoutFor(t.type, cols, repack);
  const parts: GpuTensor['parts'] = [];
  for (let first = 0; first < rows; first += perPart) {
    const n = Math.min(perPart, rows - first);
    const bytes = t.data.subarray(first * rowBytes, (first + n) * rowBytes);
    const label = `${t.name}[${first}..${first + n})`;
    const buffer = isRepacked(layout)
      ? ctx.uploadWith(bytes.byteLength, label, (dst) => repackInto(layout, bytes, dst))
      : ctx.upload(bytes, label);
    parts.push({ buffer, firstRow: first, rows: n });
  }
  return { name: t.name, type: t.type, layout, shape: [...t.shape], rowBytes, parts };
}

/** Frees a tensor's buffers. */
export function destroyTensor(t: GpuTensor): void {
  for (const p of t.parts) p.buffer.destroy();
}
