import * as assert from 'uvu/assert';
import { MATMUL_VARIANTS, Tensor, matmul, tuneMatmul, tunedVariant, type Gpu, type MatmulActivation } from '../src/node.js';
import { EDGE_SHAPES, SMALL, runMatmulCase, type MatmulCase } from './matmul-case.js';
import { matmulRef } from './ref/matmul.js';
import { assertClose, assertThrows, gpuSuite, randomArray } from './util.js';

const test = gpuSuite('matmul');

// Inputs are uniform in [-1, 1). An fp32 dot product of K such terms has a
// rounding error that grows like sqrt(K)·eps (eps = 2^-24) times the size of
// the terms; 8·sqrt(K)·eps absolute leaves a wide margin over that, and 2e-6
// more (absolute and relative) covers the erf approximation (< 1.5e-7·|x|)
// and the epilogue's own rounding. A wrong index or epilogue is off by ~0.1.
function tolerance(K: number) {
  return { atol: 8 * Math.sqrt(Math.max(K, 1)) * 2 ** -24 + 2e-6, rtol: 2e-6 };
}

/** A seed from a case's label (FNV-1a): each case has its own inputs whichever tests ran before it. */
function seedOf(label: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** Runs one case on the GPU and checks it against the float64 reference. */
async function check(gpu: Gpu, c: MatmulCase, label: string): Promise<void> {
  const { got, want, K } = await runMatmulCase(gpu, c, label, seedOf(label));
  assertClose(got, want, tolerance(K), label);
}

test('reference: a hand-computed product, transposed and batched', () => {
  // [[1, 2, 3], [4, 5, 6]] · [[1, 0], [0, 1], [1, 1]] = [[4, 5], [10, 11]]
  const a = [1, 2, 3, 4, 5, 6];
  const b = [1, 0, 0, 1, 1, 1];
  assert.equal(Array.from(matmulRef(a, [2, 3], b, [3, 2]).data), [4, 5, 10, 11]);
  // The same a stored transposed ([3, 2]) and b stored transposed ([2, 3]).
  assert.equal(Array.from(matmulRef([1, 4, 2, 5, 3, 6], [3, 2], [1, 0, 1, 0, 1, 1], [2, 3], { transA: true, transB: true }).data), [4, 5, 10, 11]);
  // Batch broadcast: a [1, 2, 3] against b [2, 3, 2], whose second matrix is 2·b; residual [2] repeats per row.
  const r = matmulRef(a, [1, 2, 3], [...b, ...b.map((x) => 2 * x)], [2, 3, 2], { alpha: 0.5, bias: [1, -1], activation: 'relu', residual: [100, 200], residualShape: [2] });
  assert.equal(r.shape, [2, 2, 2]);
  assert.equal(Array.from(r.data), [103, 201.5, 106, 204.5, 105, 204, 111, 210]);
});

// The edge shapes run with the SMALL register block; the variant loop below
// then runs every listed variant, and the large shape the default one.
for (const [M, K, N] of EDGE_SHAPES) {
  test(`${M}x${K}x${N}`, async ({ gpu }) => {
    await check(gpu, { a: [M, K], b: [K, N], opts: { variant: SMALL } }, `${M}x${K}x${N}`);
  });
}

test('256x384x320 (large, default variant)', async ({ gpu }) => {
  await check(gpu, { a: [256, 384], b: [384, 320] }, '256x384x320');
});

test('transposed operands, unaligned and vec4-aligned', async ({ gpu }) => {
  for (const [M, K, N] of [
    [7, 13, 5],
    [12, 8, 20],
  ]) {
    for (const [transA, transB] of [
      [true, false],
      [false, true],
      [true, true],
    ]) {
      await check(gpu, { a: transA ? [K, M] : [M, K], b: transB ? [N, K] : [K, N], opts: { transA, transB, variant: SMALL } }, `${M}x${K}x${N} transA=${transA} transB=${transB}`);
    }
  }
});

test('batch dims broadcast numpy-style', async ({ gpu }) => {
  const [M, K, N] = [5, 7, 6];
  await check(gpu, { a: [2, 3, M, K], b: [K, N], opts: { variant: SMALL } }, 'a [2,3,M,K] · b [K,N]');
  await check(gpu, { a: [2, 3, M, K], b: [1, 3, K, N], opts: { variant: SMALL } }, 'a [2,3,M,K] · b [1,3,K,N]');
  await check(gpu, { a: [M, K], b: [4, K, N], opts: { variant: SMALL } }, 'a [M,K] · b [4,K,N]');
  await check(gpu, { a: [2, 1, M, K], b: [1, 3, K, N], opts: { variant: SMALL } }, 'a [2,1,M,K] · b [1,3,K,N]');
  await check(gpu, { a: [3, 1, 2, M, K], b: [4, 1, K, N], opts: { variant: SMALL } }, 'a [3,1,2,M,K] · b [4,1,K,N]');
  await check(gpu, { a: [2, 3, M, K], b: [3, N, K], opts: { transB: true, variant: SMALL } }, 'a [2,3,M,K] · b [3,N,K] transB');
});

// Every epilogue combination: bias × activation × residual. N alternates
// between 13 and 12 (bias xor residual) so that each activation, the bias
// and the residual run through both the scalar and the vec4 store path.
const ACTIVATIONS: MatmulActivation[] = ['none', 'relu', 'gelu', 'geluTanh', 'quickGelu'];
test('every epilogue combination (bias, activation, residual, alpha)', async ({ gpu }) => {
  for (const activation of ACTIVATIONS) {
    for (const bias of [false, true]) {
      for (const withResidual of [false, true]) {
        const [M, K, N] = [9, 11, bias !== withResidual ? 12 : 13];
        const label = `${activation} bias=${bias} residual=${withResidual}`;
        // alpha 1.7 widens the activation's input range.
        await check(gpu, { a: [M, K], b: [K, N], bias, residual: withResidual ? [M, N] : undefined, opts: { activation, alpha: 1.7, variant: SMALL } }, label);
      }
    }
  }
});

test('epilogue with the default variant: residual repeated over leading dims, into `out`', async ({ gpu }) => {
  const [M, K, N] = [10, 24, 36];
  await check(gpu, { a: [3, M, K], b: [K, N], bias: true, residual: [M, N], opts: { activation: 'gelu', alpha: 0.5 } }, 'residual [M,N] over [3,M,N]');
  await check(gpu, { a: [3, M, K], b: [K, N], bias: true, residual: [1, N], opts: { activation: 'gelu', alpha: 0.5 } }, 'residual [1,N] over [3,M,N]');
  const aData = randomArray(M * K, 5);
  const bData = randomArray(K * N, 6);
  const a = Tensor.fromArray(gpu, aData, [M, K]);
  const b = Tensor.fromArray(gpu, bData, [K, N]);
  const out = Tensor.empty(gpu, [M, N]);
  const y = matmul(gpu, a, b, { out });
  assert.ok(y === out, 'returns out');
  assertClose(await out.read(), matmulRef(aData, [M, K], bData, [K, N]).data, tolerance(K), 'into out');
});

// Each variant with batch broadcast, both transposes, unaligned sizes and
// the full epilogue; tiled ones also plain and vec4-aligned (direct ones
// share that path with SMALL, and the default one ran it above).
for (const variant of MATMUL_VARIANTS) {
  test(`variant ${variant}`, async ({ gpu }) => {
    const [M, K, N] = [37, 29, 45];
    await check(gpu, { a: [2, K, M], b: [N, K], bias: true, residual: [2, M, N], opts: { transA: true, transB: true, activation: 'quickGelu', alpha: 0.75, variant } }, `${variant} transposed`);
    if (variant.startsWith('tiled-')) await check(gpu, { a: [40, 36], b: [36, 68], opts: { variant } }, `${variant} aligned`);
  });
}

test('tuneMatmul picks a variant that matmul then uses', async ({ gpu }) => {
  // Small blocks: quick to compile. The check after tuning reuses the swept shape's pipelines.
  const candidates = [SMALL, 'direct-wg4x2-r4x8', 'tiled-wg8x8-r4x4-k32'];
  const result = await tuneMatmul(gpu, [[40, 48, 56]], candidates);
  assert.ok(candidates.includes(result.best), `best ${result.best}`);
  for (const v of candidates) assert.ok(Number.isFinite(result.times[v]) && result.times[v] > 0, `time of ${v}: ${result.times[v]}`);
  assert.is(result.times[result.best], Math.min(...Object.values(result.times)), `best ${result.best} is the fastest: ${JSON.stringify(result.times)}`);
  assert.is(tunedVariant(gpu, 'matmul'), result.best);
  await check(gpu, { a: [40, 48], b: [48, 56] }, 'after tuning');
  await assertThrows(() => tuneMatmul(gpu, [[8, 8, 8]], ['direct-wg1024x1024-r4x4']), /tuneMatmul/, /direct-wg1024x1024-r4x4/);
});

test('rejects bad inputs with messages that name matmul and the values', async ({ gpu }) => {
  const f = (shape: number[]) => Tensor.empty(gpu, shape);
  const a = f([4, 6]);
  const b = f([6, 5]);
  await assertThrows(() => matmul(gpu, Tensor.empty(gpu, [4, 6], 'i32'), b), /matmul/, /f32/, /i32/);
  await assertThrows(() => matmul(gpu, a, Tensor.empty(gpu, [6, 5], 'u32')), /matmul/, /b u32/);
  await assertThrows(() => matmul(gpu, a, f([7, 5])), /matmul: inner dimensions differ/, /\[4, 6\] has K=6/, /\[7, 5\] has K=7/);
  await assertThrows(() => matmul(gpu, a, f([6, 5]), { transA: true }), /inner dimensions/, /\(transA\) has K=4/);
  await assertThrows(() => matmul(gpu, f([6]), b), /matmul/, /rank >= 2/, /\[6\]/);
  await assertThrows(() => matmul(gpu, f([2, 4, 6]), f([3, 6, 5])), /matmul: batch dimensions do not broadcast/, /\[2\]/, /\[3\]/);
  await assertThrows(() => matmul(gpu, a, b, { bias: f([4]) }), /matmul: bias must be f32 \[5\]/, /\[4\]/);
  await assertThrows(() => matmul(gpu, a, b, { bias: f([1, 5]) }), /matmul: bias/, /\[1, 5\]/);
  await assertThrows(() => matmul(gpu, a, b, { residual: f([4, 4]) }), /matmul: residual/, /\[4, 5\]/, /got f32 \[4, 4\]/);
  await assertThrows(() => matmul(gpu, a, b, { residual: f([2, 4, 5]) }), /matmul: residual/, /\[2, 4, 5\]/);
  await assertThrows(() => matmul(gpu, a, b, { out: f([5, 4]) }), /matmul: out must be f32 \[4, 5\]/, /\[5, 4\]/);
  await assertThrows(() => matmul(gpu, a, b, { out: Tensor.empty(gpu, [4, 5], 'i32') }), /matmul: out/, /i32/);
  const sq = f([4, 4]);
  await assertThrows(() => matmul(gpu, sq, f([4, 4]), { out: sq }), /matmul: out must not share its buffer with a/);
  await assertThrows(() => matmul(gpu, a, b, { activation: 'swish' as MatmulActivation }), /matmul: unknown activation 'swish'/);
  await assertThrows(() => matmul(gpu, a, b, { alpha: NaN }), /matmul: alpha/, /NaN/);
  await assertThrows(() => matmul(gpu, a, b, { variant: 'tiled-wg16x16-r12x4-k8' }), /matmul: malformed variant 'tiled-wg16x16-r12x4-k8'/);
  // Over maxStorageBufferBindingSize: an output of limit/4 + 1 elements, from tiny operands.
  const limit = gpu.limits.maxStorageBufferBindingSize;
  const rows = Math.floor(limit / 4 / 4096) + 1;
  await assertThrows(() => matmul(gpu, f([rows, 1]), f([1, 4096])), /matmul: output/, new RegExp(`\\[${rows}, 4096\\]`), /maxStorageBufferBindingSize/, new RegExp(String(limit)));
});

test.run();
