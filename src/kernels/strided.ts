// Host-side helpers shared by the strided kernels (binary, transform): axis
// coalescing, packing per-axis values into the shaders' vec4 uniform pairs,
// and validation of a caller-supplied output tensor. Internal: not re-exported
// from src/kernels/index.ts.

import type { Gpu } from '../device.js';
import { Tensor, numel, shapeString, type DType, type Shape } from '../tensor.js';

/** Axes a strided kernel walks; uniforms hold per-axis values as two vec4<u32> (`*_lo`, `*_hi`). */
export const MAX_RANK = 8;

/** One axis of a strided walk: its length and, per tensor involved, the element stride along it. */
export interface StridedAxis {
  size: number;
  strides: number[];
  /** Coordinates in [start, end) are in bounds; set on padded axes, which are never merged or dropped. */
  window?: [number, number];
}

/** Dense row-major element strides of `shape`. */
export function denseStrides(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d];
  }
  return strides;
}

/**
 * Drops length-1 axes and merges neighbours that every tensor walks as one
 * (outer stride = inner stride · inner length), so that e.g. a same-shape add
 * becomes one axis and the kernel's per-element index math stays short.
 */
export function coalesceAxes(axes: readonly StridedAxis[]): StridedAxis[] {
  const out: StridedAxis[] = [];
  for (const axis of axes) {
    if (axis.size === 1 && !axis.window) continue;
    const prev = out[out.length - 1];
    if (prev && !prev.window && !axis.window && prev.strides.every((s, k) => s === axis.size * axis.strides[k])) {
      out[out.length - 1] = { size: prev.size * axis.size, strides: [...axis.strides] };
    } else {
      out.push({ size: axis.size, strides: [...axis.strides], window: axis.window });
    }
  }
  return out;
}

/** Up to MAX_RANK per-axis values as the [lo, hi] vec4 pair of a uniform, padded with `fill`. */
export function vec4Pair(values: readonly number[], fill = 0): [number[], number[]] {
  const v = [...values];
  while (v.length < MAX_RANK) v.push(fill);
  return [v.slice(0, 4), v.slice(4, 8)];
}

/** Throws unless the walk fits the kernels' MAX_RANK axes. */
export function checkRank(op: string, axes: readonly StridedAxis[], what: string): void {
  if (axes.length > MAX_RANK) {
    throw new Error(`${op}: ${what} needs ${axes.length} strided axes after merging contiguous ones; the kernel supports at most ${MAX_RANK}`);
  }
}

/**
 * The tensor an op writes: `out` after checking its dtype, element count and
 * that it shares no buffer with an input (WebGPU cannot bind one buffer as
 * both read-only and writable storage in one dispatch), else a new tensor.
 */
export function outputTensor(gpu: Gpu, op: string, shape: Shape, dtype: DType, inputs: readonly Tensor[], out?: Tensor): Tensor {
  if (!out) return Tensor.empty(gpu, shape, dtype);
  if (out.dtype !== dtype || out.size !== numel(shape)) {
    throw new Error(`${op}: out must be ${dtype} with ${numel(shape)} elements (shape ${shapeString(shape)}), got ${out.dtype} ${shapeString(out.shape)}`);
  }
  const shared = inputs.findIndex((t) => t.buffer === out.buffer);
  if (shared >= 0) {
    throw new Error(`${op}: out shares its buffer with input ${shared} ${shapeString(inputs[shared].shape)}; WebGPU cannot read and write one buffer in a dispatch, so pass a separate output`);
  }
  return out;
}
