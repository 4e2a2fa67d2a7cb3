// The short fuzz run (CI, every commit): 2,000 inputs of each of the 7 kinds (14,000 in all) plus
// every saved regression input, in a watched worker thread. Any input that throws something other
// than a named glassbox error, takes too long, hangs, allocates beyond its sizes or breaks a round
// trip fails the test with its seed, kind and index. GLASSBOX_FUZZ_SEED picks another seed;
// `npm run fuzz` runs the long fuzz (test/fuzz/README.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuzzInWorker, formatReport } from '../fuzz/main.ts';
import { generate, isNamedError, KINDS, promptTokenizer, expectedRoundTrip, wellFormed } from '../fuzz/targets.ts';
import { loadRegressions } from '../fuzz/runner.ts';
import { AllocationGuardError, installGuard, setCap, violations } from '../fuzz/guard.ts';
import { GlassboxError, ModelFormatError, TruncatedFileError, UsageError } from '../../src/engine/errors.ts';
import { parseNotebook } from '../../src/notebook/format.ts';
import { setSetting } from '../../src/notebook/edit.ts';

const seed = Number(process.env['GLASSBOX_FUZZ_SEED'] ?? 20240601);
const PER_KIND = 2000;

test(`fuzz: ${PER_KIND} inputs of each kind and every regression input, seed ${seed}`, { timeout: 240_000 }, async () => {
  const report = await fuzzInWorker({ seed, kinds: KINDS, perKind: PER_KIND, regressions: true, hangMs: 20_000 });
  const text = formatReport(report);
  console.log(text);
  assert.equal(report.failures.length, 0, text);
  const total = Object.values(report.counts).reduce((s, c) => s + c.inputs, 0);
  assert.ok(total >= 10_000, `only ${total} inputs ran`);
  assert.equal(report.regressions, loadRegressions().length);
  for (const k of KINDS) {
    const c = report.counts[k]!;
    assert.equal(c.inputs, PER_KIND, k);
    // Not trivially passing: some inputs of each file kind load, and some are refused.
    if (k !== 'prompt' && k !== 'notebook') {
      assert.ok(c.ok > 0 && c.ok < c.inputs, `${k}: ${c.ok} of ${c.inputs} loaded`);
    }
  }
});

test('every saved regression input names its kind, base and recipe', () => {
  const list = loadRegressions();
  assert.ok(list.length >= 5, `${list.length} regression inputs`);
  for (const { file, input } of list) {
    assert.ok(KINDS.includes(input.kind), file);
    assert.ok(input.note && input.note.length > 20, `${file}: say what the input broke`);
    assert.ok(input.base !== undefined || input.text !== undefined, file);
  }
});

test('an input is a pure function of (seed, kind, index)', () => {
  for (const k of KINDS) {
    assert.equal(JSON.stringify(generate(k, 99, 1234)), JSON.stringify(generate(k, 99, 1234)), k);
    assert.notEqual(JSON.stringify(generate(k, 99, 1234)), JSON.stringify(generate(k, 100, 1234)), k);
  }
});

test('only GlassboxError subclasses count as named errors', () => {
  assert.ok(isNamedError(new TruncatedFileError('f', 'x')));
  assert.ok(isNamedError(new ModelFormatError('f', 'x')));
  assert.ok(!isNamedError(new GlassboxError('format', 'f', 'x')));
  assert.ok(!isNamedError(new TypeError('x')));
  assert.ok(!isNamedError(new RangeError('Array buffer allocation failed')));
});

test('the allocation guard refuses and records an allocation over the cap', () => {
  installGuard();
  try {
    setCap(1 << 16);
    assert.throws(() => new Uint8Array(1 << 20), AllocationGuardError);
    assert.throws(() => new Float32Array(1 << 15), AllocationGuardError);
    assert.throws(() => new Array(1 << 14), AllocationGuardError);
    assert.throws(() => new ArrayBuffer(1 << 17), AllocationGuardError);
    assert.equal(violations.length, 4);
    assert.equal(new Uint8Array(16).length, 16);
    assert.ok(new Uint8Array(4) instanceof Uint8Array);
  } finally {
    setCap(Infinity);
  }
  assert.equal(new Uint8Array(1 << 20).length, 1 << 20);
});

test('lone surrogates come back as U+FFFD, SentencePiece\'s ▁ as a space, everything else unchanged', async () => {
  const text = 'a\ud800b\udc00c \ud83d\ude00 \u2581x e\u0301 \u05e9\u05dc \u0000\u0085\r\n';
  assert.equal(wellFormed(text), 'a\ufffdb\ufffdc \ud83d\ude00 \u2581x e\u0301 \u05e9\u05dc \u0000\u0085\r\n');
  for (const name of ['tok512', 'llama2', 'llama3']) {
    const tok = await promptTokenizer(name);
    const back = tok.decode(tok.encode(text, { bos: false }));
    assert.equal(back, expectedRoundTrip(text, tok.kind), name);
    assert.equal(back.includes('\ufffd'), true, name);
  }
  assert.equal(expectedRoundTrip('\u2581x', 'spm'), ' x');
  assert.equal(expectedRoundTrip('\u2581x', 'bpe'), '\u2581x');
});

test('a setting is not written into an info string that another unterminated quote would swallow', () => {
  const nb = parseNotebook('```prompt other="x\nOnce upon a time\n```\n');
  assert.throws(() => setSetting(nb, nb.cells[0]!.id, 'name', 'a story'), UsageError);
  // A broken value of the same key is replaced.
  const nb2 = parseNotebook('```prompt name="x\nOnce upon a time\n```\n');
  const edited = setSetting(nb2, nb2.cells[0]!.id, 'name', 'story');
  assert.equal(edited.cells[0]!.settings['name'], 'story');
});
