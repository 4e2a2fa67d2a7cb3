// Q8_K (292 bytes, eight units): [d f32][qs int8 × 256][bsums int16 × 16]; x = d·q.
fn dq_unit(bo: u32, u: u32) -> array<vec4f, 8> {
  let d = f32at(bo);
  let a = ld128(bo + 4u + 32u * u);
  let b = ld128(bo + 20u + 32u * u);
  var v: array<vec4f, 8>;
  for (var i = 0u; i < 4u; i++) {
    v[i] = sbytes4(a[i]) * d;
    v[i + 4u] = sbytes4(b[i]) * d;
  }
  return v;
}
