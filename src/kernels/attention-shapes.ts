// Shapes and input checks shared by the attention forward and backward
// kernels. Internal: not re-exported from the package.

import { Tensor, shapeString } from '../tensor.js';

export const MAX_HEAD_DIM = 128;

export type AttentionLayout = 'bhld' | 'blhd';

export interface AttentionDims {
  B: number;
  H: number;
  Lq: number;
  Lk: number;
  D: number;
  Dv: number;
}

/** Workgroup-memory row capacity in vec4s: multiples of 8 vec4s, so head dims 1–32, 33–64, … share a pipeline. */
export const tileCapacity = (dim: number) => 8 * Math.ceil(Math.ceil(dim / 4) / 8);

/** Element strides for (batch, head, token) of a dense tensor in the given layout. */
export function tokenStrides(layout: AttentionLayout, H: number, L: number, width: number): [number, number, number] {
  return layout === 'bhld' ? [H * L * width, L * width, width] : [L * H * width, width, H * width];
}

// attention.ts and attention-backward.ts take sameShape from here.
export { sameShape } from '../util/shape.js';

export const attentionOutputShape = (layout: AttentionLayout, d: AttentionDims) => (layout === 'bhld' ? [d.B, d.H, d.Lq, d.Dv] : [d.B, d.Lq, d.H, d.Dv]);

/** The masking/scaling options both directions take. */
export interface AttentionInputOptions {
  scale?: number;
  bias?: Tensor;
  keyPaddingMask?: Tensor;
  layout?: AttentionLayout;
}

/** Checks q, k, v and the shared options; every Error names `op` and the shapes involved. */
export function validateAttentionInputs(op: string, q: Tensor, k: Tensor, v: Tensor, opts: AttentionInputOptions): AttentionDims {
  const layout = opts.layout ?? 'bhld';
  if (layout !== 'bhld' && layout !== 'blhd') throw new Error(`${op}: layout must be 'bhld' or 'blhd', got '${String(layout)}'`);
  const names = layout === 'bhld' ? '[B, H, L, D]' : '[B, L, H, D]';
  for (const [name, t] of [['q', q], ['k', k], ['v', v]] as const) {
    if (t.dtype !== 'f32') throw new Error(`${op}: ${name} must be f32, got ${t.dtype}`);
    if (t.rank !== 4) throw new Error(`${op}: ${name} must have rank 4 ${names}, got ${shapeString(t.shape)}`);
  }
  const dims = (t: Tensor) => (layout === 'bhld' ? { B: t.shape[0], H: t.shape[1], L: t.shape[2], D: t.shape[3] } : { B: t.shape[0], H: t.shape[2], L: t.shape[1], D: t.shape[3] });
  const dq = dims(q);
  const dk = dims(k);
  const dv = dims(v);
  const all = `q ${shapeString(q.shape)}, k ${shapeString(k.shape)}, v ${shapeString(v.shape)} (layout '${layout}')`;
  if (dk.B !== dq.B || dv.B !== dq.B) throw new Error(`${op}: batch sizes differ: B=${dq.B}, ${dk.B}, ${dv.B} for ${all}`);
  if (dk.H !== dq.H || dv.H !== dq.H) throw new Error(`${op}: head counts differ: H=${dq.H}, ${dk.H}, ${dv.H} for ${all}`);
  if (dk.D !== dq.D) throw new Error(`${op}: head dims of q and k differ: D=${dq.D} vs ${dk.D} for ${all}`);
  if (dv.L !== dk.L) throw new Error(`${op}: key lengths of k and v differ: Lk=${dk.L} vs ${dv.L} for ${all}`);
  if (dq.D > MAX_HEAD_DIM || dv.D > MAX_HEAD_DIM) {
    throw new Error(`${op}: head dims up to ${MAX_HEAD_DIM} are supported, got D=${dq.D}, Dv=${dv.D} for ${all}`);
  }
  const d: AttentionDims = { B: dq.B, H: dq.H, Lq: dq.L, Lk: dk.L, D: dq.D, Dv: dv.D };
  const full = [d.B, d.H, d.Lq, d.Lk];
  if (opts.scale !== undefined && !Number.isFinite(opts.scale)) throw new Error(`${op}: scale must be a finite number, got ${opts.scale}`);
  if (opts.bias) {
    const bias = opts.bias;
    if (bias.dtype !== 'f32') throw new Error(`${op}: bias must be f32, got ${bias.dtype}`);
    if (bias.rank !== 4 || bias.shape.some((n, i) => n !== 1 && n !== full[i])) {
      throw new Error(`${op}: bias ${shapeString(bias.shape)} is not broadcastable to [B, H, Lq, Lk] = ${shapeString(full)} (rank 4, each dim equal or 1)`);
    }
  }
  if (opts.keyPaddingMask) {
    const mask = opts.keyPaddingMask;
    if (mask.dtype === 'f16') throw new Error(`${op}: keyPaddingMask must be u32, i32 or f32, got ${mask.dtype}`);
    if (mask.rank !== 2 || mask.shape[0] !== d.B || mask.shape[1] !== d.Lk) {
      throw new Error(`${op}: keyPaddingMask must be [B, Lk] = ${shapeString([d.B, d.Lk])}, got ${shapeString(mask.shape)}`);
    }
  }
  return d;
}

/**
 * The `params` uniform both attention shaders declare: sizes, the scale,
 * (batch, head, token) strides of q, k, v and out in the layout, and the
 * broadcast bias's strides (0 where its dim is 1).
 */
export function attentionParams(d: AttentionDims, opts: AttentionInputOptions): Record<string, number | number[]> {
  const layout = opts.layout ?? 'bhld';
  const biasStrides = [0, 0, 0, 0];
  if (opts.bias) {
    let stride = 1;
    for (let i = 3; i >= 0; i--) {
      biasStrides[i] = opts.bias.shape[i] === 1 ? 0 : stride;
      stride *= opts.bias.shape[i];
    }
  }
  return {
    lq: d.Lq,
    lk: d.Lk,
    d: d.D,
    dv: d.Dv,
    d_vec4: Math.ceil(d.D / 4),
    dv_vec4: Math.ceil(d.Dv / 4),
    scale: opts.scale ?? 1 / Math.sqrt(d.D),
    q_strides: tokenStrides(layout, d.H, d.Lq, d.D),
    k_strides: tokenStrides(layout, d.H, d.Lk, d.D),
    v_strides: tokenStrides(layout, d.H, d.Lk, d.Dv),
    out_strides: tokenStrides(layout, d.H, d.Lq, d.Dv),
    bias_strides: biasStrides,
  };
}
