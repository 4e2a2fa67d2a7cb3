import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BranchTree, drawUniform, type GeneratedToken } from '../../src/engine/branches.ts';
import { UsageError } from '../../src/engine/errors.ts';

const tok = (id: number, pAfter = 0.5): GeneratedToken => ({ id, pBefore: 0.25, pAfter, u: 0.1 });

test('drawUniform depends only on seed and position, and is uniform', () => {
  assert.equal(drawUniform(7, 3), drawUniform(7, 3));
  assert.notEqual(drawUniform(7, 3), drawUniform(7, 4));
  assert.notEqual(drawUniform(7, 3), drawUniform(8, 3));
  // order does not matter: position 100 drawn alone equals position 100 drawn after 0..99
  const alone = drawUniform(42, 100);
  for (let i = 0; i < 100; i++) drawUniform(42, i);
  assert.equal(drawUniform(42, 100), alone);
  // 20,000 positions into 10 bins: chi-squared with 9 degrees of freedom stays under 27.88 (p = 0.001)
  const bins = new Array<number>(10).fill(0);
  for (let i = 0; i < 20_000; i++) {
    const u = drawUniform(1, i);
    assert.ok(u >= 0 && u < 1);
    bins[Math.floor(u * 10)]!++;
  }
  const chi2 = bins.reduce((s, b) => s + (b - 2000) ** 2 / 2000, 0);
  assert.ok(chi2 < 27.88, `chi-squared ${chi2.toFixed(2)} over 10 bins`);
  // consecutive seeds give unrelated sequences: their correlation over 5000 positions is near 0
  let sxy = 0, sx = 0, sy = 0, sxx = 0, syy = 0;
  for (let i = 0; i < 5000; i++) { const x = drawUniform(5, i), y = drawUniform(6, i); sx += x; sy += y; sxy += x * y; sxx += x * x; syy += y * y; }
  const r = (sxy / 5000 - (sx / 5000) * (sy / 5000)) / Math.sqrt((sxx / 5000 - (sx / 5000) ** 2) * (syy / 5000 - (sy / 5000) ** 2));
  assert.ok(Math.abs(r) < 0.05, `correlation ${r}`);
  assert.throws(() => drawUniform(1, -1), UsageError);
});

test('fork shares the prefix and departs at the fork point; forking the same token twice reuses the branch', () => {
  const t = new BranchTree();
  for (const id of [10, 11, 12, 13]) t.append('main', tok(id));
  const b = t.fork('main', 2, tok(99));
  assert.deepEqual(t.ids(b.id), [10, 11, 99]);
  assert.equal(b.parent, 'main');
  assert.equal(b.forkAt, 2);
  assert.equal(t.sharedPrefix('main', b.id), 2);
  // the same token at the same step: the same branch, not a new one
  assert.equal(t.fork('main', 2, tok(99)).id, b.id);
  // the token main already has there: main itself
  assert.equal(t.fork('main', 2, tok(12)).id, 'main');
  // a fork at the end continues past it
  const end = t.fork('main', 4, tok(5));
  assert.deepEqual(t.ids(end.id), [10, 11, 12, 13, 5]);
  assert.throws(() => t.fork('main', 6, tok(1)), /outside branch "main"/);
  // the fork's tokens are copies: editing one branch leaves the other
  t.truncate('main', 1);
  assert.deepEqual(t.ids(b.id), [10, 11, 99]);
  assert.deepEqual(t.ids('main'), [10]);
});

test('deleting a branch moves its children to its parent with the right fork point', () => {
  const t = new BranchTree();
  for (const id of [1, 2, 3, 4, 5]) t.append('main', tok(id));
  const a = t.fork('main', 1, tok(20));            // [1, 20]
  t.append(a.id, tok(21)); t.append(a.id, tok(22)); // [1, 20, 21, 22]
  const c = t.fork(a.id, 3, tok(30));              // [1, 20, 21, 30]: leaves a at 3, main at 1
  const d = t.fork(a.id, 0, tok(40));              // [40]: leaves a at 0, main at 0
  assert.equal(t.remove(a.id), 'main');
  assert.equal(t.has(a.id), false);
  assert.equal(t.get(c.id).parent, 'main');
  assert.equal(t.get(c.id).forkAt, 1);
  assert.equal(t.sharedPrefix('main', c.id), 1);
  assert.equal(t.get(d.id).forkAt, 0);
  assert.throws(() => t.remove('main'), /cannot be deleted/);
  assert.throws(() => t.get(a.id), /no branch/);
  // truncating a fork before its own first token is refused
  assert.throws(() => t.truncate(c.id, 1), /starts at step 1/);
  t.truncate(c.id, 2);
  assert.deepEqual(t.ids(c.id), [1, 20]);
});

test('JSON round trip, and a stranger\'s tree is checked field by field', () => {
  const t = new BranchTree();
  for (const id of [3, 4, 5]) t.append('main', tok(id));
  const b = t.fork('main', 1, { id: 7, pBefore: 0.1, pAfter: 0.2, u: null, alternatives: [{ id: 4, p: 0.6 }] });
  t.get(b.id).stopped = 'eos';
  const json = JSON.parse(JSON.stringify(t.toJSON()));
  const back = BranchTree.fromJSON(json, 10);
  assert.deepEqual(back.toJSON(), t.toJSON());
  // new forks do not reuse an id that came from the file
  assert.notEqual(back.fork('main', 0, tok(9)).id, b.id);

  const broken = (f: (j: any) => void, msg: RegExp) => {
    const j = JSON.parse(JSON.stringify(json));
    f(j);
    assert.throws(() => BranchTree.fromJSON(j, 10), msg);
  };
  broken((j) => { j.branches[0].tokens[0].id = 10; }, /id must be an integer in \[0, 10\)/);
  broken((j) => { j.branches[0].tokens[1].pAfter = 2; }, /must be probabilities/);
  broken((j) => { j.branches[1].parent = 'nowhere'; }, /not an earlier branch/);
  broken((j) => { j.branches[1].tokens[0].id = 9; }, /differs from its parent at step 0/);
  broken((j) => { j.branches[1].tokens[1].id = 4; }, /does not depart/);
  broken((j) => { j.branches[1].forkAt = 7; }, /forkAt 7/);
  broken((j) => { j.branches.push({ ...j.branches[1] }); }, /appears twice/);
  broken((j) => { j.branches[0].parent = 'x'; }, /must be the root/);
  assert.throws(() => BranchTree.fromJSON(null, 10), /not a list/);
  assert.throws(() => BranchTree.fromJSON({ branches: [] }, 10), /not a list/);
});
