// What the attention forward and backward kernels share: the uniform layout
// (written by attentionParams in src/kernels/attention-shapes.ts), the
// masking and tile overrides, and the reads of q, k, v rows and the key mask.
// The includer declares the bindings q, k, v (f32 rows), key_mask (u32
// words) and `params: Params` (a uniform), and the overrides WORKGROUP_SIZE
// and KEY_TILE.

// Capacity of a K / V tile row in vec4s (≥ ceil(D / 4), ceil(Dv / 4)); the
// loops run to the actual widths in params, so one pipeline serves many head
// dims.
override TILE_D_VEC4: u32 = 16u;
override TILE_DV_VEC4: u32 = 16u;
override HAS_BIAS: bool = false;
override HAS_MASK: bool = false;
override MASK_IS_F32: bool = false;
override CAUSAL: bool = false;

// Bound of the private row arrays in vec4s (WGSL sizes them with constants,
// not overrides): MAX_HEAD_DIM in src/kernels/attention-shapes.ts keeps D, Dv ≤ 128.
const MAX_D_VEC4: u32 = 32u;

// A score at or below this is masked (so -inf bias and MASKED_SCORE both mask).
const MASKED_SCORE: f32 = -1e30;

struct Params {
  lq: u32,
  lk: u32,
  d: u32,
  dv: u32,
  // ceil(D / 4), ceil(Dv / 4): a row's width in vec4s, zero-padded past D.
  d_vec4: u32,
  dv_vec4: u32,
  scale: f32,
  // Element strides for (batch, head, token); the head dim is contiguous.
  q_strides: vec3<u32>,
  k_strides: vec3<u32>,
  v_strides: vec3<u32>,
  out_strides: vec3<u32>,
  // Element strides for (batch, head, query, key); 0 for a broadcast dim.
  bias_strides: vec4<u32>,
}

// Four consecutive elements of a row starting at `at`, zero past `len`.
fn load_q4(base: u32, at: u32, len: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  for (var e = 0u; e < 4u; e++) {
    if (at + e < len) { r[e] = q[base + at + e]; }
  }
  return r;
}

fn load_k4(base: u32, at: u32, len: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  for (var e = 0u; e < 4u; e++) {
    if (at + e < len) { r[e] = k[base + at + e]; }
  }
  return r;
}

fn load_v4(base: u32, at: u32, len: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  for (var e = 0u; e < 4u; e++) {
    if (at + e < len) { r[e] = v[base + at + e]; }
  }
  return r;
}

// Key j of batch b is ignored: past Lk, or marked in the padding mask (an
// f32 mask counts -0 as zero).
fn key_is_off(b: u32, j: u32) -> bool {
  if (j >= params.lk) { return true; }
  if (!HAS_MASK) { return false; }
  let word = key_mask[b * params.lk + j];
  if (MASK_IS_F32) { return (word & 0x7fffffffu) != 0u; }
  return word != 0u;
}

// A tile of KEY_TILE keys and their values in workgroup memory, rows of
// TILE_D_VEC4 (TILE_DV_VEC4) vec4s of which the first d_vec4 (dv_vec4) are used.
var<workgroup> k_tile: array<vec4<f32>, KEY_TILE * TILE_D_VEC4>;
var<workgroup> v_tile: array<vec4<f32>, KEY_TILE * TILE_DV_VEC4>;

// Stages keys tile_start … tile_start + KEY_TILE − 1 of head (b, h) into
// k_tile and v_tile, zero rows past Lk; the workgroup's threads share the
// copy, so the caller puts a barrier before reading the tiles.
fn stage_kv_tile(b: u32, h: u32, tile_start: u32, lid: u32) {
  let k_head = b * params.k_strides.x + h * params.k_strides.y;
  let v_head = b * params.v_strides.x + h * params.v_strides.y;
  let d_vec4 = params.d_vec4;
  let dv_vec4 = params.dv_vec4;
  for (var e = lid; e < KEY_TILE * d_vec4; e += WORKGROUP_SIZE) {
    let j = tile_start + e / d_vec4;
    var kv = vec4<f32>(0.0);
    if (j < params.lk) { kv = load_k4(k_head + j * params.k_strides.z, 4u * (e % d_vec4), params.d); }
    k_tile[e] = kv;
  }
  for (var e = lid; e < KEY_TILE * dv_vec4; e += WORKGROUP_SIZE) {
    let j = tile_start + e / dv_vec4;
    var vv = vec4<f32>(0.0);
    if (j < params.lk) { vv = load_v4(v_head + j * params.v_strides.z, 4u * (e % dv_vec4), params.dv); }
    v_tile[e] = vv;
  }
}
