// matmul with an f16 B (weights stored as halves, issue 19): A, bias,
// residual and the output f32; B's halves widened to f32 as read, f32
// accumulation. Checked against the float64 reference of test/ref/matmul.ts
// given B rounded to f16 by test/ref/half.ts (not src/half.ts, which the
// upload uses), so the only error left is the f32 arithmetic's and the
// tolerance is as tight as for f32 matmul. lavapipe, and every GPU the
// project targets, has `shader-f16`: these tests require it.
import * as assert from 'uvu/assert';
import { MATMUL_VARIANTS, Tensor, matmul, type Gpu } from '../src/node.js';
import { roundToF16 } from './ref/half.js';
import { EDGE_SHAPES, SMALL, runMatmulCase, type MatmulCase } from './matmul-case.js';
import { matmulRef } from './ref/matmul.js';
import { assertClose, assertThrows, gpuSuite, randomArray } from './util.js';

const test = gpuSuite('matmul f16 B');

// The f32 accumulation's error: K additions, each rounding a partial sum
// that grows like sqrt(k) for terms in [-1, 1), so the error grows like
// K·eps (eps = 2^-24), not sqrt(K)·eps as test/matmul.test.ts's tolerance
// assumes for its K ≤ 384. atol 4·K·eps + 2e-6, rtol 2e-6 (the erf
// approximation of gelu and the epilogue's rounding). Measured (max abs
// error, 'model-sized products'): 1.2e-5 at K = 384, 1.7e-5 at K = 768,
// 7.6e-5 at K = 3072 (atol 9.4e-5, 1.9e-4, 7.3e-4). Rounding B to f16 moves
// a product far more: 'tolerance sees the rounding' checks that (1.7e-3 at
// K = 32, 175× its tolerance).
function tolerance(K: number) {
  return { atol: 4 * Math.max(K, 1) * 2 ** -24 + 2e-6, rtol: 2e-6 };
}

/** Runs one case with B uploaded as f16 and checks it against the float64 reference on f16-rounded B; returns the max abs error. */
async function check(gpu: Gpu, c: MatmulCase, label: string, seed: number): Promise<number> {
  const { got, want, K } = await runMatmulCase(gpu, c, label, seed, 'f16');
  assertClose(got, want, tolerance(K), label);
  let err = 0;
  for (let i = 0; i < got.length; i++) err = Math.max(err, Math.abs(got[i] - want[i]));
  return err;
}

test.before(({ gpu }) => {
  assert.ok(gpu.hasF16, `the adapter (${gpu.adapter.description || gpu.adapter.name}) lacks shader-f16, which these tests need`);
});

test('reference rounding to f16: exact values, ties to even, subnormals, overflow', () => {
  assert.is(roundToF16(1), 1);
  assert.is(roundToF16(1 + 2 ** -11), 1); // halfway between 1 and 1 + 2^-10: to even (1)
  assert.is(roundToF16(1 + 3 * 2 ** -11), 1 + 2 ** -9); // halfway: to even (1 + 2^-9)
  assert.is(roundToF16(1 + 2 ** -11 + 2 ** -20), 1 + 2 ** -10); // above halfway
  assert.is(roundToF16(-0.1), -0.0999755859375); // 0xae66
  assert.is(roundToF16(2 ** -24), 2 ** -24); // the smallest subnormal
  assert.is(roundToF16(2 ** -25), 0); // halfway to zero: to even (0)
  assert.is(roundToF16(3 * 2 ** -26), 2 ** -24);
  assert.is(roundToF16(65504), 65504);
  assert.is(roundToF16(65519), 65504);
  assert.is(roundToF16(65520), Infinity);
  assert.is(roundToF16(0.333251953125), 0.333251953125);
});

// The vec2<u32> read of four halves against the scalar path (a half at an
// odd index is the word's high half) on the edge shapes.
for (const [M, K, N] of EDGE_SHAPES) {
  test(`${M}x${K}x${N}, B [K, N] and B [N, K] (transB)`, async ({ gpu }) => {
    await check(gpu, { a: [M, K], b: [K, N], opts: { variant: SMALL } }, `${M}x${K}x${N}`, M * 1000 + N);
    await check(gpu, { a: [M, K], b: [N, K], opts: { transB: true, variant: SMALL } }, `${M}x${K}x${N} transB`, M * 1000 + N + 7);
  });
}

test('batched B with broadcast, odd batch offsets into the halves', async ({ gpu }) => {
  const [M, K, N] = [5, 7, 3]; // K·N = 21: odd, so every other batch starts at a word's high half
  await check(gpu, { a: [2, 3, M, K], b: [3, K, N], opts: { variant: SMALL } }, 'a [2,3,M,K] · b [3,K,N]', 11);
  await check(gpu, { a: [M, K], b: [4, N, K], opts: { transB: true, variant: SMALL } }, 'a [M,K] · b [4,N,K] transB', 12);
  await check(gpu, { a: [2, 3, 4, 8], b: [3, 8, 12] }, 'a [2,3,4,8] · b [3,8,12] vec4 paths', 13);
});

test('the epilogue with f16 weights: bias, activations, residual, alpha, transA', async ({ gpu }) => {
  for (const activation of ['none', 'gelu', 'quickGelu'] as const) {
    for (const N of [12, 13]) {
      const label = `${activation} N=${N}`;
      await check(gpu, { a: [9, 11], b: [N, 11], bias: true, residual: [9, N], opts: { transB: true, activation, alpha: 1.7, variant: SMALL } }, label, N * 31);
      await check(gpu, { a: [11, 9], b: [11, N], bias: true, opts: { transA: true, activation, variant: SMALL } }, `${label} transA`, N * 37);
    }
  }
});

// The linear layers f16 weights are for: CLIP's [tokens, width] · [out, width]ᵀ and TinyViT's [tokens, C] · [C, O], default variant.
test('model-sized products with the default variant', async ({ gpu }) => {
  const errors: string[] = [];
  for (const [M, K, N, transB] of [
    [197, 768, 96, true],
    [64, 3072, 48, true],
    [256, 384, 320, false],
  ] as const) {
    const err = await check(gpu, { a: [M, K], b: transB ? [N, K] : [K, N], bias: true, opts: { transB } }, `${M}x${K}x${N}${transB ? ' transB' : ''}`, K + N);
    errors.push(`${M}x${K}x${N}: ${err.toExponential(1)}`);
  }
  console.log(`  matmul f16 B max abs errors: ${errors.join(', ')}`);
});

for (const variant of MATMUL_VARIANTS) {
  test(`variant ${variant}`, async ({ gpu }) => {
    await check(gpu, { a: [2, 29, 37], b: [45, 29], bias: true, residual: [2, 37, 45], opts: { transA: true, transB: true, activation: 'quickGelu', alpha: 0.75, variant } }, `${variant} transposed`, 41);
    await check(gpu, { a: [40, 36], b: [36, 68], opts: { variant } }, `${variant} aligned`, 43);
  });
}

test('tolerance sees the rounding: the f16 result is far from the product with unrounded B', async ({ gpu }) => {
  // f16 rounding moves a product by ~sqrt(K)·2^-12/3, the tolerance grows like 4·K·2^-24: at K = 32 the rounding is ~20× it.
  const [M, K, N] = [64, 32, 64];
  const aData = randomArray(M * K, 5);
  const bData = randomArray(K * N, 6);
  const a = Tensor.fromArray(gpu, aData, [M, K]);
  const b = Tensor.fromArray(gpu, bData, [K, N], 'f16');
  const y = matmul(gpu, a, b);
  const got = await y.read();
  const exact = matmulRef(aData, [M, K], bData, [K, N]).data;
  let err = 0;
  for (let i = 0; i < got.length; i++) err = Math.max(err, Math.abs(got[i] - exact[i]));
  const { atol } = tolerance(K);
  console.log(`  unrounded reference: max abs difference ${err.toExponential(2)}, tolerance ${atol.toExponential(2)}`);
  assert.ok(err > 5 * atol, `f16 rounding moved the product by ${err}, expected well over the tolerance ${atol}`);
  for (const t of [a, b, y]) t.dispose();
});

test('rejects an f16 A and other B dtypes, naming them', async ({ gpu }) => {
  const a16 = Tensor.empty(gpu, [4, 6], 'f16');
  const a = Tensor.empty(gpu, [4, 6]);
  const b16 = Tensor.empty(gpu, [6, 5], 'f16');
  await assertThrows(() => matmul(gpu, a16, b16), /matmul/, /a f32/, /got a f16/);
  await assertThrows(() => matmul(gpu, a, Tensor.empty(gpu, [6, 5], 'i32')), /matmul/, /b f32 or f16/, /b i32/);
  await assertThrows(() => matmul(gpu, a, b16, { bias: Tensor.empty(gpu, [5], 'f16') }), /matmul: bias must be f32/);
  // An f16 B over maxStorageBufferBindingSize counts 2 bytes an element: [limit/2 + 2] halves are over, [limit/4 + 4] are not.
  const limit = gpu.limits.maxStorageBufferBindingSize;
  const cols = limit / 2 / 2 + 1;
  await assertThrows(() => matmul(gpu, Tensor.empty(gpu, [1, 2]), Tensor.empty(gpu, [2, cols], 'f16')), /matmul: b \[2, \d+\]/, new RegExp(`${2 * cols * 2} bytes`), /maxStorageBufferBindingSize/);
});

test.run();
