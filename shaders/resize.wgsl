// 2-D resize of x [N, C, H, W] → y [N, C, Ho, Wo], f32, matching PyTorch's
// F.interpolate (CPU kernels, no antialias) index math in f32. Per axis
// (in = input length, out = output length, dst = output coordinate) the host
// passes `ratio`, already rounded to f32 as PyTorch does:
//   nearest:            ratio = 1 if out == in, 1/2 if out == 2·in, else
//                       1/scale if a scale factor was given, else in/out;
//                       src = min(floor(dst · ratio), in − 1)
//   bilinear, align_corners=False: ratio = 1/scale if given, else in/out;
//                       src = max(ratio · (dst + 0.5) − 0.5, 0)
//   bilinear, align_corners=True:  ratio = (in − 1)/(out − 1) (0 if out == 1);
//                       src = ratio · dst
//   bilinear then reads i0 = min(floor(src), in − 1), i1 = i0 + 1 clamped to
//   in − 1, λ = clamp(src − i0, 0, 1), and blends (1 − λ)·x[i0] + λ·x[i1] along
//   W, then the two rows along H.
// Layout: one invocation per output element, i = (plane·Ho + oy)·Wo + ox, so
// a row of y is written by consecutive invocations and its source row is
// read from a small, cached window. Entry point: shaders/lib/elementwise.wgsl.

override BILINEAR: bool = false;
override ALIGN_CORNERS: bool = false;

struct Params {
  in_h: u32,
  in_w: u32,
  out_h: u32,
  out_w: u32,
  n: u32,
  ratio_h: f32,
  ratio_w: f32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

fn nearest_index(dst: u32, ratio: f32, len: u32) -> u32 {
  return min(u32(floor(f32(dst) * ratio)), len - 1u);
}

//! include bilinear

fn linear_source(dst: u32, ratio: f32) -> f32 {
  if (ALIGN_CORNERS) {
    return ratio * f32(dst);
  }
  return half_pixel_source(dst, ratio);
}

//! include elementwise

// Element i of the output.
fn element(i: u32) {
  let ox = i % params.out_w;
  let rest = i / params.out_w;
  let oy = rest % params.out_h;
  let plane = (rest / params.out_h) * params.in_h * params.in_w;
  if (!BILINEAR) {
    let sy = nearest_index(oy, params.ratio_h, params.in_h);
    let sx = nearest_index(ox, params.ratio_w, params.in_w);
    y[i] = x[plane + sy * params.in_w + sx];
    return;
  }
  let ty = taps_at(linear_source(oy, params.ratio_h), params.in_h);
  let tx = taps_at(linear_source(ox, params.ratio_w), params.in_w);
  let row0 = plane + ty.i0 * params.in_w;
  let row1 = plane + ty.i1 * params.in_w;
  y[i] = blend(ty, blend(tx, x[row0 + tx.i0], x[row0 + tx.i1]), blend(tx, x[row1 + tx.i0], x[row1 + tx.i1]));
}
