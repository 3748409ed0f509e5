// Fused scaled-dot-product attention (flash-attention style, forward):
//   out[b, h, i, :] = Σ_j softmax_j(scale · q[b,h,i,:]·k[b,h,j,:] + bias[b,h,i,j]) · v[b,h,j,:]
// with optional causal and key-padding masks, and optionally the row
// log-sum-exp lse[b, h, i] for a backward pass. The Lq × Lk score matrix never
// reaches global memory.
//
// Layout: q, k, v and out are addressed through element strides (uniforms) for
// (batch, head, token) with the head dimension contiguous, so [B, H, L, D] and
// [B, L, H, D] (a fused QKV projection's output) are read in place. bias is
// addressed through strides for (batch, head, query, key), 0 for broadcast
// dims. lse is dense [B, H, Lq]. The key-padding mask is dense [B, Lk], read as
// 32-bit words: nonzero means the key is padding and is ignored (for f32 masks
// MASK_IS_F32 makes -0.0 count as zero too).
//
// Tiling: one workgroup per block of WORKGROUP_SIZE · ROWS queries of one
// (b, h); grid (query blocks, H, B). Invocation lid owns queries
// block_start + r · WORKGROUP_SIZE + lid (r < ROWS): their pre-scaled q rows
// and output accumulators live in private arrays, held as vec4s zero-padded
// past D, so any D ≤ 128 works. K and V are streamed through workgroup memory
// KEY_TILE keys at a time, loaded cooperatively (consecutive invocations read
// consecutive elements); every invocation then reads the same tile element at
// the same time (a broadcast read, free of bank conflicts) and uses it for
// all ROWS queries. Rows are walked to the actual width (params.d_vec4), so
// one pipeline per 32-element head-dim class serves every D in it.
//
// Online softmax, KEY_STEP keys per step: the step's scores of each row are
// computed into registers (KEY_STEP / 4 vec4s), the running row maximum m is
// raised to the step's maximum, the running sum l and the accumulator are
// rescaled by exp(m_old - m_new) once, then p_j = exp(s_j - m_new) is
// accumulated. At the end out = acc / l and lse = m + log(l). A larger step
// reads each q / accumulator element once per more keys.
//
// Variants for CPU drivers (lavapipe): there every read at a computed index
// (workgroup or private memory alike) is a per-lane scalar load, and FMAs are
// cheap, so ROWS = 8 and KEY_STEP = 16 make each K/V read feed 8 rows and
// each q / accumulator read feed 16 keys. GPUs want ROWS = 1 (registers).
//
// Masking: a key is masked when it is past Lk, past the query under CAUSAL
// (j > i, top-left aligned as PyTorch's is_causal), flagged in the padding
// mask, or when its biased score is ≤ MASKED_SCORE (-1e30, so -inf bias and
// float-min style additive masks count as masked). Masked keys get weight
// exactly 0. A query whose keys are all masked gets out = 0 and lse = -inf
// (never NaN).
//
// Causal blocks stop streaming keys after the block's last query; blocks
// with rows past Lq still take part in the barriers and skip only the writes.

override WORKGROUP_SIZE: u32 = 64u;
// Queries per invocation, at most MAX_ROWS.
override ROWS: u32 = 1u;
// Keys per K/V tile in workgroup memory; a multiple of KEY_STEP.
override KEY_TILE: u32 = 32u;
// Keys per online-softmax step: 4, 8 or 16 (at most MAX_KEY_STEP).
override KEY_STEP: u32 = 4u;
// TILE_D_VEC4, TILE_DV_VEC4, HAS_BIAS, HAS_MASK, MASK_IS_F32, CAUSAL and the
// uniform layout: shaders/lib/attention_common.wgsl.
override WRITE_LSE: bool = false;

// Bounds of the private arrays (WGSL sizes them with constants, not
// overrides; MAX_D_VEC4 is attention_common's): the TS side keeps ROWS ≤ MAX_ROWS.
const MAX_ROWS: u32 = 8u;
const MAX_KEY_STEP: u32 = 16u;
const MAX_STEP_VEC4: u32 = 4u;

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> key_mask: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;
@group(0) @binding(7) var<uniform> params: Params;

// Four keys to a vec4: 1.0 where the key is past Lk or padding.
var<workgroup> key_off: array<vec4<f32>, KEY_TILE / 4u>;

//! include attention_common

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let b = wg.z;
  let h = wg.y;
  let heads = nwg.y;
  let d_vec4 = params.d_vec4;
  let dv_vec4 = params.dv_vec4;
  let query_block = WORKGROUP_SIZE * ROWS;
  let block_start = wg.x * query_block;

  // Row r of this invocation is query block_start + r·WORKGROUP_SIZE + lid.
  // Arrays are initialised explicitly: Dawn on lavapipe was seen not to
  // re-zero a variable declared inside a loop on later iterations.
  var q_rows: array<array<vec4<f32>, MAX_D_VEC4>, MAX_ROWS>;
  var acc: array<array<vec4<f32>, MAX_D_VEC4>, MAX_ROWS>;
  var m: array<f32, MAX_ROWS>;
  var l: array<f32, MAX_ROWS>;
  for (var r = 0u; r < ROWS; r++) {
    let i = block_start + r * WORKGROUP_SIZE + lid;
    let q_base = b * params.q_strides.x + h * params.q_strides.y + i * params.q_strides.z;
    for (var c = 0u; c < d_vec4; c++) {
      var x = vec4<f32>(0.0);
      if (i < params.lq) { x = load_q4(q_base, 4u * c, params.d) * params.scale; }
      q_rows[r][c] = x;
    }
    for (var c = 0u; c < dv_vec4; c++) { acc[r][c] = vec4<f32>(0.0); }
    m[r] = MASKED_SCORE;
    l[r] = 0.0;
  }

  // Causal: no query of this block sees keys past its last query.
  var key_end = params.lk;
  if (CAUSAL) { key_end = min(key_end, block_start + query_block); }

  for (var tile_start = 0u; tile_start < key_end; tile_start += KEY_TILE) {
    stage_kv_tile(b, h, tile_start, lid);
    for (var e = lid; e < KEY_TILE / 4u; e += WORKGROUP_SIZE) {
      var off = vec4<f32>(0.0);
      for (var t = 0u; t < 4u; t++) { off[t] = select(0.0, 1.0, key_is_off(b, tile_start + 4u * e + t)); }
      key_off[e] = off;
    }
    workgroupBarrier();

    // KEY_STEP keys at a time: their scores form KEY_STEP / 4 vec4s per row,
    // each K/V vec4 read from the tile feeds ROWS rows and each row element
    // read feeds KEY_STEP keys, and the accumulator is rescaled once per
    // step. Keys past Lk (zero rows in the tile) are masked by key_off.
    let tile_keys = min(KEY_TILE, key_end - tile_start);
    for (var g = 0u; g < tile_keys; g += KEY_STEP) {
      var scores: array<array<vec4<f32>, MAX_STEP_VEC4>, MAX_ROWS>;
      for (var r = 0u; r < ROWS; r++) {
        for (var u = 0u; u < KEY_STEP / 4u; u++) { scores[r][u] = vec4<f32>(0.0); }
      }
      for (var c = 0u; c < d_vec4; c++) {
        var kc: array<vec4<f32>, MAX_KEY_STEP>;
        for (var t = 0u; t < KEY_STEP; t++) { kc[t] = k_tile[(g + t) * d_vec4 + c]; }
        for (var r = 0u; r < ROWS; r++) {
          let qv = q_rows[r][c];
          for (var u = 0u; u < KEY_STEP / 4u; u++) {
            scores[r][u] += vec4<f32>(dot(qv, kc[4u * u]), dot(qv, kc[4u * u + 1u]), dot(qv, kc[4u * u + 2u]), dot(qv, kc[4u * u + 3u]));
          }
        }
      }
      var p: array<array<vec4<f32>, MAX_STEP_VEC4>, MAX_ROWS>;
      var alpha: array<f32, MAX_ROWS>;
      for (var r = 0u; r < ROWS; r++) {
        let i = block_start + r * WORKGROUP_SIZE + lid;
        let bias_row = b * params.bias_strides.x + h * params.bias_strides.y + i * params.bias_strides.z;
        var step_max = MASKED_SCORE;
        var masked: array<vec4<bool>, MAX_STEP_VEC4>;
        for (var u = 0u; u < KEY_STEP / 4u; u++) {
          let j4 = vec4<u32>(tile_start + g + 4u * u) + vec4<u32>(0u, 1u, 2u, 3u);
          var mu = key_off[g / 4u + u] != vec4<f32>(0.0);
          if (CAUSAL) { mu = mu | (j4 > vec4<u32>(i)); }
          var s = scores[r][u];
          if (HAS_BIAS && i < params.lq) {
            for (var t = 0u; t < 4u; t++) {
              if (!mu[t]) { s[t] += bias[bias_row + j4[t] * params.bias_strides.w]; }
            }
          }
          mu = mu | (s <= vec4<f32>(MASKED_SCORE));
          s = select(s, vec4<f32>(MASKED_SCORE), mu);
          scores[r][u] = s;
          masked[u] = mu;
          step_max = max(step_max, max(max(s.x, s.y), max(s.z, s.w)));
        }
        let m_new = max(m[r], step_max);
        // Both are ≥ MASKED_SCORE, so the difference is finite and exp lies in (0, 1].
        alpha[r] = exp(m[r] - m_new);
        var step_sum = 0.0;
        for (var u = 0u; u < KEY_STEP / 4u; u++) {
          let pu = select(exp(scores[r][u] - vec4<f32>(m_new)), vec4<f32>(0.0), masked[u]);
          p[r][u] = pu;
          step_sum += pu.x + pu.y + pu.z + pu.w;
        }
        l[r] = l[r] * alpha[r] + step_sum;
        m[r] = m_new;
      }
      for (var c = 0u; c < dv_vec4; c++) {
        var vc: array<vec4<f32>, MAX_KEY_STEP>;
        for (var t = 0u; t < KEY_STEP; t++) { vc[t] = v_tile[(g + t) * dv_vec4 + c]; }
        for (var r = 0u; r < ROWS; r++) {
          var a = acc[r][c] * alpha[r];
          for (var u = 0u; u < KEY_STEP / 4u; u++) {
            let pu = p[r][u];
            a += pu.x * vc[4u * u] + pu.y * vc[4u * u + 1u] + pu.z * vc[4u * u + 2u] + pu.w * vc[4u * u + 3u];
          }
          acc[r][c] = a;
        }
      }
    }
    workgroupBarrier();
  }

  for (var r = 0u; r < ROWS; r++) {
    let i = block_start + r * WORKGROUP_SIZE + lid;
    if (i >= params.lq) { continue; }
    // All keys masked: l = 0, and the row is defined as zeros (see header).
    let inv_l = select(1.0 / l[r], 0.0, l[r] == 0.0);
    let out_base = b * params.out_strides.x + h * params.out_strides.y + i * params.out_strides.z;
    for (var c = 0u; c < dv_vec4; c++) {
      let o = acc[r][c] * inv_l;
      for (var e = 0u; e < 4u; e++) {
        if (4u * c + e < params.dv) { out[out_base + 4u * c + e] = o[e]; }
      }
    }
    if (WRITE_LSE) {
      // -inf made at run time: WGSL constant expressions cannot hold infinities.
      var neg_inf_bits = 0xff800000u;
      lse[(b * heads + h) * params.lq + i] = select(m[r] + log(l[r]), bitcast<f32>(neg_inf_bits), l[r] == 0.0);
    }
  }
}
