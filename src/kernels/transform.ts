// Data movement: permute, slice, pad, concat. All are one strided copy of
// 32-bit words (shaders/transform.wgsl), so f32, i32 and u32 tensors pass
// through bit for bit; f16 is not supported (a word holds two halves). A
// permute that swaps the last two axes (after merging the axes that stay
// together) uses the tiled transpose (shaders/transpose_tiled.wgsl).

import type { Gpu } from '../device.js';
import { Tensor, shapeString, type DType } from '../tensor.js';
import { dispatchKernel, linearGrid } from './program.js';
import { checkRank, coalesceAxes, denseStrides, outputTensor, vec4Pair, type StridedAxis } from './strided.js';

const WORKGROUP_SIZE = 256;
/**
 * Innermost-axis elements per invocation on CPU adapters (shaders/transform.wgsl RUN):
 * on lavapipe permutes, pads and slices of TinyViT maps run ~5× faster than with one element per invocation.
 */
const CPU_RUN = 32;
/** Edge of the square tile of transpose_tiled.wgsl. */
const TRANSPOSE_TILE = 32;

export interface PadOptions {
  /** Value of the padding (default 0); an integer for i32/u32 tensors. */
  value?: number;
  out?: Tensor;
}

function check32Bit(op: string, x: Tensor, what = 'x'): void {
  if (x.dtype === 'f16') throw new Error(`${op}: ${what} ${shapeString(x.shape)} is f16; data movement kernels copy 32-bit words (f32, i32, u32)`);
}

function checkArity(op: string, x: Tensor, what: string, values: readonly unknown[]): void {
  if (values.length !== x.rank) {
    throw new Error(`${op}: ${what} has ${values.length} entries, expected one per axis of x ${shapeString(x.shape)} (rank ${x.rank})`);
  }
}

/**
 * Records one strided copy: axes[].strides are [src stride, dst stride];
 * axes with a window are padded (outside it, dst gets the word `fill`).
 */
function stridedCopy(gpu: Gpu, op: string, src: Tensor, dst: Tensor, walk: readonly StridedAxis[], srcOffset: number, dstOffset: number, fill = 0): void {
  const axes = coalesceAxes(walk);
  checkRank(op, axes, `copying ${shapeString(src.shape)}`);
  const n = axes.reduce((p, a) => p * a.size, 1);
  if (n === 0) return;
  const run = gpu.adapter.isCpu && axes.length > 0 ? CPU_RUN : 1;
  const inner = axes[axes.length - 1]?.size ?? 1;
  const invocations = run === 1 ? n : (n / inner) * Math.ceil(inner / run);
  const [shape_lo, shape_hi] = vec4Pair(axes.map((a) => a.size), 1);
  const [src_stride_lo, src_stride_hi] = vec4Pair(axes.map((a) => a.strides[0]));
  const [dst_stride_lo, dst_stride_hi] = vec4Pair(axes.map((a) => a.strides[1]));
  const [window_start_lo, window_start_hi] = vec4Pair(axes.map((a) => a.window?.[0] ?? 0));
  const [window_end_lo, window_end_hi] = vec4Pair(axes.map((a) => a.window?.[1] ?? a.size));
  dispatchKernel(
    gpu,
    op,
    { shader: 'transform', constants: { PADDED: axes.some((a) => a.window), WORKGROUP_SIZE, RUN: run } },
    {
      src,
      dst,
      params: {
        shape_lo, shape_hi, src_stride_lo, src_stride_hi, dst_stride_lo, dst_stride_hi,
        window_start_lo, window_start_hi, window_end_lo, window_end_hi,
        src_offset: srcOffset, dst_offset: dstOffset, n, rank: axes.length, fill,
      },
    },
    linearGrid(gpu, invocations, WORKGROUP_SIZE),
  );
}

/**
 * A merged walk that is a batch of transposes (dst [batch, cols, rows] from
 * src [batch, rows, cols]), if it is one the tiled kernel can take.
 */
function asBatchedTranspose(gpu: Gpu, walk: readonly StridedAxis[]): { batch: number; rows: number; cols: number } | undefined {
  const axes = coalesceAxes(walk);
  const k = axes.length;
  if (k !== 2 && k !== 3) return undefined;
  // The walk follows dst: its last axis runs along a src column.
  const [across, along] = [axes[k - 2], axes[k - 1]];
  const cols = across.size;
  const rows = along.size;
  if (across.strides[0] !== 1 || along.strides[0] !== cols || across.strides[1] !== rows || along.strides[1] !== 1) return undefined;
  const batch = k === 3 ? axes[0].size : 1;
  if (k === 3 && (axes[0].strides[0] !== rows * cols || axes[0].strides[1] !== rows * cols)) return undefined;
  const max = gpu.limits.maxComputeWorkgroupsPerDimension;
  if (batch > max || Math.ceil(rows / TRANSPOSE_TILE) > max || Math.ceil(cols / TRANSPOSE_TILE) > max) return undefined;
  return { batch, rows, cols };
}

/** y = x with its axes reordered: y.shape[d] = x.shape[dims[d]] (negative dims count from the end). */
export function permute(gpu: Gpu, x: Tensor, dims: readonly number[], out?: Tensor): Tensor {
  const op = 'permute';
  check32Bit(op, x);
  checkArity(op, x, `dims ${shapeString(dims)}`, dims);
  const rank = x.rank;
  const perm = dims.map((d) => (Number.isInteger(d) && d < 0 ? d + rank : d));
  const seen = new Set(perm);
  if (seen.size !== rank || perm.some((d) => !Number.isInteger(d) || d < 0 || d >= rank)) {
    throw new Error(`${op}: dims ${shapeString(dims)} is not a permutation of 0..${rank - 1} for x ${shapeString(x.shape)}`);
  }
  const shape = perm.map((d) => x.shape[d]);
  const y = outputTensor(gpu, op, shape, x.dtype, [x], out);
  const srcStrides = denseStrides(x.shape);
  const dstStrides = denseStrides(shape);
  const walk = perm.map((d, k): StridedAxis => ({ size: x.shape[d], strides: [srcStrides[d], dstStrides[k]] }));
  const transpose = y.size > 0 ? asBatchedTranspose(gpu, walk) : undefined;
  if (transpose) {
    const { batch, rows, cols } = transpose;
    dispatchKernel(gpu, `${op}.tiled`, { shader: 'transpose_tiled' }, { src: x, dst: y, params: { rows, cols } }, [
      Math.ceil(cols / TRANSPOSE_TILE),
      Math.ceil(rows / TRANSPOSE_TILE),
      batch,
    ]);
  } else {
    stridedCopy(gpu, op, x, y, walk, 0, 0);
  }
  return y;
}

/** Python's index normalisation for a positive step: negatives count from the end, then clamp to [0, len]. */
function clampIndex(i: number, len: number): number {
  return Math.min(Math.max(i < 0 ? i + len : i, 0), len);
}

/**
 * x[starts[0]:ends[0]:steps[0], ...] with Python semantics: negative indices
 * count from the end, out-of-range ones clamp, steps are integers ≥ 1 and
 * ±Infinity is allowed as a bound. An axis whose range is empty (start ≥
 * end after normalising) gives an empty result, as in Python and numpy.
 */
export function slice(gpu: Gpu, x: Tensor, starts: readonly number[], ends: readonly number[], steps?: readonly number[], out?: Tensor): Tensor {
  const op = 'slice';
  check32Bit(op, x);
  checkArity(op, x, `starts ${shapeString(starts)}`, starts);
  checkArity(op, x, `ends ${shapeString(ends)}`, ends);
  const step = steps ?? x.shape.map(() => 1);
  checkArity(op, x, `steps ${shapeString(step)}`, step);
  const isBound = (v: number) => Number.isInteger(v) || v === Infinity || v === -Infinity;
  for (let d = 0; d < x.rank; d++) {
    if (!isBound(starts[d]) || !isBound(ends[d])) {
      throw new Error(`${op}: axis ${d}: start ${starts[d]} and end ${ends[d]} must be integers (or ±Infinity)`);
    }
    if (!Number.isInteger(step[d]) || step[d] < 1) throw new Error(`${op}: axis ${d}: step ${step[d]} must be an integer ≥ 1`);
  }
  const begin = x.shape.map((len, d) => clampIndex(starts[d], len));
  const shape = x.shape.map((len, d) => Math.max(0, Math.ceil((clampIndex(ends[d], len) - begin[d]) / step[d])));
  const y = outputTensor(gpu, op, shape, x.dtype, [x], out);
  const srcStrides = denseStrides(x.shape);
  const dstStrides = denseStrides(shape);
  const walk = shape.map((size, d): StridedAxis => ({ size, strides: [srcStrides[d] * step[d], dstStrides[d]] }));
  const srcOffset = begin.reduce((sum, b, d) => sum + b * srcStrides[d], 0);
  stridedCopy(gpu, op, x, y, walk, srcOffset, 0);
  return y;
}

/** The 32-bit word a pad value is stored as in a tensor of `dtype`. */
function fillWord(op: string, value: number, dtype: DType): number {
  if (dtype === 'f32') return new Uint32Array(Float32Array.of(value).buffer)[0];
  const [lo, hi] = dtype === 'i32' ? [-(2 ** 31), 2 ** 31 - 1] : [0, 2 ** 32 - 1];
  if (!Number.isInteger(value) || value < lo || value > hi) throw new Error(`${op}: value ${value} does not fit a ${dtype} tensor`);
  return value >>> 0;
}

/** Constant padding: pads[d] = [before, after] elements on axis d (≥ 0), filled with opts.value (0). */
export function pad(gpu: Gpu, x: Tensor, pads: ReadonlyArray<readonly [number, number]>, opts: PadOptions = {}): Tensor {
  const op = 'pad';
  check32Bit(op, x);
  checkArity(op, x, 'pads', pads);
  pads.forEach((p, d) => {
    if (!Array.isArray(p) || p.length !== 2 || !p.every((v) => Number.isInteger(v) && v >= 0)) {
      throw new Error(`${op}: pads[${d}] is ${JSON.stringify(p)}; expected [before, after], integers ≥ 0`);
    }
  });
  const fill = fillWord(op, opts.value ?? 0, x.dtype);
  const shape = x.shape.map((len, d) => pads[d][0] + len + pads[d][1]);
  const y = outputTensor(gpu, op, shape, x.dtype, [x], opts.out);
  const srcStrides = denseStrides(x.shape);
  const dstStrides = denseStrides(shape);
  const walk = shape.map((size, d): StridedAxis => {
    const [before, after] = pads[d];
    const axis: StridedAxis = { size, strides: [srcStrides[d], dstStrides[d]] };
    return before > 0 || after > 0 ? { ...axis, window: [before, before + x.shape[d]] } : axis;
  });
  stridedCopy(gpu, op, x, y, walk, 0, 0, fill);
  return y;
}

/** Joins tensors along `axis` (negative counts from the end); all other lengths and the dtype must agree. */
export function concat(gpu: Gpu, tensors: readonly Tensor[], axis: number, out?: Tensor): Tensor {
  const op = 'concat';
  if (tensors.length === 0) throw new Error(`${op}: needs at least one tensor, got none`);
  const first = tensors[0];
  const rank = first.rank;
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) {
    throw new Error(`${op}: axis ${axis} is out of range for tensors of rank ${rank} (tensor 0 ${shapeString(first.shape)})`);
  }
  const ax = axis < 0 ? axis + rank : axis;
  tensors.forEach((t, i) => {
    check32Bit(op, t, `tensor ${i}`);
    if (t.dtype !== first.dtype) throw new Error(`${op}: dtypes differ: tensor ${i} ${shapeString(t.shape)} is ${t.dtype}, tensor 0 is ${first.dtype}`);
    if (t.rank !== rank || t.shape.some((len, d) => d !== ax && len !== first.shape[d])) {
      throw new Error(`${op}: tensor ${i} ${shapeString(t.shape)} does not match tensor 0 ${shapeString(first.shape)} off axis ${ax}`);
    }
  });
  const shape = [...first.shape];
  shape[ax] = tensors.reduce((sum, t) => sum + t.shape[ax], 0);
  const y = outputTensor(gpu, op, shape, first.dtype, tensors, out);
  const outer = first.shape.slice(0, ax).reduce((p, v) => p * v, 1);
  const inner = first.shape.slice(ax + 1).reduce((p, v) => p * v, 1);
  let offset = 0;
  for (const t of tensors) {
    // Each input is `outer` contiguous blocks of shape[ax]·inner words; in y they sit shape[ax]·inner apart.
    const block = t.shape[ax] * inner;
    const walk: StridedAxis[] = [
      { size: outer, strides: [block, shape[ax] * inner] },
      { size: block, strides: [1, 1] },
    ];
    stridedCopy(gpu, op, t, y, walk, 0, offset * inner);
    offset += t.shape[ax];
  }
  return y;
}
