// Sum or max over one axis of a dense f32 tensor viewed as
// [outer, axis, inner], in `chunks` pieces of `chunk` elements along the axis:
// y[(o · chunks + s) · inner + i] = reduce over r in [s·chunk, (s+1)·chunk) of
// x[(o · axis + r) · inner + i]. chunks = 1 is a plain one-axis reduction;
// the TypeScript side splits a long axis that has few outputs into chunks
// and reduces the partials in a second dispatch, and reduces several axes
// by one dispatch per block of adjacent reduced axes. Each output is one
// "column" (o, s, i).
//
// Tiling: a workgroup of WORKGROUP_SIZE threads owns COLS = WORKGROUP_SIZE /
// LANES consecutive columns. The LANES threads of a column stride along the
// axis, then combine their partials by the tree of shaders/lib/column_tree.wgsl
// — a fixed order, so results are deterministic (no atomics).
//   LANES_FASTEST (inner = 1): neighbouring threads are neighbouring lanes of
//     one column and read neighbouring addresses.
//   otherwise (inner > 1): neighbouring threads are neighbouring columns,
//     which are neighbouring addresses along `inner`.
// The grid is 2-D (65535 workgroups per dimension at most):
// workgroup = wid.x + wid.y · nwg.x.
//
// OP 0 sums and multiplies the result by `scale` (1/count for a mean's last
// dispatch). OP 1 takes the maximum; a NaN anywhere makes the result NaN, as
// torch.amax (NaN is recognised by its bits, not by comparisons).

override OP: u32 = 0u; // 0 sum, 1 max
override WORKGROUP_SIZE: u32 = 256u;
override LANES: u32 = 256u; // threads per column, a power of two dividing WORKGROUP_SIZE
override LANES_FASTEST: bool = true;

struct Params {
  columns: u32, // outer · chunks · inner
  axis: u32,
  inner: u32,
  chunks: u32,
  chunk: u32,
  scale: f32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

alias Partial = f32;
var<workgroup> partial: array<Partial, WORKGROUP_SIZE>;

fn is_nan(v: f32) -> bool {
  return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

fn combine(a: f32, b: f32) -> f32 {
  if (OP == 0u) {
    return a + b;
  }
  return select(select(max(a, b), b, is_nan(b)), a, is_nan(a));
}

//! include column_tree

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(at: AxisInvocation) {
  let column = axis_column(at);
  let lane = column.lane;
  let g = column.index;
  let in_range = g < params.columns;
  let inner = params.inner;
  let i = g % inner;
  let s = (g / inner) % params.chunks;
  let o = g / (inner * params.chunks);
  let base = o * params.axis * inner + i;
  let start = s * params.chunk;
  // Threads past the last column loop zero times but still reach every barrier.
  let end = select(start, min(params.axis, start + params.chunk), in_range);

  // The identity of max would be −inf, which WGSL cannot write as a constant;
  // the chunk's first element serves as well (max is idempotent).
  var acc = 0.0;
  if (OP == 1u && in_range) {
    acc = x[base + start * inner];
  }
  for (var r = start + lane; r < end; r += LANES) {
    acc = combine(acc, x[base + r * inner]);
  }
  let total = column_total(column, acc);
  if (in_range && lane == 0u) {
    y[g] = select(total, total * params.scale, OP == 0u);
  }
}
