// Convolution family, NCHW f32 with PyTorch weight layouts and output-size
// rules: conv2d (implicit GEMM — tiled on GPUs, direct on CPU adapters — or
// a depthwise kernel when each group has one input channel), convTranspose2d
// (phase-decomposed gather GEMM) and maxPool2d. Kernel geometry (size, stride, padding, dilation) specialises
// the pipelines through override constants; tensor sizes go in uniforms.
// The convolutions' weights may be f16 (issue 19: models that store their
// weights as halves): read as halves and widened to f32, so the products and
// sums stay f32 (W_F16, shaders/lib/conv_weight.wgsl); everything else is f32.
// Over 500 lines as one job: the op family's validation, variants and dispatch.

import type { Gpu } from '../device.js';
import { Tensor, shapeString, type Shape } from '../tensor.js';
import { ACTIVATIONS, activationCode, type Activation } from './activation.js';
import { dispatchKernel, linearGrid, placeholder } from './program.js';
import { checkValues, compareVariantOutput, sweepVariants, tunedVariant, type SweepResult } from './tune.js';

export type ConvPair = number | readonly [number, number];

export type ConvActivation = Activation;

/**
 * Every conv2d GEMM variant, the tiled ones (GPU default) first, then the
 * direct ones (CPU-adapter default).
 * - `gemm` entry (GPUs): output tile per 16×16-thread workgroup, rows (output
 *   pixels) × columns (output channels), TM × TN outputs per thread.
 * - `direct` entry (CPU adapters): register block per invocation, `direct-<pixels>x<channels>`
 *   (4·PX4 adjacent pixels of one output row × CN output channels).
 */
export const CONV_TILE_VARIANTS = {
  '64x64': { TM: 4, TN: 4 },
  '64x32': { TM: 4, TN: 2 },
  '32x32': { TM: 2, TN: 2 },
  '64x16': { TM: 4, TN: 1 },
  'direct-8x16': { PX4: 2, CN: 16 },
  'direct-16x8': { PX4: 4, CN: 8 },
  'direct-8x8': { PX4: 2, CN: 8 },
  'direct-4x16': { PX4: 1, CN: 16 },
} as const;
export type ConvTileVariant = keyof typeof CONV_TILE_VARIANTS;
type DirectBlock = Extract<ConvTileVariant, `direct-${string}`>;
type GemmTile = Exclude<ConvTileVariant, DirectBlock>;

function isDirect(variant: ConvTileVariant): variant is DirectBlock {
  return variant.startsWith('direct-');
}

/** The options every op of the family takes: its window's steps (each a number for both dimensions or [h, w]) and an output tensor. */
interface WindowOptions {
  stride?: ConvPair;
  padding?: ConvPair;
  dilation?: ConvPair;
  /** Receives the output (f32, of the op's output shape). */
  out?: Tensor;
}

export interface Conv2dOptions extends WindowOptions {
  /** [O] */
  bias?: Tensor;
  groups?: number;
  activation?: ConvActivation;
  /** Forces a GEMM variant (otherwise the tuned or default choice); ignored on the depthwise (one input channel per group) path. */
  variant?: ConvTileVariant;
}

export interface ConvTranspose2dOptions extends WindowOptions {
  /** [O] */
  bias?: Tensor;
  /** Extra rows/columns on the bottom/right of the output; each below max(stride, dilation). */
  outputPadding?: ConvPair;
  groups?: number;
}

export interface MaxPool2dOptions extends WindowOptions {
  kernel: ConvPair;
  /** Defaults to the kernel size. */
  stride?: ConvPair;
  /** Implicit −inf border; at most half the kernel size. */
  padding?: ConvPair;
  /** Round the output size up, keeping the last window starting inside the input or its left padding. */
  ceilMode?: boolean;
}

const WORKGROUP_SIZE = 256;
const GEMM_WG = 16;
// Invocations per `direct` workgroup: one SIMD vector of llvmpipe's 256-bit lanes.
const DIRECT_WG = 8;

/** A positive (or, with min 0, non-negative) integer pair from a number or a 2-tuple. */
function pair(op: string, name: string, value: ConvPair | undefined, fallback: readonly [number, number], min: 0 | 1): [number, number] {
  if (value === undefined) return [fallback[0], fallback[1]];
  const p: number[] = typeof value === 'number' ? [value, value] : Array.isArray(value) ? [...value] : [];
  const what = min === 1 ? 'positive integers' : 'non-negative integers';
  if (p.length !== 2 || p.some((v) => !Number.isInteger(v) || v < min)) {
    throw new Error(`${op}: ${name} must be ${what} (a number or [h, w]), got ${JSON.stringify(value)}`);
  }
  return [p[0], p[1]];
}

/** The stride, padding and dilation of a sliding window, checked; `defaultStride` when none is given. */
function windowPairs(op: string, opts: { stride?: ConvPair; padding?: ConvPair; dilation?: ConvPair }, defaultStride: readonly [number, number] = [1, 1]): Window {
  return {
    stride: pair(op, 'stride', opts.stride, defaultStride, 1),
    padding: pair(op, 'padding', opts.padding, [0, 0], 0),
    dilation: pair(op, 'dilation', opts.dilation, [1, 1], 1),
  };
}

interface Window {
  stride: [number, number];
  padding: [number, number];
  dilation: [number, number];
}

/** The override constants of a kernel KH × KW sliding with `win` (shaders conv2d, conv_transpose2d, maxpool2d). */
function windowConstants(KH: number, KW: number, win: Window) {
  const { stride, padding, dilation } = win;
  return { KH, KW, SH: stride[0], SW: stride[1], PH: padding[0], PW: padding[1], DH: dilation[0], DW: dilation[1] };
}

/** PyTorch's output size of a window k at stride s, padding p, dilation d: floor (or in ceil mode, ceil) division. */
function windowOutputSize(size: number, k: number, s: number, p: number, d: number, ceilMode = false): number {
  return Math.floor((size + 2 * p - d * (k - 1) - 1 + (ceilMode ? s - 1 : 0)) / s) + 1;
}

/** `groups` (default 1), checked, and dividing the input channels C of `x`. */
function checkGroups(op: string, groups: number | undefined, C: number, x: Tensor): number {
  const g = groups ?? 1;
  if (!Number.isInteger(g) || g < 1) throw new Error(`${op}: groups must be a positive integer, got ${groups}`);
  if (C % g !== 0) throw new Error(`${op}: input channels C=${C} of input ${shapeString(x.shape)} are not divisible by groups=${g}`);
  return g;
}

function checkKernelSize(op: string, w: Tensor, KH: number, KW: number): void {
  if (KH < 1 || KW < 1) throw new Error(`${op}: kernel size must be positive, weight is ${shapeString(w.shape)}`);
}

function checkF32Rank4(op: string, name: string, t: Tensor, layout: string): void {
  if (t.dtype !== 'f32') throw new Error(`${op}: ${name} must be f32, got ${t.dtype}`);
  if (t.rank !== 4) throw new Error(`${op}: ${name} must be rank 4 ${layout}, got ${shapeString(t.shape)} (rank ${t.rank})`);
}

/** A weight operand: f32, or f16 halves that the kernel widens (W_F16). */
function checkWeight(op: string, w: Tensor, rank: number, layout: string): void {
  if (w.dtype !== 'f32' && w.dtype !== 'f16') throw new Error(`${op}: weight must be f32 or f16, got ${w.dtype}`);
  if (w.rank !== rank) throw new Error(`${op}: weight must be rank ${rank} ${layout}, got ${shapeString(w.shape)} (rank ${w.rank})`);
}

function checkBias(op: string, bias: Tensor | undefined, O: number): void {
  if (!bias) return;
  if (bias.dtype !== 'f32' || bias.rank !== 1 || bias.shape[0] !== O) {
    throw new Error(`${op}: bias must be f32 [${O}] (one per output channel), got ${bias.dtype} ${shapeString(bias.shape)}`);
  }
}

/** Fails before allocating anything when a binding would exceed the device limit. */
function checkBindingSize(gpu: Gpu, op: string, name: string, shape: Shape, dtype: 'f32' | 'f16' = 'f32'): void {
  const bytes = shape.reduce((a, b) => a * b, dtype === 'f16' ? 2 : 4);
  const max = gpu.limits.maxStorageBufferBindingSize;
  if (bytes > max) {
    throw new Error(`${op}: ${name} ${shapeString(shape)} ${dtype} would be ${bytes} bytes, over the device's maxStorageBufferBindingSize of ${max} bytes`);
  }
}

function outputTensor(gpu: Gpu, op: string, shape: Shape, out: Tensor | undefined): Tensor {
  checkBindingSize(gpu, op, 'output', shape);
  if (!out) return Tensor.empty(gpu, shape);
  if (out.dtype !== 'f32' || shapeString(out.shape) !== shapeString(shape)) {
    throw new Error(`${op}: out must be f32 ${shapeString(shape)}, got ${out.dtype} ${shapeString(out.shape)}`);
  }
  return out;
}

function checkOutputSize(op: string, Ho: number, Wo: number, inputs: string): void {
  if (Ho <= 0 || Wo <= 0) throw new Error(`${op}: output size Ho=${Ho}, Wo=${Wo} is not positive (${inputs})`);
}

/** Tile for a GEMM with `M` rows and `Og` columns per group: narrow columns for few channels, short rows when there would be few workgroups. */
function heuristicTile(M: number, Og: number, groups: number): GemmTile {
  if (Og <= 16) return '64x16';
  if (Og <= 32) return '64x32';
  const workgroups = Math.ceil(M / 64) * Math.ceil(Og / 64) * groups;
  return workgroups < 32 ? '32x32' : '64x64';
}

/** CPU adapters take the direct kernel (workgroup memory and barriers are slow there), GPUs the tiled one. */
function defaultVariant(gpu: Gpu, M: number, Og: number, groups: number): ConvTileVariant {
  // 8×8 ran as fast as 8×16 on lavapipe for 3×3 64→64 at 56×56 and compiles in half the time;
  // from 64 output channels per group on large maps 8×16 is 8–20% faster (MobileSAM's stem and
  // neck: 3×3 32→64 at 512² stride 2, 3×3 256→256 at 64²).
  if (gpu.adapter.isCpu) return Og >= 64 && M >= 4096 ? 'direct-8x16' : 'direct-8x8';
  return heuristicTile(M, Og, groups);
}

/** The variants worth timing on this adapter: only the direct ones on CPU adapters. */
function candidateVariants(gpu: Gpu): ConvTileVariant[] {
  return (Object.keys(CONV_TILE_VARIANTS) as ConvTileVariant[]).filter((v) => isDirect(v) === gpu.adapter.isCpu);
}

/** Problem class for tuning: the column-tile need and whether the row count is small. */
function tuneKey(M: number, Og: number): string {
  const cols = Og <= 16 ? 'o16' : Og <= 32 ? 'o32' : 'o64';
  return `conv2d.gemm|${cols}|${M < 4096 ? 'm-small' : 'm-large'}`;
}

interface Conv2dPlan {
  N: number;
  C: number;
  H: number;
  W: number;
  O: number;
  KH: number;
  KW: number;
  Ho: number;
  Wo: number;
  groups: number;
  stride: [number, number];
  padding: [number, number];
  dilation: [number, number];
  activation: ConvActivation;
}

function planConv2d(op: string, x: Tensor, w: Tensor, opts: Conv2dOptions): Conv2dPlan {
  checkF32Rank4(op, 'input', x, '[N, C, H, W]');
  checkWeight(op, w, 4, '[O, C/groups, kH, kW]');
  const [N, C, H, W] = x.shape;
  const [O, Cw, KH, KW] = w.shape;
  const groups = checkGroups(op, opts.groups, C, x);
  const { stride, padding, dilation } = windowPairs(op, opts);
  const activation = opts.activation ?? 'none';
  activationCode(op, activation);
  if (O % groups !== 0) throw new Error(`${op}: output channels O=${O} of weight ${shapeString(w.shape)} are not divisible by groups=${groups}`);
  if (Cw !== C / groups) {
    throw new Error(`${op}: weight ${shapeString(w.shape)} has ${Cw} input channels per group, but input ${shapeString(x.shape)} with groups=${groups} needs C/groups=${C / groups}`);
  }
  checkKernelSize(op, w, KH, KW);
  checkBias(op, opts.bias, O);
  const Ho = windowOutputSize(H, KH, stride[0], padding[0], dilation[0]);
  const Wo = windowOutputSize(W, KW, stride[1], padding[1], dilation[1]);
  checkOutputSize(op, Ho, Wo, `input ${H}×${W}, kernel ${KH}×${KW}, stride ${stride}, padding ${padding}, dilation ${dilation}`);
  return { N, C, H, W, O, KH, KW, Ho, Wo, groups, stride, padding, dilation, activation };
}

/**
 * PyTorch Conv2d: y[n, o] = bias[o] + Σ w[o, c, kh, kw] · x[n, g·Cg + c, oh·s − p + kh·d, ...]
 * over the group's channels, then the activation. Ho = ⌊(H + 2p − d(kH − 1) − 1)/s⌋ + 1.
 */
export function conv2d(gpu: Gpu, x: Tensor, w: Tensor, opts: Conv2dOptions = {}): Tensor {
  const op = 'conv2d';
  const p = planConv2d(op, x, w, opts);
  if (opts.variant !== undefined && !(opts.variant in CONV_TILE_VARIANTS)) {
    throw new Error(`${op}: unknown variant '${opts.variant}' (known: ${Object.keys(CONV_TILE_VARIANTS).join(', ')})`);
  }
  checkBindingSize(gpu, op, 'input', x.shape);
  checkBindingSize(gpu, op, 'weight', w.shape, w.dtype as 'f32' | 'f16'); // checkWeight allowed only these
  const y = outputTensor(gpu, op, [p.N, p.O, p.Ho, p.Wo], opts.out);
  const Cg = p.C / p.groups;
  const Og = p.O / p.groups;
  const M = p.N * p.Ho * p.Wo;
  const geometry = {
    ...windowConstants(p.KH, p.KW, p),
    HAS_BIAS: opts.bias !== undefined,
    ACTIVATION: ACTIVATIONS[p.activation],
    W_F16: w.dtype === 'f16',
  };
  const sizes = { N: p.N, C: p.C, H: p.H, W: p.W, O: p.O, Ho: p.Ho, Wo: p.Wo, Cg, Og };
  const bias = opts.bias ?? placeholder(gpu);
  if (Cg === 1) {
    const constants = { ...geometry, WORKGROUP_SIZE };
    dispatchKernel(gpu, op, { shader: 'conv2d', entry: 'depthwise', constants }, { x, w, bias, y, params: { ...sizes, tilesN: 0 } }, linearGrid(gpu, y.size, WORKGROUP_SIZE));
    return y;
  }
  // A tuned choice from an older build may name a variant that no longer exists.
  const tuned = tunedVariant(gpu, tuneKey(M, Og));
  const variant = opts.variant ?? (tuned !== undefined && tuned in CONV_TILE_VARIANTS ? (tuned as ConvTileVariant) : defaultVariant(gpu, M, Og, p.groups));
  if (isDirect(variant)) {
    const block = CONV_TILE_VARIANTS[variant];
    const tilesN = Math.ceil(Og / block.CN);
    const rowBlocks = p.N * p.Ho * Math.ceil(p.Wo / (4 * block.PX4));
    const [gx, gz] = linearGrid(gpu, rowBlocks, DIRECT_WG);
    const constants = { ...geometry, ...block, DIRECT_WG };
    dispatchKernel(gpu, op, { shader: 'conv2d', entry: 'direct', constants }, { x, w, bias, y, params: { ...sizes, tilesN } }, [gx, p.groups * tilesN, gz]);
    return y;
  }
  const tile = CONV_TILE_VARIANTS[variant];
  const tilesN = Math.ceil(Og / (GEMM_WG * tile.TN));
  const [gx, gz] = linearGrid(gpu, M, GEMM_WG * tile.TM);
  dispatchKernel(gpu, op, { shader: 'conv2d', entry: 'gemm', constants: { ...geometry, ...tile } }, { x, w, bias, y, params: { ...sizes, tilesN } }, [gx, p.groups * tilesN, gz]);
  return y;
}

/**
 * Times the GEMM variants for this adapter (the direct ones on CPU adapters,
 * the tiled ones otherwise) on this problem and remembers the fastest for its
 * problem class on this device (conv2d then uses it when no variant is forced).
 */
export async function tuneConv2d(gpu: Gpu, x: Tensor, w: Tensor, opts: Omit<Conv2dOptions, 'variant' | 'out'> = {}): Promise<SweepResult> {
  const op = 'tuneConv2d';
  const p = planConv2d(op, x, w, opts);
  const Cg = p.C / p.groups;
  if (Cg === 1) throw new Error(`${op}: one input channel per group takes the depthwise kernel, which has no variants`);
  const key = tuneKey(p.N * p.Ho * p.Wo, p.O / p.groups);
  return sweepVariants(
    gpu,
    key,
    candidateVariants(gpu),
    (variant) => {
      conv2d(gpu, x, w, { ...opts, variant: variant as ConvTileVariant }).dispose();
    },
    { check: (variant) => checkConv2dVariant(gpu, key, variant as ConvTileVariant, p, opts.bias !== undefined) },
  );
}

/**
 * The tuner's check of a conv2d variant on this adapter: the tuned problem's
 * geometry, channels and groups (and bias, without the activation) on one
 * small image, a few output pixels more than the kernel's receptive field
 * each way (a partial tile in both directions), against a float64
 * convolution on the CPU.
 */
async function checkConv2dVariant(gpu: Gpu, key: string, variant: ConvTileVariant, p: Conv2dPlan, withBias: boolean): Promise<string | undefined> {
  const { C, O, KH, KW, groups, stride, padding, dilation } = p;
  const H = Math.min(p.H, (KH - 1) * dilation[0] + 1 + 6 * stride[0]);
  const W = Math.min(p.W, (KW - 1) * dilation[1] + 1 + 8 * stride[1]);
  const Ho = windowOutputSize(H, KH, stride[0], padding[0], dilation[0]);
  const Wo = windowOutputSize(W, KW, stride[1], padding[1], dilation[1]);
  const Cg = C / groups;
  const Og = O / groups;
  const xData = checkValues(C * H * W, 41);
  const wData = checkValues(O * Cg * KH * KW, 43);
  const bData = checkValues(O, 47);
  const want = new Float64Array(O * Ho * Wo);
  for (let o = 0; o < O; o++) {
    const g = Math.floor(o / Og);
    for (let oh = 0; oh < Ho; oh++) {
      for (let ow = 0; ow < Wo; ow++) {
        let sum = withBias ? bData[o] : 0;
        for (let c = 0; c < Cg; c++) {
          for (let kh = 0; kh < KH; kh++) {
            const ih = oh * stride[0] - padding[0] + kh * dilation[0];
            if (ih < 0 || ih >= H) continue;
            for (let kw = 0; kw < KW; kw++) {
              const iw = ow * stride[1] - padding[1] + kw * dilation[1];
              if (iw < 0 || iw >= W) continue;
              sum += xData[((g * Cg + c) * H + ih) * W + iw] * wData[((o * Cg + c) * KH + kh) * KW + kw];
            }
          }
        }
        want[(o * Ho + oh) * Wo + ow] = sum;
      }
    }
  }
  const x = Tensor.fromArray(gpu, xData, [1, C, H, W]);
  const w = Tensor.fromArray(gpu, wData, [O, Cg, KH, KW]);
  const bias = withBias ? Tensor.fromArray(gpu, bData, [O]) : undefined;
  let y: Tensor | undefined;
  let got: Float32Array;
  try {
    y = conv2d(gpu, x, w, { bias, stride, padding, dilation, groups, variant });
    got = (await y.read()) as Float32Array;
  } finally {
    for (const t of [x, w, bias, y]) t?.dispose();
  }
  const problem = compareVariantOutput(key, variant, got, want);
  return problem && `[1,${C},${H},${W}] * [${O},${Cg},${KH},${KW}]: ${problem}`;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/**
 * PyTorch ConvTranspose2d with weights [C, O/groups, kH, kW]:
 * Ho = (H − 1)·s − 2p + d(kH − 1) + outputPadding + 1.
 */
export function convTranspose2d(gpu: Gpu, x: Tensor, w: Tensor, opts: ConvTranspose2dOptions = {}): Tensor {
  const op = 'convTranspose2d';
  checkF32Rank4(op, 'input', x, '[N, C, H, W]');
  checkWeight(op, w, 4, '[C, O/groups, kH, kW]');
  const [N, C, H, W] = x.shape;
  const [Cw, Og, KH, KW] = w.shape;
  const groups = checkGroups(op, opts.groups, C, x);
  const win = windowPairs(op, opts);
  const { stride, padding, dilation } = win;
  const outputPadding = pair(op, 'outputPadding', opts.outputPadding, [0, 0], 0);
  if (Cw !== C) throw new Error(`${op}: weight ${shapeString(w.shape)} has ${Cw} input channels, but input ${shapeString(x.shape)} has C=${C}`);
  checkKernelSize(op, w, KH, KW);
  for (const d of [0, 1]) {
    if (outputPadding[d] >= Math.max(stride[d], dilation[d])) {
      throw new Error(`${op}: outputPadding ${outputPadding} must be below max(stride, dilation) = ${Math.max(stride[d], dilation[d])} in each dimension`);
    }
  }
  const O = Og * groups;
  checkBias(op, opts.bias, O);
  const Ho = (H - 1) * stride[0] - 2 * padding[0] + dilation[0] * (KH - 1) + outputPadding[0] + 1;
  const Wo = (W - 1) * stride[1] - 2 * padding[1] + dilation[1] * (KW - 1) + outputPadding[1] + 1;
  checkOutputSize(op, Ho, Wo, `input ${H}×${W}, kernel ${KH}×${KW}, stride ${stride}, padding ${padding}, outputPadding ${outputPadding}, dilation ${dilation}`);
  checkBindingSize(gpu, op, 'input', x.shape);
  checkBindingSize(gpu, op, 'weight', w.shape, w.dtype as 'f32' | 'f16'); // checkWeight allowed only these
  const y = outputTensor(gpu, op, [N, O, Ho, Wo], opts.out);

  // The largest phase has ⌈Ho/s⌉ × ⌈Wo/s⌉ pixels per image.
  const rows = N * Math.ceil(Ho / stride[0]) * Math.ceil(Wo / stride[1]);
  const tile = CONV_TILE_VARIANTS[heuristicTile(rows, Og, groups)];
  const tilesN = Math.ceil(Og / (GEMM_WG * tile.TN));
  const [gx, gz] = linearGrid(gpu, rows, GEMM_WG * tile.TM);
  const constants = {
    ...windowConstants(KH, KW, win),
    STEP_H: stride[0] / gcd(stride[0], dilation[0]),
    STEP_W: stride[1] / gcd(stride[1], dilation[1]),
    HAS_BIAS: opts.bias !== undefined,
    W_F16: w.dtype === 'f16',
    ...tile,
  };
  dispatchKernel(
    gpu,
    op,
    { shader: 'conv_transpose2d', constants },
    { x, w, bias: opts.bias ?? placeholder(gpu), y, params: { N, C, H, W, O, Ho, Wo, Cg: C / groups, Og, tilesN } },
    [gx, groups * tilesN, gz * stride[0] * stride[1]],
  );
  return y;
}

/** PyTorch's pooling output size: windowOutputSize, but ceil mode may not start a window in the right padding. */
function poolOutputSize(size: number, k: number, s: number, p: number, d: number, ceilMode: boolean): number {
  let out = windowOutputSize(size, k, s, p, d, ceilMode);
  if (ceilMode && (out - 1) * s >= size + p) out--;
  return out;
}

/** PyTorch MaxPool2d over NCHW; padding counts as −inf and NaN propagates. */
export function maxPool2d(gpu: Gpu, x: Tensor, opts: MaxPool2dOptions): Tensor {
  const op = 'maxPool2d';
  checkF32Rank4(op, 'input', x, '[N, C, H, W]');
  if (opts?.kernel === undefined) throw new Error(`${op}: options.kernel is required`);
  const kernel = pair(op, 'kernel', opts.kernel, [0, 0], 1);
  const win = windowPairs(op, opts, kernel);
  const { stride, padding, dilation } = win;
  const ceilMode = opts.ceilMode ?? false;
  if (padding[0] > kernel[0] / 2 || padding[1] > kernel[1] / 2) {
    throw new Error(`${op}: padding ${padding} must be at most half the kernel size ${kernel}`);
  }
  const [N, C, H, W] = x.shape;
  const Ho = poolOutputSize(H, kernel[0], stride[0], padding[0], dilation[0], ceilMode);
  const Wo = poolOutputSize(W, kernel[1], stride[1], padding[1], dilation[1], ceilMode);
  checkOutputSize(op, Ho, Wo, `input ${H}×${W}, kernel ${kernel}, stride ${stride}, padding ${padding}, dilation ${dilation}, ceilMode ${ceilMode}`);
  checkBindingSize(gpu, op, 'input', x.shape);
  const y = outputTensor(gpu, op, [N, C, Ho, Wo], opts.out);
  const constants = { ...windowConstants(kernel[0], kernel[1], win), WORKGROUP_SIZE };
  dispatchKernel(gpu, op, { shader: 'maxpool2d', constants }, { x, y, params: { H, W, Ho, Wo, n: y.size, lowest: -Infinity } }, linearGrid(gpu, y.size, WORKGROUP_SIZE));
  return y;
}

export interface DepthwiseConv2dNhwcOptions extends Omit<WindowOptions, 'dilation'> {
  /** [C] */
  bias?: Tensor;
  activation?: ConvActivation;
}

// shaders/depthwise_nhwc.wgsl: 4 output pixels per invocation, and one filter
// row of a block reads at most this many input columns.
const NHWC_DW_PIXELS = 4;
const NHWC_DW_MAX_SPAN = 12;
const NHWC_DW_WORKGROUP = 64;

/**
 * Depthwise conv on channels-last maps: x [N, H, W, C], w [KH, KW, C] (one
 * filter per channel; PyTorch's [C, 1, KH, KW] transposed), bias [C] →
 * y [N, Ho, Wo, C] = act(bias + Σ w[kh, kw, c] · x[n, oh·s − p + kh, ow·s − p + kw, c]),
 * zero padding, Ho = ⌊(H + 2p − KH)/s⌋ + 1. Geometry limit: 3·strideW + KW ≤ 12.
 */
export function depthwiseConv2dNhwc(gpu: Gpu, x: Tensor, w: Tensor, opts: DepthwiseConv2dNhwcOptions = {}): Tensor {
  const op = 'depthwiseConv2dNhwc';
  checkF32Rank4(op, 'input', x, '[N, H, W, C]');
  checkWeight(op, w, 3, '[KH, KW, C]');
  const [N, H, W, C] = x.shape;
  const [KH, KW, Cw] = w.shape;
  if (Cw !== C) throw new Error(`${op}: weight ${shapeString(w.shape)} has ${Cw} channels, input ${shapeString(x.shape)} has C=${C}`);
  checkKernelSize(op, w, KH, KW);
  checkBias(op, opts.bias, C);
  const [SH, SW] = pair(op, 'stride', opts.stride, [1, 1], 1);
  const [PH, PW] = pair(op, 'padding', opts.padding, [0, 0], 0);
  const activation = opts.activation ?? 'none';
  activationCode(op, activation);
  if ((NHWC_DW_PIXELS - 1) * SW + KW > NHWC_DW_MAX_SPAN) {
    throw new Error(`${op}: kernel width ${KW} at stride ${SW} is too wide (supported: ${NHWC_DW_PIXELS - 1}·strideW + KW <= ${NHWC_DW_MAX_SPAN})`);
  }
  const Ho = Math.floor((H + 2 * PH - KH) / SH) + 1;
  const Wo = Math.floor((W + 2 * PW - KW) / SW) + 1;
  checkOutputSize(op, Ho, Wo, `input ${H}×${W}, kernel ${KH}×${KW}, stride ${[SH, SW]}, padding ${[PH, PW]}`);
  checkBindingSize(gpu, op, 'input', x.shape);
  const y = outputTensor(gpu, op, [N, Ho, Wo, C], opts.out);
  const blocksW = Math.ceil(Wo / NHWC_DW_PIXELS);
  const total = N * Ho * blocksW * Math.ceil(C / 4);
  dispatchKernel(
    gpu,
    op,
    { shader: 'depthwise_nhwc', constants: { KH, KW, SH, SW, PH, PW, HAS_BIAS: opts.bias !== undefined, ACTIVATION: ACTIVATIONS[activation], W_F16: w.dtype === 'f16', WORKGROUP_SIZE: NHWC_DW_WORKGROUP } },
    { x, w, bias: opts.bias ?? placeholder(gpu), y, params: { H, W, C, Ho, Wo, blocksW, total } },
    linearGrid(gpu, total, NHWC_DW_WORKGROUP),
  );
  return y;
}
