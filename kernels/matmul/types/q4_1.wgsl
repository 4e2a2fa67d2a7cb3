// Q4_1 (20 bytes): [d f16][m f16][qs 16]; x = q·d + m.
fn dq_unit(bo: u32, u: u32) -> array<vec4f, 8> {
  let d = f16at(bo);
  let m = f16at(bo + 2u);
  let q = ld128(bo + 4u);
  var v: array<vec4f, 8>;
  for (var i = 0u; i < 4u; i++) {
    v[i] = lo4(q[i]) * d + m;
    v[i + 4u] = hi4(q[i]) * d + m;
  }
  return v;
}
