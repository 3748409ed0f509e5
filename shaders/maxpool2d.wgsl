// 2-D max pooling (PyTorch MaxPool2d), NCHW: x [N, C, H, W] → y [N, C, Ho, Wo].
// Padding counts as −inf (it never wins); NaN propagates as in PyTorch.
// Layout: one invocation per output element, linear index with ow fastest so
// loads and stores are coalesced; adjacent windows overlap, so the cache
// serves the reuse. Entry point: shaders/lib/elementwise.wgsl.
// Window geometry is fixed per pipeline (override constants), so the window
// loops unroll.

//! include conv_window

struct Params {
  H: u32,
  W: u32,
  Ho: u32,
  Wo: u32,
  n: u32, // N·C·Ho·Wo
  lowest: f32, // −inf (a uniform: WGSL constant expressions cannot hold infinities)
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

fn is_nan(v: f32) -> bool {
  return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

//! include elementwise

// Output element idx.
fn element(idx: u32) {
  let px = output_pixel(idx, params.Ho, params.Wo);
  let xBase = px.z * params.H * params.W;
  var best = params.lowest;
  // A NaN is tracked apart from `best`: compilers may assume no NaNs in
  // float comparisons and max(), but not in the integer test of is_nan.
  var nan = false;
  var nanValue = 0.0;
  for (var kh = 0u; kh < KH; kh++) {
    for (var kw = 0u; kw < KW; kw++) {
      let tap = window_tap(px.y, px.x, kh, kw, params.H, params.W);
      if (tap < 0) {
        continue;
      }
      let v = x[xBase + u32(tap)];
      if (is_nan(v)) {
        nan = true;
        nanValue = v;
      } else {
        best = max(best, v);
      }
    }
  }
  y[idx] = select(best, nanValue, nan);
}
