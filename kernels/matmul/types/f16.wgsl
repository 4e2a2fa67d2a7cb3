// F16: 2 bytes per element (rows may start at an even, not 4-aligned, byte).
fn dq_unit(bo: u32, u: u32) -> array<vec4f, 8> {
  var v: array<vec4f, 8>;
  for (var i = 0u; i < 4u; i++) {
    let q = ld128(bo + 16u * i);
    v[2u * i] = vec4f(unpack2x16float(q.x), unpack2x16float(q.y));
    v[2u * i + 1u] = vec4f(unpack2x16float(q.z), unpack2x16float(q.w));
  }
  return v;
}
