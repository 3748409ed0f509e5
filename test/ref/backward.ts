// Float64 references for the backward kernels: analytic gradients written
// from the textbook formulas, plus central finite differences of a scalar
// function, which check those formulas (and the kernels) independently.

import * as act from './activations.js';
import { layerNorm } from './norm.js';

/**
 * Central differences of a scalar function f at x: (f(x + h eᵢ) − f(x − h eᵢ)) / 2h
 * with h = relStep · max(1, |xᵢ|). In float64 with relStep 1e-6 the
 * truncation error is O(h²) ≈ 1e-12 and the rounding error ≈ 1e-16 / h ≈ 1e-10
 * (relative to f's scale), far below the f32 error of the kernels under test.
 */
export function centralDifference(f: (x: Float64Array) => number, x: ArrayLike<number>, relStep = 1e-6): Float64Array {
  const at = Float64Array.from(x);
  const grad = new Float64Array(at.length);
  for (let i = 0; i < at.length; i++) {
    const h = relStep * Math.max(1, Math.abs(at[i]));
    const saved = at[i];
    at[i] = saved + h;
    const up = f(at);
    at[i] = saved - h;
    const down = f(at);
    at[i] = saved;
    grad[i] = (up - down) / (2 * h);
  }
  return grad;
}

/** Σ a·b. */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Derivatives of the activations of test/ref/activations.ts. */
export const activationGrad = {
  relu: (x: number) => (x > 0 ? 1 : 0),
  gelu: (x: number) => 0.5 * (1 + act.erf(x / Math.SQRT2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI),
  geluTanh: (x: number) => {
    const k = Math.sqrt(2 / Math.PI);
    const t = Math.tanh(k * (x + 0.044715 * x ** 3));
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x);
  },
  quickGelu: (x: number) => {
    const s = act.sigmoid(1.702 * x);
    return s + 1.702 * x * s * (1 - s);
  },
  sigmoid: (x: number) => act.sigmoid(x) * (1 - act.sigmoid(x)),
};

export interface LayerNormGrads {
  dx: Float64Array;
  dgamma: Float64Array;
  dbeta: Float64Array;
}

/**
 * Gradients of y = (x − μ)·σ⁻¹·γ + β over rows of length c, given dy, with
 * μ and σ⁻¹ = 1/sqrt(var + eps) recomputed from x in float64 (by norm.ts's layerNorm):
 * dx = σ⁻¹ (g − mean(g) − x̂ mean(g x̂)) for g = dy·γ.
 */
export function layerNormBackward(dy: ArrayLike<number>, x: ArrayLike<number>, rows: number, c: number, gamma: ArrayLike<number> | undefined, eps: number): LayerNormGrads {
  const dx = new Float64Array(rows * c);
  const dgamma = new Float64Array(c);
  const dbeta = new Float64Array(c);
  const { mean, rstd } = layerNorm(x, rows, c, undefined, undefined, eps);
  for (let r = 0; r < rows; r++) {
    const mu = mean[r];
    const rs = rstd[r];
    const xhat = Array.from({ length: c }, (_, j) => (x[r * c + j] - mu) * rs);
    const g = Array.from({ length: c }, (_, j) => dy[r * c + j] * (gamma ? gamma[j] : 1));
    const meanG = g.reduce((a, b) => a + b, 0) / c;
    const meanGX = dot(g, xhat) / c;
    for (let j = 0; j < c; j++) {
      dx[r * c + j] = rs * (g[j] - meanG - xhat[j] * meanGX);
      dgamma[j] += dy[r * c + j] * xhat[j];
      dbeta[j] += dy[r * c + j];
    }
  }
  return { dx, dgamma, dbeta };
}

/** Per-row softmax cross-entropy with label smoothing ε (NaN for a label outside [0, k)). */
export function crossEntropyRows(logits: ArrayLike<number>, labels: ArrayLike<number>, rows: number, k: number, eps: number): Float64Array {
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const label = labels[r];
    if (!(Number.isInteger(label) && label >= 0 && label < k)) {
      out[r] = NaN;
      continue;
    }
    let m = -Infinity;
    for (let j = 0; j < k; j++) m = Math.max(m, logits[r * k + j]);
    let s = 0;
    for (let j = 0; j < k; j++) s += Math.exp(logits[r * k + j] - m);
    const logp = (j: number) => logits[r * k + j] - m - Math.log(s);
    let uniform = 0;
    for (let j = 0; j < k; j++) uniform -= logp(j) / k;
    out[r] = (1 - eps) * -logp(label) + eps * uniform;
  }
  return out;
}

/** d(Σ rows' losses · scale)/d logits = (softmax − ((1 − ε)·onehot + ε/k)) · scale. */
export function crossEntropyGrad(logits: ArrayLike<number>, labels: ArrayLike<number>, rows: number, k: number, eps: number, scale: number): Float64Array {
  const d = new Float64Array(rows * k);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let j = 0; j < k; j++) m = Math.max(m, logits[r * k + j]);
    let s = 0;
    for (let j = 0; j < k; j++) s += Math.exp(logits[r * k + j] - m);
    for (let j = 0; j < k; j++) {
      const target = (j === labels[r] ? 1 - eps : 0) + eps / k;
      d[r * k + j] = (Math.exp(logits[r * k + j] - m) / s - target) * scale;
    }
  }
  return d;
}

/** y = x / max(‖x‖₂, eps) per row of length c. */
export function l2Normalize(x: ArrayLike<number>, rows: number, c: number, eps: number): Float64Array {
  const y = new Float64Array(rows * c);
  for (let r = 0; r < rows; r++) {
    let sq = 0;
    for (let j = 0; j < c; j++) sq += x[r * c + j] ** 2;
    const d = Math.max(Math.sqrt(sq), eps);
    for (let j = 0; j < c; j++) y[r * c + j] = x[r * c + j] / d;
  }
  return y;
}

/** dx of l2Normalize: (dy − y (y·dy)) / ‖x‖ when ‖x‖ > eps, else dy / eps. */
export function l2NormalizeBackward(dy: ArrayLike<number>, x: ArrayLike<number>, rows: number, c: number, eps: number): Float64Array {
  const dx = new Float64Array(rows * c);
  for (let r = 0; r < rows; r++) {
    const xr = Array.from({ length: c }, (_, j) => x[r * c + j]);
    const dyr = Array.from({ length: c }, (_, j) => dy[r * c + j]);
    const n = Math.sqrt(dot(xr, xr));
    if (n > eps) {
      const yDotDy = dot(xr, dyr) / n;
      for (let j = 0; j < c; j++) dx[r * c + j] = (dyr[j] - (xr[j] / n) * yDotDy) / n;
    } else {
      for (let j = 0; j < c; j++) dx[r * c + j] = dyr[j] / eps;
    }
  }
  return dx;
}
