// A run that records a layer's hooks the session's store lacks, over a prefix it reuses: attention
// rows are recomputed from the lane's recorded attn.hook_rot_q and KV cache (session.ts
// backfillAttention), FFN activations and residuals from its recorded residual and sublayer
// outputs (backfillBlockRows), with the forward pass's kernels, instead of rerunning the prompt
// from position 0 — and they equal a fresh run's bit for bit. So do an every-layer attention
// summary's rows. Checked with the readable twins and with the WebAssembly kernels on 2 threads.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Session, type RunOptions, type RunResult } from '../../src/engine/session.ts';
import type { Edit } from '../../src/engine/edits.ts';
import type { CpuKernelsName } from '../../kernels/wasm/choose.ts';
import { randomTokens, randomWeights, tinyConfig } from './engine-fixtures.ts';

const c = tinyConfig();                      // 3 layers, 6 heads (GQA 6:2), d_head 4, d_model 24, d_ffn 40
const w = randomWeights(c, 'F32', 11);
const prompt = randomTokens(30, c.vocabSize, 4);
const next = [...prompt, 17];
const Q = 'blocks.*.attn.hook_rot_q';
const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

const KERNELS: { kernels: CpuKernelsName; threads?: number }[] = [{ kernels: 'js' }, { kernels: 'wasm', threads: 2 }];

function sameRun(got: RunResult, want: RunResult, what: string): void {
  assert.deepEqual(bits(got.logits), bits(want.logits), `${what}: logits`);
  for (const [name, e] of want.trace) assert.deepEqual(bits(got.trace.get(name)!.data), bits(e.data), `${what}: ${name}`);
}

for (const k of KERNELS) {
  const label = `${k.kernels}${k.threads ? `, ${k.threads} threads` : ''}`;
  const make = () => new Session(w, { ...k, chunkSize: 8 });
  const fresh = (tokens: number[], o: RunOptions) => { const s = make(); try { return s.run(tokens, o); } finally { s.dispose(); } };

  test(`${label}: another layer's pattern and scores come from the recorded q and the KV cache, bit for bit`, () => {
    const s = make();
    try {
      s.run(prompt, { capture: [Q, 'blocks.0.attn.hook_pattern'], logits: 'all' });
      const o: RunOptions = { capture: [Q, 'blocks.2.attn.hook_pattern', 'blocks.1.attn.hook_scores'], logits: 'all' };
      const r = s.run(next, o);
      assert.equal(r.reused, prompt.length, 'the prefix is reused: its rows were recomputed, not rerun');
      sameRun(r, fresh(next, o), 'layer 2 pattern, layer 1 scores');
      // and back to layer 0 over the same tokens: only the last position is run
      const back: RunOptions = { capture: [Q, 'blocks.0.attn.hook_pattern'], logits: 'all' };
      const b = s.run(next, back);
      assert.equal(b.reused, next.length - 1);
      sameRun(b, fresh(next, back), 'layer 0 again');
    } finally {
      s.dispose();
    }
  });

  test(`${label}: with some layers' queries recorded (the app's group past its budget), a layer change within them reruns nothing`, () => {
    const s = make();
    try {
      const group = ['blocks.1.attn.hook_rot_q', 'blocks.2.attn.hook_rot_q'];
      s.run(prompt, { capture: ['blocks.1.attn.hook_pattern', ...group] });
      const o: RunOptions = { capture: ['blocks.2.attn.hook_pattern', ...group] };
      const r = s.run(prompt, o);
      assert.equal(r.reused, prompt.length - 1, 'layer 2 from the recorded queries: only the last position runs');
      sameRun(r, fresh(prompt, o), 'layer 2 in the group');
      // a layer outside the group has no queries: the prompt is run from position 0
      const out: RunOptions = { capture: ['blocks.0.attn.hook_pattern', ...group] };
      assert.equal(s.run(prompt, out).reused, 0);
    } finally {
      s.dispose();
    }
  });

  test(`${label}: an attention summary of every layer reuses the prefix, its rows recomputed from the recorded q, bit for bit`, () => {
    const s = make();
    try {
      const o: RunOptions = { capture: [Q, 'blocks.1.attn.hook_pattern'], summary: { attention: { size: 8 } }, logits: 'all' };
      assert.equal(s.run(prompt, o).reused, 0);
      const r = s.run(next, o);
      assert.equal(r.reused, prompt.length);
      const want = fresh(next, o);
      sameRun(r, want, 'summary run');
      assert.deepEqual(r.attentionSummary, want.attentionSummary);
      // without every layer's queries, the rows are recomputed by a run from the start of the
      // summary's first bin whose start moved with the length (30 positions in 8 bins start at
      // 0 4 8 12 15 …, 31 at 0 4 8 12 16 …)
      const partial: RunOptions = { ...o, capture: ['blocks.0.attn.hook_rot_q', 'blocks.1.attn.hook_pattern'], lane: 'partial' };
      s.run(prompt, partial);
      const p = s.run(next, partial);
      assert.equal(p.reused, 12);
      assert.deepEqual(p.attentionSummary, fresh(next, partial).attentionSummary);
    } finally {
      s.dispose();
    }
  });

  test(`${label}: a summary resumes the lane's last one from the changed bin, bit for bit, with and without the queries`, () => {
    const s = make();
    try {
      const size = 6, B = { attention: { size } };
      const binStart = (p: number) => Math.ceil((Math.floor((p * size) / prompt.length) * prompt.length) / size);
      const withQ: RunOptions = { capture: [Q], summary: B, logits: 'all' };
      const noQ: RunOptions = { capture: ['blocks.1.attn.hook_z'], summary: B, lane: 'noq' };
      for (const o of [withQ, noQ]) {
        assert.equal(s.run(prompt, o).reused, 0);
        let tokens = prompt;
        // the last token changed, then one in the middle, then the same tokens again
        for (const at of [prompt.length - 1, 13, -1]) {
          if (at >= 0) tokens = tokens.map((t, i) => (i === at ? (t + 5) % c.vocabSize : t));
          const r = s.run(tokens, o);
          const changed = at >= 0 ? at : tokens.length - 1;
          // with the queries the prefix's KV rows are reused (the rows of the resumed bin come from
          // them); without, the forward pass reruns from the start of that bin
          assert.equal(r.reused, o === withQ ? changed : binStart(changed), `change at ${at}: reused`);
          const want = fresh(tokens, o);
          sameRun(r, want, `change at ${at}`);
          assert.deepEqual(r.attentionSummary, want.attentionSummary, `change at ${at}: the summary`);
        }
      }
      // a run of the lane in between (recording the same, but no summary) that changes a token: resumed only before it
      const other = prompt.map((t, i) => (i === 8 ? (t + 1) % c.vocabSize : t));
      s.run(other, { lane: 'noq', capture: noQ.capture });
      const back = other.map((t, i) => (i === prompt.length - 1 ? (t + 2) % c.vocabSize : t));
      const r = s.run(back, noQ);
      assert.equal(r.reused, binStart(8));
      assert.deepEqual(r.attentionSummary, fresh(back, noQ).attentionSummary);
      // other bins, or a length whose first bin starts elsewhere (31 positions in 6 bins start at
      // 0 6 11 16 21 26, 30 at 0 5 10 15 20 25): nothing is resumed without the queries
      assert.equal(s.run(back, { ...noQ, summary: { attention: { size: 5 } } }).reused, 0);
      assert.equal(s.run([...back, 3], noQ).reused, 0);
      // 29 positions start their bins where 30 do: a shorter prompt whose last token changed
      // resumes from its last bin (25)
      s.run(prompt, { ...noQ, lane: 'len' });
      const shorter = prompt.slice(0, 29).map((t, i) => (i === 28 ? (t + 4) % c.vocabSize : t));
      const r29 = s.run(shorter, { ...noQ, lane: 'len' });
      assert.equal(r29.reused, 25);
      assert.deepEqual(r29.attentionSummary, fresh(shorter, noQ).attentionSummary);
    } finally {
      s.dispose();
    }
  });

  test(`${label}: another layer's FFN activations, sublayer outputs and residuals come from the recorded residual (and sublayer outputs), bit for bit`, () => {
    // Q8_0 weights (rows of 32): the FFN products round their activations to 8 bits ('llamacpp') on the wasm kernels
    const cq = tinyConfig({ dModel: 32, nHeads: 8, nKvHeads: 2, dHead: 4, dFfn: 64 }), wq = randomWeights(cq, 'Q8_0', 3);
    const tokens = randomTokens(30, cq.vocabSize, 6), more = [...tokens, 9];
    const mk = () => new Session(wq, { ...k, chunkSize: 8 });
    const s = mk();
    try {
      const base = ['blocks.*.hook_resid_pre', 'blocks.*.hook_attn_out', 'blocks.*.hook_ffn_out'];
      s.run(tokens, { capture: [...base, 'blocks.0.ffn.hook_act'], logits: 'all' });
      const o: RunOptions = { capture: [...base, 'blocks.2.ffn.hook_act', 'blocks.1.ffn.hook_gate', 'blocks.1.ffn.hook_up', 'blocks.2.hook_resid_post', 'blocks.0.hook_resid_mid'], logits: 'all' };
      const r = s.run(more, o);
      assert.equal(r.reused, tokens.length);
      const f = mk();
      try { sameRun(r, f.run(more, o), 'FFN hooks and residuals'); } finally { f.dispose(); }
      // with the residual alone: the attention output from the KV cache (queries from the residual),
      // the FFN's from the activations, the residual after a layer from the next layer's input
      s.run(tokens, { capture: ['blocks.*.hook_resid_pre', 'blocks.0.ffn.hook_act'], lane: 'bare', logits: 'all' });
      const bare: RunOptions = { capture: ['blocks.*.hook_resid_pre', 'blocks.1.ffn.hook_act', 'blocks.1.hook_attn_out', 'blocks.2.hook_ffn_out',
        'blocks.0.hook_resid_post', 'blocks.2.hook_resid_post', 'blocks.2.hook_resid_mid'], lane: 'bare', logits: 'all' };
      const rb = s.run(more, bare);
      assert.equal(rb.reused, tokens.length, 'from the residual alone');
      const g = mk();
      try { sameRun(rb, g.run(more, { ...bare, lane: undefined }), 'from the residual alone'); } finally { g.dispose(); }
      // without the layer's input there is nothing to recompute from (a session of its own: no other lane to start from)
      const none = mk();
      try {
        none.run(tokens, { capture: ['blocks.0.hook_resid_pre'] });
        assert.equal(none.run(more, { capture: ['blocks.0.hook_resid_pre', 'blocks.1.ffn.hook_act'] }).reused, 0);
      } finally {
        none.dispose();
      }
    } finally {
      s.dispose();
    }
  });

  test(`${label}: without the recorded q, or past the lane's first edited position, the rows are rerun`, () => {
    const s = make();
    try {
      s.run(prompt, { capture: ['blocks.0.attn.hook_pattern'] });
      assert.equal(s.run(next, { capture: ['blocks.2.attn.hook_pattern'] }).reused, 0, 'no q recorded');
      // a pattern edit applies after the kernel: rows from its position on are not recomputed from q
      const edits: Edit[] = [{ hook: 'blocks.2.attn.hook_pattern', op: 'zero', heads: [1], positions: [12] }];
      s.run(prompt, { capture: [Q, 'blocks.0.attn.hook_pattern'], edits, logits: 'all', lane: 'edited' });
      const o: RunOptions = { capture: [Q, 'blocks.2.attn.hook_pattern'], edits, logits: 'all', lane: 'edited' };
      const r = s.run(next, o);
      assert.equal(r.reused, 12, 'reused up to the edited position');
      sameRun(r, fresh(next, { ...o, lane: undefined }), 'with a pattern edit');
    } finally {
      s.dispose();
    }
  });
}
