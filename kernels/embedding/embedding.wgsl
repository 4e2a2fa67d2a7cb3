// Token embedding lookup for one part (a run of rows) of the table: out[t, :] = row ids[t],
// dequantized by the decoder of the table's layout (kernels/matmul/types/<layout>.wgsl, included
// before this file with the byte helpers of kernels/wgsl/). One thread decodes one 32-element unit
// of one token's row; workgroups are numbered on a 2-D grid (x + y·gridX).

@group(0) @binding(0) var<storage, read> w: array<WeightWord>; // this part's rows, rowBytes each (u32; vec4u repacked)
@group(0) @binding(1) var<storage, read> ids: array<u32>;      // [n] from idsOff
@group(0) @binding(2) var<storage, read_write> y: array<f32>;  // [n, d] from yOff

struct Params {
  d: u32,          // row length (elements)
  n: u32,          // tokens
  rowBytes: u32,
  firstRow: u32,   // this part's rows: [firstRow, firstRow + rows)
  rows: u32,
  idsOff: u32,     // u32 elements
  yOff: u32,       // f32 elements
  gridX: u32,
  vocab: u32,      // ids from vocab on are written as zeros (by the dispatch with zeroMissing)
  zeroMissing: u32,
}
@group(0) @binding(3) var<uniform> p: Params;

override BLOCK_ELEMS: u32;
override BLOCK_BYTES: u32;
override WG: u32 = 64u;
override UPB: u32 = max(BLOCK_ELEMS / 32u, 1u);
override QB_BYTES: u32 = BLOCK_BYTES * max(32u / BLOCK_ELEMS, 1u);

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3u) {
  let units = (p.d + 31u) / 32u;
  let g = (wid.y * p.gridX + wid.x) * WG + li;
  let t = g / units;
  let U = g % units;
  if (t >= p.n) { return; }
  let id = ids[p.idsOff + t];
  let valid = min(32u, p.d - 32u * U);
  let yo = p.yOff + t * p.d + 32u * U;
  var v: array<vec4f, 8>;
  if (id >= p.firstRow && id - p.firstRow < p.rows) {
    v = dq_unit((id - p.firstRow) * p.rowBytes + (U / UPB) * QB_BYTES, U % UPB);
  } else if (p.zeroMissing == 0u || id < p.vocab) {
    return;   // another part's row
  }
  for (var e = 0u; e < valid; e++) { y[yo + e] = v[e >> 2u][e & 3u]; }
}
