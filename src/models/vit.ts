// The pre-LN transformer block of CLIP-style ViTs, as a graph builder:
//   x += out(MHA(ln1 x));  x += fc2(QuickGELU(fc1(ln2 x)))
// with a fused QKV projection read in the [B, L, H, D] layout the attention
// kernel takes directly (no permutes). Weights are [in, out].

import type { Graph, Value } from '../graph/graph.js';
import * as ops from '../graph/ops.js';

export interface PreNormBlockWeights {
  ln1g: Value;
  ln1b: Value;
  /** [C, 3C]: q, k, v projections side by side. */
  wqkv: Value;
  bqkv: Value;
  wo: Value;
  bo: Value;
  ln2g: Value;
  ln2b: Value;
  /** [C, 4C] */
  w1: Value;
  b1: Value;
  /** [4C, C] */
  w2: Value;
  b2: Value;
}

/** The weight shapes of a block of width `c`. */
export function preNormBlockShapes(c: number): Record<keyof PreNormBlockWeights, number[]> {
  return {
    ln1g: [c], ln1b: [c], wqkv: [c, 3 * c], bqkv: [3 * c], wo: [c, c], bo: [c],
    ln2g: [c], ln2b: [c], w1: [c, 4 * c], b1: [4 * c], w2: [4 * c, c], b2: [c],
  };
}

/** One block on x [B, L, C] with `heads` heads; `bias` is an additive attention bias (e.g. MedFocus guidance). */
export function preNormBlock(g: Graph, x: Value, w: PreNormBlockWeights, heads: number, opts: { bias?: Value; causal?: boolean } = {}): Value {
  const [b, l, c] = x.shape;
  if (c % heads !== 0) throw new Error(`preNormBlock: width ${c} is not divisible by ${heads} heads`);
  const d = c / heads;
  const h = ops.layerNorm(g, x, w.ln1g, w.ln1b);
  const split = g.reshape(ops.matmul(g, h, w.wqkv, { bias: w.bqkv }), [b, l, 3, heads, d]);
  const part = (i: number) => g.reshape(ops.slice(g, split, [0, 0, i, 0, 0], [b, l, i + 1, heads, d]), [b, l, heads, d]);
  const att = ops.attention(g, part(0), part(1), part(2), { layout: 'blhd', bias: opts.bias, causal: opts.causal });
  const x1 = ops.matmul(g, g.reshape(att, [b, l, c]), w.wo, { bias: w.bo, residual: x });
  const f = ops.matmul(g, ops.layerNorm(g, x1, w.ln2g, w.ln2b), w.w1, { bias: w.b1, activation: 'quickGelu' });
  return ops.matmul(g, f, w.w2, { bias: w.b2, residual: x1 });
}
