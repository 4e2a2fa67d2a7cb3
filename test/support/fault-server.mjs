// A misbehaving file server for the loading tests (web-test-runner middleware): serves a few files
// under /test-files/ with faults chosen by query parameters, and counts requests so that a test can
// prove a load made none.
//
//   /test-files/stories260K.gguf | stories260K.bin | tok512.bin   real models (../shared/models)
//   /test-files/not-a-model.gguf                                 an HTML page with a model's name
//   ?key=K          requests are counted per key: GET /test-files/_count?key=K → {count, ranges}
//   ?drop=N         first request of the key only: send N bytes of the body, then cut the connection
//   ?status=N       answer status N (e.g. 404) with a short text body
//   ?lie=N          announce Content-Length N (e.g. 2000000000), send 1000 bytes, cut the connection
//   ?slow=1         send 16 KiB every 10 ms
//   ?norange=1      ignore Range headers (always 200 with the whole file)
//   ?cut=N          every request of the key stops at byte N of the file (a resumed one sends
//                   nothing past it) and the connection is cut, until GET /test-files/_heal?key=K
// Faults are written to the raw Node response (ctx.respond = false): Koa would not send a
// Content-Length that disagrees with the body.

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { sharedModels } from '../../src/app/local-models.mjs';

export const FAULT_PREFIX = '/test-files/';

const FILES = {
  'stories260K.gguf': () => readFileSync(resolve(sharedModels, 'tinystories-260k/stories260K.gguf')),
  'stories260K.bin': () => readFileSync(resolve(sharedModels, 'tinystories-260k/stories260K.bin')),
  'tok512.bin': () => readFileSync(resolve(sharedModels, 'tinystories-260k/tok512.bin')),
  'not-a-model.gguf': () => Buffer.from(`<!doctype html><html><head><title>404</title></head><body>${'Not a model. '.repeat(1500)}</body></html>`),
};
const cache = new Map();
const stats = new Map();
/** Keys whose ?cut= fault is over (a retry after the "network" came back). */
const healed = new Set();

function fileBytes(name) {
  if (!Object.hasOwn(FILES, name)) return null;
  if (!cache.has(name)) cache.set(name, FILES[name]());
  return cache.get(name);
}

function record(key, range) {
  const s = stats.get(key) ?? { count: 0, ranges: [] };
  s.count++;
  s.ranges.push(range || null);
  stats.set(key, s);
  return s.count;
}

/** Koa middleware for web-test-runner.config.mjs. */
export function koaFaultServer() {
  return async (ctx, next) => {
    if (!ctx.path.startsWith(FAULT_PREFIX)) return next();
    const q = ctx.query;
    const key = String(q.key ?? '');
    if (ctx.path === `${FAULT_PREFIX}_count`) {
      ctx.type = 'application/json';
      ctx.set('Cache-Control', 'no-store');
      ctx.body = JSON.stringify(stats.get(key) ?? { count: 0, ranges: [] });
      return;
    }
    if (ctx.path === `${FAULT_PREFIX}_heal`) {
      healed.add(key);
      ctx.set('Cache-Control', 'no-store');
      ctx.body = 'healed';
      return;
    }
    const bytes = fileBytes(ctx.path.slice(FAULT_PREFIX.length));
    if (!bytes) return next();
    const nth = record(key, ctx.get('range'));
    if (q.status) {
      ctx.status = Number(q.status);
      ctx.set('Cache-Control', 'no-store');
      ctx.body = `status ${q.status} on purpose`;
      return;
    }

    ctx.respond = false;
    const res = ctx.res;
    const headers = {
      'Content-Type': 'application/octet-stream',
      'Cache-Control': 'no-store',
      'Cross-Origin-Resource-Policy': 'same-origin',
      ETag: `"${bytes.length}"`,
    };
    if (q.lie) {
      res.writeHead(200, { ...headers, 'Content-Length': String(q.lie) });
      res.write(bytes.subarray(0, 1000));
      setTimeout(() => res.socket?.destroy(), 30);
      return;
    }
    let status = 200, start = 0, end = bytes.length - 1;
    if (!q.norange) {
      headers['Accept-Ranges'] = 'bytes';
      const m = /^bytes=(\d+)-(\d*)$/.exec(ctx.get('range') ?? '');
      if (m) {
        start = Number(m[1]);
        end = m[2] ? Math.min(Number(m[2]), bytes.length - 1) : bytes.length - 1;
        if (start > end) {
          res.writeHead(416, { ...headers, 'Content-Range': `bytes */${bytes.length}` });
          res.end();
          return;
        }
        status = 206;
        headers['Content-Range'] = `bytes ${start}-${end}/${bytes.length}`;
      }
    }
    const body = bytes.subarray(start, end + 1);
    res.writeHead(status, { ...headers, 'Content-Length': String(body.length) });
    if (q.cut && !healed.has(key)) {
      res.write(body.subarray(0, Math.max(0, Number(q.cut) - start)));
      setTimeout(() => res.socket?.destroy(), 30);
      return;
    }
    if (q.drop && nth === 1) {
      res.write(body.subarray(0, Number(q.drop)));
      setTimeout(() => res.socket?.destroy(), 30);
      return;
    }
    if (q.slow) {
      let off = 0;
      const tick = () => {
        if (res.destroyed || res.writableEnded) return;
        if (off >= body.length) return void res.end();
        res.write(body.subarray(off, off + 16384));
        off += 16384;
        setTimeout(tick, 10);
      };
      tick();
      return;
    }
    res.end(body);
  };
}
