// Row gather (embedding lookup): y[k, j] = table[indices[k], j] for a table
// viewed as [vocab, row] (row = product of the trailing axes) and the indices
// flattened to k. Words are copied as u32, so f32/i32/u32 tables all work.
// Out-of-range indices (< 0 or >= vocab; no negative wrap-around) write
// zero words: the indices live on the GPU, so the host cannot check them, and
// an unguarded read would be undefined.
// Layout: one invocation per output word, i = k·row + j, so a row is read and
// written by consecutive invocations (coalesced). Entry point:
// shaders/lib/elementwise.wgsl.

struct Params {
  n: u32,
  row: u32,
  vocab: u32,
}

@group(0) @binding(0) var<storage, read> table: array<u32>;
@group(0) @binding(1) var<storage, read> indices: array<i32>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;
@group(0) @binding(3) var<uniform> params: Params;

//! include elementwise

// Element i of the output.
fn element(i: u32) {
  let k = i / params.row;
  let j = i - k * params.row;
  let index = indices[k];
  if (index < 0 || u32(index) >= params.vocab) {
    y[i] = 0u;
  } else {
    y[i] = table[u32(index) * params.row + j];
  }
}
