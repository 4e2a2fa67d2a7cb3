// Embedding lookup from a table in every stored type, on every backend. The GPU decodes the same
// bytes with the same arithmetic as dequantize() (each value is one exact product, or an exact
// product plus one rounded addition), so its rows must equal the CPU twin's exactly.
import { expect } from 'chai';
import { ALL_TENSOR_TYPES, getTensorType } from '../../src/formats/quant/index.ts';
import { byteSize, type Tensor, type TensorTypeName } from '../../src/formats/tensor.ts';
import { uploadTensor, destroyTensor } from '../../src/engine/gpu/tensor.ts';
import type { GpuLayout } from '../../src/engine/gpu/layout.ts';
import type { GpuContext } from '../../src/engine/gpu/context.ts';
import { gpuOrSkip, seededValues } from '../../test/support/gpu.ts';
import { embedding } from './embedding.cpu.ts';
import { encodeEmbedding, prepareEmbedding } from './embedding.gpu.ts';

const BACKENDS = ['cpu', 'webgpu'] as const;
type Backend = (typeof BACKENDS)[number];
const VOCAB = 37;

function dimFor(type: TensorTypeName): number {
  const bs = getTensorType(type).blockSize;
  return bs === 256 ? 768 : bs === 64 ? 192 : bs === 32 ? 160 : 96;
}

function randomTable(type: TensorTypeName, vocab: number, d: number, seed: number, scale = 1): Tensor {
  const t = getTensorType(type);
  const data = new Uint8Array(vocab * byteSize(t, d));
  t.quantize(seededValues(vocab * d, seed, scale), 0, data, 0, vocab * d);
  return { name: `embed.${type}`, type, shape: [vocab, d], data };
}

/** First and last ids, repeats, and ids from every part of a split table. */
const IDS = [0, VOCAB - 1, 5, 5, 17, VOCAB - 1, 0, 12, 13, 25, 26, 1, 36, 30];

/** Rows on the GPU, with ids and out at non-zero offsets; out starts as NaN so a missed write shows. */
async function gpuEmbedding(
  ctx: GpuContext, table: Tensor, ids: number[], maxPartBytes?: number, repack = false,
): Promise<{ out: Float32Array; dispatches: number; layout: GpuLayout }> {
  const d = table.shape[1]!;
  const n = ids.length;
  const g = uploadTensor(ctx, table, maxPartBytes, { repack });
  await prepareEmbedding(ctx, g.layout);
  const idsOff = 2, outOff = 3;
  const idb = ctx.upload(Uint32Array.from([99, 98, ...ids, 97]));
  const ob = ctx.buffer((outOff + n * d + 5) * 4);
  ctx.write(ob, 0, new Float32Array(outOff + n * d + 5).fill(NaN));
  const before = ctx.stats.dispatches;
  const step = ctx.begin('embedding test');
  encodeEmbedding(ctx, step, { buffer: ob, offset: outOff }, g, idb, idsOff, n);
  const dispatches = ctx.stats.dispatches - before;
  const read = step.read(ob, outOff * 4, n * d * 4);
  await step.submit();
  const out = new Float32Array(await read);
  destroyTensor(g);
  idb.destroy();
  ctx.release(ob);
  return { out, dispatches, layout: g.layout };
}

/** The rows by dequantizing the whole table (independent of the twin's row addressing). */
function reference(table: Tensor, ids: number[]): Float32Array {
  const [vocab, d] = table.shape as [number, number];
  const all = new Float32Array(vocab * d);
  getTensorType(table.type).dequantize(table.data, 0, all, 0, vocab * d);
  const out = new Float32Array(ids.length * d);
  ids.forEach((id, t) => out.set(all.subarray(id * d, (id + 1) * d), t * d));
  return out;
}

/** The first element where a and b differ (NaN equals NaN), or -1. */
function firstDifference(a: Float32Array, b: Float32Array): number {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return i;
  }
  return -1;
}

/** cpu: the twin against the whole-table dequantization; webgpu: the GPU against the twin, from
 *  the table uploaded in `repack` when given (uploadTensor's repack must choose that layout). */
async function trial(backend: Backend, test: Mocha.Context, table: Tensor, ids: number[], maxPartBytes?: number, repack?: GpuLayout): Promise<number> {
  const d = table.shape[1]!;
  const cpu = new Float32Array(ids.length * d);
  embedding(cpu, table, ids);
  let got: Float32Array = cpu, spec: Float32Array = reference(table, ids), dispatches = 0;
  if (backend === 'webgpu') {
    let layout: GpuLayout;
    ({ out: got, dispatches, layout } = await gpuEmbedding(await gpuOrSkip(test), table, ids, maxPartBytes, !!repack));
    expect(layout).to.equal(repack ?? table.type);
    spec = cpu;
  }
  const at = firstDifference(got, spec);
  expect(at, `${table.type} [${table.shape}]: token ${Math.floor(at / d)} (id ${ids[Math.floor(at / d)]}), element ${at % d} is ${got[at]}, expected ${spec[at]}`).to.equal(-1);
  return dispatches;
}

describe('embedding', () => {
  for (const backend of BACKENDS) {
    const wg = backend === 'webgpu' ? ' [webgpu]' : '';
    for (const t of ALL_TENSOR_TYPES) {
      it(`${t.name}: ${VOCAB} x ${dimFor(t.name)}, ids 0 and vocab-1 and repeats, ordinary and large magnitudes, exact${wg}`, async function () {
        await trial(backend, this, randomTable(t.name, VOCAB, dimFor(t.name), 3 + t.blockBytes), IDS);
        await trial(backend, this, randomTable(t.name, VOCAB, dimFor(t.name), 4 + t.blockBytes, 300), IDS.slice(0, 5));
      });
    }

    it(`F32, F16, BF16 rows not a multiple of 32 (d = 172, 67)${wg}`, async function () {
      await trial(backend, this, randomTable('F32', VOCAB, 172, 1), IDS);
      await trial(backend, this, randomTable('F16', VOCAB, 67, 2), IDS);
      await trial(backend, this, randomTable('BF16', VOCAB, 67, 3), IDS);
    });

    it(`a table split into 3 parts: one dispatch per part, each id read from its part${wg}`, async function () {
      for (const type of ['Q4_0', 'Q6_K', 'F16'] as const) {
        const rowBytes = byteSize(getTensorType(type), dimFor(type));
        const dispatches = await trial(backend, this, randomTable(type, VOCAB, dimFor(type), 9), IDS, 13 * rowBytes + 5);
        if (backend === 'webgpu') expect(dispatches).to.equal(3);   // rows 13 + 13 + 11
      }
    });
  }

  // The repacked layouts (src/engine/gpu/layout.ts): rows of whole 256-element groups become
  // Q4_0_X8 / Q8_0_X8 and still give the twin's rows exactly (so, bit for bit, what the stored
  // layout gives); a tied unembedding reads the same upload through matmul (matmul.test.ts).
  for (const [type, layout] of [['Q4_0', 'Q4_0_X8'], ['Q8_0', 'Q8_0_X8']] as const) {
    it(`[webgpu] ${type} → ${layout}: d = 256 and 1024, large magnitudes, 3 parts; d = 160 and 288 keep ${type}, exact`, async function () {
      await trial('webgpu', this, randomTable(type, VOCAB, 256, 61), IDS, undefined, layout);
      await trial('webgpu', this, randomTable(type, VOCAB, 1024, 62, 300), IDS, undefined, layout);
      const rowBytes = byteSize(getTensorType(type), 512);
      const dispatches = await trial('webgpu', this, randomTable(type, VOCAB, 512, 63), IDS, 13 * rowBytes + 5, layout);
      expect(dispatches).to.equal(3);
      for (const d of [160, 288]) await trial('webgpu', this, randomTable(type, VOCAB, d, 64), IDS, undefined, type);
    });
  }

  it('[webgpu] an id outside the vocabulary gives a row of zeros, never stale memory', async function () {
    const ctx = await gpuOrSkip(this);
    const table = randomTable('Q8_0', VOCAB, 160, 5);
    const rowBytes = byteSize(getTensorType('Q8_0'), 160);
    const { out } = await gpuEmbedding(ctx, table, [3, VOCAB, 7, 1000], 13 * rowBytes);
    const want = reference(table, [3, 0, 7, 0]);
    want.fill(0, 160, 320);
    want.fill(0, 480, 640);
    expect(firstDifference(out, want)).to.equal(-1);
  });
});
