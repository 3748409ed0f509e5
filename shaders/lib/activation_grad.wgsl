// Derivatives of the activations of shaders/lib/activation.wgsl, for backward
// kernels (activation backward, the fused epilogue of matmul backward).
// It includes the forward library for erf_approx and sigmoid, so a shader
// that needs both `activate` and `activate_grad` includes only this file.
// Same codes as ACTIVATIONS in src/kernels/activation.ts.

//! include activation

// d activate(v, code) / dv, evaluated at the forward input v.
// relu' at 0 is 0 (as PyTorch). `code` is an override constant at every call
// site, so the switch folds away.
fn activate_grad(v: f32, code: u32) -> f32 {
  switch code {
    case 1u: { return select(0.0, 1.0, v > 0.0); }
    case 2u: {
      // Φ(v) + v·φ(v); exp(-v²/2) underflows to 0 harmlessly for large |v|.
      let cdf = 0.5 * (1.0 + erf_approx(v * 0.7071067811865476));
      return cdf + v * 0.3989422804014327 * exp(-0.5 * v * v);
    }
    case 3u: {
      // ½(1 + t) + ½·v·(1 − t²)·u', t = tanh(u), u = k(v + 0.044715v³).
      let u = 0.7978845608028654 * (v + 0.044715 * v * v * v);
      let t = 1.0 - 2.0 / (exp(clamp(2.0 * u, -80.0, 80.0)) + 1.0);
      let du = 0.7978845608028654 * (1.0 + 0.134145 * v * v);
      return 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * du;
    }
    case 4u: {
      // σ(av) + a·v·σ(av)(1 − σ(av)), a = 1.702.
      let s = sigmoid(1.702 * v);
      return s + 1.702 * v * s * (1.0 - s);
    }
    case 5u: {
      let s = sigmoid(v);
      return s * (1.0 - s);
    }
    default: { return 1.0; }
  }
}
