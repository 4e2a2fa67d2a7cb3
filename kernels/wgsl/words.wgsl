// Values packed in a weight word, whichever way it was read (bytes.wgsl, bytes16.wgsl): no access
// to the weight buffer here.

/** The four bytes of word q, as unsigned values. */
fn bytes4(q: u32) -> vec4u {
  return (vec4u(q) >> vec4u(0u, 8u, 16u, 24u)) & vec4u(0xffu);
}

/** The four bytes of word q, as signed (int8) values. */
fn sbytes4(q: u32) -> vec4f {
  return vec4f(bitcast<vec4i>(vec4u(q) << vec4u(24u, 16u, 8u, 0u)) >> vec4u(24u));
}

/** The low nibbles of the four bytes of q. */
fn lo4(q: u32) -> vec4f {
  return vec4f((vec4u(q) >> vec4u(0u, 8u, 16u, 24u)) & vec4u(0xfu));
}

/** The high nibbles of the four bytes of q. */
fn hi4(q: u32) -> vec4f {
  return vec4f((vec4u(q) >> vec4u(4u, 12u, 20u, 28u)) & vec4u(0xfu));
}
