// The reactive graph with fake compute functions: what an edit recomputes (once each, in order,
// nothing else), cancellation of stale work, and a fast run of edits ending with the last results.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReactiveGraph, type ComputeContext, type CellState } from '../../src/notebook/graph.ts';
import { NotebookDocument } from '../../src/notebook/document.ts';
import { createRegistry, str } from '../../src/notebook/registry.ts';

const TEXT = `---
title: Reactivity
model: stories260K
---
Intro prose.

\`\`\`prompt name=story
Once upon a time
\`\`\`

\`\`\`attention
layer: 1
heads: all
\`\`\`

\`\`\`next-token
temperature: 0.8
\`\`\`

\`\`\`model
\`\`\`

\`\`\`prompt
A second prompt
\`\`\`

\`\`\`attention
layer: 0
\`\`\`

\`\`\`probe
of: attention-1
\`\`\`
`;

/** A registry with a test kind that reads one setting of another cell (a selected head). */
function registry() {
  const r = createRegistry();
  r.register({ kind: 'probe', schema: { of: str() }, reads: (s, ctx) => {
    const target = ctx.find(String(s['of']));
    if (!target) { ctx.problem(`no cell ${String(s['of'])}`); return []; }
    return [{ cell: target.id, key: 'heads' }];
  } });
  r.register({ kind: 'echo', schema: { from: str() }, reads: (s, ctx) => {
    const t = ctx.find(String(s['from']));
    return t ? [{ cell: t.id }] : [];
  } });
  return r;
}

/** What each kind "computes": a string built from its settings and its upstream outputs. */
function fakeOutput(ctx: ComputeContext): string {
  const up = [...ctx.upstream.values()].map(String).join('|');
  const s = ctx.settings;
  switch (ctx.cell.kind) {
    case 'prompt': return `tokens(${String(s['text'])};model=${String(ctx.inputs.get('model'))})`;
    case 'attention': return `attn(L${String(s['layer'])}, ${up})`;
    case 'next-token': return `next(T${String(s['temperature'])}, ${up})`;
    case 'model': return `model(${String(ctx.inputs.get('model'))})`;
    case 'probe': return `probe(${String(s['of'])})`;
    default: return `${ctx.cell.kind}(${up})`;
  }
}

function setup(opts: { delay?: () => number; ignoreAbort?: boolean; text?: string } = {}) {
  const reg = registry();
  const doc = new NotebookDocument(opts.text ?? TEXT, { registry: reg });
  const calls: string[] = [];
  const order: string[] = [];
  let aborted = 0;
  const graph = new ReactiveGraph({
    registry: reg,
    compute: async (ctx) => {
      calls.push(ctx.cell.id);
      const out = fakeOutput(ctx);
      const ms = opts.delay?.() ?? 0;
      if (ms > 0) {
        await new Promise<void>((res, rej) => {
          const t = setTimeout(res, ms);
          if (!opts.ignoreAbort) ctx.signal.addEventListener('abort', () => { clearTimeout(t); aborted++; rej(ctx.signal.reason); });
        });
      } else await Promise.resolve();
      order.push(ctx.cell.id);
      return out;
    },
  });
  graph.setInput('model', 'm1');
  doc.subscribe((c) => graph.update(c.notebook));
  graph.update(doc.notebook);
  const count = () => { const m: Record<string, number> = {}; for (const c of calls) m[c] = (m[c] ?? 0) + 1; calls.length = 0; order.length = 0; return m; };
  return { doc, graph, calls, order, count, aborted: () => aborted };
}

const output = (g: ReactiveGraph, id: string) => g.state(id)?.output;

test('the first update computes every cell once, each after what it reads', async () => {
  const { graph, count, order } = setup();
  const ids = ['markdown-1', 'prompt-1', 'attention-1', 'next-token-1', 'model-1', 'prompt-2', 'attention-2', 'probe-1'];
  await graph.idle();
  const seen = [...order];
  assert.deepEqual(count(), Object.fromEntries(ids.map((id) => [id, 1])));
  assert.ok(seen.indexOf('prompt-1') < seen.indexOf('attention-1') && seen.indexOf('prompt-1') < seen.indexOf('next-token-1'));
  assert.ok(seen.indexOf('prompt-2') < seen.indexOf('attention-2'));
  assert.equal(output(graph, 'attention-1'), 'attn(L1, tokens(Once upon a time;model=m1))');
  assert.equal(output(graph, 'attention-2'), 'attn(L0, tokens(A second prompt;model=m1))');
  assert.deepEqual(graph.dependencies('attention-2'), [{ cell: 'prompt-2' }]);
  assert.deepEqual(graph.dependants('prompt-1').sort(), ['attention-1', 'next-token-1']);
});

test('editing a prompt recomputes it and its dependants once each, and nothing else', async () => {
  const { doc, graph, count } = setup();
  await graph.idle();
  count();
  doc.setText('prompt-1', 'There was a dragon');
  await graph.idle();
  assert.deepEqual(count(), { 'prompt-1': 1, 'attention-1': 1, 'next-token-1': 1 });
  assert.equal(output(graph, 'next-token-1'), 'next(T0.8, tokens(There was a dragon;model=m1))');
  assert.equal(output(graph, 'attention-2'), 'attn(L0, tokens(A second prompt;model=m1))');
  assert.match(doc.text, /```prompt name=story\nThere was a dragon\n```/);
});

test('a slider recomputes only the cells that read it; a view-only setting recomputes only its readers', async () => {
  const { doc, graph, count } = setup();
  await graph.idle();
  count();
  // The sampler's controls are view settings: the element redraws from the cached logits.
  doc.setSetting('next-token-1', 'temperature', 1.3);
  await graph.idle();
  assert.deepEqual(count(), {});
  assert.match(doc.text, /temperature: 1\.3\n/);
  doc.setSetting('next-token-1', 'position', 2);
  await graph.idle();
  assert.deepEqual(count(), { 'next-token-1': 1 });
  doc.setSetting('attention-1', 'layer', 3);
  await graph.idle();
  assert.deepEqual(count(), { 'attention-1': 1 });
  // `heads` only changes how attention-1 is drawn: attention-1 does not rerun, the probe reading it does.
  doc.setSetting('attention-1', 'heads', [0, 2]);
  await graph.idle();
  assert.deepEqual(count(), { 'probe-1': 1 });
  // Selecting a token in a prompt is a view setting too: nothing reads it here, so nothing runs.
  doc.setSetting('prompt-1', 'selected', 2);
  await graph.idle();
  assert.deepEqual(count(), {});
  assert.match(doc.text, /```prompt name=story selected=2\n/);
});

test('naming another prompt rewires the cell; the model input recomputes its readers', async () => {
  const { doc, graph, count } = setup();
  await graph.idle();
  count();
  doc.setSetting('next-token-1', 'prompt', 'prompt-2');
  await graph.idle();
  assert.deepEqual(count(), { 'next-token-1': 1 });
  assert.equal(output(graph, 'next-token-1'), 'next(T0.8, tokens(A second prompt;model=m1))');
  doc.setText('prompt-1', 'changed');
  await graph.idle();
  assert.deepEqual(count(), { 'prompt-1': 1, 'attention-1': 1 });
  doc.setSetting('next-token-1', 'prompt', 'story');     // by name
  await graph.idle();
  assert.deepEqual(count(), { 'next-token-1': 1 });
  graph.setInput('model', 'm2');
  await graph.idle();
  assert.deepEqual(count(), { 'prompt-1': 1, 'prompt-2': 1, 'model-1': 1, 'attention-1': 1, 'attention-2': 1, 'next-token-1': 1 });
  assert.equal(output(graph, 'attention-2'), 'attn(L0, tokens(A second prompt;model=m2))');
});

test('structural edits: a new prompt above takes over; a deleted prompt leaves a clear error', async () => {
  const { doc, graph, count } = setup();
  await graph.idle();
  count();
  const id = doc.insertCell(6, 'prompt', { text: 'Inserted' });   // just above attention-2
  await graph.idle();
  assert.deepEqual(count(), { [id]: 1, 'attention-2': 1 });
  assert.equal(output(graph, 'attention-2'), 'attn(L0, tokens(Inserted;model=m1))');
  doc.removeCell('prompt-1');
  await graph.idle();
  assert.deepEqual(count(), {});
  const st = graph.state('attention-1')!;
  assert.equal(st.status, 'error');
  assert.match(String((st.error as Error).message), /there is no prompt cell above this one/);
  doc.undo();
  await graph.idle();
  assert.deepEqual(count(), { 'prompt-1': 1, 'attention-1': 1, 'next-token-1': 1 });
  assert.equal(graph.state('attention-1')!.status, 'done');
});

test('schema errors, failing upstream cells and cycles stop a cell with a message, without computing it', async () => {
  const text = '```prompt\nhi\n```\n\n```attention\nlayer: -1\n```\n\n```next-token\nprompt: nowhere\n```\n\n```echo\nfrom: echo-2\n```\n\n```echo\nfrom: echo-1\n```\n';
  const { graph, calls } = setup({ text });
  await graph.idle();
  assert.deepEqual(calls, ['prompt-1']);
  const err = (id: string) => String((graph.state(id)!.error as Error).message);
  assert.match(err('attention-1'), /attention cell: "layer": expected an integer ≥ 0, got -1/);
  assert.match(err('next-token-1'), /"prompt: nowhere" names no cell/);
  assert.match(err('echo-1'), /cycle/);
  assert.match(err('echo-2'), /cycle/);
  // An upstream failure: the prompt's compute throws, its readers say so.
  const reg = registry();
  const g = new ReactiveGraph({ registry: reg, compute: (ctx) => { if (ctx.cell.kind === 'prompt') throw new Error('tokenizer broke'); return 1; } });
  const doc = new NotebookDocument('```prompt\nx\n```\n```next-token\n```\n', { registry: reg });
  g.update(doc.notebook);
  await g.idle();
  assert.equal(String((g.state('prompt-1')!.error as Error).message), 'tokenizer broke');
  assert.match(String((g.state('next-token-1')!.error as Error).message), /it reads prompt-1, which failed/);
  // Limits that depend on the loaded model.
  const g2 = new ReactiveGraph({ registry: reg, compute: () => 1, checkContext: () => ({ config: { nLayers: 2, nHeads: 4, nCtx: 64, vocabSize: 10 } }) });
  g2.update(new NotebookDocument('```prompt\nx\n```\n```attention\nlayer: 2\nheads: [1, 4]\n```\n', { registry: reg }).notebook);
  await g2.idle();
  assert.match(String((g2.state('attention-1')!.error as Error).message), /"layer": 2 is out of range: the loaded model has 2 layers \(0 to 1\).*"heads": item 2: 4 is out of range: the loaded model has 4 heads/);
});

/** A seeded generator (the test must be the same on every run). */
function rng(seed: number) {
  return () => { seed = (seed * 1664525 + 1013904223) >>> 0; return seed / 2 ** 32; };
}

for (const ignoreAbort of [false, true]) {
  test(`a fast run of edits ends with every cell showing the last edit's results (${ignoreAbort ? 'compute ignores the signal' : 'compute honours the signal'})`, async () => {
    const rand = rng(ignoreAbort ? 7 : 42);
    // When compute ignores the signal, later runs are made faster than earlier ones, so that stale
    // results arrive after fresh ones and must be dropped.
    let edit = 0;
    const delay = ignoreAbort ? () => 2 + (40 - edit) * 3 : () => Math.floor(rand() * 12);
    const { doc, graph, aborted } = setup({ delay, ignoreAbort });
    const seen: CellState[] = [];
    let last = '';
    for (let i = 0; i < 40; i++) {
      edit = i;
      last = `edit ${i} ${'x'.repeat(Math.floor(rand() * 5))}`;
      doc.setText('prompt-1', last);
      if (i % 5 === 0) doc.setSetting('next-token-1', 'temperature', i / 10);
      if (rand() < 0.6) await new Promise((r) => setTimeout(r, Math.floor(rand() * 6)));
      const st = graph.state('attention-1');
      if (st) seen.push(st);
    }
    await graph.idle();
    await new Promise((r) => setTimeout(r, ignoreAbort ? 150 : 20));    // stale runs that ignored the signal have landed
    const tokens = `tokens(${last};model=m1)`;
    assert.equal(output(graph, 'prompt-1'), tokens);
    assert.equal(output(graph, 'attention-1'), `attn(L1, ${tokens})`);
    assert.equal(output(graph, 'next-token-1'), `next(T3.5, ${tokens})`);
    assert.equal(output(graph, 'attention-2'), 'attn(L0, tokens(A second prompt;model=m1))');
    for (const id of ['prompt-1', 'attention-1', 'next-token-1', 'attention-2']) assert.equal(graph.state(id)!.status, 'done', id);
    // Cells the edits did not touch ran once; stale runs were cancelled (or their results dropped).
    assert.equal(graph.state('attention-2')!.runs, 1);
    assert.equal(graph.state('model-1')!.runs, 1);
    if (!ignoreAbort) assert.ok(aborted() > 0, 'no computation was aborted');
    assert.ok(graph.state('attention-1')!.runs < 41, `attention-1 ran ${graph.state('attention-1')!.runs} times`);
  });
}

test('undo and redo of edits recompute like edits; bursts of one setting are one undo step', async () => {
  let now = 0;
  const reg = registry();
  const doc = new NotebookDocument(TEXT, { registry: reg, now: () => now });
  const graph = new ReactiveGraph({ registry: reg, compute: (ctx) => fakeOutput(ctx) });
  graph.setInput('model', 'm1');
  doc.subscribe((c) => graph.update(c.notebook));
  graph.update(doc.notebook);
  const original = doc.text;
  for (const t of [0.1, 0.2, 0.3]) { now += 100; doc.setSetting('next-token-1', 'temperature', t); }   // one drag
  now += 5000;
  doc.setText('prompt-1', 'Different');
  const edited = doc.text;
  assert.ok(doc.undo());
  await graph.idle();
  assert.match(doc.text, /temperature: 0\.3/);
  assert.equal(output(graph, 'attention-1'), 'attn(L1, tokens(Once upon a time;model=m1))');
  assert.ok(doc.undo());
  assert.equal(doc.text, original);
  assert.equal(doc.undo(), false);
  assert.ok(doc.redo() && doc.redo());
  await graph.idle();
  assert.equal(doc.text, edited);
  assert.equal(output(graph, 'next-token-1'), 'next(T0.3, tokens(Different;model=m1))');
  // A new edit drops the redo steps.
  doc.undo();
  doc.setSetting('attention-1', 'layer', 2);
  assert.equal(doc.canRedo, false);
});

test('a 1 MB notebook: the first update runs every cell once; an edit reruns only its dependants', async () => {
  const parts: string[] = [];
  for (let i = 0, size = 0; size < 1 << 20; i++) {
    const block = `Section ${i} ${'lorem ipsum '.repeat(20)}\n\n\`\`\`prompt\nStory ${i}\n\`\`\`\n\n\`\`\`attention\nlayer: ${i % 6}\n\`\`\`\n\n\`\`\`next-token\ntemperature: 0.${i % 10}\n\`\`\`\n\n`;
    parts.push(block);
    size += block.length;
  }
  const t0 = performance.now();
  const { doc, graph, count } = setup({ text: parts.join('') });
  await graph.idle();
  const first = performance.now() - t0;
  const runs = count();
  assert.equal(Object.keys(runs).length, doc.notebook.cells.length);
  assert.ok(Object.values(runs).every((n) => n === 1));
  const t1 = performance.now();
  doc.setText('prompt-700', 'changed');
  await graph.idle();
  const edit = performance.now() - t1;
  assert.deepEqual(count(), { 'prompt-700': 1, 'attention-700': 1, 'next-token-700': 1 });
  console.log(`# 1 MB notebook, ${doc.notebook.cells.length} cells: first update ${first.toFixed(0)} ms, prompt edit to redrawn ${edit.toFixed(1)} ms`);
});

test('a running compute reports progress into its cell\'s state; done clears it, and a stale run\'s reports are dropped', async () => {
  const reg = registry();
  const doc = new NotebookDocument(TEXT, { registry: reg });
  const states: CellState[] = [];
  const held: { release?: () => void; report?: ComputeContext['progress'] } = {};
  const graph = new ReactiveGraph({
    registry: reg,
    onState: (id, st) => { if (id === 'next-token-1') states.push(st); },
    compute: async (ctx) => {
      if (ctx.cell.kind !== 'next-token') return fakeOutput(ctx);
      ctx.progress?.(0, 3, 'rows');
      held.report = ctx.progress;
      await new Promise<void>((r) => { held.release = r; });
      ctx.progress?.(2, 3, 'rows');
      return fakeOutput(ctx);
    },
  });
  graph.setInput('model', 'm1');
  graph.update(doc.notebook);
  while (!held.release) await new Promise((r) => setTimeout(r, 1));
  assert.deepEqual(graph.state('next-token-1')!.progress, { done: 0, total: 3, what: 'rows' });
  assert.equal(graph.state('next-token-1')!.status, 'running');
  held.release();
  await graph.idle();
  const last = graph.state('next-token-1')!;
  assert.equal(last.status, 'done');
  assert.equal(last.progress, undefined);
  assert.deepEqual(states.filter((s) => s.progress).map((s) => s.progress!.done), [0, 2]);
  // a report after the run is over changes nothing
  held.report!(1, 3, 'rows');
  assert.equal(graph.state('next-token-1')!.progress, undefined);
});

test('a partial answer becomes the running cell\'s output, marked preview; cells that read it wait for the whole; done, a new run or a stale report clear or drop it', async () => {
  const reg = registry();
  const doc = new NotebookDocument(TEXT, { registry: reg });
  const held: { release?: () => void; partial?: ComputeContext['partial'] } = {};
  const started: string[] = [];
  const graph = new ReactiveGraph({
    registry: reg,
    compute: async (ctx) => {
      started.push(ctx.cell.id);
      if (ctx.cell.id !== 'prompt-1') return fakeOutput(ctx);
      ctx.partial?.('the first part');
      held.partial = ctx.partial;
      await new Promise<void>((r) => { held.release = r; });
      return fakeOutput(ctx);
    },
  });
  graph.setInput('model', 'm1');
  graph.update(doc.notebook);
  while (!held.release) await new Promise((r) => setTimeout(r, 1));
  const during = graph.state('prompt-1')!;
  assert.equal(during.status, 'running');
  assert.equal(during.output, 'the first part');
  assert.equal(during.preview, true);
  await new Promise((r) => setTimeout(r, 5));
  assert.ok(!started.includes('attention-1') && !started.includes('next-token-1'), 'the cells reading the prompt have not started on its preview');
  held.release();
  await graph.idle();
  const done = graph.state('prompt-1')!;
  assert.equal(done.status, 'done');
  assert.equal(done.preview, false);
  assert.notEqual(done.output, 'the first part');
  assert.ok(String(graph.state('attention-1')!.output).includes(String(done.output)), 'readers got the whole answer');
  // a report from the finished run changes nothing
  held.partial!('late');
  assert.equal(graph.state('prompt-1')!.output, done.output);
  assert.equal(graph.state('prompt-1')!.preview, false);
  // a new run starts with no preview: the last output is shown as stale until its own first part
  const firstRelease = held.release;
  doc.setText('prompt-1', 'Twice upon a time');
  graph.update(doc.notebook);
  while (held.release === firstRelease) await new Promise((r) => setTimeout(r, 1));
  assert.equal(graph.state('prompt-1')!.preview, true);
  held.release();
  await graph.idle();
  assert.equal(graph.state('prompt-1')!.preview, false);
});
