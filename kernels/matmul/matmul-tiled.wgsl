// Tiled matrix product for prefill (n > 1 token rows): y[t, r] = Σ_e x[t, e] · W[r, e], for one
// part (a run of rows) of W kept in its stored type (or its GPU-only repacking,
// src/engine/gpu/layout.ts). The matmul.gpu.ts wrapper puts first the tile constants
// `const BM, BN, TM, TN: u32` (PREFILL_TILE there), then the byte helpers (kernels/wgsl/),
// types/common.wgsl and the decoder types/<layout>.wgsl that defines dq_unit (see common.wgsl).
//
// Work split: a workgroup owns an output tile of BM weight rows × BN token rows and walks k one
// 32-element unit at a time. For each unit its threads decode the BM weight units (dq_unit, once
// per tile: every weight byte is read once per BN tokens) and load the BN × 32 slab of x, both into
// workgroup memory transposed to [e][row] so that one vec4 holds 4 rows (or 4 tokens) of one
// element; after a barrier each thread adds the unit's 32 terms to its TM × TN register tile:
// per element, TM / 4 + TN / 4 vec4 reads feed TM · TN multiply-adds. A thread's rows are
// TM / 4 groups of 4 spaced BM / TM apart (adjacent threads read adjacent vec4), its tokens
// likewise. Runs of 8 terms are summed apart before they join the output's running sum: a single
// running sum over k doubled the f32 round-off against the CPU twin (matmul.test.ts measures it).
// Workgroups are numbered on a 2-D grid (x + y·gridX) because a 128k-row output needs more than
// 65535 of them; z numbers the tiles of BN tokens.
// x is read as vec4: its rows start 16-byte aligned (the wrapper copies x when they do not).

@group(0) @binding(0) var<storage, read> w: array<WeightWord>; // this part's rows, rowBytes each (u32; vec4u repacked)
@group(0) @binding(1) var<storage, read> x: array<vec4f>;      // [n, xStride] vec4 from xOff
@group(0) @binding(2) var<storage, read_write> y: array<f32>;  // [n, m] from yOff (= out + firstRow)

struct Params {
  k: u32,         // row length (elements)
  rows: u32,      // rows in this part
  rowBytes: u32,
  xOff: u32,      // vec4 elements
  xStride: u32,   // vec4 elements from one token's x row to the next (≥ k / 4)
  yOff: u32,      // f32 elements: the output's offset plus this part's first row
  m: u32,         // output row stride (all rows of W)
  n: u32,         // tokens
  gridX: u32,     // workgroups along x of the 2-D grid
}
@group(0) @binding(3) var<uniform> p: Params;

override BLOCK_ELEMS: u32;       // layoutBlock(layout).blockSize (TensorType.blockSize)
override BLOCK_BYTES: u32;       // layoutBlock(layout).blockBytes
// units per block, and the bytes one step of the unit index moves across blocks
override UPB: u32 = max(BLOCK_ELEMS / 32u, 1u);
override QB_BYTES: u32 = BLOCK_BYTES * max(32u / BLOCK_ELEMS, 1u);
// only unquantized rows (block size 1) may end inside a unit; quantized rows are whole blocks
override PARTIAL: bool = BLOCK_ELEMS == 1u;

const TR = BM / TM;              // threads along the rows of the tile
const TC = BN / TN;              // threads along its tokens
const WG = TR * TC;
const RG = BM / 4u;              // vec4 of rows per element
const TG = BN / 4u;              // vec4 of tokens per element

var<workgroup> ws: array<vec4f, 32u * RG>;   // [e, BM / 4]: the unit decoded, 4 rows per vec4
var<workgroup> xs: array<vec4f, 32u * TG>;   // [e, BN / 4]: x's slab, 4 tokens per vec4

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3u) {
  let r0 = (wid.y * p.gridX + wid.x) * BM;   // the tile's first row and token
  let t0 = wid.z * BN;
  let tr = li % TR;
  let tc = li / TR;
  let units = (p.k + 31u) / 32u;
  var acc: array<vec4f, TN * TM / 4u>;       // [token TN, row group TM / 4]: 4 rows per vec4
  // the same for a run of 8 terms, added to acc as one; declared here and zeroed by hand after
  // each run (declared inside the loop, SwiftShader did not start it from zero each time)
  var s: array<vec4f, TN * TM / 4u>;
  for (var U = 0u; U < units; U++) {
    // elements of this unit inside the row (≥ 32: all); past the row end both W and x may be
    // anything (inf·0 is NaN), so both are stored as 0
    let valid = vec4u(p.k - 32u * U);
    let lane = vec4u(0u, 1u, 2u, 3u);
    // the BM weight units, one per thread; rows past the part's end are zeros (never stored)
    for (var d = li; d < BM; d += WG) {
      var v = array<vec4f, 8>();
      if (r0 + d < p.rows) {
        v = dq_unit((r0 + d) * p.rowBytes + (U / UPB) * QB_BYTES, U % UPB);
      }
      for (var i = 0u; i < 8u; i++) {
        var vi = v[i];
        if (PARTIAL) { vi = select(vec4f(0.0), vi, vec4u(4u * i) + lane < valid); }
        for (var c = 0u; c < 4u; c++) { ws[(4u * i + c) * RG + d / 4u][d % 4u] = vi[c]; }
      }
    }
    // x's slab: BN tokens × 8 vec4, adjacent threads reading adjacent vec4 of a token's row;
    // tokens past n and vec4 wholly past the row end are not read
    for (var d = li; d < 8u * BN; d += WG) {
      let q = d % 8u;
      let t = d / 8u;
      var xv = vec4f(0.0);
      if (t0 + t < p.n && 32u * U + 4u * q < p.k) {
        xv = x[p.xOff + (t0 + t) * p.xStride + 8u * U + q];
        if (PARTIAL) { xv = select(vec4f(0.0), xv, vec4u(4u * q) + lane < valid); }
      }
      for (var c = 0u; c < 4u; c++) { xs[(4u * q + c) * TG + t / 4u][t % 4u] = xv[c]; }
    }
    workgroupBarrier();
    // a thread whose first token is past n has only tokens past n (a short prefill leaves most idle)
    for (var e0 = 0u; e0 < select(0u, 32u, t0 + 4u * tc < p.n); e0 += 8u) {
      for (var e = e0; e < e0 + 8u; e++) {
        var a: array<vec4f, TM / 4u>;
        for (var i = 0u; i < TM / 4u; i++) { a[i] = ws[e * RG + tr + i * TR]; }
        for (var j = 0u; j < TN / 4u; j++) {
          let b = xs[e * TG + tc + j * TC];
          for (var c = 0u; c < 4u; c++) {
            for (var i = 0u; i < TM / 4u; i++) {
              s[(4u * j + c) * (TM / 4u) + i] += a[i] * b[c];
            }
          }
        }
      }
      for (var o = 0u; o < TN * TM / 4u; o++) {
        acc[o] += s[o];
        s[o] = vec4f(0.0);
      }
    }
    workgroupBarrier();
  }
  // store the tile's rows < rows and tokens < n
  for (var j = 0u; j < TN / 4u; j++) {
    for (var c = 0u; c < 4u; c++) {
      let t = t0 + 4u * (tc + j * TC) + c;
      if (t >= p.n) { continue; }
      for (var i = 0u; i < TM / 4u; i++) {
        let v = acc[(4u * j + c) * (TM / 4u) + i];
        let rg = r0 + 4u * (tr + i * TR);
        for (var cc = 0u; cc < 4u; cc++) {
          if (rg + cc < p.rows) { y[p.yOff + t * p.m + rg + cc] = v[cc]; }
        }
      }
    }
  }
}
