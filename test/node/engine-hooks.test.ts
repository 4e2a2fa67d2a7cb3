// Named activations: what the forward pass records must fit together the way the math says
// (resid_post(i) = resid_pre(i+1), pattern rows are distributions, ffn_out = act · W_down,
// logits = final_norm.hook_out · W_U, ...), selective capture must record exactly what was
// asked, and prefix reuse must change nothing. Random-weight models with GQA and untied
// embeddings (engine-fixtures.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Session } from '../../src/engine/session.ts';
import { CAPTURE_LIMIT_BYTES, canonicalHookName, captureBytes, hookNames, hookShape, selectHooks, type Trace } from '../../src/engine/hooks.ts';
import { ContextLengthError, UsageError } from '../../src/engine/errors.ts';
import { matmul } from '../../kernels/matmul/matmul.cpu.ts';
import { rope, RopeTable } from '../../kernels/rope/rope.cpu.ts';
import { numElements } from '../../src/formats/tensor.ts';
import { BLOCK } from '../../src/engine/capture.ts';
import { randomTokens, randomWeights, tinyConfig } from './engine-fixtures.ts';

const config = tinyConfig({ ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 16 } });
const weights = randomWeights(config, 'F32', 11);
const tokens = randomTokens(13, config.vocabSize, 5);
const P = tokens.length;

function get(trace: Trace, name: string): Float32Array {
  const e = trace.get(name);
  assert.ok(e, `${name} was recorded`);
  return e.data;
}

function near(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: lengths`);
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(a[i]! - b[i]!) <= tol * Math.max(1, Math.abs(b[i]!)), `${what}[${i}]: ${a[i]} vs ${b[i]}`);
  }
}

test('every hook is recorded with its DESIGN.md shape, in forward order', () => {
  const { trace, logits } = new Session(weights).run(tokens, { capture: '**', logits: 'all' });
  assert.deepEqual([...trace.keys()], hookNames(config));
  for (const [name, e] of trace) {
    assert.deepEqual(e.shape, hookShape(config, name, P), name);
    assert.equal(e.data.length, numElements(e.shape), name);
  }
  assert.deepEqual(get(trace, 'hook_tokens'), Float32Array.from(tokens));
  assert.deepEqual(get(trace, 'blocks.1.attn.hook_pattern').length, config.nHeads * P * P);
  assert.deepEqual(trace.get('blocks.0.attn_norm.hook_scale')!.shape, [P, 1]);
  assert.deepEqual(get(trace, 'hook_logits'), logits);
});

test('the residual stream adds up: embed → resid_pre(0), resid_post(i) = resid_pre(i+1), mid = pre + attn_out, post = mid + ffn_out', () => {
  const { trace } = new Session(weights).run(tokens, { capture: ['hook_embed', 'blocks.*.hook_*'] });
  assert.deepEqual(get(trace, 'hook_embed'), get(trace, 'blocks.0.hook_resid_pre'));
  for (let i = 0; i < config.nLayers; i++) {
    const pre = get(trace, `blocks.${i}.hook_resid_pre`), mid = get(trace, `blocks.${i}.hook_resid_mid`), post = get(trace, `blocks.${i}.hook_resid_post`);
    const attnOut = get(trace, `blocks.${i}.hook_attn_out`), ffnOut = get(trace, `blocks.${i}.hook_ffn_out`);
    assert.deepEqual(mid, pre.map((v, j) => Math.fround(v + attnOut[j]!)), `block ${i}: resid_mid`);
    assert.deepEqual(post, mid.map((v, j) => Math.fround(v + ffnOut[j]!)), `block ${i}: resid_post`);
    if (i + 1 < config.nLayers) assert.deepEqual(post, get(trace, `blocks.${i + 1}.hook_resid_pre`), `resid_post ${i} = resid_pre ${i + 1}`);
  }
});

test('attention: pattern rows sum to 1 and are 0 above the diagonal, scores −inf there, pattern = softmax(scores), z = pattern · v', () => {
  const { trace } = new Session(weights).run(tokens, { capture: 'blocks.*.attn.*' });
  const { nHeads, nKvHeads, dHead } = config;
  for (let l = 0; l < config.nLayers; l++) {
    const pattern = get(trace, `blocks.${l}.attn.hook_pattern`), scores = get(trace, `blocks.${l}.attn.hook_scores`);
    const v = get(trace, `blocks.${l}.attn.hook_v`), z = get(trace, `blocks.${l}.attn.hook_z`);
    for (let h = 0; h < nHeads; h++) {
      const kvh = Math.floor(h / (nHeads / nKvHeads));
      for (let p = 0; p < P; p++) {
        const o = (h * P + p) * P;
        let sum = 0, denom = 0;
        for (let j = 0; j <= p; j++) { sum += pattern[o + j]!; denom += Math.exp(scores[o + j]! - scores[o + p]!); }
        assert.ok(Math.abs(sum - 1) < 1e-5, `layer ${l} head ${h} row ${p} sums to ${sum}`);
        for (let j = p + 1; j < P; j++) {
          assert.equal(pattern[o + j], 0, `pattern above the diagonal (${l}, ${h}, ${p}, ${j})`);
          assert.equal(scores[o + j], -Infinity, `scores above the diagonal (${l}, ${h}, ${p}, ${j})`);
        }
        near([pattern[o + p]!], [1 / denom], 1e-5, `softmax(scores) ${l}/${h}/${p}`);
        for (let i = 0; i < dHead; i++) {
          let want = 0;
          for (let j = 0; j <= p; j++) want += pattern[o + j]! * v[(j * nKvHeads + kvh) * dHead + i]!;
          near([z[(p * nHeads + h) * dHead + i]!], [want], 1e-5, `z ${l}/${h}/${p}/${i}`);
        }
      }
    }
    // rot_q is RoPE of q (llama3-scaled frequencies), position by position
    const q = get(trace, `blocks.${l}.attn.hook_q`).slice();
    rope(q, P, nHeads, dHead, 0, new RopeTable({ dHead, theta: config.ropeTheta, scaling: config.ropeScaling, freqFactors: null }));
    assert.deepEqual(q, get(trace, `blocks.${l}.attn.hook_rot_q`));
    // the heads' results sum to the attention output
    const result = get(trace, `blocks.${l}.attn.hook_result`);
    const { trace: t2 } = new Session(weights).run(tokens, { capture: `blocks.${l}.hook_attn_out` });
    const attnOut = get(t2, `blocks.${l}.hook_attn_out`);
    const summed = new Float64Array(P * config.dModel);
    for (let p = 0; p < P; p++) for (let h = 0; h < nHeads; h++) for (let i = 0; i < config.dModel; i++) summed[p * config.dModel + i]! += result[(p * nHeads + h) * config.dModel + i]!;
    near(summed, attnOut, 1e-5, `layer ${l}: Σ_h result = attn_out`);
  }
});

for (const type of ['F32', 'Q8_0'] as const) {
  test(`${type}: ffn_out = act · W_down, act = silu(gate)·up, logits = final_norm.hook_out · W_U (untied)`, () => {
    const c = type === 'F32' ? config : tinyConfig({ dModel: 32, dFfn: 64, nHeads: 4, nKvHeads: 2, dHead: 8 });
    const w = type === 'F32' ? weights : randomWeights(c, type, 2);
    assert.notEqual(w.unembed, w.embed);
    const capture = ['blocks.*.ffn.*', 'blocks.*.hook_ffn_out', 'final_norm.*'];
    const { trace, logits } = new Session(w).run(tokens, { capture, logits: 'all' });
    for (let l = 0; l < c.nLayers; l++) {
      const gate = get(trace, `blocks.${l}.ffn.hook_gate`), up = get(trace, `blocks.${l}.ffn.hook_up`), act = get(trace, `blocks.${l}.ffn.hook_act`);
      near(act, gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]!), 1e-6, `layer ${l}: act`);
      // the session's default product (activationQuant 'llamacpp': Q8_0 weights see 8-bit
      // activations, F32 exact ones), by the twin
      const want = new Float32Array(P * c.dModel);
      matmul(want, act, w.blocks[l]!.wDown, P, 'llamacpp');
      near(get(trace, `blocks.${l}.hook_ffn_out`), want, 1e-4, `layer ${l}: ffn_out`);
    }
    const normed = get(trace, 'final_norm.hook_normalized'), scale = get(trace, 'final_norm.hook_scale'), out = get(trace, 'final_norm.hook_out');
    near(out, normed.map((v, i) => v * w.finalNorm[i % c.dModel]!), 1e-6, 'final_norm out = normalized · weight');
    for (let p = 0; p < P; p++) assert.ok(scale[p]! > 0);
    const want = new Float32Array(P * c.vocabSize);
    matmul(want, out, w.unembed, P, 'llamacpp');
    near(logits, want, 1e-4, 'logits');
  });
}

test('prefix reuse: the same logits and the same captures as a run from scratch', () => {
  const capture = ['blocks.*.attn.hook_pattern', 'blocks.1.attn.hook_scores', 'blocks.*.hook_resid_post', 'hook_tokens', 'blocks.2.attn.hook_result'];
  const fresh = new Session(weights).run(tokens, { capture, logits: 'all' });

  const s = new Session(weights, { chunkSize: 4 });
  const first = s.run(tokens.slice(0, 6), { capture, logits: 'all' });
  assert.equal(first.reused, 0);
  const grown = s.run(tokens, { capture, logits: 'all' });
  assert.equal(grown.reused, 6, 'only positions 6.. are recomputed');
  assert.deepEqual(grown.logits, fresh.logits);
  assert.deepEqual([...grown.trace.keys()], [...fresh.trace.keys()]);
  for (const [name, e] of fresh.trace) assert.deepEqual(grown.trace.get(name), e, `${name} after reuse`);
  assert.deepEqual(first.logits, fresh.logits.slice(0, 6 * config.vocabSize), 'the first run\'s logits are the prefix\'s');
  // logits of positions that were not kept ('new' → 'all') are recomputed, not invented
  const t = new Session(weights);
  t.run(tokens.slice(0, 6), { logits: 'new' });
  const all = t.run(tokens, { logits: 'all' });
  assert.equal(all.reused, 0);
  assert.deepEqual(all.logits, fresh.logits);

  // an edit at position 9: positions 0..8 reused, identical to a fresh run of the edited prompt
  const edited = tokens.slice();
  edited[9] = (edited[9]! + 1) % config.vocabSize;
  const afterEdit = s.run(edited, { capture, logits: 'new' });
  assert.equal(afterEdit.reused, 9);
  const freshEdit = new Session(weights).run(edited, { capture, logits: 'all' });
  assert.deepEqual(afterEdit.logits, freshEdit.logits.slice(9 * config.vocabSize));
  for (const [name, e] of freshEdit.trace) assert.deepEqual(afterEdit.trace.get(name), e, `${name} after an edit`);

  // a shorter prompt: recomputes only the last position
  const shorter = s.run(edited.slice(0, 5), { capture });
  assert.equal(shorter.reused, 4);
  assert.deepEqual(shorter.logits, freshEdit.logits.slice(4 * config.vocabSize, 5 * config.vocabSize));

  // asking for a hook the prefix was not recorded with recomputes from 0, with the same result
  const more = s.run(edited, { capture: [...capture, 'blocks.0.ffn.hook_act'] });
  assert.equal(more.reused, 0);
  assert.deepEqual(more.trace.get('blocks.0.attn.hook_pattern'), freshEdit.trace.get('blocks.0.attn.hook_pattern'));

  // decode one position at a time equals one prefill
  const step = new Session(weights);
  for (let n = 1; n <= P; n++) {
    const r = step.run(tokens.slice(0, n));
    assert.equal(r.reused, n - 1);
    assert.deepEqual(r.logits, fresh.logits.slice((n - 1) * config.vocabSize, n * config.vocabSize), `decode step ${n}`);
  }
});

test('aliases: TransformerLens names resolve to ours', () => {
  const cases: [string, string][] = [
    ['blocks.0.ln1.hook_scale', 'blocks.0.attn_norm.hook_scale'],
    ['blocks.2.ln2.hook_normalized', 'blocks.2.ffn_norm.hook_normalized'],
    ['ln_final.hook_normalized', 'final_norm.hook_normalized'],
    ['blocks.1.mlp.hook_pre', 'blocks.1.ffn.hook_gate'],
    ['blocks.1.mlp.hook_pre_linear', 'blocks.1.ffn.hook_up'],
    ['blocks.1.mlp.hook_post', 'blocks.1.ffn.hook_act'],
    ['blocks.0.hook_mlp_out', 'blocks.0.hook_ffn_out'],
    ['blocks.0.attn.hook_attn_scores', 'blocks.0.attn.hook_scores'],
    ['blocks.0.hook_attn_out', 'blocks.0.hook_attn_out'],
    ['blocks.0.attn.hook_pattern', 'blocks.0.attn.hook_pattern'],
  ];
  for (const [tl, ours] of cases) assert.equal(canonicalHookName(tl), ours, tl);
  const { trace } = new Session(weights).run(tokens.slice(0, 4), { capture: ['blocks.1.mlp.hook_post', 'ln_final.hook_scale', 'blocks.*.mlp.hook_pre'] });
  assert.deepEqual([...trace.keys()], ['blocks.0.ffn.hook_gate', 'blocks.1.ffn.hook_gate', 'blocks.1.ffn.hook_act', 'blocks.2.ffn.hook_gate', 'final_norm.hook_scale']);
});

test('selective capture records exactly what was asked', () => {
  const s = new Session(weights);
  assert.equal(s.run(tokens).trace.size, 0, 'capture nothing → empty trace');
  assert.equal(selectHooks(config, undefined).any, false);
  const glob = s.run(tokens, { capture: 'blocks.*.attn.hook_pattern' }).trace;
  assert.deepEqual([...glob.keys()], [0, 1, 2].map((i) => `blocks.${i}.attn.hook_pattern`));
  const one = s.run(tokens, { capture: 'blocks.1.hook_resid_mid' }).trace;
  assert.deepEqual([...one.keys()], ['blocks.1.hook_resid_mid']);
  const pred = s.run(tokens, { capture: (n) => n.startsWith('blocks.2.') && n.endsWith('_k') }).trace;
  assert.deepEqual([...pred.keys()], ['blocks.2.attn.hook_k', 'blocks.2.attn.hook_rot_k']);
  const sel = selectHooks(config, 'blocks.0.attn.hook_pattern');
  assert.equal(sel.blocks[0]!['attn.hook_pattern'], true);
  assert.equal(sel.blocks[1]!['attn.hook_pattern'], false);
  assert.equal(Object.values(sel.blocks[0]!).filter(Boolean).length, 1);
  assert.throws(() => s.run(tokens, { capture: 'blocks.0.attn.hook_patern' }), UsageError);
  assert.throws(() => s.run(tokens, { capture: 'blocks.9.attn.hook_pattern' }), UsageError);
  assert.throws(() => s.run(tokens, { capture: 'blocks.*.nothing' }), UsageError);
});

test('a prompt longer than the context is a ContextLengthError naming both lengths; bad ids are UsageErrors', () => {
  const s = new Session(weights);
  const long = randomTokens(config.nCtx + 1, config.vocabSize);
  assert.throws(() => s.run(long), (e: unknown) => e instanceof ContextLengthError && e.message.includes(String(config.nCtx + 1)) && e.message.includes(String(config.nCtx)));
  assert.doesNotThrow(() => s.run(long.slice(0, config.nCtx)));
  assert.throws(() => s.run([]), UsageError);
  assert.throws(() => s.run([0, config.vocabSize]), UsageError);
  assert.throws(() => s.run([0, 1.5]), UsageError);
});

test('attention entries are made on first read, and later runs of the session do not change them', () => {
  const fresh = (t: number[]) => new Session(weights).run(t, { capture: ['blocks.*.attn.hook_pattern', 'blocks.1.attn.hook_scores'] }).trace;
  const other = tokens.map((t, i) => (i < 5 ? t : (t + 7) % config.vocabSize));
  const session = new Session(weights);
  const capture = ['blocks.*.attn.hook_pattern', 'blocks.1.attn.hook_scores'];
  const first = session.run(tokens, { capture }).trace;
  const second = session.run(other, { capture }).trace;            // reuses 5 positions, rewrites the rest of the store
  const third = session.run(tokens.slice(0, 9), { capture }).trace; // shorter: truncates the store
  for (const [t, trace] of [[tokens, first], [other, second], [tokens.slice(0, 9), third]] as const) {
    const want = fresh([...t]);
    for (const [name, e] of want) {
      const got = trace.get(name)!;
      assert.deepEqual(got.shape, e.shape, name);
      assert.deepEqual(got.data, e.data, `${name} of a ${t.length}-token run, read after the later runs`);
      assert.equal(got.data, got.data, `${name}: made once`);
    }
  }
  // the mask above the diagonal: 0 in patterns, −∞ in scores
  const n = tokens.length, s = get(first, 'blocks.1.attn.hook_scores'), p = get(first, 'blocks.1.attn.hook_pattern');
  assert.equal(s[1], -Infinity);
  assert.equal(p[1], 0);
  assert.equal(s[(config.nHeads - 1) * n * n + (n - 2) * n + n - 1], -Infinity);
});

test('traces share the store\'s blocks: runs that rewrite, extend or shorten the store leave earlier traces as they were, read before or after', () => {
  // 40 positions span several of the store's blocks (capture.ts BLOCK); chunks of 5 straddle them
  assert.ok(40 >= 3 * BLOCK && 16 % BLOCK === 0 && 21 % BLOCK !== 0 && 30 % BLOCK !== 0);
  const capture = ['blocks.*.attn.hook_pattern', 'blocks.*.hook_resid_post', 'blocks.0.attn.hook_scores', 'hook_tokens'];
  const long = randomTokens(40, config.vocabSize, 9);
  const prompts = [
    long,
    long.map((t, i) => (i < 21 ? t : (t + 3) % config.vocabSize)),   // reuses 21 positions: rewrites from the middle of a block
    long.slice(0, 30),                                                // shorter, the first prompt's start: rewrites 21..29
    long.map((t, i) => (i < 33 ? t : (t + 5) % config.vocabSize)),   // longer again: writes from position 30 (mid-block) into new blocks
    long.map((t, i) => (i < 16 ? t : (t + 1) % config.vocabSize)),   // rewrites from the first position of a block
  ];
  const session = new Session(weights, { chunkSize: 5 });
  const runs = prompts.map((t) => session.run(t, { capture }));
  assert.deepEqual(runs.map((r) => r.reused), [0, 21, 21, 30, 16]);
  // the first trace's rows read now, before the later runs are compared: both orders are covered
  const early = get(runs[0]!.trace, 'blocks.2.hook_resid_post').slice();
  for (const [i, t] of prompts.entries()) {
    const want = new Session(weights).run(t, { capture }).trace;
    const got = runs[i]!.trace;
    assert.deepEqual([...got.keys()], [...want.keys()]);
    for (const [name, e] of want) {
      const g = got.get(name)!;
      assert.deepEqual(g.shape, e.shape, `${name} of run ${i}`);
      if (g.row) {
        // row(p) reads the same numbers as data, without gathering it first
        const size = e.data.length / t.length;
        for (const p of [0, 15, 16, 17, t.length - 1]) assert.deepEqual(g.row(p), e.data.subarray(p * size, (p + 1) * size), `${name} of run ${i}, row ${p}`);
        assert.throws(() => g.row!(t.length), RangeError);
      }
      assert.deepEqual(g.data, e.data, `${name} of run ${i}, read after every run`);
      assert.equal(g.data, g.data, `${name}: gathered once`);
    }
  }
  assert.deepEqual(get(runs[0]!.trace, 'blocks.2.hook_resid_post'), early);
});

test('a run whose recording would pass the capture limit is refused before it starts, naming the largest hooks; the session loses nothing', () => {
  // this model's pattern over 13 positions: 6 heads × 91 causal weights × 4 bytes = 2,184 bytes a layer
  assert.equal(captureBytes(config, 'blocks.0.attn.hook_pattern', P), 2184);
  assert.equal(captureBytes(config, 'blocks.0.hook_resid_pre', P), 13 * 24 * 4);
  assert.equal(captureBytes(config, 'blocks.0.hook_resid_pre:norm', P), 13 * 4);
  const s = new Session(weights, { captureLimitBytes: 3 * 2184 + 100 });
  try {
    const first = s.run(tokens, { capture: ['blocks.*.attn.hook_pattern'] });
    assert.throws(() => s.run(tokens, { capture: ['blocks.*.attn.hook_pattern', 'blocks.*.attn.hook_scores'] }), (e: unknown) => e instanceof UsageError
      && /^capture: recording 6 hooks over 13 positions would take 12\.8 KiB, more than the 6\.5 KiB a run may record \(the largest: blocks\.0\.attn\.hook_scores 2\.1 KiB, /.test((e as Error).message)
      && /only their norms \(<hook>:norm\), or a shorter prompt/.test((e as Error).message));
    // the refused run changed nothing: the next one reuses the whole prefix and its recorded rows
    const again = s.run(tokens, { capture: ['blocks.*.attn.hook_pattern'] });
    assert.equal(again.reused, P - 1);
    assert.deepEqual(get(again.trace, 'blocks.2.attn.hook_pattern'), get(first.trace, 'blocks.2.attn.hook_pattern'));
  } finally {
    s.dispose();
  }
  // the default: every layer's pattern of TinyLlama at 2,048 tokens (5.5 GiB) is past it, one layer's is not
  const tiny = { ...config, nLayers: 22, nHeads: 32, dModel: 2048 };
  assert.ok(22 * captureBytes(tiny, 'blocks.0.attn.hook_pattern', 2048) > CAPTURE_LIMIT_BYTES && captureBytes(tiny, 'blocks.0.attn.hook_pattern', 2048) < CAPTURE_LIMIT_BYTES);
});
