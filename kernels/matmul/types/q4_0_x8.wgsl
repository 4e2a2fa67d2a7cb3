// Q4_0_X8, Q4_0 repacked for the GPU (src/engine/gpu/layout.ts), 144 bytes per 256 elements:
// eight Q4_0 blocks as [qs 16 × 8][d f16 × 8]. Unit u is stored block u: its 16 quant bytes at
// 16·u, a 16-byte-aligned vec4u (bytes16.wgsl), its scale at 128 + 2·u. Values as q4_0.wgsl:
// x = (q - 8)·d, low nibbles are values 0..15, high 16..31.
fn dq_unit(bo: u32, u: u32) -> array<vec4f, 8> {
  let d = f16at(bo + 128u + 2u * u);
  let q = ld128a(bo + 16u * u);
  var v: array<vec4f, 8>;
  for (var i = 0u; i < 4u; i++) {
    v[i] = (lo4(q[i]) - 8.0) * d;
    v[i + 4u] = (hi4(q[i]) - 8.0) * d;
  }
  return v;
}
