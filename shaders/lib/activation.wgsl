// Activation functions shared by every kernel with a fused activation
// (unary, matmul, conv2d). WGSL has no includes: scripts/gen-shaders.js
// splices this file in where a shader has the line `//! include activation`.
// The codes match ACTIVATIONS in src/kernels/activation.ts.

// erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), as WGSL has none.
fn erf_approx(v: f32) -> f32 {
  let s = sign(v);
  let a = abs(v);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return s * (1.0 - poly * exp(-a * a));
}

fn sigmoid(v: f32) -> f32 {
  // Written so that exp never overflows: exp(-|v|) <= 1.
  let e = exp(-abs(v));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), v >= 0.0);
}

// 0 none, 1 relu, 2 gelu (erf), 3 gelu (tanh), 4 quick_gelu x·σ(1.702x), 5 sigmoid.
// `code` is an override constant at every call site, so the switch folds away.
fn activate(v: f32, code: u32) -> f32 {
  switch code {
    case 1u: { return max(v, 0.0); }
    case 2u: { return 0.5 * v * (1.0 + erf_approx(v * 0.7071067811865476)); }
    case 3u: {
      // tanh(u) = 1 - 2 / (exp(2u) + 1) stays finite for large |u|.
      let u = 0.7978845608028654 * (v + 0.044715 * v * v * v);
      return 0.5 * v * (2.0 - 2.0 / (exp(clamp(2.0 * u, -80.0, 80.0)) + 1.0));
    }
    case 4u: { return v * sigmoid(1.702 * v); }
    case 5u: { return sigmoid(v); }
    default: { return v; }
  }
}

fn activate4(v: vec4<f32>, code: u32) -> vec4<f32> {
  return vec4<f32>(activate(v.x, code), activate(v.y, code), activate(v.z, code), activate(v.w, code));
}
