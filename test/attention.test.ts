import * as assert from 'uvu/assert';
import { Tensor, attention, tuneAttention, tunedVariant, type AttentionOptions, type DType, type Gpu } from '../src/node.js';
import { attentionInputs, biasAndMask, biasShape, type AttentionRunOptions } from './attention-case.js';
import { attentionRef, bhldCase, blhdCase, type AttentionCase } from './ref/attention.js';
import { assertClose, assertThrows, gpuSuite, randn } from './util.js';

const test = gpuSuite('attention');

// Scores are f32 dot products of ~D terms (relative error ~D·6e-8); softmax is
// well conditioned, so they carry into the output about unchanged, plus the
// f32 exp and a sum over Lk terms (~√Lk·6e-8 typical). Outputs are convex
// combinations of v (|v| ≲ 4), so 2e-5 absolute + 1e-4 relative holds with
// margin up to Lk = 4096 and fails for any real indexing or masking error.
const TOL = { atol: 2e-5, rtol: 1e-4 };
// lse ≈ max score + log(Lk): absolute error of the f32 scores and log.
const LSE_TOL = { atol: 5e-5, rtol: 1e-5 };
// A +1e4 bias leaves f32 scores with rounding steps of ulp(1e4) ≈ 1e-3, which
// become relative errors of the softmax weights (the reference adds exactly).
const EXTREME_TOL = { atol: 1e-3, rtol: 1e-3 };

interface RunOptions extends AttentionRunOptions {
  lse?: boolean;
  variant?: string;
  /** Query rows the reference computes (default all); the output is compared on those rows. */
  queries?: number[];
  /** Scales the random q (larger scores). */
  qScale?: number;
  tol?: { atol: number; rtol: number };
}


/** Rows `queries` of an output in the case's layout. */
function pickRows(c: AttentionCase, data: ArrayLike<number>, queries: number[], width: number): Float32Array {
  const picked = new Float32Array(c.B * c.H * queries.length * width);
  for (let b = 0; b < c.B; b++) {
    for (let h = 0; h < c.H; h++) {
      queries.forEach((i, n) => {
        for (let e = 0; e < width; e++) {
          const from = c.layout === 'bhld' ? ((b * c.H + h) * c.Lq + i) * width + e : ((b * c.Lq + i) * c.H + h) * width + e;
          const to = c.layout === 'bhld' ? ((b * c.H + h) * queries.length + n) * width + e : ((b * queries.length + n) * c.H + h) * width + e;
          picked[to] = data[from];
        }
      });
    }
  }
  return picked;
}

/** Runs attention on random data and compares with the float64 reference; returns what the GPU gave. */
async function check(gpu: Gpu, c: AttentionCase, seed: number, o: RunOptions, label: string): Promise<{ out: Float32Array; lse?: Float32Array }> {
  const { qData, kData, vData, q, k, v } = attentionInputs(gpu, c, seed, o.qScale);
  const opts: AttentionOptions = { layout: c.layout, scale: o.scale, causal: o.causal, variant: o.variant, ...biasAndMask(gpu, c, o) };
  if (o.lse) opts.lse = Tensor.empty(gpu, [c.B, c.H, c.Lq]);
  const y = attention(gpu, q, k, v, opts);
  const out = (await y.read()) as Float32Array;
  const lse = opts.lse ? ((await opts.lse.read()) as Float32Array) : undefined;
  for (const t of [q, k, v, y, opts.bias, opts.keyPaddingMask, opts.lse]) t?.dispose();

  const queries = o.queries ?? Array.from({ length: c.Lq }, (_, i) => i);
  const ref = attentionRef({ ...c, q: qData, k: kData, v: vData, scale: o.scale, bias: o.bias, causal: o.causal, keyPaddingMask: o.mask?.data, queries });
  assertClose(o.queries ? pickRows(c, out, queries, c.Dv) : out, ref.out, o.tol ?? TOL, `${label} out`);
  if (lse) {
    const picked = o.queries ? pickRows({ ...c, layout: 'bhld', D: 1, Dv: 1 }, lse, queries, 1) : lse;
    // Fully masked rows: -Infinity exactly; the rest within tolerance.
    picked.forEach((x, i) => assert.ok((x === -Infinity) === (ref.lse[i] === -Infinity), `${label} lse ${i}: ${x} vs ${ref.lse[i]}`));
    const finite = (a: ArrayLike<number>) => Array.from(a, (x) => (x === -Infinity ? 0 : x));
    assertClose(finite(picked), finite(ref.lse), LSE_TOL, `${label} lse`);
  }
  return { out, lse };
}

const bhld = bhldCase;
const blhd = blhdCase;

test('head dims up to 32: L = 1, small odd dims, Dv ≠ D, explicit scale and out', async ({ gpu }) => {
  await check(gpu, bhld(1, 1, 1, 1, 8), 1, {}, 'B=H=L=1 D=8');
  await check(gpu, bhld(1, 1, 1, 7, 13), 2, {}, 'Lq=1 Lk=7 D=13');
  await check(gpu, bhld(2, 3, 7, 7, 13, 8), 3, {}, 'D=13 Dv=8');
  await check(gpu, blhd(2, 2, 7, 11, 3, 5), 4, {}, 'blhd D=3 Dv=5');
  await check(gpu, bhld(1, 2, 33, 33, 32), 5, { scale: 0.3 }, 'D=32 scale 0.3');
  const q = Tensor.fromArray(gpu, randn(2 * 5 * 32, 6), [1, 2, 5, 32]);
  const out = Tensor.empty(gpu, [1, 2, 5, 32]);
  const y = attention(gpu, q, q, q, { out });
  assert.is(y, out, 'writes into the given out');
  const ref = attentionRef({ ...bhld(1, 2, 5, 5, 32), q: await q.read(), k: await q.read(), v: await q.read() });
  assertClose(await out.read(), ref.out, TOL, 'into out');
});

test('D = 64: prime lengths (CLIP ViT-B/16 197 tokens), Lq ≠ Lk, both layouts', async ({ gpu }) => {
  await check(gpu, bhld(1, 12, 197, 197, 64), 10, {}, 'B=1 H=12 L=197');
  await check(gpu, blhd(1, 12, 197, 197, 64), 11, {}, 'blhd B=1 H=12 L=197');
  await check(gpu, bhld(2, 3, 7, 97, 64), 12, {}, 'Lq=7 Lk=97');
  await check(gpu, blhd(2, 3, 97, 7, 64), 13, {}, 'blhd Lq=97 Lk=7');
});

test('head dims 80, 96 and 128', async ({ gpu }) => {
  await check(gpu, bhld(1, 2, 61, 67, 80), 20, {}, 'D=80');
  await check(gpu, blhd(2, 1, 67, 61, 96), 21, {}, 'blhd D=96');
  await check(gpu, bhld(1, 2, 41, 130, 128), 22, {}, 'D=128');
});

test('long sequence: H=1, L=2048, D=64', async ({ gpu }) => {
  // L=2048 already spans 16 query blocks and 64 key tiles; the 4096-token
  // case follows at D=32, whose pipeline the small-head tests compiled
  // already (each new pipeline costs seconds of lavapipe compile time).
  await check(gpu, bhld(1, 1, 2048, 2048, 64), 30, { queries: [0, 1, 127, 128, 1000, 2046, 2047] }, 'L=2048');
});

test('4096 tokens (SAM2 global attention length), H=1, D=32', async ({ gpu }) => {
  const queries = Array.from({ length: 64 }, (_, n) => Math.min(4095, n * 67));
  await check(gpu, bhld(1, 1, 4096, 4096, 32), 31, { queries }, 'L=4096');
});

test('bias broadcast in each dim pattern', async ({ gpu }) => {
  const c = bhld(2, 3, 11, 13, 32);
  const patterns = ['', 'b', 'h', 'bh', 'q', 'bhq', 'hk', 'bhqk'].map((dims) => biasShape(c, dims));
  for (const [n, shape] of patterns.entries()) {
    const size = shape.reduce((a, b) => a * b);
    await check(gpu, c, 40 + n, { bias: { data: randn(size, 60 + n, 2), shape } }, `bias [${shape.join(', ')}]`);
  }
  await check(gpu, blhd(2, 3, 11, 13, 32), 49, { bias: { data: randn(3 * 11 * 13, 69), shape: [1, 3, 11, 13] } }, 'blhd bias');
});

test('extreme scores stay finite and exact: -1e9 and +1e4 bias, large q·k, -inf rows', async ({ gpu }) => {
  const c = bhld(1, 2, 9, 40, 32);
  const bias = new Float32Array(2 * 9 * 40);
  for (let i = 0; i < bias.length; i++) bias[i] = i % 3 === 0 ? -1e9 : i % 7 === 0 ? 1e4 : 0;
  // Row 4 of head 1 entirely -inf: every key masked, the row is defined as 0.
  bias.fill(-Infinity, (9 + 4) * 40, (9 + 5) * 40);
  const { out } = await check(gpu, c, 50, { bias: { data: bias, shape: [1, 2, 9, 40] }, qScale: 30, tol: EXTREME_TOL }, 'extreme bias');
  for (const x of out) assert.ok(Number.isFinite(x), `output ${x} is not finite`);
  for (let e = 0; e < 32; e++) assert.is(out[(9 + 4) * 32 + e], 0, 'all -inf row is zero');
});

test('causal (top-left aligned) across query blocks, Lq < Lk and Lq > Lk', async ({ gpu }) => {
  await check(gpu, bhld(1, 2, 300, 300, 32), 70, { causal: true }, 'causal L=300');
  await check(gpu, bhld(2, 1, 5, 37, 32), 71, { causal: true }, 'causal Lq=5 Lk=37');
  await check(gpu, blhd(1, 2, 37, 5, 32), 72, { causal: true }, 'blhd causal Lq=37 Lk=5');
});

test('key padding mask: u32 and f32 (nonzero = padded)', async ({ gpu }) => {
  const c = bhld(2, 2, 10, 23, 32);
  const mask = Array.from({ length: 2 * 23 }, (_, i) => (i % 23 >= 17 || i % 5 === 1 ? 1 : 0));
  await check(gpu, c, 80, { mask: { data: mask, dtype: 'u32' } }, 'u32 mask');
  // f32: -0 is not padding, any other nonzero value is.
  const f32mask = mask.map((m, i) => (m ? (i % 2 ? -1 : 0.5) : -0));
  await check(gpu, c, 81, { mask: { data: f32mask, dtype: 'f32' } }, 'f32 mask');
});

test('lse and fully masked rows with bias + mask + causal together', async ({ gpu }) => {
  const c = bhld(2, 2, 20, 20, 32);
  // Batch 0: key 0 padded, so under causal query 0 sees no key at all.
  // Batch 1: every key padded, so every row is fully masked.
  const mask = Array.from({ length: 2 * 20 }, (_, i) => (i === 0 || i >= 20 ? 1 : 0));
  const bias = { data: randn(20 * 20, 90), shape: [1, 1, 20, 20] };
  const { out, lse } = await check(gpu, c, 91, { bias, mask: { data: mask, dtype: 'u32' }, causal: true, lse: true }, 'lse');
  const lseGot = lse as Float32Array;
  for (let h = 0; h < 2; h++) {
    assert.is(lseGot[h * 20], -Infinity, `batch 0 head ${h} query 0: lse -inf`);
    for (let i = 0; i < 20; i++) assert.is(lseGot[(2 + h) * 20 + i], -Infinity, `batch 1 row ${i}: lse -inf`);
  }
  assert.ok(out.slice(2 * 20 * 32).every((x) => x === 0), 'batch 1 output is all zeros');
  assert.ok(out.every((x) => !Number.isNaN(x)), 'no NaN');
});

test('GPU-style variant (one query per invocation) and 8-key steps agree with the reference', async ({ gpu }) => {
  await check(gpu, bhld(1, 3, 97, 89, 64), 100, { variant: 'w64r1k32s4' }, 'w64r1k32s4');
  await check(gpu, blhd(1, 3, 97, 89, 64), 101, { variant: 'w32r4k32s8' }, 'w32r4k32s8');
});

test('tuneAttention picks one of the timed variants, and attention then uses it correctly', async ({ gpu }) => {
  const results = await tuneAttention(gpu, { headDims: [32], variants: ['w16r2k16s4', 'w16r8k32s16'] });
  const keys = Object.keys(results);
  assert.is(keys.length, 1, 'one head-dim class');
  const { best, times } = results[keys[0]];
  assert.ok(['w16r2k16s4', 'w16r8k32s16'].includes(best), `best ${best}`);
  assert.ok(Object.values(times).every(Number.isFinite), 'both variants ran');
  assert.is(tunedVariant(gpu, keys[0]), best, 'remembered for this device');
  await check(gpu, bhld(1, 2, 45, 45, 24), 110, {}, `tuned ${best}`);
  await assertThrows(() => tuneAttention(gpu, { variants: ['fast'] }), /tuneAttention/, /'fast'/);
});

test('rejects bad inputs with messages naming the offending values', async ({ gpu }) => {
  const t = (shape: number[], dtype: DType = 'f32') => Tensor.empty(gpu, shape, dtype);
  const q = t([1, 2, 5, 8]);
  await assertThrows(() => attention(gpu, t([1, 2, 5, 8], 'i32'), q, q), /attention/, /q must be f32/, /i32/);
  await assertThrows(() => attention(gpu, q, t([1, 2, 5, 8], 'f16'), q), /attention/, /k must be f32/, /f16/);
  await assertThrows(() => attention(gpu, t([2, 5, 8]), q, q), /attention/, /rank 4/, /\[2, 5, 8\]/);
  await assertThrows(() => attention(gpu, q, t([2, 2, 5, 8]), t([2, 2, 5, 8])), /attention/, /batch sizes differ/, /B=1, 2, 2/);
  await assertThrows(() => attention(gpu, q, q, t([1, 3, 5, 8])), /attention/, /head counts differ/, /H=2, 2, 3/);
  await assertThrows(() => attention(gpu, q, t([1, 2, 5, 16]), q), /attention/, /head dims of q and k differ/, /D=8 vs 16/);
  await assertThrows(() => attention(gpu, q, q, t([1, 2, 6, 8])), /attention/, /key lengths of k and v differ/, /Lk=5 vs 6/);
  await assertThrows(() => attention(gpu, q, t([1, 5, 2, 8]), q, { layout: 'blhd' }), /attention/, /differ/, /layout 'blhd'/);
  const wide = t([1, 2, 5, 132]);
  await assertThrows(() => attention(gpu, wide, wide, wide), /attention/, /up to 128/, /D=132/);
  await assertThrows(() => attention(gpu, q, q, t([1, 2, 5, 200])), /attention/, /up to 128/, /Dv=200/);
  await assertThrows(() => attention(gpu, q, q, q, { bias: t([1, 3, 5, 5]) }), /attention/, /bias \[1, 3, 5, 5\] is not broadcastable/, /\[1, 2, 5, 5\]/);
  await assertThrows(() => attention(gpu, q, q, q, { bias: t([2, 5, 5]) }), /attention/, /bias \[2, 5, 5\]/, /\[1, 2, 5, 5\]/);
  await assertThrows(() => attention(gpu, q, q, q, { bias: t([1, 2, 5, 5], 'i32') }), /attention/, /bias must be f32/, /i32/);
  await assertThrows(() => attention(gpu, q, q, q, { keyPaddingMask: t([5], 'u32') }), /attention/, /keyPaddingMask must be \[B, Lk\] = \[1, 5\]/, /got \[5\]/);
  await assertThrows(() => attention(gpu, q, q, q, { keyPaddingMask: t([1, 6], 'u32') }), /keyPaddingMask/, /\[1, 6\]/);
  await assertThrows(() => attention(gpu, q, q, q, { lse: t([1, 2, 6]) }), /attention/, /lse must be f32 \[B, H, Lq\] = \[1, 2, 5\]/, /\[1, 2, 6\]/);
  await assertThrows(() => attention(gpu, q, q, q, { out: t([1, 5, 2, 8]) }), /attention/, /out must be f32 \[1, 2, 5, 8\]/, /got f32 \[1, 5, 2, 8\]/);
  await assertThrows(() => attention(gpu, q, q, q, { out: t([1, 2, 5, 8], 'i32') }), /out must be f32/, /i32/);
  await assertThrows(() => attention(gpu, q, q, q, { variant: 'w16r9k32s8' }), /attention/, /variant 'w16r9k32s8'/);
  await assertThrows(() => attention(gpu, q, q, q, { layout: 'bdhl' as 'bhld' }), /attention/, /layout/, /'bdhl'/);
});

test.run();
