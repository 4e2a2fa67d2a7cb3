// Reading a repacked weight buffer (src/engine/gpu/layout.ts: Q4_0_X8, Q8_0_X8) from
// `w: array<WeightWord>` (declared by the kernel that includes this file), with WeightWord = vec4u:
// the layout starts every run of quants at a multiple of 16 bytes, so a run is read as whole vec4u
// words, one 128-bit load each, where bytes.wgsl loads five u32 and funnel-shifts them. The same
// names as bytes.wgsl where the meaning is the same (f16at, ld8), so types/common.wgsl works on
// either.

alias WeightWord = vec4u;

/** The 16 bytes at byte offset b, a multiple of 16, as four little-endian words. */
fn ld128a(b: u32) -> vec4u {
  return w[b >> 4u];
}

/** The 4 bytes at byte offset b, a multiple of 4. */
fn ld32a(b: u32) -> u32 {
  return w[b >> 4u][(b >> 2u) & 3u];
}

/** The byte at offset b. */
fn ld8(b: u32) -> u32 {
  return (ld32a(b & ~3u) >> ((b & 3u) << 3u)) & 0xffu;
}

/** The f16 at byte offset b (b even), widened to f32. */
fn f16at(b: u32) -> f32 {
  return unpack2x16float(ld32a(b & ~3u) >> ((b & 2u) << 3u)).x;
}
