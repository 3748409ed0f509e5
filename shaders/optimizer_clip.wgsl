// Gradient clipping by global L2 norm (PyTorch clip_grad_norm_ with p = 2):
//   norm = √(Σ over all tensors and elements of g²)
//   g ← g · min(1, max_norm / (norm + 1e-6))   in place, every tensor
// WGSL has no float atomics, so the sum is a deterministic two-level
// reduction with a fixed order; three entry points, dispatched in sequence:
//
// `sum_squares` — once per gradient tensor: workgroup w (2-D grid,
//   w = wid.x + wid.y · nwg.x) covers elements [w·TILE, (w+1)·TILE),
//   TILE = WORKGROUP_SIZE · ITEMS_PER_THREAD; thread `lid` reads
//   w·TILE + k·WORKGROUP_SIZE + lid for k < ITEMS_PER_THREAD (neighbouring
//   threads, neighbouring addresses), then a tree in workgroup memory sums the
//   threads' partials and the workgroup writes partials[offset + w]. Each
//   tensor owns a disjoint range of `partials` starting at `offset`.
// `finish` — one workgroup: thread `lid` sums partials lid, lid + WG, … below
//   `count`, a tree combines the threads, and norm[0] = √total.
// `scale` — once per gradient tensor, one invocation per element (the flat
//   grid of shaders/lib/linear_grid.wgsl): multiplies by the clip
//   coefficient when it is below 1. A non-finite norm (a NaN or ±inf
//   gradient, or overflow) leaves the gradients unchanged: the caller reads
//   the norm and skips the step.
//
// Every binding appears in every entry's layout, so `norm` is read_write
// even in `scale`, which only reads it (it is a separate binding from the
// gradient that `scale` rewrites).

override WORKGROUP_SIZE: u32 = 256u; // a power of two, at most 256 (the size of `tree`)
override ITEMS_PER_THREAD: u32 = 16u;

struct Params {
  n: u32, // elements of this gradient (sum_squares, scale)
  offset: u32, // this gradient's first slot in `partials` (sum_squares)
  count: u32, // partials in use (finish)
  max_norm: f32, // (scale)
}

@group(0) @binding(0) var<storage, read_write> grad: array<f32>;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> norm: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

var<workgroup> tree: array<f32, 256>;

// Sums tree[0 .. WORKGROUP_SIZE) into tree[0]; every thread must call it.
fn reduce_tree(lid: u32) {
  workgroupBarrier();
  for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride = stride / 2u) {
    if (lid < stride) {
      tree[lid] = tree[lid] + tree[lid + stride];
    }
    workgroupBarrier();
  }
}

fn is_finite(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sum_squares(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let w = wid.x + wid.y * nwg.x;
  let base = w * WORKGROUP_SIZE * ITEMS_PER_THREAD + lid;
  var acc = 0.0;
  for (var k = 0u; k < ITEMS_PER_THREAD; k++) {
    let i = base + k * WORKGROUP_SIZE;
    if (i < params.n) {
      let g = grad[i];
      acc += g * g;
    }
  }
  tree[lid] = acc;
  reduce_tree(lid);
  // The 2-D grid may hold a few workgroups past the tensor's last tile.
  if (lid == 0u && w * WORKGROUP_SIZE * ITEMS_PER_THREAD < params.n) {
    partials[params.offset + w] = tree[0];
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn finish(@builtin(local_invocation_index) lid: u32) {
  var acc = 0.0;
  for (var j = lid; j < params.count; j += WORKGROUP_SIZE) {
    acc += partials[j];
  }
  tree[lid] = acc;
  reduce_tree(lid);
  if (lid == 0u) {
    norm[0] = sqrt(tree[0]);
  }
}

//! include linear_grid

@compute @workgroup_size(WORKGROUP_SIZE)
fn scale(at: LinearInvocation) {
  let i = linear_index(at);
  let total = norm[0];
  let coefficient = params.max_norm / (total + 1e-6);
  if (i >= params.n || !is_finite(total) || coefficient >= 1.0) {
    return;
  }
  grad[i] = grad[i] * coefficient;
}
