// Layer normalization: layerNorm over the last axis (CLIP / ViT tokens) and
// layerNorm2d over the channels of an NCHW tensor (SAM's LayerNorm2d). One
// kernel for both, on the [outer, axis, inner] view; see shaders/layernorm.wgsl.

import type { Gpu } from '../device.js';
import { Tensor, shapeString } from '../tensor.js';
import { dispatchKernel, placeholder } from './program.js';
import { axisGrid, axisTiling, checkF32, type AxisView } from './axis.js';
import { outputTensor } from './strided.js';

export interface LayerNormOptions {
  /** Added to the variance; a positive finite number (default 1e-5, as torch.nn.LayerNorm). */
  eps?: number;
  out?: Tensor;
  /** Receives each row's mean (f32, one element per row), e.g. for a backward pass. */
  mean?: Tensor;
  /** Receives each row's 1/sqrt(var + eps) (f32, one element per row). */
  rstd?: Tensor;
}

function checkAffine(op: string, name: string, t: Tensor | undefined, channels: number, x: Tensor): void {
  if (!t) return;
  checkF32(op, name, t);
  if (t.rank !== 1 || t.shape[0] !== channels) {
    throw new Error(`${op}: ${name} must have shape [${channels}] to match x ${shapeString(x.shape)}, got ${shapeString(t.shape)}`);
  }
}

function checkEps(op: string, eps: number): void {
  if (typeof eps !== 'number' || !Number.isFinite(eps) || eps <= 0) throw new Error(`${op}: eps must be a positive finite number, got ${eps}`);
}

function checkStats(op: string, name: string, t: Tensor | undefined, rows: number, x: Tensor): void {
  if (!t) return;
  if (t.dtype !== 'f32' || t.size !== rows) {
    throw new Error(`${op}: ${name} must be f32 with ${rows} elements (one per row of x ${shapeString(x.shape)}), got ${t.dtype} ${shapeString(t.shape)}`);
  }
  if (t.buffer === x.buffer) throw new Error(`${op}: ${name} must not share its buffer with x`);
}

interface NormalizeArgs {
  view: AxisView;
  gamma?: Tensor;
  beta?: Tensor;
  eps: number;
  y: Tensor;
  mean?: Tensor;
  rstd?: Tensor;
}

function normalize(gpu: Gpu, op: string, x: Tensor, a: NormalizeArgs): void {
  const columns = a.view.outer * a.view.inner;
  if (columns === 0) return;
  const tiling = axisTiling(gpu, a.view);
  const storeStats = a.mean !== undefined || a.rstd !== undefined;
  // Writable bindings may not alias, so each stat the caller skipped gets its own scratch buffer.
  const scratch = (given: Tensor | undefined) => given ?? Tensor.empty(gpu, [storeStats ? columns : 1]);
  const mean = scratch(a.mean);
  const rstd = scratch(a.rstd);
  dispatchKernel(
    gpu,
    op,
    { shader: 'layernorm', constants: { ...tiling, HAS_GAMMA: a.gamma !== undefined, HAS_BETA: a.beta !== undefined, STORE_STATS: storeStats } },
    {
      x,
      gamma: a.gamma ?? placeholder(gpu),
      beta: a.beta ?? placeholder(gpu),
      y: a.y,
      mean,
      rstd,
      params: { columns, axis: a.view.axis, inner: a.view.inner, eps: a.eps },
    },
    axisGrid(gpu, columns, tiling),
  );
  if (mean !== a.mean) mean.dispose();
  if (rstd !== a.rstd) rstd.dispose();
}

/**
 * y = (x − mean) / sqrt(var + eps) · gamma + beta over the last axis of x
 * [..., C] (biased variance, as PyTorch). gamma and beta [C] are optional.
 */
export function layerNorm(gpu: Gpu, x: Tensor, gamma?: Tensor, beta?: Tensor, opts: LayerNormOptions = {}): Tensor {
  const op = 'layerNorm';
  checkF32(op, 'x', x);
  if (x.rank === 0 || x.shape[x.rank - 1] === 0) throw new Error(`${op}: x must have a non-empty last axis, got ${shapeString(x.shape)}`);
  const channels = x.shape[x.rank - 1];
  const rows = x.size / channels;
  checkAffine(op, 'gamma', gamma, channels, x);
  checkAffine(op, 'beta', beta, channels, x);
  const eps = opts.eps ?? 1e-5;
  checkEps(op, eps);
  checkStats(op, 'mean', opts.mean, rows, x);
  checkStats(op, 'rstd', opts.rstd, rows, x);
  if (opts.mean && opts.rstd && opts.mean.buffer === opts.rstd.buffer) throw new Error(`${op}: mean and rstd must be different tensors`);
  const y = outputTensor(gpu, op, x.shape, 'f32', [x, ...[gamma, beta, opts.mean, opts.rstd].filter((t): t is Tensor => t !== undefined)], opts.out);
  normalize(gpu, op, x, { view: { outer: rows, axis: channels, inner: 1 }, gamma, beta, eps, y, mean: opts.mean, rstd: opts.rstd });
  return y;
}

/**
 * SAM's LayerNorm2d: normalizes x [N, C, H, W] over C at every (n, h, w),
 * then y = x̂ · gamma[c] + beta[c]. eps defaults to 1e-6 as in SAM.
 */
export function layerNorm2d(gpu: Gpu, x: Tensor, gamma: Tensor, beta: Tensor, opts: Pick<LayerNormOptions, 'eps' | 'out'> = {}): Tensor {
  const op = 'layerNorm2d';
  checkF32(op, 'x', x);
  if (x.rank !== 4) throw new Error(`${op}: x must be [N, C, H, W] (rank 4), got ${shapeString(x.shape)}`);
  const [n, channels, h, w] = x.shape;
  if (channels === 0) throw new Error(`${op}: x must have at least one channel, got ${shapeString(x.shape)}`);
  checkAffine(op, 'gamma', gamma, channels, x);
  checkAffine(op, 'beta', beta, channels, x);
  const eps = opts.eps ?? 1e-6;
  checkEps(op, eps);
  const y = outputTensor(gpu, op, x.shape, 'f32', [x, gamma, beta], opts.out);
  normalize(gpu, op, x, { view: { outer: n, axis: channels, inner: h * w }, gamma, beta, eps, y });
  return y;
}
