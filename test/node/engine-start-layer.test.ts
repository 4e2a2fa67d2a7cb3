// RunOptions.startLayer (session.ts): a run that skips the layers below a given one, starting from
// the residual a run of the same tokens recorded there, gives the logits of the whole run bit for
// bit (the twins, and the WebAssembly kernels on 2 threads, on F32 and Q8_0 weights, across chunk
// boundaries); the stale rows it leaves in the lower layers' KV cache are never reused, not even
// after it is cancelled mid-way; and a request it cannot honour (a layer out of range, a residual
// of the wrong size, a capture, an edit below the layer) is refused with a UsageError naming the
// field.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Session, type RunOptions } from '../../src/engine/session.ts';
import type { Edit } from '../../src/engine/edits.ts';
import { UsageError } from '../../src/engine/errors.ts';
import type { CpuKernelsName } from '../../kernels/wasm/choose.ts';
import { randomTokens, randomWeights, tinyConfig } from './engine-fixtures.ts';

const c = tinyConfig({ dModel: 32, nHeads: 8, nKvHeads: 2, dHead: 4, dFfn: 64 });   // 3 layers; rows of 32 for Q8_0
const N = 21;
const corrupt = randomTokens(N, c.vocabSize, 5);
const clean = randomTokens(N, c.vocabSize, 6);
const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

const KERNELS: { kernels: CpuKernelsName; threads?: number }[] = [{ kernels: 'js' }, { kernels: 'wasm', threads: 2 }];

for (const type of ['F32', 'Q8_0'] as const) {
  const w = randomWeights(c, type, 13);
  for (const k of KERNELS) {
    const label = `${type}, ${k.kernels}${k.threads ? ` on ${k.threads} threads` : ''}`;
    const make = () => new Session(w, { ...k, chunkSize: 8 });
    /** A run in a session of its own: the reference. */
    const fresh = (o: RunOptions) => { const s = make(); try { return s.run(corrupt, o).logits; } finally { s.dispose(); } };
    const recorded = (tokens: number[], hook: string) => { const s = make(); try { return s.run(tokens, { capture: [hook] }).trace.get(hook)!.data; } finally { s.dispose(); } };
    const inputs = Array.from({ length: c.nLayers }, (_, l) => recorded(corrupt, `blocks.${l}.hook_resid_pre`));

    test(`${label}: a run from layer l on the recorded residual gives the whole run's logits, bit for bit`, () => {
      const s = make();
      try {
        s.run(corrupt);                                                    // the corrupted run: the cache every patched run shares
        for (const [l, hook, from] of [[2, 'attn.hook_z', 9], [1, 'hook_resid_pre', 3], [1, 'attn.hook_z', 3], [0, 'hook_ffn_out', 2], [2, 'hook_resid_pre', 0]] as const) {
          const values = recorded(clean, `blocks.${l}.${hook}`);
          const positions = Array.from({ length: N - from }, (_, i) => from + i);
          const edits: Edit[] = [{ hook: `blocks.${l}.${hook}`, op: 'patch', positions, values }];
          const r = s.run(corrupt, { edits, logits: 'new', startLayer: { layer: l, residual: inputs[l]! } });
          assert.equal(r.reused, from, `layer ${l} from ${from}: the prefix before the patch is reused`);
          const want = fresh({ edits, logits: 'new' }).subarray(from * c.vocabSize);
          assert.deepEqual(bits(r.logits), bits(want), `layer ${l}, ${hook} from ${from}: every computed position's logits`);
        }
        // the layers below are not run: the residual given is what layer 2 sees
        const other = recorded(clean, 'blocks.2.hook_resid_pre');
        const r = s.run(corrupt, { startLayer: { layer: 2, residual: other } });
        assert.equal(r.reused, 0, 'the run before edited from position 0');
        assert.deepEqual(bits(r.logits), bits(fresh({ edits: [{ hook: 'blocks.2.hook_resid_pre', op: 'patch', values: other }] })),
          'from the clean residual: the corrupted run with it patched in');
      } finally {
        s.dispose();
      }
    });

    test(`${label}: the lower layers' stale rows are not reused by the next run`, () => {
      const s = make();
      try {
        // layer 0 edited from position 4: every layer's rows from 4 on hold the edited run
        const zero: Edit[] = [{ hook: 'blocks.0.hook_resid_pre', op: 'zero', positions: [4, 5, 6] }];
        s.run(corrupt, { edits: zero });
        // then a run of the corrupted prompt from layer 2, edited at layer 2 from position 10: layers
        // 0 and 1 still hold the zeroed run's rows from 4 on; positions 4 .. 9 of layer 2 too
        // (they are recomputed: this run's edits differ from position 4 on)
        const patch: Edit[] = [{ hook: 'blocks.2.attn.hook_z', op: 'patch', positions: [10, 11, 12], values: recorded(clean, 'blocks.2.attn.hook_z') }];
        const a = s.run(corrupt, { edits: patch, startLayer: { layer: 2, residual: inputs[2]! } });
        assert.equal(a.reused, 4);
        assert.deepEqual(bits(a.logits), bits(fresh({ edits: patch })), 'from layer 2');
        // the same edits again, every layer: only the 4 positions before the layers went stale are reused
        const b = s.run(corrupt, { edits: patch });
        assert.equal(b.reused, 4, 'the lower layers are stale from position 4 on');
        assert.deepEqual(bits(b.logits), bits(fresh({ edits: patch })), 'every layer afterwards');
        // and now that every layer is computed again, the whole prefix is reusable
        assert.equal(s.run(corrupt, { edits: patch }).reused, N - 1);
      } finally {
        s.dispose();
      }
    });

    test(`${label}: a run from a layer cancelled after its first chunk leaves no stale rows to reuse`, async () => {
      const s = make();
      try {
        const zero: Edit[] = [{ hook: 'blocks.0.hook_resid_pre', op: 'zero', positions: [4, 5, 6] }];
        s.run(corrupt, { edits: zero });
        const patch: Edit[] = [{ hook: 'blocks.2.attn.hook_z', op: 'patch', positions: [10, 11, 12], values: recorded(clean, 'blocks.2.attn.hook_z') }];
        const stop = new AbortController();
        setImmediate(() => stop.abort(new Error('stop')));                 // after the first chunk (positions 4 .. 11)
        await assert.rejects(s.runAsync(corrupt, { edits: patch, startLayer: { layer: 2, residual: inputs[2]! }, signal: stop.signal }), /stop/);
        const b = s.run(corrupt, { edits: patch });
        assert.equal(b.reused, 4, 'positions 4 .. 11 of layers 0 and 1 are the zeroed run\'s');
        assert.deepEqual(bits(b.logits), bits(fresh({ edits: patch })));
      } finally {
        s.dispose();
      }
    });
  }
}

test('requests a start layer cannot honour are refused, naming the field', () => {
  const w = randomWeights(c, 'F32', 13);
  const s = new Session(w, { kernels: 'js' });
  const residual = new Float32Array(N * c.dModel);
  const refused = (o: RunOptions, field: RegExp, what: string) => {
    assert.throws(() => s.run(corrupt, o), (e: unknown) => e instanceof UsageError && field.test(e.message), what);
  };
  refused({ startLayer: { layer: c.nLayers, residual } }, /startLayer\.layer.*0 to 2/, 'a layer past the last');
  refused({ startLayer: { layer: -1, residual } }, /startLayer\.layer/, 'a negative layer');
  refused({ startLayer: { layer: 1.5, residual } }, /startLayer\.layer/, 'a fractional layer');
  refused({ startLayer: { layer: 1, residual: new Float32Array(N * c.dModel - 1) } }, /startLayer\.residual.*21 × 32/, 'a residual too short');
  refused({ startLayer: { layer: 1, residual: Array.from(residual) as unknown as Float32Array } }, /startLayer\.residual/, 'not a Float32Array');
  refused({ startLayer: null as unknown as RunOptions['startLayer'] }, /startLayer/, 'null');
  refused({ startLayer: { layer: 1, residual }, capture: ['blocks.2.hook_resid_post'] }, /startLayer.*record nothing/, 'a capture');
  refused({ startLayer: { layer: 1, residual }, logits: 'all' }, /startLayer.*record nothing/, "'all' logits");
  refused({ startLayer: { layer: 1, residual }, summary: { attention: {} } }, /startLayer.*record nothing/, 'a summary');
  refused({ startLayer: { layer: 2, residual }, edits: [{ hook: 'blocks.1.attn.hook_z', op: 'zero' }] }, /startLayer.*blocks\.1\.attn\.hook_z, below it/, 'an edit below');
  refused({ startLayer: { layer: 1, residual }, edits: [{ hook: 'hook_embed', op: 'zero' }] }, /startLayer.*hook_embed/, 'an embedding edit');
  // a refused run changes nothing: the session still runs, and from layer 0 a run is a plain one
  const plain = s.run(corrupt).logits;
  const r = s.run(corrupt, { startLayer: { layer: 0, residual: new Session(w, { kernels: 'js' }).run(corrupt, { capture: ['blocks.0.hook_resid_pre'] }).trace.get('blocks.0.hook_resid_pre')!.data }, edits: [{ hook: 'final_norm.hook_out', op: 'zero', positions: [N - 1] }] });
  assert.equal(r.reused, N - 1);
  assert.ok(plain.some((x) => x !== 0) && r.logits.every((x) => x === 0), 'the final norm zeroed: all-zero logits');
  s.dispose();
});
