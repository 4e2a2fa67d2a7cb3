// The GPU context: one device, a pipeline cache, a buffer pool, and steps. A step is one command
// encoder: every dispatch of a forward step is recorded into it, uniforms for all of them are
// written into one ring buffer, readbacks are copies into staging buffers, and `submit()` sends it
// all at once and maps the staging buffers together — one readback per step.
//
// WHY the caches: recording a decode step is on the critical path of every token, and on a real
// GPU it costs more than the GPU's own work. Measured on an H100 through Dawn (test/bench/gpu.ts):
// createBindGroup ~12–22 µs, a fresh 1 MiB uniform buffer per step ~1.4 ms. So uniform rings and
// readback staging buffers are pooled by the context and reused by later steps, and bind groups are
// cached by what they bind: a decode step records the same dispatches with the same buffers at the
// same uniform offsets every token, so from the second token on it creates no bind group at all.

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
/** Most cached bind groups; past it the cache starts over (a long prefill must not grow it without bound). */
const BIND_GROUP_CACHE = 4096;
/** Most idle readback staging buffers kept per size. */
const STAGING_KEEP = 4;

/** A uniform ring: the GPU buffer and the bytes a step writes into it before submitting. */
interface UniformRing { buffer: GPUBuffer; bytes: Uint8Array<ArrayBuffer> }

function roundUp(n: number, m: number): number {
  return Math.ceil(n / m) * m;
}

export class GpuContext {
  readonly device: GPUDevice;
  readonly caps: GpuCaps;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly pending = new Map<string, Promise<GPUComputePipeline>>();
  private readonly free = new Map<number, GPUBuffer[]>();
  /** Counters for benchmarks and tests: dispatches, bytes read back, steps submitted (each one
   *  readback round trip), the extra command buffers their flush() sent ahead, and the steps fed
   *  the previous step's argmax on the GPU (greedy look-ahead, session.ts RunOptions.ahead). */
  stats = { dispatches: 0, readbackBytes: 0, submits: 0, flushes: 0, chained: 0 };
  lost: GPUDeviceLostInfo | null = null;
  private readonly rings: UniformRing[] = [];
  private readonly staging = new Map<number, GPUBuffer[]>();
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly layouts = new WeakMap<GPUComputePipeline, GPUBindGroupLayout>();
  private readonly ids = new WeakMap<object, number>();
  private nextId = 1;

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
    return this.uploadWith(data.byteLength, label, (dst) => dst.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)));
  }

  /** A new storage buffer of `byteLength` bytes (padded to a multiple of 4) whose contents `fill`
   *  writes into its mapped memory: no staging copy in JS (weights repacked as they go up). */
  uploadWith(byteLength: number, label: string, fill: (dst: Uint8Array) => void): GPUBuffer {
    const size = Math.max(16, roundUp(byteLength, 4));
    const buf = this.device.createBuffer({ label, size, usage: STORAGE, mappedAtCreation: true });
    try {
      fill(new Uint8Array(buf.getMappedRange(), 0, byteLength));
    } catch (e) {
      buf.destroy();
      throw e;
    }
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

  /** A uniform ring no other step holds; give it back with `returnRing` once its step is submitted. */
  takeRing(): UniformRing {
    return this.rings.pop() ?? {
      buffer: this.device.createBuffer({ label: 'uniforms', size: UNIFORM_RING, usage: 0x40 /* UNIFORM */ | 0x8 /* COPY_DST */ }),
      bytes: new Uint8Array(UNIFORM_RING),
    };
  }

  /** Takes back a ring after its step's writeBuffer and submit were queued (later writes are ordered after them). */
  returnRing(ring: UniformRing): void {
    this.rings.push(ring);
  }

  /** A MAP_READ | COPY_DST buffer of `size` bytes, reused when one is idle. */
  takeStaging(size: number): GPUBuffer {
    return this.staging.get(size)?.pop() ?? this.device.createBuffer({ label: 'readback', size, usage: 0x1 /* MAP_READ */ | 0x8 /* COPY_DST */ });
  }

  returnStaging(buf: GPUBuffer): void {
    const list = this.staging.get(buf.size) ?? [];
    if (list.length >= STAGING_KEEP) { buf.destroy(); return; }
    list.push(buf);
    this.staging.set(buf.size, list);
  }

  private id(o: object): number {
    let n = this.ids.get(o);
    if (n === undefined) { n = this.nextId++; this.ids.set(o, n); }
    return n;
  }

  /** The bind group for these entries (buffer bindings only), created once per distinct binding. */
  bindGroup(pipeline: GPUComputePipeline, entries: { buffer: GPUBuffer; offset: number; size: number | undefined }[]): GPUBindGroup {
    let key = String(this.id(pipeline));
    for (const e of entries) key += `|${this.id(e.buffer)}:${e.offset}:${e.size ?? '-'}`;
    let group = this.bindGroups.get(key);
    if (!group) {
      let layout = this.layouts.get(pipeline);
      if (!layout) { layout = pipeline.getBindGroupLayout(0); this.layouts.set(pipeline, layout); }
      group = this.device.createBindGroup({ layout, entries: entries.map((e, i) => ({ binding: i, resource: { buffer: e.buffer, offset: e.offset, size: e.size } })) });
      if (this.bindGroups.size >= BIND_GROUP_CACHE) this.bindGroups.clear();
      this.bindGroups.set(key, group);
    }
    return group;
  }

  /** Frees pooled buffers and cached bind groups (the device stays). */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    for (const list of this.staging.values()) for (const b of list) b.destroy();
    this.staging.clear();
    this.bindGroups.clear();
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
  private encoder: GPUCommandEncoder;
  private readonly label: string;
  private readonly ctx: GpuContext;
  /** Rings this step wrote; the last is the one being filled. */
  private readonly rings: UniformRing[] = [];
  private ring: UniformRing | null = null;
  private uniformTop = 0;
  /** Bytes of the current ring already queued by an earlier flush(). */
  private uniformFlushed = 0;
  private readonly readbacks: Readback[] = [];
  private pass: GPUComputePassEncoder | null = null;
  private readonly align: number;

  constructor(ctx: GpuContext, label: string) {
    this.ctx = ctx;
    this.label = label;
    this.encoder = ctx.device.createCommandEncoder({ label });
    this.align = ctx.caps.minUniformBufferOffsetAlignment;
  }

  private flushUniforms(): void {
    if (this.ring && this.uniformTop > this.uniformFlushed) {
      this.ctx.device.queue.writeBuffer(this.ring.buffer, this.uniformFlushed, this.ring.bytes, this.uniformFlushed, this.uniformTop - this.uniformFlushed);
    }
    this.uniformFlushed = this.uniformTop;
  }

  /**
   * Sends what is recorded so far to the GPU and goes on recording into a new command buffer, so
   * that the GPU works on the first layers while the CPU records the rest (recording a decode step
   * takes about as long as running it on a fast GPU). Reads resolve at submit(), as before.
   */
  flush(): void {
    this.endPass();
    this.flushUniforms();
    this.ctx.device.queue.submit([this.encoder.finish()]);
    this.ctx.stats.flushes++;
    this.encoder = this.ctx.device.createCommandEncoder({ label: this.label });
  }

  /**
   * Records a dispatch. `storage` are bound at @binding(0..n-1) of @group(0) in order; `params`,
   * when given, is bound as a uniform at @binding(n). Params are 4-byte words (u32/i32/f32 views).
   */
  dispatch(pipeline: GPUComputePipeline, storage: Binding[], params: ArrayBufferView | null, workgroups: [number, number?, number?]): void {
    const entries = storage.map((b) => {
      const v: GpuView = 'buffer' in b ? b : { buffer: b };
      return { buffer: v.buffer, offset: v.offset ?? 0, size: v.size };
    });
    if (params) {
      const bytes = new Uint8Array(params.buffer, params.byteOffset, params.byteLength);
      const size = roundUp(Math.max(bytes.byteLength, 16), 16);
      if (!this.ring || this.uniformTop + size > UNIFORM_RING) {
        this.flushUniforms();
        this.ring = this.ctx.takeRing();
        this.rings.push(this.ring);
        this.uniformTop = 0;
        this.uniformFlushed = 0;
      }
      this.ring.bytes.set(bytes, this.uniformTop);
      entries.push({ buffer: this.ring.buffer, offset: this.uniformTop, size });
      this.uniformTop = roundUp(this.uniformTop + size, this.align);
    }
    const group = this.ctx.bindGroup(pipeline, entries);
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
    const staging = this.ctx.takeStaging(padded);
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
    // the rings' contents are queued (writeBuffer before submit): a later step may refill them
    for (const ring of this.rings.splice(0)) this.ctx.returnRing(ring);
    this.ring = null;
    this.uniformTop = this.uniformFlushed = 0;
    const reads = this.readbacks.splice(0);
    try {
      await Promise.all(reads.map((r) => r.staging.mapAsync(0x1 /* READ */)));
      for (const r of reads) {
        r.resolve(r.staging.getMappedRange(0, roundUp(r.size, 4)).slice(0, r.size));
        this.ctx.stats.readbackBytes += r.size;
        r.staging.unmap();
        this.ctx.returnStaging(r.staging);
      }
    } catch (e) {
      for (const r of reads) r.reject(e);
      throw e;
    }
  }
}
