// Matrix-vector product for decode (one token): y[r] = Σ_e x[e] · W[r, e], for one part (a run of
// rows) of W kept in its stored type (or its GPU-only repacking, src/engine/gpu/layout.ts). The
// matmul.gpu.ts wrapper puts first `const R` (rows per team), then the byte helpers, the decoder
// types/<layout>.wgsl (dq_unit), this file, and one entry
// point: matvec-sg.wgsl (with subgroups) or matvec-wg.wgsl (without), each defining lane_sum.
//
// Work split: a team of `team` threads (a power of two) owns R consecutive rows. Lane l takes the
// 32-element units l, l + team, ... of the row — adjacent lanes read adjacent bytes — loads that
// unit of x once (8 vec4) and uses it for all R rows, so x is read once per R rows and each lane
// has R independent weight loads in flight. Partial sums meet first inside a subgroup (lane_sum:
// shuffles, when the team fits in a subgroup), then, only when a team spans several subgroups (or
// there are no subgroups), in workgroup memory after one barrier.

@group(0) @binding(0) var<storage, read> w: array<WeightWord>; // this part's rows, rowBytes each (u32; vec4u repacked)
@group(0) @binding(1) var<storage, read> x: array<vec4f>;      // [k / 4] vec4 from xOff
@group(0) @binding(2) var<storage, read_write> y: array<f32>;  // [rows] from yOff (= out + firstRow)

struct Params {
  k: u32,         // row length (elements)
  rows: u32,      // rows in this part
  rowBytes: u32,
  xOff: u32,      // vec4 elements
  yOff: u32,      // f32 elements: the output's offset plus this part's first row
  gridX: u32,     // workgroups along x of the 2-D grid
  team: u32,      // threads per team (a power of two dividing WG)
}
@group(0) @binding(3) var<uniform> p: Params;

override BLOCK_ELEMS: u32;       // layoutBlock(layout).blockSize (TensorType.blockSize)
override BLOCK_BYTES: u32;       // layoutBlock(layout).blockBytes
override WG: u32 = 256u;
override UPB: u32 = max(BLOCK_ELEMS / 32u, 1u);
override QB_BYTES: u32 = BLOCK_BYTES * max(32u / BLOCK_ELEMS, 1u);
override PARTIAL: bool = BLOCK_ELEMS == 1u;

var<workgroup> red: array<f32, WG * R>;   // [R, WG] partial sums, by virtual index

// vli: this thread's index in the workgroup, numbered so that each subgroup holds sgs consecutive
// numbers starting at a multiple of sgs (sgs = 1 without subgroups); group: the workgroup's number.
fn matvec(vli: u32, group: u32, sgs: u32) {
  let T = p.team;
  let lane = vli % T;
  let r0 = (group * (WG / T) + vli / T) * R;
  let units = (p.k + 31u) / 32u;
  var acc: array<f32, R>;
  // rows past the part's end compute the last row again (not stored): no branch around the loads
  var rowStart: array<u32, R>;
  for (var j = 0u; j < R; j++) { rowStart[j] = min(r0 + j, p.rows - 1u) * p.rowBytes; }
  for (var U = lane; U < units; U += T) {
    var xv: array<vec4f, 8>;
    let xo = p.xOff + 8u * U;
    for (var i = 0u; i < 8u; i++) { xv[i] = x[xo + i]; }
    let valid = vec4u(p.k - 32u * U);   // elements of this unit inside the row (≥ 32: all)
    let bo = (U / UPB) * QB_BYTES;
    let u = U % UPB;
    for (var j = 0u; j < R; j++) {
      let v = dq_unit(rowStart[j] + bo, u);
      var s = vec4f(0.0);
      for (var i = 0u; i < 8u; i++) {
        var prod = v[i] * xv[i];
        // past the row end both factors may be anything (inf·0 is NaN): drop the product
        if (PARTIAL) { prod = select(vec4f(0.0), prod, vec4u(4u * i) + vec4u(0u, 1u, 2u, 3u) < valid); }
        s += prod;
      }
      acc[j] += (s.x + s.y) + (s.z + s.w);
    }
  }
  // inside a subgroup: the team (or its share of one subgroup) sums by shuffles
  let width = min(T, sgs);
  for (var j = 0u; j < R; j++) { acc[j] = lane_sum(acc[j], width); }
  if (T <= sgs) {
    // every lane holds its team's sums: lane l stores rows l, l + T, ...
    for (var j = lane; j < R; j += T) {
      var v = acc[0];
      for (var i = 1u; i < R; i++) { if (i == j) { v = acc[i]; } }   // keeps acc in registers
      if (r0 + j < p.rows) { y[p.yOff + r0 + j] = v; }
    }
    return;
  }
  // a team over several subgroups (or none): its T / width pieces meet in workgroup memory
  for (var j = 0u; j < R; j++) { red[j * WG + vli] = acc[j]; }
  workgroupBarrier();
  let first = vli - lane;   // the team's first thread
  for (var j = lane; j < R; j += T) {
    var v = 0.0;
    for (var i = 0u; i < T; i += width) { v += red[j * WG + first + i]; }
    if (r0 + j < p.rows) { y[p.yOff + r0 + j] = v; }
  }
}
