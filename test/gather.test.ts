import * as assert from 'uvu/assert';
import { Tensor, gather } from '../src/node.js';
import * as ref from './ref/tensor-ops.js';
import { assertThrows, gpuSuite, randomArray, rng } from './util.js';

const test = gpuSuite('gather');

function randomIndices(n: number, vocab: number, seed: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * vocab));
}

// Gather copies bits: results must equal the reference exactly.
test('embedding lookup matches the reference over table and index shapes', async ({ gpu }) => {
  const cases: Array<[number[], number[]]> = [
    [[1, 1], [1]],
    [[7], [5]], // rank-1 table: scalar rows
    [[1000, 64], [2, 77]], // CLIP-like token ids
    [[50, 3, 5], [7]],
    [[13, 17], [3, 1, 2]],
    [[5, 4], []], // scalar index → one row
    [[97, 512], [1, 77]],
  ];
  for (const [tableShape, idxShape] of cases) {
    const data = randomArray(ref.numel(tableShape), tableShape[0], -3, 3);
    const idx = randomIndices(ref.numel(idxShape), tableShape[0], idxShape.length + 7);
    const table = Tensor.fromArray(gpu, data, tableShape);
    const indices = Tensor.fromArray(gpu, idx, idxShape, 'i32');
    const y = gather(gpu, table, indices);
    assert.equal([...y.shape], [...idxShape, ...tableShape.slice(1)], `shape for table [${tableShape}] indices [${idxShape}]`);
    assert.equal(Array.from(await y.read()), ref.gather(data, tableShape, idx).map(Math.fround), `table [${tableShape}] indices [${idxShape}]`);
  }
});

// WebGPU bounds-checks every binding (an out-of-bounds read returns 0 or some
// in-bounds value), so on lavapipe this passes even without the kernel's
// guard; it pins the documented behaviour on devices that clamp instead.
test('out-of-range indices (negative, = V, huge) give rows of zeros', async ({ gpu }) => {
  const data = randomArray(6 * 3, 2, 1, 2); // no zeros in range, so a zero row is unambiguous
  const table = Tensor.fromArray(gpu, data, [6, 3]);
  const idx = Int32Array.of(0, -1, 6, 5, 2147483647, -2147483648, 3);
  const y = await gather(gpu, table, Tensor.fromArray(gpu, idx, [7], 'i32')).read();
  assert.equal(Array.from(y), ref.gather(data, [6, 3], idx).map(Math.fround));
  assert.equal(Array.from(y.slice(3, 6)), [0, 0, 0]);
});

test('i32 tables pass through bit for bit; writes into out', async ({ gpu }) => {
  const data = Int32Array.from({ length: 40 }, (_, i) => (i - 20) * 99_999_989);
  const table = Tensor.fromArray(gpu, data, [10, 4], 'i32');
  const idx = Int32Array.of(9, 0, 3, 3, 11);
  const out = Tensor.empty(gpu, [5, 4], 'i32');
  assert.is(gather(gpu, table, Tensor.fromArray(gpu, idx, [5], 'i32'), { out }), out);
  assert.equal(Array.from(await out.read()), ref.gather(data, [10, 4], idx));
});

test('rejects non-i32 indices, f16 or rank-0 tables and a wrong out', async ({ gpu }) => {
  const table = Tensor.empty(gpu, [4, 2]);
  await assertThrows(() => gather(gpu, table, Tensor.fromArray(gpu, [1, 2], [2])), /gather/, /indices \[2\]/, /must be i32/, /f32/);
  await assertThrows(() => gather(gpu, table, Tensor.fromArray(gpu, [1], [1], 'u32')), /gather/, /must be i32/, /u32/);
  await assertThrows(() => gather(gpu, Tensor.empty(gpu, []), Tensor.fromArray(gpu, [0], [1], 'i32')), /gather/, /at least one axis/);
  await assertThrows(() => gather(gpu, Tensor.empty(gpu, [4, 2], 'f16'), Tensor.fromArray(gpu, [0], [1], 'i32')), /gather/, /f16/);
  const idx = Tensor.fromArray(gpu, [0, 1, 2], [3], 'i32');
  await assertThrows(() => gather(gpu, table, idx, { out: Tensor.empty(gpu, [3, 2], 'i32') }), /gather/, /out must be f32/, /i32/);
});

test.run();
