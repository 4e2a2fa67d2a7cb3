// download() against a scripted fetch: the protocol cases a real server rarely shows on demand —
// a body longer than declared, a resume at the wrong offset, a stalled connection, a changed file,
// a lying Content-Range — each refused or recovered as it should, without reading more than needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { download, parseContentRange } from '../../src/worker/loading/download.ts';
import { Rng } from '../../src/engine/random.ts';

const rng = new Rng(5);
const FILE = Uint8Array.from({ length: 200_003 }, () => rng.int(256));
const SHA = createHash('sha256').update(FILE).digest('hex');

interface Scripted { status?: number; headers?: Record<string, string>; body?: Uint8Array; chunk?: number; cutAfter?: number; stallAfter?: number }

/** A fetch whose answers come from `script(requestIndex, rangeStart)`; records every request. */
function scriptedFetch(script: (i: number, rangeStart: number | null) => Scripted) {
  const requests: (string | null)[] = [];
  let pulled = 0;
  const f = (async (_url: string, init: RequestInit = {}) => {
    const range = (init.headers as Record<string, string> | undefined)?.Range ?? null;
    requests.push(range);
    const start = range ? Number(/bytes=(\d+)-/.exec(range)![1]) : null;
    const s = script(requests.length - 1, start);
    const body = s.body ?? new Uint8Array(0);
    const chunk = s.chunk ?? 10_000;
    let off = 0;
    const stream = new ReadableStream<Uint8Array>({
      async pull(ctl) {
        pulled++;
        if (s.cutAfter !== undefined && off >= s.cutAfter) return ctl.error(new TypeError('network error'));
        if (s.stallAfter !== undefined && off >= s.stallAfter) {
          await new Promise<void>((resolve) => init.signal?.addEventListener('abort', () => resolve()));
          return ctl.error(init.signal!.reason);
        }
        if (off >= body.length) return ctl.close();
        ctl.enqueue(body.slice(off, off + chunk));
        off += chunk;
      },
    });
    return new Response(stream, { status: s.status ?? 200, headers: s.headers });
  }) as unknown as typeof fetch;
  return { f, requests, pulled: () => pulled };
}

const whole = (extra: Record<string, string> = {}): Scripted => ({ body: FILE, headers: { 'Content-Length': String(FILE.length), ...extra } });
const part = (start: number, total = FILE.length): Scripted => ({
  status: 206, body: FILE.subarray(start),
  headers: { 'Content-Range': `bytes ${start}-${FILE.length - 1}/${total}`, 'Content-Length': String(FILE.length - start) },
});
async function failure(p: Promise<unknown>): Promise<Error> {
  try { await p; } catch (e) { return e as Error; }
  throw new Error('expected a failure');
}
const fast = { retryDelayMs: 1, maxRetryDelayMs: 2 };

test('download: resumes after a cut, with the bytes and hash of the whole file', async () => {
  const s = scriptedFetch((i, start) => (i === 0 ? { ...whole(), cutAfter: 70_000 } : part(start!)));
  const got = await download('https://x.test/m.gguf', { ...fast, fetch: s.f, size: FILE.length, sha256: SHA });
  assert.deepEqual(s.requests, [null, 'bytes=70000-']);
  assert.equal(got.sha256, SHA);
  assert.deepEqual(new Uint8Array(await got.blob.arrayBuffer()), FILE);
  assert.equal(got.resumed, 1);
});

test('download: a file larger than one Blob part (16 MiB) comes back whole', async () => {
  const big = new Uint8Array(24 << 20);
  for (let i = 0; i < big.length; i += 4096) big.set(FILE.subarray(0, 4096), i);
  const sha = createHash('sha256').update(big).digest('hex');
  const s = scriptedFetch(() => ({ body: big, chunk: 1 << 20, headers: { 'Content-Length': String(big.length) } }));
  const got = await download('https://x.test/big.gguf', { fetch: s.f, size: big.length, sha256: sha });
  assert.equal(got.blob.size, big.length);
  assert.equal(createHash('sha256').update(new Uint8Array(await got.blob.arrayBuffer())).digest('hex'), sha);
});

test('download: a resume at the wrong offset, or of a changed file, starts over', async () => {
  const wrongStart = scriptedFetch((i) => (i === 0 ? { ...whole(), cutAfter: 50_000 } : i === 1 ? part(10_000) : whole()));
  const a = await download('https://x.test/m.gguf', { ...fast, fetch: wrongStart.f });
  assert.deepEqual(wrongStart.requests, [null, 'bytes=50000-', null]);
  assert.equal(a.sha256, SHA);
  const changed = scriptedFetch((i, start) => (i === 0 ? { ...whole({ ETag: '"v1"' }), cutAfter: 50_000 }
    : i === 1 ? { ...part(start!), headers: { ...part(start!).headers, ETag: '"v2"' } } : whole({ ETag: '"v2"' })));
  const b = await download('https://x.test/m.gguf', { ...fast, fetch: changed.f });
  assert.deepEqual(changed.requests, [null, 'bytes=50000-', null]);
  assert.equal(b.sha256, SHA);
});

test('download: a 206 whose Content-Range is hidden (CORS) is trusted only when its length covers the rest', async () => {
  const hidden = (start: number, extra = 0): Scripted => ({ status: 206, body: FILE.subarray(start), headers: { 'Content-Length': String(FILE.length - start + extra) } });
  const ok = scriptedFetch((i, start) => (i === 0 ? { ...whole(), cutAfter: 40_000 } : hidden(start!)));
  assert.equal((await download('https://x.test/m.gguf', { ...fast, fetch: ok.f, sha256: SHA })).sha256, SHA);
  const bad = scriptedFetch((i, start) => (i === 0 ? { ...whole(), cutAfter: 40_000 } : hidden(start!, 7)));
  const e = await failure(download('https://x.test/m.gguf', { ...fast, fetch: bad.f }));
  assert.match(e.message, /206\) came without a valid Content-Range/);
});

test('download: a stalled connection is dropped and resumed', async () => {
  const s = scriptedFetch((i, start) => (i === 0 ? { ...whole(), stallAfter: 30_000 } : part(start!)));
  const got = await download('https://x.test/m.gguf', { ...fast, stallMs: 100, fetch: s.f, sha256: SHA });
  assert.deepEqual(s.requests, [null, 'bytes=30000-']);
  assert.equal(got.sha256, SHA);
});

test('download: a body longer than declared is refused as soon as it passes the size', async () => {
  const long = new Uint8Array(5_000_000);
  const s = scriptedFetch(() => ({ body: long, chunk: 10_000 }));
  const e = await failure(download('https://x.test/m.gguf', { fetch: s.f, size: 100_000 }));
  assert.equal(e.name, 'IntegrityError');
  assert.match(e.message, /more than the 100000 bytes m\.gguf should have/);
  assert.ok(s.pulled() <= 12, `read ${s.pulled()} chunks`);
});

test('download: without a declared size, a huge Content-Length is refused before reading', async () => {
  const s = scriptedFetch(() => ({ body: FILE, headers: { 'Content-Length': String(8 * 2 ** 30) } }));
  const e = await failure(download('https://x.test/m.gguf', { fetch: s.f }));
  assert.equal(e.name, 'NetworkError');
  assert.match(e.message, /announces 8589934592 bytes/);
  assert.ok(s.pulled() <= 1);
  // and a body that goes on past the cap without any Content-Length
  const t = scriptedFetch(() => ({ body: new Uint8Array(300_000) }));
  const e2 = await failure(download('https://x.test/m.gguf', { fetch: t.f, maxBytes: 100_000 }));
  assert.match(e2.message, /larger than 100000 bytes/);
});

test('download: a Content-Range total that disagrees with the declared size is refused', async () => {
  const s = scriptedFetch((i, start) => (i === 0 ? { ...whole(), cutAfter: 50_000 } : part(start!, FILE.length + 10)));
  const e = await failure(download('https://x.test/m.gguf', { ...fast, fetch: s.f, size: FILE.length }));
  assert.equal(e.name, 'IntegrityError');
  assert.match(e.message, /announces 200013 bytes but m\.gguf should be 200003 bytes/);
  const smaller = scriptedFetch((i) => (i === 0 ? { ...whole(), cutAfter: 50_000 }
    : { status: 206, body: FILE.subarray(50_000, 199_993), headers: { 'Content-Range': 'bytes 50000-199992/199993' } }));
  const e2 = await failure(download('https://x.test/m.gguf', { ...fast, fetch: smaller.f, size: FILE.length }));
  assert.equal(e2.name, 'IntegrityError');
  assert.match(e2.message, /holds 199993 bytes but m\.gguf should be 200003 bytes/);
});

test('download: a short file, a wrong hash, gated files and busy servers', async () => {
  const short = scriptedFetch(() => ({ body: FILE.subarray(0, 1000) }));
  const e1 = await failure(download('https://x.test/m.gguf', { ...fast, fetch: short.f, size: FILE.length, retries: 1 }));
  assert.match(e1.message, /closed after 1000 of 200003 bytes; gave up after 1 retry/);
  const wrong = scriptedFetch(() => whole());
  const e2 = await failure(download('https://x.test/m.gguf', { fetch: wrong.f, sha256: '0'.repeat(64) }));
  assert.equal(e2.name, 'IntegrityError');
  assert.match(e2.message, new RegExp(`^m\\.gguf: its SHA-256 is ${SHA} but 0{64} was expected`));
  const gated = scriptedFetch(() => ({ status: 401 }));
  const e3 = await failure(download('https://x.test/m.gguf', { fetch: gated.f }));
  assert.match(e3.message, /401.*private or gated/);
  assert.equal(gated.requests.length, 1);
  const busy = scriptedFetch((i) => (i < 2 ? { status: 503 } : whole()));
  assert.equal((await download('https://x.test/m.gguf', { ...fast, fetch: busy.f })).sha256, SHA);
  assert.equal(busy.requests.length, 3);
});

test('download: the first bytes are checked before the rest is read', async () => {
  const s = scriptedFetch(() => ({ body: new Uint8Array(1_000_000), chunk: 1000 }));
  const e = await failure(download('https://x.test/m.gguf', {
    fetch: s.f, check: (head) => { if (head[0] !== 0x47) throw new Error(`bad magic in ${head.length} bytes`); },
  }));
  assert.equal(e.message, 'bad magic in 64 bytes');
  assert.ok(s.pulled() <= 3);
});

test('download: an abort during the retry delay ends it at once', async () => {
  const ctl = new AbortController();
  const s = scriptedFetch(() => ({ status: 503 }));
  const t0 = Date.now();
  setTimeout(() => ctl.abort(), 50);
  const e = await failure(download('https://x.test/m.gguf', { fetch: s.f, signal: ctl.signal, retryDelayMs: 10_000 }));
  assert.equal(e.name, 'AbortError');
  assert.ok(Date.now() - t0 < 2000);
});

test('parseContentRange', () => {
  assert.deepEqual(parseContentRange('bytes 5-9/10'), { start: 5, end: 9, total: 10 });
  assert.deepEqual(parseContentRange('bytes 0-0/*'), { start: 0, end: 0, total: null });
  for (const bad of [null, '', 'bytes 5-4/10', 'bytes 5-10/10', 'items 0-1/2', 'bytes 1-2']) assert.equal(parseContentRange(bad), null, String(bad));
});
