// One model run per prompt, shared by every cell that reads the prompt.
//
// When a prompt changes, each visual cell below it asks for a trace holding what it draws (one
// layer's attention, the residual stream of every layer, ...). Asking separately would run the
// model once per cell, and each run's capture would evict the others' hooks. Instead the requests
// that arrive together (within one macrotask: the graph starts a prompt's dependants at once)
// are merged into one run whose capture is the union, in the prompt's own trace slot. A later
// request that the last trace already covers (same tokens, hooks and summary) gets that trace
// without running anything: a slider or a view change costs no model time.
//
// A run of the same tokens as the last keeps, besides what every cell needs now (each cell's
// latest need), the hooks cells asked for before (the layer an attention cell showed before),
// most recently asked first, up to KEPT_BYTES: flipping back to them costs nothing, and a long
// prompt's flips through the layers do not pile up toward the engine's capture limit. Nor does a
// run pass it: a cell whose need does not fit beside those of the cells that asked before it fails
// alone, with a message, and the others get their run.

import type { EngineClient } from '../worker/client.ts';
import type { TraceHandle } from '../engine/api.ts';
import { CancelledError, UsageError } from '../engine/errors.ts';
import { CAPTURE_LIMIT_BYTES } from '../engine/hooks.ts';
import { formatBytes } from '../../cells/common.ts';

/** What one cell needs captured. */
export interface Need {
  capture: readonly string[];
  /** The attention summary of every layer × head (overview, head statistics). */
  summary?: boolean;
}

/** Who asks (PromptRuns.trace): the cell, and the bytes a hook's capture takes over the prompt. */
export interface Asker {
  cell: string;
  bytes(hook: string): number;
}

/** The most bytes of hooks no cell needs now that a prompt's next run of the same tokens keeps. */
export const KEPT_BYTES = 256 * 2 ** 20;

/** What a prompt's cells asked for at its current tokens: each cell's latest need, and when each hook was last asked. */
interface Asked { key: string; needs: Map<string, Need>; when: Map<string, number>; n: number }

interface Waiter { need: Need; resolve(h: TraceHandle): void; reject(e: unknown): void; signal: AbortSignal }
interface Batch {
  key: string; tokens: readonly number[]; summary: boolean; waiters: Waiter[];
  /** The prompt's last run when it had the same tokens (what it recorded may be kept). */
  keep: Last | null;
  asked: Asked;
  bytes: (hook: string) => number;
}
interface Last { key: string; capture: Set<string>; summary: boolean; handle: Promise<TraceHandle> }

export class PromptRuns {
  private readonly batches = new Map<string, Batch>();
  private readonly last = new Map<string, Last>();
  private readonly running = new Map<string, AbortController>();
  private readonly asked = new Map<string, Asked>();
  /** How many model runs were started (tests check that one edit runs the model once). */
  runs = 0;
  /** The engine's own time for those runs (their handles' ms), for the app benchmark's ratio. */
  engineMs = 0;

  constructor(private readonly client: () => EngineClient | null) {}

  /** A trace of `tokens` for prompt cell `prompt` holding at least `need` (of cell `asker.cell`). */
  trace(prompt: string, tokens: readonly number[], need: Need, signal: AbortSignal, asker: Asker): Promise<TraceHandle> {
    signal.throwIfAborted();
    const key = tokens.join(',');
    let asked = this.asked.get(prompt);
    if (!asked || asked.key !== key) this.asked.set(prompt, asked = { key, needs: new Map(), when: new Map(), n: 0 });
    asked.needs.set(asker.cell, need);
    for (const h of need.capture) asked.when.set(h, ++asked.n);
    const last = this.last.get(prompt);
    if (last && last.key === key && (!need.summary || last.summary) && need.capture.every((h) => last.capture.has(h))) {
      return last.handle;
    }
    return new Promise<TraceHandle>((resolve, reject) => {
      let b = this.batches.get(prompt);
      if (!b || b.key !== key) {
        if (b) for (const w of b.waiters) w.reject(new CancelledError(`prompt ${prompt}`, 'the prompt changed before its run started'));
        const keep = last && last.key === key ? last : null;
        b = { key, tokens, summary: keep?.summary ?? false, waiters: [], keep, asked: asked!, bytes: asker.bytes };
        this.batches.set(prompt, b);
        setTimeout(() => this.flush(prompt, b!), 0);
      }
      b.summary ||= !!need.summary;
      b.waiters.push({ need, resolve, reject, signal });
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
  }

  /**
   * What a batch's run records, within the engine's capture limit: the waiting cells' needs in the
   * order they asked (a cell whose need does not fit beside those before it gets a UsageError, the
   * others their run); then, as far as they fit, what the prompt's other cells need now (so that
   * they find it in this trace later), and with the same tokens as the last run the hooks it
   * recorded that were asked for most recently, within KEPT_BYTES.
   */
  private capture(b: Batch, live: Waiter[]): { capture: Set<string>; admitted: Waiter[] } {
    const capture = new Set<string>();
    let total = 0;
    const more = (hooks: Iterable<string>) => { let n = 0; for (const h of new Set(hooks)) if (!capture.has(h)) n += b.bytes(h); return n; };
    const add = (hooks: Iterable<string>) => { for (const h of hooks) if (!capture.has(h)) { capture.add(h); total += b.bytes(h); } };
    const fits = (hooks: Iterable<string>) => total + more(hooks) <= CAPTURE_LIMIT_BYTES;
    const admitted: Waiter[] = [];
    for (const w of live) {
      if (fits(w.need.capture)) { add(w.need.capture); admitted.push(w); continue; }
      const own = more(w.need.capture);
      w.reject(new UsageError('capture', `this cell records ${formatBytes(own)} of activations and the other cells reading its prompt ${formatBytes(total)}: ` +
        `together more than the ${formatBytes(CAPTURE_LIMIT_BYTES)} one run of the model may record`,
        'Show fewer layers or hooks in this cell or another reading the prompt, or use a shorter prompt'));
    }
    for (const n of b.asked.needs.values()) if (fits(n.capture)) add(n.capture);
    if (b.keep) {
      const when = b.asked.when;
      const others = [...b.keep.capture].filter((h) => !capture.has(h)).sort((x, y) => (when.get(y) ?? 0) - (when.get(x) ?? 0));
      let room = KEPT_BYTES;
      for (const h of others) {
        const bytes = b.bytes(h);
        if (bytes <= room && fits([h])) { add([h]); room -= bytes; }
      }
    }
    return { capture, admitted };
  }

  /** Forgets every trace (a new model was loaded). */
  reset(): void {
    for (const c of this.running.values()) c.abort(new CancelledError('model', 'a new model was loaded'));
    this.running.clear();
    this.last.clear();
    this.batches.clear();
    this.asked.clear();
  }

  private flush(prompt: string, b: Batch): void {
    if (this.batches.get(prompt) !== b) return;
    this.batches.delete(prompt);
    const waiting = b.waiters.filter((w) => !w.signal.aborted);
    if (!waiting.length) return;
    const client = this.client();
    if (!client) { for (const w of waiting) w.reject(new CancelledError(`prompt ${prompt}`, 'no model is loaded')); return; }
    const { capture, admitted: live } = this.capture(b, waiting);
    if (!live.length) return;
    // A newer run of the same prompt makes the one in flight stale.
    this.running.get(prompt)?.abort(new CancelledError(`prompt ${prompt}`, 'the prompt changed'));
    const controller = new AbortController();
    this.running.set(prompt, controller);
    this.runs++;
    const handle = client.run({
      tokens: b.tokens, capture: [...capture], slot: `prompt:${prompt}`,
      ...(b.summary ? { summary: { attention: {} } } : {}),
    }, { signal: controller.signal });
    const entry: Last = { key: b.key, capture, summary: b.summary, handle };
    this.last.set(prompt, entry);
    handle.then((h) => { this.engineMs += h.ms; for (const w of live) w.resolve(h); }, (e) => {
      if (this.last.get(prompt) === entry) this.last.delete(prompt);
      for (const w of live) w.reject(e);
    }).finally(() => { if (this.running.get(prompt) === controller) this.running.delete(prompt); });
  }
}
