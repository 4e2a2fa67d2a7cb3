// The generate cell's stepping (src/app/generation.ts) against a real in-thread Engine on
// stories260K: greedy steps equal the independent greedy reference and src/engine/generate.ts;
// a seeded run at temperature 1 reproduces; a fork at step k continues exactly as a fresh run
// of the forked prefix; end tokens and the context stop it; the tree's notebook encoding round-
// trips and rejects bad input; the controller plays, pauses, undoes, selects and deletes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine } from '../../src/engine/api.ts';
import { Session } from '../../src/engine/session.ts';
import { generate } from '../../src/engine/generate.ts';
import { openModel } from '../../src/formats/open.ts';
import { bytesSource } from '../../src/formats/source.ts';
import { loadModelWeights } from '../../src/engine/weights.ts';
import { BranchTree } from '../../src/engine/branches.ts';
import { UsageError } from '../../src/engine/errors.ts';
import { resolveOptions, runChain } from '../../src/engine/sampling/index.ts';
import {
  chainOf, chooseNext, decodeTree, encodeTree, fork, GenerationController, PLAY_WRITE_MS, type GenerationEnv, sequenceOf, step, stopIdsOf, undoStep,
  type StepRequest,
} from '../../src/app/generation.ts';
import { drawsAt } from '../../cells/plot/sampling.ts';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
const storiesBytes = readFileSync(resolve(root, '../shared/models/tinystories-260k/stories260K.gguf'));
const ref = JSON.parse(readFileSync(resolve(root, '../shared/models/tinystories-260k/stories260K_greedy_ref.json'), 'utf8')) as { token_ids: number[] };

let engineP: Promise<{ engine: Engine; env: GenerationEnv }> | null = null;
function engine() {
  engineP ??= (async () => {
    const e = new Engine();
    const info = await e.load({ kind: 'files', files: [new File([storiesBytes], 'stories260K.gguf')] }, { threads: 1 });
    return { engine: e, env: { client: e, nCtx: info.config.nCtx, vocabSize: info.config.vocabSize, stopIds: stopIdsOf(info) } };
  })();
  return engineP;
}

const PROMPT = [1, 403, 407, 261, 378];   // BOS "Once upon a time"

function request(tree: BranchTree, settings: Record<string, unknown>, over: Partial<StepRequest> = {}): StepRequest {
  return { promptIds: PROMPT, tree, branch: tree.rootId, ...chainOf(settings), slot: 'generate:test', ...over };
}

async function steps(env: GenerationEnv, req: StepRequest, n: number): Promise<string> {
  let o = 'token';
  for (let i = 0; i < n && o === 'token'; i++) o = await step(env, req);
  return o;
}

test('greedy steps equal the greedy reference and src/engine/generate.ts', async () => {
  const { env } = await engine();
  // from BOS alone: the independent numpy/run.c reference
  const tree = new BranchTree();
  await steps(env, request(tree, { temperature: 0 }, { promptIds: [1] }), 24);
  assert.deepEqual(tree.ids('main'), ref.token_ids.slice(1, 25));
  for (const t of tree.get('main').tokens) { assert.equal(t.u, null); assert.equal(t.pAfter, 1); assert.equal(t.alternatives![0]!.id, t.id); }
  // after a prompt: generate() on an independent Session
  const model = await openModel([bytesSource(new Uint8Array(storiesBytes), 'stories260K.gguf')]);
  const session = new Session(await loadModelWeights(model));
  const expected = [...generate(session, PROMPT, { maxTokens: 20, temperature: 0 })];
  const t2 = new BranchTree();
  await steps(env, request(t2, { temperature: 0 }), expected.length);
  assert.deepEqual(t2.ids('main'), expected);
});

test('a seeded run at temperature 1 reproduces exactly; the draw at each step is drawUniform(seed, position)', async () => {
  const { env } = await engine();
  const settings = { temperature: 1, seed: 1234 };
  const a = new BranchTree(), b = new BranchTree(), c = new BranchTree();
  await steps(env, request(a, settings), 16);
  await steps(env, request(b, settings), 16);
  await steps(env, request(c, { ...settings, seed: 99 }), 16);
  assert.equal(a.ids('main').length, 16);
  assert.deepEqual(b.ids('main'), a.ids('main'));
  assert.notDeepEqual(c.ids('main'), a.ids('main'), 'another seed draws other tokens');
  // every recorded u is the position's own number, and the token is runChain's on those logits
  const { engine: e } = await engine();
  const opts = resolveOptions({ temperature: 1 });
  for (const [i, t] of a.get('main').tokens.entries()) {
    const seq = sequenceOf(PROMPT, a, 'main', i);
    assert.equal(t.u, Math.floor(drawsAt(1234, seq.length).draw * 1e6) / 1e6);
    if (i % 5 === 0) {
      const h = await e.run({ tokens: seq, slot: 'check' });
      const row = (await e.logits(h)).data;
      const r = runChain(row, opts, { history: seq, random: drawsAt(1234, seq.length) });
      assert.equal(r.token, t.id);
      assert.equal(t.pAfter, +r.pAfter.toPrecision(4));
    }
  }
});

test('forking at step k and continuing equals a fresh run of the forked prefix with the same seed', async () => {
  const { env } = await engine();
  const settings = { temperature: 1.1, top_k: 40, repeat_penalty: 1.1, seed: 7 };
  const tree = new BranchTree();
  await steps(env, request(tree, settings), 10);
  const k = 4;
  const step4 = tree.get('main').tokens[k]!;
  const alt = step4.alternatives!.find((a) => a.id !== step4.id)!;
  const id = await fork(env, request(tree, settings), k, alt.id);
  assert.notEqual(id, 'main');
  const b = tree.get(id);
  assert.equal(b.forkAt, k);
  assert.deepEqual(tree.ids(id), [...tree.ids('main').slice(0, k), alt.id]);
  assert.equal(b.tokens[k]!.u, null);
  assert.ok(b.tokens[k]!.pBefore > 0 && Math.abs(b.tokens[k]!.pBefore - alt.p) < 1e-3);
  await steps(env, request(tree, settings, { branch: id }), 6);
  // fresh: the prompt is the old prompt + the forked prefix
  const fresh = new BranchTree();
  await steps(env, request(fresh, settings, { promptIds: [...PROMPT, ...tree.ids(id).slice(0, k + 1)] }), 6);
  assert.deepEqual(tree.ids(id).slice(k + 1), fresh.ids('main'));
  // main is untouched; stepping main again continues where it was
  assert.equal(tree.ids('main').length, 10);
  // undo of the fork's first own token takes the branch away
  const t2 = BranchTree.fromJSON(tree.toJSON(), env.vocabSize);
  t2.truncate(id, k + 1);
  assert.equal(undoStep(t2, id), 'main');
  assert.equal(t2.has(id), false);
  assert.equal(undoStep(t2, 'main'), 'main');
  assert.equal(t2.ids('main').length, 9);
});

test('generation stops at an end token and at the context length, never running past it', async () => {
  const { env } = await engine();
  assert.ok(stopIdsOf({ config: { eosId: 2, eosIds: [5] } as never, tokenizer: null }).has(5));
  // Llama 3 ends a chat turn with <|eot_id|>, which is not its eos: the tokenizer's eogIds stop too
  const llama3 = stopIdsOf({ config: { eosId: 128001 } as never, tokenizer: { eosId: 128001, eogIds: [128008, 128009] } as never });
  assert.deepEqual([...llama3].sort(), [128001, 128008, 128009]);
  // the greedy third token made an end token: stops there without appending it
  const third = ref.token_ids[3]!;
  const tree = new BranchTree();
  const o = await steps({ ...env, stopIds: new Set([third]) }, request(tree, { temperature: 0 }, { promptIds: [1] }), 10);
  assert.equal(o, 'eos');
  assert.deepEqual(tree.ids('main'), ref.token_ids.slice(1, 3));
  assert.equal(tree.get('main').stopped, 'eos');
  // a context of prompt + 3: three tokens, then 'context', and no run longer than the context
  const lengths: number[] = [];
  const client = { run: (r: Parameters<Engine['run']>[0], c?: Parameters<Engine['run']>[1]) => { lengths.push(r.tokens.length); return env.client.run(r, c); }, logits: env.client.logits.bind(env.client) };
  const small = { ...env, client, nCtx: PROMPT.length + 3 };
  const t2 = new BranchTree();
  assert.equal(await steps(small, request(t2, { temperature: 0 }), 10), 'context');
  assert.equal(t2.ids('main').length, 3);
  assert.equal(t2.get('main').stopped, 'context');
  assert.ok(Math.max(...lengths) <= small.nCtx, `runs of ${lengths.join(', ')} tokens`);
  await assert.rejects(fork(small, request(t2, { temperature: 0 }), 3, 5), UsageError);
});

test('chooseNext records the raw top-5, pBefore and pAfter of runChain; mirostat replays μ from the branch', () => {
  const logits = new Float32Array([2, 1, 0.5, 3, -1, 0, 1.5, -Infinity]);
  const opts = resolveOptions({ topK: 3 });
  const { token, result } = chooseNext(logits, [1, 2], opts, 5);
  assert.deepEqual(token.alternatives!.map((a) => a.id), [3, 0, 6, 1, 2]);
  const z = [...logits].filter(Number.isFinite).reduce((s, v) => s + Math.exp(v), 0);
  assert.equal(token.alternatives![0]!.p, +(Math.exp(3) / z).toPrecision(4));
  assert.equal(token.pBefore, +(Math.exp(logits[token.id]!) / z).toPrecision(4));
  const top3 = Math.exp(3) + Math.exp(2) + Math.exp(1.5);
  assert.equal(token.pAfter, +(Math.exp(logits[token.id]!) / top3).toPrecision(4));
  assert.equal(result.token, token.id);
  assert.equal(token.u, Math.floor(drawsAt(5, 2).draw * 1e6) / 1e6);
});

test('the tree round-trips through the notebook encoding; bad input is refused with UsageError', () => {
  const t = new BranchTree();
  t.append('main', { id: 5, pBefore: 0.123456, pAfter: 0.5, u: 0.3333333, alternatives: [{ id: 5, p: 0.123456 }, { id: 9, p: 0.1 }] });
  t.append('main', { id: 6, pBefore: 1, pAfter: 1, u: null, alternatives: [] });
  const f = t.fork('main', 1, { id: 7, pBefore: 0.01, pAfter: 0, u: null });
  t.get('main').stopped = 'eos';
  const text = encodeTree(t);
  assert.ok(text.length < 240, text);   // two branches of two tokens
  const back = decodeTree(text, 512);
  assert.deepEqual(back.ids('main'), [5, 6]);
  assert.deepEqual(back.ids(f.id), [5, 7]);
  assert.equal(back.get('main').stopped, 'eos');
  assert.equal(back.get('main').tokens[0]!.pBefore, 0.1235);
  assert.equal(back.get('main').tokens[0]!.u, 0.333333);
  assert.deepEqual(back.get('main').tokens[0]!.alternatives, [{ id: 5, p: 0.1235 }, { id: 9, p: 0.1 }]);
  assert.equal(encodeTree(back), text, 'encoding is stable');
  assert.equal(decodeTree(undefined, 512).ids('main').length, 0);
  for (const bad of ['{', '[]', '{"v":2,"b":[]}', '{"v":1,"b":[{"id":"main","parent":null,"at":0,"t":[[600,0.1,0.1,null]]}]}',
    '{"v":1,"b":[{"id":"main","parent":null,"at":0,"t":[[1,0.1,0.1,null]]},{"id":"b1","parent":"main","at":0,"t":[[1,0.1,0.1,null]]}]}',
    '{"v":1,"b":[{"id":"main","parent":null,"at":0,"t":[[1,0.1]]}]}', '{"v":1,"b":[null]}', 42]) {
    assert.throws(() => decodeTree(bad, 512), UsageError, String(bad));
  }
});

test('the controller steps, plays to N, pauses, undoes, selects and deletes through the notebook settings', async () => {
  const { env } = await engine();
  const settings: Record<string, unknown> = { temperature: 0.8, seed: 3, max_tokens: 6 };
  let writes = 0;
  const writeTimes: number[] = [];
  const c = new GenerationController({
    env: () => env,
    read: () => ({ promptIds: PROMPT, settings, sampler: settings }),
    write: (_id, tree, branch) => { writes++; writeTimes.push(performance.now()); settings['branches'] = encodeTree(tree); settings['branch'] = branch; },
  });
  const ids = () => decodeTree(settings['branches'], 512).ids(String(settings['branch']));
  assert.deepEqual(await c.handle({ cellId: 'g', action: 'step' }), { outcome: 'token', steps: 1 });
  assert.equal(ids().length, 1);
  const play = c.handle({ cellId: 'g', action: 'play' });
  assert.equal((await c.handle({ cellId: 'g', action: 'step' })).outcome, 'busy');
  const r = await play;
  assert.equal(r.outcome, 'length');
  assert.equal(ids().length, 7);
  // the step's write, then the play's: its first token at once, later ones at most every
  // PLAY_WRITE_MS (each write redraws the cells that read the text), and always the last
  assert.ok(writes >= 1 + 2 && writes <= 1 + 6 + 1, `${writes} writes`);
  const playWrites = writeTimes.slice(1, -1);
  for (let i = 1; i < playWrites.length; i++) assert.ok(playWrites[i]! - playWrites[i - 1]! >= PLAY_WRITE_MS - 1);
  // the same settings from scratch with run: the same tokens (the position's draw, not a stream)
  const first = ids();
  await c.handle({ cellId: 'g', action: 'reset' });
  assert.equal(ids().length, 0);
  await c.handle({ cellId: 'g', action: 'step' });
  await c.handle({ cellId: 'g', action: 'run' });
  assert.deepEqual(ids(), first);
  // pause stops a play between steps
  const p2 = c.handle({ cellId: 'g', action: 'play' });
  await new Promise((res) => setTimeout(res, 0));
  await c.handle({ cellId: 'g', action: 'pause' });
  const r2 = await p2;
  assert.equal(r2.outcome, 'paused');
  assert.ok(r2.steps < 6, `${r2.steps} steps before the pause`);
  // fork, select, delete, undo
  const tree = decodeTree(settings['branches'], 512);
  const alt = tree.get('main').tokens[2]!.alternatives!.find((a) => a.id !== tree.get('main').tokens[2]!.id)!;
  await c.handle({ cellId: 'g', action: 'fork', at: 2, token: alt.id });
  const forked = String(settings['branch']);
  assert.notEqual(forked, 'main');
  assert.equal(ids()[2], alt.id);
  await c.handle({ cellId: 'g', action: 'select', branch: 'main' });
  assert.equal(settings['branch'], 'main');
  await c.handle({ cellId: 'g', action: 'delete', branch: forked });
  assert.equal(decodeTree(settings['branches'], 512).has(forked), false);
  const before = ids().length;
  await c.handle({ cellId: 'g', action: 'undo' });
  assert.equal(ids().length, before - 1);
  assert.equal((await c.handle({ cellId: 'g', action: 'delete', branch: 'main' })).outcome, 'error');
});

test('a play reads the notebook\'s tree again only when someone else changed it, not at every step', async () => {
  const { env } = await engine();
  const settings: Record<string, unknown> = { temperature: 0.8, seed: 5, max_tokens: 40 };
  const c = new GenerationController({
    env: () => env,
    read: () => ({ promptIds: PROMPT, settings, sampler: settings }),
    write: (_id, tree, branch) => { settings['branches'] = encodeTree(tree); settings['branch'] = branch; },
  });
  await c.handle({ cellId: 'g', action: 'step' });
  // decodeTree is the only JSON.parse on this path: count them during a 39-step play
  const parse = JSON.parse;
  let decodes = 0;
  JSON.parse = ((text: string, reviver?: (this: unknown, key: string, value: unknown) => unknown) => { decodes++; return parse(text, reviver); }) as typeof JSON.parse;
  let r;
  try { r = await c.handle({ cellId: 'g', action: 'play' }); } finally { JSON.parse = parse; }
  assert.deepEqual(r, { outcome: 'length', steps: 40 });
  assert.equal(decodes, 1, 'the tree is decoded when the play starts, and not again');
  // the same tokens as a play that could not skip the decoding: one step at a time
  const stepwise: Record<string, unknown> = { temperature: 0.8, seed: 5, max_tokens: 40 };
  const d = new GenerationController({
    env: () => env,
    read: () => ({ promptIds: PROMPT, settings: stepwise, sampler: stepwise }),
    write: (_id, tree, branch) => { stepwise['branches'] = encodeTree(tree); stepwise['branch'] = branch; },
  });
  for (let i = 0; i < 41; i++) await d.handle({ cellId: 'g', action: 'step' });
  const tokens = (text: unknown) => decodeTree(text, 512).toJSON().branches[0]!.tokens;
  assert.deepEqual(tokens(settings['branches']), tokens(stepwise['branches']));
  assert.equal(tokens(settings['branches']).length, 41);
});

test('a cell may name a generate cell as its prompt; a sampling cell, a missing sampler or itself are refused', async () => {
  const { NotebookDocument } = await import('../../src/notebook/document.ts');
  const { ReactiveGraph } = await import('../../src/notebook/graph.ts');
  const text = ['```prompt', 'Once', '```', '', '```sampling', 'name: chain', '```', '', '```generate', 'name: story', '```', '',
    '```next-token', 'prompt: story', '```', '', '```attention', 'prompt: chain', '```', '', '```generate', 'sampler: nothing', 'prompt: story', '```', '',
    '```generate', 'name: self', 'prompt: self', '```', ''].join('\n');
  const doc = new NotebookDocument(text);
  const g = new ReactiveGraph({ compute: (ctx) => ctx.cell.kind });
  g.update(doc.notebook);
  await g.idle();
  const [prompt, , gen, nt, att, gen2, self] = doc.notebook.cells.filter((c) => c.kind !== 'markdown');
  assert.deepEqual(g.dependencies(gen!.id), [{ cell: prompt!.id }]);
  assert.deepEqual(g.dependencies(nt!.id), [{ cell: gen!.id }]);
  assert.equal(g.state(nt!.id)!.status, 'done');
  assert.match(String(g.state(att!.id)!.error), /names a sampling cell, not a prompt/);
  assert.match(String(g.state(gen2!.id)!.error), /"sampler: nothing" names no sampling cell/);
  assert.deepEqual(g.dependencies(gen2!.id), [{ cell: gen!.id }]);     // a generate cell may continue another
  assert.match(String(g.state(self!.id)!.error), /this cell itself/);
});

test('branches share one KV cache: switching recomputes only past the shared prefix, and deleting branches leaves nothing of theirs', async () => {
  const { engine: e, env } = await engine();
  const settings = { temperature: 0.9, top_k: 40, seed: 11 };
  const tree = new BranchTree();
  await steps(env, request(tree, settings, { slot: 'generate:cache' }), 12);
  const base = await e.stats();
  // three forks of 12 more tokens each, from different steps
  const forks: string[] = [];
  for (const at of [2, 5, 8]) {
    const main = tree.get('main').tokens[at]!;
    const alt = main.alternatives!.find((a) => a.id !== main.id)!;
    const id = await fork(env, request(tree, settings, { slot: 'generate:cache' }), at, alt.id);
    await steps(env, request(tree, settings, { branch: id, slot: 'generate:cache' }), 12);
    forks.push(id);
  }
  // a step on a branch reuses the cache of its shared prefix: the run reports what it reused
  const id = forks[1]!, last = forks[2]!;
  const first = await e.run({ tokens: [...PROMPT, ...tree.ids(id)], slot: 'generate:cache' });
  assert.equal(first.reused, PROMPT.length + tree.sharedPrefix(last, id), 'from the last fork to another: only past their shared prefix');
  const again = await e.run({ tokens: [...PROMPT, ...tree.ids(id)], slot: 'generate:cache' });
  assert.equal(again.reused, PROMPT.length + tree.ids(id).length - 1, 'the same sequence again: only its last position runs');
  const back = await e.run({ tokens: [...PROMPT, ...tree.ids('main')], slot: 'generate:cache' });
  assert.equal(back.reused, PROMPT.length + tree.sharedPrefix('main', id), 'switching to main recomputes only past the shared prefix');
  // the forks' traces are not kept: one slot, one trace, however many branches were made
  const during = await e.stats();
  assert.equal(during.traces, base.traces);
  for (const f of forks) tree.remove(f);
  assert.deepEqual(tree.list().map((b) => b.id), ['main']);
  await steps(env, request(tree, settings, { slot: 'generate:cache' }), 1);
  const after = await e.stats();
  assert.equal(after.cachedPositions, PROMPT.length + tree.ids('main').length - 1, 'the cache holds main alone');
  assert.equal(after.traces, base.traces);
  assert.ok(after.traceBytes <= base.traceBytes * 1.01 + 1024, `trace bytes ${after.traceBytes} vs ${base.traceBytes}`);
});
