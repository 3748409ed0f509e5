import * as assert from 'uvu/assert';
import { Tensor, graphOps, layerNorm, layerNormBackward, type Gpu } from '../src/node.js';
import * as norm from './ref/norm.js';
import { centralDifference, dot, layerNormBackward as refBackward } from './ref/backward.js';
import { checkOp, opCase } from './ref/op-check.js';
import { assertClose, assertThrows, gpuSuite, randn, randomArray } from './util.js';

const test = gpuSuite('layerNormBackward');
const EPS = 1e-5;

// Float64 finite differences are accurate to ~1e-10 (see centralDifference),
// so the analytic float64 reference must agree to nearly that.
const REF_VS_FD = { atol: 1e-7, rtol: 1e-6 };
// Kernel (f32, with the forward kernel's f32 mean/rstd) against finite
// differences: f32 rounding of C-term reductions is ~1e-6 relative; 1e-3
// relative / 1e-4 absolute is the brief's gradient-check bound, and a wrong
// term (e.g. a missing mean(g·x̂) correction) errs by O(0.1).
const GPU_VS_FD = { atol: 1e-4, rtol: 1e-3 };
// Large shapes against the analytic reference: dx sums C ≤ 1031 terms of
// size ~1 and dγ/dβ sum up to 20000 rows in f32 (relative error ~ terms ·
// 6e-8 in the worst case, far less in practice); the bounds leave ~10× margin
// over the observed errors and are still 1000× below a wrong formula's.
// dx is ill-conditioned where a row's spread is tiny (rstd up to 1/√eps):
// x̂ = (x − μ)·rstd carries an f32 error ≈ 1.2e-7·|x|·rstd, which dx scales by
// rstd·|g| again; so each row gets atol 1e-5 + 1e-6·rstd²·max|x|·max|g| (~8×
// that estimate). Rows of C = 2 are the extreme: exact dx is ~0 there.
const GPU_VS_REF_DX = { atol: 1e-5, rtol: 1e-4, conditioned: 1e-6 };
const GPU_VS_REF_PARAMS = { atol: 1e-3, rtol: 1e-4 };

interface Case {
  rows: number;
  c: number;
  xs: Float32Array;
  dys: Float32Array;
  gammas: Float32Array;
  betas: Float32Array;
}

function makeCase(rows: number, c: number, seed: number): Case {
  // An offset mean makes the centring matter.
  const xs = randn(rows * c, seed).map((v) => 2 + 1.5 * v);
  return { rows, c, xs, dys: randn(rows * c, seed + 1), gammas: randomArray(c, seed + 2, 0.5, 1.5), betas: randomArray(c, seed + 3) };
}

/** Runs the forward kernel (saving mean/rstd), then the backward kernel; returns host arrays. */
async function gpuGrads(gpu: Gpu, k: Case, affine: boolean, shape = [k.rows, k.c]) {
  const x = Tensor.fromArray(gpu, k.xs, shape);
  const dy = Tensor.fromArray(gpu, k.dys, shape);
  const gamma = affine ? Tensor.fromArray(gpu, k.gammas, [k.c]) : undefined;
  const beta = affine ? Tensor.fromArray(gpu, k.betas, [k.c]) : undefined;
  const mean = Tensor.empty(gpu, [k.rows]);
  const rstd = Tensor.empty(gpu, [k.rows]);
  layerNorm(gpu, x, gamma, beta, { eps: EPS, mean, rstd }).dispose();
  const r = layerNormBackward(gpu, dy, x, mean, rstd, gamma);
  assert.equal(r.dx?.shape, shape);
  const out = { dx: await r.dx!.read(), dgamma: await r.dgamma?.read(), dbeta: await r.dbeta?.read() };
  for (const t of [x, dy, gamma, beta, mean, rstd, r.dx, r.dgamma, r.dbeta]) t?.dispose();
  return out;
}

test('analytic reference and kernel match finite differences of the float64 forward', async ({ gpu }) => {
  const shapes: [number, number][] = [[1, 1], [1, 5], [3, 7], [2, 13], [4, 300]];
  for (const [rows, c] of shapes) {
    const k = makeCase(rows, c, rows * 31 + c);
    const lossOf = (x: ArrayLike<number>, g: ArrayLike<number>, b: ArrayLike<number>) => dot(k.dys, norm.layerNorm(x, rows, c, g, b, EPS).y);
    const fdX = centralDifference((x) => lossOf(x, k.gammas, k.betas), k.xs);
    const fdGamma = centralDifference((g) => lossOf(k.xs, g, k.betas), k.gammas);
    const fdBeta = centralDifference((b) => lossOf(k.xs, k.gammas, b), k.betas);
    const want = refBackward(k.dys, k.xs, rows, c, k.gammas, EPS);
    const label = `[${rows}, ${c}]`;
    assertClose(want.dx, fdX, REF_VS_FD, `ref dx ${label}`);
    assertClose(want.dgamma, fdGamma, REF_VS_FD, `ref dgamma ${label}`);
    assertClose(want.dbeta, fdBeta, REF_VS_FD, `ref dbeta ${label}`);
    const got = await gpuGrads(gpu, k, true);
    assertClose(got.dx, fdX, GPU_VS_FD, `gpu dx ${label}`);
    assertClose(got.dgamma!, fdGamma, GPU_VS_FD, `gpu dgamma ${label}`);
    assertClose(got.dbeta!, fdBeta, GPU_VS_FD, `gpu dbeta ${label}`);

    const fdPlain = centralDifference((x) => dot(k.dys, norm.layerNorm(x, rows, c, undefined, undefined, EPS).y), k.xs);
    const plain = await gpuGrads(gpu, k, false);
    assert.is(plain.dgamma, undefined);
    assertClose(plain.dx, fdPlain, GPU_VS_FD, `gpu dx without gamma ${label}`);
  }
});

test('kernel matches the analytic reference on large shapes (C = 768, rows = 197·8; primes; many row blocks)', async ({ gpu }) => {
  const cases: { rows: number; c: number; shape: number[] }[] = [
    { rows: 197 * 8, c: 768, shape: [8, 197, 768] },
    { rows: 5, c: 1031, shape: [5, 1031] },
    { rows: 301, c: 3, shape: [7, 43, 3] },
    { rows: 20011, c: 2, shape: [20011, 2] }, // more than 256 · 32 rows: 256 blocks of 79 rows
  ];
  for (const { rows, c, shape } of cases) {
    const k = makeCase(rows, c, rows + c);
    const want = refBackward(k.dys, k.xs, rows, c, k.gammas, EPS);
    const got = await gpuGrads(gpu, k, true, shape);
    const { rstd } = norm.layerNorm(k.xs, rows, c, undefined, undefined, EPS);
    for (let r = 0; r < rows; r++) {
      const row = (a: ArrayLike<number>) => Array.prototype.slice.call(a, r * c, (r + 1) * c) as number[];
      const maxAbs = (a: number[]) => Math.max(...a.map(Math.abs));
      const scale = rstd[r] ** 2 * maxAbs(row(k.xs)) * maxAbs(row(k.dys).map((v, j) => v * k.gammas[j]));
      const tol = { atol: GPU_VS_REF_DX.atol + GPU_VS_REF_DX.conditioned * scale, rtol: GPU_VS_REF_DX.rtol };
      assertClose(row(got.dx), row(want.dx), tol, `dx ${shape} row ${r}`);
    }
    assertClose(got.dgamma!, want.dgamma, GPU_VS_REF_PARAMS, `dgamma ${shape}`);
    assertClose(got.dbeta!, want.dbeta, GPU_VS_REF_PARAMS, `dbeta ${shape}`);
  }
});

test('dgamma/dbeta are deterministic and independent of needInputGrad', async ({ gpu }) => {
  const k = makeCase(197 * 8, 768, 5);
  const x = Tensor.fromArray(gpu, k.xs, [k.rows, k.c]);
  const dy = Tensor.fromArray(gpu, k.dys, [k.rows, k.c]);
  const gamma = Tensor.fromArray(gpu, k.gammas, [k.c]);
  const mean = Tensor.empty(gpu, [k.rows]);
  const rstd = Tensor.empty(gpu, [k.rows]);
  layerNorm(gpu, x, gamma, undefined, { eps: EPS, mean, rstd });
  const full = layerNormBackward(gpu, dy, x, mean, rstd, gamma);
  const paramsOnly = layerNormBackward(gpu, dy, x, mean, rstd, gamma, { needInputGrad: false });
  assert.is(paramsOnly.dx, undefined);
  assert.equal(await paramsOnly.dgamma!.read(), await full.dgamma!.read());
  assert.equal(await paramsOnly.dbeta!.read(), await full.dbeta!.read());
  assert.equal(layerNormBackward(gpu, dy, x, mean, rstd, undefined, { needInputGrad: false }), {});
});

// layerNorm2d's backward: layerNorm's rule on the channels-last permutation,
// statistics recomputed. C = 5 channels at 3×4 pixels, x offset from 0 (the
// centring matters), eps 1e-6 as SAM's. LN2D_TOL is ~10× the worst measured
// on lavapipe: forward 5.0e-7, dx 1.5e-6, dgamma 5.4e-7, dbeta 2.5e-7 (on
// values up to 6.8).
const LN2D_TOL = { atol: 2e-5, rtol: 0 };

opCase(test, 'layerNorm2d graph op: dx, dgamma, dbeta match finite differences of the float64 forward', { layerNorm2d: 'gradient', layerNormBackward: 'forward' }, async ({ gpu }) => {
  const shape = [2, 5, 3, 4];
  const x = randn(2 * 5 * 3 * 4, 61).map((v) => 1 + 1.5 * v);
  await checkOp(gpu, 'layerNorm2d', {
    inputs: { x: { shape, data: x, grad: true }, gamma: { shape: [5], data: randomArray(5, 62, 0.5, 1.5), grad: true }, beta: { shape: [5], grad: true } },
    build: (g, v) => graphOps.layerNorm2d(g, v.x, v.gamma, v.beta, 1e-6),
    ref: (v) => norm.layerNorm2d(v.x, shape, v.gamma, v.beta, 1e-6),
    tol: LN2D_TOL,
  });
  // A frozen x (only dγ, dβ asked for) and a frozen γ, β (only dx).
  await checkOp(gpu, 'layerNorm2d params only', {
    inputs: { x: { shape, data: x }, gamma: { shape: [5], grad: true }, beta: { shape: [5], grad: true } },
    build: (g, v) => graphOps.layerNorm2d(g, v.x, v.gamma, v.beta, 1e-6),
    ref: (v) => norm.layerNorm2d(v.x, shape, v.gamma, v.beta, 1e-6),
    tol: LN2D_TOL,
  });
  await checkOp(gpu, 'layerNorm2d x only', {
    inputs: { x: { shape, data: x, grad: true }, gamma: { shape: [5] }, beta: { shape: [5] } },
    build: (g, v) => graphOps.layerNorm2d(g, v.x, v.gamma, v.beta, 1e-6),
    ref: (v) => norm.layerNorm2d(v.x, shape, v.gamma, v.beta, 1e-6),
    tol: LN2D_TOL,
  });
});

test('rejects bad dtypes, shapes, statistics, gamma and options', async ({ gpu }) => {
  const x = Tensor.empty(gpu, [4, 6]);
  const dy = Tensor.empty(gpu, [4, 6]);
  const stats = Tensor.empty(gpu, [4]);
  const op = /layerNormBackward/;
  await assertThrows(() => layerNormBackward(gpu, dy, Tensor.empty(gpu, [4, 6], 'i32'), stats, stats), op, /x must be f32/, /i32/);
  await assertThrows(() => layerNormBackward(gpu, Tensor.empty(gpu, [4, 6], 'u32'), x, stats, stats), op, /dy must be f32/, /u32/);
  await assertThrows(() => layerNormBackward(gpu, dy, Tensor.empty(gpu, [4, 0]), stats, stats), op, /non-empty last axis/, /\[4, 0\]/);
  await assertThrows(() => layerNormBackward(gpu, Tensor.empty(gpu, [6, 4]), x, stats, stats), op, /shape of x \[4, 6\]/, /\[6, 4\]/);
  await assertThrows(() => layerNormBackward(gpu, dy, x, Tensor.empty(gpu, [5]), stats), op, /mean must be f32 with 4 elements/, /\[5\]/);
  await assertThrows(() => layerNormBackward(gpu, dy, x, stats, Tensor.empty(gpu, [4], 'i32')), op, /rstd must be f32 with 4 elements/, /i32/);
  await assertThrows(() => layerNormBackward(gpu, dy, x, stats, stats, Tensor.empty(gpu, [4])), op, /gamma must have shape \[6\]/, /\[4\]/);
  await assertThrows(() => layerNormBackward(gpu, dy, x, stats, stats, Tensor.empty(gpu, [6], 'i32')), op, /gamma must be f32/, /i32/);
  await assertThrows(() => layerNormBackward(gpu, dy, x, stats, stats, undefined, { needInputGrad: 1 as unknown as boolean }), op, /needInputGrad must be a boolean/, /1/);
});

test.run();
