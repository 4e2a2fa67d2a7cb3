// Which CPU kernels a Session uses: the WebAssembly SIMD set (kernels.ts) when its module is
// loaded, on as many threads as asked for (default: the machine's cores, at most 8) when the
// weight memory is shared, else one thread; the readable twins (kernels/cpu.ts JS_KERNELS) when
// asked for or when WebAssembly is not available. The reason for anything less than asked is
// kept, in words the UI can show.

import type { ModelWeights } from '../../src/engine/weights.ts';
import { JS_KERNELS, type CpuKernels } from '../cpu.ts';
import { WasmRuntime } from './runtime.ts';
import { wasmKernels, type WasmKernelSet } from './kernels.ts';
import { lastBuildChoice } from './calibrate.ts';

export type CpuKernelsName = 'wasm' | 'js';

export interface CpuKernelRequest {
  /** 'wasm' (default) or 'js' (the twins). */
  kernels?: CpuKernelsName;
  /** Threads for the WebAssembly kernels; default: defaultThreads(). */
  threads?: number;
  /** Positions per forward call (the session's chunk size). */
  chunkSize: number;
}

export interface CpuChoice {
  readonly kernels: CpuKernels;
  readonly name: CpuKernelsName;
  readonly threads: number;
  /** Why the kernels are the twins, or run on fewer threads than asked; null when as asked. */
  readonly reason: string | null;
  /** The kernels in words, for the UI: "WebAssembly SIMD kernels (relaxed SIMD), 2 threads". */
  readonly detail: string;
  /** Starts the threads; resolves when they are ready. */
  ready(): Promise<void>;
  /** Frees the kernels' scratch memory and ends their worker threads. */
  dispose(): void;
}

/** Most threads used by default (more rarely helps a memory-bound decode). */
export const MAX_DEFAULT_THREADS = 8;

/** The machine's cores (Node: os.availableParallelism; browsers: navigator.hardwareConcurrency), at most 8. */
export function defaultThreads(): number {
  const g = globalThis as { navigator?: { hardwareConcurrency?: number }; process?: { getBuiltinModule?: (id: string) => unknown } };
  const os = g.process?.getBuiltinModule?.('node:os') as { availableParallelism?: () => number } | undefined;
  const n = os?.availableParallelism?.() ?? g.navigator?.hardwareConcurrency ?? 1;
  return Math.max(1, Math.min(MAX_DEFAULT_THREADS, n));
}

function jsChoice(reason: string | null): CpuChoice {
  return { kernels: JS_KERNELS, name: 'js', threads: 1, reason, detail: 'JavaScript kernels, 1 thread', ready: async () => {}, dispose: () => {} };
}

export function chooseCpuKernels(weights: ModelWeights, req: CpuKernelRequest): CpuChoice {
  if (req.kernels === 'js') return jsChoice(null);
  const arena = WasmRuntime.arenaFor(weights);
  const rt = WasmRuntime.of(arena);
  if (!rt) return jsChoice(`the WebAssembly kernels are not available (${WasmRuntime.failure(arena)}); running the JavaScript kernels`);
  const asked = Math.max(1, Math.floor(req.threads ?? defaultThreads()));
  let threads = asked, reason: string | null = null;
  if (asked > 1 && !arena.shared) {
    threads = 1;
    reason = 'the weight memory is not shared (threads need a cross-origin isolated page, or a shared arena), so the kernels run on one thread';
  }
  rt.registerWeights(weights);
  const c = weights.config;
  const set: WasmKernelSet = wasmKernels(rt, {
    maxRows: req.chunkSize,
    maxK: Math.max(c.dModel, c.dFfn, c.nHeads * c.dHead),
    maxOut: Math.max(c.dModel, c.dFfn, c.nHeads * c.dHead, c.vocabSize),
    maxPositions: c.nCtx,
    threads,
  });
  // the build, and why not the relaxed one where it was timed slower (calibrate.ts)
  const timed = lastBuildChoice();
  const build = rt.c.RELAXED ? ' (relaxed SIMD)'
    : timed && !timed.relaxed ? ` (without relaxed SIMD: timed faster here on ${timed.type}, ${timed.plainMs.toFixed(2)} against ${timed.relaxedMs.toFixed(2)} ms)` : '';
  const detail = `WebAssembly SIMD kernels${build}, ${threads} thread${threads > 1 ? 's' : ''}`;
  return { kernels: set, name: 'wasm', threads, reason, detail, ready: () => set.ready(), dispose: () => { set.dispose(); rt.closeThreads(); } };
}
