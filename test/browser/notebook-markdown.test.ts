// Hostile prose in the real DOM: every payload of test/fixtures/notebooks/hostile.md calls
// __gbHit(name); after rendering, waiting for images to fail and poking every element, no call
// may have happened. A control shows that the harness does see a payload that runs.
import { expect } from 'chai';
import { markdownToHtml, renderMarkdown, renderMarkdownHtml } from '../../src/notebook/markdown.ts';
import { parseNotebook } from '../../src/notebook/format.ts';

const hits: string[] = [];
(window as unknown as { __gbHit: (n: string) => void }).__gbHit = (name) => { hits.push(name); };

async function fixture(name: string): Promise<string> {
  const res = await fetch(new URL(`../fixtures/notebooks/${name}`, import.meta.url));
  return res.text();
}

/** Waits until every image and media element has loaded or failed, then a little more. */
async function settle(root: ParentNode): Promise<void> {
  const media = [...root.querySelectorAll<HTMLImageElement | HTMLMediaElement>('img, video, audio')];
  await Promise.all(media.map((m) => new Promise<void>((res) => {
    if (m instanceof HTMLImageElement && m.complete) return res();
    m.addEventListener('load', () => res(), { once: true });
    m.addEventListener('loadeddata', () => res(), { once: true });
    m.addEventListener('error', () => res(), { once: true });
    setTimeout(res, 3000);
  })));
  await new Promise((r) => setTimeout(r, 150));
}

/** Fires the events inline handlers listen for on every element (links are not followed). */
function poke(root: HTMLElement): void {
  const stop = (e: Event) => {
    const a = (e.target as Element).closest?.('a');
    if (a && /^https?:/i.test(a.getAttribute('href') ?? '')) e.preventDefault();
  };
  root.addEventListener('click', stop, true);
  for (const el of root.querySelectorAll<HTMLElement>('*')) {
    // Not bubbling: an 'error' event reaching window would be taken for an uncaught error.
    for (const type of ['mouseover', 'click', 'focus', 'toggle', 'load', 'error', 'begin']) el.dispatchEvent(new Event(type));
  }
  root.removeEventListener('click', stop, true);
}

describe('notebook prose: sanitizing', () => {
  afterEach(() => { hits.length = 0; });

  it('the harness sees a payload that runs (unsanitized control)', async () => {
    const box = document.createElement('div');
    document.body.append(box);
    box.innerHTML = markdownToHtml(`<img src="control-${Date.now()}.png" onerror="__gbHit('control')">`);
    await settle(box);
    box.remove();
    expect(hits).to.deep.equal(['control']);
  });

  it('nothing in the hostile notebook runs, and nothing dangerous is left in the DOM', async () => {
    const text = await fixture('hostile.md');
    const nb = parseNotebook(text);
    expect(nb.cells.map((c) => c.kind)).to.deep.equal(['markdown', 'prompt']);
    const box = document.createElement('div');
    document.body.append(box);
    // Each prose cell as the app draws it, and the whole file as prose too (fences included).
    for (const src of [...nb.cells.filter((c) => c.kind === 'markdown').map((c) => c.settings['text'] as string), text]) {
      const frag = renderMarkdown(src);
      // Make images load now (the renderer marks them lazy), so that a surviving onerror would fire.
      for (const img of frag.querySelectorAll('img')) img.loading = 'eager';
      box.append(frag);
    }
    await settle(box);
    poke(box);
    await new Promise((r) => setTimeout(r, 100));
    expect(hits, `payloads ran: ${hits.join(', ')}`).to.deep.equal([]);
    expect((window as unknown as { __gbHit?: unknown }).__gbHit).to.be.a('function');

    expect(box.querySelectorAll('script, iframe, object, embed, form, input, button, style, base, meta, link, foreignObject, animate, set').length).to.equal(0);
    for (const el of box.querySelectorAll('*')) {
      for (const attr of el.attributes) {
        expect(attr.name, `<${el.localName} ${attr.name}>`).not.to.match(/^on/i);
        expect(attr.value, `<${el.localName} ${attr.name}="${attr.value}">`).not.to.match(/^\s*(javascript|vbscript):|^\s*data:text/i);
        expect(attr.name).not.to.equal('style');
      }
    }
    const links = [...box.querySelectorAll('a[href]')];
    expect(links.map((a) => a.getAttribute('href'))).to.include('https://example.org/page');
    for (const a of links) {
      expect(a.getAttribute('rel')).to.equal('noopener noreferrer');
      expect(a.getAttribute('target')).to.equal('_blank');
    }
    for (const img of box.querySelectorAll('img')) expect(img.getAttribute('referrerpolicy')).to.equal('no-referrer');
    // Prose still renders: headings, code, the harmless SVG rectangle.
    expect(box.querySelector('h1')?.textContent).to.equal('Nothing here may run');
    expect(box.querySelector('svg rect')).to.not.equal(null);
    box.remove();
  });

  it('ordinary Markdown renders: GFM tables, code, links, inline HTML that is harmless', () => {
    const html = renderMarkdownHtml('# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n`code` and **bold** <sub>2</sub>\n\n```js\nlet x = "<script>";\n```\n\n<a href="#top" id="top">top</a>\n');
    const box = document.createElement('div');
    box.innerHTML = html;
    expect(box.querySelector('table td')?.textContent).to.equal('1');
    expect(box.querySelector('pre code')?.textContent).to.equal('let x = "<script>";\n');
    expect(box.querySelector('sub')?.textContent).to.equal('2');
    expect(box.querySelector('strong')?.textContent).to.equal('bold');
    // Ids are prefixed, so prose cannot clobber the page's globals.
    expect(box.querySelector('a')?.id).to.equal('user-content-top');
  });
});
