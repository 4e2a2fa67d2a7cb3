// AssemblyScript: what the logit lens keeps of each row of logits (the twin:
// kernels/argmax/argmax.cpu.ts lensRows, whose ORDER this follows): the k best ids and values
// (value descending, the lower id first on ties, NaN never chosen; padding NONE and NaN), the sum
// of e^(v − max) over the row (−inf and NaN add nothing), and the target's rank and value.
//
// A vocabulary row is 32,000 to 128,256 values and the lens reduces one per layer and position, so
// this is a third of a CPU lens when done one value at a time in JavaScript (Math.exp alone is
// about 7 ns). Here: the top k with one comparison per four values (a lane beats the k-th best
// only rarely, and only then are its four values inserted one by one, in index order, as the twin
// does); the sum with exp4 (f32 lanes, within a few f32 ulps of e^x) added up in f64 lanes, so the
// sum is within about 1e-6 of the twin's f64 one (the GPU's stage, in f32, is held to 1e-5); the
// rank by counting lanes. Ids, values, ranks and target values are the twin's exactly.

import { exp4, exp64, widen } from './common.as';

const NONE: u32 = 0xffffffff;

/**
 * Rows r0..r1 of x [rows, cols]: per row r, ids [r·k ..] and vals [r·k ..] (k each), sums [r],
 * ranks [r] and tvals [r] (the target's; 0 without one: target < 0).
 */
export function lensRows(x: usize, cols: i32, k: i32, target: i32, ids: usize, vals: usize, sums: usize, ranks: usize, tvals: usize, r0: i32, r1: i32): void {
  for (let r = r0; r < r1; r++) {
    const row = x + (<usize>r * <usize>cols << 2);
    const ri = ids + (<usize>r * <usize>k << 2), rv = vals + (<usize>r * <usize>k << 2);
    const size = topRow(row, cols, k, ri, rv);
    for (let j = size; j < k; j++) {
      store<u32>(ri + (<usize>j << 2), NONE);
      store<f32>(rv + (<usize>j << 2), <f32>NaN);
    }
    store<f32>(sums + (<usize>r << 2), <f32>sumExp(row, cols, size > 0 ? load<f32>(rv) : <f32>NaN));
    if (target >= 0) {
      store<u32>(ranks + (<usize>r << 2), rankOf(row, cols, target));
      store<f32>(tvals + (<usize>r << 2), load<f32>(row + (<usize>target << 2)));
    } else {
      store<u32>(ranks + (<usize>r << 2), 0);
      store<f32>(tvals + (<usize>r << 2), 0);
    }
  }
}

/** Puts x[i] among the `size` best so far (ids, vals at ri, rv; at most k); returns the new size. */
@inline function consider(row: usize, i: i32, k: i32, size: i32, ri: usize, rv: usize): i32 {
  const v = load<f32>(row + (<usize>i << 2));
  if (v != v) return size;                                          // NaN is never chosen
  if (size == k && !(v > load<f32>(rv + (<usize>(k - 1) << 2)))) return size;
  // an equal value goes after the ones already kept (they have lower ids): strictly greater moves up
  let at = size < k ? size++ : k - 1;
  while (at > 0 && v > load<f32>(rv + (<usize>(at - 1) << 2))) {
    store<f32>(rv + (<usize>at << 2), load<f32>(rv + (<usize>(at - 1) << 2)));
    store<u32>(ri + (<usize>at << 2), load<u32>(ri + (<usize>(at - 1) << 2)));
    at--;
  }
  store<f32>(rv + (<usize>at << 2), v);
  store<u32>(ri + (<usize>at << 2), <u32>i);
  return size;
}

/** The k best of a row (see the top of the file) into ri, rv; returns how many there are (≤ k). */
@inline function topRow(row: usize, cols: i32, k: i32, ri: usize, rv: usize): i32 {
  let size = 0, i = 0;
  for (; i < cols && (size < k || (i & 3) != 0); i++) size = consider(row, i, k, size, ri, rv);
  // full, and i a multiple of 4: four values at a time against the k-th best
  let worst = f32x4.splat(load<f32>(rv + (<usize>(k - 1) << 2)));
  for (; i + 4 <= cols; i += 4) {
    if (!v128.any_true(f32x4.gt(v128.load(row + (<usize>i << 2)), worst))) continue;
    for (let j = 0; j < 4; j++) size = consider(row, i + j, k, size, ri, rv);
    worst = f32x4.splat(load<f32>(rv + (<usize>(k - 1) << 2)));
  }
  for (; i < cols; i++) size = consider(row, i, k, size, ri, rv);
  return size;
}

/** Σ e^(v − max) over the row's values above −inf (NaN fails the test); 0 when max is not above −inf. */
@inline function sumExp(row: usize, cols: i32, max: f32): f64 {
  if (!(max > <f32>-Infinity)) return 0;
  let sum: f64 = 0;
  if (max == <f32>Infinity) {
    // e^(inf − inf) is NaN, as in the twin: one value at a time
    for (let i = 0; i < cols; i++) {
      const v = load<f32>(row + (<usize>i << 2));
      if (v > <f32>-Infinity) sum += exp64(<f64>v - <f64>max);
    }
    return sum;
  }
  const M = f32x4.splat(max), NEG = f32x4.splat(<f32>-Infinity);
  let a = f64x2.splat(0), b = f64x2.splat(0);
  let i = 0;
  for (; i + 4 <= cols; i += 4) {
    const v = v128.load(row + (<usize>i << 2));
    const e = v128.and(exp4(f32x4.sub(v, M)), f32x4.gt(v, NEG));   // −inf and NaN lanes give 0
    a = f64x2.add(a, widen(e, false));
    b = f64x2.add(b, widen(e, true));
  }
  const s = f64x2.add(a, b);
  sum = f64x2.extract_lane(s, 0) + f64x2.extract_lane(s, 1);
  for (; i < cols; i++) {
    const v = load<f32>(row + (<usize>i << 2));
    if (v > <f32>-Infinity) sum += <f64>f32x4.extract_lane(exp4(f32x4.splat(v - max)), 0);
  }
  return sum;
}

/** Entries ordered before the target: larger, or equal at a lower index (NaN never counts). */
@inline function rankOf(row: usize, cols: i32, target: i32): u32 {
  const tv = load<f32>(row + (<usize>target << 2));
  const T = f32x4.splat(tv);
  let n = i32x4.splat(0);
  let i = 0, count: u32 = 0;
  for (; i + 4 <= target; i += 4) n = i32x4.sub(n, f32x4.ge(v128.load(row + (<usize>i << 2)), T));
  for (; i < target; i++) if (load<f32>(row + (<usize>i << 2)) >= tv) count++;
  for (i = target + 1; i < cols && (i & 3) != 0; i++) if (load<f32>(row + (<usize>i << 2)) > tv) count++;
  for (; i + 4 <= cols; i += 4) n = i32x4.sub(n, f32x4.gt(v128.load(row + (<usize>i << 2)), T));
  for (; i < cols; i++) if (load<f32>(row + (<usize>i << 2)) > tv) count++;
  return count + <u32>(i32x4.extract_lane(n, 0) + i32x4.extract_lane(n, 1) + i32x4.extract_lane(n, 2) + i32x4.extract_lane(n, 3));
}
