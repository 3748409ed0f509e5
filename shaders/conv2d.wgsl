// 2-D convolution, NCHW input x [N, C, H, W], PyTorch weights
// w [O, C/groups, KH, KW], output y [N, O, Ho, Wo], optional bias [O] and a
// fused activation. Three entry points:
//
// `gemm` — implicit GEMM per group g: Y_g[m, o] = Σ_k A[m, k] · B[k, o] with
//   rows m = (n, oh, ow) over N·Ho·Wo output pixels, columns o over the
//   group's Og output channels, and the reduction k = (c, kh, kw) over
//   Cg·KH·KW. A is the im2col view of x, never materialised: each element is
//   gathered (zero in the padding) while a BK×BM tile is copied into
//   workgroup memory. B[k, o] = w[g·Og + o, k] is contiguous in k.
//   Tiling: 16×16 threads compute a BM×BN = (16·TM)×(16·TN) output tile,
//   thread (tx, ty) owning rows tx + 16i and columns ty + 16j, so adjacent
//   threads load and store adjacent output pixels (coalesced along ow) and
//   read distinct workgroup-memory words. The reduction walks BK = 16 at a
//   time. Grid: x (and z, when there are more than 65535 row tiles) = row
//   tile, y = group · column tiles + column tile.
//
// `direct` — the same implicit GEMM for CPU drivers (lavapipe): no workgroup
//   memory and no barriers. llvmpipe runs a workgroup as SIMD loops over
//   invocations, turns every read with a non-constant index (workgroup memory
//   included) into a scalar loop over the lanes, and spills all live
//   registers at a barrier (see shaders/matmul.wgsl). So each invocation reads
//   straight from the storage buffers and amortises every read over a
//   register block: 4·PX4 adjacent output pixels of one output row
//   (ow0 .. ow0 + 4·PX4 − 1, so they share the input row of each kh and their
//   input columns step by SW) × CN output channels. Per (c, kh, kw) it reads
//   4·PX4 inputs and CN weights for 4·PX4·CN FMAs. Input columns outside the
//   image are clamped and zeroed; channels and pixels past the output are
//   clamped (never stored). Grid: x (and z past 65535 workgroups) = row
//   block of DIRECT_WG invocations over N·Ho·⌈Wo/(4·PX4)⌉ blocks, y = group ·
//   column tiles + column tile (tilesN = ⌈Og/CN⌉).
//
// `depthwise` — one input channel per group (depthwise, with an optional
//   channel multiplier O = m·C): one invocation per output element,
//   summing its KH×KW window directly; the reduction is too short for a
//   GEMM tile to pay. Linear index with ow fastest, so loads and stores are
//   coalesced; the flat grid of shaders/lib/linear_grid.wgsl.
//
// Kernel geometry is fixed per pipeline (override constants), so the
// (c, kh, kw) decomposition divides by constants and the window loops unroll.
//
// Weights may be f16 (W_F16, all three entries; shaders/lib/conv_weight.wgsl).
// The `direct` block's CN weights per tap are K apart, so there are no
// neighbouring halves to read in one word (matmul's vec2<u32> read of four).

//! include conv_window
// TM, TN (the `gemm` entry's micro-tile): shaders/lib/conv_gemm_tile.wgsl.
override HAS_BIAS: bool = false;
override ACTIVATION: u32 = 0u; // a code of shaders/lib/activation.wgsl
override WORKGROUP_SIZE: u32 = 256u; // `depthwise` entry
// `direct` entry: invocations per workgroup, pixels / 4 and channels per invocation.
override DIRECT_WG: u32 = 8u;
override PX4: u32 = 2u; // ≤ DIRECT_MAX_PX4
override CN: u32 = 16u; // ≤ DIRECT_MAX_CN
// Register arrays are sized for the largest block, so at that size every
// loop's trip count equals the array length (the loops unroll and the block
// stays out of indexed memory).
const DIRECT_MAX_PX4: u32 = 4u;
const DIRECT_MAX_CN: u32 = 16u;

//! include conv_sizes

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<u32>; // read through w_at
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

//! include conv_gemm_tile

//! include conv_weight

//! include activation

// The implicit GEMM's rows M = N·Ho·Wo (output pixels) and depth K = Cg·KH·KW.
fn gemm_rows() -> u32 {
  return params.N * params.Ho * params.Wo;
}

fn gemm_depth() -> u32 {
  return params.Cg * KH * KW;
}

fn epilogue(v: f32, oc: u32) -> f32 {
  var r = v;
  if (HAS_BIAS) {
    r += bias[oc];
  }
  return activate(r, ACTIVATION);
}

@compute @workgroup_size(WG, WG)
fn gemm(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let tx = lid.x;
  let ty = lid.y;
  let tid = ty * WG + tx;
  let m0 = (wid.x + wid.z * nwg.x) * BM;
  let g = wid.y / params.tilesN;
  let n0 = (wid.y % params.tilesN) * BN;
  let M = gemm_rows();
  let K = gemm_depth();
  // Uniform per workgroup, so returning keeps the barriers below uniform.
  if (m0 >= M) {
    return;
  }
  let HoWo = params.Ho * params.Wo;
  let HW = params.H * params.W;

  // BM divides THREADS, so every A element this thread loads is in row aRow:
  // its pixel's window origin is computed once.
  let aRow = tid % BM;
  let am = m0 + aRow;
  let aValid = am < M;
  let an = am / HoWo;
  let ap = am % HoWo;
  let ih0 = i32((ap / params.Wo) * SH) - i32(PH);
  let iw0 = i32((ap % params.Wo) * SW) - i32(PW);
  let xBase = (an * params.C + g * params.Cg) * HW;
  let wBase = (g * params.Og + n0) * K;
  let im2col = ARow(aValid, xBase, vec2<i32>(ih0, iw0), vec2<i32>(i32(DH), i32(DW)), KH * KW, KW);

  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < K; k0 += BK) {
    stage_a(im2col, k0, K, tid);
    // k fastest: consecutive threads read consecutive weights of one channel.
    for (var e = tid; e < BK * BN; e += THREADS) {
      let kk = e % BK;
      let oo = e / BK;
      var v = 0.0;
      if (k0 + kk < K && n0 + oo < params.Og) {
        v = w_at(wBase + oo * K + k0 + kk);
      }
      tileB[kk * BN + oo] = v;
    }
    accumulate_tile(&acc, tx, ty);
  }

  for (var i = 0u; i < tile_extent(m0 + tx, M, TM); i++) {
    let m = m0 + tx + i * WG;
    let n = m / HoWo;
    let p = m % HoWo;
    for (var j = 0u; j < tile_extent(n0 + ty, params.Og, TN); j++) {
      let o = n0 + ty + j * WG;
      let oc = g * params.Og + o;
      y[(n * params.O + oc) * HoWo + p] = epilogue(acc[i][j], oc);
    }
  }
}

// x at column iw of the input row starting at `row`; zero outside the image.
fn x_in_row(row: u32, iw: i32) -> f32 {
  let v = x[row + u32(clamp(iw, 0, i32(params.W) - 1))];
  return select(0.0, v, iw >= 0 && iw < i32(params.W));
}

@compute @workgroup_size(DIRECT_WG)
fn direct(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let PX = 4u * PX4;
  let blocksW = (params.Wo + PX - 1u) / PX;
  let HoWo = params.Ho * params.Wo;
  let rowBlock = (wid.x + wid.z * nwg.x) * DIRECT_WG + lid.x;
  // No barriers in this entry, so invocations past the end may simply leave.
  if (rowBlock >= params.N * params.Ho * blocksW) {
    return;
  }
  let ow0 = (rowBlock % blocksW) * PX;
  let oh = (rowBlock / blocksW) % params.Ho;
  let n = rowBlock / (blocksW * params.Ho);
  let g = wid.y / params.tilesN;
  let o0 = (wid.y % params.tilesN) * CN;
  let HW = params.H * params.W;
  let xBase = (n * params.C + g * params.Cg) * HW;
  let ih0 = i32(oh * SH) - i32(PH);
  let iw0 = i32(ow0 * SW) - i32(PW);
  let sw = i32(SW);

  let K = gemm_depth();
  var wRow: array<u32, DIRECT_MAX_CN>;
  for (var j = 0u; j < CN; j++) {
    wRow[j] = (g * params.Og + min(o0 + j, params.Og - 1u)) * K;
  }
  // acc[j][q][r]: channel o0 + j, pixel ow0 + 4q + r.
  var acc: array<array<vec4<f32>, DIRECT_MAX_PX4>, DIRECT_MAX_CN>;
  for (var c = 0u; c < params.Cg; c++) {
    for (var kh = 0u; kh < KH; kh++) {
      let ih = ih0 + i32(kh * DH);
      if (ih < 0 || ih >= i32(params.H)) {
        continue;
      }
      let row = xBase + c * HW + u32(ih) * params.W;
      let k0 = (c * KH + kh) * KW;
      for (var kw = 0u; kw < KW; kw++) {
        var a: array<vec4<f32>, DIRECT_MAX_PX4>;
        for (var q = 0u; q < PX4; q++) {
          let iw = iw0 + i32(kw * DW) + i32(4u * q) * sw;
          a[q] = vec4<f32>(x_in_row(row, iw), x_in_row(row, iw + sw), x_in_row(row, iw + 2 * sw), x_in_row(row, iw + 3 * sw));
        }
        for (var j = 0u; j < CN; j++) {
          let b = vec4<f32>(w_at(wRow[j] + k0 + kw));
          for (var q = 0u; q < PX4; q++) {
            acc[j][q] = fma(a[q], b, acc[j][q]);
          }
        }
      }
    }
  }

  for (var j = 0u; j < CN; j++) {
    let o = o0 + j;
    if (o >= params.Og) {
      break;
    }
    let oc = g * params.Og + o;
    let yRow = (n * params.O + oc) * HoWo + oh * params.Wo;
    for (var q = 0u; q < PX4; q++) {
      for (var r = 0u; r < 4u; r++) {
        let ow = ow0 + 4u * q + r;
        if (ow < params.Wo) {
          y[yRow + ow] = epilogue(acc[j][q][r], oc);
        }
      }
    }
  }
}

//! include linear_grid

@compute @workgroup_size(WORKGROUP_SIZE)
fn depthwise(at: LinearInvocation) {
  let idx = linear_index(at);
  if (idx >= params.N * params.O * params.Ho * params.Wo) {
    return;
  }
  let px = output_pixel(idx, params.Ho, params.Wo);
  let oc = px.z % params.O;
  let n = px.z / params.O;
  // One input channel per group: the group index is the input channel.
  let c = oc / params.Og;
  let xBase = (n * params.C + c) * params.H * params.W;
  let wBase = oc * KH * KW;
  var sum = 0.0;
  for (var kh = 0u; kh < KH; kh++) {
    for (var kw = 0u; kw < KW; kw++) {
      let tap = window_tap(px.y, px.x, kh, kw, params.H, params.W);
      if (tap >= 0) {
        sum = fma(x[xBase + u32(tap)], w_at(wBase + kh * KW + kw), sum);
      }
    }
  }
  y[idx] = epilogue(sum, oc);
}
