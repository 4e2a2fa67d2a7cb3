// Autosave logic with an in-memory store and journal (the browser test uses real IndexedDB and
// localStorage): debouncing, the synchronous journal, choosing the newer copy on restore, and a
// store that refuses writes (quota) without losing the notebook.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Autosave, notebookFileName, openFile, openUrl, MAX_NOTEBOOK_BYTES, type KeyValueStore, type SaveStatus } from '../../src/notebook/persist.ts';

class MemoryStore implements KeyValueStore {
  data = new Map<string, unknown>();
  sets = 0;
  failures = 0;           // refuse this many writes first
  async get(k: string) { return structuredClone(this.data.get(k)); }
  async set(k: string, v: unknown) {
    await new Promise((r) => setTimeout(r, 2));
    this.sets++;
    if (this.failures > 0) {
      this.failures--;
      throw Object.assign(new Error('The quota has been exceeded.'), { name: 'QuotaExceededError' });
    }
    this.data.set(k, structuredClone(v));
  }
  async del(k: string) { this.data.delete(k); }
}

class MemoryJournal {
  data = new Map<string, string>();
  getItem(k: string) { return this.data.get(k) ?? null; }
  setItem(k: string, v: string) { this.data.set(k, v); }
  removeItem(k: string) { this.data.delete(k); }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('edits are journalled at once and written to the store once per burst', async () => {
  const store = new MemoryStore();
  const journal = new MemoryJournal();
  const statuses: SaveStatus['state'][] = [];
  const a = new Autosave({ store, journal, debounceMs: 30, onStatus: (s) => statuses.push(s.state) });
  for (let i = 0; i < 10; i++) a.schedule(`text ${i}`);
  assert.equal(JSON.parse(journal.getItem('glassbox:notebook-journal:current')!).text, 'text 9', 'the journal is written synchronously');
  assert.equal(store.sets, 0);
  await sleep(80);
  assert.equal(store.sets, 1);
  assert.equal((store.data.get('notebook:current') as { text: string }).text, 'text 9');
  assert.equal(journal.getItem('glassbox:notebook-journal:current'), null, 'the journal entry goes once the store has it');
  assert.equal(a.status.state, 'saved');
  assert.deepEqual([...new Set(statuses)], ['pending', 'saved']);
});

test('restore takes the newer of the store and the journal (a crash inside the debounce window)', async () => {
  const store = new MemoryStore();
  const journal = new MemoryJournal();
  const a = new Autosave({ store, journal, debounceMs: 10 });
  a.schedule('saved version');
  await a.flush();
  a.schedule('typed just before the crash');       // journalled; the store write never happens
  // The tab dies here: no flush, no pagehide. A new page opens over the same storage.
  const b = new Autosave({ store, journal, debounceMs: 10 });
  assert.equal((await b.restore())?.text, 'typed just before the crash');
  await sleep(30);                                  // the restored journal is written through
  assert.equal((store.data.get('notebook:current') as { text: string }).text, 'typed just before the crash');
  assert.equal(journal.getItem('glassbox:notebook-journal:current'), null);
  // An old journal entry (older rev than the store) loses.
  journal.setItem('glassbox:notebook-journal:current', JSON.stringify({ text: 'stale', rev: 1 }));
  assert.equal((await new Autosave({ store, journal }).restore())?.text, 'typed just before the crash');
  journal.setItem('glassbox:notebook-journal:current', '{damaged');
  assert.equal((await new Autosave({ store, journal }).restore())?.text, 'typed just before the crash');
  assert.equal(await new Autosave({ store: new MemoryStore(), journal: new MemoryJournal() }).restore(), null);
  a.schedule('x'); await a.flush();
});

test('a refused write keeps the notebook, says so, and is retried until it succeeds', async () => {
  const store = new MemoryStore();
  store.failures = 2;
  const journal = new MemoryJournal();
  const seen: SaveStatus[] = [];
  const a = new Autosave({ store, journal, debounceMs: 5, retryMs: [20, 40], onStatus: (s) => seen.push(s) });
  a.schedule('precious');
  await sleep(15);
  const err = a.status;
  assert.equal(err.state, 'error');
  if (err.state === 'error') {
    assert.match(err.message, /storage quota exceeded.*kept in this tab.*retried in 0 s.*Save as \.md/);
    assert.equal(err.retryInMs, 20);
  }
  assert.equal(JSON.parse(journal.getItem('glassbox:notebook-journal:current')!).text, 'precious', 'the journal still has it');
  await sleep(120);
  assert.equal(a.status.state, 'saved');
  assert.equal(store.sets, 3);
  assert.equal((store.data.get('notebook:current') as { text: string }).text, 'precious');
  assert.deepEqual(seen.map((s) => s.state), ['pending', 'error', 'error', 'saved']);
  assert.equal((seen[2] as { retryInMs: number }).retryInMs, 40);
});

test('a notebook over the journal cap is not journalled per edit (IndexedDB and pagehide keep it)', async () => {
  const journal = new MemoryJournal();
  const a = new Autosave({ store: new MemoryStore(), journal, debounceMs: 1000, journalMaxChars: 100 });
  a.schedule('y'.repeat(101));
  assert.equal(journal.getItem('glassbox:notebook-journal:current'), null);
  a.writeJournal(true);                             // what pagehide does
  assert.equal(JSON.parse(journal.getItem('glassbox:notebook-journal:current')!).text.length, 101);
  await a.flush();
});

test('opening files and URLs: exact text (BOM kept), size limits, non-UTF-8 refused', async () => {
  const bytes = new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode('---\r\ntitle: ü\r\n---\r\n')]);
  const f = await openFile(Object.assign(new Blob([bytes]), { name: 'x.md' }));
  assert.deepEqual(new Uint8Array(Buffer.from(f.text, 'utf8')), bytes);
  await assert.rejects(openFile(Object.assign(new Blob([new Uint8Array([0x41, 0xff, 0x42])]), { name: 'bad.md' })), /bad\.md: is not UTF-8 text/);
  const huge = { size: MAX_NOTEBOOK_BYTES + 1, name: 'huge.md', arrayBuffer: () => { throw new Error('read before the size check'); } };
  await assert.rejects(openFile(huge as unknown as Blob), /huge\.md: is 16\.0 MiB; notebooks are at most 16 MiB/);
  const fetchOk = (async () => new Response('# hello\n', { status: 200 })) as typeof fetch;
  assert.deepEqual(await openUrl('https://example.org/demos/look%20here.md', { fetch: fetchOk }), { text: '# hello\n', name: 'look here.md' });
  const fetch404 = (async () => new Response('nope', { status: 404, statusText: 'Not Found' })) as typeof fetch;
  await assert.rejects(openUrl('https://example.org/x.md', { fetch: fetch404 }), /https:\/\/example\.org\/x\.md: the server answered 404 Not Found/);
  // A server that streams more than the limit without a Content-Length is cut off.
  let sent = 0;
  const endless = new ReadableStream<Uint8Array>({ pull(c) { sent += 1 << 20; c.enqueue(new Uint8Array(1 << 20)); } });
  const fetchBig = (async () => new Response(endless, { status: 200 })) as typeof fetch;
  await assert.rejects(openUrl('https://example.org/big.md', { fetch: fetchBig }), /big\.md: is 17\.0 MiB/);
  assert.ok(sent <= MAX_NOTEBOOK_BYTES + (2 << 20), `read ${sent} bytes`);
});

test('file names from titles', () => {
  assert.equal(notebookFileName('Where does the model look?'), 'where-does-the-model-look.md');
  assert.equal(notebookFileName('Über Aufmerksamkeit'), 'uber-aufmerksamkeit.md');
  assert.equal(notebookFileName(undefined), 'notebook.md');
  assert.equal(notebookFileName('???'), 'notebook.md');
});
