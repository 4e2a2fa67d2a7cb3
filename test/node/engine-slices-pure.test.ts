// The pure parts of the overview slices: the PCA (src/engine/pca.ts) against a straightforward
// covariance + Jacobi eigendecomposition written here, its tridiagonal eigensolver, and the
// attention summary's bins and statistics (src/engine/attention-summary.ts) against a direct
// computation over whole patterns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pca, tridiagonalEigen } from '../../src/engine/pca.ts';
import { AttentionSummarizer, binOf, binStart, summaryBins, rowEntropy, lnF32 } from '../../src/engine/attention-summary.ts';
import { Rng } from '../../src/engine/random.ts';
import { UsageError } from '../../src/engine/errors.ts';

/** Cyclic Jacobi on a dense symmetric matrix [n, n]: eigenvalues (descending) and unit eigenvectors (rows). */
function jacobi(A0: Float64Array, n: number): { values: number[]; vectors: number[][] } {
  const A = Float64Array.from(A0), V = new Float64Array(n * n);
  for (let i = 0; i < n; i++) V[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) off += A[i * n + j]! ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = A[p * n + q]!;
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (A[q * n + q]! - A[p * n + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < n; k++) {                       // A ← Jᵀ A J
          const akp = A[k * n + p]!, akq = A[k * n + q]!;
          A[k * n + p] = c * akp - s * akq; A[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = A[p * n + k]!, aqk = A[q * n + k]!;
          A[p * n + k] = c * apk - s * aqk; A[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = V[k * n + p]!, vkq = V[k * n + q]!;
          V[k * n + p] = c * vkp - s * vkq; V[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = [...Array(n).keys()].sort((a, b) => A[b * n + b]! - A[a * n + a]!);
  return { values: order.map((i) => A[i * n + i]!), vectors: order.map((i) => Array.from({ length: n }, (_, k) => V[k * n + i]!)) };
}

/** Rows with a planted spectrum: a mean offset, then gaussian coordinates scaled by `scales` along a random rotation. */
function planted(rng: Rng, rows: number, dim: number, scales: number[]): Float32Array {
  const Q = Array.from({ length: scales.length }, () => Array.from({ length: dim }, () => rng.gaussian()));
  const X = new Float32Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < dim; j++) X[r * dim + j] = 3 + j * 0.5 + 0.01 * rng.gaussian();
    scales.forEach((s, b) => { const a = s * rng.gaussian(); for (let j = 0; j < dim; j++) X[r * dim + j] += a * Q[b]![j]!; });
  }
  return X;
}

/** The reference PCA: covariance of all rows (population), Jacobi, our sign rule. */
function naivePca(blocks: Float32Array[], dim: number) {
  const rows: number[][] = [];
  for (const X of blocks) for (let o = 0; o < X.length; o += dim) rows.push(Array.from(X.subarray(o, o + dim)));
  const N = rows.length;
  const mean = Array.from({ length: dim }, (_, j) => rows.reduce((s, r) => s + r[j]!, 0) / N);
  const C = new Float64Array(dim * dim);
  for (const r of rows) for (let i = 0; i < dim; i++) for (let j = 0; j < dim; j++) C[i * dim + j] += ((r[i]! - mean[i]!) * (r[j]! - mean[j]!)) / N;
  const { values, vectors } = jacobi(C, dim);
  const total = values.reduce((s, v) => s + v, 0);
  for (const v of vectors) {
    const arg = v.reduce((a, x, i) => (Math.abs(x) > Math.abs(v[a]!) ? i : a), 0);
    if (v[arg]! < 0) v.forEach((x, i) => { v[i] = -x; });
  }
  const project = (r: number[], v: number[]) => r.reduce((s, x, j) => s + (x - mean[j]!) * v[j]!, 0);
  return { values, vectors, total, rows, project };
}

function checkAgainstNaive(blocks: Float32Array[], dim: number, k: number, tol: number) {
  const got = pca(blocks, dim, k);
  const ref = naivePca(blocks, dim);
  assert.ok(got.converged, `converged after ${got.steps} steps`);
  for (let i = 0; i < k; i++) {
    const axis = Array.from(got.axes.subarray(i * dim, (i + 1) * dim));
    const cos = axis.reduce((s, x, j) => s + x * ref.vectors[i]![j]!, 0);
    assert.ok(Math.abs(cos - 1) < tol, `axis ${i}: cos ${cos} with the Jacobi eigenvector (same sign rule)`);
    assert.ok(Math.abs(got.variance[i]! - ref.values[i]!) <= tol * ref.values[0]!, `variance ${i}: ${got.variance[i]} vs ${ref.values[i]}`);
    assert.ok(Math.abs(got.explained[i]! - ref.values[i]! / ref.total) < tol, `explained ${i}`);
    ref.rows.forEach((r, n) => {
      const want = ref.project(r, ref.vectors[i]!);
      assert.ok(Math.abs(got.points[n * k + i]! - want) < tol * 10 * Math.sqrt(ref.values[0]!) + 1e-5, `point ${n} on axis ${i}: ${got.points[n * k + i]} vs ${want}`);
    });
  }
  assert.ok(Math.abs(got.totalVariance - ref.total) < 1e-9 * ref.total);
  return got;
}

test('pca equals the eigenvectors of the covariance (Jacobi), explained ratios and projections; rows > dim and rows < dim', () => {
  const rng = new Rng(11);
  // three blocks of different lengths (one odd), rows > dim
  checkAgainstNaive([planted(rng, 7, 12, [5, 3, 2, 1, 0.5]), planted(rng, 10, 12, [5, 3, 2, 1, 0.5]), planted(rng, 3, 12, [4, 2.5, 1])], 12, 3, 1e-7);
  // the Gram case: 9 rows of dimension 40 (rank 8)
  checkAgainstNaive([planted(rng, 4, 40, [6, 3, 2, 1.5, 1]), planted(rng, 5, 40, [6, 3, 2, 1.5, 1])], 40, 4, 1e-7);
  // a flat spectrum (small gaps) on a small dimension: Lanczos runs to the full dimension
  checkAgainstNaive([Float32Array.from({ length: 60 * 9 }, () => rng.gaussian())], 9, 2, 1e-7);
});

test('pca is deterministic, fixes signs, and handles equal rows, one row and bad input', () => {
  const rng = new Rng(4);
  const X = planted(rng, 30, 16, [4, 2, 1]);
  const a = pca([X], 16, 2), b = pca([X.slice()], 16, 2);
  assert.deepEqual(a.points, b.points);
  assert.deepEqual(a.axes, b.axes);
  for (let i = 0; i < 2; i++) {
    const axis = Array.from(a.axes.subarray(i * 16, (i + 1) * 16));
    const arg = axis.reduce((m, x, j) => (Math.abs(x) > Math.abs(axis[m]!) ? j : m), 0);
    assert.ok(axis[arg]! > 0, 'largest |loading| is positive');
  }
  // every row the same: no variance, zero points, no NaN
  const same = new Float32Array(5 * 6).map((_, i) => (i % 6) + 1);
  const z = pca([same], 6, 3);
  assert.deepEqual([...z.explained], [0, 0, 0]);
  assert.ok(z.points.every((v) => v === 0));
  assert.ok(z.axes.every((v) => Number.isFinite(v)));
  // one row
  const one = pca([Float32Array.of(1, 2, 3)], 3, 2);
  assert.deepEqual([...one.points], [0, 0]);
  // bad input
  assert.throws(() => pca([X], 16, 0), UsageError);
  assert.throws(() => pca([X], 16, 17), UsageError);
  assert.throws(() => pca([X.subarray(0, 10)], 16, 2), UsageError);
  assert.throws(() => pca([], 16, 2), UsageError);
});

test('the tridiagonal eigensolver agrees with Jacobi', () => {
  const rng = new Rng(8);
  for (const n of [1, 2, 5, 17]) {
    const diag = Array.from({ length: n }, () => rng.gaussian() * 3);
    const off = Array.from({ length: n - 1 }, (_, i) => (i === 2 ? 0 : rng.gaussian()));   // one split
    const T = new Float64Array(n * n);
    for (let i = 0; i < n; i++) { T[i * n + i] = diag[i]!; if (i + 1 < n) T[i * n + i + 1] = T[(i + 1) * n + i] = off[i]!; }
    const { values, vectors } = tridiagonalEigen(diag, off);
    const ref = jacobi(T, n);
    const order = [...values.keys()].sort((a, b) => values[b]! - values[a]!);
    order.forEach((c, r) => {
      assert.ok(Math.abs(values[c]! - ref.values[r]!) < 1e-10, `n ${n} value ${r}`);
      // T v = λ v
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let j = 0; j < n; j++) s += T[i * n + j]! * vectors[j * n + c]!;
        assert.ok(Math.abs(s - values[c]! * vectors[i * n + c]!) < 1e-10);
      }
    });
  }
});

test('summary bins: contiguous, sizes differing by at most one, clamped sizes', () => {
  for (let nPos = 1; nPos <= 70; nPos++) {
    for (let B = 1; B <= Math.min(nPos, 64); B++) {
      const sizes = Array.from({ length: B }, (_, b) => binStart(b + 1, nPos, B) - binStart(b, nPos, B));
      assert.equal(binStart(0, nPos, B), 0);
      assert.equal(binStart(B, nPos, B), nPos);
      assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1 && Math.min(...sizes) >= 1, `nPos ${nPos} B ${B}: ${sizes}`);
      for (let p = 0; p < nPos; p++) {
        const b = binOf(p, nPos, B);
        assert.ok(binStart(b, nPos, B) <= p && p < binStart(b + 1, nPos, B), `p ${p} in bin ${b}`);
      }
    }
  }
  assert.equal(summaryBins(undefined, 1000), 24);
  assert.equal(summaryBins(2, 1000), 4);
  assert.equal(summaryBins(500, 1000), 64);
  assert.equal(summaryBins(24, 7), 7);
  assert.equal(summaryBins(undefined, 1), 1);
  assert.throws(() => summaryBins('8' as unknown as number, 10), UsageError);
  assert.throws(() => summaryBins(NaN, 10), UsageError);
});

/**
 * Rows [L·H·(q + 1)] per position q, packed per layer and head, whose sums depend on the order of
 * the additions: in each key bin (as far as the row reaches), keys 0, 4, 8, … from its start weigh
 * 2^60 and keys 2, 6, … −2^60 (an unpaired one 0), the odd ones ordinary numbers. The big ones
 * cancel, and which small ones they swallow on the way depends on the order, so a path that added
 * in another order would show in the f32 means.
 */
function orderSensitiveRows(rng: Rng, L: number, H: number, n: number, B: number): Float32Array[] {
  return Array.from({ length: n }, (_, q) => {
    const d = new Float32Array(L * H * (q + 1));
    for (let r = 0; r < L * H; r++) {
      for (let kb = 0; kb < B && binStart(kb, n, B) <= q; kb++) {
        const from = binStart(kb, n, B), len = Math.min(binStart(kb + 1, n, B), q + 1) - from;
        for (let j = 0; j < len; j++) {
          const big = j % 4 === 0 ? (j + 2 < len ? 2 ** 60 : 0) : -(2 ** 60);
          d[r * (q + 1) + from + j] = j % 2 ? rng.gaussian() : big;
        }
      }
    }
    return d;
  });
}

/** Feeds layer l's rows from..n−1 to `acc` in chunks of 1..9 positions, as the forward pass does. */
function feedChunks(acc: AttentionSummarizer, rows: Float32Array[], l: number, H: number, n: number, from = 0): void {
  for (let start = from, m = 1; start < n; start += m, m = m % 9 + 1) {
    m = Math.min(m, n - start);
    const kLen = start + m, data = new Float32Array(H * m * kLen);
    for (let h = 0; h < H; h++) for (let t = 0; t < m; t++) {
      const q = start + t, L = rows[q]!.length / (H * (q + 1));
      if (l >= L) throw new Error('layer out of range');
      data.set(rows[q]!.subarray(l * H * (q + 1) + h * (q + 1), l * H * (q + 1) + (h + 1) * (q + 1)), (h * m + t) * kLen);
    }
    acc.chunk(l, start, data, m);
  }
}

test('the summarizer gives the same bits whether rows come one by one, packed per position, or in chunks', () => {
  const rng = new Rng(22);
  const L = 2, H = 3, n = 70, B = 4;
  const ids = Array.from({ length: n }, (_, i) => (i * 7) % 23);
  const rows = orderSensitiveRows(rng, L, H, n, B);
  const ent = Float64Array.from({ length: L * H * n }, () => rng.next());
  const one = new AttentionSummarizer(L, H, n, B, ids), packed = new AttentionSummarizer(L, H, n, B, ids), chunked = new AttentionSummarizer(L, H, n, B, ids);
  for (let l = 0; l < L; l++) {
    for (let q = 0; q < n; q++) {
      const at = l * H * (q + 1), e = ent.subarray((l * n + q) * H, (l * n + q + 1) * H);
      packed.rows(l, q, rows[q]!, at, e);
      for (let h = 0; h < H; h++) one.row(l, h, q, rows[q]!.subarray(at + h * (q + 1), at + (h + 1) * (q + 1)), e[h]);
    }
    feedChunks(chunked, rows, l, H, n);    // data [H, m, start + m], each row padded to the chunk's key length
  }
  const a = one.result(), b = packed.result(), c = chunked.result();
  for (const key of ['thumbs', 'first', 'prev', 'induction'] as const) {
    for (let i = 0; i < a[key].length; i++) {
      assert.ok(Object.is(b[key][i], a[key][i]), `${key}[${i}]: rows() ${b[key][i]} vs row() ${a[key][i]}`);
      assert.ok(Object.is(c[key][i], a[key][i]), `${key}[${i}]: chunk() ${c[key][i]} vs row() ${a[key][i]}`);
    }
  }
  assert.deepEqual(b.entropy, a.entropy);
});

test('a summary resumed from an earlier one, of the same length or another, has the bits of one that received every row', () => {
  const rng = new Rng(23);
  const L = 2, H = 3, n = 70, B = 6;
  const ids = Array.from({ length: n + 3 }, (_, i) => (i * 7) % 23);
  const rows = orderSensitiveRows(rng, L, H, n + 3, B);
  const whole = (r: Float32Array[], t: number[] | undefined, m = n) => {
    const acc = new AttentionSummarizer(L, H, m, B, t);
    for (let l = 0; l < L; l++) feedChunks(acc, r, l, H, m);
    return acc;
  };
  const first = whole(rows, ids.slice(0, n));
  first.result();
  const prefix = first.prefix();
  assert.ok(prefix.sums, 'rows in order leave their sums');
  // A later run of m positions whose rows from position e on changed (its token at e too): resumed
  // from the bin holding e, or from the last bin before the first whose start moved with the length.
  // 70 positions in 6 bins start at 0 12 24 35 47 59; 71 at 0 12 24 36 48 60; 69 at 0 12 23 35 46 58;
  // 73 at 0 13 25 37 49 61.
  const fromAt60: Record<number, number> = { 70: 59, 71: 24, 69: 12, 73: 0 };
  for (const m of [70, 71, 69, 73]) {
    for (const e of [0, 1, 11, 12, 35, 60]) {
      const changed = rows.map((r, q) => (q < e ? r : r.map((x, i) => (i % 3 === 1 ? x * 0.5 : x))));
      const ids2 = ids.slice(0, m).map((t, q) => (q === e ? t + 1 : t));
      const want = whole(changed, ids2, m).result();
      const acc = new AttentionSummarizer(L, H, m, B, ids2);
      const from = acc.resume(prefix, e);
      if (m === n) assert.equal(from, e === 0 ? 0 : binStart(binOf(e, n, B), n, B), `e ${e}: resumed from its bin's start`);
      if (e === 60) assert.equal(from, fromAt60[m], `${m} positions, e 60: resumed from ${fromAt60[m]}`);
      assert.ok(from <= e);
      for (let l = 0; l < L; l++) feedChunks(acc, changed, l, H, m, from);
      const got = acc.result();
      for (const key of ['thumbs', 'entropy', 'first', 'prev', 'induction'] as const) {
        for (let i = 0; i < want[key].length; i++) assert.ok(Object.is(got[key][i], want[key][i]), `${m} positions, e ${e}: ${key}[${i}] ${got[key][i]} vs ${want[key][i]}`);
      }
      // and the resumed summary leaves a prefix of its own, equal to the whole one's
      const again = whole(changed, ids2, m);
      again.result();
      assert.deepEqual(acc.prefix(), again.prefix(), `${m} positions, e ${e}: the resumed summary's prefix`);
    }
  }
  // nothing is taken from a summary of other bins or statistics, or after rows arrived
  assert.equal(new AttentionSummarizer(L, H, n, B + 1, ids.slice(0, n)).resume(prefix, 40), 0);
  assert.equal(new AttentionSummarizer(L, H, n, B).resume(prefix, 40), 0, 'no tokens: no induction statistic');
  const started = new AttentionSummarizer(L, H, n, B, ids.slice(0, n));
  feedChunks(started, rows, 0, H, n);
  assert.equal(started.resume(prefix, 40), 0);
  // rows out of order leave no sums to resume from
  const shuffled = new AttentionSummarizer(1, 1, 3, 2);
  for (const q of [0, 2, 1]) shuffled.row(0, 0, q, new Float32Array(q + 1).fill(1 / (q + 1)));
  shuffled.result();
  assert.equal(shuffled.prefix().sums, null);
  assert.equal(new AttentionSummarizer(1, 1, 3, 2).resume(shuffled.prefix(), 2), 0);
});

test('a summary of another length takes the entropies of the rows before the first change from an earlier one', () => {
  const rng = new Rng(24);
  const L = 2, H = 3, n = 40, B = 5;
  const rows = orderSensitiveRows(rng, L, H, n + 3, B).map((r) => r.map((x) => Math.abs(x) % 1));   // weights in [0, 1)
  const summarize = (m: number, before?: { prefix: ReturnType<AttentionSummarizer['prefix']>; upto: number }) => {
    const acc = new AttentionSummarizer(L, H, m, B);
    if (before) acc.reuseEntropies(before.prefix, before.upto);
    for (let l = 0; l < L; l++) feedChunks(acc, rows, l, H, m);
    return acc;
  };
  const first = summarize(n);
  first.result();
  // three positions more, the rows before 30 unchanged: the same bits as computing every entropy
  const longer = summarize(n + 3, { prefix: first.prefix(), upto: 30 }).result();
  assert.deepEqual(longer.entropy, summarize(n + 3).result().entropy);
  // and they are taken, not computed: an earlier summary whose entropies read 1 shows in the mean
  const ones = { ...first.prefix(), entropies: new Float64Array(L * H * n).fill(1) };
  const taken = summarize(n + 3, { prefix: ones, upto: 30 }).result();
  const computed = summarize(n + 3).result();
  const own = summarize(n + 3);
  own.result();
  for (let lh = 0; lh < L * H; lh++) {
    let later = 0;
    for (let q = 30; q < n + 3; q++) later += own.prefix().entropies[lh * (n + 3) + q]!;
    assert.ok(Math.abs(taken.entropy[lh]! - (30 + later) / (n + 3)) < 1e-6, `head ${lh}: ${taken.entropy[lh]} vs ${(30 + later) / (n + 3)}`);
    assert.notEqual(taken.entropy[lh], computed.entropy[lh]);
  }
});

test('the summarizer equals a direct computation over whole patterns, rows in any order', () => {
  const rng = new Rng(21);
  const L = 2, H = 3, n = 13, B = 5;
  // [L, H, n, n] causal softmax rows, some with exact zeros
  const pat = new Float32Array(L * H * n * n);
  for (let i = 0; i < L * H * n; i++) {
    const q = i % n, row = pat.subarray(i * n, i * n + n);
    let s = 0;
    for (let k = 0; k <= q; k++) { row[k] = k % 4 === 3 ? 0 : Math.exp(2 * rng.gaussian()); s += row[k]!; }
    for (let k = 0; k <= q; k++) row[k] = row[k]! / s;
  }
  const sum = new AttentionSummarizer(L, H, n, B);
  const order = [...Array(L * H * n).keys()].sort(() => rng.next() - 0.5);
  for (const i of order) {
    const l = Math.floor(i / (H * n)), h = Math.floor(i / n) % H, q = i % n;
    sum.row(l, h, q, pat.subarray(i * n, i * n + q + 1));
  }
  const got = sum.result();
  assert.equal(got.size, B);
  for (let l = 0; l < L; l++) {
    for (let h = 0; h < H; h++) {
      const base = (l * H + h) * n * n;
      for (let qb = 0; qb < B; qb++) {
        for (let kb = 0; kb < B; kb++) {
          let s = 0, c = 0;
          for (let q = 0; q < n; q++) for (let k = 0; k <= q; k++) {
            if (Math.floor((q * B) / n) === qb && Math.floor((k * B) / n) === kb) { s += pat[base + q * n + k]!; c++; }
          }
          const v = got.thumbs[((l * H + h) * B + qb) * B + kb]!;
          if (c === 0) assert.ok(Number.isNaN(v), `empty cell ${qb},${kb}`);
          else assert.ok(Math.abs(v - s / c) < 1e-6, `cell ${l},${h},${qb},${kb}: ${v} vs ${s / c}`);
        }
      }
      let ent = 0, first = 0, prev = 0;
      for (let q = 0; q < n; q++) {
        for (let k = 0; k <= q; k++) { const p = pat[base + q * n + k]!; if (p > 0) ent -= p * Math.log(p); }
        first += pat[base + q * n]!;
        if (q >= 1) prev += pat[base + q * n + q - 1]!;
      }
      assert.ok(Math.abs(got.entropy[l * H + h]! - ent / n) < 1e-6);
      assert.ok(Math.abs(got.first[l * H + h]! - first / n) < 1e-6);
      assert.ok(Math.abs(got.prev[l * H + h]! - prev / (n - 1)) < 1e-6);
    }
  }
  assert.ok(Math.abs(rowEntropy([0.5, 0.5, 0]) - Math.LN2) < 1e-15);
  // the summarizer's fast ln (from the f32 bits) against Math.log: subnormal, tiny, powers of two,
  // every bin of the mantissa table
  const values = Float32Array.from([1e-40, 3e-39, 1e-30, 1, 0.999999, 2 ** -20, 0.5, ...Array.from({ length: 8192 }, (_, i) => 0.5 + i / 16384 + 1e-7)]);
  const bits = new Int32Array(values.buffer);
  values.forEach((p, i) => {
    const want = Math.log(p);
    assert.ok(Math.abs(lnF32(p, bits[i]!) - want) <= 3e-14 * Math.max(1, Math.abs(want)), `ln ${p}: ${lnF32(p, bits[i]!)} vs ${want}`);
  });
  assert.equal(lnF32(1, bits[3]!), 0);
  // a row missing: a bug, said so
  const partial = new AttentionSummarizer(1, 1, 2, 2);
  partial.row(0, 0, 0, Float32Array.of(1));
  assert.throws(() => partial.result(), /received 1 of 2 rows/);
});
