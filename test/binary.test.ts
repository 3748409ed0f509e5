import * as assert from 'uvu/assert';
import { Tensor, add, sub, mul, div, broadcastShapes } from '../src/node.js';
import * as ref from './ref/tensor-ops.js';
import { assertClose, assertThrows, gpuSuite, randomArray } from './util.js';

const test = gpuSuite('binary');

// add/sub/mul are correctly rounded in f32: within half an ulp (2^-24 relative) of
// the float64 result of the same f32 inputs. WGSL allows 2.5 ulp for division.
const TOL_EXACT = { atol: 0, rtol: 2 ** -24 };
const TOL_DIV = { atol: 0, rtol: 2.5 * 2 ** -23 };

const OPS = {
  add: { run: add, f: (u: number, v: number) => u + v, tol: TOL_EXACT },
  sub: { run: sub, f: (u: number, v: number) => u - v, tol: TOL_EXACT },
  mul: { run: mul, f: (u: number, v: number) => u * v, tol: TOL_EXACT },
  div: { run: div, f: (u: number, v: number) => u / v, tol: TOL_DIV },
};

const CASES: Array<[number[], number[]]> = [
  [[1], [1]],
  [[7], [7]],
  [[2, 3, 4], [4]],
  [[2, 1, 4], [1, 3, 1]],
  [[1], [5, 7]],
  [[5, 7], []],
  [[13, 1], [1, 11]],
  [[7, 1, 13], [1, 11, 1]],
  [[3, 1, 5, 1, 2, 1], [1, 4, 1, 6, 1, 3]],
  [[2, 1, 3, 1, 2, 1, 3, 1], [1, 2, 1, 3, 1, 2, 1, 2]],
  [[2, 197, 768], [768]],
  [[4, 1, 1], [4, 64, 255]],
];

test('broadcastShapes follows numpy', () => {
  assert.equal(broadcastShapes([2, 3, 4], [4]), [2, 3, 4]);
  assert.equal(broadcastShapes([2, 1, 4], [1, 3, 1]), [2, 3, 4]);
  assert.equal(broadcastShapes([], [3, 1]), [3, 1]);
  assert.equal(broadcastShapes([0, 1], [1, 5]), [0, 5]);
  assert.equal(broadcastShapes([8, 1, 6, 1], [7, 1, 5]), [8, 7, 6, 5]);
});

for (const [name, op] of Object.entries(OPS)) {
  test(`${name} matches the float64 reference over broadcast shapes`, async ({ gpu }) => {
    for (const [sa, sb] of CASES) {
      const na = ref.numel(sa);
      const nb = ref.numel(sb);
      const da = randomArray(na, na + 3, -4, 4);
      // Divisors kept away from 0: magnitudes in [0.25, 2], either sign.
      const db = name === 'div' ? randomArray(nb, nb + 5, 0.25, 2).map((v, i) => (i % 2 ? -v : v)) : randomArray(nb, nb + 5, -4, 4);
      const a = Tensor.fromArray(gpu, da, sa);
      const b = Tensor.fromArray(gpu, db, sb);
      const y = op.run(gpu, a, b);
      const want = ref.broadcastBinary(da, sa, db, sb, op.f);
      assert.equal([...y.shape], want.shape, `${name} ${sa} ${sb} shape`);
      assertClose(await y.read(), want.data, op.tol, `${name} [${sa}] with [${sb}]`);
      // Swapped operands exercise broadcasting on the other side.
      const z = op.run(gpu, b, a);
      assertClose(await z.read(), ref.broadcastBinary(db, sb, da, sa, op.f).data, op.tol, `${name} [${sb}] with [${sa}]`);
      for (const t of [a, b, y, z]) t.dispose();
    }
  });
}

test('writes into out; empty broadcast gives an empty tensor', async ({ gpu }) => {
  const a = Tensor.fromArray(gpu, [1, 2, 3, 4, 5, 6], [2, 3]);
  const b = Tensor.fromArray(gpu, [10, 20, 30], [3]);
  const out = Tensor.empty(gpu, [2, 3]);
  assert.is(add(gpu, a, b, out), out);
  assert.equal(Array.from(await out.read()), [11, 22, 33, 14, 25, 36]);
  const e = mul(gpu, Tensor.empty(gpu, [0, 3]), b);
  assert.equal([...e.shape], [0, 3]);
  assert.is((await e.read()).length, 0);
});

test('rejects incompatible shapes, dtype mismatch, non-f32, bad or aliased out, too many axes', async ({ gpu }) => {
  const a = Tensor.fromArray(gpu, randomArray(12, 1), [3, 4]);
  const b = Tensor.fromArray(gpu, randomArray(3, 2), [3]);
  await assertThrows(() => add(gpu, a, b), /add/, /\[3, 4\]/, /\[3\]/, /incompatible/);
  await assertThrows(() => broadcastShapes([2, 3], [4, 3]), /broadcastShapes/, /\[2, 3\]/, /\[4, 3\]/);
  const ai = Tensor.fromArray(gpu, [1, 2, 3], [3], 'i32');
  await assertThrows(() => sub(gpu, b, ai), /sub/, /dtypes differ/, /f32/, /i32/);
  await assertThrows(() => mul(gpu, ai, ai), /mul/, /expected f32/, /i32/);
  await assertThrows(() => div(gpu, a, a, Tensor.empty(gpu, [3, 5])), /div/, /12 elements/, /\[3, 5\]/);
  await assertThrows(() => add(gpu, a, a, a), /add/, /shares its buffer with input 0/);
  // Nine axes that cannot merge (every other axis broadcast on alternating sides).
  const s1 = [2, 1, 2, 1, 2, 1, 2, 1, 2];
  const s2 = [1, 2, 1, 2, 1, 2, 1, 2, 1];
  await assertThrows(() => add(gpu, Tensor.empty(gpu, s1), Tensor.empty(gpu, s2)), /add/, /9 strided axes/, /at most 8/);
});

test.run();
