import * as assert from 'uvu/assert';
import { Tensor, permute, slice, pad, concat } from '../src/node.js';
import * as ref from './ref/tensor-ops.js';
import { assertThrows, gpuSuite, randomArray, rng } from './util.js';

const test = gpuSuite('transform');

// Data movement copies bits: results must equal the reference exactly.
async function expectExact(t: Tensor, want: { data: ArrayLike<number>; shape: readonly number[] }, label: string): Promise<void> {
  assert.equal([...t.shape], [...want.shape], `${label}: shape`);
  const got = await t.read();
  assert.is(got.length, want.data.length, `${label}: length`);
  for (let i = 0; i < got.length; i++) {
    if (!Object.is(got[i], Math.fround(want.data[i]))) assert.unreachable(`${label}: element ${i} is ${got[i]}, expected ${want.data[i]}`);
  }
}

function randomTensor(gpu: Parameters<typeof Tensor.empty>[0], shape: number[], seed: number): { t: Tensor; data: Float32Array } {
  const data = randomArray(ref.numel(shape), seed, -100, 100);
  return { t: Tensor.fromArray(gpu, data, shape), data };
}

function shuffled(n: number, seed: number): number[] {
  const r = rng(seed);
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

test('permute: head split, NCHW↔NHWC, transposes (tiled path) and general orders', async ({ gpu }) => {
  const cases: Array<[number[], number[]]> = [
    [[1], [0]],
    [[7, 5], [1, 0]], // tiled, one partial tile
    [[65, 33], [1, 0]], // tiled, partial edge tiles both ways
    [[3, 37, 53], [0, 2, 1]], // batched tiled
    [[1, 1000, 700], [0, 2, 1]], // large tiled
    [[2, 197, 12, 64], [0, 2, 1, 3]], // attention head split
    [[2, 12, 197, 64], [0, 2, 1, 3]], // head merge
    [[2, 3, 17, 19], [0, 2, 3, 1]], // NCHW → NHWC
    [[2, 17, 19, 3], [0, 3, 1, 2]], // NHWC → NCHW
    [[2, 3, 4, 5, 6], [4, 2, 0, 3, 1]],
    [[3, 1, 5, 1, 7], [3, 4, 0, 2, 1]],
    [[2, 3, 2, 3, 2, 3, 2, 3], shuffled(8, 9)],
    [[5, 7, 11], [-1, 0, -2]],
    [[1, 3, 7, 2, 7, 37], [0, 1, 3, 2, 4, 5]], // window partition: merged inner axis of 259, several runs
  ];
  for (const [shape, dims] of cases) {
    const { t, data } = randomTensor(gpu, shape, ref.numel(shape));
    const y = permute(gpu, t, dims);
    const norm = dims.map((d) => (d < 0 ? d + shape.length : d));
    await expectExact(y, ref.permute(data, shape, norm), `permute [${shape}] by [${dims}]`);
    t.dispose();
    y.dispose();
  }
});

test('slice: steps, negative and clamped bounds, ±Infinity, large CLS drop', async ({ gpu }) => {
  const cases: Array<[number[], number[], number[], number[] | undefined]> = [
    [[1], [0], [1], undefined],
    [[10], [2], [8], [3]],
    [[10], [-3], [-1], undefined],
    [[10], [-100], [100], [4]],
    [[5, 7, 11], [1, 0, 2], [4, 7, -1], [2, 3, 5]],
    [[5, 7, 11], [0, -Infinity, 3], [Infinity, 7, 4], undefined],
    [[2, 197, 768], [0, 1, 0], [2, 197, 768], undefined],
    [[3, 4, 5, 6, 7], [1, 1, 1, 1, 1], [3, 4, 5, 6, 7], [1, 2, 1, 2, 3]],
  ];
  for (const [shape, starts, ends, steps] of cases) {
    const { t, data } = randomTensor(gpu, shape, ref.numel(shape) + 1);
    const y = slice(gpu, t, starts, ends, steps);
    await expectExact(y, ref.slice(data, shape, starts, ends, steps ?? shape.map(() => 1)), `slice [${shape}] ${starts}:${ends}:${steps}`);
  }
});

test('slice: an empty range gives an empty tensor (Python semantics)', async ({ gpu }) => {
  const { t } = randomTensor(gpu, [4, 6], 3);
  const y = slice(gpu, t, [0, 5], [4, 2]);
  assert.equal([...y.shape], [4, 0]);
  assert.is((await y.read()).length, 0);
  assert.equal([...slice(gpu, t, [9, 0], [12, 6]).shape], [0, 6]);
});

test('pad: per-axis before/after, values, conv-style NCHW padding, empty input axis', async ({ gpu }) => {
  const cases: Array<[number[], Array<[number, number]>, number | undefined]> = [
    [[1], [[0, 0]], undefined],
    [[3, 5], [[1, 2], [0, 3]], undefined],
    [[3, 5], [[0, 0], [4, 1]], -7.5],
    [[1, 3, 7, 7], [[0, 0], [0, 0], [1, 1], [1, 1]], undefined],
    [[2, 3, 13], [[1, 0], [2, 3], [0, 5]], 0.25],
    [[0, 3], [[1, 1], [0, 0]], 9],
    [[2, 197, 64], [[0, 0], [0, 59], [0, 0]], undefined],
    // A padded innermost axis longer than a CPU run (shaders/transform.wgsl RUN), last run partial.
    [[2, 5, 70], [[0, 0], [1, 0], [3, 40]], -1],
    [[1, 10, 10, 35], [[0, 0], [0, 4], [0, 4], [0, 0]], undefined], // window padding
  ];
  for (const [shape, pads, value] of cases) {
    const { t, data } = randomTensor(gpu, shape, ref.numel(shape) + 2);
    const y = pad(gpu, t, pads, value === undefined ? {} : { value });
    await expectExact(y, ref.pad(data, shape, pads, value ?? 0), `pad [${shape}] by ${JSON.stringify(pads)}`);
  }
});

test('concat: axes 0, middle and -1, one to five inputs, zero-length parts, CLS + patches', async ({ gpu }) => {
  const cases: Array<[number[][], number]> = [
    [[[1]], 0],
    [[[3, 4], [5, 4]], 0],
    [[[2, 3, 5], [2, 1, 5], [2, 7, 5]], 1],
    [[[2, 3, 5], [2, 3, 1], [2, 3, 0], [2, 3, 13], [2, 3, 2]], -1],
    [[[1, 1, 768], [1, 196, 768]], 1],
  ];
  for (const [shapes, axis] of cases) {
    const parts = shapes.map((s, k) => randomTensor(gpu, s, k * 31 + ref.numel(s)));
    const y = concat(gpu, parts.map((p) => p.t), axis);
    const ax = axis < 0 ? axis + shapes[0].length : axis;
    await expectExact(y, ref.concat(parts.map((p, k) => ({ data: p.data, shape: shapes[k] })), ax), `concat ${JSON.stringify(shapes)} axis ${axis}`);
  }
});

test('i32 and u32 pass through permute, slice, pad and concat bit for bit', async ({ gpu }) => {
  const shape = [3, 4, 5];
  const data = Int32Array.from({ length: 60 }, (_, i) => (i - 30) * 71_000_001);
  const x = Tensor.fromArray(gpu, data, shape, 'i32');
  const p = permute(gpu, x, [2, 0, 1]);
  assert.is(p.dtype, 'i32');
  assert.equal(Array.from(await p.read()), ref.permute(data, shape, [2, 0, 1]).data);
  assert.equal(Array.from(await slice(gpu, x, [1, 0, -3], [3, 4, 5], [1, 2, 1]).read()), ref.slice(data, shape, [1, 0, -3], [3, 4, 5], [1, 2, 1]).data);
  const pads: Array<[number, number]> = [[1, 0], [0, 2], [1, 1]];
  assert.equal(Array.from(await pad(gpu, x, pads, { value: -2147483648 }).read()), ref.pad(data, shape, pads, -2147483648).data);
  assert.equal(Array.from(await concat(gpu, [x, x], 1).read()), ref.concat([{ data, shape }, { data, shape }], 1).data);
  const u = Uint32Array.of(0xffffffff, 0x80000000, 7, 0);
  const tu = permute(gpu, Tensor.fromArray(gpu, u, [2, 2], 'u32'), [1, 0]);
  assert.equal(Array.from(await tu.read()), [0xffffffff, 7, 0x80000000, 0]);
});

test('writes into out', async ({ gpu }) => {
  const { t, data } = randomTensor(gpu, [4, 6], 5);
  const out = Tensor.empty(gpu, [6, 4]);
  assert.is(permute(gpu, t, [1, 0], out), out);
  await expectExact(out, ref.permute(data, [4, 6], [1, 0]), 'permute into out');
});

test('input checks name the op and the offending values', async ({ gpu }) => {
  const x = Tensor.empty(gpu, [2, 3, 4]);
  await assertThrows(() => permute(gpu, x, [0, 1]), /permute/, /2 entries/, /rank 3/);
  await assertThrows(() => permute(gpu, x, [0, 1, 1]), /permute/, /\[0, 1, 1\]/, /not a permutation of 0\.\.2/);
  await assertThrows(() => permute(gpu, x, [0, 1, 3]), /permute/, /not a permutation/);
  await assertThrows(() => permute(gpu, Tensor.empty(gpu, [2, 2], 'f16'), [1, 0]), /permute/, /f16/);
  await assertThrows(() => permute(gpu, x, [2, 1, 0], Tensor.empty(gpu, [5])), /permute/, /24 elements/, /\[5\]/);
  const big = Tensor.empty(gpu, [2, 2, 2, 2, 2, 2, 2, 2, 2]);
  await assertThrows(() => permute(gpu, big, [8, 7, 6, 5, 4, 3, 2, 1, 0]), /permute/, /9 strided axes/, /at most 8/);
  await assertThrows(() => slice(gpu, x, [0, 0], [1, 1]), /slice/, /starts \[0, 0\]/, /rank 3/);
  await assertThrows(() => slice(gpu, x, [0, 0, 0], [1, 1, 1], [1, 0, 1]), /slice/, /axis 1/, /step 0/);
  await assertThrows(() => slice(gpu, x, [0, 0.5, 0], [1, 1, 1]), /slice/, /axis 1/, /0\.5/);
  await assertThrows(() => pad(gpu, x, [[0, 0], [1, 1]]), /pad/, /2 entries/, /rank 3/);
  await assertThrows(() => pad(gpu, x, [[0, 0], [1, -1], [0, 0]]), /pad/, /pads\[1\]/, /-1/);
  await assertThrows(() => pad(gpu, Tensor.empty(gpu, [2], 'i32'), [[1, 1]], { value: 0.5 }), /pad/, /0\.5/, /i32/);
  await assertThrows(() => concat(gpu, [], 0), /concat/, /at least one/);
  await assertThrows(() => concat(gpu, [x, Tensor.empty(gpu, [2, 5, 5])], 1), /concat/, /tensor 1 \[2, 5, 5\]/, /tensor 0 \[2, 3, 4\]/, /off axis 1/);
  await assertThrows(() => concat(gpu, [x, Tensor.empty(gpu, [2, 3])], 0), /concat/, /tensor 1 \[2, 3\]/);
  await assertThrows(() => concat(gpu, [x, Tensor.empty(gpu, [2, 3, 4], 'i32')], 0), /concat/, /dtypes differ/, /tensor 1/, /i32/, /f32/);
  await assertThrows(() => concat(gpu, [x], 3), /concat/, /axis 3/, /rank 3/);
});

test.run();
