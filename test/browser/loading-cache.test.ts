// The browser cache of downloaded models, and the other ways in: a catalog entry (model plus a
// separate tokenizer), picked files, and the dev server's /models/local/.
import { expect } from 'chai';
import { resolveModelSource, preflightSource, loadCatalogOrCopy } from '../../src/worker/loading/resolve.ts';
import { CACHE_NAME, cacheKey, cachedBytes, clearCached, deleteCached, listCached } from '../../src/worker/loading/cache.ts';
import { loadCatalog, findEntry, type Catalog } from '../../src/worker/loading/catalog.ts';
import { sha256Blob } from '../../src/worker/loading/sha256.ts';
import { openModel } from '../../src/formats/open.ts';
import type { ByteSource } from '../../src/formats/source.ts';
import type { DownloadProgress } from '../../src/worker/loading/types.ts';

const T = '/test-files/';
const SIZE = 1185376;
const SHA = '270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d';
let n = 0;
const key = () => `cache-${Date.now()}-${n++}`;
const count = async (k: string): Promise<number> => (await (await fetch(`${T}_count?key=${k}`)).json()).count;

async function bytesOf(src: ByteSource): Promise<Uint8Array> {
  return src.read(0, src.size);
}

/** A fetch that counts its calls (the cached path must make none at all). */
function countingFetch() {
  const calls: string[] = [];
  const f = ((input: RequestInfo | URL, init?: RequestInit) => { calls.push(String(input)); return fetch(input, init); }) as typeof fetch;
  return { f, calls };
}

describe('loading: cache and sources', () => {
  before(() => clearCached());
  after(() => clearCached());

  it('loads the second time from the cache without any network request; lists and deletes', async () => {
    const k = key();
    const url = `${T}stories260K.gguf?key=${k}`;
    const first = await resolveModelSource({ kind: 'url', url, size: SIZE, sha256: SHA });
    expect(first.fromCache).to.equal(false);
    expect(first.downloadedBytes).to.equal(SIZE);
    expect(first.warnings).to.deep.equal([]);
    expect(await count(k)).to.equal(1);

    const spy = countingFetch();
    const events: DownloadProgress[] = [];
    const t0 = performance.now();
    const second = await resolveModelSource({ kind: 'url', url, size: SIZE, sha256: SHA }, { fetch: spy.f, onProgress: (e) => events.push(e) });
    expect(performance.now() - t0).to.be.below(1000);
    expect(second.fromCache).to.equal(true);
    expect(spy.calls).to.deep.equal([]);
    expect(await count(k)).to.equal(1); // the server saw no second request
    expect(events).to.have.length(1);
    expect(events[0]).to.include({ phase: 'cache', received: SIZE, total: SIZE });
    expect(second.key).to.equal(first.key);
    expect(await bytesOf(second.sources[0]!)).to.deep.equal(await bytesOf(first.sources[0]!));
    expect((await openModel(second.sources)).config.nLayers).to.equal(5);

    const listed = await listCached();
    const entry = listed.find((c) => c.url === cacheKey(url));
    expect(entry).to.include({ name: 'stories260K.gguf', size: SIZE, sha256: SHA });
    expect(Date.parse(entry!.date)).to.be.closeTo(Date.now(), 60_000);
    expect(await cachedBytes()).to.be.at.least(SIZE);

    expect(await deleteCached(url)).to.equal(true);
    expect((await listCached()).some((c) => c.url === cacheKey(url))).to.equal(false);
    expect(await deleteCached(url)).to.equal(false);
    const third = await resolveModelSource({ kind: 'url', url, size: SIZE, sha256: SHA });
    expect(third.fromCache).to.equal(false);
    expect(await count(k)).to.equal(2);
  });

  it('discards a damaged cached entry and downloads it again', async () => {
    const k = key();
    const url = `${T}stories260K.gguf?key=${k}`;
    await resolveModelSource({ kind: 'url', url, size: SIZE, sha256: SHA });
    // flip one byte of the stored file, keeping its record (size and SHA-256 headers)
    const cache = await caches.open(CACHE_NAME);
    const stored = (await cache.match(cacheKey(url)))!;
    const bytes = new Uint8Array(await stored.clone().arrayBuffer());
    bytes[SIZE >> 1] ^= 0xff;
    await cache.put(cacheKey(url), new Response(bytes, { headers: stored.headers }));

    const again = await resolveModelSource({ kind: 'url', url, size: SIZE, sha256: SHA });
    expect(again.fromCache).to.equal(false);
    expect(again.warnings.join(' ')).to.contain('damaged').and.contain('downloaded again');
    expect(await count(k)).to.equal(2);
    const blob = await (await cache.match(cacheKey(url)))!.blob();
    expect(await sha256Blob(blob)).to.equal(SHA);

    // a record that disagrees with what the caller expects (another version) is replaced too
    const other = await resolveModelSource({ kind: 'url', url, size: SIZE, sha256: SHA.replace(/^../, '00') }).catch((e: Error) => e);
    expect((other as Error).name).to.equal('IntegrityError');
    expect((await listCached()).some((c) => c.url === cacheKey(url))).to.equal(false);
  });

  it('loads from memory with a warning when the storage quota is full', async () => {
    const k = key();
    const url = `${T}stories260K.gguf?key=${k}`;
    const put = Cache.prototype.put;
    Cache.prototype.put = () => Promise.reject(new DOMException('The quota has been exceeded.', 'QuotaExceededError'));
    try {
      const r = await resolveModelSource({ kind: 'url', url, size: SIZE, sha256: SHA });
      expect(r.warnings).to.have.length(1);
      expect(r.warnings[0]).to.contain('stories260K.gguf').and.contain('not saved for offline use').and.contain('quota');
      const m = await openModel(r.sources);
      expect(m.config.nLayers).to.equal(5);
      expect(await sha256Blob(new Blob([await bytesOf(r.sources[0]!) as BlobPart]))).to.equal(SHA);
    } finally {
      Cache.prototype.put = put;
    }
    expect((await listCached()).some((c) => c.url === cacheKey(url))).to.equal(false);
  });

  it('resolves a catalog entry: a llama2.c .bin and its tokenizer, with per-file progress', async () => {
    const k = key();
    const catalog: Catalog = {
      version: 1,
      models: [{
        id: 'tiny-bin', name: 'stories260K (.bin)', family: 'tinystories', license: 'MIT', description: 'test',
        files: [
          { url: `${T}stories260K.bin?key=${k}`, size: 1056540, sha256: 'b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696', role: 'model' },
          { url: `${T}tok512.bin?key=${k}`, size: 6227, sha256: '037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312', role: 'tokenizer' },
        ],
      }],
    };
    const events: DownloadProgress[] = [];
    const r = await resolveModelSource({ kind: 'catalog', id: 'TINY-BIN' }, { catalog, onProgress: (e) => events.push(e) });
    expect(r.key).to.equal('catalog:tiny-bin');
    expect(r.label).to.equal('stories260K (.bin)');
    expect(r.entry?.license).to.equal('MIT');
    expect(r.sources.map((s) => s.name)).to.deep.equal(['stories260K.bin']);
    expect(r.tokenizer?.name).to.equal('tok512.bin');
    expect(new Set(events.map((e) => `${e.fileIndex}/${e.fileCount} ${e.file}`))).to.deep.equal(new Set(['0/2 stories260K.bin', '1/2 tok512.bin']));
    const m = await openModel(r.sources, { tokenizer: r.tokenizer });
    expect(m.format).to.equal('llama2c');
    expect(m.tokenizer?.tokens.length).to.equal(512);
    const cached = await resolveModelSource({ kind: 'catalog', id: 'tiny-bin' }, { catalog });
    expect(cached.fromCache).to.equal(true);
    const pf = (await preflightSource({ kind: 'catalog', id: 'tiny-bin' }, { memoryBytes: 2 ** 30 }, { catalog }))!;
    expect(pf.downloadBytes).to.equal(0);
    expect(pf.weightBytes).to.equal(1056540);
    expect(pf.fitsCpu).to.equal(true);
    expect(await count(k)).to.equal(2);
    const e = await resolveModelSource({ kind: 'catalog', id: 'nope' }, { catalog }).catch((x: Error) => x);
    expect((e as Error).name).to.equal('UsageError');
    expect((e as Error).message).to.contain('tiny-bin');
  });

  it('reads the shipped catalog, and its kept copy when the network fails', async () => {
    const c = await loadCatalog('/public/models.json');
    expect(c.problems).to.deep.equal([]);
    expect(findEntry(c, 'stories15M')?.default).to.equal(true);
    const url = `/public/models.json?v=${key()}`;
    const online = await loadCatalogOrCopy(url);
    expect(online.models.length).to.equal(c.models.length);
    const offline = await loadCatalogOrCopy(url, { fetch: (() => Promise.reject(new TypeError('Failed to fetch'))) as typeof fetch });
    expect(offline.models).to.deep.equal(online.models);
    expect(offline.problems.join(' ')).to.contain('using the copy kept from an earlier visit');
    expect((await listCached()).some((f) => f.url.includes('models.json'))).to.equal(false);
    const never = await loadCatalogOrCopy(`/public/models.json?v=${key()}`, { fetch: (() => Promise.reject(new TypeError('Failed to fetch'))) as typeof fetch }).catch((e: Error) => e);
    expect((never as Error).name).to.equal('NetworkError');
  });

  it('opens picked files as Blobs (a .bin with its tokenizer) and local files by range requests', async () => {
    const bin = new File([await (await fetch('/models/local/tinystories-260k/stories260K.bin')).blob()], 'stories260K.bin');
    const tok = new File([await (await fetch('/models/local/tinystories-260k/tok512.bin')).blob()], 'tok512.bin');
    const r = await resolveModelSource({ kind: 'files', files: [tok, bin] });
    expect(r.sources.map((s) => s.name)).to.deep.equal(['stories260K.bin']);
    expect(r.tokenizer?.name).to.equal('tok512.bin');
    expect(r.label).to.equal('stories260K.bin + tok512.bin');
    expect((await openModel(r.sources, { tokenizer: r.tokenizer })).config.dModel).to.equal(64);
    const onlyTok = await resolveModelSource({ kind: 'files', files: [tok] }).catch((e: Error) => e);
    expect((onlyTok as Error).name).to.equal('UsageError');

    const local = await resolveModelSource({ kind: 'local', paths: ['tinystories-260k/stories260K.bin', 'tinystories-260k/tok512.bin'] });
    expect(local.key).to.equal('local:/models/local/tinystories-260k/stories260K.bin|/models/local/tinystories-260k/tok512.bin');
    expect(local.tokenizer?.name).to.equal('tok512.bin');
    const lm = await openModel(local.sources, { tokenizer: local.tokenizer });
    expect(lm.config.nLayers).to.equal(5);
    expect((await listCached()).some((c) => c.url.includes('/models/local/'))).to.equal(false);
  });
});
