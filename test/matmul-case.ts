// The case runner test/matmul.test.ts and test/matmul-f16.test.ts share: a
// matmul case's inputs from consecutive seeds, the GPU's output and the
// float64 reference of test/ref/matmul.ts (given B rounded to f16 by
// test/ref/half.ts when B is uploaded as halves).
import * as assert from 'uvu/assert';
import { Tensor, matmul, type Gpu, type MatmulOptions } from '../src/node.js';
import { roundArrayToF16 } from './ref/half.js';
import { matmulRef } from './ref/matmul.js';
import { randomArray } from './util.js';

export interface MatmulCase {
  a: number[];
  b: number[];
  opts?: Omit<MatmulOptions, 'bias' | 'residual' | 'out'>;
  bias?: boolean;
  /** Shape of the residual (defaults to no residual). */
  residual?: number[];
}

// Indexing, vec4 paths, transposes, batching and the epilogue are shared by
// all variants of an entry point; they are checked with a small register
// block, which CPU drivers compile in a fraction of a second instead of
// seconds (every specialisation is a new pipeline).
export const SMALL = 'direct-wg8x1-r4x4';

/**
 * [M, K, N] with dims of 1, primes, non-multiples of every tile, and each
 * combination of vec4 alignment (K % 4, N % 4; with an f16 B, of its
 * contiguous dim: the vec2<u32> read of four halves against the scalar path).
 */
export const EDGE_SHAPES = [
  [1, 1, 1],
  [7, 13, 5],
  [33, 65, 17],
  [4, 4, 4],
  [1, 64, 1],
  [65, 1, 33],
  [197, 77, 96],
  [20, 96, 30],
] as const;

const size = (shape: readonly number[]) => shape.reduce((p, d) => p * d, 1);

/**
 * Runs one case on the GPU with B uploaded as `bDtype`: A, B, then the bias
 * and the residual when the case has them, uniform in [-1, 1) from seeds
 * seed, seed + 1, …. Checks the output's shape; returns the output, the
 * reference's and the reduction length K.
 */
export async function runMatmulCase(gpu: Gpu, c: MatmulCase, label: string, seed: number, bDtype: 'f32' | 'f16' = 'f32'): Promise<{ got: Float32Array; want: Float64Array; K: number }> {
  const opts = c.opts ?? {};
  const aData = randomArray(size(c.a), seed++);
  const bData = randomArray(size(c.b), seed++);
  const K = opts.transA ? c.a[c.a.length - 2] : c.a[c.a.length - 1];
  const N = opts.transB ? c.b[c.b.length - 2] : c.b[c.b.length - 1];
  const biasData = c.bias ? randomArray(N, seed++) : undefined;
  const resData = c.residual ? randomArray(size(c.residual), seed++) : undefined;
  const a = Tensor.fromArray(gpu, aData, c.a);
  const b = Tensor.fromArray(gpu, bData, c.b, bDtype);
  const bias = biasData && Tensor.fromArray(gpu, biasData, [N]);
  const residual = resData && c.residual && Tensor.fromArray(gpu, resData, c.residual);
  let y: Tensor | undefined;
  try {
    y = matmul(gpu, a, b, { ...opts, bias, residual });
    const bRef = bDtype === 'f16' ? roundArrayToF16(bData) : bData;
    const want = matmulRef(aData, c.a, bRef, c.b, { ...opts, bias: biasData, residual: resData, residualShape: c.residual });
    assert.equal(y.shape, want.shape, `${label}: output shape`);
    return { got: (await y.read()) as Float32Array, want: want.data, K };
  } finally {
    for (const t of [a, b, bias, residual, y]) t?.dispose();
  }
}
