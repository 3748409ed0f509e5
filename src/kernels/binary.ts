// Broadcasting elementwise add, sub, mul, div on f32 (numpy rules, any ranks
// whose broadcast walk needs at most 8 axes after merging contiguous ones).
// One kernel for every rank: axis lengths and strides are uniforms.

import type { Gpu } from '../device.js';
import { Tensor, shapeString, type Shape } from '../tensor.js';
import { dispatchKernel, linearGrid } from './program.js';
import { checkRank, coalesceAxes, denseStrides, outputTensor, vec4Pair, type StridedAxis } from './strided.js';

const BINARY_OPS = { add: 0, sub: 1, mul: 2, div: 3 } as const;
type BinaryOp = keyof typeof BINARY_OPS;

const WORKGROUP_SIZE = 256;

/**
 * numpy broadcasting: shapes are aligned at their last axis; each pair of
 * lengths must be equal or contain a 1 (which stretches to the other).
 */
export function broadcastShapes(a: Shape, b: Shape): number[] {
  return broadcastShapeFor('broadcastShapes', a, b);
}

function broadcastShapeFor(op: string, a: Shape, b: Shape): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let k = 1; k <= rank; k++) {
    const da = a.length - k >= 0 ? a[a.length - k] : 1;
    const db = b.length - k >= 0 ? b[b.length - k] : 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(`${op}: shapes ${shapeString(a)} and ${shapeString(b)} are incompatible (axis ${-k} has ${da} vs ${db}; lengths must match or be 1)`);
    }
    out[rank - k] = da === 1 ? db : da;
  }
  return out;
}

/** Element strides of `shape` when walked over the broadcast shape `to` (0 along stretched axes). */
function broadcastStrides(shape: Shape, to: Shape): number[] {
  const dense = denseStrides(shape);
  const lead = to.length - shape.length;
  return to.map((_, d) => (d < lead || shape[d - lead] === 1 ? 0 : dense[d - lead]));
}

function binary(gpu: Gpu, op: BinaryOp, a: Tensor, b: Tensor, out?: Tensor): Tensor {
  if (a.dtype !== b.dtype) throw new Error(`${op}: dtypes differ: a ${shapeString(a.shape)} is ${a.dtype}, b ${shapeString(b.shape)} is ${b.dtype}`);
  if (a.dtype !== 'f32') throw new Error(`${op}: expected f32 tensors, got ${a.dtype}`);
  const shape = broadcastShapeFor(op, a.shape, b.shape);
  const y = outputTensor(gpu, op, shape, 'f32', [a, b], out);
  if (y.size === 0) return y;
  const sa = broadcastStrides(a.shape, shape);
  const sb = broadcastStrides(b.shape, shape);
  const axes = coalesceAxes(shape.map((size, d): StridedAxis => ({ size, strides: [sa[d], sb[d]] })));
  checkRank(op, axes, `broadcasting ${shapeString(a.shape)} with ${shapeString(b.shape)}`);
  const [shape_lo, shape_hi] = vec4Pair(axes.map((x) => x.size), 1);
  const [a_stride_lo, a_stride_hi] = vec4Pair(axes.map((x) => x.strides[0]));
  const [b_stride_lo, b_stride_hi] = vec4Pair(axes.map((x) => x.strides[1]));
  dispatchKernel(
    gpu,
    op,
    { shader: 'binary', constants: { OP: BINARY_OPS[op], WORKGROUP_SIZE } },
    { a, b, y, params: { shape_lo, shape_hi, a_stride_lo, a_stride_hi, b_stride_lo, b_stride_hi, n: y.size, rank: axes.length } },
    linearGrid(gpu, y.size, WORKGROUP_SIZE),
  );
  return y;
}

/** a + b with numpy broadcasting, into `out` if given. */
export const add = (gpu: Gpu, a: Tensor, b: Tensor, out?: Tensor) => binary(gpu, 'add', a, b, out);
/** a − b with numpy broadcasting, into `out` if given. */
export const sub = (gpu: Gpu, a: Tensor, b: Tensor, out?: Tensor) => binary(gpu, 'sub', a, b, out);
/** a · b with numpy broadcasting, into `out` if given. */
export const mul = (gpu: Gpu, a: Tensor, b: Tensor, out?: Tensor) => binary(gpu, 'mul', a, b, out);
/** a / b with numpy broadcasting, into `out` if given. */
export const div = (gpu: Gpu, a: Tensor, b: Tensor, out?: Tensor) => binary(gpu, 'div', a, b, out);
