// What the page asks the worker to load, and what loading reports back. Plain data: every type
// here crosses the worker boundary by structured clone (File objects included, without copying
// their bytes).

/** Where a model comes from. */
export type ModelSource =
  /** An entry of the model catalog (public/models.json), by id. */
  | { kind: 'catalog'; id: string }
  /** One model file at a URL (downloaded and cached); size and sha256 are checked when given. */
  | { kind: 'url'; url: string; sha256?: string; size?: number }
  /** Files the user picked or dropped: read as Blobs, never copied whole. */
  | { kind: 'files'; files: File[] }
  /** Files on the dev server's /models/local/ (paths relative to it, or same-origin absolute paths). */
  | { kind: 'local'; paths: string[] };

/** Progress of one file's download (or of its arrival from the cache, in one event). */
export interface DownloadProgress {
  /** File name (the last part of the URL). */
  file: string;
  /** Bytes received and kept so far (back to 0 if a server that ignores Range forced a restart). */
  received: number;
  /** Total bytes when known (declared size, Content-Length or Content-Range), else null. */
  total: number | null;
  /** Recent transfer rate in bytes per second (0 until measurable). */
  rateBytesPerS: number;
  /** Seconds left at that rate, or null when the total or the rate is unknown. */
  etaS: number | null;
  /** Which file of the source this is (0-based) and how many there are. */
  fileIndex?: number;
  fileCount?: number;
  /** 'download' while bytes arrive; 'cache' when the file came from the browser's cache. */
  phase?: 'download' | 'cache';
  /** Set on the event after a retry: what went wrong and which attempt this is. */
  retry?: { attempt: number; reason: string; resumed: boolean };
}

export type ProgressCallback = (p: DownloadProgress) => void;
