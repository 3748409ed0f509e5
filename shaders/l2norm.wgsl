// L2 normalization over the last axis of x [rows, C] (CLIP's image/text
// embeddings before cosine logits), as torch.nn.functional.normalize:
//   n = ‖x‖₂,  y = x / max(n, eps)
// and its backward given dy:
//   n > eps:  dx = (dy − y·(y·dy)) / n = dy / n − x·(x·dy) / n³
//   n ≤ eps:  dx = dy / eps            (the divisor is the constant eps)
//
// Tiling as the forward layerNorm/softmax kernels with LANES_FASTEST: a
// workgroup of WORKGROUP_SIZE threads owns WORKGROUP_SIZE / LANES rows; the
// LANES threads of a row stride along it (neighbouring threads, neighbouring
// addresses) and combine (Σx², Σx·dy) by the tree of
// shaders/lib/column_tree.wgsl, then write the row. Grid 2-D: row group = wid.x + wid.y · nwg.x.
// Entry `forward` writes y into `out` and ignores dy; `backward` writes dx.

override WORKGROUP_SIZE: u32 = 256u;
override LANES: u32 = 256u; // threads per row, a power of two dividing WORKGROUP_SIZE
const LANES_FASTEST = true; // rows are contiguous

struct Params {
  rows: u32,
  channels: u32,
  eps: f32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

//! include column_sum

@compute @workgroup_size(WORKGROUP_SIZE)
fn forward(at: AxisInvocation) {
  let column = axis_column(at);
  let row = column_span(column, params.rows, params.channels, 1u);
  var sq = 0.0;
  for (var j = column.lane; j < row.count; j += LANES) {
    let v = x[row.base + j];
    sq += v * v;
  }
  let inv = 1.0 / max(sqrt(column_total(column, vec2(sq, 0.0)).x), params.eps);
  for (var j = column.lane; j < row.count; j += LANES) {
    out[row.base + j] = x[row.base + j] * inv;
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn backward(at: AxisInvocation) {
  let column = axis_column(at);
  let row = column_span(column, params.rows, params.channels, 1u);
  var acc = vec2(0.0);
  for (var j = column.lane; j < row.count; j += LANES) {
    let v = x[row.base + j];
    acc += vec2(v * v, v * dy[row.base + j]);
  }
  let sums = column_total(column, acc);
  let n = sqrt(sums.x);
  if (n > params.eps) {
    let inv = 1.0 / n;
    // x·(x·dy)/n³ as (x/n)·((x·dy)/n)/n keeps every factor in range.
    let proj = sums.y * inv * inv;
    for (var j = column.lane; j < row.count; j += LANES) {
      out[row.base + j] = (dy[row.base + j] - x[row.base + j] * proj) * inv;
    }
  } else {
    let inv_eps = 1.0 / params.eps;
    for (var j = column.lane; j < row.count; j += LANES) {
      out[row.base + j] = dy[row.base + j] * inv_eps;
    }
  }
}
