// SAM mask post-processing, fused: low-resolution mask logits → logits at the
// original image size → stability counts or a bit-packed binary mask. The
// upsampled logits never reach memory (for a 1024² frame that would be 4 MiB
// per mask).
//
// Geometry (segment-anything's postprocess_masks, PyTorch F.interpolate
// bilinear, align_corners = False, in f32):
//   logits plane [low_h, low_w] --bilinear--> model-input frame [frame, frame]
//   --crop [0, crop_h) × [0, crop_w) (the resized image; the rest is padding)
//   --bilinear--> image [out_h, out_w].
// Per axis, with ratio = in/out (host-rounded to f32):
//   src = max(ratio · (dst + 0.5) − 0.5, 0), i0 = min(floor(src), in − 1),
//   i1 = min(i0 + 1, in − 1), λ = clamp(src − i0, 0, 1),
//   value = (1 − λ)·v[i0] + λ·v[i1], along W, then the two rows along H.
// An image pixel blends 2×2 frame pixels, each blending 2×2 logits, so it
// reads ≤ 16 logits from a small window of one plane that neighbouring
// invocations share (cache-resident; a workgroup's pixels span ≤ a few
// low-res rows, so staging them in workgroup memory would not save traffic).
//
// `planes[k]` is the logits plane (index into the [P, low_h, low_w] input)
// that the k-th selected mask uses, so a caller processes only the masks that
// survived earlier filters.
//
// Entry `stability_counts`: counts[2k] = #(logit > +offset),
// counts[2k + 1] = #(logit > −offset) over plane k's image pixels
// (counts must start at zero). Grid: wid.y = k; wid.x = a tile of
// WORKGROUP_SIZE · pixels_per_thread consecutive pixels (row-major), thread t
// visiting tile pixels t, t + WORKGROUP_SIZE, … (coalesced). Each thread
// counts privately, the workgroup sums through workgroup atomics, and one
// thread adds the totals to the global counters.
//
// Entry `binarize`: bits[(k · out_h + y) · words_per_row + w] holds pixels
// x = 32w … 32w + 31 of row y of mask k (bit b = pixel 32w + b; bits past
// out_w are 0), a pixel set where logit > 0. One invocation per word on the
// flat grid of shaders/lib/linear_grid.wgsl.

override WORKGROUP_SIZE: u32 = 256u;

struct Params {
  low_h: u32,
  low_w: u32,
  crop_h: u32,
  crop_w: u32,
  out_h: u32,
  out_w: u32,
  planes_count: u32,
  pixels_per_thread: u32,
  words_per_row: u32,
  ratio_low_h: f32, // low_h / frame
  ratio_low_w: f32, // low_w / frame
  ratio_crop_h: f32, // crop_h / out_h
  ratio_crop_w: f32, // crop_w / out_w
  offset: f32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> planes: array<u32>;
@group(0) @binding(2) var<storage, read_write> counts: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read_write> bits: array<u32>;
@group(0) @binding(4) var<uniform> params: Params;

//! include bilinear

fn taps(dst: u32, ratio: f32, len: u32) -> Taps {
  return taps_at(half_pixel_source(dst, ratio), len);
}

/** Logit of frame pixel (fy, fx), from the low-resolution plane starting at `base`. */
fn frame_logit(base: u32, ty: Taps, fx: u32) -> f32 {
  let tx = taps(fx, params.ratio_low_w, params.low_w);
  let row0 = base + ty.i0 * params.low_w;
  let row1 = base + ty.i1 * params.low_w;
  return blend(ty, blend(tx, logits[row0 + tx.i0], logits[row0 + tx.i1]), blend(tx, logits[row1 + tx.i0], logits[row1 + tx.i1]));
}

/** Logit of image pixel (oy, ox) of the mask whose low-res plane starts at `base`. */
fn image_logit(base: u32, oy: u32, ox: u32) -> f32 {
  let cy = taps(oy, params.ratio_crop_h, params.crop_h);
  let cx = taps(ox, params.ratio_crop_w, params.crop_w);
  let fy0 = taps(cy.i0, params.ratio_low_h, params.low_h);
  let fy1 = taps(cy.i1, params.ratio_low_h, params.low_h);
  let top = blend(cx, frame_logit(base, fy0, cx.i0), frame_logit(base, fy0, cx.i1));
  let bottom = blend(cx, frame_logit(base, fy1, cx.i0), frame_logit(base, fy1, cx.i1));
  return blend(cy, top, bottom);
}

var<workgroup> tile_counts: array<atomic<u32>, 2>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn stability_counts(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  if (t == 0u) {
    atomicStore(&tile_counts[0], 0u);
    atomicStore(&tile_counts[1], 0u);
  }
  workgroupBarrier();
  let k = wid.y;
  let pixels = params.out_h * params.out_w;
  var above_hi = 0u;
  var above_lo = 0u;
  if (k < params.planes_count) {
    let base = planes[k] * params.low_h * params.low_w;
    let tile_start = wid.x * WORKGROUP_SIZE * params.pixels_per_thread;
    for (var j = 0u; j < params.pixels_per_thread; j++) {
      let p = tile_start + j * WORKGROUP_SIZE + t;
      if (p >= pixels) {
        break;
      }
      let v = image_logit(base, p / params.out_w, p % params.out_w);
      above_hi += select(0u, 1u, v > params.offset);
      above_lo += select(0u, 1u, v > -params.offset);
    }
  }
  if (above_hi > 0u) {
    atomicAdd(&tile_counts[0], above_hi);
  }
  if (above_lo > 0u) {
    atomicAdd(&tile_counts[1], above_lo);
  }
  workgroupBarrier();
  if (t == 0u && k < params.planes_count) {
    let hi = atomicLoad(&tile_counts[0]);
    let lo = atomicLoad(&tile_counts[1]);
    if (hi > 0u) {
      atomicAdd(&counts[2u * k], hi);
    }
    if (lo > 0u) {
      atomicAdd(&counts[2u * k + 1u], lo);
    }
  }
}

//! include linear_grid

@compute @workgroup_size(WORKGROUP_SIZE)
fn binarize(at: LinearInvocation) {
  let i = linear_index(at);
  let words_per_plane = params.out_h * params.words_per_row;
  if (i >= params.planes_count * words_per_plane) {
    return;
  }
  let k = i / words_per_plane;
  let rest = i % words_per_plane;
  let oy = rest / params.words_per_row;
  let x0 = (rest % params.words_per_row) * 32u;
  let base = planes[k] * params.low_h * params.low_w;
  let x_end = min(x0 + 32u, params.out_w);
  var word = 0u;
  for (var ox = x0; ox < x_end; ox++) {
    if (image_logit(base, oy, ox) > 0.0) {
      word |= 1u << (ox - x0);
    }
  }
  bits[i] = word;
}
