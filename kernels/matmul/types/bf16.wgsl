// BF16: 2 bytes per element, the high half of an f32.
fn bf16x2(q: u32) -> vec2f {
  return vec2f(bitcast<f32>(q << 16u), bitcast<f32>(q & 0xffff0000u));
}

fn dq_unit(bo: u32, u: u32) -> array<vec4f, 8> {
  var v: array<vec4f, 8>;
  for (var i = 0u; i < 4u; i++) {
    let q = ld128(bo + 16u * i);
    v[2u * i] = vec4f(bf16x2(q.x), bf16x2(q.y));
    v[2u * i + 1u] = vec4f(bf16x2(q.z), bf16x2(q.w));
  }
  return v;
}
