// CLIP ViT on the engine: the image and text towers as graphs (graph/graph.ts),
// one compiled graph per (batch size, options) shape, cached and reused.
//
// Forward, as openai/CLIP model.py (see the fixture README for the facts):
//   image: conv1 (stride = patch, no bias) → tokens row-major (1 + gy·G + gx),
//          class token first → + positional → ln_pre → pre-LN blocks → ln_post(token 0) → @ proj
//   text:  token_embedding[ids] + positional → causal pre-LN blocks → ln_final at argmax(ids) → @ text_projection
//   block: x += out_proj(MHA(ln_1(x)));  x += c_proj(act(c_fc(ln_2(x))))
//          act = QuickGELU (OpenAI) or exact GELU (OpenCLIP configs): config.activation
//   logits = exp(logit_scale) · normalize(img) · normalize(txt)ᵀ
// imageGradients runs the image tower's backward (graph/autograd.ts) in the
// same graph, from the features back to the tokens entering ln_pre.
// Activations are [batch, tokens, width]; attention runs in the 'blhd' layout,
// so q/k/v are the projections' outputs viewed as [N, T, heads, head_dim].
//
// MedFocus hooks on the image tower:
// - attnBias: an additive attention bias (e.g. a -inf / 0 mask from a
//   segmentation), rank 2–4, broadcastable to [N, heads|1, T|1, T] (T counts
//   prompt tokens too), added to the scaled scores before the softmax in every
//   block or in the blocks listed in attnBiasLayers. A per-key bias
//   [N, 1, 1, T] (MedFocus' focus) is broadcast over heads and queries by the
//   attention kernel itself; nothing expands it to T×T.
// - classAttention (imageTower): the class token's attention probabilities
//   over the T tokens in the last block (bias included, mean over heads),
//   [N, T]: what MedFocus' explanation picture shows.
// - prompts: shallow VPT (Jia et al., "Visual Prompt Tuning", 2022): P learnable
//   tokens [P, width] are inserted into the INPUT OF THE FIRST TRANSFORMER BLOCK,
//   right after the class token: [cls, p_1..p_P, patch_1..patch_G²]. In CLIP
//   that input is the output of ln_pre (ln_pre belongs to the embedding stage),
//   so the prompts get no positional embedding and no ln_pre, as in VPT, where
//   they are concatenated after the embeddings (positional included). The
//   class token stays token 0, so ln_post / pooling are unchanged.
// - deepPrompts: deep VPT, [k, P, width] (1 <= k <= layers): block i < k gets
//   deepPrompts[i] at the P prompt positions of its input, replacing what
//   block i − 1 produced there (block 0: inserted as the shallow ones); blocks
//   from k on keep the previous block's outputs at those positions. k = 1 is
//   shallow VPT. imageGradients returns ∂loss/∂prompts for either kind.
// - posInterpolation: images of another size (multiples of the patch size)
//   get the positional grid resampled to their patch grid (posembed.ts).
//
// Zero-shot: classify() tokenizes "template with {} → class name" prompts
// (several templates are ensembled as in CLIP's ImageNet evaluation: the mean
// of the normalised embeddings, renormalised), caches the class embeddings
// per (templates, class list), and returns softmax(exp(logit_scale) · cos).
//
// Over 500 lines as one job: ClipModel, one class whose public calls (encode,
// trace, gradients, classify) run the graphs its private builders make, with
// the option types and checks they take.

import type { Gpu } from '../../device.js';
import { Tensor, shapeString, type Shape } from '../../tensor.js';
import { Graph, weightBinder, type Value } from '../../graph/graph.js';
import { GraphCache } from '../../graph/graph-cache.js';
import * as ops from '../../graph/ops.js';
import { backward } from '../../graph/autograd.js';
import { argmax } from '../../kernels/topk.js';
import { l2Normalize } from '../../kernels/l2norm.js';
import { matmul } from '../../kernels/matmul.js';
import { reduceMean } from '../../kernels/reduce.js';
import { softmax } from '../../kernels/softmax.js';
import { clipPreprocess } from '../../kernels/preprocess.js';
import type { SafetensorsFile } from '../../io/safetensors.js';
import type { ClipConfig, ClipTowerConfig } from './config.js';
import type { ClipTokenizer } from './tokenizer.js';
import { POS_INTERPOLATIONS, posInterpolationMatrix, type PosInterpolation } from './posembed.js';
import { loadClipWeights, type ClipWeights, type LoadClipWeightsOptions } from './weights.js';
import { sameShape } from '../../util/shape.js';
import { Lifetime, disposeAll } from '../lifetime.js';

export interface ClipImageOptions {
  /** Additive attention bias, broadcastable to [N, heads|1, T|1, T] (rank 2–4; missing leading dims are 1). */
  attnBias?: Tensor;
  /** Blocks that get attnBias (default: every block). */
  attnBiasLayers?: readonly number[];
  /** Shallow VPT prompt tokens [P, width], inserted after the class token at the first block's input. */
  prompts?: Tensor;
  /**
   * Deep VPT prompt tokens [k, P, width], 1 <= k <= layers: block i < k gets
   * deepPrompts[i] at the prompt positions of its input (not with `prompts`).
   */
  deepPrompts?: Tensor;
  /**
   * Accept images of another size (H, W multiples of the patch size) and
   * resample the positional grid to their patch grid: 'bicubic-antialias' as
   * OpenCLIP's resize_pos_embed, 'bicubic' as Hugging Face's
   * interpolate_pos_encoding. Without it the size must be the checkpoint's.
   */
  posInterpolation?: PosInterpolation;
}

/** The image tower's options inside a caller's graph (imageTower): the tensors of ClipImageOptions as values. */
export interface ClipImageTowerOptions {
  /** [P, width] (shallow VPT). */
  prompts?: Value;
  /** [k, P, width] (deep VPT; not with prompts). */
  deepPrompts?: Value;
  /** Broadcastable to [N, heads|1, T|1, T]. */
  attnBias?: Value;
  attnBiasLayers?: readonly number[];
  /** Required when images are not R×R. */
  posInterpolation?: PosInterpolation;
  /** Also return classAttention (the explanation's input). */
  classAttention?: boolean;
}

/** What imageTower adds to the graph. */
export interface ClipImageTowerValues {
  /** [N, E], not normalised. */
  features: Value;
  /** The tokens entering ln_pre [N, T, W] (T without prompts). */
  embed: Value;
  block0: Value;
  lnPost: Value;
  /** With opts.classAttention: the class token's attention over the T tokens (class token, prompts, patches) in the last block, mean over heads, [N, T]. */
  classAttention?: Value;
}

export interface ClipModelOptions extends LoadClipWeightsOptions {
  /** The tokenizer textEmbeddings / classify use (also settable later as model.tokenizer). */
  tokenizer?: ClipTokenizer;
}

export interface ClipClassifyOptions extends ClipImageOptions {
  /**
   * Prompt template(s); "{}" is replaced by the class name. Several templates
   * are ensembled (mean of the normalised text embeddings, renormalised).
   * Default 'a photo of a {}.'.
   */
  template?: string | readonly string[];
  /** Cut over-long prompts to the context length instead of throwing. */
  truncate?: boolean;
}

export interface ClipClassification {
  /** softmax over classes of the logits, [N, K] row-major. */
  probs: Float32Array;
  /** exp(logit_scale) · cosine(image, class), [N, K] row-major. */
  logits: Float32Array;
  shape: [number, number];
  /** Per image: the index and the name of the most probable class (the first on ties). */
  indices: number[];
  labels: string[];
}

/** An RGBA8 image, as decodeImage returns it. */
export interface ClipRgbaImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** The image tower's intermediates, named as the golden fixtures name them. */
export interface ClipImageTrace {
  image_features: Tensor;
  /** conv → class token → + positional: the input of ln_pre [N, T, W]. */
  vision_patch_embed: Tensor;
  /** Output of block 0 [N, T(+P), W]. */
  vision_block0_out: Tensor;
  /** ln_post(token 0) [N, W], before the projection. */
  vision_ln_post_out: Tensor;
}

/** The text tower's intermediates, named as the golden fixtures name them. */
export interface ClipTextTrace {
  text_features: Tensor;
  /** token embedding + positional [N, C, W]. */
  text_embed: Tensor;
  text_block0_out: Tensor;
  /** ln_final at the argmax(ids) position [N, W], before the projection. */
  text_pooled: Tensor;
}

/** The image tower's backward for loss = Σ features ∘ r (all owned by the caller). */
export interface ClipImageGradients {
  /** Σ encodeImage(images) ∘ r, shape []. */
  loss: Tensor;
  /** ∂loss/∂vision_patch_embed (the tokens entering ln_pre) [N, T, W]. */
  gradVisionTokens: Tensor;
  /** ∂loss/∂visual.proj [W, E]. */
  gradProj: Tensor;
  /** ∂loss/∂prompts ([P, W]) or ∂loss/∂deepPrompts ([k, P, W]), when prompts were given. */
  gradPrompts?: Tensor;
}

/** The class embeddings kept per (templates, class list); the least recently used is dropped beyond this. */
const CLASSIFIER_CACHE_SIZE = 8;

/** Everything an image graph depends on besides N. */
interface ImageGraphSpec {
  N: number;
  H: number;
  W: number;
  /** Prompt tokens per block, and the leading dim of deep prompts (0: shallow or none). */
  P: number;
  deepLayers: number;
  biasShape?: number[];
  layers?: number[];
  interpolation?: PosInterpolation;
  mode: ImageGraphMode;
}

/** What an image graph returns: the features, plus the trace or the gradients. */
type ImageGraphMode = 'encode' | 'trace' | 'gradients';

export interface ClipLogits {
  /** [images, texts] */
  logitsPerImage: Tensor;
  /** [texts, images] */
  logitsPerText: Tensor;
}

export class ClipModel {
  private readonly graphs = new GraphCache();
  /** Normalised class embeddings [K, E] keyed by (templates, class names). */
  private readonly classifiers = new Map<string, Tensor>();
  private readonly lifetime = new Lifetime('ClipModel', 'the model');

  private constructor(readonly gpu: Gpu, private readonly weights: ClipWeights, public tokenizer?: ClipTokenizer) {}

  /** Builds the model from an open safetensors checkpoint (architecture from its keys, shapes and metadata). */
  static async fromSafetensors(gpu: Gpu, file: SafetensorsFile, options: ClipModelOptions = {}): Promise<ClipModel> {
    return new ClipModel(gpu, await loadClipWeights(gpu, file, options), options.tokenizer);
  }

  /** Wraps weights already loaded; the model then owns them. */
  static fromWeights(gpu: Gpu, weights: ClipWeights, tokenizer?: ClipTokenizer): ClipModel {
    return new ClipModel(gpu, weights, tokenizer);
  }

  get config(): ClipConfig {
    return this.weights.config;
  }

  /** What the transformer blocks' linear weights are stored as ('f16' only where asked for and the adapter has shader-f16). */
  get weightDtype(): ClipWeights['weightDtype'] {
    return this.weights.weightDtype;
  }

  /** Why weightDtype is not the dtype asked for (the f32 fallback), for diagnostics; undefined otherwise. */
  get weightDtypeNote(): string | undefined {
    return this.weights.weightDtypeNote;
  }

  /** exp(logit_scale), the temperature the logits are multiplied by. */
  get logitScale(): number {
    return Math.exp(this.weights.logitScale);
  }

  /** images [N, 3, R, R] f32 (already normalised; other sizes with posInterpolation) → image features [N, E] (not normalised). */
  encodeImage(images: Tensor, options: ClipImageOptions = {}): Tensor {
    return this.runImage('encodeImage', images, options, 'encode').image_features;
  }

  /** encodeImage plus the fixture intermediates (all owned by the caller). */
  traceImage(images: Tensor, options: ClipImageOptions = {}): ClipImageTrace {
    return this.runImage('traceImage', images, options, 'trace') as unknown as ClipImageTrace;
  }

  /**
   * The image tower's vector–Jacobian product: for loss = Σ encodeImage(images, options) ∘ r
   * (r [N, E] f32, i.e. ∂loss/∂features), the loss and its gradients w.r.t. the
   * tokens entering ln_pre, w.r.t. visual.proj and w.r.t. the prompts (shallow
   * or deep, when given), in one forward + backward graph.
   */
  imageGradients(images: Tensor, r: Tensor, options: ClipImageOptions = {}): ClipImageGradients {
    const out = this.runImage('imageGradients', images, options, 'gradients', r);
    const grads: ClipImageGradients = { loss: out.loss, gradVisionTokens: out.grad_vision_tokens, gradProj: out.grad_proj };
    if (out.grad_prompts) grads.gradPrompts = out.grad_prompts;
    return grads;
  }

  /** token ids [N, C] (Int32Array of N·C, or an i32 Tensor) → text features [N, E] (not normalised). */
  encodeText(tokens: Int32Array | Tensor): Tensor {
    return this.runText(tokens, false).text_features;
  }

  /** encodeText plus the fixture intermediates (all owned by the caller). */
  traceText(tokens: Int32Array | Tensor): ClipTextTrace {
    return this.runText(tokens, true) as unknown as ClipTextTrace;
  }

  /**
   * L2-normalised text embeddings [K, E] of the prompts (tokenized with
   * model.tokenizer), as the zero-shot classifier uses them. Owned by the caller.
   */
  textEmbeddings(prompts: readonly string[], options: { truncate?: boolean } = {}): Tensor {
    this.lifetime.check('textEmbeddings');
    if (!Array.isArray(prompts) || prompts.length === 0 || prompts.some((p) => typeof p !== 'string')) {
      throw new Error(`ClipModel.textEmbeddings: prompts must be a non-empty array of strings, got ${Array.isArray(prompts) ? `${prompts.length} entries` : typeof prompts}`);
    }
    if (!this.tokenizer) throw new Error('ClipModel.textEmbeddings: no tokenizer (pass { tokenizer } to fromSafetensors or set model.tokenizer = await loadClipTokenizer(path))');
    const ids = this.tokenizer.tokenize(prompts, { contextLength: this.config.text.contextLength, truncate: options.truncate });
    const features = this.encodeText(ids);
    const embeddings = l2Normalize(this.gpu, features);
    this.gpu.flush();
    features.dispose();
    return embeddings;
  }

  /**
   * Zero-shot classification: images (preprocessed [N, 3, R, R] f32, or RGBA8
   * images that get clipPreprocess at the model's resolution) against prompts
   * made from the class names; probabilities are the softmax of
   * exp(logit_scale) · cos(image, class). Class embeddings are cached per
   * (templates, class list) until dispose().
   */
  async classify(images: Tensor | readonly ClipRgbaImage[], classNames: readonly string[], options: ClipClassifyOptions = {}): Promise<ClipClassification> {
    this.lifetime.check('classify');
    if (!Array.isArray(classNames) || classNames.length === 0 || classNames.some((c) => typeof c !== 'string' || c.length === 0)) {
      throw new Error(`ClipModel.classify: classNames must be a non-empty array of non-empty strings, got ${JSON.stringify(classNames)}`);
    }
    const { template = 'a photo of a {}.', truncate, ...imageOptions } = options;
    const templates = typeof template === 'string' ? [template] : [...template];
    if (templates.length === 0 || templates.some((t) => typeof t !== 'string' || !t.includes('{}'))) {
      throw new Error(`ClipModel.classify: template must be a string (or a non-empty array of strings) containing "{}" for the class name, got ${JSON.stringify(template)}`);
    }
    const classes = this.classifier(templates, classNames, truncate ?? false);
    const pixels = images instanceof Tensor ? images : clipPreprocess(this.gpu, images, { size: this.config.vision.imageResolution });
    try {
      const features = this.encodeImage(pixels, imageOptions);
      const normalized = l2Normalize(this.gpu, features);
      const logits = matmul(this.gpu, normalized, classes, { transB: true, alpha: this.logitScale });
      const probs = softmax(this.gpu, logits, { axis: -1 });
      this.gpu.flush();
      features.dispose();
      normalized.dispose();
      const [p, l] = (await Promise.all([probs.read(), logits.read()])) as Float32Array[];
      probs.dispose();
      logits.dispose();
      const [N, K] = [pixels.shape[0], classNames.length];
      const indices: number[] = [];
      for (let n = 0; n < N; n++) {
        let best = 0;
        for (let k = 1; k < K; k++) if (p[n * K + k] > p[n * K + best]) best = k;
        indices.push(best);
      }
      return { probs: p, logits: l, shape: [N, K], indices, labels: indices.map((k) => classNames[k]) };
    } finally {
      if (pixels !== images) pixels.dispose();
    }
  }

  /** The normalised class embeddings [K, E] for these templates and classes (cached). */
  private classifier(templates: readonly string[], classNames: readonly string[], truncate: boolean): Tensor {
    const key = JSON.stringify([templates, classNames, truncate]);
    const cached = this.classifiers.get(key);
    if (cached) {
      // Most recently used last, so eviction drops the least recently used.
      this.classifiers.delete(key);
      this.classifiers.set(key, cached);
      return cached;
    }
    const K = classNames.length;
    const prompts = templates.flatMap((t) => classNames.map((name) => t.replaceAll('{}', name)));
    let classes = this.textEmbeddings(prompts, { truncate });
    if (templates.length > 1) {
      const mean = reduceMean(this.gpu, classes.reshape([templates.length, K, this.config.embedDim]), 0);
      const renormalized = l2Normalize(this.gpu, mean);
      this.gpu.flush();
      classes.dispose();
      mean.dispose();
      classes = renormalized;
    }
    this.classifiers.set(key, classes);
    if (this.classifiers.size > CLASSIFIER_CACHE_SIZE) {
      const [oldest, t] = this.classifiers.entries().next().value!;
      this.classifiers.delete(oldest);
      t.dispose();
    }
    return classes;
  }

  /** logits_per_image = exp(logit_scale) · normalize(img) · normalize(txt)ᵀ, and its transpose. */
  logits(imageFeatures: Tensor, textFeatures: Tensor): ClipLogits {
    const E = this.config.embedDim;
    for (const [name, t] of [['imageFeatures', imageFeatures], ['textFeatures', textFeatures]] as const) {
      if (t.dtype !== 'f32' || t.rank !== 2 || t.shape[1] !== E) throw new Error(`ClipModel.logits: ${name} must be f32 [n, ${E}], got ${t.dtype} ${shapeString(t.shape)}`);
    }
    const img = l2Normalize(this.gpu, imageFeatures);
    const txt = l2Normalize(this.gpu, textFeatures);
    const alpha = this.logitScale;
    const logitsPerImage = matmul(this.gpu, img, txt, { transB: true, alpha });
    const logitsPerText = matmul(this.gpu, txt, img, { transB: true, alpha });
    this.gpu.flush();
    img.dispose();
    txt.dispose();
    return { logitsPerImage, logitsPerText };
  }

  /** Frees the weights and every cached graph. */
  dispose(): void {
    this.graphs.dispose();
    disposeAll(this.classifiers);
    this.weights.dispose();
    this.lifetime.end();
  }

  private runImage(op: string, images: Tensor, options: ClipImageOptions, mode: ImageGraphMode, r?: Tensor): Record<string, Tensor> {
    this.lifetime.check(op);
    const v = this.config.vision;
    if (images.dtype !== 'f32' || images.rank !== 4 || images.shape[1] !== 3) {
      throw new Error(`ClipModel.${op}: images must be f32 [N, 3, ${v.imageResolution}, ${v.imageResolution}], got ${images.dtype} ${shapeString(images.shape)}`);
    }
    const [N, , H, W] = images.shape;
    const interpolation = options.posInterpolation;
    const T = this.checkImageSize(op, images.shape, interpolation);
    const E = this.config.embedDim;
    if (mode === 'gradients' && (r?.dtype !== 'f32' || !sameShape(r.shape, [N, E]))) {
      throw new Error(`ClipModel.${op}: r must be f32 [N, E] = [${N}, ${E}], got ${r ? `${r.dtype} ${shapeString(r.shape)}` : 'none'}`);
    }
    const { P, deepLayers } = checkPromptOptions(op, options.prompts, options.deepPrompts, v.width, v.layers);
    const biasShape = options.attnBias ? checkBias(op, options.attnBias, N, v.heads, T + P) : undefined;
    const layers = options.attnBiasLayers ? checkLayers(op, options.attnBiasLayers, v.layers) : undefined;
    const spec: ImageGraphSpec = { N, H, W, P, deepLayers, biasShape, layers, interpolation, mode };
    const key = `image|${N}|${H}x${W}|${interpolation ?? '-'}|${P}|${deepLayers}|${biasShape ? shapeString(biasShape) : '-'}|${layers?.join(',') ?? 'all'}|${mode}`;
    const g = this.graphs.get(key, () => this.buildImageGraph(spec));
    const feeds: Record<string, Tensor> = { images };
    if (r) feeds.r = r;
    const prompts = options.prompts ?? options.deepPrompts;
    if (prompts) feeds.prompts = prompts;
    if (options.attnBias) feeds.attnBias = options.attnBias;
    return g.run(feeds);
  }

  /** Checks an image shape [N, 3, H, W] against the model (and the interpolation choice); returns the token count G_h·G_w + 1. */
  private checkImageSize(op: string, shape: Shape, interpolation: PosInterpolation | undefined): number {
    const v = this.config.vision;
    const R = v.imageResolution;
    const [, , H, W] = shape;
    if (interpolation !== undefined && !POS_INTERPOLATIONS.includes(interpolation)) {
      throw new Error(`ClipModel.${op}: posInterpolation must be ${POS_INTERPOLATIONS.map((m) => `'${m}'`).join(' or ')}, got ${JSON.stringify(interpolation)}`);
    }
    if (interpolation === undefined && (H !== R || W !== R)) {
      throw new Error(`ClipModel.${op}: images must be f32 [N, 3, ${R}, ${R}], got ${shapeString(shape)} (other sizes need options.posInterpolation)`);
    }
    const p = v.patchSize;
    if (H % p !== 0 || W % p !== 0 || H === 0 || W === 0) {
      throw new Error(`ClipModel.${op}: image height and width must be positive multiples of the patch size ${p}, got ${shapeString(shape)}`);
    }
    return (H / p) * (W / p) + 1;
  }

  private runText(tokens: Int32Array | Tensor, trace: boolean): Record<string, Tensor> {
    const op = trace ? 'traceText' : 'encodeText';
    this.lifetime.check(op);
    const C = this.config.text.contextLength;
    let N: number;
    if (tokens instanceof Tensor) {
      if (tokens.dtype !== 'i32' || tokens.rank !== 2 || tokens.shape[1] !== C) throw new Error(`ClipModel.${op}: tokens must be i32 [N, ${C}], got ${tokens.dtype} ${shapeString(tokens.shape)}`);
      N = tokens.shape[0];
    } else {
      if (!(tokens instanceof Int32Array) || tokens.length === 0 || tokens.length % C !== 0) {
        throw new Error(`ClipModel.${op}: tokens must be an Int32Array of N·${C} ids (rows of ${C}), got ${tokens instanceof Int32Array ? `${tokens.length} ids` : typeof tokens}`);
      }
      N = tokens.length / C;
      const V = this.config.text.vocabSize;
      const bad = tokens.findIndex((id) => id < 0 || id >= V);
      if (bad >= 0) throw new Error(`ClipModel.${op}: token id ${tokens[bad]} at row ${Math.floor(bad / C)}, column ${bad % C} is outside the vocabulary [0, ${V})`);
    }
    const g = this.graphs.get(`text|${N}|${trace}`, () => this.buildTextGraph(N, trace));
    return g.run({ tokens });
  }

  /** A graph whose weights are the model's parameters, bound on first use. */
  private newGraph(name: string): { g: Graph; p: (name: string) => Value } {
    const g = new Graph(this.gpu, name);
    return { g, p: this.weightBinder(g) };
  }

  /** Binds the model's parameters into g as weights, each on first use. */
  private weightBinder(g: Graph): (name: string) => Value {
    return weightBinder(g, this.weights.params, 'ClipModel').p;
  }

  /**
   * Adds the image tower to a caller's graph (e.g. a training graph with
   * trainable prompts and a head): the model's parameters enter it as frozen
   * weights. images: [N, 3, R, R] (other sizes with posInterpolation);
   * prompts: a [P, width] value (shallow VPT) or deepPrompts [k, P, width];
   * attnBias: broadcastable to [N, heads|1, T|1, T]. Returns the projected
   * features [N, embed] and the intermediates the trace names.
   */
  imageTower(g: Graph, images: Value, opts: ClipImageTowerOptions = {}): ClipImageTowerValues {
    const op = 'imageTower';
    this.lifetime.check(op);
    const v = this.config.vision;
    if (images.dtype !== 'f32' || images.shape.length !== 4 || images.shape[1] !== 3) {
      throw new Error(`ClipModel.${op}: images must be f32 [N, 3, ${v.imageResolution}, ${v.imageResolution}], got ${images.dtype} ${shapeString(images.shape)}`);
    }
    const T = this.checkImageSize(op, images.shape, opts.posInterpolation);
    const { P } = checkPromptOptions(op, opts.prompts, opts.deepPrompts, v.width, v.layers);
    if (opts.attnBias) checkBias(op, opts.attnBias, images.shape[0], v.heads, T + P);
    if (opts.attnBiasLayers) checkLayers(op, opts.attnBiasLayers, v.layers);
    return this.imageTowerWith(g, this.weightBinder(g), images, opts);
  }

  /** The image tower on checked inputs (imageTower / runImage validate). */
  private imageTowerWith(g: Graph, p: (name: string) => Value, images: Value, opts: ClipImageTowerOptions): ClipImageTowerValues {
    const v = this.config.vision;
    const [N, , H, Wpx] = images.shape;
    const W = v.width;
    const [gh, gw] = [H / v.patchSize, Wpx / v.patchSize];
    const G2 = gh * gw;
    const T0 = G2 + 1;
    const patches = ops.conv2d(g, images, p('visual.conv'), { stride: v.patchSize });
    const patchTokens = ops.permute(g, g.reshape(patches, [N, W, G2]), [0, 2, 1]);
    const cls = ops.broadcastTo(g, g.reshape(p('visual.cls'), [1, 1, W]), [N, 1, W]);
    let pos = p('visual.pos');
    if (gh !== v.grid || gw !== v.grid) {
      // The class token's row is kept; the grid rows are resampled by one matrix product.
      const resample = g.constant(`visual.posResample[${gh}x${gw}]`, posInterpolationMatrix(v.grid, gh, gw, opts.posInterpolation!), [G2, v.grid * v.grid]);
      const grid = ops.matmul(g, resample, ops.slice(g, pos, [1, 0], [v.tokens, W]));
      pos = ops.concat(g, [ops.slice(g, pos, [0, 0], [1, W]), grid], 0);
    }
    const embed = ops.add(g, ops.concat(g, [cls, patchTokens], 1), pos);
    let x = ops.layerNorm(g, embed, p('visual.lnPre.w'), p('visual.lnPre.b'), this.config.layerNormEps);
    const deep = opts.deepPrompts;
    const P = deep ? deep.shape[1] : (opts.prompts?.shape[0] ?? 0);
    const deepLayers = deep ? deep.shape[0] : 0;
    // The prompt tokens of block i, as [N, P, W].
    const promptsOf = (i: number): Value => {
      const one = deep ? ops.slice(g, deep, [i, 0, 0], [i + 1, P, W]) : g.reshape(opts.prompts!, [1, P, W]);
      return ops.broadcastTo(g, one, [N, P, W]);
    };
    const bias = opts.attnBias;
    const layers = opts.attnBiasLayers;
    let block0: Value | undefined;
    let last: BlockValues | undefined;
    for (let i = 0; i < v.layers; i++) {
      const clsToken = () => ops.slice(g, x, [0, 0, 0], [N, 1, W]);
      // Block 0: insert after the class token; deep blocks: replace the previous block's prompt outputs.
      if (P > 0 && i === 0) x = ops.concat(g, [clsToken(), promptsOf(0), ops.slice(g, x, [0, 1, 0], [N, T0, W])], 1);
      else if (i < deepLayers) x = ops.concat(g, [clsToken(), promptsOf(i), ops.slice(g, x, [0, 1 + P, 0], [N, T0 + P, W])], 1);
      const withBias = bias && (!layers || layers.includes(i)) ? bias : undefined;
      last = this.block(g, p, x, `visual.blocks.${i}.`, v, { bias: withBias });
      x = last.out;
      if (i === 0) block0 = x;
    }
    const cls0 = g.reshape(ops.slice(g, x, [0, 0, 0], [N, 1, W]), [N, W]);
    const lnPost = ops.layerNorm(g, cls0, p('visual.lnPost.w'), p('visual.lnPost.b'), this.config.layerNormEps);
    const features = ops.matmul(g, lnPost, p('visual.proj'));
    const classAttention = opts.classAttention ? classTokenAttention(g, last!) : undefined;
    return { features, embed, block0: block0!, lnPost, ...(classAttention && { classAttention }) };
  }

  private buildImageGraph({ N, H, W, P, deepLayers, biasShape, layers, interpolation, mode }: ImageGraphSpec): Graph {
    const v = this.config.vision;
    const { g, p } = this.newGraph(`clip.image[N=${N}]`);
    const images = g.input('images', [N, 3, H, W]);
    const promptInput = P > 0 ? g.input('prompts', deepLayers > 0 ? [deepLayers, P, v.width] : [P, v.width]) : undefined;
    const attnBias = biasShape ? g.input('attnBias', biasShape) : undefined;
    const { features, embed, block0, lnPost } = this.imageTowerWith(g, p, images, {
      [deepLayers > 0 ? 'deepPrompts' : 'prompts']: promptInput,
      attnBias,
      attnBiasLayers: layers,
      posInterpolation: interpolation,
    });
    if (mode !== 'gradients') g.output('image_features', features);
    if (mode === 'trace') {
      g.output('vision_patch_embed', embed);
      g.output('vision_block0_out', block0!);
      g.output('vision_ln_post_out', lnPost);
    }
    if (mode === 'gradients') {
      // r is ∂loss/∂features, so it seeds the backward directly; conv2d (no
      // backward rule) stays out of it: nothing before embed needs a gradient.
      const r = g.input('r', features.shape);
      g.output('loss', ops.reduceSum(g, ops.mul(g, features, r), [0, 1]));
      const grads = backward(g, features, [embed, p('visual.proj'), ...(promptInput ? [promptInput] : [])], { seed: r });
      g.output('grad_vision_tokens', grads.get(embed)!);
      g.output('grad_proj', grads.get(p('visual.proj'))!);
      if (promptInput) g.output('grad_prompts', grads.get(promptInput)!);
    }
    return g;
  }

  private buildTextGraph(N: number, trace: boolean): Graph {
    const t = this.config.text;
    const C = t.contextLength;
    const W = t.width;
    const { g, p } = this.newGraph(`clip.text[N=${N}]`);
    const tokens = g.input('tokens', [N, C], 'i32');
    const embed = ops.add(g, ops.gather(g, p('text.tokenEmbedding'), tokens), p('text.pos'));
    let x = embed;
    let block0: Value | undefined;
    for (let i = 0; i < t.layers; i++) {
      x = this.block(g, p, x, `text.blocks.${i}.`, t, { causal: true }).out;
      if (i === 0) block0 = x;
    }
    // Pool at the FIRST largest id of each row (torch.argmax), all on the GPU:
    // ids as f32 (a gather from an id → id table) → argmax → one-hot row → a
    // [1, C] × [C, W] product per row, which copies that token exactly.
    const idTable = new Float32Array(t.vocabSize);
    for (let i = 0; i < idTable.length; i++) idTable[i] = i;
    const ids = g.reshape(ops.gather(g, g.constant('text.idTable', idTable, [t.vocabSize, 1]), tokens), [N, C]);
    const eotIndex = g.apply('argmax', [ids], [N], 'i32', (gpu, [tIds], out) => {
      const r = argmax(gpu, tIds, { axis: -1 });
      gpu.commandEncoder().copyBufferToBuffer(r.buffer, 0, out.buffer, 0, Math.ceil(r.byteLength / 4) * 4);
      r.dispose();
    });
    const eye = new Float32Array(C * C);
    for (let i = 0; i < C; i++) eye[i * C + i] = 1;
    const oneHot = g.reshape(ops.gather(g, g.constant('text.eye', eye, [C, C]), eotIndex), [N, 1, C]);
    const selected = g.reshape(ops.matmul(g, oneHot, x), [N, W]);
    // ln_final is per token, so normalising only the pooled row equals pooling the normalised sequence.
    const pooled = ops.layerNorm(g, selected, p('text.lnFinal.w'), p('text.lnFinal.b'), this.config.layerNormEps);
    g.output('text_features', ops.matmul(g, pooled, p('text.proj')));
    if (trace) {
      g.output('text_embed', embed);
      g.output('text_block0_out', block0!);
      g.output('text_pooled', pooled);
    }
    return g;
  }

  /** Pre-LN residual block: x + out(MHA(ln1 x)), then + proj(act(fc(ln2 x))), act from the config. */
  private block(g: Graph, p: (name: string) => Value, x: Value, n: string, tower: ClipTowerConfig, opts: { bias?: Value; causal?: boolean }): BlockValues {
    const [N, T, D] = x.shape;
    const H = tower.heads;
    const eps = this.config.layerNormEps;
    const h = ops.layerNorm(g, x, p(`${n}ln1.w`), p(`${n}ln1.b`), eps);
    const [q, k, v] = (['q', 'k', 'v'] as const).map((part) => g.reshape(ops.matmul(g, h, p(`${n}${part}.w`), { transB: true, bias: p(`${n}${part}.b`) }), [N, T, H, D / H]));
    const a = g.reshape(ops.attention(g, q, k, v, { layout: 'blhd', bias: opts.bias, causal: opts.causal }), [N, T, D]);
    x = ops.matmul(g, a, p(`${n}out.w`), { transB: true, bias: p(`${n}out.b`), residual: x });
    const h2 = ops.layerNorm(g, x, p(`${n}ln2.w`), p(`${n}ln2.b`), eps);
    const m = ops.matmul(g, h2, p(`${n}fc.w`), { transB: true, bias: p(`${n}fc.b`), activation: this.config.activation });
    return { out: ops.matmul(g, m, p(`${n}proj.w`), { transB: true, bias: p(`${n}proj.b`), residual: x }), q, k, bias: opts.bias };
  }
}

/** A block's output and its attention's inputs (q, k [N, T, H, D], blhd; the additive bias). */
interface BlockValues {
  out: Value;
  q: Value;
  k: Value;
  bias?: Value;
}

/**
 * The class token's attention probabilities over the T tokens of a block,
 * [N, T] (mean over heads): softmax(q_cls · kᵀ / √D + bias_cls) recomputed
 * from the block's q, k and bias (the fused kernel keeps no probabilities).
 */
function classTokenAttention(g: Graph, { q, k, bias }: BlockValues): Value {
  const [N, T, H, D] = q.shape;
  const qCls = ops.permute(g, ops.slice(g, q, [0, 0, 0, 0], [N, 1, H, D]), [0, 2, 1, 3]); // [N, H, 1, D]
  const kT = ops.permute(g, k, [0, 2, 1, 3]); // [N, H, T, D]
  let scores = ops.matmul(g, qCls, kT, { transB: true, alpha: 1 / Math.sqrt(D) }); // [N, H, 1, T]
  if (bias) {
    // The bias is rank 2–4 broadcastable to [N, H, T|1, T]: the class token's row.
    const b4 = g.reshape(bias, [...Array(4 - bias.shape.length).fill(1), ...bias.shape]);
    scores = ops.add(g, scores, ops.slice(g, b4, [0, 0, 0, 0], [b4.shape[0], b4.shape[1], 1, T]));
  }
  return ops.reduceMean(g, ops.softmax(g, scores, -1), [1, 2]);
}

type Shaped = { dtype: string; shape: Shape };

/** Prompt tokens per block and the number of deep-prompted blocks (0 unless deep), after checking the shapes. */
function checkPromptOptions(op: string, prompts: Shaped | undefined, deepPrompts: Shaped | undefined, width: number, layers: number): { P: number; deepLayers: number } {
  if (prompts && deepPrompts) throw new Error(`ClipModel.${op}: give prompts (shallow VPT) or deepPrompts (deep VPT), not both`);
  if (prompts) {
    if (prompts.dtype !== 'f32' || prompts.shape.length !== 2 || prompts.shape[1] !== width || prompts.shape[0] < 1) {
      throw new Error(`ClipModel.${op}: prompts must be f32 [P, ${width}] with P >= 1, got ${prompts.dtype} ${shapeString(prompts.shape)}`);
    }
    return { P: prompts.shape[0], deepLayers: 0 };
  }
  if (deepPrompts) {
    const [k, P, W] = deepPrompts.shape;
    if (deepPrompts.dtype !== 'f32' || deepPrompts.shape.length !== 3 || W !== width || P < 1 || k < 1 || k > layers) {
      throw new Error(`ClipModel.${op}: deepPrompts must be f32 [k, P, ${width}] with 1 <= k <= ${layers} (blocks) and P >= 1, got ${deepPrompts.dtype} ${shapeString(deepPrompts.shape)}`);
    }
    return { P, deepLayers: k };
  }
  return { P: 0, deepLayers: 0 };
}

/** The bias as rank 4 (leading 1s added); throws unless it broadcasts to [N, heads, T, T] with the last dim exactly T (keys). */
function checkBias(op: string, bias: Shaped, N: number, heads: number, T: number): number[] {
  const full = [N, heads, T, T];
  const rank = bias.shape.length;
  if (bias.dtype !== 'f32' || rank < 2 || rank > 4) {
    throw new Error(`ClipModel.${op}: attnBias must be f32 of rank 2–4 broadcastable to [N, heads, T, T] = ${shapeString(full)}, got ${bias.dtype} ${shapeString(bias.shape)}`);
  }
  const shape = [...Array(4 - rank).fill(1), ...bias.shape];
  if (shape.some((d, i) => d !== 1 && d !== full[i]) || shape[3] !== T) {
    throw new Error(`ClipModel.${op}: attnBias ${shapeString(bias.shape)} does not broadcast to [N, heads, T, T] = ${shapeString(full)} (T counts the class token, the patches and any prompt tokens; the last dim (keys) must be T, the query dim T or 1)`);
  }
  return shape;
}

function checkLayers(op: string, layers: readonly number[], count: number): number[] {
  const bad = layers.find((l) => !Number.isInteger(l) || l < 0 || l >= count);
  if (bad !== undefined) throw new Error(`ClipModel.${op}: attnBiasLayers entry ${bad} is not a block index in [0, ${count})`);
  return [...new Set(layers)].sort((a, b) => a - b);
}
