// Elementwise activations: relu, gelu (erf), gelu (tanh), quickGelu (CLIP's
// x·σ(1.702x)), sigmoid. One kernel, specialised by the OP override.

import type { Gpu } from '../device.js';
import { Tensor } from '../tensor.js';
import { dispatchKernel, linearGrid } from './program.js';

export const UNARY_OPS = { relu: 0, gelu: 1, geluTanh: 2, quickGelu: 3, sigmoid: 4 } as const;
export type UnaryOp = keyof typeof UNARY_OPS;

const WORKGROUP_SIZE = 256;

/** y = op(x), elementwise, into `out` if given (same shape) else a new tensor. */
export function unary(gpu: Gpu, op: UnaryOp, x: Tensor, out?: Tensor): Tensor {
  const name = `unary.${op}`;
  if (!(op in UNARY_OPS)) throw new Error(`unary: unknown op '${op}' (known: ${Object.keys(UNARY_OPS).join(', ')})`);
  if (x.dtype !== 'f32') throw new Error(`${name}: expected an f32 tensor, got ${x.dtype}`);
  if (out && (out.size !== x.size || out.dtype !== 'f32')) {
    throw new Error(`${name}: output must be f32 with ${x.size} elements, got ${out.dtype} with ${out.size}`);
  }
  const y = out ?? Tensor.empty(gpu, x.shape);
  dispatchKernel(
    gpu,
    name,
    { shader: 'unary', constants: { OP: UNARY_OPS[op], WORKGROUP_SIZE } },
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
