// Batched matrix product with a fused epilogue:
//   y[z] = act(alpha · (A[z] · B[z]) + bias) + residual
// A[z] is M×K (stored K×M when TRANS_A), B[z] is K×N (stored N×K when
// TRANS_B), y[z] is M×N, all dense row-major f32 (B may instead hold IEEE
// binary16 values: B_F16, below). z runs over the broadcast
// batch (workgroup_id.z); each operand's batch offset comes from up to four
// batch dimensions with per-operand element strides (0 = broadcast).
//
// Both entry points give invocation (tx, ty) of a WG_X × WG_Y workgroup a
// register block of 4·TM4 rows × 4·TN4 columns of the workgroup's output
// tile (BM = 4·TM4·WG_Y rows, BN = 4·TN4·WG_X columns): rows
// (i·WG_Y + ty)·4 + r and columns (j·WG_X + tx)·4 + c, for i < TM4, j < TN4,
// r, c < 4. Interleaving the blocks makes neighbouring invocations touch
// neighbouring vec4s. Any M, N, K works (not only tile multiples).
//
// `tiled` (GPUs). The workgroup walks K in slices of TK. Each slice of A
// (BM×TK) and B (TK×BN) is staged in workgroup memory as vec4s (four rows of
// A / four columns of B per element, zero outside the matrices), loaded so
// that neighbouring invocations read neighbouring addresses in either
// storage order. Then per k every invocation does TM4 + TN4 vec4 reads from
// workgroup memory and 4·TM4·TN4 vec4 FMAs (an outer-product update).
//
// `direct` (CPU drivers such as lavapipe). No workgroup memory and no
// barriers. llvmpipe runs a workgroup as SIMD loops over invocations; it
// turns every memory read with a non-constant index (workgroup memory
// included) into a scalar loop over the SIMD lanes, and a barrier makes it
// save every live register to a coroutine frame. So the CPU kernel reads
// straight from the storage buffers (the CPU caches play the tile's part),
// four k per step as vec4s along each operand's contiguous dimension where
// that keeps them aligned (VEC_A / VEC_B: a4 / b4 alias a / b), and
// amortises each read over a large register block (up to 16×16, spilled to
// the stack, which costs far less than a gather). The block is held as up
// to four row-group variables (acc0..acc3), each 4 rows × 4·TN4 columns.
// Rows and columns past the matrix are clamped rather than zeroed (their
// results are never stored); the last K % 4 values of k take a scalar tail.
// On lavapipe one specialisation of it compiles in seconds (it unrolls into
// a large function); Mesa's shader cache keeps it across runs.
//
// B_F16 (f16 weights, issue 19). B holds binary16 values, two to a u32 word
// (element e in word e / 2, the low half first, as little-endian f16 arrays
// lie in memory); every read widens them to f32 with unpack2x16float, so the
// products and sums stay f32 (f16 × f16 is exact in f32). The vec4 reads
// become one vec2<u32> read of four halves (b_halves4), the same NUMBER of
// reads as f32, with half the bytes: on lavapipe, where each read with a
// per-invocation index is a scalar loop over the SIMD lanes, this is what
// bench/cases/f16-loads.js found fastest (1.13–1.31× the f32 reads in CPU
// time; reads of eight halves, vec4<u32>, 1.02–1.25×, and array<vec4<f16>>,
// 0.90–1.07×, gained less). unpack2x16float is core WGSL, so this path needs
// no `enable f16`.
//
// Overrides: the entry point and tile shape (WG_X, WG_Y, TM4, TN4, TK) form a
// tuning variant; TRANS_A/TRANS_B, VEC_A/VEC_B/VEC_Y, HAS_BIAS, HAS_RESIDUAL
// and ACT specialise each call so unused paths compile away. Register arrays
// are sized so that at the largest block every loop's trip count equals the
// array length it indexes: that is what makes compilers (NIR in particular)
// unroll the loops and keep the block out of indexed memory.

override WG_X: u32 = 16u;
override WG_Y: u32 = 16u;
override TM4: u32 = 1u; // register block rows / 4: tiled ≤ 2, direct ≤ 4
override TN4: u32 = 1u; // register block columns / 4: tiled ≤ 2, direct ≤ 4
override TK: u32 = 16u; // tiled: K slice staged per step
override TRANS_A: bool = false;
override TRANS_B: bool = false;
override VEC_A: bool = false;
override VEC_B: bool = false;
override VEC_Y: bool = false; // N % 4 == 0: rows of y, bias and residual are whole vec4s
override HAS_BIAS: bool = false;
override HAS_RESIDUAL: bool = false;
override ACT: u32 = 0u; // a code of shaders/lib/activation.wgsl
override B_F16: bool = false; // B holds binary16 values (see above)

const TILED_MAX_TM4 = 2u;
const TILED_MAX_TN4 = 2u;
const DIRECT_MAX_TN4 = 4u;

struct Params {
  M: u32,
  N: u32,
  K: u32,
  alpha: f32,
  // Batch dimensions (outermost first, padded with 1) and element strides.
  batch_shape: vec4<u32>,
  a_batch_strides: vec4<u32>,
  b_batch_strides: vec4<u32>,
  // The residual repeats over leading output dimensions: read at y index % residual_size.
  residual_size: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
// B's 32-bit words: f32 bit patterns, or with B_F16 two halves each.
@group(0) @binding(1) var<storage, read> b: array<u32>;
// bias, residual and y are vec4 arrays over whole pool buffers (sizes are
// multiples of 16 bytes), so any element is reachable as [i / 4][i % 4].
@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> residual: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> y: array<vec4<f32>>;
@group(0) @binding(5) var<uniform> params: Params;
// The buffers of a and b again, seen as vec4s (read only with VEC_A / VEC_B;
// b4 only for f32 B, b_halves4, four halves per element, only with B_F16).
@group(0) @binding(6) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> b4: array<vec4<u32>>;
@group(0) @binding(8) var<storage, read> b_halves4: array<vec2<u32>>;

// tiled: As[k · BM/4 + m4] holds rows 4·m4 .. 4·m4+3 of the A slice at k.
var<workgroup> As: array<vec4<f32>, TK * WG_Y * TM4>;
// tiled: Bs[k · BN/4 + n4] holds columns 4·n4 .. 4·n4+3 of the B slice at k.
var<workgroup> Bs: array<vec4<f32>, TK * WG_X * TN4>;

//! include activation

struct BatchBases {
  a: u32,
  b: u32,
}

// Element offsets of batch z in a and b: z decomposed over batch_shape, innermost last.
fn batch_bases(batch: u32) -> BatchBases {
  var z = batch;
  var r = BatchBases(0u, 0u);
  for (var d = 3i; d >= 0; d--) {
    let extent = params.batch_shape[d];
    let i = z % extent;
    z = z / extent;
    r.a += i * params.a_batch_strides[d];
    r.b += i * params.b_batch_strides[d];
  }
  return r;
}

// A[row][k] and B[k][col] in either storage order; indices must be in range.
fn a_at(base: u32, row: u32, k: u32) -> f32 {
  if (TRANS_A) {
    return a[base + k * params.M + row];
  }
  return a[base + row * params.K + k];
}

// Element i of B's storage, widened to f32.
fn b_element(i: u32) -> f32 {
  if (B_F16) {
    return unpack2x16float(b[i / 2u])[i % 2u];
  }
  return bitcast<f32>(b[i]);
}

// Elements i .. i+3 of B's storage (i a multiple of 4, VEC_B), widened to f32.
fn b_vec4(i: u32) -> vec4<f32> {
  if (B_F16) {
    let halves = b_halves4[i / 4u];
    return vec4<f32>(unpack2x16float(halves.x), unpack2x16float(halves.y));
  }
  return bitcast<vec4<f32>>(b4[i / 4u]);
}

fn b_at(base: u32, k: u32, col: u32) -> f32 {
  if (TRANS_B) {
    return b_element(base + col * params.K + k);
  }
  return b_element(base + k * params.N + col);
}

// Writes outputs (row, col .. col+3) = act(alpha · sums + bias) + residual,
// those inside y. col is a multiple of 4.
fn store_group(batch: u32, row: u32, col: u32, sums: vec4<f32>) {
  if (row >= params.M || col >= params.N) {
    return;
  }
  var v = params.alpha * sums;
  let at = (batch * params.M + row) * params.N + col;
  if (VEC_Y) {
    // The four columns are inside the row, and so vec4-aligned in y, bias and residual.
    if (HAS_BIAS) {
      v += bias[col / 4u];
    }
    v = activate4(v, ACT);
    if (HAS_RESIDUAL) {
      v += residual[(at % params.residual_size) / 4u];
    }
    y[at / 4u] = v;
    return;
  }
  if (HAS_BIAS) {
    for (var c = 0u; c < 4u; c++) {
      let i = min(col + c, params.N - 1u);
      v[c] += bias[i / 4u][i % 4u];
    }
  }
  v = activate4(v, ACT);
  for (var c = 0u; c < 4u; c++) {
    if (col + c < params.N) {
      var value = v[c];
      if (HAS_RESIDUAL) {
        let i = (at + c) % params.residual_size;
        value += residual[i / 4u][i % 4u];
      }
      y[(at + c) / 4u][(at + c) % 4u] = value;
    }
  }
}

// ---- tiled ----

fn tile_a(base: u32, row: u32, k: u32) -> f32 {
  if (row >= params.M || k >= params.K) {
    return 0.0;
  }
  return a_at(base, row, k);
}

fn tile_b(base: u32, k: u32, col: u32) -> f32 {
  if (k >= params.K || col >= params.N) {
    return 0.0;
  }
  return b_at(base, k, col);
}

// Element e of an operand tile `width` vec4s wide and TK deep as (vec4
// index, k): k fastest where the operand is stored with k contiguous, so
// neighbouring invocations take neighbouring addresses of its storage order.
fn tile_slot(e: u32, width: u32, k_contiguous: bool) -> vec2<u32> {
  if (k_contiguous) {
    return vec2<u32>(e / TK, e % TK);
  }
  return vec2<u32>(e % width, e / width);
}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let BM4 = WG_Y * TM4;
  let BN4 = WG_X * TN4;
  let threads = WG_X * WG_Y;
  let tx = lid.x;
  let ty = lid.y;
  let tid = ty * WG_X + tx;
  let row0 = wid.y * BM4 * 4u;
  let col0 = wid.x * BN4 * 4u;
  let bases = batch_bases(wid.z);

  // acc[i][r][j]: row (i·WG_Y + ty)·4 + r, column group j·WG_X + tx.
  var acc: array<array<array<vec4<f32>, TILED_MAX_TN4>, 4>, TILED_MAX_TM4>;
  for (var k0 = 0u; k0 < params.K; k0 += TK) {
    for (var l = 0u; l < (BM4 * TK + threads - 1u) / threads; l++) {
      let e = l * threads + tid;
      if (e < BM4 * TK) {
        let s = tile_slot(e, BM4, !TRANS_A);
        let row = row0 + s.x * 4u;
        let k = k0 + s.y;
        As[s.y * BM4 + s.x] = vec4<f32>(tile_a(bases.a, row, k), tile_a(bases.a, row + 1u, k), tile_a(bases.a, row + 2u, k), tile_a(bases.a, row + 3u, k));
      }
    }
    for (var l = 0u; l < (BN4 * TK + threads - 1u) / threads; l++) {
      let e = l * threads + tid;
      if (e < BN4 * TK) {
        let s = tile_slot(e, BN4, TRANS_B);
        let col = col0 + s.x * 4u;
        let k = k0 + s.y;
        Bs[s.y * BN4 + s.x] = vec4<f32>(tile_b(bases.b, k, col), tile_b(bases.b, k, col + 1u), tile_b(bases.b, k, col + 2u), tile_b(bases.b, k, col + 3u));
      }
    }
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      var bv: array<vec4<f32>, TILED_MAX_TN4>;
      for (var j = 0u; j < TN4; j++) {
        bv[j] = Bs[k * BN4 + j * WG_X + tx];
      }
      for (var i = 0u; i < TM4; i++) {
        let av = As[k * BM4 + i * WG_Y + ty];
        for (var j = 0u; j < TN4; j++) {
          acc[i][0][j] += av.x * bv[j];
          acc[i][1][j] += av.y * bv[j];
          acc[i][2][j] += av.z * bv[j];
          acc[i][3][j] += av.w * bv[j];
        }
      }
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < TM4; i++) {
    for (var r = 0u; r < 4u; r++) {
      for (var j = 0u; j < TN4; j++) {
        store_group(wid.z, row0 + (i * WG_Y + ty) * 4u + r, col0 + (j * WG_X + tx) * 4u, acc[i][r][j]);
      }
    }
  }
}

// ---- direct ----

// A[row][k .. k+3], row clamped into the matrix; k + 3 < K.
fn a_along_k(base: u32, row: u32, k: u32) -> vec4<f32> {
  let r = min(row, params.M - 1u);
  if (VEC_A && !TRANS_A) {
    return a4[(base + r * params.K + k) / 4u];
  }
  return vec4<f32>(a_at(base, r, k), a_at(base, r, k + 1u), a_at(base, r, k + 2u), a_at(base, r, k + 3u));
}

// A[row .. row+3][k], rows clamped into the matrix (with VEC_A, M % 4 == 0).
fn a_along_m(base: u32, row: u32, k: u32) -> vec4<f32> {
  let last = params.M - 1u;
  if (VEC_A && TRANS_A) {
    return a4[(base + k * params.M + min(row, params.M - 4u)) / 4u];
  }
  return vec4<f32>(a_at(base, min(row, last), k), a_at(base, min(row + 1u, last), k), a_at(base, min(row + 2u, last), k), a_at(base, min(row + 3u, last), k));
}

// B[k][col .. col+3], columns clamped into the matrix (with VEC_B, N % 4 == 0).
fn b_along_n(base: u32, k: u32, col: u32) -> vec4<f32> {
  let last = params.N - 1u;
  if (VEC_B && !TRANS_B) {
    return b_vec4(base + k * params.N + min(col, params.N - 4u));
  }
  return vec4<f32>(b_at(base, k, min(col, last)), b_at(base, k, min(col + 1u, last)), b_at(base, k, min(col + 2u, last)), b_at(base, k, min(col + 3u, last)));
}

// B[k .. k+3][col], column clamped into the matrix; k + 3 < K.
fn b_along_k(base: u32, k: u32, col: u32) -> vec4<f32> {
  let c = min(col, params.N - 1u);
  if (VEC_B && TRANS_B) {
    return b_vec4(base + c * params.K + k);
  }
  return vec4<f32>(b_at(base, k, c), b_at(base, k + 1u, c), b_at(base, k + 2u, c), b_at(base, k + 3u, c));
}

// One row group (4 rows) of the direct kernel's register block: acc[r][j] is
// row r, column group j. The kernel holds four variables of this type rather
// than an array of them, so the row-group loop is written out and never
// indexes memory.
alias GroupAcc = array<array<vec4<f32>, DIRECT_MAX_TN4>, 4>;
// bv[kk][j] = B[k + kk][column group j] for the four k of a step.
alias BStep = array<array<vec4<f32>, DIRECT_MAX_TN4>, 4>;

// Four k of one row group: reads its A values, accumulates against bv.
fn group_step(acc: ptr<function, GroupAcc>, bv: ptr<function, BStep>, a_base: u32, row: u32, k: u32) {
  // av[r][kk] = A[row + r][k + kk]
  var av: array<vec4<f32>, 4>;
  if (TRANS_A) {
    let m0 = a_along_m(a_base, row, k);
    let m1 = a_along_m(a_base, row, k + 1u);
    let m2 = a_along_m(a_base, row, k + 2u);
    let m3 = a_along_m(a_base, row, k + 3u);
    av[0] = vec4<f32>(m0.x, m1.x, m2.x, m3.x);
    av[1] = vec4<f32>(m0.y, m1.y, m2.y, m3.y);
    av[2] = vec4<f32>(m0.z, m1.z, m2.z, m3.z);
    av[3] = vec4<f32>(m0.w, m1.w, m2.w, m3.w);
  } else {
    for (var r = 0u; r < 4u; r++) {
      av[r] = a_along_k(a_base, row + r, k);
    }
  }
  for (var r = 0u; r < 4u; r++) {
    let v = av[r];
    for (var j = 0u; j < TN4; j++) {
      (*acc)[r][j] += v.x * (*bv)[0][j] + v.y * (*bv)[1][j] + v.z * (*bv)[2][j] + v.w * (*bv)[3][j];
    }
  }
}

// One k of one row group (the K % 4 tail).
fn group_tail(acc: ptr<function, GroupAcc>, bv: ptr<function, array<vec4<f32>, DIRECT_MAX_TN4>>, a_base: u32, row: u32, k: u32) {
  for (var r = 0u; r < 4u; r++) {
    let v = a_at(a_base, min(row + r, params.M - 1u), k);
    for (var j = 0u; j < TN4; j++) {
      (*acc)[r][j] += v * (*bv)[j];
    }
  }
}

fn group_store(acc: ptr<function, GroupAcc>, batch: u32, row: u32, col0: u32, tx: u32) {
  for (var r = 0u; r < 4u; r++) {
    for (var j = 0u; j < TN4; j++) {
      store_group(batch, row + r, col0 + (j * WG_X + tx) * 4u, (*acc)[r][j]);
    }
  }
}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn direct(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let tx = lid.x;
  // Row group i starts at row0 + i · row_step.
  let row0 = (wid.y * WG_Y * TM4 + lid.y) * 4u;
  let row_step = WG_Y * 4u;
  let col0 = wid.x * WG_X * TN4 * 4u;
  let bases = batch_bases(wid.z);
  let K = params.K;

  var acc0: GroupAcc;
  var acc1: GroupAcc;
  var acc2: GroupAcc;
  var acc3: GroupAcc;
  for (var k = 0u; k + 4u <= K; k += 4u) {
    var bv: BStep;
    for (var j = 0u; j < TN4; j++) {
      let col = col0 + (j * WG_X + tx) * 4u;
      if (TRANS_B) {
        let n0 = b_along_k(bases.b, k, col);
        let n1 = b_along_k(bases.b, k, col + 1u);
        let n2 = b_along_k(bases.b, k, col + 2u);
        let n3 = b_along_k(bases.b, k, col + 3u);
        bv[0][j] = vec4<f32>(n0.x, n1.x, n2.x, n3.x);
        bv[1][j] = vec4<f32>(n0.y, n1.y, n2.y, n3.y);
        bv[2][j] = vec4<f32>(n0.z, n1.z, n2.z, n3.z);
        bv[3][j] = vec4<f32>(n0.w, n1.w, n2.w, n3.w);
      } else {
        for (var kk = 0u; kk < 4u; kk++) {
          bv[kk][j] = b_along_n(bases.b, k + kk, col);
        }
      }
    }
    group_step(&acc0, &bv, bases.a, row0, k);
    if (TM4 > 1u) {
      group_step(&acc1, &bv, bases.a, row0 + row_step, k);
    }
    if (TM4 > 2u) {
      group_step(&acc2, &bv, bases.a, row0 + 2u * row_step, k);
    }
    if (TM4 > 3u) {
      group_step(&acc3, &bv, bases.a, row0 + 3u * row_step, k);
    }
  }
  for (var k = K & ~3u; k < K; k++) {
    var bv: array<vec4<f32>, DIRECT_MAX_TN4>;
    for (var j = 0u; j < TN4; j++) {
      bv[j] = b_along_n(bases.b, k, col0 + (j * WG_X + tx) * 4u);
    }
    group_tail(&acc0, &bv, bases.a, row0, k);
    if (TM4 > 1u) {
      group_tail(&acc1, &bv, bases.a, row0 + row_step, k);
    }
    if (TM4 > 2u) {
      group_tail(&acc2, &bv, bases.a, row0 + 2u * row_step, k);
    }
    if (TM4 > 3u) {
      group_tail(&acc3, &bv, bases.a, row0 + 3u * row_step, k);
    }
  }
  group_store(&acc0, wid.z, row0, col0, tx);
  if (TM4 > 1u) {
    group_store(&acc1, wid.z, row0 + row_step, col0, tx);
  }
  if (TM4 > 2u) {
    group_store(&acc2, wid.z, row0 + 2u * row_step, col0, tx);
  }
  if (TM4 > 3u) {
    group_store(&acc3, wid.z, row0 + 3u * row_step, col0, tx);
  }
}
