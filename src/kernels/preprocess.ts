// CLIP image preprocessing on the GPU, as openai/CLIP's torchvision transform
// does it on a PIL image: Resize(size, BICUBIC) of the shorter side,
// CenterCrop(size), ToTensor, Normalize(mean, std). The resampling follows
// PIL's ImagingResample (separable, horizontal then vertical, antialiased:
// support = filter support · max(scale, 1), normalized weights, clipped to
// [0, 255] after each pass). The tap tables are computed here in float64,
// restricted to the crop's columns and rows, and only the part of the image
// the crop needs is uploaded. See shaders/preprocess.wgsl.

import type { Gpu } from '../device.js';
import { Tensor } from '../tensor.js';
import { dispatchKernel, placeholder } from './program.js';
import { outputTensor } from './strided.js';

/** CLIP's normalization (openai/CLIP clip.py `_transform`). */
export const CLIP_MEAN: readonly [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_STD: readonly [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

export interface ClipPreprocessOptions {
  /** Output side (default 224): the shorter side is resized to it, then the centre size×size is cropped. */
  size?: number;
  mean?: readonly [number, number, number];
  std?: readonly [number, number, number];
  /** PIL's filter (default 'bicubic', a = −0.5, as CLIP uses). */
  resample?: 'bicubic' | 'bilinear';
  /** Written instead of a new tensor: f32 with N·3·size·size elements. */
  out?: Tensor;
  /** Largest pixel upload per dispatch (at most, and by default, the device's maxStorageBufferBindingSize); the part of an image the crop needs goes up in row chunks of this size. */
  maxUploadBytes?: number;
}

interface Filter {
  support: number;
  weight: (x: number) => number;
}

// PIL's Resample.c filters.
const FILTERS: Record<NonNullable<ClipPreprocessOptions['resample']>, Filter> = {
  bicubic: {
    support: 2,
    weight: (x) => {
      const a = -0.5;
      const t = Math.abs(x);
      if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
      if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
      return 0;
    },
  },
  bilinear: { support: 1, weight: (x) => Math.max(0, 1 - Math.abs(x)) },
};

const TILE_X = 64;
const TILE_Y = 4;
const V_TILE = 16; // shaders/preprocess.wgsl's const V_TILE

interface AxisTaps {
  /** First source index of each output index's taps. */
  first: number[];
  weights: number[][];
}

/** PIL's precompute_coeffs for output indices [from, to) of an inSize → outSize resize. */
function axisTaps(inSize: number, outSize: number, from: number, to: number, filter: Filter): AxisTaps {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filter.support * filterScale;
  const first: number[] = [];
  const weights: number[][] = [];
  for (let o = from; o < to; o++) {
    const center = (o + 0.5) * scale;
    // C's (int) cast truncates.
    const lo = Math.max(0, Math.trunc(center - support + 0.5));
    const hi = Math.min(inSize, Math.trunc(center + support + 0.5));
    const w: number[] = [];
    let sum = 0;
    for (let i = lo; i < hi; i++) {
      const v = filter.weight((i - center + 0.5) / filterScale);
      w.push(v);
      sum += v;
    }
    first.push(lo);
    weights.push(sum !== 0 ? w.map((v) => v / sum) : w);
  }
  return { first, weights };
}

/** Python's round(): halves go to the even neighbour. */
function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  return d < 0.5 ? f : d > 0.5 ? f + 1 : f % 2 === 0 ? f : f + 1;
}

interface ImagePlan {
  /** Source region [x0, x1) × [y0, y1) the crop's taps touch. */
  x0: number;
  x1: number;
  y0: number;
  y1: number;
  taps: number;
  bounds: Uint32Array;
  weights: Float32Array;
}

function planImage(width: number, height: number, size: number, filter: Filter): ImagePlan {
  // torchvision's _compute_resized_output_size: new_long = int(size * long / short).
  const short = Math.min(width, height);
  const long = Math.max(width, height);
  const newLong = Math.trunc((size * long) / short);
  const [rw, rh] = width <= height ? [size, newLong] : [newLong, size];
  // torchvision's center_crop: int(round((resized - size) / 2.0)).
  const left = roundHalfEven((rw - size) / 2);
  const top = roundHalfEven((rh - size) / 2);
  const h = axisTaps(width, rw, left, left + size, filter);
  const v = axisTaps(height, rh, top, top + size, filter);
  const x0 = h.first[0];
  const x1 = Math.max(...h.first.map((f, i) => f + h.weights[i].length));
  const y0 = v.first[0];
  const y1 = Math.max(...v.first.map((f, i) => f + v.weights[i].length));
  const taps = Math.max(1, ...h.weights.map((w) => w.length), ...v.weights.map((w) => w.length));
  const bounds = new Uint32Array(4 * size);
  const weights = new Float32Array(2 * size * taps);
  const fill = (axis: AxisTaps, origin: number, a: number) => {
    for (let o = 0; o < size; o++) {
      bounds[2 * (a * size + o)] = axis.first[o] - origin;
      bounds[2 * (a * size + o) + 1] = axis.weights[o].length;
      weights.set(axis.weights[o], (a * size + o) * taps);
    }
  };
  fill(h, x0, 0);
  fill(v, y0, 1);
  return { x0, x1, y0, y1, taps, bounds, weights };
}

function checkTriple(op: string, what: string, v: unknown, positive: boolean): readonly [number, number, number] {
  const ok = Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x) && (!positive || x > 0));
  if (!ok) throw new Error(`${op}: ${what} must be 3 finite${positive ? ' positive' : ''} numbers (R, G, B), got ${JSON.stringify(v)}`);
  return v as unknown as readonly [number, number, number];
}

/**
 * CLIP's image transform on RGBA8 images (alpha ignored, as PIL's
 * convert('RGB') drops it): returns [N, 3, size, size] f32.
 */
export function clipPreprocess(
  gpu: Gpu,
  images: ReadonlyArray<{ width: number; height: number; data: Uint8Array }>,
  opts: ClipPreprocessOptions = {},
): Tensor {
  const op = 'clipPreprocess';
  if (!Array.isArray(images)) throw new Error(`${op}: images must be an array of {width, height, data}, got ${Object.prototype.toString.call(images)}`);
  const size = opts.size ?? 224;
  if (!Number.isInteger(size) || size < 1) throw new Error(`${op}: size must be a positive integer, got ${size}`);
  const mean = checkTriple(op, 'mean', opts.mean ?? CLIP_MEAN, false);
  const std = checkTriple(op, 'std', opts.std ?? CLIP_STD, true);
  const resample = opts.resample ?? 'bicubic';
  if (!(resample in FILTERS)) throw new Error(`${op}: resample must be 'bicubic' or 'bilinear', got '${String(resample)}'`);
  const maxUpload = Math.min(opts.maxUploadBytes ?? Infinity, gpu.limits.maxStorageBufferBindingSize);
  if (!Number.isInteger(maxUpload) || maxUpload < 4) throw new Error(`${op}: maxUploadBytes must be an integer of at least 4, got ${opts.maxUploadBytes}`);
  images.forEach((img, i) => {
    const { width, height, data } = img ?? {};
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
      throw new Error(`${op}: image ${i} must have positive integer width and height, got ${width}×${height}`);
    }
    if (!(data instanceof Uint8Array) || data.length !== width * height * 4) {
      const got = data instanceof Uint8Array ? `${data.length} bytes` : Object.prototype.toString.call(data);
      throw new Error(`${op}: image ${i} (${width}×${height}) needs RGBA8 data of ${width * height * 4} bytes (a Uint8Array), got ${got}`);
    }
  });

  const plans = images.map((img) => planImage(img.width, img.height, size, FILTERS[resample]));
  const maxBinding = gpu.limits.maxStorageBufferBindingSize;
  plans.forEach((p, i) => {
    const rowBytes = (p.x1 - p.x0) * 4;
    if (rowBytes > maxUpload) throw new Error(`${op}: image ${i} needs rows of ${rowBytes} bytes uploaded, over maxUploadBytes ${maxUpload}`);
    const tmpBytes = (p.y1 - p.y0) * size * 16;
    if (tmpBytes > maxBinding) {
      throw new Error(
        `${op}: image ${i} (${images[i].width}×${images[i].height}) needs an intermediate of ${p.y1 - p.y0} rows × ${size} columns (${tmpBytes} bytes), over the device's maxStorageBufferBindingSize of ${maxBinding}`,
      );
    }
  });
  const n = images.length;
  const y = outputTensor(gpu, op, [n, 3, size, size], 'f32', [], opts.out);
  if (n === 0) return y;
  const tmp = Tensor.empty(gpu, [Math.max(...plans.map((p) => p.y1 - p.y0)), size, 4], 'f32', `${op}.tmp`);
  plans.forEach((p, i) => {
    const { width, data } = images[i];
    const cols = p.x1 - p.x0;
    const rows = p.y1 - p.y0;
    const bounds = Tensor.fromArray(gpu, p.bounds, [p.bounds.length], 'u32');
    const weights = Tensor.fromArray(gpu, p.weights, [p.weights.length]);
    const params = {
      size,
      taps: p.taps,
      src_cols: cols,
      src_rows: 0,
      tmp_row0: 0,
      out_base: i * 3 * size * size,
      mean,
      stdev: std,
    };
    const chunkRows = Math.floor(maxUpload / (cols * 4));
    for (let r0 = 0; r0 < rows; r0 += chunkRows) {
      const r1 = Math.min(rows, r0 + chunkRows);
      // The region's rows, packed one RGBA8 pixel per u32 word.
      const bytes = new Uint8Array((r1 - r0) * cols * 4);
      for (let r = r0; r < r1; r++) {
        const from = ((p.y0 + r) * width + p.x0) * 4;
        bytes.set(data.subarray(from, from + cols * 4), (r - r0) * cols * 4);
      }
      const src = Tensor.fromArray(gpu, new Uint32Array(bytes.buffer), [r1 - r0, cols], 'u32');
      dispatchKernel(
        gpu,
        `${op}.resize_h`,
        { shader: 'preprocess', entry: 'resize_h', constants: { TILE_X, TILE_Y } },
        { src, bounds, weights, tmp, out: y, params: { ...params, src_rows: r1 - r0, tmp_row0: r0 } },
        [Math.ceil(size / TILE_X), Math.ceil((r1 - r0) / TILE_Y)],
      );
      src.dispose();
    }
    dispatchKernel(
      gpu,
      `${op}.resize_v_normalize`,
      { shader: 'preprocess', entry: 'resize_v_normalize' },
      { src: placeholder(gpu), bounds, weights, tmp, out: y, params },
      [Math.ceil(size / V_TILE), Math.ceil(size / V_TILE)],
    );
    bounds.dispose();
    weights.dispose();
  });
  tmp.dispose();
  return y;
}
