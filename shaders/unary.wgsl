// Elementwise activations on a dense f32 buffer: y[i] = f(x[i]).
// Layout: flat; one invocation per element (entry point: shaders/lib/elementwise.wgsl).
// ACTIVATION picks the function when the pipeline is created, so each
// specialization compiles to a single straight-line body.

override ACTIVATION: u32 = 1u; // a code of shaders/lib/activation.wgsl

struct Params {
  n: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

//! include activation

//! include elementwise

// Element i of the output.
fn element(i: u32) {
  y[i] = activate(x[i], ACTIVATION);
}
