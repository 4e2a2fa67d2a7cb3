#!/usr/bin/env node
// Screenshots of the app with stories260K loaded, light and dark: starts the Vite dev server on a
// free port, drives headless Chromium (puppeteer-core, already installed by web-test-runner) and
// writes test/output/screenshots/app-{light,dark}.png. `node test/run.mjs --screenshots` runs it;
// `--docs` also copies the light one to docs/app.png (the README's picture).
//   node test/e2e/screenshots.mjs [--docs]

import { createServer as netServer } from 'node:net';
import { mkdirSync, copyFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'vite';
import puppeteer from 'puppeteer-core';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
const outDir = join(root, 'test/output/screenshots');
const MODEL = '/models/local/tinystories-260k/stories260K.gguf';

function freePort() {
  return new Promise((res, rej) => {
    const s = netServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); });
    s.on('error', rej);
  });
}

/** True once the model cell inside the app's shadow root shows its layer count. */
function modelDrawn() {
  const app = document.querySelector('glassbox-app');
  const model = app?.shadowRoot?.querySelector('glassbox-model');
  const prompt = app?.shadowRoot?.querySelector('glassbox-prompt');
  return !!model?.shadowRoot?.querySelector('[data-testid=layers]') && (prompt?.shadowRoot?.querySelectorAll('.tok').length ?? 0) > 0;
}

const port = await freePort();
const server = await createServer({ root, configFile: join(root, 'vite.config.ts'), logLevel: 'warn', server: { port, strictPort: true, host: '127.0.0.1' } });
await server.listen();
const browser = await puppeteer.launch({
  executablePath: process.env.CHROME_PATH ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--no-first-run'],
});
const shots = [];
try {
  mkdirSync(outDir, { recursive: true });
  for (const scheme of ['light', 'dark']) {
    const page = await browser.newPage();
    await page.setViewport({ width: 1120, height: 820, deviceScaleFactor: 1 });
    await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: scheme }]);
    // A fresh browser profile: the welcome notebook, with the local stories260K on the CPU.
    await page.goto(`http://127.0.0.1:${port}/?model=${MODEL}&backend=cpu`, { waitUntil: 'load', timeout: 60000 });
    await page.waitForFunction(modelDrawn, { timeout: 60000, polling: 100 });
    await new Promise((r) => setTimeout(r, 300));
    const file = join(outDir, `app-${scheme}.png`);
    await page.screenshot({ path: file });
    shots.push(file);
    console.log(`${file} (${(statSync(file).size / 1024).toFixed(0)} KiB)`);
    if (scheme === 'light') {
      // The model picker open: the catalog with sizes and licenses, local and cached models.
      await page.evaluate(() => document.querySelector('glassbox-app').shadowRoot.querySelector('[data-testid=model-button]').click());
      await page.waitForFunction(() => (document.querySelector('glassbox-app').shadowRoot.querySelector('glassbox-model-picker')
        ?.shadowRoot?.querySelectorAll('li').length ?? 0) > 3, { timeout: 20000, polling: 100 });
      const picker = join(outDir, 'app-models.png');
      await page.screenshot({ path: picker });
      console.log(picker);
    }
    await page.close();
  }
  if (process.argv.includes('--docs')) {
    mkdirSync(join(root, 'docs'), { recursive: true });
    copyFileSync(shots[0], join(root, 'docs/app.png'));
  }
} finally {
  await browser.close();
  await server.close();
}
