// The Hiera trunk of SAM2 (sam2/modeling/backbones/hieradet.py) as a graph
// builder, plus its weight-derived positional embedding (host, float64).
//
// Activations are channels-last [N, H, W, C], as in the reference.
//   patch embed: Conv2d(3, E, 7, stride 4, pad 3) → [N, S/4, S/4, E]
//   + pos: bicubic(pos_embed → S/4) + tile(pos_embed_window)
//   block (pre-norm, LN eps 1e-6):
//     xn = norm1(x)
//     shortcut = dim changes ? maxpool2×2(proj(xn)) : x   (projection of the NORMED input)
//     windows of xn, zero-padded to a multiple of the window (not masked);
//       global blocks (window 0) attend over the whole map
//     q, k, v (rows of the checkpoint's qkv, split by the loader under the
//       internal keys `attn.q|k|v.weight|bias`) → on q-pool blocks the queries (only) are max-pooled 2×2 per window
//     attention → proj → un-window with the pooled window, crop the padding
//     x = shortcut + attn;  x = x + fc2(GELU(fc1(norm2(x))))
//   stage outputs (last block of each stage) → NCHW.

import type { Graph, Value } from '../../graph/graph.js';
import * as ops from '../../graph/ops.js';
import { hieraBlocks, type HieraConfig, type HieraBlockSpec } from './config.js';

const LN_EPS = 1e-6;
const PATCH_STRIDE = 4;
const PATCH_PADDING = 3;
const BICUBIC_A = -0.75;
const MLP_RATIO = 4;

/** Looks up a checkpoint tensor (official key) as a graph weight. */
export type ParamLookup = (key: string) => Value;

export interface HieraOutputs {
  /** Conv output before the positional embedding [N, H, W, E]. */
  patchEmbed: Value;
  /** patchEmbed + pos: the input of block 0. */
  blockInput: Value;
  /** Output of every block [N, h, w, C]. */
  blocks: Value[];
  /** Trunk outputs, stride 4 first, NCHW. */
  stages: Value[];
}

/** The cubic convolution weights of PyTorch's upsample_bicubic2d for fraction t (taps at −1, 0, +1, +2). */
function cubicWeights(t: number): [number, number, number, number] {
  const a = BICUBIC_A;
  const near = (x: number) => ((a + 2) * x - (a + 3)) * x * x + 1;
  const far = (x: number) => ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return [far(t + 1), near(t), near(1 - t), far(2 - t)];
}

/** Per output index: the 4 border-clamped source indices and weights (align_corners=False, no clamp of the source coordinate). */
function cubicTaps(inLen: number, outLen: number): Array<{ idx: number[]; w: number[] }> {
  const scale = inLen / outLen;
  const taps = [];
  for (let o = 0; o < outLen; o++) {
    const real = scale * (o + 0.5) - 0.5;
    const i0 = Math.floor(real);
    const w = cubicWeights(real - i0);
    const idx = [-1, 0, 1, 2].map((d) => Math.min(Math.max(i0 + d, 0), inLen - 1));
    taps.push({ idx, w });
  }
  return taps;
}

/**
 * Hiera's _get_pos_embed for an h×w stride-4 map, channels-last [h, w, E]:
 * F.interpolate(pos_embed [1, E, bh, bw], (h, w), mode='bicubic') +
 * pos_embed_window [1, E, ws, ws] tiled. Computed in float64.
 */
export function hieraPosEmbed(posEmbed: Float32Array, bkg: readonly [number, number], windowEmbed: Float32Array, window: number, embedDim: number, h: number, w: number): Float32Array {
  const [bh, bw] = bkg;
  if (h % window !== 0 || w % window !== 0) throw new Error(`hieraPosEmbed: the ${h}×${w} map is not a multiple of the ${window}×${window} window embed`);
  const ty = cubicTaps(bh, h);
  const tx = cubicTaps(bw, w);
  const out = new Float32Array(h * w * embedDim);
  const row = new Float64Array(w);
  for (let e = 0; e < embedDim; e++) {
    const plane = posEmbed.subarray(e * bh * bw, (e + 1) * bh * bw);
    // Along x for each source row, then along y: the separable form of PyTorch's 4×4 taps.
    const horizontal = new Float64Array(bh * w);
    for (let sy = 0; sy < bh; sy++) {
      for (let x = 0; x < w; x++) {
        const { idx, w: wx } = tx[x];
        let acc = 0;
        for (let k = 0; k < 4; k++) acc += wx[k] * plane[sy * bw + idx[k]];
        horizontal[sy * w + x] = acc;
      }
    }
    for (let y = 0; y < h; y++) {
      const { idx, w: wy } = ty[y];
      row.fill(0);
      for (let k = 0; k < 4; k++) for (let x = 0; x < w; x++) row[x] += wy[k] * horizontal[idx[k] * w + x];
      for (let x = 0; x < w; x++) {
        const win = windowEmbed[(e * window + (y % window)) * window + (x % window)];
        out[(y * w + x) * embedDim + e] = row[x] + win;
      }
    }
  }
  return out;
}

/** 2×2 max pool of a channels-last map [B, H, W, C] (nn.MaxPool2d(2, 2), floor mode). */
function maxPool2x2(g: Graph, x: Value): Value {
  const nchw = ops.permute(g, x, [0, 3, 1, 2]);
  return ops.permute(g, ops.maxPool2d(g, nchw, { kernel: 2, stride: 2 }), [0, 2, 3, 1]);
}

/** [N, H, W, C] → windows [N·(H/ws)·(W/ws), ws·ws, C] after zero padding H, W up to multiples of ws. */
function windowPartition(g: Graph, x: Value, ws: number): Value {
  const [n, h, w, c] = x.shape;
  const ph = Math.ceil(h / ws) * ws;
  const pw = Math.ceil(w / ws) * ws;
  const padded = ph === h && pw === w ? x : ops.pad(g, x, [[0, 0], [0, ph - h], [0, pw - w], [0, 0]]);
  const grid = g.reshape(padded, [n, ph / ws, ws, pw / ws, ws, c]);
  return g.reshape(ops.permute(g, grid, [0, 1, 3, 2, 4, 5]), [-1, ws * ws, c]);
}

/** Inverse of windowPartition for a (pooled) window ws: back to [N, H, W, C], padding cropped. */
function windowUnpartition(g: Graph, windows: Value, ws: number, n: number, h: number, w: number): Value {
  const c = windows.shape.at(-1)!;
  const ph = Math.ceil(h / ws) * ws;
  const pw = Math.ceil(w / ws) * ws;
  const grid = g.reshape(windows, [n, ph / ws, pw / ws, ws, ws, c]);
  const map = g.reshape(ops.permute(g, grid, [0, 1, 3, 2, 4, 5]), [n, ph, pw, c]);
  return ph === h && pw === w ? map : ops.slice(g, map, [0, 0, 0, 0], [n, h, w, c]);
}

function linear(g: Graph, p: ParamLookup, x: Value, name: string, opts: { activation?: 'gelu'; residual?: Value } = {}): Value {
  return ops.matmul(g, x, p(`${name}.weight`), { transB: true, bias: p(`${name}.bias`), ...opts });
}

/** One MultiScaleBlock on x [N, H, W, dimIn]. */
export function hieraBlock(g: Graph, p: ParamLookup, x: Value, b: HieraBlockSpec, prefix: string): Value {
  const [n, h, w] = x.shape;
  const C = b.dimOut;
  const hd = C / b.heads;
  const xn = ops.layerNorm(g, x, p(`${prefix}norm1.weight`), p(`${prefix}norm1.bias`), LN_EPS);
  let shortcut = x;
  if (b.dimIn !== b.dimOut) {
    const projected = linear(g, p, xn, `${prefix}proj`);
    shortcut = b.qPool ? maxPool2x2(g, projected) : projected;
  }
  // Windows (a global block is one window of the whole map).
  const [wh, ww] = b.window > 0 ? [b.window, b.window] : [h, w];
  const windows = b.window > 0 ? windowPartition(g, xn, b.window) : g.reshape(xn, [n, h * w, b.dimIn]);
  const B = windows.shape[0];
  const L = wh * ww;
  // q, k, v as three products (the loader splits qkv's rows): each lands in the
  // [B, L, heads, hd] layout attention reads, and the stage-1 q-pool block's
  // fused [N·H·W, 3·dimOut] output would pass a 128 MiB binding at 1024.
  const part = (name: 'q' | 'k' | 'v') => g.reshape(linear(g, p, windows, `${prefix}attn.${name}`), [B, L, b.heads, hd]);
  let q = part('q');
  let [qh, qw] = [wh, ww];
  if (b.qPool) {
    const pooled = maxPool2x2(g, g.reshape(q, [B, wh, ww, C]));
    [qh, qw] = [pooled.shape[1], pooled.shape[2]];
    q = g.reshape(pooled, [B, qh * qw, b.heads, hd]);
  }
  const att = g.reshape(ops.attention(g, q, part('k'), part('v'), { layout: 'blhd' }), [B, qh * qw, C]);
  const [oh, ow] = [shortcut.shape[1], shortcut.shape[2]];
  let attended: Value;
  if (b.window > 0) attended = windowUnpartition(g, linear(g, p, att, `${prefix}attn.proj`), b.qPool ? b.window / 2 : b.window, n, oh, ow);
  else attended = g.reshape(linear(g, p, att, `${prefix}attn.proj`, { residual: g.reshape(shortcut, [n, oh * ow, C]) }), [n, oh, ow, C]);
  const x1 = b.window > 0 ? ops.add(g, shortcut, attended) : attended;
  return mlp(g, p, x1, prefix);
}

/**
 * x + fc2(GELU(fc1(norm2(x)))) on [N, H, W, C]. The hidden [.., 4C] map can pass
 * the device's storage binding limit (large at 1024: 256²·576 f32 = 151 MB), so
 * the MLP then runs on bands of rows, concatenated after (it is per token).
 */
function mlp(g: Graph, p: ParamLookup, x: Value, prefix: string): Value {
  const [n, h, w, c] = x.shape;
  const xn = ops.layerNorm(g, x, p(`${prefix}norm2.weight`), p(`${prefix}norm2.bias`), LN_EPS);
  const run = (rows: Value, residual: Value) =>
    linear(g, p, linear(g, p, rows, `${prefix}mlp.layers.0`, { activation: 'gelu' }), `${prefix}mlp.layers.1`, { residual });
  const hiddenBytes = n * h * w * MLP_RATIO * c * 4;
  const bands = Math.ceil(hiddenBytes / g.gpu.limits.maxStorageBufferBindingSize);
  if (bands <= 1) return run(xn, x);
  const rows = Math.ceil(h / bands);
  const pieces: Value[] = [];
  for (let y0 = 0; y0 < h; y0 += rows) {
    const band = (v: Value) => ops.slice(g, v, [0, y0, 0, 0], [n, Math.min(h, y0 + rows), w, c]);
    pieces.push(run(band(xn), band(x)));
  }
  return ops.concat(g, pieces, 1);
}

/**
 * The trunk on images [N, 3, S, S] (normalized); `pos` is the graph weight of
 * hieraPosEmbed's result [1, S/4, S/4, E]. Keys under `image_encoder.trunk.`.
 */
export function hieraTrunk(g: Graph, p: ParamLookup, images: Value, pos: Value, c: HieraConfig): HieraOutputs {
  const t = 'image_encoder.trunk.';
  const conv = ops.conv2d(g, images, p(`${t}patch_embed.proj.weight`), { bias: p(`${t}patch_embed.proj.bias`), stride: PATCH_STRIDE, padding: PATCH_PADDING });
  const patchEmbed = ops.permute(g, conv, [0, 2, 3, 1]);
  const blockInput = ops.add(g, patchEmbed, pos);
  const specs = hieraBlocks(c);
  const stageEnds = c.stages.map((_, i) => c.stages.slice(0, i + 1).reduce((a, b) => a + b, 0) - 1);
  const blocks: Value[] = [];
  const stages: Value[] = [];
  let x = blockInput;
  for (const b of specs) {
    x = hieraBlock(g, p, x, b, `${t}blocks.${b.index}.`);
    blocks.push(x);
    if (stageEnds.includes(b.index)) stages.push(ops.permute(g, x, [0, 3, 1, 2]));
  }
  return { patchEmbed, blockInput, blocks, stages };
}
