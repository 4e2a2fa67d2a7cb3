// Models and comparisons shared by the browser tests of the WebGPU forward pass (not a test file).

import { urlSource } from '../../src/formats/source.ts';
import { openModel } from '../../src/formats/open.ts';
import { loadModelWeights, type ModelWeights } from '../../src/engine/weights.ts';
import type { TraceEntry } from '../../src/engine/hooks.ts';

const LOCAL = '/models/local/tinystories-260k/';

export interface StoriesRef {
  token_ids: number[];
  first_16_steps_top5_logits: { pos: number; input: number; argmax: number; top5: [number, number][] }[];
}

let stories: Promise<ModelWeights> | null = null;
let ref: Promise<StoriesRef> | null = null;

/** stories260K (GGUF, all F32), loaded once per test file. */
export function loadStories(): Promise<ModelWeights> {
  stories ??= (async () => loadModelWeights(await openModel([await urlSource(`${LOCAL}stories260K.gguf`)])))();
  return stories;
}

/** The golden greedy decode of stories260K (../shared/models/tinystories-260k/). */
export function storiesRef(): Promise<StoriesRef> {
  ref ??= fetch(`${LOCAL}stories260K_greedy_ref.json`).then((r) => r.json() as Promise<StoriesRef>);
  return ref;
}

/** Largest |a − b| over finite entries (non-finite entries must be identical, else Infinity). */
export function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!, y = b[i]!;
    if (!Number.isFinite(x) || !Number.isFinite(y)) { if (!Object.is(x, y)) return Infinity; continue; }
    m = Math.max(m, Math.abs(x - y));
  }
  return m;
}

/**
 * The first hook, in the order given (forward order), whose test values differ from the reference
 * by more than rtol · (1 + max |reference|), described; null when none does. Logs the worst
 * relative difference seen (the margin under the tolerance).
 */
export function firstDivergence(names: Iterable<string>, refOf: (n: string) => TraceEntry, testOf: (n: string) => TraceEntry, rtol: number): string | null {
  let worst = 0, worstName = '';
  for (const name of names) {
    const a = refOf(name), b = testOf(name);
    if (!b) return `${name}: missing`;
    if (a.shape.join() !== b.shape.join()) return `${name}: shape [${b.shape}] vs [${a.shape}]`;
    let scale = 0;
    for (const v of a.data) if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v));
    const bound = rtol * (1 + scale);
    for (let i = 0; i < a.data.length; i++) {
      const x = b.data[i]!, y = a.data[i]!;
      const finite = Number.isFinite(x) && Number.isFinite(y);
      const diff = finite ? Math.abs(x - y) : Object.is(x, y) ? 0 : Infinity;
      if (diff / bound > worst) { worst = diff / bound; worstName = name; }
      if (diff > bound) {
        return `${name} [${a.shape}] is the first hook to diverge: element ${i} is ${x}, expected ${y} (|diff| ${diff.toExponential(2)} > ${bound.toExponential(2)})`;
      }
    }
  }
  console.log(`largest difference: ${(worst * rtol).toExponential(2)} · (1 + max|ref|) at ${worstName}`);
  return null;
}
