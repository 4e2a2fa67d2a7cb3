// Entry point of matvec.wgsl without subgroups: every team meets in workgroup memory.

fn lane_sum(v: f32, width: u32) -> f32 { return v; }

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3u) {
  matvec(li, wid.y * p.gridX + wid.x, 1u);
}
