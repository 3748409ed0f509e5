// The flat grid of the kernels that run one invocation per element: a
// dimension holds at most 65535 workgroups, so src/kernels/program.ts
// linearGrid spreads a long launch over x and y and element
// i = gid.x + gid.y · nwg.x · WORKGROUP_SIZE (past the end on the last row).
// The includer declares the override WORKGROUP_SIZE and takes
// `at: LinearInvocation` in its entry point.

struct LinearInvocation {
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
}

fn linear_index(at: LinearInvocation) -> u32 {
  return at.gid.x + at.gid.y * at.nwg.x * WORKGROUP_SIZE;
}
