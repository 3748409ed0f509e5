// The uniform layout of the grouped 2-D convolutions (conv2d,
// conv_transpose2d): the problem's sizes, NCHW, and the GEMM's column tiles
// per group. src/kernels/conv.ts fills it from the same plan for both.

struct Params {
  N: u32,
  C: u32,      // input channels, all groups
  H: u32,
  W: u32,
  O: u32,      // output channels, all groups
  Ho: u32,
  Wo: u32,
  Cg: u32,     // input channels per group
  Og: u32,     // output channels per group
  tilesN: u32, // column tiles per group: ceil(Og / BN), or ceil(Og / CN) for conv2d's `direct`
}
