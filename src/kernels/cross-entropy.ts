// Softmax cross-entropy with integer labels: loss and dlogits from one pass
// over the logits (see shaders/cross_entropy.wgsl).

import type { Gpu } from '../device.js';
import { Tensor, shapeString } from '../tensor.js';
import { axisGrid, axisTiling, checkF32 } from './axis.js';
import { dispatchKernel } from './program.js';
import { outputTensor } from './strided.js';

export type CrossEntropyReduction = 'mean' | 'sum' | 'none';

export interface SoftmaxCrossEntropyOptions {
  /** ε in [0, 1]: the target is (1 − ε)·onehot + ε/K (default 0, as torch's label_smoothing). */
  labelSmoothing?: number;
  /** 'mean' (default) or 'sum' over rows gives loss [1]; 'none' gives per-row losses [N]. */
  reduction?: CrossEntropyReduction;
  /** Receive the results (shapes as SoftmaxCrossEntropyResult); each must not share a buffer with logits or labels. */
  out?: Partial<SoftmaxCrossEntropyResult>;
}

export interface SoftmaxCrossEntropyResult {
  /** [1] for 'mean' and 'sum', [N] for 'none'. */
  loss: Tensor;
  /** d loss / d logits [N, K]; for 'none', the gradient of the sum of the per-row losses. */
  dlogits: Tensor;
}

const REDUCTIONS: readonly CrossEntropyReduction[] = ['mean', 'sum', 'none'];
const REDUCE_WORKGROUP_SIZE = 256;

/**
 * Cross-entropy of softmax(logits) [N, K] against class indices `labels` [N]
 * and its gradient. `labels` is an i32 Tensor, or a host array that is
 * checked (integers in [0, K)) and uploaded. A label tensor is not read back:
 * a row whose label is outside [0, K) gets loss NaN and dlogits NaN (so a
 * 'mean' or 'sum' loss is NaN), and the kernel never indexes with it.
 */
export function softmaxCrossEntropy(gpu: Gpu, logits: Tensor, labels: Tensor | ArrayLike<number>, opts: SoftmaxCrossEntropyOptions = {}): SoftmaxCrossEntropyResult {
  const op = 'softmaxCrossEntropy';
  checkF32(op, 'logits', logits);
  if (logits.rank !== 2 || logits.shape[0] === 0 || logits.shape[1] === 0) throw new Error(`${op}: logits must be [N, K] with N, K >= 1, got ${shapeString(logits.shape)}`);
  const [rows, classes] = logits.shape;
  const reduction = opts.reduction ?? 'mean';
  if (!REDUCTIONS.includes(reduction)) throw new Error(`${op}: reduction must be one of ${REDUCTIONS.join(', ')}, got '${String(reduction)}'`);
  const smoothing = opts.labelSmoothing ?? 0;
  if (typeof smoothing !== 'number' || !(smoothing >= 0 && smoothing <= 1)) throw new Error(`${op}: labelSmoothing must be a number in [0, 1], got ${smoothing}`);

  let labelTensor: Tensor;
  if (labels instanceof Tensor) {
    if (labels.dtype !== 'i32' || labels.rank !== 1 || labels.shape[0] !== rows) {
      throw new Error(`${op}: labels must be an i32 tensor [${rows}] (one per row of logits ${shapeString(logits.shape)}), got ${labels.dtype} ${shapeString(labels.shape)}`);
    }
    labelTensor = labels;
  } else {
    if (labels.length !== rows) throw new Error(`${op}: labels must hold ${rows} values (one per row of logits ${shapeString(logits.shape)}), got ${labels.length}`);
    for (let i = 0; i < rows; i++) {
      const l = labels[i];
      if (!Number.isInteger(l) || l < 0 || l >= classes) throw new Error(`${op}: label ${i} is ${l}, expected an integer class in [0, ${classes})`);
    }
    labelTensor = Tensor.fromArray(gpu, labels, [rows], 'i32');
  }

  const inputs = [logits, labelTensor];
  const dlogits = outputTensor(gpu, `${op}: dlogits`, logits.shape, 'f32', inputs, opts.out?.dlogits);
  const rowLoss = reduction === 'none' ? outputTensor(gpu, `${op}: loss`, [rows], 'f32', inputs, opts.out?.loss) : Tensor.empty(gpu, [rows]);
  const loss = reduction === 'none' ? rowLoss : outputTensor(gpu, `${op}: loss`, [1], 'f32', inputs, opts.out?.loss);
  // 'none' leaves the `loss` binding unwritten; it still needs a buffer of its own.
  const lossBinding = reduction === 'none' ? Tensor.empty(gpu, [1]) : loss;
  const scale = reduction === 'mean' ? 1 / rows : 1;
  const resources = {
    logits,
    labels: labelTensor,
    dlogits,
    row_loss: rowLoss,
    loss: lossBinding,
    params: { rows, classes, smoothing, grad_scale: scale, loss_scale: scale },
  };
  const tiling = axisTiling(gpu, { outer: rows, axis: classes, inner: 1 });
  dispatchKernel(gpu, `${op}.per_row`, { shader: 'cross_entropy', entry: 'per_row', constants: { WORKGROUP_SIZE: tiling.WORKGROUP_SIZE, LANES: tiling.LANES } }, resources, axisGrid(gpu, rows, tiling));
  if (reduction !== 'none') {
    dispatchKernel(gpu, `${op}.reduce_rows`, { shader: 'cross_entropy', entry: 'reduce_rows', constants: { WORKGROUP_SIZE: REDUCE_WORKGROUP_SIZE } }, resources, [1]);
    rowLoss.dispose();
  } else {
    lossBinding.dispose();
  }
  if (labelTensor !== labels) labelTensor.dispose();
  return { loss, dlogits };
}
