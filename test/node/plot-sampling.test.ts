// The sampling cell: samplingModel against the engine's runChain called directly (every stage's
// set, probabilities, entropy, removed tokens; the draw, u, p before/after) over many settings,
// a hand-computed top-k + temperature step, the settings parsing against the registry's schema,
// the 128k-vocabulary redraw time, the export rows, and snapshots of the figure.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/engine/random.ts';
import { drawUniform } from '../../src/engine/branches.ts';
import { resolveOptions, runChain, type StageReport } from '../../src/engine/sampling/index.ts';
import { createRegistry } from '../../src/notebook/registry.ts';
import {
  drawsAt, KNOBS, knobAccepts, rawOnce, SAMPLER_KEYS, samplerSettings, samplingExport, samplingModel, samplingSvg, type SamplingModel,
} from '../../cells/plot/sampling.ts';
import { matchSnapshot } from '../support/snapshot.ts';

function randomLogits(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const l = new Float32Array(n);
  for (let i = 0; i < n; i++) l[i] = rng.gaussian() * 2.5;
  return l;
}

const WORDS = [' the', ' a', ' little', ' girl', ' boy', ' dog', ' cat', ' time', ' day', ' was', ',', '.', '\n', ' there', ' once',
  ' big', ' happy', ' sun', ' tree', ' park', ' friend', ' named', ' Lily', ' Tom', ' ball', ' red', ' and', ' to', ' play', ' she',
  ' he', ' it', ' upon', ' very', ' old', ' new', 'ing', 'ed', 's', ' in', ' on', ' with', ' her', ' his', ' mom', ' said', '!', ' "',
  '\t', ' supercalifragilistic'];
const pieces = new Map(WORDS.map((w, i) => [i, w]));

function logits50(): Float32Array {
  const l = randomLogits(50, 7);
  l[2] = 6.1; l[7] = 5.4; l[13] = 4.9; l[3] = 4.7;
  return l;
}
const HISTORY = [1, 14, 32, 1, 7, 13, 2, 3, 2, 3, 9, 2];

/** samplingModel's numbers are runChain's, stage by stage. */
function checkAgainstChain(m: SamplingModel, logits: Float32Array, settings: Record<string, unknown>, history: number[]): void {
  const s = samplerSettings(settings);
  const r = runChain(logits, resolveOptions(s.options), { history, random: drawsAt(s.seed, history.length) });
  assert.equal(m.token, r.token);
  assert.equal(m.u, r.random.draw);
  assert.equal(m.u, drawUniform(s.seed, history.length));
  assert.equal(m.pBefore, r.pBefore);
  assert.equal(m.pAfter, r.pAfter);
  assert.deepEqual(m.draw, r.draw);
  assert.deepEqual(m.fallback, r.fallback);
  const reports: StageReport[] = [r.input, ...r.stages];
  assert.deepEqual(m.columns.map((c) => c.stage), reports.map((x) => x.stage));
  m.columns.forEach((c, j) => {
    const rep = reports[j]!;
    assert.equal(c.kept, rep.ids.length, `${c.stage} kept`);
    assert.equal(c.removed, rep.removed.length, `${c.stage} removed`);
    assert.equal(c.entropy, rep.entropy);
    assert.equal(c.active, rep.active);
    const ids = [...rep.ids], prev = j > 0 ? [...reports[j - 1]!.ids] : null;
    m.rows.forEach((row, i) => {
      const cell = c.cells[i]!;
      const k = ids.indexOf(row.id);
      if (k >= 0) {
        assert.equal(cell.state, 'kept');
        assert.equal(cell.rank, k + 1);
        assert.equal(cell.p, rep.probs[k]);
        assert.equal(cell.logit, rep.logits[k]);
      } else {
        assert.equal(cell.state, prev && prev.includes(row.id) ? 'removed' : 'gone', `${c.stage} ${row.id}`);
        assert.equal(cell.p, 0);
      }
    });
  });
  // every row of the top `show` of each stage is drawn
  for (const rep of reports) for (const id of rep.ids.subarray(0, 12)) assert.ok(m.rows.some((x) => x.id === id));
}

const CASES: [string, Record<string, unknown>][] = [
  ['defaults', {}],
  ['top-k and temperature', { top_k: 5, temperature: 0.7, seed: 3 }],
  ['every truncation', { top_k: 20, top_p: 0.9, min_p: 0.05, typical_p: 0.95, top_n_sigma: 2, seed: 11 }],
  ['penalties and DRY on the history', { repeat_penalty: 1.3, frequency_penalty: 0.2, presence_penalty: 0.3, repeat_last_n: 8, dry_multiplier: 0.8, dry_allowed_length: 1, seed: 5 }],
  ['XTC acting', { xtc_probability: 1, xtc_threshold: 0.05, seed: 2 }],
  ['dynamic temperature', { temperature: 0.9, dynatemp_range: 0.5, dynatemp_exponent: 1.5 }],
  ['mirostat 2', { mirostat: 2, mirostat_tau: 3, mirostat_eta: 0.2 }],
  ['mirostat 1', { mirostat: 1, mirostat_tau: 4 }],
  ['custom order', { order: ['temperature', 'min_p', 'top_k'], temperature: 2, min_p: 0.2, top_k: 3, seed: 9 }],
  ['greedy', { temperature: 0 }],
];

test('samplingModel equals runChain called directly, stage by stage, for many settings', () => {
  const l = logits50();
  for (const [name, settings] of CASES) {
    const m = samplingModel(l, settings, HISTORY, { pieces });
    assert.doesNotThrow(() => checkAgainstChain(m, l, settings, HISTORY), name);
    checkAgainstChain(m, l, settings, HISTORY);
  }
  // XTC acted: its column removed the top choices and said so
  const x = samplingModel(l, { xtc_probability: 1, xtc_threshold: 0.05, seed: 2 }, HISTORY, { pieces });
  const col = x.columns.find((c) => c.stage === 'xtc')!;
  assert.ok(col.removed > 0 && col.detail.startsWith('acted'), col.detail);
  // dynamic temperature names the temperature it used
  const d = samplingModel(l, { temperature: 0.9, dynatemp_range: 0.5 }, HISTORY);
  assert.match(d.columns.find((c) => c.stage === 'temperature')!.detail, /^dynamic T = /);
});

test('a hand-computed step: top-k 3 then temperature 0.5', () => {
  const l = new Float32Array([1, 4, 2, 3, 0, -Infinity]);
  const m = samplingModel(l, { top_k: 3, temperature: 0.5, order: ['top_k', 'temperature'], seed: 4 }, [0]);
  assert.deepEqual(m.rows.map((r) => r.id), [1, 3, 2, 0, 4]);
  assert.deepEqual(m.columns.map((c) => c.stage), ['input', 'top_k', 'temperature']);
  const z0 = [1, 4, 2, 3, 0].reduce((s, v) => s + Math.exp(v), 0);
  m.rows.forEach((r, i) => assert.ok(Math.abs(m.columns[0]!.cells[i]!.p - Math.exp(l[r.id]!) / z0) < 1e-12));
  const z = Math.exp(8) + Math.exp(6) + Math.exp(4);
  const want = [Math.exp(8) / z, Math.exp(6) / z, Math.exp(4) / z, 0, 0];
  m.rows.forEach((_, i) => assert.ok(Math.abs(m.columns[2]!.cells[i]!.p - want[i]!) < 1e-12));
  assert.deepEqual(m.columns[1]!.cells.map((c) => c.state), ['kept', 'kept', 'kept', 'removed', 'removed']);
  assert.deepEqual(m.columns[2]!.cells.map((c) => c.state), ['kept', 'kept', 'kept', 'gone', 'gone']);
  const h = -want.slice(0, 3).reduce((s, p) => s + p * Math.log(p), 0);
  assert.ok(Math.abs(m.columns[2]!.entropy - h) < 1e-12);
  // the draw: u in the cumulative interval of the chosen token
  const u = drawUniform(4, 1);
  const cum = [0, want[0]!, want[0]! + want[1]!, 1];
  const k = cum.findIndex((c, i) => u >= c && u < cum[i + 1]!);
  assert.equal(m.token, [1, 3, 2][k]);
  assert.ok(Math.abs(m.draw!.lower - cum[k]!) < 1e-12 && Math.abs(m.draw!.upper - cum[k + 1]!) < 1e-12);
  assert.ok(Math.abs(m.pAfter - want[k]!) < 1e-12);
  assert.ok(Math.abs(m.pBefore - Math.exp(l[m.token]!) / z0) < 1e-12);
});

test('every logit −inf falls back to the argmax, with the note', () => {
  const l = new Float32Array(6).fill(-Infinity);
  const m = samplingModel(l, { top_k: 2 }, [1]);
  assert.deepEqual(m.fallback?.stage, 'input');
  assert.equal(m.draw, null);
  assert.equal(m.token, 0);
  matchSnapshot('sampling-fallback', samplingSvg(m));
});

test('the sampler settings: keys, defaults and bounds agree with the registry schema and the engine', () => {
  const kind = createRegistry().get('sampling')!;
  const gen = createRegistry().get('generate')!;
  for (const key of SAMPLER_KEYS) {
    assert.ok(kind.schema[key], `sampling schema has ${key}`);
    assert.ok(kind.view.includes(key), `${key} is a sampling view key`);
    assert.ok(gen.view.includes(key), `${key} is a generate view key`);
  }
  for (const k of KNOBS) {
    const spec = kind.schema[k.key]!;
    assert.equal(spec.default, k.dflt, k.key);
    for (const v of [k.dflt, k.min, k.min - 1, k.min + 0.5, (k.max ?? 10) + 1, 0.5, 1, 2, 3]) {
      assert.equal(spec.check(v, {}) === null, knobAccepts(k, v), `${k.key} = ${v}`);
      if (knobAccepts(k, v)) assert.doesNotThrow(() => resolveOptions({ [k.field]: v }), `${k.key} = ${v}`);
    }
  }
  assert.ok(!gen.view.includes('branches') && !gen.view.includes('branch'), 'the tree changes the output');
  const s = samplerSettings({ temperature: 0.5, top_k: 3.5, top_p: 2, order: ['min_p', 'nope', 'min_p', 'top_k'], seed: 12 });
  assert.deepEqual(s.options, { temperature: 0.5, order: ['min_p', 'top_k'] });
  assert.deepEqual(s.ignored.sort(), ['order', 'top_k', 'top_p']);
  assert.equal(s.seed, 12);
  assert.deepEqual(samplerSettings({ mirostat: 2 }).order, ['logit_bias', 'temperature']);
});

test('a control change on a 128k vocabulary reuses the row\'s one sort and draws what a fresh sort draws', () => {
  const l = randomLogits(128_000, 3);
  const history = Array.from({ length: 300 }, (_, i) => (i * 7919) % 128_000);
  samplingModel(l, { top_k: 40 }, history);                // the sort, once per logits row
  const raw = rawOnce(l);
  for (const t of [0.7, 0.8, 0.9]) {
    const settings = { temperature: t, top_k: 40, top_p: 0.95, min_p: 0.02, repeat_penalty: 1.1 };
    const m = samplingModel(l, settings, history);
    assert.equal(rawOnce(l), raw, 'the sort is kept for the row');
    const fresh = samplingModel(l.slice(), settings, history);   // a new array: sorted again
    assert.deepEqual(m.rows, fresh.rows, `temperature ${t}`);
    assert.deepEqual(m.result.token, fresh.result.token);
    assert.equal(samplingSvg(m), samplingSvg(fresh));
    assert.ok(m.rows.length <= 12 * 8, `${m.rows.length} rows`);
  }
});

test('the export has a row per token and stage, and the draw', () => {
  const m = samplingModel(logits50(), { top_k: 5, seed: 1 }, HISTORY, { pieces });
  const f = samplingExport(m);
  assert.equal(f.rows.length, m.rows.length * m.columns.length);
  const meta = f.meta as { token: number; u: number; stages: unknown[] };
  assert.equal(meta.token, m.token);
  assert.equal(meta.u, m.u);
  assert.equal(meta.stages.length, m.columns.length);
});

test('snapshots', () => {
  const l = logits50();
  matchSnapshot('sampling-defaults', samplingSvg(samplingModel(l, {}, HISTORY, { pieces })));
  matchSnapshot('sampling-chain', samplingSvg(samplingModel(l, { top_k: 8, top_p: 0.9, min_p: 0.05, xtc_probability: 1, xtc_threshold: 0.05, temperature: 0.8, repeat_penalty: 1.3, seed: 2 }, HISTORY, { pieces })));
  matchSnapshot('sampling-mirostat', samplingSvg(samplingModel(l, { mirostat: 2, mirostat_tau: 3 }, HISTORY, { pieces, show: 6 })));
  // a long history: the penalties' window over 400 tokens
  const long = Array.from({ length: 400 }, (_, i) => (i * 13) % 50);
  matchSnapshot('sampling-long-history', samplingSvg(samplingModel(l, { repeat_penalty: 1.5, repeat_last_n: -1, dry_multiplier: 1, seed: 8 }, long, { pieces, show: 8 })));
});
