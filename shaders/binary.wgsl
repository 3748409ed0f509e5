// Broadcasting elementwise binary ops on f32: y[i] = a[ia] op b[ib].
// Layout: y is dense over the broadcast shape; one invocation per element of
// y, so stores (and the loads of whichever input is not broadcast along the
// innermost axis) are coalesced. The host merges axes that both inputs walk
// contiguously and drops length-1 axes, so `rank` is usually 1–3; the axis
// lengths and the element strides of a and b (0 along broadcast axes) come
// as vec4 pairs (lo = axes 0–3, hi = axes 4–7, outermost first), which is why
// at most 8 axes are supported. Entry point: shaders/lib/elementwise.wgsl.

override OP: u32 = 0u; // 0 add, 1 sub, 2 mul, 3 div

struct Params {
  shape_lo: vec4<u32>,
  shape_hi: vec4<u32>,
  a_stride_lo: vec4<u32>,
  a_stride_hi: vec4<u32>,
  b_stride_lo: vec4<u32>,
  b_stride_hi: vec4<u32>,
  n: u32,
  rank: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

//! include axis_pairs

fn apply(u: f32, v: f32) -> f32 {
  switch OP {
    case 0u: { return u + v; }
    case 1u: { return u - v; }
    case 2u: { return u * v; }
    default: { return u / v; }
  }
}

//! include elementwise

// Element i of the output.
fn element(i: u32) {
  // Peel coordinates off the linear index, innermost axis first.
  var rest = i;
  var ia = 0u;
  var ib = 0u;
  for (var k = 0u; k < params.rank; k++) {
    let d = params.rank - 1u - k;
    let len = axis_value(params.shape_lo, params.shape_hi, d);
    let c = rest % len;
    rest = rest / len;
    ia += c * axis_value(params.a_stride_lo, params.a_stride_hi, d);
    ib += c * axis_value(params.b_stride_lo, params.b_stride_hi, d);
  }
  y[i] = apply(a[ia], b[ib]);
}
