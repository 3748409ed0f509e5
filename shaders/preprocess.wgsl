// CLIP image preprocessing for one image: separable resampling with PIL's
// algorithm (antialiased: the filter support widens by the scale when
// downscaling), centre crop and normalization, in two passes:
//
// `resize_h` — horizontal pass. src is the RGBA8 region of the image the crop
//   needs, packed one pixel per u32 (R in the low byte), rows of src_cols
//   words. Output column x of the crop is Σ_k weights[x·taps + k] ·
//   src[row, first_x + k] over the bounds[2x] = first_x, bounds[2x + 1] = count
//   taps. Threads: TILE_X output columns × TILE_Y source rows per workgroup.
//   The tile's taps cover one contiguous source span (first taps grow with
//   x); it is copied through workgroup memory CHUNK pixels at a time with
//   coalesced loads, so any scale works with a fixed tile. Writes
//   tmp[tmp_row0 + row, x] as vec4 (rgb, 0), clamped to [0, 255] as PIL
//   clips after each pass. An image taller than one binding is uploaded in
//   row chunks; tmp_row0 places each.
//
// `resize_v_normalize` — vertical pass fused with normalization: output row y
//   uses bounds[2·size + 2y ..] and weights[size·taps + y·taps ..] over tmp
//   rows; 16×16 threads, x fastest, so tmp reads and out writes are
//   coalesced and a row of threads shares its weights. Writes planar
//   out[out_base + (c·size + y)·size + x] = (v / 255 − mean[c]) / stdev[c].
//
// The crop is fused into the coefficient tables: they hold only the crop's
// output columns and rows. Values stay float between passes (PIL rounds to
// 8 bits there, so results differ from PIL's by up to about 1/255).

override TILE_X: u32 = 64u;
override TILE_Y: u32 = 4u;
override CHUNK: u32 = 512u; // source pixels per row staged per step
const V_TILE: u32 = 16u;

struct Params {
  size: u32,     // output side S: crop columns (h pass) and rows (v pass)
  taps: u32,     // weights per output column or row, zero-padded
  src_cols: u32, // words per src row
  src_rows: u32, // rows in this upload
  tmp_row0: u32, // tmp row of src row 0
  out_base: u32, // first element of this image in out
  mean: vec3<f32>,
  stdev: vec3<f32>,
}

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read> bounds: array<u32>;  // [2][S][2]: first tap, tap count; h then v
@group(0) @binding(2) var<storage, read> weights: array<f32>; // [2][S][taps]; h then v
@group(0) @binding(3) var<storage, read_write> tmp: array<vec4<f32>>; // [region rows][S]
@group(0) @binding(4) var<storage, read_write> out: array<f32>;       // [N][3][S][S]
@group(0) @binding(5) var<uniform> params: Params;

var<workgroup> stage: array<u32, TILE_Y * CHUNK>;

fn rgb(p: u32) -> vec3<f32> {
  return vec3<f32>(f32(p & 0xffu), f32((p >> 8u) & 0xffu), f32((p >> 16u) & 0xffu));
}

@compute @workgroup_size(TILE_X, TILE_Y)
fn resize_h(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let S = params.size;
  let x = wid.x * TILE_X + lid.x;
  let row = wid.y * TILE_Y + lid.y;
  // The span is read with workgroup-uniform indices, so the loop (and its barriers) is uniform.
  let x_first = wid.x * TILE_X;
  let x_last = min(x_first + TILE_X, S) - 1u;
  let span0 = bounds[2u * x_first];
  let span1 = bounds[2u * x_last] + bounds[2u * x_last + 1u];
  var first = 0u;
  var count = 0u;
  if (x < S) {
    first = bounds[2u * x];
    count = bounds[2u * x + 1u];
  }
  let srow = min(row, params.src_rows - 1u) * params.src_cols;
  var acc = vec3<f32>(0.0);
  for (var c0 = span0; c0 < span1; c0 += CHUNK) {
    let len = min(CHUNK, span1 - c0);
    for (var i = lid.x; i < len; i += TILE_X) {
      stage[lid.y * CHUNK + i] = src[srow + c0 + i];
    }
    workgroupBarrier();
    let k1 = min(first + count, c0 + len);
    for (var k = max(first, c0); k < k1; k++) {
      acc += weights[x * params.taps + k - first] * rgb(stage[lid.y * CHUNK + k - c0]);
    }
    workgroupBarrier();
  }
  if (x < S && row < params.src_rows) {
    tmp[(params.tmp_row0 + row) * S + x] = vec4<f32>(clamp(acc, vec3<f32>(0.0), vec3<f32>(255.0)), 0.0);
  }
}

@compute @workgroup_size(V_TILE, V_TILE)
fn resize_v_normalize(@builtin(global_invocation_id) gid: vec3<u32>) {
  let S = params.size;
  let x = gid.x;
  let y = gid.y;
  if (x >= S || y >= S) {
    return;
  }
  let first = bounds[2u * (S + y)];
  let count = bounds[2u * (S + y) + 1u];
  let w0 = (S + y) * params.taps;
  var acc = vec3<f32>(0.0);
  for (var k = 0u; k < count; k++) {
    acc += weights[w0 + k] * tmp[(first + k) * S + x].xyz;
  }
  let v = (clamp(acc, vec3<f32>(0.0), vec3<f32>(255.0)) / 255.0 - params.mean) / params.stdev;
  let plane = S * S;
  let at = params.out_base + y * S + x;
  out[at] = v.x;
  out[at + plane] = v.y;
  out[at + 2u * plane] = v.z;
}
