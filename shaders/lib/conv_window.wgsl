// The window geometry of the convolution and pooling kernels (conv2d,
// conv2d_backward, conv_transpose2d, depthwise_nhwc, maxpool2d): kernel
// KH × KW, stride SH × SW, padding PH × PW, dilation DH × DW (depthwise_nhwc
// has none and leaves it at 1). Fixed per pipeline as override constants
// (src/kernels/conv.ts, conv-backward.ts set them), so divisions by them fold
// and the window loops unroll.

override KH: u32;
override KW: u32;
override SH: u32;
override SW: u32;
override PH: u32;
override PW: u32;
override DH: u32 = 1u;
override DW: u32 = 1u;

// Output element idx of a dense [planes, Ho, Wo] output (NCHW with
// planes = N·C, ow fastest): (ow, oh, plane).
fn output_pixel(idx: u32, Ho: u32, Wo: u32) -> vec3<u32> {
  return vec3<u32>(idx % Wo, (idx / Wo) % Ho, idx / (Wo * Ho));
}

// Where tap (kh, kw) of output pixel (oh, ow)'s window falls in an H × W
// input plane: its offset ih·W + iw there, or -1 in the padding.
fn window_tap(oh: u32, ow: u32, kh: u32, kw: u32, H: u32, W: u32) -> i32 {
  let ih = i32(oh * SH) - i32(PH) + i32(kh * DH);
  let iw = i32(ow * SW) - i32(PW) + i32(kw * DW);
  if (ih < 0 || ih >= i32(H) || iw < 0 || iw >= i32(W)) {
    return -1;
  }
  return ih * i32(W) + iw;
}
