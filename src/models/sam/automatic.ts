// SAM's automatic mask generator (segment-anything SamAutomaticMaskGenerator,
// one crop, no crop layers): prompt the decoder with a grid of single
// foreground points, keep the confident and stable masks, drop duplicates by
// box NMS, optionally clean up small holes and islands.
//
// The per-mask pixel work (upsampling the low-resolution logits to the image,
// stability counts, thresholding) runs fused on the GPU
// (src/kernels/mask-postprocess.ts); only the counts and bit-packed binary
// masks of survivors come back. NMS and connected components run on the CPU.
//
// Differences from segment-anything: ties in NMS scores keep the earlier
// candidate (grid order, then mask index); the clean-up NMS (scores 1 for
// untouched masks, 0 for changed ones) breaks ties by predicted IoU; the
// result is sorted by predicted IoU, descending.

import type { Tensor } from '../../tensor.js';
import { maskBinarize, maskStabilityCounts, maskWordsPerRow, type MaskUpsampleGeometry } from '../../kernels/mask-postprocess.js';
import type { AutoMask, AutoMaskOptions } from './segmenter.js';

/** What the generator needs from a SAM-style predictor with an embedded image. */
export interface BatchedMaskDecoder {
  /** Side of the square model-input frame the low-resolution logits cover (SAM: 1024). */
  readonly inputSize: number;
  /** [h, w] of the image resized into the frame's top-left corner (SAM's ResizeLongestSide). */
  readonly resizedSize: readonly [number, number];
  /**
   * Decodes one prompt per point (points in image pixels, labels all 1 here)
   * with multimask output. lowResMasks: f32 logits [B, M, h, w];
   * iouPredictions: [B·M]. The decoder owns lowResMasks: the generator reads
   * it before its next predictBatch call and never disposes it.
   */
  predictBatch(
    points: ReadonlyArray<readonly [number, number]>,
    labels: readonly number[],
  ): Promise<{ lowResMasks: Tensor; iouPredictions: Float32Array }>;
}

/** The generator's options (onProgress is called after each decoded batch with the prompts done so far and the total). */
export type GenerateMasksOptions = AutoMaskOptions;

/** The numeric options, all set. */
type ResolvedOptions = Required<Omit<AutoMaskOptions, 'onProgress'>>;

export const AUTO_MASK_DEFAULTS: ResolvedOptions = {
  pointsPerSide: 32,
  pointsPerBatch: 64,
  predIouThresh: 0.88,
  stabilityScoreThresh: 0.95,
  stabilityScoreOffset: 1.0,
  boxNmsThresh: 0.7,
  minMaskRegionArea: 0,
};

const OP = 'generateMasks';

function resolveOptions(options: GenerateMasksOptions): ResolvedOptions {
  const o = { ...AUTO_MASK_DEFAULTS };
  for (const key of Object.keys(AUTO_MASK_DEFAULTS) as (keyof ResolvedOptions)[]) {
    const v = options[key];
    if (v !== undefined) o[key] = v;
  }
  for (const key of ['pointsPerSide', 'pointsPerBatch'] as const) {
    const v = o[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new Error(`${OP}: ${key} must be a positive integer, got ${v}`);
  }
  for (const key of ['predIouThresh', 'stabilityScoreThresh', 'boxNmsThresh'] as const) {
    const v = o[key];
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw new Error(`${OP}: ${key} must be a number in [0, 1], got ${v}`);
  }
  for (const key of ['stabilityScoreOffset', 'minMaskRegionArea'] as const) {
    const v = o[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`${OP}: ${key} must be a finite number ≥ 0, got ${v}`);
  }
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') {
    throw new Error(`${OP}: onProgress must be a function, got ${typeof options.onProgress}`);
  }
  return o;
}

/** SAM's build_point_grid scaled to the image: point (i, j) at ((j + ½)/n · width, (i + ½)/n · height), row by row. */
export function pointGrid(pointsPerSide: number, width: number, height: number): [number, number][] {
  const points: [number, number][] = [];
  for (let i = 0; i < pointsPerSide; i++) {
    for (let j = 0; j < pointsPerSide; j++) points.push([((j + 0.5) / pointsPerSide) * width, ((i + 0.5) / pointsPerSide) * height]);
  }
  return points;
}

type Box = [number, number, number, number];

/** [x0, y0, x1, y1] inclusive bounds and pixel count of a bit-packed mask; [0, 0, 0, 0] when empty (as SAM). */
function boxAndAreaOfBits(bits: Uint32Array, width: number, height: number): { box: Box; area: number } {
  const wpr = maskWordsPerRow(width);
  let x0 = Infinity;
  let x1 = -1;
  let y0 = Infinity;
  let y1 = -1;
  let area = 0;
  for (let y = 0; y < height; y++) {
    let first = -1;
    let last = -1;
    for (let w = 0; w < wpr; w++) {
      const word = bits[y * wpr + w];
      if (word === 0) continue;
      if (first < 0) first = 32 * w + (31 - Math.clz32(word & -word));
      last = 32 * w + (31 - Math.clz32(word));
      area += popcount(word);
    }
    if (first < 0) continue;
    if (y0 === Infinity) y0 = y;
    y1 = y;
    x0 = Math.min(x0, first);
    x1 = Math.max(x1, last);
  }
  return area === 0 ? { box: [0, 0, 0, 0], area } : { box: [x0, y0, x1, y1], area };
}

function popcount(v: number): number {
  let x = v - ((v >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
}

function unpackBits(bits: Uint32Array, width: number, height: number): Uint8Array {
  const wpr = maskWordsPerRow(width);
  const mask = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) mask[y * width + x] = (bits[y * wpr + (x >>> 5)] >>> (x & 31)) & 1;
  }
  return mask;
}

/** [x0, y0, x1, y1] inclusive bounds and pixel count of a mask (one byte per pixel, non-zero inside); [0, 0, 0, 0] when empty (as SAM). */
export function boxAndAreaOfMask(mask: Uint8Array, width: number, height: number): { box: Box; area: number } {
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -1;
  let y1 = -1;
  let area = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (!mask[y * width + x]) continue;
      area++;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      y1 = y;
    }
  }
  return area === 0 ? { box: [0, 0, 0, 0], area } : { box: [x0, y0, x1, y1], area };
}

/** torchvision box_iou on SAM's inclusive-bound boxes (area = (x1 − x0)·(y1 − y0), as SAM feeds them); 0 when the union is empty. */
function boxIou(a: Box, b: Box): number {
  const iw = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const ih = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = iw * ih;
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? inter / union : 0;
}

/** Indices kept by greedy NMS, visiting `order` (best first): drop a box whose IoU with a kept one exceeds thresh. */
function nms(boxes: readonly Box[], order: readonly number[], thresh: number): number[] {
  const kept: number[] = [];
  for (const i of order) {
    if (kept.every((j) => boxIou(boxes[i], boxes[j]) <= thresh)) kept.push(i);
  }
  return kept;
}

/** 8-connected component labels (0 = unset pixel, 1… = components) and their sizes (sizes[0] unused), by union–find. */
function connectedComponents(set: Uint8Array, width: number, height: number): { labels: Int32Array; sizes: number[] } {
  const parent = new Int32Array(width * height).fill(-1);
  const root = (i: number): number => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i]];
      i = parent[i];
    }
    return i;
  };
  const join = (a: number, b: number) => {
    const ra = root(a);
    const rb = root(b);
    if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb);
  };
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      if (!set[i]) continue;
      parent[i] = i;
      // Already-visited 8-neighbours: left, and the three above.
      if (x > 0 && set[i - 1]) join(i, i - 1);
      if (y > 0) {
        for (let dx = -1; dx <= 1; dx++) {
          const nx = x + dx;
          if (nx >= 0 && nx < width && set[i - width + dx]) join(i, i - width + dx);
        }
      }
    }
  }
  const labels = new Int32Array(width * height);
  const labelOfRoot = new Map<number, number>();
  const sizes = [0];
  for (let i = 0; i < set.length; i++) {
    if (!set[i]) continue;
    const r = root(i);
    let label = labelOfRoot.get(r);
    if (label === undefined) {
      label = sizes.length;
      labelOfRoot.set(r, label);
      sizes.push(0);
    }
    labels[i] = label;
    sizes[label]++;
  }
  return { labels, sizes };
}

/**
 * segment-anything's remove_small_regions: 'holes' fills 8-connected
 * background regions smaller than minArea; 'islands' removes 8-connected
 * foreground regions smaller than minArea, keeping the largest if all are.
 */
export function removeSmallRegions(mask: Uint8Array, width: number, height: number, minArea: number, mode: 'holes' | 'islands'): { mask: Uint8Array; changed: boolean } {
  const holes = mode === 'holes';
  const working = new Uint8Array(mask.length);
  for (let i = 0; i < mask.length; i++) working[i] = holes ? 1 - mask[i] : mask[i];
  const { labels, sizes } = connectedComponents(working, width, height);
  const small = new Set<number>();
  for (let l = 1; l < sizes.length; l++) if (sizes[l] < minArea) small.add(l);
  if (small.size === 0) return { mask, changed: false };
  const out = new Uint8Array(mask.length);
  if (holes) {
    for (let i = 0; i < mask.length; i++) out[i] = labels[i] === 0 || small.has(labels[i]) ? 1 : 0;
  } else {
    let keep = (l: number) => l > 0 && !small.has(l);
    if (small.size === sizes.length - 1) {
      let largest = 1;
      for (let l = 2; l < sizes.length; l++) if (sizes[l] > sizes[largest]) largest = l;
      keep = (l: number) => l === largest;
    }
    for (let i = 0; i < mask.length; i++) out[i] = keep(labels[i]) ? 1 : 0;
  }
  return { mask: out, changed: true };
}

interface Candidate {
  bits: Uint32Array;
  box: Box;
  area: number;
  predictedIou: number;
  stabilityScore: number;
  point: [number, number];
}

function checkDecoderOutput(out: { lowResMasks: Tensor; iouPredictions: Float32Array }, batch: number): number {
  const { lowResMasks: t, iouPredictions: iou } = out;
  if (t.rank !== 4 || t.shape[0] !== batch) {
    throw new Error(`${OP}: the decoder's lowResMasks must be [${batch}, M, h, w] for ${batch} points, got [${t.shape.join(', ')}]`);
  }
  const m = t.shape[1];
  if (!(iou instanceof Float32Array) || iou.length !== batch * m) {
    throw new Error(`${OP}: the decoder's iouPredictions must be a Float32Array of ${batch}·${m} = ${batch * m}, got ${iou instanceof Float32Array ? iou.length : typeof iou}`);
  }
  return m;
}

/** Masks for everything in the image, as SAM's automatic mask generator; sorted by predicted IoU, descending. */
export async function generateMasks(decoder: BatchedMaskDecoder, width: number, height: number, options: GenerateMasksOptions = {}): Promise<AutoMask[]> {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`${OP}: width and height must be positive integers, got ${width}×${height}`);
  }
  const o = resolveOptions(options);
  const geometry: MaskUpsampleGeometry = { frameSize: decoder.inputSize, resizedSize: decoder.resizedSize, imageSize: [height, width] };
  const wordsPerMask = height * maskWordsPerRow(width);
  const points = pointGrid(o.pointsPerSide, width, height);
  const candidates: Candidate[] = [];
  for (let start = 0; start < points.length; start += o.pointsPerBatch) {
    const batchPoints = points.slice(start, start + o.pointsPerBatch);
    const out = await decoder.predictBatch(batchPoints, batchPoints.map(() => 1));
    const m = checkDecoderOutput(out, batchPoints.length);
    const gpu = out.lowResMasks.gpu;
    const confident: number[] = [];
    out.iouPredictions.forEach((iou, j) => {
      if (iou >= o.predIouThresh) confident.push(j);
    });
    const countsTensor = maskStabilityCounts(gpu, out.lowResMasks, confident, geometry, o.stabilityScoreOffset);
    const counts = (await countsTensor.read()) as Uint32Array;
    countsTensor.dispose();
    const stable: number[] = [];
    const stability: number[] = [];
    confident.forEach((j, k) => {
      const score = counts[2 * k] / counts[2 * k + 1];
      if (score >= o.stabilityScoreThresh) {
        stable.push(j);
        stability.push(score);
      }
    });
    const bitsTensor = maskBinarize(gpu, out.lowResMasks, stable, geometry);
    const bits = (await bitsTensor.read()) as Uint32Array;
    bitsTensor.dispose();
    stable.forEach((j, k) => {
      const maskBits = bits.slice(k * wordsPerMask, (k + 1) * wordsPerMask);
      const p = batchPoints[Math.floor(j / m)];
      candidates.push({ bits: maskBits, ...boxAndAreaOfBits(maskBits, width, height), predictedIou: out.iouPredictions[j], stabilityScore: stability[k], point: [p[0], p[1]] });
    });
    options.onProgress?.(start + batchPoints.length, points.length);
  }

  const byIou = candidates.map((_, i) => i).sort((a, b) => candidates[b].predictedIou - candidates[a].predictedIou || a - b);
  const kept = nms(candidates.map((c) => c.box), byIou, o.boxNmsThresh);
  let masks: AutoMask[] = kept.map((i) => {
    const c = candidates[i];
    return { mask: unpackBits(c.bits, width, height), width, height, area: c.area, box: c.box, predictedIou: c.predictedIou, stabilityScore: c.stabilityScore, point: c.point };
  });

  if (o.minMaskRegionArea > 0) {
    const unchanged: boolean[] = [];
    masks = masks.map((m) => {
      const filled = removeSmallRegions(m.mask, width, height, o.minMaskRegionArea, 'holes');
      const cleaned = removeSmallRegions(filled.mask, width, height, o.minMaskRegionArea, 'islands');
      const changed = filled.changed || cleaned.changed;
      unchanged.push(!changed);
      return changed ? { ...m, mask: cleaned.mask, ...boxAndAreaOfMask(cleaned.mask, width, height) } : m;
    });
    // SAM re-runs NMS preferring masks the clean-up left alone (score 1 vs 0); `masks` is already in IoU order.
    const order = masks.map((_, i) => i).sort((a, b) => Number(unchanged[b]) - Number(unchanged[a]) || a - b);
    masks = nms(masks.map((m) => m.box), order, o.boxNmsThresh)
      .sort((a, b) => a - b)
      .map((i) => masks[i]);
  }
  return masks;
}
