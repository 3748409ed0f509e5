// Elementwise unary ops on a dense f32 buffer: y[i] = f(x[i]).
// Layout: flat; one invocation per element. The grid is 2-D because a
// dimension holds at most 65535 workgroups: i = gid.x + gid.y * nwg.x * WG.
// OP picks the function when the pipeline is created, so each specialization
// compiles to a single straight-line body.

override OP: u32 = 0u; // 0 relu, 1 gelu (erf), 2 gelu (tanh), 3 quick_gelu, 4 sigmoid
override WORKGROUP_SIZE: u32 = 256u;

struct Params {
  n: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

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

fn apply(v: f32) -> f32 {
  switch OP {
    case 0u: { return max(v, 0.0); }
    case 1u: { return 0.5 * v * (1.0 + erf_approx(v * 0.7071067811865476)); }
    case 2u: {
      // tanh form; tanh(u) = 1 - 2 / (exp(2u) + 1) stays finite for large |u|.
      let u = 0.7978845608028654 * (v + 0.044715 * v * v * v);
      let th = 1.0 - 2.0 / (exp(clamp(2.0 * u, -80.0, 80.0)) + 1.0);
      return 0.5 * v * (1.0 + th);
    }
    case 3u: { return v * sigmoid(1.702 * v); }
    default: { return sigmoid(v); }
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WORKGROUP_SIZE;
  if (i >= params.n) {
    return;
  }
  y[i] = apply(x[i]);
}
