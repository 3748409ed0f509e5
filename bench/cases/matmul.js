// fp32 matmul, ours (tuned variant) vs tfjs-backend-webgpu's tf.matMul on the same device,
// then (adapters with shader-f16) ours with B stored as f16 vs ours with f32 B
// in the same run: the ratio is f32 time / f16 time. The 197-token shapes
// also run with B stored [N, K] (transB), the layout of CLIP's linear weights.
// --gpu-check: 4096³ (512³ with --quick), f32 and f16.
import { Tensor, matmul, tuneMatmul } from '../../dist/node.js';
import { tfjsPeer } from '../peers/tfjs.js';
import { maxAbsDiff, values } from '../values.js';

/** [M, K, N]: a ViT-B/16 projection (197 tokens), its MLP expansion, a square product. */
const QUICK_SHAPES = [
  [197, 768, 768],
  [1024, 1024, 1024],
];
const FULL_SHAPES = [
  [197, 768, 768],
  [197, 768, 3072],
  [1024, 1024, 1024],
];
/** --gpu-check: the large square product a real GPU needs to fill up (--quick: lavapipe-sized). */
const GPU_CHECK_SHAPES = { full: [[4096, 4096, 4096]], quick: [[512, 512, 512]] };

const benchName = ([M, K, N]) => `matmul ${M}x${K}x${N}`;


/**
 * Ours with B as f16 against ours with the same B as f32 (transB: stored
 * [N, K]). The f16 product must be within what rounding B to f16 can move it:
 * |ΔB| ≤ 2^-12·|B| ≤ 2^-13 here, so |Δy| ≤ K · max|a| · 2^-13 (plus f32 noise).
 */
async function f16Line(ctx, [M, K, N], aData, bData, transB) {
  const { gpu } = ctx;
  const name = `${benchName([M, K, N])}${transB ? ' transB' : ''} f16 B`;
  if (!ctx.wants(name)) return;
  let stored = bData;
  if (transB) {
    stored = new Float32Array(K * N);
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) stored[n * K + k] = bData[k * N + n];
  }
  const shape = transB ? [N, K] : [K, N];
  const a = Tensor.fromArray(gpu, aData, [M, K]);
  const b32 = Tensor.fromArray(gpu, stored, shape);
  const b16 = Tensor.fromArray(gpu, stored, shape, 'f16');
  const y = Tensor.empty(gpu, [M, N]);
  const want = await matmul(gpu, a, b32, { transB, out: y }).read();
  const got = await matmul(gpu, a, b16, { transB, out: y }).read();
  const diff = maxAbsDiff(got, want);
  const bound = K * 0.5 * 2 ** -13 + 1e-3;
  ctx.note(`${name}: max |f16 B - f32 B| = ${diff.toExponential(2)} (bound from rounding B: ${bound.toExponential(2)})`);
  if (!(diff <= bound)) throw new Error(`bench matmul: f16 B differs from f32 B by ${diff} at ${name}, over ${bound}`);
  await ctx.bench({
    name,
    shape: `[${M},${K}]x${transB ? `[${N},${K}]ᵀ` : `[${K},${N}]`} f32 · f16`,
    flops: 2 * M * K * N,
    ours: () => {
      matmul(gpu, a, b16, { transB, out: y });
    },
    peers: {
      'ours f32 B': () => {
        matmul(gpu, a, b32, { transB, out: y });
      },
    },
  });
  for (const t of [a, b32, b16, y]) t.dispose();
}

export default async function (ctx) {
  const { gpu } = ctx;
  const sizes = ctx.gpuCheck ? GPU_CHECK_SHAPES[ctx.quick ? 'quick' : 'full'] : ctx.quick ? QUICK_SHAPES : FULL_SHAPES;
  const f16Wanted = (s) => gpu.hasF16 && (ctx.wants(`${benchName(s)} f16 B`) || ctx.wants(`${benchName(s)} transB f16 B`));
  const shapes = sizes.filter((s) => ctx.wants(benchName(s)) || f16Wanted(s));
  if (shapes.length === 0) return;
  if (!gpu.hasF16) ctx.note('matmul f16 B: no line, the adapter lacks shader-f16');
  const tf = shapes.some((s) => ctx.wants(benchName(s))) ? await tfjsPeer(ctx) : undefined;
  // --gpu-check --quick (lavapipe): tune on one small product, the default shapes take a minute there.
  const tuned = await ctx.once('tuneMatmul', () => tuneMatmul(gpu, ctx.gpuCheck && ctx.quick ? [[256, 256, 256]] : undefined));
  ctx.note(`our variant: ${tuned.best} (sweep medians ms: ${Object.entries(tuned.times).map(([v, t]) => `${v} ${t.toFixed(1)}`).join(', ')})`);

  for (const [M, K, N] of shapes) {
    const aData = values(M * K, 1);
    const bData = values(K * N, 2);
    if (gpu.hasF16) {
      await f16Line(ctx, [M, K, N], aData, bData, false);
      if (M === 197 && !ctx.gpuCheck) await f16Line(ctx, [M, K, N], aData, bData, true);
    }
    if (!ctx.wants(benchName([M, K, N]))) continue;
    const a = Tensor.fromArray(gpu, aData, [M, K]);
    const b = Tensor.fromArray(gpu, bData, [K, N]);
    const y = Tensor.empty(gpu, [M, N]);
    const ta = tf.tensor2d(aData, [M, K]);
    const tb = tf.tensor2d(bData, [K, N]);

    // Both sides must compute the same thing before their times mean anything.
    const ours = await matmul(gpu, a, b, { out: y }).read();
    const tc = tf.matMul(ta, tb);
    const theirs = await tc.data();
    tc.dispose();
    const diff = maxAbsDiff(ours, theirs);
    // Sums of K products of values in [-0.5, 0.5): the two f32 orders of addition drift apart with K.
    const scale = theirs.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    ctx.note(`${M}x${K}x${N}: max |ours - tfjs| = ${diff.toExponential(2)} (max |tfjs| ${scale.toFixed(2)})`);
    if (!(diff < 1e-3 * Math.max(1, scale))) throw new Error(`bench matmul: results differ from tfjs by ${diff} at ${M}x${K}x${N}`);

    await ctx.bench({
      name: benchName([M, K, N]),
      shape: `[${M},${K}]x[${K},${N}] f32`,
      flops: 2 * M * K * N,
      ours: () => {
        matmul(gpu, a, b, { out: y });
      },
      peers: {
        tfjs: () => {
          const c = tf.matMul(ta, tb);
          return () => c.dispose();
        },
      },
    });
    for (const t of [a, b, y]) t.dispose();
    tf.dispose([ta, tb]);
  }
}
