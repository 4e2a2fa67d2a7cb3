// The teaching notebooks (demos/*.md) and the documentation's links: every demo parses without a
// problem, every cell is a registered kind whose settings validate against the shape of EVERY
// catalog model (public/models.json: "runs with the default model and with any catalog model"),
// every cell's references resolve in the reactive graph, the gallery (src/app/gallery-data.ts) lists
// each demo once with a thumbnail that exists; and every link in demos/*.md, README.md and docs/
// resolves: relative files exist, #anchors name a heading of the target (GitHub's slugs), external
// links are https and well formed (no network here).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseNotebook } from '../../src/notebook/format.ts';
import { cellKinds, validateSettings } from '../../src/notebook/registry.ts';
import { ReactiveGraph, type CellState } from '../../src/notebook/graph.ts';
import { DEMOS } from '../../src/app/gallery-data.ts';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
const demoDir = join(root, 'demos');
const demoFiles = readdirSync(demoDir).filter((f) => f.endsWith('.md') && f !== 'README.md').sort();
const catalog = JSON.parse(readFileSync(join(root, 'public/models.json'), 'utf8')) as
  { models: { id: string; default?: boolean; shape: { layers: number; heads: number; ctx: number; vocab: number } }[] };

test('there are at least six demos, and the gallery lists each once with a thumbnail', () => {
  assert.ok(demoFiles.length >= 6, `demos: ${demoFiles.join(', ')}`);
  assert.deepEqual(DEMOS.map((d) => `${d.slug}.md`).sort(), demoFiles);
  for (const d of DEMOS) {
    assert.ok(existsSync(join(root, 'docs/demos', `${d.slug}.png`)), `docs/demos/${d.slug}.png (run the e2e tests with GLASSBOX_DOCS=1)`);
    const fm = parseNotebook(readFileSync(join(demoDir, `${d.slug}.md`), 'utf8')).frontMatter?.values;
    assert.equal(d.title, fm?.['title'], `${d.slug}: the gallery's title is the notebook's`);
    assert.equal(d.description, fm?.['description'], `${d.slug}: the gallery's description is the notebook's`);
  }
});

for (const file of demoFiles) {
  test(`demos/${file}: parses and validates against the registry for every catalog model`, async () => {
    const text = readFileSync(join(demoDir, file), 'utf8');
    const nb = parseNotebook(text);
    const fm = nb.frontMatter?.values ?? {};
    assert.equal(typeof fm['title'], 'string', 'front matter: title');
    assert.equal(typeof fm['description'], 'string', 'front matter: description (the gallery shows it)');
    assert.equal(fm['model'], 'stories260K', 'front matter: the default model');
    assert.ok(catalog.models.some((m) => m.id === fm['model']), 'the model is a catalog id');
    const kinds = nb.cells.map((c) => c.kind);
    assert.ok(kinds.filter((k) => k !== 'markdown').length >= 3, `${file} has cells: ${kinds.join(', ')}`);
    for (const c of nb.cells) {
      assert.ok(cellKinds.has(c.kind), `${file}: cell ${c.id} is of unknown kind "${c.kind}"`);
      assert.deepEqual(c.problems, [], `${file}: cell ${c.id} (${c.kind})`);
      for (const m of catalog.models) {
        const config = { nLayers: m.shape.layers, nHeads: m.shape.heads, nCtx: m.shape.ctx, vocabSize: m.shape.vocab };
        assert.deepEqual(validateSettings(cellKinds.get(c.kind)!, c.settings, { config }), [], `${file}: cell ${c.id} (${c.kind}) with ${m.id}`);
      }
    }
    // references (the prompt a cell reads, a named sampler) resolve: no cell fails before computing
    const states = new Map<string, CellState>();
    const graph = new ReactiveGraph({ compute: () => 1, onState: (id, s) => states.set(id, s) });
    graph.update(nb);
    await graph.idle();
    for (const c of nb.cells) {
      const s = states.get(c.id);
      assert.notEqual(s?.status, 'error', `${file}: cell ${c.id} (${c.kind}): ${String(s?.error)}`);
    }
    graph.dispose();
  });
}

test('the README\'s "notebook format in ten lines" is a notebook that parses without a problem', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const m = /## The notebook format in ten lines\n\n````markdown\n([\s\S]*?)\n````/.exec(readme);
  assert.ok(m, 'the section and its example');
  assert.ok(m[1]!.split('\n').length <= 12, 'about ten lines');
  const nb = parseNotebook(m[1]!);
  assert.equal(nb.frontMatter?.values['model'], 'stories260K');
  assert.deepEqual(nb.cells.filter((c) => c.kind !== 'markdown').map((c) => c.kind), ['prompt', 'attention']);
  for (const c of nb.cells) assert.deepEqual(c.problems, [], c.kind);
});

// ---------------------------------------------------------------------------------------------
// Links

/** GitHub's heading anchors: lowercase, punctuation dropped (not - and _), spaces to -, dupes -1, -2. */
export function slugs(markdown: string): Set<string> {
  const out = new Set<string>(), seen = new Map<string, number>();
  let fence: string | null = null;
  for (const line of markdown.split('\n')) {
    const f = /^\s*(`{3,}|~{3,})/.exec(line);
    if (f) { if (fence === null) fence = f[1]![0]!; else if (f[1]![0] === fence) fence = null; continue; }
    if (fence !== null) continue;
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!h) continue;
    const text = h[1]!.replace(/`/g, '').replace(/\[([^\]]*)\]\([^)]*\)/g, '$1');
    const base = text.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** Inline links and images outside code: [text](target) and ![alt](target). */
export function links(markdown: string): string[] {
  const out: string[] = [];
  let fence: string | null = null;
  for (const line of markdown.split('\n')) {
    const f = /^\s*(`{3,}|~{3,})/.exec(line);
    if (f) { if (fence === null) fence = f[1]![0]!; else if (f[1]![0] === fence) fence = null; continue; }
    if (fence !== null) continue;
    const noCode = line.replace(/`[^`]*`/g, '');
    for (const m of noCode.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) out.push(m[1]!);
  }
  return out;
}

function walk(dir: string, pred: (p: string) => boolean, out: string[] = []): string[] {
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, pred, out); else if (pred(p)) out.push(p);
  }
  return out;
}

test('slugs and links: the helpers read headings and links as GitHub does', () => {
  assert.deepEqual([...slugs('# The notebook format in ten lines\n## Tokens: how text becomes numbers\n```\n# not a heading\n```\n## A b\n## A b\n## `glassbox` CLI')],
    ['the-notebook-format-in-ten-lines', 'tokens-how-text-becomes-numbers', 'a-b', 'a-b-1', 'glassbox-cli']);
  assert.deepEqual(links('see [a](x.md#y), ![p](docs/a.png) and `[no](z.md)`\n```\n[no](w.md)\n```'), ['x.md#y', 'docs/a.png']);
});

const docs = [join(root, 'README.md'), ...demoFiles.map((f) => join(demoDir, f)), join(demoDir, 'README.md'), ...walk(join(root, 'docs'), (p) => p.endsWith('.md'))];

for (const file of docs) {
  test(`links in ${relative(root, file)} resolve`, () => {
    const text = readFileSync(file, 'utf8');
    for (const target of links(text)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) {
        if (target.startsWith('mailto:')) continue;
        assert.match(target, /^https:\/\/[a-z0-9.-]+\.[a-z]{2,}(\/[^\s]*)?$/i, `${relative(root, file)}: external link ${target} is https and well formed`);
        assert.doesNotThrow(() => new URL(target));
        continue;
      }
      assert.ok(!target.startsWith('/'), `${relative(root, file)}: ${target} is relative (absolute paths break on GitHub and in the app)`);
      const [path, anchor] = target.split('#') as [string, string | undefined];
      const dest = path === '' ? file : resolve(dirname(file), decodeURIComponent(path));
      assert.ok(existsSync(dest), `${relative(root, file)}: ${target} → ${relative(root, dest)} does not exist`);
      if (anchor !== undefined && anchor !== '') {
        assert.ok(dest.endsWith('.md') && statSync(dest).isFile(), `${relative(root, file)}: ${target}: an anchor needs a Markdown file`);
        assert.ok(slugs(readFileSync(dest, 'utf8')).has(anchor), `${relative(root, file)}: ${target}: no heading #${anchor} in ${relative(root, dest)}`);
      }
    }
  });
}
