// Everything after the decoder that is model specific: which of the M tokens
// to keep (host selection) and resizing the low-res logits to the image (GPU).
// SAM's ONNX export picks by point count and upsamples to S, crops the resized
// image region, then resizes; SAM2 picks by a stability rule and resizes the
// low-res logits directly (predictSam2).

import type { Gpu } from '../../device.js';
import { Tensor } from '../../tensor.js';
import { resize } from '../../kernels/resize.js';
import { slice } from '../../kernels/transform.js';
import type { SegmentPrediction, SegmentPrompt } from './segmenter.js';
import { promptPoints } from './prompt-encoder.js';
import type { SamHostOutputs, SamImageFeatures, SamMaskDecoder } from './mask-decoder.js';

/** The chosen masks: K per prompt. */
export interface SelectedMasks {
  /** [B, K, s, s] low-res logits. */
  masks: Float32Array;
  /** [B, K]. */
  iou: Float32Array;
  /** [B, K] token indices chosen. */
  tokens: Int32Array;
  batch: number;
  count: number;
  size: number;
}

/** Picks `choose(b)` tokens of each prompt b (all prompts must pick the same number). */
export function selectTokens(out: SamHostOutputs, choose: (b: number) => number[]): SelectedMasks {
  const { batch: B, tokens: M, size: s } = out;
  const picks = Array.from({ length: B }, (_, b) => choose(b));
  const K = picks[0]?.length ?? 0;
  const area = s * s;
  const masks = new Float32Array(B * K * area);
  const iou = new Float32Array(B * K);
  const tokens = new Int32Array(B * K);
  picks.forEach((ks, b) => {
    if (ks.length !== K) throw new Error(`selectTokens: prompt ${b} picks ${ks.length} tokens, prompt 0 picks ${K}`);
    ks.forEach((t, k) => {
      if (!Number.isInteger(t) || t < 0 || t >= M) throw new Error(`selectTokens: token ${t} is outside [0, ${M})`);
      masks.set(out.masks.subarray((b * M + t) * area, (b * M + t + 1) * area), (b * K + k) * area);
      iou[b * K + k] = out.iou[b * M + t];
      tokens[b * K + k] = t;
    });
  });
  return { masks, iou, tokens, batch: B, count: K, size: s };
}

/** The multimask tokens 1..M−1 of every prompt. */
export function multimaskTokens(out: SamHostOutputs): SelectedMasks {
  return selectTokens(out, () => Array.from({ length: out.tokens - 1 }, (_, i) => i + 1));
}

/** Index of the first maximum of iou[b, from..M). */
function bestToken(out: SamHostOutputs, b: number, from: number, bonus: (t: number) => number = () => 0): number {
  let best = from;
  for (let t = from + 1; t < out.tokens; t++) if (out.iou[b * out.tokens + t] + bonus(t) > out.iou[b * out.tokens + best] + bonus(best)) best = t;
  return best;
}

/**
 * SAM's ONNX export (SamOnnxModel.select_masks, return_single_mask): score =
 * iou + (N − 2.5)·[1000, 0, 0, 0] with N the prompt's point count incl.
 * padding, argmax. One click (+ padding) or a box alone picks the best
 * multimask token; more points pick token 0.
 */
export function onnxSingleMask(out: SamHostOutputs, pointCount: number): SelectedMasks {
  const reweight = (pointCount - 2.5) * 1000;
  return selectTokens(out, (b) => [bestToken(out, b, 0, (t) => (t === 0 ? reweight : 0))]);
}

/** Stability of token-0-style logits: #(x > δ) / #(x > −δ), 1 when the denominator is 0 (SAM2 _get_stability_scores). */
export function stabilityScore(logits: Float32Array, delta: number): number {
  let inner = 0;
  let outer = 0;
  for (const x of logits) {
    if (x > delta) inner++;
    if (x > -delta) outer++;
  }
  return outer > 0 ? inner / outer : 1;
}

/** SAM2's single-mask output: token 0 if its stability ≥ threshold, else the multimask token with the best IoU. */
export function dynamicSingleMask(out: SamHostOutputs, rule: { delta: number; threshold: number }): SelectedMasks & { stability: Float32Array } {
  const area = out.size * out.size;
  const stability = new Float32Array(out.batch);
  const selected = selectTokens(out, (b) => {
    const token0 = out.masks.subarray(b * out.tokens * area, (b * out.tokens + 1) * area);
    stability[b] = stabilityScore(token0, rule.delta);
    return [stability[b] >= rule.threshold ? 0 : bestToken(out, b, 1)];
  });
  return { ...selected, stability };
}

/** How low-res logits become image-size logits. */
export type MaskPostprocess =
  /** SAM / MobileSAM ONNX: bilinear to S×S, crop the resized image [rh, rw], bilinear to the image. */
  | { kind: 'sam'; imageSize: number; resized: readonly [number, number] }
  /** SAM2: bilinear from the low-res logits straight to the image. */
  | { kind: 'sam2' };

/** Low-res logits [n, s, s] → logits at [height, width] (bilinear, align_corners=False); a new tensor [1, n, height, width]. */
export function postprocessMasks(gpu: Gpu, lowRes: Float32Array, count: number, size: number, height: number, width: number, how: MaskPostprocess): Tensor {
  const op = 'postprocessMasks';
  if (lowRes.length !== count * size * size) throw new Error(`${op}: ${lowRes.length} values are not ${count} masks of ${size}×${size}`);
  if (!Number.isInteger(height) || !Number.isInteger(width) || height < 1 || width < 1) throw new Error(`${op}: image size ${width}×${height} must be positive integers`);
  const x = Tensor.fromArray(gpu, lowRes, [1, count, size, size]);
  try {
    if (how.kind === 'sam2') return resize(gpu, x, { size: [height, width], mode: 'bilinear' });
    const S = how.imageSize;
    const [rh, rw] = how.resized;
    if (!(rh >= 1 && rh <= S && rw >= 1 && rw <= S)) throw new Error(`${op}: resized region ${rw}×${rh} must lie inside ${S}×${S}`);
    const full = resize(gpu, x, { size: [S, S], mode: 'bilinear' });
    const crop = slice(gpu, full, [0, 0, 0, 0], [1, count, rh, rw]);
    full.dispose();
    const y = resize(gpu, crop, { size: [height, width], mode: 'bilinear' });
    crop.dispose();
    return y;
  } finally {
    x.dispose();
  }
}

/** The crop the ONNX export computes from orig_im_size, in its f32 arithmetic: floor(S/max(h, w)·[h, w] + 0.5). */
export function onnxResizedSize(height: number, width: number, imageSize: number): [number, number] {
  const f = Math.fround;
  const scale = f(f(1 / Math.max(height, width)) * imageSize);
  return [Math.floor(f(f(scale * height) + 0.5)), Math.floor(f(f(scale * width) + 0.5))];
}

/**
 * SAM2ImagePredictor.predict for one prompt in image pixels against one
 * image's features (frame S = 16h for an embedding of side h): points mapped by x·S/W, y·S/H, box corners first, padding
 * point always; multimask → tokens 1..3, else the dynamic single-mask rule;
 * masks resized from the (unclamped) low-res logits to the image; the
 * returned low-res logits clamped to [−32, 32] as the predictor does.
 */
export async function predictSam2(decoder: SamMaskDecoder, features: SamImageFeatures, prompt: SegmentPrompt, width: number, height: number): Promise<SegmentPrediction & { objectScore: number; tokens: Int32Array }> {
  const op = 'predictSam2';
  const { frame: S, maskSize: s } = decoder.geometry(features);
  const points = promptPoints(op, prompt, (x, y) => [(x / width) * S, (y / height) * S], 'sam2');
  if (prompt.mask !== undefined && prompt.mask.length !== s * s) throw new Error(`${op}: mask must hold ${s}·${s} low-res logits, got ${prompt.mask.length}`);
  const out = await decoder.decodeToHost(features, points, prompt.mask);
  const rule = decoder.config.dynamicMultimask;
  const chosen = prompt.multimask === false ? (rule ? dynamicSingleMask(out, rule) : selectTokens(out, () => [0])) : multimaskTokens(out);
  const masks = postprocessMasks(decoder.gpu, chosen.masks, chosen.count, s, height, width, { kind: 'sam2' });
  try {
    return {
      width,
      height,
      masks: (await masks.read()) as Float32Array,
      iouPredictions: chosen.iou,
      lowResMasks: chosen.masks.map((v) => Math.min(32, Math.max(-32, v))),
      count: chosen.count,
      objectScore: out.objectScore ? out.objectScore[0] : NaN,
      tokens: chosen.tokens,
    };
  } finally {
    masks.dispose();
  }
}
