// The per-adapter sweep for the axis kernels' lane cap (see axisLaneCap):
// times a ViT attention-score softmax and a layer norm at each cap, and
// checks the chosen cap's numbers against float64 references on the CPU.

import type { Gpu } from '../device.js';
import { Tensor } from '../tensor.js';
import { AXIS_LANE_CAPS, AXIS_TUNING_KEY, withAxisLaneCap } from './axis.js';
import { layerNorm } from './layernorm.js';
import { softmax } from './softmax.js';
import { checkValues, compareVariantOutput, sweepVariants, type SweepResult } from './tune.js';

export async function tuneAxisKernels(gpu: Gpu): Promise<SweepResult> {
  const scores = Tensor.fromArray(gpu, new Float32Array(12 * 197 * 197).map((_, i) => Math.sin(i)), [12 * 197, 197]);
  const tokens = Tensor.fromArray(gpu, new Float32Array(197 * 768).map((_, i) => Math.cos(i)), [197, 768]);
  const probs = Tensor.empty(gpu, scores.shape);
  const normed = Tensor.empty(gpu, tokens.shape);
  try {
    return await sweepVariants(
      gpu,
      AXIS_TUNING_KEY,
      AXIS_LANE_CAPS.map(String),
      (cap) =>
        withAxisLaneCap(Number(cap), () => {
          softmax(gpu, scores, { out: probs });
          layerNorm(gpu, tokens, undefined, undefined, { out: normed });
        }),
      { check: (cap) => checkAxisLaneCap(gpu, Number(cap)) },
    );
  } finally {
    for (const t of [scores, tokens, probs, normed]) t.dispose();
  }
}

/** Float64 softmax of x viewed as [outer, axis, inner] along the middle axis. */
function softmaxReference(x: Float32Array, outer: number, axis: number, inner: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const at = (a: number) => (o * axis + a) * inner + i;
      let max = -Infinity;
      for (let a = 0; a < axis; a++) max = Math.max(max, x[at(a)]);
      let sum = 0;
      for (let a = 0; a < axis; a++) sum += y[at(a)] = Math.exp(x[at(a)] - max);
      for (let a = 0; a < axis; a++) y[at(a)] /= sum;
    }
  }
  return y;
}

/**
 * The tuner's check of a lane cap on this adapter: softmax over rows of 700
 * (every lane of the cap busy, a partial last pass), softmax down the columns
 * of a [300, 6] tensor (strided lines) and layer norm over rows of 520, each
 * against a float64 reference.
 */
async function checkAxisLaneCap(gpu: Gpu, cap: number): Promise<string | undefined> {
  const cases: { name: string; shape: number[]; want: (x: Float32Array) => Float64Array; run: (x: Tensor) => Tensor }[] = [
    { name: 'softmax [3,700]', shape: [3, 700], want: (x) => softmaxReference(x, 3, 700, 1), run: (x) => softmax(gpu, x) },
    { name: 'softmax [300,6] axis 0', shape: [300, 6], want: (x) => softmaxReference(x, 1, 300, 6), run: (x) => softmax(gpu, x, { axis: 0 }) },
    {
      name: 'layerNorm [5,520]',
      shape: [5, 520],
      want: (x) => {
        const y = new Float64Array(x.length);
        for (let r = 0; r < 5; r++) {
          const row = x.subarray(r * 520, (r + 1) * 520);
          const mean = row.reduce((s, v) => s + v, 0) / 520;
          const variance = row.reduce((s, v) => s + (v - mean) ** 2, 0) / 520;
          for (let c = 0; c < 520; c++) y[r * 520 + c] = (row[c] - mean) / Math.sqrt(variance + 1e-5);
        }
        return y;
      },
      run: (x) => layerNorm(gpu, x),
    },
  ];
  for (const [index, c] of cases.entries()) {
    const data = checkValues(c.shape[0] * c.shape[1], 61 + index);
    const x = Tensor.fromArray(gpu, data, c.shape);
    let y: Tensor | undefined;
    let got: Float32Array;
    try {
      y = withAxisLaneCap(cap, () => c.run(x));
      got = (await y.read()) as Float32Array;
    } finally {
      for (const t of [x, y]) t?.dispose();
    }
    const problem = compareVariantOutput(AXIS_TUNING_KEY, String(cap), got, c.want(data));
    if (problem) return `${c.name}: ${problem}`;
  }
  return undefined;
}
