// Float64 reference for batched matmul with the fused epilogue, written as
// plain loops: every output element is computed on its own from the
// operands' storage, with numpy broadcasting of the batch dims.

import * as act from './activations.js';

export type RefActivation = 'none' | 'relu' | 'gelu' | 'geluTanh' | 'quickGelu';

export interface RefMatmulOptions {
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  bias?: ArrayLike<number>;
  activation?: RefActivation;
  residual?: ArrayLike<number>;
  residualShape?: readonly number[];
}

const activations: Record<RefActivation, (x: number) => number> = {
  none: (x) => x,
  relu: act.relu,
  gelu: act.gelu,
  geluTanh: act.geluTanh,
  quickGelu: act.quickGelu,
};

function product(shape: readonly number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}

/** Flat index of `index` (a full-rank multi-index) in `shape`, aligned to the right; size-1 dims broadcast. */
function broadcastOffset(index: readonly number[], shape: readonly number[]): number {
  let offset = 0;
  for (let d = 0; d < shape.length; d++) {
    const i = index[index.length - shape.length + d];
    offset = offset * shape[d] + (shape[d] === 1 ? 0 : i);
  }
  return offset;
}

export function matmulRef(
  a: ArrayLike<number>,
  aShape: readonly number[],
  b: ArrayLike<number>,
  bShape: readonly number[],
  opts: RefMatmulOptions = {},
): { data: Float64Array; shape: number[] } {
  const { transA = false, transB = false, alpha = 1, bias, activation = 'none', residual, residualShape } = opts;
  const [ar, ac] = aShape.slice(-2);
  const [br, bc] = bShape.slice(-2);
  const M = transA ? ac : ar;
  const K = transA ? ar : ac;
  const N = transB ? br : bc;
  const aBatch = aShape.slice(0, -2);
  const bBatch = bShape.slice(0, -2);
  const rank = Math.max(aBatch.length, bBatch.length);
  const batch: number[] = [];
  for (let d = 0; d < rank; d++) {
    const x = aBatch[aBatch.length - rank + d] ?? 1;
    const y = bBatch[bBatch.length - rank + d] ?? 1;
    batch.push(Math.max(x, y));
  }
  const outShape = [...batch, M, N];
  const data = new Float64Array(product(outShape));
  const f = activations[activation];
  const index = new Array<number>(rank).fill(0);
  for (let z = 0; z < product(batch); z++) {
    let rest = z;
    for (let d = rank - 1; d >= 0; d--) {
      index[d] = rest % batch[d];
      rest = Math.floor(rest / batch[d]);
    }
    const aBase = broadcastOffset(index, aBatch) * M * K;
    const bBase = broadcastOffset(index, bBatch) * K * N;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let sum = 0;
        for (let k = 0; k < K; k++) {
          const av = transA ? a[aBase + k * M + m] : a[aBase + m * K + k];
          const bv = transB ? b[bBase + n * K + k] : b[bBase + k * N + n];
          sum += av * bv;
        }
        let v = alpha * sum + (bias ? bias[n] : 0);
        v = f(v);
        if (residual) v += residual[broadcastOffset([...index, m, n], residualShape ?? outShape)];
        data[(z * M + m) * N + n] = v;
      }
    }
  }
  return { data, shape: outShape };
}
