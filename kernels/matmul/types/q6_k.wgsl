// Q6_K (210 bytes, eight units): [ql 128][qh 64][scales int8 16][d f16]; x = d·sc·(q - 32).
// Unit u is quarter u % 4 of half u / 4: its low 4 bits are the low (u % 4 < 2) or high nibbles of
// ql[64·half + 32·(u % 2) + l], its top 2 bits are bits 2·(u % 4) of qh[32·half + l], and its two
// 16-value sub-blocks use scales 8·half + 2·(u % 4) and the one after.
fn dq_unit(bo: u32, u: u32) -> array<vec4f, 8> {
  let half = u >> 2u;
  let quarter = u & 3u;
  let d = f16at(bo + 208u);
  let so = bo + 192u + 8u * half + 2u * quarter;
  let qlo = bo + 64u * half + 32u * (quarter & 1u);
  let qho = bo + 128u + 32u * half;
  let nshift = vec4u(4u * (quarter >> 1u));
  let hshift = vec4u(2u * quarter);
  var v: array<vec4f, 8>;
  for (var h = 0u; h < 2u; h++) {
    let ds = d * f32(sext8(ld8(so + h)));
    let a = ld128(qlo + 16u * h);
    let b = ld128(qho + 16u * h);
    for (var c = 0u; c < 4u; c++) {
      let q = ((bytes4(a[c]) >> nshift) & vec4u(15u)) | (((bytes4(b[c]) >> hshift) & vec4u(3u)) << vec4u(4u));
      v[4u * h + c] = ds * (vec4f(q) - 32.0);
    }
  }
  return v;
}
