// The fixed-order tree by which the LANES threads of a column (a row, for the
// row kernels) combine their partials in workgroup memory: the same inputs
// always give the same bits (no atomics). Used by reduce, softmax, layernorm,
// layernorm_backward, l2norm, cross_entropy and topk; it brings in
// shaders/lib/axis_column.wgsl, whose declarations it needs too.
// The includer declares
//   alias Partial = …;                                the partial's type
//   var<workgroup> partial: array<Partial, N>;       N ≥ the workgroup size
//   fn combine(a: Partial, b: Partial) -> Partial;   how two partials merge
// (or includes shaders/lib/column_sum.wgsl for sums of f32 pairs) and calls
// column_total in uniform control flow (it holds barriers).

//! include axis_column

// The column's total, for every lane of it.
fn column_total(column: AxisColumn, v: Partial) -> Partial {
  partial[column.slot] = v;
  workgroupBarrier();
  for (var stride = LANES / 2u; stride > 0u; stride = stride / 2u) {
    if (column.lane < stride) {
      partial[column.slot] = combine(partial[column.slot], partial[column.slot + stride * column.step]);
    }
    workgroupBarrier();
  }
  let total = partial[column.slot - column.lane * column.step];
  // A following call overwrites `partial`; everyone must have read it first.
  workgroupBarrier();
  return total;
}
