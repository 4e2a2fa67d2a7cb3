// Q4_K (144 bytes, eight units = its eight sub-blocks): [d f16][dmin f16][scales 12][qs 128].
// Sub-block u: x = d·sc·q - dmin·m; its nibbles are the low (u even) or high (u odd) halves of
// qs[32·(u/2) .. +32].
fn dq_unit(bo: u32, u: u32) -> array<vec4f, 8> {
  let sm = scale_min_k4(bo + 4u, u);
  let d1 = f16at(bo) * f32(sm.x);
  let m1 = f16at(bo + 2u) * f32(sm.y);
  let qo = bo + 16u + 32u * (u >> 1u);
  let high = (u & 1u) == 1u;
  var v: array<vec4f, 8>;
  for (var h = 0u; h < 2u; h++) {
    let q = ld128(qo + 16u * h);
    for (var c = 0u; c < 4u; c++) {
      v[4u * h + c] = d1 * select(lo4(q[c]), hi4(q[c]), high) - m1;
    }
  }
  return v;
}
