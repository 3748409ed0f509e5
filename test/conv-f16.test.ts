// Convolutions with f16 weights (stored as halves, issue 19): input, bias and
// output f32; the weights' halves widened to f32 as read, f32 accumulation
// (W_F16, shaders/lib/conv_weight.wgsl). Checked against the float64
// references of test/ref/conv.ts and test/ref/tinyvit.ts given the weights
// rounded to f16 by test/ref/half.ts (not src/half.ts, which the upload
// uses), so the only error left is the f32 arithmetic's. lavapipe, and every
// GPU the project targets, has `shader-f16`: these tests require it.
import * as assert from 'uvu/assert';
import { CONV_TILE_VARIANTS, Tensor, conv2d, convTranspose2d, depthwiseConv2dNhwc, type ConvTileVariant, type Gpu } from '../src/node.js';
import { gelu } from './ref/activations.js';
import * as ref from './ref/conv.js';
import { roundArrayToF16 } from './ref/half.js';
import { refDepthwiseConv2dNhwc } from './ref/tinyvit.js';
import { assertClose, assertThrows, gpuSuite, randomArray } from './util.js';

const test = gpuSuite('conv f16 weights');

// The f32 accumulation's error over a reduction of K products of values in
// [-1, 1) (K = Cg·KH·KW) grows like K·2^-24 (test/matmul-f16.test.ts says
// why): atol 8·K·2^-24 + 2e-6, rtol 2e-6 (gelu's erf approximation and the
// epilogue's rounding). Measured on lavapipe, max abs error: 1.6e-6 at K = 27,
// 1.3e-5 at K = 288, 1.0e-4 at K = 2304 ('MobileSAM-shaped convs'; atol
// 1.5e-5, 1.4e-4, 1.1e-3); the largest error / atol over every case here is
// logged by the last conv test (0.12). Rounding the weights to f16 moves a
// conv far more: 'tolerance sees the rounding' checks that.
function tolerance(K: number) {
  return { atol: 8 * Math.max(K, 1) * 2 ** -24 + 2e-6, rtol: 2e-6 };
}

/** The largest max-abs-error / atol over the cases run so far (logged by the last test). */
let worstRatio = 0;

/** assertClose at the tolerance for a reduction of K products; returns the max abs error and the atol. */
function checkClose(got: ArrayLike<number>, want: ArrayLike<number>, K: number, label: string): { err: number; atol: number } {
  const tol = tolerance(K);
  assertClose(got, want, tol, label);
  let err = 0;
  for (let i = 0; i < got.length; i++) err = Math.max(err, Math.abs(got[i] - want[i]));
  worstRatio = Math.max(worstRatio, err / tol.atol);
  return { err, atol: tol.atol };
}

type Shape4 = ref.Shape4;
type ConvCase = ref.ConvCase;
type Pair = [number, number];
const size = (s: readonly number[]) => s.reduce((p, d) => p * d, 1);

/** conv2d with the weights uploaded as f16 vs the float64 reference on f16-rounded weights; returns the max abs error and the atol. */
async function checkConv(gpu: Gpu, c: ConvCase, seed: number, variant?: ConvTileVariant): Promise<{ err: number; atol: number }> {
  const xs = randomArray(size(c.x), seed);
  const ws = randomArray(size(c.w), seed + 1);
  const bs = c.bias ? randomArray(c.w[0], seed + 2) : undefined;
  const x = Tensor.fromArray(gpu, xs, c.x);
  const w = Tensor.fromArray(gpu, ws, c.w, 'f16');
  const bias = bs ? Tensor.fromArray(gpu, bs, [c.w[0]]) : undefined;
  const opts = { stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups, activation: c.activation };
  try {
    const y = conv2d(gpu, x, w, { ...opts, bias, variant });
    const want = ref.conv2d(xs, c.x, roundArrayToF16(ws), c.w, { ...opts, bias: bs });
    assert.equal(y.shape, want.shape, `${c.name}: shape`);
    const got = await y.read();
    y.dispose();
    return checkClose(got, want.data, c.w[1] * c.w[2] * c.w[3], `conv2d f16 weight ${c.name}${variant ? ` (${variant})` : ''}`);
  } finally {
    for (const t of [x, w, bias]) t?.dispose();
  }
}

// Odd weight counts per output channel (so channels start at a word's high
// half), groups, stride, dilation, padding, partial tiles, every epilogue.
const CASES: ConvCase[] = [
  { name: '3×3 pad 1 O=70 (several column tiles), bias', x: [2, 5, 11, 13], w: [70, 5, 3, 3], padding: [1, 1], bias: true },
  { name: 'stride [2,3] dilation 2 groups 2, relu', x: [2, 6, 13, 17], w: [10, 3, 3, 2], stride: [2, 3], padding: [2, 1], dilation: [2, 2], groups: 2, bias: true, activation: 'relu' },
  { name: '1×1, primes, gelu', x: [1, 13, 7, 9], w: [17, 13, 1, 1], bias: true, activation: 'gelu' },
];

for (const variant of Object.keys(CONV_TILE_VARIANTS) as ConvTileVariant[]) {
  test(`conv2d variant ${variant}`, async ({ gpu }) => {
    for (const [i, c] of CASES.entries()) await checkConv(gpu, c, 100 * i + variant.length, variant);
  });
}

test('conv2d depthwise entry (one input channel per group), multiplier 2', async ({ gpu }) => {
  await checkConv(gpu, { name: 'depthwise 3×3 stride 2', x: [1, 3, 10, 11], w: [6, 1, 3, 3], groups: 3, stride: [2, 2], padding: [1, 1], bias: true }, 7);
  await checkConv(gpu, { name: 'depthwise 7×7 pad 3, gelu', x: [2, 24, 14, 14], w: [24, 1, 7, 7], groups: 24, padding: [3, 3], bias: true, activation: 'gelu' }, 9);
});

// MobileSAM's convs that keep the conv kernel (tinyvit.ts): the stem's
// 3×3 stride 2 pair and the neck's 3×3 256 → 256, on small maps, default variant.
const MOBILESAM_CASES: ConvCase[] = [
  { name: 'stem 3 → 32, 3×3/2, gelu', x: [1, 3, 64, 64], w: [32, 3, 3, 3], stride: [2, 2], padding: [1, 1], bias: true, activation: 'gelu' },
  { name: 'stem 32 → 64, 3×3/2', x: [1, 32, 32, 32], w: [64, 32, 3, 3], stride: [2, 2], padding: [1, 1], bias: true },
  { name: 'neck 256 → 256, 3×3', x: [1, 256, 8, 8], w: [256, 256, 3, 3], padding: [1, 1] },
];

test('MobileSAM-shaped convs, default variant: the error is the f32 accumulation', async ({ gpu }) => {
  const lines: string[] = [];
  for (const [i, c] of MOBILESAM_CASES.entries()) {
    const { err, atol } = await checkConv(gpu, c, 300 + i);
    lines.push(`${c.name}: ${err.toExponential(1)} (atol ${atol.toExponential(1)})`);
  }
  console.log(`  conv2d f16 weight max abs errors: ${lines.join('; ')}`);
});

test('convTranspose2d with f16 weights (conv2d backward dx through frozen f16 weights)', async ({ gpu }) => {
  for (const [i, c] of [
    { xs: [2, 6, 5, 7], ws: [6, 5, 3, 3], stride: [2, 2], padding: [1, 1], outputPadding: [1, 0], groups: 1 },
    { xs: [1, 4, 6, 5], ws: [4, 3, 3, 2], stride: [1, 2], padding: [0, 1], outputPadding: [0, 1], dilation: [2, 1], groups: 2 },
  ].entries()) {
    const xs = c.xs as Shape4;
    const ws = c.ws as Shape4;
    const xData = randomArray(size(xs), 400 + i);
    const wData = randomArray(size(ws), 410 + i);
    const bData = randomArray(ws[1] * c.groups, 420 + i);
    const x = Tensor.fromArray(gpu, xData, xs);
    const w = Tensor.fromArray(gpu, wData, ws, 'f16');
    const bias = Tensor.fromArray(gpu, bData, [ws[1] * c.groups]);
    const opts = { stride: c.stride as Pair, padding: c.padding as Pair, outputPadding: c.outputPadding as Pair, dilation: c.dilation as Pair | undefined, groups: c.groups };
    const y = convTranspose2d(gpu, x, w, { ...opts, bias });
    const want = ref.convTranspose2d(xData, xs, roundArrayToF16(wData), ws, { ...opts, bias: bData });
    assert.equal(y.shape, want.shape, `convTranspose2d case ${i}: shape`);
    // Each output sums at most C/groups·KH·KW products.
    checkClose(await y.read(), want.data, (xs[1] / c.groups) * ws[2] * ws[3], `convTranspose2d f16 weight case ${i}`);
    for (const t of [x, w, bias, y]) t.dispose();
  }
});

test('depthwiseConv2dNhwc with f16 weights: C not a multiple of 4 (clamped channel reads), stride 2, gelu', async ({ gpu }) => {
  for (const [xs, stride] of [
    [[2, 9, 10, 7], 2],
    [[1, 6, 5, 8], 1],
  ] as const) {
    const C = xs[3];
    const xData = randomArray(size(xs), 500 + C);
    const wData = randomArray(9 * C, 510 + C);
    const bData = randomArray(C, 520 + C);
    const x = Tensor.fromArray(gpu, xData, xs);
    const w = Tensor.fromArray(gpu, wData, [3, 3, C], 'f16');
    const b = Tensor.fromArray(gpu, bData, [C]);
    const y = depthwiseConv2dNhwc(gpu, x, w, { bias: b, stride, padding: 1, activation: 'gelu' });
    const want = refDepthwiseConv2dNhwc(xData, xs, roundArrayToF16(wData), [3, 3], bData, [stride, stride], [1, 1], gelu);
    assert.equal(y.shape, want.shape, `depthwiseConv2dNhwc ${xs}: shape`);
    checkClose(await y.read(), want.data, 9, `depthwiseConv2dNhwc f16 weight ${xs}`);
    for (const t of [x, w, b, y]) t.dispose();
  }
});

test('tolerance sees the rounding: the f16 result is far from the conv with unrounded weights', async ({ gpu }) => {
  // f16 rounding moves each weight by up to 2^-12 relative; over K = 288 products that is ~30× the tolerance.
  const xs: Shape4 = [1, 32, 12, 12];
  const ws: Shape4 = [16, 32, 3, 3];
  const xData = randomArray(size(xs), 600);
  const wData = randomArray(size(ws), 601);
  const x = Tensor.fromArray(gpu, xData, xs);
  const w = Tensor.fromArray(gpu, wData, ws, 'f16');
  const y = conv2d(gpu, x, w, { padding: 1 });
  const got = await y.read();
  const exact = ref.conv2d(xData, xs, wData, ws, { padding: [1, 1] }).data;
  let err = 0;
  for (let i = 0; i < got.length; i++) err = Math.max(err, Math.abs(got[i] - exact[i]));
  const { atol } = tolerance(32 * 9);
  console.log(`  unrounded reference: max abs difference ${err.toExponential(2)}, tolerance ${atol.toExponential(2)}`);
  assert.ok(err > 5 * atol, `f16 rounding moved the conv by ${err}, expected well over the tolerance ${atol}`);
  for (const t of [x, w, y]) t.dispose();
});

test('every case above: the largest error relative to the tolerance', () => {
  console.log(`  conv f16 weight: largest max abs error / atol over the cases above ${worstRatio.toFixed(3)}`);
  assert.ok(worstRatio > 0, 'the cases ran');
});

test('rejects other weight dtypes and an f16 input, naming the op', async ({ gpu }) => {
  const x = Tensor.empty(gpu, [1, 4, 5, 5]);
  await assertThrows(() => conv2d(gpu, x, Tensor.empty(gpu, [6, 4, 3, 3], 'i32')), /conv2d: weight must be f32 or f16, got i32/);
  await assertThrows(() => convTranspose2d(gpu, x, Tensor.empty(gpu, [4, 6, 3, 3], 'u32')), /convTranspose2d: weight must be f32 or f16, got u32/);
  await assertThrows(() => depthwiseConv2dNhwc(gpu, Tensor.empty(gpu, [1, 5, 5, 4]), Tensor.empty(gpu, [3, 3, 4], 'i32')), /depthwiseConv2dNhwc: weight must be f32 or f16, got i32/);
  await assertThrows(() => conv2d(gpu, Tensor.empty(gpu, [1, 4, 5, 5], 'f16'), Tensor.empty(gpu, [6, 4, 3, 3], 'f16')), /conv2d: input must be f32, got f16/);
});

test.run();
