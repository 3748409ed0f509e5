// One AdamW step (PyTorch torch.optim.AdamW, amsgrad off) on one dense f32
// parameter, elementwise, with its first and second moments m, v:
//   p ← p · (1 − lr·wd)                          (decoupled weight decay)
//   m ← β1·m + (1 − β1)·g,  v ← β2·v + (1 − β2)·g²
//   p ← p − step_size · m / (√v / √(1 − β2^t) + eps),  step_size = lr / (1 − β1^t)
// The host computes the scalars in float64 once per step, so the kernel holds
// no step counter, and 1 − β comes from float64 as in PyTorch (1 − 0.999 in
// f32 is 4.7e-5 off, which would shift v by that much relative).
// Layout: flat; one invocation per element, neighbouring threads on
// neighbouring addresses of all four buffers. Entry point:
// shaders/lib/elementwise.wgsl.

struct Params {
  n: u32,
  decay: f32, // 1 − lr·wd
  beta1: f32,
  one_minus_beta1: f32,
  beta2: f32,
  one_minus_beta2: f32,
  step_size: f32, // lr / (1 − β1^t)
  bias_correction2_sqrt: f32, // √(1 − β2^t)
  eps: f32,
}

@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

//! include elementwise

// Updates element i of the parameter and its state.
fn element(i: u32) {
  let g = grad[i];
  let m_new = params.beta1 * m[i] + params.one_minus_beta1 * g;
  let v_new = params.beta2 * v[i] + params.one_minus_beta2 * g * g;
  m[i] = m_new;
  v[i] = v_new;
  let denom = sqrt(v_new) / params.bias_correction2_sqrt + params.eps;
  param[i] = param[i] * params.decay - params.step_size * m_new / denom;
}
