// Q8_G64 (68 bytes, two units): [s f32][q int8 × 64]; x = q·s (one f32 rounding, as runq.c).
fn dq_unit(bo: u32, u: u32) -> array<vec4f, 8> {
  let s = f32at(bo);
  let a = ld128(bo + 4u + 32u * u);
  let b = ld128(bo + 20u + 32u * u);
  var v: array<vec4f, 8>;
  for (var i = 0u; i < 4u; i++) {
    v[i] = sbytes4(a[i]) * s;
    v[i + 4u] = sbytes4(b[i]) * s;
  }
  return v;
}
