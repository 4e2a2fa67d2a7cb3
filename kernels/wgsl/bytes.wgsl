// Reading a tensor's stored bytes from `w: array<WeightWord>` (declared by the kernel that includes
// this file, bound whole), with WeightWord = u32. Quantized blocks are 18, 22, 34, 110 or 210 bytes
// long, so a block, and the fields inside it, may start at any even byte: every read takes a byte
// offset and funnels two words together when the offset is not a multiple of 4. Little-endian, as
// in GGUF. The repacked layouts (src/engine/gpu/layout.ts) use bytes16.wgsl instead; words.wgsl
// turns the words read into values.

alias WeightWord = u32;

/** 4 bytes at byte offset b (any alignment). */
fn ld32(b: u32) -> u32 {
  let i = b >> 2u;
  let s = (b & 3u) << 3u;
  let lo = w[i];
  if (s == 0u) { return lo; }
  return (lo >> s) | (w[i + 1u] << (32u - s));
}

/** 16 bytes at byte offset b (any alignment), as four little-endian words. */
fn ld128(b: u32) -> vec4u {
  let i = b >> 2u;
  let s = (b & 3u) << 3u;
  let a = vec4u(w[i], w[i + 1u], w[i + 2u], w[i + 3u]);
  if (s == 0u) { return a; }
  let next = vec4u(a.yzw, w[i + 4u]);
  return (a >> vec4u(s)) | (next << vec4u(32u - s));
}

/** The byte at offset b. */
fn ld8(b: u32) -> u32 {
  return (w[b >> 2u] >> ((b & 3u) << 3u)) & 0xffu;
}

/** The f16 at byte offset b (b even), widened to f32. */
fn f16at(b: u32) -> f32 {
  return unpack2x16float(w[b >> 2u] >> ((b & 2u) << 3u)).x;
}

/** The f32 at byte offset b (any alignment). */
fn f32at(b: u32) -> f32 {
  return bitcast<f32>(ld32(b));
}
