// Column sums of f32 pairs by the tree of shaders/lib/column_tree.wgsl, for
// the kernels that reduce two quantities at once (layernorm, layernorm_backward,
// l2norm, cross_entropy): column_total(column, vec2(a, b)) = (Σa, Σb).
// Declares the workgroup array `partial` (WORKGROUP_SIZE pairs), which an
// includer may also use as plain scratch between calls.

alias Partial = vec2<f32>;
var<workgroup> partial: array<Partial, WORKGROUP_SIZE>;

fn combine(a: Partial, b: Partial) -> Partial {
  return a + b;
}

//! include column_tree
