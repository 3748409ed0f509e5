// Backward of fused attention (src/kernels/attention.ts), FlashAttention-2
// style (shaders/attention_backward.wgsl): probabilities are recomputed from
// q, k and the forward's saved row log-sum-exp, so the Lq × Lk matrix is never
// stored, except as the bias gradient when one is asked for. Two dispatches,
// no atomics, deterministic: dq (and the row stats lse, delta = rowsum(dOut ∘
// out)) per query block, then dk and dv per key block.
//
// Masking conventions are the forward's: masked pairs (padding, causal, bias
// ≤ -1e30) get zero gradient, and a fully masked query (lse = -inf) gives
// dq = 0 and contributes nothing to dk, dv.

import type { Gpu } from '../device.js';
import { Tensor, shapeString } from '../tensor.js';
import { dispatchKernel, placeholder } from './program.js';
import { reduceSum } from './reduce.js';
import { outputTensor } from './strided.js';
import { attentionOutputShape, attentionParams, sameShape, tileCapacity, validateAttentionInputs, type AttentionDims } from './attention-shapes.js';

export interface AttentionBackwardOptions {
  /** Multiplies q·kᵀ; defaults to 1/sqrt(D). Must match the forward. */
  scale?: number;
  /** The forward's additive f32 scores, rank 4, broadcastable to [B, H, Lq, Lk]. */
  bias?: Tensor;
  /** The forward's causal flag (top-left aligned). */
  causal?: boolean;
  /** The forward's [B, Lk] u32/i32/f32 key padding mask (nonzero = padded). */
  keyPaddingMask?: Tensor;
  /** 'bhld' (default) or 'blhd', as in the forward; the gradients follow their inputs. */
  layout?: 'bhld' | 'blhd';
  /** Also return dbias, shaped like `bias` (dS summed over its broadcast dims). Needs `bias`. */
  needBiasGrad?: boolean;
  /** Receive the gradients (shapes as AttentionGrads); none may share a buffer with an input. */
  out?: Partial<AttentionGrads>;
}

export interface AttentionGrads {
  dq: Tensor;
  dk: Tensor;
  dv: Tensor;
  /** Present when needBiasGrad was set: the bias gradient, shaped like the bias. */
  dbias?: Tensor;
}

const OP = 'attentionBackward';
const WORKGROUP_SIZE = 64;
/** Largest q/d_out (or K/V) tile in rows; halved until workgroup memory fits. */
const MAX_TILE = 32;

function validate(q: Tensor, k: Tensor, v: Tensor, out: Tensor, dOut: Tensor, lse: Tensor, opts: AttentionBackwardOptions): AttentionDims {
  for (const [name, t] of [['out', out], ['dOut', dOut], ['lse', lse]] as const) {
    if (t.dtype !== 'f32') throw new Error(`${OP}: ${name} must be f32, got ${t.dtype}`);
  }
  const d = validateAttentionInputs(OP, q, k, v, opts);
  const all = `q ${shapeString(q.shape)}, k ${shapeString(k.shape)}, v ${shapeString(v.shape)} (layout '${opts.layout ?? 'bhld'}')`;
  const wantOut = attentionOutputShape(opts.layout ?? 'bhld', d);
  if (!sameShape(out.shape, wantOut)) throw new Error(`${OP}: out must be ${shapeString(wantOut)} for ${all}, got ${shapeString(out.shape)}`);
  if (!sameShape(dOut.shape, wantOut)) throw new Error(`${OP}: dOut must be ${shapeString(wantOut)} (the shape of out) for ${all}, got ${shapeString(dOut.shape)}`);
  const wantLse = [d.B, d.H, d.Lq];
  if (!sameShape(lse.shape, wantLse)) throw new Error(`${OP}: lse must be [B, H, Lq] = ${shapeString(wantLse)} for ${all}, got ${shapeString(lse.shape)}`);
  if (!opts.bias && opts.needBiasGrad) {
    throw new Error(`${OP}: needBiasGrad is set but no bias was given (expected a bias tensor broadcastable to [B, H, Lq, Lk] = ${shapeString([d.B, d.H, d.Lq, d.Lk])})`);
  }
  return d;
}

/** Rows per workgroup-memory tile: the largest power of two ≤ MAX_TILE whose two row tiles plus two scalars per row fit. */
function tileRows(gpu: Gpu, capD: number, capDv: number): number {
  let rows = MAX_TILE;
  while (rows > 4 && rows * ((capD + capDv) * 16 + 8) > gpu.limits.maxComputeWorkgroupStorageSize) rows /= 2;
  return rows;
}

/**
 * Gradients of attention(q, k, v, opts) given the forward's `out`, the
 * gradient `dOut` of the loss with respect to it, and the forward's `lse`
 * ([B, H, Lq], from AttentionOptions.lse). `opts` must repeat the forward's
 * scale, bias, causal, keyPaddingMask and layout. dq, dk, dv have the shapes
 * of q, k, v; dbias (with needBiasGrad) the shape of the bias.
 */
export function attentionBackward(gpu: Gpu, q: Tensor, k: Tensor, v: Tensor, out: Tensor, dOut: Tensor, lse: Tensor, opts: AttentionBackwardOptions = {}): AttentionGrads {
  const d = validate(q, k, v, out, dOut, lse, opts);
  const bias = opts.bias;
  const full = [d.B, d.H, d.Lq, d.Lk];
  const writeDs = opts.needBiasGrad === true && bias !== undefined;
  const inputs = [q, k, v, out, dOut, lse, ...[bias, opts.keyPaddingMask].filter((t): t is Tensor => t !== undefined)];
  const dq = outputTensor(gpu, `${OP}: dq`, q.shape, 'f32', inputs, opts.out?.dq);
  const dk = outputTensor(gpu, `${OP}: dk`, k.shape, 'f32', inputs, opts.out?.dk);
  const dv = outputTensor(gpu, `${OP}: dv`, v.shape, 'f32', inputs, opts.out?.dv);
  const rowStats = Tensor.empty(gpu, [d.B, d.H, d.Lq, 2]);
  // dS over the full score shape; without needBiasGrad a 1-element scratch
  // (an unused writable binding still needs a buffer of its own).
  const axes = full.flatMap((n, i) => (bias && bias.shape[i] === 1 && n !== 1 ? [i] : []));
  const ds = writeDs && axes.length === 0 ? outputTensor(gpu, `${OP}: dbias`, full, 'f32', inputs, opts.out?.dbias) : Tensor.empty(gpu, writeDs ? full : [1]);
  const capD = tileCapacity(d.D);
  const capDv = tileCapacity(d.Dv);
  const tile = tileRows(gpu, capD, capDv);
  const constants = {
    WORKGROUP_SIZE,
    KEY_TILE: tile,
    QUERY_TILE: tile,
    TILE_D_VEC4: capD,
    TILE_DV_VEC4: capDv,
    HAS_BIAS: bias !== undefined,
    HAS_MASK: opts.keyPaddingMask !== undefined,
    MASK_IS_F32: opts.keyPaddingMask?.dtype === 'f32',
    CAUSAL: opts.causal === true,
    WRITE_DS: writeDs,
  };
  const resources = {
    q,
    k,
    v,
    out,
    d_out: dOut,
    lse,
    bias: bias ?? placeholder(gpu),
    key_mask: opts.keyPaddingMask ?? placeholder(gpu),
    row_stats: rowStats,
    dq,
    dk,
    dv,
    ds,
    params: attentionParams(d, opts),
  };
  // query_grads writes row_stats, which key_grads reads: two passes, in order.
  // One resource table for both: each binds only the names its entry point uses.
  dispatchKernel(gpu, OP, { shader: 'attention_backward', entry: 'query_grads', constants }, resources, [Math.ceil(d.Lq / WORKGROUP_SIZE), d.H, d.B]);
  dispatchKernel(gpu, OP, { shader: 'attention_backward', entry: 'key_grads', constants }, resources, [Math.ceil(d.Lk / WORKGROUP_SIZE), d.H, d.B]);
  rowStats.dispose();
  if (!writeDs || !bias) {
    ds.dispose();
    return { dq, dk, dv };
  }
  if (axes.length === 0) return { dq, dk, dv, dbias: ds };
  const dbias = reduceSum(gpu, ds, axes, { keepDims: true, out: opts.out?.dbias });
  ds.dispose();
  return { dq, dk, dv, dbias };
}
