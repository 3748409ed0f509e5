// Backward of the elementwise activations (relu, gelu, geluTanh, quickGelu,
// sigmoid): dx = dy · f'(x), the derivative taken at the forward input x.

import type { Gpu } from '../device.js';
import { Tensor, shapeString } from '../tensor.js';
import { activationCode } from './activation.js';
import { dispatchKernel, linearGrid } from './program.js';
import { outputTensor } from './strided.js';
import { UNARY_OPS, type UnaryOp } from './unary.js';

export type ActivationBackwardOp = UnaryOp;

export interface ActivationBackwardOptions {
  /** Receives dx (f32, as many elements as x; must not share a buffer with x or dy). */
  out?: Tensor;
}

const WORKGROUP_SIZE = 256;

/** dx = dy · op'(x) elementwise; x is the forward input, dy the gradient of the forward output (same shape). */
export function activationBackward(gpu: Gpu, op: ActivationBackwardOp, x: Tensor, dy: Tensor, opts: ActivationBackwardOptions = {}): Tensor {
  const name = `activationBackward.${op}`;
  const code = activationCode('activationBackward', op, UNARY_OPS);
  if (x.dtype !== 'f32') throw new Error(`${name}: x must be f32, got ${x.dtype} ${shapeString(x.shape)}`);
  if (dy.dtype !== 'f32') throw new Error(`${name}: dy must be f32, got ${dy.dtype} ${shapeString(dy.shape)}`);
  if (dy.rank !== x.rank || dy.shape.some((d, i) => d !== x.shape[i])) {
    throw new Error(`${name}: dy must have the shape of x ${shapeString(x.shape)}, got ${shapeString(dy.shape)}`);
  }
  const dx = outputTensor(gpu, name, x.shape, 'f32', [x, dy], opts.out);
  dispatchKernel(
    gpu,
    name,
    { shader: 'activation_backward', constants: { ACTIVATION: code, WORKGROUP_SIZE } },
    { x, dy, dx, params: { n: x.size } },
    linearGrid(gpu, x.size, WORKGROUP_SIZE),
  );
  return dx;
}
