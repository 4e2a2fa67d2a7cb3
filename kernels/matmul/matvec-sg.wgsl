// Entry point of matvec.wgsl with subgroups (the wrapper puts `enable subgroups;` first).
// Subgroups need not be laid out along local_invocation_index, so each subgroup takes a number
// from a workgroup counter and its threads are renumbered subgroup by subgroup: a team of up to
// subgroup_size lanes then lies inside one subgroup, lanes in the order of subgroup_invocation_id.

var<workgroup> subgroupsSeen: atomic<u32>;

/** The sum of v over `width` lanes (a power of two ≤ subgroup size) aligned in the subgroup. */
fn lane_sum(v: f32, width: u32) -> f32 {
  var s = v;
  for (var m = width >> 1u; m > 0u; m >>= 1u) { s += subgroupShuffleXor(s, m); }
  return s;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u,
        @builtin(subgroup_invocation_id) sgl: u32, @builtin(subgroup_size) sgs: u32) {
  var id = 0u;
  if (subgroupElect()) { id = atomicAdd(&subgroupsSeen, 1u); }
  let sgi = subgroupBroadcastFirst(id);
  matvec(sgi * sgs + sgl, wid.y * p.gridX + wid.x, sgs);
}
