// SAM mask post-processing on the GPU: low-resolution mask logits upsampled to
// the image (segment-anything's postprocess_masks: bilinear to the square
// model-input frame, crop the resized image, bilinear to the original size),
// fused with what the automatic mask generator needs from them — stability
// counts, and bit-packed binary masks. See shaders/mask_postprocess.wgsl.

import type { Gpu } from '../device.js';
import { Tensor, shapeString } from '../tensor.js';
import { dispatchKernel, linearGrid, placeholder } from './program.js';

const WORKGROUP_SIZE = 256;
/** Pixels each thread of `stability_counts` visits, unless the image needs more to fit the grid. */
const MIN_PIXELS_PER_THREAD = 8;

export interface MaskUpsampleGeometry {
  /** Side of the square model-input frame the low-resolution logits cover (SAM: 1024). */
  frameSize: number;
  /** [h, w] of the resized image in the frame's top-left corner; the rest is padding. */
  resizedSize: readonly [number, number];
  /** [h, w] of the original image: the size masks come out at. */
  imageSize: readonly [number, number];
}

function isPositiveInteger(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}

function checkInputs(op: string, logits: Tensor, planes: ArrayLike<number>, g: MaskUpsampleGeometry): number {
  if (logits.dtype !== 'f32') throw new Error(`${op}: logits must be f32, got ${logits.dtype}`);
  if (logits.rank < 3) throw new Error(`${op}: logits must be [..., h, w] planes (rank ≥ 3), got ${shapeString(logits.shape)}`);
  const [lowH, lowW] = logits.shape.slice(-2);
  const planeCount = logits.size / Math.max(1, lowH * lowW);
  if (lowH === 0 || lowW === 0) throw new Error(`${op}: logits planes must be non-empty, got ${shapeString(logits.shape)}`);
  if (!isPositiveInteger(g.frameSize)) throw new Error(`${op}: frameSize must be a positive integer, got ${g.frameSize}`);
  const sizes = [g.resizedSize, g.imageSize];
  if (!sizes.every((s) => Array.isArray(s) && s.length === 2 && s.every(isPositiveInteger))) {
    throw new Error(`${op}: resizedSize and imageSize must be [h, w] positive integers, got ${JSON.stringify(g.resizedSize)} and ${JSON.stringify(g.imageSize)}`);
  }
  if (g.resizedSize[0] > g.frameSize || g.resizedSize[1] > g.frameSize) {
    throw new Error(`${op}: resizedSize [${g.resizedSize.join(', ')}] exceeds the ${g.frameSize}² frame`);
  }
  for (let k = 0; k < planes.length; k++) {
    const p = planes[k];
    if (!Number.isInteger(p) || p < 0 || p >= planeCount) {
      throw new Error(`${op}: planes[${k}] = ${p} is not a plane index of logits ${shapeString(logits.shape)} (0 to ${planeCount - 1})`);
    }
  }
  return planeCount;
}

function shaderParams(logits: Tensor, planeCount: number, g: MaskUpsampleGeometry, extra: { pixels_per_thread: number; words_per_row: number; offset: number }) {
  const [lowH, lowW] = logits.shape.slice(-2);
  const [cropH, cropW] = g.resizedSize;
  const [outH, outW] = g.imageSize;
  return {
    low_h: lowH,
    low_w: lowW,
    crop_h: cropH,
    crop_w: cropW,
    out_h: outH,
    out_w: outW,
    planes_count: planeCount,
    ratio_low_h: Math.fround(lowH / g.frameSize),
    ratio_low_w: Math.fround(lowW / g.frameSize),
    ratio_crop_h: Math.fround(cropH / outH),
    ratio_crop_w: Math.fround(cropW / outW),
    ...extra,
  };
}

/**
 * Stability counts of the selected masks: for each k, u32 [2k] = #(logit >
 * +offset) and [2k + 1] = #(logit > −offset) over the image pixels of plane
 * planes[k] of `logits` [..., h, w] upsampled per `geometry`. SAM's stability
 * score is [2k] / [2k + 1]. Returns u32 [K, 2].
 */
export function maskStabilityCounts(gpu: Gpu, logits: Tensor, planes: ArrayLike<number>, geometry: MaskUpsampleGeometry, offset: number): Tensor {
  const op = 'maskStabilityCounts';
  checkInputs(op, logits, planes, geometry);
  if (!Number.isFinite(offset)) throw new Error(`${op}: offset must be a finite number, got ${offset}`);
  const k = planes.length;
  const counts = Tensor.fromArray(gpu, new Uint32Array(2 * k), [k, 2], 'u32');
  if (k === 0) return counts;
  const [outH, outW] = geometry.imageSize;
  const pixels = outH * outW;
  const maxTiles = gpu.limits.maxComputeWorkgroupsPerDimension;
  const pixelsPerThread = Math.max(MIN_PIXELS_PER_THREAD, Math.ceil(pixels / (WORKGROUP_SIZE * maxTiles)));
  const tiles = Math.ceil(pixels / (WORKGROUP_SIZE * pixelsPerThread));
  if (k > maxTiles) throw new Error(`${op}: ${k} planes exceed the device's ${maxTiles} workgroups per dimension; pass fewer per call`);
  const planeTensor = Tensor.fromArray(gpu, planes, [k], 'u32');
  dispatchKernel(
    gpu,
    op,
    { shader: 'mask_postprocess', entry: 'stability_counts', constants: { WORKGROUP_SIZE } },
    { logits, planes: planeTensor, counts, bits: placeholder(gpu), params: shaderParams(logits, k, geometry, { pixels_per_thread: pixelsPerThread, words_per_row: 0, offset }) },
    [tiles, k],
  );
  planeTensor.dispose();
  return counts;
}

/** 32-bit words per mask row of maskBinarize's output. */
export function maskWordsPerRow(width: number): number {
  return Math.ceil(width / 32);
}

/**
 * Binary masks (logit > 0) of the selected planes at the image size,
 * bit-packed: u32 [K, imageH, maskWordsPerRow(imageW)], bit b of word w of a
 * row is pixel 32w + b.
 */
export function maskBinarize(gpu: Gpu, logits: Tensor, planes: ArrayLike<number>, geometry: MaskUpsampleGeometry): Tensor {
  const op = 'maskBinarize';
  checkInputs(op, logits, planes, geometry);
  const k = planes.length;
  const [outH, outW] = geometry.imageSize;
  const wordsPerRow = maskWordsPerRow(outW);
  const bits = Tensor.empty(gpu, [k, outH, wordsPerRow], 'u32');
  if (k === 0) return bits;
  const planeTensor = Tensor.fromArray(gpu, planes, [k], 'u32');
  dispatchKernel(
    gpu,
    op,
    { shader: 'mask_postprocess', entry: 'binarize', constants: { WORKGROUP_SIZE } },
    { logits, planes: planeTensor, counts: placeholder(gpu), bits, params: shaderParams(logits, k, geometry, { pixels_per_thread: 0, words_per_row: wordsPerRow, offset: 0 }) },
    linearGrid(gpu, bits.size, WORKGROUP_SIZE),
  );
  planeTensor.dispose();
  return bits;
}
