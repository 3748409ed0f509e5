// Top-k (and argmax = top-1) along one axis of a dense f32 tensor viewed as
// [outer, axis, inner]: each (outer, inner) pair is a "column" of `axis`
// elements. Outputs are [outer, k, inner]: the k largest values in
// descending order and their positions along the axis (i32).
//
// Order: every value maps to a u32 key that sorts like the float (−0 = +0,
// NaN above +inf, as numpy/PyTorch argmax), and equal keys sort by lower
// index first — a strict total order, so the result is unique.
//
// Selection: k rounds; round t finds, by a tree in workgroup memory, the
// first element in that order among those after the one chosen in round
// t − 1. It needs no per-element state, costs k · axis / LANES reads per
// thread, and suits small k (classification top-5, k ≤ 64); the TypeScript
// side caps k. With CACHE_LEN > 1 round 0 also stores each key in workgroup
// memory (COLS · axis ≤ CACHE_LEN), so later rounds never touch global
// memory; each thread rereads only the keys it stored itself.
//
// Tiling: a workgroup of WORKGROUP_SIZE threads owns COLS = WORKGROUP_SIZE /
// LANES consecutive columns. The LANES threads of a column stride along the
// axis, then combine their candidates by a tree in workgroup memory.
//   LANES_FASTEST (inner = 1): neighbouring threads are neighbouring lanes of
//     one row and read neighbouring addresses; several short rows share a
//     workgroup when the row is shorter than WORKGROUP_SIZE.
//   otherwise (inner > 1): neighbouring threads are neighbouring columns,
//     which are neighbouring addresses along `inner`.
// The grid is 2-D (65535 workgroups per dimension at most):
// workgroup = wid.x + wid.y · nwg.x.

override WORKGROUP_SIZE: u32 = 256u;
override LANES: u32 = 256u; // threads per column, a power of two dividing WORKGROUP_SIZE
override LANES_FASTEST: bool = true;
override WRITE_VALUES: bool = true; // argmax binds a placeholder and wants only indices
override CACHE_LEN: u32 = 1u;

struct Params {
  columns: u32,
  axis: u32,
  inner: u32,
  k: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> values: array<f32>;
@group(0) @binding(2) var<storage, read_write> indices: array<i32>;
@group(0) @binding(3) var<uniform> params: Params;

// A lane's best candidate so far: (order key, index along the axis).
alias Partial = vec2<u32>;
var<workgroup> partial: array<Partial, WORKGROUP_SIZE>;
var<workgroup> key_cache: array<u32, CACHE_LEN>;

// An index after every real one: a thread with no candidate loses every comparison.
const NONE: u32 = 0xffffffffu;

fn order_key(v: f32) -> u32 {
  let b = bitcast<u32>(v);
  let magnitude = b & 0x7fffffffu;
  if (magnitude > 0x7f800000u) {
    return 0xffffffffu; // NaN: above +inf (0xff800000)
  }
  if (magnitude == 0u) {
    return 0x80000000u; // −0 sorts with +0
  }
  // Positive floats sort like their bits; negative ones reversed, below all positives.
  return select(b | 0x80000000u, ~b, b != magnitude);
}

// Whether (key a, index ia) comes before (key b, index ib): larger key first, then lower index.
fn before(a: u32, ia: u32, b: u32, ib: u32) -> bool {
  return a > b || (a == b && ia < ib);
}

fn combine(a: Partial, b: Partial) -> Partial {
  return select(a, b, before(b.x, b.y, a.x, a.y));
}

//! include column_tree

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(at: AxisInvocation) {
  let column = axis_column(at);
  let span = column_span(column, params.columns, params.axis, params.inner);
  let n = params.axis;
  let inner = params.inner;
  let cached = CACHE_LEN > 1u;

  var prev_key = 0u;
  var prev_index = NONE;
  for (var t = 0u; t < params.k; t++) {
    var best_key = 0u;
    var best_index = NONE;
    for (var r = column.lane; r < span.count; r += LANES) {
      var key: u32;
      if (cached && t > 0u) {
        key = key_cache[column.local * n + r];
      } else {
        key = order_key(x[span.base + r * inner]);
        if (cached) {
          key_cache[column.local * n + r] = key;
        }
      }
      if ((t == 0u || before(prev_key, prev_index, key, r)) && before(key, r, best_key, best_index)) {
        best_key = key;
        best_index = r;
      }
    }
    let best = column_total(column, vec2(best_key, best_index));
    prev_key = best.x;
    prev_index = best.y;
    if (column.index < params.columns && column.lane == 0u) {
      let o = column.index / inner;
      let out_at = (o * params.k + t) * inner + column.index % inner;
      indices[out_at] = i32(prev_index);
      if (WRITE_VALUES) {
        values[out_at] = x[span.base + prev_index * inner];
      }
    }
  }
}
