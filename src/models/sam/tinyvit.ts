// TinyViT (Wu et al., 2022) as MobileSAM uses it for its image encoder, plus
// SAM's neck, as a graph builder (graph/graph.ts). Layout and forward follow
// ChaoningZhang/MobileSAM tiny_vit_sam.py with BatchNorm folded into the convs:
//
//   stem:   conv3×3 s2 (GELU) → conv3×3 s2                          NCHW
//   then everything on tokens [B, H, W, C] (NHWC), depthwise convs included (channels-last kernel):
//   layer0: MBConv ×d0: x = GELU(conv1×1(GELU(dw3×3(GELU(conv1×1 x)))) + x)
//   merge:  conv1×1 (GELU) → dw3×3 (stride 2, or 1 into the widest stage) (GELU) → conv1×1
//   layer1..3: TinyViT blocks:
//     windows = partition(pad(x)) (zero padding to a window multiple; the padded
//               tokens take part in attention, as in the original — no mask)
//     x = crop(unpartition(proj(attn(LN(windows))) + windows))
//     x = dw3×3 conv (local mixing, no activation, no residual)
//     x = x + fc2(GELU(fc1(LN(x))))
//   neck:   conv1×1 (no bias; a matmul on the tokens) → LayerNorm2d → conv3×3 (no bias) → LayerNorm2d
//
// Attention: per-head learned biases over relative offsets, gathered into a
// dense [heads, N, N] table at export time; the fused attention kernel adds
// it to the scaled scores. q, k and v come from three matmuls (the checkpoint's
// per-head interleaved qkv columns are split at load time) so each lands dense
// in the [windows, N, heads, D] layout the kernel reads, with no slice copies.
// Per block the only copies are pad, partition, un-partition and crop.
//
// Any input side S that is a multiple of 16 works (the last stage is S/16):
// token maps pad to whole windows, as the original does at 1024 (whose
// PyTorch code fixes the resolution; here it follows the input).

import type { Graph, Value } from '../../graph/graph.js';
import * as ops from '../../graph/ops.js';

export interface TinyVitConfig {
  /** Channels per stage. */
  dims: readonly number[];
  /** Blocks per stage (stage 0: MBConv blocks; the others: TinyViT blocks). */
  depths: readonly number[];
  /** Heads per stage (stage 0 unused). */
  heads: readonly number[];
  /** Attention window side per stage (stage 0 unused). */
  windows: readonly number[];
  /** Expansion of the MBConv (stage 0) and of the MLPs. */
  mbconvRatio: number;
  mlpRatio: number;
  /** Strides of the patch mergings after stages 0..2 (MobileSAM keeps 64² for the last stage). */
  mergeStrides: readonly number[];
  neckDim: number;
  /** eps of the TinyViT LayerNorms and of the neck's LayerNorm2d. */
  lnEps: number;
  neckEps: number;
}

/** MobileSAM's TinyViT-5M at 1024² input. */
export const MOBILE_SAM_TINYVIT: TinyVitConfig = {
  dims: [64, 128, 160, 320],
  depths: [2, 2, 6, 2],
  heads: [2, 4, 5, 10],
  windows: [7, 7, 14, 7],
  mbconvRatio: 4,
  mlpRatio: 4,
  mergeStrides: [2, 2, 1],
  neckDim: 256,
  lnEps: 1e-5,
  neckEps: 1e-6,
};

/** A conv with its folded-BatchNorm bias: w [O, C, k, k] (stem) or, depthwise, [k, k, C] (channels last); b [O]. */
export interface ConvWeights {
  w: Value;
  b: Value;
}

/** A 1×1 conv run as a matmul on token rows: w [C, O] (the conv weight transposed), b [O]. */
export interface PointwiseWeights {
  w: Value;
  b: Value;
}

/** MBConv and PatchMerging: 1×1 expand, depthwise 3×3, 1×1 project. */
export interface MbConvWeights {
  conv1: PointwiseWeights;
  conv2: ConvWeights;
  conv3: PointwiseWeights;
}

export type PatchMergingWeights = MbConvWeights;

export interface TinyVitBlockWeights {
  attnNormG: Value;
  attnNormB: Value;
  /** [C, C] each, [in, out]; columns grouped by head. */
  wq: Value;
  bq: Value;
  wk: Value;
  bk: Value;
  wv: Value;
  bv: Value;
  wProj: Value;
  bProj: Value;
  /** [1, heads, N, N], N = window². */
  attnBias: Value;
  /** Multiplies q·kᵀ. */
  attnScale: number;
  localConv: ConvWeights;
  mlpNormG: Value;
  mlpNormB: Value;
  /** [C, r·C] */
  w1: Value;
  b1: Value;
  /** [r·C, C] */
  w2: Value;
  b2: Value;
}

export interface TinyVitWeights {
  stem: [ConvWeights, ConvWeights];
  mbconv: MbConvWeights[];
  /** After stages 0, 1, 2. */
  merges: PatchMergingWeights[];
  /** Stages 1..3. */
  blocks: TinyVitBlockWeights[][];
  neck: { conv1: Value; ln1G: Value; ln1B: Value; conv2: Value; ln2G: Value; ln2B: Value };
}

/**
 * The MBConv / PatchMerging body on tokens [B, H, W, C]: the 1×1 convs are
 * matmuls on token rows (faster than the conv kernel's 1×1 path) and the
 * depthwise conv runs channels-last, so nothing is permuted.
 * Returns the pre-activation [B, Ho·Wo, O] (residual added when given).
 */
function pointwiseDwPointwise(g: Graph, x: Value, w: MbConvWeights, stride: number, residual?: Value): Value {
  const [b, h, wd, c] = x.shape;
  const hidden = w.conv2.w.shape[2];
  const expanded = ops.matmul(g, g.reshape(x, [b * h * wd, c]), w.conv1.w, { bias: w.conv1.b, activation: 'gelu' });
  const dw = ops.depthwiseConv2dNhwc(g, g.reshape(expanded, [b, h, wd, hidden]), w.conv2.w, { bias: w.conv2.b, padding: 1, stride, activation: 'gelu' });
  const [, ho, wo] = dw.shape;
  return g.reshape(ops.matmul(g, g.reshape(dw, [b * ho * wo, hidden]), w.conv3.w, { bias: w.conv3.b, residual: residual && g.reshape(residual, [b * ho * wo, -1]) }), [b, ho * wo, -1]);
}

/** MBConv on tokens [B, H, W, C]: GELU(project(dw(expand(x))) + x). */
function mbconv(g: Graph, x: Value, w: MbConvWeights): Value {
  const [b, h, wd, c] = x.shape;
  const y = pointwiseDwPointwise(g, x, w, 1, g.reshape(x, [b, h * wd, c]));
  return g.reshape(ops.activation(g, 'gelu', y), x.shape);
}

/** PatchMerging on tokens [B, H, W, C] → tokens [B, Ho, Wo, C']. */
function patchMerging(g: Graph, x: Value, w: PatchMergingWeights, stride: number): Value {
  const [b, h, wd] = x.shape;
  const y = pointwiseDwPointwise(g, x, w, stride);
  const ho = Math.floor((h - 1) / stride) + 1;
  const wo = Math.floor((wd - 1) / stride) + 1;
  return g.reshape(y, [b, ho, wo, y.shape[2]]);
}

/** One TinyViT block on tokens [B, H, W, C]; returns the same layout. */
export function tinyVitBlock(g: Graph, x: Value, w: TinyVitBlockWeights, heads: number, window: number, eps: number): Value {
  const [b, h, wd, c] = x.shape;
  const d = c / heads;
  const padB = (window - (h % window)) % window;
  const padR = (window - (wd % window)) % window;
  const ph = h + padB;
  const pw = wd + padR;
  const nh = ph / window;
  const nw = pw / window;
  const n = window * window;
  const padded = padB || padR ? ops.pad(g, x, [[0, 0], [0, padB], [0, padR], [0, 0]]) : x;
  // [B, nH, ws, nW, ws, C] → [B, nH, nW, ws, ws, C]: windows × tokens rows.
  const windows = g.reshape(ops.permute(g, g.reshape(padded, [b, nh, window, nw, window, c]), [0, 1, 3, 2, 4, 5]), [b * nh * nw * n, c]);
  const normed = ops.layerNorm(g, windows, w.attnNormG, w.attnNormB, eps);
  const proj = (wt: Value, bias: Value) => g.reshape(ops.matmul(g, normed, wt, { bias }), [b * nh * nw, n, heads, d]);
  const att = ops.attention(g, proj(w.wq, w.bq), proj(w.wk, w.bk), proj(w.wv, w.bv), { layout: 'blhd', bias: w.attnBias, scale: w.attnScale });
  // The residual is added in window layout; the padded tokens it also touches are cropped below.
  const y = ops.matmul(g, g.reshape(att, [b * nh * nw * n, c]), w.wProj, { bias: w.bProj, residual: windows });
  // [B, nH, nW, ws, ws, C] → [B, nH, ws, nW, ws, C] = tokens of the padded map, then crop.
  let spatial = g.reshape(ops.permute(g, g.reshape(y, [b, nh, nw, window, window, c]), [0, 1, 3, 2, 4, 5]), [b, ph, pw, c]);
  if (padB || padR) spatial = ops.slice(g, spatial, [0, 0, 0, 0], [b, h, wd, c]);
  const local = ops.depthwiseConv2dNhwc(g, spatial, w.localConv.w, { bias: w.localConv.b, padding: 1 });
  const rows = g.reshape(local, [b * h * wd, c]);
  const f = ops.matmul(g, ops.layerNorm(g, rows, w.mlpNormG, w.mlpNormB, eps), w.w1, { bias: w.b1, activation: 'gelu' });
  return g.reshape(ops.matmul(g, f, w.w2, { bias: w.b2, residual: rows }), [b, h, wd, c]);
}

/** image [B, 3, S, S] → embedding [B, neckDim, S/16, S/16]. */
export function tinyVitEncoder(g: Graph, image: Value, w: TinyVitWeights, cfg: TinyVitConfig = MOBILE_SAM_TINYVIT): Value {
  let x = ops.conv2d(g, image, w.stem[0].w, { bias: w.stem[0].b, stride: 2, padding: 1, activation: 'gelu' });
  x = ops.conv2d(g, x, w.stem[1].w, { bias: w.stem[1].b, stride: 2, padding: 1 });
  let tokens = ops.permute(g, x, [0, 2, 3, 1]);
  for (const block of w.mbconv) tokens = mbconv(g, tokens, block);
  tokens = patchMerging(g, tokens, w.merges[0], cfg.mergeStrides[0]);
  for (let stage = 1; stage < cfg.dims.length; stage++) {
    for (const block of w.blocks[stage - 1]) tokens = tinyVitBlock(g, tokens, block, cfg.heads[stage], cfg.windows[stage], cfg.lnEps);
    if (stage < cfg.dims.length - 1) tokens = patchMerging(g, tokens, w.merges[stage], cfg.mergeStrides[stage]);
  }
  const nk = w.neck;
  // The 1×1 conv as W [O, C] · tokensᵀ: NCHW straight from the tokens, no permute.
  const [b, h, wd, c] = tokens.shape;
  const w1 = g.reshape(nk.conv1, [cfg.neckDim, c]);
  let y = g.reshape(ops.matmul(g, w1, g.reshape(tokens, [b, h * wd, c]), { transB: true }), [b, cfg.neckDim, h, wd]);
  y = ops.layerNorm2d(g, y, nk.ln1G, nk.ln1B, cfg.neckEps);
  y = ops.conv2d(g, y, nk.conv2, { padding: 1 });
  return ops.layerNorm2d(g, y, nk.ln2G, nk.ln2B, cfg.neckEps);
}
