// 2-D resize of NCHW tensors, nearest or bilinear, with PyTorch
// F.interpolate's index math (see shaders/resize.wgsl for the formulas).

import type { Gpu } from '../device.js';
import { Tensor, shapeString } from '../tensor.js';
import { dispatchKernel, linearGrid } from './program.js';
import { outputTensor } from './strided.js';

const WORKGROUP_SIZE = 256;

export interface ResizeOptions {
  /** Output [Ho, Wo]; give exactly one of size and scale. */
  size?: readonly [number, number];
  /** Scale factors [sh, sw]: output = floor(in · s), and the source index math uses 1/s, as PyTorch does. */
  scale?: readonly [number, number];
  mode: 'nearest' | 'bilinear';
  /** Bilinear only (default false): map corner pixel centres onto each other. */
  alignCorners?: boolean;
  out?: Tensor;
}

/**
 * The f32 ratio of output to input coordinates for one axis. Math.fround of
 * the double quotient equals PyTorch's f32 division here: for lengths below
 * 2^24 a double-rounding error would need 28 equal bits in a row of a
 * fraction with denominator < 2^24, which cannot happen.
 */
function axisRatio(mode: ResizeOptions['mode'], alignCorners: boolean, inLen: number, outLen: number, scale: number | undefined): number {
  if (mode === 'nearest') {
    // PyTorch's CPU nearest_idx short-cuts these two cases before using the scale.
    if (outLen === inLen) return 1;
    if (outLen === 2 * inLen) return 0.5;
  } else if (alignCorners) {
    return outLen > 1 ? Math.fround((inLen - 1) / (outLen - 1)) : 0;
  }
  return scale !== undefined ? Math.fround(1 / scale) : Math.fround(inLen / outLen);
}

/** y = F.interpolate(x, size | scale_factor, mode, align_corners) for x [N, C, H, W] f32. */
export function resize(gpu: Gpu, x: Tensor, opts: ResizeOptions): Tensor {
  const op = 'resize';
  if (x.rank !== 4) throw new Error(`${op}: x must be [N, C, H, W] (rank 4), got ${shapeString(x.shape)} (rank ${x.rank})`);
  if (x.dtype !== 'f32') throw new Error(`${op}: expected an f32 tensor, got ${x.dtype}`);
  const { size, scale, mode } = opts;
  if (mode !== 'nearest' && mode !== 'bilinear') throw new Error(`${op}: mode must be 'nearest' or 'bilinear', got '${String(mode)}'`);
  if (opts.alignCorners !== undefined && mode !== 'bilinear') {
    throw new Error(`${op}: alignCorners applies to mode 'bilinear' only, got it with '${mode}'`);
  }
  const alignCorners = opts.alignCorners ?? false;
  const [, , h, w] = x.shape;
  if (h === 0 || w === 0) throw new Error(`${op}: input spatial size [${h}, ${w}] must be positive`);
  if ((size === undefined) === (scale === undefined)) throw new Error(`${op}: give exactly one of size and scale`);
  let outSize: [number, number];
  if (size !== undefined) {
    if (size.length !== 2 || !size.every((v) => Number.isInteger(v) && v > 0)) {
      throw new Error(`${op}: size ${JSON.stringify(size)} must be [Ho, Wo], positive integers`);
    }
    outSize = [size[0], size[1]];
  } else {
    const s = scale as readonly number[];
    if (s.length !== 2 || !s.every((v) => Number.isFinite(v) && v > 0)) {
      throw new Error(`${op}: scale ${JSON.stringify(s)} must be [sh, sw], positive finite numbers`);
    }
    outSize = [Math.floor(h * s[0]), Math.floor(w * s[1])];
    if (outSize[0] < 1 || outSize[1] < 1) {
      throw new Error(`${op}: scale [${s.join(', ')}] gives output size [${outSize.join(', ')}] for input [${h}, ${w}]; sizes must be positive`);
    }
  }
  const [outH, outW] = outSize;
  const y = outputTensor(gpu, op, [x.shape[0], x.shape[1], outH, outW], 'f32', [x], opts.out);
  if (y.size === 0) return y;
  dispatchKernel(
    gpu,
    op,
    { shader: 'resize', constants: { BILINEAR: mode === 'bilinear', ALIGN_CORNERS: alignCorners, WORKGROUP_SIZE } },
    {
      x,
      y,
      params: {
        in_h: h,
        in_w: w,
        out_h: outH,
        out_w: outW,
        n: y.size,
        ratio_h: axisRatio(mode, alignCorners, h, outH, scale?.[0]),
        ratio_w: axisRatio(mode, alignCorners, w, outW, scale?.[1]),
      },
    },
    linearGrid(gpu, y.size, WORKGROUP_SIZE),
  );
  return y;
}

/**
 * The [outLen, inLen] matrix of resize along one axis, given by size (no
 * scale factor, as the graph op uses it): y = Rh · x · Rwᵀ on every plane.
 * Entries come from the f32 source coordinates and weights the shader
 * computes (nearest: one 1 per row; bilinear: 1 − λ and λ, summed where the
 * clamp makes i0 = i1). Its transpose is resize's adjoint: the graph op's
 * backward is dx = Rhᵀ · dy · Rw, two matmuls.
 */
export function resizeAxisMatrix(inLen: number, outLen: number, mode: ResizeOptions['mode'], alignCorners = false): Float32Array {
  if (!(Number.isInteger(inLen) && inLen > 0 && Number.isInteger(outLen) && outLen > 0)) {
    throw new Error(`resizeAxisMatrix: lengths must be positive integers, got in ${inLen}, out ${outLen}`);
  }
  const f = Math.fround;
  const ratio = axisRatio(mode, alignCorners, inLen, outLen, undefined);
  const m = new Float32Array(outLen * inLen);
  for (let dst = 0; dst < outLen; dst++) {
    if (mode === 'nearest') {
      m[dst * inLen + Math.min(Math.floor(f(dst * ratio)), inLen - 1)] = 1;
      continue;
    }
    const src = alignCorners ? f(ratio * dst) : Math.max(f(f(ratio * f(dst + 0.5)) - 0.5), 0);
    const i0 = Math.min(Math.floor(src), inLen - 1);
    const i1 = Math.min(i0 + 1, inLen - 1);
    const lambda = Math.min(Math.max(f(src - i0), 0), 1);
    m[dst * inLen + i0] += f(1 - lambda);
    m[dst * inLen + i1] += lambda;
  }
  return m;
}
