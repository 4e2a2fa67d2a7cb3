// The CPU kernels as one set, so that the forward pass (src/engine/forward.ts) gets them injected:
// `JS_KERNELS`, the readable twins (<op>/<op>.cpu.ts: the specification), or the WebAssembly SIMD
// set of kernels/wasm/kernels.ts, which keeps the same signatures and is checked against the
// twins (test/node/fast-*.test.ts). A Session picks one when it is created (kernels/wasm/choose.ts).

import { embedding } from './embedding/embedding.cpu.ts';
import { rmsnorm } from './rmsnorm/rmsnorm.cpu.ts';
import { matmul } from './matmul/matmul.cpu.ts';
import { rope } from './rope/rope.cpu.ts';
import { attention } from './attention/attention.cpu.ts';
import { add } from './add/add.cpu.ts';
import { siluMul } from './silu-mul/silu-mul.cpu.ts';
import { lensRows } from './argmax/argmax.cpu.ts';

/**
 * Where the run state's activation arrays and KV cache live (src/engine/state.ts): the JS heap, or
 * the kernels' WebAssembly memory so that the kernels read them in place. A non-shared memory's
 * buffer is replaced when it grows: `current` gives the live view of an array `alloc` returned.
 */
export interface FloatSpace {
  /** n zeroed floats. */
  alloc(n: number): Float32Array;
  /** Gives back an array alloc returned (its current or an older view). */
  free(a: Float32Array): void;
  /** The live view of an array alloc returned. */
  current(a: Float32Array): Float32Array;
}

/** Plain Float32Arrays: nothing to free, views never move. */
export const JS_SPACE: FloatSpace = Object.freeze({
  alloc: (n: number) => new Float32Array(n),
  free: () => {},
  current: (a: Float32Array) => a,
});

export interface CpuKernels {
  /** 'js': the twins; 'wasm': WebAssembly SIMD (kernels/wasm). */
  readonly name: 'js' | 'wasm';
  /** Where RunState keeps its arrays for these kernels. */
  readonly space: FloatSpace;
  readonly embedding: typeof embedding;
  readonly rmsnorm: typeof rmsnorm;
  readonly matmul: typeof matmul;
  readonly rope: typeof rope;
  readonly attention: typeof attention;
  readonly add: typeof add;
  readonly siluMul: typeof siluMul;
  /** What the logit lens keeps of rows of logits (argmax.cpu.ts): the top k, Σ e^(v − max), the target's rank. */
  readonly lensRows: typeof lensRows;
}

/** The readable twins. */
export const JS_KERNELS: CpuKernels = Object.freeze({
  name: 'js', space: JS_SPACE, embedding, rmsnorm, matmul, rope, attention, add, siluMul, lensRows,
});
