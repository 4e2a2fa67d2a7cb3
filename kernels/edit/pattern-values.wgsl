// The effect of an edited attention pattern on z: twin of addPatternValues in edit.cpu.ts.
// For each listed row r = h·n + t of delta ([n_heads, n, k_len]), z[t, h, j] += Σ_c delta[r, c] ·
// v[c, h / group, j] (v: the KV cache's values). One thread per (listed row, j); f32 accumulation.

override WG: u32 = 64;

struct Params {
  z: u32,           // element offsets
  delta: u32,
  v: u32,
  rows_at: u32,     // u32 offset in idx
  n_rows: u32,
  n: u32,
  k_len: u32,
  n_heads: u32,
  n_kv: u32,
  d_head: u32,
  pad0: u32,
  pad1: u32,
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let g = (wid.x + wid.y * nwg.x) * WG + lid;
  if (g >= p.n_rows * p.d_head) { return; }
  let k = g / p.d_head;
  let j = g % p.d_head;
  let r = idx_ld(p.rows_at + k);
  let h = r / p.n;
  let t = r % p.n;
  let kvh = h / (p.n_heads / p.n_kv);
  var sum = 0.0;
  for (var c = 0u; c < p.k_len; c++) {
    sum = sum + delta_ld(p.delta + r * p.k_len + c) * v_ld(p.v + (c * p.n_kv + kvh) * p.d_head + j);
  }
  let zi = p.z + (t * p.n_heads + h) * p.d_head + j;
  z_st(zi, z_ld(zi) + sum);
}
