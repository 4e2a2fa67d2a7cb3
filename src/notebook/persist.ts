// Keeping the notebook: autosave to IndexedDB (idb-keyval), a synchronous journal in localStorage
// for what a crash would otherwise lose, and opening/saving .md files.
//
// Why two stores. IndexedDB is written 300 ms after the last edit (debounced: one write per burst
// of typing), asynchronously. Whatever happens inside that window is lost unless it was also
// written somewhere synchronously. `pagehide`/`visibilitychange` cover a reload or a closed tab,
// but no event fires when the renderer crashes (an out-of-memory tab running a big model is the
// likely crash here). So every edit also goes to localStorage, synchronously: the call hands the
// text to the browser process before it returns, so it survives a renderer crash, and unlike
// sessionStorage it survives the tab being closed after the crash. Once IndexedDB holds that
// revision the journal entry is removed. On reopen the newer of the two wins (`rev` is a
// monotonic millisecond stamp). The journal is skipped for texts over `journalMaxChars`
// (localStorage holds about 5 MB per origin); those rely on IndexedDB and pagehide.

import { createStore, del, get, set } from 'idb-keyval';
import { NetworkError, UsageError } from '../engine/errors.ts';
import type { NotebookDocument } from './document.ts';

export interface SavedNotebook {
  text: string;
  /** Monotonic stamp (ms); the larger of two copies is the newer. */
  rev: number;
}

export type SaveStatus =
  | { state: 'saved'; rev: number }
  /** Edits not yet in IndexedDB (the debounce is running, or a write is in flight). */
  | { state: 'pending' }
  /** IndexedDB refused (quota, private mode, blocked). The notebook is kept in memory (and in the
   *  journal when it fits); the write is retried in `retryInMs`. `message` is for the user. */
  | { state: 'error'; message: string; retryInMs: number; error: unknown };

/** The few calls autosave needs; idbStore() is the real one, tests may pass a failing one. */
export interface KeyValueStore {
  get(key: string): Promise<unknown>;
  set(key: string, value: unknown): Promise<void>;
  del(key: string): Promise<void>;
}

export function idbStore(dbName = 'glassbox-notebooks', storeName = 'notebooks'): KeyValueStore {
  const store = createStore(dbName, storeName);
  return { get: (k) => get(k, store), set: (k, v) => set(k, v, store), del: (k) => del(k, store) };
}

/** The synchronous part of Storage (localStorage). */
export type JournalStore = Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;

export interface AutosaveOptions {
  /** Which notebook slot (default 'current'). */
  id?: string;
  store?: KeyValueStore;
  /** null turns the journal off; default localStorage when there is one. */
  journal?: JournalStore | null;
  debounceMs?: number;
  journalMaxChars?: number;
  /** Waits between retries after a refused write; the last one repeats. */
  retryMs?: readonly number[];
  onStatus?: (s: SaveStatus) => void;
}

function isSaved(v: unknown): v is SavedNotebook {
  return typeof v === 'object' && v !== null && typeof (v as SavedNotebook).text === 'string' && typeof (v as SavedNotebook).rev === 'number';
}

function describe(e: unknown): string {
  const name = (e as { name?: string })?.name ?? 'Error';
  if (name === 'QuotaExceededError') return 'the browser has no room left for this site (storage quota exceeded)';
  if (name === 'InvalidStateError' || name === 'UnknownError') return 'the browser refused to open its database (private browsing, or storage disabled)';
  return `the browser refused to store it (${name}: ${(e as Error)?.message ?? String(e)})`;
}

export class Autosave {
  readonly id: string;
  private readonly store: KeyValueStore;
  private readonly journal: JournalStore | null;
  private readonly opts: AutosaveOptions;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private latest: SavedNotebook | null = null;   // the newest text not yet known to be in IndexedDB
  private lastRev = 0;
  private attempt = 0;
  private writing: Promise<SaveStatus> | null = null;
  private current: SaveStatus = { state: 'saved', rev: 0 };

  constructor(opts: AutosaveOptions = {}) {
    this.opts = opts;
    this.id = opts.id ?? 'current';
    this.store = opts.store ?? idbStore();
    this.journal = opts.journal !== undefined ? opts.journal : (globalThis.localStorage ?? null);
  }

  get status(): SaveStatus { return this.current; }
  private get journalKey(): string { return `glassbox:notebook-journal:${this.id}`; }
  private get storeKey(): string { return `notebook:${this.id}`; }

  /** The saved notebook: the newer of IndexedDB's copy and the journal's; null if neither. */
  async restore(): Promise<SavedNotebook | null> {
    let fromDb: SavedNotebook | null = null;
    try {
      const v = await this.store.get(this.storeKey);
      if (isSaved(v)) fromDb = v;
    } catch { /* the journal may still have it */ }
    let fromJournal: SavedNotebook | null = null;
    try {
      const v: unknown = JSON.parse(this.journal?.getItem(this.journalKey) ?? 'null');
      if (isSaved(v)) fromJournal = v;
    } catch { /* a damaged journal entry is ignored */ }
    const best = fromJournal && (!fromDb || fromJournal.rev > fromDb.rev) ? fromJournal : fromDb;
    if (best) {
      this.lastRev = Math.max(this.lastRev, best.rev);
      // A journal newer than IndexedDB: write it through now, so that the journal can go.
      if (best === fromJournal && fromJournal !== fromDb) this.schedule(best.text, 0);
    }
    return best;
  }

  /** Called on every edit: journals the text now, writes it to IndexedDB after the debounce. */
  schedule(text: string, delay = this.opts.debounceMs ?? 300): void {
    this.lastRev = Math.max(Date.now(), this.lastRev + 1);
    this.latest = { text, rev: this.lastRev };
    this.writeJournal();
    this.setStatus({ state: 'pending' });
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => { this.timer = null; void this.flush(); }, delay);
  }

  /** Writes the latest text to IndexedDB now (the page is being hidden, or a test waits). */
  async flush(): Promise<SaveStatus> {
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null; }
    while (this.writing) await this.writing;       // one write at a time, in order
    const item = this.latest;
    if (!item) return this.current;
    this.writing = (async () => {
      try {
        await this.store.set(this.storeKey, item);
        this.attempt = 0;
        if (this.latest === item) {
          this.latest = null;
          try { this.journal?.removeItem(this.journalKey); } catch { /* harmless */ }
          this.setStatus({ state: 'saved', rev: item.rev });
        }
      } catch (error) {
        const waits = this.opts.retryMs ?? [1000, 2000, 5000, 10000, 30000];
        const retryInMs = waits[Math.min(this.attempt++, waits.length - 1)]!;
        this.setStatus({ state: 'error', error, retryInMs,
          message: `Not saved: ${describe(error)}. The notebook is kept in this tab and saving is retried in ${Math.round(retryInMs / 1000)} s; use Save as .md to keep a copy.` });
        if (this.timer === null) this.timer = setTimeout(() => { this.timer = null; void this.flush(); }, retryInMs);
      } finally {
        this.writing = null;
      }
      return this.current;
    })();
    return this.writing;
  }

  /** Writes the journal entry synchronously (also called on pagehide for texts over the cap). */
  writeJournal(force = false): void {
    if (!this.journal || !this.latest) return;
    if (!force && this.latest.text.length > (this.opts.journalMaxChars ?? 1 << 20)) return;
    try {
      this.journal.setItem(this.journalKey, JSON.stringify(this.latest));
    } catch { /* full: IndexedDB (and its retry) is what is left */ }
  }

  /** Saves `doc` on every change and when the page is hidden; returns the function that stops it. */
  attach(doc: NotebookDocument, target: Pick<Window, 'addEventListener' | 'removeEventListener'> & { document?: Document } = window): () => void {
    const unsubscribe = doc.subscribe(() => this.schedule(doc.text));
    const hide = () => { this.writeJournal(true); void this.flush(); };
    const visibility = () => { if (target.document?.visibilityState === 'hidden') hide(); };
    target.addEventListener('pagehide', hide);
    target.document?.addEventListener('visibilitychange', visibility);
    return () => {
      unsubscribe();
      target.removeEventListener('pagehide', hide);
      target.document?.removeEventListener('visibilitychange', visibility);
    };
  }

  /** Forgets the saved copy (the user closed the notebook). */
  async clear(): Promise<void> {
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null; }
    this.latest = null;
    this.journal?.removeItem(this.journalKey);
    await this.store.del(this.storeKey);
  }

  private setStatus(s: SaveStatus): void {
    this.current = s;
    this.opts.onStatus?.(s);
  }
}

// ---------------------------------------------------------------------------------------------
// Files and URLs

/** Notebooks are text; a file larger than this is refused before it is read. */
export const MAX_NOTEBOOK_BYTES = 16 * 2 ** 20;

function decode(bytes: Uint8Array, where: string): string {
  try {
    // ignoreBOM keeps a byte-order mark in the text, so it is written back as it was.
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new UsageError(where, 'is not UTF-8 text', 'A notebook is a Markdown (.md) file; save it as UTF-8');
  }
}

function tooBig(where: string, size: number): UsageError {
  return new UsageError(where, `is ${(size / 2 ** 20).toFixed(1)} MiB; notebooks are at most ${MAX_NOTEBOOK_BYTES / 2 ** 20} MiB`, 'Open a smaller notebook');
}

/** Reads a notebook from a picked or dropped file. */
export async function openFile(file: Blob & { name?: string }): Promise<{ text: string; name: string }> {
  const name = file.name ?? 'notebook.md';
  if (file.size > MAX_NOTEBOOK_BYTES) throw tooBig(name, file.size);
  return { text: decode(new Uint8Array(await file.arrayBuffer()), name), name };
}

/** Fetches a notebook from a URL, refusing one larger than MAX_NOTEBOOK_BYTES as it streams. */
export async function openUrl(url: string, opts: { signal?: AbortSignal; fetch?: typeof fetch } = {}): Promise<{ text: string; name: string }> {
  let res: Response;
  try {
    res = await (opts.fetch ?? fetch)(url, { signal: opts.signal });
  } catch (e) {
    if (opts.signal?.aborted) throw e;
    throw new NetworkError(url, `could not be fetched (${(e as Error).message})`);
  }
  if (!res.ok) throw new NetworkError(url, `the server answered ${res.status} ${res.statusText}`.trim());
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > MAX_NOTEBOOK_BYTES) throw tooBig(url, declared);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = res.body?.getReader();
  if (reader) {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > MAX_NOTEBOOK_BYTES) { await reader.cancel(); throw tooBig(url, total); }
      chunks.push(value);
    }
  }
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) { bytes.set(c, at); at += c.byteLength; }
  const path = new URL(url, globalThis.location?.href ?? 'http://localhost/').pathname;
  return { text: decode(bytes, url), name: decodeURIComponent(path.split('/').pop() || 'notebook.md') };
}

/** The notebook as a .md file. */
export function notebookBlob(text: string): Blob {
  return new Blob([text], { type: 'text/markdown;charset=utf-8' });
}

/** A file name from the notebook's title: "Where does the model look?" → where-does-the-model-look.md */
export function notebookFileName(title: unknown): string {
  const slug = typeof title === 'string' ? title.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase()
    .replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 80) : '';
  return `${slug || 'notebook'}.md`;
}

/** Saves the text as a download (an <a download> on a Blob URL). */
export function downloadNotebook(text: string, fileName: string, doc: Document = document): void {
  const url = URL.createObjectURL(notebookBlob(text));
  const a = doc.createElement('a');
  a.href = url;
  a.download = fileName;
  a.rel = 'noopener';
  a.style.display = 'none';
  doc.body.append(a);
  a.click();
  a.remove();
  // Revoked later: the download may start after click() returns.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
