import * as assert from 'uvu/assert';
import { Tensor, softmaxCrossEntropy, type CrossEntropyReduction } from '../src/node.js';
import { centralDifference, crossEntropyGrad, crossEntropyRows } from './ref/backward.js';
import { assertClose, assertThrows, gpuSuite, randn, rng } from './util.js';

const test = gpuSuite('softmaxCrossEntropy');

// Float64 finite differences are accurate to ~1e-10 (see centralDifference).
const REF_VS_FD = { atol: 1e-8, rtol: 1e-6 };
// Kernel (f32) against finite differences: softmax probabilities carry ~1e-7
// relative f32 error; 1e-3 relative / 1e-4 absolute is the brief's
// gradient-check bound, while a wrong target or scale errs by O(1/N).
const GPU_VS_FD = { atol: 1e-4, rtol: 1e-3 };
// Against the analytic reference on large shapes: dlogits are single f32
// expressions (exp, one division) of size ≤ 1/N or 1 → a few ulps; the loss
// is log Σ over ≤ 70001 terms (≈ 11) plus a mean of ≤ 20011 rows in f32.
const GPU_VS_REF_GRAD = { atol: 1e-6, rtol: 1e-5 };
const GPU_VS_REF_LOSS = { atol: 1e-5, rtol: 1e-5 };

function randomLabels(n: number, k: number, seed: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * k));
}

function reduceRows(losses: Float64Array, reduction: CrossEntropyReduction): number[] {
  const sum = losses.reduce((a, b) => a + b, 0);
  return reduction === 'none' ? Array.from(losses) : [reduction === 'mean' ? sum / losses.length : sum];
}

test('analytic reference and kernel match finite differences (mean/sum, with and without smoothing)', async ({ gpu }) => {
  const shapes: [number, number][] = [[1, 1], [1, 5], [3, 7], [4, 13], [2, 300]];
  for (const [n, k] of shapes) {
    for (const [reduction, eps] of [['mean', 0], ['sum', 0.1], ['mean', 0.3]] as const) {
      const xs = randn(n * k, n * 7 + k, 2);
      const labels = randomLabels(n, k, n + k);
      const loss = (x: Float64Array) => reduceRows(crossEntropyRows(x, labels, n, k, eps), reduction)[0];
      const fd = centralDifference(loss, xs);
      const scale = reduction === 'mean' ? 1 / n : 1;
      const label = `[${n}, ${k}] ${reduction} ε=${eps}`;
      assertClose(crossEntropyGrad(xs, labels, n, k, eps, scale), fd, REF_VS_FD, `ref ${label}`);
      const logits = Tensor.fromArray(gpu, xs, [n, k]);
      const r = softmaxCrossEntropy(gpu, logits, Tensor.fromArray(gpu, labels, [n], 'i32'), { reduction, labelSmoothing: eps });
      assert.equal(r.loss.shape, [1]);
      assert.equal(r.dlogits.shape, [n, k]);
      assertClose(await r.dlogits.read(), fd, GPU_VS_FD, `gpu dlogits ${label}`);
      assertClose(await r.loss.read(), [loss(Float64Array.from(xs))], GPU_VS_REF_LOSS, `gpu loss ${label}`);
    }
  }
});

test('kernel matches the analytic reference on large shapes', async ({ gpu }) => {
  const cases: [number, number, CrossEntropyReduction, number][] = [
    [197 * 8, 768, 'mean', 0.1],
    [20011, 2, 'mean', 0],
    [3, 70001, 'sum', 0.05],
    [1009, 37, 'none', 0.2],
  ];
  for (const [n, k, reduction, eps] of cases) {
    const xs = randn(n * k, n + k, 3);
    const labels = randomLabels(n, k, n * k);
    const r = softmaxCrossEntropy(gpu, Tensor.fromArray(gpu, xs, [n, k]), Tensor.fromArray(gpu, labels, [n], 'i32'), { reduction, labelSmoothing: eps });
    const label = `[${n}, ${k}] ${reduction} ε=${eps}`;
    assert.equal(r.loss.shape, reduction === 'none' ? [n] : [1]);
    assertClose(await r.loss.read(), reduceRows(crossEntropyRows(xs, labels, n, k, eps), reduction), GPU_VS_REF_LOSS, `loss ${label}`);
    assertClose(await r.dlogits.read(), crossEntropyGrad(xs, labels, n, k, eps, reduction === 'mean' ? 1 / n : 1), GPU_VS_REF_GRAD, `dlogits ${label}`);
  }
});

test('the mean loss is deterministic; host label arrays give the same result as a label tensor', async ({ gpu }) => {
  const [n, k] = [197 * 8, 10];
  const logits = Tensor.fromArray(gpu, randn(n * k, 9, 4), [n, k]);
  const labels = randomLabels(n, k, 10);
  const a = softmaxCrossEntropy(gpu, logits, Tensor.fromArray(gpu, labels, [n], 'i32'));
  const b = softmaxCrossEntropy(gpu, logits, labels);
  const c = softmaxCrossEntropy(gpu, logits, Array.from(labels));
  const bits = async (t: Tensor) => Array.from(new Uint32Array((await t.read()).buffer));
  assert.equal(await bits(b.loss), await bits(a.loss));
  assert.equal(await bits(c.loss), await bits(a.loss));
  assert.equal(await bits(b.dlogits), await bits(a.dlogits));
});

test('extreme logits stay finite: log-softmax is max-subtracted', async ({ gpu }) => {
  const xs = [1e4, -1e4, 0, 88, 89, 90];
  const r = softmaxCrossEntropy(gpu, Tensor.fromArray(gpu, xs, [2, 3]), [1, 0], { reduction: 'none' });
  assertClose(await r.loss.read(), crossEntropyRows(xs, [1, 0], 2, 3, 0), GPU_VS_REF_LOSS, 'loss');
  assertClose(await r.dlogits.read(), crossEntropyGrad(xs, [1, 0], 2, 3, 0, 1), GPU_VS_REF_GRAD, 'dlogits');
});

test('a label tensor entry outside [0, K) gives that row loss NaN and dlogits NaN, and leaves other rows intact', async ({ gpu }) => {
  const [n, k] = [5, 4];
  const xs = randn(n * k, 3);
  const labels = [0, -1, 4, 3, 1 << 30];
  const logits = Tensor.fromArray(gpu, xs, [n, k]);
  const none = softmaxCrossEntropy(gpu, logits, Tensor.fromArray(gpu, labels, [n], 'i32'), { reduction: 'none' });
  const loss = await none.loss.read();
  assertClose(loss, crossEntropyRows(xs, labels, n, k, 0), GPU_VS_REF_LOSS, 'per-row loss');
  assert.equal([1, 2, 4].map((r) => Number.isNaN(loss[r])), [true, true, true]);
  const d = await none.dlogits.read();
  const want = crossEntropyGrad(xs, labels, n, k, 0, 1);
  for (const r of [1, 2, 4]) want.fill(NaN, r * k, (r + 1) * k);
  assertClose(d, want, GPU_VS_REF_GRAD, 'dlogits');
  const mean = softmaxCrossEntropy(gpu, logits, Tensor.fromArray(gpu, labels, [n], 'i32'));
  assert.ok(Number.isNaN((await mean.loss.read())[0]), 'mean loss is NaN');
});

test('rejects bad logits, labels and options', async ({ gpu }) => {
  const logits = Tensor.empty(gpu, [3, 4]);
  const labels = Tensor.fromArray(gpu, [0, 1, 2], [3], 'i32');
  const op = /softmaxCrossEntropy/;
  await assertThrows(() => softmaxCrossEntropy(gpu, Tensor.empty(gpu, [3, 4], 'i32'), labels), op, /logits must be f32/, /i32/);
  await assertThrows(() => softmaxCrossEntropy(gpu, Tensor.empty(gpu, [12]), labels), op, /logits must be \[N, K\]/, /\[12\]/);
  await assertThrows(() => softmaxCrossEntropy(gpu, Tensor.empty(gpu, [3, 0]), labels), op, /N, K >= 1/, /\[3, 0\]/);
  await assertThrows(() => softmaxCrossEntropy(gpu, logits, Tensor.fromArray(gpu, [0, 1, 2], [3])), op, /labels must be an i32 tensor \[3\]/, /f32 \[3\]/);
  await assertThrows(() => softmaxCrossEntropy(gpu, logits, Tensor.fromArray(gpu, [0, 1], [2], 'i32')), op, /i32 tensor \[3\]/, /i32 \[2\]/);
  await assertThrows(() => softmaxCrossEntropy(gpu, logits, [0, 1]), op, /labels must hold 3 values/, /got 2/);
  await assertThrows(() => softmaxCrossEntropy(gpu, logits, [0, 4, 1]), op, /label 1 is 4/, /\[0, 4\)/);
  await assertThrows(() => softmaxCrossEntropy(gpu, logits, [0, 1, -1]), op, /label 2 is -1/);
  await assertThrows(() => softmaxCrossEntropy(gpu, logits, [0, 1.5, 1]), op, /label 1 is 1.5/, /integer/);
  await assertThrows(() => softmaxCrossEntropy(gpu, logits, labels, { labelSmoothing: 1.5 }), op, /labelSmoothing must be a number in \[0, 1\]/, /1.5/);
  await assertThrows(() => softmaxCrossEntropy(gpu, logits, labels, { labelSmoothing: NaN }), op, /labelSmoothing/, /NaN/);
  await assertThrows(() => softmaxCrossEntropy(gpu, logits, labels, { reduction: 'avg' as CrossEntropyReduction }), op, /reduction must be one of mean, sum, none/, /'avg'/);
});

test.run();
