// Where recorded activations accumulate between runs.
//
// The forward pass processes a chunk of new positions at a time and hands each selected hook's
// rows for those positions to a Recorder. The session keeps them here, per position, so that a
// later run that reuses a cached prefix (only recomputing from token k) still returns a trace
// covering every position of the sequence, identical to the trace of a run from scratch: rows of
// positions < k are kept, rows from k on are overwritten.
//
// Attention hooks ([n_heads, q_pos, k_pos]) are kept as their causal part only: query position p
// has n_heads × (p + 1) values, and each row's entropy is kept once the summary has asked for it
// (a run that reuses a prefix summarizes its rows without computing their logarithms again). A
// trace's full squares are built when it is first read.
//
// Rows live in blocks of BLOCK positions, and a trace shares the store's blocks instead of copying
// them: a block a trace holds is never written again (copy on write: a later run that rewrites
// some of its positions gets a new block, with the block's earlier rows copied). A keystroke that
// recomputes the last few positions so copies at most one block per hook, where copying the whole
// trace (TinyLlama at 144 tokens: 56 MB) took longer than the run. A trace's contiguous `data` is
// gathered from its blocks when first read; `row(p)` reads one position without it.

import type { ModelConfig } from './config.ts';
import { hookShape, NORM_SUFFIX, rowNorm, type RowHash, type Trace } from './hooks.ts';
import { numElements } from '../formats/tensor.ts';
import { rowEntropyF32, type SummaryPrefix } from './attention-summary.ts';

/** Receives the selected activations of a chunk of positions [start, start + n). */
export interface Recorder {
  /** data: [n, rowSize], row t for position start + t. */
  rows(name: string, start: number, data: Float32Array, n: number, rowSize: number): void;
  /** data: [nHeads, n, start + n], the attention rows of query positions start .. start+n−1. */
  attention(name: string, start: number, data: Float32Array, nHeads: number, n: number): void;
}

interface Stored {
  attention: boolean;
  rowSize: number;        // floats per position (rows); n_heads (attention)
  nPos: number;           // positions 0 .. nPos−1 are stored
  /** Block b: positions [b·BLOCK, (b + 1)·BLOCK), [BLOCK, rowSize] (rows) or their packed causal
   *  rows (attention); allocated when first written. */
  blocks: Float32Array[];
  /** Block b is held by a trace: it is not written again (a write replaces it first). */
  lent: boolean[];
  /** Attention: each stored row's entropy (rowEntropyF32), [positions, n_heads], for positions
   *  0 .. entropyPos−1; a prefix reused by the next run keeps them. */
  entropy?: Float64Array;
  entropyPos?: number;
  /** Rows: each stored position's write generation, and the content hash of the row of generation
   *  hashGen[p] (0: none) as hashA / hashB. */
  gen?: Uint32Array;
  hashGen?: Uint32Array;
  hashA?: Uint32Array;
  hashB?: Uint32Array;
}

/** Positions per storage block (see the top of this file). */
export const BLOCK = 8;

/** Offset of query position p's rows in a packed attention store: n_heads × (0 + 1 + ... + p). */
const triangle = (nHeads: number, p: number) => (nHeads * p * (p + 1)) / 2;

/** Floats in block b of an entry. */
function blockFloats(attention: boolean, rowSize: number, b: number): number {
  return attention ? triangle(rowSize, (b + 1) * BLOCK) - triangle(rowSize, b * BLOCK) : BLOCK * rowSize;
}

/** Where position p's values start in its block: its row (rows), or head 0's causal row (attention;
 *  head h's follows at + h·(p + 1)). */
function offsetIn(attention: boolean, rowSize: number, p: number): number {
  const first = p - (p % BLOCK);
  return attention ? triangle(rowSize, p) - triangle(rowSize, first) : (p - first) * rowSize;
}

/** The first nPos rows of `blocks` (of rows of rowSize) as one contiguous array. */
function gather(blocks: readonly Float32Array[], rowSize: number, nPos: number): Float32Array {
  const out = new Float32Array(nPos * rowSize);
  for (let b = 0; b * BLOCK < nPos; b++) out.set(blocks[b]!.subarray(0, (Math.min(nPos, (b + 1) * BLOCK) - b * BLOCK) * rowSize), b * BLOCK * rowSize);
  return out;
}

/**
 * Two independent 32-bit hashes of a row's words, FNV-1a and a MurmurHash3-style mix, in one pass
 * (with the length mixed in): 64 bits, so that two different residuals share a key with odds of
 * about 2⁻⁶⁴ (the logit lens's memo also compares eight of their words).
 */
export function rowHash(w: Uint32Array): RowHash {
  let a = 0x811c9dc5, b = 0x9747b28c;
  for (let i = 0; i < w.length; i++) {
    const x = w[i]!;
    a = Math.imul(a ^ x, 0x01000193);
    let m = Math.imul(x, 0xcc9e2d51);
    m = Math.imul((m << 15) | (m >>> 17), 0x1b873593);
    b ^= m;
    b = (Math.imul((b << 13) | (b >>> 19), 5) + 0xe6546b64) | 0;
  }
  b ^= w.length;
  b = Math.imul(b ^ (b >>> 16), 0x85ebca6b);
  b = Math.imul(b ^ (b >>> 13), 0xc2b2ae35);
  b ^= b >>> 16;
  return { a: a >>> 0, b: b >>> 0 };
}

/** Rows hashed by traces' rowHash since the process started (tests count the work a run saves). */
export const rowHashStats = { hashed: 0 };

function growU32(a: Uint32Array | undefined, need: number): Uint32Array {
  if (a && need <= a.length) return a;
  const next = new Uint32Array(Math.max(need, (a?.length ?? 0) * 2));
  if (a) next.set(a);
  return next;
}

export class CaptureStore implements Recorder {
  private readonly entries = new Map<string, Stored>();
  /** The last write generation given out (rows). */
  private writes = 0;
  /** The last attention summary's state (a later one over the same positions starts from it),
   *  true for positions before `valid`: truncated and cleared with the rows. */
  summaryPrefix: { prefix: SummaryPrefix; valid: number } | null = null;

  /** How many leading positions of `name` are stored (0 when none). */
  coverage(name: string): number {
    return this.entries.get(name)?.nPos ?? 0;
  }

  /** Forgets every hook not in `names` (a run records only what it asked for). */
  keepOnly(names: ReadonlySet<string>): void {
    for (const name of [...this.entries.keys()]) if (!names.has(name)) this.entries.delete(name);
  }

  /** Forgets positions ≥ nPos (they are about to be recomputed). */
  truncate(nPos: number): void {
    for (const e of this.entries.values()) {
      e.nPos = Math.min(e.nPos, nPos);
      if (e.entropyPos !== undefined) e.entropyPos = Math.min(e.entropyPos, nPos);
    }
    if (this.summaryPrefix) this.summaryPrefix.valid = Math.min(this.summaryPrefix.valid, nPos);
  }

  clear(): void {
    this.entries.clear();
    this.summaryPrefix = null;
  }

  /**
   * Takes positions 0 .. nPos−1 of `names` from another store (each must cover them), sharing its
   * blocks: both stores then treat them as lent (a write replaces a block first), so neither sees
   * the other's later runs. The rows get a new write generation of this store (generations are
   * a store's own, so their content hashes are computed afresh here).
   */
  adopt(from: CaptureStore, names: Iterable<string>, nPos: number): void {
    const nb = Math.ceil(nPos / BLOCK);
    for (const name of names) {
      const src = from.entries.get(name);
      if (!src || src.nPos < nPos) throw new Error(`capture: ${name} holds ${src?.nPos ?? 0} of ${nPos} positions`);
      for (let b = 0; b < nb; b++) src.lent[b] = true;
      const e: Stored = {
        attention: src.attention, rowSize: src.rowSize, nPos, blocks: src.blocks.slice(0, nb), lent: new Array<boolean>(nb).fill(true),
        ...(src.attention ? {} : { gen: new Uint32Array(nPos).fill(++this.writes) }),
      };
      const kept = Math.min(src.entropyPos ?? 0, nPos);
      if (src.entropy && kept > 0) { e.entropy = src.entropy.slice(0, kept * src.rowSize); e.entropyPos = kept; }
      this.entries.set(name, e);
    }
  }

  private entry(name: string, attention: boolean, rowSize: number, start: number): Stored {
    let e = this.entries.get(name);
    if (!e || e.rowSize !== rowSize || e.attention !== attention) {
      e = { attention, rowSize, nPos: 0, blocks: [], lent: [] };
      this.entries.set(name, e);
    }
    if (start > e.nPos) throw new Error(`capture: ${name} jumps from position ${e.nPos} to ${start}`);
    return e;
  }

  /** Block b of e, ready to take position p and the ones after it in the block: a new block when
   *  it has none, or when a trace holds it (with the rows of the positions before p copied). */
  private writable(e: Stored, b: number, p: number): Float32Array {
    const old = e.blocks[b];
    if (old && !e.lent[b]) return old;
    const block = new Float32Array(blockFloats(e.attention, e.rowSize, b));
    if (old) block.set(old.subarray(0, offsetIn(e.attention, e.rowSize, p)));
    e.blocks[b] = block;
    e.lent[b] = false;
    return block;
  }

  rows(name: string, start: number, data: Float32Array, n: number, rowSize: number): void {
    const e = this.entry(name, false, rowSize, start);
    for (let p = start; p < start + n;) {
      const b = Math.floor(p / BLOCK), m = Math.min(start + n, (b + 1) * BLOCK) - p;   // positions p .. p+m−1 are in block b
      this.writable(e, b, p).set(data.subarray((p - start) * rowSize, (p - start + m) * rowSize), (p - b * BLOCK) * rowSize);
      p += m;
    }
    e.gen = growU32(e.gen, start + n);
    e.gen.fill(++this.writes, start, start + n);
    e.nPos = start + n;
  }

  attention(name: string, start: number, data: Float32Array, nHeads: number, n: number): void {
    const e = this.entry(name, true, nHeads, start);
    if (e.entropyPos !== undefined) e.entropyPos = Math.min(e.entropyPos, start);
    const kLen = start + n;
    for (let t = 0; t < n; t++) {
      const p = start + t;
      const block = this.writable(e, Math.floor(p / BLOCK), p), base = offsetIn(true, nHeads, p);
      for (let h = 0; h < nHeads; h++) {
        const from = (h * n + t) * kLen;
        block.set(data.subarray(from, from + p + 1), base + h * (p + 1));
      }
    }
    e.nPos = kLen;
  }

  /**
   * Fills the `<hook>:norm` entries among `names` up to position `upto` from the hooks' stored rows
   * where they cover it (a run that now asks for norms where the last one recorded rows: on a
   * longer prompt, the app's activations cell), so the prefix is not run again for them.
   */
  backfillNorms(names: readonly string[], upto: number): void {
    for (const name of names) {
      if (!name.endsWith(NORM_SUFFIX)) continue;
      const from = this.coverage(name), rows = this.entries.get(name.slice(0, -NORM_SUFFIX.length));
      if (from >= upto || !rows || rows.attention || rows.nPos < upto) continue;
      const out = new Float32Array(upto - from), size = rows.rowSize;
      for (let p = from; p < upto; p++) {
        const o = (p % BLOCK) * size;
        out[p - from] = rowNorm(rows.blocks[Math.floor(p / BLOCK)]!, o, o + size);
      }
      this.rows(name, from, out, upto - from, 1);
    }
  }

  /** Copies the stored rows of positions start .. start+n−1 of rows hook `name` into `out` ([n, rowSize]). */
  readRows(name: string, start: number, n: number, out: Float32Array): void {
    const e = this.entries.get(name);
    if (!e || e.attention || start + n > e.nPos) throw new Error(`capture: ${name} holds no rows ${start}..${start + n - 1}`);
    const size = e.rowSize;
    for (let p = start; p < start + n; p++) {
      const o = (p % BLOCK) * size;
      out.set(e.blocks[Math.floor(p / BLOCK)]!.subarray(o, o + size), (p - start) * size);
    }
  }

  /** The stored causal rows of attention hook `name` for query position p: head h's p + 1 weights
   *  are data[at + h·(p + 1) ..] (data is the store's: read it before the next run writes). */
  causalRows(name: string, p: number): { data: Float32Array; at: number } {
    const e = this.entries.get(name);
    if (!e || !e.attention || p >= e.nPos) throw new Error(`capture: ${name} holds no row for position ${p}`);
    return { data: e.blocks[Math.floor(p / BLOCK)]!, at: offsetIn(true, e.rowSize, p) };
  }

  /** The entropies of the stored rows of attention hook `name` at query position p, one per head
   *  (a view; rows of positions before the last run's edit point are not computed again). */
  rowEntropies(name: string, p: number): Float64Array {
    const e = this.entries.get(name);
    if (!e || !e.attention || p >= e.nPos) throw new Error(`capture: ${name} holds no row for position ${p}`);
    const nHeads = e.rowSize;
    if (!e.entropy || e.entropy.length < (p + 1) * nHeads) {
      const next = new Float64Array(Math.max((p + 1) * nHeads, (e.entropy?.length ?? 0) * 2));
      if (e.entropy) next.set(e.entropy);
      e.entropy = next;
    }
    e.entropyPos ??= 0;
    for (let q = e.entropyPos; q <= p; q++) {
      const data = e.blocks[Math.floor(q / BLOCK)]!, at = offsetIn(true, nHeads, q);
      const bits = new Int32Array(data.buffer, data.byteOffset, data.length);
      for (let h = 0; h < nHeads; h++) e.entropy[q * nHeads + h] = rowEntropyF32(data, bits, at + h * (q + 1), q + 1);
    }
    e.entropyPos = Math.max(e.entropyPos, p + 1);
    return e.entropy.subarray(p * nHeads, (p + 1) * nHeads);
  }

  /**
   * The trace of positions 0 .. nPos−1 for `names`. It holds the store's blocks, which later runs
   * do not write (see the top of this file), so it does not change; `data` is gathered on first
   * read, and `row(p)` (rows) reads one position without gathering.
   */
  trace(c: ModelConfig, names: readonly string[], nPos: number): Trace {
    const out: Trace = new Map();
    for (const name of names) {
      const e = this.entries.get(name);
      if (!e || e.nPos < nPos) throw new Error(`capture: ${name} holds ${e?.nPos ?? 0} of ${nPos} positions`);
      const shape = hookShape(c, name, nPos);
      const nb = Math.ceil(nPos / BLOCK), size = e.rowSize;
      let blocks: Float32Array[] | null = e.blocks.slice(0, nb);
      for (let b = 0; b < nb; b++) e.lent[b] = true;
      if (!e.attention) {
        if (numElements(shape) !== nPos * size) throw new Error(`capture: ${name} rows of ${size} do not fit [${shape}]`);
        let data: Float32Array | null = null;
        const row = (p: number): Float32Array => {
          if (!(Number.isInteger(p) && p >= 0 && p < nPos)) throw new RangeError(`row: position ${p} is not in 0..${nPos - 1}`);
          if (data) return data.subarray(p * size, (p + 1) * size);
          const o = (p % BLOCK) * size;
          return blocks![Math.floor(p / BLOCK)]!.subarray(o, o + size);
        };
        const entry = {
          shape,
          get data(): Float32Array {
            if (!data) { data = gather(blocks!, size, nPos); blocks = null; }
            return data;
          },
        };
        // not enumerable: the entry compares, copies and clones as its shape and data
        Object.defineProperty(entry, 'row', { value: row });
        out.set(name, Object.defineProperty(entry, 'rowHash', { value: rowHasher(e, row, nPos) }));
        continue;
      }
      // [n_heads, q_pos, k_pos], made on first read: a run that records every layer's pattern
      // (the notebook's attention cell) usually has one layer read, and the squares are twice the
      // triangles (for TinyLlama at 144 tokens, 58 MB a keystroke)
      let square: Float32Array | null = null;
      const isScores = name.endsWith('hook_scores');
      out.set(name, {
        shape,
        get data(): Float32Array {
          if (!square) { square = squareFromBlocks(blocks!, size, nPos, isScores); blocks = null; }
          return square;
        },
      });
    }
    return out;
  }
}

/**
 * A trace's rowHash for its rows (`row`) of stored entry e's first nPos positions: the hash the
 * store keeps for the row's generation when it has one, else hashed from the trace's row and given
 * to the store while its row is still of that generation (a later run may have rewritten it).
 */
function rowHasher(e: Stored, row: (p: number) => Float32Array, nPos: number): (p: number) => RowHash {
  const gens = (e.gen ?? new Uint32Array(0)).slice(0, nPos), size = e.rowSize;
  return (p) => {
    if (!(p >= 0 && p < nPos)) throw new RangeError(`rowHash: position ${p} is not in 0..${nPos - 1}`);
    const g = gens[p]!;
    if (e.hashGen && e.hashGen[p] === g) return { a: e.hashA![p]!, b: e.hashB![p]! };
    rowHashStats.hashed++;
    const r = row(p);
    const h = rowHash(new Uint32Array(r.buffer, r.byteOffset, size));
    if (e.gen?.[p] === g) {
      e.hashGen = growU32(e.hashGen, p + 1); e.hashA = growU32(e.hashA, p + 1); e.hashB = growU32(e.hashB, p + 1);
      e.hashGen[p] = g; e.hashA[p] = h.a; e.hashB[p] = h.b;
    }
    return h;
  };
}

/** Causal rows (blocks of position-major triangles of nHeads rows) as [nHeads, nPos, nPos], the
 *  mask above the diagonal 0 (patterns) or −∞ (scores). */
function squareFromBlocks(blocks: readonly Float32Array[], nHeads: number, nPos: number, isScores: boolean): Float32Array {
  const data = new Float32Array(nHeads * nPos * nPos);
  for (let p = 0; p < nPos; p++) {
    const rows = blocks[Math.floor(p / BLOCK)]!, base = offsetIn(true, nHeads, p);
    for (let h = 0; h < nHeads; h++) {
      const o = (h * nPos + p) * nPos;
      data.set(rows.subarray(base + h * (p + 1), base + (h + 1) * (p + 1)), o);
      if (isScores) data.fill(-Infinity, o + p + 1, o + nPos);
    }
  }
  return data;
}
