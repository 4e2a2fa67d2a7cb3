// The built site's content security policy (issue 11): `vite preview` sends it with every response
// and the built index.html carries the same one as a <meta> (for static hosts without headers);
// script-src allows no inline script and no eval; a page with an inline script, served by the
// same server, is blocked (the script does not run, a securitypolicyviolation event fires, and
// eval from an allowed script throws); and the app itself still loads stories260K and draws every
// cell of the welcome notebook without a single violation.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serveBuiltApp, launchBrowser, PAGE_HELPERS, waitFor, root } from '../support/built-app.mjs';
import { contentSecurityPolicy } from '../../src/app/local-models.mjs';

const OUT = 'test/output/dist-csp';
const MODEL = '/models/local/tinystories-260k/stories260K.gguf';
let server, browser;

before(async () => {
  server = await serveBuiltApp({ outDir: OUT });
  // A page that tries to run script every way the policy forbids, served by the same preview server.
  const dist = join(root, OUT);
  writeFileSync(join(dist, 'csp-probe.js'), `
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__violations.push({ directive: e.effectiveDirective, blocked: e.blockedURI, sample: e.sample }));
    try { eval('window.__evalRan = true'); } catch (e) { window.__evalError = e.name; }
    try { new Function('window.__functionRan = true')(); } catch (e) { window.__functionError = e.name; }
    try { setTimeout('window.__timeoutStringRan = true', 0); } catch (e) { window.__timeoutError = e.name; }
  `);
  writeFileSync(join(dist, 'csp-probe.html'), `<!doctype html><html><head><meta charset="utf-8">
    <script src="/csp-probe.js"></script></head><body>
    <script>window.__inlineRan = true;</script>
    <img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" onload="window.__handlerRan = true" onerror="window.__handlerRan = true">
    <a id="js" href="javascript:window.__jsUrlRan = true">link</a>
    <p id="done">probe</p></body></html>`);
  // The notebook the last test opens: the visual cells that run the model.
  writeFileSync(join(dist, 'csp-notebook.md'), [
    '---', 'title: CSP', `model: ${MODEL}`, '---', '# Under the CSP', '',
    '```prompt', 'Once upon a time there was a cat', '```', '',
    '```model', '```', '',
    '```attention', 'layer: 1', '```', '',
    '```next-token', '```', '',
    '```logit-lens', '```', '',
  ].join('\n'));
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.close();
});

/** The directives of a policy as a map: name → sources. */
function directives(policy) {
  return new Map(policy.split(';').map((d) => d.trim().split(/\s+/)).filter((p) => p[0]).map(([k, ...v]) => [k.toLowerCase(), v]));
}

test('the preview server sends the CSP with every response; script-src has no unsafe-inline and no unsafe-eval', async () => {
  for (const path of ['/', '/index.html', '/csp-probe.html']) {
    const res = await fetch(server.origin + path);
    assert.equal(res.status, 200, path);
    const policy = res.headers.get('content-security-policy');
    assert.ok(policy, `${path} has a Content-Security-Policy header`);
    const d = directives(policy);
    const script = d.get('script-src');
    assert.ok(script, 'script-src is set');
    for (const bad of ["'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", 'data:', 'blob:', '*', 'http:', 'https:']) {
      assert.ok(!script.includes(bad), `script-src holds no ${bad}: ${script.join(' ')}`);
    }
    assert.deepEqual(script, ["'self'", "'wasm-unsafe-eval'"]);
    assert.deepEqual(d.get('object-src'), ["'none'"]);
    assert.deepEqual(d.get('base-uri'), ["'none'"]);
    assert.ok(!(d.get('worker-src') ?? []).includes('blob:'), 'no blob: workers');
    assert.equal(res.headers.get('cross-origin-embedder-policy'), 'require-corp', 'the isolation headers are still sent');
  }
  // The worker script gets the policy too (a worker's policy comes from its own response).
  const html = await (await fetch(server.origin + '/')).text();
  const entry = /<script type="module"[^>]*src="([^"]+)"/.exec(html)?.[1];
  assert.ok(entry, 'the built page loads its entry as an external module');
  const res = await fetch(server.origin + entry);
  assert.ok(res.headers.get('content-security-policy'), 'scripts are served with the CSP');
});

test('the built index.html carries the same policy as a <meta>, and no inline script', () => {
  const html = readFileSync(join(root, OUT, 'index.html'), 'utf8');
  const meta = /<meta http-equiv="Content-Security-Policy" content="([^"]+)">/.exec(html)?.[1];
  assert.equal(meta, contentSecurityPolicy({ meta: true }));
  const scripts = [...html.matchAll(/<script\b([^>]*)>([^]*?)<\/script>/g)];
  assert.ok(scripts.length > 0);
  for (const [, attrs, body] of scripts) {
    assert.match(attrs, /\bsrc=/, 'every script is external');
    assert.equal(body.trim(), '');
  }
  assert.doesNotMatch(html, /\son[a-z]+=/i, 'no event handler attributes');
});

test('a page with an inline script, an event handler and a javascript: URL runs none of them; eval throws', async () => {
  const ctx = await browser.createBrowserContext();
  const page = await ctx.newPage();
  await page.goto(server.origin + '/csp-probe.html', { waitUntil: 'load' });
  await page.click('#js');
  await waitFor(page, () => window.__violations?.length >= 3, 'the securitypolicyviolation events', 10_000);
  const r = await page.evaluate(() => ({
    inline: window.__inlineRan === true, handler: window.__handlerRan === true, jsUrl: window.__jsUrlRan === true,
    evalRan: window.__evalRan === true, evalError: window.__evalError, functionRan: window.__functionRan === true,
    functionError: window.__functionError, timeoutRan: window.__timeoutStringRan === true,
    violations: window.__violations,
  }));
  assert.equal(r.inline, false, 'the inline script did not run');
  assert.equal(r.handler, false, 'the onload/onerror handler did not run');
  assert.equal(r.jsUrl, false, 'the javascript: URL did not run');
  assert.equal(r.evalRan, false, 'eval did not run');
  assert.equal(r.evalError, 'EvalError');
  assert.equal(r.functionRan, false, 'new Function did not run');
  assert.equal(r.functionError, 'EvalError');
  assert.equal(r.timeoutRan, false, 'setTimeout with a string did not run');
  const dirs = r.violations.map((v) => v.directive);
  assert.ok(dirs.filter((d) => d === 'script-src-elem').length >= 1, `an inline <script> violation: ${JSON.stringify(r.violations)}`);
  assert.ok(dirs.includes('script-src-attr'), 'an event-handler violation');
  assert.ok(r.violations.some((v) => v.blocked === 'eval'), 'an eval violation');
  assert.ok(r.violations.some((v) => v.blocked === 'inline'), 'an inline violation');
  await ctx.close();
});

test('the app loads stories260K and draws every cell under the CSP, with no violation', async () => {
  const ctx = await browser.createBrowserContext();
  const page = await ctx.newPage();
  await page.evaluateOnNewDocument(PAGE_HELPERS);
  await page.evaluateOnNewDocument(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(`${e.effectiveDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
  });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) errors.push(m.text()); });
  await page.goto(`${server.origin}/?notebook=/csp-notebook.md&model=${MODEL}&backend=cpu`, { waitUntil: 'load' });
  await waitFor(page, () => window.__gb.modelDrawn(), 'the model cell and the prompt tokens');
  // Every visual kind computed and drew its figure (WebAssembly compiled in the worker).
  const kinds = ['attention', 'next-token', 'logit-lens'];
  await waitFor(page, (ks) => ks.every((k) => window.__gb.cell(k)?.shadowRoot?.querySelector('svg, canvas')), 'the visual cells', 120_000, kinds);
  const state = await page.evaluate(() => ({ isolated: crossOriginIsolated, violations: window.__violations }));
  assert.equal(state.isolated, true, 'still cross-origin isolated (threads)');
  assert.deepEqual(state.violations, [], 'no CSP violation while the app loads and draws');
  assert.deepEqual(errors, []);
  await ctx.close();
});
