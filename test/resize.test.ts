import * as assert from 'uvu/assert';
import { Tensor, graphOps, resize, resizeAxisMatrix, type ResizeOptions } from '../src/node.js';
import { checkOp, opCase } from './ref/op-check.js';
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

// The graph op's backward is dx = Rhᵀ·dy·Rw (two matmuls with resizeAxisMatrix's
// matrices). Sums of at most Ho·Wo ≤ 48 weighted terms of r ~ N(0, 1) per
// element; RESIZE_GRAD_TOL is ~10× the worst measured on lavapipe: forward
// 4.9e-8, dx 1.8e-7 (on gradients up to 5.2).
const RESIZE_GRAD_TOL = { atol: 2e-6, rtol: 0 };

opCase(test, 'graph op: forward and dx (Rhᵀ·dy·Rw) match the float64 reference and its finite differences, both modes, up and down', { resize: 'gradient' }, async ({ gpu }) => {
  const cases: Array<{ shape: [number, number, number, number]; size: [number, number]; mode: 'nearest' | 'bilinear'; alignCorners?: boolean }> = [
    { shape: [1, 2, 3, 4], size: [6, 8], mode: 'nearest' }, // SAM2's FPN: 2× nearest
    { shape: [2, 1, 5, 4], size: [3, 7], mode: 'nearest' },
    { shape: [1, 2, 4, 3], size: [7, 2], mode: 'bilinear' },
    { shape: [1, 1, 5, 6], size: [9, 4], mode: 'bilinear', alignCorners: true },
    { shape: [1, 1, 1, 3], size: [2, 1], mode: 'bilinear', alignCorners: true }, // one row in, one column out
  ];
  for (const { shape, size, mode, alignCorners } of cases) {
    await checkOp(gpu, `resize [${shape}] → ${size.join('×')} ${mode}${alignCorners ? ' alignCorners' : ''}`, {
      inputs: { x: { shape, data: randomArray(ref.numel(shape), ref.numel(shape) + 5), grad: true } },
      build: (g, v) => graphOps.resize(g, v.x, size, { mode, alignCorners }),
      ref: (v) => ref.resize(v.x, shape, size[0], size[1], { mode, alignCorners }),
      tol: RESIZE_GRAD_TOL,
    });
  }
});

test('resizeAxisMatrix: rows of weights that sum to 1; column j is the kernel\'s resize of the j-th unit vector (bilinear: up to λ rounded in a fused multiply-add)', async ({ gpu }) => {
  for (const [inLen, outLen, mode, alignCorners] of [[3, 6, 'nearest', false], [5, 3, 'nearest', false], [4, 7, 'bilinear', false], [6, 4, 'bilinear', true]] as const) {
    const m = resizeAxisMatrix(inLen, outLen, mode, alignCorners);
    for (let o = 0; o < outLen; o++) {
      const row = m.subarray(o * inLen, (o + 1) * inLen);
      assertClose([row.reduce((a, b) => a + b, 0)], [1], { atol: 1e-7, rtol: 0 }, `${mode} ${inLen}→${outLen} row ${o} sums to 1`);
    }
    // Column j of the matrix is the resize of the j-th unit vector along H.
    for (let j = 0; j < inLen; j++) {
      const x = Tensor.fromArray(gpu, Array.from({ length: inLen }, (_, i) => (i === j ? 1 : 0)), [1, 1, inLen, 1]);
      const y = resize(gpu, x, { size: [outLen, 1], mode, alignCorners: mode === 'bilinear' ? alignCorners : undefined });
      assertClose(await y.read(), Array.from({ length: outLen }, (_, o) => m[o * inLen + j]), mode === 'nearest' ? EXACT : BILINEAR_TOL, `${mode} ${inLen}→${outLen} column ${j}`);
      x.dispose();
      y.dispose();
    }
  }
  await assertThrows(() => resizeAxisMatrix(0, 3, 'nearest'), /resizeAxisMatrix/, /in 0/);
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
