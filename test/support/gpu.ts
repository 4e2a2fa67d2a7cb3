// Browser-test helper for WebGPU: one shared GpuContext per test file, or a loud skip. A skipped
// WebGPU test has "[webgpu]" in its title so that test/run.mjs can refuse a CI run in Chromium
// where the WebGPU suite was skipped (there it must run).

import { acquireDevice, type GpuRequest } from '../../src/engine/gpu/device.ts';
import { GpuContext } from '../../src/engine/gpu/context.ts';

let shared: Promise<GpuContext | string> | null = null;

/** A context on the browser's adapter, or the reason there is none. */
export function gpuContext(req: GpuRequest = {}): Promise<GpuContext | string> {
  const make = async () => {
    const a = await acquireDevice(req);
    return a.ok ? new GpuContext(a.device, a.caps) : a.reason;
  };
  if (Object.keys(req).length > 0) return make();
  shared ??= make();
  return shared;
}

/** Use in a mocha test: returns the context, or skips the test saying why. */
export async function gpuOrSkip(test: Mocha.Context, req: GpuRequest = {}): Promise<GpuContext> {
  const ctx = await gpuContext(req);
  if (typeof ctx === 'string') {
    console.warn(`SKIPPED [webgpu] ${test.test?.title ?? ''}: ${ctx}`);
    test.skip();   // a loud skip: the warning above names the reason; CI fails if a [webgpu] test skips
  }
  return ctx as GpuContext;
}

/** Seeded inputs for kernel trials: gaussian values with some large magnitudes. */
export function seededValues(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = 1 - next(), v = next();
    out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v) * scale * (next() < 0.02 ? 100 : 1);
  }
  return out;
}

/** Largest |a-b| / (atol + rtol*|b|) over all elements, and where; ±inf must match exactly. */
export function compare(a: ArrayLike<number>, b: ArrayLike<number>, atol: number, rtol = 0): { worst: number; at: number } {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let worst = 0, at = -1;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!, y = b[i]!;
    if (!Number.isFinite(y) || !Number.isFinite(x)) {
      if (!Object.is(x, y) && !(Number.isNaN(x) && Number.isNaN(y))) return { worst: Infinity, at: i };
      continue;
    }
    const r = Math.abs(x - y) / (atol + rtol * Math.abs(y));
    if (r > worst) { worst = r; at = i; }
  }
  return { worst, at };
}
