// The induction statistic of the attention summary (src/engine/attention-summary.ts: inductionTargets,
// inductionScore, AttentionSummarizer with tokens; cells/plot/attention.ts sorts by it), checked on
// hand-computed patterns, and on a REAL forward pass of a two-layer Llama whose weights are set by
// hand so that exactly one head (layer 1, head 2) is an induction head. The demo notebook
// demos/induction-heads.md draws this score (attention cell, `sort: induction`).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AttentionSummarizer, inductionScore, inductionTargets } from '../../src/engine/attention-summary.ts';
import { orderHeads, summarize, headStatsRows, type HeadSummary } from '../../cells/plot/attention.ts';
import { Session } from '../../src/engine/session.ts';
import type { ModelConfig } from '../../src/engine/config.ts';
import { modelWeights } from '../../src/engine/weights.ts';
import { requiredTensors } from '../../src/formats/names.ts';
import { getTensorType } from '../../src/formats/quant/index.ts';
import { byteSize, numElements, type Tensor } from '../../src/formats/tensor.ts';
import { Rng } from '../../src/engine/random.ts';
import { createRegistry, validateSettings } from '../../src/notebook/registry.ts';

const close = (a: number, b: number, tol = 1e-6) => Math.abs(a - b) <= tol;

test('inductionTargets: the position after the latest earlier occurrence of the same token', () => {
  // BOS, a b c, a b c: the second a (4) looks at 2 (the b after the first a), and so on
  assert.deepEqual([...inductionTargets([1, 5, 6, 7, 5, 6, 7])], [-1, -1, -1, -1, 2, 3, 4]);
  // a token repeated right away targets itself; the LATEST earlier occurrence wins
  assert.deepEqual([...inductionTargets([9, 9, 4, 9])], [-1, 1, -1, 2]);
  assert.deepEqual([...inductionTargets([])], []);
});

/** A [n, n] causal pattern whose row q is one-hot at f(q) (f(q) ≤ q), or uniform when f(q) < 0. */
function pattern(n: number, f: (q: number) => number): Float32Array {
  const p = new Float32Array(n * n);
  for (let q = 0; q < n; q++) {
    const k = f(q);
    if (k >= 0) p[q * n + k] = 1;
    else for (let j = 0; j <= q; j++) p[q * n + j] = 1 / (q + 1);
  }
  return p;
}

test('inductionScore on hand-made patterns of a period-3 repeat (BOS a b c a b c)', () => {
  const ids = [1, 5, 6, 7, 5, 6, 7], n = ids.length, T = 3, t = inductionTargets(ids);
  // an induction head: second-half query i looks at i − T + 1
  assert.equal(inductionScore(pattern(n, (q) => (q > T ? q - T + 1 : 0)), n, t), 1);
  // a previous-token head never looks there (T > 2)
  assert.equal(inductionScore(pattern(n, (q) => Math.max(0, q - 1)), n, t), 0);
  // a duplicate-token head looks at the previous occurrence itself (i − T): one off, score 0
  assert.equal(inductionScore(pattern(n, (q) => (q > T ? q - T : q)), n, t), 0);
  // uniform rows: the mean of 1/(q+1) over q = 4, 5, 6 = (1/5 + 1/6 + 1/7) / 3
  assert.ok(close(inductionScore(pattern(n, () => -1), n, t), (1 / 5 + 1 / 6 + 1 / 7) / 3));
  // half on the target, half on BOS: 0.5
  const half = new Float32Array(n * n);
  for (let q = 0; q < n; q++) { if (t[q]! >= 0) { half[q * n + t[q]!] += 0.5; half[q * n] += 0.5; } else half[q * n + q] = 1; }
  assert.ok(close(inductionScore(half, n, t), 0.5));
  // no repeated token: NaN, not 0
  assert.ok(Number.isNaN(inductionScore(pattern(4, () => -1), 4, inductionTargets([1, 2, 3, 4]))));
});

test('the summarizer records induction per head (NaN without tokens); sorting puts the induction head first', () => {
  const ids = [1, 5, 6, 7, 5, 6, 7], n = ids.length, T = 3;
  const heads = [pattern(n, () => -1), pattern(n, (q) => Math.max(0, q - 1)), pattern(n, (q) => (q > T ? q - T + 1 : 0)), pattern(n, () => 0)];
  const data = new Float32Array(4 * n * n);
  heads.forEach((p, h) => data.set(p, h * n * n));
  const s = summarize([data], 4, n, 4, ids);
  const t = inductionTargets(ids);
  heads.forEach((p, h) => assert.ok(close(s.induction![h]!, inductionScore(p, n, t)), `head ${h}`));
  assert.deepEqual([...s.induction!].map((v) => Math.round(v * 1000) / 1000), [0.17, 0, 1, 0]);
  assert.deepEqual(orderHeads(s, 0, 'induction'), [2, 0, 1, 3]);
  assert.deepEqual(Object.keys(headStatsRows(s)[0]!), ['layer', 'head', 'entropy', 'first', 'prev', 'induction', 'rank']);
  const without = summarize([data], 4, n, 4);
  assert.ok(without.induction!.every((v) => Number.isNaN(v)));
  assert.deepEqual(Object.keys(headStatsRows(without)[0]!), ['layer', 'head', 'entropy', 'first', 'prev', 'rank']);
  // a summary from before the statistic existed (no induction array) sorts in index order
  const old: HeadSummary = { ...s, induction: undefined };
  assert.deepEqual(orderHeads(old, 0, 'induction'), [0, 1, 2, 3]);
  // rows in any order give the same sums
  const acc = new AttentionSummarizer(1, 4, n, 4, ids);
  for (let q = n - 1; q >= 0; q--) for (let h = 3; h >= 0; h--) acc.row(0, h, q, data.subarray((h * n + q) * n, (h * n + q) * n + q + 1));
  assert.deepEqual([...acc.result().induction], [...s.induction!]);
});

test('the notebook accepts `sort: induction` on an attention cell', () => {
  const kind = createRegistry().get('attention')!;
  assert.deepEqual(validateSettings(kind, { sort: 'induction' }), []);
});

// ---------------------------------------------------------------------------------------------
// A Llama with one induction head, weights set by hand.
//
// Shape: 2 layers, d_model 128, 4 query heads sharing 2 KV heads (GQA), d_head 32, vocabulary 24,
// RoPE theta 1e8 (so pairs 0–3 turn fast: 1, 0.32, 0.1, 0.032 rad per position, and pairs 4–15
// barely move over 21 positions), RMSNorm weights 1, feed-forward weights 0 (SwiGLU of zeros adds
// nothing), untied unembedding. The residual stream is laid out as four subspaces:
//   TOK  (dims 0–23)  one-hot of the current token (the embedding)
//   PREV (24–47)      one-hot of the previous token (written by layer 0)
//   ONE  (48)         a constant 1 (the embedding), which carries position through RoPE alone
//   PRED (49–72)      one-hot of the predicted next token (written by layer 1)
// Every position's residual has the same norm at each layer, so RMSNorm multiplies by the same
// factor everywhere: √(128/2) = 8 into layer 0 (TOK + ONE), √(128/3) into layer 1 (+ PREV).
//
// Layer 0, head 0 — a previous-token head with no content: q and k read only ONE. In RoPE pair j,
// k = (1, 0) and q = (cos θj, −sin θj) = R(−θj)·k, so after rotating by their positions
// q_i · k_k = cos((k − i + 1)·θj): largest at k = i − 1 in every pair at once (the four
// frequencies disagree everywhere else). v = TOK, and the output writes it into PREV.
// Heads 1–3 of layer 0: zero weights (uniform attention, nothing written).
// Layer 1, head 2 (KV head 1) — the induction head: q = TOK, k = PREV (in pairs 4–15, where RoPE
// is nearly still), so query i attends to the position whose PREVIOUS token equals token i: the
// token after its previous occurrence. v = TOK, written into PRED, which the unembedding reads:
// the model predicts the rest of a repeated sequence.
// Layer 1, head 0 (KV head 0) — a distractor, a duplicate-token head: q = TOK, k = TOK, so it
// attends to the earlier occurrence ITSELF (and to itself), one position before the induction
// target: its pattern is a stripe one diagonal away, and its induction score must stay low.
// Heads 1 and 3 of layer 1: q = 0, uniform attention.

const V = 24, D = 128, DH = 32, TOK = 0, PREV = 24, ONE = 48, PRED = 49;
const config: ModelConfig = {
  arch: 'llama', name: 'hand-made induction', nLayers: 2, dModel: D, dFfn: 32, nHeads: 4, nKvHeads: 2, dHead: DH,
  vocabSize: V, nCtx: 64, rmsEps: 1e-6, ropeTheta: 1e8, ropeScaling: null, tiedEmbeddings: false, bosId: 1, eosId: 2,
};

function inductionModel() {
  const values = new Map<string, { v: Float32Array; cols: number }>();
  for (const r of requiredTensors(config)) {
    const v = new Float32Array(numElements(r.shape));
    if (r.shape.length === 1) v.fill(1);                               // RMSNorm weights
    values.set(r.name, { v, cols: r.shape[r.shape.length - 1]! });
  }
  const set = (name: string, row: number, col: number, x: number) => {
    const t = values.get(name);
    if (!t) throw new Error(`no tensor ${name}`);
    t.v[row * t.cols + col] = x;                                        // [rows, cols], row-major
  };
  for (let t = 0; t < V; t++) { set('embed.weight', t, TOK + t, 1); set('embed.weight', t, ONE, 1); set('unembed.weight', t, PRED + t, 4); }
  const s0 = Math.sqrt(D / 2), s1 = Math.sqrt(D / 3);                    // RMSNorm gains into layers 0 and 1
  // layer 0, head 0 (KV head 0): previous-token positions from ONE through RoPE
  const alpha = Math.sqrt((30 * Math.sqrt(DH)) / (s0 * s0));            // 30 logit units per pair at the peak
  for (let j = 0; j < 4; j++) {
    const theta = Math.pow(config.ropeTheta, (-2 * j) / DH);
    set('blocks.0.attn.wq', 2 * j, ONE, alpha * Math.cos(theta));
    set('blocks.0.attn.wq', 2 * j + 1, ONE, -alpha * Math.sin(theta));
    set('blocks.0.attn.wk', 2 * j, ONE, alpha);
  }
  for (let t = 0; t < V; t++) {
    set('blocks.0.attn.wv', t, TOK + t, 1 / s0);                // v = one-hot of the token
    set('blocks.0.attn.wo', PREV + t, t, 1);                    // head 0's output → PREV
  }
  // layer 1: content matching in head dims 8..31 (RoPE pairs 4–15)
  const beta = Math.sqrt((20 * Math.sqrt(DH)) / (s1 * s1));             // 20 logit units for a match
  for (let t = 0; t < V; t++) {
    set('blocks.1.attn.wq', 2 * DH + 8 + t, TOK + t, beta);       // head 2 (induction): q = TOK
    set('blocks.1.attn.wk', 1 * DH + 8 + t, PREV + t, beta);      // KV head 1: k = PREV
    set('blocks.1.attn.wq', 0 * DH + 8 + t, TOK + t, beta);       // head 0 (duplicate token): q = TOK
    set('blocks.1.attn.wk', 0 * DH + 8 + t, TOK + t, beta);       // KV head 0: k = TOK
    set('blocks.1.attn.wv', 1 * DH + t, TOK + t, 1 / s1);         // KV head 1: v = TOK
    set('blocks.1.attn.wo', PRED + t, 2 * DH + t, 1);             // head 2's output → PRED
  }
  const tensors = new Map<string, Tensor>();
  const f32 = getTensorType('F32');
  for (const r of requiredTensors(config)) {
    const v = values.get(r.name)!.v, data = new Uint8Array(byteSize(f32, v.length));
    f32.quantize(v, 0, data, 0, v.length);
    tensors.set(r.name, { name: r.name, type: 'F32', shape: r.shape, data });
  }
  return modelWeights(config, tensors);
}

/** BOS, then T distinct random tokens (from 3..23), then the same T again. */
function repeatedRandom(T: number, seed: number): number[] {
  const rng = new Rng(seed), pool = Array.from({ length: V - 3 }, (_, i) => i + 3);
  for (let i = pool.length - 1; i > 0; i--) { const j = rng.int(i + 1); [pool[i], pool[j]] = [pool[j]!, pool[i]!]; }
  const seq = pool.slice(0, T);
  return [1, ...seq, ...seq];
}

test('a hand-made two-layer Llama: the induction score, from the real forward pass, finds its one induction head', () => {
  const weights = inductionModel();
  const T = 10, tokens = repeatedRandom(T, 7), n = tokens.length;
  const r = new Session(weights).run(tokens, { capture: 'blocks.*.attn.hook_pattern', summary: { attention: { size: 8 } }, logits: 'all' });
  const targets = inductionTargets(tokens);
  for (let q = T + 1; q < n; q++) assert.equal(targets[q], q - T + 1, 'the second half targets i − T + 1');
  const scores: number[][] = [];
  for (let l = 0; l < 2; l++) {
    const p = r.trace.get(`blocks.${l}.attn.hook_pattern`)!.data;          // [heads, q, k]
    scores.push(Array.from({ length: 4 }, (_, h) => inductionScore(p.subarray(h * n * n, (h + 1) * n * n), n, targets)));
  }
  // layer 0, head 0 really is a previous-token head (the construction's first step worked)
  const p0 = r.trace.get('blocks.0.attn.hook_pattern')!.data;
  for (let q = 1; q < n; q++) assert.ok(p0[q * n + q - 1]! > 0.99, `layer 0 head 0, query ${q}: ${p0[q * n + q - 1]} on q − 1`);
  // the score finds layer 1, head 2 and no other head
  const flat = scores.flatMap((row, l) => row.map((v, h) => ({ l, h, v })));
  const best = flat.reduce((a, b) => (b.v > a.v ? b : a));
  assert.deepEqual([best.l, best.h], [1, 2], `scores ${JSON.stringify(scores)}`);
  assert.ok(best.v > 0.95, `the induction head's score is ${best.v}`);
  for (const o of flat) if (o !== best) assert.ok(o.v < 0.2, `layer ${o.l} head ${o.h} scores ${o.v}`);
  // the distractor (layer 1, head 0) attends to the earlier occurrence itself: a stripe one off
  const p1 = r.trace.get('blocks.1.attn.hook_pattern')!.data;
  const dup = Array.from({ length: T }, (_, i) => p1[(T + 1 + i) * n + (1 + i)]!).reduce((a, b) => a + b) / T;
  assert.ok(dup > 0.4, `the duplicate-token head puts ${dup} on i − T`);
  // the engine's own summary (recorded during the run) agrees, and sorting puts head 2 first in layer 1
  const s = r.attentionSummary!;
  for (let l = 0; l < 2; l++) for (let h = 0; h < 4; h++) assert.ok(close(s.induction[l * 4 + h]!, scores[l]![h]!, 1e-5), `summary ${l}.${h}`);
  assert.equal(orderHeads(s, 1, 'induction')[0], 2);
  // and the model completes the repeat: at second-half position i it predicts token i + 1
  for (let i = T + 1; i < n - 1; i++) {
    const row = r.logits.subarray(i * V, (i + 1) * V);
    const top = row.indexOf(Math.max(...row));
    assert.equal(top, tokens[i + 1], `position ${i}`);
  }
});

test('the same model on a prompt with no repeated token: the induction score is NaN for every head', () => {
  const r = new Session(inductionModel()).run([1, 3, 4, 5, 6], { capture: [], summary: { attention: {} } });
  assert.ok(r.attentionSummary!.induction.every((v) => Number.isNaN(v)));
});
