// The per-adapter sweep for the axis kernels' lane cap (see axisLaneCap):
// times a ViT attention-score softmax and a layer norm at each cap.

import type { Gpu } from '../device.js';
import { Tensor } from '../tensor.js';
import { AXIS_LANE_CAPS, AXIS_TUNING_KEY, withAxisLaneCap } from './axis.js';
import { layerNorm } from './layernorm.js';
import { softmax } from './softmax.js';
import { sweepVariants, type SweepResult } from './tune.js';

export async function tuneAxisKernels(gpu: Gpu): Promise<SweepResult> {
  const scores = Tensor.fromArray(gpu, new Float32Array(12 * 197 * 197).map((_, i) => Math.sin(i)), [12 * 197, 197]);
  const tokens = Tensor.fromArray(gpu, new Float32Array(197 * 768).map((_, i) => Math.cos(i)), [197, 768]);
  const probs = Tensor.empty(gpu, scores.shape);
  const normed = Tensor.empty(gpu, tokens.shape);
  try {
    return await sweepVariants(gpu, AXIS_TUNING_KEY, AXIS_LANE_CAPS.map(String), (cap) =>
      withAxisLaneCap(Number(cap), () => {
        softmax(gpu, scores, { out: probs });
        layerNorm(gpu, tokens, undefined, undefined, { out: normed });
      }),
    );
  } finally {
    for (const t of [scores, tokens, probs, normed]) t.dispose();
  }
}
