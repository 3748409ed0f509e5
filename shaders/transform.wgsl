// Strided copy of 32-bit words: the one kernel behind permute, slice, pad and
// concat (f32, i32 and u32 alike, since it moves bits).
// The host describes a walk over an iteration shape (at most 8 axes, as vec4
// pairs lo = axes 0–3, hi = axes 4–7, outermost first) and, per axis, an
// element stride into src and into dst:
//   dst[dst_offset + Σ c_d·dst_stride_d] = src[src_offset + Σ (c_d − start_d)·src_stride_d]
// permute: the walk is dst's shape, src strides permuted; slice: src strides
// times the step, src_offset at the starts; concat: the walk is one input,
// dst strides those of the output, dst_offset where that input begins;
// pad (PADDED): the walk is dst's shape and, where some c_d falls outside
// the axis window [start_d, end_d), dst gets `fill` (the pad value's bits).
// The host merges axes that both sides walk contiguously, so rank is small.
// One invocation per walked element (RUN = 1) or per RUN elements along the
// innermost axis; with dense dst strides (permute, slice, pad) consecutive
// invocations store consecutive words, on the flat grid of shaders/lib/linear_grid.wgsl.
// The last-two-axes swap of permute uses the tiled kernel in transpose_tiled.wgsl.

override PADDED: bool = false;
override WORKGROUP_SIZE: u32 = 256u;
// Elements of the innermost walked axis per invocation. 1 (GPUs): one
// element each, consecutive invocations on consecutive words. CPU drivers
// (lavapipe) take RUN > 1: their SIMD lanes do u32 division one lane at a
// time, and the index math (a div/mod per axis) then costs once per run
// instead of once per element.
override RUN: u32 = 1u;

struct Params {
  shape_lo: vec4<u32>,
  shape_hi: vec4<u32>,
  src_stride_lo: vec4<u32>,
  src_stride_hi: vec4<u32>,
  dst_stride_lo: vec4<u32>,
  dst_stride_hi: vec4<u32>,
  window_start_lo: vec4<u32>,
  window_start_hi: vec4<u32>,
  window_end_lo: vec4<u32>,
  window_end_hi: vec4<u32>,
  src_offset: u32,
  dst_offset: u32,
  n: u32,
  rank: u32,
  fill: u32,
}

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;

//! include axis_pairs

struct Walk {
  si: u32,
  di: u32,
  inside: bool,
}

// src and dst offsets of walk element `index` over the outer `axes` axes
// (the rest held at 0), and whether it lies inside every window.
fn walk_to(index: u32, axes: u32) -> Walk {
  var rest = index;
  var w = Walk(params.src_offset, params.dst_offset, true);
  for (var k = 0u; k < axes; k++) {
    let d = axes - 1u - k;
    let len = axis_value(params.shape_lo, params.shape_hi, d);
    let c = rest % len;
    rest = rest / len;
    w.di += c * axis_value(params.dst_stride_lo, params.dst_stride_hi, d);
    if (PADDED) {
      let start = axis_value(params.window_start_lo, params.window_start_hi, d);
      let end = axis_value(params.window_end_lo, params.window_end_hi, d);
      w.inside = w.inside && c >= start && c < end;
      // Outside the window the wrapped value is never used as an index.
      w.si += (c - start) * axis_value(params.src_stride_lo, params.src_stride_hi, d);
    } else {
      w.si += c * axis_value(params.src_stride_lo, params.src_stride_hi, d);
    }
  }
  return w;
}

//! include linear_grid

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(at: LinearInvocation) {
  let i = linear_index(at);
  if (RUN == 1u) {
    if (i >= params.n) {
      return;
    }
    let w = walk_to(i, params.rank);
    if (PADDED && !w.inside) {
      dst[w.di] = params.fill;
    } else {
      dst[w.di] = src[w.si];
    }
    return;
  }
  // Invocation i copies chunk i % chunks (RUN elements) of innermost row i / chunks.
  let last = params.rank - 1u;
  let len = axis_value(params.shape_lo, params.shape_hi, last);
  let chunks = (len + RUN - 1u) / RUN;
  let row = i / chunks;
  if (row >= params.n / len) {
    return;
  }
  let w = walk_to(row, last);
  let src_stride = axis_value(params.src_stride_lo, params.src_stride_hi, last);
  let dst_stride = axis_value(params.dst_stride_lo, params.dst_stride_hi, last);
  // 0 and len when the innermost axis is not padded.
  let start = axis_value(params.window_start_lo, params.window_start_hi, last);
  let end = axis_value(params.window_end_lo, params.window_end_hi, last);
  let c0 = (i - row * chunks) * RUN;
  for (var j = 0u; j < RUN; j++) {
    let c = c0 + j;
    if (c >= len) {
      break;
    }
    let di = w.di + c * dst_stride;
    if (PADDED && !(w.inside && c >= start && c < end)) {
      dst[di] = params.fill;
    } else {
      dst[di] = src[w.si + (c - start) * src_stride];
    }
  }
}
