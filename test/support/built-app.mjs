// The built app (`vite build` → dist/) served by `vite preview` on a free loopback port, with the
// same /models/local/ middleware and cross-origin isolation headers as `npm start`, plus headless
// Chromium driven by puppeteer-core. Shared by the end-to-end test (test/e2e/) and the app
// benchmark (test/bench/app.mjs).

import { createServer as netServer } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, preview } from 'vite';
import puppeteer from 'puppeteer-core';

export const root = resolve(fileURLToPath(import.meta.url), '../../..');

function freePort() {
  return new Promise((res, rej) => {
    const s = netServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); });
    s.on('error', rej);
  });
}

/** Builds into `outDir` (default dist/) and serves it. Returns the origin and a close(). */
export async function serveBuiltApp({ outDir = 'dist', skipBuild = false } = {}) {
  const configFile = join(root, 'vite.config.ts');
  if (!skipBuild) await build({ root, configFile, logLevel: 'warn', build: { outDir } });
  const port = await freePort();
  const server = await preview({ root, configFile, logLevel: 'warn', build: { outDir }, preview: { port, strictPort: true, host: '127.0.0.1' } });
  return { origin: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.httpServer.close(() => r())) };
}

export async function launchBrowser({ webgpu = false } = {}) {
  return puppeteer.launch({
    executablePath: process.env.CHROME_PATH ?? '/usr/bin/chromium',
    headless: true,
    protocolTimeout: 300_000,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--no-first-run', '--disable-background-networking',
      ...(webgpu ? ['--enable-unsafe-webgpu', '--enable-features=Vulkan'] : [])],
  });
}

/**
 * In-page helpers (run with page.evaluate): find things inside the app's shadow roots.
 * `cell(kind)` is the element of the first cell of that kind.
 */
export const PAGE_HELPERS = `
  window.__gb = {
    app: () => document.querySelector('glassbox-app'),
    cell: (kind, n = 0) => document.querySelector('glassbox-app')?.shadowRoot?.querySelectorAll('section[data-kind="' + kind + '"] glassbox-' + kind)[n] ?? null,
    tokens: () => [...(window.__gb.cell('prompt')?.shadowRoot?.querySelectorAll('[data-testid=tokens] .tok') ?? [])].map((t) => Number(t.dataset.id)),
    modelDrawn: () => !!window.__gb.cell('model')?.shadowRoot?.querySelector('[data-testid=layers]') && window.__gb.tokens().length > 0,
  };`;

/** A page function (as source, for page.evaluate): resolves when every cell of the app is
 *  computed and drawn and a frame has been painted; returns performance.now(). */
export const ALL_DRAWN = `async () => {
  const app = window.__gb.app();
  await app.idle();
  const cells = [...app.shadowRoot.querySelectorAll('section[data-cell] > *:last-child')];
  await Promise.all(cells.map((c) => c.updateComplete));
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  return performance.now();
}`;

/** A new page of `context` on `origin + '/' + query`, the helpers installed, page errors kept in page.errors. */
export async function openPage(context, origin, query, { scheme = 'light', height = 860 } = {}) {
  const page = await context.newPage();
  await page.setViewport({ width: 1120, height });
  await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: scheme }]);
  await page.evaluateOnNewDocument(PAGE_HELPERS);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(origin + '/' + query, { waitUntil: 'load' });
  page.errors = errors;
  return page;
}

/** Waits for `fn` (a page function returning truthy) with a clear message on timeout. */
export async function waitFor(page, fn, what, timeout = 60_000, ...args) {
  try {
    return await page.waitForFunction(fn, { timeout, polling: 50 }, ...args);
  } catch (e) {
    throw new Error(`timed out after ${timeout} ms waiting for ${what}: ${e.message.split('\n')[0]}`);
  }
}
