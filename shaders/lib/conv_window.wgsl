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
