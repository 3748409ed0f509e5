import * as assert from 'uvu/assert';
import { Tensor, l2Normalize, l2NormalizeBackward } from '../src/node.js';
import { centralDifference, dot, l2Normalize as refForward, l2NormalizeBackward as refBackward } from './ref/backward.js';
import { assertClose, assertThrows, gpuSuite, randn } from './util.js';

const test = gpuSuite('l2Normalize');

// Forward: y = x·(1/n) in f32, |y| ≤ 1; the norm's f32 sum of ≤ 1031 squares
// is good to ~1e-6 relative.
const FORWARD = { atol: 1e-6, rtol: 1e-5 };
// Float64 finite differences are accurate to ~1e-10 (see centralDifference).
const REF_VS_FD = { atol: 1e-8, rtol: 1e-6 };
// Kernel (f32) against finite differences: the brief's gradient-check bound;
// a wrong projection term errs by O(1/n).
const GPU_VS_FD = { atol: 1e-4, rtol: 1e-3 };
// Kernel against the analytic reference: dx = (dy − x·proj)/n, with proj a
// C-term dot product; |dx| ≲ |dy|/n with n ≈ √C·scale, so a few 1e-7 absolute.
const GPU_VS_REF = { atol: 2e-6, rtol: 1e-4 };

test('forward matches the float64 reference; a zero row stays zero', async ({ gpu }) => {
  const cases: [number, number][] = [[1, 1], [3, 7], [197 * 8, 768], [5, 1031]];
  for (const [rows, c] of cases) {
    const xs = randn(rows * c, rows + c, 2);
    xs.fill(0, 0, c); // first row all zeros: divided by eps, gives zeros
    const x = Tensor.fromArray(gpu, xs, [rows, c]);
    const y = l2Normalize(gpu, x);
    assert.equal(y.shape, [rows, c]);
    assertClose(await y.read(), refForward(xs, rows, c, 1e-12), FORWARD, `[${rows}, ${c}]`);
  }
});

test('analytic reference and kernel match finite differences (incl. rows with ‖x‖ below eps)', async ({ gpu }) => {
  const cases: [number, number, number][] = [[1, 1, 1e-12], [1, 5, 1e-12], [3, 7, 1e-12], [2, 300, 1e-12], [4, 6, 1]];
  for (const [rows, c, eps] of cases) {
    const xs = randn(rows * c, rows * 3 + c);
    // With eps = 1, scale rows 0 and 2 well below the threshold and keep the rest above it.
    if (eps === 1) {
      for (let r = 0; r < rows; r++) for (let j = 0; j < c; j++) xs[r * c + j] *= r % 2 === 0 ? 0.05 : 3;
    }
    const dys = randn(rows * c, rows + c + 1);
    const fd = centralDifference((x) => dot(dys, refForward(x, rows, c, eps)), xs);
    const label = `[${rows}, ${c}] eps=${eps}`;
    assertClose(refBackward(dys, xs, rows, c, eps), fd, REF_VS_FD, `ref ${label}`);
    const dx = l2NormalizeBackward(gpu, Tensor.fromArray(gpu, dys, [rows, c]), Tensor.fromArray(gpu, xs, [rows, c]), { eps });
    assertClose(await dx.read(), fd, GPU_VS_FD, `gpu ${label}`);
  }
});

test('backward matches the analytic reference on large shapes (C = 768, rows = 197·8; primes)', async ({ gpu }) => {
  const cases: number[][] = [[8, 197, 768], [5, 1031], [1009, 3]];
  for (const shape of cases) {
    const c = shape[shape.length - 1];
    const n = shape.reduce((a, b) => a * b, 1);
    const xs = randn(n, n, 0.5);
    const dys = randn(n, n + 1);
    const dx = l2NormalizeBackward(gpu, Tensor.fromArray(gpu, dys, shape), Tensor.fromArray(gpu, xs, shape));
    assert.equal(dx.shape, shape);
    assertClose(await dx.read(), refBackward(dys, xs, n / c, c, 1e-12), GPU_VS_REF, `${shape}`);
  }
});

test('rejects bad dtypes, shapes, eps and out', async ({ gpu }) => {
  const x = Tensor.empty(gpu, [2, 3]);
  await assertThrows(() => l2Normalize(gpu, Tensor.empty(gpu, [2, 3], 'i32')), /l2Normalize/, /x must be f32/, /i32/);
  await assertThrows(() => l2Normalize(gpu, Tensor.empty(gpu, [2, 0])), /l2Normalize/, /non-empty last axis/, /\[2, 0\]/);
  await assertThrows(() => l2Normalize(gpu, x, { eps: 0 }), /l2Normalize/, /eps must be a positive finite number/, /got 0/);
  await assertThrows(() => l2Normalize(gpu, x, { out: Tensor.empty(gpu, [5]) }), /l2Normalize/, /6 elements/, /\[5\]/);
  await assertThrows(() => l2NormalizeBackward(gpu, Tensor.empty(gpu, [3, 2]), x), /l2NormalizeBackward/, /dy must have the shape of x \[2, 3\]/, /\[3, 2\]/);
  await assertThrows(() => l2NormalizeBackward(gpu, Tensor.empty(gpu, [2, 3], 'u32'), x), /l2NormalizeBackward/, /dy must be f32/, /u32/);
  await assertThrows(() => l2NormalizeBackward(gpu, x, x, { eps: -1 }), /l2NormalizeBackward/, /eps/, /-1/);
  await assertThrows(() => l2NormalizeBackward(gpu, Tensor.empty(gpu, [2, 3]), x, { out: x }), /l2NormalizeBackward/, /shares its buffer/);
});

test.run();
