// Backward of the elementwise activations: dx[i] = dy[i] · f'(x[i]), with
// f' from shaders/lib/activation_grad.wgsl evaluated at the forward input x.
// Layout: flat, dense; one invocation per element (entry point:
// shaders/lib/elementwise.wgsl).
// ACTIVATION picks the derivative when the pipeline is created.

override ACTIVATION: u32 = 1u; // a code of shaders/lib/activation.wgsl

struct Params {
  n: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

//! include activation_grad

//! include elementwise

// Element i of the output.
fn element(i: u32) {
  dx[i] = dy[i] * activate_grad(x[i], ACTIVATION);
}
