// The model catalog (public/models.json): which models the app offers with one click, where their
// files are on the Hugging Face Hub, how big they are and their SHA-256, so that a download can be
// checked before it is used. A catalog may also come from a stranger (a shared notebook or a link),
// so everything in it is validated: bad entries are dropped with a message naming the field, and
// nothing in it can make the loader fetch a non-https URL or trust an impossible size.

import { ModelFormatError, NetworkError } from '../../engine/errors.ts';

export type ModelFamily = 'llama2' | 'llama3' | 'smollm' | 'tinyllama' | 'tinystories';
export type FileRole = 'model' | 'tokenizer' | 'config';

export interface CatalogFile {
  /** https URL (or a same-origin path beginning with '/'). */
  url: string;
  /** Exact size in bytes. */
  size: number;
  /** SHA-256 of the file, 64 lowercase hex digits. */
  sha256: string;
  /** 'model': weights (opened with the config files); 'tokenizer': the separate tokenizer file. */
  role: FileRole;
}

/** Hyperparameters known before download, for the preflight (KV cache size, GPU limits). */
export interface CatalogShape {
  layers: number;
  dModel: number;
  dFfn?: number;
  heads: number;
  kvHeads: number;
  /** When not dModel / heads. */
  dHead?: number;
  vocab: number;
  /** Context the model was trained for. */
  ctx?: number;
}

export interface CatalogEntry {
  id: string;
  name: string;
  family: ModelFamily;
  files: CatalogFile[];
  /** License name; shown to the user before download. */
  license: string;
  description: string;
  /** The model the app opens when none is named (exactly one entry). */
  default?: true;
  format?: 'gguf' | 'safetensors' | 'llama2c';
  /** Weight type as people say it ('Q8_0', 'Q4_K_M', 'BF16'). */
  quant?: string;
  shape?: CatalogShape;
}

export interface Catalog {
  version: 1;
  models: CatalogEntry[];
}

/** The largest file size a catalog may declare (a sanity bound; the preflight judges what fits). */
export const MAX_CATALOG_FILE_BYTES = 64 * 2 ** 30;
const MAX_ENTRIES = 1000;
const MAX_FILES = 32;
const FAMILIES: readonly ModelFamily[] = ['llama2', 'llama3', 'smollm', 'tinyllama', 'tinystories'];
const ROLES: readonly FileRole[] = ['model', 'tokenizer', 'config'];
const FORMATS = ['gguf', 'safetensors', 'llama2c'] as const;
const ID = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$/;
const SHA256 = /^[0-9a-fA-F]{64}$/;

/**
 * Why `url` may not be fetched for a catalog, or null when it may: https only (or a same-origin
 * path), no credentials, a sane length.
 */
export function catalogUrlProblem(url: unknown): string | null {
  if (typeof url !== 'string' || url.length === 0) return 'must be a non-empty string';
  if (url.length > 2048) return `is ${url.length} characters long (at most 2048)`;
  if (url.startsWith('/') && !url.startsWith('//') && !url.includes('\\')) return null; // same origin
  let u: URL;
  try { u = new URL(url); } catch { return `is not a valid URL: ${JSON.stringify(url.slice(0, 100))}`; }
  if (u.protocol !== 'https:') return `must be an https URL, not ${u.protocol.replace(':', '')}`;
  if (u.username || u.password) return 'must not contain a user name or password';
  return null;
}

type Problems = string[];

function str(v: unknown, where: string, problems: Problems, max: number, optional = false): string | undefined {
  if (v === undefined && optional) return undefined;
  if (typeof v !== 'string' || v.trim().length === 0) { problems.push(`${where}: must be a non-empty string`); return undefined; }
  if (v.length > max) { problems.push(`${where}: is ${v.length} characters long (at most ${max})`); return undefined; }
  return v;
}

function posInt(v: unknown, where: string, problems: Problems, max: number): number | undefined {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0 || v > max) {
    problems.push(`${where}: must be a whole number from 1 to ${max}, got ${JSON.stringify(v)?.slice(0, 40)}`);
    return undefined;
  }
  return v;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function validateFile(v: unknown, where: string, problems: Problems): CatalogFile | undefined {
  if (!isObject(v)) { problems.push(`${where}: must be an object {url, size, sha256, role}`); return undefined; }
  const n = problems.length;
  const urlProblem = catalogUrlProblem(v.url);
  if (urlProblem) problems.push(`${where}.url: ${urlProblem}`);
  const size = posInt(v.size, `${where}.size`, problems, MAX_CATALOG_FILE_BYTES);
  if (typeof v.sha256 !== 'string' || !SHA256.test(v.sha256)) problems.push(`${where}.sha256: must be 64 hex digits`);
  if (!ROLES.includes(v.role as FileRole)) problems.push(`${where}.role: must be one of ${ROLES.join(', ')}, got ${JSON.stringify(v.role)?.slice(0, 40)}`);
  if (problems.length > n) return undefined;
  return { url: v.url as string, size: size!, sha256: (v.sha256 as string).toLowerCase(), role: v.role as FileRole };
}

function validateShape(v: unknown, where: string, problems: Problems): CatalogShape | undefined {
  if (!isObject(v)) { problems.push(`${where}: must be an object`); return undefined; }
  const n = problems.length;
  const dim = (k: string, optional = false) =>
    (optional && v[k] === undefined ? undefined : posInt(v[k], `${where}.${k}`, problems, 1 << 24));
  const shape: CatalogShape = {
    layers: dim('layers')!, dModel: dim('dModel')!, heads: dim('heads')!, kvHeads: dim('kvHeads')!, vocab: dim('vocab')!,
  };
  const dFfn = dim('dFfn', true), ctx = dim('ctx', true), dHead = dim('dHead', true);
  if (dFfn !== undefined) shape.dFfn = dFfn;
  if (dHead !== undefined) shape.dHead = dHead;
  if (ctx !== undefined) shape.ctx = ctx;
  if (problems.length > n) return undefined;
  if ((shape.dHead === undefined && shape.dModel % shape.heads !== 0) || shape.heads % shape.kvHeads !== 0) {
    problems.push(`${where}: dModel must be a multiple of heads (or dHead given), and heads a multiple of kvHeads`);
    return undefined;
  }
  return shape;
}

/** Validates one entry (from a catalog, or named by a notebook); `problems` collects what is wrong. */
export function validateEntry(v: unknown, where: string, problems: Problems): CatalogEntry | undefined {
  if (!isObject(v)) { problems.push(`${where}: must be an object`); return undefined; }
  const n = problems.length;
  const id = typeof v.id === 'string' && ID.test(v.id) ? v.id : undefined;
  if (id === undefined) problems.push(`${where}.id: must be 1-100 letters, digits, '.', '_', '+' or '-'`);
  const name = str(v.name, `${where}.name`, problems, 200);
  if (!FAMILIES.includes(v.family as ModelFamily)) problems.push(`${where}.family: must be one of ${FAMILIES.join(', ')}`);
  const license = str(v.license, `${where}.license`, problems, 200);
  const description = str(v.description, `${where}.description`, problems, 4000);
  const files: CatalogFile[] = [];
  if (!Array.isArray(v.files) || v.files.length === 0 || v.files.length > MAX_FILES) {
    problems.push(`${where}.files: must be a list of 1 to ${MAX_FILES} files`);
  } else {
    v.files.forEach((f, i) => { const ok = validateFile(f, `${where}.files[${i}]`, problems); if (ok) files.push(ok); });
    if (files.length === v.files.length && !files.some((f) => f.role === 'model')) problems.push(`${where}.files: no file has role 'model'`);
  }
  if (v.default !== undefined && v.default !== true) problems.push(`${where}.default: must be true or absent`);
  if (v.format !== undefined && !FORMATS.includes(v.format as never)) problems.push(`${where}.format: must be one of ${FORMATS.join(', ')}`);
  const quant = str(v.quant, `${where}.quant`, problems, 40, true);
  const shape = v.shape === undefined ? undefined : validateShape(v.shape, `${where}.shape`, problems);
  if (problems.length > n) return undefined;
  // a new object with known keys only: nothing else from the input is kept
  const entry: CatalogEntry = { id: id!, name: name!, family: v.family as ModelFamily, files, license: license!, description: description! };
  if (v.default === true) entry.default = true;
  if (v.format !== undefined) entry.format = v.format as CatalogEntry['format'];
  if (quant !== undefined) entry.quant = quant;
  if (shape !== undefined) entry.shape = shape;
  return entry;
}

/**
 * Validates a parsed catalog. Entries with problems are dropped and each problem is listed; a
 * catalog that is not `{models: [...]}` at all is refused with ModelFormatError.
 */
export function validateCatalog(data: unknown, where = 'models.json'): { catalog: Catalog; problems: string[] } {
  const list = Array.isArray(data) ? data : isObject(data) ? data.models : undefined;
  if (!Array.isArray(list)) throw new ModelFormatError(where, 'is not a model catalog: expected {"models": [...]}', 'Check the catalog URL');
  if (list.length > MAX_ENTRIES) throw new ModelFormatError(where, `lists ${list.length} models (at most ${MAX_ENTRIES})`, 'Split the catalog');
  const problems: string[] = [];
  const models: CatalogEntry[] = [];
  const seen = new Set<string>();
  let hasDefault = false;
  list.forEach((v, i) => {
    const e = validateEntry(v, `models[${i}]`, problems);
    if (!e) return;
    if (seen.has(e.id.toLowerCase())) { problems.push(`models[${i}].id: ${e.id} is listed twice; the later entry is dropped`); return; }
    seen.add(e.id.toLowerCase());
    if (e.default) {
      if (hasDefault) { problems.push(`models[${i}].default: only one model can be the default; ${e.id} is not`); delete e.default; }
      hasDefault = true;
    }
    models.push(e);
  });
  return { catalog: { version: 1, models }, problems: problems.map((p) => `${where}: ${p}`) };
}

/** Fetches and validates a catalog. Problems with single entries are returned, not thrown. */
export async function loadCatalog(url = '/models.json', opts: { fetch?: typeof fetch; signal?: AbortSignal } = {}): Promise<Catalog & { problems: string[] }> {
  const f = opts.fetch ?? globalThis.fetch.bind(globalThis);
  let res: Response;
  try {
    res = await f(url, { signal: opts.signal, referrerPolicy: 'no-referrer' });
  } catch (e) {
    if (opts.signal?.aborted) throw opts.signal.reason;
    throw new NetworkError(url, `the model catalog could not be fetched (${(e as Error).message})`);
  }
  if (!res.ok) throw new NetworkError(url, `the model catalog could not be fetched: the server answered ${res.status} ${res.statusText}`.trim());
  const len = Number(res.headers.get('Content-Length') ?? 0);
  if (len > 4 << 20) {
    await res.body?.cancel();
    throw new ModelFormatError(url, `is ${len} bytes long; a catalog is at most 4 MiB`);
  }
  return parseCatalog(await res.text(), url);
}

/** Parses and validates a catalog's text (at most 4 MiB). */
export function parseCatalog(text: string, where = 'models.json'): Catalog & { problems: string[] } {
  if (text.length > 4 << 20) throw new ModelFormatError(where, `is ${text.length} characters long; a catalog is at most 4 MiB`);
  let data: unknown;
  try { data = JSON.parse(text); } catch (e) {
    throw new ModelFormatError(where, `is not valid JSON (${(e as Error).message})`);
  }
  const { catalog, problems } = validateCatalog(data, where);
  return { ...catalog, problems };
}

/** The entry with this id (case-insensitive), or undefined. */
export function findEntry(catalog: Catalog, id: string): CatalogEntry | undefined {
  const want = id.toLowerCase();
  return catalog.models.find((e) => e.id.toLowerCase() === want);
}

/** The default entry (the first model when none is marked). */
export function defaultEntry(catalog: Catalog): CatalogEntry | undefined {
  return catalog.models.find((e) => e.default) ?? catalog.models[0];
}

/** Total bytes of an entry's files. */
export function entryBytes(entry: CatalogEntry): number {
  return entry.files.reduce((a, f) => a + f.size, 0);
}

/** The file name a URL ends with ('stories15M-q8_0.gguf'). */
export function fileNameOf(url: string): string {
  const path = url.replace(/[?#].*$/, '');
  const last = path.slice(path.lastIndexOf('/') + 1);
  try { return decodeURIComponent(last) || url; } catch { return last || url; }
}
