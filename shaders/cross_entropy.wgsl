// Softmax cross-entropy, forward and backward in one pass, for logits
// [rows, K] (dense, row-major) and integer labels [rows]:
//   log p_j = (x_j − m) − log Σ_k exp(x_k − m),  m = max_k x_k
//   loss_row = (1 − ε)·(−log p_label) + ε·mean_k(−log p_k)
//   dlogits_j = (p_j − (1 − ε)·[j = label] − ε/K) · grad_scale
// A label outside [0, K) is never used as an index: that row's loss and
// dlogits are NaN, so the mistake shows in the loss instead of silently
// training on garbage.
//
// `per_row` — tiling as the softmax kernel with LANES_FASTEST: a workgroup
//   of WORKGROUP_SIZE threads owns WORKGROUP_SIZE / LANES rows; the LANES
//   threads of a row stride along it (neighbouring threads, neighbouring
//   addresses) and combine by trees in workgroup memory: first the max, then
//   (Σ exp(x − m), Σ (x − m)) by shaders/lib/column_tree.wgsl. Writes
//   dlogits and row_loss[row].
//   Grid 2-D: row group = wid.x + wid.y · nwg.x.
// `reduce_rows` — one workgroup: thread t sums row_loss[t], row_loss[t +
//   WORKGROUP_SIZE], … in order, then a fixed tree; loss[0] = total ·
//   loss_scale. The same inputs always give the same bits (no atomics).
// Every binding appears in both entries' layouts.

override WORKGROUP_SIZE: u32 = 256u;
override LANES: u32 = 256u; // `per_row`: threads per row, a power of two dividing WORKGROUP_SIZE
const LANES_FASTEST = true; // rows are contiguous

struct Params {
  rows: u32,
  classes: u32,
  smoothing: f32,
  grad_scale: f32,
  loss_scale: f32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<i32>;
@group(0) @binding(2) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(3) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> loss: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

// A quiet NaN; a private variable rather than a constant because WGSL
// rejects non-finite constant expressions.
var<private> nan_bits: u32 = 0x7fc00000u;

//! include column_sum

@compute @workgroup_size(WORKGROUP_SIZE)
fn per_row(at: AxisInvocation) {
  let column = axis_column(at);
  let row = column.index;
  let k = params.classes;
  let span = column_span(column, params.rows, k, 1u);

  var m = -3.4028234e38;
  for (var j = column.lane; j < span.count; j += LANES) {
    m = max(m, logits[span.base + j]);
  }
  partial[column.slot] = vec2(m, 0.0);
  workgroupBarrier();
  for (var stride = LANES / 2u; stride > 0u; stride = stride / 2u) {
    if (column.lane < stride) {
      partial[column.slot].x = max(partial[column.slot].x, partial[column.slot + stride].x);
    }
    workgroupBarrier();
  }
  m = partial[column.slot - column.lane].x;
  // The sums below overwrite `partial`; everyone must have read the max first.
  workgroupBarrier();

  var acc = vec2(0.0);
  for (var j = column.lane; j < span.count; j += LANES) {
    let d = logits[span.base + j] - m;
    acc += vec2(exp(d), d);
  }
  let sums = column_total(column, acc);
  if (row >= params.rows) {
    return;
  }

  let label = labels[row];
  let valid = label >= 0 && u32(label) < k;
  let nan = bitcast<f32>(nan_bits);
  let eps = params.smoothing;
  let log_sum = log(sums.x);
  let inv_sum = 1.0 / sums.x;
  let off_target = eps / f32(k);
  for (var j = column.lane; j < span.count; j += LANES) {
    let p = exp(logits[span.base + j] - m) * inv_sum;
    let smoothed_target = select(off_target, off_target + 1.0 - eps, i32(j) == label);
    dlogits[span.base + j] = select(nan, (p - smoothed_target) * params.grad_scale, valid);
  }
  if (column.lane == 0u) {
    var v = nan;
    if (valid) {
      let nll = log_sum - (logits[span.base + u32(label)] - m);
      let uniform_nll = log_sum - sums.y / f32(k);
      v = (1.0 - eps) * nll + eps * uniform_nll;
    }
    row_loss[row] = v;
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn reduce_rows(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var r = lid; r < params.rows; r += WORKGROUP_SIZE) {
    s += row_loss[r];
  }
  partial[lid] = vec2(s, 0.0);
  workgroupBarrier();
  for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride = stride / 2u) {
    if (lid < stride) {
      partial[lid].x = partial[lid].x + partial[lid + stride].x;
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    loss[0] = partial[0].x * params.loss_scale;
  }
}
