// The [outer, axis, inner] view and the column tiling that every axis kernel
// (layernorm, softmax, reduce, topk) shares; the shaders' headers describe
// the tiling. Internal: not re-exported from the package.

import type { Gpu } from '../device.js';
import { Tensor, numel, shapeString, type Shape } from '../tensor.js';
import { linearGrid } from './program.js';
import { tunedVariant } from './tune.js';

/** Threads per workgroup of the axis kernels; 256 is safe on every adapter. */
export const AXIS_WORKGROUP_SIZE = 256;

/** A tensor seen as [outer, axis, inner] around one axis; "columns" are the outer · inner independent lines. */
export interface AxisView {
  outer: number;
  axis: number;
  inner: number;
}

/** Resolves a possibly negative axis of `shape`, or throws naming the op, the axis and the rank. */
export function resolveAxis(op: string, shape: Shape, axis: number): number {
  const rank = shape.length;
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) {
    const valid = rank === 0 ? 'a rank-0 tensor has no axes' : `valid: ${-rank}..${rank - 1}`;
    throw new Error(`${op}: axis ${axis} is out of range for rank ${rank} tensor ${shapeString(shape)} (${valid})`);
  }
  return axis < 0 ? axis + rank : axis;
}

export function axisView(shape: Shape, axis: number): AxisView {
  return { outer: numel(shape.slice(0, axis)), axis: shape[axis], inner: numel(shape.slice(axis + 1)) };
}

const nextPow2 = (n: number) => 2 ** Math.ceil(Math.log2(Math.max(1, n)));

/**
 * Most threads per column, per adapter. Real GPUs want many lanes per row and
 * a tree reduction in workgroup memory; on CPU adapters each barrier of that
 * tree costs more than the parallelism gains (a ViT softmax runs ~8× faster
 * with one lane per row on lavapipe), so they start at 1 until tuned.
 */
export const AXIS_LANE_CAPS = [1, 8, 32, 256] as const;
const SERIAL_RUN = 256;
export const AXIS_TUNING_KEY = 'axis|lanes';
let forcedLaneCap: number | undefined;

export function axisLaneCap(gpu: Gpu): number {
  if (forcedLaneCap !== undefined) return forcedLaneCap;
  const tuned = tunedVariant(gpu, AXIS_TUNING_KEY);
  return tuned !== undefined ? Number(tuned) : gpu.adapter.isCpu ? 1 : AXIS_WORKGROUP_SIZE;
}

/** Records the kernels `run` dispatches with at most `cap` lanes per column (tests and sweeps). */
export function withAxisLaneCap<T>(cap: number, run: () => T): T {
  const before = forcedLaneCap;
  forcedLaneCap = cap;
  try {
    return run();
  } finally {
    forcedLaneCap = before;
  }
}

/**
 * Override constants for the column tiling of an [outer, axis, inner] view:
 * LANES threads per column (a power of two, at most the adapter's lane cap),
 * WORKGROUP_SIZE / LANES columns per workgroup. Contiguous rows (inner = 1)
 * put a row's lanes side by side; strided columns put up to 32 neighbouring
 * columns side by side, and give spare threads to more columns when the axis
 * is short.
 */
export function axisTiling(gpu: Gpu, view: AxisView): { WORKGROUP_SIZE: number; LANES: number; LANES_FASTEST: boolean } {
  const firstCols = Math.min(nextPow2(view.inner), 32);
  // Each lane sums at most ~SERIAL_RUN elements in sequence, whatever the cap,
  // so f32 rounding on long rows stays that of a short sum plus a tree.
  const minLanes = nextPow2(Math.ceil(view.axis / SERIAL_RUN));
  const lanes = Math.min(AXIS_WORKGROUP_SIZE / firstCols, nextPow2(view.axis), Math.max(axisLaneCap(gpu), minLanes));
  return { WORKGROUP_SIZE: AXIS_WORKGROUP_SIZE, LANES: lanes, LANES_FASTEST: view.inner === 1 };
}

/** Workgroup grid for `columns` columns at the given tiling. */
export function axisGrid(gpu: Gpu, columns: number, tiling: { WORKGROUP_SIZE: number; LANES: number }): [number, number] {
  return linearGrid(gpu, columns, tiling.WORKGROUP_SIZE / tiling.LANES);
}

export function checkF32(op: string, name: string, t: Tensor): void {
  if (t.dtype !== 'f32') throw new Error(`${op}: ${name} must be f32, got ${t.dtype} ${shapeString(t.shape)}`);
}

