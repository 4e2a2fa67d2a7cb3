// Named errors across the worker boundary. comlink sends a thrown Error as {message, name, stack}
// and rebuilds a plain Error, so `e instanceof CancelledError` would fail on the page. This replaces
// its 'throw' handler with one that sends a GlassboxError's fields (code, where, requestId) and
// rebuilds the same class on the other side. Imported for its effect by both worker.ts and client.ts.

import { transferHandlers, type TransferHandler } from 'comlink';
import * as errors from '../engine/errors.ts';
import { GlassboxError } from '../engine/errors.ts';

interface WireError {
  isError: true;
  name: string;
  message: string;
  stack?: string;
  /** GlassboxError fields (code, where, requestId, ...), when it is one. */
  fields?: Record<string, unknown>;
}
type Wire = WireError | { isError: false; value: unknown };

/** Named error classes by name: every GlassboxError subclass errors.ts exports. */
const CLASSES = new Map<string, typeof GlassboxError>(
  Object.values(errors).filter((v): v is typeof GlassboxError => typeof v === 'function' && v.prototype instanceof GlassboxError).map((c) => [c.name, c]),
);

export function toWire(value: unknown): Wire {
  if (!(value instanceof Error)) return { isError: false, value };
  const w: WireError = { isError: true, name: value.name, message: value.message, stack: value.stack };
  if (value instanceof GlassboxError) w.fields = { ...value };   // own fields: code, where, name, requestId
  return w;
}

export function fromWire(w: Wire): unknown {
  if (!w.isError) return w.value;
  const cls = w.fields ? CLASSES.get(w.name) : undefined;
  // the same class without running its constructor (which would rebuild the message)
  const e: Error = cls ? Object.create(cls.prototype) as Error : new Error(w.message);
  Object.assign(e, w.fields ?? {});
  Object.defineProperty(e, 'message', { value: w.message, writable: true, configurable: true });
  Object.defineProperty(e, 'name', { value: w.name, writable: true, configurable: true });
  if (w.stack) Object.defineProperty(e, 'stack', { value: w.stack, writable: true, configurable: true });
  return e;
}

const base = transferHandlers.get('throw')!;
const handler: TransferHandler<{ value: unknown }, Wire> = {
  canHandle: base.canHandle as (v: unknown) => v is { value: unknown },
  serialize: ({ value }) => [toWire(value), []],
  deserialize: (w) => { throw fromWire(w); },
};
transferHandlers.set('throw', handler as TransferHandler<unknown, unknown>);
