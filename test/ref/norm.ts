// Float64 references for normalization, softmax, reductions, argmax and top-k.
// Straightforward loops over row-major indices; nothing shared with the kernels.

type Shape = readonly number[];

const product = (dims: Shape) => dims.reduce((a, b) => a * b, 1);

/** Row-major strides: each axis' stride is the product of the dims after it. */
const strides = (shape: Shape): number[] => shape.map((_, d) => product(shape.slice(d + 1)));

/** Row-major multi-index of flat index i. */
function unravel(i: number, shape: Shape): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return idx;
}

export interface LayerNormRef {
  y: Float64Array;
  mean: Float64Array;
  rstd: Float64Array;
}

/** Normalizes each of `rows` rows of length c (two-pass in float64). */
export function layerNorm(x: ArrayLike<number>, rows: number, c: number, gamma: ArrayLike<number> | undefined, beta: ArrayLike<number> | undefined, eps: number): LayerNormRef {
  const y = new Float64Array(rows * c);
  const mean = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let j = 0; j < c; j++) sum += x[r * c + j];
    const m = sum / c;
    let sq = 0;
    for (let j = 0; j < c; j++) sq += (x[r * c + j] - m) ** 2;
    const rs = 1 / Math.sqrt(sq / c + eps);
    mean[r] = m;
    rstd[r] = rs;
    for (let j = 0; j < c; j++) y[r * c + j] = (x[r * c + j] - m) * rs * (gamma ? gamma[j] : 1) + (beta ? beta[j] : 0);
  }
  return { y, mean, rstd };
}

/** SAM LayerNorm2d on [n, c, h, w]: statistics over c at each (n, h, w). */
export function layerNorm2d(x: ArrayLike<number>, shape: Shape, gamma: ArrayLike<number>, beta: ArrayLike<number>, eps: number): Float64Array {
  const [n, c, h, w] = shape;
  const y = new Float64Array(n * c * h * w);
  const at = (b: number, ch: number, p: number) => (b * c + ch) * h * w + p;
  for (let b = 0; b < n; b++) {
    for (let p = 0; p < h * w; p++) {
      let sum = 0;
      for (let ch = 0; ch < c; ch++) sum += x[at(b, ch, p)];
      const m = sum / c;
      let sq = 0;
      for (let ch = 0; ch < c; ch++) sq += (x[at(b, ch, p)] - m) ** 2;
      const rs = 1 / Math.sqrt(sq / c + eps);
      for (let ch = 0; ch < c; ch++) y[at(b, ch, p)] = (x[at(b, ch, p)] - m) * rs * gamma[ch] + beta[ch];
    }
  }
  return y;
}

/** Softmax along `axis`; a line of only −inf gives zeros. */
export function softmax(x: ArrayLike<number>, shape: Shape, axis: number): Float64Array {
  const st = strides(shape);
  const y = new Float64Array(product(shape));
  const len = shape[axis];
  for (let i = 0; i < y.length; i++) {
    const idx = unravel(i, shape);
    if (idx[axis] !== 0) continue;
    const line = Array.from({ length: len }, (_, r) => i + r * st[axis]);
    const m = Math.max(...line.map((j) => x[j]));
    if (m === -Infinity) continue; // stays zero
    const e = line.map((j) => Math.exp(x[j] - m));
    const s = e.reduce((a, b) => a + b, 0);
    line.forEach((j, r) => (y[j] = e[r] / s));
  }
  return y;
}

/** Sum, mean or max over `axes`; output in row-major order of the kept axes. Also returns Σ|x| per output (for error bounds). */
export function reduce(x: ArrayLike<number>, shape: Shape, axes: readonly number[], kind: 'sum' | 'mean' | 'max'): { y: Float64Array; absSum: Float64Array } {
  const rank = shape.length;
  const reduced = new Set(axes.map((a) => (a < 0 ? a + rank : a)));
  const kept = shape.map((_, d) => d).filter((d) => !reduced.has(d));
  const outShape = kept.map((d) => shape[d]);
  const outStrides = strides(outShape);
  const n = product(outShape);
  const y = new Float64Array(n).fill(kind === 'max' ? -Infinity : 0);
  const absSum = new Float64Array(n);
  const count = product([...reduced].map((d) => shape[d]));
  for (let i = 0; i < product(shape); i++) {
    const idx = unravel(i, shape);
    let o = 0;
    kept.forEach((d, k) => (o += idx[d] * outStrides[k]));
    const v = x[i];
    if (kind === 'max') y[o] = Number.isNaN(v) || Number.isNaN(y[o]) ? NaN : Math.max(y[o], v);
    else y[o] += v;
    absSum[o] += Math.abs(v);
  }
  if (kind === 'mean') for (let o = 0; o < n; o++) y[o] /= count;
  return { y, absSum };
}

/** Positions along `axis` sorted by value descending (NaN first), ties by index. */
function order(values: number[]): number[] {
  return values
    .map((_, i) => i)
    .sort((a, b) => {
      const va = values[a];
      const vb = values[b];
      if (Number.isNaN(va) !== Number.isNaN(vb)) return Number.isNaN(va) ? -1 : 1;
      if (!Number.isNaN(va) && va !== vb) return va > vb ? -1 : 1;
      return a - b;
    });
}

/** argmax along `axis` (ties → lowest index, NaN largest); output over the other axes in row-major order. */
export function argmax(x: ArrayLike<number>, shape: Shape, axis: number): Int32Array {
  const st = strides(shape);
  const out: number[] = [];
  for (let i = 0; i < product(shape); i++) {
    if (unravel(i, shape)[axis] !== 0) continue;
    const line = Array.from({ length: shape[axis] }, (_, r) => x[i + r * st[axis]]);
    out.push(order(line)[0]);
  }
  return Int32Array.from(out);
}

/** Top-k of each of `rows` rows of length c: values and indices, row-major [rows, k]. */
export function topK(x: ArrayLike<number>, rows: number, c: number, k: number): { values: Float64Array; indices: Int32Array } {
  const values = new Float64Array(rows * k);
  const indices = new Int32Array(rows * k);
  for (let r = 0; r < rows; r++) {
    const line = Array.from({ length: c }, (_, j) => x[r * c + j]);
    order(line)
      .slice(0, k)
      .forEach((j, t) => {
        values[r * k + t] = line[j];
        indices[r * k + t] = j;
      });
  }
  return { values, indices };
}
