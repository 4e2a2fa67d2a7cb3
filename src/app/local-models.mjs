// Serves ../shared/models under /models/local/ for the dev server (Vite) and the browser tests
// (web-test-runner), so that the app has real models offline. Range requests are honoured: the
// app reads models in pieces. Plain Node, shared by vite.config.ts and web-test-runner.config.mjs.

import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export const LOCAL_PREFIX = '/models/local/';
const repoRoot = resolve(fileURLToPath(import.meta.url), '../../..');
export const sharedModels = process.env.GLASSBOX_MODELS ?? resolve(repoRoot, '../shared/models');

/** The file a /models/local/ URL names, or null (outside the folder, missing, or not a file). */
export function localModelPath(urlPath) {
  if (!urlPath.startsWith(LOCAL_PREFIX) || !existsSync(sharedModels)) return null;
  let rel;
  try { rel = decodeURIComponent(urlPath.slice(LOCAL_PREFIX.length).split('?')[0]); } catch { return null; }
  const file = resolve(sharedModels, rel);
  if (!file.startsWith(sharedModels + sep)) return null;
  try { return statSync(file).isFile() ? file : null; } catch { return null; }
}

/** Bytes per read of a model file: the streams' default 64 KiB made a 4 MiB range cost about 60
 *  reads and writes, and a model load hundreds of such ranges. */
const STREAM_CHUNK = 1 << 20;

/** Status, headers and body stream for a GET of `file` with an optional Range header. */
export function fileResponse(file, rangeHeader) {
  const size = statSync(file).size;
  const headers = {
    'Accept-Ranges': 'bytes',
    'Content-Type': 'application/octet-stream',
    'Cross-Origin-Resource-Policy': 'same-origin',
    'Cache-Control': 'no-cache',
  };
  const m = /^bytes=(\d*)-(\d*)$/.exec(rangeHeader ?? '');
  if (m && (m[1] !== '' || m[2] !== '')) {
    let start = m[1] === '' ? size - Number(m[2]) : Number(m[1]);
    let end = m[1] === '' || m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (start < 0) start = 0;
    if (start > end || start >= size) {
      return { status: 416, headers: { ...headers, 'Content-Range': `bytes */${size}` }, body: null };
    }
    return {
      status: 206,
      headers: { ...headers, 'Content-Range': `bytes ${start}-${end}/${size}`, 'Content-Length': String(end - start + 1) },
      body: createReadStream(file, { start, end, highWaterMark: STREAM_CHUNK }),
    };
  }
  return { status: 200, headers: { ...headers, 'Content-Length': String(size) }, body: createReadStream(file, { highWaterMark: STREAM_CHUNK }) };
}

/** The list of local models, for /models/local/index.json: [{path, bytes}]. */
export function localModelIndex() {
  if (!existsSync(sharedModels)) return [];
  const out = [];
  const walk = (dir, prefix) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name), `${prefix}${e.name}/`);
      else if (/\.(gguf|bin|safetensors|json|model)$/.test(e.name)) {
        out.push({ path: `${prefix}${e.name}`, bytes: statSync(join(dir, e.name)).size });
      }
    }
  };
  walk(sharedModels, '');
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

function isIndex(urlPath) {
  return urlPath.split('?')[0] === `${LOCAL_PREFIX}index.json`;
}

/** Connect-style middleware (Vite). */
export function connectLocalModels() {
  return (req, res, next) => {
    if (isIndex(req.url ?? '')) {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cross-Origin-Resource-Policy': 'same-origin' });
      return res.end(JSON.stringify(localModelIndex()));
    }
    const file = localModelPath(req.url ?? '');
    if (!file) return next();
    const r = fileResponse(file, req.headers.range);
    res.writeHead(r.status, r.headers);
    if (r.body && req.method !== 'HEAD') r.body.pipe(res); else res.end();
  };
}

/** Koa-style middleware (web-test-runner). */
export function koaLocalModels() {
  return async (ctx, next) => {
    if (isIndex(ctx.path)) {
      ctx.type = 'application/json';
      ctx.body = JSON.stringify(localModelIndex());
      return;
    }
    const file = localModelPath(ctx.path);
    if (!file) return next();
    const r = fileResponse(file, ctx.get('range'));
    ctx.status = r.status;
    ctx.set(r.headers);
    ctx.body = r.body ?? '';
  };
}

/** Cross-origin isolation, so that SharedArrayBuffer (threads) is available to the page. */
export const ISOLATION_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

/**
 * The site's content security policy (ROBUSTNESS.md, "Content security policy", says why each
 * directive). No inline script and no eval: script only from this origin, plus
 * 'wasm-unsafe-eval', which lets WebAssembly compile (the CPU kernels) and allows no JavaScript
 * eval. Styles may be inline: Lit's templates and the figures' SVG carry style attributes, and CSS
 * cannot run script. Models and notebooks download from any https host (the catalog, ?model=,
 * ?notebook=); prose images may come from any https host; exports are blob: and data: images.
 */
export const CSP_DIRECTIVES = {
  'default-src': ["'self'"],
  'script-src': ["'self'", "'wasm-unsafe-eval'"],
  'worker-src': ["'self'"],
  'style-src': ["'self'", "'unsafe-inline'"],
  'img-src': ["'self'", 'data:', 'blob:', 'https:'],
  'connect-src': ["'self'", 'https:'],
  'font-src': ["'self'", 'data:'],
  'object-src': ["'none'"],
  'frame-src': ["'none'"],
  'base-uri': ["'none'"],
  'form-action': ["'none'"],
  // Header only: a <meta> policy ignores frame-ancestors.
  'frame-ancestors': ["'none'"],
};

/** The policy as a header value (`meta`: without the directives a <meta> policy ignores). */
export function contentSecurityPolicy({ meta = false } = {}) {
  return Object.entries(CSP_DIRECTIVES)
    .filter(([k]) => !(meta && k === 'frame-ancestors'))
    .map(([k, v]) => `${k} ${v.join(' ')}`).join('; ');
}

/** What the site sends with every response (`npm start`, `vite preview`): isolation and the CSP.
 *  (The browser tests keep ISOLATION_HEADERS only: web-test-runner's pages run inline script.) */
export const SITE_HEADERS = {
  ...ISOLATION_HEADERS,
  'Content-Security-Policy': contentSecurityPolicy(),
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};
