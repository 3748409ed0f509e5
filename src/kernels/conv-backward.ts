// conv2d's weight gradient by a direct, deterministic correlation kernel. (The
// input gradient is a transposed convolution with the same weights and the
// bias gradient a sum of dy over N, H, W; graph/ops.ts builds those from the
// existing kernels.)

import type { Gpu } from '../device.js';
import { Tensor, shapeString, type Shape } from '../tensor.js';
import type { Conv2dOptions } from './conv.js';
import { dispatchKernel, linearGrid } from './program.js';
import { outputTensor } from './strided.js';

const WORKGROUP_SIZE = 64;

export type Conv2dGeometry = Pick<Conv2dOptions, 'stride' | 'padding' | 'dilation' | 'groups'>;

const pairOf = (p: number | readonly [number, number] | undefined, d: number): [number, number] =>
  p === undefined ? [d, d] : typeof p === 'number' ? [p, p] : [p[0], p[1]];

/** dw [O, C/groups, KH, KW] of y = conv2d(x, w, geometry) for dy [N, O, Ho, Wo]. */
export function conv2dWeightGrad(gpu: Gpu, x: Tensor, dy: Tensor, weightShape: Shape, geometry: Conv2dGeometry = {}, opts: { out?: Tensor } = {}): Tensor {
  const op = 'conv2dWeightGrad';
  for (const [name, t] of [['x', x], ['dy', dy]] as const) {
    if (t.dtype !== 'f32' || t.rank !== 4) throw new Error(`${op}: ${name} must be f32 [N, C, H, W], got ${t.dtype} ${shapeString(t.shape)}`);
  }
  if (weightShape.length !== 4) throw new Error(`${op}: the weight shape must be [O, C/groups, KH, KW], got ${shapeString(weightShape)}`);
  const [N, C, H, W] = x.shape;
  const [O, Cg, KH, KW] = weightShape;
  const groups = geometry.groups ?? 1;
  const [sh, sw] = pairOf(geometry.stride, 1);
  const [ph, pw] = pairOf(geometry.padding, 0);
  const [dh, dw] = pairOf(geometry.dilation, 1);
  if (Cg * groups !== C || O % groups !== 0) throw new Error(`${op}: weight ${shapeString(weightShape)} does not fit x ${shapeString(x.shape)} with groups=${groups}`);
  const Ho = Math.floor((H + 2 * ph - dh * (KH - 1) - 1) / sh) + 1;
  const Wo = Math.floor((W + 2 * pw - dw * (KW - 1) - 1) / sw) + 1;
  if (dy.shape[0] !== N || dy.shape[1] !== O || dy.shape[2] !== Ho || dy.shape[3] !== Wo) {
    throw new Error(`${op}: dy must be [${N}, ${O}, ${Ho}, ${Wo}] for x ${shapeString(x.shape)} and weight ${shapeString(weightShape)}, got ${shapeString(dy.shape)}`);
  }
  const grad = outputTensor(gpu, op, weightShape, 'f32', [x, dy], opts.out);
  if (grad.size === 0) return grad;
  dispatchKernel(
    gpu,
    op,
    { shader: 'conv2d_backward', entry: 'weight_grad', constants: { KH, KW, SH: sh, SW: sw, PH: ph, PW: pw, DH: dh, DW: dw, WORKGROUP_SIZE } },
    { x, dy, dw: grad, params: { n: N, c: C, h: H, w: W, o: O, ho: Ho, wo: Wo, groups, count: grad.size } },
    linearGrid(gpu, grad.size, WORKGROUP_SIZE),
  );
  return grad;
}
