// The candidate set every sampler stage reads and returns: token ids with their logits, always
// sorted most likely first (the lowest id first on ties). Keeping that order as an invariant is
// what makes the chain cheap on a 128k vocabulary: the raw logits are sorted once (a radix sort,
// ~1 ms), the truncating stages (top-k, top-p, min-p, top-n-sigma, XTC, mirostat) keep a prefix
// or a suffix — views, no copies — and the stages that move a few logits (bias, penalties, DRY)
// merge the moved ones back in O(n).
//
// A Candidates object is never changed after it is made: stages return new ones (sharing the
// arrays they did not change), so a notebook can keep every stage's set for drawing.

export interface Candidates {
  /** Token ids by rank: largest logit first, the lowest id first on ties. [n] */
  readonly ids: Int32Array;
  /** Their logits, by rank; never −inf or NaN. [n] */
  readonly logits: Float64Array;
  /** What the stage that made this set computed on the way (dynamic temperature, XTC's decision…). */
  readonly detail?: Readonly<Record<string, number | boolean | string>>;
}

export const EMPTY: Candidates = Object.freeze({ ids: new Int32Array(0), logits: new Float64Array(0) });

// ---------------------------------------------------------------------------------------------
// The one sort: raw float32 logits → candidates.

const BITS = 11, BUCKETS = 1 << BITS, MASK = BUCKETS - 1;

/** The sort's working arrays, kept between calls: 16 bytes per vocabulary entry held, where a
 *  128k vocabulary would otherwise leave 2 MB of garbage per sampled token. Only the sorted ids
 *  and logits leave fromLogits. */
let scratch = { keys: new Int32Array(0), ids: new Int32Array(0), k2: new Int32Array(0), i2: new Int32Array(0) };
const hist = new Int32Array(3 * BUCKETS);

/**
 * The candidates of a raw logits row: every id whose logit is > −inf (−inf and NaN can never be
 * drawn), sorted. An LSD radix sort on the float's bits made order-preserving (descending): three
 * passes of 11 bits; stable, and the ids enter in ascending order, so ties come out lowest id first.
 * The keys are kept as int32 (their bits read as unsigned are the order), which V8 handles as
 * small integers, where uint32 values past 2³¹ become doubles.
 */
export function fromLogits(logits: Float32Array): Candidates {
  const n0 = logits.length;
  const bits = new Int32Array(logits.buffer, logits.byteOffset, n0);
  if (scratch.keys.length < n0) scratch = { keys: new Int32Array(n0), ids: new Int32Array(n0), k2: new Int32Array(n0), i2: new Int32Array(n0) };
  let { keys, ids, k2, i2 } = scratch;
  hist.fill(0);                                                   // all three passes' counts in one read
  let n = 0;
  for (let i = 0; i < n0; i++) {
    let b = bits[i]!;
    if ((b & 0x7fffffff) > 0x7f800000 || b === (0xff800000 | 0)) continue;   // NaN, −inf
    if (b === (0x80000000 | 0)) b = 0;                            // −0 ties with +0
    const key = b < 0 ? b : ~b & 0x7fffffff;                      // ascending key (unsigned) = descending logit
    keys[n] = key;
    ids[n++] = i;
    hist[key & MASK]!++;
    hist[BUCKETS + ((key >> BITS) & MASK)]!++;
    hist[2 * BUCKETS + (key >>> (2 * BITS))]!++;
  }
  for (let pass = 0; pass < 3; pass++) {
    const shift = pass * BITS, base = pass * BUCKETS;
    if (n === 0 || hist[base + ((keys[0]! >>> shift) & MASK)] === n) continue;   // one bucket: nothing moves
    let sum = 0;
    for (let d = base; d < base + BUCKETS; d++) { const c = hist[d]!; hist[d] = sum; sum += c; }
    for (let j = 0; j < n; j++) {
      const k = keys[j]!, pos = hist[base + ((k >>> shift) & MASK)]!++;
      k2[pos] = k;
      i2[pos] = ids[j]!;
    }
    [keys, k2] = [k2, keys];
    [ids, i2] = [i2, ids];
  }
  const outIds = ids.slice(0, n);
  const outLogits = new Float64Array(n);
  for (let j = 0; j < n; j++) outLogits[j] = logits[outIds[j]!]!;
  return { ids: outIds, logits: outLogits };
}

// ---------------------------------------------------------------------------------------------
// Probabilities, computed when a stage or the report needs them, and cached per set.

interface Softmax { probs: Float64Array; entropy: number }
const cache = new WeakMap<Candidates, Softmax>();

/** The softmax's normaliser: z = Σ exp(l − max), summed in rank order. */
interface Norm { max: number; z: number }
const norms = new WeakMap<Candidates, Norm>();

function normOf(c: Candidates): Norm {
  let s = norms.get(c);
  if (s) return s;
  const n = c.ids.length, l = c.logits;
  const max = n > 0 ? l[0]! : 0;                 // sorted: the first is the largest
  let z = 0;
  for (let i = 0; i < n; i++) z += Math.exp(l[i]! - max);
  s = { max, z };
  norms.set(c, s);
  return s;
}

function softmax(c: Candidates): Softmax {
  let s = cache.get(c);
  if (s) return s;
  const n = c.ids.length, l = c.logits;
  const probs = new Float64Array(n);
  if (n === 0) { s = { probs, entropy: 0 }; cache.set(c, s); return s; }
  const max = l[0]!;                              // sorted: the first is the largest
  let z = 0;
  for (let i = 0; i < n; i++) z += probs[i] = Math.exp(l[i]! - max);
  if (!norms.has(c)) norms.set(c, { max, z });
  // entropy without n logarithms: −Σ p ln p = ln z − Σ p (l − max)
  let dot = 0;
  for (let i = 0; i < n; i++) {
    const p = probs[i]! / z;
    probs[i] = p;
    if (p > 0) dot += p * (l[i]! - max);
  }
  s = { probs, entropy: Math.max(0, Math.log(z) - dot) };
  cache.set(c, s);
  return s;
}

/**
 * The probability of the candidate at `rank`: probsOf(c)[rank], the same number (the same
 * exponentials summed in the same order), without an array of n probabilities. One pass over
 * the set on the first call per set; O(1) after.
 */
export function probAt(c: Candidates, rank: number): number {
  return probReader(c)(rank);
}

/** probAt for many ranks of one set (the draw's search): the set's caches looked up once. */
export function probReader(c: Candidates): (rank: number) => number {
  const full = cache.get(c);
  if (full) { const probs = full.probs; return (rank) => probs[rank]!; }
  const { max, z } = normOf(c), l = c.logits;
  return (rank) => Math.exp(l[rank]! - max) / z;
}

/** Softmax of the set's logits (subtracting the max), by rank; sums to 1. [n] */
export function probsOf(c: Candidates): Float64Array {
  return softmax(c).probs;
}

/** Shannon entropy of the set's softmax, in nats. */
export function entropyOf(c: Candidates): number {
  return softmax(c).entropy;
}

// ---------------------------------------------------------------------------------------------
// Helpers the stages share.

/** The `k` most likely (a view; k is clamped to [0, n]). */
export function prefix(c: Candidates, k: number, detail?: Candidates['detail']): Candidates {
  const n = c.ids.length;
  if (k >= n && !detail) return c;
  k = Math.max(0, Math.min(k, n));
  return { ids: c.ids.subarray(0, k), logits: c.logits.subarray(0, k), ...(detail && { detail }) };
}

/** All but the `from` most likely (a view). */
export function suffix(c: Candidates, from: number, detail?: Candidates['detail']): Candidates {
  if (from <= 0 && !detail) return c;
  return { ids: c.ids.subarray(from), logits: c.logits.subarray(from), ...(detail && { detail }) };
}

/** The same set with a detail attached. */
export function withDetail(c: Candidates, detail: Candidates['detail']): Candidates {
  const out = { ids: c.ids, logits: c.logits, ...(detail && { detail }) };
  const s = cache.get(c), z = norms.get(c);
  if (s) cache.set(out, s);                       // same logits: same softmax
  if (z) norms.set(out, z);
  return out;
}

/** Ranks (ascending) of the candidates whose id is a key of `ids`. O(n) with a flag array. */
export function ranksOf(c: Candidates, idsIn: Iterable<number>): number[] {
  const ids = [...idsIn];                          // an iterator can be read only once
  let maxId = -1;
  for (const id of ids) if (id > maxId) maxId = id;
  if (maxId < 0) return [];
  const flag = new Uint8Array(maxId + 1);
  for (const id of ids) if (id >= 0) flag[id] = 1;
  const out: number[] = [];
  const cids = c.ids;
  for (let r = 0; r < cids.length; r++) {
    const id = cids[r]!;
    if (id <= maxId && flag[id]) out.push(r);
  }
  return out;
}

/** True when (la, ia) ranks before (lb, ib): the larger logit, then the lower id. */
function before(la: number, ia: number, lb: number, ib: number): boolean {
  return la > lb || (la === lb && ia < ib);
}

/**
 * The set with new logits at a few ranks (ascending `ranks`, new values in `values`), back in
 * order: the moved candidates are sorted among themselves and merged with the rest, which are
 * still in order. A new logit of −inf or NaN removes the candidate. O(n + m log m).
 */
export function moveLogits(c: Candidates, ranks: readonly number[], values: readonly number[], detail?: Candidates['detail']): Candidates {
  const m = ranks.length;
  if (m === 0) return detail ? withDetail(c, detail) : c;
  const moved: { id: number; l: number }[] = [];
  for (let j = 0; j < m; j++) {
    const l = values[j]!;
    if (l > -Infinity) moved.push({ id: c.ids[ranks[j]!]!, l });
  }
  moved.sort((a, b) => (before(a.l, a.id, b.l, b.id) ? -1 : before(b.l, b.id, a.l, a.id) ? 1 : 0));
  const n = c.ids.length, size = n - m + moved.length;
  const ids = new Int32Array(size), logits = new Float64Array(size);
  let r = 0, next = 0, k = 0, o = 0;                    // r: rank in c; next: index into ranks; k: into moved
  while (o < size) {
    while (r < n && next < m && ranks[next] === r) { r++; next++; }   // skip the moved ones
    const takeOld = r < n && (k >= moved.length || before(c.logits[r]!, c.ids[r]!, moved[k]!.l, moved[k]!.id));
    if (takeOld) { ids[o] = c.ids[r]!; logits[o++] = c.logits[r++]!; }
    else { ids[o] = moved[k]!.id; logits[o++] = moved[k++]!.l; }
  }
  return { ids, logits, ...(detail && { detail }) };
}

/** The set in order again after a transform that is monotone up to rounding (a temperature). */
export function reorder(ids: Int32Array, logits: Float64Array, detail?: Candidates['detail']): Candidates {
  let ok = true;
  for (let i = 1; i < ids.length && ok; i++) ok = !before(logits[i]!, ids[i]!, logits[i - 1]!, ids[i - 1]!);
  if (!ok) {                                             // rare: rounding made a tie (or worse); sort fully
    const order = Array.from(ids.keys()).sort((a, b) => (before(logits[a]!, ids[a]!, logits[b]!, ids[b]!) ? -1 : 1));
    const i2 = Int32Array.from(order, (j) => ids[j]!), l2 = Float64Array.from(order, (j) => logits[j]!);
    return { ids: i2, logits: l2, ...(detail && { detail }) };
  }
  return { ids, logits, ...(detail && { detail }) };
}
