import * as assert from 'uvu/assert';
import { Tensor } from '../src/node.js';
import { AdamW, SgdMomentum, clipGradNorm, cosineSchedule, type OptimizerParam, type OptimizerState } from '../src/train/optimizer.js';
import { RefAdamW, RefSgd, refClipGradNorm, refCosineLr } from './ref/optimizer.js';
import { assertClose, assertThrows, gpuSuite, randn } from './util.js';

const test = gpuSuite('optimizer');

// f32 kernels against float64: each step rounds the parameter (~6e-8 relative)
// and the update (a few ulps of lr); over 10 steps that stays well below these.
const PARAM_TOL = { atol: 1e-6, rtol: 1e-5 };
// State buffers are sums of ~10 terms of magnitude up to ~4 that can cancel: the
// absolute error follows the terms (10 · 4 · 6e-8 ≈ 2.4e-6), not the small result.
const STATE_TOL = { atol: 4e-6, rtol: 1e-5 };
// One f32 sum of squares of up to ~7e4 terms, then a square root.
const NORM_TOL = { atol: 0, rtol: 1e-5 };

const SIZES = [1, 7, 1000];
const STEPS = 10;
const NAMES = ['bias', 'prompt', 'head'];

function initialValues(sizes: number[], seed: number): Float32Array[] {
  return sizes.map((n, k) => randn(n, seed + k));
}

/** The gradients of update number `step` (1-based), different every step. */
function gradientsAt(step: number, sizes: number[], scale = 1): Float32Array[] {
  return sizes.map((n, k) => randn(n, 1000 * step + k, scale));
}

function upload(gpu: Parameters<typeof Tensor.fromArray>[0], values: Float32Array[]): OptimizerParam[] {
  return values.map((v, k) => ({ name: NAMES[k], param: Tensor.fromArray(gpu, v, [v.length]) }));
}

/** Uploads this step's gradients, steps, and disposes them. */
function gpuStep(gpu: Parameters<typeof Tensor.fromArray>[0], opt: AdamW | SgdMomentum, step: number, lr?: number): void {
  const grads = new Map(gradientsAt(step, SIZES).map((g, k) => [NAMES[k], Tensor.fromArray(gpu, g, [g.length])] as const));
  opt.step(grads, lr);
  for (const g of grads.values()) g.dispose();
}

async function readAll(params: OptimizerParam[]): Promise<Float32Array[]> {
  return Promise.all(params.map(async (p) => (await p.param.read()) as Float32Array));
}

const adamConfigs = [
  { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 },
  { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 },
  { beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 0.01 },
];

for (const cfg of adamConfigs) {
  test(`AdamW matches float64 PyTorch rule over ${STEPS} steps (β ${cfg.beta1}/${cfg.beta2}, wd ${cfg.weightDecay})`, async ({ gpu }) => {
    const init = initialValues(SIZES, 7);
    const params = upload(gpu, init);
    const opt = new AdamW(gpu, params, { lr: 0.01, ...cfg });
    const ref = new RefAdamW(init.map((v) => Float64Array.from(v)), cfg);
    for (let t = 1; t <= STEPS; t++) {
      // Vary lr per step (override on odd steps) so the bias correction and decay see more than one lr.
      const lr = t % 2 ? 0.01 * t : undefined;
      gpuStep(gpu, opt, t, lr);
      ref.update(gradientsAt(t, SIZES), lr ?? 0.01);
    }
    assert.is(opt.stepCount, STEPS);
    const got = await readAll(params);
    got.forEach((p, k) => assertClose(p, ref.params[k], PARAM_TOL, `param ${NAMES[k]}`));
    const state = await opt.state();
    assert.is(state.step, STEPS);
    NAMES.forEach((name, k) => {
      assertClose(state.slots[name].m, ref.m[k], STATE_TOL, `m ${name}`);
      assertClose(state.slots[name].v, ref.v[k], STATE_TOL, `v ${name}`);
    });
    opt.dispose();
  });
}

test('AdamW: the reference distinguishes weight decay on/off by far more than the tolerance', () => {
  const init = initialValues(SIZES, 7);
  const run = (weightDecay: number) => {
    const ref = new RefAdamW(init.map((v) => Float64Array.from(v)), { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay });
    for (let t = 1; t <= STEPS; t++) ref.update(gradientsAt(t, SIZES), 0.01);
    return ref.params[2];
  };
  const on = run(0.1);
  const off = run(0);
  let maxDiff = 0;
  for (let i = 0; i < on.length; i++) maxDiff = Math.max(maxDiff, Math.abs(on[i] - off[i]));
  assert.ok(maxDiff > 100 * PARAM_TOL.rtol, `max difference ${maxDiff}`);
});

const sgdConfigs = [
  { momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: false },
  { momentum: 0.9, dampening: 0, weightDecay: 0.01, nesterov: true },
  { momentum: 0.5, dampening: 0.1, weightDecay: 0.01, nesterov: false },
  { momentum: 0, dampening: 0, weightDecay: 0.05, nesterov: false },
];

for (const cfg of sgdConfigs) {
  test(`SgdMomentum matches float64 PyTorch rule over ${STEPS} steps (momentum ${cfg.momentum}, dampening ${cfg.dampening}, wd ${cfg.weightDecay}, nesterov ${cfg.nesterov})`, async ({ gpu }) => {
    const init = initialValues(SIZES, 11);
    const params = upload(gpu, init);
    const opt = new SgdMomentum(gpu, params, { lr: 0.05, ...cfg });
    const ref = new RefSgd(init.map((v) => Float64Array.from(v)), cfg);
    for (let t = 1; t <= STEPS; t++) {
      const lr = t > 5 ? 0.02 : undefined;
      gpuStep(gpu, opt, t, lr);
      ref.update(gradientsAt(t, SIZES), lr ?? 0.05);
    }
    const got = await readAll(params);
    got.forEach((p, k) => assertClose(p, ref.params[k], PARAM_TOL, `param ${NAMES[k]}`));
    const state = await opt.state();
    NAMES.forEach((name, k) => {
      if (cfg.momentum === 0) assert.equal(Object.keys(state.slots[name]), [], `no buffer for ${name}`);
      else assertClose(state.slots[name].momentum, ref.buffers[k]!, STATE_TOL, `momentum ${name}`);
    });
    opt.dispose();
  });
}

function assertSameState(a: OptimizerState, b: OptimizerState, label: string): void {
  assert.is(a.optimizer, b.optimizer, label);
  assert.is(a.step, b.step, `${label}: step`);
  assert.equal(Object.keys(a.slots).sort(), Object.keys(b.slots).sort(), `${label}: params`);
  for (const name of Object.keys(a.slots)) {
    assert.equal(Object.keys(a.slots[name]).sort(), Object.keys(b.slots[name]).sort(), `${label}: slots of ${name}`);
    for (const slot of Object.keys(a.slots[name])) assert.equal([...a.slots[name][slot]], [...b.slots[name][slot]], `${label}: ${name}.${slot}`);
  }
}

const makers = {
  AdamW: (gpu: Parameters<typeof Tensor.fromArray>[0], params: OptimizerParam[]) => new AdamW(gpu, params, { lr: 0.01, weightDecay: 0.05 }),
  SgdMomentum: (gpu: Parameters<typeof Tensor.fromArray>[0], params: OptimizerParam[]) => new SgdMomentum(gpu, params, { lr: 0.05, nesterov: true, weightDecay: 0.01 }),
};

for (const [kind, make] of Object.entries(makers)) {
  test(`${kind}: state saved mid-run and loaded into a new optimizer continues bit-identically`, async ({ gpu }) => {
    const params = upload(gpu, initialValues(SIZES, 3));
    const original = make(gpu, params);
    for (let t = 1; t <= 5; t++) gpuStep(gpu, original, t);
    const saved = await original.state();
    assert.is(saved.step, 5);

    const copies = upload(gpu, await readAll(params));
    const resumed = make(gpu, copies);
    resumed.load(saved);
    assert.is(resumed.stepCount, 5);
    assertSameState(await resumed.state(), saved, 'round trip');

    for (let t = 6; t <= 10; t++) {
      gpuStep(gpu, original, t);
      gpuStep(gpu, resumed, t);
    }
    const a = await readAll(params);
    const b = await readAll(copies);
    a.forEach((p, k) => assert.equal([...b[k]], [...p], `param ${NAMES[k]}`));
    assertSameState(await resumed.state(), await original.state(), 'after 10 steps');

    // A fresh optimizer without the state (step 1 bias correction / buffer init) diverges: the test can fail.
    const fresh = upload(gpu, a);
    const unloaded = make(gpu, fresh);
    gpuStep(gpu, unloaded, 11);
    gpuStep(gpu, original, 11);
    const diverged = await readAll(fresh);
    const continued = await readAll(params);
    assert.ok(diverged[2].some((x, i) => x !== continued[2][i]), 'state matters');
    original.dispose();
    resumed.dispose();
    unloaded.dispose();
  });
}

test('clipGradNorm matches clip_grad_norm_ above and below maxNorm, deterministically', async ({ gpu }) => {
  // 70001 spans 18 first-level tiles of 4096 with a ragged last one; 0 elements contribute nothing.
  const sizes = [1, 7, 1000, 70001, 0];
  const data = gradientsAt(1, sizes, 0.01);
  const norm = refClipGradNorm(data, 1).norm;
  for (const maxNorm of [norm / 3, norm * 2]) {
    const grads = data.map((g) => Tensor.fromArray(gpu, g, [g.length]));
    const normTensor = clipGradNorm(gpu, grads, maxNorm);
    const expected = refClipGradNorm(data, maxNorm);
    const gotNorm = await normTensor.read();
    assert.equal([...normTensor.shape], [1]);
    assertClose(gotNorm, [expected.norm], NORM_TOL, `norm (maxNorm ${maxNorm})`);
    for (let k = 0; k < grads.length; k++) assertClose(await grads[k].read(), expected.clipped[k], PARAM_TOL, `grad ${k} (maxNorm ${maxNorm})`);
    if (maxNorm > norm) for (let k = 0; k < grads.length; k++) assert.equal([...(await grads[k].read())], [...data[k]], `grad ${k} untouched below maxNorm`);

    // Same inputs, same bits: the reduction order is fixed.
    const again = data.map((g) => Tensor.fromArray(gpu, g, [g.length]));
    const second = await clipGradNorm(gpu, new Map(again.map((g, k) => [`g${k}`, g])), maxNorm).read();
    assert.is(second[0], gotNorm[0], 'deterministic norm');
    for (const g of [...grads, ...again]) g.dispose();
  }
});

test('clipGradNorm: no gradients gives norm 0', async ({ gpu }) => {
  assert.equal([...(await clipGradNorm(gpu, [], 1).read())], [0]);
});

test('clipGradNorm: a NaN or inf gradient gives a NaN/inf norm and leaves gradients unchanged', async ({ gpu }) => {
  for (const [bad, isExpected] of [
    [NaN, Number.isNaN],
    [Infinity, (x: number) => x === Infinity],
  ] as const) {
    const a = Tensor.fromArray(gpu, [3, bad, 4], [3]);
    const b = Tensor.fromArray(gpu, [100, -200], [2]);
    const [norm] = await clipGradNorm(gpu, { a, b }, 1).read();
    assert.ok(isExpected(norm), `norm ${norm} for a ${bad} gradient`);
    assert.equal([...(await b.read())], [100, -200]);
    const gotA = await a.read();
    assert.is(gotA[0], 3);
    assert.is(gotA[2], 4);
  }
});

test('AdamW.step does not check gradients: a NaN gradient makes that element NaN only', async ({ gpu }) => {
  const p = Tensor.fromArray(gpu, [1, 2, 3], [3]);
  const opt = new AdamW(gpu, [{ name: 'p', param: p }], { lr: 0.1 });
  opt.step({ p: Tensor.fromArray(gpu, [0.5, NaN, 0.5], [3]) });
  const got = await p.read();
  assert.ok(Number.isNaN(got[1]));
  assert.ok(Number.isFinite(got[0]) && Number.isFinite(got[2]));
});

test('cosineSchedule matches the warm-up + cosine formula and known values', () => {
  for (const [baseLr, warmupSteps, totalSteps, minLr] of [
    [1e-3, 10, 100, 0],
    [0.5, 0, 37, 0.01],
    [2, 5, 6, 1],
  ]) {
    const lr = cosineSchedule({ baseLr, warmupSteps, totalSteps, minLr });
    const steps = Array.from({ length: totalSteps + 5 }, (_, i) => i + 1);
    assertClose(steps.map(lr), steps.map((s) => refCosineLr(s, baseLr, warmupSteps, totalSteps, minLr)), { atol: 1e-15, rtol: 1e-12 }, `schedule ${baseLr}/${warmupSteps}/${totalSteps}/${minLr}`);
  }
  const lr = cosineSchedule({ baseLr: 1, warmupSteps: 10, totalSteps: 110 });
  assertClose([lr(1), lr(5), lr(10), lr(60), lr(110), lr(500)], [0.1, 0.5, 1, 0.5, 0, 0], { atol: 1e-12, rtol: 0 }, 'known values');
});

test('rejects bad construction, gradients, learning rates and states with useful messages', async ({ gpu }) => {
  const w = Tensor.fromArray(gpu, [1, 2, 3, 4, 5, 6], [2, 3]);
  const b = Tensor.fromArray(gpu, [0], [1]);
  const params = [
    { name: 'w', param: w },
    { name: 'b', param: b },
  ];
  await assertThrows(() => new AdamW(gpu, [], { lr: 1 }), /AdamW/, /empty/);
  await assertThrows(() => new AdamW(gpu, [{ name: 'w', param: w }, { name: 'w', param: b }], { lr: 1 }), /AdamW/, /duplicate/, /'w'/);
  await assertThrows(() => new AdamW(gpu, [{ name: 'w', param: w }, { name: 'v', param: w.reshape([6]) }], { lr: 1 }), /AdamW/, /'w' and 'v'/, /buffer/);
  await assertThrows(() => new AdamW(gpu, [{ name: 'i', param: Tensor.fromArray(gpu, [1], [1], 'i32') }], { lr: 1 }), /AdamW/, /'i'/, /f32/, /i32/);
  await assertThrows(() => new AdamW(gpu, params, { lr: NaN }), /AdamW/, /lr/, /NaN/);
  await assertThrows(() => new AdamW(gpu, params, { lr: 1, beta2: 1 }), /AdamW/, /beta2/, /\[0, 1\)/, /got 1/);
  await assertThrows(() => new AdamW(gpu, params, { lr: 1, weightDecay: -1 }), /AdamW/, /weightDecay/, /-1/);
  await assertThrows(() => new SgdMomentum(gpu, params, { lr: 1, momentum: 0, nesterov: true }), /SgdMomentum/, /nesterov/, /momentum 0/);
  await assertThrows(() => new SgdMomentum(gpu, params, { lr: 1, dampening: 0.5, nesterov: true }), /SgdMomentum/, /nesterov/, /dampening 0.5/);

  const opt = new AdamW(gpu, params, { lr: 0.1 });
  const gw = Tensor.fromArray(gpu, [1, 2, 3, 4, 5, 6], [2, 3]);
  const gb = Tensor.fromArray(gpu, [1], [1]);
  await assertThrows(() => opt.step({ w: gw }), /AdamW\.step/, /no gradient for param 'b'/);
  await assertThrows(() => opt.step({ w: gw.reshape([3, 2]), b: gb }), /AdamW\.step/, /'w'/, /\[3, 2\]/, /\[2, 3\]/);
  await assertThrows(() => opt.step({ w: gw, b: gb, c: gb }), /AdamW\.step/, /'c' names no parameter/);
  await assertThrows(() => opt.step({ w: gw, b: Tensor.fromArray(gpu, [1], [1], 'i32') }), /AdamW\.step/, /'b'/, /f32/, /i32/);
  await assertThrows(() => opt.step({ w: w, b: gb }), /AdamW\.step/, /'w'/, /shares its buffer/);
  await assertThrows(() => opt.step({ w: gw, b: gb }, Infinity), /AdamW\.step/, /lr/, /Infinity/);
  await assertThrows(() => { opt.lr = -1; }, /AdamW/, /lr/, /-1/);
  assert.is(opt.stepCount, 0, 'failed steps do not count');
  assert.equal([...(await w.read())], [1, 2, 3, 4, 5, 6], 'failed steps do not touch params');

  opt.step(new Map([['w', gw], ['b', gb]]));
  const state = await opt.state();
  const sgd = new SgdMomentum(gpu, params, { lr: 0.1 });
  await assertThrows(() => sgd.load(state), /SgdMomentum\.load/, /AdamW/);
  await assertThrows(() => opt.load({ ...state, step: 1.5 }), /AdamW\.load/, /step/, /1\.5/);
  await assertThrows(() => opt.load({ ...state, slots: { w: state.slots.w } }), /AdamW\.load/, /lacks param 'b'/);
  await assertThrows(() => opt.load({ ...state, slots: { ...state.slots, x: state.slots.b } }), /AdamW\.load/, /'x'/);
  await assertThrows(() => opt.load({ ...state, slots: { ...state.slots, w: { m: state.slots.w.m, v: new Float32Array(5) } } }), /AdamW\.load/, /'w'/, /'v'/, /5 elements/, /6/);
  await assertThrows(() => opt.load({ ...state, slots: { ...state.slots, b: { m: state.slots.b.m } } }), /AdamW\.load/, /'b' lacks state 'v'/);
  assertSameState(await opt.state(), state, 'failed loads leave the state');

  await assertThrows(() => clipGradNorm(gpu, [gw], 0), /clipGradNorm/, /maxNorm/, /got 0/);
  await assertThrows(() => clipGradNorm(gpu, [gw, gw.reshape([6])], 1), /clipGradNorm/, /gradient 1/, /shares its buffer/);
  await assertThrows(() => clipGradNorm(gpu, [Tensor.fromArray(gpu, [1], [1], 'u32')], 1), /clipGradNorm/, /f32/, /u32/);

  await assertThrows(() => cosineSchedule({ baseLr: 1, warmupSteps: 10, totalSteps: 10 }), /cosineSchedule/, /totalSteps/, /10/);
  await assertThrows(() => cosineSchedule({ baseLr: 1, warmupSteps: 1, totalSteps: 10, minLr: 2 }), /cosineSchedule/, /minLr/, /2/);
  await assertThrows(() => cosineSchedule({ baseLr: 1, warmupSteps: 1, totalSteps: 10 })(0), /cosineSchedule/, /step/, /got 0/);
});

test.run();
