// WebGPU adapter and device acquisition. Capabilities are detected once and frozen; when WebGPU
// cannot be used, `reason` says why in words the UI shows ("no WebGPU in this browser", "the
// adapter's largest buffer is 256 MiB but the model needs 512 MiB").

export interface GpuCaps {
  /** Adapter description: vendor, architecture, device, or 'unknown'. */
  readonly adapter: string;
  readonly isFallback: boolean;
  readonly maxStorageBufferBindingSize: number;
  readonly maxBufferSize: number;
  readonly maxComputeWorkgroupStorageSize: number;
  readonly maxComputeInvocationsPerWorkgroup: number;
  readonly maxComputeWorkgroupsPerDimension: number;
  readonly maxStorageBuffersPerShaderStage: number;
  readonly minUniformBufferOffsetAlignment: number;
  readonly shaderF16: boolean;
  readonly subgroups: boolean;
}

export type GpuAcquisition =
  | { ok: true; device: GPUDevice; caps: GpuCaps }
  | { ok: false; reason: string };

export interface GpuRequest {
  /** The navigator.gpu to use (Node passes the `webgpu` package's). Defaults to navigator.gpu. */
  gpu?: GPU;
  /** Largest single tensor part the model will bind (bytes); tensors are split by rows to fit. */
  minBindingBytes?: number;
  /** Cap the binding size below the adapter's (tests use this to force split bindings). */
  maxBindingBytes?: number;
  powerPreference?: GPUPowerPreference;
}

function describe(info: GPUAdapterInfo | undefined): string {
  if (!info) return 'unknown';
  const parts = [info.vendor, info.architecture, info.device, info.description].filter((s) => s && s.length > 0);
  return parts.length ? parts.join(' ') : 'unknown';
}

export async function acquireDevice(req: GpuRequest = {}): Promise<GpuAcquisition> {
  const gpu = req.gpu ?? (typeof navigator !== 'undefined' ? (navigator as Navigator & { gpu?: GPU }).gpu : undefined);
  if (!gpu) return { ok: false, reason: 'this environment has no WebGPU (navigator.gpu is missing)' };
  let adapter: GPUAdapter | null = null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: req.powerPreference ?? 'high-performance' });
  } catch (e) {
    return { ok: false, reason: `requesting a WebGPU adapter failed: ${(e as Error).message}` };
  }
  if (!adapter) return { ok: false, reason: 'no WebGPU adapter is available (blocklisted GPU, or WebGPU disabled)' };
  const L = adapter.limits;
  const binding = Math.min(L.maxStorageBufferBindingSize, req.maxBindingBytes ?? Infinity);
  if (req.minBindingBytes !== undefined && req.minBindingBytes > binding) {
    return { ok: false, reason: `the adapter binds at most ${binding} bytes but the model needs ${req.minBindingBytes}` };
  }
  const features: GPUFeatureName[] = [];
  if (adapter.features.has('shader-f16')) features.push('shader-f16');
  if (adapter.features.has('subgroups' as GPUFeatureName)) features.push('subgroups' as GPUFeatureName);
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({
      requiredFeatures: features,
      requiredLimits: {
        maxStorageBufferBindingSize: L.maxStorageBufferBindingSize,
        maxBufferSize: L.maxBufferSize,
        maxComputeWorkgroupStorageSize: L.maxComputeWorkgroupStorageSize,
        maxComputeInvocationsPerWorkgroup: L.maxComputeInvocationsPerWorkgroup,
        maxComputeWorkgroupSizeX: L.maxComputeWorkgroupSizeX,
        maxStorageBuffersPerShaderStage: L.maxStorageBuffersPerShaderStage,
      },
    });
  } catch (e) {
    return { ok: false, reason: `the WebGPU device could not be created: ${(e as Error).message}` };
  }
  const info = (adapter as GPUAdapter & { info?: GPUAdapterInfo }).info;
  const caps: GpuCaps = Object.freeze({
    adapter: describe(info),
    isFallback: (info as GPUAdapterInfo & { isFallbackAdapter?: boolean })?.isFallbackAdapter ?? false,
    maxStorageBufferBindingSize: binding,
    maxBufferSize: device.limits.maxBufferSize,
    maxComputeWorkgroupStorageSize: device.limits.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: device.limits.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupsPerDimension: device.limits.maxComputeWorkgroupsPerDimension,
    maxStorageBuffersPerShaderStage: device.limits.maxStorageBuffersPerShaderStage,
    minUniformBufferOffsetAlignment: device.limits.minUniformBufferOffsetAlignment,
    shaderF16: features.includes('shader-f16'),
    subgroups: features.includes('subgroups' as GPUFeatureName),
  });
  return { ok: true, device, caps };
}
