// The tiling of the implicit-GEMM convolutions (conv2d's `gemm` entry,
// conv_transpose2d): WG × WG threads per workgroup; after a BK-deep slice of
// A ([k][m], BM wide) and B ([k][n], BN wide) is staged in the workgroup
// arrays `tileA` and `tileB`, thread (tx, ty) accumulates its TM × TN
// outputs — rows tx + i·WG, columns ty + j·WG, so neighbouring threads read
// neighbouring words.

// Per-thread micro-tile: TM rows × TN columns (each 1, 2 or 4).
override TM: u32 = 4u;
override TN: u32 = 4u;
const WG: u32 = 16u;
const THREADS: u32 = WG * WG;
const BK: u32 = 16u;
override BM: u32 = WG * TM;
override BN: u32 = WG * TN;

var<workgroup> tileA: array<f32, BK * BM>; // [k][m]
var<workgroup> tileB: array<f32, BK * BN>; // [k][n]

alias AccumulatorTile = array<array<f32, 4>, 4>; // TM, TN <= 4

fn accumulate_tile(acc: ptr<function, AccumulatorTile>, tx: u32, ty: u32) {
  for (var kk = 0u; kk < BK; kk++) {
    var a: array<f32, 4>;
    var b: array<f32, 4>;
    for (var i = 0u; i < TM; i++) {
      a[i] = tileA[kk * BM + tx + i * WG];
    }
    for (var j = 0u; j < TN; j++) {
      b[j] = tileB[kk * BN + ty + j * WG];
    }
    for (var i = 0u; i < TM; i++) {
      for (var j = 0u; j < TN; j++) {
        (*acc)[i][j] = fma(a[i], b[j], (*acc)[i][j]);
      }
    }
  }
}
