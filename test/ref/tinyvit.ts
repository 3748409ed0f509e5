// Float64 references for MobileSAM's TinyViT image encoder, written from
// tiny_vit_sam.py (MobileSAM) with plain loops: NCHW convs, window attention
// on explicitly zero-padded token maps, LayerNorms, the neck. They take the
// weights as extracted from the ONNX (PyTorch layouts, q/k/v split), so none
// of the engine's weight re-layouts or graph ops are shared. Slow: meant for
// small input sides (64–128).

import { gelu } from './activations.js';
import { conv2d } from './conv.js';
import { layerNorm as layerNormRows } from './norm.js';

export interface RefWeight {
  shape: number[];
  data: ArrayLike<number>;
}

/** A feature map [C, H, W]. */
interface Map3 {
  c: number;
  h: number;
  w: number;
  d: Float64Array;
}

/** PyTorch Conv2d on one image, zero padding; w [O, C/groups, k, k]. */
function conv(x: Map3, w: RefWeight, b: RefWeight | undefined, stride: number, pad: number, groups = 1): Map3 {
  const [o, cg, kh, kw] = w.shape;
  const y = conv2d(x.d, [1, x.c, x.h, x.w], w.data, [o, cg, kh, kw], { bias: b?.data, stride: [stride, stride], padding: [pad, pad], groups });
  return { c: o, h: y.shape[2], w: y.shape[3], d: y.data };
}

const geluMap = (x: Map3): Map3 => ({ ...x, d: x.d.map(gelu) });
const addMaps = (x: Map3, y: Map3): Map3 => ({ ...x, d: x.d.map((v, i) => v + y.d[i]) });

/** Rows [n, c] → LayerNorm over c (biased variance). */
function layerNorm(t: Float64Array, n: number, c: number, g: RefWeight, b: RefWeight, eps: number): Float64Array {
  return layerNormRows(t, n, c, g.data, b.data, eps).y;
}

/** Rows [n, cin] · w [cin, cout] + b. */
function linear(t: Float64Array, n: number, w: RefWeight, b: RefWeight): Float64Array {
  const [cin, cout] = w.shape;
  const out = new Float64Array(n * cout);
  for (let r = 0; r < n; r++) {
    for (let o = 0; o < cout; o++) {
      let s = b.data[o];
      for (let i = 0; i < cin; i++) s += t[r * cin + i] * w.data[i * cout + o];
      out[r * cout + o] = s;
    }
  }
  return out;
}

/** [C, H, W] → rows [H·W, C] and back. */
function toTokens(x: Map3): Float64Array {
  const t = new Float64Array(x.d.length);
  for (let c = 0; c < x.c; c++) for (let p = 0; p < x.h * x.w; p++) t[p * x.c + c] = x.d[c * x.h * x.w + p];
  return t;
}

function fromTokens(t: Float64Array, c: number, h: number, w: number): Map3 {
  const d = new Float64Array(t.length);
  for (let ch = 0; ch < c; ch++) for (let p = 0; p < h * w; p++) d[ch * h * w + p] = t[p * c + ch];
  return { c, h, w, d };
}

/** TinyViT's Attention on the windows of a zero-padded token map, then un-padded: returns tokens [H·W, C] (no residual). */
function windowAttention(t: Float64Array, h: number, w: number, c: number, heads: number, ws: number, p: (name: string) => RefWeight, key: string, scale: number): Float64Array {
  const ph = Math.ceil(h / ws) * ws;
  const pw = Math.ceil(w / ws) * ws;
  const padded = new Float64Array(ph * pw * c);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let j = 0; j < c; j++) padded[(y * pw + x) * c + j] = t[(y * w + x) * c + j];
  const out = new Float64Array(h * w * c);
  const n = ws * ws;
  const d = c / heads;
  const bias = p(`${key}.attn.bias`);
  for (let wy = 0; wy < ph / ws; wy++) {
    for (let wx = 0; wx < pw / ws; wx++) {
      const win = new Float64Array(n * c);
      for (let i = 0; i < ws; i++) for (let j = 0; j < ws; j++) for (let k = 0; k < c; k++) win[(i * ws + j) * c + k] = padded[((wy * ws + i) * pw + wx * ws + j) * c + k];
      const normed = layerNorm(win, n, c, p(`${key}.attn.norm.weight`), p(`${key}.attn.norm.bias`), 1e-5);
      const q = linear(normed, n, p(`${key}.wq`), p(`${key}.bq`));
      const kk = linear(normed, n, p(`${key}.wk`), p(`${key}.bk`));
      const v = linear(normed, n, p(`${key}.wv`), p(`${key}.bv`));
      const att = new Float64Array(n * c);
      for (let hd = 0; hd < heads; hd++) {
        for (let i = 0; i < n; i++) {
          const s = new Float64Array(n);
          let max = -Infinity;
          for (let j = 0; j < n; j++) {
            let dot = 0;
            for (let e = 0; e < d; e++) dot += q[i * c + hd * d + e] * kk[j * c + hd * d + e];
            s[j] = dot * scale + bias.data[(hd * n + i) * n + j];
            max = Math.max(max, s[j]);
          }
          let sum = 0;
          for (let j = 0; j < n; j++) sum += (s[j] = Math.exp(s[j] - max));
          for (let e = 0; e < d; e++) {
            let acc = 0;
            for (let j = 0; j < n; j++) acc += s[j] * v[j * c + hd * d + e];
            att[i * c + hd * d + e] = acc / sum;
          }
        }
      }
      const proj = linear(att, n, p(`${key}.attn.proj.weight`), p(`${key}.attn.proj.bias`));
      for (let i = 0; i < ws; i++) {
        for (let j = 0; j < ws; j++) {
          const y = wy * ws + i;
          const x = wx * ws + j;
          if (y < h && x < w) for (let k = 0; k < c; k++) out[(y * w + x) * c + k] = proj[(i * ws + j) * c + k];
        }
      }
    }
  }
  return out;
}

/** LayerNorm2d: per pixel over channels. */
function layerNorm2d(x: Map3, g: RefWeight, b: RefWeight, eps: number): Map3 {
  return fromTokens(layerNorm(toTokens(x), x.h * x.w, x.c, g, b, eps), x.c, x.h, x.w);
}

export interface RefTinyVitConfig {
  dims: readonly number[];
  depths: readonly number[];
  heads: readonly number[];
  windows: readonly number[];
  mergeStrides: readonly number[];
}

/**
 * image [3, S, S] (one image, CHW) → embedding [256, S/16, S/16], with the
 * weights by extraction name ('patch_embed.0.weight', 'layers.1.blocks.0.wq' …)
 * and the attention scales by block ('layers.1.blocks.0').
 */
export function refTinyVitEncoder(image: ArrayLike<number>, size: number, weights: Map<string, RefWeight>, scales: Map<string, number>, cfg: RefTinyVitConfig): Float64Array {
  const p = (name: string): RefWeight => {
    const t = weights.get(name);
    if (!t) throw new Error(`refTinyVitEncoder: weight ${name} missing`);
    return t;
  };
  let x: Map3 = { c: 3, h: size, w: size, d: Float64Array.from(image) };
  x = geluMap(conv(x, p('patch_embed.0.weight'), p('patch_embed.0.bias'), 2, 1));
  x = conv(x, p('patch_embed.1.weight'), p('patch_embed.1.bias'), 2, 1);
  const mb = (key: string, input: Map3, stride: number): Map3 => {
    let y = geluMap(conv(input, p(`${key}.conv1.weight`), p(`${key}.conv1.bias`), 1, 0));
    y = geluMap(conv(y, p(`${key}.conv2.weight`), p(`${key}.conv2.bias`), stride, 1, y.c));
    return conv(y, p(`${key}.conv3.weight`), p(`${key}.conv3.bias`), 1, 0);
  };
  for (let j = 0; j < cfg.depths[0]; j++) x = geluMap(addMaps(mb(`layers.0.blocks.${j}`, x, 1), x));
  x = mb('layers.0.downsample', x, cfg.mergeStrides[0]);
  for (let s = 1; s < cfg.dims.length; s++) {
    for (let j = 0; j < cfg.depths[s]; j++) {
      const key = `layers.${s}.blocks.${j}`;
      const { c, h, w } = x;
      let t = toTokens(x);
      const att = windowAttention(t, h, w, c, cfg.heads[s], cfg.windows[s], p, key, scales.get(key)!);
      t = t.map((v, i) => v + att[i]);
      const local = toTokens(conv(fromTokens(t, c, h, w), p(`${key}.local_conv.weight`), p(`${key}.local_conv.bias`), 1, 1, c));
      const hidden = linear(layerNorm(local, h * w, c, p(`${key}.mlp.norm.weight`), p(`${key}.mlp.norm.bias`), 1e-5), h * w, p(`${key}.mlp.fc1.weight`), p(`${key}.mlp.fc1.bias`)).map(gelu);
      const mlp = linear(hidden, h * w, p(`${key}.mlp.fc2.weight`), p(`${key}.mlp.fc2.bias`));
      x = fromTokens(local.map((v, i) => v + mlp[i]), c, h, w);
    }
    if (s < cfg.dims.length - 1) x = mb(`layers.${s}.downsample`, x, cfg.mergeStrides[s]);
  }
  x = layerNorm2d(conv(x, p('neck.0.weight'), undefined, 1, 0), p('neck.1.weight'), p('neck.1.bias'), 1e-6);
  x = layerNorm2d(conv(x, p('neck.2.weight'), undefined, 1, 1), p('neck.3.weight'), p('neck.3.bias'), 1e-6);
  return x.d;
}

/** Depthwise conv on channels-last x [N, H, W, C] with w [KH, KW, C], bias [C], zero padding, then `act`. */
export function refDepthwiseConv2dNhwc(
  x: ArrayLike<number>,
  [n, h, w, c]: readonly number[],
  wt: ArrayLike<number>,
  [kh, kw]: readonly number[],
  bias: ArrayLike<number> | undefined,
  [sh, sw]: readonly [number, number],
  [ph, pw]: readonly [number, number],
  act: (v: number) => number = (v) => v,
): { data: Float64Array; shape: number[] } {
  const ho = Math.floor((h + 2 * ph - kh) / sh) + 1;
  const wo = Math.floor((w + 2 * pw - kw) / sw) + 1;
  const data = new Float64Array(n * ho * wo * c);
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < ho; oy++) {
      for (let ox = 0; ox < wo; ox++) {
        for (let ch = 0; ch < c; ch++) {
          let s = bias ? bias[ch] : 0;
          for (let i = 0; i < kh; i++) {
            for (let j = 0; j < kw; j++) {
              const iy = oy * sh - ph + i;
              const ix = ox * sw - pw + j;
              if (iy >= 0 && iy < h && ix >= 0 && ix < w) s += wt[(i * kw + j) * c + ch] * x[((b * h + iy) * w + ix) * c + ch];
            }
          }
          data[((b * ho + oy) * wo + ox) * c + ch] = act(s);
        }
      }
    }
  }
  return { data, shape: [n, ho, wo, c] };
}
