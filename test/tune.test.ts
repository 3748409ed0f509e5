import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Tensor,
  checkMatmulVariant,
  compareVariantOutput,
  fileTuningStore,
  matmul,
  referenceMismatch,
  setTuningFaultForTests,
  setTuningLog,
  setTuningStore,
  sweepVariants,
  tuneAttention,
  tuneAxisKernels,
  tuneConv2d,
  tuneMatmul,
  tunedVariant,
  type Gpu,
} from '../src/node.js';
import { assertThrows, gpuSuite } from './util.js';

const test = gpuSuite('tune');

const pass = { check: async () => undefined };

/** Runs `fn` with the fault hook and a captured tuning log, then restores both. */
async function withFault<T>(hook: (key: string, variant: string) => boolean, fn: (log: string[]) => Promise<T>): Promise<T> {
  const log: string[] = [];
  setTuningFaultForTests(hook);
  setTuningLog((m) => log.push(m));
  try {
    return await fn(log);
  } finally {
    setTuningFaultForTests(undefined);
    setTuningLog(undefined);
  }
}

test('a sweep picks the fastest variant, remembers it per device and in the store', async ({ gpu }) => {
  const dir = mkdtempSync(join(tmpdir(), 'medfocus-tune-'));
  const path = join(dir, 'tuning.json');
  setTuningStore(fileTuningStore(path));
  try {
    // "slow" really is slower: it busy-waits on the host while recording.
    const result = await sweepVariants(
      gpu,
      'test|sleep',
      ['slow', 'fast'],
      (v) => {
        const until = performance.now() + (v === 'slow' ? 30 : 0);
        while (performance.now() < until);
      },
      pass,
    );
    assert.is(result.best, 'fast');
    assert.ok(result.times.slow > result.times.fast);
    assert.equal(result.rejected, {});
    assert.is(tunedVariant(gpu, 'test|sleep'), 'fast');
    assert.is(JSON.parse(readFileSync(path, 'utf8'))[`${gpu.adapter.name}|test|sleep`], 'fast');
    // A fresh store over the same file sees the choice (another process would).
    assert.is(fileTuningStore(path).get(`${gpu.adapter.name}|test|sleep`), 'fast');
    // Variants that throw are skipped; all failing is an Error.
    const partial = await sweepVariants(
      gpu,
      'test|throws',
      ['bad', 'good'],
      (v) => {
        if (v === 'bad') throw new Error('unsupported here');
      },
      pass,
    );
    assert.is(partial.best, 'good');
    await assertThrows(() => sweepVariants(gpu, 'test|none', ['a'], () => { throw new Error('no'); }, pass), /every variant failed/);
    writeFileSync(path, '{ not json');
    await assertThrows(() => fileTuningStore(path), /fileTuningStore/, /tuning\.json/, /not a valid tuning file/);
  } finally {
    setTuningStore(undefined);
  }
});

test('referenceMismatch: within tol · max|want| passes; a wrong element, NaN or a wrong length does not', () => {
  const want = [1, -2, 4, 0];
  assert.is(referenceMismatch(Float32Array.from([1, -2, 4.0003, 0]), want), undefined, '7.5e-5 of the scale');
  assert.match(referenceMismatch(Float32Array.from([1, -2, 4.001, 0]), want) ?? '', /1 of 4 values off by more than 4\.0e-4; worst at 2/);
  assert.match(referenceMismatch(Float32Array.from([1, NaN, 4, 0]), want) ?? '', /worst at 1: NaN/);
  assert.match(referenceMismatch(Float32Array.from([1, -2, 4]), want) ?? '', /3 outputs instead of 4/);
  assert.is(referenceMismatch(new Float32Array(3), [0, 0, 0]), undefined, 'all zeros');
  // The test hook changes one element of the faulted variant's output only.
  assert.is(withHookCompare('k', 'other'), undefined);
  assert.match(withHookCompare('k', 'bad') ?? '', /1 of 8 values off/);
});

function withHookCompare(key: string, variant: string): string | undefined {
  setTuningFaultForTests((_k, v) => v === 'bad');
  try {
    const got = Float32Array.from({ length: 8 }, (_, i) => i);
    return compareVariantOutput(key, variant, got, Array.from(got));
  } finally {
    setTuningFaultForTests(undefined);
  }
}

// Two "variants" that really run on the GPU: 'wrong' multiplies by Bᵀ instead of B (fast), 'right' by B (slowed on the host).
test('a variant that gives wrong numbers on the device is never chosen, even when it is the fastest', async ({ gpu }) => {
  const [M, K, N] = [9, 12, 12];
  const aData = Float32Array.from({ length: M * K }, (_, i) => Math.sin(i));
  const bData = Float32Array.from({ length: K * N }, (_, i) => Math.cos(3 * i));
  const want = new Float64Array(M * N);
  for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) for (let k = 0; k < K; k++) want[i * N + j] += aData[i * K + k] * bData[k * N + j];
  const a = Tensor.fromArray(gpu, aData, [M, K]);
  const b = Tensor.fromArray(gpu, bData, [K, N]);
  const y = Tensor.empty(gpu, [M, N]);
  const compute = (v: string) => {
    if (v.startsWith('right')) {
      const until = performance.now() + 20;
      while (performance.now() < until);
    }
    return matmul(gpu, a, b, { transB: v.startsWith('wrong'), out: y });
  };
  const check = async (v: string) => referenceMismatch((await compute(v).read()) as Float32Array, want);
  const dir = mkdtempSync(join(tmpdir(), 'medfocus-tune-'));
  const path = join(dir, 'tuning.json');
  const log: string[] = [];
  setTuningStore(fileTuningStore(path));
  setTuningLog((m) => log.push(m));
  try {
    const result = await sweepVariants(gpu, 'test|wrong', ['wrong', 'right'], (v) => void compute(v), { check });
    assert.ok(result.times.wrong < result.times.right, 'the wrong variant is the faster one');
    assert.is(result.best, 'right');
    assert.equal(Object.keys(result.rejected), ['wrong']);
    assert.match(result.rejected.wrong, /values off by more than/);
    assert.is(log.length, 1);
    assert.match(log[0], /test\|wrong: variant wrong gives wrong numbers on .*; skipped/);
    assert.is(tunedVariant(gpu, 'test|wrong'), 'right');
    // Nothing wrong-only gets remembered, in memory or in the store.
    await assertThrows(() => sweepVariants(gpu, 'test|all-wrong', ['wrong', 'wrong-too'], (v) => void compute(v), { check }), /test\|all-wrong/, /every variant failed \(threw or gave wrong numbers\)/, /wrong-too: /);
    assert.is(tunedVariant(gpu, 'test|all-wrong'), undefined);
    assert.not.ok(`${gpu.adapter.name}|test|all-wrong` in JSON.parse(readFileSync(path, 'utf8')));
    // A check that throws counts as wrong.
    const thrown = await sweepVariants(gpu, 'test|check-throws', ['wrong', 'right'], (v) => void compute(v), {
      check: async (v) => {
        if (v === 'wrong') throw new Error('readback failed');
        return undefined;
      },
    });
    assert.is(thrown.best, 'right');
    assert.match(thrown.rejected.wrong, /its check threw: readback failed/);
  } finally {
    setTuningStore(undefined);
    setTuningLog(undefined);
    for (const t of [a, b, y]) t.dispose();
  }
});

/**
 * Each kernel's tuner runs its variants through its own check: with the test
 * hook faulting every variant but `keep`, `keep` is chosen (so its real,
 * unfaulted check passed on this adapter); faulting all of them throws.
 */
async function faultedTuning(gpu: Gpu, name: string, keys: (key: string) => boolean, variants: string[], tune: () => Promise<{ best: string; rejected: Record<string, string> }>): Promise<void> {
  const keep = variants[variants.length - 1];
  const result = await withFault((key, v) => keys(key) && v !== keep, async (log) => {
    const r = await tune();
    for (const v of Object.keys(r.rejected)) assert.ok(log.some((m) => m.includes(`variant ${v} gives wrong numbers`)), `${name}: ${v} logged`);
    return r;
  });
  assert.is(result.best, keep, `${name}: the only variant without a fault`);
  for (const v of Object.keys(result.rejected)) assert.is.not(v, keep);
  await withFault((key) => keys(key), async () => {
    await assertThrows(tune, /every variant failed \(threw or gave wrong numbers\)/);
  });
}

test('tuneMatmul never chooses a variant whose numbers are wrong on this adapter', async ({ gpu }) => {
  const variants = ['direct-wg8x1-r8x8', 'tiled-wg8x8-r4x4-k32'];
  // Unfaulted, every candidate passes the real check here.
  for (const v of variants) assert.is(await checkMatmulVariant(gpu, v), undefined, v);
  await faultedTuning(gpu, 'matmul', (key) => key === 'matmul', variants, () => tuneMatmul(gpu, [[40, 48, 56]], variants));
  assert.is(tunedVariant(gpu, 'matmul'), variants[1]);
});

test('tuneConv2d, tuneAttention and tuneAxisKernels never choose a faulted variant', async ({ gpu }) => {
  const x = Tensor.fromArray(gpu, Float32Array.from({ length: 2 * 6 * 9 * 11 }, (_, i) => Math.sin(i)), [2, 6, 9, 11]);
  const w = Tensor.fromArray(gpu, Float32Array.from({ length: 20 * 3 * 3 * 3 }, (_, i) => Math.cos(i)), [20, 3, 3, 3]);
  const bias = Tensor.fromArray(gpu, Float32Array.from({ length: 20 }, (_, i) => i / 10), [20]);
  try {
    const convOpts = { bias, padding: 1, stride: [2, 1] as [number, number], groups: 2 };
    // The variants tuneConv2d sweeps on this adapter (the direct ones on CPU adapters).
    const convVariants = Object.keys((await tuneConv2d(gpu, x, w, convOpts)).times);
    await faultedTuning(gpu, 'conv2d', (key) => key.startsWith('conv2d.gemm|'), convVariants, () => tuneConv2d(gpu, x, w, convOpts));
  } finally {
    for (const t of [x, w, bias]) t.dispose();
  }
  const attentionVariants = ['w16r2k16s4', 'w64r1k32s4'];
  await faultedTuning(gpu, 'attention', (key) => key.startsWith('attention|'), attentionVariants, async () => {
    const results = await tuneAttention(gpu, { headDims: [40], variants: attentionVariants });
    return Object.values(results)[0];
  });
  await faultedTuning(gpu, 'axis', (key) => key === 'axis|lanes', ['1', '8', '32', '256'], () => tuneAxisKernels(gpu));
});

test.run();
