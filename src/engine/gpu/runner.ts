// The GPU side of a Session: the weights uploaded once, the run state, and the pipelines compiled
// before the first step. Everything that can fail because of the device (upload out of memory,
// limits, a shader the driver rejects) fails here as a GpuStepError, which the session answers by
// continuing on the CPU.

import type { ModelWeights } from '../weights.ts';
import type { GpuContext } from './context.ts';
import { GpuStepError } from './failure.ts';
import { gpuWeightsPreflight, uploadWeights, destroyWeights, type GpuWeights } from './weights.ts';
import { GpuRunState } from './state.ts';
import type { KvBuffers } from '../state.ts';
import type { LensRowsResult } from '../../../kernels/argmax/argmax.cpu.ts';
import { forwardGpu, sendForwardGpu, prepareForward, outputHeadGpu, lensHeadGpu, type GpuForwardOptions, type GpuForwardResult } from './forward.ts';

export class GpuRunner {
  readonly ctx: GpuContext;
  private readonly cpuWeights: ModelWeights;
  private readonly maxPartBytes: number | undefined;
  private weights: GpuWeights | null = null;
  private state: GpuRunState | null = null;
  private preparing: Promise<void> | null = null;

  constructor(ctx: GpuContext, weights: ModelWeights, maxPartBytes?: number) {
    this.ctx = ctx;
    this.cpuWeights = weights;
    this.maxPartBytes = maxPartBytes;
  }

  /** Uploads the weights and compiles the pipelines (once). */
  ready(): Promise<void> {
    this.preparing ??= this.prepare();
    return this.preparing;
  }

  private async prepare(): Promise<void> {
    const { ctx } = this;
    const why = gpuWeightsPreflight(this.cpuWeights, ctx.caps, { maxPartBytes: this.maxPartBytes });
    if (why) throw new GpuStepError(why);
    ctx.device.pushErrorScope('out-of-memory');
    ctx.device.pushErrorScope('validation');
    try {
      this.weights = uploadWeights(ctx, this.cpuWeights, { maxPartBytes: this.maxPartBytes });
      this.state = new GpuRunState(ctx, this.cpuWeights.config);
    } finally {
      const [validation, oom] = await Promise.all([ctx.device.popErrorScope(), ctx.device.popErrorScope()]);
      if (oom) throw new GpuStepError(`the weights (${this.cpuWeights.config.name}) do not fit in GPU memory: ${oom.message}`);
      if (validation) throw new GpuStepError(`uploading the weights failed: ${validation.message}`);
    }
    try {
      await prepareForward(ctx, this.weights);
    } catch (e) {
      throw new GpuStepError(`compiling the WebGPU kernels failed: ${(e as Error).message}`, e);
    }
  }

  /** One chunk through the model (gpu/forward.ts); ready() must have resolved. */
  forward(tokens: ArrayLike<number>, start: number, opts: Omit<GpuForwardOptions, 'cpuWeights'>): Promise<GpuForwardResult> {
    return forwardGpu(this.ctx, this.weights!, this.state!, tokens, start, { ...opts, cpuWeights: this.cpuWeights });
  }

  /** forward() in two halves (gpu/forward.ts sendForwardGpu): resolves once the step is submitted;
   *  tokens null: one token, the argmax of the step sent before, on the GPU. */
  send(tokens: ArrayLike<number> | null, start: number, opts: Omit<GpuForwardOptions, 'cpuWeights'>): Promise<{ result: Promise<GpuForwardResult> }> {
    return sendForwardGpu(this.ctx, this.weights!, this.state!, tokens, start, { ...opts, cpuWeights: this.cpuWeights });
  }

  /** Residual rows [n, d_model] through the final norm and the unembedding (forward.ts outputHeadGpu). */
  outputHead(x: Float32Array, n: number): Promise<Float32Array> {
    return outputHeadGpu(this.ctx, this.weights!, this.state!, x, n);
  }

  /** The logit lens's head: each row's logits reduced on the GPU (forward.ts lensHeadGpu). */
  lensHead(x: Float32Array, n: number, k: number, target: number | null): Promise<LensRowsResult> {
    return lensHeadGpu(this.ctx, this.weights!, this.state!, x, n, k, target);
  }

  /** Installs another KV cache (null: an empty one) and returns the one it replaces (state.ts swapKv); ready() must have resolved. */
  swapKv(next: KvBuffers<GPUBuffer> | null): KvBuffers<GPUBuffer> {
    return this.state!.swapKv(next);
  }

  /** Copies positions 0 .. n−1 of a KV cache swapKv returned into the installed one, which is made
   *  to hold `room` positions; queued before the next step. */
  async copyKvPrefix(from: KvBuffers<GPUBuffer>, n: number, room: number): Promise<void> {
    const step = this.ctx.begin('kv copy');
    try {
      this.state!.copyKvPrefix(from, n, room, step);
      await step.submit();
    } catch (e) {
      throw e instanceof GpuStepError ? e : new GpuStepError(`copying the KV cache failed: ${(e as Error).message}`, e);
    } finally {
      this.state!.afterSubmit();
    }
  }

  /** Frees the weights and the run state (the device stays: it belongs to the caller). */
  destroy(): void {
    if (this.state) this.state.destroy();
    if (this.weights) destroyWeights(this.weights);
    this.state = null;
    this.weights = null;
  }
}
