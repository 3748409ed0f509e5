// Elementwise activations: relu, gelu (erf), gelu (tanh), quickGelu (CLIP's
// x·σ(1.702x)), sigmoid. One kernel, specialised by the ACTIVATION override.

import type { Gpu } from '../device.js';
import { Tensor } from '../tensor.js';
import { ACTIVATIONS, activationCode, type Activation } from './activation.js';
import { dispatchKernel, linearGrid } from './program.js';

export type UnaryOp = Exclude<Activation, 'none'>;
export const UNARY_OPS = (Object.keys(ACTIVATIONS) as Activation[]).filter((a): a is UnaryOp => a !== 'none');

const WORKGROUP_SIZE = 256;

/** y = op(x), elementwise, into `out` if given (same element count) else a new tensor. */
export function unary(gpu: Gpu, op: UnaryOp, x: Tensor, out?: Tensor): Tensor {
  const name = `unary.${op}`;
  const code = activationCode('unary', op, UNARY_OPS);
  if (x.dtype !== 'f32') throw new Error(`${name}: expected an f32 tensor, got ${x.dtype}`);
  if (out && (out.size !== x.size || out.dtype !== 'f32')) {
    throw new Error(`${name}: output must be f32 with ${x.size} elements, got ${out.dtype} with ${out.size}`);
  }
  const y = out ?? Tensor.empty(gpu, x.shape);
  dispatchKernel(
    gpu,
    name,
    { shader: 'unary', constants: { ACTIVATION: code, WORKGROUP_SIZE } },
    { x, y, params: { n: x.size } },
    linearGrid(gpu, x.size, WORKGROUP_SIZE),
  );
  return y;
}

export const relu = (gpu: Gpu, x: Tensor, out?: Tensor) => unary(gpu, 'relu', x, out);
export const gelu = (gpu: Gpu, x: Tensor, out?: Tensor) => unary(gpu, 'gelu', x, out);
export const geluTanh = (gpu: Gpu, x: Tensor, out?: Tensor) => unary(gpu, 'geluTanh', x, out);
export const quickGelu = (gpu: Gpu, x: Tensor, out?: Tensor) => unary(gpu, 'quickGelu', x, out);
export const sigmoid = (gpu: Gpu, x: Tensor, out?: Tensor) => unary(gpu, 'sigmoid', x, out);
