// Float64 reference for fused attention: plain loops over scores, masks,
// softmax and the weighted sum, one query row at a time.

import type { AttentionDims, AttentionLayout } from '../../src/kernels/attention-shapes.js';

/** A problem's sizes and layout (AttentionCase) with its data; layout 'bhld' is [B, H, L, D], 'blhd' [B, L, H, D], inputs and output alike. */
export interface AttentionRefInput extends AttentionCase {
  q: ArrayLike<number>;
  k: ArrayLike<number>;
  v: ArrayLike<number>;
  scale?: number;
  /** Rank-4 additive scores, each dim equal to [B, H, Lq, Lk]'s or 1. */
  bias?: { data: ArrayLike<number>; shape: readonly number[] };
  causal?: boolean;
  /** [B, Lk]; nonzero = padded key. */
  keyPaddingMask?: ArrayLike<number>;
  /** Only these query rows (default all); the outputs hold them in this order. */
  queries?: readonly number[];
}

export interface AttentionRefOutput {
  /** [B, H, nq, Dv] or [B, nq, H, Dv] by layout, nq = number of queries computed. */
  out: Float64Array;
  /** [B, H, nq]; -Infinity for a query whose keys are all masked. */
  lse: Float64Array;
}

/** Scores at or below this count as masked, as in the kernel. */
export const MASKED_SCORE = -1e30;

export function attentionRef(x: AttentionRefInput): AttentionRefOutput {
  const { B, H, Lq, Lk, D, Dv, layout } = x;
  const queries = x.queries ?? Array.from({ length: Lq }, (_, i) => i);
  const nq = queries.length;
  const scale = x.scale ?? 1 / Math.sqrt(D);
  // Element index of (b, h, token, e) in a tensor of `len` tokens and `width` per head.
  const at = (b: number, h: number, t: number, e: number, len: number, width: number) =>
    layout === 'bhld' ? ((b * H + h) * len + t) * width + e : ((b * len + t) * H + h) * width + e;
  const biasAt = (b: number, h: number, i: number, j: number): number => {
    if (!x.bias) return 0;
    const s = x.bias.shape;
    const idx = (((s[0] === 1 ? 0 : b) * s[1] + (s[1] === 1 ? 0 : h)) * s[2] + (s[2] === 1 ? 0 : i)) * s[3] + (s[3] === 1 ? 0 : j);
    return x.bias.data[idx];
  };
  const out = new Float64Array(B * H * nq * Dv);
  const lse = new Float64Array(B * H * nq);
  const scores = new Float64Array(Lk);
  const masked = new Array<boolean>(Lk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let n = 0; n < nq; n++) {
        const i = queries[n];
        let max = -Infinity;
        for (let j = 0; j < Lk; j++) {
          let dot = 0;
          for (let e = 0; e < D; e++) dot += x.q[at(b, h, i, e, Lq, D)] * x.k[at(b, h, j, e, Lk, D)];
          const s = scale * dot + biasAt(b, h, i, j);
          const isMasked = (x.causal === true && j > i) || (x.keyPaddingMask !== undefined && x.keyPaddingMask[b * Lk + j] !== 0) || s <= MASKED_SCORE;
          scores[j] = s;
          masked[j] = isMasked;
          if (!isMasked) max = Math.max(max, s);
        }
        let sum = 0;
        for (let j = 0; j < Lk; j++) if (!masked[j]) sum += Math.exp(scores[j] - max);
        lse[(b * H + h) * nq + n] = sum === 0 ? -Infinity : max + Math.log(sum);
        for (let e = 0; e < Dv; e++) {
          let acc = 0;
          for (let j = 0; j < Lk; j++) if (!masked[j]) acc += Math.exp(scores[j] - max) * x.v[at(b, h, j, e, Lk, Dv)];
          out[at(b, h, n, e, nq, Dv)] = sum === 0 ? 0 : acc / sum;
        }
      }
    }
  }
  return { out, lse };
}

/** A test problem: sizes and layout (the tensors' shapes follow from them). */
export interface AttentionCase extends AttentionDims {
  layout: AttentionLayout;
}

/** The shape of a q/k/v/out tensor of `len` tokens and `width` features in the case's layout. */
export const caseShape = (c: AttentionCase, len: number, width: number) => (c.layout === 'bhld' ? [c.B, c.H, len, width] : [c.B, len, c.H, width]);
export const bhldCase = (B: number, H: number, Lq: number, Lk: number, D: number, Dv = D): AttentionCase => ({ B, H, Lq, Lk, D, Dv, layout: 'bhld' });
export const blhdCase = (B: number, H: number, Lq: number, Lk: number, D: number, Dv = D): AttentionCase => ({ B, H, Lq, Lk, D, Dv, layout: 'blhd' });
