// The browser's cache of downloaded model files, so that the second open is instant and offline.
//
// Cache Storage rather than OPFS: its entries are keyed by URL, which is what names a catalog file;
// it works the same in a window and in a worker in every browser (OPFS's streaming writer is not
// in every browser's workers); size, SHA-256 and date ride along as headers of the stored
// Response; and a cached Response's blob() is a handle to the bytes on disk in Chromium, so
// opening a 1.3 GB model does not read it into memory. A download is stored only once it has been
// fully checked, so the cache never holds a partial or unverified file.
//
// Every lookup checks the entry against its own record and against what the caller expects (size,
// SHA-256); small files are also hashed again. A bad entry is deleted and reported, so the caller
// downloads it again.

import { sha256Blob, toHex } from './sha256.ts';
import { fileNameOf } from './catalog.ts';

export const CACHE_NAME = 'glassbox-models-v1';
/** Cached files up to this size are hashed again on every open ('auto'): ~0.1 s for 64 MiB. */
export const REHASH_BELOW_BYTES = 64 << 20;

const H_SIZE = 'X-Glassbox-Size';
const H_SHA = 'X-Glassbox-Sha256';
const H_DATE = 'X-Glassbox-Date';
const H_NAME = 'X-Glassbox-Name';

export interface CachedFile {
  /** Absolute URL the file was downloaded from (the cache key). */
  url: string;
  name: string;
  size: number;
  sha256: string;
  /** When it was stored (ISO 8601). */
  date: string;
}

export type CacheLookup =
  | { kind: 'hit'; blob: Blob; meta: CachedFile }
  | { kind: 'miss' }
  /** The entry was wrong and has been deleted; `reason` says how. */
  | { kind: 'discarded'; reason: string };

export type CachePut = { ok: true } | { ok: false; quota: boolean; reason: string };

export interface LookupOptions {
  /** 'size': sizes and records only; 'auto' (default): also rehash files below REHASH_BELOW_BYTES; 'full': always rehash. */
  verify?: 'size' | 'auto' | 'full';
  signal?: AbortSignal;
}

/** The URL as the cache stores it (absolute, against this page or worker). */
export function cacheKey(url: string): string {
  const base = (globalThis as { location?: { href: string } }).location?.href;
  try { return new URL(url, base).href; } catch { return url; }
}

async function openCache(): Promise<Cache | null> {
  if (typeof caches === 'undefined') return null; // not a secure context, or Node
  try { return await caches.open(CACHE_NAME); } catch { return null; }
}

function metaOf(url: string, res: Response): CachedFile | null {
  const size = Number(res.headers.get(H_SIZE));
  const sha256 = res.headers.get(H_SHA) ?? '';
  if (!Number.isSafeInteger(size) || size < 0 || !/^[0-9a-f]{64}$/.test(sha256)) return null;
  let name = fileNameOf(url);
  try { name = decodeURIComponent(res.headers.get(H_NAME) ?? '') || name; } catch { /* keep the URL's */ }
  return { url, name, size, sha256, date: res.headers.get(H_DATE) ?? '' };
}

async function hashOf(blob: Blob, signal?: AbortSignal): Promise<string> {
  // crypto.subtle is native and fast but wants the whole buffer: fine for the small files rehashed by default
  if (blob.size <= REHASH_BELOW_BYTES && globalThis.crypto?.subtle) {
    return toHex(new Uint8Array(await crypto.subtle.digest('SHA-256', await blob.arrayBuffer())));
  }
  return sha256Blob(blob, { signal });
}

/** Looks a file up, checks it, and deletes it when it is wrong (see the file comment). */
export async function lookupCached(url: string, expect: { size?: number; sha256?: string } = {}, opts: LookupOptions = {}): Promise<CacheLookup> {
  const cache = await openCache();
  if (!cache) return { kind: 'miss' };
  const key = cacheKey(url);
  const res = await cache.match(key);
  if (!res) return { kind: 'miss' };
  const discard = async (reason: string): Promise<CacheLookup> => {
    await cache.delete(key);
    return { kind: 'discarded', reason: `the cached copy of ${fileNameOf(url)} ${reason}; it was deleted` };
  };
  const meta = metaOf(key, res);
  if (!meta) return discard('has no valid size and SHA-256 record');
  if (expect.size !== undefined && meta.size !== expect.size) return discard(`is ${meta.size} bytes but ${expect.size} are expected`);
  if (expect.sha256 && meta.sha256 !== expect.sha256.toLowerCase()) return discard('is a different version (its SHA-256 differs from the expected one)');
  const blob = await res.blob();
  if (blob.size !== meta.size) return discard(`holds ${blob.size} bytes but its record says ${meta.size}`);
  const verify = opts.verify ?? 'auto';
  if (verify === 'full' || (verify === 'auto' && blob.size <= REHASH_BELOW_BYTES)) {
    const sha = await hashOf(blob, opts.signal);
    if (sha !== meta.sha256) return discard('is damaged (its bytes no longer match its SHA-256)');
  }
  return { kind: 'hit', blob, meta };
}

/**
 * Stores a checked download. Never throws for storage reasons: a full quota (or no Cache Storage)
 * is returned as `{ok: false}` so that the caller keeps the file in memory and tells the user.
 */
export async function putCached(url: string, blob: Blob, meta: { sha256: string; name?: string }): Promise<CachePut> {
  const cache = await openCache();
  if (!cache) return { ok: false, quota: false, reason: 'this browser offers no Cache Storage here (it needs a secure context: https or localhost)' };
  const key = cacheKey(url);
  try {
    const est = await navigator.storage?.estimate?.();
    if (est?.quota !== undefined && est.usage !== undefined && est.quota - est.usage < blob.size) {
      return { ok: false, quota: true, reason: `the browser's storage has ${mibs(est.quota - est.usage)} free but the file takes ${mibs(blob.size)}` };
    }
  } catch { /* no estimate: try anyway */ }
  const headers = new Headers({
    'Content-Type': 'application/octet-stream',
    [H_SIZE]: String(blob.size),
    [H_SHA]: meta.sha256.toLowerCase(),
    [H_DATE]: new Date().toISOString(),
    [H_NAME]: encodeURIComponent(meta.name ?? fileNameOf(url)), // header values must be Latin-1
  });
  try {
    await cache.put(key, new Response(blob, { status: 200, headers }));
    return { ok: true };
  } catch (e) {
    const name = (e as Error)?.name ?? '';
    await cache.delete(key).catch(() => false);
    if (name === 'QuotaExceededError') return { ok: false, quota: true, reason: "the browser's storage quota is full" };
    return { ok: false, quota: false, reason: `the browser refused to store it (${name || 'error'}: ${(e as Error)?.message ?? e})` };
  }
}

/** Every cached file, oldest first. */
export async function listCached(): Promise<CachedFile[]> {
  const cache = await openCache();
  if (!cache) return [];
  const out: CachedFile[] = [];
  for (const req of await cache.keys()) {
    const res = await cache.match(req);
    const meta = res && metaOf(req.url, res);
    if (meta) out.push(meta);
  }
  return out.sort((a, b) => a.date.localeCompare(b.date));
}

/** Deletes one cached file; true when there was one. */
export async function deleteCached(url: string): Promise<boolean> {
  const cache = await openCache();
  return cache ? cache.delete(cacheKey(url)) : false;
}

/** Bytes held by cached files. */
export async function cachedBytes(): Promise<number> {
  return (await listCached()).reduce((a, f) => a + f.size, 0);
}

/** Whether a file is cached (by its record only: cheap, for the preflight and the model picker). */
export async function isCached(url: string, expect: { size?: number; sha256?: string } = {}): Promise<boolean> {
  const cache = await openCache();
  const res = cache && (await cache.match(cacheKey(url)));
  const meta = res && metaOf(cacheKey(url), res);
  return !!meta && (expect.size === undefined || meta.size === expect.size) &&
    (!expect.sha256 || meta.sha256 === expect.sha256.toLowerCase());
}

/** Deletes every cached model file. */
export async function clearCached(): Promise<void> {
  if (typeof caches !== 'undefined') await caches.delete(CACHE_NAME);
}

function mibs(n: number): string {
  return `${(n / 2 ** 20).toFixed(1)} MiB`;
}


const H_CATALOG = 'X-Glassbox-Catalog';

/** Keeps the last good copy of a catalog, so that cached catalog models open offline. */
export async function storeCatalogCopy(url: string, text: string): Promise<void> {
  const cache = await openCache();
  try {
    await cache?.put(cacheKey(url), new Response(text, { headers: { 'Content-Type': 'application/json', [H_CATALOG]: '1' } }));
  } catch { /* a catalog that cannot be kept is fetched again next time */ }
}

/** The last good copy of a catalog, or null. */
export async function cachedCatalogCopy(url: string): Promise<string | null> {
  const cache = await openCache();
  const res = cache && (await cache.match(cacheKey(url)));
  return res && res.headers.get(H_CATALOG) === '1' ? res.text() : null;
}
