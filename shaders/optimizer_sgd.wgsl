// One SGD step (PyTorch torch.optim.SGD) on one dense f32 parameter,
// elementwise:
//   d ← g + wd·p
//   with momentum: b ← d on the first step (PyTorch initialises the buffer
//                  with the first gradient), else b ← μ·b + (1 − dampening)·d;
//                  d ← d + μ·b (nesterov) or d ← b
//   p ← p − lr·d
// USE_MOMENTUM false (μ = 0) keeps no buffer, as PyTorch: the host binds a
// placeholder to `momentum_buffer`, which is then never touched.
// Layout: flat; one invocation per element, neighbouring threads on
// neighbouring addresses. Entry point: shaders/lib/elementwise.wgsl.

override USE_MOMENTUM: bool = true;
override NESTEROV: bool = false;

struct Params {
  n: u32,
  lr: f32,
  momentum: f32,
  one_minus_dampening: f32, // from float64, as PyTorch
  weight_decay: f32,
  first_step: u32, // 1 on the optimizer's first step: the buffer starts as d
}

@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> momentum_buffer: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

//! include elementwise

// Updates element i of the parameter and its state.
fn element(i: u32) {
  let p = param[i];
  var d = grad[i] + params.weight_decay * p;
  if (USE_MOMENTUM) {
    var b = d;
    if (params.first_step == 0u) {
      b = params.momentum * momentum_buffer[i] + params.one_minus_dampening * d;
    }
    momentum_buffer[i] = b;
    d = select(b, d + params.momentum * b, NESTEROV);
  }
  param[i] = p - params.lr * d;
}
