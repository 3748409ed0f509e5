import * as assert from 'uvu/assert';
import { Tensor, activationBackward, UNARY_OPS, type ActivationBackwardOp } from '../src/node.js';
import * as fwd from './ref/activations.js';
import { activationGrad, centralDifference, dot } from './ref/backward.js';
import { assertClose, assertThrows, gpuSuite, randomArray } from './util.js';

const test = gpuSuite('activationBackward');

// The float64 finite differences are accurate to ~1e-10 (see centralDifference),
// so against the analytic float64 derivative only that error remains.
const REF_VS_FD = { atol: 1e-7, rtol: 1e-7 };
// Kernel (f32) against finite differences: f32 rounding of dy·f'(x) is ~1e-7
// relative, the 1.5e-7 erf approximation and the exp-based tanh add ~1e-7
// absolute; 1e-3 relative / 1e-4 absolute is the brief's gradient-check bound
// and still catches any wrong formula (those err by O(0.1)).
const GPU_VS_FD = { atol: 1e-4, rtol: 1e-3 };
// Kernel against the analytic float64 derivative on large inputs: a few f32 ulps
// plus the erf/tanh approximations (|dy| <= 1, |f'| <= 1.13).
const GPU_VS_REF = { atol: 3e-6, rtol: 3e-6 };

for (const op of UNARY_OPS) {
  test(`${op}: analytic reference and kernel match finite differences (n = 1, 13, 61)`, async ({ gpu }) => {
    for (const n of [1, 13, 61]) {
      const xs = randomArray(n, 100 + n, -6, 6);
      const dys = randomArray(n, 200 + n);
      const loss = (x: Float64Array) => dot(dys, Array.from(x, fwd[op]));
      const fd = centralDifference(loss, xs);
      assertClose(Array.from(xs, (v, i) => dys[i] * activationGrad[op](v)), fd, REF_VS_FD, `${op} ref n=${n}`);
      const x = Tensor.fromArray(gpu, xs, [n]);
      const dy = Tensor.fromArray(gpu, dys, [n]);
      const dx = activationBackward(gpu, op, x, dy);
      assertClose(await dx.read(), fd, GPU_VS_FD, `${op} gpu n=${n}`);
      for (const t of [x, dy, dx]) t.dispose();
    }
  });

  test(`${op}: kernel matches the analytic reference over [197·8, 768] and 70001`, async ({ gpu }) => {
    for (const shape of [[197 * 8, 768], [70001]]) {
      const n = shape.reduce((a, b) => a * b, 1);
      const xs = randomArray(n, n + 1, -8, 8);
      const dys = randomArray(n, n + 2);
      const x = Tensor.fromArray(gpu, xs, shape);
      const dy = Tensor.fromArray(gpu, dys, shape);
      const dx = activationBackward(gpu, op, x, dy);
      assert.equal(dx.shape, shape);
      assertClose(await dx.read(), Array.from(xs, (v, i) => dys[i] * activationGrad[op](v)), GPU_VS_REF, `${op} ${shape}`);
      for (const t of [x, dy, dx]) t.dispose();
    }
  });
}

test('relu gradient at 0 is 0; large inputs give finite gradients with the right limits', async ({ gpu }) => {
  const xs = [0, -1e4, -100, 100, 1e4];
  const x = Tensor.fromArray(gpu, xs, [5]);
  const dy = Tensor.fromArray(gpu, [1, 1, 1, 1, 1], [5]);
  assert.equal(Array.from(await activationBackward(gpu, 'relu', x, dy).read()), [0, 0, 0, 1, 1]);
  for (const op of UNARY_OPS) {
    const got = await activationBackward(gpu, op, x, dy).read();
    // Every activation is flat for x → −∞; all but sigmoid have slope 1 for x → +∞.
    assertClose(got.slice(1), [0, 0, op === 'sigmoid' ? 0 : 1, op === 'sigmoid' ? 0 : 1], { atol: 1e-6, rtol: 0 }, `${op} limits`);
  }
});

test('writes into out when given', async ({ gpu }) => {
  const x = Tensor.fromArray(gpu, [-1, 2], [2]);
  const dy = Tensor.fromArray(gpu, [3, 4], [2]);
  const out = Tensor.empty(gpu, [2]);
  assert.is(activationBackward(gpu, 'relu', x, dy, { out }), out);
  assert.equal(Array.from(await out.read()), [0, 4]);
});

test('rejects wrong dtypes, mismatched shapes, bad out and unknown op', async ({ gpu }) => {
  const x = Tensor.fromArray(gpu, [1, 2, 3], [3]);
  const xi = Tensor.fromArray(gpu, [1, 2, 3], [3], 'i32');
  await assertThrows(() => activationBackward(gpu, 'gelu', xi, x), /activationBackward\.gelu/, /x must be f32/, /i32/);
  await assertThrows(() => activationBackward(gpu, 'gelu', x, xi), /activationBackward\.gelu/, /dy must be f32/, /i32/);
  await assertThrows(() => activationBackward(gpu, 'relu', x, Tensor.empty(gpu, [3, 1])), /activationBackward\.relu/, /shape of x \[3\]/, /\[3, 1\]/);
  await assertThrows(() => activationBackward(gpu, 'relu', x, x, { out: Tensor.empty(gpu, [4]) }), /activationBackward\.relu/, /3 elements/, /\[4\]/);
  await assertThrows(() => activationBackward(gpu, 'relu', x, x.reshape([3]), { out: x }), /activationBackward\.relu/, /shares its buffer/);
  await assertThrows(() => activationBackward(gpu, 'swish' as ActivationBackwardOp, x, x), /activationBackward/, /unknown activation 'swish'/);
});

test.run();
