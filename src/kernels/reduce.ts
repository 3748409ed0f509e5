// Reductions over one or several axes: reduceSum, reduceMean, reduceMax.

import type { Gpu } from '../device.js';
import { Tensor, numel, shapeString, type Shape } from '../tensor.js';
import { dispatchKernel } from './program.js';
import { axisGrid, axisTiling, checkF32, resolveAxis, type AxisView } from './axis.js';
import { outputTensor } from './strided.js';

export interface ReduceOptions {
  /** Keep reduced axes as size 1 (default false). */
  keepDims?: boolean;
  /** Receives the result (f32, the output's element count); it must not share the input's buffer. */
  out?: Tensor;
}

type ReduceKind = 'sum' | 'mean' | 'max';

// A long axis with few outputs is split into chunks of this many elements,
// reduced to partials by many workgroups, then reduced again.
const CHUNK = 4096;
// Split only when the plain reduction would occupy fewer workgroups than this.
const MIN_WORKGROUPS = 64;

/** Sorted, non-negative, distinct axes; throws on range errors and duplicates. */
function resolveAxes(op: string, shape: Shape, axes: number | readonly number[]): number[] {
  const list = typeof axes === 'number' ? [axes] : [...axes];
  if (list.length === 0) throw new Error(`${op}: axes must name at least one axis of ${shapeString(shape)}, got []`);
  const resolved = list.map((a) => resolveAxis(op, shape, a));
  const seen = new Set<number>();
  resolved.forEach((a, i) => {
    if (seen.has(a)) throw new Error(`${op}: duplicate axis ${list[i]} (= axis ${a}) in axes [${list.join(', ')}] for rank ${shape.length} tensor ${shapeString(shape)}`);
    seen.add(a);
  });
  return resolved.sort((a, b) => a - b);
}

interface Pass extends AxisView {
  chunk: number;
  chunks: number;
}

/**
 * The dispatches for a reduction: merge adjacent reduced axes (and adjacent
 * kept axes) into blocks, reduce the blocks innermost first, and split a long
 * block with few outputs into chunks reduced in a further pass.
 */
function planPasses(gpu: Gpu, shape: Shape, axes: number[]): Pass[] {
  const blocks: { size: number; reduced: boolean }[] = [];
  shape.forEach((size, d) => {
    if (size === 1) return; // size-1 axes change no index
    const reduced = axes.includes(d);
    const last = blocks[blocks.length - 1];
    if (last && last.reduced === reduced) last.size *= size;
    else blocks.push({ size, reduced });
  });
  const passes: Pass[] = [];
  const addPass = (view: AxisView) => {
    let axis = view.axis;
    for (;;) {
      const tiling = axisTiling(gpu, { ...view, axis });
      const [gx, gy] = axisGrid(gpu, view.outer * view.inner, tiling);
      if (axis <= CHUNK || gx * gy >= MIN_WORKGROUPS) break;
      const chunks = Math.ceil(axis / CHUNK);
      passes.push({ ...view, axis, chunk: CHUNK, chunks });
      axis = chunks;
    }
    passes.push({ ...view, axis, chunk: Math.max(axis, 1), chunks: 1 });
  };
  for (let b = blocks.length - 1; b >= 0; b--) {
    if (!blocks[b].reduced) continue;
    const outer = numel(blocks.slice(0, b).map((x) => x.size));
    const inner = numel(blocks.slice(b + 1).map((x) => x.size));
    addPass({ outer, axis: blocks[b].size, inner });
    blocks.splice(b, 1);
  }
  // Every reduced axis had size 1: one pass over a unit axis copies the data.
  if (passes.length === 0) addPass({ outer: numel(shape), axis: 1, inner: 1 });
  return passes;
}

function reduce(gpu: Gpu, kind: ReduceKind, x: Tensor, axes: number | readonly number[], opts: ReduceOptions): Tensor {
  const op = `reduce${kind[0].toUpperCase()}${kind.slice(1)}`;
  checkF32(op, 'x', x);
  const resolved = resolveAxes(op, x.shape, axes);
  const count = numel(resolved.map((a) => x.shape[a]));
  if (kind === 'max' && count === 0) {
    throw new Error(`${op}: cannot take the maximum over zero elements (axes [${resolved.join(', ')}] of ${shapeString(x.shape)})`);
  }
  const outShape = opts.keepDims ? x.shape.map((d, i) => (resolved.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !resolved.includes(i));
  const y = outputTensor(gpu, op, outShape, 'f32', [x], opts.out);
  if (y.size === 0) return y;
  const passes = planPasses(gpu, x.shape, resolved);
  let input = x;
  passes.forEach((p, n) => {
    const last = n === passes.length - 1;
    const columns = p.outer * p.chunks * p.inner;
    const output = last ? y : Tensor.empty(gpu, [columns]);
    const tiling = axisTiling(gpu, p);
    dispatchKernel(
      gpu,
      op,
      { shader: 'reduce', constants: { OP: kind === 'max' ? 1 : 0, ...tiling } },
      { x: input, y: output, params: { columns, axis: p.axis, inner: p.inner, chunks: p.chunks, chunk: p.chunk, scale: last && kind === 'mean' ? 1 / count : 1 } },
      axisGrid(gpu, columns, tiling),
    );
    if (input !== x) input.dispose();
    input = output;
  });
  return y;
}

/** Sum over `axes` (negative counts from the end); deterministic. */
export function reduceSum(gpu: Gpu, x: Tensor, axes: number | readonly number[], opts: ReduceOptions = {}): Tensor {
  return reduce(gpu, 'sum', x, axes, opts);
}

/** Mean over `axes`: the f32 sum times 1/count. */
export function reduceMean(gpu: Gpu, x: Tensor, axes: number | readonly number[], opts: ReduceOptions = {}): Tensor {
  return reduce(gpu, 'mean', x, axes, opts);
}

/** Maximum over `axes`; NaN if any reduced element is NaN (as torch.amax). */
export function reduceMax(gpu: Gpu, x: Tensor, axes: number | readonly number[], opts: ReduceOptions = {}): Tensor {
  return reduce(gpu, 'max', x, axes, opts);
}
