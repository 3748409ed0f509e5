// Fused attention backward (FlashAttention-2 style) for the forward in
// attention.wgsl: given q, k, v, the forward output `out`, its gradient d_out
// and the row log-sum-exp `lse` saved by the forward, computes dq, dk, dv
// (and optionally dS, the gradient of the biased scores) without storing the
// Lq × Lk probability matrix. Probabilities are recomputed per (query, key)
// pair as P = exp(s − lse), s = scale · q·k + bias, with the forward's masks.
//
//   delta_i = d_out_i · out_i                  (= Σ_j P_ij dP_ij)
//   dP_ij   = d_out_i · v_j
//   dS_ij   = P_ij (dP_ij − delta_i)
//   dq_i    = scale Σ_j dS_ij k_j,   dk_j = scale Σ_i dS_ij q_i,   dv_j = Σ_i P_ij d_out_i
//
// Two entry points, dispatched in this order, each owning what it writes, so
// no atomics are needed and the sums are deterministic:
// - query_grads: one invocation per query (grid: query blocks of
//   WORKGROUP_SIZE, H, B). Holds q_i, d_out_i and the dq accumulator in
//   private arrays, computes delta_i (written with lse_i to `row_stats` for
//   key_grads), and streams K and V through workgroup memory KEY_TILE keys
//   at a time.
// - key_grads: one invocation per key (grid: key blocks of WORKGROUP_SIZE, H,
//   B). Holds k_j, v_j and the dk, dv accumulators in private arrays and
//   streams q, d_out and row_stats through workgroup memory QUERY_TILE
//   queries at a time. With WRITE_DS it also writes dS_ij to the dense
//   [B, H, Lq, Lk] tensor `ds` (consecutive invocations write consecutive
//   keys, so the writes coalesce); then it visits every query so that every
//   element of ds is written (masked ones as 0).
// Tiles are loaded cooperatively (consecutive invocations read consecutive
// elements); every invocation then reads the same tile element at the same
// time (a broadcast read).
//
// Layout: q, k, v, out, d_out and the gradients are addressed through element
// strides for (batch, head, token) with the head dim contiguous, so
// [B, H, L, D] and [B, L, H, D] are read in place; dq, dk, dv use the strides
// of q, k, v, and d_out those of out. Rows are held as vec4s zero-padded past
// D; the tile capacities TILE_D_VEC4 / TILE_DV_VEC4 are overrides and loops
// run to the actual widths, so one pipeline serves a class of head dims.
// bias is addressed through (batch, head, query, key) strides, 0 where it
// broadcasts. lse is dense [B, H, Lq]; row_stats dense [B, H, Lq] of
// (lse, delta) pairs; the key-padding mask is dense [B, Lk] 32-bit words,
// nonzero = padded (MASK_IS_F32: -0.0 counts as zero).
//
// Each entry point binds 10 storage buffers (query_grads: q k v out d_out lse
// bias key_mask row_stats dq; key_grads: q k v d_out bias key_mask row_stats
// dk dv ds), the most Chromium's SwiftShader allows per shader stage;
// src/kernels/program.ts lays out only the bindings an entry point uses.
// That is why key_grads reads lse from row_stats, not from a buffer of its own.
//
// Masking, as in the forward: a pair is masked when the key is padded, when
// j > i under CAUSAL (top-left aligned), or when its biased score is
// ≤ MASKED_SCORE. A query whose lse is ≤ MASKED_SCORE (the forward's -inf for
// a fully masked row) is treated as fully masked. Masked pairs contribute
// nothing and get dS = 0, so fully masked rows give dq = 0, never NaN.
//
// CAUSAL lets query_grads stop at the block's last query and key_grads
// (without WRITE_DS) start at the block's first key. Invocations past Lq / Lk
// still take part in the tile loads and barriers and skip only the writes.

override WORKGROUP_SIZE: u32 = 64u;
// Keys per K/V tile (query_grads) and queries per q/d_out tile (key_grads).
override KEY_TILE: u32 = 32u;
override QUERY_TILE: u32 = 32u;
// TILE_D_VEC4, TILE_DV_VEC4, HAS_BIAS, HAS_MASK, MASK_IS_F32, CAUSAL and the
// uniform layout: shaders/lib/attention_common.wgsl.
override WRITE_DS: bool = false;

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> out: array<f32>;
@group(0) @binding(4) var<storage, read> d_out: array<f32>;
@group(0) @binding(5) var<storage, read> lse: array<f32>;
@group(0) @binding(6) var<storage, read> bias: array<f32>;
@group(0) @binding(7) var<storage, read> key_mask: array<u32>;
// (lse_i, delta_i) per query row: written by query_grads, read by key_grads.
@group(0) @binding(8) var<storage, read_write> row_stats: array<vec2<f32>>;
@group(0) @binding(9) var<storage, read_write> dq: array<f32>;
@group(0) @binding(10) var<storage, read_write> dk: array<f32>;
@group(0) @binding(11) var<storage, read_write> dv: array<f32>;
@group(0) @binding(12) var<storage, read_write> ds: array<f32>;
@group(0) @binding(13) var<uniform> params: Params;

// query_grads' key flags (1.0 = padded or past Lk); its K/V tiles are attention_common's.
var<workgroup> key_off: array<f32, KEY_TILE>;
// key_grads' q / d_out tiles, with lse (MASKED_SCORE past Lq) and delta from row_stats.
var<workgroup> q_tile: array<vec4<f32>, QUERY_TILE * TILE_D_VEC4>;
var<workgroup> do_tile: array<vec4<f32>, QUERY_TILE * TILE_DV_VEC4>;
var<workgroup> lse_tile: array<f32, QUERY_TILE>;
var<workgroup> delta_tile: array<f32, QUERY_TILE>;

//! include attention_common

fn load_out4(base: u32, at: u32, len: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  for (var e = 0u; e < 4u; e++) {
    if (at + e < len) { r[e] = out[base + at + e]; }
  }
  return r;
}

fn load_do4(base: u32, at: u32, len: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  for (var e = 0u; e < 4u; e++) {
    if (at + e < len) { r[e] = d_out[base + at + e]; }
  }
  return r;
}

fn bias_at(b: u32, h: u32, i: u32, j: u32) -> f32 {
  let s = params.bias_strides;
  return bias[b * s.x + h * s.y + i * s.z + j * s.w];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn query_grads(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let b = wg.z;
  let h = wg.y;
  let heads = nwg.y;
  let d_vec4 = params.d_vec4;
  let dv_vec4 = params.dv_vec4;
  let block_start = wg.x * WORKGROUP_SIZE;
  let i = block_start + lid;
  let row_in = i < params.lq;

  // Private arrays are initialised explicitly (Dawn on lavapipe was seen not
  // to re-zero variables declared inside loops).
  var q_row: array<vec4<f32>, MAX_D_VEC4>;
  var do_row: array<vec4<f32>, MAX_D_VEC4>;
  var dq_acc: array<vec4<f32>, MAX_D_VEC4>;
  let q_base = b * params.q_strides.x + h * params.q_strides.y + i * params.q_strides.z;
  let o_base = b * params.out_strides.x + h * params.out_strides.y + i * params.out_strides.z;
  var delta_i = 0.0;
  for (var c = 0u; c < d_vec4; c++) {
    var x = vec4<f32>(0.0);
    if (row_in) { x = load_q4(q_base, 4u * c, params.d); }
    q_row[c] = x;
    dq_acc[c] = vec4<f32>(0.0);
  }
  for (var c = 0u; c < dv_vec4; c++) {
    var g = vec4<f32>(0.0);
    if (row_in) {
      g = load_do4(o_base, 4u * c, params.dv);
      delta_i += dot(g, load_out4(o_base, 4u * c, params.dv));
    }
    do_row[c] = g;
  }
  let row_index = (b * heads + h) * params.lq + i;
  var lse_i = MASKED_SCORE;
  if (row_in) {
    lse_i = lse[row_index];
    row_stats[row_index] = vec2<f32>(lse_i, delta_i);
  }
  // -inf (fully masked) or past Lq: no pair of this row counts. `!(x > m)` also catches NaN.
  let row_off = !(lse_i > MASKED_SCORE);

  var key_end = params.lk;
  if (CAUSAL) { key_end = min(key_end, block_start + WORKGROUP_SIZE); }

  for (var tile_start = 0u; tile_start < key_end; tile_start += KEY_TILE) {
    stage_kv_tile(b, h, tile_start, lid);
    for (var t = lid; t < KEY_TILE; t += WORKGROUP_SIZE) {
      key_off[t] = select(0.0, 1.0, key_is_off(b, tile_start + t));
    }
    workgroupBarrier();

    let tile_keys = min(KEY_TILE, key_end - tile_start);
    for (var t = 0u; t < tile_keys; t++) {
      let j = tile_start + t;
      var skip = row_off || key_off[t] != 0.0;
      if (CAUSAL) { skip = skip || j > i; }
      if (skip) { continue; }
      var qk = 0.0;
      for (var c = 0u; c < d_vec4; c++) { qk += dot(q_row[c], k_tile[t * d_vec4 + c]); }
      var s = qk * params.scale;
      if (HAS_BIAS) { s += bias_at(b, h, i, j); }
      if (s <= MASKED_SCORE) { continue; }
      let p = exp(s - lse_i);
      var dp = 0.0;
      for (var c = 0u; c < dv_vec4; c++) { dp += dot(do_row[c], v_tile[t * dv_vec4 + c]); }
      let dsij = p * (dp - delta_i);
      for (var c = 0u; c < d_vec4; c++) { dq_acc[c] += dsij * k_tile[t * d_vec4 + c]; }
    }
    workgroupBarrier();
  }

  if (!row_in) { return; }
  for (var c = 0u; c < d_vec4; c++) {
    let g = dq_acc[c] * params.scale;
    for (var e = 0u; e < 4u; e++) {
      if (4u * c + e < params.d) { dq[q_base + 4u * c + e] = g[e]; }
    }
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn key_grads(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let b = wg.z;
  let h = wg.y;
  let heads = nwg.y;
  let d_vec4 = params.d_vec4;
  let dv_vec4 = params.dv_vec4;
  let block_start = wg.x * WORKGROUP_SIZE;
  let j = block_start + lid;
  let key_in = j < params.lk;
  let key_off_j = key_is_off(b, j);

  var k_row: array<vec4<f32>, MAX_D_VEC4>;
  var v_row: array<vec4<f32>, MAX_D_VEC4>;
  var dk_acc: array<vec4<f32>, MAX_D_VEC4>;
  var dv_acc: array<vec4<f32>, MAX_D_VEC4>;
  let k_base = b * params.k_strides.x + h * params.k_strides.y + j * params.k_strides.z;
  let v_base = b * params.v_strides.x + h * params.v_strides.y + j * params.v_strides.z;
  for (var c = 0u; c < d_vec4; c++) {
    var x = vec4<f32>(0.0);
    if (key_in) { x = load_k4(k_base, 4u * c, params.d); }
    k_row[c] = x;
    dk_acc[c] = vec4<f32>(0.0);
  }
  for (var c = 0u; c < dv_vec4; c++) {
    var x = vec4<f32>(0.0);
    if (key_in) { x = load_v4(v_base, 4u * c, params.dv); }
    v_row[c] = x;
    dv_acc[c] = vec4<f32>(0.0);
  }

  let q_head = b * params.q_strides.x + h * params.q_strides.y;
  let o_head = b * params.out_strides.x + h * params.out_strides.y;
  let rows_head = (b * heads + h) * params.lq;
  // Causal: queries before the block's first key see none of its keys.
  var query_start = 0u;
  if (CAUSAL && !WRITE_DS) { query_start = min(block_start, params.lq); }

  for (var tile_start = query_start; tile_start < params.lq; tile_start += QUERY_TILE) {
    for (var e = lid; e < QUERY_TILE * d_vec4; e += WORKGROUP_SIZE) {
      let i = tile_start + e / d_vec4;
      var x = vec4<f32>(0.0);
      if (i < params.lq) { x = load_q4(q_head + i * params.q_strides.z, 4u * (e % d_vec4), params.d); }
      q_tile[e] = x;
    }
    for (var e = lid; e < QUERY_TILE * dv_vec4; e += WORKGROUP_SIZE) {
      let i = tile_start + e / dv_vec4;
      var x = vec4<f32>(0.0);
      if (i < params.lq) { x = load_do4(o_head + i * params.out_strides.z, 4u * (e % dv_vec4), params.dv); }
      do_tile[e] = x;
    }
    for (var t = lid; t < QUERY_TILE; t += WORKGROUP_SIZE) {
      let i = tile_start + t;
      var stats = vec2<f32>(MASKED_SCORE, 0.0);
      if (i < params.lq) { stats = row_stats[rows_head + i]; }
      lse_tile[t] = stats.x;
      delta_tile[t] = stats.y;
    }
    workgroupBarrier();

    let tile_rows = min(QUERY_TILE, params.lq - tile_start);
    for (var t = 0u; t < tile_rows; t++) {
      let i = tile_start + t;
      let lse_i = lse_tile[t];
      var skip = key_off_j || !(lse_i > MASKED_SCORE);
      if (CAUSAL) { skip = skip || j > i; }
      var dsij = 0.0;
      if (!skip) {
        var qk = 0.0;
        for (var c = 0u; c < d_vec4; c++) { qk += dot(q_tile[t * d_vec4 + c], k_row[c]); }
        var s = qk * params.scale;
        if (HAS_BIAS) { s += bias_at(b, h, i, j); }
        if (s > MASKED_SCORE) {
          let p = exp(s - lse_i);
          var dp = 0.0;
          for (var c = 0u; c < dv_vec4; c++) { dp += dot(do_tile[t * dv_vec4 + c], v_row[c]); }
          dsij = p * (dp - delta_tile[t]);
          for (var c = 0u; c < dv_vec4; c++) { dv_acc[c] += p * do_tile[t * dv_vec4 + c]; }
          for (var c = 0u; c < d_vec4; c++) { dk_acc[c] += dsij * q_tile[t * d_vec4 + c]; }
        }
      }
      if (WRITE_DS && key_in) { ds[(rows_head + i) * params.lk + j] = dsij; }
    }
    workgroupBarrier();
  }

  if (!key_in) { return; }
  for (var c = 0u; c < d_vec4; c++) {
    let g = dk_acc[c] * params.scale;
    for (var e = 0u; e < 4u; e++) {
      if (4u * c + e < params.d) { dk[k_base + 4u * c + e] = g[e]; }
    }
  }
  for (var c = 0u; c < dv_vec4; c++) {
    let g = dv_acc[c];
    for (var e = 0u; e < 4u; e++) {
      if (4u * c + e < params.dv) { dv[v_base + 4u * c + e] = g[e]; }
    }
  }
}
