// The GPU context: one device, a pipeline cache, a buffer pool, and steps. A step is one command
// encoder: every dispatch of a forward step is recorded into it, uniforms for all of them are
// written into one ring buffer, readbacks are copies into staging buffers, and `submit()` sends it
// all at once and maps the staging buffers together — one readback per step.

import type { GpuCaps } from './device.ts';

/** A region of a storage buffer, in bytes. */
export interface GpuView {
  buffer: GPUBuffer;
  offset?: number;
  size?: number;
}

export type Binding = GPUBuffer | GpuView;

const STORAGE = 0x80 /* STORAGE */ | 0x4 /* COPY_SRC */ | 0x8 /* COPY_DST */;
const UNIFORM_RING = 1 << 20;

function roundUp(n: number, m: number): number {
  return Math.ceil(n / m) * m;
}

export class GpuContext {
  readonly device: GPUDevice;
  readonly caps: GpuCaps;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly pending = new Map<string, Promise<GPUComputePipeline>>();
  private readonly free = new Map<number, GPUBuffer[]>();
  /** Counters for benchmarks and tests: dispatches and bytes read back since the last reset. */
  stats = { dispatches: 0, readbackBytes: 0, submits: 0 };
  lost: GPUDeviceLostInfo | null = null;

  constructor(device: GPUDevice, caps: GpuCaps) {
    this.device = device;
    this.caps = caps;
    void device.lost.then((info) => { this.lost = info; });
  }

  /** A compute pipeline, compiled once per key. `code` is only read the first time. */
  async pipeline(key: string, code: () => Promise<string> | string, constants?: Record<string, number>): Promise<GPUComputePipeline> {
    const hit = this.pipelines.get(key);
    if (hit) return hit;
    let p = this.pending.get(key);
    if (!p) {
      p = (async () => {
        const module = this.device.createShaderModule({ label: key, code: await code() });
        const info = await module.getCompilationInfo?.();
        const errors = info?.messages.filter((m) => m.type === 'error') ?? [];
        if (errors.length) {
          throw new Error(`WGSL ${key}: ${errors.map((m) => `line ${m.lineNum}:${m.linePos} ${m.message}`).join('; ')}`);
        }
        const pipeline = await this.device.createComputePipelineAsync({
          label: key, layout: 'auto', compute: { module, entryPoint: 'main', constants },
        });
        this.pipelines.set(key, pipeline);
        return pipeline;
      })();
      this.pending.set(key, p);
    }
    return p;
  }

  /** A pipeline already compiled by `pipeline(key, ...)`, for synchronous encoders. */
  pipelineReady(key: string): GPUComputePipeline {
    const hit = this.pipelines.get(key);
    if (!hit) throw new Error(`pipeline ${key} is not prepared: await its prepare*(ctx) before encoding`);
    return hit;
  }

  /** A storage buffer of at least `bytes` (rounded up to 4), from the pool when one is free. */
  buffer(bytes: number, label = 'storage'): GPUBuffer {
    const size = Math.max(16, roundUp(bytes, 16));
    const list = this.free.get(size);
    const reused = list?.pop();
    if (reused) return reused;
    return this.device.createBuffer({ label, size, usage: STORAGE });
  }

  /** Returns a buffer from `buffer()` to the pool. */
  release(buf: GPUBuffer): void {
    const list = this.free.get(buf.size) ?? [];
    list.push(buf);
    this.free.set(buf.size, list);
  }

  /** A new storage buffer holding `data` (padded to a multiple of 4 bytes). */
  upload(data: ArrayBufferView, label = 'upload'): GPUBuffer {
    const size = Math.max(16, roundUp(data.byteLength, 4));
    const buf = this.device.createBuffer({ label, size, usage: STORAGE, mappedAtCreation: true });
    new Uint8Array(buf.getMappedRange()).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    buf.unmap();
    return buf;
  }

  /** Writes `data` into `buf` at byte `offset` (length rounded up to 4 by padding). */
  write(buf: GPUBuffer, offset: number, data: ArrayBufferView): void {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength) as Uint8Array<ArrayBuffer>;
    if (bytes.byteLength % 4 === 0) this.device.queue.writeBuffer(buf, offset, bytes);
    else {
      const padded = new Uint8Array(roundUp(bytes.byteLength, 4));
      padded.set(bytes);
      this.device.queue.writeBuffer(buf, offset, padded);
    }
  }

  begin(label = 'step'): Step {
    return new Step(this, label);
  }

  /** Frees pooled buffers (the device stays). */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
  }
}

interface Readback {
  src: GPUBuffer;
  offset: number;
  size: number;
  staging: GPUBuffer;
  resolve(data: ArrayBuffer): void;
  reject(e: unknown): void;
}

export class Step {
  readonly encoder: GPUCommandEncoder;
  private readonly ctx: GpuContext;
  private uniforms: Uint8Array<ArrayBuffer>;
  private uniformTop = 0;
  private readonly uniformBuffers: GPUBuffer[] = [];
  private uniformBuffer: GPUBuffer;
  private readonly readbacks: Readback[] = [];
  private pass: GPUComputePassEncoder | null = null;
  private readonly align: number;

  constructor(ctx: GpuContext, label: string) {
    this.ctx = ctx;
    this.encoder = ctx.device.createCommandEncoder({ label });
    this.align = ctx.caps.minUniformBufferOffsetAlignment;
    this.uniforms = new Uint8Array(UNIFORM_RING);
    this.uniformBuffer = this.newUniformBuffer();
  }

  private newUniformBuffer(): GPUBuffer {
    const b = this.ctx.device.createBuffer({ label: 'uniforms', size: UNIFORM_RING, usage: 0x40 /* UNIFORM */ | 0x8 /* COPY_DST */ });
    this.uniformBuffers.push(b);
    return b;
  }

  private flushUniforms(): void {
    if (this.uniformTop > 0) this.ctx.device.queue.writeBuffer(this.uniformBuffer, 0, this.uniforms, 0, this.uniformTop);
  }

  /**
   * Records a dispatch. `storage` are bound at @binding(0..n-1) of @group(0) in order; `params`,
   * when given, is bound as a uniform at @binding(n). Params are 4-byte words (u32/i32/f32 views).
   */
  dispatch(pipeline: GPUComputePipeline, storage: Binding[], params: ArrayBufferView | null, workgroups: [number, number?, number?]): void {
    const entries: GPUBindGroupEntry[] = storage.map((b, i) => {
      const v: GpuView = 'buffer' in b ? b : { buffer: b };
      return { binding: i, resource: { buffer: v.buffer, offset: v.offset ?? 0, size: v.size } };
    });
    if (params) {
      const bytes = new Uint8Array(params.buffer, params.byteOffset, params.byteLength);
      const size = roundUp(Math.max(bytes.byteLength, 16), 16);
      if (this.uniformTop + size > UNIFORM_RING) {
        this.flushUniforms();
        this.uniformBuffer = this.newUniformBuffer();
        this.uniforms = new Uint8Array(UNIFORM_RING);
        this.uniformTop = 0;
      }
      this.uniforms.set(bytes, this.uniformTop);
      entries.push({ binding: storage.length, resource: { buffer: this.uniformBuffer, offset: this.uniformTop, size } });
      this.uniformTop = roundUp(this.uniformTop + size, this.align);
    }
    const group = this.ctx.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    this.pass ??= this.encoder.beginComputePass();
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, group);
    const max = this.ctx.caps.maxComputeWorkgroupsPerDimension;
    const [x, y = 1, z = 1] = workgroups;
    if (x > max || y > max || z > max) throw new Error(`dispatch of ${x}x${y}x${z} workgroups exceeds the limit ${max} per dimension`);
    this.pass.dispatchWorkgroups(x, y, z);
    this.ctx.stats.dispatches++;
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  /** Buffer-to-buffer copy (ends the current compute pass). */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
    this.endPass();
    this.encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, roundUp(size, 4));
  }

  /** Schedules a read of `size` bytes of `src`; resolves after `submit()`. */
  read(src: GPUBuffer, offset = 0, size = src.size - offset): Promise<ArrayBuffer> {
    this.endPass();
    const padded = roundUp(size, 4);
    const staging = this.ctx.device.createBuffer({ label: 'readback', size: padded, usage: 0x1 /* MAP_READ */ | 0x8 /* COPY_DST */ });
    this.encoder.copyBufferToBuffer(src, offset, staging, 0, padded);
    return new Promise((resolve, reject) => {
      this.readbacks.push({ src, offset, size, staging, resolve, reject });
    });
  }

  /** Submits everything recorded and resolves every read of this step. */
  async submit(): Promise<void> {
    this.endPass();
    this.flushUniforms();
    this.ctx.device.queue.submit([this.encoder.finish()]);
    this.ctx.stats.submits++;
    const reads = this.readbacks.splice(0);
    try {
      await Promise.all(reads.map((r) => r.staging.mapAsync(0x1 /* READ */)));
      for (const r of reads) {
        r.resolve(r.staging.getMappedRange(0, roundUp(r.size, 4)).slice(0, r.size));
        this.ctx.stats.readbackBytes += r.size;
        r.staging.unmap();
        r.staging.destroy();
      }
    } catch (e) {
      for (const r of reads) r.reject(e);
      throw e;
    } finally {
      for (const b of this.uniformBuffers) b.destroy();
    }
  }
}
