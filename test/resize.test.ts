import * as assert from 'uvu/assert';
import { Tensor, resize, type ResizeOptions } from '../src/node.js';
import * as ref from './ref/tensor-ops.js';
import { assertClose, assertThrows, gpuSuite, randomArray } from './util.js';

const test = gpuSuite('resize');

// Nearest copies one source value: exact. Bilinear blends in f32 (two lerps of
// values in [-1, 1], each a few roundings, plus λ possibly fused differently):
// a few ulp of 1.
const EXACT = { atol: 0, rtol: 0 };
const BILINEAR_TOL = { atol: 1e-6, rtol: 0 };

const SQUARE = [1, 2, 3, 4]; // [[1, 2], [3, 4]] as [1, 1, 2, 2]

test('2×2 → 4×4 matches hand-computed PyTorch values', async ({ gpu }) => {
  const x = Tensor.fromArray(gpu, SQUARE, [1, 1, 2, 2]);
  // bilinear, align_corners=False: ratio 2/4 = 0.5, src = max(0.5·(dst + 0.5) − 0.5, 0)
  // = 0, 0.25, 0.75, 1.25 → (i0, λ) = (0, 0), (0, .25), (0, .75), (1 clamped, i1 = 1):
  // row 0 = [1, 1.25, 1.75, 2]; rows blend with the same weights down the columns.
  // F.interpolate(torch.tensor([[[[1., 2.], [3., 4.]]]]), size=(4, 4), mode='bilinear') gives:
  const bilinear = [1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4];
  assertClose(await resize(gpu, x, { size: [4, 4], mode: 'bilinear' }).read(), bilinear, EXACT, 'bilinear');
  // align_corners=True: ratio (2−1)/(4−1) = 1/3, src = dst/3, so y = 1 + x/3 + 2y/3.
  const aligned = [1, 4 / 3, 5 / 3, 2, 5 / 3, 2, 7 / 3, 8 / 3, 7 / 3, 8 / 3, 3, 10 / 3, 3, 10 / 3, 11 / 3, 4];
  assertClose(await resize(gpu, x, { size: [4, 4], mode: 'bilinear', alignCorners: true }).read(), aligned, { atol: 1e-6, rtol: 0 }, 'align_corners');
  // nearest: out = 2·in → src = dst >> 1.
  const nearest = [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4];
  assertClose(await resize(gpu, x, { size: [4, 4], mode: 'nearest' }).read(), nearest, EXACT, 'nearest');
  // nearest 5 → 3 along W: ratio f32(5/3), src = floor(dst · 1.6666666) = 0, 1, 3.
  const row = Tensor.fromArray(gpu, [10, 11, 12, 13, 14], [1, 1, 1, 5]);
  assert.equal(Array.from(await resize(gpu, row, { size: [1, 3], mode: 'nearest' }).read()), [10, 11, 13]);
});

interface Case {
  shape: [number, number, number, number];
  opts: ResizeOptions;
}

const SHAPES: Array<[[number, number, number, number], [number, number]]> = [
  [[1, 1, 1, 1], [1, 1]],
  [[1, 1, 1, 1], [3, 5]],
  [[1, 1, 7, 7], [3, 3]], // 7 → 3
  [[1, 1, 5, 5], [12, 12]], // 5 → 12
  [[2, 3, 13, 17], [6, 31]],
  [[1, 2, 9, 4], [9, 8]],
  [[1, 1, 31, 29], [1, 97]],
];
const SCALES: Array<[[number, number, number, number], [number, number]]> = [
  [[1, 1, 7, 5], [1.5, 0.7]],
  [[2, 2, 11, 6], [2.3, 3.1]],
  [[1, 1, 9, 9], [0.5, 0.5]],
  [[1, 1, 7, 7], [1.0001, 1.0001]], // out == in: nearest short-cuts to the identity
  [[1, 1, 10, 3], [0.35, 2]],
  [[1, 1, 5, 4], [2.0000001, 2.0000001]], // out == 2·in: nearest short-cuts to dst >> 1, not dst · f32(1/scale)
];

const cases: Case[] = [];
for (const mode of ['nearest', 'bilinear'] as const) {
  for (const alignCorners of mode === 'bilinear' ? [false, true] : [undefined]) {
    for (const [shape, size] of SHAPES) cases.push({ shape, opts: { size, mode, alignCorners } });
    for (const [shape, scale] of SCALES) cases.push({ shape, opts: { scale, mode, alignCorners } });
  }
}

test('random inputs match the reference: sizes and scale factors, up and down, both modes', async ({ gpu }) => {
  for (const { shape, opts } of cases) {
    const data = randomArray(ref.numel(shape), ref.numel(shape) + 17);
    const x = Tensor.fromArray(gpu, data, shape);
    const y = resize(gpu, x, opts);
    const [outH, outW] = opts.size ?? [Math.floor(shape[2] * opts.scale![0]), Math.floor(shape[3] * opts.scale![1])];
    assert.equal([...y.shape], [shape[0], shape[1], outH, outW], `shape ${JSON.stringify(opts)}`);
    const want = ref.resize(data, shape, outH, outW, { mode: opts.mode, alignCorners: opts.alignCorners, scale: opts.scale as [number, number] | undefined });
    assertClose(await y.read(), want, opts.mode === 'nearest' ? EXACT : BILINEAR_TOL, `[${shape}] ${JSON.stringify(opts)}`);
    x.dispose();
    y.dispose();
  }
});

test('SAM-style upsampling: 256×256 → 1024×1024 and 64×64 → 256×256, one channel', async ({ gpu }) => {
  for (const [inLen, outLen] of [[256, 1024], [64, 256]]) {
    const shape = [1, 1, inLen, inLen];
    const data = randomArray(inLen * inLen, inLen);
    const y = resize(gpu, Tensor.fromArray(gpu, data, shape), { size: [outLen, outLen], mode: 'bilinear' });
    assertClose(await y.read(), ref.resize(data, shape, outLen, outLen, { mode: 'bilinear' }), BILINEAR_TOL, `${inLen} → ${outLen}`);
  }
});

test('input checks: rank, dtype, mode, size/scale, positive sizes, alignCorners with nearest, out', async ({ gpu }) => {
  const x = Tensor.empty(gpu, [1, 2, 4, 4]);
  await assertThrows(() => resize(gpu, Tensor.empty(gpu, [2, 4, 4]), { size: [2, 2], mode: 'nearest' }), /resize/, /rank 4/, /\[2, 4, 4\]/, /rank 3/);
  await assertThrows(() => resize(gpu, Tensor.empty(gpu, [1, 1, 2, 2], 'i32'), { size: [2, 2], mode: 'nearest' }), /resize/, /f32/, /i32/);
  await assertThrows(() => resize(gpu, x, { size: [2, 2], mode: 'bicubic' as 'nearest' }), /resize/, /mode/, /bicubic/);
  await assertThrows(() => resize(gpu, x, { mode: 'nearest' }), /resize/, /exactly one of size and scale/);
  await assertThrows(() => resize(gpu, x, { size: [2, 2], scale: [2, 2], mode: 'nearest' }), /resize/, /exactly one/);
  await assertThrows(() => resize(gpu, x, { size: [0, 3], mode: 'bilinear' }), /resize/, /size \[0,3\]/, /positive/);
  await assertThrows(() => resize(gpu, x, { size: [2.5, 3], mode: 'bilinear' }), /resize/, /2\.5/, /positive integers/);
  await assertThrows(() => resize(gpu, x, { scale: [-1, 2], mode: 'bilinear' }), /resize/, /scale \[-1,2\]/, /positive/);
  await assertThrows(() => resize(gpu, x, { scale: [0.1, 1], mode: 'bilinear' }), /resize/, /output size \[0, 4\]/, /\[4, 4\]/, /positive/);
  await assertThrows(() => resize(gpu, Tensor.empty(gpu, [1, 1, 0, 3]), { size: [2, 2], mode: 'nearest' }), /resize/, /\[0, 3\]/, /positive/);
  await assertThrows(() => resize(gpu, x, { size: [2, 2], mode: 'nearest', alignCorners: true }), /resize/, /alignCorners/, /bilinear/, /nearest/);
  await assertThrows(() => resize(gpu, x, { size: [2, 2], mode: 'nearest', out: Tensor.empty(gpu, [1, 2, 3, 3]) }), /resize/, /8 elements/, /\[1, 2, 3, 3\]/);
});

test.run();
