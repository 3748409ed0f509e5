// The two MedFocus classifiers, each a frozen backbone plus a few trainable
// parameters, trained on the GPU through one graph per batch size: forward,
// loss, backward (graph/autograd.ts) in one submit; AdamW then updates the
// parameters in place (they are bound into the graphs as weights, so the
// next run sees the new values).
//
// - ClipPromptClassifier: CLIP's image tower (frozen) with P VPT prompt
//   tokens (shallow, or deep: per block) and a head W [E, K]; logits = exp(logit_scale) ·
//   normalize(f) · W, W initialised from the normalised text embeddings of
//   "This is a photo of {class}" (zero-shot CLIP at step 0). The focus bias
//   enters as a per-batch key bias [B, 1, 1, T] (0 for the class token and
//   the prompts), which the attention kernel broadcasts. Optionally (weight λ)
//   the loss adds CLIP's image–text contrastive term against the frozen,
//   normalised class-prompt embeddings t̂_k, symmetric as in CLIP's training:
//   image→text CE(s·f̂·t̂ᵀ over the K prompts, y) and text→image
//   CE(s·t̂_{y_i}·f̂ᵀ over the batch's images, i), averaged, times λ. It keeps
//   the prompted features aligned with the text space while the head moves.
//   With `regions` (focus learned), the key bias is learned instead of fixed:
//   the gated attention scorer of region-focus.ts weighs each image's region
//   tokens (token 0 the whole image), a = softmax(scores) [B, Rt]; each
//   tower token j gets the weight w_j = Σ_k a_k·cover_kj (cover: the share of
//   patch j inside region k; 1 for the class token and the prompts, and for
//   every token under the whole-image token), and the key bias
//   strength·(w_j − 1) ≤ 0 enters every block. All the weight on the whole
//   image (a_0 = 1) is plain CLIP; all on one region is the fixed focus on it.
//   The scorer trains end to end with the prompts and the head through the
//   attention kernel's bias gradient.
// - SamPoolClassifier: a linear probe over MobileSAM encoder embeddings
//   (cached on disk by the caller), [L = g², C = 256] per image. Pooling:
//   mean over all positions ('mean'), or attention pooling ('attention'):
//   P learned queries attend (2 heads of 128: the fused kernel's head-dim
//   limit is 128) over the L positions with the additive focus key bias, the
//   P outputs are averaged, and the plain mean rides along as context
//   ([mean, focus-pooled], 2C wide): where the salient region misses the
//   lesion the head still sees the whole image (measured with the protocol:
//   covid3 and busi3 attention +1.3 to +3.5 points over the focus-pooled
//   features alone, results/README.md). Then LayerNorm (trainable) and a
//   linear layer. The queries start near zero, so at step 0 the focus part
//   is the focus-weighted mean. predict also returns what explains the decision:
//   the attention-pooling weights, or (mean pooling) each position's own
//   evidence for the predicted classes.

import type { Gpu } from '../device.js';
import { Tensor } from '../tensor.js';
import { Graph, weightBinder, type BoundWeights, type Value } from '../graph/graph.js';
import * as ops from '../graph/ops.js';
import type { ClipModel } from '../models/clip/model.js';
import { ParamClassifier, addCrossEntropyTraining, initNormal, splitOutputs, type Batch, type Classifier } from './classifier.js';
import { checkRegionBatch, checkRegionFocusOptions, gatedAttentionParams, learnedKeyBias, type RegionFocusOptions } from './region-focus.js';

function checkBatch(op: string, batch: Batch, inner: readonly number[], keyLength: number, attention: boolean): void {
  const expect = [batch.size, ...inner];
  const shape = batch.inputs.shape;
  if (shape.length !== expect.length || shape.some((d, i) => d !== expect[i])) {
    throw new Error(`${op}: inputs must be [${expect.join(', ')}], got [${shape.join(', ')}]`);
  }
  if (attention && batch.keyBias?.length !== batch.size * keyLength) {
    throw new Error(`${op}: keyBias must hold ${batch.size}·${keyLength} values (focus 'attention'), got ${batch.keyBias?.length ?? 'none'}`);
  }
  if (batch.labels && batch.labels.length !== batch.size) throw new Error(`${op}: labels must hold ${batch.size} values, got ${batch.labels.length}`);
}

/** focus learned: the region scorer's parameters (region-focus.ts gated attention, prefix 'region', seeded seed + 7) into `params`, its options checked. */
function addRegionScorer(op: string, gpu: Gpu, params: Map<string, Tensor>, regions: RegionFocusOptions, seed: number): void {
  checkRegionFocusOptions(op, regions);
  for (const [name, t] of gatedAttentionParams(gpu, 'region', regions.dim, regions.hidden, seed + 7)) params.set(name, t);
}

export interface ClipClassifierOptions {
  /** VPT prompt tokens (0: head only). */
  prompts: number;
  /** Deep VPT: the first `deep` blocks each get their own prompts (0 or 1: shallow). */
  deep?: number;
  /** Whether batches carry the focus key bias. */
  attention: boolean;
  /** Focus learned: the region scorer (not with attention). */
  regions?: RegionFocusOptions;
  /** Weight λ of the image–text contrastive term (0 or absent: cross-entropy only). */
  contrastive?: number;
  seed: number;
}

export class ClipPromptClassifier extends ParamClassifier implements Classifier {
  readonly kind = 'clip' as const;
  readonly grid: number;
  readonly resolution: number;

  /** textFeatures [K, E] (not normalised): the head's initial columns. */
  constructor(readonly gpu: Gpu, readonly model: ClipModel, textFeatures: Float32Array, readonly classes: number, readonly opts: ClipClassifierOptions) {
    super();
    const v = model.config.vision;
    const E = model.config.embedDim;
    if (textFeatures.length !== classes * E) throw new Error(`ClipPromptClassifier: textFeatures must be [${classes}, ${E}], got ${textFeatures.length} values`);
    this.grid = v.grid;
    this.resolution = v.imageResolution;
    const deep = opts.deep ?? 0;
    if (!Number.isInteger(deep) || deep < 0 || deep > v.layers) throw new Error(`ClipPromptClassifier: deep must be an integer in [0, ${v.layers}] (the tower's blocks), got ${deep}`);
    if (opts.prompts > 0) {
      const shape = deep > 1 ? [deep, opts.prompts, v.width] : [opts.prompts, v.width];
      this.params.set('prompts', Tensor.fromArray(gpu, initNormal(shape.reduce((a, b) => a * b, 1), opts.seed, 0.02), shape));
    }
    const head = new Float32Array(E * classes);
    for (let k = 0; k < classes; k++) {
      const row = textFeatures.subarray(k * E, (k + 1) * E);
      const norm = Math.hypot(...row) || 1;
      for (let e = 0; e < E; e++) head[e * classes + k] = row[e] / norm;
    }
    this.params.set('head', Tensor.fromArray(gpu, head, [E, classes]));
    const regions = opts.regions;
    if (regions) {
      if (opts.attention) throw new Error('ClipPromptClassifier: give attention (a fixed focus) or regions (a learned one), not both');
      addRegionScorer('ClipPromptClassifier', gpu, this.params, regions, opts.seed);
    }
    const lambda = opts.contrastive ?? 0;
    if (!(Number.isFinite(lambda) && lambda >= 0)) throw new Error(`ClipPromptClassifier: contrastive must be a number >= 0, got ${lambda}`);
    this.textNormalized = new Float32Array(classes * E);
    for (let k = 0; k < classes; k++) for (let e = 0; e < E; e++) this.textNormalized[k * E + e] = head[e * classes + k];
  }

  /** The class prompts' normalised text embeddings t̂ [K, E] (the head's initial columns), for the contrastive term. */
  private readonly textNormalized: Float32Array;

  /** Tokens per image in the tower: class token, prompts, patches. */
  get tokens(): number {
    return 1 + this.opts.prompts + this.grid * this.grid;
  }

  /** The key bias input [B, 1, 1, T] from per-image key biases over the patches [B, G²]: 0 for the class token and the prompts. */
  private attnBias(batch: Batch): Float32Array {
    const T = this.tokens;
    const L = this.grid * this.grid;
    const out = new Float32Array(batch.size * T);
    for (let b = 0; b < batch.size; b++) out.set(batch.keyBias!.subarray(b * L, (b + 1) * L), b * T + T - L);
    return out;
  }

  /** The shared forward: logits [B, K] and the normalised image features f̂ [B, E], plus the graph inputs it declared. */
  private forward(g: Graph, B: number, classAttention = false): { logits: Value; normalized: Value; classAttention?: Value; regionWeights?: Value; params: BoundWeights } {
    const R = this.resolution;
    const T = this.tokens;
    const params = weightBinder(g, this.params, 'ClipPromptClassifier');
    const p = params.p;
    const images = g.input('images', [B, 3, R, R]);
    let attnBias = this.opts.attention ? g.input('attnBias', [B, 1, 1, T]) : undefined;
    let regionWeights: Value | undefined;
    const regions = this.opts.regions;
    if (regions) ({ keyBias: attnBias, weights: regionWeights } = learnedKeyBias(g, B, T, regions, p, 'region'));
    const prompts = this.params.has('prompts') ? p('prompts') : undefined;
    const deep = prompts !== undefined && prompts.shape.length === 3;
    const tower = this.model.imageTower(g, images, { [deep ? 'deepPrompts' : 'prompts']: prompts, attnBias, classAttention });
    const normalized = ops.l2Normalize(g, tower.features);
    const logits = ops.matmul(g, normalized, p('head'), { alpha: this.model.logitScale });
    return { logits, normalized, classAttention: tower.classAttention, regionWeights, params };
  }

  /** focus learned: the batch's region inputs, the coverage widened from the G² patches to the T tower tokens (1 for the class token and the prompts). */
  private regionFeeds(batch: Batch): Record<string, Tensor | ArrayLike<number>> {
    const Rt = this.opts.regions!.tokensPerImage;
    const B = batch.size;
    const L = this.grid * this.grid;
    const T = this.tokens;
    const r = checkRegionBatch('ClipPromptClassifier (focus learned)', batch, this.opts.regions!, L);
    const cover = new Float32Array(B * Rt * T);
    for (let row = 0; row < B * Rt; row++) {
      if (r.padBias[row] !== 0) continue; // padding: weight 0 everywhere (its softmax weight is 0 anyway)
      cover.fill(1, row * T, row * T + T - L);
      cover.set(r.cover.subarray(row * L, (row + 1) * L), row * T + T - L);
    }
    return { regionTokens: r.tokens, regionPadBias: r.padBias, regionCover: cover };
  }

  /** λ/2 · (CE image→text + CE text→image) of f̂ [B, E] against the class prompts (see the header). */
  private contrastiveLoss(g: Graph, normalized: Value, labels: Value, B: number): Value {
    const K = this.classes;
    const E = this.model.config.embedDim;
    const s = this.model.logitScale;
    const text = g.constant('medfocus.textNormalized', this.textNormalized, [K, E]);
    const imageToText = ops.matmul(g, normalized, text, { transB: true, alpha: s }); // [B, K]
    const batchText = ops.gather(g, text, labels); // [B, E]: each image's own class prompt
    const textToImage = ops.matmul(g, batchText, normalized, { transB: true, alpha: s }); // [B, B]
    const sum = ops.add(g, ops.crossEntropy(g, imageToText, labels), ops.crossEntropy(g, textToImage, g.input('batchIndex', [B], 'i32')));
    return ops.mul(g, sum, ops.scalar(g, (this.opts.contrastive ?? 0) / 2));
  }

  private feeds(batch: Batch): Record<string, Tensor | ArrayLike<number>> {
    const feeds: Record<string, Tensor | ArrayLike<number>> = { images: batch.inputs };
    if (this.opts.attention) feeds.attnBias = this.attnBias(batch);
    return this.opts.regions ? { ...feeds, ...this.regionFeeds(batch) } : feeds;
  }

  lossAndGradients(batch: Batch): { loss: Tensor; grads: Map<string, Tensor> } {
    const R = this.resolution;
    checkBatch('ClipPromptClassifier', batch, [3, R, R], this.grid ** 2, this.opts.attention);
    if (!batch.labels) throw new Error('ClipPromptClassifier.lossAndGradients: the batch has no labels');
    const B = batch.size;
    const feeds = { ...this.feeds(batch), labels: batch.labels };
    const contrastive = (this.opts.contrastive ?? 0) > 0;
    return splitOutputs(this.trainingGraph(B).run(contrastive ? { ...feeds, batchIndex: Int32Array.from({ length: B }, (_, i) => i) } : feeds));
  }

  /** The training graph (forward, loss, backward) for batches of B, built and compiled on first use; it allocates at its first run. */
  trainingGraph(B: number): Graph {
    const contrastive = (this.opts.contrastive ?? 0) > 0;
    return this.graphs.get(`train|${B}`, () => {
      const g = new Graph(this.gpu, `medfocus.clip.train[B=${B}]`);
      const { logits, normalized, params } = this.forward(g, B);
      addCrossEntropyTraining(g, logits, B, [...this.params.keys()], params, contrastive ? (labels) => this.contrastiveLoss(g, normalized, labels, B) : undefined);
      return g;
    });
  }

  predict(batch: Batch): { probs: Tensor; weights: Tensor } {
    const R = this.resolution;
    checkBatch('ClipPromptClassifier', batch, [3, R, R], this.grid ** 2, this.opts.attention);
    const B = batch.size;
    const g = this.graphs.get(`predict|${B}`, () => {
      const g = new Graph(this.gpu, `medfocus.clip.predict[B=${B}]`);
      const { logits, classAttention, regionWeights } = this.forward(g, B, !this.opts.regions);
      g.output('probs', ops.softmax(g, logits, -1));
      // focus learned: the region weights [B, Rt]; else the class token's attention over the patches (the class token and the prompts dropped).
      g.output('weights', regionWeights ?? ops.slice(g, classAttention!, [0, 1 + this.opts.prompts], [B, this.tokens]));
      return g;
    });
    return this.runPredict(g, this.feeds(batch));
  }
}

export type SamPooling = 'mean' | 'attention';

export interface SamClassifierOptions {
  pooling: SamPooling;
  /** Learned queries of the attention pooling. */
  queries: number;
  /** Focus learned (attention pooling only): the key bias comes from the region scorer instead of the batch. */
  regions?: RegionFocusOptions;
  seed: number;
}

/** Heads of the attention pooling over C = 256 channels: the fused kernel takes head dims up to 128. */
const POOL_HEADS = 2;

export class SamPoolClassifier extends ParamClassifier implements Classifier {
  readonly kind = 'sam-encoder' as const;

  /** Features per image: L positions × C channels. */
  constructor(readonly gpu: Gpu, readonly positions: number, readonly channels: number, readonly classes: number, readonly opts: SamClassifierOptions) {
    super();
    const C = channels;
    if (C % POOL_HEADS !== 0 || C / POOL_HEADS > 128) throw new Error(`SamPoolClassifier: channels must split into ${POOL_HEADS} heads of at most 128, got ${C}`);
    if (opts.pooling === 'attention') this.params.set('queries', Tensor.fromArray(gpu, initNormal(opts.queries * C, opts.seed, 0.02), [opts.queries, C]));
    if (opts.regions) {
      if (opts.pooling !== 'attention') throw new Error(`SamPoolClassifier: regions (the learned focus) steer the attention pooling; got pooling '${opts.pooling}'`);
      addRegionScorer('SamPoolClassifier', gpu, this.params, opts.regions, opts.seed);
    }
    // Attention pooling reads the focus-pooled features next to the plain mean (the context).
    const F = opts.pooling === 'attention' ? 2 * C : C;
    this.params.set('norm.w', Tensor.fromArray(gpu, new Float32Array(F).fill(1), [F]));
    this.params.set('norm.b', Tensor.fromArray(gpu, new Float32Array(F), [F]));
    this.params.set('head.w', Tensor.fromArray(gpu, initNormal(F * classes, opts.seed + 1, 1 / Math.sqrt(F)), [F, classes]));
    this.params.set('head.b', Tensor.fromArray(gpu, new Float32Array(classes), [classes]));
  }

  /** logits [B, K]; with `explain`, also each position's weight [B, L] (built only into predict graphs). */
  private forward(g: Graph, B: number, explain: boolean): { logits: Value; weights?: Value; params: BoundWeights } {
    const L = this.positions;
    const C = this.channels;
    const H = POOL_HEADS;
    const feats = g.input('features', [B, L, C]);
    const params = weightBinder(g, this.params, 'SamPoolClassifier');
    const p = params.p;
    let pooled: Value;
    let poolWeights: Value | undefined;
    let regionWeights: Value | undefined;
    if (this.opts.pooling === 'attention') {
      const P = this.opts.queries;
      let keyBias: Value;
      if (this.opts.regions) ({ keyBias, weights: regionWeights } = learnedKeyBias(g, B, L, this.opts.regions, p, 'region'));
      else keyBias = g.input('keyBias', [B, 1, 1, L]);
      const q = ops.broadcastTo(g, g.reshape(p('queries'), [1, P, H, C / H]), [B, P, H, C / H]);
      const kv = g.reshape(feats, [B, L, H, C / H]);
      const attended = ops.attention(g, q, kv, kv, { layout: 'blhd', bias: keyBias }); // [B, P, H, C/H]
      pooled = ops.reduceMean(g, g.reshape(attended, [B, P, C]), 1);
      pooled = ops.concat(g, [ops.reduceMean(g, feats, 1), pooled], 1); // [B, 2C]: context, focus
      if (explain && !this.opts.regions) {
        // The pooling weights, recomputed: softmax(q·kᵀ/√d + bias), averaged over heads and queries (the learned focus explains by its region weights instead).
        const scores = ops.matmul(g, ops.permute(g, q, [0, 2, 1, 3]), ops.permute(g, kv, [0, 2, 1, 3]), { transB: true, alpha: 1 / Math.sqrt(C / H) });
        poolWeights = ops.reduceMean(g, ops.softmax(g, ops.add(g, scores, keyBias), -1), [1, 2]);
      }
    } else pooled = ops.reduceMean(g, feats, 1);
    const head = (x: Value) => ops.matmul(g, ops.layerNorm(g, x, p('norm.w'), p('norm.b')), p('head.w'), { bias: p('head.b') });
    const logits = head(pooled);
    if (!explain) return { logits, params };
    // focus learned: the explanation is the region weights [B, Rt] (token 0: the whole image).
    if (regionWeights) return { logits, weights: regionWeights, params };
    if (poolWeights) return { logits, weights: poolWeights, params };
    // Mean pooling weighs every position alike; explain it by each position's
    // own evidence for the prediction instead: Σ_k p_k · softmax_k(head(position)).
    const perPosition = ops.softmax(g, head(feats), -1); // [B, L, K]
    const probs = g.reshape(ops.softmax(g, logits, -1), [B, 1, this.classes]);
    return { logits, weights: ops.reduceSum(g, ops.mul(g, perPosition, probs), 2), params };
  }

  private feeds(batch: Batch): Record<string, Tensor | ArrayLike<number>> {
    const feeds: Record<string, Tensor | ArrayLike<number>> = { features: batch.inputs };
    if (this.opts.regions) {
      const r = checkRegionBatch('SamPoolClassifier (focus learned)', batch, this.opts.regions, this.positions);
      return { ...feeds, regionTokens: r.tokens, regionPadBias: r.padBias, regionCover: r.cover };
    }
    if (this.opts.pooling === 'attention') feeds.keyBias = batch.keyBias ?? new Float32Array(batch.size * this.positions);
    return feeds;
  }

  lossAndGradients(batch: Batch): { loss: Tensor; grads: Map<string, Tensor> } {
    checkBatch('SamPoolClassifier', batch, [this.positions, this.channels], this.positions, false);
    if (!batch.labels) throw new Error('SamPoolClassifier.lossAndGradients: the batch has no labels');
    return splitOutputs(this.trainingGraph(batch.size).run({ ...this.feeds(batch), labels: batch.labels }));
  }

  /** The training graph (forward, loss, backward) for batches of B, built and compiled on first use; it allocates at its first run. */
  trainingGraph(B: number): Graph {
    return this.graphs.get(`train|${B}`, () => {
      const g = new Graph(this.gpu, `medfocus.sam.train[B=${B}]`);
      const { logits, params } = this.forward(g, B, false);
      addCrossEntropyTraining(g, logits, B, [...this.params.keys()], params);
      return g;
    });
  }

  predict(batch: Batch): { probs: Tensor; weights: Tensor } {
    checkBatch('SamPoolClassifier', batch, [this.positions, this.channels], this.positions, false);
    const B = batch.size;
    const g = this.graphs.get(`predict|${B}`, () => {
      const g = new Graph(this.gpu, `medfocus.sam.predict[B=${B}]`);
      const { logits, weights } = this.forward(g, B, true);
      g.output('probs', ops.softmax(g, logits, -1));
      g.output('weights', weights!);
      return g;
    });
    return this.runPredict(g, this.feeds(batch));
  }
}
