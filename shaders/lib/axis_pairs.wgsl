// Per-axis values of the strided kernels (binary, transform) for up to 8
// axes, packed as a vec4 pair: lo = axes 0–3, hi = axes 4–7, outermost first
// (src/kernels/strided.ts vec4Pair packs them; MAX_RANK there is the 8).

// Axis d (0..7) of a vec4 pair.
fn axis_value(lo: vec4<u32>, hi: vec4<u32>, d: u32) -> u32 {
  let v = select(hi, lo, d < 4u);
  return v[d & 3u];
}
