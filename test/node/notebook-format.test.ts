// The notebook format: byte-for-byte round trips (fixtures, demos/, a generated 1 MB notebook),
// what each odd fixture parses to, and edits that rewrite only the lines they touch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseNotebook, serializeNotebook, type Notebook } from '../../src/notebook/format.ts';
import { insertCell, moveCell, removeCell, setFrontMatter, setSetting } from '../../src/notebook/edit.ts';
import { parseSettings } from '../../src/notebook/settings.ts';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
const fixtures = join(root, 'test/fixtures/notebooks');
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function readText(path: string): string {
  return utf8.decode(readFileSync(path));
}

function mdFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? mdFiles(p) : n.endsWith('.md') && n !== 'README.md' ? [p] : [];
  });
}

function roundTrip(text: string): void {
  const nb = parseNotebook(text);
  const back = serializeNotebook(nb);
  // Compare the bytes, and say where they first differ.
  const a = Buffer.from(text, 'utf8');
  const b = Buffer.from(back, 'utf8');
  if (!a.equals(b)) {
    let i = 0;
    while (i < a.length && a[i] === b[i]) i++;
    assert.fail(`round trip differs at byte ${i}: ${JSON.stringify(text.slice(Math.max(0, i - 20), i + 20))} → ${JSON.stringify(back.slice(Math.max(0, i - 20), i + 20))}`);
  }
}

const kinds = (nb: Notebook) => nb.cells.map((c) => c.kind);
const cell = (nb: Notebook, id: string) => nb.cells.find((c) => c.id === id)!;

test('every fixture notebook and every demo notebook round-trips byte for byte', () => {
  const files = [...mdFiles(fixtures), ...mdFiles(join(root, 'demos'))];
  assert.ok(files.length >= 7, `expected the fixture notebooks, found ${files.length} files`);
  for (const f of files) {
    const bytes = readFileSync(f);
    const text = utf8.decode(bytes);
    roundTrip(text);
    assert.ok(Buffer.from(serializeNotebook(parseNotebook(text)), 'utf8').equals(bytes), f);
  }
});

test('no front matter: prose, a thematic break, fences without blank lines, no final newline', () => {
  const text = readText(join(fixtures, 'no-front-matter.md'));
  const nb = parseNotebook(text);
  assert.equal(nb.frontMatter, null);
  assert.deepEqual(kinds(nb), ['markdown', 'prompt', 'attention', 'markdown', 'next-token']);
  assert.match(nb.cells[0]!.raw, /---\n\nThat line above is a thematic break/);
  assert.equal(nb.cells[1]!.settings['text'], 'Once upon a time');
  assert.equal(nb.cells[2]!.lead, '');                    // the attention fence follows the prompt's directly
  assert.equal(nb.cells[3]!.raw, 'Prose right after a fence, with no blank line.\nNo final newline here.\n');
  assert.equal(nb.cells[4]!.raw.endsWith('```'), true);
  assert.deepEqual(nb.cells[4]!.settings, { temperature: 0.5 });
  assert.equal(nb.tail, '');
});

test('nested fences: code blocks holding cell fences stay prose; longer and tilde fences are cells', () => {
  const nb = parseNotebook(readText(join(fixtures, 'nested-fences.md')));
  assert.deepEqual(nb.frontMatter?.values, { title: 'Fences inside fences', model: 'stories260K' });
  assert.deepEqual(kinds(nb), ['markdown', 'prompt', 'attention', 'next-token']);
  const prose = nb.cells[0]!.settings['text'] as string;
  for (const s of ['```prompt\nThis is not a cell', '```next-token\ntemperature: 2', '   ```prompt', 'print("a code block in prose")']) assert.ok(prose.includes(s), s);
  assert.deepEqual(nb.cells[1]!.settings, { name: 'fenced', text: 'A prompt that quotes a fence:\n```\ninside\n```\nand goes on.' });
  assert.deepEqual(nb.cells[2]!.settings, { layer: 1, heads: [0, 1] });
  assert.deepEqual(nb.cells[3]!.settings, { top_k: 5, temperature: 0.7 });
  assert.deepEqual(nb.cells.flatMap((c) => c.problems), []);
});

test('CRLF: parsed like LF, and an edit keeps CR LF on every line', () => {
  const text = readText(join(fixtures, 'crlf.md'));
  const nb = parseNotebook(text);
  assert.equal(nb.eol, '\r\n');
  assert.deepEqual(nb.frontMatter?.values, { title: 'Windows line ends', model: 'stories15M' });
  assert.deepEqual(kinds(nb), ['markdown', 'prompt', 'next-token']);
  assert.deepEqual(nb.cells[1]!.settings, { chat: true, text: 'Line one\nline two' });
  assert.equal(nb.cells[0]!.settings['text'], '# CRLF\n\nEvery line ends with CR LF.');
  assert.equal(nb.tail, '\r\n');
  let edited = setSetting(nb, 'next-token-1', 'temperature', 0.5);
  edited = setSetting(edited, 'prompt-1', 'text', 'New\nprompt');
  edited = setSetting(edited, 'next-token-1', 'min_p', 0.05);
  const out = serializeNotebook(edited);
  assert.equal(out, text.replace('temperature: 0.8   # warm', 'temperature: 0.5   # warm')
    .replace('Line one\r\nline two', 'New\r\nprompt').replace('top_k: 40\r\n', 'top_k: 40\r\nmin_p: 0.05\r\n'));
  assert.equal(out.replace(/\r\n/g, '').includes('\n'), false, 'a bare LF crept in');
});

test('unknown kinds are kept as visible unknown cells; bad settings are named', () => {
  const text = readText(join(fixtures, 'unknown-kind.md'));
  const nb = parseNotebook(text);
  assert.deepEqual(kinds(nb), ['markdown', 'prompt', 'unknown', 'unknown', 'attention', 'markdown']);
  assert.deepEqual(nb.frontMatter?.values, { title: 'From a newer version', model: 'stories260K', backend: 'cpu', tags: ['teaching', 'attention'], author: 'A. Teacher' });
  const [lens, sae] = [nb.cells[2]!, nb.cells[3]!];
  assert.equal(lens.info, 'circuit-graph');
  assert.equal(lens.raw, '```circuit-graph\nlayer: 3\nshow: [top-5, entropy]\n```\n');
  assert.match(sae.problems[0]!.message, /"sparse-autoencoder" is not a cell kind/);
  assert.throws(() => setSetting(nb, lens.id, 'layer', 4), /unknown "circuit-graph" cell/);
  const att = nb.cells[4]!;
  const msgs = att.problems.map((p) => `${p.severity} ${p.key}: ${p.message}`);
  assert.deepEqual(msgs, [
    'error layer: attention cell: "layer": expected an integer ≥ 0, got "two"',
    'error heads: attention cell: "heads": item 2: expected an integer ≥ 0, got -1',
    'warning colour: attention cell: unknown setting "colour" (kept as written; this kind reads layer, heads, head, view, sort, mean, prompt, name)',
  ]);
  // Editing the known cells of such a notebook leaves the unknown ones' bytes alone.
  const edited = serializeNotebook(setSetting(nb, att.id, 'layer', 2));
  assert.equal(edited, text.replace('layer: two', 'layer: 2'));
});

test('odd settings: comments, quotes, duplicate keys, block lists, nested front matter', () => {
  const nb = parseNotebook(readText(join(fixtures, 'odd-settings.md')));
  assert.deepEqual(nb.frontMatter?.values, { title: 'Odd settings: quotes, comments, lists', model: 'stories15M' });
  assert.match(nb.frontMatter!.problems.map((p) => p.message).join('\n'), /"nested" has indented lines under it/);
  const nt = nb.cells[0]!;
  assert.deepEqual(nt.settings, {
    temperature: 0.8, top_k: 40, top_p: 0.95, min_p: 0, position: 'last', heads: [0, 3], label: "it's quoted",
    note: 'tab\there', flag: true, nothing: null,
  });
  const msgs = nt.problems.map((p) => p.message).join('\n');
  assert.match(msgs, /"top_p" is set twice; the last one \(line 6\) wins/);
  assert.match(msgs, /line 16 \("~: what"\) is not a `key: value` line/);
  assert.match(msgs, /line 17 \("this line is not a setting"\) is not a `key: value` line/);
  assert.match(msgs, /unknown setting "heads"/);
  assert.deepEqual(nb.cells[2]!.settings, { name: 'my story', chat: false, bos: true, text: '' });
  assert.deepEqual(nb.cells[3]!.settings, { text: '' });
});

test('a BOM and a fence never closed: kept; an edit closes the fence', () => {
  const text = readText(join(fixtures, 'bom-unclosed.md'));
  const nb = parseNotebook(text);
  assert.equal(nb.head, '\uFEFF');
  assert.equal(nb.frontMatter?.values['title'], 'BOM and an unclosed fence');
  const att = nb.cells[1]!;
  assert.match(att.problems[0]!.message, /never closed/);
  const out = serializeNotebook(setSetting(nb, att.id, 'layer', 0));
  assert.equal(out, `${text.replace('layer: 1', 'layer: 0')}\`\`\``);
  assert.equal(parseNotebook(out).cells[1]!.problems.length, 0);
});

test('a generated 1 MB notebook round-trips, and an edit in the middle changes one line', () => {
  const parts: string[] = ['---\ntitle: Big\nmodel: stories15M\nextra: [1, 2, 3]\n---\n'];
  let n = 0;
  let size = 0;
  while (size < 1 << 20) {
    const i = n++;
    const eol = i % 7 === 3 ? '\r\n' : '\n';
    const block = [
      `## Section ${i} — ünïcödé ✓ 🦙${eol}${eol}Some prose with *emphasis* and a [link](https://example.org/${i}).${eol}`,
      `${eol}\`\`\`prompt${i % 2 ? ' chat' : ''}${eol}Prompt number ${i}${eol}with two lines${eol}\`\`\`${eol}`,
      `${eol}\`\`\`attention${eol}layer: ${i % 6}   # layer ${i}${eol}heads: [${i % 4}, ${(i + 1) % 4}]${eol}\`\`\`${eol}`,
      `${eol}\`\`\`\`markdown${eol}\`\`\`next-token${eol}temperature: ${i}${eol}\`\`\`${eol}\`\`\`\`${eol}`,
      `${eol}~~~next-token${eol}temperature: 0.${i % 10}${eol}top_k: ${i}${eol}~~~${eol}${eol}`,
      i % 11 === 0 ? `\`\`\`mystery-kind-${i % 3}${eol}x: 1${eol}\`\`\`${eol}${eol}` : '',
    ].join('');
    parts.push(block);
    size += block.length;
  }
  const text = parts.join('');
  assert.ok(Buffer.byteLength(text) > 1 << 20);
  const t0 = performance.now();
  const nb = parseNotebook(text);
  const back = serializeNotebook(nb);
  const ms = performance.now() - t0;
  assert.ok(back === text, 'round trip of the 1 MB notebook differs');
  assert.equal(nb.cells.filter((c) => c.kind === 'prompt').length, n);
  assert.equal(nb.cells.filter((c) => c.kind === 'unknown').length, Math.ceil(n / 11));
  const mid = nb.cells.filter((c) => c.kind === 'attention')[Math.floor(n / 2)]!;
  const edited = serializeNotebook(setSetting(nb, mid.id, 'layer', 5));
  const i = Math.floor(n / 2);
  const eol = i % 7 === 3 ? '\r\n' : '\n';
  const before = `layer: ${i % 6}   # layer ${i}${eol}`;
  assert.equal(edited, text.replace(`attention${eol}${before}`, `attention${eol}layer: 5   # layer ${i}${eol}`));
  console.log(`# 1 MB notebook: ${nb.cells.length} cells, parse + serialize ${ms.toFixed(0)} ms`);
});

test('settings edits rewrite only their line, keeping comments, order, quotes and unknown keys', () => {
  const body = '```next-token\n# sampler\ntemperature: 0.80   # warm\nunknown_key: kept\ntop_k:   40\nheads:\n  - 0\n  - 3   # third\nlabel: \'quoted\'\n```\n';
  const nb = parseNotebook(body);
  const id = nb.cells[0]!.id;
  const edit = (k: string, v: Parameters<typeof setSetting>[3]) => serializeNotebook(setSetting(nb, id, k, v));
  assert.equal(edit('temperature', 1.5), body.replace('0.80   # warm', '1.5   # warm'));
  assert.equal(edit('top_k', 7), body.replace('top_k:   40', 'top_k:   7'));
  assert.equal(edit('heads', [1, 2, 5]), body.replace('  - 0\n  - 3   # third\n', '  - 1\n  - 2\n  - 5\n'));
  assert.equal(edit('label', "it's"), body.replace("label: 'quoted'", "label: 'it''s'"));
  assert.equal(edit('top_k', undefined), body.replace('top_k:   40\n', ''));
  assert.equal(edit('min_p', 0.1), body.replace("label: 'quoted'\n", "label: 'quoted'\nmin_p: 0.1\n"));
  assert.equal(edit('position', 'last'), body.replace("label: 'quoted'\n", "label: 'quoted'\nposition: last\n"));
  assert.equal(edit('temperature', 0.8), body, 'an equal value changes nothing');
  assert.equal(setSetting(nb, id, 'temperature', 0.8), nb);
  // Wrong types are refused with the key and the expected type.
  assert.throws(() => setSetting(nb, id, 'top_k', 'many'), /setting "top_k": expected an integer ≥ 0, got "many"/);
  assert.throws(() => setSetting(nb, id, 'top_p', 0), /setting "top_p": expected a number in \(0, 1\], got 0/);
  assert.throws(() => setSetting(nb, 'nope-1', 'top_k', 1), /cell nope-1: there is no such cell/);
});

test('strings that need quotes get them, and read back the same', () => {
  const nb = parseNotebook('```prompt\nx\n```\n```attention\n```\n');
  const values = ['plain words', 'a: colon', 'a # hash', '#start', 'true', '12', '0x1F', '', ' padded ', 'line\nbreak', 'back`tick', '"quoted"', "it's", '[not a list]', '- dash', 'ünï 🦙', '~'];
  for (const v of values) {
    const edited = setSetting(setSetting(nb, 'attention-1', 'prompt', v), 'prompt-1', 'name', v);
    const again = parseNotebook(serializeNotebook(edited));
    assert.equal(again.cells[1]!.settings['prompt'], v, `body value ${JSON.stringify(v)}: ${again.cells[1]!.raw}`);
    assert.equal(again.cells[0]!.settings['name'], v, `info value ${JSON.stringify(v)}: ${again.cells[0]!.raw}`);
  }
});

test('the YAML subset: a table of lines and values', () => {
  const table: [string, unknown][] = [
    ['a: 1', 1], ['a: -2.5e3', -2500], ['a: .5', 0.5], ['a: 1.', 1], ['a: true', true], ['a: False', false],
    ['a: null', null], ['a: ~', null], ['a:', null], ['a: hello world', 'hello world'], ['a: "x\\ny"', 'x\ny'],
    ["a: 'it''s'", "it's"], ['a: [1, two, "3"]', [1, 'two', '3']], ['a: []', []], ['a: [x, "y, z"]', ['x', 'y, z']],
    ['a: v # c', 'v'], ['a: "v # not a comment"', 'v # not a comment'], ['a: v#not', 'v#not'], ['a: 1e999', '1e999'],
    ['a: http://x.org/a#b', 'http://x.org/a#b'], ['a:\n - 1\n - b', [1, 'b']], ['a:  # only a comment', null],
  ];
  for (const [line, value] of table) assert.deepEqual(parseSettings(line + '\n').values['a'], value, line);
  for (const bad of ['a: "unclosed', "a: 'x'y'", 'a: [1, [2]]', 'a: {b: 1}', 'a: [1, 2']) {
    const p = parseSettings(bad + '\n');
    assert.equal(p.values['a'], undefined, bad);
    assert.match(p.problems[0]!.message, /^"a" on line 1: /, bad);
  }
});

test('prose and prompt text edits: fences inside the text grow the cell fence; prose may become cells', () => {
  const nb = parseNotebook('Intro.\n\n```prompt\nHi\n```\n');
  const p = setSetting(nb, 'prompt-1', 'text', 'Say\n```\ncode\n````\ndone');
  assert.equal(serializeNotebook(p), 'Intro.\n\n`````prompt\nSay\n```\ncode\n````\ndone\n`````\n');
  assert.equal(parseNotebook(serializeNotebook(p)).cells[1]!.settings['text'], 'Say\n```\ncode\n````\ndone');
  const q = setSetting(nb, 'markdown-1', 'text', 'New intro.\n\n```attention\nlayer: 1\n```\n\nMore prose.');
  assert.deepEqual(kinds(q), ['markdown', 'attention', 'markdown', 'prompt']);
  assert.equal(q.cells[0]!.id, 'markdown-1');
  assert.equal(serializeNotebook(q), 'New intro.\n\n```attention\nlayer: 1\n```\n\nMore prose.\n\n```prompt\nHi\n```\n');
  const r = setSetting(nb, 'markdown-1', 'text', '');
  assert.deepEqual(kinds(r), ['prompt']);
});

test('structural edits keep the text parseable into the same cells (seeded random edits)', () => {
  let seed = 12345;
  const rand = (n: number) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
  for (const start of ['', readText(join(fixtures, 'crlf.md')), readText(join(fixtures, 'nested-fences.md')), readText(join(fixtures, 'no-front-matter.md'))]) {
    let nb = parseNotebook(start);
    for (let step = 0; step < 60; step++) {
      const ids = nb.cells.map((c) => c.id).filter((id) => !id.startsWith('unknown'));
      const pick = () => ids[rand(ids.length)]!;
      const op = rand(8);
      if (op === 0 || ids.length === 0) nb = insertCell(nb, rand(nb.cells.length + 1), ['attention', 'next-token', 'prompt', 'model'][rand(4)]!, {}).notebook;
      else if (op === 1) nb = insertCell(nb, rand(nb.cells.length + 1), 'next-token', { temperature: rand(20) / 10, top_k: rand(50) }).notebook;
      else if (op === 2 && ids.length > 2) nb = removeCell(nb, pick());
      else if (op === 3) nb = moveCell(nb, pick(), rand(nb.cells.length));
      else if (op === 4) nb = setFrontMatter(nb, ['title', 'model', 'backend'][rand(3)]!, ['cpu', 'A title: with colon', 'stories260K'][rand(3)]!);
      else {
        const c = cell(nb, pick());
        if (c.kind === 'prompt') nb = setSetting(nb, c.id, rand(2) ? 'text' : 'chat', rand(2) ? `text ${step}\nline` : rand(2) === 1);
        else if (c.kind === 'attention') nb = setSetting(nb, c.id, rand(2) ? 'layer' : 'heads', rand(2) ? rand(4) : [rand(4), rand(4)]);
        else if (c.kind === 'next-token') nb = setSetting(nb, c.id, 'temperature', rand(30) / 10);
        else if (c.kind === 'model') nb = setSetting(nb, c.id, 'block', rand(3));
      }
      const text = serializeNotebook(nb);
      const again = parseNotebook(text);
      roundTrip(text);
      // Adjacent prose cells merge when read back; compare the fenced cells and the prose text.
      const fenced = (x: Notebook) => x.cells.filter((c) => c.kind !== 'markdown').map((c) => [c.kind, c.settings]);
      assert.deepEqual(fenced(again), fenced(nb), `step ${step}:\n${text}`);
      assert.deepEqual(again.frontMatter?.values, nb.frontMatter?.values);
      assert.equal(again.cells.filter((c) => c.problems.some((p) => p.severity === 'error')).length, 0, text);
    }
  }
});

test('an app-written notebook: inserted cells look the way a teacher writes them', () => {
  let nb = parseNotebook('');
  nb = setFrontMatter(nb, 'title', 'Where does the model look?');
  nb = setFrontMatter(nb, 'model', 'stories15M');
  nb = insertCell(nb, 0, 'markdown', { text: '# Where does the model look?\nProse in Markdown…' }).notebook;
  nb = insertCell(nb, 1, 'prompt', { text: 'Once upon a time there was a little' }).notebook;
  nb = insertCell(nb, 2, 'attention', { layer: 2, heads: 'all' }).notebook;
  nb = insertCell(nb, 3, 'next-token', { temperature: 0.8, top_k: 40 }).notebook;
  // The example of DESIGN.md, byte for byte.
  assert.equal(serializeNotebook(nb), [
    '---', 'title: Where does the model look?', 'model: stories15M', '---',
    '', '# Where does the model look?', 'Prose in Markdown…',
    '', '```prompt', 'Once upon a time there was a little', '```',
    '', '```attention', 'layer: 2', 'heads: all', '```',
    '', '```next-token', 'temperature: 0.8', 'top_k: 40', '```', '',
  ].join('\n'));
  nb = moveCell(nb, 'attention-1', 3);
  nb = removeCell(nb, 'markdown-1');
  assert.deepEqual(kinds(parseNotebook(serializeNotebook(nb))), ['prompt', 'next-token', 'attention']);
  assert.equal(serializeNotebook(nb).includes('\n\n\n'), false);
});
