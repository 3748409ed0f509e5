import * as assert from 'uvu/assert';
import { Tensor, layerNorm, layerNorm2d } from '../src/node.js';
import * as ref from './ref/norm.js';
import { assertClose, assertThrows, gpuSuite, randn, randomArray } from './util.js';

const test = gpuSuite('layernorm');

// y is O(1) (unit variance times gamma ~ N(0,1), plus beta); f32 sums over up
// to 50,000 elements and the f32 products leave absolute errors up to ~1.5e-6
// (measured on lavapipe), so 1e-5 leaves room for other summation orders.
const TOL = { atol: 1e-5, rtol: 1e-5 };
// Statistics: mean to f32 rounding of the row sum, rstd to a few ulps.
const STATS_TOL = { atol: 1e-5, rtol: 1e-5 };

const ROW_SHAPES: number[][] = [
  [1, 1],
  [3, 1],
  [7, 13],
  [37, 5],
  [300, 8],
  [5, 97],
  [2, 3, 255],
  [4, 257],
  [6, 768],
  [3, 1024],
  [1, 50000],
];

test('layerNorm matches float64 reference (affine, with mean/rstd) over shapes', async ({ gpu }) => {
  for (const shape of ROW_SHAPES) {
    const c = shape[shape.length - 1];
    const rows = shape.reduce((a, b) => a * b, 1) / c;
    const data = randn(rows * c, rows * 31 + c, 2);
    for (let i = 0; i < data.length; i++) data[i] += 0.5; // a non-zero mean to remove
    const g = randn(c, c + 1);
    const b = randn(c, c + 2);
    const x = Tensor.fromArray(gpu, data, shape);
    const gamma = Tensor.fromArray(gpu, g, [c]);
    const beta = Tensor.fromArray(gpu, b, [c]);
    const mean = Tensor.empty(gpu, [rows]);
    const rstd = Tensor.empty(gpu, [rows]);
    const y = layerNorm(gpu, x, gamma, beta, { mean, rstd });
    assert.equal(y.shape, shape);
    const want = ref.layerNorm(data, rows, c, g, b, 1e-5);
    const label = `[${shape}]`;
    assertClose(await y.read(), want.y, TOL, `y ${label}`);
    assertClose(await mean.read(), want.mean, STATS_TOL, `mean ${label}`);
    assertClose(await rstd.read(), want.rstd, STATS_TOL, `rstd ${label}`);
    for (const t of [x, gamma, beta, mean, rstd, y]) t.dispose();
  }
});

test('layerNorm without affine, gamma only, into out, and with only rstd requested', async ({ gpu }) => {
  const [rows, c] = [9, 130];
  const data = randn(rows * c, 5);
  const g = randn(c, 6);
  const x = Tensor.fromArray(gpu, data, [rows, c]);
  assertClose(await layerNorm(gpu, x).read(), ref.layerNorm(data, rows, c, undefined, undefined, 1e-5).y, TOL, 'plain');
  const gamma = Tensor.fromArray(gpu, g, [c]);
  const out = Tensor.empty(gpu, [rows, c]);
  const rstd = Tensor.empty(gpu, [rows]);
  const y = layerNorm(gpu, x, gamma, undefined, { out, rstd });
  assert.is(y, out);
  const want = ref.layerNorm(data, rows, c, g, undefined, 1e-5);
  assertClose(await out.read(), want.y, TOL, 'gamma only');
  assertClose(await rstd.read(), want.rstd, STATS_TOL, 'rstd alone');
});

test('layerNorm stays accurate on rows of 1e4 ± 1 (one-pass E[x²] − E[x]² would fail)', async ({ gpu }) => {
  const [rows, c] = [4, 768];
  const data = randomArray(rows * c, 77, 1e4 - 1, 1e4 + 1);
  const x = Tensor.fromArray(gpu, data, [rows, c]);
  const mean = Tensor.empty(gpu, [rows]);
  const rstd = Tensor.empty(gpu, [rows]);
  const y = layerNorm(gpu, x, undefined, undefined, { mean, rstd });
  const want = ref.layerNorm(data, rows, c, undefined, undefined, 1e-5);
  // The inputs are exact f32 values (ulp 1e-3 at 1e4) and x − mean is exact
  // in f32 there, so y keeps the usual accuracy; the mean is held to a few
  // ulps of 1e4.
  assertClose(await y.read(), want.y, TOL, 'y');
  assertClose(await mean.read(), want.mean, { atol: 0, rtol: 3e-7 }, 'mean');
  assertClose(await rstd.read(), want.rstd, STATS_TOL, 'rstd');
});

test('eps defaults: 1e-5 for layerNorm, 1e-6 for layerNorm2d (visible on low-variance data)', async ({ gpu }) => {
  // Variance ~1e-6, so eps 1e-5 vs 1e-6 changes y by a factor of ~3.
  const c = 64;
  const data = randn(c, 9, 1e-3);
  const x = Tensor.fromArray(gpu, data, [1, c]);
  const ones = Tensor.fromArray(gpu, new Float32Array(c).fill(1), [c]);
  const zeros = Tensor.fromArray(gpu, new Float32Array(c), [c]);
  assertClose(await layerNorm(gpu, x).read(), ref.layerNorm(data, 1, c, undefined, undefined, 1e-5).y, TOL, 'layerNorm default eps');
  const x4 = x.reshape([1, c, 1, 1]);
  assertClose(await layerNorm2d(gpu, x4, ones, zeros).read(), ref.layerNorm2d(data, [1, c, 1, 1], new Float32Array(c).fill(1), new Float32Array(c), 1e-6), TOL, 'layerNorm2d default eps');
  assertClose(await layerNorm(gpu, x, undefined, undefined, { eps: 0.5 }).read(), ref.layerNorm(data, 1, c, undefined, undefined, 0.5).y, TOL, 'explicit eps');
});

test('layerNorm2d matches float64 reference over [N, C, H, W] shapes', async ({ gpu }) => {
  const shapes = [
    [1, 1, 1, 1],
    [2, 3, 5, 7],
    [2, 32, 13, 11],
    [1, 256, 16, 16],
    [1, 768, 2, 3],
    [1, 5, 1, 1],
  ];
  for (const shape of shapes) {
    const [, c] = shape;
    const n = shape.reduce((a, b) => a * b, 1);
    const data = randn(n, n + c, 3);
    const g = randn(c, c + 3);
    const b = randn(c, c + 4);
    const x = Tensor.fromArray(gpu, data, shape);
    const y = layerNorm2d(gpu, x, Tensor.fromArray(gpu, g, [c]), Tensor.fromArray(gpu, b, [c]));
    assert.equal(y.shape, shape);
    assertClose(await y.read(), ref.layerNorm2d(data, shape, g, b, 1e-6), TOL, `layerNorm2d [${shape}]`);
  }
});

test('rejects bad dtype, gamma/beta shape, eps, output and statistics', async ({ gpu }) => {
  const x = Tensor.fromArray(gpu, randn(12, 1), [3, 4]);
  const g4 = Tensor.fromArray(gpu, [1, 1, 1, 1], [4]);
  const g5 = Tensor.fromArray(gpu, [1, 1, 1, 1, 1], [5]);
  await assertThrows(() => layerNorm(gpu, Tensor.fromArray(gpu, [1, 2], [1, 2], 'i32')), /layerNorm/, /f32/, /i32/);
  await assertThrows(() => layerNorm(gpu, x, g5), /layerNorm: gamma/, /\[4\]/, /\[5\]/);
  await assertThrows(() => layerNorm(gpu, x, g4, g5), /layerNorm: beta/, /\[4\]/, /\[5\]/);
  await assertThrows(() => layerNorm(gpu, x, Tensor.fromArray(gpu, [1, 1, 1, 1], [4], 'i32')), /layerNorm: gamma must be f32/, /i32/);
  for (const eps of [0, -1e-5, NaN, Infinity]) {
    await assertThrows(() => layerNorm(gpu, x, g4, g4, { eps }), /layerNorm: eps must be a positive finite number/, new RegExp(`got ${eps}`));
  }
  await assertThrows(() => layerNorm(gpu, x, undefined, undefined, { out: Tensor.empty(gpu, [3, 5]) }), /layerNorm: out/, /12 elements/, /\[3, 5\]/);
  await assertThrows(() => layerNorm(gpu, x, undefined, undefined, { out: x }), /layerNorm: out shares its buffer/);
  await assertThrows(() => layerNorm(gpu, x, undefined, undefined, { mean: Tensor.empty(gpu, [4]) }), /layerNorm: mean must be f32 with 3 elements/, /\[3, 4\]/, /\[4\]/);
  await assertThrows(() => layerNorm(gpu, x, undefined, undefined, { rstd: Tensor.empty(gpu, [3], 'i32') }), /layerNorm: rstd/, /i32/);
  await assertThrows(() => layerNorm(gpu, Tensor.empty(gpu, [3, 0])), /layerNorm: x must have a non-empty last axis/, /\[3, 0\]/);
  await assertThrows(() => layerNorm2d(gpu, x, g4, g4), /layerNorm2d: x must be \[N, C, H, W\]/, /\[3, 4\]/);
  const x4 = x.reshape([1, 3, 2, 2]);
  await assertThrows(() => layerNorm2d(gpu, x4, g4, g4), /layerNorm2d: gamma must have shape \[3\]/, /\[4\]/);
  await assertThrows(() => layerNorm2d(gpu, x4, Tensor.fromArray(gpu, [1, 1, 1], [3]), g4), /layerNorm2d: beta must have shape \[3\]/, /\[4\]/);
  await assertThrows(() => layerNorm2d(gpu, x4, Tensor.fromArray(gpu, [1, 1, 1], [3]), Tensor.fromArray(gpu, [1, 1, 1], [3]), { eps: -1 }), /layerNorm2d: eps/, /-1/);
});

test.run();
