// Q5_1 (24 bytes): [d f16][m f16][qh u32][qs 16]; x = q·d + m, bit 4 of value e is bit e of qh.
fn dq_unit(bo: u32, u: u32) -> array<vec4f, 8> {
  let d = f16at(bo);
  let m = f16at(bo + 2u);
  let qh = ld32(bo + 4u);
  let q = ld128(bo + 8u);
  var v: array<vec4f, 8>;
  for (var i = 0u; i < 4u; i++) {
    v[i] = (lo4(q[i]) + bit16x4(qh, 4u * i)) * d + m;
    v[i + 4u] = (hi4(q[i]) + bit16x4(qh, 16u + 4u * i)) * d + m;
  }
  return v;
}
