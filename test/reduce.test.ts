import * as assert from 'uvu/assert';
import { Tensor, reduceMax, reduceMean, reduceSum } from '../src/node.js';
import * as ref from './ref/norm.js';
import { assertClose, assertThrows, gpuSuite, randomArray } from './util.js';

const test = gpuSuite('reduce');

// f32 summation error scales with the summands' magnitudes, not the result's:
// each output is held to SUM_REL · Σ|x| over its reduced elements (times
// 1/count for a mean). The final f32 rounding alone costs up to 6e-8 of that;
// measured totals stay below 1e-9 relative, as the tree keeps chains short.
const SUM_REL = 2e-7;
// The maximum is one of the inputs: exact.
const EXACT = { atol: 0, rtol: 0 };

const CASES: { shape: number[]; axes: number | number[] }[] = [
  { shape: [1], axes: 0 },
  { shape: [7], axes: -1 },
  { shape: [7, 13], axes: 0 },
  { shape: [7, 13], axes: 1 },
  { shape: [7, 13], axes: [0, 1] },
  { shape: [37, 5], axes: 1 },
  { shape: [2, 3, 5, 7], axes: [0, 2] },
  { shape: [2, 3, 5, 7], axes: [1, 3] },
  { shape: [2, 3, 5, 7], axes: [-1, -2] },
  { shape: [2, 3, 5, 7], axes: [3, 0, 1, 2] },
  { shape: [4, 1, 3], axes: 1 },
  { shape: [6, 768], axes: -1 },
  { shape: [3, 1024, 5], axes: 1 },
  { shape: [50000], axes: 0 },
  { shape: [3, 50000], axes: 1 },
  { shape: [50000, 3], axes: 0 },
  { shape: [257, 1024], axes: [0, 1] },
];

const fns = { sum: reduceSum, mean: reduceMean, max: reduceMax };

for (const { shape, axes } of CASES) {
  test(`sum, mean, max match float64 reference: [${shape}] axes ${JSON.stringify(axes)}`, async ({ gpu }) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = randomArray(n, n + 7);
    const x = Tensor.fromArray(gpu, data, shape);
    const list = typeof axes === 'number' ? [axes] : axes;
    const resolved = list.map((a) => (a < 0 ? a + shape.length : a));
    const count = resolved.reduce((c, a) => c * shape[a], 1);
    for (const kind of ['sum', 'mean', 'max'] as const) {
      const want = ref.reduce(data, shape, list, kind);
      for (const keepDims of [false, true]) {
        const y = fns[kind](gpu, x, axes, { keepDims });
        const shapeWant = keepDims ? shape.map((d, i) => (resolved.includes(i) ? 1 : d)) : shape.filter((_, i) => !resolved.includes(i));
        assert.equal(y.shape, shapeWant, `${kind} shape keepDims=${keepDims}`);
        const got = await y.read();
        const label = `${kind} [${shape}] axes ${JSON.stringify(axes)}`;
        if (kind === 'max') assertClose(got, want.y, EXACT, label);
        else {
          const scale = kind === 'mean' ? 1 / count : 1;
          for (let o = 0; o < got.length; o++) {
            const bound = SUM_REL * want.absSum[o] * scale;
            if (!(Math.abs(got[o] - want.y[o]) <= bound)) assert.unreachable(`${label}: output ${o} is ${got[o]}, expected ${want.y[o]} (bound ${bound})`);
          }
        }
        y.dispose();
      }
    }
    x.dispose();
  });
}

test('deterministic: the same reduction twice gives identical bits', async ({ gpu }) => {
  const x = Tensor.fromArray(gpu, randomArray(3 * 200003, 5), [3, 200003]);
  const a = await reduceSum(gpu, x, 1).read();
  const b = await reduceSum(gpu, x, 1).read();
  assert.equal(Array.from(a), Array.from(b));
});

test('reduceMax propagates NaN and handles ±inf', async ({ gpu }) => {
  const data = [1, NaN, 3, -Infinity, -Infinity, -Infinity, 2, Infinity, -1, 5, 4, NaN];
  const got = await reduceMax(gpu, Tensor.fromArray(gpu, data, [4, 3]), 1).read();
  assert.ok(Number.isNaN(got[0]) && Number.isNaN(got[3]), `NaN rows: ${got}`);
  assert.is(got[1], -Infinity);
  assert.is(got[2], Infinity);
});

test('empty reductions: sum is 0, mean is NaN (as numpy)', async ({ gpu }) => {
  const x = Tensor.empty(gpu, [3, 0]);
  assert.equal(Array.from(await reduceSum(gpu, x, 1).read()), [0, 0, 0]);
  assert.ok((await reduceMean(gpu, x, 1).read()).every(Number.isNaN));
});

test('rejects bad dtype, axes out of range, duplicate and empty axes', async ({ gpu }) => {
  const x = Tensor.fromArray(gpu, randomArray(6, 1), [2, 3]);
  await assertThrows(() => reduceSum(gpu, Tensor.fromArray(gpu, [1, 2], [2], 'i32'), 0), /reduceSum: x must be f32/, /i32/);
  await assertThrows(() => reduceMean(gpu, x, 2), /reduceMean: axis 2 is out of range/, /rank 2/, /\[2, 3\]/);
  await assertThrows(() => reduceMax(gpu, x, [0, -3]), /reduceMax: axis -3 is out of range/, /rank 2/);
  await assertThrows(() => reduceSum(gpu, x, [1, -1]), /reduceSum: duplicate axis -1/, /\[1, -1\]/, /rank 2/);
  await assertThrows(() => reduceSum(gpu, x, []), /reduceSum: axes must name at least one axis/, /\[2, 3\]/);
  await assertThrows(() => reduceMax(gpu, Tensor.empty(gpu, [2, 0]), 1), /reduceMax: cannot take the maximum over zero elements/, /\[2, 0\]/);
});

test.run();
