// The reactive graph, as in Observable: each cell reads other cells (their output, or one of their
// settings) and inputs from outside the document (the loaded model). When the notebook changes,
// only the cells whose computation is affected run again, once each, in dependency order; a run
// that a newer edit made stale is aborted (its AbortSignal fires) and its result, if it still
// arrives, is dropped. The graph knows nothing of what cells compute: the app passes `compute`.

import { CancelledError } from '../engine/errors.ts';
import { cellKinds, validateSettings, withDefaults, type CellRegistry, type CheckContext, type Dependency, type ReadContext } from './registry.ts';
import type { Cell, Notebook } from './format.ts';
import { sameValue, type Settings, type Value } from './settings.ts';

export interface CellState {
  /** 'stale': will run once what it reads is ready; 'running': compute was called; 'done'; 'error'. */
  readonly status: 'stale' | 'running' | 'done' | 'error';
  /** The last successful output; kept while the cell recomputes, so its figure can stay (dimmed). */
  readonly output: unknown;
  /** Why the last run failed: the compute error, a schema problem, an unresolved reference. */
  readonly error: unknown;
  /** How many times compute was called for this cell. */
  readonly runs: number;
  /** While running, how far a long compute has got (what it last reported through ctx.progress). */
  readonly progress?: CellProgress;
  /** True while `output` is the running compute's first, partial answer (ctx.partial): current,
   *  not stale, but not yet all of it. Cleared when the run succeeds or a new one starts; kept
   *  after a failure, so that the element can say its figure is partial. */
  readonly preview?: boolean;
}

/** A running compute's report: `done` of `total` units of `what` ("rows"). */
export interface CellProgress { readonly done: number; readonly total: number; readonly what: string }

export interface ComputeContext {
  readonly cell: Cell;
  /** The cell's settings with the schema's defaults filled in. */
  readonly settings: Settings;
  /** Fires when a newer edit makes this run stale; pass it on to the worker. */
  readonly signal: AbortSignal;
  /** Outputs of the cells this one reads, by id. */
  readonly upstream: ReadonlyMap<string, unknown>;
  /** The outside inputs this one reads ('model'), by name. */
  readonly inputs: ReadonlyMap<string, unknown>;
  readonly notebook: Notebook;
  /** Reports how far a long compute has got (shown by the cell while it runs; ignored once stale). */
  progress?(done: number, total: number, what: string): void;
  /**
   * Shows a first, partial answer while a long compute goes on (the logit lens's last positions
   * before all of them): it becomes the cell's output, marked `preview`, for its element to draw;
   * the cells that read this one still wait for the whole answer. Ignored once stale.
   */
  partial?(output: unknown): void;
}

export type ComputeFn = (ctx: ComputeContext) => unknown;

export interface GraphOptions {
  compute: ComputeFn;
  registry?: CellRegistry;
  /** Called whenever a cell's state object is replaced. */
  onState?: (id: string, state: CellState) => void;
  /** The loaded model's shape, so settings like `layer` are checked against it before a run. */
  checkContext?: () => CheckContext;
}

type Result = { ok: true; output: unknown } | { ok: false; cancelled?: boolean };
type Resolved = { deps: Dependency[]; depKey: string; unresolved: string[] };
type CachedRead = { cell: Cell; above: string | undefined; refs: number; r: Resolved };
const CANCELLED: Result = { ok: false, cancelled: true };

interface Node {
  cell: Cell;
  deps: Dependency[];
  depKey: string;
  unresolved: string[];
  state: CellState;
  gen: number;
  controller: AbortController | null;
  result: Promise<Result>;
}

/** Why a cell failed before it could compute: schema errors or references that do not resolve. */
export class CellProblemError extends Error {
  override name = 'CellProblemError';
  constructor(readonly cellId: string, readonly messages: string[]) {
    super(messages.join('; '));
  }
}

export class ReactiveGraph {
  private nodes = new Map<string, Node>();
  private notebook: Notebook | null = null;
  private inputs = new Map<string, unknown>();
  private epoch = 0;
  private reads = new Map<string, CachedRead>();
  private readers: Map<string, string[]> | null = null;
  private refsText = '';
  private refsVersion = 0;
  private readonly registry: CellRegistry;

  constructor(private readonly opts: GraphOptions) {
    this.registry = opts.registry ?? cellKinds;
  }

  state(id: string): CellState | undefined { return this.nodes.get(id)?.state; }
  dependencies(id: string): readonly Dependency[] { return this.nodes.get(id)?.deps ?? []; }

  /** Cells that read `id` (its output or one of its settings). */
  dependants(id: string): string[] {
    return [...this.nodes.values()].filter((n) => n.deps.some((d) => d.cell === id)).map((n) => n.cell.id);
  }

  /** Sets an outside input ('model') and recomputes the cells that read it. */
  setInput(name: string, value: unknown): string[] {
    if (this.inputs.get(name) === value && this.inputs.has(name)) return [];
    this.inputs.set(name, value);
    const seeds = [...this.nodes.values()].filter((n) => n.deps.some((d) => d.input === name)).map((n) => n.cell.id);
    return this.schedule(new Set(seeds));
  }

  /** Takes the notebook as it is now; recomputes what its changes affect. Returns the ids scheduled. */
  update(nb: Notebook): string[] {
    if (nb === this.notebook) return [];
    this.notebook = nb;
    const old = this.nodes;
    const next = new Map<string, Node>();
    const resolved = this.resolve(nb);
    const dirty = new Set<string>();
    const changedKeys = new Map<string, Set<string>>();
    for (const cell of nb.cells) {
      const r = resolved.get(cell.id)!;
      const prev = old.get(cell.id);
      if (!prev) {
        this.readers = null;
        next.set(cell.id, { cell, ...r, state: { status: 'stale', output: undefined, error: undefined, runs: 0 }, gen: 0, controller: null, result: Promise.resolve(CANCELLED) });
        dirty.add(cell.id);
        continue;
      }
      const before = prev.cell;
      const beforeDeps = prev.depKey;
      // In place: runs in flight hold on to the node.
      prev.cell = cell;
      prev.deps = r.deps;
      prev.depKey = r.depKey;
      prev.unresolved = r.unresolved;
      next.set(cell.id, prev);
      if (before === cell && beforeDeps === r.depKey) continue;
      const keys = diffKeys(before.settings, cell.settings);
      changedKeys.set(cell.id, keys);
      const view = this.registry.get(cell.kind)?.view ?? [];
      if (beforeDeps !== r.depKey) this.readers = null;
      if (beforeDeps !== r.depKey || [...keys].some((k) => !view.includes(k)) || problemKey(before) !== problemKey(cell)) dirty.add(cell.id);
    }
    if (old.size !== next.size) this.readers = null;
    for (const [id, n] of old) if (!next.has(id)) n.controller?.abort(new CancelledError(id, 'the cell was deleted'));
    this.nodes = next;
    // Cells that read a setting that changed.
    for (const n of next.values()) {
      if (n.deps.some((d) => d.key !== undefined && changedKeys.get(d.cell)?.has(d.key))) dirty.add(n.cell.id);
    }
    return this.schedule(dirty);
  }

  /** Resolves when no run is pending, including runs that later edits start meanwhile. */
  async idle(): Promise<void> {
    for (;;) {
      const epoch = this.epoch;
      await Promise.all([...this.nodes.values()].map((n) => n.result));
      if (epoch === this.epoch) return;
    }
  }

  /** Aborts every run. */
  dispose(): void {
    for (const n of this.nodes.values()) n.controller?.abort(new CancelledError(n.cell.id, 'the notebook was closed'));
    this.nodes.clear();
  }

  // -------------------------------------------------------------------------------------------

  /**
   * Each cell's dependencies, via its kind's `reads`. Reads may look only at the cell's settings,
   * the prompt above it and cells by id or name, so a cell's answer is reused while those stay
   * the same: a keystroke in a 10,000-cell notebook re-resolves one cell, not all of them.
   */
  private resolve(nb: Notebook): Map<string, Resolved> {
    const byRef = new Map<string, Cell>();
    const refParts: string[] = [];
    for (const c of nb.cells) {
      byRef.set(c.id, c);
      refParts.push(c.id);
      const name = c.settings['name'];
      if (typeof name === 'string') {
        refParts.push(`=${name}`);
        if (!byRef.has(name)) byRef.set(name, c);
      }
    }
    // Compared once, here: a version number stands for it in the per-cell check below.
    const joined = refParts.join('\n');
    if (joined !== this.refsText) { this.refsText = joined; this.refsVersion++; }
    const refs = this.refsVersion;
    const out = new Map<string, Resolved>();
    const cache = new Map<string, CachedRead>();
    let lastPrompt: Cell | undefined;
    for (const cell of nb.cells) {
      const above = lastPrompt;
      const hit = this.reads.get(cell.id);
      let r: Resolved;
      if (hit && hit.cell === cell && hit.above === above?.id && hit.refs === refs) r = hit.r;
      else {
        const kind = this.registry.get(cell.kind);
        const unresolved: string[] = [];
        const ctx: ReadContext = {
          cell,
          find: (ref) => byRef.get(ref),
          problem: (m) => { unresolved.push(m); },
          prompt: (ref: Value | undefined) => {
            if (ref === undefined || ref === null) {
              if (above) return [{ cell: above.id }];
              unresolved.push('there is no prompt cell above this one; add one, or name one with `prompt: <name>`');
              return [];
            }
            const target = typeof ref === 'string' ? byRef.get(ref) : undefined;
            // a prompt, or a cell whose output is tokens too (a generate cell's prompt + branch)
            if (target && (target.kind === 'prompt' || this.registry.get(target.kind)?.tokens) && target.id !== cell.id) return [{ cell: target.id }];
            unresolved.push(`"prompt: ${String(ref)}" names ${target ? (target.id === cell.id ? 'this cell itself' : `a ${target.kind} cell, not a prompt`) : 'no cell'}; use a prompt or generate cell's name or id`);
            return [];
          },
        };
        const deps = kind ? kind.reads(cell.settings, ctx) : [];
        r = { deps, depKey: JSON.stringify(deps), unresolved };
      }
      out.set(cell.id, r);
      cache.set(cell.id, { cell, above: above?.id, refs, r });
      if (cell.kind === 'prompt') lastPrompt = cell;
    }
    this.reads = cache;
    return out;
  }

  /** Marks `seeds` and everything reading their output stale, then runs them in dependency order. */
  private schedule(seeds: Set<string>): string[] {
    if (seeds.size === 0) return [];
    this.epoch++;
    const dirty = new Set(seeds);
    const readers = this.outputReaders();
    const queue = [...dirty];
    while (queue.length) for (const r of readers.get(queue.pop()!) ?? []) if (!dirty.has(r)) { dirty.add(r); queue.push(r); }
    // Kahn's order over the dirty cells; whatever is left is in (or behind) a cycle.
    const indeg = new Map<string, number>();
    for (const id of dirty) indeg.set(id, this.upstreamOf(id).filter((u) => dirty.has(u)).length);
    const order: string[] = [];
    const ready = [...dirty].filter((id) => indeg.get(id) === 0);
    for (let head = 0; head < ready.length; head++) {
      const id = ready[head]!;
      order.push(id);
      for (const r of readers.get(id) ?? []) {
        if (!dirty.has(r)) continue;
        indeg.set(r, indeg.get(r)! - 1);
        if (indeg.get(r) === 0) ready.push(r);
      }
    }
    const ordered = new Set(order);
    for (const id of dirty) if (!ordered.has(id)) this.fail(this.nodes.get(id)!, new CellProblemError(id, ['it reads itself through a cycle of cells; break the cycle by naming another prompt']));
    for (const id of order) this.run(this.nodes.get(id)!);
    return order;
  }

  /** Who reads each cell's output; rebuilt only after an update that changed some edge. */
  private outputReaders(): Map<string, string[]> {
    if (this.readers) return this.readers;
    const readers = new Map<string, string[]>();
    for (const n of this.nodes.values()) {
      for (const d of n.deps) {
        if (d.cell === undefined || d.key !== undefined) continue;
        const list = readers.get(d.cell);
        if (list) list.push(n.cell.id);
        else readers.set(d.cell, [n.cell.id]);
      }
    }
    return (this.readers = readers);
  }

  private upstreamOf(id: string): string[] {
    return (this.nodes.get(id)?.deps ?? []).filter((d) => d.cell !== undefined && d.key === undefined).map((d) => d.cell!);
  }

  private setState(n: Node, patch: Partial<CellState>): void {
    n.state = { ...n.state, ...patch };
    this.opts.onState?.(n.cell.id, n.state);
  }

  private fail(n: Node, error: unknown): void {
    n.controller?.abort(new CancelledError(n.cell.id, 'a newer edit replaced it'));
    n.controller = null;
    n.gen++;
    n.result = Promise.resolve({ ok: false });
    this.setState(n, { status: 'error', error });
  }

  private run(n: Node): void {
    n.controller?.abort(new CancelledError(n.cell.id, 'a newer edit replaced it'));
    const controller = new AbortController();
    const gen = ++n.gen;
    n.controller = controller;
    const live = () => n.gen === gen && !controller.signal.aborted;
    const ups = this.upstreamOf(n.cell.id).map((id) => [id, this.nodes.get(id)!] as const);
    const nb = this.notebook!;
    this.setState(n, { status: 'stale', preview: false });
    n.result = (async (): Promise<Result> => {
      const results = await Promise.all(ups.map(([, u]) => u.result));
      if (!live()) return CANCELLED;
      const kind = this.registry.get(n.cell.kind);
      if (!kind) {                       // an unknown cell: shown as written, nothing to compute
        this.setState(n, { status: 'done', output: undefined, error: undefined });
        return { ok: true, output: undefined };
      }
      const problems = [...n.unresolved, ...validateSettings(kind, n.cell.settings, this.opts.checkContext?.() ?? {})
        .filter((p) => p.severity === 'error').map((p) => p.message)];
      const failed = ups.filter((_, i) => !results[i]!.ok).map(([id]) => id);
      if (failed.length) problems.push(`it reads ${failed.join(', ')}, which failed`);
      if (problems.length) {
        this.setState(n, { status: 'error', error: new CellProblemError(n.cell.id, problems) });
        return { ok: false };
      }
      const upstream = new Map(ups.map(([id], i) => [id, (results[i] as { output: unknown }).output]));
      const inputs = new Map(n.deps.filter((d) => d.input !== undefined).map((d) => [d.input!, this.inputs.get(d.input!)]));
      this.setState(n, { status: 'running', runs: n.state.runs + 1, progress: undefined });
      const progress = (done: number, total: number, what: string) => {
        if (live() && n.state.status === 'running') this.setState(n, { progress: { done, total, what } });
      };
      const partial = (output: unknown) => {
        if (live() && n.state.status === 'running') this.setState(n, { output, preview: true });
      };
      try {
        const output = await this.opts.compute({ cell: n.cell, settings: withDefaults(kind, n.cell.settings), signal: controller.signal, upstream, inputs, notebook: nb, progress, partial });
        if (!live()) return CANCELLED;
        this.setState(n, { status: 'done', output, error: undefined, progress: undefined, preview: false });
        return { ok: true, output };
      } catch (error) {
        if (!live()) return CANCELLED;
        this.setState(n, { status: 'error', error, progress: undefined });
        return { ok: false };
      }
    })();
  }
}

function diffKeys(a: Settings, b: Settings): Set<string> {
  const keys = new Set<string>();
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) if (!sameValue(a[k], b[k])) keys.add(k);
  return keys;
}

const problemKey = (c: Cell | undefined) => JSON.stringify(c?.problems.filter((p) => p.severity === 'error').map((p) => p.message) ?? []);
