// Layer normalization of a dense f32 tensor viewed as [outer, axis, inner]:
// each (outer, inner) pair is a "column" of `axis` elements, normalised to
// zero mean and unit variance, then scaled by gamma[r] and shifted by beta[r]
// (r = position along the axis).
//   layerNorm (last axis):          inner = 1, one column per row.
//   layerNorm2d (SAM, [N, C, H, W]): axis = C, inner = H·W.
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
// Numerics: corrected two-pass (Chan, Golub & LeVeque). Pass 1: m = Σx / n.
// Pass 2 reduces Σd and Σd² for d = x − m; then mean = m + Σd/n and
// var = Σd²/n − (Σd/n)², accurate for rows such as 1e4 ± 1 where one-pass
// E[x²] − E[x]² loses every digit in f32. Pass 3 writes
// y = ((x − m) − Σd/n) · rstd · γ + β, so the large mean is never re-rounded
// into y. The row is read three times; the later passes hit the cache.

override WORKGROUP_SIZE: u32 = 256u;
override LANES: u32 = 256u; // threads per column, a power of two dividing WORKGROUP_SIZE
override LANES_FASTEST: bool = true;
override HAS_GAMMA: bool = false;
override HAS_BETA: bool = false;
override STORE_STATS: bool = false; // write mean[column] and rstd[column]

struct Params {
  columns: u32,
  axis: u32,
  inner: u32,
  eps: f32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;

//! include column_sum

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(at: AxisInvocation) {
  let column = axis_column(at);
  let span = column_span(column, params.columns, params.axis, params.inner);
  let inv_n = 1.0 / f32(params.axis);

  var s = 0.0;
  for (var r = column.lane; r < span.count; r += LANES) {
    s += x[span.base + r * params.inner];
  }
  let m = column_total(column, vec2(s, 0.0)).x * inv_n;

  var acc = vec2(0.0);
  for (var r = column.lane; r < span.count; r += LANES) {
    let d = x[span.base + r * params.inner] - m;
    acc += vec2(d, d * d);
  }
  let dsum = column_total(column, acc);
  let shift = dsum.x * inv_n;
  let variance = max(dsum.y * inv_n - shift * shift, 0.0);
  let rs = inverseSqrt(variance + params.eps);

  for (var r = column.lane; r < span.count; r += LANES) {
    let i = span.base + r * params.inner;
    var v = (x[i] - m - shift) * rs;
    if (HAS_GAMMA) {
      v *= gamma[r];
    }
    if (HAS_BETA) {
      v += beta[r];
    }
    y[i] = v;
  }
  if (STORE_STATS && column.index < params.columns && column.lane == 0u) {
    mean[column.index] = m + shift;
    rstd[column.index] = rs;
  }
}
