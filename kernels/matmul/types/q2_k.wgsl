// Q2_K (84 bytes, eight units of two 16-value sub-blocks): [scales 16][qs 64][d f16][dmin f16].
// Sub-block j: x = d·(scales[j] & 15)·q - dmin·(scales[j] >> 4). Unit u's 2-bit values are bits
// 2·(u % 4) of qs[32·(u/4) .. +32].
fn dq_unit(bo: u32, u: u32) -> array<vec4f, 8> {
  let d = f16at(bo + 80u);
  let dmin = f16at(bo + 82u);
  let qo = bo + 16u + 32u * (u >> 2u);
  let shift = vec4u(2u * (u & 3u));
  var v: array<vec4f, 8>;
  for (var h = 0u; h < 2u; h++) {
    let sc = ld8(bo + 2u * u + h);
    let dl = d * f32(sc & 15u);
    let ml = dmin * f32(sc >> 4u);
    let q = ld128(qo + 16u * h);
    for (var c = 0u; c < 4u; c++) {
      v[4u * h + c] = dl * vec4f((bytes4(q[c]) >> shift) & vec4u(3u)) - ml;
    }
  }
  return v;
}
