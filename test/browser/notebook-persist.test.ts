// Persistence in Chromium: real IndexedDB (idb-keyval) and localStorage. "Reload" is a new
// Autosave over a new connection to the same database, as a reloaded page would make.
import { expect } from 'chai';
import { Autosave, downloadNotebook, idbStore, openFile, openUrl, type KeyValueStore } from '../../src/notebook/persist.ts';
import { NotebookDocument } from '../../src/notebook/document.ts';
import { serializeNotebook, parseNotebook } from '../../src/notebook/format.ts';

const run = `${Date.now()}-${Math.random().toString(36).slice(2)}`;
const dbName = `glassbox-notebooks-test-${run}`;

async function fixture(name: string): Promise<string> {
  const res = await fetch(new URL(`../fixtures/notebooks/${name}`, import.meta.url));
  return new TextDecoder('utf-8', { ignoreBOM: true }).decode(await res.arrayBuffer());
}

/** A generated notebook of about 1 MB, mixing line endings and cell kinds. */
function bigNotebook(): string {
  const parts = ['---\ntitle: Big\n---\n'];
  for (let i = 0, size = 0; size < 1 << 20; i++) {
    const block = `Prose ${i} ü🦙 ${'lorem ipsum '.repeat(30)}\r\n\r\n\`\`\`prompt\r\nStory ${i}\r\n\`\`\`\r\n\r\n\`\`\`attention\nlayer: ${i % 6}\n\`\`\`\n\n`;
    parts.push(block);
    size += block.length;
  }
  return parts.join('');
}

describe('notebook persistence (IndexedDB + journal)', () => {
  it('edit, reload: the notebook is back exactly', async () => {
    const id = `reload-${run}`;
    const text = await fixture('crlf.md');
    const doc = new NotebookDocument(text);
    const saver = new Autosave({ id, store: idbStore(dbName), debounceMs: 50 });
    const detach = saver.attach(doc);
    doc.setSetting('next-token-1', 'temperature', 1.25);
    doc.setText('prompt-1', 'Edited\nprompt');
    doc.insertCell(3, 'attention', { layer: 1, heads: [0, 2] });
    await new Promise((r) => setTimeout(r, 200));   // the debounce fires and the write completes
    expect(saver.status.state).to.equal('saved');
    expect(localStorage.getItem(`glassbox:notebook-journal:${id}`)).to.equal(null);
    detach();
    const reopened = new Autosave({ id, store: idbStore(dbName) });
    const saved = await reopened.restore();
    expect(saved?.text).to.equal(doc.text);
    expect(new NotebookDocument(saved!.text).text).to.equal(doc.text);
    expect(doc.text).to.contain('temperature: 1.25   # warm\r\n');
  });

  it('a crash inside the debounce window: the journal has the last edit', async () => {
    const id = `crash-${run}`;
    const saver = new Autosave({ id, store: idbStore(dbName), debounceMs: 50 });
    saver.schedule('# first\n');
    await saver.flush();
    saver.schedule('# last edit before the crash\n');
    // No flush, no pagehide: a new page reads what survived.
    const reopened = new Autosave({ id, store: idbStore(dbName), debounceMs: 10 });
    expect((await reopened.restore())?.text).to.equal('# last edit before the crash\n');
    await new Promise((r) => setTimeout(r, 150));
    const third = new Autosave({ id, store: idbStore(dbName), journal: null });
    expect((await third.restore())?.text).to.equal('# last edit before the crash\n', 'the journal was written through to IndexedDB');
  });

  it('a 1 MB notebook saves and restores exactly; pagehide journals even past the per-edit cap', async () => {
    const id = `big-${run}`;
    const text = bigNotebook();
    expect(text.length).to.be.greaterThan(1 << 20);
    expect(serializeNotebook(parseNotebook(text))).to.equal(text);
    const doc = new NotebookDocument(text);
    const saver = new Autosave({ id, store: idbStore(dbName), debounceMs: 10_000, journalMaxChars: 1000 });
    const detach = saver.attach(doc);
    doc.setSetting('attention-500', 'layer', 5);
    expect(localStorage.getItem(`glassbox:notebook-journal:${id}`)).to.equal(null);
    window.dispatchEvent(new PageTransitionEvent('pagehide'));
    expect(JSON.parse(localStorage.getItem(`glassbox:notebook-journal:${id}`)!).text).to.equal(doc.text);
    await saver.flush();
    detach();
    const restored = await new Autosave({ id, store: idbStore(dbName) }).restore();
    expect(restored?.text === doc.text).to.equal(true);
    localStorage.removeItem(`glassbox:notebook-journal:${id}`);
  });

  it('IndexedDB refusing (quota) keeps the notebook, tells the user, and retries', async () => {
    const id = `quota-${run}`;
    const real = idbStore(dbName);
    let refusals = 2;
    const refusing: KeyValueStore = {
      ...real,
      set: (k, v) => (refusals-- > 0 ? Promise.reject(new DOMException('The quota has been exceeded.', 'QuotaExceededError')) : real.set(k, v)),
    };
    const states: string[] = [];
    const saver = new Autosave({ id, store: refusing, debounceMs: 10, retryMs: [50], onStatus: (s) => states.push(s.state === 'error' ? `error: ${s.message}` : s.state) });
    const doc = new NotebookDocument('# keep me\n');
    saver.attach(doc);
    doc.setText('markdown-1', '# keep me, edited');
    await new Promise((r) => setTimeout(r, 40));
    expect(saver.status.state).to.equal('error');
    expect(states.find((s) => s.startsWith('error'))).to.match(/storage quota exceeded\)\. The notebook is kept in this tab/);
    expect(doc.text).to.equal('# keep me, edited\n');
    expect(JSON.parse(localStorage.getItem(`glassbox:notebook-journal:${id}`)!).text).to.equal('# keep me, edited\n');
    await new Promise((r) => setTimeout(r, 300));
    expect(saver.status.state).to.equal('saved');
    expect((await new Autosave({ id, store: idbStore(dbName), journal: null }).restore())?.text).to.equal('# keep me, edited\n');
  });

  it('opens a .md from a File and from a URL, and saves one as a download, byte for byte', async () => {
    const url = new URL('../fixtures/notebooks/bom-unclosed.md', import.meta.url).href;
    const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
    expect([...bytes.slice(0, 3)]).to.deep.equal([0xef, 0xbb, 0xbf]);
    const fromFile = await openFile(new File([bytes], 'bom-unclosed.md'));
    expect(fromFile.name).to.equal('bom-unclosed.md');
    expect([...new TextEncoder().encode(fromFile.text)]).to.deep.equal([...bytes]);
    const fromUrl = await openUrl(url);
    expect(fromUrl).to.deep.equal({ text: fromFile.text, name: 'bom-unclosed.md' });
    let missing: unknown;
    try { await openUrl(new URL('../fixtures/notebooks/missing.md', import.meta.url).href); } catch (e) { missing = e; }
    expect(String(missing)).to.match(/missing\.md: the server answered 404/);

    const clicked: { href: string; download: string }[] = [];
    const click = HTMLAnchorElement.prototype.click;
    HTMLAnchorElement.prototype.click = function (this: HTMLAnchorElement) { clicked.push({ href: this.href, download: this.download }); };
    try {
      downloadNotebook(fromFile.text, 'saved.md');
    } finally {
      HTMLAnchorElement.prototype.click = click;
    }
    expect(clicked.length).to.equal(1);
    expect(clicked[0]!.download).to.equal('saved.md');
    const blob = await (await fetch(clicked[0]!.href)).blob();
    expect(blob.type).to.equal('text/markdown;charset=utf-8');
    expect([...new Uint8Array(await blob.arrayBuffer())]).to.deep.equal([...bytes]);
  });
});
