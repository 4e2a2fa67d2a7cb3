// The open notebook: the current Notebook, its edits (each one rewrites the text, so the Markdown
// is the whole state), undo/redo, and listeners (the reactive graph, autosave, the page). A shared
// notebook opens read-only: every edit is refused until the user makes a copy.

import { UsageError } from '../engine/errors.ts';
import { cellKinds, type CellRegistry } from './registry.ts';
import { parseNotebook, serializeNotebook, type Cell, type Notebook } from './format.ts';
import * as edit from './edit.ts';
import { History } from './history.ts';
import type { Value } from './settings.ts';

export interface DocumentChange {
  readonly notebook: Notebook;
  readonly reason: 'edit' | 'undo' | 'redo' | 'load';
  /** The cell and setting an edit changed, when it was one setting. */
  readonly cellId?: string;
  readonly key?: string;
}

export interface DocumentOptions {
  registry?: CellRegistry;
  readonly?: boolean;
  /** Undo steps kept (default 200). */
  historyLimit?: number;
  /** Edits of the same setting closer together than this are one undo step (default 1000 ms). */
  coalesceMs?: number;
  /** The clock used for coalescing (tests pass a fake one). */
  now?: () => number;
}

/** Bytes an older snapshot keeps alive that the newer one does not share: the cells it replaced. */
function snapshotCost(older: Notebook, newer: Notebook): number {
  const kept = new Set(newer.cells);
  let n = older.frontMatter && older.frontMatter !== newer.frontMatter ? older.frontMatter.raw.length : 0;
  for (const c of older.cells) if (!kept.has(c)) n += c.raw.length + c.lead.length;
  return 2 * n;                                        // UTF-16
}

export class NotebookDocument {
  private history: History<Notebook>;
  private listeners = new Set<(change: DocumentChange) => void>();
  private cachedText: { nb: Notebook; text: string } | null = null;
  private readonlyFlag: boolean;
  readonly registry: CellRegistry;
  private readonly now: () => number;
  private readonly opts: DocumentOptions;

  constructor(text: string, opts: DocumentOptions = {}) {
    this.opts = opts;
    this.registry = opts.registry ?? cellKinds;
    this.readonlyFlag = opts.readonly ?? false;
    this.now = opts.now ?? Date.now;
    const nb = parseNotebook(text, { registry: this.registry });
    this.cachedText = { nb, text };
    this.history = new History(nb, { limit: opts.historyLimit, coalesceMs: opts.coalesceMs, cost: snapshotCost });
  }

  get notebook(): Notebook { return this.history.current; }
  get readonly(): boolean { return this.readonlyFlag; }
  get canUndo(): boolean { return !this.readonlyFlag && this.history.canUndo; }
  get canRedo(): boolean { return !this.readonlyFlag && this.history.canRedo; }

  /** The notebook as Markdown: exactly the text it was opened from, plus the edits. */
  get text(): string {
    const nb = this.notebook;
    if (this.cachedText?.nb !== nb) this.cachedText = { nb, text: serializeNotebook(nb) };
    return this.cachedText.text;
  }

  cell(id: string): Cell | undefined { return this.notebook.cells.find((c) => c.id === id); }

  /** Listens to every change; returns the function that stops listening. */
  subscribe(fn: (change: DocumentChange) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** A control writes its value back: the cell's text changes, and so do the cells reading it. */
  setSetting(cellId: string, key: string, value: Value | undefined): void {
    this.apply(edit.setSetting(this.guard(), cellId, key, value, this.registry), `${cellId}\u0000${key}`, cellId, key);
  }

  /** A prompt's or a prose cell's text. */
  setText(cellId: string, text: string): void { this.setSetting(cellId, 'text', text); }

  setFrontMatter(key: string, value: Value | undefined): void {
    this.apply(edit.setFrontMatter(this.guard(), key, value), `front matter\u0000${key}`);
  }

  /** Adds a cell before position `index`; returns its id. */
  insertCell(index: number, kind: string, settings: Record<string, Value> = {}): string {
    const { notebook, id } = edit.insertCell(this.guard(), index, kind, settings, this.registry);
    this.apply(notebook, null, id);
    return id;
  }

  removeCell(id: string): void { this.apply(edit.removeCell(this.guard(), id), null, id); }
  moveCell(id: string, to: number): void { this.apply(edit.moveCell(this.guard(), id, to), null, id); }

  undo(): boolean { return this.step('undo'); }
  redo(): boolean { return this.step('redo'); }

  /** Replaces the whole notebook (another file was opened); forgets the undo steps. */
  load(text: string, opts: { readonly?: boolean } = {}): void {
    const nb = parseNotebook(text, { registry: this.registry });
    this.readonlyFlag = opts.readonly ?? false;
    this.history.reset(nb);
    this.cachedText = { nb, text };
    this.emit({ notebook: nb, reason: 'load' });
  }

  /** An editable copy of this notebook (for a shared, read-only one). */
  makeCopy(): NotebookDocument {
    return new NotebookDocument(this.text, { ...this.opts, readonly: false });
  }

  // -------------------------------------------------------------------------------------------

  private guard(): Notebook {
    if (this.readonlyFlag) throw new UsageError('notebook', 'this shared notebook is read-only', 'Make a copy to change it');
    return this.notebook;
  }

  private apply(nb: Notebook, coalesceKey: string | null, cellId?: string, key?: string): void {
    if (nb === this.notebook) return;
    this.history.push(nb, coalesceKey, this.now());
    this.emit({ notebook: nb, reason: 'edit', cellId, key });
  }

  private step(which: 'undo' | 'redo'): boolean {
    if (this.readonlyFlag) return false;
    const nb = which === 'undo' ? this.history.undo() : this.history.redo();
    if (!nb) return false;
    this.emit({ notebook: nb, reason: which });
    return true;
  }

  private emit(change: DocumentChange): void {
    for (const fn of this.listeners) fn(change);
  }
}
