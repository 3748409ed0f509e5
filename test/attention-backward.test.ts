import * as assert from 'uvu/assert';
import { Tensor, attention, attentionBackward, type AttentionBackwardOptions, type Gpu } from '../src/node.js';
import { attentionBackwardRef, attentionFiniteDifferences, type AttentionGradsRef } from './ref/attention-backward.js';
import { attentionInputs, biasAndMask, biasShape, type AttentionRunOptions } from './attention-case.js';
import { bhldCase, blhdCase, caseShape, type AttentionCase, type AttentionRefInput } from './ref/attention.js';
import { assertClose, assertThrows, gpuSuite, randn } from './util.js';

const test = gpuSuite('attentionBackward');

// Each gradient element is a sum over Lk (or Lq) f32 products whose terms can
// cancel (dS sums to zero along a row), so its error scales with the size of
// the terms, not of the result: absolute tolerance GRAD_ATOL × the largest
// |expected| element of that gradient (at least 1: a bias broadcast along keys
// has an exactly-zero gradient, a cancelling sum of O(0.1) terms), plus 1e-4
// relative. f32 rounding over ~1000-term sums gives ~1e-6 of the largest
// element; an indexing, masking or scaling error gives O(1).
const GRAD_ATOL = 2e-5;
const GRAD_RTOL = 1e-4;
// The finite differences themselves (float64, step 1e-6) agree with the
// analytic reference to ~1e-9.
const FD_TOL = { atol: 1e-7, rtol: 1e-6 };

function assertGradClose(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string, atolScale = GRAD_ATOL): void {
  let max = 0;
  for (let n = 0; n < expected.length; n++) max = Math.max(max, Math.abs(expected[n]));
  assertClose(actual, expected, { atol: atolScale * Math.max(max, 1), rtol: GRAD_RTOL }, label);
}

interface RunOptions extends AttentionRunOptions {
  needBiasGrad?: boolean;
}

const bhld = bhldCase;
const blhd = blhdCase;

interface GpuGrads {
  dq: Float32Array;
  dk: Float32Array;
  dv: Float32Array;
  dbias?: Float32Array;
}

/** Random inputs, the GPU forward (out, lse) and backward; returns the reference input, dOut and the GPU's gradients. */
async function runGpu(gpu: Gpu, c: AttentionCase, seed: number, o: RunOptions): Promise<{ input: AttentionRefInput; dOut: Float32Array; grads: GpuGrads }> {
  const { qData, kData, vData, q, k, v } = attentionInputs(gpu, c, seed);
  const dOutData = randn(c.B * c.H * c.Lq * c.Dv, seed + 3);
  const dOut = Tensor.fromArray(gpu, dOutData, caseShape(c, c.Lq, c.Dv));
  const opts: AttentionBackwardOptions = { layout: c.layout, scale: o.scale, causal: o.causal, needBiasGrad: o.needBiasGrad, ...biasAndMask(gpu, c, o) };
  const lse = Tensor.empty(gpu, [c.B, c.H, c.Lq]);
  const { needBiasGrad: _, out: _out, ...forwardOpts } = opts;
  const out = attention(gpu, q, k, v, { ...forwardOpts, lse });
  const g = attentionBackward(gpu, q, k, v, out, dOut, lse, opts);
  const grads: GpuGrads = {
    dq: (await g.dq.read()) as Float32Array,
    dk: (await g.dk.read()) as Float32Array,
    dv: (await g.dv.read()) as Float32Array,
    dbias: g.dbias ? ((await g.dbias.read()) as Float32Array) : undefined,
  };
  if (g.dbias) assert.equal(g.dbias.shape, o.bias?.shape, 'dbias has the bias shape');
  assert.equal(g.dq.shape, q.shape, 'dq has the shape of q');
  assert.equal(g.dk.shape, k.shape, 'dk has the shape of k');
  assert.equal(g.dv.shape, v.shape, 'dv has the shape of v');
  for (const t of [q, k, v, dOut, out, lse, opts.bias, opts.keyPaddingMask, g.dq, g.dk, g.dv, g.dbias]) t?.dispose();
  const input: AttentionRefInput = { ...c, q: qData, k: kData, v: vData, scale: o.scale, bias: o.bias, causal: o.causal, keyPaddingMask: o.mask?.data };
  return { input, dOut: dOutData, grads };
}

function compare(got: GpuGrads, want: AttentionGradsRef, label: string, atolScale = GRAD_ATOL): void {
  for (const x of [got.dq, got.dk, got.dv, got.dbias ?? []]) assert.ok(Array.from(x).every(Number.isFinite), `${label}: all gradients finite`);
  assertGradClose(got.dq, want.dq, `${label} dq`, atolScale);
  assertGradClose(got.dk, want.dk, `${label} dk`, atolScale);
  assertGradClose(got.dv, want.dv, `${label} dv`, atolScale);
  if (want.dbias && got.dbias) assertGradClose(got.dbias, want.dbias, `${label} dbias`, atolScale);
}

/** GPU gradients against the analytic float64 reference; returns what the GPU gave. */
async function check(gpu: Gpu, c: AttentionCase, seed: number, o: RunOptions, label: string): Promise<GpuGrads> {
  const { input, dOut, grads } = await runGpu(gpu, c, seed, o);
  assert.is(grads.dbias !== undefined, o.needBiasGrad === true, `${label}: dbias returned iff needBiasGrad`);
  compare(grads, attentionBackwardRef(input, dOut), label);
  return grads;
}

test('finite differences (float64) match the analytic reference and the GPU: bias, causal, padding', async ({ gpu }) => {
  const c = bhld(1, 2, 5, 5, 4);
  const cases: [string, RunOptions][] = [
    ['plain', {}],
    ['full bias', { bias: { data: randn(2 * 25, 200), shape: [1, 2, 5, 5] }, needBiasGrad: true }],
    ['broadcast bias [1, 1, 5, 5]', { bias: { data: randn(25, 201), shape: [1, 1, 5, 5] }, needBiasGrad: true }],
    ['causal', { causal: true }],
    ['padding + causal + bias', { mask: { data: [0, 0, 1, 0, 1], dtype: 'u32' }, causal: true, bias: { data: randn(2 * 5, 202), shape: [1, 2, 1, 5] }, needBiasGrad: true }],
  ];
  for (const [n, [label, o]] of cases.entries()) {
    const { input, dOut, grads } = await runGpu(gpu, c, 210 + 10 * n, o);
    const fd = attentionFiniteDifferences(input, dOut);
    const analytic = attentionBackwardRef(input, dOut);
    assertClose(analytic.dq, fd.dq, FD_TOL, `${label}: ref dq vs FD`);
    assertClose(analytic.dk, fd.dk, FD_TOL, `${label}: ref dk vs FD`);
    assertClose(analytic.dv, fd.dv, FD_TOL, `${label}: ref dv vs FD`);
    if (fd.dbias) assertClose(analytic.dbias as Float64Array, fd.dbias, FD_TOL, `${label}: ref dbias vs FD`);
    compare(grads, fd, `${label}: GPU vs FD`);
  }
});

test('D = 64, 197 tokens (ViT-B/16, 2 of its 12 heads), both layouts, Lq ≠ Lk', async ({ gpu }) => {
  await check(gpu, bhld(1, 2, 197, 197, 64), 1, {}, 'bhld L=197');
  await check(gpu, blhd(1, 2, 197, 197, 64), 2, {}, 'blhd L=197');
  await check(gpu, bhld(2, 2, 37, 101, 64), 3, { scale: 0.2 }, 'Lq=37 Lk=101 scale 0.2');
  await check(gpu, blhd(2, 2, 101, 37, 64), 4, { causal: true }, 'blhd causal Lq=101 Lk=37');
});

test('small and odd head dims, Dv ≠ D, L = 1', async ({ gpu }) => {
  await check(gpu, bhld(1, 1, 1, 1, 8), 10, {}, 'L=1');
  await check(gpu, bhld(2, 3, 7, 11, 13, 5), 11, {}, 'D=13 Dv=5');
  await check(gpu, blhd(1, 2, 67, 70, 3, 33), 12, { causal: true }, 'blhd D=3 Dv=33 causal');
});

test('head dim 128 (halved tiles)', async ({ gpu }) => {
  await check(gpu, bhld(1, 2, 41, 77, 128), 20, { causal: true }, 'D=128');
});

test('long sequence: H = 1, L = 1024, D = 64', async ({ gpu }) => {
  await check(gpu, bhld(1, 1, 1024, 1024, 64), 30, {}, 'L=1024');
});

test('bias gradient: full and broadcast shapes, -inf entries get 0', async ({ gpu }) => {
  const c = bhld(2, 3, 19, 23, 32);
  const patterns = ['', 'b', 'hq', 'bhk'].map((dims) => biasShape(c, dims));
  for (const [n, shape] of patterns.entries()) {
    const size = shape.reduce((a, b) => a * b);
    await check(gpu, c, 40 + n, { bias: { data: randn(size, 60 + n), shape }, needBiasGrad: true }, `bias [${shape.join(', ')}]`);
  }
  const bias = randn(2 * 3 * 19 * 23, 70);
  for (let n = 0; n < bias.length; n += 5) bias[n] = -Infinity;
  const { dbias } = await check(gpu, blhd(2, 3, 19, 23, 32), 71, { bias: { data: bias, shape: [2, 3, 19, 23] }, needBiasGrad: true, causal: true }, 'blhd -inf bias');
  for (let n = 0; n < bias.length; n += 5) assert.is(dbias?.[n], 0, `dbias at -inf bias element ${n} is 0`);
  // Gradient without needBiasGrad leaves dbias out.
  await check(gpu, c, 72, { bias: { data: randn(19 * 23, 73), shape: [1, 1, 19, 23] } }, 'bias without grad');
});

test('fully masked rows and padded keys: zero gradients, no NaN (u32 and f32 masks)', async ({ gpu }) => {
  const c = bhld(2, 2, 20, 20, 32);
  // Batch 0: key 0 padded, so under causal query 0 sees no key. Batch 1: all keys padded.
  const mask = Array.from({ length: 2 * 20 }, (_, n) => (n === 0 || n % 7 === 3 || n >= 20 ? 1 : 0));
  const bias = { data: randn(20 * 20, 90), shape: [1, 1, 20, 20] };
  for (const dtype of ['u32', 'f32'] as const) {
    const g = await check(gpu, c, 91, { mask: { data: mask, dtype }, causal: true, bias, needBiasGrad: true }, `masked ${dtype}`);
    for (let h = 0; h < 2; h++) {
      for (let e = 0; e < 32; e++) assert.is(g.dq[h * 20 * 32 + e], 0, `batch 0 head ${h} query 0: dq = 0`);
    }
    const batch1 = 2 * 20 * 32;
    for (const x of [g.dq, g.dk, g.dv]) assert.ok(x.slice(batch1).every((y) => y === 0), 'batch 1 (all keys padded): zero gradients');
    for (let h = 0; h < 2; h++) {
      for (const j of [0, 3, 10, 17]) {
        for (let e = 0; e < 32; e++) {
          assert.is(g.dk[(h * 20 + j) * 32 + e], 0, `padded key ${j}: dk = 0`);
          assert.is(g.dv[(h * 20 + j) * 32 + e], 0, `padded key ${j}: dv = 0`);
        }
      }
    }
  }
});

test('validation: shapes of out, dOut, lse; dtypes; bias and mask', async ({ gpu }) => {
  const q = Tensor.empty(gpu, [1, 2, 5, 8]);
  const k = Tensor.empty(gpu, [1, 2, 7, 8]);
  const v = Tensor.empty(gpu, [1, 2, 7, 4]);
  const out = Tensor.empty(gpu, [1, 2, 5, 4]);
  const lse = Tensor.empty(gpu, [1, 2, 5]);
  const wrongOut = Tensor.empty(gpu, [1, 2, 5, 8]);
  const wrongLse = Tensor.empty(gpu, [1, 2, 7]);
  const intLse = Tensor.empty(gpu, [1, 2, 5], 'i32');
  const intQ = Tensor.empty(gpu, [1, 2, 5, 8], 'i32');
  const k3 = Tensor.empty(gpu, [1, 2, 7, 3]);
  const bias = Tensor.empty(gpu, [1, 2, 3, 7]);
  const mask = Tensor.empty(gpu, [1, 5], 'u32');
  try {
    await assertThrows(() => attentionBackward(gpu, q, k, v, wrongOut, out, lse), /attentionBackward/, /out must be \[1, 2, 5, 4\]/, /got \[1, 2, 5, 8\]/);
    await assertThrows(() => attentionBackward(gpu, q, k, v, out, wrongOut, lse), /attentionBackward/, /dOut must be \[1, 2, 5, 4\]/, /got \[1, 2, 5, 8\]/);
    await assertThrows(() => attentionBackward(gpu, q, k, v, out, out, wrongLse), /attentionBackward/, /lse must be \[B, H, Lq\] = \[1, 2, 5\]/, /got \[1, 2, 7\]/);
    await assertThrows(() => attentionBackward(gpu, q, k, v, out, out, intLse), /attentionBackward/, /lse must be f32, got i32/);
    await assertThrows(() => attentionBackward(gpu, intQ, k, v, out, out, lse), /attentionBackward/, /q must be f32, got i32/);
    await assertThrows(() => attentionBackward(gpu, q, k3, v, out, out, lse), /attentionBackward/, /head dims of q and k differ: D=8 vs 3/);
    await assertThrows(() => attentionBackward(gpu, q, k, v, out, out, lse, { layout: 'blhd' }), /attentionBackward/, /head counts differ|key lengths/);
    await assertThrows(() => attentionBackward(gpu, q, k, v, out, out, lse, { bias }), /attentionBackward/, /bias \[1, 2, 3, 7\] is not broadcastable to \[B, H, Lq, Lk\] = \[1, 2, 5, 7\]/);
    await assertThrows(() => attentionBackward(gpu, q, k, v, out, out, lse, { needBiasGrad: true }), /attentionBackward/, /needBiasGrad is set but no bias/);
    await assertThrows(() => attentionBackward(gpu, q, k, v, out, out, lse, { keyPaddingMask: mask }), /attentionBackward/, /keyPaddingMask must be \[B, Lk\] = \[1, 7\], got \[1, 5\]/);
    await assertThrows(() => attentionBackward(gpu, q, k, v, out, out, lse, { scale: NaN }), /attentionBackward/, /scale must be a finite number, got NaN/);
  } finally {
    for (const t of [q, k, v, out, lse, wrongOut, wrongLse, intLse, intQ, k3, bias, mask]) t.dispose();
  }
});

test.run();
