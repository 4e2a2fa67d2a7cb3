#!/usr/bin/env node
// `npm test`: the type check, the Node tests (node:test) and the browser tests (web-test-runner in
// headless Chromium with WebGPU), then the end-to-end tests of the built app (test/e2e/*.test.mjs: vite build + preview + Chromium),
//   which save the app's screenshots in test/output/screenshots/ (GLASSBOX_DOCS=1: docs/app.png too).
// and one line counting every test that ran:  N passed, N failed, N skipped
// Flags: --node, --browser or --e2e to run one part; --no-typecheck; other arguments filter test files.

import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join, resolve, relative } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(import.meta.url), '../..');
const args = process.argv.slice(2);
const only = args.includes('--node') ? 'node' : args.includes('--browser') ? 'browser' : args.includes('--e2e') ? 'e2e' : 'all';
const typecheck = !args.includes('--no-typecheck') && only === 'all';
const filters = args.filter((a) => !a.startsWith('--'));
const totals = { passed: 0, failed: 0, skipped: 0 };
const problems = [];

function run(cmd, argv, opts = {}) {
  return new Promise((res) => {
    const child = spawn(cmd, argv, { cwd: root, stdio: 'inherit', ...opts });
    child.on('close', (code, signal) => res(code ?? (signal ? 1 : 0)));
  });
}

function walk(dir, pred, out = []) {
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, pred, out);
    else if (pred(p)) out.push(p);
  }
  return out;
}
/** Runs test files with Node's runner (TAP counts go to a file) and adds them to the totals. */
async function nodeTests(what, files, tapName) {
  const tap = join(tmp, tapName);
  const code = await run(process.execPath, [
    '--import', 'tsx', '--test',
    '--test-reporter=spec', '--test-reporter-destination=stdout',
    '--test-reporter=tap', `--test-reporter-destination=${tap}`,
    ...files.map((f) => relative(root, f)),
  ]);
  const text = existsSync(tap) ? readFileSync(tap, 'utf8') : '';
  const num = (k) => Number((new RegExp(`^# ${k} (\\d+)$`, 'm').exec(text) ?? [])[1] ?? NaN);
  const [pass, fail, skip, todo, cancelled] = ['pass', 'fail', 'skipped', 'todo', 'cancelled'].map(num);
  if (Number.isNaN(pass)) {
    problems.push(`${what} did not report (exit ${code})`);
    totals.failed++;
    return;
  }
  totals.passed += pass;
  totals.failed += fail + (cancelled || 0);
  totals.skipped += skip + (todo || 0);
  if (code !== 0 && fail + (cancelled || 0) === 0) { problems.push(`${what}: the runner exited ${code}`); totals.failed++; }
}

const matches = (f) => filters.length === 0 || filters.some((s) => f.includes(s));

const tmp = mkdtempSync(join(tmpdir(), 'glassbox-test-'));

if (typecheck) {
  console.log('\n== type check (tsc --noEmit)');
  const code = await run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '--noEmit', '-p', '.']);
  if (code !== 0) problems.push('type check failed');
  else console.log('type check: ok');
}

if (only === 'all' || only === 'node') {
  const files = walk(join(root, 'test/node'), (p) => p.endsWith('.test.ts')).filter(matches);
  console.log(`\n== Node tests (${files.length} files)`);
  if (files.some((f) => f.includes('llamacpp'))) {
    // The llama.cpp reference (not a package.json dependency: test/support/llamacpp.mjs). When it
    // cannot be installed the parity test fails with the reason rather than skipping.
    const { ensureLlamaCpp, LLAMACPP_VERSION } = await import('./support/llamacpp.mjs');
    try {
      await ensureLlamaCpp();
      console.log(`llama.cpp reference: node-llama-cpp ${LLAMACPP_VERSION} (CPU binary) in .cache/llamacpp`);
    } catch (e) {
      const reason = String(e?.message ?? e).split('\n')[0];
      process.env.GLASSBOX_LLAMACPP_ERROR = String(e?.message ?? e);
      console.log(`llama.cpp reference: NOT available, the parity test will fail (${reason})`);
    }
  }
  if (files.length > 0) await nodeTests('Node tests', files, 'node.tap');
}

if (only === 'all' || only === 'browser') {
  const files = walk(root, (p) => p.endsWith('.test.ts') && /(^|\/)(test\/browser|kernels|cells)\//.test(relative(root, p))).filter(matches);
  console.log(`\n== Browser tests (${files.length} files, headless Chromium)`);
  if (files.length > 0) {
    const chrome = process.env.CHROME_PATH ?? '/usr/bin/chromium';
    if (!existsSync(chrome)) {
      problems.push(`no Chromium at ${chrome}: install it (apt-get install chromium) or set CHROME_PATH`);
      totals.failed++;
    } else {
      const countsFile = join(tmp, 'wtr.json');
      const wtr = join(root, 'node_modules/@web/test-runner/dist/bin.js');
      const fileArgs = filters.length ? ['--files', ...files.map((f) => relative(root, f))] : [];
      const code = await run(process.execPath, [wtr, '--config', 'web-test-runner.config.mjs', ...fileArgs], {
        env: { ...process.env, GLASSBOX_WTR_COUNTS: countsFile },
      });
      if (existsSync(countsFile)) {
        const c = JSON.parse(readFileSync(countsFile, 'utf8'));
        totals.passed += c.passed;
        totals.failed += c.failed + c.fileErrors;
        totals.skipped += c.skipped;
        if (code !== 0 && c.failed + c.fileErrors === 0) { problems.push(`web-test-runner exited ${code}`); totals.failed++; }
        // In CI, Chromium has WebGPU (SwiftShader): a skipped WebGPU test means the suite did not run.
        if (process.env.CI && (c.webgpuSkipped ?? 0) > 0) {
          problems.push(`${c.webgpuSkipped} WebGPU test(s) were skipped in Chromium; in CI they must run (no adapter?)`);
        }
      } else {
        problems.push(`browser tests did not report (exit ${code})`);
        totals.failed++;
      }
    }
  }
}

if (only === 'all' || only === 'e2e') {
  // The built app (vite build + vite preview) driven by puppeteer-core; saves the screenshots.
  const files = walk(join(root, 'test/e2e'), (p) => p.endsWith('.test.mjs')).filter(matches);
  console.log(`\n== End-to-end tests of the built app (${files.length} files; screenshots in test/output/screenshots/)`);
  if (files.length > 0) await nodeTests('End-to-end tests', files, 'e2e.tap');
}

rmSync(tmp, { recursive: true, force: true });
for (const p of problems) console.log(`problem: ${p}`);
if (problems.some((p) => p.startsWith('type check'))) totals.failed++;
console.log(`\n${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exit(totals.failed > 0 || problems.length > 0 ? 1 : 0);
