// The fixed-order tree by which the LANES threads of a column (a row, for the
// row kernels) combine their partials in workgroup memory: the same inputs
// always give the same bits (no atomics). Used by reduce, softmax, layernorm,
// layernorm_backward, l2norm, cross_entropy and topk.
// The includer declares the override LANES and
//   alias Partial = …;                                the partial's type
//   var<workgroup> partial: array<Partial, N>;       N ≥ the workgroup size
//   fn combine(a: Partial, b: Partial) -> Partial;   how two partials merge
// and calls column_total in uniform control flow (it holds barriers).

// The column's total, for every lane of it. `step` is the distance in
// `partial` between neighbouring lanes of a column (1 when they sit side by
// side; see shaders/lib/axis_column.wgsl).
fn column_total(lid: u32, lane: u32, step: u32, v: Partial) -> Partial {
  partial[lid] = v;
  workgroupBarrier();
  for (var stride = LANES / 2u; stride > 0u; stride = stride / 2u) {
    if (lane < stride) {
      partial[lid] = combine(partial[lid], partial[lid + stride * step]);
    }
    workgroupBarrier();
  }
  let total = partial[lid - lane * step];
  // A following call overwrites `partial`; everyone must have read it first.
  workgroupBarrier();
  return total;
}
