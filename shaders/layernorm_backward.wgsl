// Backward of layerNorm over the last axis of x [rows, C], given the forward
// pass's saved per-row mean and rstd = 1/sqrt(var + eps):
//   x̂ = (x − mean)·rstd,  g = dy·γ (dy without γ)
//   dx = rstd · (g − mean_C(g) − x̂ · mean_C(g·x̂))
//   dγ = Σ_rows dy·x̂,     dβ = Σ_rows dy
// Three entry points:
//
// `input_grad` — dx. Tiling as the forward kernel (LANES_FASTEST case): a
//   workgroup of WORKGROUP_SIZE threads owns WORKGROUP_SIZE / LANES rows, the
//   LANES threads of a row stride along it (neighbouring threads read
//   neighbouring addresses), reduce (Σg, Σg·x̂) by a tree in workgroup memory,
//   then write dx. Grid 2-D: row group = wid.x + wid.y · nwg.x.
//
// `param_partials` — pass 1 of dγ/dβ. WGSL has no float atomics, so the sum
//   over rows is a deterministic two-pass reduction. The rows are cut into
//   `blocks` blocks of `rows_per_block`; workgroup (wid.x, wid.y) covers
//   PARAM_COLS columns × block wid.y. Thread (lane, col) = (lid / PARAM_COLS,
//   lid % PARAM_COLS) walks rows lane, lane + PARAM_LANES, … of the block, so
//   a row's PARAM_COLS columns are read by neighbouring threads (coalesced);
//   the PARAM_LANES partials are summed in a fixed order in workgroup memory
//   and written to partials[block · C + c] = (Σ dy·x̂, Σ dy).
//
// `param_final` — pass 2: one thread per column sums its `blocks` partials in
//   block order (neighbouring threads, neighbouring addresses). The flat grid
//   of shaders/lib/linear_grid.wgsl.
//
// Every binding appears in every entry's layout; the host binds scratch
// buffers to outputs an entry does not write.

override WORKGROUP_SIZE: u32 = 256u;
override LANES: u32 = 256u; // `input_grad`: threads per row, a power of two dividing WORKGROUP_SIZE
const LANES_FASTEST = true; // rows are contiguous
override HAS_GAMMA: bool = false;

const PARAM_COLS: u32 = 64u;
const PARAM_LANES: u32 = 4u; // PARAM_COLS · PARAM_LANES = 256 threads

struct Params {
  rows: u32,
  channels: u32,
  rows_per_block: u32,
  blocks: u32,
}

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> mean: array<f32>;
@group(0) @binding(3) var<storage, read> rstd: array<f32>;
@group(0) @binding(4) var<storage, read> gamma: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<storage, read_write> partials: array<vec2<f32>>; // [blocks, C]
@group(0) @binding(7) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(8) var<storage, read_write> dbeta: array<f32>;
@group(0) @binding(9) var<uniform> params: Params;

// `partial` holds `input_grad`'s row tree and `param_partials`' per-lane sums
// (that entry runs with WORKGROUP_SIZE at its default 256 = PARAM_COLS · PARAM_LANES).
//! include column_sum

@compute @workgroup_size(WORKGROUP_SIZE)
fn input_grad(at: AxisInvocation) {
  let column = axis_column(at);
  let row = column.index;
  let c = params.channels;
  let span = column_span(column, params.rows, c, 1u);
  var m = 0.0;
  var rs = 0.0;
  if (row < params.rows) {
    m = mean[row];
    rs = rstd[row];
  }

  var acc = vec2(0.0);
  for (var j = column.lane; j < span.count; j += LANES) {
    var g = dy[span.base + j];
    if (HAS_GAMMA) {
      g *= gamma[j];
    }
    acc += vec2(g, g * (x[span.base + j] - m) * rs);
  }
  let sums = column_total(column, acc) / f32(c);

  for (var j = column.lane; j < span.count; j += LANES) {
    var g = dy[span.base + j];
    if (HAS_GAMMA) {
      g *= gamma[j];
    }
    let xhat = (x[span.base + j] - m) * rs;
    dx[span.base + j] = rs * (g - sums.x - xhat * sums.y);
  }
}

@compute @workgroup_size(256)
fn param_partials(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let col = lid % PARAM_COLS;
  let lane = lid / PARAM_COLS;
  let c = wid.x * PARAM_COLS + col;
  let row_block = wid.y;
  let row_begin = row_block * params.rows_per_block;
  let row_end = min(row_begin + params.rows_per_block, params.rows);
  var acc = vec2(0.0);
  if (c < params.channels) {
    for (var r = row_begin + lane; r < row_end; r += PARAM_LANES) {
      let i = r * params.channels + c;
      let d = dy[i];
      acc += vec2(d * (x[i] - mean[r]) * rstd[r], d);
    }
  }
  partial[lid] = acc;
  workgroupBarrier();
  if (lane == 0u && c < params.channels) {
    var total = partial[col];
    for (var l = 1u; l < PARAM_LANES; l++) {
      total += partial[l * PARAM_COLS + col];
    }
    partials[row_block * params.channels + c] = total;
  }
}

//! include linear_grid

@compute @workgroup_size(WORKGROUP_SIZE)
fn param_final(at: LinearInvocation) {
  let c = linear_index(at);
  if (c >= params.channels) {
    return;
  }
  var total = vec2(0.0);
  for (var b = 0u; b < params.blocks; b++) {
    total += partials[b * params.channels + c];
  }
  dgamma[c] = total.x;
  dbeta[c] = total.y;
}
