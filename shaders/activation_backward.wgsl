// Backward of the elementwise activations: dx[i] = dy[i] · f'(x[i]), with
// f' from shaders/lib/activation_grad.wgsl evaluated at the forward input x.
// Layout: flat, dense; one invocation per element. The grid is 2-D because a
// dimension holds at most 65535 workgroups: i = gid.x + gid.y * nwg.x * WG.
// ACTIVATION picks the derivative when the pipeline is created.

override ACTIVATION: u32 = 1u; // a code of shaders/lib/activation.wgsl
override WORKGROUP_SIZE: u32 = 256u;

struct Params {
  n: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

//! include activation_grad

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WORKGROUP_SIZE;
  if (i >= params.n) {
    return;
  }
  dx[i] = dy[i] * activate_grad(x[i], ACTIVATION);
}
