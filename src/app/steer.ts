// The steer cell on the page's side: the steering vector (computed from the cell's positive and
// negative prompts with src/engine/steering.ts, or read from a control-vector GGUF kept in the
// notebook as base64), then two generations from the prompt above — without the vector and with
// it — with the same sampler chain and seed, step by step (run + the last logits row + chooseNext
// of generation.ts), and the plain run's prefixes scored by the steered model (KL per step).
//
// KV cache: each run has its own slot (steer:<cell>:plain, :steered, :cross, :cross-plain,
// :vector), and each slot is a lane of the engine's session with its own cache
// (src/engine/session.ts), so the two generations each reuse their own prefix step by step and
// leave the prompt's cache alone, and a prompt edit reruns each from the first changed token.

import type { ModelInfo, Tokenized, TokenizeOptions } from '../engine/api.ts';
import type { Edit } from '../engine/edits.ts';
import { UsageError } from '../engine/errors.ts';
import { readControlVector, writeControlVector, type ControlVector } from '../engine/control-vector.ts';
import { steerEdits, steeringVector, type SteeringClient } from '../engine/steering.ts';
import { bytesSource } from '../formats/source.ts';
import { chainOf, chooseNext, stopIdsOf, tokenTexts, type GenerationClient, type TextClient } from './generation.ts';
import type { ResolvedOptions } from '../engine/sampling/index.ts';
import { klDivergence, logSoftmax } from '../../cells/plot/ablate.ts';
import {
  DEFAULT_STEER_TOKENS, layerText, MAX_STEER_TOKENS, parseLayerSpec, type SteerOutput, type SteerRun,
} from '../../cells/plot/steer.ts';

/** What the steer cell needs of the engine: the worker client or an in-thread Engine. */
export interface SteerClient extends SteeringClient, GenerationClient, TextClient {
  tokenize(text: string, options?: TokenizeOptions): Promise<Tokenized>;
}

/** A control vector kept in the notebook is at most this many bytes (before base64). */
export const MAX_VECTOR_BYTES = 8 * 2 ** 20;

// ---------------------------------------------------------------------------------------------
// The vector in the notebook: base64 of the GGUF bytes

export function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/** The bytes of a base64 setting; the length is checked before anything is decoded. */
export function fromBase64(text: string, field: string): Uint8Array {
  const clean = text.replace(/\s+/g, '');
  const pad = clean.endsWith('==') ? 2 : clean.endsWith('=') ? 1 : 0;
  const size = (clean.length / 4) * 3 - pad;
  if (size > MAX_VECTOR_BYTES) {
    throw new UsageError(field, `holds a file of ${Math.round(size / 2 ** 20 * 10) / 10} MiB; at most ${MAX_VECTOR_BYTES / 2 ** 20} MiB are kept in a notebook`, 'Steer fewer layers, or compute the vector from prompts');
  }
  if (clean.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(clean)) throw new UsageError(field, 'is not base64 text', 'Load the .gguf file again, or delete the `vector` line');
  const bin = atob(clean);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** A control vector from its bytes, checked against the model (ModelFormatError naming `name`). */
export async function readVectorBytes(bytes: Uint8Array, name: string, c: Pick<ModelInfo['config'], 'dModel' | 'nLayers'>): Promise<ControlVector> {
  if (bytes.byteLength > MAX_VECTOR_BYTES) {
    throw new UsageError(name, `is ${Math.round(bytes.byteLength / 2 ** 20 * 10) / 10} MiB; at most ${MAX_VECTOR_BYTES / 2 ** 20} MiB are kept in a notebook`, 'Use a control vector with fewer layers');
  }
  return readControlVector(bytesSource(bytes, name), { dModel: c.dModel, nLayers: c.nLayers });
}

/** The GGUF bytes of the directions applied (llama.cpp's control-vector format: layers from 1). */
export function vectorFile(o: Pick<SteerOutput, 'directions' | 'layers' | 'dModel'>, modelHint = 'llama'): Uint8Array {
  if (o.layers.includes(0)) {
    throw new UsageError('steer: save', 'layer 0 cannot be saved in llama.cpp\u2019s control-vector format (its layers start at 1)', 'Leave layer 0 out of `layers` to save the vector');
  }
  const directions = new Map(o.layers.filter((l) => o.directions.has(l)).map((l) => [l, o.directions.get(l)!] as const));
  return writeControlVector({ modelHint, dModel: o.dModel, directions });
}

// ---------------------------------------------------------------------------------------------
// Generation

export interface SteerGenerateRequest {
  prompt: readonly number[];
  /** The steering edits (none: the plain run). */
  edits?: readonly Edit[];
  tokens: number;
  options: ResolvedOptions;
  seed: number;
  slot: string;
  stopIds: ReadonlySet<number>;
  nCtx: number;
  signal?: AbortSignal;
  /** After each token: how many this run has made. */
  onToken?: (made: number) => void;
}

/** N tokens after the prompt, one run per step (the slot's cache holds the prefix). No texts. */
export async function generateRun(client: GenerationClient, r: SteerGenerateRequest): Promise<Omit<SteerRun, 'texts'>> {
  const ids: number[] = [], logp: number[] = [], top: number[] = [];
  let stopped: SteerRun['stopped'] = 'length';
  const opts = r.signal ? { signal: r.signal } : {};
  for (let i = 0; i < r.tokens; i++) {
    r.signal?.throwIfAborted();
    const seq = [...r.prompt, ...ids];
    if (seq.length >= r.nCtx) { stopped = 'context'; break; }
    const h = await client.run({ tokens: seq, slot: r.slot, ...(r.edits?.length ? { edits: r.edits } : {}) }, opts);
    const row = (await client.logits(h, { position: seq.length - 1 })).data;
    const { token } = chooseNext(row, seq, r.options, r.seed);
    if (r.stopIds.has(token.id)) { stopped = 'eos'; break; }
    const ls = logSoftmax(row);
    let best = -Infinity;
    for (let j = 0; j < ls.length; j++) if (ls[j]! > best) best = ls[j]!;
    ids.push(token.id);
    logp.push(ls[token.id]!);
    top.push(Math.exp(best));
    r.onToken?.(ids.length);
  }
  return { ids, logp, top, stopped };
}

// ---------------------------------------------------------------------------------------------
// The vector

/** Computed vectors by model and prompts: a strength or layer change does not rerun the prompts. */
const vectorCache = new Map<string, Map<number, Float32Array>>();

function texts(v: unknown): string[] {
  return (Array.isArray(v) ? v : v === undefined || v === null ? [] : [v]).map((x) => String(x)).filter((s) => s.trim() !== '');
}

async function computedVector(client: SteerClient, model: ModelInfo, positive: string[], negative: string[], reduce: 'mean' | 'last', slot: string, signal?: AbortSignal) {
  const key = JSON.stringify([model.key, positive, negative, reduce]);
  const hit = vectorCache.get(key);
  if (hit) return hit;
  const tok = async (list: string[]) => Promise.all(list.map(async (t) => (await client.tokenize(t)).ids));
  const [pos, neg] = await Promise.all([tok(positive), tok(negative)]);
  // every layer (one run per prompt either way): the `layers` setting picks which are applied
  const layers = Array.from({ length: model.config.nLayers }, (_, l) => l);
  const directions = await steeringVector(client, {
    positive: pos, negative: neg, layers, reduce, bosId: model.tokenizer?.bosId ?? model.config.bosId, slot, ...(signal ? { signal } : {}),
  });
  if (vectorCache.size >= 16) vectorCache.delete(vectorCache.keys().next().value!);
  vectorCache.set(key, directions);
  return directions;
}

/** The cell's vector: from the file kept in `vector`, else from its prompts. */
export async function steerVector(client: SteerClient, model: ModelInfo, s: Readonly<Record<string, unknown>>, cellId: string, signal?: AbortSignal): Promise<Pick<SteerOutput, 'directions' | 'layers' | 'source'>> {
  const L = model.config.nLayers;
  if (typeof s['vector'] === 'string' && s['vector'] !== '') {
    const name = typeof s['vector_file'] === 'string' && s['vector_file'] ? s['vector_file'] : 'the vector in the notebook';
    const cv = await readVectorBytes(fromBase64(s['vector'], `steer: vector (${name})`), name, model.config);
    const have = [...cv.directions.keys()].sort((a, b) => a - b);
    const asked = s['layers'] === undefined ? have : parseLayerSpec(s['layers'], L);
    const layers = asked.filter((l) => cv.directions.has(l));
    if (!layers.length) throw new UsageError('steer: layers', `${layerText(asked)}: ${name} has directions for layers ${layerText(have)} only`, 'Pick layers the file has, or delete the `layers` line');
    return { directions: cv.directions, layers, source: { kind: 'file', name } };
  }
  const positive = texts(s['positive']), negative = texts(s['negative']);
  if (!positive.length || !negative.length) {
    throw new UsageError(`steer: ${positive.length ? 'negative' : 'positive'}`, 'holds no prompt',
      'Write a prompt per side, e.g. positive: ["Lily was happy"] and negative: ["Lily was sad"], or load a control vector (.gguf)');
  }
  const reduce = s['reduce'] === 'last' ? 'last' : 'mean';
  const layers = parseLayerSpec(s['layers'], L);
  const directions = await computedVector(client, model, positive, negative, reduce, `steer:${cellId}:vector`, signal);
  return { directions, layers, source: { kind: 'computed', positive, negative, reduce } };
}

// ---------------------------------------------------------------------------------------------
// The cell's output

export async function steerOutput(client: SteerClient, model: ModelInfo, p: { id: string; tok: Tokenized }, s: Readonly<Record<string, unknown>>,
  cellId: string, signal?: AbortSignal, progress?: (done: number, total: number, what: string) => void): Promise<SteerOutput> {
  const c = model.config;
  const n = s['tokens'] === undefined ? DEFAULT_STEER_TOKENS : Number(s['tokens']);
  if (!Number.isInteger(n) || n < 1 || n > MAX_STEER_TOKENS) throw new UsageError('steer: tokens', `is ${String(s['tokens'])}`, `Generate 1 to ${MAX_STEER_TOKENS} tokens`);
  const strength = s['strength'] === undefined ? 1 : Number(s['strength']);
  if (!Number.isFinite(strength)) throw new UsageError('steer: strength', `is ${String(s['strength'])}; give a number`);
  const temperature = typeof s['temperature'] === 'number' ? s['temperature'] : 0;
  const seed = typeof s['seed'] === 'number' ? s['seed'] : 0;
  const { options } = chainOf({ temperature, seed });
  const vec = await steerVector(client, model, s, cellId, signal);
  signal?.throwIfAborted();
  const edits = steerEdits(vec.directions, strength, vec.layers);
  const base = { prompt: p.tok.ids, tokens: n, options, seed, stopIds: stopIdsOf(model), nCtx: c.nCtx, ...(signal ? { signal } : {}) };
  // the two generations' tokens, counted as the cell's progress (n each at most: an end token stops one early)
  const plain = await generateRun(client, { ...base, slot: `steer:${cellId}:plain`, onToken: (k) => progress?.(k, 2 * n, 'tokens') });
  const steered = await generateRun(client, { ...base, edits, slot: `steer:${cellId}:steered`, onToken: (k) => progress?.(n + k, 2 * n, 'tokens') });
  // The plain run's prefixes under both models, each logits row from the last residual. Each run
  // is in a slot (an engine lane) of its own, not a generation's: the generations do not record
  // that residual, so sharing their lanes would recompute from position 0 every time, where a
  // lane of its own recomputes from the first token a prompt edit changed.
  const cross = { kl: [] as number[], logp: [] as number[] };
  if (plain.ids.length) {
    const seq = [...p.tok.ids, ...plain.ids.slice(0, -1)];
    const last = `blocks.${c.nLayers - 1}.hook_resid_post`;
    const opts = signal ? { signal } : {};
    const hq = await client.run({ tokens: seq, edits, capture: [last], slot: `steer:${cellId}:cross` }, opts);
    const hp = await client.run({ tokens: seq, capture: [last], slot: `steer:${cellId}:cross-plain` }, opts);
    try {
      for (let i = 0; i < plain.ids.length; i++) {
        signal?.throwIfAborted();
        const pos = p.tok.ids.length - 1 + i;
        const [P, Q] = await Promise.all([client.logits(hp, { position: pos }), client.logits(hq, { position: pos })]);
        cross.kl.push(klDivergence(P.data, Q.data));
        cross.logp.push(logSoftmax(Q.data)[plain.ids[i]!]!);
      }
    } finally {
      await Promise.all([client.release(hp), client.release(hq)]);
    }
  }
  const [plainTexts, steeredTexts] = await Promise.all([tokenTexts(client, model.key, plain.ids), tokenTexts(client, model.key, steered.ids)]);
  return {
    prompt: p.id, promptText: p.tok.text, promptLength: p.tok.ids.length, nLayers: c.nLayers, dModel: c.dModel,
    directions: vec.directions, layers: vec.layers, strength, source: vec.source,
    sampler: { temperature, seed, tokens: n },
    plain: { ...plain, texts: plainTexts }, steered: { ...steered, texts: steeredTexts }, cross,
  };
}
