// Where a thread sits in the column tiling shared by the axis kernels
// (layernorm, softmax, reduce, topk; src/kernels/axis.ts picks the tiling)
// and the row kernels (l2norm, cross_entropy, layernorm_backward), whose
// rows are columns with LANES_FASTEST.
// A workgroup of WORKGROUP_SIZE threads owns WORKGROUP_SIZE / LANES
// consecutive columns; LANES_FASTEST puts a column's lanes side by side
// (contiguous rows), otherwise neighbouring threads are neighbouring columns.
// The grid is 2-D: workgroup = wid.x + wid.y · nwg.x.
// The includer declares WORKGROUP_SIZE, LANES and LANES_FASTEST (an
// override, or `const LANES_FASTEST = true;` in a row kernel).

// The builtins an entry point of this tiling takes: `fn main(at: AxisInvocation)`.
struct AxisInvocation {
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
}

struct AxisColumn {
  slot: u32,  // this thread's index in the workgroup, its slot in workgroup arrays
  lane: u32,  // this thread's lane within its column
  local: u32, // the column's index within the workgroup
  step: u32,  // distance in workgroup arrays between neighbouring lanes of a column
  index: u32, // global column index; may be past the last column (the thread idles but reaches barriers)
}

fn axis_column(at: AxisInvocation) -> AxisColumn {
  let cols = WORKGROUP_SIZE / LANES;
  let local = select(at.lid % cols, at.lid / LANES, LANES_FASTEST);
  return AxisColumn(
    at.lid,
    select(at.lid / cols, at.lid % LANES, LANES_FASTEST),
    local,
    select(cols, 1u, LANES_FASTEST),
    (at.wid.x + at.wid.y * at.nwg.x) * cols + local,
  );
}

// The elements a thread's column walks in a dense [outer, axis, inner] array
// of `columns` = outer · inner columns: element r of the column is at
// base + r · inner (a row kernel's rows are columns with inner = 1).
// `count` is `axis`, or 0 past the last column: those threads loop zero
// times but still reach every barrier.
struct ColumnSpan {
  base: u32,
  count: u32,
}

fn column_span(column: AxisColumn, columns: u32, axis: u32, inner: u32) -> ColumnSpan {
  let g = column.index;
  return ColumnSpan((g / inner) * axis * inner + g % inner, select(0u, axis, g < columns));
}
