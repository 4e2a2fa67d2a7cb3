// Shared by the api-*.test.ts browser tests (not a test file): models and bitwise comparisons.

import { expect } from 'chai';
import { synthModel, shapeConfig } from '../../src/formats/synth.ts';
import type { ModelSource } from '../../src/worker/loading/types.ts';

/** stories260K from the dev server's /models/local/ (../shared/models). */
export const STORIES: ModelSource = { kind: 'local', paths: ['tinystories-260k/stories260K.gguf'] };

/** A random model whose 512-token prompt takes 8 chunks of 64 positions and a second or so on the CPU. */
export function wideModelFile(): File {
  const config = { ...shapeConfig('stories15M'), nLayers: 6, dModel: 128, dFfn: 384, nHeads: 4, nKvHeads: 4, dHead: 32, vocabSize: 1024, nCtx: 1024, name: 'wide' };
  const r = synthModel({ config, type: 'Q8_0', seed: 3, format: 'gguf' });
  return new File([r.files[0]!.bytes as Uint8Array<ArrayBuffer>], 'wide.gguf');
}

export const longPrompt = (n: number, vocab: number) => Array.from({ length: n }, (_, i) => (i * 37 + 5) % vocab);

/** Equal bit for bit (−0 vs 0 and NaN payloads included). */
export function sameBits(a: Float32Array | Int32Array, b: Float32Array | Int32Array, what: string): void {
  expect(a.constructor, `${what}: array type`).to.equal(b.constructor);
  expect(a.length, `${what}: length`).to.equal(b.length);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length), y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) expect.fail(`${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

/** Compares two slices field by field: typed arrays bit for bit, the rest deeply (traceId aside). */
export function sameSlice(a: object, b: object, what: string): void {
  const ra = a as Record<string, unknown>, rb = b as Record<string, unknown>;
  expect(Object.keys(ra).sort(), `${what}: fields`).to.deep.equal(Object.keys(rb).sort());
  for (const k of Object.keys(ra)) {
    if (k === 'traceId') continue;
    const va = ra[k], vb = rb[k];
    if (va instanceof Float32Array || va instanceof Int32Array) sameBits(va, vb as Float32Array, `${what}.${k}`);
    else expect(va, `${what}.${k}`).to.deep.equal(vb);
  }
}

/** Polls until `f` is true (the worker answers between chunks of a run). */
export async function until(f: () => Promise<boolean>, what: string, ms = 20000): Promise<void> {
  const t0 = performance.now();
  while (!(await f())) {
    if (performance.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
