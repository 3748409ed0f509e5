import * as assert from 'uvu/assert';
import { Tensor, argmax, topK } from '../src/node.js';
import { AXIS_CASES, axisCaseSizes } from './axis-cases.js';
import * as ref from './ref/norm.js';
import { assertThrows, gpuSuite, randomArray, rng } from './util.js';

const test = gpuSuite('topk');

// Selection copies inputs and compares them exactly, so results must match
// the reference exactly: values bit for bit, indices including tie order.

/** Small integers: many ties, to exercise the lower-index-first rule. */
function tiedArray(n: number, seed: number, levels: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => Math.floor(r() * levels));
}

for (const c of AXIS_CASES) {
  const { shape, axis } = c;
  test(`argmax matches reference (random and tied data): [${shape}] axis ${axis ?? -1}`, async ({ gpu }) => {
    const { n, ax } = axisCaseSizes(c);
    for (const data of [randomArray(n, n + 1), tiedArray(n, n + 2, 4)]) {
      const x = Tensor.fromArray(gpu, data, shape);
      for (const keepDims of [false, true]) {
        const y = argmax(gpu, x, { axis, keepDims });
        assert.is(y.dtype, 'i32');
        assert.equal(y.shape, keepDims ? shape.map((d, i) => (i === ax ? 1 : d)) : shape.filter((_, i) => i !== ax));
        assert.equal(Array.from(await y.read()), Array.from(ref.argmax(data, shape, ax)), `argmax [${shape}] axis ${ax}`);
      }
    }
  });
}

test('argmax: NaN counts as largest, −0 ties +0, a row of −inf gives 0', async ({ gpu }) => {
  const data = [1, NaN, Infinity, NaN, -0, 0, -1, -0, -Infinity, -Infinity, -Infinity, -Infinity];
  const got = await argmax(gpu, Tensor.fromArray(gpu, data, [3, 4])).read();
  assert.equal(Array.from(got), [1, 0, 0]);
  assert.equal(Array.from(got), Array.from(ref.argmax(data, [3, 4], 1)));
});

const TOPK_CASES: { shape: number[]; k: number; tied?: boolean }[] = [
  { shape: [1, 1], k: 1 },
  { shape: [7], k: 3 },
  { shape: [5, 1000], k: 5 },
  { shape: [64, 100], k: 10 },
  { shape: [3, 97], k: 97 },
  { shape: [3, 97], k: 97, tied: true },
  { shape: [2, 50000], k: 64 },
  { shape: [2, 5000], k: 256, tied: true },
  { shape: [2, 3, 768], k: 17 },
];

for (const { shape, k, tied } of TOPK_CASES) {
  test(`topK matches reference: [${shape}] k=${k}${tied ? ' (ties)' : ''}`, async ({ gpu }) => {
    const c = shape[shape.length - 1];
    const n = shape.reduce((a, b) => a * b, 1);
    const data = tied ? tiedArray(n, n + k, 10) : randomArray(n, n + k);
    const { values, indices } = topK(gpu, Tensor.fromArray(gpu, data, shape), k);
    const outShape = [...shape.slice(0, -1), k];
    assert.equal(values.shape, outShape);
    assert.equal(indices.shape, outShape);
    assert.is(indices.dtype, 'i32');
    const want = ref.topK(data, n / c, c, k);
    assert.equal(Array.from(await indices.read()), Array.from(want.indices), 'indices');
    assert.equal(Array.from(await values.read()), Array.from(want.values), 'values');
  });
}

test('topK orders NaN first and ±inf correctly', async ({ gpu }) => {
  const data = [0, -Infinity, 2, NaN, Infinity, -0, 2, -3];
  const { values, indices } = topK(gpu, Tensor.fromArray(gpu, data, [8]), 8);
  assert.equal(Array.from(await indices.read()), [3, 4, 2, 6, 0, 5, 7, 1]);
  assert.equal(Array.from(await indices.read()), Array.from(ref.topK(data, 1, 8, 8).indices));
  const v = await values.read();
  assert.ok(Number.isNaN(v[0]));
  assert.equal(Array.from(v.slice(1)), [Infinity, 2, 2, 0, -0, -3, -Infinity]);
});

test('rejects bad dtype, k out of range, unsupported and out-of-range axes', async ({ gpu }) => {
  const x = Tensor.fromArray(gpu, randomArray(600, 1), [2, 300]);
  await assertThrows(() => topK(gpu, Tensor.fromArray(gpu, [1, 2], [2], 'i32'), 1), /topK: x must be f32/, /i32/);
  await assertThrows(() => argmax(gpu, Tensor.fromArray(gpu, [1, 2], [2], 'u32')), /argmax: x must be f32/, /u32/);
  for (const k of [0, 301, 2.5, NaN]) {
    await assertThrows(() => topK(gpu, x, k), /topK: k must be an integer in 1\.\.300/, /\[2, 300\]/, new RegExp(`got ${k}`));
  }
  await assertThrows(() => topK(gpu, x, 257), /topK: k = 257 exceeds the supported maximum of 256/);
  await assertThrows(() => topK(gpu, x, 1, { axis: 0 }), /topK: only the last axis/, /axis 0/, /\[2, 300\]/);
  await assertThrows(() => topK(gpu, x, 1, { axis: 2 }), /topK: axis 2 is out of range/, /rank 2/);
  await assertThrows(() => argmax(gpu, x, { axis: -3 }), /argmax: axis -3 is out of range/, /rank 2/, /\[2, 300\]/);
  await assertThrows(() => argmax(gpu, Tensor.empty(gpu, [3, 0])), /argmax: axis 1 of \[3, 0\] is empty/);
});

test.run();
