// The entry point `main` of the elementwise kernels: one invocation per
// element on the flat grid of shaders/lib/linear_grid.wgsl, calling the
// includer's `fn element(i: u32)` for every i < params.n.
// The includer declares the uniform `params` with a u32 field `n`, and
// `element`; the pipeline may override WORKGROUP_SIZE.

override WORKGROUP_SIZE: u32 = 256u;

//! include linear_grid

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(at: LinearInvocation) {
  let i = linear_index(at);
  if (i < params.n) {
    element(i);
  }
}
