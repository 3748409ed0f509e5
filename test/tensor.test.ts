import * as assert from 'uvu/assert';
import { Tensor, sizeClass, resolveReshape } from '../src/node.js';
import { f16BitsToF32, f32ToF16Bits } from '../src/half.js';
import { assertThrows, gpuSuite, randomArray } from './util.js';

const test = gpuSuite('tensor');

test('f32, i32 and u32 round trips are exact', async ({ gpu }) => {
  const f = randomArray(1001, 1, -1e6, 1e6);
  assert.equal(Array.from(await Tensor.fromArray(gpu, f, [7, 11, 13]).read()), Array.from(f));
  const i = Int32Array.from({ length: 257 }, (_, k) => (k - 128) * 1_000_003);
  assert.equal(Array.from(await Tensor.fromArray(gpu, i, [257], 'i32').read()), Array.from(i));
  const u = Uint32Array.from({ length: 3 }, (_, k) => 0xffffffff - k);
  assert.equal(Array.from(await Tensor.fromArray(gpu, u, [3], 'u32').read()), Array.from(u));
});

test('f16 conversion: known binary16 values, rounding to nearest even, overflow and subnormals', () => {
  const cases: Array<[number, number]> = [
    [0, 0x0000],
    [1, 0x3c00],
    [-2, 0xc000],
    [65504, 0x7bff], // largest finite half
    [65520, 0x7c00], // rounds to +Inf
    [1 / 3, 0x3555],
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // ties to even: 0
    [1 + 2 ** -11, 0x3c00], // tie between 1 and 1+2^-10: even is 1
    [1 + 3 * 2 ** -11, 0x3c02], // tie: rounds up to even mantissa 2
    [Infinity, 0x7c00],
  ];
  for (const [v, bits] of cases) assert.is(f32ToF16Bits(v), bits, `f32ToF16Bits(${v})`);
  assert.ok(Number.isNaN(f16BitsToF32(f32ToF16Bits(NaN))));
  for (const [v, bits] of cases) if (Number.isFinite(v) && v !== 65520 && v !== 2 ** -25 && Math.abs(v - f16BitsToF32(bits)) > 0) {
    assert.ok(Math.abs(v - f16BitsToF32(bits)) <= Math.abs(v) * 2 ** -11, `f16BitsToF32(${bits}) ≈ ${v}`);
  }
});

test('f16 tensors round trip through the GPU where shader-f16 exists', async ({ gpu }) => {
  if (!gpu.hasF16) {
    await assertThrows(() => Tensor.empty(gpu, [2], 'f16'), /shader-f16/);
    return;
  }
  const data = [0.1, -3.25, 1000, 1 / 3, 0];
  const got = await Tensor.fromArray(gpu, data, [5], 'f16').read();
  assert.equal(Array.from(got), data.map((v) => f16BitsToF32(f32ToF16Bits(v))));
  assert.is(Tensor.empty(gpu, [3], 'f16').byteLength, 6);
});

test('shape errors name the op and both counts', async ({ gpu }) => {
  await assertThrows(() => Tensor.fromArray(gpu, [1, 2, 3], [2, 2]), /Tensor\.fromArray/, /\[2, 2\]/, /4 elements/, /got 3/);
  await assertThrows(() => Tensor.empty(gpu, [2, -1]), /Tensor\.empty/, /non-negative integers/);
  await assertThrows(() => Tensor.empty(gpu, [1.5]), /non-negative integers/);
  const t = Tensor.fromArray(gpu, [1, 2, 3, 4], [4]);
  await assertThrows(() => t.write([1, 2]), /Tensor\.write/, /4 elements/, /got 2/);
});

test('reshape: -1 inference, views share data, errors', async ({ gpu }) => {
  assert.equal(resolveReshape([2, 3, 4], [-1, 4]), [6, 4]);
  await assertThrows(() => resolveReshape([2, 3], [4, -1]), /cannot infer -1/);
  await assertThrows(() => resolveReshape([2, 3], [-1, -1]), /at most one -1/);
  await assertThrows(() => resolveReshape([2, 3], [5]), /\[2, 3\]/, /\[5\]/);
  const t = Tensor.fromArray(gpu, [1, 2, 3, 4, 5, 6], [2, 3]);
  const v = t.reshape([3, 2]);
  assert.equal(v.shape, [3, 2]);
  v.dispose(); // a view does not free its base
  assert.equal(Array.from(await t.read()), [1, 2, 3, 4, 5, 6]);
  t.dispose();
  await assertThrows(() => t.read(), /used after dispose/);
});

test('empty tensors read back empty', async ({ gpu }) => {
  assert.is((await Tensor.empty(gpu, [0, 3]).read()).length, 0);
});

test('pool: size classes', () => {
  assert.is(sizeClass(1), 256);
  assert.is(sizeClass(256), 256);
  assert.is(sizeClass(257), 384);
  assert.is(sizeClass(384), 384);
  assert.is(sizeClass(385), 512);
  assert.is(sizeClass(1 << 20), 1 << 20);
  assert.is(sizeClass((1 << 20) + 1), 1.5 * (1 << 20));
});

test('pool: a released buffer is reused only after the queue finished with it', async ({ gpu }) => {
  await gpu.sync();
  const a = Tensor.empty(gpu, [1000]);
  a.dispose(); // fenced on work submitted so far
  const before = gpu.pool.stats();
  const b = Tensor.empty(gpu, [1000]); // queue not confirmed done yet: must be a fresh buffer
  assert.is(gpu.pool.stats().created, before.created + 1, 'no reuse before the fence resolves');
  b.dispose();
  await gpu.sync();
  const reusedBefore = gpu.pool.stats().reused;
  const c = Tensor.empty(gpu, [900]); // same size class
  assert.is(gpu.pool.stats().reused, reusedBefore + 1, 'reused after the queue is done');
  c.dispose();
});

test('pool: buffers beyond maxBufferSize are refused with the sizes', async ({ gpu }) => {
  const tooBig = Math.floor(gpu.limits.maxBufferSize / 4) + 1;
  await assertThrows(() => Tensor.empty(gpu, [tooBig]), /BufferPool\.acquire/, /maxBufferSize/);
});

test.run();
