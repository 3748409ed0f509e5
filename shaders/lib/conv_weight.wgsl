// The convolutions' weight operand (conv2d, conv_transpose2d,
// depthwise_nhwc; issue 19 f16 weights). The includer binds the weights as
// `w: array<u32>`: f32 bit patterns, or with W_F16 binary16 values two to a
// word (element e in word e / 2, the low half first, as little-endian f16
// arrays lie in memory). w_at widens either to f32, so products and sums stay
// f32, as with matmul's B_F16 (shaders/matmul.wgsl). One read per weight
// either way, the same number of reads as f32 with half the bytes.
// unpack2x16float is core WGSL: no `enable f16`.

override W_F16: bool = false;

// Weight element i, widened to f32.
fn w_at(i: u32) -> f32 {
  if (W_F16) {
    return unpack2x16float(w[i / 2u])[i % 2u];
  }
  return bitcast<f32>(w[i]);
}
