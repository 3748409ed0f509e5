import * as assert from 'uvu/assert';
import { Tensor, softmax } from '../src/node.js';
import { AXIS_CASES, axisCaseSizes } from './axis-cases.js';
import * as ref from './ref/norm.js';
import { assertClose, assertThrows, gpuSuite, randn } from './util.js';

const test = gpuSuite('softmax');

// Outputs lie in [0, 1]; f32 exp and the f32 row sum give a relative error of
// a few 1e-7 per element, a little more on 50,000-long rows.
const TOL = { atol: 1e-7, rtol: 1e-5 };

for (const c of AXIS_CASES) {
  const { shape, axis } = c;
  test(`matches float64 reference: [${shape}] axis ${axis ?? -1}`, async ({ gpu }) => {
    const { n, ax } = axisCaseSizes(c);
    const data = randn(n, n + shape.length, 4);
    const x = Tensor.fromArray(gpu, data, shape);
    const y = softmax(gpu, x, axis === undefined ? {} : { axis });
    assert.equal(y.shape, shape);
    assertClose(await y.read(), ref.softmax(data, shape, ax), TOL, `softmax [${shape}] axis ${ax}`);
  });
}

test('large offsets (around 1e4) are max-subtracted; a row of length 1 is 1', async ({ gpu }) => {
  const data = randn(3 * 1024, 8);
  for (let i = 0; i < data.length; i++) data[i] += 1e4;
  const got = await softmax(gpu, Tensor.fromArray(gpu, data, [3, 1024])).read();
  assertClose(got, ref.softmax(data, [3, 1024], 1), TOL, 'offset 1e4');
  assertClose(await softmax(gpu, Tensor.fromArray(gpu, [-3e38, 5, 3e38], [3, 1])).read(), [1, 1, 1], { atol: 0, rtol: 0 }, 'length 1');
});

test('−inf policy: masked entries give 0, a row of all −inf gives zeros', async ({ gpu }) => {
  const ninf = -Infinity;
  // Row 0 partly masked (as causal attention), row 1 fully masked, row 2 plain.
  const data = [ninf, 1, ninf, 2, 0, ninf, ninf, ninf, ninf, ninf, 0.5, -1, 3, 0, 2];
  const got = await softmax(gpu, Tensor.fromArray(gpu, data, [3, 5])).read();
  assertClose(got, ref.softmax(data, [3, 5], 1), TOL, 'masked rows');
  assert.equal(Array.from(got.slice(5, 10)), [0, 0, 0, 0, 0], 'fully masked row is zeros');
  // Same along a strided axis, and in rows long enough to span every lane.
  const long = new Float32Array(2 * 3000).fill(ninf);
  long[3000 + 2999] = 7;
  const gotLong = await softmax(gpu, Tensor.fromArray(gpu, long, [2, 3000])).read();
  assert.ok(gotLong.slice(0, 5999).every((v) => v === 0), 'all zeros except the one finite entry');
  assert.is(gotLong[5999], 1);
  const gotCol = await softmax(gpu, Tensor.fromArray(gpu, data, [5, 3]), { axis: 0 }).read();
  assertClose(gotCol, ref.softmax(data, [5, 3], 0), TOL, 'masked columns');
});

test('rows sum to 1', async ({ gpu }) => {
  const got = await softmax(gpu, Tensor.fromArray(gpu, randn(4 * 50000, 3, 10), [4, 50000])).read();
  for (let r = 0; r < 4; r++) {
    let s = 0;
    for (let j = 0; j < 50000; j++) s += got[r * 50000 + j];
    assert.ok(Math.abs(s - 1) < 1e-4, `row ${r} sums to ${s}`);
  }
});

test('more rows than one grid dimension holds (65537 workgroups: 2-D dispatch)', async ({ gpu }) => {
  const [rows, c] = [65537, 256];
  const data = randn(rows * c, 12);
  const got = await softmax(gpu, Tensor.fromArray(gpu, data, [rows, c])).read();
  for (const r of [0, 65534, 65535, 65536]) {
    const row = data.subarray(r * c, (r + 1) * c);
    assertClose(got.subarray(r * c, (r + 1) * c), ref.softmax(row, [c], 0), TOL, `row ${r}`);
  }
});

test('writes into out', async ({ gpu }) => {
  const data = randn(20, 2);
  const out = Tensor.empty(gpu, [4, 5]);
  assert.is(softmax(gpu, Tensor.fromArray(gpu, data, [4, 5]), { out }), out);
  assertClose(await out.read(), ref.softmax(data, [4, 5], 1), TOL, 'out');
});

test('rejects bad dtype, axis and output', async ({ gpu }) => {
  const x = Tensor.fromArray(gpu, randn(6, 1), [2, 3]);
  await assertThrows(() => softmax(gpu, Tensor.fromArray(gpu, [1, 2], [2], 'i32')), /softmax: x must be f32/, /i32/);
  await assertThrows(() => softmax(gpu, x, { axis: 2 }), /softmax: axis 2 is out of range/, /rank 2/, /\[2, 3\]/, /-2\.\.1/);
  await assertThrows(() => softmax(gpu, x, { axis: -3 }), /softmax: axis -3/, /rank 2/);
  await assertThrows(() => softmax(gpu, x, { axis: 0.5 }), /softmax: axis 0.5/);
  await assertThrows(() => softmax(gpu, x, { out: Tensor.empty(gpu, [7]) }), /softmax: out/, /6 elements/, /\[7\]/);
  await assertThrows(() => softmax(gpu, x, { out: Tensor.empty(gpu, [2, 3], 'i32') }), /softmax: out must be f32/, /i32/);
  await assertThrows(() => softmax(gpu, x, { out: x }), /softmax: out shares its buffer/);
});

test.run();
