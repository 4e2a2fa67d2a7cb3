// Q3_K (110 bytes, eight units of two 16-value sub-blocks): [hmask 32][qs 64][scales 12][d f16].
// x = d·(s_j - 32)·(q - 4): q's low 2 bits are bits 2·(u % 4) of qs[32·(u/4) + l], its high bit
// is bit u of hmask[l]; s_j is 6 bits packed in the 12 scale bytes.
fn q3_scale(bo: u32, j: u32) -> i32 {
  let low = select(ld8(bo + 88u + j) >> 4u, ld8(bo + 96u + j) & 15u, j < 8u);  // j >= 8: high nibble of byte j - 8
  let high = (ld8(bo + 104u + (j & 3u)) >> (2u * (j >> 2u))) & 3u;
  return i32(low | (high << 4u)) - 32;
}

fn dq_unit(bo: u32, u: u32) -> array<vec4f, 8> {
  let d = f16at(bo + 108u);
  let qo = bo + 32u + 32u * (u >> 2u);
  let shift = vec4u(2u * (u & 3u));
  var v: array<vec4f, 8>;
  for (var h = 0u; h < 2u; h++) {
    let dl = d * f32(q3_scale(bo, 2u * u + h));
    let q = ld128(qo + 16u * h);
    let hm = ld128(bo + 16u * h);
    for (var c = 0u; c < 4u; c++) {
      let lo = vec4f((bytes4(q[c]) >> shift) & vec4u(3u));
      let hb = vec4f((bytes4(hm[c]) >> vec4u(u)) & vec4u(1u));
      v[4u * h + c] = dl * (lo + 4.0 * hb - 4.0);
    }
  }
  return v;
}
