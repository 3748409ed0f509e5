import * as assert from 'uvu/assert';
import { Tensor, unary, UNARY_OPS, type UnaryOp } from '../src/node.js';
import * as ref from './ref/activations.js';
import { assertClose, assertThrows, gpuSuite, randomArray } from './util.js';

const test = gpuSuite('unary');

test('reference erf is accurate (known values)', () => {
  assertClose([ref.erf(0.5), ref.erf(1), ref.erf(-2), ref.erf(3.5)], [0.5204998778130465, 0.8427007929497149, -0.9953222650189527, 0.9999992569016276], { atol: 1e-14, rtol: 0 }, 'erf');
});

// f32 math with a 1.5e-7 erf approximation: 2e-6 absolute covers both.
const TOL = { atol: 2e-6, rtol: 2e-6 };

for (const op of UNARY_OPS) {
  test(`${op} matches float64 reference over sizes 1, 7, 1000, 70001`, async ({ gpu }) => {
    for (const n of [1, 7, 1000, 70001]) {
      const data = randomArray(n, n + 11, -8, 8);
      const x = Tensor.fromArray(gpu, data, [n]);
      const y = unary(gpu, op, x);
      const got = await y.read();
      assertClose(got, Array.from(data, ref[op]), TOL, `${op} n=${n}`);
      x.dispose();
      y.dispose();
    }
  });
}

test('large inputs stay finite (no exp overflow)', async ({ gpu }) => {
  const x = Tensor.fromArray(gpu, [-1e4, -100, 100, 1e4], [4]);
  for (const op of UNARY_OPS) {
    const got = await unary(gpu, op, x).read();
    for (const v of got) assert.ok(Number.isFinite(v), `${op} gave ${v}`);
  }
});

test('grid beyond 65535 workgroups (2-D dispatch)', async ({ gpu }) => {
  const n = 65536 * 256 + 3;
  const data = randomArray(n, 3);
  const x = Tensor.fromArray(gpu, data, [n]);
  const got = await unary(gpu, 'relu', x).read();
  for (const i of [0, 1, 65535 * 256, n - 2, n - 1]) assert.is(got[i], Math.max(0, data[i]), `element ${i}`);
});

test('rejects wrong dtype, mismatched output and unknown op', async ({ gpu }) => {
  const x = Tensor.fromArray(gpu, [1, 2, 3], [3], 'i32');
  await assertThrows(() => unary(gpu, 'relu', x), /unary\.relu/, /f32/, /i32/);
  const f = Tensor.fromArray(gpu, [1, 2, 3], [3]);
  await assertThrows(() => unary(gpu, 'gelu', f, Tensor.empty(gpu, [4])), /unary\.gelu/, /3 elements/, /4/);
  await assertThrows(() => unary(gpu, 'swish' as UnaryOp, f), /unknown activation 'swish'/);
});

test.run();
