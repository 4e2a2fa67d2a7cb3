// Fused decode matrix-vector products (one token): what matmul/matvec.wgsl does for one matrix,
// with the element-wise ops around it folded in, so that a decoded layer takes 5 dispatches, not 15.
//   NORM    the RMSNorm before the product: every workgroup reduces x² itself (x is one row of
//           d_model floats, a few KB, already hot in cache) and loads x as (x · 1/rms) · weight,
//           the twin of rmsnorm.wgsl's order of operations;
//   NMAT    1–3 matrices in one dispatch (q, k and v; or gate and up), sharing the normed x;
//   SWIGLU  each team computes R rows of w0 (gate) AND of w1 (up) and stores silu(g) · u once,
//           the twin of silu-mul.wgsl's formula;
//   ADD     the residual connection: y += W·x, read and written by the one lane that owns the row;
//   ROPE    (split, q and k as matrices 0 and 1) RoPE at the write, adjacent pairs as rope-qk.wgsl:
//           a team's R rows (R even) hold whole pairs, and the lane that stores a row has its
//           partner's sum too; cos and sin of the token's position come in the uniform (cs).
//
// The wrapper (fused-matvec.gpu.ts) puts before this text: `enable subgroups;` when used; the
// constants R (rows per team and matrix), RR (accumulators per lane: R, or 2R with SWIGLU), NMAT,
// NORM, SWIGLU, ADD, ROPE, CSN (vec4 words of cos, sin: d_head / 4 with ROPE, else 1); the bindings w0.. (weights, array<WeightWord_i>: u32, or vec4u for a
// repacked layout), x (array<vec4f>), y0.. (outputs) and the uniform p: Params; one renamed copy
// of the byte helpers and layout decoder per matrix (dq_unit_0, dq_unit_1, ... reading w0, w1,
// ...) and the generated dispatchers
//   fn unit(m, rowStart, U) -> array<vec4f, 8>   unit U of the row at byte rowStart of matrix m
//   fn partial(m) -> bool                          matrix m's type is unquantized (rows may end mid-unit)
//   fn nw_ld(i) -> vec4f                           the norm weight (vec4 i), 1 without NORM
//   fn y_ld(m, i) / y_st(m, i, v)                  output of matrix m
// and after it one entry point (matmul/matvec-sg.wgsl or matvec-wg.wgsl) that calls matvec().
//
// Work split, as in matvec.wgsl: a team of `team` lanes owns R consecutive rows; lane l takes the
// 32-element units l, l + team, ... and loads each unit of x once for all its rows. With several
// matrices and no SWIGLU, workgroups [0, g1) work on matrix 0, [g1, g2) on 1, [g2, ...) on 2.

struct Params {
  k: u32,           // row length (elements), the same for every matrix
  xOff: u32,        // vec4 elements
  nwOff: u32,       // vec4 elements of the norm weight
  eps: f32,
  gridX: u32,       // workgroups along x of the 2-D grid
  team: u32,        // lanes per team (a power of two dividing WG)
  g1: u32,          // first workgroup of matrix 1 (split mode)
  g2: u32,          // first workgroup of matrix 2
  rows: vec4u,      // rows of each matrix (of this part)
  rowBytes: vec4u,
  yOff: vec4u,      // f32 elements: each output's offset plus the part's first row
  half: u32,        // ROPE: d_head / 2
  cs: array<vec4f, CSN>,   // ROPE: (cos, sin) of pair 0, 1, ... at the token's position, two pairs a word
}

override WG: u32 = 128u;

var<workgroup> red: array<f32, WG * RR>;   // [RR, WG] partial sums, by virtual index

/** The matrix of accumulator j in a workgroup working on matrix m0. */
fn mat(m0: u32, j: u32) -> u32 {
  if (SWIGLU) { return j / R; }
  return m0;
}

/** Stores row r: a = the row's product (of w0 for SWIGLU), b = w1's product (SWIGLU) or the
 *  product of row r ^ 1 (ROPE). */
fn store(m0: u32, r: u32, a: f32, b: f32) {
  if (SWIGLU) {
    if (r < p.rows[0]) { y_st(0u, p.yOff[0] + r, (a / (1.0 + exp(-a))) * b); }
    return;
  }
  if (r >= p.rows[m0]) { return; }
  let i = p.yOff[m0] + r;
  if (ROPE && m0 < 2u) {
    // a: row r's product; b: its partner's (row r ^ 1); the pair's (cos, sin)
    let e = (r % (2u * p.half)) / 2u;
    let w = p.cs[e / 2u];
    let f = select(w.xy, w.zw, (e & 1u) == 1u);
    if ((r & 1u) == 0u) { y_st(m0, i, a * f.x - b * f.y); } else { y_st(m0, i, b * f.y + a * f.x); }
    return;
  }
  if (ADD) { y_st(m0, i, y_ld(m0, i) + a); } else { y_st(m0, i, a); }
}

// vli: this thread's index in the workgroup, numbered so that each subgroup holds sgs consecutive
// numbers starting at a multiple of sgs (sgs = 1 without subgroups); wgi: the workgroup's number.
fn matvec(vli: u32, wgi: u32, sgs: u32) {
  // which matrix this workgroup works on, and its number among that matrix's workgroups
  var m0 = 0u;
  var group = wgi;
  if (!SWIGLU && NMAT > 1u) {
    if (wgi >= p.g2) { m0 = 2u; group = wgi - p.g2; } else if (wgi >= p.g1) { m0 = 1u; group = wgi - p.g1; }
  }

  // ---- RMSNorm prologue: inv = 1 / sqrt(mean(x²) + eps), eps inside the square root ----
  var inv = 1.0;
  if (NORM) {
    var ss = 0.0;
    for (var i = vli; i < p.k / 4u; i += WG) {
      let v = x[p.xOff + i];
      ss += dot(v, v);
    }
    red[vli] = ss;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
      if (vli < s) { red[vli] += red[vli + s]; }
      workgroupBarrier();
    }
    inv = 1.0 / sqrt(red[0] / f32(p.k) + p.eps);
    workgroupBarrier();   // red is reused below
  }

  // ---- the products ----
  let T = p.team;
  let lane = vli % T;
  let r0 = (group * (WG / T) + vli / T) * R;
  let units = (p.k + 31u) / 32u;
  var acc: array<f32, RR>;
  // rows past a matrix's end compute its last row again (not stored): no branch around the loads
  var rowStart: array<u32, RR>;
  for (var j = 0u; j < RR; j++) {
    let m = mat(m0, j);
    rowStart[j] = min(r0 + j % R, p.rows[m] - 1u) * p.rowBytes[m];
  }
  for (var U = lane; U < units; U += T) {
    var xv: array<vec4f, 8>;
    let xo = p.xOff + 8u * U;
    for (var i = 0u; i < 8u; i++) { xv[i] = x[xo + i]; }
    if (NORM) {
      let no = p.nwOff + 8u * U;
      for (var i = 0u; i < 8u; i++) { xv[i] = (xv[i] * inv) * nw_ld(no + i); }
    }
    let valid = vec4u(p.k - 32u * U);   // elements of this unit inside the row (≥ 32: all)
    for (var j = 0u; j < RR; j++) {
      let m = mat(m0, j);
      let v = unit(m, rowStart[j], U);
      var s = vec4f(0.0);
      for (var i = 0u; i < 8u; i++) {
        var prod = v[i] * xv[i];
        // past the row end both factors may be anything (inf·0 is NaN): drop the product
        if (partial(m)) { prod = select(vec4f(0.0), prod, vec4u(4u * i) + vec4u(0u, 1u, 2u, 3u) < valid); }
        s += prod;
      }
      acc[j] += (s.x + s.y) + (s.z + s.w);
    }
  }

  // ---- reduction over the team, then the epilogue ----
  let width = min(T, sgs);
  for (var j = 0u; j < RR; j++) { acc[j] = lane_sum(acc[j], width); }
  if (T <= sgs) {
    // every lane holds its team's sums: lane l stores rows l, l + T, ...
    for (var j = lane; j < R; j += T) {
      var a = acc[0];
      var b = acc[0];
      for (var i = 1u; i < RR; i++) {     // keeps acc in registers
        if (i == j) { a = acc[i]; }
        if (i == j + R) { b = acc[i]; }
        if (ROPE && i == (j ^ 1u)) { b = acc[i]; }
      }
      store(m0, r0 + j, a, b);
    }
    return;
  }
  // a team over several subgroups (or none): its T / width pieces meet in workgroup memory
  for (var j = 0u; j < RR; j++) { red[j * WG + vli] = acc[j]; }
  workgroupBarrier();
  let first = vli - lane;   // the team's first thread
  for (var j = lane; j < R; j += T) {
    var a = 0.0;
    var b = 0.0;
    for (var i = 0u; i < T; i += width) {
      a += red[j * WG + first + i];
      if (SWIGLU) { b += red[(j + R) * WG + first + i]; }
      if (ROPE) { b += red[(j ^ 1u) * WG + first + i]; }
    }
    store(m0, r0 + j, a, b);
  }
}
