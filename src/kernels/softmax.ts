// Softmax along any axis; see shaders/softmax.wgsl for the tiling and the
// treatment of infinities (a row of all −inf becomes zeros).

import type { Gpu } from '../device.js';
import type { Tensor } from '../tensor.js';
import { dispatchKernel } from './program.js';
import { axisGrid, axisTiling, axisView, checkF32, resolveAxis } from './axis.js';
import { outputTensor } from './strided.js';

export interface SoftmaxOptions {
  /** Axis to normalize over; negative counts from the end (default −1). */
  axis?: number;
  out?: Tensor;
}

/**
 * y = exp(x − max) / Σ exp(x − max) along `axis`. −inf entries get 0; a line
 * of only −inf entries (fully masked) is all zeros; +inf or NaN gives NaN.
 */
export function softmax(gpu: Gpu, x: Tensor, opts: SoftmaxOptions = {}): Tensor {
  const op = 'softmax';
  checkF32(op, 'x', x);
  const axis = resolveAxis(op, x.shape, opts.axis ?? -1);
  const y = outputTensor(gpu, op, x.shape, 'f32', [x], opts.out);
  const view = axisView(x.shape, axis);
  const columns = view.outer * view.inner;
  if (x.size === 0) return y;
  const tiling = axisTiling(gpu, view);
  dispatchKernel(
    gpu,
    op,
    { shader: 'softmax', constants: tiling },
    { x, y, params: { columns, axis: view.axis, inner: view.inner } },
    axisGrid(gpu, columns, tiling),
  );
  return y;
}
