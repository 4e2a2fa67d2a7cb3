// The one error the GPU path throws when the device cannot be trusted to finish a step: the device
// was lost, ran out of memory, reported a validation error, or a buffer would exceed the adapter's
// limits. The session catches it, continues on the CPU and tells the user (session.ts); any other
// error is a bug and propagates.

export class GpuStepError extends Error {
  constructor(message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'GpuStepError';
  }
}
