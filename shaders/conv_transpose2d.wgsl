// Transposed 2-D convolution (PyTorch ConvTranspose2d), NCHW input
// x [N, C, H, W], weights w [C, O/groups, KH, KW], output y [N, O, Ho, Wo],
// optional bias [O]. Gather form, no atomics: output pixel (oh, ow) sums
// x[n, c, ih, iw] · w[c, o, kh, kw] over the taps with
// oh = ih·SH − PH + kh·DH (same for w).
//
// Phase decomposition: the output pixels with oh ≡ ph (mod SH) and
// ow ≡ pw (mod SW) all take the same taps — kh with
// (ph + PH − kh·DH) ≡ 0 (mod SH), i.e. kh = kh0 + t·STEP_H where
// STEP_H = SH / gcd(SH, DH) — and read ih = i + offH − t·DH/gcd for
// oh = ph + SH·i. So each of the SH·SW phases is an ordinary implicit GEMM
// with no wasted zero taps: rows m = (n, i, j) over the phase's pixels,
// columns over the group's Og output channels, reduction k = (c, t_h, t_w)
// over Cg·(taps in h)·(taps in w). A phase without taps (kernel smaller
// than the stride) gets only the bias.
//
// Tiling as in conv2d.wgsl: 16×16 threads, BM×BN = (16·TM)×(16·TN) tile,
// thread (tx, ty) owns rows tx + 16i and columns ty + 16j, the reduction
// goes BK = 16 at a time through workgroup memory; A loads are coalesced
// along j (adjacent input columns), B loads along o.
// Grid: x = row tile, y = group · column tiles + column tile,
// z = phase + SH·SW · (row tile overflow beyond the x dimension).

//! include conv_window
//! include conv_weight
// SH / gcd(SH, DH) and SW / gcd(SW, DW): the kh (kw) distance between taps of one phase.
override STEP_H: u32;
override STEP_W: u32;
override HAS_BIAS: bool = false;
// TM, TN and the tile sizes: shaders/lib/conv_gemm_tile.wgsl.
override PHASES: u32 = SH * SW;
// How far ih moves back per tap step: DH / gcd(SH, DH).
override IH_STEP: u32 = STEP_H * DH / SH;
override IW_STEP: u32 = STEP_W * DW / SW;

//! include conv_sizes

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<u32>; // read through w_at (f32 or f16)
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

//! include conv_gemm_tile

// The first tap of residue `r` along one axis: the smallest kh < min(K, STEP)
// with (r − kh·D) ≡ 0 (mod S), or K when the phase has none.
fn first_tap(r: u32, K: u32, S: u32, D: u32, STEP: u32) -> u32 {
  for (var k = 0u; k < min(K, STEP); k++) {
    if ((i32(r) - i32(k * D)) % i32(S) == 0) {
      return k;
    }
  }
  return K;
}

@compute @workgroup_size(WG, WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let tx = lid.x;
  let ty = lid.y;
  let tid = ty * WG + tx;
  let phase = wid.z % PHASES;
  let ph = phase / SW;
  let pw = phase % SW;
  let g = wid.y / params.tilesN;
  let n0 = (wid.y % params.tilesN) * BN;
  let m0 = (wid.x + nwg.x * (wid.z / PHASES)) * BM;

  // This phase's output grid: oh = ph + SH·i for i < Hp.
  let Hp = select(0u, (params.Ho - ph + SH - 1u) / SH, ph < params.Ho);
  let Wp = select(0u, (params.Wo - pw + SW - 1u) / SW, pw < params.Wo);
  let HpWp = Hp * Wp;
  // Uniform per workgroup, so returning keeps the barriers below uniform.
  if (m0 >= params.N * HpWp) {
    return;
  }
  let M = params.N * HpWp;
  let kh0 = first_tap(ph + PH, KH, SH, DH, STEP_H);
  let kw0 = first_tap(pw + PW, KW, SW, DW, STEP_W);
  let tapsH = select(0u, (KH - kh0 + STEP_H - 1u) / STEP_H, kh0 < KH);
  let tapsW = select(0u, (KW - kw0 + STEP_W - 1u) / STEP_W, kw0 < KW);
  let taps = tapsH * tapsW;
  let K = params.Cg * taps;
  let offH = (i32(ph + PH) - i32(kh0 * DH)) / i32(SH);
  let offW = (i32(pw + PW) - i32(kw0 * DW)) / i32(SW);
  let HW = params.H * params.W;
  let KHW = KH * KW;

  // BM divides THREADS, so every A element this thread loads is in row aRow.
  let aRow = tid % BM;
  let am = m0 + aRow;
  let aValid = am < M;
  let an = am / HpWp;
  let ihBase = i32((am % HpWp) / Wp) + offH;
  let iwBase = i32(am % Wp) + offW;
  let xBase = (an * params.C + g * params.Cg) * HW;
  // Likewise BN divides THREADS: every B element this thread loads is in column bCol.
  let bCol = tid % BN;
  let bValid = n0 + bCol < params.Og;
  let wCol = (g * params.Cg * params.Og + n0 + bCol) * KHW;
  // Taps step back through the input: ih = ihBase − th·IH_STEP.
  let im2col = ARow(aValid, xBase, vec2<i32>(ihBase, iwBase), vec2<i32>(-i32(IH_STEP), -i32(IW_STEP)), taps, tapsW);

  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < K; k0 += BK) {
    stage_a(im2col, k0, K, tid);
    for (var e = tid; e < BK * BN; e += THREADS) {
      let k = k0 + e / BN;
      var v = 0.0;
      if (bValid && k < K) {
        let t = split_reduction(k, taps, tapsW);
        let kh = kh0 + t.y * STEP_H;
        let kw = kw0 + t.z * STEP_W;
        v = w_at(wCol + t.x * params.Og * KHW + kh * KW + kw);
      }
      tileB[e] = v;
    }
    accumulate_tile(&acc, tx, ty);
  }

  for (var i = 0u; i < tile_extent(m0 + tx, M, TM); i++) {
    let m = m0 + tx + i * WG;
    let n = m / HpWp;
    let oh = ph + SH * ((m % HpWp) / Wp);
    let ow = pw + SW * (m % Wp);
    for (var j = 0u; j < tile_extent(n0 + ty, params.Og, TN); j++) {
      let o = n0 + ty + j * WG;
      let oc = g * params.Og + o;
      var v = acc[i][j];
      if (HAS_BIAS) {
        v += bias[oc];
      }
      y[((n * params.O + oc) * params.Ho + oh) * params.Wo + ow] = v;
    }
  }
}
