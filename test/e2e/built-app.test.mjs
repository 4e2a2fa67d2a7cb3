// The BUILT app end to end (`vite build` output served by `vite preview`, as a user's static host
// would), in headless Chromium: stories260K from /models/local/, typing re-tokenizes, a reload
// restores the notebook exactly (IndexedDB), a share link opens read-only in a fresh profile, and
// screenshots in both themes are saved as artifacts in test/output/screenshots/
// (GLASSBOX_DOCS=1 also copies the light one to docs/app.png, the README's picture).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, copyFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { serveBuiltApp, launchBrowser, PAGE_HELPERS, waitFor, root, openPage } from '../support/built-app.mjs';

const MODEL = '/models/local/tinystories-260k/stories260K.gguf';
const shots = join(root, 'test/output/screenshots');
let server, browser;

before(async () => {
  server = await serveBuiltApp({ outDir: 'test/output/dist' });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.close();
});

const open = (context, query = `?model=${MODEL}&backend=cpu`, scheme = 'light') => openPage(context, server.origin, query, { scheme });

async function typePrompt(page, text) {
  await page.evaluate((t) => {
    const ta = window.__gb.cell('prompt').shadowRoot.querySelector('textarea');
    ta.value = t;
    ta.dispatchEvent(new Event('input', { bubbles: true, composed: true }));
  }, text);
}

test('the built app loads stories260K, draws the model cell and the prompt\'s tokens, and re-tokenizes on typing', async () => {
  const ctx = await browser.createBrowserContext();
  const page = await open(ctx);
  await waitFor(page, () => window.__gb.modelDrawn(), 'the model cell and the prompt tokens');
  const layers = await page.evaluate(() => window.__gb.cell('model').shadowRoot.querySelector('[data-testid=layers]').textContent);
  assert.match(layers, /5$/, 'stories260K has 5 layers');
  await typePrompt(page, 'The cat sat');
  // The chips (BOS, then pieces that cover the text exactly) follow the new text.
  await waitFor(page, () => [...window.__gb.cell('prompt').shadowRoot.querySelectorAll('[data-testid=tokens] .tok:not(.special)')]
    .map((t) => [...t.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent).join('')).join('') === 'The·cat·sat', 'the chips of "The cat sat"');
  assert.equal((await page.evaluate(() => window.__gb.tokens()))[0], 1, 'BOS first');
  assert.deepEqual(page.errors, []);
  await ctx.close();
});

test('a reload restores the edited notebook exactly', async () => {
  const ctx = await browser.createBrowserContext();
  const page = await open(ctx);
  await waitFor(page, () => window.__gb.modelDrawn(), 'the first draw');
  await typePrompt(page, 'Lily and Tom went to the park');
  await waitFor(page, () => window.__gb.tokens().length > 6, 'the new prompt\'s tokens');
  const before = await page.evaluate(async () => { await window.__gb.app().flush(); return window.__gb.app().doc.text; });
  await page.reload({ waitUntil: 'load' });
  await waitFor(page, () => window.__gb.app()?.doc?.text?.includes('Lily and Tom'), 'the restored notebook');
  const afterText = await page.evaluate(() => window.__gb.app().doc.text);
  assert.equal(afterText, before);
  await ctx.close();
});

test('a share link opens read-only in a fresh profile and offers its model instead of loading it', async () => {
  const ctx = await browser.createBrowserContext();
  const page = await open(ctx);
  await waitFor(page, () => window.__gb.modelDrawn(), 'the first draw');
  await typePrompt(page, 'A shared prompt');
  await page.evaluate(() => window.__gb.app().shadowRoot.querySelector('button[title^="Copy a link"]').click());
  const url = await (await waitFor(page, () => window.__gb.app().shadowRoot.querySelector('[data-testid=share-url]')?.value, 'the share link')).jsonValue();
  assert.match(url, /#nb=/);
  const fresh = await browser.createBrowserContext();
  const other = await fresh.newPage();
  await other.evaluateOnNewDocument(PAGE_HELPERS);
  await other.goto(url, { waitUntil: 'load' });
  await waitFor(other, () => window.__gb.app()?.doc?.readonly === true && window.__gb.app().doc.text.includes('A shared prompt'), 'the shared notebook, read-only');
  // the offer appears once the catalog (models.json) is read: wait for it, then check nothing loaded
  await waitFor(other, () => !!window.__gb.app().shadowRoot.querySelector('[role=alertdialog]'), 'the offer to load the shared notebook\'s model');
  const loaded = await other.evaluate(() => !!window.__gb.app().model);
  assert.equal(loaded, false, 'the shared notebook\'s model is offered, not loaded');
  await ctx.close();
  await fresh.close();
});

test('screenshots in the light and dark themes (artifacts in test/output/screenshots/)', async () => {
  mkdirSync(shots, { recursive: true });
  for (const scheme of ['light', 'dark']) {
    const ctx = await browser.createBrowserContext();
    const page = await open(ctx, `?model=${MODEL}&backend=cpu`, scheme);
    await waitFor(page, () => window.__gb.modelDrawn(), 'the first draw');
    await new Promise((r) => setTimeout(r, 300));
    const bg = await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
    assert.equal(bg, scheme === 'dark' ? 'rgb(21, 21, 23)' : 'rgb(251, 250, 247)');
    const file = join(shots, `app-${scheme}.png`);
    await page.screenshot({ path: file, fullPage: true });
    assert.ok(statSync(file).size > 10_000, `${file} is a real picture`);
    if (scheme === 'light' && process.env.GLASSBOX_DOCS) copyFileSync(file, join(root, 'docs/app.png'));
    await ctx.close();
  }
});
