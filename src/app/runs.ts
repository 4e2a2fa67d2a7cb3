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
// prompt's flips through the layers do not pile up toward the engine's capture limit.

import type { EngineClient } from '../worker/client.ts';
import type { TraceHandle } from '../engine/api.ts';
import { CancelledError } from '../engine/errors.ts';

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

interface Waiter { resolve(h: TraceHandle): void; reject(e: unknown): void; signal: AbortSignal }
interface Batch { key: string; tokens: readonly number[]; capture: Set<string>; summary: boolean; waiters: Waiter[] }
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
        // Same tokens as the last trace: keep what it held, so the other cells' slices stay valid.
        const keep = last && last.key === key ? last : null;
        b = { key, tokens, capture: keep ? this.kept(asked, keep.capture, asker) : new Set(), summary: keep?.summary ?? false, waiters: [] };
        this.batches.set(prompt, b);
        setTimeout(() => this.flush(prompt, b!), 0);
      }
      for (const h of need.capture) b.capture.add(h);
      b.summary ||= !!need.summary;
      b.waiters.push({ resolve, reject, signal });
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
  }

  /** What a run of the same tokens as the last keeps of its capture `had`: every hook some cell
   *  needs now, and the others, most recently asked first, within KEPT_BYTES. */
  private kept(asked: Asked, had: ReadonlySet<string>, asker: Asker): Set<string> {
    const keep = new Set<string>();
    for (const n of asked.needs.values()) for (const h of n.capture) keep.add(h);
    const others = [...had].filter((h) => !keep.has(h)).sort((a, b) => (asked.when.get(b) ?? 0) - (asked.when.get(a) ?? 0));
    let room = KEPT_BYTES;
    for (const h of others) {
      const bytes = asker.bytes(h);
      if (bytes <= room) { keep.add(h); room -= bytes; }
    }
    return keep;
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
    const live = b.waiters.filter((w) => !w.signal.aborted);
    if (!live.length) return;
    const client = this.client();
    if (!client) { for (const w of live) w.reject(new CancelledError(`prompt ${prompt}`, 'no model is loaded')); return; }
    // A newer run of the same prompt makes the one in flight stale.
    this.running.get(prompt)?.abort(new CancelledError(`prompt ${prompt}`, 'the prompt changed'));
    const controller = new AbortController();
    this.running.set(prompt, controller);
    this.runs++;
    const handle = client.run({
      tokens: b.tokens, capture: [...b.capture], slot: `prompt:${prompt}`,
      ...(b.summary ? { summary: { attention: {} } } : {}),
    }, { signal: controller.signal });
    const entry: Last = { key: b.key, capture: b.capture, summary: b.summary, handle };
    this.last.set(prompt, entry);
    handle.then((h) => { this.engineMs += h.ms; for (const w of live) w.resolve(h); }, (e) => {
      if (this.last.get(prompt) === entry) this.last.delete(prompt);
      for (const w of live) w.reject(e);
    }).finally(() => { if (this.running.get(prompt) === controller) this.running.delete(prompt); });
  }
}
