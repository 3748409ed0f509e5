// Backward of layerNorm over the last axis (see shaders/layernorm_backward.wgsl):
// dx per row, and dγ/dβ by a deterministic two-pass reduction over rows.

import type { Gpu } from '../device.js';
import { Tensor, shapeString } from '../tensor.js';
import { axisGrid, axisTiling, checkF32 } from './axis.js';
import { dispatchKernel, linearGrid, placeholder } from './program.js';
import { outputTensor } from './strided.js';
import { sameShape } from '../util/shape.js';

export interface LayerNormBackwardOptions {
  /** Compute dx (default true); false when x is a leaf such as a frozen input. */
  needInputGrad?: boolean;
  /** Receive the gradients that are computed (shapes as LayerNormBackwardResult); none may share a buffer with an input. */
  out?: LayerNormBackwardResult;
}

export interface LayerNormBackwardResult {
  /** Gradient of x, shape of x; absent when needInputGrad is false. */
  dx?: Tensor;
  /** Gradient of γ [C]; present when gamma was given. */
  dgamma?: Tensor;
  /** Gradient of β [C]; present when gamma was given (an affine layer norm has both). */
  dbeta?: Tensor;
}

const WORKGROUP_SIZE = 256;
const PARAM_COLS = 64; // columns per `param_partials` workgroup, as in the shader
// Rows per pass-1 block: at least this many, and at most MAX_BLOCKS blocks so pass 2 stays short.
const MIN_ROWS_PER_BLOCK = 32;
const MAX_BLOCKS = 256;

/**
 * Gradients of y = layerNorm(x, γ, β) given dy, with mean and rstd [rows] as
 * saved by `layerNorm(gpu, x, γ, β, { mean, rstd })` (same eps). x and dy are
 * [..., C]; γ [C] is given for an affine layer norm and then dγ and dβ are
 * returned too (β itself does not enter the gradients).
 */
export function layerNormBackward(gpu: Gpu, dy: Tensor, x: Tensor, mean: Tensor, rstd: Tensor, gamma?: Tensor, opts: LayerNormBackwardOptions = {}): LayerNormBackwardResult {
  const op = 'layerNormBackward';
  checkF32(op, 'x', x);
  checkF32(op, 'dy', dy);
  if (x.rank === 0 || x.shape[x.rank - 1] === 0) throw new Error(`${op}: x must have a non-empty last axis, got ${shapeString(x.shape)}`);
  if (!sameShape(dy.shape, x.shape)) throw new Error(`${op}: dy must have the shape of x ${shapeString(x.shape)}, got ${shapeString(dy.shape)}`);
  const channels = x.shape[x.rank - 1];
  const rows = x.size / channels;
  for (const [name, t] of [['mean', mean], ['rstd', rstd]] as const) {
    if (t.dtype !== 'f32' || t.size !== rows) {
      throw new Error(`${op}: ${name} must be f32 with ${rows} elements (one per row of x ${shapeString(x.shape)}), got ${t.dtype} ${shapeString(t.shape)}`);
    }
  }
  if (gamma) {
    checkF32(op, 'gamma', gamma);
    if (gamma.rank !== 1 || gamma.shape[0] !== channels) throw new Error(`${op}: gamma must have shape [${channels}] to match x ${shapeString(x.shape)}, got ${shapeString(gamma.shape)}`);
  }
  const needInputGrad = opts.needInputGrad ?? true;
  if (typeof needInputGrad !== 'boolean') throw new Error(`${op}: needInputGrad must be a boolean, got ${String(needInputGrad)}`);

  const result: LayerNormBackwardResult = {};
  if (!needInputGrad && !gamma) return result;
  const blocks = Math.min(Math.ceil(rows / MIN_ROWS_PER_BLOCK), MAX_BLOCKS);
  const rowsPerBlock = Math.ceil(rows / blocks);
  const params = { rows, channels, rows_per_block: rowsPerBlock, blocks };
  // Every entry binds every buffer; outputs an entry does not write get a small scratch tensor.
  const scratch: Tensor[] = [];
  const unused = () => {
    const t = Tensor.empty(gpu, [1]);
    scratch.push(t);
    return t;
  };
  const inputs = [dy, x, mean, rstd, ...(gamma ? [gamma] : [])];
  const dx = needInputGrad ? outputTensor(gpu, `${op}: dx`, x.shape, 'f32', inputs, opts.out?.dx) : unused();
  const partials = gamma ? Tensor.empty(gpu, [blocks, channels, 2]) : unused();
  const dgamma = gamma ? outputTensor(gpu, `${op}: dgamma`, [channels], 'f32', inputs, opts.out?.dgamma) : unused();
  const dbeta = gamma ? outputTensor(gpu, `${op}: dbeta`, [channels], 'f32', inputs, opts.out?.dbeta) : unused();
  const resources = { dy, x, mean, rstd, gamma: gamma ?? placeholder(gpu), dx, partials, dgamma, dbeta, params };

  if (needInputGrad) {
    const view = { outer: rows, axis: channels, inner: 1 };
    const tiling = axisTiling(gpu, view);
    dispatchKernel(
      gpu,
      `${op}.input_grad`,
      { shader: 'layernorm_backward', entry: 'input_grad', constants: { WORKGROUP_SIZE: tiling.WORKGROUP_SIZE, LANES: tiling.LANES, HAS_GAMMA: gamma !== undefined } },
      resources,
      axisGrid(gpu, rows, tiling),
    );
    result.dx = dx;
  }
  if (gamma) {
    dispatchKernel(gpu, `${op}.param_partials`, { shader: 'layernorm_backward', entry: 'param_partials' }, resources, [Math.ceil(channels / PARAM_COLS), blocks]);
    dispatchKernel(gpu, `${op}.param_final`, { shader: 'layernorm_backward', entry: 'param_final', constants: { WORKGROUP_SIZE } }, resources, linearGrid(gpu, channels, WORKGROUP_SIZE));
    partials.dispose();
    result.dgamma = dgamma;
    result.dbeta = dbeta;
  }
  for (const t of scratch) t.dispose();
  return result;
}
