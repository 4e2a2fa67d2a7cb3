// Direct logit attribution (issue 12) through the in-thread Engine on stories260K: the embedding
// term plus every head's and FFN's term equals the engine's own logit within 1e-4 (the final norm's
// scale frozen), at two positions for two tokens; each term against a recomputation from the
// llama2.c .bin of the same model (its own W_U = embedding and final-norm γ, read by offset here);
// the hook_z path against the hook_result path; and the named errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine } from '../../src/engine/api.ts';
import { UsageError } from '../../src/engine/errors.ts';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
const dir = resolve(root, '../shared/models/tinystories-260k');
const ggufBytes = readFileSync(resolve(dir, 'stories260K.gguf'));
const stories = () => ({ kind: 'files' as const, files: [new File([ggufBytes], 'stories260K.gguf')] });

/** γ of the final norm and the (tied) unembedding from the llama2.c checkpoint: 7 int32 then f32 arrays. */
function binWeights() {
  const b = readFileSync(resolve(dir, 'stories260K.bin'));
  const head = new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + 28));
  const [D, Hd, L, H, KV, Vabs] = [head[0]!, head[1]!, head[2]!, head[3]!, head[4]!, head[5]!];
  const V = Math.abs(Vabs), hs = D / H;
  const f = new Float32Array(b.buffer.slice(b.byteOffset + 28, b.byteOffset + b.byteLength - ((b.byteLength - 28) % 4)));
  const embed = f.subarray(0, V * D);                                            // [V, D]
  let o = V * D + L * D;                                                         // after rms_att
  o += L * D * D + 2 * L * KV * hs * D + L * D * D + L * D + 3 * L * Hd * D;     // wq wk wv wo rms_ffn w1 w2 w3
  return { D, L, H, V, embed, gamma: f.subarray(o, o + D) };
}

const tokens = [1, 403, 261, 378, 280, 420, 263, 33, 418, 300, 267, 274];
const capture = ['hook_embed', 'blocks.*.attn.hook_result', 'blocks.*.attn.hook_z', 'blocks.*.hook_ffn_out', 'final_norm.hook_scale'];

test('attribution: the terms sum to the logit, and each equals (γ⊙W_U[t])·c / s recomputed from the .bin', async () => {
  const w = binWeights();
  const engine = new Engine();
  await engine.load(stories());
  const trace = await engine.run({ tokens, capture, logits: 'all', slot: 'a' });
  const acts = {
    embed: (await engine.activation(trace, 'hook_embed')).data,
    scale: (await engine.activation(trace, 'final_norm.hook_scale')).data,
    result: await Promise.all(Array.from({ length: w.L }, (_, l) => engine.activation(trace, `blocks.${l}.attn.hook_result`).then((s) => s.data))),
    ffn: await Promise.all(Array.from({ length: w.L }, (_, l) => engine.activation(trace, `blocks.${l}.hook_ffn_out`).then((s) => s.data))),
  };
  const checked: string[] = [];
  for (const position of [tokens.length - 1, 4]) {
    const row = (await engine.logits(trace, { position })).data;
    const byDefault = await engine.attribution(trace, { position });
    let top = 0;
    for (let i = 1; i < row.length; i++) if (row[i]! > row[top]!) top = i;
    assert.equal(byDefault.token, top, 'default token: the most likely');
    let low = 0;
    for (let i = 1; i < row.length; i++) if (row[i]! < row[low]!) low = i;
    for (const token of [top, low]) {
      const a = await engine.attribution(trace, { position, token });
      assert.equal(a.position, position);
      assert.equal(a.heads.length, w.L * w.H);
      assert.equal(a.ffn.length, w.L);
      assert.equal(a.logit, row[token], 'the engine\'s own logit');
      const sum = a.embed + a.heads.reduce((x, y) => x + y, 0) + a.ffn.reduce((x, y) => x + y, 0);
      assert.ok(Math.abs(sum - a.logit) < 1e-4, `position ${position} token ${token}: Σ = ${sum}, logit ${a.logit}`);
      assert.ok(Math.abs(a.residual - (a.logit - sum)) < 1e-5, 'residual = logit − Σ');
      assert.ok(Math.abs(a.logit) > 0.5, 'a real logit, not a trivially small one');
      // each term independently: Σ_i E[t, i] γ_i c_i / s (s = hook_scale, the rms)
      const s = acts.scale[position]!;
      assert.equal(a.scale, s);
      const term = (c: Float32Array, off: number) => {
        let r = 0;
        for (let i = 0; i < w.D; i++) r += w.gamma[i]! * w.embed[token * w.D + i]! * c[off + i]! / s;
        return r;
      };
      const close = (got: number, want: number, what: string) => assert.ok(Math.abs(got - want) < 1e-5 * (1 + Math.abs(want)), `${what}: ${got} vs ${want}`);
      close(a.embed, term(acts.embed, position * w.D), 'embed');
      for (let l = 0; l < w.L; l++) {
        close(a.ffn[l]!, term(acts.ffn[l]!, position * w.D), `ffn ${l}`);
        for (let h = 0; h < w.H; h++) close(a.heads[l * w.H + h]!, term(acts.result[l]!, (position * w.H + h) * w.D), `head ${l}.${h}`);
      }
      checked.push(`${position}:${token}`);
    }
  }
  assert.equal(checked.length, 4);
});

test('attribution: the hook_z path (W_O per head) equals the hook_result path; default position is the last', async () => {
  const engine = new Engine();
  await engine.load(stories());
  const withResult = await engine.run({ tokens, capture: capture.filter((c) => !c.endsWith('hook_z')), slot: 'r' });
  const withZ = await engine.run({ tokens, capture: capture.filter((c) => !c.endsWith('hook_result')), slot: 'z' });
  const a = await engine.attribution(withResult, {});
  const b = await engine.attribution(withZ, { position: tokens.length - 1 });
  assert.equal(a.position, tokens.length - 1);
  assert.equal(a.token, b.token);
  for (let i = 0; i < a.heads.length; i++) assert.ok(Math.abs(a.heads[i]! - b.heads[i]!) < 1e-5, `head ${i}: ${a.heads[i]} vs ${b.heads[i]}`);
  assert.ok(Math.abs(b.residual) < 1e-4, `z path residual ${b.residual}`);
  assert.deepEqual(a.ffn, b.ffn);
  // a non-last position needs the last residual (or logits: 'all') to know the logit
  await assert.rejects(engine.attribution(withZ, { position: 3 }), UsageError);
  await assert.rejects(engine.attribution(withZ, { token: 512 }), (e: unknown) => e instanceof UsageError && /token id/.test(e.message));
  await assert.rejects(engine.attribution(withZ, { position: 99 }), UsageError);
  const bare = await engine.run({ tokens, slot: 'bare' });
  await assert.rejects(engine.attribution(bare), (e: unknown) => e instanceof UsageError && /final_norm\.hook_scale/.test(e.message));
});

test('attribution: the hook_z path gives the same bits whether the head directions were kept from an earlier call or not', async () => {
  const zOnly = capture.filter((c) => !c.endsWith('hook_result'));
  const fresh = async () => { const e = new Engine(); await e.load(stories()); return e; };   // new weights: nothing kept
  const engine = await fresh();
  const h = await engine.run({ tokens, capture: zOnly, slot: 'z', logits: 'all' });
  const last = tokens.length - 1;
  // many tokens, so that the first ones' directions are dropped and computed again
  const asks = [{ token: 300 }, { token: 301 }, ...Array.from({ length: 9 }, (_, i) => ({ token: 310 + i })), { token: 300 }, { token: 300, position: 5 }, { token: 301, position: last }];
  for (const q of asks) {
    const got = await engine.attribution(h, q);
    const other = await fresh();
    const want = await other.attribution(await other.run({ tokens, capture: zOnly, slot: 'z', logits: 'all' }), q);
    assert.deepEqual(got.heads, want.heads, `token ${q.token} at ${q.position ?? last}`);
    assert.equal(got.residual, want.residual);
  }
});
