// What test/attention.test.ts and test/attention-backward.test.ts share: the
// options a case runs with, its random inputs on the GPU, and bias shapes.
import { Tensor, type DType, type Gpu } from '../src/node.js';
import { caseShape, type AttentionCase } from './ref/attention.js';
import { randn } from './util.js';

export interface AttentionRunOptions {
  scale?: number;
  bias?: { data: Float32Array; shape: number[] };
  causal?: boolean;
  mask?: { data: number[]; dtype: DType };
}

/** Random q, k, v of the case (randn from seeds seed, seed + 1, seed + 2; q times qScale), and on the GPU in its layout. */
export function attentionInputs(gpu: Gpu, c: AttentionCase, seed: number, qScale = 1) {
  const qData = randn(c.B * c.H * c.Lq * c.D, seed, qScale);
  const kData = randn(c.B * c.H * c.Lk * c.D, seed + 1);
  const vData = randn(c.B * c.H * c.Lk * c.Dv, seed + 2);
  const q = Tensor.fromArray(gpu, qData, caseShape(c, c.Lq, c.D));
  const k = Tensor.fromArray(gpu, kData, caseShape(c, c.Lk, c.D));
  const v = Tensor.fromArray(gpu, vData, caseShape(c, c.Lk, c.Dv));
  return { qData, kData, vData, q, k, v };
}

/** The bias and key-padding mask of `o` on the GPU (undefined where `o` has none). */
export function biasAndMask(gpu: Gpu, c: AttentionCase, o: AttentionRunOptions): { bias?: Tensor; keyPaddingMask?: Tensor } {
  return {
    bias: o.bias && Tensor.fromArray(gpu, o.bias.data, o.bias.shape),
    keyPaddingMask: o.mask && Tensor.fromArray(gpu, o.mask.data, [c.B, c.Lk], o.mask.dtype),
  };
}

/** The shape of a bias over the case's [B, H, Lq, Lk] scores broadcast over the dims `dims` names (b, h, q, k): those are 1. */
export function biasShape(c: AttentionCase, dims: string): number[] {
  return [c.B, c.H, c.Lq, c.Lk].map((d, i) => (dims.includes('bhqk'[i]) ? 1 : d));
}
