// SAM's mask decoder on the engine, one implementation for MobileSAM (SAM v1
// decoder, weights from sam.onnx) and SAM2 (sam2 MaskDecoder: object-score
// token and head, sigmoid IoU head, high-resolution feature fusion, dynamic
// single-mask choice).
//
// The weights (names, layouts, checks) are in mask-decoder-weights.ts; choosing
// among the M masks and resizing them to the image in mask-selection.ts.
//
// Forward (predict_masks), as a graph per (prompts B, points N, mask input):
//   tokens  = [obj_score_token?, iou_token, mask_tokens×M, sparse prompts]   (assembled on the host)
//   src     = image_embedding + dense  (dense = mask_downscaling(mask) or no_mask_embed)
//   two-way transformer, depth 2 (post-norm; layer 0: self-attention without PE and residual):
//     q = LN1(q + SA(q + qpe, q + qpe, q))            queries attend to each other
//     q = LN2(q + A_t2i(q + qpe, k + kpe, k))         tokens → image (internal dim D/2)
//     q = LN3(q + MLP(q))                              ReLU MLP
//     k = LN4(k + A_i2t(k + kpe, q + qpe, q))         image → tokens
//   final: q = LN(q + A_t2i(q + qpe, k + kpe, k))
//   upscale: GELU(LN2d(convT(k) [+ feat_s1])) → GELU(convT(·) [+ feat_s0])       [B, D/8, 4h, 4w]
//   masks = hypernetwork_MLP_i(mask token i) @ upscaled;  iou = MLP(iou token) [σ];  object score = MLP(token 0)
//
// Cost (MobileSAM, h = 64: ~0.9 GMAC per prompt, was 1.3): with T ≈ 7 tokens
// per prompt the attentions are reassociated around the tokens, so no
// per-prompt image-side projection of width `inner` is ever made:
//   token → image: scores = (q W_kᵀ)·keysᵀ + q·(PE W_k)ᵀ per head (PE W_k uploaded
//     once per embedding size), out = Σ_h (P_h·keys)·(W_v,h W_o,h) (pre-multiplied);
//   image → token: scores = (keys + PE)·(W_q,h k_hᵀ) + b_q,h k_hᵀ, out = Σ_h P_h·(v_h W_o,h);
//   while the dense prompt is the same for every prompt (no mask input), layer
//   0's keys are projected once for the batch instead (the batch folds into the
//   query length over one shared key set).
// The upscaling's 2×2 stride-2 transposed convolutions write disjoint blocks:
// each is one matmul per input pixel in the token layout (bias and GELU fused;
// LayerNorm2d a row LayerNorm), and only the M mask planes are permuted back
// to image order at the end.
// Embedding sizes: any square h×h (an encoder input size S = 16h); the dense PE,
// prompt frame and low-res mask side (4h) follow the features given.
//
// Longer than 500 lines on purpose: it is one class whose upload() lays the
// weights out (q_scaled, k_heads, vo, q_heads, upscale blocks) for exactly
// the graph builders below that read them; apart, neither half reads alone.

import type { Gpu } from '../../device.js';
import { Tensor, shapeString } from '../../tensor.js';
import { Graph, weightBinder, type Value } from '../../graph/graph.js';
import { GraphCache } from '../../graph/graph-cache.js';
import * as ops from '../../graph/ops.js';
import { matmul as matmulKernel } from '../../kernels/matmul.js';
import { slice } from '../../kernels/transform.js';
import { densePositionalEncoding, embedMask, encodePoints, type HostTensor, type PointEncoderParams, type PromptPoints } from './prompt-encoder.js';
import { checkSamDecoderWeights, samDecoderKeys, type SamDecoderConfig, type SamDecoderWeights } from './mask-decoder-weights.js';

/** Per-image features the decoder reads. */
export interface SamImageFeatures {
  /** [1, D, h, w] (SAM2: backbone level 2 + no_mem_embed). */
  imageEmbedding: Tensor;
  /** SAM2: [feat_s0 [1, D/8, 4h, 4w], feat_s1 [1, D/4, 2h, 2w]], i.e. after conv_s0 / conv_s1. */
  highRes?: readonly [Tensor, Tensor];
}

/** Raw decoder outputs for every token, on the GPU (owned by the caller). */
export interface SamDecoderOutputs {
  /** [B, M, 4h, 4w] mask logits of all M tokens. */
  masks: Tensor;
  /** [B, M] (SAM2: after the sigmoid). */
  iou: Tensor;
  /** SAM2: [B, 1] object-score logits. */
  objectScore?: Tensor;
}

/** The same, read back to the host. */
export interface SamHostOutputs {
  masks: Float32Array;
  iou: Float32Array;
  objectScore?: Float32Array;
  batch: number;
  /** Masks per prompt. */
  tokens: number;
  /** Low-res mask side 4h. */
  size: number;
}

function transpose2d(t: HostTensor): Float32Array {
  const [rows, cols] = t.shape;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = t.data[r * cols + c];
  return out;
}

const OP = 'SamMaskDecoder';
/** Parameters used on the host (point encoding, token rows) or uploaded rearranged (hypernetwork MLPs, upscaling convolutions). */
const NOT_UPLOADED_AS_IS = /^prompt_encoder\.(pe_layer|point_embeddings|not_a_point_embed)\.|^mask_decoder\.(iou_token|mask_tokens|obj_score_token)\.|\.output_hypernetworks_mlps\.|^mask_decoder\.output_upscaling\.[03]\./;
const LINEAR_WEIGHT = /(_proj|\.lin[12]|\.layers\.\d+)\.weight$/;

interface AttentionValues {
  q: Value;
  qb: Value;
  k: Value;
  kb: Value;
  v: Value;
  vb: Value;
  o: Value;
  ob: Value;
}

/** The embedding-size-dependent parts of one decode. */
interface EmbeddingGeometry {
  /** Embedding side h (= w). */
  side: number;
  /** The prompt frame S = 16h. */
  frame: number;
  /** Low-res mask side 4h. */
  maskSize: number;
}

export class SamMaskDecoder {
  private readonly graphs = new GraphCache();
  private disposed = false;
  /** Host parts of the prompt encoder. */
  readonly pointParams: PointEncoderParams;
  /** [obj?, iou, mask tokens] rows [T0, D]. */
  private readonly outputTokens: Float32Array;
  private readonly params: Map<string, Tensor>;
  /** Embedding sides whose positional parameters (dense PE, PE·W_k per attention) are uploaded. */
  private readonly sides = new Set<number>();

  private constructor(readonly gpu: Gpu, readonly config: SamDecoderConfig, weights: SamDecoderWeights) {
    const t = (k: string) => weights.tensors.get(k)!;
    const D = config.embedDim;
    this.pointParams = {
      gaussian: t('prompt_encoder.pe_layer.positional_encoding_gaussian_matrix'),
      pointEmbeddings: { data: Float32Array.from([0, 1, 2, 3].flatMap((i) => [...t(`prompt_encoder.point_embeddings.${i}.weight`).data])), shape: [4, D] },
      notAPoint: t('prompt_encoder.not_a_point_embed.weight'),
      imageSize: config.imageSize,
    };
    const rows = [...(config.objectScore ? [t('mask_decoder.obj_score_token.weight')] : []), t('mask_decoder.iou_token.weight'), t('mask_decoder.mask_tokens.weight')];
    this.outputTokens = new Float32Array(rows.reduce((n, r) => n + r.data.length, 0));
    rows.reduce((o, r) => (this.outputTokens.set(r.data, o), o + r.data.length), 0);
    this.params = new Map();
    try {
      this.upload(weights);
    } catch (e) {
      for (const p of this.params.values()) p.dispose();
      throw e;
    }
  }

  /** Checks the weights (Error naming every bad key) and uploads them. */
  static create(gpu: Gpu, weights: SamDecoderWeights, source = 'SAM decoder weights'): SamMaskDecoder {
    checkSamDecoderWeights(source, weights);
    return new SamMaskDecoder(gpu, weights.config, weights);
  }

  /** Number of output tokens before the prompt tokens (object score?, IoU, masks). */
  get leadingTokens(): number {
    return this.outputTokens.length / this.config.embedDim;
  }

  /** Image pixels per embedding pixel (16): an embedding of side h belongs to the prompt frame 16h. */
  get patchSize(): number {
    return this.config.imageSize / this.config.embeddingSize;
  }

  /** Low-resolution mask side 4h at the weights' native embedding size. */
  get maskSize(): number {
    return 4 * this.config.embeddingSize;
  }

  /** maxBatchFor at the native embedding size. */
  get maxBatch(): number {
    return this.maxBatchFor(this.config.embeddingSize);
  }

  /**
   * Most prompts one graph run decodes at embedding side h: the largest
   * per-prompt activation (the upscaled embedding [4h·4w, D/8] = 2·h·w·D
   * floats) must fit one storage binding.
   */
  maxBatchFor(side: number): number {
    const perPrompt = 4 * 2 * side * side * this.config.embedDim;
    return Math.max(1, Math.min(256, Math.floor(this.gpu.limits.maxStorageBufferBindingSize / perPrompt)));
  }

  private t2iModules(): string[] {
    const t = 'mask_decoder.transformer';
    return [...Array.from({ length: this.config.depth }, (_, i) => `${t}.layers.${i}.cross_attn_token_to_image`), `${t}.final_attn_token_to_image`];
  }

  private i2tModules(): string[] {
    return Array.from({ length: this.config.depth }, (_, i) => `mask_decoder.transformer.layers.${i}.cross_attn_image_to_token`);
  }

  private upload(weights: SamDecoderWeights): void {
    const c = this.config;
    const D = c.embedDim;
    const H = c.heads;
    const inner = c.crossDim;
    const dh = inner / H;
    const scale = 1 / Math.sqrt(dh);
    const w = (key: string) => weights.tensors.get(key)!.data;
    const put = (name: string, data: Float32Array, shape: readonly number[]) => this.params.set(name, Tensor.fromArray(this.gpu, data, shape));
    for (const { key, shape } of samDecoderKeys(c)) {
      if (NOT_UPLOADED_AS_IS.test(key)) continue;
      const t = weights.tensors.get(key)!;
      // Linear weights go up as [in, out], the matmul's B operand.
      if (LINEAR_WEIGHT.test(key)) put(key, transpose2d(t), [shape[1], shape[0]]);
      else if (key === 'prompt_encoder.no_mask_embed.weight') put(key, t.data, [1, D, 1, 1]);
      else put(key, t.data, shape);
    }
    // Hypernetwork MLPs stacked per layer: [M, in, out] weights, [M, 1, out] biases (one batched matmul per layer).
    const M = c.numMaskTokens;
    [[D, D], [D, D], [D, D / 8]].forEach(([inDim, outDim], layer) => {
      const wt = new Float32Array(M * inDim * outDim);
      const b = new Float32Array(M * outDim);
      for (let i = 0; i < M; i++) {
        const key = `mask_decoder.output_hypernetworks_mlps.${i}.layers.${layer}`;
        wt.set(transpose2d(weights.tensors.get(`${key}.weight`)!), i * inDim * outDim);
        b.set(w(`${key}.bias`), i * outDim);
      }
      put(`hyper.${layer}.weight`, wt, [M, inDim, outDim]);
      put(`hyper.${layer}.bias`, b, [M, 1, outDim]);
    });
    // Token → image attentions, reassociated around the few queries (see tokenToImage):
    // scaled q projection; W_k per head [H, dh, D] (PyTorch's [inner, D] as is);
    // W_v·W_o per head stacked [H·D, D] and its bias b_v·W_o + b_o.
    for (const name of this.t2iModules()) {
      const q = weights.tensors.get(`${name}.q_proj.weight`)!;
      put(`${name}.q_scaled.weight`, transpose2d(q).map((v) => v * scale), [D, inner]);
      put(`${name}.q_scaled.bias`, w(`${name}.q_proj.bias`).map((v) => v * scale), [inner]);
      put(`${name}.k_heads`, w(`${name}.k_proj.weight`), [H, dh, D]);
      const wv = w(`${name}.v_proj.weight`); // [inner, D]
      const wo = w(`${name}.out_proj.weight`); // [D, inner]
      const vo = new Float32Array(H * D * D);
      for (let h = 0; h < H; h++) {
        for (let i = 0; i < D; i++) {
          for (let o = 0; o < D; o++) {
            let s = 0;
            for (let d = 0; d < dh; d++) s += wv[(h * dh + d) * D + i] * wo[o * inner + h * dh + d];
            vo[(h * D + i) * D + o] = s;
          }
        }
      }
      put(`${name}.vo.weight`, vo, [H * D, D]);
      const bv = w(`${name}.v_proj.bias`);
      const bo = w(`${name}.out_proj.bias`);
      put(`${name}.vo.bias`, Float32Array.from(bo, (b, o) => bv.reduce((s, v, k) => s + v * wo[o * inner + k], b)), [D]);
    }
    // Image → token attentions: scaled W_q per head [H, D, dh] and bias [H, 1, dh]; W_o per head [H, dh, D].
    for (const name of this.i2tModules()) {
      const wq = w(`${name}.q_proj.weight`); // [inner, D]
      const qHeads = new Float32Array(H * D * dh);
      for (let h = 0; h < H; h++) for (let k = 0; k < D; k++) for (let d = 0; d < dh; d++) qHeads[(h * D + k) * dh + d] = scale * wq[(h * dh + d) * D + k];
      put(`${name}.q_heads`, qHeads, [H, D, dh]);
      put(`${name}.q_heads_bias`, w(`${name}.q_proj.bias`).map((v) => v * scale), [H, 1, dh]);
      put(`${name}.o_heads`, transpose2d(weights.tensors.get(`${name}.out_proj.weight`)!), [H, dh, D]);
    }
    // Output upscaling: both 2×2 stride-2 transposed convolutions write disjoint 2×2 blocks, so each is a
    // matmul per input pixel: [in, (ky, kx, out)] weights, biases repeated per block position.
    const md = 'mask_decoder.output_upscaling';
    for (const [layer, inC, outC] of [[0, D, D / 4], [3, D / 4, D / 8]]) {
      const wt = w(`${md}.${layer}.weight`); // [in, out, 2, 2]
      const blocks = new Float32Array(inC * 4 * outC);
      for (let i = 0; i < inC; i++) for (let o = 0; o < outC; o++) for (let k = 0; k < 4; k++) blocks[(i * 4 + k) * outC + o] = wt[(i * outC + o) * 4 + k];
      put(`upscale.${layer}.weight`, blocks, [inC, 4 * outC]);
      const b = w(`${md}.${layer}.bias`);
      put(`upscale.${layer}.bias`, Float32Array.from({ length: 4 * outC }, (_, j) => b[j % outC]), [4 * outC]);
    }
  }

  /**
   * The positional parameters of embedding side h, uploaded once per side:
   * the dense PE in the token layout [1, h·w, D] and, per token → image
   * attention, W_k·PEᵀ [inner, h·w] (the keys' positional term, heads in the rows).
   */
  private ensureSide(side: number): void {
    if (this.sides.has(side)) return;
    const D = this.config.embedDim;
    const pe = densePositionalEncoding(this.pointParams.gaussian, side, side);
    const hw = side * side;
    const tokens = new Float32Array(hw * D);
    for (let ch = 0; ch < D; ch++) for (let i = 0; i < hw; i++) tokens[i * D + ch] = pe[ch * hw + i];
    const imagePe = Tensor.fromArray(this.gpu, tokens, [1, hw, D]);
    this.params.set(`image_pe.${side}`, imagePe);
    const H = this.config.heads;
    const dh = this.config.crossDim / H;
    for (const name of this.t2iModules()) {
      const wk = this.params.get(`${name}.k_heads`)!.reshape([H * dh, D]);
      this.params.set(`${name}.pe_keys.${side}`, matmulKernel(this.gpu, wk, imagePe.reshape([hw, D]), { transB: true }));
    }
    this.sides.add(side);
  }

  /** get_dense_pe() [1, D, h, w] on the host (default: the native embedding side). */
  densePositionalEncoding(side = this.config.embeddingSize): Float32Array {
    return densePositionalEncoding(this.pointParams.gaussian, side, side);
  }

  /** Sparse prompt embeddings [B, N, D] of points in the S×S prompt frame (default: the native frame). */
  encodePoints(points: PromptPoints, frame = this.config.imageSize): Float32Array {
    return encodePoints(this.pointParams, points, `${OP}.encodePoints`, frame);
  }

  /** Dense prompt embedding of mask logits [B, 1, 4h, 4w] → [B, D, h, w] (owned by the caller). */
  embedMask(mask: Tensor): Tensor {
    this.checkAlive('embedMask');
    if (mask.dtype !== 'f32' || mask.rank !== 4 || mask.shape[1] !== 1 || mask.shape[2] !== mask.shape[3] || mask.shape[2] % 4 !== 0 || mask.shape[2] < 4) {
      throw new Error(`${OP}.embedMask: mask must be f32 [B, 1, 4h, 4h] (${this.maskSize} at the native size), got ${mask.dtype} ${shapeString(mask.shape)}`);
    }
    const g = this.cachedGraph(`mask|${mask.shape.join('x')}`, (g, p) => {
      const x = g.input('mask', mask.shape);
      g.output('dense', embedMask(g, x, this.maskDownscaling(p)));
    });
    return g.run({ mask }).dense;
  }

  /**
   * SAM2's conv_s0 / conv_s1 projections of backbone levels 0 and 1 ([1, D, 4h, 4w], [1, D, 2h, 2w])
   * into the decoder's high-res features (SAM2Base.forward_image applies them; owned by the caller).
   */
  projectHighResFeatures(level0: Tensor, level1: Tensor): [Tensor, Tensor] {
    this.checkAlive('projectHighResFeatures');
    const c = this.config;
    if (!c.highResFeatures) throw new Error(`${OP}.projectHighResFeatures: this decoder has no conv_s0/conv_s1 (not a SAM2 decoder)`);
    const h = level1.shape[2];
    for (const [name, t, side] of [['level0', level0, 2 * h], ['level1', level1, h]] as const) {
      if (t.dtype !== 'f32' || t.rank !== 4 || t.shape[0] !== 1 || t.shape[1] !== c.embedDim || t.shape[2] !== side || t.shape[3] !== side) {
        throw new Error(`${OP}.projectHighResFeatures: ${name} must be f32 [1, ${c.embedDim}, ${side}, ${side}], got ${t.dtype} ${shapeString(t.shape)}`);
      }
    }
    const g = this.cachedGraph(`highres|${h}`, (g, p) => {
      const l0 = g.input('level0', level0.shape);
      const l1 = g.input('level1', level1.shape);
      g.output('s0', ops.conv2d(g, l0, p('mask_decoder.conv_s0.weight'), { bias: p('mask_decoder.conv_s0.bias') }));
      g.output('s1', ops.conv2d(g, l1, p('mask_decoder.conv_s1.weight'), { bias: p('mask_decoder.conv_s1.bias') }));
    });
    const out = g.run({ level0, level1 });
    return [out.s0, out.s1];
  }

  /** The embedding side of `features` and the sizes that follow from it (checked). */
  geometry(features: SamImageFeatures): EmbeddingGeometry {
    this.checkFeatures(features);
    const side = features.imageEmbedding.shape[2];
    return { side, frame: side * this.patchSize, maskSize: 4 * side };
  }

  /**
   * Decodes B prompts of N points each (in the S×S prompt frame of the
   * features, S = 16h for an embedding of side h) against one image's
   * features: every token's mask logits and IoU (and SAM2's object score), on
   * the GPU. `maskInput`: mask logits [B, 1, 4h, 4w] (SAM's mask_input), or none.
   * B may be at most maxBatchFor(h); decodeToHost splits larger batches.
   */
  decode(features: SamImageFeatures, points: PromptPoints, maskInput?: Float32Array | Tensor): SamDecoderOutputs {
    this.checkAlive('decode');
    const { batch: B, count: N } = points;
    const geo = this.geometry(features);
    if (!Number.isInteger(B) || B < 1 || !Number.isInteger(N) || N < 1) throw new Error(`${OP}.decode: need at least one prompt of at least one point, got ${B} prompts of ${N} points`);
    const most = this.maxBatchFor(geo.side);
    if (B > most) throw new Error(`${OP}.decode: ${B} prompts exceed the ${most} one run holds on this device; use decodeToHost`);
    const s = geo.maskSize;
    if (maskInput !== undefined) {
      const n = maskInput instanceof Tensor ? maskInput.size : maskInput.length;
      if (n !== B * s * s || (maskInput instanceof Tensor && maskInput.dtype !== 'f32')) {
        throw new Error(`${OP}.decode: mask input must hold ${B}·${s}·${s} f32 logits ([B, 1, ${s}, ${s}]), got ${maskInput instanceof Tensor ? `${maskInput.dtype} ${shapeString(maskInput.shape)}` : `${n} values`}`);
      }
    }
    const sparse = this.encodePoints(points, geo.frame);
    const D = this.config.embedDim;
    const T0 = this.leadingTokens;
    const T = T0 + N;
    const tokens = new Float32Array(B * T * D);
    for (let b = 0; b < B; b++) {
      tokens.set(this.outputTokens, b * T * D);
      tokens.set(sparse.subarray(b * N * D, (b + 1) * N * D), (b * T + T0) * D);
    }
    const withMask = maskInput !== undefined;
    this.ensureSide(geo.side);
    const g = this.cachedGraph(`decode|${geo.side}|${B}|${N}|${withMask}`, (g, p) => this.buildDecoder(g, p, geo.side, B, N, withMask));
    const feeds: Record<string, Tensor | ArrayLike<number>> = { image: features.imageEmbedding, tokens };
    if (maskInput !== undefined) feeds.mask = maskInput;
    if (features.highRes) {
      feeds.feat0 = features.highRes[0];
      feeds.feat1 = features.highRes[1];
    }
    const out = g.run(feeds);
    return { masks: out.masks, iou: out.iou, objectScore: out.objectScore };
  }

  /**
   * The multimask outputs (tokens 1..M−1) of B prompts, decoded in runs of at
   * most maxBatchFor(h): lowResMasks f32 [B, M−1, 4h, 4w] stays on the GPU
   * (owned by the caller), iouPredictions [B·(M−1)] on the host. The automatic
   * mask generator's batched decode.
   */
  async decodeMultimask(features: SamImageFeatures, points: PromptPoints): Promise<{ lowResMasks: Tensor; iouPredictions: Float32Array }> {
    const { batch: B, count: N } = points;
    const M = this.config.numMaskTokens;
    const K = M - 1;
    const side = features.imageEmbedding.shape[2];
    const s = 4 * side;
    const lowRes = Tensor.empty(this.gpu, [B, K, s, s]);
    const iou = new Float32Array(B * K);
    const step = this.maxBatchFor(side);
    try {
      for (let b0 = 0; b0 < B; b0 += step) {
        const b1 = Math.min(B, b0 + step);
        const part: PromptPoints = { coords: points.coords.subarray(b0 * N * 2, b1 * N * 2), labels: points.labels.subarray(b0 * N, b1 * N), batch: b1 - b0, count: N };
        const out = this.decode(features, part);
        const multi = slice(this.gpu, out.masks, [0, 1, 0, 0], [b1 - b0, M, s, s]);
        this.gpu.commandEncoder().copyBufferToBuffer(multi.buffer, 0, lowRes.buffer, b0 * K * s * s * 4, multi.byteLength);
        const all = (await out.iou.read()) as Float32Array;
        for (let b = 0; b < b1 - b0; b++) for (let k = 0; k < K; k++) iou[(b0 + b) * K + k] = all[b * M + 1 + k];
        multi.dispose();
        out.masks.dispose();
        out.iou.dispose();
        out.objectScore?.dispose();
      }
    } catch (e) {
      lowRes.dispose();
      throw e;
    }
    this.gpu.flush();
    return { lowResMasks: lowRes, iouPredictions: iou };
  }

  /** decode() in runs of at most maxBatchFor(h) prompts, read back. */
  async decodeToHost(features: SamImageFeatures, points: PromptPoints, maskInput?: Float32Array): Promise<SamHostOutputs> {
    const { batch: B, count: N } = points;
    const M = this.config.numMaskTokens;
    const geo = this.geometry(features);
    const s = geo.maskSize;
    const result: SamHostOutputs = { masks: new Float32Array(B * M * s * s), iou: new Float32Array(B * M), batch: B, tokens: M, size: s };
    if (this.config.objectScore) result.objectScore = new Float32Array(B);
    const step = this.maxBatchFor(geo.side);
    for (let b0 = 0; b0 < B; b0 += step) {
      const b1 = Math.min(B, b0 + step);
      const part: PromptPoints = { coords: points.coords.subarray(b0 * N * 2, b1 * N * 2), labels: points.labels.subarray(b0 * N, b1 * N), batch: b1 - b0, count: N };
      const out = this.decode(features, part, maskInput?.subarray(b0 * s * s, b1 * s * s));
      try {
        result.masks.set((await out.masks.read()) as Float32Array, b0 * M * s * s);
        result.iou.set((await out.iou.read()) as Float32Array, b0 * M);
        if (out.objectScore) result.objectScore!.set((await out.objectScore.read()) as Float32Array, b0);
      } finally {
        out.masks.dispose();
        out.iou.dispose();
        out.objectScore?.dispose();
      }
    }
    return result;
  }

  dispose(): void {
    this.graphs.dispose();
    for (const p of this.params.values()) p.dispose();
    this.params.clear();
    this.disposed = true;
  }

  private checkAlive(op: string): void {
    if (this.disposed) throw new Error(`${OP}.${op}: the decoder was disposed`);
  }

  private checkFeatures(f: SamImageFeatures): void {
    const c = this.config;
    const e = f.imageEmbedding;
    if (!(e instanceof Tensor) || e.dtype !== 'f32' || e.rank !== 4 || e.shape[0] !== 1 || e.shape[1] !== c.embedDim || e.shape[2] !== e.shape[3] || e.shape[2] < 1) {
      const native = c.embeddingSize;
      throw new Error(`${OP}.decode: image embedding must be f32 [1, ${c.embedDim}, h, h] (native [1, ${c.embedDim}, ${native}, ${native}]), got ${e instanceof Tensor ? `${e.dtype} ${shapeString(e.shape)}` : String(e)}`);
    }
    const h = e.shape[2];
    if (c.highResFeatures !== (f.highRes !== undefined)) {
      throw new Error(`${OP}.decode: this decoder ${c.highResFeatures ? 'needs' : 'takes no'} high-res features [feat_s0, feat_s1]${c.highResFeatures ? ', none were given' : ''}`);
    }
    if (f.highRes) {
      const expected = [[c.embedDim / 8, 4 * h], [c.embedDim / 4, 2 * h]];
      f.highRes.forEach((t, i) => {
        const [ch, side] = expected[i];
        if (t.dtype !== 'f32' || t.rank !== 4 || t.shape[0] !== 1 || t.shape[1] !== ch || t.shape[2] !== side || t.shape[3] !== side) {
          throw new Error(`${OP}.decode: high-res feature ${i} must be f32 [1, ${ch}, ${side}, ${side}], got ${t.dtype} ${shapeString(t.shape)}`);
        }
      });
    }
  }

  /** The graph for `key` (built on first use by `build`, which adds ops to g and binds parameters through p). */
  private cachedGraph(key: string, build: (g: Graph, p: (name: string) => Value) => void): Graph {
    return this.graphs.get(key, () => {
      const g = new Graph(this.gpu, `sam-decoder.${key}`);
      build(g, weightBinder(g, this.params, OP).p);
      return g;
    });
  }

  private maskDownscaling(p: (name: string) => Value) {
    const k = (i: number, w: string) => p(`prompt_encoder.mask_downscaling.${i}.${w}`);
    return {
      conv1: k(0, 'weight'), conv1Bias: k(0, 'bias'), norm1: k(1, 'weight'), norm1Bias: k(1, 'bias'),
      conv2: k(3, 'weight'), conv2Bias: k(3, 'bias'), norm2: k(4, 'weight'), norm2Bias: k(4, 'bias'),
      conv3: k(6, 'weight'), conv3Bias: k(6, 'bias'),
    };
  }

  private buildDecoder(g: Graph, p: (name: string) => Value, h: number, B: number, N: number, withMask: boolean): void {
    const c = this.config;
    const D = c.embedDim;
    const hw = h * h;
    const M = c.numMaskTokens;
    const T0 = this.leadingTokens;
    const image = g.input('image', [1, D, h, h]);
    const tokens = g.input('tokens', [B, T0 + N, D]);
    // Dense prompt: per prompt with a mask input, else one no_mask_embed for the whole batch.
    const src = withMask
      ? ops.add(g, image, embedMask(g, g.input('mask', [B, 1, 4 * h, 4 * h]), this.maskDownscaling(p)))
      : ops.add(g, image, p('prompt_encoder.no_mask_embed.weight'));
    let keys = g.reshape(ops.permute(g, src, [0, 2, 3, 1]), [src.shape[0], hw, D]);
    const keyPe = p(`image_pe.${h}`);
    const queryPe = tokens;
    let queries = tokens;
    const lin = (name: string) => ({ w: p(`${name}.weight`), b: p(`${name}.bias`) });
    const attn = (name: string): AttentionValues => {
      const [q, k, v, o] = ['q_proj', 'k_proj', 'v_proj', 'out_proj'].map((x) => lin(`${name}.${x}`));
      return { q: q.w, qb: q.b, k: k.w, kb: k.b, v: v.w, vb: v.b, o: o.w, ob: o.b };
    };
    const norm = (x: Value, name: string) => ops.layerNorm(g, x, p(`${name}.weight`), p(`${name}.bias`), 1e-5);
    for (let i = 0; i < c.depth; i++) {
      const l = `mask_decoder.transformer.layers.${i}`;
      // Layer 0 self-attention: no PE and no residual (skip_first_layer_pe).
      const qIn = i === 0 ? queries : ops.add(g, queries, queryPe);
      queries = norm(this.attention(g, attn(`${l}.self_attn`), qIn, qIn, queries, i === 0 ? undefined : queries), `${l}.norm1`);
      // Keys shared by several prompts: project them once (the batch folds into the query length);
      // otherwise reassociate around the few queries.
      const t2i = `${l}.cross_attn_token_to_image`;
      const keysPe = ops.add(g, keys, keyPe);
      const attended = keys.shape[0] === 1 && B > 1
        ? this.attention(g, attn(t2i), ops.add(g, queries, queryPe), keysPe, keys, queries)
        : this.tokenToImage(g, p, t2i, queries, queryPe, keys, h);
      queries = norm(attended, `${l}.norm2`);
      const hidden = ops.matmul(g, queries, p(`${l}.mlp.lin1.weight`), { bias: p(`${l}.mlp.lin1.bias`), activation: 'relu' });
      queries = norm(ops.matmul(g, hidden, p(`${l}.mlp.lin2.weight`), { bias: p(`${l}.mlp.lin2.bias`), residual: queries }), `${l}.norm3`);
      keys = norm(this.imageToToken(g, p, `${l}.cross_attn_image_to_token`, keys, keysPe, queries, queryPe), `${l}.norm4`);
    }
    const t = 'mask_decoder.transformer';
    queries = norm(this.tokenToImage(g, p, `${t}.final_attn_token_to_image`, queries, queryPe, keys, h), `${t}.norm_final_attn`);

    const s = T0 - 1 - M; // 1 when the object-score token leads
    const tokenAt = (start: number, count: number) => ops.slice(g, queries, [0, start, 0], [B, start + count, D]);
    // Upscaling [B, h·w, D] → [B, (y, x, ky, kx), D/4] → [B, (y, x, ky, kx), (ky', kx', D/8)]: each 2×2 stride-2
    // transposed convolution is a matmul per input pixel (sub-pixel position in the columns); LayerNorm2d
    // is a row LayerNorm over the D/4 channels. SAM2 adds its high-res features, brought to the same order.
    const md = 'mask_decoder';
    const c1 = D / 4;
    const c2 = D / 8;
    const feat1 = c.highResFeatures
      ? g.reshape(ops.permute(g, g.reshape(g.input('feat1', [1, c1, 2 * h, 2 * h]), [1, c1, h, 2, h, 2]), [0, 2, 4, 3, 5, 1]), [1, hw, 4 * c1])
      : undefined;
    let up = ops.matmul(g, keys, p('upscale.0.weight'), { bias: p('upscale.0.bias'), residual: feat1 });
    up = ops.layerNorm(g, g.reshape(up, [B, 4 * hw, c1]), p(`${md}.output_upscaling.1.weight`), p(`${md}.output_upscaling.1.bias`), 1e-6);
    up = ops.activation(g, 'gelu', up);
    if (c.highResFeatures) {
      const feat0 = g.input('feat0', [1, c2, 4 * h, 4 * h]);
      const ordered = g.reshape(ops.permute(g, g.reshape(feat0, [1, c2, h, 2, 2, h, 2, 2]), [0, 2, 5, 3, 6, 4, 7, 1]), [1, 4 * hw, 4 * c2]);
      up = ops.activation(g, 'gelu', ops.matmul(g, up, p('upscale.3.weight'), { bias: p('upscale.3.bias'), residual: ordered }));
    } else {
      up = ops.matmul(g, up, p('upscale.3.weight'), { bias: p('upscale.3.bias'), activation: 'gelu' });
    }
    // Hypernetworks: token i through MLP i, as batched matmuls over the M stacked MLPs.
    let hyper = ops.permute(g, tokenAt(s + 1, M), [1, 0, 2]); // [M, B, D]
    for (let layer = 0; layer < 3; layer++) {
      hyper = ops.add(g, ops.matmul(g, hyper, p(`hyper.${layer}.weight`)), p(`hyper.${layer}.bias`));
      if (layer < 2) hyper = ops.activation(g, 'relu', hyper);
    }
    hyper = ops.permute(g, hyper, [1, 0, 2]); // [B, M, D/8]
    // Masks in the upscaled pixel order (y, x, ky, kx, ky', kx'), then to rows (y, ky, ky') and columns (x, kx, kx').
    const blocked = ops.matmul(g, hyper, g.reshape(up, [B, 16 * hw, c2]), { transB: true });
    const masks = ops.permute(g, g.reshape(blocked, [B * M, h, h, 2, 2, 2, 2]), [0, 1, 3, 5, 2, 4, 6]);
    g.output('masks', g.reshape(masks, [B, M, 4 * h, 4 * h]));
    let iou = this.mlp(g, p, `${md}.iou_prediction_head`, g.reshape(tokenAt(s, 1), [B, D]));
    if (c.iouSigmoid) iou = ops.activation(g, 'sigmoid', iou);
    g.output('iou', iou);
    if (c.objectScore) g.output('objectScore', this.mlp(g, p, `${md}.pred_obj_score_head`, g.reshape(tokenAt(0, 1), [B, D])));
  }

  /** A 3-layer ReLU MLP on rows [B, in]. */
  private mlp(g: Graph, p: (name: string) => Value, name: string, x: Value): Value {
    for (let i = 0; i < 3; i++) x = ops.matmul(g, x, p(`${name}.layers.${i}.weight`), { bias: p(`${name}.layers.${i}.bias`), activation: i < 2 ? 'relu' : 'none' });
    return x;
  }

  /**
   * SAM's Attention module: projections to the internal width, heads, softmax
   * (q·kᵀ/√d_head), out projection (+ residual). q [Bq, Lq, D]; k, v [Bk, Lk, D]
   * with Bk = Bq, or 1 (keys shared by every prompt: the batch folds into the
   * query length).
   */
  private attention(g: Graph, w: AttentionValues, q: Value, k: Value, v: Value, residual?: Value): Value {
    const H = this.config.heads;
    const qp = ops.matmul(g, q, w.q, { bias: w.qb });
    const kp = ops.matmul(g, k, w.k, { bias: w.kb });
    const vp = ops.matmul(g, v, w.v, { bias: w.vb });
    const [bq, lq, inner] = qp.shape;
    const [bk, lk] = kp.shape;
    const dh = inner / H;
    const fold = bk === 1 && bq > 1;
    const [b, l] = fold ? [1, bq * lq] : [bq, lq];
    const out = ops.attention(g, g.reshape(qp, [b, l, H, dh]), g.reshape(kp, [b, lk, H, dh]), g.reshape(vp, [b, lk, H, dh]), { layout: 'blhd' });
    // A residual of batch 1 (the shared keys) broadcasts inside the matmul.
    return ops.matmul(g, g.reshape(out, [bq, lq, inner]), w.o, { bias: w.ob, residual });
  }

  /**
   * Token → image attention for T ≪ d_head·H queries per prompt, reassociated
   * so that no full-size projection of the per-prompt keys K [Bk, h·w, D] is
   * made (2·h·w·D·(T·H) MACs instead of 2·h·w·D·inner + attention):
   *   scores_h = (q_h W_k,hᵀ) Kᵀ + q_h (PE W_k,h)ᵀ      (q·b_k is constant per row: softmax drops it)
   *   out      = Σ_h (P_h K) (W_v,h W_o,h) + b_v W_o + b_o   (rows of P_h sum to 1)
   * with q the scaled query projection; all heads' query rows are stacked into one matmul.
   */
  private tokenToImage(g: Graph, p: (name: string) => Value, name: string, queries: Value, queryPe: Value, keys: Value, h: number): Value {
    const c = this.config;
    const [B, T, D] = queries.shape;
    const H = c.heads;
    const dh = c.crossDim / H;
    const q = ops.matmul(g, ops.add(g, queries, queryPe), p(`${name}.q_scaled.weight`), { bias: p(`${name}.q_scaled.bias`) });
    const qHeads = ops.permute(g, g.reshape(q, [B, T, H, dh]), [0, 2, 1, 3]); // [B, H, T, dh]
    const qk = g.reshape(ops.matmul(g, qHeads, p(`${name}.k_heads`)), [B, H * T, D]);
    const peKeys = g.reshape(p(`${name}.pe_keys.${h}`), [H, dh, h * h]);
    const peScores = g.reshape(ops.matmul(g, qHeads, peKeys), [B, H * T, h * h]);
    const probs = ops.softmax(g, ops.matmul(g, qk, keys, { transB: true, residual: peScores }), -1);
    const pk = ops.matmul(g, probs, keys); // [B, H·T, D]
    const perToken = g.reshape(ops.permute(g, g.reshape(pk, [B, H, T, D]), [0, 2, 1, 3]), [B, T, H * D]);
    return ops.matmul(g, perToken, p(`${name}.vo.weight`), { bias: p(`${name}.vo.bias`), residual: queries });
  }

  /**
   * Image → token attention (h·w queries, T keys per prompt), reassociated so
   * that neither the queries' projection nor the output projection runs at
   * h·w × inner width per prompt:
   *   scores_h = (K+PE) (W_q,h k_hᵀ) + b_q,h k_hᵀ        k_h: the tokens' key projection
   *   out      = Σ_h P_h (v_h W_o,h) + b_o + K           (residual)
   * keys [Bk, h·w, D] (Bk = 1 when shared by every prompt), keysPe = keys + PE.
   * (Splitting PE·W_q,h k_hᵀ off to avoid the per-prompt K + PE was measured
   * slower: a [h·w, dh] × [dh, T] matmul per head is too thin.)
   */
  private imageToToken(g: Graph, p: (name: string) => Value, name: string, keys: Value, keysPe: Value, queries: Value, queryPe: Value): Value {
    const c = this.config;
    const [B, T] = queries.shape;
    const H = c.heads;
    const dh = c.crossDim / H;
    const D = c.embedDim;
    const hw = keys.shape[1];
    const k = ops.matmul(g, ops.add(g, queries, queryPe), p(`${name}.k_proj.weight`), { bias: p(`${name}.k_proj.bias`) });
    const kHeads = ops.permute(g, g.reshape(k, [B, T, H, dh]), [0, 2, 3, 1]); // [B, H, dh, T]
    const qk = g.reshape(ops.permute(g, ops.matmul(g, p(`${name}.q_heads`), kHeads), [0, 2, 1, 3]), [B, D, H * T]);
    const qkBias = g.reshape(ops.matmul(g, p(`${name}.q_heads_bias`), kHeads), [B, 1, H * T]);
    const scores = ops.add(g, ops.matmul(g, keysPe, qk), qkBias); // [B, h·w, H·T]
    const probs = g.reshape(ops.softmax(g, g.reshape(scores, [B, hw, H, T]), -1), [B, hw, H * T]);
    const v = ops.matmul(g, queries, p(`${name}.v_proj.weight`), { bias: p(`${name}.v_proj.bias`) });
    const vo = g.reshape(ops.matmul(g, ops.permute(g, g.reshape(v, [B, T, H, dh]), [0, 2, 1, 3]), p(`${name}.o_heads`)), [B, H * T, D]);
    return ops.matmul(g, probs, vo, { bias: p(`${name}.out_proj.bias`), residual: keys });
  }
}
