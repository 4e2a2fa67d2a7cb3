// Principal components of many blocks of rows fitted together — e.g. the residual stream of every
// layer at every position — so that trajectories across layers are drawn on shared axes. Pure: no
// engine, no DOM; the worker runs it on the rows a trace holds, without copying them.
//
// Size: 22 hooks × 1,000 positions × d_model 2048 is 45 M floats. The covariance (d² = 4 M
// entries) would cost N·d² = 46 G multiply-adds to form, so it is never formed: the top
// eigenvectors of C = X̃ᵀX̃ (X̃: the rows minus their mean) come from the Lanczos method with full
// reorthogonalisation, which touches the data only through products v ↦ X̃ᵀ(X̃v) — one pass over the
// rows per step, four rows at a time (the fused loop runs ~1.5 G multiply-adds/s in V8) — and
// needs far fewer steps than power iteration with deflation for the same accuracy (Chebyshev rather
// than geometric convergence). Everything is f64. The Krylov basis is kept (steps × d), never d².
// The same operator serves when rows < d (the Gram-matrix case): its rank is then < rows and
// Lanczos stops at the rank.
//
// Deterministic: a fixed-seed start vector, a fixed work budget, and each axis's sign fixed so that
// its largest-magnitude coordinate (the lowest index on ties) is positive.

import { Rng } from './random.ts';
import { UsageError } from './errors.ts';

export interface PcaOptions {
  /** Most Lanczos steps (default: enough for a ~1 s budget at 1.5 G multiply-adds/s, at least
   *  components + 10; never more than the dimension). */
  maxSteps?: number;
  /** Stop when every wanted Ritz pair's residual ‖Cy − θy‖ ≤ tol · θ (default 1e-6; θ at least
   *  1e-6 of the largest, so that null directions of rank-deficient data do not hold it up). */
  tol?: number;
}

export interface PcaResult {
  /** [dim] the mean of all rows. */
  mean: Float64Array;
  /** [components, dim] unit axes, largest variance first. */
  axes: Float64Array;
  /** [components] the variance along each axis (eigenvalues of the covariance, over N rows). */
  variance: Float64Array;
  /** The total variance (mean squared distance of the rows from their mean). */
  totalVariance: number;
  /** [components] variance / totalVariance (0 when the rows are all equal). */
  explained: Float64Array;
  /** [rows, components] each row minus the mean, on each axis; rows in block order. */
  points: Float32Array;
  /** Lanczos steps taken, and whether the residual test passed (false: stopped by the budget). */
  steps: number;
  converged: boolean;
}

/** Multiply-adds the default step budget allows (two per element per step). */
const WORK_BUDGET = 6e8;

/**
 * PCA of the rows of `blocks` (each [rows_i, dim], row-major) taken together, centred by the mean
 * of all rows.
 */
export function pca(blocks: readonly Float32Array[], dim: number, components: number, opts: PcaOptions = {}): PcaResult {
  if (!Number.isInteger(dim) || dim < 1) throw new UsageError('pca', `dimension ${dim} must be a positive integer`);
  if (!Number.isInteger(components) || components < 1 || components > dim) {
    throw new UsageError('pca components', `${components} must be an integer from 1 to ${dim} (the row size)`);
  }
  let N = 0;
  for (const b of blocks) {
    if (b.length % dim !== 0) throw new UsageError('pca', `a block of ${b.length} values is not whole rows of ${dim}`);
    N += b.length / dim;
  }
  if (N === 0) throw new UsageError('pca', 'there are no rows');

  // the mean and the total variance in one pass, shifted by the first row (no cancellation
  // when the rows share a large offset)
  const first = blocks.find((b) => b.length > 0)!;
  const shift = Float64Array.from(first.subarray(0, dim));                  // [dim]
  const acc = new Float64Array(dim);                                        // [dim] Σ (x − shift)
  let sq = 0;
  for (const X of blocks) {
    let o = 0;
    for (; o + 4 * dim <= X.length; o += 4 * dim) {                          // four rows at a time, as centredGram
      let q0 = 0, q1 = 0, q2 = 0, q3 = 0;
      for (let j = 0; j < dim; j++) {
        const sh = shift[j]!;
        const v0 = X[o + j]! - sh, v1 = X[o + dim + j]! - sh, v2 = X[o + 2 * dim + j]! - sh, v3 = X[o + 3 * dim + j]! - sh;
        acc[j] = acc[j]! + v0 + v1 + v2 + v3;
        q0 += v0 * v0; q1 += v1 * v1; q2 += v2 * v2; q3 += v3 * v3;
      }
      sq += q0 + q1 + q2 + q3;
    }
    for (; o < X.length; o += dim) {
      for (let j = 0; j < dim; j++) { const v = X[o + j]! - shift[j]!; acc[j] = acc[j]! + v; sq += v * v; }
    }
  }
  const mean = Float64Array.from(acc, (a, j) => shift[j]! + a / N);         // [dim]
  const totalVariance = Math.max(0, sq / N - dot(acc, acc) / (N * N));

  const k = components;
  // the step budget: a ~1 s pass budget for big inputs, the whole dimension (exact) for small ones
  const maxSteps = Math.min(dim, Math.max(k, Math.floor(opts.maxSteps ?? Math.max(k + 10, WORK_BUDGET / (2 * N * dim)))));
  const tol = opts.tol ?? 1e-6;
  // each step's products x̃_r·q_j, kept ([steps][N]): the projections come from them for free
  const rowDots: Float64Array[] = [];
  const lz = lanczos((v, w) => {
    const dots = new Float64Array(N);
    centredGram(blocks, dim, mean, v, w, dots);
    rowDots.push(dots);
  }, dim, k, maxSteps, tol);

  const axes = new Float64Array(k * dim);                                  // [k, dim]
  const variance = new Float64Array(k);
  const points = new Float32Array(N * k);                                  // [N, k]
  const proj = new Float64Array(N);
  for (let i = 0; i < k; i++) {
    const y = axes.subarray(i * dim, (i + 1) * dim);
    const col = lz.order[i]!;
    proj.fill(0);
    for (let j = 0; j < lz.steps; j++) {
      // axis i = Σ_j S[j, i] q_j, so a row's coordinate is Σ_j S[j, i] (x̃_r·q_j)
      const s = lz.vectors[j * lz.steps + col]!, q = lz.basis[j]!, rd = rowDots[j]!;
      for (let t = 0; t < dim; t++) y[t] = y[t]! + s * q[t]!;
      for (let r = 0; r < N; r++) proj[r] = proj[r]! + s * rd[r]!;
    }
    const norm = Math.sqrt(dot(y, y));
    // the sign: largest |coordinate| positive (the first on ties)
    let arg = 0;
    for (let t = 1; t < dim; t++) if (Math.abs(y[t]!) > Math.abs(y[arg]!)) arg = t;
    const f = (y[arg]! < 0 ? -1 : 1) / (norm > 0 ? norm : 1);
    for (let t = 0; t < dim; t++) y[t] = y[t]! * f;
    for (let r = 0; r < N; r++) points[r * k + i] = proj[r]! * f + 0;              // (+ 0: no −0)
    variance[i] = Math.max(0, lz.values[col]! / N);
  }
  const explained = Float64Array.from(variance, (v) => (totalVariance > 0 ? Math.min(1, v / totalVariance) : 0));
  return { mean, axes, variance, totalVariance, explained, points, steps: lz.steps, converged: lz.converged };
}

/**
 * w = X̃ᵀ(X̃v) with X̃ the rows minus `mean`, without forming X̃: one pass, four rows at a time;
 * dots[r] = x̃_r·v.
 */
function centredGram(blocks: readonly Float32Array[], dim: number, mean: Float64Array, v: Float64Array, w: Float64Array, dots: Float64Array): void {
  const mv = dot(mean, v);
  let sAll = 0;                                                             // Σ_r (x̃_r·v): w −= sAll·mean at the end
  let row = 0;
  w.fill(0);
  for (const X of blocks) {
    const R = X.length / dim;
    let r = 0;
    for (; r + 4 <= R; r += 4) {
      const a = r * dim, b = a + dim, c = b + dim, e = c + dim;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let j = 0; j < dim; j++) {
        const vj = v[j]!;
        s0 += X[a + j]! * vj; s1 += X[b + j]! * vj; s2 += X[c + j]! * vj; s3 += X[e + j]! * vj;
      }
      s0 -= mv; s1 -= mv; s2 -= mv; s3 -= mv;                                // x̃_r·v = x_r·v − mean·v
      sAll += s0 + s1 + s2 + s3;
      dots[row++] = s0; dots[row++] = s1; dots[row++] = s2; dots[row++] = s3;
      for (let j = 0; j < dim; j++) w[j] = w[j]! + s0 * X[a + j]! + s1 * X[b + j]! + s2 * X[c + j]! + s3 * X[e + j]!;
    }
    for (; r < R; r++) {
      const a = r * dim;
      let s = 0;
      for (let j = 0; j < dim; j++) s += X[a + j]! * v[j]!;
      s -= mv;
      sAll += s;
      dots[row++] = s;
      for (let j = 0; j < dim; j++) w[j] = w[j]! + s * X[a + j]!;
    }
  }
  for (let j = 0; j < dim; j++) w[j] = w[j]! - sAll * mean[j]!;
}

interface LanczosResult {
  /** The orthonormal Krylov basis: steps vectors of [dim]. */
  basis: Float64Array[];
  steps: number;
  /** Eigenpairs of the tridiagonal T: values [steps], vectors [steps, steps] (column i: pair i). */
  values: Float64Array;
  vectors: Float64Array;
  /** Columns of `vectors` by decreasing value. */
  order: number[];
  converged: boolean;
}

/**
 * Lanczos with full reorthogonalisation for the top `k` eigenpairs of a symmetric positive
 * semi-definite operator. A breakdown (β ≈ 0: an invariant subspace) before k pairs are found
 * restarts from a fresh vector orthogonal to the basis, so rank-deficient data still gets k axes.
 */
function lanczos(apply: (v: Float64Array, w: Float64Array) => void, dim: number, k: number, maxSteps: number, tol: number): LanczosResult {
  const rng = new Rng(0x9ca);
  const basis: Float64Array[] = [];
  const alpha: number[] = [], beta: number[] = [];                           // T's diagonal, off-diagonal
  let q = fresh(rng, dim, basis)!;
  const w = new Float64Array(dim);
  let scale = 0;                                                             // ≥ ‖T‖ (Gershgorin)
  let eig: Eigen = { values: new Float64Array(0), vectors: new Float64Array(0), order: [] };
  let converged = false;
  for (let j = 0; ; j++) {
    basis.push(q);
    apply(q, w);
    const a = dot(w, q);
    for (let t = 0; t < dim; t++) w[t] = w[t]! - a * q[t]! - (j > 0 ? beta[j - 1]! * basis[j - 1]![t]! : 0);
    orthogonalize(w, basis);
    orthogonalize(w, basis);                                                 // twice is enough (Kahan–Parlett)
    const b = Math.sqrt(dot(w, w));
    alpha.push(a);
    scale = Math.max(scale, Math.abs(a) + b + (j > 0 ? beta[j - 1]! : 0));
    const m = j + 1;
    const broke = b <= 1e-12 * scale;
    const last = m >= maxSteps || m >= dim;
    if (m >= k && (broke || last || m <= 40 || m % 8 === 0)) {
      eig = sortedEigen(alpha, beta, m);
      const top = Math.max(eig.values[eig.order[0]!]!, 0);
      // the residual of Ritz pair i is β_m · |last component of its eigenvector of T|
      // (relative to each pair's own value, so that a small component is as accurate as a large one)
      converged = eig.order.slice(0, k).every((i) =>
        (broke ? 0 : b) * Math.abs(eig.vectors[(m - 1) * m + i]!) <= tol * Math.max(eig.values[i]!, 1e-6 * top));
      if (converged || last) break;
    }
    if (last) { eig = sortedEigen(alpha, beta, m); break; }
    if (broke) {
      const next = fresh(rng, dim, basis);
      if (!next) { eig = sortedEigen(alpha, beta, m); converged = true; break; }   // the basis spans everything
      beta.push(0);
      q = next;
    } else {
      beta.push(b);
      q = Float64Array.from(w, (x) => x / b);
    }
  }
  return { basis, steps: basis.length, values: eig.values, vectors: eig.vectors, order: eig.order, converged };
}

/** A deterministic pseudo-random unit vector orthogonal to `basis`, or null when none is left. */
function fresh(rng: Rng, dim: number, basis: readonly Float64Array[]): Float64Array | null {
  const v = Float64Array.from({ length: dim }, () => rng.next() - 0.5);
  normalize(v);
  orthogonalize(v, basis);
  orthogonalize(v, basis);
  const n = Math.sqrt(dot(v, v));
  if (n < 1e-6) return null;
  for (let t = 0; t < dim; t++) v[t] = v[t]! / n;
  return v;
}

function orthogonalize(w: Float64Array, basis: readonly Float64Array[]): void {
  for (const u of basis) {
    const c = dot(w, u);
    for (let t = 0; t < w.length; t++) w[t] = w[t]! - c * u[t]!;
  }
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

function normalize(v: Float64Array): void {
  const n = Math.sqrt(dot(v, v));
  if (n > 0) for (let i = 0; i < v.length; i++) v[i] = v[i]! / n;
}

interface Eigen { values: Float64Array; vectors: Float64Array; order: number[] }

function sortedEigen(alpha: readonly number[], beta: readonly number[], m: number): Eigen {
  const { values, vectors } = tridiagonalEigen(alpha.slice(0, m), beta.slice(0, m - 1));
  const order = [...values.keys()].sort((x, y) => values[y]! - values[x]! || x - y);
  return { values, vectors, order };
}

/**
 * Eigenvalues and eigenvectors of the symmetric tridiagonal matrix with diagonal `diag` [m] and
 * off-diagonal `off` [m − 1], by the implicit QL method with Wilkinson shifts. vectors: [m, m],
 * row-major, column i the unit eigenvector of values[i] (unsorted).
 */
export function tridiagonalEigen(diag: readonly number[], off: readonly number[]): { values: Float64Array; vectors: Float64Array } {
  const n = diag.length;
  const d = Float64Array.from(diag);
  const e = new Float64Array(n);                                             // e[i] = T[i, i+1]; e[n−1] = 0
  e.set(off.slice(0, n - 1));
  const z = new Float64Array(n * n);                                         // [n, n] accumulated rotations
  for (let i = 0; i < n; i++) z[i * n + i] = 1;
  for (let l = 0; l < n; l++) {
    for (let iter = 0; ; iter++) {
      let m = l;
      for (; m < n - 1; m++) {                                               // a negligible off-diagonal splits T
        const dd = Math.abs(d[m]!) + Math.abs(d[m + 1]!);
        if (Math.abs(e[m]!) <= Number.EPSILON * dd) break;
      }
      if (m === l) break;
      if (iter === 100) throw new Error('tridiagonalEigen: no convergence');
      // the shift: the eigenvalue of the leading 2×2 block nearer d[l]
      let g = (d[l + 1]! - d[l]!) / (2 * e[l]!);
      let r = Math.hypot(g, 1);
      g = d[m]! - d[l]! + e[l]! / (g + (g >= 0 ? r : -r));
      let s = 1, c = 1, p = 0, split = false;
      for (let i = m - 1; i >= l; i--) {                                     // chase the bulge up with Givens rotations
        const f = s * e[i]!, b = c * e[i]!;
        r = Math.hypot(f, g);
        e[i + 1] = r;
        if (r === 0) { d[i + 1] = d[i + 1]! - p; e[m] = 0; split = true; break; }
        s = f / r; c = g / r;
        g = d[i + 1]! - p;
        r = (d[i]! - g) * s + 2 * c * b;
        p = s * r;
        d[i + 1] = g + p;
        g = c * r - b;
        for (let t = 0; t < n; t++) {
          const zi = z[t * n + i]!, zi1 = z[t * n + i + 1]!;
          z[t * n + i + 1] = s * zi + c * zi1;
          z[t * n + i] = c * zi - s * zi1;
        }
      }
      if (split) continue;
      d[l] = d[l]! - p; e[l] = g; e[m] = 0;
    }
  }
  return { values: d, vectors: z };
}
