// SAM2's single-image predictor (SAM2ImagePredictor) behind the shared
// Segmenter interface: the Hiera image encoder (image-encoder.ts) once per
// image, then SAM's prompt encoder + mask decoder (models/sam/mask-decoder.ts,
// with SAM2's high-res features, object score and dynamic single-mask rule)
// per prompt. SAM2 stretches the image to S×S (no letterbox), so the whole
// frame is the resized image.

import type { Gpu } from '../../device.js';
import type { DecodedImage } from '../../io/image.js';
import type { SafetensorsFile } from '../../io/safetensors.js';
import { Tensor } from '../../tensor.js';
import { generateMasks, type BatchedMaskDecoder } from '../sam/automatic.js';
import { SamMaskDecoder, type SamImageFeatures } from '../sam/mask-decoder.js';
import { loadSam2DecoderWeights } from '../sam/mask-decoder-weights.js';
import { predictSam2 } from '../sam/mask-selection.js';
import { clickBatch, promptPoints } from '../sam/prompt-encoder.js';
import type { AutoMask, AutoMaskOptions, SegmentPrediction, SegmentPrompt, Segmenter } from '../sam/segmenter.js';
import type { InferSam2Options } from './config.js';
import { Sam2ImageEncoder } from './image-encoder.js';
import { BatchMasks, Lifetime } from '../lifetime.js';

const OP = 'Sam2Predictor';

interface ImageState {
  width: number;
  height: number;
  features: SamImageFeatures;
}

export class Sam2Predictor implements Segmenter, BatchedMaskDecoder {
  readonly name: string;
  private image: ImageState | undefined;
  private readonly batchMasks = new BatchMasks();
  private readonly lifetime = new Lifetime(OP, 'the predictor');

  /** The predictor owns both parts (dispose frees them). */
  constructor(readonly gpu: Gpu, readonly encoder: Sam2ImageEncoder, readonly decoder: SamMaskDecoder) {
    this.name = `sam2-${encoder.config.variant}`;
  }

  /** Encoder and decoder from one SAM2 checkpoint with the official key names. */
  static async fromSafetensors(gpu: Gpu, file: SafetensorsFile, options: InferSam2Options = {}): Promise<Sam2Predictor> {
    const encoder = await Sam2ImageEncoder.fromSafetensors(gpu, file, options);
    try {
      const weights = await loadSam2DecoderWeights(file, { imageSize: encoder.config.imageSize });
      return new Sam2Predictor(gpu, encoder, SamMaskDecoder.create(gpu, weights, file.name));
    } catch (e) {
      encoder.dispose();
      throw e;
    }
  }

  /** The S×S model frame. */
  get inputSize(): number {
    return this.encoder.config.imageSize;
  }

  /** SAM2 stretches the image over the whole frame. */
  get resizedSize(): readonly [number, number] {
    return [this.inputSize, this.inputSize];
  }

  async setImage(image: DecodedImage): Promise<void> {
    this.lifetime.check('setImage');
    const input = this.encoder.preprocess(image);
    let features: SamImageFeatures;
    try {
      const out = this.encoder.encode(input);
      features = { imageEmbedding: out.imageEmbed, highRes: out.highResFeats };
    } finally {
      input.dispose();
    }
    this.releaseImage();
    this.image = { width: image.width, height: image.height, features };
  }

  async predict(prompt: SegmentPrompt): Promise<SegmentPrediction> {
    const img = this.current('predict');
    const { objectScore: _objectScore, tokens: _tokens, ...prediction } = await predictSam2(this.decoder, img.features, prompt, img.width, img.height);
    return prediction;
  }

  /**
   * One single-point prompt per point (image pixels), multimask output:
   * lowResMasks [B, 3, 4h, 4w] (owned by the predictor until the next call)
   * and iouPredictions [B·3].
   */
  async predictBatch(points: ReadonlyArray<readonly [number, number]>, labels: readonly number[]): Promise<{ lowResMasks: Tensor; iouPredictions: Float32Array }> {
    const img = this.current('predictBatch');
    const S = this.inputSize;
    const toModel = (x: number, y: number): [number, number] => [(x / img.width) * S, (y / img.height) * S];
    const batch = clickBatch(`${OP}.predictBatch`, points, labels, (prompt) => promptPoints(`${OP}.predictBatch`, prompt, toModel, 'sam2'));
    return this.batchMasks.replace(() => this.decoder.decodeMultimask(img.features, batch));
  }

  /** SAM's automatic mask generator over the current image. */
  async generateMasks(options?: AutoMaskOptions): Promise<AutoMask[]> {
    const img = this.current('generateMasks');
    return generateMasks(this, img.width, img.height, options);
  }

  dispose(): void {
    if (this.lifetime.disposed) return;
    this.releaseImage();
    this.batchMasks.release();
    this.encoder.dispose();
    this.decoder.dispose();
    this.lifetime.end();
  }

  private releaseImage(): void {
    if (!this.image) return;
    this.image.features.imageEmbedding.dispose();
    for (const t of this.image.features.highRes ?? []) t.dispose();
    this.image = undefined;
  }

  private current(op: string): ImageState {
    this.lifetime.check(op);
    if (!this.image) throw new Error(`${OP}.${op}: no image set; call setImage(image) first`);
    return this.image;
  }
}
