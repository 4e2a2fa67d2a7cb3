// Steering vectors from contrasting prompts (issue 12): run each prompt of two sets, read one
// residual hook per layer, reduce each prompt to one row (the mean over its positions, BOS left
// out, or its last position), and take mean(positive) − mean(negative) per layer (meanDifference).
// The direction of layer L is added to blocks.L.hook_resid_post, the hook llama.cpp's control
// vectors add to (control-vector.ts), so a computed vector saves to and loads from that format
// unchanged; steerEdits is controlVectorEdits on the chosen layers (one piece of code).
//
// Works through the engine's interface (an in-thread Engine or the worker client): run with a
// capture, fetch the activation, release the trace.

import type { ActivationSlice, CallOptions, Range, RunRequest, TraceHandle, TraceRef } from './api.ts';
import { meanDifference, meanOverPositions, meanStart, type Edit } from './edits.ts';
import { controlVectorEdits } from './control-vector.ts';
import { UsageError } from './errors.ts';

/** What steeringVector needs of the engine (Engine and EngineClient both have it). */
export interface SteeringClient {
  run(request: RunRequest, options?: CallOptions): Promise<TraceHandle>;
  activation(trace: TraceRef, name: string, options?: { positions?: Range }): Promise<ActivationSlice>;
  release(trace: TraceRef): Promise<boolean>;
}

export interface SteeringVectorOptions {
  /** Token ids of each prompt of the two sets. */
  positive: readonly (readonly number[])[];
  negative: readonly (readonly number[])[];
  /** The layers to compute a direction for (blocks.L.hook_resid_post). */
  layers: readonly number[];
  /** The hook read (and steered): resid_post only, what llama.cpp's control vectors add to. */
  hook?: 'resid_post';
  /** One row per prompt: the mean over its positions (default; BOS left out) or the last one. */
  reduce?: 'mean' | 'last';
  /** The BOS id: position 0 is left out of the mean when it holds it (and the prompt has more). */
  bosId?: number | null;
  /** The engine slot of the runs (default 'steering'). */
  slot?: string;
  signal?: AbortSignal;
}

/** The row of prompt `tokens` in a [nPos, d] activation: mean over positions (BOS out) or the last. */
export function reduceRows(data: Float32Array, tokens: readonly number[], reduce: 'mean' | 'last', bosId?: number | null): Float32Array {
  const n = tokens.length, d = data.length / n;
  if (reduce === 'last') return data.slice((n - 1) * d, n * d);
  return meanOverPositions({ shape: [n, d], data }, meanStart(tokens, bosId));
}

function checkPrompts(field: string, v: unknown): readonly (readonly number[])[] {
  if (!Array.isArray(v) || v.length === 0) throw new UsageError(`steeringVector ${field}`, 'holds no prompts', 'Give at least one prompt on each side');
  v.forEach((t, i) => {
    if (!Array.isArray(t) || t.length === 0) throw new UsageError(`steeringVector ${field}[${i}]`, 'has no tokens', 'Give each prompt some text');
  });
  return v as readonly (readonly number[])[];
}

/**
 * The steering vector of two sets of prompts: layer → mean(positive rows) − mean(negative rows),
 * each [d_model]. One run per prompt in `slot` (its trace released once read).
 */
export async function steeringVector(client: SteeringClient, o: SteeringVectorOptions): Promise<Map<number, Float32Array>> {
  const positive = checkPrompts('positive', o.positive), negative = checkPrompts('negative', o.negative);
  const hook = o.hook ?? 'resid_post';
  if (hook !== 'resid_post') throw new UsageError('steeringVector hook', `is ${String(hook)}`, "Use 'resid_post' (what control vectors add to)");
  const reduce = o.reduce ?? 'mean';
  if (reduce !== 'mean' && reduce !== 'last') throw new UsageError('steeringVector reduce', `is ${String(reduce)}`, "Use 'mean' or 'last'");
  const layers = [...new Set(o.layers)].sort((a, b) => a - b);
  if (layers.length === 0) throw new UsageError('steeringVector layers', 'is empty', 'Give at least one layer');
  for (const l of layers) if (!Number.isInteger(l) || l < 0) throw new UsageError('steeringVector layers', `${String(l)} is not a layer index`);
  const names = layers.map((l) => `blocks.${l}.hook_${hook}`);
  const slot = o.slot ?? 'steering';
  const opts: CallOptions = o.signal ? { signal: o.signal } : {};
  // rows[side][layer index] = one row per prompt
  const rowsOf = async (prompts: readonly (readonly number[])[]): Promise<Float32Array[][]> => {
    const rows: Float32Array[][] = layers.map(() => []);
    for (const tokens of prompts) {
      o.signal?.throwIfAborted();
      const h = await client.run({ tokens, capture: names, slot }, opts);
      try {
        for (let k = 0; k < names.length; k++) {
          const a = await client.activation(h, names[k]!);          // [nPos, d_model]
          rows[k]!.push(reduceRows(a.data, tokens, reduce, o.bosId));
        }
      } finally {
        await client.release(h);
      }
    }
    return rows;
  };
  const pos = await rowsOf(positive);
  const neg = await rowsOf(negative);
  return new Map(layers.map((l, k) => [l, meanDifference(pos[k]!, neg[k]!)] as const));
}

/** The steer edits adding direction × strength to blocks.L.hook_resid_post at every position, for
 *  the given layers (default every layer the vector has). */
export function steerEdits(directions: ReadonlyMap<number, Float32Array>, strength: number, layers?: readonly number[]): Edit[] {
  const chosen = new Map([...directions].filter(([l]) => !layers || layers.includes(l)));
  const dModel = chosen.values().next().value?.length ?? 0;
  return controlVectorEdits({ modelHint: '', dModel, directions: chosen }, { strength });
}
