// Downloading one model file: streamed, hashed while it streams, resumed after a dropped
// connection, and refused as early as possible when it cannot be the file we want.
//
// Memory: nothing is ever allocated from a number the server sends. Chunks arrive as the network
// delivers them (tens of KiB); every 16 MiB of them become one Blob part, which the browser may
// keep on disk, so the JavaScript heap holds at most ~16 MiB of a download at any time and the
// result is one Blob made of parts (no final copy).
//
// Retries: a network error, a stall (no byte for `stallMs`), a body that ends early, or a 5xx /
// 429 answer is retried after a doubling delay. When bytes were already received the retry asks
// for the rest with `Range: bytes=N-`; a 206 continues, a 200 (the server ignores ranges) starts
// over cleanly. A retry that brought at least 1 MiB resets the count, so a long download over a
// flaky link completes, while a server that keeps failing is given up on after `retries` tries.

import { IntegrityError, NetworkError } from '../../engine/errors.ts';
import { fileNameOf } from './catalog.ts';
import { Sha256 } from './sha256.ts';
import type { DownloadProgress, ProgressCallback } from './types.ts';

/** The most a download without a declared size may bring: what the WebAssembly engine can hold. */
export const DEFAULT_MAX_BYTES = 4 * 2 ** 30;
const BLOB_PART_BYTES = 16 << 20;
const PROGRESS_RESET_BYTES = 1 << 20;
/** How many leading bytes `check` gets (enough for every format's magic and header length). */
export const HEAD_BYTES = 64;

export interface DownloadOptions {
  /** Declared size: a larger Content-Length is refused before reading, and the result must match. */
  size?: number;
  /** Expected SHA-256 (hex); a mismatch is an IntegrityError and nothing is kept. */
  sha256?: string;
  /** Name used in progress and messages (default: the URL's file name). */
  name?: string;
  /** Cap on a download without a declared size (default 4 GiB). */
  maxBytes?: number;
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
  fetch?: typeof fetch;
  /** Retries after failures without progress (default 5). */
  retries?: number;
  /** First retry delay; it doubles up to maxRetryDelayMs (defaults 500 and 8000). */
  retryDelayMs?: number;
  maxRetryDelayMs?: number;
  /** A connection that brings no byte for this long is dropped and retried (default 30 s). */
  stallMs?: number;
  /** Shortest interval between progress events (default 100 ms; the last event always comes). */
  progressIntervalMs?: number;
  /** Called once with the first HEAD_BYTES bytes (fewer for a tiny file) and the total when known; throw to refuse the file. */
  check?(head: Uint8Array, total: number | null): void | Promise<void>;
  /** Copied into every progress event. */
  fileIndex?: number;
  fileCount?: number;
}

export interface Downloaded {
  blob: Blob;
  size: number;
  /** SHA-256 of what was received (hex), whether or not one was expected. */
  sha256: string;
  /** Failed attempts along the way, and how many continued with a range request or started over. */
  retries: number;
  resumed: number;
  restarted: number;
}

/** Statuses worth retrying: the server is busy or briefly broken. */
const RETRYABLE = new Set([408, 425, 429, 500, 502, 503, 504]);

/** `bytes START-END/TOTAL` (TOTAL may be '*'). */
export function parseContentRange(v: string | null): { start: number; end: number; total: number | null } | null {
  const m = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(v ?? '');
  if (!m) return null;
  const start = Number(m[1]), end = Number(m[2]), total = m[3] === '*' ? null : Number(m[3]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) return null;
  if (total !== null && (!Number.isSafeInteger(total) || end >= total)) return null;
  return { start, end, total };
}

function contentLength(res: Response): number | null {
  const v = res.headers.get('Content-Length');
  if (v === null || !/^\d+$/.test(v.trim())) return null;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : null;
}

/** Bytes per second over the last few seconds. */
class RateMeter {
  private samples: [number, number][] = [];
  add(t: number, bytes: number): void {
    const last = this.samples[this.samples.length - 1];
    if (last && t - last[0] < 50) { last[1] = bytes; return; } // one sample per 50 ms is plenty
    this.samples.push([t, bytes]);
    while (this.samples.length > 2 && t - this.samples[0]![0] > 3000) this.samples.shift();
  }
  reset(): void { this.samples = []; }
  rate(): number {
    if (this.samples.length < 2) return 0;
    const [t0, b0] = this.samples[0]!, [t1, b1] = this.samples[this.samples.length - 1]!;
    return t1 > t0 ? ((b1 - b0) * 1000) / (t1 - t0) : 0;
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => { clearTimeout(t); reject(signal!.reason); };
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

/** Raised inside an attempt for failures worth retrying. */
class Retryable extends Error {}

/** Downloads `url` into a Blob, checking what it can on the way (see the file comment). */
export async function download(url: string, opts: DownloadOptions = {}): Promise<Downloaded> {
  const name = opts.name ?? fileNameOf(url);
  const f = opts.fetch ?? globalThis.fetch.bind(globalThis);
  const signal = opts.signal;
  const maxBytes = opts.size ?? opts.maxBytes ?? DEFAULT_MAX_BYTES;
  const retries = opts.retries ?? 5;
  const stallMs = opts.stallMs ?? 30_000;
  const interval = opts.progressIntervalMs ?? 100;
  const expectedSha = opts.sha256?.toLowerCase();

  // what has been received so far (kept across attempts when the server resumes)
  let hasher = new Sha256();
  let received = 0;
  let parts: Blob[] = [];
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  let head: Uint8Array | null = opts.check ? new Uint8Array(0) : null; // null once checked
  let total: number | null = opts.size ?? null;
  let etag: string | null = null;
  const stats = { retries: 0, resumed: 0, restarted: 0 };
  const meter = new RateMeter();
  let lastEmit = -Infinity;
  let retryInfo: DownloadProgress['retry'];

  const emit = (force: boolean) => {
    const now = performance.now();
    meter.add(now, received);
    if (!opts.onProgress || (!force && now - lastEmit < interval)) return;
    lastEmit = now;
    const rate = meter.rate();
    const p: DownloadProgress = {
      file: name, received, total, rateBytesPerS: Math.round(rate),
      etaS: total !== null && rate > 0 ? Math.max(0, (total - received) / rate) : total === received ? 0 : null,
      phase: 'download',
    };
    if (opts.fileIndex !== undefined) p.fileIndex = opts.fileIndex;
    if (opts.fileCount !== undefined) p.fileCount = opts.fileCount;
    if (retryInfo) { p.retry = retryInfo; retryInfo = undefined; }
    opts.onProgress(p);
  };
  const startOver = () => {
    hasher = new Sha256();
    received = 0;
    parts = [];
    pending = [];
    pendingBytes = 0;
    if (opts.check && head !== null) head = new Uint8Array(0);
    meter.reset();
  };
  const runCheck = async () => {
    if (!opts.check || head === null) return;
    const h = head;
    head = null;
    await opts.check(h, total);
  };

  let failures = 0;
  for (;;) {
    signal?.throwIfAborted();
    const ranged = received > 0;
    const before = received;
    const attempt = new AbortController();
    const onAbort = () => attempt.abort(signal!.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    let stalled = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => { stalled = true; attempt.abort(new Retryable(`no data for ${stallMs / 1000} s`)); }, stallMs);
    };
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    try {
      arm();
      let res: Response;
      try {
        res = await f(url, {
          headers: ranged ? { Range: `bytes=${received}-` } : {},
          signal: attempt.signal,
          referrerPolicy: 'no-referrer',
          cache: 'no-store',
        });
      } catch (e) {
        if (!signal?.aborted && (globalThis.navigator as Navigator | undefined)?.onLine === false) {
          throw new NetworkError(url, 'the browser is offline', 'Connect to the network, or open a model that is already cached');
        }
        throw new Retryable(stalled ? `no answer for ${stallMs / 1000} s` : `the request failed (${(e as Error).message})`);
      }

      if (!res.ok) {
        await res.body?.cancel().catch(() => {});
        if (RETRYABLE.has(res.status)) throw new Retryable(`the server answered ${res.status} ${res.statusText}`.trim());
        if (res.status === 416 && ranged) { startOver(); throw new Retryable('the server refused to resume (416)'); }
        throw new NetworkError(url, `the server answered ${res.status} ${res.statusText}`.trim(),
          res.status === 404 ? 'Check the URL: there is no file there' :
            res.status === 401 || res.status === 403 ? 'The file is private or gated: download it yourself and open it as a file' : undefined);
      }

      // What this response says about the file, checked before a byte of the body is read.
      let announced: number | null;
      if (res.status === 206) {
        const header = res.headers.get('Content-Range');
        let cr = parseContentRange(header);
        if (!cr && header === null && ranged && total !== null) {
          // a cross-origin server that does not expose Content-Range: the answer is to our
          // `bytes=N-`, so it starts at N; its Content-Length (always readable) must cover the rest
          const cl = contentLength(res);
          if (cl !== null && received + cl === total) cr = { start: received, end: total - 1, total };
        }
        if (!cr) {
          await res.body?.cancel().catch(() => {});
          throw new NetworkError(url, `a partial answer (206) came without a valid Content-Range (${header})`);
        }
        announced = cr.total;
        if (cr.start !== received) {
          await res.body?.cancel().catch(() => {});
          startOver();
          throw new Retryable(`the server resumed at byte ${cr.start} instead of ${before}`);
        }
        if (ranged) stats.resumed++;
      } else {
        if (ranged) { startOver(); stats.restarted++; retryInfo = { attempt: stats.retries, reason: 'the server cannot resume; starting over', resumed: false }; }
        const encoding = res.headers.get('Content-Encoding');
        const cl = contentLength(res);
        // a compressed body's length says nothing about the file's
        announced = encoding && encoding !== 'identity' ? null : cl;
      }
      const tag = res.headers.get('ETag');
      if (ranged && etag && tag && tag !== etag && res.status === 206) {
        await res.body?.cancel().catch(() => {});
        startOver();
        throw new Retryable('the file changed on the server while it was downloading');
      }
      etag = tag ?? etag;
      if (announced !== null) {
        if (opts.size !== undefined && announced > opts.size) {
          await res.body?.cancel().catch(() => {});
          throw new IntegrityError(url, `the server announces ${announced} bytes but ${name} should be ${opts.size} bytes`);
        }
        if (opts.size !== undefined && res.status === 206 && announced !== opts.size) {
          await res.body?.cancel().catch(() => {});
          throw new IntegrityError(url, `the server holds ${announced} bytes but ${name} should be ${opts.size} bytes`);
        }
        if (announced > maxBytes) {
          await res.body?.cancel().catch(() => {});
          throw new NetworkError(url, `the server announces ${announced} bytes (${mib(announced)}); without a declared size at most ${maxBytes} are accepted`,
            'Give the expected size of the file, or pick a smaller model');
        }
        if (total === null) total = announced;
        else if (announced !== total && opts.size === undefined) {
          // the file changed between attempts: what we have may belong to another version
          await res.body?.cancel().catch(() => {});
          const was = total;
          startOver();
          total = announced;
          throw new Retryable(`the file's size changed from ${was} to ${announced} bytes`);
        }
      }
      emit(true);

      const limit = total ?? maxBytes;
      if (res.body) {
        reader = res.body.getReader();
        for (;;) {
          let r: ReadableStreamReadResult<Uint8Array>;
          try {
            r = await reader.read();
          } catch (e) {
            throw new Retryable(stalled ? `no data for ${stallMs / 1000} s` : `the connection failed after ${received} bytes (${(e as Error).message})`);
          }
          if (r.done) break;
          arm();
          const chunk = r.value;
          if (received + chunk.byteLength > limit) {
            await reader.cancel().catch(() => {});
            throw total !== null
              ? new IntegrityError(url, `the server sent more than the ${total} bytes ${opts.size !== undefined ? `${name} should have` : 'it announced'}`)
              : new NetworkError(url, `the file is larger than ${maxBytes} bytes, the most accepted without a declared size`);
          }
          hasher.update(chunk);
          received += chunk.byteLength;
          pending.push(chunk);
          pendingBytes += chunk.byteLength;
          if (pendingBytes >= BLOB_PART_BYTES) {
            parts.push(new Blob(pending as BlobPart[]));
            pending = [];
            pendingBytes = 0;
          }
          if (head !== null) {
            const h = new Uint8Array(Math.min(HEAD_BYTES, head.length + chunk.byteLength));
            h.set(head);
            h.set(chunk.subarray(0, h.length - head.length), head.length);
            head = h;
            if (head.length >= HEAD_BYTES) await runCheck();
          }
          emit(false);
        }
      }
      if (total !== null && received < total) {
        throw new Retryable(`the connection closed after ${received} of ${total} bytes`);
      }
      await runCheck(); // a file shorter than HEAD_BYTES
    } catch (e) {
      if (signal?.aborted) {
        await reader?.cancel().catch(() => {});
        throw signal.reason;
      }
      if (!(e instanceof Retryable)) {
        attempt.abort();
        throw e;
      }
      attempt.abort();
      failures = received - before >= PROGRESS_RESET_BYTES ? 1 : failures + 1;
      stats.retries++;
      if (failures > retries) {
        throw new NetworkError(url, `${e.message}; gave up after ${retries} ${retries === 1 ? 'retry' : 'retries'}`);
      }
      const delay = Math.min(opts.maxRetryDelayMs ?? 8000, (opts.retryDelayMs ?? 500) * 2 ** (failures - 1));
      retryInfo = { attempt: stats.retries, reason: e.message, resumed: received > 0 };
      emit(true);
      await sleep(delay, signal);
      continue;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
    break;
  }

  if (opts.size !== undefined && received !== opts.size) {
    throw new IntegrityError(url, `${name} is ${received} bytes but should be ${opts.size} bytes`);
  }
  const sha256 = hasher.hex();
  if (expectedSha && sha256 !== expectedSha) {
    throw new IntegrityError(name, `its SHA-256 is ${sha256} but ${expectedSha} was expected (from ${url})`);
  }
  total = received;
  emit(true);
  if (pending.length) parts.push(new Blob(pending as BlobPart[]));
  const blob = new Blob(parts, { type: 'application/octet-stream' });
  return { blob, size: received, sha256, ...stats };
}

