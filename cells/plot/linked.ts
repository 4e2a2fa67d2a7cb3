// Linked selection: hovering or clicking a token, a head or a layer in one cell highlights it in
// every cell of the notebook. One small store per page; cells subscribe in connectedCallback and
// unsubscribe in disconnectedCallback. Hover is transient (cleared on leave); a click pins the
// selection until another click (or Escape) changes it. Pinned token/head choices that belong to
// the notebook (a next-token cell's position) are written to the cell's settings by the cell.

export interface Selection {
  /** A token position of the prompt. */
  token: number | null;
  /** A layer. */
  layer: number | null;
  /** A query head of `layer` (or of any layer when layer is null). */
  head: number | null;
  /** The prompt cell the token belongs to (cells reading another prompt ignore it). */
  prompt: string | null;
}

export type SelectionListener = (now: Selection, source: string) => void;

const EMPTY: Selection = Object.freeze({ token: null, layer: null, head: null, prompt: null });

export class LinkedSelection {
  private hovered: Selection = EMPTY;
  private pinned: Selection = EMPTY;
  private readonly listeners = new Set<SelectionListener>();

  /** What cells draw: the hover while there is one, else the pinned selection. */
  get current(): Selection {
    const h = this.hovered;
    return h.token === null && h.layer === null && h.head === null ? this.pinned : { ...this.pinned, ...dropNulls(h) };
  }
  get pin(): Selection { return this.pinned; }

  hover(part: Partial<Selection>, source: string): void {
    this.hovered = { ...EMPTY, ...part };
    this.emit(source);
  }

  leave(source: string): void {
    if (this.hovered === EMPTY) return;
    this.hovered = EMPTY;
    this.emit(source);
  }

  /** Pins a part (clicking the pinned thing again unpins it). */
  select(part: Partial<Selection>, source: string): void {
    const same = Object.entries(part).every(([k, v]) => this.pinned[k as keyof Selection] === v);
    this.pinned = same ? EMPTY : { ...this.pinned, ...part };
    this.emit(source);
  }

  clear(source: string): void {
    this.hovered = EMPTY;
    this.pinned = EMPTY;
    this.emit(source);
  }

  subscribe(fn: SelectionListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private emit(source: string): void {
    const now = this.current;
    for (const fn of this.listeners) fn(now, source);
  }
}

function dropNulls(s: Selection): Partial<Selection> {
  const out: Partial<Selection> = {};
  for (const [k, v] of Object.entries(s)) if (v !== null) (out as Record<string, unknown>)[k] = v;
  return out;
}

/** The page's selection (every cell element of a page shares it). */
export const linked = new LinkedSelection();

/** A Lit controller: the host re-renders when the selection changes (from any cell). */
export class LinkedController {
  selection: Selection = linked.current;
  private off: (() => void) | null = null;
  constructor(private readonly host: { addController(c: LinkedController): void; requestUpdate(): void }, private readonly store: LinkedSelection = linked) {
    host.addController(this);
  }
  hostConnected(): void {
    this.selection = this.store.current;
    this.off = this.store.subscribe((s) => { this.selection = s; this.host.requestUpdate(); });
  }
  hostDisconnected(): void {
    this.off?.();
    this.off = null;
  }
}
