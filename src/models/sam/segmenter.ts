// The one segmenter interface MedFocus, the demo page and the CLI use, for
// MobileSAM and SAM2 alike (both follow SAM's predictor: embed an image once,
// then decode any number of prompts against that embedding).
//
// Coordinates are pixels of the image given to setImage, (x, y) with x to the
// right; masks come back at that image's size.

import type { DecodedImage } from '../../io/image.js';
import type { Tensor } from '../../tensor.js';

export interface SegmentPrompt {
  /** Clicked points [[x, y], …] in image pixels. */
  points?: ReadonlyArray<readonly [number, number]>;
  /** One label per point: 1 foreground, 0 background. */
  labels?: readonly number[];
  /** A box [x0, y0, x1, y1] in image pixels. */
  box?: readonly [number, number, number, number];
  /** Low-resolution mask logits from an earlier prediction [4h·4h] for an h×h embedding (SAM's mask_input; 256·256 at 1024). */
  mask?: Float32Array;
  /** Three candidate masks (true, the default) or the single best one. */
  multimask?: boolean;
}

export interface SegmentPrediction {
  width: number;
  height: number;
  /** M masks as logits at the image size, [M, height, width] row-major; > 0 is inside. */
  masks: Float32Array;
  /** Predicted IoU per mask [M]. */
  iouPredictions: Float32Array;
  /** Low-resolution logits [M, 4h, 4h] (256² at 1024), to feed back as `mask`. */
  lowResMasks: Float32Array;
  count: number;
}

export interface AutoMaskOptions {
  /** Points per side of the prompt grid (SAM: 32). */
  pointsPerSide?: number;
  /** Prompts decoded per batch. */
  pointsPerBatch?: number;
  /** Keep masks whose predicted IoU is at least this (SAM: 0.88). */
  predIouThresh?: number;
  /** Keep masks whose stability score is at least this (SAM: 0.95). */
  stabilityScoreThresh?: number;
  /** Logit offset for the stability score (SAM: 1.0). */
  stabilityScoreOffset?: number;
  /** IoU above which box NMS drops the lower-scored mask (SAM: 0.7). */
  boxNmsThresh?: number;
  /** Holes and islands smaller than this many pixels are removed (SAM: 0 = off). */
  minMaskRegionArea?: number;
  /** Called after each decoded batch of grid points (for a progress bar). */
  onProgress?: (done: number, total: number) => void;
}

export interface AutoMask {
  /** Binary mask at the image size, one byte per pixel (0 or 1). */
  mask: Uint8Array;
  width: number;
  height: number;
  area: number;
  /** [x0, y0, x1, y1] inclusive pixel bounds. */
  box: [number, number, number, number];
  predictedIou: number;
  stabilityScore: number;
  /** The grid point that prompted it, in image pixels. */
  point: [number, number];
}

export interface Segmenter {
  /** 'mobilesam' or 'sam2-<size>'. */
  readonly name: string;
  /** The model's square input side S (1024 natively; MobileSAM may run at 512, 256…). */
  readonly inputSize: number;
  /** Embeds the image (the expensive step); later predict calls reuse it. */
  setImage(image: DecodedImage): Promise<void>;
  predict(prompt: SegmentPrompt): Promise<SegmentPrediction>;
  generateMasks(options?: AutoMaskOptions): Promise<AutoMask[]>;
  /** Frees GPU weights and the current embedding. */
  dispose(): void;
}

/**
 * A segmenter whose image embedding others read too: MedFocus takes the
 * sam-encoder backbone's features from the same MobileSAM encoder pass that
 * its automatic masks decode (MobileSamPredictor).
 */
export interface EmbeddingSegmenter extends Segmenter {
  /** The current image's embedding [1, D, S/16, S/16]; the segmenter owns it (valid until the next setImage or dispose). */
  imageEmbedding(): Tensor;
  /** Why the encoder's weights are not the dtype asked for (f16 on an adapter without shader-f16), if so. */
  readonly weightDtypeNote?: string;
}
