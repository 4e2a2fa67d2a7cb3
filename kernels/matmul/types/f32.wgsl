// F32: 4 bytes per element, bit for bit.
fn dq_unit(bo: u32, u: u32) -> array<vec4f, 8> {
  var v: array<vec4f, 8>;
  for (var i = 0u; i < 8u; i++) { v[i] = bitcast<vec4f>(ld128(bo + 16u * i)); }
  return v;
}
