// Q5_K (176 bytes, eight units = its eight sub-blocks): [d f16][dmin f16][scales 12][qh 32][qs 128].
// As Q4_K, plus bit u of qh[l] is bit 4 of value l of sub-block u.
fn dq_unit(bo: u32, u: u32) -> array<vec4f, 8> {
  let sm = scale_min_k4(bo + 4u, u);
  let d1 = f16at(bo) * f32(sm.x);
  let m1 = f16at(bo + 2u) * f32(sm.y);
  let qo = bo + 48u + 32u * (u >> 1u);
  let high = (u & 1u) == 1u;
  var v: array<vec4f, 8>;
  for (var h = 0u; h < 2u; h++) {
    let q = ld128(qo + 16u * h);
    let qh = ld128(bo + 16u + 16u * h);
    for (var c = 0u; c < 4u; c++) {
      let hb = vec4f((bytes4(qh[c]) >> vec4u(u)) & vec4u(1u)) * 16.0;
      v[4u * h + c] = d1 * (select(lo4(q[c]), hi4(q[c]), high) + hb) - m1;
    }
  }
  return v;
}
