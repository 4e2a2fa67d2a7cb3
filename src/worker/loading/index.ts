// Model loading for the worker (issue 5): the catalog, checked and resumable downloads, the
// browser cache, the preflight, and resolveModelSource, which turns what the user asked for into
// ByteSources for openModel. See README.md.
export type { ModelSource, DownloadProgress, ProgressCallback } from './types.ts';
export { resolveModelSource, preflightSource, obtainFile, catalogAt, loadCatalogOrCopy, type ResolveOptions, type ResolvedModel } from './resolve.ts';
export { loadCatalog, parseCatalog, validateCatalog, validateEntry, findEntry, defaultEntry, entryBytes, fileNameOf,
  type Catalog, type CatalogEntry, type CatalogFile, type CatalogShape, type ModelFamily, type FileRole } from './catalog.ts';
export { download, type DownloadOptions, type Downloaded } from './download.ts';
export { listCached, deleteCached, cachedBytes, isCached, clearCached, lookupCached, putCached, CACHE_NAME, type CachedFile } from './cache.ts';
export { preflight, sizesFromEntry, sizesFromModel, deviceMemoryBytes, type PreflightCaps, type PreflightReport, type PreflightSizes } from './preflight.ts';
export { groupModelFiles, isTokenizerFile, type FileGroup } from './group.ts';
export { Sha256, sha256Hex, sha256Blob } from './sha256.ts';
