// Plain CPU references for broadcasting binary ops, permute, slice, pad,
// concat, gather and resize: straightforward loops over multi-indices, in
// float64 (resize's source-index math is done in f32 via Math.fround, since
// PyTorch does it in f32 and the chosen pixel depends on it).

export type Shape = readonly number[];

export function numel(shape: Shape): number {
  return shape.reduce((p, v) => p * v, 1);
}

/** Calls fn with every multi-index of shape, in row-major order. */
function forEachIndex(shape: Shape, fn: (index: number[]) => void): void {
  if (shape.some((d) => d === 0)) return;
  const index = shape.map(() => 0);
  for (;;) {
    fn(index);
    let d = shape.length - 1;
    while (d >= 0) {
      index[d]++;
      if (index[d] < shape[d]) break;
      index[d] = 0;
      d--;
    }
    if (d < 0) return;
  }
}

/** Row-major offset of a multi-index. */
function offsetOf(index: readonly number[], shape: Shape): number {
  let offset = 0;
  for (let d = 0; d < shape.length; d++) offset = offset * shape[d] + index[d];
  return offset;
}

/** numpy broadcasting of two arrays through fn, in float64. */
export function broadcastBinary(a: ArrayLike<number>, aShape: Shape, b: ArrayLike<number>, bShape: Shape, fn: (u: number, v: number) => number): { data: Float64Array; shape: number[] } {
  const rank = Math.max(aShape.length, bShape.length);
  const pa = [...new Array(rank - aShape.length).fill(1), ...aShape];
  const pb = [...new Array(rank - bShape.length).fill(1), ...bShape];
  const shape = pa.map((d, k) => (d === 1 ? pb[k] : d));
  const data = new Float64Array(numel(shape));
  let i = 0;
  forEachIndex(shape, (index) => {
    const ia = offsetOf(index.map((c, k) => (pa[k] === 1 ? 0 : c)), pa);
    const ib = offsetOf(index.map((c, k) => (pb[k] === 1 ? 0 : c)), pb);
    data[i++] = fn(a[ia], b[ib]);
  });
  return { data, shape };
}

/** y[index] = x[index permuted back]: y.shape[k] = shape[dims[k]]. */
export function permute(x: ArrayLike<number>, shape: Shape, dims: readonly number[]): { data: number[]; shape: number[] } {
  const outShape = dims.map((d) => shape[d]);
  const data: number[] = [];
  forEachIndex(outShape, (index) => {
    const src = new Array<number>(shape.length);
    dims.forEach((d, k) => (src[d] = index[k]));
    data.push(x[offsetOf(src, shape)]);
  });
  return { data, shape: outShape };
}

/** Python's range(*slice(start, end, step).indices(len)) for step ≥ 1. */
function sliceIndices(start: number, end: number, step: number, len: number): number[] {
  const norm = (v: number) => {
    if (v < 0) v += len;
    if (v < 0) return 0;
    return v > len ? len : v;
  };
  const out: number[] = [];
  for (let i = norm(start); i < norm(end); i += step) out.push(i);
  return out;
}

export function slice(x: ArrayLike<number>, shape: Shape, starts: readonly number[], ends: readonly number[], steps: readonly number[]): { data: number[]; shape: number[] } {
  const picks = shape.map((len, d) => sliceIndices(starts[d], ends[d], steps[d], len));
  const outShape = picks.map((p) => p.length);
  const data: number[] = [];
  forEachIndex(outShape, (index) => data.push(x[offsetOf(index.map((c, d) => picks[d][c]), shape)]));
  return { data, shape: outShape };
}

export function pad(x: ArrayLike<number>, shape: Shape, pads: ReadonlyArray<readonly [number, number]>, value: number): { data: number[]; shape: number[] } {
  const outShape = shape.map((len, d) => pads[d][0] + len + pads[d][1]);
  const data: number[] = [];
  forEachIndex(outShape, (index) => {
    const src = index.map((c, d) => c - pads[d][0]);
    const inside = src.every((c, d) => c >= 0 && c < shape[d]);
    data.push(inside ? x[offsetOf(src, shape)] : value);
  });
  return { data, shape: outShape };
}

export function concat(parts: ReadonlyArray<{ data: ArrayLike<number>; shape: Shape }>, axis: number): { data: number[]; shape: number[] } {
  const outShape = [...parts[0].shape];
  outShape[axis] = parts.reduce((s, p) => s + p.shape[axis], 0);
  const data: number[] = [];
  forEachIndex(outShape, (index) => {
    let c = index[axis];
    let k = 0;
    while (c >= parts[k].shape[axis]) c -= parts[k++].shape[axis];
    const src = [...index];
    src[axis] = c;
    data.push(parts[k].data[offsetOf(src, parts[k].shape)]);
  });
  return { data, shape: outShape };
}

/** Rows of table [V, ...rest] picked by indices; out-of-range indices give rows of zeros. */
export function gather(table: ArrayLike<number>, tableShape: Shape, indices: ArrayLike<number>): number[] {
  const row = numel(tableShape.slice(1));
  const out: number[] = [];
  for (let k = 0; k < indices.length; k++) {
    const r = indices[k];
    for (let j = 0; j < row; j++) out.push(r >= 0 && r < tableShape[0] ? table[r * row + j] : 0);
  }
  return out;
}

export interface ResizeRefOptions {
  mode: 'nearest' | 'bilinear';
  alignCorners?: boolean;
  /** The scale factor the caller gave for this axis, if any (PyTorch then uses 1/scale). */
  scale?: [number, number];
}

/** PyTorch upsample_nearest2d (CPU): the source index of each output coordinate. */
function nearestSources(inLen: number, outLen: number, scale: number | undefined): number[] {
  const out: number[] = [];
  const ratio = Math.fround(scale !== undefined ? 1 / scale : inLen / outLen);
  for (let dst = 0; dst < outLen; dst++) {
    if (outLen === inLen) out.push(dst);
    else if (outLen === 2 * inLen) out.push(dst >> 1);
    else out.push(Math.min(Math.floor(Math.fround(dst * ratio)), inLen - 1));
  }
  return out;
}

/** PyTorch upsample_bilinear2d (CPU): two source indices and the weight of the second, per output coordinate. */
function linearSources(inLen: number, outLen: number, alignCorners: boolean, scale: number | undefined): Array<[number, number, number]> {
  const f = Math.fround;
  let ratio: number;
  if (alignCorners) ratio = outLen > 1 ? f((inLen - 1) / (outLen - 1)) : 0;
  else ratio = f(scale !== undefined ? 1 / scale : inLen / outLen);
  const out: Array<[number, number, number]> = [];
  for (let dst = 0; dst < outLen; dst++) {
    let src = alignCorners ? f(ratio * dst) : f(f(ratio * f(dst + 0.5)) - 0.5);
    if (src < 0) src = 0;
    const i0 = Math.min(Math.floor(src), inLen - 1);
    const i1 = i0 < inLen - 1 ? i0 + 1 : i0;
    const lambda = Math.min(Math.max(src - i0, 0), 1);
    out.push([i0, i1, lambda]);
  }
  return out;
}

/** F.interpolate of x [N, C, H, W] to [N, C, outH, outW]. */
export function resize(x: ArrayLike<number>, shape: Shape, outH: number, outW: number, opts: ResizeRefOptions): Float64Array {
  const [n, c, h, w] = shape;
  const y = new Float64Array(n * c * outH * outW);
  let i = 0;
  if (opts.mode === 'nearest') {
    const sy = nearestSources(h, outH, opts.scale?.[0]);
    const sx = nearestSources(w, outW, opts.scale?.[1]);
    for (let p = 0; p < n * c; p++) {
      for (let oy = 0; oy < outH; oy++) for (let ox = 0; ox < outW; ox++) y[i++] = x[(p * h + sy[oy]) * w + sx[ox]];
    }
    return y;
  }
  const align = opts.alignCorners ?? false;
  const ly = linearSources(h, outH, align, opts.scale?.[0]);
  const lx = linearSources(w, outW, align, opts.scale?.[1]);
  for (let p = 0; p < n * c; p++) {
    const at = (r: number, col: number) => x[(p * h + r) * w + col];
    for (let oy = 0; oy < outH; oy++) {
      const [y0, y1, wy] = ly[oy];
      for (let ox = 0; ox < outW; ox++) {
        const [x0, x1, wx] = lx[ox];
        const top = (1 - wx) * at(y0, x0) + wx * at(y0, x1);
        const bottom = (1 - wx) * at(y1, x0) + wx * at(y1, x1);
        y[i++] = (1 - wy) * top + wy * bottom;
      }
    }
  }
  return y;
}

/** Adjoint of gather: dTable [vocab, ...rest] with each dy row added at its index (plain accumulation in index order). */
export function gatherBackward(dy: ArrayLike<number>, indices: ArrayLike<number>, vocab: number, row: number): Float64Array {
  const out = new Float64Array(vocab * row);
  for (let k = 0; k < indices.length; k++) {
    const r = indices[k];
    if (r < 0 || r >= vocab) continue;
    for (let j = 0; j < row; j++) out[r * row + j] += dy[k * row + j];
  }
  return out;
}
