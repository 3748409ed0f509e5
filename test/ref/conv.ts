// Float64 references for the convolution family: plain nested loops over
// NCHW arrays, following PyTorch's definitions. The transposed convolution is
// written in scatter form (each input pixel adds into every output it
// touches), the opposite of the kernel's gather, so they share no shortcut.

import { erf } from './activations.js';

export type Shape4 = [number, number, number, number];

/** One conv2d test case (test/conv.test.ts, test/conv-f16.test.ts): shapes and the optional geometry, bias and fused activation. */
export interface ConvCase {
  name: string;
  x: Shape4;
  w: Shape4;
  bias?: boolean;
  stride?: [number, number];
  padding?: [number, number];
  dilation?: [number, number];
  groups?: number;
  activation?: 'none' | 'relu' | 'gelu';
}

export interface RefResult {
  data: Float64Array;
  shape: Shape4;
}

export interface RefConvOptions {
  bias?: ArrayLike<number>;
  stride?: [number, number];
  padding?: [number, number];
  dilation?: [number, number];
  groups?: number;
  activation?: 'none' | 'relu' | 'gelu';
}

export function conv2d(x: ArrayLike<number>, xs: Shape4, w: ArrayLike<number>, ws: Shape4, o: RefConvOptions = {}): RefResult {
  const [N, C, H, W] = xs;
  const [O, Cg, KH, KW] = ws;
  const [sh, sw] = o.stride ?? [1, 1];
  const [ph, pw] = o.padding ?? [0, 0];
  const [dh, dw] = o.dilation ?? [1, 1];
  const groups = o.groups ?? 1;
  const Og = O / groups;
  const Ho = Math.floor((H + 2 * ph - dh * (KH - 1) - 1) / sh) + 1;
  const Wo = Math.floor((W + 2 * pw - dw * (KW - 1) - 1) / sw) + 1;
  const y = new Float64Array(N * O * Ho * Wo);
  for (let n = 0; n < N; n++) {
    for (let oc = 0; oc < O; oc++) {
      const g = Math.floor(oc / Og);
      for (let oh = 0; oh < Ho; oh++) {
        for (let ow = 0; ow < Wo; ow++) {
          let sum = o.bias ? o.bias[oc] : 0;
          for (let c = 0; c < Cg; c++) {
            for (let kh = 0; kh < KH; kh++) {
              for (let kw = 0; kw < KW; kw++) {
                const ih = oh * sh - ph + kh * dh;
                const iw = ow * sw - pw + kw * dw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                sum += x[((n * C + g * Cg + c) * H + ih) * W + iw] * w[((oc * Cg + c) * KH + kh) * KW + kw];
              }
            }
          }
          if (o.activation === 'relu') sum = Math.max(sum, 0);
          else if (o.activation === 'gelu') sum = 0.5 * sum * (1 + erf(sum / Math.SQRT2));
          y[((n * O + oc) * Ho + oh) * Wo + ow] = sum;
        }
      }
    }
  }
  return { data: y, shape: [N, O, Ho, Wo] };
}

export interface RefConvTransposeOptions {
  bias?: ArrayLike<number>;
  stride?: [number, number];
  padding?: [number, number];
  outputPadding?: [number, number];
  dilation?: [number, number];
  groups?: number;
}

/** Weights [C, O/groups, KH, KW]. */
export function convTranspose2d(x: ArrayLike<number>, xs: Shape4, w: ArrayLike<number>, ws: Shape4, o: RefConvTransposeOptions = {}): RefResult {
  const [N, C, H, W] = xs;
  const [, Og, KH, KW] = ws;
  const [sh, sw] = o.stride ?? [1, 1];
  const [ph, pw] = o.padding ?? [0, 0];
  const [oph, opw] = o.outputPadding ?? [0, 0];
  const [dh, dw] = o.dilation ?? [1, 1];
  const groups = o.groups ?? 1;
  const Cg = C / groups;
  const O = Og * groups;
  const Ho = (H - 1) * sh - 2 * ph + dh * (KH - 1) + oph + 1;
  const Wo = (W - 1) * sw - 2 * pw + dw * (KW - 1) + opw + 1;
  const y = new Float64Array(N * O * Ho * Wo);
  for (let n = 0; n < N; n++) {
    for (let oc = 0; oc < O; oc++) {
      for (let i = 0; i < Ho * Wo; i++) y[(n * O + oc) * Ho * Wo + i] = o.bias ? o.bias[oc] : 0;
    }
    for (let c = 0; c < C; c++) {
      const g = Math.floor(c / Cg);
      for (let ih = 0; ih < H; ih++) {
        for (let iw = 0; iw < W; iw++) {
          const v = x[((n * C + c) * H + ih) * W + iw];
          for (let og = 0; og < Og; og++) {
            const oc = g * Og + og;
            for (let kh = 0; kh < KH; kh++) {
              for (let kw = 0; kw < KW; kw++) {
                const oh = ih * sh - ph + kh * dh;
                const ow = iw * sw - pw + kw * dw;
                if (oh < 0 || oh >= Ho || ow < 0 || ow >= Wo) continue;
                y[((n * O + oc) * Ho + oh) * Wo + ow] += v * w[((c * Og + og) * KH + kh) * KW + kw];
              }
            }
          }
        }
      }
    }
  }
  return { data: y, shape: [N, O, Ho, Wo] };
}

export interface RefMaxPoolOptions {
  kernel: [number, number];
  stride?: [number, number];
  padding?: [number, number];
  dilation?: [number, number];
  ceilMode?: boolean;
}

/** PyTorch pooling_output_shape. */
export function poolOutputSize(size: number, k: number, s: number, p: number, d: number, ceilMode: boolean): number {
  const span = size + 2 * p - d * (k - 1) - 1;
  let out = (ceilMode ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
  // The last window must start inside the input or the left padding.
  if (ceilMode && (out - 1) * s >= size + p) out -= 1;
  return out;
}

export function maxPool2d(x: ArrayLike<number>, xs: Shape4, o: RefMaxPoolOptions): RefResult {
  const [N, C, H, W] = xs;
  const [kh_, kw_] = o.kernel;
  const [sh, sw] = o.stride ?? o.kernel;
  const [ph, pw] = o.padding ?? [0, 0];
  const [dh, dw] = o.dilation ?? [1, 1];
  const Ho = poolOutputSize(H, kh_, sh, ph, dh, o.ceilMode ?? false);
  const Wo = poolOutputSize(W, kw_, sw, pw, dw, o.ceilMode ?? false);
  const y = new Float64Array(N * C * Ho * Wo);
  for (let nc = 0; nc < N * C; nc++) {
    for (let oh = 0; oh < Ho; oh++) {
      for (let ow = 0; ow < Wo; ow++) {
        let best = -Infinity;
        for (let kh = 0; kh < kh_; kh++) {
          for (let kw = 0; kw < kw_; kw++) {
            const ih = oh * sh - ph + kh * dh;
            const iw = ow * sw - pw + kw * dw;
            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
            const v = x[(nc * H + ih) * W + iw];
            // NaN propagates: once best is NaN, no comparison replaces it.
            if (Number.isNaN(v) || v > best) best = v;
          }
        }
        y[(nc * Ho + oh) * Wo + ow] = best;
      }
    }
  }
  return { data: y, shape: [N, C, Ho, Wo] };
}
