// Antialiased bilinear resize of NCHW tensors (PyTorch's F.interpolate with
// mode='bilinear', align_corners=False, antialias=True, which torchvision's
// Resize uses on tensors), and the same straight from an RGBA8 image with
// ToTensor's /255 and an optional Normalize(mean, std) fused in: the
// preprocessing of SAM2 (SAM2Transforms). Two passes, along W then along H
// (see shaders/antialias_resize.wgsl); the tap tables are computed here.

import type { Gpu } from '../device.js';
import { Tensor, shapeString } from '../tensor.js';
import { dispatchKernel, linearGrid, placeholder } from './program.js';
import { outputTensor } from './strided.js';

const WORKGROUP_SIZE = 256;

export interface AntialiasResizeOptions {
  /** Output [Ho, Wo]. */
  size: readonly [number, number];
  /** Per-channel (x − mean) / std after the resize (torchvision Normalize); both or neither. */
  mean?: readonly number[];
  std?: readonly number[];
  out?: Tensor;
}

/** An RGBA8 image, row-major (e.g. io/image.ts's DecodedImage). */
export interface Rgba8Image {
  width: number;
  height: number;
  data: Uint8Array;
}

interface AxisTaps {
  /** [first source index, tap count] per output index. */
  taps: Uint32Array;
  /** [out_len, maxTaps], zero past each count. */
  weights: Float32Array;
  maxTaps: number;
}

/**
 * PyTorch's _compute_weights_aa for bilinear (triangle filter, interp_size 2):
 * scale = in/out, support = scale ≥ 1 ? scale : 1, center = scale·(o + 0.5),
 * taps [trunc(center − support + 0.5) ∨ 0, trunc(center + support + 0.5) ∧ in),
 * w = tri((j − center + 0.5) / max(scale, 1)), normalized. For upscaling this
 * is plain bilinear with border clamping.
 */
function axisTaps(inLen: number, outLen: number): AxisTaps {
  const scale = inLen / outLen;
  const support = scale >= 1 ? scale : 1;
  const invScale = scale >= 1 ? 1 / scale : 1;
  const ranges: Array<[number, number[]]> = [];
  let maxTaps = 1;
  for (let o = 0; o < outLen; o++) {
    const center = scale * (o + 0.5);
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const hi = Math.min(Math.trunc(center + support + 0.5), inLen);
    const w: number[] = [];
    let total = 0;
    for (let j = lo; j < hi; j++) {
      const v = Math.max(0, 1 - Math.abs((j - center + 0.5) * invScale));
      w.push(v);
      total += v;
    }
    ranges.push([lo, total > 0 ? w.map((v) => v / total) : w]);
    maxTaps = Math.max(maxTaps, w.length);
  }
  const taps = new Uint32Array(2 * outLen);
  const weights = new Float32Array(outLen * maxTaps);
  ranges.forEach(([lo, w], o) => {
    taps[2 * o] = lo;
    taps[2 * o + 1] = w.length;
    weights.set(w, o * maxTaps);
  });
  return { taps, weights, maxTaps };
}

function checkSize(op: string, size: readonly number[]): [number, number] {
  if (!Array.isArray(size) || size.length !== 2 || !size.every((v) => Number.isInteger(v) && v > 0)) {
    throw new Error(`${op}: size ${JSON.stringify(size)} must be [Ho, Wo], positive integers`);
  }
  return [size[0], size[1]];
}

/** The [mean, std] pairs of NORMALIZE, or undefined; throws unless both come with one entry per channel and std ≠ 0. */
function channelAffine(op: string, opts: AntialiasResizeOptions, channels: number): Float32Array | undefined {
  const { mean, std } = opts;
  if (mean === undefined && std === undefined) return undefined;
  if (mean === undefined || std === undefined) throw new Error(`${op}: give both mean and std or neither, got ${mean === undefined ? 'std only' : 'mean only'}`);
  if (mean.length !== channels || std.length !== channels) {
    throw new Error(`${op}: mean and std need ${channels} entries (one per channel), got ${mean.length} and ${std.length}`);
  }
  if (!mean.every(Number.isFinite) || !std.every((s) => Number.isFinite(s) && s !== 0)) {
    throw new Error(`${op}: mean must be finite and std finite and nonzero, got mean [${mean.join(', ')}], std [${std.join(', ')}]`);
  }
  const affine = new Float32Array(2 * channels);
  for (let c = 0; c < channels; c++) {
    affine[2 * c] = mean[c];
    affine[2 * c + 1] = std[c];
  }
  return affine;
}

interface Pass {
  outer: number;
  inLen: number;
  outLen: number;
  inner: number;
  source: { x: Tensor } | { pixels: Tensor; height: number; width: number };
  y: Tensor;
  affine?: Tensor;
  channels: number;
}

function dispatchPass(gpu: Gpu, op: string, pass: Pass): void {
  const n = pass.outer * pass.outLen * pass.inner;
  if (n === 0) return;
  const { taps, weights, maxTaps } = axisTaps(pass.inLen, pass.outLen);
  const tTaps = Tensor.fromArray(gpu, taps, [taps.length], 'u32');
  const tWeights = Tensor.fromArray(gpu, weights, [weights.length]);
  const rgba = 'pixels' in pass.source;
  dispatchKernel(
    gpu,
    op,
    { shader: 'antialias_resize', entry: rgba ? 'resample_rgba8' : 'resample', constants: { WORKGROUP_SIZE, NORMALIZE: pass.affine !== undefined } },
    {
      x: 'x' in pass.source ? pass.source.x : placeholder(gpu),
      pixels: 'pixels' in pass.source ? pass.source.pixels : placeholder(gpu),
      taps: tTaps,
      weights: tWeights,
      affine: pass.affine ?? placeholder(gpu),
      y: pass.y,
      params: {
        in_len: pass.inLen,
        out_len: pass.outLen,
        inner: pass.inner,
        n,
        max_taps: maxTaps,
        channels: pass.channels,
        src_h: 'pixels' in pass.source ? pass.source.height : 0,
        src_w: 'pixels' in pass.source ? pass.source.width : 0,
      },
    },
    linearGrid(gpu, n, WORKGROUP_SIZE),
  );
  // The dispatch is recorded; the tables are freed once the queue ran it.
  tTaps.dispose();
  tWeights.dispose();
}

/** y = F.interpolate(x, size, mode='bilinear', align_corners=False, antialias=True) [then normalized] for x [N, C, H, W] f32. */
export function antialiasResize(gpu: Gpu, x: Tensor, opts: AntialiasResizeOptions): Tensor {
  const op = 'antialiasResize';
  if (x.rank !== 4) throw new Error(`${op}: x must be [N, C, H, W] (rank 4), got ${shapeString(x.shape)} (rank ${x.rank})`);
  if (x.dtype !== 'f32') throw new Error(`${op}: expected an f32 tensor, got ${x.dtype}`);
  const [n, c, h, w] = x.shape;
  if (h === 0 || w === 0) throw new Error(`${op}: input spatial size [${h}, ${w}] must be positive`);
  const [outH, outW] = checkSize(op, opts.size);
  const affine = channelAffine(op, opts, c);
  const y = outputTensor(gpu, op, [n, c, outH, outW], 'f32', [x], opts.out);
  const mid = Tensor.empty(gpu, [n, c, h, outW]);
  const tAffine = affine ? Tensor.fromArray(gpu, affine, [affine.length]) : undefined;
  dispatchPass(gpu, op, { outer: n * c * h, inLen: w, outLen: outW, inner: 1, source: { x }, y: mid, channels: c });
  dispatchPass(gpu, op, { outer: n * c, inLen: h, outLen: outH, inner: outW, source: { x: mid }, y, affine: tAffine, channels: c });
  mid.dispose();
  tAffine?.dispose();
  return y;
}

/**
 * The RGB planes of an RGBA8 image as f32 [1, 3, Ho, Wo]: byte / 255, then
 * the antialiased bilinear resize, then (optionally) Normalize(mean, std),
 * as torchvision's ToTensor → Resize(antialias=True) → Normalize. Only the
 * packed pixels (4 bytes each) are uploaded.
 */
export function antialiasResizeRgba8(gpu: Gpu, image: Rgba8Image, opts: AntialiasResizeOptions): Tensor {
  const op = 'antialiasResizeRgba8';
  const { width, height, data } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`${op}: image size must be positive integers, got ${width}×${height}`);
  }
  if (!(data instanceof Uint8Array) || data.length !== width * height * 4) {
    throw new Error(`${op}: RGBA8 data of a ${width}×${height} image must be ${width * height * 4} bytes, got ${data instanceof Uint8Array ? data.length : typeof data}`);
  }
  const [outH, outW] = checkSize(op, opts.size);
  const affine = channelAffine(op, opts, 3);
  const y = outputTensor(gpu, op, [1, 3, outH, outW], 'f32', [], opts.out);
  const aligned = data.byteOffset % 4 === 0 ? data : data.slice();
  const pixels = Tensor.fromArray(gpu, new Uint32Array(aligned.buffer, aligned.byteOffset, width * height), [width * height], 'u32');
  const mid = Tensor.empty(gpu, [1, 3, height, outW]);
  const tAffine = affine ? Tensor.fromArray(gpu, affine, [affine.length]) : undefined;
  dispatchPass(gpu, op, { outer: 3 * height, inLen: width, outLen: outW, inner: 1, source: { pixels, height, width }, y: mid, channels: 3 });
  dispatchPass(gpu, op, { outer: 3, inLen: height, outLen: outH, inner: outW, source: { x: mid }, y, affine: tAffine, channels: 3 });
  pixels.dispose();
  mid.dispose();
  tAffine?.dispose();
  return y;
}
