// Undo/redo: bounded by steps and by what the snapshots keep alive; bursts coalesce. And the
// document's read-only mode for shared notebooks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { History } from '../../src/notebook/history.ts';
import { NotebookDocument } from '../../src/notebook/document.ts';

test('undo/redo walk the steps; a new edit drops the redo steps', () => {
  const h = new History('a');
  h.push('b', null, 0);
  h.push('c', null, 1);
  assert.equal(h.undo(), 'b');
  assert.equal(h.undo(), 'a');
  assert.equal(h.undo(), undefined);
  assert.equal(h.redo(), 'b');
  h.push('d', null, 2);
  assert.equal(h.canRedo, false);
  assert.deepEqual(h.depth, { undo: 2, redo: 0 });
  assert.equal(h.current, 'd');
});

test('pushes with the same key inside the window are one step; outside it, two', () => {
  const h = new History(0, { coalesceMs: 1000 });
  for (let i = 1; i <= 10; i++) h.push(i, 'slider', i * 100);    // one drag over a second
  h.push(11, 'slider', 5000);                                       // a later drag
  h.push(12, 'other', 5001);
  assert.deepEqual(h.depth, { undo: 3, redo: 0 });
  assert.equal(h.undo(), 11);
  assert.equal(h.undo(), 10);
  assert.equal(h.undo(), 0);
  // After an undo the next push never coalesces into an older step.
  h.redo();
  h.push(99, 'slider', 5002);
  assert.deepEqual(h.depth, { undo: 2, redo: 0 });
});

test('the history is bounded by steps and by cost', () => {
  const h = new History(0, { limit: 5 });
  for (let i = 1; i <= 50; i++) h.push(i, null, i);
  assert.deepEqual(h.depth, { undo: 5, redo: 0 });
  const undone: number[] = [];
  for (let v; (v = h.undo()) !== undefined;) undone.push(v);
  assert.deepEqual(undone, [49, 48, 47, 46, 45]);
  const big = new History('', { maxCost: 1000, cost: (older) => older.length });
  for (let i = 0; i < 100; i++) big.push('x'.repeat(100 + i), null, i);
  assert.ok(big.depth.undo <= 10 && big.depth.undo >= 5, `${big.depth.undo} steps kept`);
});

test('a document\'s history of a 1 MB notebook stays small: snapshots share unchanged cells', () => {
  const cells = Array.from({ length: 2000 }, (_, i) => `Prose ${i} ${'lorem ipsum '.repeat(40)}\n\n\`\`\`attention\nlayer: ${i % 4}\n\`\`\`\n\n`).join('');
  const doc = new NotebookDocument(cells, { historyLimit: 500, coalesceMs: 0 });
  const before = doc.notebook;
  for (let i = 0; i < 300; i++) doc.setSetting(`attention-${i + 1}`, 'layer', ((i % 4) + 1) % 4);
  // Every snapshot holds the same cell objects except the few that changed.
  const shared = doc.notebook.cells.filter((c, i) => c === before.cells[i]).length;
  assert.equal(shared, before.cells.length - 300);
  let steps = 0;
  while (doc.undo()) steps++;
  assert.equal(steps, 300);
  assert.equal(doc.notebook, before);
});

test('a read-only (shared) notebook refuses edits until it is copied', () => {
  const doc = new NotebookDocument('```attention\nlayer: 1\n```\n', { readonly: true });
  assert.throws(() => doc.setSetting('attention-1', 'layer', 2), /notebook: this shared notebook is read-only\. Make a copy to change it/);
  assert.throws(() => doc.insertCell(0, 'prompt'), /read-only/);
  assert.equal(doc.undo(), false);
  const copy = doc.makeCopy();
  assert.equal(copy.readonly, false);
  copy.setSetting('attention-1', 'layer', 2);
  assert.equal(copy.text, '```attention\nlayer: 2\n```\n');
  assert.equal(doc.text, '```attention\nlayer: 1\n```\n');
  const changes: string[] = [];
  copy.subscribe((c) => changes.push(c.reason));
  copy.load('# other\n');
  copy.undo();
  assert.deepEqual(changes, ['load']);
  assert.equal(copy.text, '# other\n');
});
