// The demos (demos/*.md) in the BUILT app, in headless Chromium with stories260K on the CPU: each
// opens at ?demo=<slug>, every cell computes and draws without an error (no .error box, no
// problems list, no unknown cell, every visual cell has a figure), and a screenshot of each is
// saved in test/output/screenshots/ (demo-<slug>.png, the whole page, and cell-<slug>.png, its
// first visual cell). GLASSBOX_DOCS=1 also copies the cell pictures to docs/cells/ (the README)
// and half-size thumbnails to docs/demos/ (the gallery). Then the gallery opens a demo, and the
// welcome notebook shows its first-run banner (model, backend and why) and a keyboard tour.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, copyFileSync, statSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { serveBuiltApp, launchBrowser, waitFor, root, openPage } from '../support/built-app.mjs';

const MODEL = '/models/local/tinystories-260k/stories260K.gguf';
const shots = join(root, 'test/output/screenshots');
const docs = !!process.env.GLASSBOX_DOCS;
const slugs = readdirSync(join(root, 'demos')).filter((f) => f.endsWith('.md') && f !== 'README.md').map((f) => f.slice(0, -3)).sort();
let server, browser;

before(async () => {
  mkdirSync(shots, { recursive: true });
  if (docs) { mkdirSync(join(root, 'docs/demos'), { recursive: true }); mkdirSync(join(root, 'docs/cells'), { recursive: true }); }
  server = await serveBuiltApp({ outDir: 'test/output/dist-demos' });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.close();
});

const open = (context, query) => openPage(context, server.origin, query, { height: 760 });

/** Every cell's state, and what its element drew: errors, figures. */
const REPORT = () => {
  const app = window.__gb.app(), root = app.shadowRoot;
  return [...root.querySelectorAll('section[data-cell]')].map((s) => {
    const el = s.querySelector(`glassbox-${s.dataset.kind}`);
    const sr = el?.shadowRoot;
    const err = [...(sr?.querySelectorAll('.error') ?? []), ...s.querySelectorAll('.problems')].map((e) => e.textContent.trim());
    return { id: s.dataset.cell, kind: s.dataset.kind, tag: el?.tagName.toLowerCase() ?? null, err,
      figure: !!sr?.querySelector('svg, canvas, [data-testid=tokens]'), status: app.states?.get?.(s.dataset.cell)?.status ?? null };
  });
};

/** Every cell has its element and none is still computing or waiting. */
const EVERY_CELL_DRAWN = () => ![...window.__gb.app().shadowRoot.querySelectorAll('section[data-cell]')].some((s) => {
  const sr = s.querySelector(`glassbox-${s.dataset.kind}`)?.shadowRoot;
  return !sr || /Computing|Waiting for the prompt|updating…/.test(sr.textContent ?? '');
});

for (const slug of slugs) {
  test(`demo ${slug}: every cell renders without an error on stories260K (screenshot saved)`, async () => {
    const ctx = await browser.createBrowserContext();
    const page = await open(ctx, `?demo=${slug}&model=${MODEL}&backend=cpu`);
    await waitFor(page, () => window.__gb.app()?.model && window.__gb.app().doc, 'the model and the demo');
    await page.evaluate(async () => { await window.__gb.app().idle(); await window.__gb.app().updateComplete; });
    await waitFor(page, EVERY_CELL_DRAWN, 'every cell drawn', 120_000);
    const title = await page.evaluate(() => window.__gb.app().doc.notebook.frontMatter.values.title);
    assert.ok(title && title.length > 3, `${slug} opened (title ${title})`);
    const cells = await page.evaluate(REPORT);
    assert.ok(cells.length >= 4, `${slug}: ${cells.length} cells`);
    for (const c of cells) {
      assert.deepEqual(c.err, [], `${slug}: cell ${c.id} (${c.kind}) shows an error`);
      assert.notEqual(c.kind, 'unknown', `${slug}: cell ${c.id} is an unknown cell`);
      assert.equal(c.tag, `glassbox-${c.kind}`, `${slug}: cell ${c.id} has its element`);
      if (!['markdown', 'generate', 'model'].includes(c.kind)) assert.ok(c.figure, `${slug}: cell ${c.id} (${c.kind}) drew a figure`);
    }
    assert.deepEqual(page.errors, []);
    const file = join(shots, `demo-${slug}.png`);
    await page.screenshot({ path: file, fullPage: true });
    assert.ok(statSync(file).size > 10_000, `${file} is a real picture`);
    // the first visual cell (else the prompt): the README's picture and the gallery's thumbnail
    const box = await page.evaluate(() => {
      const root = window.__gb.app().shadowRoot, all = [...root.querySelectorAll('section[data-cell]')];
      root.querySelector('header').style.position = 'static';          // not over the cell
      const s = all.find((x) => !['markdown', 'prompt', 'model', 'generate'].includes(x.dataset.kind)) ?? all.find((x) => x.dataset.kind === 'prompt');
      window.scrollTo(0, 0);
      const r = s.getBoundingClientRect();
      return { x: r.left, y: r.top, width: r.width, height: Math.min(r.height, r.width * 0.625) };
    });
    const cell = join(shots, `cell-${slug}.png`);
    await page.screenshot({ path: cell, clip: box, captureBeyondViewport: true });
    if (docs) {
      copyFileSync(cell, join(root, 'docs/cells', `${slug}.png`));
      await page.setViewport({ width: 1120, height: 760, deviceScaleFactor: 0.4 });
      await page.screenshot({ path: join(root, 'docs/demos', `${slug}.png`), clip: box, captureBeyondViewport: true });
    }
    await ctx.close();
  });
}

test('the gallery lists every demo with a thumbnail, and opening one loads that notebook', async () => {
  const ctx = await browser.createBrowserContext();
  const page = await open(ctx, `?gallery&model=${MODEL}&backend=cpu`);
  await waitFor(page, () => window.__gb.app()?.shadowRoot?.querySelector('[data-testid=gallery]'), 'the gallery panel');
  await waitFor(page, () => [...window.__gb.app().shadowRoot.querySelectorAll('[data-testid=gallery] img')].every((i) => i.complete), 'the thumbnails');
  const cards = await page.evaluate(() => [...window.__gb.app().shadowRoot.querySelectorAll('[data-testid=gallery] a[data-demo]')]
    .map((a) => ({ slug: a.dataset.demo, href: a.getAttribute('href'), img: a.querySelector('img').naturalWidth, title: a.querySelector('b').textContent })));
  assert.deepEqual(cards.map((c) => c.slug).sort(), slugs);
  for (const c of cards) {
    assert.ok(c.img > 0, `${c.slug}: the thumbnail loaded`);
    assert.match(c.href, new RegExp(`demo=${c.slug}.*model=`), `${c.slug}: the link keeps the model`);
  }
  await Promise.all([
    page.waitForNavigation({ waitUntil: 'load' }),
    page.evaluate(() => window.__gb.app().shadowRoot.querySelector('a[data-demo="induction-heads"]').click()),
  ]);
  await waitFor(page, () => window.__gb.app()?.doc?.notebook.frontMatter?.values.title === 'Induction heads', 'the induction demo');
  const sort = await page.evaluate(() => window.__gb.app().doc.text.includes('sort: induction'));
  assert.equal(sort, true);
  // a link in a demo's prose to another demo opens it in the app
  await waitFor(page, () => !!window.__gb.cell('markdown')?.shadowRoot?.querySelector('a[href="attention.md"]')
    || [...window.__gb.app().shadowRoot.querySelectorAll('glassbox-markdown')].some((m) => m.shadowRoot?.querySelector('a[href="attention.md"]')), 'a link to attention.md');
  await page.evaluate(() => window.__gb.app().ready);
  await Promise.all([
    page.waitForNavigation({ waitUntil: 'load' }),
    page.evaluate(() => [...window.__gb.app().shadowRoot.querySelectorAll('glassbox-markdown')].map((m) => m.shadowRoot?.querySelector('a[href="attention.md"]')).find(Boolean).click()),
  ]);
  assert.match(page.url(), /[?&]demo=attention&model=/, 'the link became a demo address with the model');
  await waitFor(page, () => window.__gb.app()?.doc?.notebook.frontMatter?.values.title === 'Where does the model look?', `the attention demo (at ${page.url()})`);
  // back to the induction demo, which the page left while its model was loading (from the
  // back-forward cache, where it loads its model again, or afresh): every cell draws
  await page.goBack();
  await waitFor(page, () => window.__gb.app()?.doc?.notebook.frontMatter?.values.title === 'Induction heads' && window.__gb.app().model, 'the induction demo and its model after going back');
  await page.evaluate(async () => { await window.__gb.app().idle(); });
  await waitFor(page, EVERY_CELL_DRAWN, 'every cell of the induction demo drawn after going back', 120_000);
  for (const c of await page.evaluate(REPORT)) assert.deepEqual(c.err, [], `after going back: cell ${c.id} (${c.kind}) shows an error`);
  assert.deepEqual(page.errors, []);
  await ctx.close();
});

test('first run: the welcome notebook names its model and backend, and the tour steps with the keyboard', async () => {
  const ctx = await browser.createBrowserContext();
  const page = await open(ctx, `?model=${MODEL}&backend=cpu`);
  await waitFor(page, () => window.__gb.app()?.shadowRoot?.querySelector('[data-testid=first-run]'), 'the first-run banner');
  const why = await (await waitFor(page, () => window.__gb.app().shadowRoot.querySelector('[data-testid=backend-why]')?.textContent, 'the backend and why')).jsonValue();
  assert.match(why.replace(/\s+/g, ' '), /Running on the CPU: .{6,}/);
  await page.evaluate(() => window.__gb.app().shadowRoot.querySelector('[data-testid=tour-button]').click());
  await waitFor(page, () => window.__gb.app().shadowRoot.activeElement?.dataset?.testid === 'tour', 'focus on the tour');
  const step = () => page.evaluate(() => {
    const r = window.__gb.app().shadowRoot;
    return { count: r.querySelector('[data-testid=tour] .tour-count')?.textContent ?? null, target: r.querySelector('.tour-target')?.dataset?.kind ?? r.querySelector('.tour-target')?.tagName ?? null };
  });
  assert.deepEqual(await step(), { count: 'Tour · 1 of 5', target: 'HEADER' });
  await page.keyboard.press('ArrowRight');
  await page.keyboard.press('ArrowRight');
  assert.deepEqual(await step(), { count: 'Tour · 3 of 5', target: 'prompt' });
  await page.keyboard.press('ArrowRight');
  const visual = await step();
  assert.equal(visual.count, 'Tour · 4 of 5');
  assert.ok(!['markdown', 'prompt', 'model'].includes(visual.target), `step 4 points at a visual cell (${visual.target})`);
  await page.keyboard.press('Escape');
  await waitFor(page, () => !window.__gb.app().shadowRoot.querySelector('[data-testid=tour]'), 'the tour closed');
  const focused = await page.evaluate(() => window.__gb.app().shadowRoot.activeElement?.dataset?.testid);
  assert.equal(focused, 'tour-button', 'focus goes back to the banner\'s tour button');
  // the ? panel starts it too
  await page.evaluate(() => window.__gb.app().shadowRoot.querySelector('button[aria-label="Keyboard shortcuts"]').click());
  await page.evaluate(() => window.__gb.app().shadowRoot.querySelector('[data-testid=tour-help]').click());
  assert.equal((await step()).count, 'Tour · 1 of 5');
  await page.keyboard.press('Escape');
  await page.screenshot({ path: join(shots, 'first-run.png') });
  assert.deepEqual(page.errors, []);
  await ctx.close();
});

test('first run with nothing asked: the banner offers the catalog default with its size (offline, the download fails visibly)', async () => {
  const ctx = await browser.createBrowserContext();
  const page = await open(ctx, '');
  const text = await (await waitFor(page, () => window.__gb.app()?.shadowRoot?.querySelector('[data-testid=model-size]') && window.__gb.app().shadowRoot.querySelector('[data-testid=first-run]').textContent, 'the banner with a size')).jsonValue();
  assert.match(text.replace(/\s+/g, ' '), /runs TinyStories 260K \(F32\) \(1\.1 MiB\)/);
  // the cells wait with placeholders while there is no model
  const note = await page.evaluate(() => window.__gb.cell('attention')?.shadowRoot?.textContent ?? '');
  assert.match(note, /Load a model to see its attention|Waiting for the prompt/);
  await ctx.close();
});
