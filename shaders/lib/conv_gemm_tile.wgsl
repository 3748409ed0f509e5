// The tiling of the implicit-GEMM convolutions (conv2d's `gemm` entry,
// conv_transpose2d): WG × WG threads per workgroup; after a BK-deep slice of
// A ([k][m], BM wide) and B ([k][n], BN wide) is staged in the workgroup
// arrays `tileA` and `tileB`, thread (tx, ty) accumulates its TM × TN
// outputs — rows tx + i·WG, columns ty + j·WG, so neighbouring threads read
// neighbouring words. The includer binds the input `x` (NCHW f32) and the
// uniform `params` with its H and W (shaders/lib/conv_sizes.wgsl).

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

// Reduction index k as (input channel, tap row, tap column) for `taps` taps
// per channel in rows of `taps_w`.
fn split_reduction(k: u32, taps: u32, taps_w: u32) -> vec3<u32> {
  let r = k % taps;
  return vec3<u32>(k / taps, r / taps_w, r % taps_w);
}

// This thread's row of A, the im2col view of x (BM divides THREADS, so every
// A element a thread stages is in row tid % BM): whether the row is a pixel
// of the output, its image's channel 0 in x, and its window: reduction
// index k = (c, th, tw) (split_reduction by `taps` and `taps_w`) reads input
// pixel origin + (th, tw) · step of channel c, zero outside the image.
struct ARow {
  valid: bool,
  base: u32,
  origin: vec2<i32>,
  step: vec2<i32>,
  taps: u32,
  taps_w: u32,
}

// Stages A's slice k0 … k0 + BK − 1 into tileA (zero past K).
fn stage_a(row: ARow, k0: u32, K: u32, tid: u32) {
  let HW = params.H * params.W;
  for (var e = tid; e < BK * BM; e += THREADS) {
    let k = k0 + e / BM;
    var v = 0.0;
    if (row.valid && k < K) {
      let t = split_reduction(k, row.taps, row.taps_w);
      let ih = row.origin.x + i32(t.y) * row.step.x;
      let iw = row.origin.y + i32(t.z) * row.step.y;
      if (ih >= 0 && ih < i32(params.H) && iw >= 0 && iw < i32(params.W)) {
        v = x[row.base + t.x * HW + u32(ih) * params.W + u32(iw)];
      }
    }
    tileA[e] = v;
  }
}

// How many of a thread's micro-tile rows first + i·WG (columns: first + j·WG)
// lie below `end`, at most `count` (TM, TN): the ones it stores.
fn tile_extent(first: u32, end: u32, count: u32) -> u32 {
  if (first >= end) {
    return 0u;
  }
  return min(count, (end - first + WG - 1u) / WG);
}

alias AccumulatorTile = array<array<f32, 4>, 4>; // TM, TN <= 4

// Called by every thread once the slice is staged: waits for the whole
// workgroup's stores, accumulates, and waits again before the tiles are
// restaged (so call it in uniform control flow).
fn accumulate_tile(acc: ptr<function, AccumulatorTile>, tx: u32, ty: u32) {
  workgroupBarrier();
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
  workgroupBarrier();
}
