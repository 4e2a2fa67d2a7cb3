// Snapshot tests of plot functions (Node): an SVG with its numbers rounded is compared with the
// committed file test/snapshots/<name>.svg. On a mismatch the new output is written beside it as
// <name>-changed.svg (look at both, then rename to accept) and the test fails. A missing snapshot
// is written and fails under CI (a snapshot must be committed), passes with a note otherwise.

import { existsSync, mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { parseHTML } from 'linkedom';

const DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../snapshots');

/** A DOM document for plot functions that build elements (Observable Plot). */
export function testDocument(): Document {
  return parseHTML('<!doctype html><html><body></body></html>').document as unknown as Document;
}

/** Numbers with more than 2 decimals rounded to 2; Plot's random class names made stable. */
export function normalizeSvg(svg: string): string {
  return svg
    .replace(/-?\d+\.\d{3,}(e-?\d+)?/g, (m) => String(Math.round(Number(m) * 100) / 100))
    .replace(/plot-[0-9a-f]{6}/g, 'plot-x')
    .replace(/></g, '>\n<')
    .trim() + '\n';
}

export function matchSnapshot(name: string, svg: string): void {
  const file = resolve(DIR, `${name}.svg`);
  const changed = resolve(DIR, `${name}-changed.svg`);
  const got = normalizeSvg(svg);
  mkdirSync(DIR, { recursive: true });
  if (!existsSync(file)) {
    writeFileSync(file, got);
    if (process.env['CI']) assert.fail(`snapshot ${name}.svg was missing (written now): commit it`);
    console.log(`# wrote new snapshot test/snapshots/${name}.svg`);
    return;
  }
  const want = readFileSync(file, 'utf8');
  if (want === got) { rmSync(changed, { force: true }); return; }
  writeFileSync(changed, got);
  assert.fail(`snapshot ${name}.svg differs: the new output is in test/snapshots/${name}-changed.svg`);
}
