// Q8_0_X8, Q8_0 repacked for the GPU (src/engine/gpu/layout.ts), 272 bytes per 256 elements:
// eight Q8_0 blocks as [qs int8 32 × 8][d f16 × 8]. Unit u is stored block u: its 32 quants at
// 32·u, two 16-byte-aligned vec4u (bytes16.wgsl), its scale at 256 + 2·u. Values as q8_0.wgsl:
// x = q·d.
fn dq_unit(bo: u32, u: u32) -> array<vec4f, 8> {
  let d = f16at(bo + 256u + 2u * u);
  let a = ld128a(bo + 32u * u);
  let b = ld128a(bo + 32u * u + 16u);
  var v: array<vec4f, 8>;
  for (var i = 0u; i < 4u; i++) {
    v[i] = sbytes4(a[i]) * d;
    v[i + 4u] = sbytes4(b[i]) * d;
  }
  return v;
}
