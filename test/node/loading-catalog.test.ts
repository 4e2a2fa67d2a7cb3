// The shipped catalog (public/models.json) against the checked list in ../shared/CATALOG.md, and
// the validation that keeps a stranger's catalog from doing harm.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { validateCatalog, findEntry, defaultEntry, catalogUrlProblem, MAX_CATALOG_FILE_BYTES } from '../../src/worker/loading/catalog.ts';
import { ModelFormatError } from '../../src/engine/errors.ts';
import { groupModelFiles, isTokenizerFile } from '../../src/worker/loading/group.ts';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
const shipped = JSON.parse(readFileSync(resolve(root, 'public/models.json'), 'utf8'));

test('catalog: the shipped catalog is valid, with stories15M Q8_0 as the one default', () => {
  const { catalog, problems } = validateCatalog(shipped);
  assert.deepEqual(problems, []);
  assert.equal(catalog.models.length, shipped.models.length);
  const def = defaultEntry(catalog)!;
  assert.equal(def.id, 'stories15M');
  assert.equal(def.files[0]!.url, 'https://huggingface.co/ggml-org/tiny-llamas/resolve/main/stories15M-q8_0.gguf');
  assert.equal(def.files[0]!.size, 26671328);
  assert.equal(catalog.models.filter((m) => m.default).length, 1);
  for (const id of ['stories260K', 'stories15M-q4_0', 'stories15M-f32', 'stories15M-bin', 'stories42M-bin', 'stories110M-bin',
    'smollm2-135m-instruct', 'smollm2-135m-instruct-q4_k_m', 'smollm2-360m-instruct-q4_k_m', 'tinyllama-1.1b-chat-q4_k_m',
    'llama-3.2-1b-instruct-q4_k_m', 'llama-3.2-1b-instruct-q4_0', 'llama-3.2-1b-instruct-q8_0']) {
    assert.ok(findEntry(catalog, id), id);
  }
  for (const m of catalog.models.filter((e) => e.family === 'llama3')) {
    assert.equal(m.license, 'Llama 3.2 Community License');
    assert.match(m.description, /Llama 3\.2 Community License/);
  }
  for (const id of ['stories15M-bin', 'stories42M-bin', 'stories110M-bin']) {
    const e = findEntry(catalog, id)!;
    assert.deepEqual(e.files.map((f) => f.role), ['model', 'tokenizer']);
    assert.match(e.description, /raw\.githubusercontent\.com/);
  }
  const smol = findEntry(catalog, 'smollm2-135m-instruct')!;
  assert.deepEqual(smol.files.map((f) => f.url.split('/').pop()), ['model.safetensors', 'config.json', 'tokenizer.json']);
});

test('catalog: every file matches ../shared/CATALOG.md (URL, size, SHA-256)', (t) => {
  const md = resolve(root, '../shared/CATALOG.md');
  // shared/ stands beside the repository in CI and on developers' machines; a bare clone has no
  // catalog to compare with, and says so.
  if (!existsSync(md)) return t.skip('../shared/CATALOG.md is not here');
  // | repo | file | bytes | sha256 | license | dims |
  const rows = readFileSync(md, 'utf8').split('\n')
    .map((l) => l.split('|').map((c) => c.trim()))
    .filter((c) => c.length >= 6 && /^[0-9a-f]{64}$/.test(c[4]!))
    .map((c) => ({ repo: c[1]!, file: c[2]!.split(' ')[0]!, size: Number(c[3]!.replace(/,/g, '')), sha: c[4]! }));
  assert.ok(rows.length >= 18);
  const note = /tokenizer\.bin` in the GitHub repository karpathy\/llama2\.c \(([\d,]+) bytes, sha256\s+([0-9a-f]{64})/.exec(readFileSync(md, 'utf8').replace(/\n\s*/g, ' '));
  assert.ok(note, 'the llama2.c tokenizer note');
  const expected = new Map(rows.map((r) => [`https://huggingface.co/${r.repo}/resolve/main/${r.file}`, r]));
  expected.set('https://raw.githubusercontent.com/karpathy/llama2.c/master/tokenizer.bin',
    { repo: 'karpathy/llama2.c', file: 'tokenizer.bin', size: Number(note[1]!.replace(/,/g, '')), sha: note[2]! });
  const used = new Set<string>();
  for (const m of shipped.models) {
    for (const f of m.files) {
      const want = expected.get(f.url);
      assert.ok(want, `${m.id}: ${f.url} is not in CATALOG.md`);
      assert.equal(f.size, want.size, `${m.id}: size of ${f.url}`);
      assert.equal(f.sha256, want.sha, `${m.id}: sha256 of ${f.url}`);
      used.add(f.url);
    }
  }
  assert.deepEqual([...expected.keys()].filter((u) => !used.has(u)), [], 'every checked file is offered');
});

test('catalog: a stranger\'s catalog cannot crash or mislead the loader', () => {
  const good = structuredClone(shipped.models[0]);
  delete good.default;
  const bad = (patch: (e: Record<string, unknown>) => void) => { const e = structuredClone(good); e.id = `x${Math.random()}`.replace('.', ''); patch(e); return e; };
  const entries = [
    good,
    bad((e) => { (e.files as { url: string }[])[0]!.url = 'http://example.com/model.gguf'; }),
    bad((e) => { (e.files as { url: string }[])[0]!.url = 'javascript:alert(1)'; }),
    bad((e) => { (e.files as { url: string }[])[0]!.url = 'https://user:pw@example.com/m.gguf'; }),
    bad((e) => { (e.files as { size: unknown }[])[0]!.size = -1; }),
    bad((e) => { (e.files as { size: unknown }[])[0]!.size = MAX_CATALOG_FILE_BYTES + 1; }),
    bad((e) => { (e.files as { size: unknown }[])[0]!.size = '27000000'; }),
    bad((e) => { (e.files as { size: unknown }[])[0]!.size = 1.5; }),
    bad((e) => { (e.files as { sha256: unknown }[])[0]!.sha256 = 'abc'; }),
    bad((e) => { (e.files as { role: unknown }[])[0]!.role = 'weights'; }),
    bad((e) => { e.files = []; }),
    bad((e) => { e.files = 'x'; }),
    bad((e) => { e.family = 'gpt'; }),
    bad((e) => { e.name = ''; }),
    bad((e) => { e.id = '../../etc'; }),
    bad((e) => { e.shape = { layers: 6, dModel: 288, heads: 5, kvHeads: 5, vocab: 1 }; }),
    bad((e) => { e.default = 'yes'; }),
    null, 42, 'model', [],
    { ...good }, // a duplicate id
  ];
  const { catalog, problems } = validateCatalog({ models: entries }, 'stranger.json');
  assert.equal(catalog.models.length, 1);
  assert.equal(problems.length, entries.length - 1);
  for (const p of problems) assert.match(p, /^stranger\.json: models\[\d+\]/);
  assert.ok(problems.some((p) => /files\[0\]\.url: must be an https URL/.test(p)));
  assert.ok(problems.some((p) => /files\[0\]\.size/.test(p)));
  assert.ok(problems.some((p) => /listed twice/.test(p)));

  // unknown keys, including __proto__, are not carried over
  const sneaky = JSON.parse(`{"models": [${JSON.stringify({ ...good, id: 'sneaky' }).slice(0, -1)}, "__proto__": {"polluted": true}, "extra": 1}]}`);
  const s = validateCatalog(sneaky).catalog.models[0]!;
  assert.equal((s as unknown as Record<string, unknown>).extra, undefined);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.equal((s as unknown as Record<string, unknown>).polluted, undefined);

  // two defaults: the first stays the default
  const d = validateCatalog({ models: [{ ...good, id: 'a', default: true }, { ...good, id: 'b', default: true }] });
  assert.deepEqual(d.catalog.models.map((m) => m.default), [true, undefined]);
  assert.equal(d.problems.length, 1);

  // not a catalog at all
  for (const v of [null, 1, 'x', {}, { models: 'x' }]) assert.throws(() => validateCatalog(v), ModelFormatError);
  assert.throws(() => validateCatalog({ models: new Array(1001).fill(good) }), ModelFormatError);
});

test('catalog: URL rules', () => {
  assert.equal(catalogUrlProblem('https://huggingface.co/a/b/resolve/main/c.gguf'), null);
  assert.equal(catalogUrlProblem('/models/local/x.gguf'), null);
  assert.notEqual(catalogUrlProblem('//evil.example/x.gguf'), null);
  assert.match(catalogUrlProblem('file:///etc/passwd')!, /https/);
  assert.match(catalogUrlProblem('data:application/octet-stream,GGUF')!, /https/);
  assert.match(catalogUrlProblem(`https://e.com/${'a'.repeat(3000)}`)!, /2048/);
  assert.match(catalogUrlProblem(42)!, /string/);
});

test('grouping files by name: model, side files, tokenizer', () => {
  const names = (xs: { name: string }[] | undefined) => xs?.map((x) => x.name);
  const f = (...n: string[]) => n.map((name) => ({ name }));
  let g = groupModelFiles(f('tok512.bin', 'stories260K.bin'));
  assert.deepEqual(names(g.sources), ['stories260K.bin']);
  assert.equal(g.tokenizer?.name, 'tok512.bin');
  g = groupModelFiles(f('tokenizer.json', 'model.safetensors', 'config.json', 'tokenizer_config.json', 'generation_config.json'));
  assert.deepEqual(names(g.models), ['model.safetensors']);
  assert.deepEqual(names(g.sources), ['model.safetensors', 'config.json', 'tokenizer_config.json', 'generation_config.json', 'tokenizer.json']);
  assert.equal(g.tokenizer, undefined);
  g = groupModelFiles(f('model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'config.json'));
  assert.deepEqual(names(g.models), ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
  assert.deepEqual(names(g.sides), ['model.safetensors.index.json', 'config.json']);
  g = groupModelFiles(f('tokenizer.json', 'tokenizer_config.json'));
  assert.deepEqual(g.models, []);
  g = groupModelFiles(f('stories15M-q8_0.gguf'));
  assert.deepEqual(names(g.sources), ['stories15M-q8_0.gguf']);
  assert.ok(isTokenizerFile('ggml-vocab-llama-spm.gguf'));
  assert.ok(!isTokenizerFile('stories15M.bin'));
});
