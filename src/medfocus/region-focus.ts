// Region focus (issue 18 §2): a focus that learns which region matters.
// Instead of one fixed union of the automatic masks, every surviving mask
// becomes a region token, a scorer learns a weight per region token (and the
// whole-image token), and the weights steer attention as a key bias. This
// file holds the tokens, the scorer and the key bias; focus 'learned' wires
// them in: pipeline.ts learnedTokens picks the masks (at most
// LEARNED_MAX_REGIONS, most confident first) and makeBatch packs the tokens;
// backbones.ts SamPoolClassifier (the attention pooling's keys: feature-grid
// positions) and ClipPromptClassifier (every block's keys: patches) take
// `regions`; train-loop.ts regionFocus sizes them.
//
// - regionTokens (host): per image a [R+1, C+M] token matrix from the
//   backbone features [C, G, G] (or [L = G², C]) and R masks over the G×G grid
//   (0/1, or the coverage of each grid cell): token 0 is the whole-image mean
//   of the features, token k the coverage-weighted mean inside mask k; each
//   token ends with M = 7 mask meta features (area, box x0 y0 x1 y1, predicted
//   IoU, stability score), zeros for the image token.
// - packRegionTokens: pads the images of a batch to Rmax regions: tokens
//   [B, Rmax+1, D] and a key bias [B, Rmax+1] (0 for a real token, −1e4 for a
//   padded one: its softmax weight is exactly 0 in f32, so padded tokens,
//   whatever they hold, change neither the output nor the gradients).
// - gatedAttention: the scorer, as in attention-based multiple-instance
//   learning (Ilse, Tomczak & Welling, "Attention-based Deep Multiple
//   Instance Learning", ICML 2018): an image is a bag of instances (its
//   region tokens h_k), the label belongs to the bag, and which instance
//   carries it is unknown; on layer-normed tokens x_k = LN(h_k),
//     s_k = wᵀ (tanh(V x_k) ⊙ sigmoid(U x_k)) + padBias_k,   a = softmax_k(s).
//   The gate sigmoid(U x) lets the score be non-linear without tanh's
//   near-linearity around 0 (Ilse et al. §2.4). The weights a_k are the
//   explanation: which region (or the whole image) the decision rests on.
// - learnedKeyBias: each key's weight w = Σ_k a_k·cover_k (the whole-image
//   token covers every key) becomes the key bias strength·(w − 1). Pooling
//   the tokens themselves by a (Ilse et al.'s head) was tried first and
//   overfit on few-shot data (results/learned-focus-variants.md); steering
//   attention keeps what the head reads an average over many positions.

import type { Gpu } from '../device.js';
import { Tensor } from '../tensor.js';
import type { Graph, Value } from '../graph/graph.js';
import * as ops from '../graph/ops.js';
import { initNormal, type Batch } from './classifier.js';

/** What regionTokens reads of each mask besides its pixels. Box in image-normalised coordinates [0, 1]; area as a fraction of the image. */
export interface RegionMeta {
  area: number;
  box: readonly [number, number, number, number];
  predIou: number;
  stability: number;
}

/** Meta features per token: area, box (4), predicted IoU, stability. */
export const REGION_META = 7;

/** Additive score of a padded token: exp(−1e4 − max) is 0 in f32. */
export const PADDED_TOKEN_BIAS = -1e4;

export interface RegionTokens {
  /** [R+1, C+M] row-major: token 0 the whole image, token k mask k. */
  tokens: Float32Array;
  regions: number;
  dim: number;
}

/**
 * The region tokens of one image. `features` is [C, G, G] ('cgg', default) or
 * [L = G², C] ('lc', the SAM feature cache's layout); each mask holds G·G
 * weights ≥ 0 (0/1, or the fraction of each grid cell the mask covers).
 */
export function regionTokens(
  features: Float32Array,
  channels: number,
  grid: number,
  masks: ReadonlyArray<ArrayLike<number>>,
  meta: readonly RegionMeta[],
  layout: 'cgg' | 'lc' = 'cgg',
): RegionTokens {
  const C = channels;
  const L = grid * grid;
  if (!(C > 0 && grid > 0)) throw new Error(`regionTokens: channels and grid must be positive, got ${C} and ${grid}`);
  if (features.length !== C * L) throw new Error(`regionTokens: features must hold C·G·G = ${C}·${L} = ${C * L} values, got ${features.length}`);
  if (masks.length !== meta.length) throw new Error(`regionTokens: expected one meta per mask, got ${masks.length} masks and ${meta.length} metas`);
  const D = C + REGION_META;
  const R = masks.length;
  const tokens = new Float32Array((R + 1) * D);
  const at = layout === 'cgg' ? (c: number, p: number) => features[c * L + p] : (c: number, p: number) => features[p * C + c];
  const sums = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let p = 0; p < L; p++) s += at(c, p);
    tokens[c] = s / L;
  }
  masks.forEach((mask, k) => {
    if (mask.length !== L) throw new Error(`regionTokens: mask ${k} must hold G·G = ${L} values, got ${mask.length}`);
    let total = 0;
    sums.fill(0);
    for (let p = 0; p < L; p++) {
      const m = mask[p];
      if (!(m >= 0) || !Number.isFinite(m)) throw new Error(`regionTokens: mask ${k} has weight ${m} at cell ${p}; expected a finite value >= 0`);
      if (m === 0) continue;
      total += m;
      for (let c = 0; c < C; c++) sums[c] += m * at(c, p);
    }
    if (!(total > 0)) throw new Error(`regionTokens: mask ${k} covers no grid cell (all ${L} weights are 0)`);
    const row = (k + 1) * D;
    for (let c = 0; c < C; c++) tokens[row + c] = sums[c] / total;
    const { area, box, predIou, stability } = meta[k];
    const extra = [area, ...box, predIou, stability];
    if (extra.length !== REGION_META || extra.some((v) => !Number.isFinite(v))) {
      throw new Error(`regionTokens: meta ${k} must be finite {area, box [4], predIou, stability}, got ${JSON.stringify(meta[k])}`);
    }
    for (let j = 0; j < REGION_META; j++) tokens[row + C + j] = extra[j];
  });
  return { tokens, regions: R, dim: D };
}

/**
 * A batch's token matrices padded to `maxRegions`: tokens [B, Rmax+1, D] and
 * the key bias [B, Rmax+1] (PADDED_TOKEN_BIAS where a token is padding).
 * Padded rows are zeros. An image with more than maxRegions regions throws
 * (the caller keeps the best maxRegions masks).
 */
export function packRegionTokens(images: readonly RegionTokens[], maxRegions: number): { tokens: Float32Array; keyBias: Float32Array; shape: [number, number, number] } {
  if (images.length === 0) throw new Error('packRegionTokens: no images');
  const D = images[0].dim;
  const T = maxRegions + 1;
  const tokens = new Float32Array(images.length * T * D);
  const keyBias = new Float32Array(images.length * T).fill(PADDED_TOKEN_BIAS);
  images.forEach((im, b) => {
    if (im.dim !== D) throw new Error(`packRegionTokens: image ${b} has token width ${im.dim}, image 0 has ${D}`);
    if (im.regions > maxRegions) throw new Error(`packRegionTokens: image ${b} has ${im.regions} regions, more than maxRegions = ${maxRegions}`);
    tokens.set(im.tokens.subarray(0, (im.regions + 1) * D), b * T * D);
    keyBias.fill(0, b * T, b * T + im.regions + 1);
  });
  return { tokens, keyBias, shape: [images.length, T, D] };
}

/**
 * The gated attention scorer's parameters (Ilse et al.): the token
 * LayerNorm's `${prefix}.norm.w` (ones) and `${prefix}.norm.b` (zeros) [D],
 * `${prefix}.V` and `${prefix}.U` [D, A], `${prefix}.w` [A, 1], small normal,
 * seeded.
 */
export function gatedAttentionParams(gpu: Gpu, prefix: string, D: number, A: number, seed: number): Array<[string, Tensor]> {
  return [
    [`${prefix}.norm.w`, Tensor.fromArray(gpu, new Float32Array(D).fill(1), [D])],
    [`${prefix}.norm.b`, Tensor.fromArray(gpu, new Float32Array(D), [D])],
    [`${prefix}.V`, Tensor.fromArray(gpu, initNormal(D * A, seed, 1 / Math.sqrt(D)), [D, A])],
    [`${prefix}.U`, Tensor.fromArray(gpu, initNormal(D * A, seed + 1, 1 / Math.sqrt(D)), [D, A])],
    [`${prefix}.w`, Tensor.fromArray(gpu, initNormal(A, seed + 2, 1 / Math.sqrt(A)), [A, 1])],
  ];
}

/**
 * Gated attention over each image's tokens h_k [B, T, D]: the tokens are
 * layer-normalised, x_k = LN(h_k) (the features and the mask meta live on
 * unrelated scales), and weighed,
 *   a = softmax_k(wᵀ (tanh(V x_k) ⊙ sigmoid(U x_k)) + keyBias_k)   [B, T];
 * returns x [B, T, D] and a. The parameters are bound through p under
 * gatedAttentionParams' names. The graph runtime has no tanh kernel;
 * tanh(x) = 2·sigmoid(2x) − 1 (exact identity, both ops have backward rules).
 */
export function gatedAttention(g: Graph, tokens: Value, keyBias: Value, p: (name: string) => Value, prefix: string): { normalized: Value; weights: Value } {
  const [B, T] = tokens.shape;
  const x = ops.layerNorm(g, tokens, p(`${prefix}.norm.w`), p(`${prefix}.norm.b`), 1e-5);
  const tanhV = ops.sub(g, ops.mul(g, ops.activation(g, 'sigmoid', ops.matmul(g, x, p(`${prefix}.V`), { alpha: 2 })), ops.scalar(g, 2)), ops.scalar(g, 1));
  const gate = ops.activation(g, 'sigmoid', ops.matmul(g, x, p(`${prefix}.U`))); // [B, T, A]
  const scores = g.reshape(ops.matmul(g, ops.mul(g, tanhV, gate), p(`${prefix}.w`)), [B, T]);
  return { normalized: x, weights: ops.softmax(g, ops.add(g, scores, keyBias), -1) };
}

/** What a classifier with the learned focus needs to know of its region inputs. */
export interface RegionFocusOptions {
  /** Region token width D (features + meta). */
  dim: number;
  /** Tokens per image Rt = Rmax + 1. */
  tokensPerImage: number;
  /** The scorer's hidden width A. */
  hidden: number;
  /** A key with weight w gets the bias strength·(w − 1). */
  strength: number;
}

/**
 * The learned focus as an attention key bias over T keys: the graph inputs
 * regionTokens [B, Rt, D], regionPadBias [B, Rt] and regionCover [B, Rt, T]
 * (each token's coverage of each key: token 0 covers every key), the gated
 * scorer's weights a [B, Rt], each key's weight w = a·cover ∈ [0, 1], and the
 * key bias strength·(w − 1) [B, 1, 1, T] (0 where all the weight is on
 * regions covering the key, −strength where none is). All the weight on the
 * whole image (a_0 = 1) is no focus; all on one region is a fixed focus on it.
 */
export function learnedKeyBias(g: Graph, B: number, T: number, o: RegionFocusOptions, p: (name: string) => Value, prefix: string): { keyBias: Value; weights: Value } {
  const Rt = o.tokensPerImage;
  const tokens = g.input('regionTokens', [B, Rt, o.dim]);
  const { weights } = gatedAttention(g, tokens, g.input('regionPadBias', [B, Rt]), p, prefix);
  const keyWeights = ops.matmul(g, g.reshape(weights, [B, 1, Rt]), g.input('regionCover', [B, Rt, T])); // [B, 1, T]
  const bias = ops.add(g, ops.mul(g, keyWeights, ops.scalar(g, o.strength)), ops.scalar(g, -o.strength));
  return { keyBias: g.reshape(bias, [B, 1, 1, T]), weights };
}

/** Checks RegionFocusOptions (a classifier's constructor calls it). */
export function checkRegionFocusOptions(op: string, o: RegionFocusOptions): void {
  for (const [name, x] of [['dim', o.dim], ['tokensPerImage', o.tokensPerImage], ['hidden', o.hidden]] as const) {
    if (!Number.isInteger(x) || x < 1) throw new Error(`${op}: regions.${name} must be a positive integer, got ${x}`);
  }
  if (!(Number.isFinite(o.strength) && o.strength >= 0)) throw new Error(`${op}: regions.strength must be a number >= 0, got ${o.strength}`);
}

/** A batch's region inputs checked against the options: tokens [B, Rt, D], padBias [B·Rt], cover [B·Rt·L] over L keys. */
export function checkRegionBatch(op: string, batch: Batch, o: RegionFocusOptions, L: number): NonNullable<Batch['regions']> {
  const r = batch.regions;
  const B = batch.size;
  const Rt = o.tokensPerImage;
  if (!r) throw new Error(`${op}: the batch has no region tokens`);
  const shape = r.tokens.shape;
  if (shape.length !== 3 || shape[0] !== B || shape[1] !== Rt || shape[2] !== o.dim) throw new Error(`${op}: region tokens must be [${B}, ${Rt}, ${o.dim}], got [${shape.join(', ')}]`);
  if (r.padBias.length !== B * Rt) throw new Error(`${op}: regions.padBias must hold B·Rt = ${B * Rt} values, got ${r.padBias.length}`);
  if (r.cover.length !== B * Rt * L) throw new Error(`${op}: regions.cover must hold B·Rt·G² = ${B}·${Rt}·${L} values, got ${r.cover.length}`);
  return r;
}
