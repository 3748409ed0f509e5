// Weight gradient of conv2d (the input gradient is a transposed convolution,
// src/kernels/conv-backward.ts):
//   dw[o, ci, kh, kw] = Σ_{n, ho, wo} dy[n, o, ho, wo] · x[n, grp·Cg + ci, ho·SH − PH + kh·DH, wo·SW − PW + kw·DW]
// with grp = o / Og (Og = O / groups output channels per group, Cg = C / groups).
// Layout: NCHW x [N, C, H, W], dy [N, O, Ho, Wo], dw [O, Cg, KH, KW] dense.
// Tiling: one invocation per weight element, a sequential sum over (n, ho,
// wo) in a fixed order — deterministic (no float atomics in WGSL) and simple;
// the sum is long (N·Ho·Wo) but weights are few, and frozen backbones only
// need this when a convolution is trained. Consecutive invocations take
// consecutive kw/kh of one (o, ci), so their x reads are neighbours.
// Kernel geometry is fixed per pipeline (override constants).

//! include conv_window
override WORKGROUP_SIZE: u32 = 64u;

struct Params {
  n: u32,
  c: u32,
  h: u32,
  w: u32,
  o: u32,
  ho: u32,
  wo: u32,
  groups: u32,
  count: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dw: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

//! include linear_grid

@compute @workgroup_size(WORKGROUP_SIZE)
fn weight_grad(at: LinearInvocation) {
  let i = linear_index(at);
  if (i >= params.count) {
    return;
  }
  let cg = params.c / params.groups;
  let og = params.o / params.groups;
  let kw = i % KW;
  let kh = (i / KW) % KH;
  let ci = (i / (KW * KH)) % cg;
  let o = i / (KW * KH * cg);
  let channel = (o / og) * cg + ci;
  var sum = 0.0;
  for (var n = 0u; n < params.n; n++) {
    let x_plane = (n * params.c + channel) * params.h * params.w;
    let dy_plane = (n * params.o + o) * params.ho * params.wo;
    for (var yo = 0u; yo < params.ho; yo++) {
      // Signed source row; skip rows in the zero padding.
      let sy = i32(yo * SH + kh * DH) - i32(PH);
      if (sy < 0 || sy >= i32(params.h)) {
        continue;
      }
      for (var xo = 0u; xo < params.wo; xo++) {
        let sx = i32(xo * SW + kw * DW) - i32(PW);
        if (sx < 0 || sx >= i32(params.w)) {
          continue;
        }
        sum += dy[dy_plane + yo * params.wo + xo] * x[x_plane + u32(sy) * params.w + u32(sx)];
      }
    }
  }
  dw[i] = sum;
}
