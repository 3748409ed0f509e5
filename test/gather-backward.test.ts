import * as assert from 'uvu/assert';
import { Tensor, gatherBackward, graphOps as G } from '../src/node.js';
import { checkOp, opCase } from './ref/op-check.js';
import * as ref from './ref/tensor-ops.js';
import { assertClose, assertThrows, gpuSuite, randomArray, rng } from './util.js';

const test = gpuSuite('gatherBackward');

function randomIndices(n: number, vocab: number, seed: number, outOfRange = false): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: n }, (_, k) => (outOfRange && k % 5 === 3 ? (k % 2 ? -1 : vocab) : Math.floor(r() * vocab)));
}

// fp32 sums of at most n terms of O(1) values, in the same order as the reference: 1e-5.
const TOL = { atol: 1e-5, rtol: 1e-5 };

test('scatter-add matches the float64 reference, repeated and out-of-range indices included', async ({ gpu }) => {
  const cases: Array<[number, number[], number[], boolean]> = [
    // vocab, indices shape, row shape, with out-of-range indices
    [1, [1], [1], false],
    [7, [5], [], false], // scalar rows
    [3, [2, 11], [13], true], // many repeats of few rows
    [1000, [2, 77], [64], false], // CLIP-like token ids
    [97, [3, 1, 2], [5, 3], true],
    [50, [300], [2], false],
  ];
  for (const [vocab, idxShape, rest, oob] of cases) {
    const n = ref.numel(idxShape);
    const row = ref.numel(rest);
    const idx = randomIndices(n, vocab, n + vocab, oob);
    const dyData = randomArray(n * row, vocab + 3, -2, 2);
    const dy = Tensor.fromArray(gpu, dyData, [...idxShape, ...rest]);
    const indices = Tensor.fromArray(gpu, idx, idxShape, 'i32');
    const dt = gatherBackward(gpu, dy, indices, vocab);
    assert.equal([...dt.shape], [vocab, ...rest]);
    assertClose(await dt.read(), ref.gatherBackward(dyData, idx, vocab, row), TOL, `vocab ${vocab} indices [${idxShape}] rows [${rest}]`);
    // Deterministic: a second run gives the same bits.
    const again = gatherBackward(gpu, dy, indices, vocab);
    assert.equal(Array.from(await again.read()), Array.from(await dt.read()), 'bitwise repeatable');
    for (const t of [dy, indices, dt, again]) t.dispose();
  }
});

opCase(test, 'autograd: the embedding table gets the gradient of sum(gather(table, idx) · r), checked by finite differences', { gather: 'gradient', gatherBackward: 'forward' }, async ({ gpu }) => {
  const [vocab, dim, n] = [6, 4, 9];
  const idx = randomIndices(n, vocab, 2);
  await checkOp(gpu, 'embedding', {
    inputs: { table: { shape: [vocab, dim], data: randomArray(vocab * dim, 1, -1, 1), grad: true }, idx: { shape: [n], data: idx, dtype: 'i32' } },
    build: (g, v) => G.gather(g, v.table, v.idx),
    ref: (x) => ref.gather(x.table, [vocab, dim], idx),
    // The loss is linear in the table, so central differences are exact up to float64 rounding;
    // the forward copies rows (exact). ~10× the dtable error measured on lavapipe, 6.0e-8 (on values up to 2).
    tol: { atol: 6e-7, rtol: 0 },
  });
});

test('bad inputs throw errors naming the op and the values', async ({ gpu }) => {
  const dy = Tensor.fromArray(gpu, [1, 2, 3, 4], [2, 2]);
  await assertThrows(() => gatherBackward(gpu, dy, Tensor.fromArray(gpu, [0, 1], [2]), 3), /gatherBackward/, /must be i32/, /f32/);
  await assertThrows(() => gatherBackward(gpu, dy, Tensor.fromArray(gpu, [0, 1, 2], [3], 'i32'), 3), /gatherBackward/, /\[2, 2\]/, /\[3\]/);
  await assertThrows(() => gatherBackward(gpu, dy, Tensor.fromArray(gpu, [0, 1], [2], 'i32'), 0), /gatherBackward/, /vocab/, /got 0/);
});

test.run();
