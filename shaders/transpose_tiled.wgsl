// Batched transpose of 32-bit words through workgroup memory: for each of
// `batch` matrices, src [rows, cols] → dst [cols, rows] (permute's swap of
// the last two axes, after the host merged the axes around them).
// Tiling: a workgroup of 32×8 invocations moves one 32×32 tile. It reads the
// tile row by row (each 32-wide row of invocations loads 32 consecutive
// words of src: coalesced), 4 rows per invocation, into a 32×33 array (the
// extra column puts a tile column in 32 distinct banks), then writes the
// transposed tile row by row (again 32 consecutive words of dst).
// Grid: x = ceil(cols/32), y = ceil(rows/32), z = batch (≤ 65535, else the
// host uses the strided copy). Partial edge tiles are guarded both ways.

const TILE = 32u;
const TILE_ROWS = 8u; // rows of invocations; each covers TILE / TILE_ROWS rows

struct Params {
  rows: u32,
  cols: u32,
}

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;

var<workgroup> tile: array<array<u32, 33>, 32>;

@compute @workgroup_size(32, 8)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let rows = params.rows;
  let cols = params.cols;
  let base = wid.z * rows * cols;
  let row0 = wid.y * TILE;
  let col0 = wid.x * TILE;
  // tile[r][c] = src[row0 + r, col0 + c]
  for (var j = 0u; j < TILE; j += TILE_ROWS) {
    let r = row0 + lid.y + j;
    let c = col0 + lid.x;
    if (r < rows && c < cols) {
      tile[lid.y + j][lid.x] = src[base + r * cols + c];
    }
  }
  workgroupBarrier();
  // dst[col0 + c, row0 + r] = tile[r][c], with r = lid.x running along dst's row.
  for (var j = 0u; j < TILE; j += TILE_ROWS) {
    let c = col0 + lid.y + j;
    let r = row0 + lid.x;
    if (c < cols && r < rows) {
      dst[base + c * rows + r] = tile[lid.x][lid.y + j];
    }
  }
}
