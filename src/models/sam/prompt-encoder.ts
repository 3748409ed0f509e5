// SAM's prompt encoder (segment_anything / sam2 PromptEncoder), shared by
// MobileSAM and SAM2.
//
// Sparse prompts (points, box corners) are a few hundred numbers per prompt:
// they are encoded on the host in float64 and uploaded with the tokens.
//   c = (xy + 0.5) / S;  c = 2c − 1;  f = 2π · c @ G  (G [2, D/2]);  pe = [sin f, cos f]
//   label −1 (padding): the PE is REPLACED by not_a_point_embed
//   labels 0, 1 (clicks), 2, 3 (box corners): point_embeddings[label] is ADDED
// The dense positional encoding (the decoder's image_pe) is the same encoding
// of the pixel-centre grid ((j + 0.5)/w, (i + 0.5)/h), laid out [D, h, w].
// The dense prompt (mask input) runs on the GPU as a graph:
//   conv 2×2/2 → LayerNorm2d → GELU → conv 2×2/2 → LayerNorm2d → GELU → conv 1×1,
// or no_mask_embed broadcast when there is no mask.
//
// Prompt order differs between the two models (both as their predictors do):
//   SAM / MobileSAM: clicks, then box corners; a padding point (0, 0, −1) is
//     appended only when there is no box (PromptEncoder pads iff boxes is None).
//   SAM2: box corners first, then clicks; the padding point is always appended
//     (SAM2ImagePredictor passes boxes as points, so boxes is always None).

import type { Graph, Value } from '../../graph/graph.js';
import * as ops from '../../graph/ops.js';

/** A host tensor: float values in row-major order and their shape. */
export interface HostTensor {
  readonly data: Float32Array;
  readonly shape: readonly number[];
}

/** The prompt encoder's host parameters (the sparse part). */
export interface PointEncoderParams {
  /** pe_layer.positional_encoding_gaussian_matrix [2, D/2]. */
  gaussian: HostTensor;
  /** point_embeddings.{0..3}.weight stacked [4, D]. */
  pointEmbeddings: HostTensor;
  /** not_a_point_embed.weight [1, D]. */
  notAPoint: HostTensor;
  /** The native prompt frame S: coordinates are pixels of the S×S model input (an embedding of side h has S = 16h). */
  imageSize: number;
}

/** Prompt points in the model's S×S frame, with labels, for B prompts of N points each. */
export interface PromptPoints {
  /** [B, N, 2] (x, y). */
  coords: Float32Array;
  /** [B, N]: −1 padding, 0 negative, 1 positive, 2 box top-left, 3 box bottom-right. */
  labels: Int32Array;
  batch: number;
  count: number;
}

export type PromptOrder = 'sam' | 'sam2';

export interface PointPrompt {
  points?: ReadonlyArray<readonly [number, number]>;
  labels?: readonly number[];
  box?: readonly [number, number, number, number];
}

const LABELS = new Set([-1, 0, 1, 2, 3]);

/**
 * B one-click prompts (image pixels, one label each) as one batch, each
 * click mapped by `toPoints` (a one-point prompt → the click and the padding
 * point, so N = 2): what the predictors' predictBatch decodes.
 */
export function clickBatch(op: string, points: ReadonlyArray<readonly [number, number]>, labels: readonly number[], toPoints: (prompt: PointPrompt) => PromptPoints): PromptPoints {
  if (points.length !== labels.length) throw new Error(`${op}: ${points.length} points but ${labels.length} labels (one label per point)`);
  if (points.length === 0) throw new Error(`${op}: no points`);
  const B = points.length;
  const N = 2; // the click and the padding point
  const coords = new Float32Array(B * N * 2);
  const lab = new Int32Array(B * N);
  points.forEach((p, b) => {
    const one = toPoints({ points: [p], labels: [labels[b]] });
    coords.set(one.coords, b * N * 2);
    lab.set(one.labels, b * N);
  });
  return { coords, labels: lab, batch: B, count: N };
}

function checkFinite(op: string, what: string, values: readonly number[]): void {
  const bad = values.findIndex((v) => typeof v !== 'number' || !Number.isFinite(v));
  if (bad >= 0) throw new Error(`${op}: ${what} has a non-finite coordinate (${values[bad]}) at index ${bad}`);
}

/**
 * One prompt (clicks and/or a box in image pixels) as model-frame points with
 * labels, in the model's order with its padding rule. `toModel` maps image
 * pixels to the S×S frame.
 */
export function promptPoints(op: string, prompt: PointPrompt, toModel: (x: number, y: number) => [number, number], order: PromptOrder): PromptPoints {
  const points = prompt.points ?? [];
  const labels = prompt.labels ?? [];
  if (points.length !== labels.length) throw new Error(`${op}: ${points.length} points but ${labels.length} labels (one label per point)`);
  points.forEach((p, i) => {
    if (!p || p.length !== 2) throw new Error(`${op}: point ${i} must be [x, y], got ${JSON.stringify(p)}`);
    checkFinite(op, `point ${i}`, [p[0], p[1]]);
  });
  labels.forEach((l, i) => {
    if (l !== 0 && l !== 1) throw new Error(`${op}: label ${i} is ${l}; clicks are labelled 1 (foreground) or 0 (background)`);
  });
  const box = prompt.box;
  if (box !== undefined) {
    if (box.length !== 4) throw new Error(`${op}: box must be [x0, y0, x1, y1], got ${JSON.stringify(box)}`);
    checkFinite(op, 'box', [...box]);
  }
  if (points.length === 0 && box === undefined) throw new Error(`${op}: the prompt has no points and no box`);
  const clicks = points.map(([x, y], i) => ({ xy: toModel(x, y), label: labels[i] }));
  const corners = box ? [{ xy: toModel(box[0], box[1]), label: 2 }, { xy: toModel(box[2], box[3]), label: 3 }] : [];
  const pad = order === 'sam2' || box === undefined ? [{ xy: [0, 0] as [number, number], label: -1 }] : [];
  const all = order === 'sam2' ? [...corners, ...clicks, ...pad] : [...clicks, ...corners, ...pad];
  const coords = new Float32Array(all.length * 2);
  const lab = new Int32Array(all.length);
  all.forEach((p, i) => {
    coords[2 * i] = p.xy[0];
    coords[2 * i + 1] = p.xy[1];
    lab[i] = p.label;
  });
  return { coords, labels: lab, batch: 1, count: all.length };
}

/** [sin f, cos f] of f = 2π · (2c − 1) @ G for one normalized point c, written at out[offset..offset+D). */
function fourierFeatures(gaussian: HostTensor, cx: number, cy: number, out: Float32Array, offset: number): void {
  const half = gaussian.shape[1];
  const g = gaussian.data;
  const x = 2 * cx - 1;
  const y = 2 * cy - 1;
  for (let k = 0; k < half; k++) {
    const f = 2 * Math.PI * (x * g[k] + y * g[half + k]);
    out[offset + k] = Math.sin(f);
    out[offset + half + k] = Math.cos(f);
  }
}

/** Sparse prompt embeddings [B, N, D] of points in the frame × frame prompt frame (default: params.imageSize; float64 math, rounded once). */
export function encodePoints(params: PointEncoderParams, points: PromptPoints, op = 'SamPromptEncoder.encodePoints', frame = params.imageSize): Float32Array {
  const { coords, labels, batch, count } = points;
  const n = batch * count;
  if (coords.length !== 2 * n) throw new Error(`${op}: coords hold ${coords.length} values, expected ${n}·2 for ${batch} prompts of ${count} points`);
  if (labels.length !== n) throw new Error(`${op}: ${labels.length} labels for ${n} points (${batch} prompts of ${count})`);
  const D = params.pointEmbeddings.shape[1];
  if (!(frame > 0) || !Number.isFinite(frame)) throw new Error(`${op}: the prompt frame size must be a positive number, got ${frame}`);
  const S = frame;
  const out = new Float32Array(n * D);
  for (let i = 0; i < n; i++) {
    const x = coords[2 * i];
    const y = coords[2 * i + 1];
    if (!Number.isFinite(x) || !Number.isFinite(y)) throw new Error(`${op}: point ${i} has a non-finite coordinate (${x}, ${y})`);
    const label = labels[i];
    if (!LABELS.has(label)) throw new Error(`${op}: point ${i} has label ${label}; labels are −1 (padding), 0, 1 (clicks), 2, 3 (box corners)`);
    const o = i * D;
    if (label === -1) {
      out.set(params.notAPoint.data.subarray(0, D), o);
      continue;
    }
    fourierFeatures(params.gaussian, (x + 0.5) / S, (y + 0.5) / S, out, o);
    const e = params.pointEmbeddings.data;
    for (let c = 0; c < D; c++) out[o + c] += e[label * D + c];
  }
  return out;
}

/** The dense positional encoding get_dense_pe() [D, h, w] (float64 math, rounded once). */
export function densePositionalEncoding(gaussian: HostTensor, h: number, w: number): Float32Array {
  const D = 2 * gaussian.shape[1];
  const row = new Float32Array(D);
  const out = new Float32Array(D * h * w);
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      fourierFeatures(gaussian, (j + 0.5) / w, (i + 0.5) / h, row, 0);
      for (let c = 0; c < D; c++) out[(c * h + i) * w + j] = row[c];
    }
  }
  return out;
}

/** The mask-downscaling parameters as graph values (PyTorch conv layouts). */
export interface MaskDownscalingValues {
  conv1: Value;
  conv1Bias: Value;
  norm1: Value;
  norm1Bias: Value;
  conv2: Value;
  conv2Bias: Value;
  norm2: Value;
  norm2Bias: Value;
  conv3: Value;
  conv3Bias: Value;
}

/** Dense prompt embedding of mask logits [B, 1, 4h, 4w] → [B, D, h, w] (LayerNorm2d eps 1e-6, exact GELU). */
export function embedMask(g: Graph, mask: Value, w: MaskDownscalingValues): Value {
  let x = ops.conv2d(g, mask, w.conv1, { bias: w.conv1Bias, stride: 2 });
  x = ops.activation(g, 'gelu', ops.layerNorm2d(g, x, w.norm1, w.norm1Bias, 1e-6));
  x = ops.conv2d(g, x, w.conv2, { bias: w.conv2Bias, stride: 2 });
  x = ops.activation(g, 'gelu', ops.layerNorm2d(g, x, w.norm2, w.norm2Bias, 1e-6));
  return ops.conv2d(g, x, w.conv3, { bias: w.conv3Bias });
}
