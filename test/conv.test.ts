import * as assert from 'uvu/assert';
import { Tensor, conv2d, convTranspose2d, graphOps as G, maxPool2d, tuneConv2d, tunedVariant, CONV_TILE_VARIANTS, type ConvTileVariant, type Gpu } from '../src/node.js';
import { gelu } from './ref/activations.js';
import * as ref from './ref/conv.js';
import { checkOp, opCase } from './ref/op-check.js';
import { refDepthwiseConv2dNhwc } from './ref/tinyvit.js';
import { assertClose, assertThrows, gpuSuite, randomArray } from './util.js';

const test = gpuSuite('conv');

// fp32 sums of K ≤ 800 products of values in [-1, 1] (and fma ordering that
// differs from the float64 loop): rounding stays well under K·2^-24·Σ|terms|
// ≈ 3e-5 here; erf's 1.5e-7 approximation in gelu adds nothing visible.
const TOL = { atol: 1e-4, rtol: 1e-4 };
// Max pooling selects an input value: exact.
const EXACT = { atol: 0, rtol: 0 };

type Shape4 = ref.Shape4;
type ConvCase = ref.ConvCase;
type Pair = [number, number];

/** A seed from a case's name (FNV-1a): each case has its own inputs whichever tests ran before it. */
function seedOf(label: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

async function checkConv(gpu: Gpu, c: ConvCase, variant?: ConvTileVariant): Promise<void> {
  let seed = seedOf(`conv2d ${c.name} ${variant ?? ''}`);
  const xs = randomArray(c.x.reduce((a, b) => a * b), seed++);
  const ws = randomArray(c.w.reduce((a, b) => a * b), seed++);
  const bs = c.bias ? randomArray(c.w[0], seed++) : undefined;
  const x = Tensor.fromArray(gpu, xs, c.x);
  const w = Tensor.fromArray(gpu, ws, c.w);
  const bias = bs ? Tensor.fromArray(gpu, bs, [c.w[0]]) : undefined;
  const opts = { stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups, activation: c.activation };
  const y = conv2d(gpu, x, w, { ...opts, bias, variant });
  const want = ref.conv2d(xs, c.x, ws, c.w, { ...opts, bias: bs });
  assert.equal(y.shape, want.shape, `${c.name}: shape`);
  assertClose(await y.read(), want.data, TOL, `${c.name}${variant ? ` (${variant})` : ''}`);
  for (const t of [x, w, bias, y]) t?.dispose();
}

const CONV_CASES: ConvCase[] = [
  { name: '1×1, batch 2, primes', x: [2, 13, 7, 9], w: [17, 13, 1, 1], bias: true },
  { name: '3×3 pad 1, relu, 13×17', x: [1, 8, 13, 17], w: [16, 8, 3, 3], padding: [1, 1], bias: true, activation: 'relu' },
  { name: '3×3 stride 2 pad 1, batch 2', x: [2, 5, 15, 16], w: [7, 5, 3, 3], stride: [2, 2], padding: [1, 1] },
  { name: '3×3 dilation 2 pad 2', x: [1, 6, 17, 13], w: [5, 6, 3, 3], dilation: [2, 2], padding: [2, 2], bias: true },
  { name: 'groups 2', x: [1, 8, 11, 11], w: [6, 4, 3, 3], groups: 2, padding: [1, 1] },
  { name: 'groups 3, stride 2, gelu', x: [2, 9, 10, 7], w: [12, 3, 3, 3], groups: 3, stride: [2, 2], bias: true, activation: 'gelu' },
  { name: 'depthwise 7×7 pad 3 (ConvNeXt), gelu', x: [2, 24, 14, 14], w: [24, 1, 7, 7], groups: 24, padding: [3, 3], bias: true, activation: 'gelu' },
  { name: 'depthwise multiplier 2, stride 2', x: [1, 3, 10, 11], w: [6, 1, 3, 3], groups: 3, stride: [2, 2], padding: [1, 1], bias: true },
  { name: 'one input channel, groups 1 (depthwise path)', x: [1, 1, 9, 8], w: [5, 1, 3, 3], dilation: [1, 2], bias: true, activation: 'relu' },
  { name: 'patch embed 16×16/16 on 3×64²', x: [1, 3, 64, 64], w: [96, 3, 16, 16], stride: [16, 16], bias: true },
  { name: 'patch embed 4×4/4, batch 2', x: [2, 3, 32, 28], w: [40, 3, 4, 4], stride: [4, 4], bias: true },
  { name: 'asymmetric 3×5, stride [1,2], pad [2,1], dilation [1,2]', x: [1, 4, 12, 19], w: [6, 4, 3, 5], stride: [1, 2], padding: [2, 1], dilation: [1, 2] },
  { name: 'several column tiles (O=70)', x: [1, 20, 9, 9], w: [70, 20, 3, 3], padding: [1, 1], bias: true },
  { name: 'single output pixel', x: [1, 7, 3, 3], w: [3, 7, 3, 3] },
];

for (const c of CONV_CASES) {
  test(`conv2d ${c.name}`, async ({ gpu }) => {
    await checkConv(gpu, c);
  });
}

test('conv2d every GEMM variant, tiled and direct (non-multiple rows and columns)', async ({ gpu }) => {
  for (const variant of Object.keys(CONV_TILE_VARIANTS) as ConvTileVariant[]) {
    await checkConv(gpu, { name: 'O=70 pad 1', x: [2, 5, 11, 13], w: [70, 5, 3, 3], padding: [1, 1], bias: true }, variant);
    // Strided, dilated, asymmetric and grouped: the direct kernel's pixel block steps by SW and clamps at both image edges.
    await checkConv(gpu, { name: 'stride 2 dilation 2 groups 2', x: [2, 6, 13, 17], w: [10, 3, 3, 2], stride: [2, 3], padding: [2, 1], dilation: [2, 2], groups: 2, bias: true, activation: 'relu' }, variant);
  }
});

test('conv2d larger: 1×64×56×56 → 128, 3×3 pad 1', async ({ gpu }) => {
  await checkConv(gpu, { name: 'large', x: [1, 64, 56, 56], w: [128, 64, 3, 3], padding: [1, 1], bias: true });
});

test('conv2d more than 65535 row tiles (grid folds into z)', async ({ gpu }) => {
  // 2050² output pixels / 64 rows per tile = 65664 tiles; a 1×1 kernel keeps it cheap.
  await checkConv(gpu, { name: 'fold', x: [1, 2, 2050, 2050], w: [1, 2, 1, 1], bias: true }, '64x16');
  // Direct, 4-pixel blocks: 2050 · ⌈2050/4⌉ blocks / 8 per workgroup = 131457 workgroups.
  await checkConv(gpu, { name: 'fold', x: [1, 2, 2050, 2050], w: [1, 2, 1, 1], bias: true }, 'direct-4x16');
});

test('conv2d writes into out', async ({ gpu }) => {
  const xs = randomArray(2 * 3 * 5 * 5, 91);
  const ws = randomArray(4 * 3 * 3 * 3, 92);
  const x = Tensor.fromArray(gpu, xs, [2, 3, 5, 5]);
  const w = Tensor.fromArray(gpu, ws, [4, 3, 3, 3]);
  const out = Tensor.empty(gpu, [2, 4, 3, 3]);
  const y = conv2d(gpu, x, w, { out });
  assert.is(y, out);
  assertClose(await out.read(), ref.conv2d(xs, [2, 3, 5, 5], ws, [4, 3, 3, 3]).data, TOL, 'out');
});

test('tuneConv2d records a variant that conv2d then uses correctly', async ({ gpu }) => {
  const shape: Shape4 = [1, 6, 9, 9];
  const wShape: Shape4 = [20, 6, 3, 3];
  const xs = randomArray(6 * 81, 93);
  const ws = randomArray(20 * 54, 94);
  const x = Tensor.fromArray(gpu, xs, shape);
  const w = Tensor.fromArray(gpu, ws, wShape);
  const result = await tuneConv2d(gpu, x, w, { padding: 1 });
  assert.ok(result.best in CONV_TILE_VARIANTS, `best ${result.best}`);
  // CPU adapters sweep only the direct variants, GPUs only the tiled ones.
  const swept = Object.keys(CONV_TILE_VARIANTS).filter((v) => v.startsWith('direct-') === gpu.adapter.isCpu);
  assert.equal(Object.keys(result.times).sort(), swept.sort());
  for (const v of swept) assert.ok(Number.isFinite(result.times[v]), `variant ${v} ran`);
  assert.is(result.times[result.best], Math.min(...Object.values(result.times)), `best ${result.best} is the fastest: ${JSON.stringify(result.times)}`);
  assert.is(tunedVariant(gpu, 'conv2d.gemm|o32|m-small'), result.best);
  assertClose(await conv2d(gpu, x, w, { padding: 1 }).read(), ref.conv2d(xs, shape, ws, wShape, { padding: [1, 1] }).data, TOL, 'tuned');
  await assertThrows(() => tuneConv2d(gpu, x, Tensor.fromArray(gpu, randomArray(54, 1), [6, 1, 3, 3]), { groups: 6 }), /tuneConv2d/, /depthwise kernel/);
});

/** A ConvCase's geometry (no fused activation) plus the output padding. */
interface ConvTransposeCase extends Omit<ConvCase, 'activation'> {
  outputPadding?: Pair;
}

async function checkConvTranspose(gpu: Gpu, c: ConvTransposeCase): Promise<void> {
  const groups = c.groups ?? 1;
  const O = c.w[1] * groups;
  let seed = seedOf(`convTranspose2d ${c.name}`);
  const xs = randomArray(c.x.reduce((a, b) => a * b), seed++);
  const ws = randomArray(c.w.reduce((a, b) => a * b), seed++);
  const bs = c.bias ? randomArray(O, seed++) : undefined;
  const x = Tensor.fromArray(gpu, xs, c.x);
  const w = Tensor.fromArray(gpu, ws, c.w);
  const bias = bs ? Tensor.fromArray(gpu, bs, [O]) : undefined;
  const opts = { stride: c.stride, padding: c.padding, outputPadding: c.outputPadding, dilation: c.dilation, groups: c.groups };
  const y = convTranspose2d(gpu, x, w, { ...opts, bias });
  const want = ref.convTranspose2d(xs, c.x, ws, c.w, { ...opts, bias: bs });
  assert.equal(y.shape, want.shape, `${c.name}: shape`);
  assertClose(await y.read(), want.data, TOL, c.name);
  for (const t of [x, w, bias, y]) t?.dispose();
}

const CONV_TRANSPOSE_CASES: ConvTransposeCase[] = [
  { name: '2×2 stride 2 (SAM upscaling), batch 2', x: [2, 16, 7, 9], w: [16, 8, 2, 2], stride: [2, 2], bias: true },
  { name: '3×3 stride 2 pad 1 outputPadding 1', x: [1, 6, 5, 7], w: [6, 5, 3, 3], stride: [2, 2], padding: [1, 1], outputPadding: [1, 1], bias: true },
  { name: 'stride 3 > kernel 2 (phases without taps get the bias)', x: [1, 4, 4, 5], w: [4, 3, 2, 2], stride: [3, 3], bias: true },
  { name: 'stride 1, pad 2, asymmetric 3×2 kernel', x: [1, 5, 6, 7], w: [5, 4, 3, 2], padding: [2, 1] },
  { name: 'groups 2, dilation 2, stride 2', x: [1, 6, 6, 5], w: [6, 2, 3, 3], groups: 2, dilation: [2, 2], stride: [2, 2], padding: [1, 1] },
  { name: 'stride 2 dilation 3 (tap step 2), stride [2,3]', x: [2, 3, 5, 4], w: [3, 4, 4, 5], stride: [2, 3], dilation: [3, 3], padding: [2, 1], outputPadding: [1, 2] },
  { name: 'several column tiles (O=70), primes', x: [1, 8, 7, 11], w: [8, 70, 2, 2], stride: [2, 2], bias: true },
  { name: 'SAM-sized 64→32 channels, 2×2/2 on 32²', x: [1, 64, 32, 32], w: [64, 32, 2, 2], stride: [2, 2], bias: true },
];

for (const c of CONV_TRANSPOSE_CASES) {
  test(`convTranspose2d ${c.name}`, async ({ gpu }) => {
    await checkConvTranspose(gpu, c);
  });
}

test('convTranspose2d more than 65535 row tiles (grid folds into z)', async ({ gpu }) => {
  await checkConvTranspose(gpu, { name: 'fold', x: [1, 2, 2050, 2050], w: [2, 1, 1, 1], bias: true });
});

interface PoolCase {
  name: string;
  x: Shape4;
  kernel: Pair;
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  ceilMode?: boolean;
  /** PyTorch's output size, stated independently of both implementations. */
  out: Pair;
}

const POOL_CASES: PoolCase[] = [
  { name: '2×2 stride 2 (Hiera)', x: [2, 3, 8, 10], kernel: [2, 2], out: [4, 5] },
  { name: '2×2 on odd 7×9 floors', x: [1, 2, 7, 9], kernel: [2, 2], out: [3, 4] },
  { name: '2×2 on odd 7×9, ceilMode', x: [1, 2, 7, 9], kernel: [2, 2], ceilMode: true, out: [4, 5] },
  { name: '3×3 stride 2 pad 1 on 13×17', x: [1, 4, 13, 17], kernel: [3, 3], stride: [2, 2], padding: [1, 1], out: [7, 9] },
  { name: '3×3 stride 2 pad 1 ceilMode on 14×15 (one more window)', x: [1, 2, 14, 15], kernel: [3, 3], stride: [2, 2], padding: [1, 1], ceilMode: true, out: [8, 8] },
  { name: '2×2 stride 2 pad 1 ceilMode on 5×6 (window starting in the right padding dropped)', x: [1, 2, 5, 6], kernel: [2, 2], padding: [1, 1], ceilMode: true, out: [3, 4] },
  { name: '3×3 stride 2 ceilMode on 14×14', x: [1, 2, 14, 14], kernel: [3, 3], stride: [2, 2], ceilMode: true, out: [7, 7] },
  { name: 'dilation 2, kernel 3, stride 1, pad 1', x: [2, 3, 11, 12], kernel: [3, 3], stride: [1, 1], dilation: [2, 2], padding: [1, 1], out: [9, 10] },
  { name: 'kernel [2,3], stride [1,2]', x: [1, 5, 6, 13], kernel: [2, 3], stride: [1, 2], out: [5, 6] },
];

for (const c of POOL_CASES) {
  test(`maxPool2d ${c.name}`, async ({ gpu }) => {
    // Negative values only: a padding read as 0 instead of −inf would win.
    const xs = randomArray(c.x.reduce((a, b) => a * b), seedOf(`maxPool2d ${c.name}`), -2, -0.5);
    const x = Tensor.fromArray(gpu, xs, c.x);
    const opts = { kernel: c.kernel, stride: c.stride, padding: c.padding, dilation: c.dilation, ceilMode: c.ceilMode };
    const y = maxPool2d(gpu, x, opts);
    const want = ref.maxPool2d(xs, c.x, opts);
    assert.equal(y.shape, [c.x[0], c.x[1], ...c.out], `${c.name}: shape`);
    assert.equal(want.shape, [c.x[0], c.x[1], ...c.out], `${c.name}: reference shape`);
    assertClose(await y.read(), want.data, EXACT, c.name);
  });
}

test('maxPool2d defaults stride to the kernel and propagates NaN', async ({ gpu }) => {
  const xs = randomArray(1 * 2 * 6 * 6, 77);
  xs[7] = NaN; // row 1, column 1 of channel 0: inside output (0, 0)
  const x = Tensor.fromArray(gpu, xs, [1, 2, 6, 6]);
  const got = await maxPool2d(gpu, x, { kernel: 2 }).read();
  assert.is(got.length, 2 * 3 * 3);
  assert.ok(Number.isNaN(got[0]), `NaN window gave ${got[0]}`);
  assertClose(got, ref.maxPool2d(xs, [1, 2, 6, 6], { kernel: [2, 2] }).data, EXACT, 'nan');
});

// The graph ops: forward-only (op-table.ts says why); checkOp also checks that backward() through them throws, naming the op.
opCase(test, 'maxPool2d graph op (forward only) matches the float64 reference: padding, dilation, stride, floor mode', { maxPool2d: 'forward' }, async ({ gpu }) => {
  for (const [k, o] of [{ kernel: 2 }, { kernel: [3, 2], stride: [2, 1], padding: [1, 0], dilation: [1, 2] }].entries()) {
    const shape: Shape4 = [2, 3, 7, 6];
    const pair = (v: number | number[] | undefined): Pair | undefined => (v === undefined ? undefined : typeof v === 'number' ? [v, v] : [v[0], v[1]]);
    await checkOp(gpu, `maxPool2d ${JSON.stringify(o)}`, {
      // Negative values only: a padding read as 0 instead of −inf would win.
      inputs: { x: { shape, data: randomArray(2 * 3 * 7 * 6, 90 + k, -2, -0.5) } },
      build: (g, v) => G.maxPool2d(g, v.x, { kernel: pair(o.kernel)!, stride: pair(o.stride), padding: pair(o.padding), dilation: pair(o.dilation) }),
      ref: (v) => ref.maxPool2d(v.x, shape, { kernel: pair(o.kernel)!, stride: pair(o.stride), padding: pair(o.padding), dilation: pair(o.dilation) }).data,
      tol: EXACT,
    });
  }
});

// Sums of at most 9 products of unit normals by 0.5·N(0, 1) weights plus a bias, then GELU: DEPTHWISE_GRAPH_TOL is ~10×
// the 4.1e-7 measured on lavapipe (on values up to 4.9).
const DEPTHWISE_GRAPH_TOL = { atol: 4e-6, rtol: 0 };

opCase(test, 'depthwiseConv2dNhwc graph op (forward only) matches the float64 reference', { depthwiseConv2dNhwc: 'forward' }, async ({ gpu }) => {
  const [xs, c] = [[2, 5, 6, 7], 7];
  await checkOp(gpu, 'depthwiseConv2dNhwc', {
    inputs: { x: { shape: xs }, w: { shape: [3, 3, c], scale: 0.5 }, b: { shape: [c] } },
    build: (g, v) => G.depthwiseConv2dNhwc(g, v.x, v.w, { bias: v.b, stride: 2, padding: 1, activation: 'gelu' }),
    ref: (v) => refDepthwiseConv2dNhwc(v.x, xs, v.w, [3, 3], v.b, [2, 2], [1, 1], gelu).data,
    tol: DEPTHWISE_GRAPH_TOL,
  });
});

test('conv2d rejects bad inputs with messages naming the op and values', async ({ gpu }) => {
  const x = Tensor.fromArray(gpu, randomArray(1 * 4 * 5 * 5, 1), [1, 4, 5, 5]);
  const w = Tensor.fromArray(gpu, randomArray(6 * 4 * 3 * 3, 2), [6, 4, 3, 3]);
  await assertThrows(() => conv2d(gpu, Tensor.empty(gpu, [1, 4, 5, 5], 'i32'), w), /conv2d/, /input must be f32/, /i32/);
  await assertThrows(() => conv2d(gpu, x, Tensor.empty(gpu, [6, 4, 3, 3], 'u32')), /conv2d/, /weight must be f32/, /u32/);
  await assertThrows(() => conv2d(gpu, x.reshape([4, 5, 5]), w), /conv2d/, /rank 4/, /\[4, 5, 5\]/);
  await assertThrows(() => conv2d(gpu, x, w.reshape([6, 36])), /conv2d/, /weight must be rank 4/, /\[6, 36\]/);
  await assertThrows(() => conv2d(gpu, x, w, { groups: 3 }), /conv2d/, /C=4/, /groups=3/);
  await assertThrows(() => conv2d(gpu, x, Tensor.empty(gpu, [6, 3, 3, 3])), /conv2d/, /\[6, 3, 3, 3\]/, /C\/groups=4/);
  await assertThrows(() => conv2d(gpu, x, Tensor.empty(gpu, [5, 2, 3, 3]), { groups: 2 }), /conv2d/, /O=5/, /groups=2/);
  await assertThrows(() => conv2d(gpu, x, w, { bias: Tensor.empty(gpu, [5]) }), /conv2d/, /bias/, /\[6\]/, /\[5\]/);
  await assertThrows(() => conv2d(gpu, x, w, { dilation: 3 }), /conv2d/, /Ho=-1, Wo=-1/, /input 5×5/, /kernel 3×3/, /dilation 3,3/);
  await assertThrows(() => conv2d(gpu, x, w, { stride: 0 }), /conv2d/, /stride must be positive integers/, /0/);
  await assertThrows(() => conv2d(gpu, x, w, { padding: [1, -1] }), /conv2d/, /padding must be non-negative integers/, /\[1,-1\]/);
  await assertThrows(() => conv2d(gpu, x, w, { dilation: 1.5 }), /conv2d/, /dilation/, /1\.5/);
  await assertThrows(() => conv2d(gpu, x, w, { groups: 0 }), /conv2d/, /groups must be a positive integer/, /0/);
  await assertThrows(() => conv2d(gpu, x, w, { activation: 'swish' as 'relu' }), /conv2d/, /unknown activation 'swish'/);
  await assertThrows(() => conv2d(gpu, x, w, { variant: '8x8' as ConvTileVariant }), /conv2d/, /unknown variant '8x8'/);
  await assertThrows(() => conv2d(gpu, x, w, { out: Tensor.empty(gpu, [1, 6, 5, 5]) }), /conv2d/, /out must be f32 \[1, 6, 3, 3\]/, /\[1, 6, 5, 5\]/);
});

test('conv2d and convTranspose2d reject outputs over the device binding limit before allocating', async ({ gpu }) => {
  const limit = gpu.limits.maxStorageBufferBindingSize;
  // A 1×1 input padded by 4096 gives 8193² pixels per output channel.
  const perChannel = 8193 * 8193 * 4;
  const O = Math.floor(limit / perChannel) + 1;
  const x = Tensor.fromArray(gpu, [0.5], [1, 1, 1, 1]);
  const w = Tensor.fromArray(gpu, new Float32Array(O), [O, 1, 1, 1]);
  await assertThrows(() => conv2d(gpu, x, w, { padding: 4096 }), /conv2d/, /output/, new RegExp(`\\[1, ${O}, 8193, 8193\\]`), /maxStorageBufferBindingSize/);
  const x2 = Tensor.fromArray(gpu, [1, 2, 3, 4], [1, 1, 2, 2]);
  const w2 = Tensor.fromArray(gpu, new Float32Array(O), [1, O, 1, 1]);
  await assertThrows(() => convTranspose2d(gpu, x2, w2, { stride: 8192 }), /convTranspose2d/, /output/, new RegExp(`\\[1, ${O}, 8193, 8193\\]`), /maxStorageBufferBindingSize/);
});

test('maxPool2d rejects an input over the device binding limit', async ({ gpu }) => {
  const limit = gpu.limits.maxStorageBufferBindingSize;
  const elements = limit / 4 + 1;
  // Only testable where one buffer may exceed one binding (lavapipe: 4 GiB vs 128 MiB).
  if (elements * 4 > gpu.limits.maxBufferSize || elements * 4 > 2 ** 31) return;
  const x = Tensor.empty(gpu, [1, 1, elements, 1]);
  await assertThrows(() => maxPool2d(gpu, x, { kernel: 1 }), /maxPool2d/, /input/, /maxStorageBufferBindingSize/);
  x.dispose();
});

test('convTranspose2d rejects bad inputs with messages naming the op and values', async ({ gpu }) => {
  const x = Tensor.fromArray(gpu, randomArray(1 * 4 * 5 * 5, 3), [1, 4, 5, 5]);
  const w = Tensor.fromArray(gpu, randomArray(4 * 3 * 2 * 2, 4), [4, 3, 2, 2]);
  await assertThrows(() => convTranspose2d(gpu, Tensor.empty(gpu, [1, 4, 5, 5], 'i32'), w), /convTranspose2d/, /input must be f32/, /i32/);
  await assertThrows(() => convTranspose2d(gpu, x.reshape([1, 4, 25]), w), /convTranspose2d/, /rank 4/, /\[1, 4, 25\]/);
  await assertThrows(() => convTranspose2d(gpu, x, w, { groups: 3 }), /convTranspose2d/, /C=4/, /groups=3/);
  await assertThrows(() => convTranspose2d(gpu, x, Tensor.empty(gpu, [5, 3, 2, 2])), /convTranspose2d/, /\[5, 3, 2, 2\]/, /C=4/);
  await assertThrows(() => convTranspose2d(gpu, x, w, { groups: 2, bias: Tensor.empty(gpu, [3]) }), /convTranspose2d/, /bias/, /\[6\]/, /\[3\]/);
  await assertThrows(() => convTranspose2d(gpu, x, w, { stride: 2, outputPadding: 2 }), /convTranspose2d/, /outputPadding 2,2/, /max\(stride, dilation\) = 2/);
  await assertThrows(() => convTranspose2d(gpu, x, w, { padding: 5 }), /convTranspose2d/, /Ho=-4, Wo=-4/, /input 5×5/, /padding 5,5/);
  await assertThrows(() => convTranspose2d(gpu, x, w, { stride: [2, 0] }), /convTranspose2d/, /stride must be positive integers/);
  await assertThrows(() => convTranspose2d(gpu, x, w, { out: Tensor.empty(gpu, [1, 3, 6, 6], 'i32') }), /convTranspose2d/, /out must be f32 \[1, 3, 6, 6\]/, /i32/);
});

test('maxPool2d rejects bad inputs with messages naming the op and values', async ({ gpu }) => {
  const x = Tensor.fromArray(gpu, randomArray(2 * 3 * 3, 5), [1, 2, 3, 3]);
  await assertThrows(() => maxPool2d(gpu, Tensor.empty(gpu, [1, 2, 3, 3], 'u32'), { kernel: 2 }), /maxPool2d/, /f32/, /u32/);
  await assertThrows(() => maxPool2d(gpu, x.reshape([2, 9]), { kernel: 2 }), /maxPool2d/, /rank 4/, /\[2, 9\]/);
  await assertThrows(() => maxPool2d(gpu, x, { kernel: 0 }), /maxPool2d/, /kernel must be positive integers/, /0/);
  await assertThrows(() => maxPool2d(gpu, x, { kernel: 2, stride: -1 }), /maxPool2d/, /stride must be positive integers/, /-1/);
  await assertThrows(() => maxPool2d(gpu, x, { kernel: 2, padding: 2 }), /maxPool2d/, /padding 2,2/, /half the kernel size 2,2/);
  await assertThrows(() => maxPool2d(gpu, x, { kernel: 4 }), /maxPool2d/, /Ho=0, Wo=0/, /input 3×3/, /kernel 4,4/);
  await assertThrows(() => maxPool2d(gpu, x, undefined as unknown as { kernel: number }), /maxPool2d/, /kernel is required/);
});

test.run();
