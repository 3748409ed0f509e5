// Softmax along one axis of a dense f32 tensor viewed as [outer, axis, inner]:
// each (outer, inner) pair is a "column" of `axis` elements (inner = 1 for
// the last axis) and y = exp(x − max) / Σ exp(x − max) over the column.
//
// Tiling: a workgroup of WORKGROUP_SIZE threads owns COLS = WORKGROUP_SIZE /
// LANES consecutive columns. The LANES threads of a column stride along the
// axis, then combine their partials by the tree of shaders/lib/column_tree.wgsl.
//   LANES_FASTEST (inner = 1): neighbouring threads are neighbouring lanes of
//     one row and read neighbouring addresses; several short rows share a
//     workgroup when the row is shorter than WORKGROUP_SIZE.
//   otherwise (inner > 1): neighbouring threads are neighbouring columns,
//     which are neighbouring addresses along `inner`.
// The grid is 2-D (65535 workgroups per dimension at most):
// workgroup = wid.x + wid.y · nwg.x.
//
// Two passes over the data ("online softmax", Milakov & Gimelshein 2018):
// pass 1 keeps a running (max m, Σ exp(x − m)) per thread, rescaling the sum
// whenever m grows, and the tree merges those pairs; pass 2 writes.
// Infinities: −inf elements contribute exp(−inf) = 0, and a column whose
// every element is −inf (a fully masked row) is written as zeros. A +inf or
// NaN in a column makes that column NaN, as in PyTorch. −inf is recognised
// by its bit pattern so the test survives compilers that assume finite math.

override WORKGROUP_SIZE: u32 = 256u;
override LANES: u32 = 256u; // threads per column, a power of two dividing WORKGROUP_SIZE
override LANES_FASTEST: bool = true;

struct Params {
  columns: u32,
  axis: u32,
  inner: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

// (running max, Σ exp(x − running max)) per thread.
alias Partial = vec2<f32>;
var<workgroup> partial: array<Partial, WORKGROUP_SIZE>;

fn is_neg_inf(v: f32) -> bool {
  return bitcast<u32>(v) == 0xff800000u;
}

// Merges two (max, sum) pairs; a pair whose max is −inf holds no mass.
fn combine(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  let m = max(a.x, b.x);
  if (is_neg_inf(m)) {
    return a;
  }
  let sa = select(a.y * exp(a.x - m), 0.0, is_neg_inf(a.x));
  let sb = select(b.y * exp(b.x - m), 0.0, is_neg_inf(b.x));
  return vec2(m, sa + sb);
}

//! include column_tree

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(at: AxisInvocation) {
  let column = axis_column(at);
  let in_range = column.index < params.columns;
  let span = column_span(column, params.columns, params.axis, params.inner);

  // Start from (first element, no mass) rather than (−inf, 0): WGSL rejects a
  // constant −inf, and combine() treats either the same way.
  var run = vec2(0.0);
  if (in_range) {
    run.x = x[span.base];
  }
  for (var r = column.lane; r < span.count; r += LANES) {
    let v = x[span.base + r * params.inner];
    if (is_neg_inf(v)) {
      continue;
    }
    if (v > run.x) {
      run = vec2(v, select(run.y * exp(run.x - v), 0.0, is_neg_inf(run.x)) + 1.0);
    } else {
      run.y += exp(v - run.x);
    }
  }
  let total = column_total(column, run);
  let masked = is_neg_inf(total.x);
  let inv_sum = 1.0 / total.y;

  for (var r = column.lane; r < span.count; r += LANES) {
    let i = span.base + r * params.inner;
    y[i] = select(exp(x[i] - total.x) * inv_sum, 0.0, masked);
  }
}
