// Depthwise 2-D convolution on channels-last maps: x [N, H, W, C],
// weights w [KH, KW, C] (one KH×KW filter per channel, channels fastest),
// optional bias [C] and a fused activation; y [N, Ho, Wo, C].
//   y[n, oh, ow, c] = act(bias[c] + Σ w[kh, kw, c] · x[n, oh·SH − PH + kh, ow·SW − PW + kw, c])
// with zeros outside the image.
//
// Models that keep activations as tokens [B, H, W, C] (TinyViT, ConvNeXt)
// run their depthwise convs here without permuting to NCHW and back.
//
// Tiling: invocation i owns 4 adjacent channels (c4 = i % C4, C4 = ⌈C/4⌉)
// of PX = 4 adjacent output pixels of one output row; consecutive invocations
// take consecutive channel groups, so on GPUs their loads and stores are
// coalesced, and on CPU drivers (lavapipe, one SIMD lane per invocation) a
// lane's KH·KW weights and the (PX−1)·SW + KW inputs per filter row are each
// read once for all PX pixels (the same input feeds up to KW outputs).
// Channels past C are clamped on read and not stored; input columns outside
// the image are clamped and zeroed; input rows outside are skipped.
// The flat grid of shaders/lib/linear_grid.wgsl.

//! include conv_window
//! include conv_weight
override HAS_BIAS: bool = false;
override ACTIVATION: u32 = 0u; // a code of shaders/lib/activation.wgsl
override WORKGROUP_SIZE: u32 = 64u;

// Output pixels per invocation.
const PX: u32 = 4u;
// Input columns one filter row of a block reads, (PX − 1)·SW + KW, at most
// (3×3 stride 2 fills it; the caller checks the geometry). Every loop over a
// register array has a constant trip count, so it unrolls and the arrays stay
// in registers.
const MAX_SPAN: u32 = 12u;

struct Params {
  H: u32,
  W: u32,
  C: u32,
  Ho: u32,
  Wo: u32,
  blocksW: u32, // ⌈Wo / PX⌉
  total: u32,   // N · Ho · blocksW · ⌈C/4⌉ invocations
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<u32>; // read through w_at (f32 or f16)
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

//! include activation

// Four channels at element offset `at` (channel c0 of some pixel), clamped to the last channel.
fn x4(at: u32, c0: u32) -> vec4<f32> {
  let last = params.C - 1u - c0;
  return vec4<f32>(x[at], x[at + min(1u, last)], x[at + min(2u, last)], x[at + min(3u, last)]);
}

fn w4(at: u32, c0: u32) -> vec4<f32> {
  let last = params.C - 1u - c0;
  return vec4<f32>(w_at(at), w_at(at + min(1u, last)), w_at(at + min(2u, last)), w_at(at + min(3u, last)));
}

//! include linear_grid

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(at: LinearInvocation) {
  let i = linear_index(at);
  if (i >= params.total) {
    return;
  }
  let C = params.C;
  let C4 = (C + 3u) / 4u;
  let c0 = (i % C4) * 4u;
  let pixel_block = i / C4;
  let ow0 = (pixel_block % params.blocksW) * PX;
  let oh = (pixel_block / params.blocksW) % params.Ho;
  let n = pixel_block / (params.blocksW * params.Ho);
  let ih0 = i32(oh * SH) - i32(PH);
  let iw0 = i32(ow0 * SW) - i32(PW);
  let span = (PX - 1u) * SW + KW;

  var acc: array<vec4<f32>, PX>;
  for (var kh = 0u; kh < KH; kh++) {
    let ih = ih0 + i32(kh);
    if (ih < 0 || ih >= i32(params.H)) {
      continue;
    }
    let row = (n * params.H + u32(ih)) * params.W;
    // The input row segment every output of this block reads, zero outside the image.
    var seg: array<vec4<f32>, MAX_SPAN>;
    for (var s = 0u; s < span; s++) {
      let iw = iw0 + i32(s);
      let v = x4((row + u32(clamp(iw, 0, i32(params.W) - 1))) * C + c0, c0);
      seg[s] = select(vec4<f32>(0.0), v, iw >= 0 && iw < i32(params.W));
    }
    for (var kw = 0u; kw < KW; kw++) {
      let wv = w4((kh * KW + kw) * C + c0, c0);
      for (var p = 0u; p < PX; p++) {
        acc[p] = fma(seg[p * SW + kw], wv, acc[p]);
      }
    }
  }

  var b = vec4<f32>(0.0);
  if (HAS_BIAS) {
    b = bias4(c0);
  }
  for (var p = 0u; p < PX; p++) {
    let ow = ow0 + p;
    if (ow >= params.Wo) {
      break;
    }
    let v = acc[p] + b;
    let at = ((n * params.Ho + oh) * params.Wo + ow) * C + c0;
    for (var k = 0u; k < 4u; k++) {
      if (c0 + k < C) {
        y[at + k] = activate(v[k], ACTIVATION);
      }
    }
  }
}

fn bias4(c0: u32) -> vec4<f32> {
  let last = params.C - 1u - c0;
  return vec4<f32>(bias[c0], bias[c0 + min(1u, last)], bias[c0 + min(2u, last)], bias[c0 + min(3u, last)]);
}
