// Recorded norms (`<hook>:norm`, src/engine/hooks.ts NORM_SUFFIX): a run records a row hook's L2
// norm at each position instead of its rows. The norms are the bits of the norms computed from the
// rows (rowNorm), whether the run computes every position, reuses a prefix that recorded norms, or
// reuses one that recorded the rows; the Engine's hookNorms slice answers from either; and names
// that have no rows to take a norm of are refused. Readable twins and WebAssembly on 2 threads.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Session, type RunOptions } from '../../src/engine/session.ts';
import { Engine } from '../../src/engine/api.ts';
import { UsageError } from '../../src/engine/errors.ts';
import { rowNorm, selectHooks, type Trace } from '../../src/engine/hooks.ts';
import type { CpuKernelsName } from '../../kernels/wasm/choose.ts';
import { randomTokens, randomWeights, tinyConfig } from './engine-fixtures.ts';

const c = tinyConfig();                      // 3 layers, d_model 24, d_ffn 40
const w = randomWeights(c, 'F32', 21);
const prompt = randomTokens(19, c.vocabSize, 6);
const next = [...prompt, 5, 9];
const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

/** The norms of a recorded hook's rows, as rowNorm takes them. */
function normsOfRows(trace: Trace, name: string, nPos: number): Float32Array {
  const d = trace.get(name)!.data, size = d.length / nPos;
  return Float32Array.from({ length: nPos }, (_, p) => rowNorm(d, p * size, (p + 1) * size));
}

test('selectHooks: `:norm` names record norms of row hooks, by name, alias or glob; other names are refused', () => {
  const s = selectHooks(c, ['blocks.*.hook_resid_pre:norm', 'blocks.1.mlp.hook_post:norm', 'blocks.1.ffn.hook_act', 'hook_embed:norm']);
  assert.deepEqual(s.names, ['hook_embed:norm', 'blocks.0.hook_resid_pre:norm', 'blocks.1.hook_resid_pre:norm',
    'blocks.1.ffn.hook_act', 'blocks.1.ffn.hook_act:norm', 'blocks.2.hook_resid_pre:norm']);
  assert.deepEqual([...s.normed].sort(), ['blocks.0.hook_resid_pre', 'blocks.1.ffn.hook_act', 'blocks.1.hook_resid_pre', 'blocks.2.hook_resid_pre', 'hook_embed']);
  assert.equal(s.blocks[2]!.hook_resid_pre, true, 'the forward pass computes a normed hook');
  assert.equal(s.global.hook_embed, true);
  assert.equal(s.blocks[2]!.hook_attn_out, false);
  for (const bad of ['blocks.0.attn.hook_pattern:norm', 'blocks.*.attn.hook_scores:norm', 'hook_tokens:norm']) {
    assert.throws(() => selectHooks(c, [bad]), (e: unknown) => e instanceof UsageError && /norms are recorded for activation rows only/.test((e as Error).message), bad);
  }
  assert.throws(() => selectHooks(c, ['blocks.7.hook_resid_pre:norm']), (e: unknown) => e instanceof UsageError && /no hook named "blocks.7.hook_resid_pre"/.test((e as Error).message));
  assert.throws(() => selectHooks(c, ['blocks.*.hook_nothing:norm']), (e: unknown) => e instanceof UsageError && /matches no hook/.test((e as Error).message));
});

const KERNELS: { kernels: CpuKernelsName; threads?: number }[] = [{ kernels: 'js' }, { kernels: 'wasm', threads: 2 }];

for (const k of KERNELS) {
  const label = `${k.kernels}${k.threads ? `, ${k.threads} threads` : ''}`;
  const make = () => new Session(w, { ...k, chunkSize: 8 });
  const rowsOpts: RunOptions = { capture: ['blocks.*.hook_resid_pre', 'blocks.*.hook_attn_out'] };
  const normOpts: RunOptions = { capture: ['blocks.*.hook_resid_pre:norm', 'blocks.*.hook_attn_out:norm', 'blocks.1.hook_attn_out'] };
  const names = [0, 1, 2].flatMap((l) => [`blocks.${l}.hook_resid_pre`, `blocks.${l}.hook_attn_out`]);

  test(`${label}: recorded norms are the norms of the rows, bit for bit, without the rows`, () => {
    const s = make();
    try {
      const withRows = s.run(next, { ...rowsOpts, lane: 'rows' });
      const r = s.run(next, { ...normOpts, lane: 'norms' });
      assert.deepEqual([...r.trace.keys()], ['blocks.0.hook_resid_pre:norm', 'blocks.0.hook_attn_out:norm', 'blocks.1.hook_resid_pre:norm',
        'blocks.1.hook_attn_out', 'blocks.1.hook_attn_out:norm', 'blocks.2.hook_resid_pre:norm', 'blocks.2.hook_attn_out:norm']);
      for (const name of names) {
        const got = r.trace.get(`${name}:norm`)!;
        assert.deepEqual(got.shape, [next.length]);
        assert.deepEqual(bits(got.data), bits(normsOfRows(withRows.trace, name, next.length)), name);
      }
      assert.deepEqual(bits(r.trace.get('blocks.1.hook_attn_out')!.data), bits(withRows.trace.get('blocks.1.hook_attn_out')!.data));
      assert.deepEqual(bits(r.logits), bits(withRows.logits), 'recording changes nothing else');
    } finally {
      s.dispose();
    }
  });

  test(`${label}: a run reuses a prefix whose norms, or whose rows, were recorded`, () => {
    const want = (() => { const s = make(); try { return s.run(next, rowsOpts); } finally { s.dispose(); } })();
    // the prefix recorded as norms, then as rows (the norms of its prefix come from them)
    for (const [first, what] of [[normOpts, 'norms'], [rowsOpts, 'rows']] as const) {
      const s = make();
      try {
        s.run(prompt, first);
        const r = s.run(next, normOpts);
        assert.equal(r.reused, prompt.length, `${what} recorded before`);
        for (const name of names) assert.deepEqual(bits(r.trace.get(`${name}:norm`)!.data), bits(normsOfRows(want.trace, name, next.length)), `after ${what}: ${name}`);
      } finally {
        s.dispose();
      }
    }
  });
}

test('the Engine answers hookNorms from recorded norms as from the rows, bit for bit', async () => {
  const root = resolve(fileURLToPath(import.meta.url), '../../..');
  const bytes = readFileSync(resolve(root, '../shared/models/tinystories-260k/stories260K.gguf'));
  const engine = new Engine();
  const info = await engine.load({ kind: 'files', files: [new File([bytes], 'stories260K.gguf')] });
  const tokens = randomTokens(23, info.config.vocabSize, 3);
  const hooks = ['hook_embed', 'blocks.2.hook_resid_post', 'blocks.4.mlp.hook_post'];
  const rows = await engine.run({ tokens, capture: hooks, slot: 'rows' });
  const norms = await engine.run({ tokens, capture: hooks.map((h) => `${h}:norm`), slot: 'norms' });
  assert.deepEqual(norms.hooks, ['hook_embed:norm', 'blocks.2.hook_resid_post:norm', 'blocks.4.ffn.hook_act:norm'], 'the norms run holds no rows');
  const [a, b] = await Promise.all([engine.hookNorms(rows, hooks), engine.hookNorms(norms, hooks)]);
  assert.deepEqual(b.names, a.names);
  assert.deepEqual(bits(b.data), bits(a.data));
  const part = await engine.hookNorms(norms, 'blocks.2.hook_resid_post', { positions: [4, 9] });
  assert.deepEqual(bits(part.data), bits(a.data.subarray(23 + 4, 23 + 9)));
});
