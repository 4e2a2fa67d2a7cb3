// Q5_0 (22 bytes): [d f16][qh u32][qs 16]; x = (q - 16)·d, bit 4 of value e is bit e of qh.
fn dq_unit(bo: u32, u: u32) -> array<vec4f, 8> {
  let d = f16at(bo);
  let qh = ld32(bo + 2u);
  let q = ld128(bo + 6u);
  var v: array<vec4f, 8>;
  for (var i = 0u; i < 4u; i++) {
    v[i] = (lo4(q[i]) + bit16x4(qh, 4u * i) - 16.0) * d;
    v[i + 4u] = (hi4(q[i]) + bit16x4(qh, 16u + 4u * i) - 16.0) * d;
  }
  return v;
}
