// Region focus (issue 18 §2): a focus that learns which region matters.
// Instead of one fixed union of the automatic masks, every surviving mask
// becomes a region token, and the classifier learns attention over the
// region tokens next to the whole-image token. This file holds the scorer and
// the sam-encoder classifier; focus 'learned' wires them in: pipeline.ts
// learnedTokens picks the masks (at most LEARNED_MAX_REGIONS, most confident
// first) and makeBatch packs the tokens; runs.ts makeClassifier builds this
// classifier (sam-encoder) or backbones.ts ClipPromptClassifier with
// `regions` (CLIP: the weights become the tower's attention key bias).
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
// - RegionAttentionClassifier: gated attention pooling as in attention-based
//   multiple-instance learning (Ilse, Tomczak & Welling, "Attention-based Deep
//   Multiple Instance Learning", ICML 2018): an image is a bag of instances
//   (its region tokens h_k), the label belongs to the bag, and which instance
//   carries it is unknown; the pooling weights are learned,
//     s_k = wᵀ (tanh(V h_k) ⊙ sigmoid(U h_k)) + keyBias_k,
//     a   = softmax_k(s),   pooled = Σ_k a_k h_k,   logits = pooled · W + b,
//   trained on mean cross-entropy. The gate sigmoid(U h) lets the score be
//   non-linear without tanh's near-linearity around 0 (Ilse et al. §2.4). The
//   weights a_k are the explanation: which region (or the whole image) the
//   decision rests on. gatedAttentionWeights is the scorer; the CLIP backbone
//   (backbones.ts ClipPromptClassifier with `regions`) turns the same weights
//   into the tower's attention key bias instead of pooling tokens.

import type { Gpu } from '../device.js';
import { Tensor } from '../tensor.js';
import { Graph, type Value } from '../graph/graph.js';
import * as ops from '../graph/ops.js';
import { GraphCache } from '../graph/graph-cache.js';
import { addCrossEntropyTraining, initNormal, splitOutputs, type Batch } from './classifier.js';

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
 * The gated attention scorer's parameters (Ilse et al.): `${prefix}.V` and
 * `${prefix}.U` [D, A], `${prefix}.w` [A, 1], small normal, seeded.
 */
export function gatedAttentionParams(gpu: Gpu, prefix: string, D: number, A: number, seed: number): Array<[string, Tensor]> {
  return [
    [`${prefix}.V`, Tensor.fromArray(gpu, initNormal(D * A, seed, 1 / Math.sqrt(D)), [D, A])],
    [`${prefix}.U`, Tensor.fromArray(gpu, initNormal(D * A, seed + 1, 1 / Math.sqrt(D)), [D, A])],
    [`${prefix}.w`, Tensor.fromArray(gpu, initNormal(A, seed + 2, 1 / Math.sqrt(A)), [A, 1])],
  ];
}

/**
 * Gated attention weights over each image's tokens h_k [B, T, D]:
 * softmax_k(wᵀ (tanh(V h_k) ⊙ sigmoid(U h_k)) + keyBias_k), [B, T]; the
 * parameters are bound through p under gatedAttentionParams' names. The graph
 * runtime has no tanh kernel; tanh(x) = 2·sigmoid(2x) − 1 (exact identity, both
 * ops have backward rules).
 */
export function gatedAttentionWeights(g: Graph, tokens: Value, keyBias: Value, p: (name: string) => Value, prefix: string): Value {
  const [B, T] = tokens.shape;
  const tanhV = ops.sub(g, ops.mul(g, ops.activation(g, 'sigmoid', ops.matmul(g, tokens, p(`${prefix}.V`), { alpha: 2 })), ops.scalar(g, 2)), ops.scalar(g, 1));
  const gate = ops.activation(g, 'sigmoid', ops.matmul(g, tokens, p(`${prefix}.U`))); // [B, T, A]
  const scores = g.reshape(ops.matmul(g, ops.mul(g, tanhV, gate), p(`${prefix}.w`)), [B, T]);
  return ops.softmax(g, ops.add(g, scores, keyBias), -1);
}

export interface RegionAttentionOptions {
  /** Hidden width A of the gated attention (V, U: [D, A]; w: [A, 1]). */
  hidden: number;
  seed: number;
}

/**
 * Gated-attention MIL pooling over region tokens, then a linear head. Batches
 * are `Batch`es whose inputs are tokens [B, T = Rmax+1, D] (packRegionTokens)
 * and whose keyBias [B·T] marks padded tokens (absent: every token is real).
 * Parameters: attn.V [D, A], attn.U [D, A], attn.w [A, 1], head.w [D, K],
 * head.b [K].
 */
export class RegionAttentionClassifier {
  readonly kind = 'region-attention' as const;
  readonly params = new Map<string, Tensor>();
  private readonly graphs = new GraphCache();

  constructor(readonly gpu: Gpu, readonly tokensPerImage: number, readonly dim: number, readonly classes: number, readonly opts: RegionAttentionOptions) {
    const D = dim;
    const A = opts.hidden;
    for (const [name, v] of [['tokensPerImage', tokensPerImage], ['dim', dim], ['classes', classes], ['hidden', A]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`RegionAttentionClassifier: ${name} must be a positive integer, got ${v}`);
    }
    for (const [name, t] of gatedAttentionParams(gpu, 'attn', D, A, opts.seed)) this.params.set(name, t);
    this.params.set('head.w', Tensor.fromArray(gpu, initNormal(D * classes, opts.seed + 3, 1 / Math.sqrt(D)), [D, classes]));
    this.params.set('head.b', Tensor.fromArray(gpu, new Float32Array(classes), [classes]));
  }

  /** logits [B, K] and the attention weights [B, T]. */
  private forward(g: Graph, B: number): { logits: Value; weights: Value } {
    const T = this.tokensPerImage;
    const D = this.dim;
    const p = (name: string) => g.weight(name, this.params.get(name)!);
    const tokens = g.input('tokens', [B, T, D]);
    const weights = gatedAttentionWeights(g, tokens, g.input('keyBias', [B, T]), p, 'attn'); // [B, T]
    const pooled = g.reshape(ops.matmul(g, g.reshape(weights, [B, 1, T]), tokens), [B, D]);
    const logits = ops.matmul(g, pooled, p('head.w'), { bias: p('head.b') });
    return { logits, weights };
  }

  private check(op: string, batch: Batch): void {
    const expect = [batch.size, this.tokensPerImage, this.dim];
    const shape = batch.inputs.shape;
    if (shape.length !== 3 || shape.some((d, i) => d !== expect[i])) throw new Error(`${op}: inputs must be tokens [${expect.join(', ')}], got [${shape.join(', ')}]`);
    const n = batch.size * this.tokensPerImage;
    if (batch.keyBias && batch.keyBias.length !== n) throw new Error(`${op}: keyBias must hold B·T = ${batch.size}·${this.tokensPerImage} = ${n} values, got ${batch.keyBias.length}`);
    if (batch.labels && batch.labels.length !== batch.size) throw new Error(`${op}: labels must hold ${batch.size} values, got ${batch.labels.length}`);
  }

  private feeds(batch: Batch): Record<string, Tensor | ArrayLike<number>> {
    return { tokens: batch.inputs, keyBias: batch.keyBias ?? new Float32Array(batch.size * this.tokensPerImage) };
  }

  /** Mean cross-entropy and the gradient of every parameter (tensors owned by the caller). */
  lossAndGradients(batch: Batch): { loss: Tensor; grads: Map<string, Tensor> } {
    this.check('RegionAttentionClassifier.lossAndGradients', batch);
    if (!batch.labels) throw new Error('RegionAttentionClassifier.lossAndGradients: the batch has no labels');
    const B = batch.size;
    const names = [...this.params.keys()];
    const g = this.graphs.get(`train|${B}`, () => {
      const g = new Graph(this.gpu, `medfocus.region.train[B=${B}]`);
      addCrossEntropyTraining(g, this.forward(g, B).logits, B, names);
      return g;
    });
    return splitOutputs(g.run({ ...this.feeds(batch), labels: batch.labels }));
  }

  /** Class probabilities [B, K] and the attention weight of each token [B, T] (token 0: the whole image; padded tokens 0). */
  predict(batch: Batch): { probs: Tensor; weights: Tensor } {
    this.check('RegionAttentionClassifier.predict', batch);
    const B = batch.size;
    const g = this.graphs.get(`predict|${B}`, () => {
      const g = new Graph(this.gpu, `medfocus.region.predict[B=${B}]`);
      const { logits, weights } = this.forward(g, B);
      g.output('probs', ops.softmax(g, logits, -1));
      g.output('weights', weights);
      return g;
    });
    const out = g.run(this.feeds(batch));
    return { probs: out.probs, weights: out.weights };
  }

  dispose(): void {
    this.graphs.dispose();
    for (const t of this.params.values()) t.dispose();
    this.params.clear();
  }
}
