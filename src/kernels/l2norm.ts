// L2 normalization over the last axis and its backward (see shaders/l2norm.wgsl).

import type { Gpu } from '../device.js';
import { Tensor, shapeString } from '../tensor.js';
import { axisGrid, axisTiling, checkF32 } from './axis.js';
import { dispatchKernel, placeholder } from './program.js';
import { outputTensor } from './strided.js';

export interface L2NormalizeOptions {
  /** Lower bound on the divisor ‖x‖; a positive finite number (default 1e-12, as torch's F.normalize). */
  eps?: number;
  /** Receives the result (f32, as many elements as x; must not share x's or dy's buffer). */
  out?: Tensor;
}

function checkRows(op: string, x: Tensor, eps: number): { rows: number; channels: number } {
  checkF32(op, 'x', x);
  if (x.rank === 0 || x.shape[x.rank - 1] === 0) throw new Error(`${op}: x must have a non-empty last axis, got ${shapeString(x.shape)}`);
  if (typeof eps !== 'number' || !Number.isFinite(eps) || eps <= 0) throw new Error(`${op}: eps must be a positive finite number, got ${eps}`);
  const channels = x.shape[x.rank - 1];
  return { rows: x.size / channels, channels };
}

function dispatch(gpu: Gpu, op: string, entry: 'forward' | 'backward', x: Tensor, dy: Tensor, out: Tensor, rows: number, channels: number, eps: number): void {
  const tiling = axisTiling(gpu, { outer: rows, axis: channels, inner: 1 });
  dispatchKernel(
    gpu,
    op,
    { shader: 'l2norm', entry, constants: { WORKGROUP_SIZE: tiling.WORKGROUP_SIZE, LANES: tiling.LANES } },
    { x, dy, out, params: { rows, channels, eps } },
    axisGrid(gpu, rows, tiling),
  );
}

/** y = x / max(‖x‖₂, eps) over the last axis of x [..., C]. */
export function l2Normalize(gpu: Gpu, x: Tensor, opts: L2NormalizeOptions = {}): Tensor {
  const op = 'l2Normalize';
  const eps = opts.eps ?? 1e-12;
  const { rows, channels } = checkRows(op, x, eps);
  const y = outputTensor(gpu, op, x.shape, 'f32', [x], opts.out);
  dispatch(gpu, op, 'forward', x, placeholder(gpu), y, rows, channels, eps);
  return y;
}

/** dx of y = l2Normalize(x, { eps }) given dy (shape of x); pass the forward pass's eps. */
export function l2NormalizeBackward(gpu: Gpu, dy: Tensor, x: Tensor, opts: L2NormalizeOptions = {}): Tensor {
  const op = 'l2NormalizeBackward';
  const eps = opts.eps ?? 1e-12;
  const { rows, channels } = checkRows(op, x, eps);
  checkF32(op, 'dy', dy);
  if (dy.rank !== x.rank || dy.shape.some((d, i) => d !== x.shape[i])) {
    throw new Error(`${op}: dy must have the shape of x ${shapeString(x.shape)}, got ${shapeString(dy.shape)}`);
  }
  const dx = outputTensor(gpu, op, x.shape, 'f32', [x, dy], opts.out);
  dispatch(gpu, op, 'backward', x, dy, dx, rows, channels, eps);
  return dx;
}
