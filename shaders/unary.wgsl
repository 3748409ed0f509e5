// Elementwise activations on a dense f32 buffer: y[i] = f(x[i]).
// Layout: flat; one invocation per element. The grid is 2-D because a
// dimension holds at most 65535 workgroups: i = gid.x + gid.y * nwg.x * WG.
// ACTIVATION picks the function when the pipeline is created, so each
// specialization compiles to a single straight-line body.

override ACTIVATION: u32 = 1u; // a code of shaders/lib/activation.wgsl
override WORKGROUP_SIZE: u32 = 256u;

struct Params {
  n: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

//! include activation

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WORKGROUP_SIZE;
  if (i >= params.n) {
    return;
  }
  y[i] = activate(x[i], ACTIVATION);
}
