// Q4_0 (18 bytes): [d f16][qs 16]; x = (q - 8)·d, low nibbles are values 0..15, high 16..31.
fn dq_unit(bo: u32, u: u32) -> array<vec4f, 8> {
  let d = f16at(bo);
  let q = ld128(bo + 2u);
  var v: array<vec4f, 8>;
  for (var i = 0u; i < 4u; i++) {
    v[i] = (lo4(q[i]) - 8.0) * d;
    v[i + 4u] = (hi4(q[i]) - 8.0) * d;
  }
  return v;
}
