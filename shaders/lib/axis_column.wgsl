// Where a thread sits in the column tiling shared by the axis kernels
// (layernorm, softmax, reduce, topk; src/kernels/axis.ts picks the tiling).
// A workgroup of WORKGROUP_SIZE threads owns WORKGROUP_SIZE / LANES
// consecutive columns; LANES_FASTEST puts a column's lanes side by side
// (contiguous rows), otherwise neighbouring threads are neighbouring columns.
// The grid is 2-D: workgroup = wid.x + wid.y · nwg.x.
// The includer declares the overrides WORKGROUP_SIZE, LANES and LANES_FASTEST.
struct AxisColumn {
  lane: u32,  // this thread's lane within its column
  local: u32, // the column's index within the workgroup
  step: u32,  // distance in workgroup arrays between neighbouring lanes of a column
  index: u32, // global column index; may be past the last column (the thread idles but reaches barriers)
}

fn axis_column(lid: u32, wid: vec3<u32>, nwg: vec3<u32>) -> AxisColumn {
  let cols = WORKGROUP_SIZE / LANES;
  let local = select(lid % cols, lid / LANES, LANES_FASTEST);
  return AxisColumn(
    select(lid / cols, lid % LANES, LANES_FASTEST),
    local,
    select(cols, 1u, LANES_FASTEST),
    (wid.x + wid.y * nwg.x) * cols + local,
  );
}
