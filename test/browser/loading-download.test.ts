// Downloads through a misbehaving local server (test/support/fault-server.mjs): progress, a dropped
// connection resumed with a Range request (or restarted when the server ignores ranges), and every
// way a download must be refused — wrong SHA-256, 404, not a model, a 2 GB Content-Length lie.
import { expect } from 'chai';
import { download } from '../../src/worker/loading/download.ts';
import { resolveModelSource } from '../../src/worker/loading/resolve.ts';
import { Sha256 } from '../../src/worker/loading/sha256.ts';
import { listCached } from '../../src/worker/loading/cache.ts';
import { openModel } from '../../src/formats/open.ts';
import { urlSource, blobSource, bytesSource, type ByteSource } from '../../src/formats/source.ts';
import { NetworkError } from '../../src/engine/errors.ts';
import { loadWeights, weightBytes } from '../../src/formats/load.ts';
import { WeightArena } from '../../src/engine/arena.ts';
import type { DownloadProgress } from '../../src/worker/loading/types.ts';

const T = '/test-files/';
const SIZE = 1185376; // shared/models/tinystories-260k/stories260K.gguf
const SHA = '270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d';
const fast = { retryDelayMs: 20 };
let n = 0;
const key = () => `dl-${Date.now()}-${n++}`;
const stats = async (k: string): Promise<{ count: number; ranges: (string | null)[] }> =>
  (await fetch(`${T}_count?key=${k}`)).json();

async function failure(p: Promise<unknown>): Promise<Error> {
  try { await p; } catch (e) { return e as Error; }
  throw new Error('expected a failure');
}

/** Every tensor of a model, loaded, as name → bytes. */
async function tensors(sources: ByteSource[]): Promise<Map<string, Uint8Array>> {
  const m = await openModel(sources);
  const w = await loadWeights(m, new WeightArena(weightBytes(m)));
  return new Map([...w].map(([k, t]) => [k, t.data.slice()]));
}

describe('loading: downloads', () => {
  it('reports monotonic progress ending at the file size, with a rate and an ETA', async () => {
    const events: DownloadProgress[] = [];
    const got = await download(`${T}stories260K.gguf?key=${key()}&slow=1`, {
      size: SIZE, sha256: SHA, progressIntervalMs: 0, onProgress: (e) => events.push({ ...e }),
    });
    expect(got.size).to.equal(SIZE);
    expect(got.sha256).to.equal(SHA);
    expect(got.blob.size).to.equal(SIZE);
    expect(events.length).to.be.greaterThan(20);
    for (let i = 1; i < events.length; i++) expect(events[i]!.received).to.be.at.least(events[i - 1]!.received);
    for (const e of events) { expect(e.total).to.equal(SIZE); expect(e.file).to.equal('stories260K.gguf'); }
    const last = events[events.length - 1]!;
    expect(last.received).to.equal(SIZE);
    expect(last.etaS).to.equal(0);
    expect(events.some((e) => e.rateBytesPerS > 0 && e.etaS !== null && e.etaS > 0)).to.equal(true);
  });

  it('resumes a connection dropped halfway with a Range request, and the model is identical', async () => {
    const k = key();
    const events: DownloadProgress[] = [];
    const r = await resolveModelSource({ kind: 'url', url: `${T}stories260K.gguf?key=${k}&drop=600000`, size: SIZE, sha256: SHA },
      { cache: false, download: fast, onProgress: (e) => events.push({ ...e }) });
    const s = await stats(k);
    expect(s.count).to.equal(2);
    expect(s.ranges[0]).to.equal(null);
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(s.ranges[1] ?? '')?.[1]);
    expect(resumedAt).to.be.greaterThan(0).and.at.most(600000);
    expect(events.some((e) => e.retry?.resumed)).to.equal(true);
    for (let i = 1; i < events.length; i++) expect(events[i]!.received).to.be.at.least(events[i - 1]!.received);
    // the same tensors as a direct read of the file
    const direct = await tensors([await urlSource('/models/local/tinystories-260k/stories260K.gguf')]);
    const loaded = await tensors(r.sources);
    expect([...loaded.keys()]).to.deep.equal([...direct.keys()]);
    for (const [name, bytes] of direct) expect(loaded.get(name), name).to.deep.equal(bytes);
  });

  it('starts over cleanly when the server ignores Range', async () => {
    const k = key();
    const events: DownloadProgress[] = [];
    const got = await download(`${T}stories260K.gguf?key=${k}&drop=500000&norange=1`, { ...fast, size: SIZE, sha256: SHA, onProgress: (e) => events.push({ ...e }) });
    expect(got.sha256).to.equal(SHA);
    expect(got.restarted).to.equal(1);
    expect((await stats(k)).count).to.equal(2);
    expect(events.some((e) => e.retry?.resumed === false && /starting over/.test(e.retry.reason))).to.equal(true);
  });

  it('refuses a wrong SHA-256 with an error naming the file and both hashes', async () => {
    const wrong = 'ab'.repeat(32);
    const e = await failure(resolveModelSource({ kind: 'url', url: `${T}stories260K.gguf?key=${key()}`, size: SIZE, sha256: wrong }));
    expect(e.name).to.equal('IntegrityError');
    expect(e.message).to.contain('stories260K.gguf').and.contain(wrong).and.contain(SHA);
    expect((await listCached()).some((c) => c.url.includes('stories260K.gguf') && c.sha256 !== SHA)).to.equal(false);
  });

  it('refuses a 404 at once, naming the URL and the status', async () => {
    const k = key();
    const e = await failure(download(`${T}stories260K.gguf?key=${k}&status=404`, fast));
    expect(e.name).to.equal('NetworkError');
    expect(e.message).to.contain(`${T}stories260K.gguf?key=${k}`).and.contain('404');
    expect((await stats(k)).count).to.equal(1); // not retried
  });

  it('refuses a file that is not a model after its first bytes, and does not cache it', async () => {
    const url = `${T}not-a-model.gguf?key=${key()}`;
    const e = await failure(resolveModelSource({ kind: 'url', url }));
    expect(e.name).to.equal('ModelFormatError');
    expect(e.message).to.contain('not-a-model.gguf');
    expect((await listCached()).some((c) => c.url.endsWith(url))).to.equal(false);
  });

  it('refuses a 2 GB Content-Length on a small body before reading it, when the size is declared', async () => {
    const k = key();
    const t0 = performance.now();
    const heap0 = (performance as unknown as { memory?: { usedJSHeapSize: number } }).memory?.usedJSHeapSize ?? 0;
    const e = await failure(resolveModelSource({ kind: 'url', url: `${T}stories260K.gguf?key=${k}&lie=2000000000`, size: SIZE, sha256: SHA }));
    expect(e.name).to.equal('IntegrityError');
    expect(e.message).to.contain('2000000000').and.contain(String(SIZE));
    expect(performance.now() - t0).to.be.below(3000);
    const heap1 = (performance as unknown as { memory?: { usedJSHeapSize: number } }).memory?.usedJSHeapSize ?? 0;
    expect(heap1 - heap0).to.be.below(64 << 20);
    expect((await stats(k)).count).to.equal(1);
  });

  it('fails cleanly and quickly on a 2 GB Content-Length with no declared size (the body ends short)', async () => {
    const k = key();
    const t0 = performance.now();
    const e = await failure(download(`${T}stories260K.gguf?key=${k}&lie=2000000000`, { retries: 2, retryDelayMs: 20 }));
    expect(e.name).to.equal('NetworkError');
    expect(e.message).to.match(/gave up after 2 retries/);
    expect(performance.now() - t0).to.be.below(5000);
    expect((await stats(k)).count).to.equal(3);
  });

  it('cancels cleanly with an AbortSignal', async () => {
    const ctl = new AbortController();
    const p = download(`${T}stories260K.gguf?key=${key()}&slow=1`, {
      size: SIZE, progressIntervalMs: 0, signal: ctl.signal,
      onProgress: (e) => { if (e.received > 100_000) ctl.abort(); },
    });
    const e = await failure(p);
    expect(e.name).to.equal('AbortError');
  });

  it('streams tensor pieces into place from a URL and a Blob; a connection cut mid-load is a NetworkError naming the file', async () => {
    const whole = new Uint8Array(await (await fetch(`${T}stories260K.gguf?key=${key()}`)).arrayBuffer());
    const reference = await tensors([bytesSource(whole, 'stories260K.gguf')]);
    const same = (got: Map<string, Uint8Array>) => {
      expect([...got.keys()]).to.deep.equal([...reference.keys()]);
      for (const [name, bytes] of reference) expect(got.get(name), name).to.deep.equal(bytes);
    };
    // 64 KiB pieces, so that the tensors take many reads into place (the default is 32 MiB)
    const k = key();
    const url = await urlSource(`${T}stories260K.gguf?key=${k}`);
    expect(url.readInto).to.be.a('function');
    same(await tensors([{ ...url, pieceBytes: 1 << 16 }]));
    expect((await stats(k)).count).to.be.greaterThan(SIZE >> 17);
    const blob = blobSource(new Blob([whole]), 'stories260K.gguf');
    expect(blob.readInto).to.be.a('function');
    same(await tensors([{ ...blob, pieceBytes: 1 << 16 }]));
    same(await tensors([blob]));
    // the header (its first MiB) arrives; a tensor read past byte 1,100,000 is cut off
    const cut = await urlSource(`${T}stories260K.gguf?key=${key()}&cut=1100000`);
    const e = await failure(tensors([cut]));
    expect(e).to.be.instanceOf(NetworkError);
    expect(e.message).to.match(/stories260K\.gguf/).and.to.match(/bytes \d+\.\.\d+/);
  });

  it('hashes like crypto.subtle on random inputs of odd lengths', async () => {
    for (const len of [1, 63, 64, 65, 4097, 100_001, 999_999]) {
      const b = crypto.getRandomValues(new Uint8Array(Math.min(len, 65536)));
      const data = new Uint8Array(len);
      for (let i = 0; i < len; i += b.length) data.set(b.subarray(0, Math.min(b.length, len - i)), i);
      const ref = [...new Uint8Array(await crypto.subtle.digest('SHA-256', data))].map((x) => x.toString(16).padStart(2, '0')).join('');
      const h = new Sha256();
      for (let i = 0; i < len; i += 7777) h.update(data.subarray(i, i + 7777));
      expect(h.hex(), `length ${len}`).to.equal(ref);
    }
  });
});
