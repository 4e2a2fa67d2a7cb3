// The generate cell's pure functions: a branch's tokens and alternatives, the tree rows (depth
// first), the side-by-side comparison, the text layout (wrapping, newlines), colours, the view
// parsing, the export, and snapshots of the text figure (short, coloured after, long).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/engine/random.ts';
import { BranchTree, type GeneratedToken } from '../../src/engine/branches.ts';
import {
  branchTokens, compareBranches, generateExport, generateSvg, generateView, layoutText, promptRuns, tokenColors, treeRows, type GenerateOutput,
} from '../../cells/plot/generate.ts';
import { schemes } from '../../cells/plot/kit.ts';
import { matchSnapshot } from '../support/snapshot.ts';

const WORDS = [' the', ' a', ' little', ' girl', ' boy', ' dog', ' cat', ' time', ' day', ' was', ',', '.', '\n', ' there', ' once',
  ' big', ' happy', ' sun', ' tree', ' park', ' friend', ' named', ' Lily', ' Tom', ' ball', ' red', ' and', ' to', ' play', ' she'];

function token(rng: Rng, id: number): GeneratedToken {
  const alts = [id, ...[0, 1, 2, 3].map(() => rng.int(WORDS.length))].filter((x, i, a) => a.indexOf(x) === i)
    .map((a, i) => ({ id: a, p: +(0.5 / (i + 1)).toFixed(4) }));
  return { id, pBefore: +rng.next().toFixed(4), pAfter: +rng.next().toFixed(4), u: +rng.next().toFixed(6), alternatives: alts };
}

/** A seeded tree: main with n tokens, a fork at step 3, and a fork of the fork. */
function output(n: number, seed = 1): GenerateOutput {
  const rng = new Rng(seed);
  const t = new BranchTree();
  for (let i = 0; i < n; i++) t.append('main', token(rng, rng.int(WORDS.length)));
  const a = t.fork('main', 3, { ...token(rng, (t.ids('main')[3]! + 1) % WORDS.length), u: null });
  for (let i = 0; i < 4; i++) t.append(a.id, token(rng, rng.int(WORDS.length)));
  const b = t.fork(a.id, 5, { ...token(rng, (t.ids(a.id)[5]! + 1) % WORDS.length), u: null });
  t.get('main').stopped = 'length';
  const prompt = { text: 'Once upon a time', ids: [1, 14, 32, 1, 7], pieces: ['<s>', '▁Once', '▁upon', '▁a', '▁time'], spans: [[0, 0], [0, 4], [4, 9], [9, 11], [11, 16]] as [number, number][] };
  const gen = t.ids('main');
  let text = prompt.text;
  const spans = [...prompt.spans];
  for (const id of gen) { spans.push([text.length, text.length + WORDS[id]!.length]); text += WORDS[id]; }
  return {
    text, ids: [...prompt.ids, ...gen], pieces: [...prompt.pieces, ...gen.map((id) => WORDS[id]!)], spans,
    prompt: 'prompt-1', promptLength: 5, promptText: prompt.text.length, branch: 'main', tree: t.toJSON(),
    texts: new Map(WORDS.map((w, i) => [i, w])), tokenPieces: new Map(WORDS.map((w, i) => [i, w.replace(/ /g, '▁')])), void: b,
  } as GenerateOutput;
}

test('a branch\'s tokens carry positions, probabilities and alternatives with the chosen one marked', () => {
  const o = output(12);
  const main = branchTokens(o, 'main');
  assert.equal(main.length, 12);
  main.forEach((t, i) => {
    assert.equal(t.step, i);
    assert.equal(t.position, 5 + i);
    assert.equal(t.id, o.ids[5 + i]);
    assert.equal(t.text, WORDS[t.id]);
    assert.equal(t.alternatives.filter((a) => a.chosen).length, 1);
    assert.equal(t.alternatives.find((a) => a.chosen)!.id, t.id);
  });
  assert.deepEqual(branchTokens(o, 'nope'), []);
});

test('tree rows are depth first with depths; the comparison shares the prefix once', () => {
  const o = output(12);
  const rows = treeRows(o);
  assert.deepEqual(rows.map((r) => [r.id, r.depth, r.forkAt, r.length]), [['main', 0, 0, 12], ['b1', 1, 3, 8], ['b2', 2, 5, 6]]);
  assert.equal(rows[0]!.stopped, 'length');
  assert.equal(rows[1]!.departs.startsWith(WORDS[o.tree.branches[1]!.tokens[3]!.id]!), true);
  const c = compareBranches(o, 'main', 'b2');
  assert.equal(c.shared.length, 3);
  assert.deepEqual(c.left.map((t) => t.id), o.tree.branches[0]!.tokens.slice(3).map((t) => t.id));
  assert.deepEqual(c.right.map((t) => t.id), o.tree.branches[2]!.tokens.slice(3).map((t) => t.id));
  assert.equal(c.right[0]!.step, 3);
});

test('the layout wraps at the width and breaks lines at newlines', () => {
  const o = output(40, 3);
  const toks = branchTokens(o, 'main');
  const { placed, height } = layoutText('Once upon a time', toks, 200);
  for (const p of placed) assert.ok(p.x === 0 || p.x + p.w <= 200, `${p.text} at ${p.x}+${p.w}`);
  assert.ok(height > 22 * 3, 'several lines');
  const nl = placed.findIndex((p) => p.newline);
  if (nl >= 0 && nl + 1 < placed.length) assert.equal(placed[nl + 1]!.x, 0);
  assert.equal(placed.filter((p) => p.token).length >= toks.length, true);
});

test('colours come from viridis with a readable text colour; the view parses with defaults', () => {
  assert.equal(tokenColors(0).bg, schemes.sequential(0));
  assert.equal(tokenColors(1).bg, schemes.sequential(1));
  assert.equal(tokenColors(0.1).fg, '#ffffff');
  assert.equal(tokenColors(0.9).fg, '#1d1d1f');
  assert.deepEqual(generateView({}), { color: 'before', maxTokens: 64, compare: null });
  assert.deepEqual(generateView({ color: 'after', max_tokens: 5, compare: 'b1' }), { color: 'after', maxTokens: 5, compare: 'b1' });
  assert.deepEqual(generateView({ max_tokens: -1 }).maxTokens, 64);
});

test('the export has one row per generated token and the tree', () => {
  const o = output(12);
  const f = generateExport(o, { color: 'after' });
  assert.equal(f.rows.length, 12);
  assert.equal(f.rows[4]!['p_after'], o.tree.branches[0]!.tokens[4]!.pAfter);
  assert.equal((f.meta as { branches: unknown[] }).branches.length, 3);
  // each token mark carries its probability
  const marks = [...f.svg.matchAll(/data-step="(\d+)" data-id="(\d+)" data-v="([\d.e-]+)"/g)];
  assert.equal(marks.length, 12);
  for (const m of marks) assert.equal(Number(m[3]), o.tree.branches[0]!.tokens[Number(m[1])]!.pAfter);
});

test('a chat prompt shows the template\'s control tokens as their own marked runs', () => {
  // a Llama 3 chat prompt as the tokenizer renders it: the markers are tokens covering their text
  const text = '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n';
  const parts = ['<|begin_of_text|>', '<|start_header_id|>', 'user', '<|end_header_id|>', '\n\n', 'Hi', ' there', '<|eot_id|>', '<|start_header_id|>', 'assistant', '<|end_header_id|>', '\n\n'];
  let at = 0;
  const spans = parts.map((p) => { const s: [number, number] = [at, at + p.length]; at += p.length; return s; });
  assert.equal(at, text.length);
  const runs = promptRuns({ text, promptText: text.length, promptLength: parts.length, spans, pieces: parts });
  assert.deepEqual(runs.filter((r) => r.special).map((r) => r.text),
    ['<|begin_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>', '<|start_header_id|>', '<|end_header_id|>']);
  assert.equal(runs.map((r) => r.text).join(''), text, 'the runs are the whole prompt text');
  assert.deepEqual(runs.filter((r) => !r.special).map((r) => r.text), ['user', '\n\nHi there', 'assistant', '\n\n']);
  // a plain prompt is one plain run; the marked runs are drawn marked
  assert.deepEqual(promptRuns({ text: 'Once upon', promptText: 9, promptLength: 3, spans: [[0, 0], [0, 4], [4, 9]], pieces: ['<s>', '▁Once', '▁upon'] }), [{ text: 'Once upon', special: false }]);
  const laid = layoutText(runs, [], 400).placed;
  assert.equal(laid.filter((p) => p.special).length, 6);
});

test('snapshots', () => {
  matchSnapshot('generate-short', generateSvg(output(12), { color: 'before' }));
  matchSnapshot('generate-after', generateSvg({ ...output(20, 2), branch: 'b1' }, { color: 'after' }));
  matchSnapshot('generate-long', generateSvg(output(300, 4), { color: 'before' }, { width: 720 }));
});
