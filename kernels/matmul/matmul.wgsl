// Matrix product with a weight kept in its stored type: y[t, r] = Σ_e x[t, e] · W[r, e], for one
// part (a run of rows) of W. The matmul.gpu.ts wrapper puts first `const TT` (tokens per thread:
// 1 for decode, 4 for prefill), then kernels/wgsl/bytes.wgsl, types/common.wgsl and the
// decoder types/<type>.wgsl that defines dq_unit (see common.wgsl).
//
// Work split: a row is cut into 32-element units. A team of `tpr` threads (a power of two, chosen
// by the wrapper from the row length) owns one row: lane l decodes units l, l + tpr, ... — adjacent
// lanes read adjacent bytes — and each decoded unit is used for TT token rows of x, so prefill
// reads every weight byte once per TT tokens. The team's partial sums meet in workgroup memory
// (a tree over lanes); lane 0 stores. Workgroups are numbered on a 2-D grid (x + y·gridX) because
// a 128k-row output needs more than 65535 of them; z numbers the tiles of TT tokens.
// x is read as vec4: its rows start 16-byte aligned (the wrapper copies x when they do not).

@group(0) @binding(0) var<storage, read> w: array<u32>;        // this part's rows, rowBytes each
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
  tpr: u32,       // threads per weight row (power of two dividing WG)
}
@group(0) @binding(3) var<uniform> p: Params;

override BLOCK_ELEMS: u32;       // TensorType.blockSize
override BLOCK_BYTES: u32;       // TensorType.blockBytes
override WG: u32 = 256u;
// units per block, and the bytes one step of the unit index moves across blocks
override UPB: u32 = max(BLOCK_ELEMS / 32u, 1u);
override QB_BYTES: u32 = BLOCK_BYTES * max(32u / BLOCK_ELEMS, 1u);
// only unquantized rows (block size 1) may end inside a unit; quantized rows are whole blocks
override PARTIAL: bool = BLOCK_ELEMS == 1u;
override RED: u32 = WG * TT;

var<workgroup> red: array<f32, RED>;   // [TT, WG] partial sums

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3u) {
  let lane = li % p.tpr;
  let r = (wid.y * p.gridX + wid.x) * (WG / p.tpr) + li / p.tpr;
  let t0 = wid.z * TT;
  var acc: array<f32, TT>;
  if (r < p.rows) {
    let rowStart = r * p.rowBytes;
    let units = (p.k + 31u) / 32u;
    for (var U = lane; U < units; U += p.tpr) {
      let v = dq_unit(rowStart + (U / UPB) * QB_BYTES, U % UPB);
      let valid = vec4u(p.k - 32u * U);   // elements of this unit inside the row (≥ 32: all)
      for (var t = 0u; t < TT; t++) {
        // past the last token, recompute the last one (the result is not stored)
        let xo = p.xOff + min(t0 + t, p.n - 1u) * p.xStride + 8u * U;
        var s = vec4f(0.0);
        for (var i = 0u; i < 8u; i++) {
          var prod = v[i] * x[xo + i];
          // past the row end both factors may be anything (inf·0 is NaN): drop the product
          if (PARTIAL) { prod = select(vec4f(0.0), prod, vec4u(4u * i) + vec4u(0u, 1u, 2u, 3u) < valid); }
          s += prod;
        }
        acc[t] += (s.x + s.y) + (s.z + s.w);
      }
    }
  }
  for (var t = 0u; t < TT; t++) { red[t * WG + li] = acc[t]; }
  workgroupBarrier();
  for (var s = p.tpr >> 1u; s > 0u; s >>= 1u) {
    if (lane < s) {
      for (var t = 0u; t < TT; t++) { red[t * WG + li] += red[t * WG + li + s]; }
    }
    workgroupBarrier();
  }
  if (lane == 0u && r < p.rows) {
    for (var t = 0u; t < TT; t++) {
      if (t0 + t < p.n) { y[p.yOff + (t0 + t) * p.m + r] = red[t * WG + li]; }
    }
  }
}
