// Float64 references for the attention backward: the analytic gradient with
// plain loops (softmax Jacobian written out per row, no saved lse or out),
// and central finite differences of the forward reference, which checks the
// analytic one on small shapes.

import { MASKED_SCORE, attentionRef, type AttentionRefInput } from './attention.js';

export interface AttentionGradsRef {
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
  /** Shaped like the bias (dS summed over its broadcast dims); only when a bias was given. */
  dbias?: Float64Array;
}

/** Flat index of bias element (b, h, i, j) with broadcasting. */
function biasIndex(shape: readonly number[], b: number, h: number, i: number, j: number): number {
  return (((shape[0] === 1 ? 0 : b) * shape[1] + (shape[1] === 1 ? 0 : h)) * shape[2] + (shape[2] === 1 ? 0 : i)) * shape[3] + (shape[3] === 1 ? 0 : j);
}

/** Gradients of Σ dOut ∘ attention(x) with respect to q, k, v (and bias). `dOut` is in the output layout. */
export function attentionBackwardRef(x: AttentionRefInput, dOut: ArrayLike<number>): AttentionGradsRef {
  const { B, H, Lq, Lk, D, Dv, layout } = x;
  const scale = x.scale ?? 1 / Math.sqrt(D);
  const at = (b: number, h: number, t: number, e: number, len: number, width: number) =>
    layout === 'bhld' ? ((b * H + h) * len + t) * width + e : ((b * len + t) * H + h) * width + e;
  const dq = new Float64Array(B * H * Lq * D);
  const dk = new Float64Array(B * H * Lk * D);
  const dv = new Float64Array(B * H * Lk * Dv);
  const dbias = x.bias ? new Float64Array(x.bias.data.length) : undefined;
  const p = new Float64Array(Lk);
  const dp = new Float64Array(Lk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < Lq; i++) {
        // Probabilities of row i; all zero when every key is masked.
        let max = -Infinity;
        const masked = new Array<boolean>(Lk);
        for (let j = 0; j < Lk; j++) {
          let dot = 0;
          for (let e = 0; e < D; e++) dot += x.q[at(b, h, i, e, Lq, D)] * x.k[at(b, h, j, e, Lk, D)];
          const s = scale * dot + (x.bias ? x.bias.data[biasIndex(x.bias.shape, b, h, i, j)] : 0);
          masked[j] = (x.causal === true && j > i) || (x.keyPaddingMask !== undefined && x.keyPaddingMask[b * Lk + j] !== 0) || s <= MASKED_SCORE;
          p[j] = s;
          if (!masked[j]) max = Math.max(max, s);
        }
        let sum = 0;
        for (let j = 0; j < Lk; j++) {
          p[j] = masked[j] ? 0 : Math.exp(p[j] - max);
          sum += p[j];
        }
        if (sum === 0) continue;
        for (let j = 0; j < Lk; j++) p[j] /= sum;
        // dP_ij = dOut_i · v_j; dS_ij = P_ij (dP_ij − Σ_l P_il dP_il).
        let weighted = 0;
        for (let j = 0; j < Lk; j++) {
          let dot = 0;
          for (let e = 0; e < Dv; e++) dot += dOut[at(b, h, i, e, Lq, Dv)] * x.v[at(b, h, j, e, Lk, Dv)];
          dp[j] = dot;
          weighted += p[j] * dot;
        }
        for (let j = 0; j < Lk; j++) {
          if (p[j] === 0) continue;
          const dS = p[j] * (dp[j] - weighted);
          for (let e = 0; e < Dv; e++) dv[at(b, h, j, e, Lk, Dv)] += p[j] * dOut[at(b, h, i, e, Lq, Dv)];
          for (let e = 0; e < D; e++) {
            dq[at(b, h, i, e, Lq, D)] += scale * dS * x.k[at(b, h, j, e, Lk, D)];
            dk[at(b, h, j, e, Lk, D)] += scale * dS * x.q[at(b, h, i, e, Lq, D)];
          }
          if (dbias && x.bias) dbias[biasIndex(x.bias.shape, b, h, i, j)] += dS;
        }
      }
    }
  }
  return { dq, dk, dv, dbias };
}

/**
 * Central finite differences of L = Σ dOut ∘ attentionRef(x).out with
 * respect to every element of q, k, v and the bias (step `step`).
 */
export function attentionFiniteDifferences(x: AttentionRefInput, dOut: ArrayLike<number>, step = 1e-6): AttentionGradsRef {
  const loss = (input: AttentionRefInput) => {
    const { out } = attentionRef(input);
    let l = 0;
    for (let n = 0; n < out.length; n++) l += dOut[n] * out[n];
    return l;
  };
  const differentiate = (data: ArrayLike<number>, withData: (d: Float64Array) => AttentionRefInput): Float64Array => {
    const copy = Float64Array.from(data);
    const grad = new Float64Array(copy.length);
    for (let n = 0; n < copy.length; n++) {
      const x0 = copy[n];
      copy[n] = x0 + step;
      const up = loss(withData(copy));
      copy[n] = x0 - step;
      const down = loss(withData(copy));
      copy[n] = x0;
      grad[n] = (up - down) / (2 * step);
    }
    return grad;
  };
  return {
    dq: differentiate(x.q, (q) => ({ ...x, q })),
    dk: differentiate(x.k, (k) => ({ ...x, k })),
    dv: differentiate(x.v, (v) => ({ ...x, v })),
    dbias: x.bias ? differentiate(x.bias.data, (data) => ({ ...x, bias: { data, shape: (x.bias as { shape: readonly number[] }).shape } })) : undefined,
  };
}
