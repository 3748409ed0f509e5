// Antialiased bilinear resize along ONE axis (PyTorch F.interpolate(...,
// mode='bilinear', align_corners=False, antialias=True), which is separable:
// the host runs it along W, then along H). The input is viewed as
// [outer, in_len, inner] and the output as [outer, out_len, inner]: along W
// inner = 1 and outer = N·C·H; along H inner = Wo and outer = N·C.
//
// Taps are precomputed on the host (PyTorch's _compute_weights_aa: triangle
// filter, support = max(in/out, 1), weights normalized to sum 1): for output
// index o, taps[o] = (first source index, tap count) and weights[o·max_taps +
// t] the weight of source first + t (zero past the count).
//
// Entry points:
//   resample       x f32 as above.
//   resample_rgba8 the first (W) pass straight from an RGBA8 image: pixels
//                  u32 [H, W] (R in the low byte), outer = c·H + h for the
//                  RGB planes c < 3, value = byte / 255 (as ToTensor does
//                  before the resize).
// NORMALIZE (resample only): y = (v − affine[2c]) / affine[2c + 1] with
// c = outer % channels, i.e. torchvision's Normalize(mean, std) fused into
// the last pass.
// Layout: one invocation per output element, i = (outer·out_len + o)·inner + j,
// so neighbouring invocations read neighbouring source elements (along H:
// the same taps, consecutive j; along W: overlapping spans of one row);
// the flat grid of shaders/lib/linear_grid.wgsl.

override WORKGROUP_SIZE: u32 = 256u;
override NORMALIZE: bool = false;

struct Params {
  in_len: u32,
  out_len: u32,
  inner: u32,
  n: u32,
  max_taps: u32,
  channels: u32,
  /** RGBA8 source: its height H and width W. */
  src_h: u32,
  src_w: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> pixels: array<u32>;
@group(0) @binding(2) var<storage, read> taps: array<u32>;
@group(0) @binding(3) var<storage, read> weights: array<f32>;
@group(0) @binding(4) var<storage, read> affine: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;

//! include linear_grid

@compute @workgroup_size(WORKGROUP_SIZE)
fn resample(at: LinearInvocation) {
  let i = linear_index(at);
  if (i >= params.n) {
    return;
  }
  let j = i % params.inner;
  let rest = i / params.inner;
  let o = rest % params.out_len;
  let outer = rest / params.out_len;
  let first = taps[2u * o];
  let count = taps[2u * o + 1u];
  let base = outer * params.in_len * params.inner + j;
  var acc = 0.0;
  for (var t = 0u; t < count; t++) {
    acc += weights[o * params.max_taps + t] * x[base + (first + t) * params.inner];
  }
  if (NORMALIZE) {
    let c = outer % params.channels;
    acc = (acc - affine[2u * c]) / affine[2u * c + 1u];
  }
  y[i] = acc;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn resample_rgba8(at: LinearInvocation) {
  let i = linear_index(at);
  if (i >= params.n) {
    return;
  }
  let o = i % params.out_len;
  let outer = i / params.out_len;
  let c = outer / params.src_h;
  let row = (outer % params.src_h) * params.src_w;
  let first = taps[2u * o];
  let count = taps[2u * o + 1u];
  var acc = 0.0;
  for (var t = 0u; t < count; t++) {
    let byte = (pixels[row + first + t] >> (8u * c)) & 255u;
    acc += weights[o * params.max_taps + t] * (f32(byte) / 255.0);
  }
  y[i] = acc;
}
