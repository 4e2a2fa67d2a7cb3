// Undo and redo of document edits: a bounded list of immutable snapshots. Snapshots share the
// cells an edit did not touch, so each costs about the size of the text it changed; the list is
// bounded both by count and by that cost. A burst of edits to the same thing (typing in a prompt,
// dragging a slider) is one step: pushes with the same key within `coalesceMs` replace the top.

export interface HistoryOptions<T> {
  /** Most undo steps kept (default 200). */
  limit?: number;
  /** Most total cost kept (default 32 MiB), as measured by `cost`. */
  maxCost?: number;
  /** What keeping `older` costs once `newer` is the present (bytes it does not share with it). */
  cost?: (older: T, newer: T) => number;
  /** Pushes with the same key closer together than this are one step (default 1000 ms). */
  coalesceMs?: number;
}

export class History<T> {
  private past: { state: T; cost: number }[] = [];
  private future: T[] = [];
  private present: T;
  private totalCost = 0;
  private lastKey: string | null = null;
  private lastTime = -Infinity;
  private readonly limit: number;
  private readonly maxCost: number;
  private readonly cost: (older: T, newer: T) => number;
  private readonly coalesceMs: number;

  constructor(initial: T, opts: HistoryOptions<T> = {}) {
    this.present = initial;
    this.limit = opts.limit ?? 200;
    this.maxCost = opts.maxCost ?? 32 * 2 ** 20;
    this.cost = opts.cost ?? (() => 0);
    this.coalesceMs = opts.coalesceMs ?? 1000;
  }

  get current(): T { return this.present; }
  get canUndo(): boolean { return this.past.length > 0; }
  get canRedo(): boolean { return this.future.length > 0; }
  get depth(): { undo: number; redo: number } { return { undo: this.past.length, redo: this.future.length }; }

  /** Records `state` as the result of an edit. `key` names what was edited, for coalescing. */
  push(state: T, key: string | null = null, now = Date.now()): void {
    if (state === this.present) return;
    const coalesce = key !== null && key === this.lastKey && now - this.lastTime < this.coalesceMs && this.past.length > 0;
    this.future = [];
    if (coalesce) {
      // The step keeps its "before" snapshot; its cost is re-measured against the new present.
      const top = this.past[this.past.length - 1]!;
      this.totalCost += this.cost(top.state, state) - top.cost;
      top.cost = this.cost(top.state, state);
    } else {
      const c = this.cost(this.present, state);
      this.past.push({ state: this.present, cost: c });
      this.totalCost += c;
    }
    this.present = state;
    this.lastKey = key;
    this.lastTime = now;
    while (this.past.length > this.limit || (this.totalCost > this.maxCost && this.past.length > 1)) {
      this.totalCost -= this.past.shift()!.cost;
    }
  }

  undo(): T | undefined {
    const prev = this.past.pop();
    if (!prev) return undefined;
    this.totalCost -= prev.cost;
    this.future.push(this.present);
    this.present = prev.state;
    this.lastKey = null;
    return this.present;
  }

  redo(): T | undefined {
    const next = this.future.pop();
    if (next === undefined) return undefined;
    const c = this.cost(this.present, next);
    this.past.push({ state: this.present, cost: c });
    this.totalCost += c;
    this.present = next;
    this.lastKey = null;
    return this.present;
  }

  /** Forgets every step (a different notebook was opened). */
  reset(state: T): void {
    this.past = [];
    this.future = [];
    this.totalCost = 0;
    this.present = state;
    this.lastKey = null;
  }
}
