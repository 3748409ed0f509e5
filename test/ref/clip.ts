// Float64 reference of the CLIP image tower (OpenAI key names), composed from
// the per-op references: conv patch embedding, class token, positional
// embedding (optionally resampled to another grid with PyTorch's bicubic
// interpolate, written here per output pixel from torch's definitions),
// ln_pre, pre-LN blocks with QuickGELU or GELU, shallow / deep VPT prompts,
// an additive attention bias, ln_post on token 0 and the projection.

import { attentionRef } from './attention.js';
import { conv2d } from './conv.js';
import { matmulRef } from './matmul.js';
import { layerNorm } from './norm.js';

export type ClipRefParams = (key: string) => Float64Array;

export interface ClipRefOptions {
  activation: 'quickGelu' | 'gelu';
  /** [P, W] shallow or [k, P, W] deep prompts (flat), with their shape. */
  prompts?: { data: ArrayLike<number>; shape: readonly number[] };
  bias?: { data: ArrayLike<number>; shape: readonly number[] };
  posInterpolation?: 'bicubic' | 'bicubic-antialias';
}

export interface ClipRefSizes {
  width: number;
  layers: number;
  heads: number;
  patch: number;
  grid: number;
  embed: number;
}

function cubic(x: number, a: number): number {
  const t = Math.abs(x);
  if (t <= 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
  return 0;
}

/** Taps of one output coordinate along an axis: torch upsample_bicubic2d (a = −0.75, clamped) or its antialiased variant (a = −0.5, PIL-style window). */
function taps(o: number, inSize: number, outSize: number, mode: 'bicubic' | 'bicubic-antialias'): [number, number][] {
  const scale = inSize / outSize;
  if (mode === 'bicubic') {
    const real = scale * (o + 0.5) - 0.5;
    const x0 = Math.floor(real);
    const t = real - x0;
    const w = [cubic(t + 1, -0.75), cubic(t, -0.75), cubic(1 - t, -0.75), cubic(2 - t, -0.75)];
    return w.map((wk, k) => [Math.min(Math.max(x0 - 1 + k, 0), inSize - 1), wk]);
  }
  const support = scale >= 1 ? 2 * scale : 2;
  const center = scale * (o + 0.5);
  const inv = scale >= 1 ? 1 / scale : 1;
  const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
  const xmax = Math.min(Math.trunc(center + support + 0.5), inSize);
  const out: [number, number][] = [];
  for (let j = xmin; j < xmax; j++) out.push([j, cubic((j - center + 0.5) * inv, -0.5)]);
  const total = out.reduce((s, [, w]) => s + w, 0);
  return out.map(([j, w]) => [j, w / total]);
}

/** pos [1 + G², W] → [1 + gh·gw, W]: class row kept, grid resampled (each output as the double sum over its taps). */
export function interpolatePosRef(pos: ArrayLike<number>, G: number, W: number, gh: number, gw: number, mode: 'bicubic' | 'bicubic-antialias'): Float64Array {
  const out = new Float64Array((1 + gh * gw) * W);
  for (let c = 0; c < W; c++) out[c] = pos[c];
  for (let oy = 0; oy < gh; oy++) {
    const ty = taps(oy, G, gh, mode);
    for (let ox = 0; ox < gw; ox++) {
      const tx = taps(ox, G, gw, mode);
      for (let c = 0; c < W; c++) {
        let s = 0;
        for (const [iy, wy] of ty) for (const [ix, wx] of tx) s += wy * wx * pos[(1 + iy * G + ix) * W + c];
        out[(1 + oy * gw + ox) * W + c] = s;
      }
    }
  }
  return out;
}

/** Image features [N, E] and the ln_pre input [N, T, W] for images [N, 3, H, W]. */
export function clipImageRef(p: ClipRefParams, s: ClipRefSizes, image: ArrayLike<number>, [N, , H, Wpx]: readonly number[], o: ClipRefOptions): { features: Float64Array; embed: Float64Array } {
  const W = s.width;
  const gh = H / s.patch;
  const gw = Wpx / s.patch;
  const T0 = gh * gw + 1;
  const conv = conv2d(image, [N, 3, H, Wpx], p('visual.conv1.weight'), [W, 3, s.patch, s.patch], { stride: [s.patch, s.patch] }).data;
  const pos = gh === s.grid && gw === s.grid ? p('visual.positional_embedding') : interpolatePosRef(p('visual.positional_embedding'), s.grid, W, gh, gw, o.posInterpolation!);
  const cls = p('visual.class_embedding');
  const embed = new Float64Array(N * T0 * W);
  for (let n = 0; n < N; n++) {
    for (let t = 0; t < T0; t++) {
      for (let c = 0; c < W; c++) embed[(n * T0 + t) * W + c] = (t === 0 ? cls[c] : conv[(n * W + c) * (T0 - 1) + t - 1]) + pos[t * W + c];
    }
  }
  let x = layerNorm(embed, N * T0, W, p('visual.ln_pre.weight'), p('visual.ln_pre.bias'), 1e-5).y;
  const deep = o.prompts?.shape.length === 3;
  const P = o.prompts ? o.prompts.shape[deep ? 1 : 0] : 0;
  const k = deep ? o.prompts!.shape[0] : o.prompts ? 1 : 0;
  const T = T0 + P;
  const D = W / s.heads;
  // Tokens per block input (prompts are inserted before block 0).
  const L = P > 0 ? T : T0;
  for (let i = 0; i < s.layers; i++) {
    if (i < k) {
      // Token order [cls, prompts, patches]; block 0 inserts, deeper blocks overwrite the prompt rows.
      const next = new Float64Array(N * T * W);
      const from = i === 0 ? T0 : T;
      for (let n = 0; n < N; n++) {
        for (let t = 0; t < T; t++) {
          for (let c = 0; c < W; c++) {
            let v: number;
            if (t === 0) v = x[(n * from) * W + c];
            else if (t <= P) v = o.prompts!.data[((deep ? i : 0) * P + t - 1) * W + c];
            else v = x[(n * from + (i === 0 ? t - P : t)) * W + c];
            next[(n * T + t) * W + c] = v;
          }
        }
      }
      x = next;
    }
    const b = `visual.transformer.resblocks.${i}.`;
    const h = layerNorm(x, N * L, W, p(`${b}ln_1.weight`), p(`${b}ln_1.bias`), 1e-5).y;
    const qkv = matmulRef(h, [N * L, W], p(`${b}attn.in_proj_weight`), [3 * W, W], { transB: true, bias: p(`${b}attn.in_proj_bias`) }).data;
    const part = (j: number) => {
      const out = new Float64Array(N * L * W);
      for (let r = 0; r < N * L; r++) for (let c = 0; c < W; c++) out[r * W + c] = qkv[r * 3 * W + j * W + c];
      return out;
    };
    const att = attentionRef({ q: part(0), k: part(1), v: part(2), B: N, H: s.heads, Lq: L, Lk: L, D, Dv: D, layout: 'blhd', bias: o.bias }).out;
    const x1 = matmulRef(att, [N * L, W], p(`${b}attn.out_proj.weight`), [W, W], { transB: true, bias: p(`${b}attn.out_proj.bias`), residual: x }).data;
    const h2 = layerNorm(x1, N * L, W, p(`${b}ln_2.weight`), p(`${b}ln_2.bias`), 1e-5).y;
    const f = matmulRef(h2, [N * L, W], p(`${b}mlp.c_fc.weight`), [4 * W, W], { transB: true, bias: p(`${b}mlp.c_fc.bias`), activation: o.activation }).data;
    x = matmulRef(f, [N * L, 4 * W], p(`${b}mlp.c_proj.weight`), [W, 4 * W], { transB: true, bias: p(`${b}mlp.c_proj.bias`), residual: x1 }).data;
  }
  const cls0 = new Float64Array(N * W);
  for (let n = 0; n < N; n++) for (let c = 0; c < W; c++) cls0[n * W + c] = x[n * L * W + c];
  const ln = layerNorm(cls0, N, W, p('visual.ln_post.weight'), p('visual.ln_post.bias'), 1e-5).y;
  return { features: matmulRef(ln, [N, W], p('visual.proj'), [W, s.embed]).data, embed };
}
