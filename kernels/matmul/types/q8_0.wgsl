// Q8_0 (34 bytes): [d f16][qs int8 × 32]; x = q·d.
fn dq_unit(bo: u32, u: u32) -> array<vec4f, 8> {
  let d = f16at(bo);
  let a = ld128(bo + 2u);
  let b = ld128(bo + 18u);
  var v: array<vec4f, 8>;
  for (var i = 0u; i < 4u; i++) {
    v[i] = sbytes4(a[i]) * d;
    v[i + 4u] = sbytes4(b[i]) * d;
  }
  return v;
}
