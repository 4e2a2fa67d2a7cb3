// From "what the user asked for" (a ModelSource) to ByteSources that openModel reads:
//   catalog, url → the browser's cache, else a checked download (then cached) → Blob-backed sources
//   files       → the user's File objects as Blob sources (never copied)
//   local       → the dev server's /models/local/ through range requests (nothing cached)
// A model file's first bytes are checked as soon as they arrive, so a web page or a wrong file is
// refused without being downloaded whole or cached.

import { ModelFormatError, NetworkError, UsageError } from '../../engine/errors.ts';
import { detectFormat } from '../../formats/open.ts';
import { blobSource, urlSource, type ByteSource } from '../../formats/source.ts';
import { cachedCatalogCopy, isCached, lookupCached, putCached, storeCatalogCopy, type LookupOptions } from './cache.ts';
import { catalogUrlProblem, fileNameOf, findEntry, loadCatalog, parseCatalog, type Catalog, type CatalogEntry, type FileRole } from './catalog.ts';
import { download, type DownloadOptions } from './download.ts';
import { groupModelFiles } from './group.ts';
import { preflight, type PreflightCaps, type PreflightReport } from './preflight.ts';
import type { ModelSource, ProgressCallback } from './types.ts';

export type { ModelSource } from './types.ts';

export const LOCAL_PREFIX = '/models/local/';

export interface ResolveOptions {
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
  fetch?: typeof fetch;
  /** The catalog, or its URL (default '/models.json', fetched once per URL). */
  catalog?: Catalog | string;
  /** Use the browser's cache (default true). */
  cache?: boolean;
  /** How cached files are checked (cache.ts; default 'auto'). */
  verifyCache?: LookupOptions['verify'];
  /** Retry and timing settings passed to download() (tests make them short). */
  download?: Pick<DownloadOptions, 'retries' | 'retryDelayMs' | 'maxRetryDelayMs' | 'stallMs' | 'maxBytes' | 'progressIntervalMs'>;
}

export interface ResolvedModel {
  /** The model's files for openModel (weights and side files). */
  sources: ByteSource[];
  /** The separate tokenizer (llama2.c tokenizer.bin, or a Hugging Face tokenizer.json). */
  tokenizer?: ByteSource;
  /** Stable identity of what was loaded ('catalog:stories15M', 'url:https://…'): the same source gives the same key. */
  key: string;
  /** What to call it on the page. */
  label: string;
  /** Things the user should know that did not stop the load (not cached, cache entry replaced). */
  warnings: string[];
  /** The catalog entry (its license must be shown), when the source was one. */
  entry?: CatalogEntry;
  /** Bytes that came over the network, and whether every file came from the cache. */
  downloadedBytes: number;
  fromCache: boolean;
}

const catalogs = new Map<string, Promise<Catalog>>();

/**
 * The catalog at `url`; when the network fails, the last good copy kept in the browser's cache
 * (so that cached catalog models open offline), with a problem saying so.
 */
export async function loadCatalogOrCopy(url: string, opts: { fetch?: typeof fetch; signal?: AbortSignal } = {}): Promise<Catalog & { problems: string[] }> {
  try {
    const c = await loadCatalog(url, opts);
    await storeCatalogCopy(url, JSON.stringify({ version: c.version, models: c.models }));
    return c;
  } catch (e) {
    if (!(e instanceof NetworkError)) throw e;
    const text = await cachedCatalogCopy(url);
    if (text === null) throw e;
    const c = parseCatalog(text, url);
    return { ...c, problems: [...c.problems, `${url}: could not be fetched (${e.message}); using the copy kept from an earlier visit`] };
  }
}

/** The catalog at `url`, fetched once (a failed fetch is not remembered). */
export function catalogAt(url: string, opts: { fetch?: typeof fetch; signal?: AbortSignal } = {}): Promise<Catalog> {
  let p = catalogs.get(url);
  if (!p) {
    p = loadCatalogOrCopy(url, opts);
    catalogs.set(url, p);
    p.catch(() => catalogs.delete(url));
  }
  return p;
}

function origin(): string | undefined {
  return (globalThis as { location?: { origin: string } }).location?.origin;
}

/** Why a URL given by the user may not be downloaded, or null: https, or this page's own origin. */
function urlProblem(url: string): string | null {
  const base = origin();
  if (base) {
    try { if (new URL(url, base).origin === base) return null; } catch { /* reported below */ }
  }
  return catalogUrlProblem(url);
}

/** Refuses a file that is not a model as soon as its first bytes are in. */
async function checkModelHead(name: string, head: Uint8Array, total: number | null): Promise<void> {
  const size = total ?? head.length;
  const src: ByteSource = {
    name, size,
    async read(offset, length) {
      if (offset + length > head.length) throw new ModelFormatError(name, 'is too short to be a model file');
      return head.subarray(offset, offset + length);
    },
  };
  const kind = await detectFormat(src);
  if (kind === 'json') throw new ModelFormatError(name, 'is a JSON file, not model weights', 'Give the URL of the .gguf, .safetensors or .bin file');
}

interface FileRequest { url: string; size?: number; sha256?: string; role: FileRole; name?: string }

/** One file from the cache, or downloaded, checked and cached. */
export async function obtainFile(file: FileRequest, opts: ResolveOptions & { fileIndex?: number; fileCount?: number } = {}):
  Promise<{ source: ByteSource; fromCache: boolean; downloadedBytes: number; warnings: string[] }> {
  const name = file.name ?? fileNameOf(file.url);
  const warnings: string[] = [];
  const useCache = opts.cache !== false;
  if (useCache) {
    const hit = await lookupCached(file.url, { size: file.size, sha256: file.sha256 }, { verify: opts.verifyCache, signal: opts.signal });
    if (hit.kind === 'hit') {
      opts.onProgress?.({
        file: name, received: hit.blob.size, total: hit.blob.size, rateBytesPerS: 0, etaS: 0, phase: 'cache',
        ...(opts.fileIndex !== undefined ? { fileIndex: opts.fileIndex, fileCount: opts.fileCount } : {}),
      });
      return { source: blobSource(hit.blob, name), fromCache: true, downloadedBytes: 0, warnings };
    }
    if (hit.kind === 'discarded') warnings.push(`${hit.reason} and downloaded again`);
  }
  let got;
  try {
    got = await download(file.url, {
      ...opts.download,
      name, size: file.size, sha256: file.sha256,
      onProgress: opts.onProgress, signal: opts.signal, fetch: opts.fetch,
      fileIndex: opts.fileIndex, fileCount: opts.fileCount,
      check: file.role === 'model' ? (head, total) => checkModelHead(name, head, total) : undefined,
    });
  } catch (e) {
    if (file.role === 'tokenizer' && e instanceof NetworkError) {
      throw new NetworkError(file.url, `the tokenizer ${name} could not be downloaded (${e.message})`,
        `Download ${name} yourself${file.url.includes('githubusercontent') ? ' from github.com/karpathy/llama2.c' : ''} and open it together with the model file`);
    }
    throw e;
  }
  if (useCache) {
    const put = await putCached(file.url, got.blob, { sha256: got.sha256, name });
    if (!put.ok) {
      warnings.push(`${name} was not saved for offline use: ${put.reason}. It is loaded for this session only` +
        (put.quota ? '; free space by deleting cached models' : ''));
    }
  }
  return { source: blobSource(got.blob, name), fromCache: false, downloadedBytes: got.size, warnings };
}

/** Turns a model source into ByteSources for openModel (see the file comment). */
export async function resolveModelSource(source: ModelSource, opts: ResolveOptions = {}): Promise<ResolvedModel> {
  opts.signal?.throwIfAborted();
  switch (source?.kind) {
    case 'catalog': return resolveCatalog(source.id, opts);
    case 'url': return resolveUrl(source, opts);
    case 'files': return resolveFiles(source.files);
    case 'local': return resolveLocal(source.paths, opts);
    default: throw new UsageError('model source', `unknown kind ${JSON.stringify((source as { kind?: unknown })?.kind)}`, "Use 'catalog', 'url', 'files' or 'local'");
  }
}

async function resolveCatalog(id: string, opts: ResolveOptions): Promise<ResolvedModel> {
  const catalog = typeof opts.catalog === 'object' ? opts.catalog
    : await catalogAt(opts.catalog ?? '/models.json', { fetch: opts.fetch, signal: opts.signal });
  const entry = typeof id === 'string' ? findEntry(catalog, id) : undefined;
  if (!entry) {
    throw new UsageError(`model ${JSON.stringify(String(id).slice(0, 100))}`, 'is not in the model catalog',
      `Known models: ${catalog.models.map((m) => m.id).join(', ')}`);
  }
  const warnings: string[] = [];
  const sources: ByteSource[] = [];
  let tokenizer: ByteSource | undefined;
  let downloadedBytes = 0, fromCache = true;
  for (const [i, f] of entry.files.entries()) {
    const got = await obtainFile(f, { ...opts, fileIndex: i, fileCount: entry.files.length });
    warnings.push(...got.warnings);
    downloadedBytes += got.downloadedBytes;
    fromCache &&= got.fromCache;
    if (f.role === 'tokenizer' && !tokenizer) tokenizer = got.source;
    else sources.push(got.source);
  }
  const r: ResolvedModel = { sources, key: `catalog:${entry.id}`, label: entry.name, warnings, entry, downloadedBytes, fromCache };
  if (tokenizer) r.tokenizer = tokenizer;
  return r;
}

async function resolveUrl(source: { url: string; sha256?: string; size?: number }, opts: ResolveOptions): Promise<ResolvedModel> {
  const { url, sha256, size } = source;
  if (typeof url !== 'string') throw new UsageError('model url', 'is not a string');
  const problem = urlProblem(url);
  if (problem) throw new UsageError(url.slice(0, 200), `cannot be downloaded: it ${problem}`, 'Give an https URL');
  if (sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(sha256)) throw new UsageError('sha256', `${String(sha256).slice(0, 80)} is not 64 hex digits`);
  if (size !== undefined && (!Number.isSafeInteger(size) || size <= 0)) throw new UsageError('size', `${size} is not a positive whole number of bytes`);
  const got = await obtainFile({ url, sha256, size, role: 'model' }, { ...opts, fileIndex: 0, fileCount: 1 });
  return {
    sources: [got.source], key: `url:${url}`, label: fileNameOf(url), warnings: got.warnings,
    downloadedBytes: got.downloadedBytes, fromCache: got.fromCache,
  };
}

function resolveFiles(files: File[]): ResolvedModel {
  if (!Array.isArray(files) || files.length === 0 || !files.every((f) => f instanceof Blob && typeof f.name === 'string')) {
    throw new UsageError('files', 'no files were given', 'Pick or drop the model file (and its tokenizer or config.json)');
  }
  const g = groupModelFiles(files);
  if (g.models.length === 0) {
    throw new UsageError(files.map((f) => f.name).join(', '), 'holds only tokenizer or config files, no model weights',
      'Add the .gguf, .safetensors or .bin file');
  }
  const r: ResolvedModel = {
    sources: g.sources.map((f) => blobSource(f, f.name)),
    key: `files:${files.map((f) => `${f.name}:${f.size}:${f.lastModified}`).join('|')}`,
    label: [...g.models, ...(g.tokenizer ? [g.tokenizer] : [])].map((f) => f.name).join(' + '),
    warnings: [], downloadedBytes: 0, fromCache: false,
  };
  if (g.tokenizer) r.tokenizer = blobSource(g.tokenizer, g.tokenizer.name);
  return r;
}

async function resolveLocal(paths: string[], opts: ResolveOptions): Promise<ResolvedModel> {
  if (!Array.isArray(paths) || paths.length === 0 || !paths.every((p) => typeof p === 'string' && p.length > 0)) {
    throw new UsageError('local model', 'no paths were given', `Name files under ${LOCAL_PREFIX}`);
  }
  const urls = paths.map((p) => {
    const url = p.startsWith('/') ? p : `${LOCAL_PREFIX}${p}`;
    // same origin only: these are the dev server's files, read without caching
    if (url.startsWith('//') || /(^|\/)\.\.(\/|$)/.test(url)) throw new UsageError(p, 'is not a path on this server');
    return url;
  });
  const sources: { name: string; src: ByteSource }[] = [];
  for (const url of urls) {
    opts.signal?.throwIfAborted();
    const src = await urlSource(url);
    sources.push({ name: src.name, src });
  }
  const g = groupModelFiles(sources);
  if (g.models.length === 0) throw new UsageError(paths.join(', '), 'names no model weights', 'Add the .gguf, .safetensors or .bin file');
  const r: ResolvedModel = {
    sources: g.sources.map((s) => s.src),
    key: `local:${urls.join('|')}`,
    label: paths.join(' + '),
    warnings: [], downloadedBytes: 0, fromCache: false,
  };
  if (g.tokenizer) r.tokenizer = g.tokenizer.src;
  return r;
}

/**
 * The preflight of a source before anything is downloaded: a catalog entry from its declared
 * sizes (files already cached need no download), a URL with a declared size, picked files from
 * their sizes. Null when nothing is known before the headers are read (a URL without a size, local
 * paths): call preflight(model) once openModel has read them.
 */
export async function preflightSource(source: ModelSource, caps: PreflightCaps = {},
  opts: Pick<ResolveOptions, 'catalog' | 'fetch' | 'signal'> = {}): Promise<PreflightReport | null> {
  switch (source?.kind) {
    case 'catalog': {
      const catalog = typeof opts.catalog === 'object' ? opts.catalog
        : await catalogAt(opts.catalog ?? '/models.json', { fetch: opts.fetch, signal: opts.signal });
      const entry = findEntry(catalog, source.id);
      if (!entry) return null;
      const cached: string[] = [];
      for (const f of entry.files) if (await isCached(f.url, f)) cached.push(f.url);
      return preflight(entry, caps, { cachedUrls: cached });
    }
    case 'url': {
      if (source.size === undefined) return null;
      const cached = await isCached(source.url, { size: source.size, sha256: source.sha256 });
      return preflight({ downloadBytes: cached ? 0 : source.size, weightBytes: source.size, files: 1 }, caps);
    }
    case 'files': {
      const g = groupModelFiles(source.files ?? []);
      return preflight({ downloadBytes: 0, weightBytes: g.models.reduce((a, f) => a + f.size, 0) }, caps);
    }
    default:
      return null;
  }
}
