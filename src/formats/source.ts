// A ByteSource is a file that can be read in pieces: a Blob in the browser, a file on disk in Node,
// bytes already in memory, or a URL read with range requests. Format readers parse headers
// through it and stream tensor data out of it, so that no model is ever held twice in memory.

import { NetworkError, TruncatedFileError } from '../engine/errors.ts';

export interface ByteSource {
  /** File name or URL, used in every error message about this file. */
  readonly name: string;
  /** Total size in bytes. */
  readonly size: number;
  /** Reads exactly `length` bytes at `offset`; throws TruncatedFileError past the end. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /**
   * Reads exactly `dest.length` bytes at `offset` into `dest` (same errors as read). Optional:
   * sources that can fill memory in place (a file in Node) offer it, so that loading a model
   * allocates nothing per piece; the loader uses read() where it is missing.
   */
  readInto?(offset: number, dest: Uint8Array): Promise<void>;
  /**
   * Bytes per read that this source serves well (the loader's piece size; default 4 MiB). Each
   * read of a Blob or over HTTP has a fixed cost (a blob slice, a range request), so those ask for
   * larger pieces and stream them into place with readInto.
   */
  readonly pieceBytes?: number;
  /** Releases the underlying handle (files in Node); a no-op elsewhere. */
  close?(): Promise<void>;
}

function checkRange(src: ByteSource, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new TruncatedFileError(src.name, `invalid read of ${length} bytes at offset ${offset}`);
  }
  if (offset + length > src.size) {
    throw new TruncatedFileError(src.name,
      `needs bytes ${offset}..${offset + length} but the file is only ${src.size} bytes long`);
  }
}

export function bytesSource(bytes: Uint8Array, name = 'bytes'): ByteSource {
  const src: ByteSource = {
    name,
    size: bytes.byteLength,
    async read(offset, length) {
      checkRange(src, offset, length);
      return bytes.subarray(offset, offset + length);
    },
  };
  return src;
}

/** Pieces for a Blob or a URL: in Chromium a 4 MiB blob slice read at 570 MB/s, a streamed 256 MiB
 *  one at 830, a 4 MiB range request from the dev server at 120–140 MB/s, a 64 MiB one at 215–370. */
const STREAMED_PIECE = 32 << 20;

/** Copies a response body (or a blob's stream) into `dest`, which it must fill exactly. */
async function streamInto(body: ReadableStream<Uint8Array>, dest: Uint8Array, fail: (got: number) => Error): Promise<void> {
  const reader = body.getReader();
  let at = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (at + value.length > dest.length) throw fail(at + value.length);
      dest.set(value, at);
      at += value.length;
    }
  } finally {
    reader.releaseLock();
  }
  if (at !== dest.length) throw fail(at);
}

export function blobSource(blob: Blob, name = (blob as File).name ?? 'blob'): ByteSource {
  const src: ByteSource = {
    name,
    size: blob.size,
    pieceBytes: STREAMED_PIECE,
    async read(offset, length) {
      checkRange(src, offset, length);
      return new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
    },
    async readInto(offset, dest) {
      checkRange(src, offset, dest.length);
      if (dest.length === 0) return;
      await streamInto(blob.slice(offset, offset + dest.length).stream(), dest,
        (got) => new TruncatedFileError(name, `reading bytes ${offset}..${offset + dest.length} gave ${got} bytes (was the file changed or removed?)`));
    },
  };
  return src;
}

/** Reads a whole (small) source: config.json, tokenizer files. */
export async function readAll(src: ByteSource): Promise<Uint8Array> {
  return src.read(0, src.size);
}

export async function readText(src: ByteSource): Promise<string> {
  return new TextDecoder('utf-8').decode(await readAll(src));
}

/**
 * A file on a web server, read with HTTP range requests (the dev server's /models/local/, or any
 * server that sends Accept-Ranges). The size comes from a one-byte range request.
 */
export async function urlSource(url: string, name = decodeURIComponent(url.split('?')[0]!.split('/').pop() || url)): Promise<ByteSource> {
  let res: Response;
  try {
    res = await fetch(url, { headers: { Range: 'bytes=0-0' }, referrerPolicy: 'no-referrer' });
  } catch (e) {
    throw new NetworkError(name, `could not be fetched (${(e as Error).message})`);
  }
  if (!res.ok) throw new NetworkError(name, `the server answered ${res.status} ${res.statusText}`);
  let size: number;
  const range = res.headers.get('Content-Range');
  if (res.status === 206 && range && /\/(\d+)$/.test(range)) {
    size = Number(/\/(\d+)$/.exec(range)![1]);
    await res.body?.cancel();
  } else {
    // No range support: the whole body came back; serve reads from it.
    const bytes = new Uint8Array(await res.arrayBuffer());
    return bytesSource(bytes, name);
  }
  const src: ByteSource = {
    name,
    size,
    pieceBytes: STREAMED_PIECE,
    async read(offset, length) {
      checkRange(src, offset, length);                                  // before allocating
      const out = new Uint8Array(length);
      await src.readInto!(offset, out);
      return out;
    },
    async readInto(offset, dest) {
      checkRange(src, offset, dest.length);
      if (dest.length === 0) return;
      const length = dest.length;
      let r: Response;
      try {
        r = await fetch(url, { headers: { Range: `bytes=${offset}-${offset + length - 1}` }, referrerPolicy: 'no-referrer' });
        if (r.status !== 206 || !r.body) throw new NetworkError(name, `range request answered ${r.status}`);
        await streamInto(r.body, dest, (got) => new NetworkError(name, `range request returned ${got} of ${length} bytes`));
      } catch (e) {
        if (e instanceof NetworkError) throw e;
        throw new NetworkError(name, `reading bytes ${offset}..${offset + length} failed (${(e as Error).message})`);
      }
    },
  };
  return src;
}
