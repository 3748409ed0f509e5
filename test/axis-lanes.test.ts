// The axis kernels at every lane cap: the default on CPU adapters is one lane
// per column, so the multi-lane tree reductions are exercised here explicitly.
import * as assert from 'uvu/assert';
import { Tensor, layerNorm, reduceSum, softmax, topK, tuneAxisKernels } from '../src/node.js';
import { AXIS_LANE_CAPS, axisLaneCap, withAxisLaneCap } from '../src/kernels/axis.js';
import { layerNorm as layerNormRef, reduce as reduceRef, softmax as softmaxRef, topK as topKRef } from './ref/norm.js';
import { assertClose, gpuSuite, randn } from './util.js';

const test = gpuSuite('axis-lanes');

// Same tolerances as the per-op tests: f32 accumulation over ≤ 1000 terms.
const TOL = { atol: 1e-5, rtol: 1e-5 };

for (const cap of AXIS_LANE_CAPS) {
  test(`lane cap ${cap}: softmax, layer norm, sum and top-k match float64`, async ({ gpu }) => {
    for (const [rows, c] of [[5, 197], [3, 1000], [64, 7]]) {
      const data = randn(rows * c, rows + c);
      const x = Tensor.fromArray(gpu, data, [rows, c]);
      const [sm, ln, sum, top] = withAxisLaneCap(cap, () => [
        softmax(gpu, x),
        layerNorm(gpu, x),
        reduceSum(gpu, x, 1),
        topK(gpu, x, 3),
      ] as const);
      assertClose(await sm.read(), softmaxRef(data, [rows, c], 1), TOL, `softmax cap ${cap} ${rows}x${c}`);
      assertClose(await ln.read(), layerNormRef(data, rows, c, undefined, undefined, 1e-5).y, { atol: 2e-5, rtol: 2e-5 }, `layerNorm cap ${cap} ${rows}x${c}`);
      assertClose(await sum.read(), reduceRef(data, [rows, c], [1], 'sum').y, { atol: 1e-4, rtol: 1e-5 }, `sum cap ${cap} ${rows}x${c}`);
      assert.equal(Array.from(await top.indices.read()), Array.from(topKRef(data, rows, c, 3).indices), `topK cap ${cap} ${rows}x${c}`);
    }
  });
}

test('tuneAxisKernels picks one of the caps and the kernels then use it', async ({ gpu }) => {
  const before = axisLaneCap(gpu);
  assert.is(before, gpu.adapter.isCpu ? 1 : 256, 'untuned default');
  const result = await tuneAxisKernels(gpu);
  assert.ok((AXIS_LANE_CAPS as readonly number[]).includes(Number(result.best)));
  assert.is(axisLaneCap(gpu), Number(result.best));
});

test.run();
