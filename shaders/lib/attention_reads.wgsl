// Reads shared by the attention forward and backward kernels. The includer
// declares the bindings q, k, v (f32 rows), key_mask (u32 words) and the
// uniform `params` (with lk), and the overrides HAS_MASK and MASK_IS_F32.

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
