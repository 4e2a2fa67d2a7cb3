// Interventions (src/engine/edits.ts) on the CPU: ablation, patching, steering, their validation,
// and the KV-cache rule for runs with different edits. Exact comparisons use the readable twins
// with exact f32 activations, where every position is computed by the same arithmetic.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Session, type RunResult } from '../../src/engine/session.ts';
import { meanOverPositions, meanDifference, type Edit } from '../../src/engine/edits.ts';
import { UsageError } from '../../src/engine/errors.ts';
import { randomTokens, randomWeights, tinyConfig } from './engine-fixtures.ts';

const c = tinyConfig();                      // 3 layers, 6 heads (GQA 6:2), d_head 4, d_model 24, d_ffn 40
const w = randomWeights(c, 'F32', 7);
const N = 11;
const clean = randomTokens(N, c.vocabSize, 3);
const corrupt = randomTokens(N, c.vocabSize, 4);
const session = (chunkSize = 64) => new Session(w, { kernels: 'js', activationQuant: 'none', chunkSize });
const ALL = ['**'];
const run = (tokens: number[], edits?: Edit[], capture: string[] = ALL, s = session()): RunResult =>
  s.run(tokens, { logits: 'all', capture, edits });
const hook = (r: RunResult, name: string) => r.trace.get(name)!.data;
const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
const same = (a: Float32Array, b: Float32Array, what: string) => assert.deepEqual(bits(a), bits(b), `${what}: not bit for bit`);
function close(a: Float32Array, b: Float32Array, tol: number, what: string): void {
  assert.equal(a.length, b.length, what);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  assert.ok(worst <= tol, `${what}: differs by ${worst} > ${tol}`);
}
function differs(a: Float32Array, b: Float32Array, what: string): void {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  assert.ok(worst > 1e-4, `${what}: expected a change, largest difference ${worst}`);
}

const base = run(clean);
const bad = run(corrupt);

test('no edits, an empty list, or edits past the end equal the clean run bit for bit', () => {
  for (const edits of [undefined, [], [{ hook: 'blocks.1.hook_resid_pre', op: 'zero', positions: [N + 3] } as Edit]]) {
    const r = run(clean, edits);
    same(r.logits, base.logits, `logits, edits ${JSON.stringify(edits)}`);
    for (const name of base.trace.keys()) same(hook(r, name), hook(base, name), name);
  }
});

test("patching every layer's residual from the corrupted run reproduces its logits", () => {
  for (const leaf of ['hook_resid_pre', 'hook_resid_post']) {
    const edits = Array.from({ length: c.nLayers }, (_, l): Edit => ({ hook: `blocks.${l}.${leaf}`, op: 'patch', values: hook(bad, `blocks.${l}.${leaf}`) }));
    same(run(clean, edits, []).logits, bad.logits, leaf);
  }
  // the residual at layer 0 carries everything the later layers see: patching it alone suffices
  const r = run(clean, [{ hook: 'blocks.0.hook_resid_pre', op: 'patch', values: hook(bad, 'blocks.0.hook_resid_pre') }], []);
  same(r.logits, bad.logits, 'layer 0 resid_pre alone');
});

test("patching with the clean run's own activations is a no-op, bit for bit, at every editable hook", () => {
  const hooks = ['hook_embed', 'final_norm.hook_out', ...[0, 1, 2].flatMap((l) => [
    'hook_resid_pre', 'attn_norm.hook_out', 'attn.hook_q', 'attn.hook_k', 'attn.hook_v', 'attn.hook_rot_q', 'attn.hook_rot_k',
    'attn.hook_pattern', 'attn.hook_z', 'attn.hook_result', 'hook_attn_out', 'hook_resid_mid', 'ffn_norm.hook_out',
    'ffn.hook_gate', 'ffn.hook_up', 'ffn.hook_act', 'hook_ffn_out', 'hook_resid_post',
  ].map((h) => `blocks.${l}.${h}`))];
  const edits = hooks.map((h): Edit => ({ hook: h, op: 'patch', values: hook(base, h) }));
  const r = run(clean, edits);
  same(r.logits, base.logits, 'logits');
  for (const name of base.trace.keys()) same(hook(r, name), hook(base, name), name);
  // and in chunks of 4 positions (patch rows are taken by sequence position)
  same(run(clean, edits, [], session(4)).logits, base.logits, 'logits, chunks of 4');
});

test('zeroing one head changes only what depends on it', () => {
  const r = run(clean, [{ hook: 'blocks.1.attn.hook_z', op: 'zero', heads: [4] }]);
  for (const name of ['hook_embed', 'blocks.0.hook_resid_post', 'blocks.1.hook_resid_pre', 'blocks.1.attn.hook_pattern', 'blocks.1.attn.hook_v']) {
    same(hook(r, name), hook(base, name), name);
  }
  const z = hook(r, 'blocks.1.attn.hook_z'), z0 = hook(base, 'blocks.1.attn.hook_z');
  for (let t = 0; t < N; t++) {
    for (let h = 0; h < c.nHeads; h++) {
      const row = z.subarray((t * c.nHeads + h) * c.dHead, (t * c.nHeads + h + 1) * c.dHead);
      if (h === 4) assert.deepEqual([...row], [0, 0, 0, 0], 'the capture shows the edited (zeroed) head');
      else same(row, z0.subarray((t * c.nHeads + h) * c.dHead, (t * c.nHeads + h + 1) * c.dHead), `head ${h} untouched`);
    }
  }
  differs(hook(r, 'blocks.1.hook_resid_mid'), hook(base, 'blocks.1.hook_resid_mid'), 'resid_mid after the head');
  differs(r.logits, base.logits, 'logits');
  // the same head zeroed through its output (result), its pattern, or its z: the same run within f32 rounding
  const viaResult = run(clean, [{ hook: 'blocks.1.attn.hook_result', op: 'zero', heads: [4] }]);
  const viaPattern = run(clean, [{ hook: 'blocks.1.attn.hook_pattern', op: 'zero', heads: [4] }]);
  close(viaResult.logits, r.logits, 1e-4, 'zero result head ≈ zero z head');
  close(viaPattern.logits, r.logits, 1e-4, 'zero pattern head ≈ zero z head');
  const res = hook(viaResult, 'blocks.1.attn.hook_result');
  assert.ok(res.subarray(4 * c.dModel, 5 * c.dModel).every((v) => v === 0), 'the result capture shows the zeroed head');
  same(hook(viaResult, 'blocks.1.hook_resid_pre'), hook(base, 'blocks.1.hook_resid_pre'), 'resid_pre before the edit');
});

test('steering adds strength × vector at the chosen positions; per-head vectors; mean ablation and neurons', () => {
  const v = Float32Array.from({ length: c.dModel }, (_, i) => Math.sin(i) * 0.7);
  const r = run(clean, [{ hook: 'blocks.1.hook_resid_post', op: 'steer', vector: v, strength: 3, positions: [2, 7] }]);
  const want = hook(base, 'blocks.1.hook_resid_post').slice();
  for (const p of [2, 7]) for (let i = 0; i < c.dModel; i++) want[p * c.dModel + i] = want[p * c.dModel + i]! + Math.fround(3 * v[i]!);
  same(hook(r, 'blocks.1.hook_resid_post'), want, 'steered residual');
  // the same through patching with those numbers: bit for bit
  same(run(clean, [{ hook: 'blocks.1.hook_resid_post', op: 'patch', values: want }], []).logits, r.logits, 'steer = patch with the sum');
  same(hook(r, 'blocks.2.hook_resid_pre'), want, 'the next layer sees it');
  same(hook(r, 'blocks.0.hook_resid_post'), hook(base, 'blocks.0.hook_resid_post'), 'earlier layer');
  // a [d_model] vector on one head's result adds it to attn_out
  const viaResult = run(clean, [{ hook: 'blocks.0.attn.hook_result', op: 'steer', vector: v, heads: [2] }]);
  const viaOut = run(clean, [{ hook: 'blocks.0.hook_attn_out', op: 'steer', vector: v }]);
  close(viaResult.logits, viaOut.logits, 1e-4, 'result steer ≈ attn_out steer');
  // mean ablation of two z heads with the clean run's mean over positions
  const mean = meanOverPositions(base.trace.get('blocks.2.attn.hook_z')!);
  const m = hook(run(clean, [{ hook: 'blocks.2.attn.hook_z', op: 'mean', vector: mean, heads: [0, 5] }]), 'blocks.2.attn.hook_z');
  const z0 = hook(base, 'blocks.2.attn.hook_z'), qd = c.nHeads * c.dHead;
  for (let t = 0; t < N; t++) {
    for (let j = 0; j < qd; j++) {
      const h = Math.floor(j / c.dHead);
      assert.equal(m[t * qd + j], h === 0 || h === 5 ? mean[j] : z0[t * qd + j], `z[${t}, ${j}]`);
    }
  }
  // neurons
  const a = hook(run(clean, [{ hook: 'blocks.0.mlp.hook_post', op: 'zero', neurons: [3, 39], positions: [0, 10] }]), 'blocks.0.ffn.hook_act');
  const a0 = hook(base, 'blocks.0.ffn.hook_act');
  for (let t = 0; t < N; t++) {
    for (let j = 0; j < c.dFfn; j++) assert.equal(a[t * c.dFfn + j], (t === 0 || t === 10) && (j === 3 || j === 39) ? 0 : a0[t * c.dFfn + j]);
  }
});

test('the KV cache: reuse only before the earliest edited position; a clean run after edits equals a fresh one', () => {
  const s = session();
  const edited = s.run(clean, { logits: 'all', edits: [{ hook: 'blocks.0.hook_resid_mid', op: 'zero', positions: [5] }] });
  assert.equal(edited.edits.length, 1);
  assert.deepEqual(edited.edits[0], { hook: 'blocks.0.hook_resid_mid', op: 'zero', positions: [5] });
  const again = s.run(clean, { logits: 'all', edits: [{ hook: 'blocks.0.hook_resid_mid', op: 'zero', positions: [5] }] });
  assert.equal(again.reused, N - 1, 'same edits: the usual reuse');
  same(again.logits, edited.logits, 'same edits again');
  const later = s.run(clean, { logits: 'all', edits: [{ hook: 'blocks.0.hook_resid_mid', op: 'zero', positions: [8] }] });
  assert.equal(later.reused, 5, 'positions before 5 (the earliest of either edit set) are reused');
  same(later.logits, run(clean, [{ hook: 'blocks.0.hook_resid_mid', op: 'zero', positions: [8] }], []).logits, 'vs a fresh session');
  const plain = s.run(clean, { logits: 'all' });
  assert.equal(plain.reused, 8);
  assert.deepEqual(plain.edits, []);
  same(plain.logits, base.logits, 'a clean run after edited ones equals a fresh clean run');
  // the same description with other numbers is another edit set
  const p1 = s.run(clean, { logits: 'last', edits: [{ hook: 'blocks.2.hook_resid_pre', op: 'patch', positions: [3], values: hook(bad, 'blocks.2.hook_resid_pre') }] });
  const p2 = s.run(clean, { logits: 'last', edits: [{ hook: 'blocks.2.hook_resid_pre', op: 'patch', positions: [3], values: hook(base, 'blocks.2.hook_resid_pre') }] });
  assert.equal(p2.reused, 3);
  assert.notEqual(p1.edits[0]!.digest, p2.edits[0]!.digest);
  same(p2.logits, base.logits.subarray((N - 1) * c.vocabSize), 'patching its own values after a patch from another run');
});

test('a pattern edit in a run that records other hooks: the prefix is reused, and the edited pattern is not recorded unasked', () => {
  // (the forward pass recorded the pattern it computes for the edit, unasked, and the next run's
  // store then met rows starting past position 0: "capture: … jumps from position 0 to 11")
  const edits: Edit[] = [{ hook: 'blocks.2.attn.hook_pattern', op: 'zero', heads: [1], positions: [4] }];
  const s = session();
  const first = s.run(clean.slice(0, N - 1), { capture: ['hook_embed'], edits });
  assert.deepEqual([...first.trace.keys()], ['hook_embed']);
  const r = s.run(clean, { capture: ['hook_embed'], edits });
  assert.equal(r.reused, N - 1);
  same(r.logits, run(clean, edits, ['hook_embed']).logits.subarray((N - 1) * c.vocabSize), 'the last logits row');
});

test('edits are validated, each error naming its field', () => {
  const s = session();
  const bad = (edits: unknown, field: RegExp) => assert.throws(() => s.run(clean, { edits: edits as Edit[] }), (e: unknown) => e instanceof UsageError && field.test(e.message), String(field));
  bad([{ hook: 'blocks.9.hook_resid_pre', op: 'zero' }], /edits\[0\]\.hook.*no hook named/);
  bad([{ hook: 'blocks.0.attn.hook_scores', op: 'zero' }], /edits\[0\]\.hook.*cannot be edited/);
  bad([{ hook: 'blocks.0.attn.hook_z', op: 'zero', heads: [6] }], /edits\[0\]\.heads\[0\].*0 to 5/);
  bad([{ hook: 'blocks.0.attn.hook_k', op: 'zero', heads: [2] }], /edits\[0\]\.heads\[0\].*KV heads go from 0 to 1/);
  bad([{ hook: 'blocks.0.hook_resid_pre', op: 'zero', heads: [0] }], /edits\[0\]\.heads.*has no heads/);
  bad([{ hook: 'blocks.0.attn.hook_z', op: 'zero', neurons: [0] }], /edits\[0\]\.neurons/);
  bad([{ hook: 'blocks.0.hook_resid_pre', op: 'steer', vector: new Float32Array(23) }], /edits\[0\]\.vector.*23 floats.*24/);
  bad([{ hook: 'blocks.0.attn.hook_z', op: 'steer', vector: new Float32Array(5) }], /vector.*\(or 4 per head\)/);
  bad([{ hook: 'blocks.0.hook_resid_pre', op: 'patch', values: new Float32Array(24 * N + 1) }], /edits\[0\]\.values.*whole number of rows of 24/);
  bad([{ hook: 'blocks.0.hook_resid_pre', op: 'patch', values: new Float32Array(24 * 4) }], /edits\[0\]\.values.*covers positions 0\.\.3 but position 10/);
  bad([{ hook: 'blocks.0.hook_resid_pre', op: 'patch' }], /edits\[0\]\.values.*missing/);
  bad([{ hook: 'blocks.0.attn.hook_pattern', op: 'steer', vector: new Float32Array(4) }], /edits\[0\]\.op/);
  bad([{ hook: 'blocks.0.hook_resid_pre', op: 'erase' }], /edits\[0\]\.op/);
  bad([{ hook: 'blocks.0.hook_resid_pre', op: 'zero', positions: [-1] }], /edits\[0\]\.positions\[0\]/);
  bad([{ hook: 'blocks.0.hook_resid_pre', op: 'steer', vector: new Float32Array(24), strength: NaN }], /edits\[0\]\.strength/);
  bad({ hook: 'x' }, /^edits/);
  // a glob edits every layer it names
  const g = s.run(clean, { edits: [{ hook: 'blocks.*.hook_resid_post', op: 'zero', positions: [0] }] });
  assert.deepEqual(g.edits.map((e) => e.hook), [0, 1, 2].map((l) => `blocks.${l}.hook_resid_post`));
});

test('meanDifference: the mean of A minus the mean of B, checked', () => {
  const d = meanDifference([new Float32Array([1, 2]), new Float32Array([3, 6])], [new Float32Array([1, 1])]);
  assert.deepEqual([...d], [1, 3]);
  assert.throws(() => meanDifference([], [new Float32Array(2)]), /meanDifference a.*no rows/);
  assert.throws(() => meanDifference([new Float32Array(2)], [new Float32Array(3)]), /2 floats, rows of b 3/);
});
