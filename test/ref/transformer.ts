// Float64 reference of the pre-LN block (src/models/vit.ts), composed from the
// independent per-op references.

import { attentionRef } from './attention.js';
import { matmulRef } from './matmul.js';
import { layerNorm as layerNormRef } from './norm.js';
import { permute as permuteRef } from './tensor-ops.js';

export function preNormBlockRef(x: ArrayLike<number>, [b, l, c]: readonly number[], w: Record<string, ArrayLike<number>>, heads: number): Float64Array {
  const d = c / heads;
  const h = layerNormRef(x, b * l, c, w.ln1g, w.ln1b, 1e-5).y;
  const qkv = permuteRef(matmulRef(h, [b * l, c], w.wqkv, [c, 3 * c], { bias: w.bqkv }).data, [b, l, 3, heads, d], [2, 0, 1, 3, 4]).data;
  const per = b * l * c;
  const [q, k, v] = [0, 1, 2].map((i) => qkv.slice(i * per, (i + 1) * per));
  const att = attentionRef({ q, k, v, B: b, H: heads, Lq: l, Lk: l, D: d, Dv: d, layout: 'blhd' }).out;
  const x1 = matmulRef(att, [b * l, c], w.wo, [c, c], { bias: w.bo, residual: x }).data;
  const h2 = layerNormRef(x1, b * l, c, w.ln2g, w.ln2b, 1e-5).y;
  const f = matmulRef(h2, [b * l, c], w.w1, [c, 4 * c], { bias: w.b1, activation: 'quickGelu' }).data;
  return matmulRef(f, [b * l, 4 * c], w.w2, [4 * c, c], { bias: w.b2, residual: x1 }).data;
}
