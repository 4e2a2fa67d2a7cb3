// What every per-type decoder shares. A decoder (types/<layout>.wgsl: a stored type, or a GPU-only
// repacking of one, src/engine/gpu/layout.ts) defines
//   fn dq_unit(bo: u32, u: u32) -> array<vec4f, 8>
// returning elements [32u, 32u + 32) of the block that starts at byte `bo` of `w`, element e in
// v[e / 4][e % 4], each value exactly what the TypeScript dequantize() of src/formats/quant/
// stores (the products are exact in f32 and round once, as there). Blocks of 32 or more elements
// hold blockSize/32 units; the unquantized types (blockSize 1) are read as 32-element units of 32
// blocks, and a row's last unit may run past the row: the caller ignores the extra elements (they
// may be any bits, NaN included).

/** A byte as a signed (int8) value. */
fn sext8(b: u32) -> i32 {
  return bitcast<i32>(b << 24u) >> 24u;
}

/** 16.0 where bit (start + c) of `bits` is set, for c = 0..3 (the fifth bit of a 5-bit value). */
fn bit16x4(bits: u32, start: u32) -> vec4f {
  return vec4f((vec4u(bits) >> (vec4u(start) + vec4u(0u, 1u, 2u, 3u))) & vec4u(1u)) * 16.0;
}

/** get_scale_min_k4 (Q4_K, Q5_K): 6-bit scale and min of sub-block j from the 12 bytes at sb. */
fn scale_min_k4(sb: u32, j: u32) -> vec2u {
  if (j < 4u) { return vec2u(ld8(sb + j) & 63u, ld8(sb + j + 4u) & 63u); }
  let b = ld8(sb + j + 4u);
  return vec2u((b & 15u) | ((ld8(sb + j - 4u) >> 6u) << 4u), (b >> 4u) | ((ld8(sb + j) >> 6u) << 4u));
}
