// Adjoint of the row gather (embedding backward), deterministic:
//   dTable[v, j] = Σ_{k : indices[k] = v} dy[k, j]      (dTable zeroed by the caller)
// WGSL has no float atomics, and integer tricks would make the sum order
// depend on scheduling, so each distinct index gets exactly one OWNER: the
// first position k holding it. The owner's workgroup adds every dy row with
// that index in increasing k and writes the table row once; other positions
// write nothing. Rows never indexed keep the caller's zeros.
// Layout: one workgroup per index position k (2-D grid, k = wid.x + wid.y ·
// nwg.x); its WORKGROUP_SIZE invocations split the row's columns j (strided,
// so consecutive invocations touch consecutive words) and first split the
// scan of positions before k to decide ownership (a workgroup-shared flag).
// Cost O(n² + n·row) per call: meant for token batches (n up to a few
// thousand), not for huge index lists.

override WORKGROUP_SIZE: u32 = 64u;

struct Params {
  n: u32,
  row: u32,
  vocab: u32,
}

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> indices: array<i32>;
@group(0) @binding(2) var<storage, read_write> dtable: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

var<workgroup> seen_before: atomic<u32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let k = wid.x + wid.y * nwg.x;
  if (lid == 0u) {
    atomicStore(&seen_before, 0u);
  }
  workgroupBarrier();
  // k is uniform across the workgroup, so every invocation reaches the barriers.
  let in_range = k < params.n;
  var index = -1;
  if (in_range) {
    index = indices[k];
    for (var p = lid; p < k; p += WORKGROUP_SIZE) {
      if (indices[p] == index) {
        atomicStore(&seen_before, 1u);
        break;
      }
    }
  }
  workgroupBarrier();
  let owner = in_range && atomicLoad(&seen_before) == 0u && index >= 0 && u32(index) < params.vocab;
  if (!owner) {
    return;
  }
  let dst = u32(index) * params.row;
  for (var j = lid; j < params.row; j += WORKGROUP_SIZE) {
    var sum = 0.0;
    for (var p = k; p < params.n; p++) {
      if (indices[p] == index) {
        sum += dy[p * params.row + j];
      }
    }
    dtable[dst + j] = sum;
  }
}
