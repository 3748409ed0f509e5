// Bilinear interpolation along one axis as PyTorch's F.interpolate does it
// in f32 (resize.wgsl, mask_postprocess.wgsl): a source coordinate src reads
// i0 = min(floor(src), len − 1) and i1 = min(i0 + 1, len − 1) with weight
// λ = clamp(src − i0, 0, 1) on i1, and blends (1 − λ)·v[i0] + λ·v[i1].

struct Taps {
  i0: u32,
  i1: u32,
  lambda: f32,
}

// align_corners = False: output index dst reads src = max(ratio · (dst + 0.5) − 0.5, 0).
fn half_pixel_source(dst: u32, ratio: f32) -> f32 {
  return max(ratio * (f32(dst) + 0.5) - 0.5, 0.0);
}

// The taps of source coordinate src on an axis of len samples.
fn taps_at(src: f32, len: u32) -> Taps {
  let i0 = min(u32(floor(src)), len - 1u);
  return Taps(i0, min(i0 + 1u, len - 1u), clamp(src - f32(i0), 0.0, 1.0));
}

// (1 − λ)·v0 + λ·v1.
fn blend(t: Taps, v0: f32, v1: f32) -> f32 {
  return (1.0 - t.lambda) * v0 + t.lambda * v1;
}
