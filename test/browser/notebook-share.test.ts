// Share links with Chromium's CompressionStream: exact round trips, the length limit, and a shared
// notebook that opens read-only and does not load its model unasked.
import { expect } from 'chai';
import { decodeShare, encodeShare, openShared, shareLink, SHARE_LIMIT } from '../../src/notebook/share.ts';
import { NotebookDocument } from '../../src/notebook/document.ts';

async function fixture(name: string): Promise<string> {
  const res = await fetch(new URL(`../fixtures/notebooks/${name}`, import.meta.url));
  return new TextDecoder('utf-8', { ignoreBOM: true }).decode(await res.arrayBuffer());
}

const names = ['no-front-matter.md', 'nested-fences.md', 'crlf.md', 'unknown-kind.md', 'odd-settings.md', 'bom-unclosed.md', 'hostile.md'];

describe('notebook share links', () => {
  it('every fixture notebook comes back exactly from a compressed link', async () => {
    expect(typeof CompressionStream).to.equal('function');
    for (const name of names) {
      const text = await fixture(name);
      const link = await shareLink(text, location.href);
      const hash = new URL(link).hash;
      expect(hash.startsWith('#nb=z'), name).to.equal(true);
      expect(await decodeShare(hash), name).to.equal(text);
      expect(new NotebookDocument((await decodeShare(hash))!).text, name).to.equal(text);
    }
  });

  it('a notebook whose link would pass 32 KiB is refused with a message', async () => {
    const parts: string[] = [];
    for (let i = 0, size = 0; size < 1 << 20; i++) {
      const block = `Section ${i}: ${crypto.randomUUID()} ${crypto.randomUUID()}\n\n\`\`\`attention\nlayer: ${i % 6}\n\`\`\`\n\n`;
      parts.push(block);
      size += block.length;
    }
    let error: unknown;
    try { await encodeShare(parts.join('')); } catch (e) { error = e; }
    expect(String(error)).to.match(/share link: this notebook needs a link of [\d.]+ KiB; share links are at most 32 KiB/);
    expect(SHARE_LIMIT).to.equal(32 * 1024);
  });

  it('a shared notebook is read-only, asks before loading its model, and can be copied', async () => {
    const text = await fixture('hostile.md');
    const shared = await openShared(await encodeShare(text));
    expect(shared).to.include({ readonly: true, needsConfirmation: true, model: 'https://evil.example/model.gguf', modelIsUrl: true });
    const doc = new NotebookDocument(shared!.text, { readonly: shared!.readonly });
    expect(() => doc.setText('prompt-1', 'x')).to.throw(/read-only/);
    const copy = doc.makeCopy();
    copy.setText('prompt-1', 'mine now');
    expect(copy.text).to.contain('```prompt\nmine now\n```');
    expect(doc.text).to.equal(text);
  });
});
