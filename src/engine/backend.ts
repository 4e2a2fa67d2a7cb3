// Which backend runs the model: WebGPU when an adapter with the limits the model needs exists,
// else the CPU, with the reason in words the UI shows ("no WebGPU adapter is available ...").
// The CPU engine is always there: it is the fallback and the oracle.

import { acquireDevice } from './gpu/device.ts';
import { GpuContext } from './gpu/context.ts';
import { gpuWeightsPreflight } from './gpu/weights.ts';
import type { ModelWeights } from './weights.ts';

export type Backend =
  | { kind: 'webgpu'; ctx: GpuContext; /** Largest part of a split weight (tests lower it). */ maxPartBytes?: number }
  | { kind: 'cpu'; /** Why not WebGPU. */ reason: string };

export interface BackendRequest {
  /** 'cpu' skips WebGPU; 'webgpu' (the default) tries it first. */
  prefer?: 'webgpu' | 'cpu';
  /** The navigator.gpu to use (Node: the `webgpu` package's; src/engine/gpu/node.ts). */
  gpu?: GPU;
  /** The weights to run, checked against the adapter's limits when given. */
  weights?: ModelWeights;
  /** GPU memory the weights may take, when the caller knows it (WebGPU does not say). */
  budgetBytes?: number;
  /** Cap the binding size below the adapter's (forces split weights; tests). */
  maxBindingBytes?: number;
  powerPreference?: GPUPowerPreference;
}

export const CPU_BACKEND: Backend = Object.freeze({ kind: 'cpu', reason: 'the CPU was asked for' });

/** WebGPU when an adapter and the needed limits exist, else the CPU with the reason. */
export async function chooseBackend(req: BackendRequest = {}): Promise<Backend> {
  if (req.prefer === 'cpu') return CPU_BACKEND;
  const a = await acquireDevice({ gpu: req.gpu, maxBindingBytes: req.maxBindingBytes, powerPreference: req.powerPreference });
  if (!a.ok) return { kind: 'cpu', reason: a.reason };
  if (req.weights) {
    const why = gpuWeightsPreflight(req.weights, a.caps, { budgetBytes: req.budgetBytes });
    if (why) {
      a.device.destroy();
      return { kind: 'cpu', reason: why };
    }
  }
  return { kind: 'webgpu', ctx: new GpuContext(a.device, a.caps) };
}
