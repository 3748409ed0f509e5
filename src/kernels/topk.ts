// argmax and topK along one axis, by repeated selection in a total order
// (value descending, NaN largest, ties → lower index); see shaders/topk.wgsl.

import type { Gpu } from '../device.js';
import { Tensor, shapeString } from '../tensor.js';
import { dispatchKernel, placeholder } from './program.js';
import { axisGrid, axisTiling, axisView, checkF32, resolveAxis, type AxisView } from './axis.js';

/** Largest k topK accepts: the kernel makes k passes over each row, so cost grows with k. */
export const TOPK_MAX_K = 256;

// Keys of a workgroup's rows are kept in workgroup memory (4 bytes each) when
// they fit in this many; 16 KiB leaves room for the candidates on any adapter.
const KEY_CACHE_LEN = 4096;

export interface TopKResult {
  /** The k largest values along the axis, in descending order. */
  values: Tensor;
  /** Their positions along the axis (i32). */
  indices: Tensor;
}

function select(gpu: Gpu, op: string, x: Tensor, view: AxisView, k: number, values: Tensor | undefined, indices: Tensor): void {
  const columns = view.outer * view.inner;
  if (columns === 0) return;
  const tiling = axisTiling(gpu, view);
  const cols = tiling.WORKGROUP_SIZE / tiling.LANES;
  const cached = k > 1 && cols * view.axis <= KEY_CACHE_LEN;
  dispatchKernel(
    gpu,
    op,
    { shader: 'topk', constants: { ...tiling, WRITE_VALUES: values !== undefined, CACHE_LEN: cached ? KEY_CACHE_LEN : 1 } },
    { x, values: values ?? placeholder(gpu), indices, params: { columns, axis: view.axis, inner: view.inner, k } },
    axisGrid(gpu, columns, tiling),
  );
}

/**
 * Index of the largest element along `axis` (default −1), as i32; ties give
 * the lowest index and NaN counts as largest, as numpy/PyTorch.
 */
export function argmax(gpu: Gpu, x: Tensor, opts: { axis?: number; keepDims?: boolean } = {}): Tensor {
  const op = 'argmax';
  checkF32(op, 'x', x);
  const axis = resolveAxis(op, x.shape, opts.axis ?? -1);
  if (x.shape[axis] === 0) throw new Error(`${op}: axis ${axis} of ${shapeString(x.shape)} is empty; there is no largest element`);
  const shape = opts.keepDims ? x.shape.map((d, i) => (i === axis ? 1 : d)) : x.shape.filter((_, i) => i !== axis);
  const indices = Tensor.empty(gpu, shape, 'i32');
  select(gpu, op, x, axisView(x.shape, axis), 1, undefined, indices);
  return indices;
}

/**
 * The k largest elements along the last axis, sorted descending (ties →
 * lower index first, NaN largest). 1 ≤ k ≤ min(row length, TOPK_MAX_K).
 */
export function topK(gpu: Gpu, x: Tensor, k: number, opts: { axis?: number } = {}): TopKResult {
  const op = 'topK';
  checkF32(op, 'x', x);
  const axis = resolveAxis(op, x.shape, opts.axis ?? -1);
  if (axis !== x.rank - 1) throw new Error(`${op}: only the last axis is supported, got axis ${opts.axis} of rank ${x.rank} tensor ${shapeString(x.shape)}`);
  const length = x.shape[axis];
  if (!Number.isInteger(k) || k < 1 || k > length) throw new Error(`${op}: k must be an integer in 1..${length} (the last axis of ${shapeString(x.shape)}), got ${k}`);
  if (k > TOPK_MAX_K) throw new Error(`${op}: k = ${k} exceeds the supported maximum of ${TOPK_MAX_K} (the kernel makes k passes over each row)`);
  const shape = [...x.shape.slice(0, -1), k];
  const values = Tensor.empty(gpu, shape);
  const indices = Tensor.empty(gpu, shape, 'i32');
  select(gpu, op, x, axisView(x.shape, axis), k, values, indices);
  return { values, indices };
}
