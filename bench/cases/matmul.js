// fp32 matmul, ours (tuned variant) vs tfjs-backend-webgpu's tf.matMul on the same device.
// --gpu-check: 4096³ (512³ with --quick), and a note on f16 (no f16 matmul yet).
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

/** Whether matmul takes f16 operands: today it throws 'expected f32 operands', so the f16 line is absent. */
function f16Matmul(gpu) {
  if (!gpu.hasF16) return 'absent: the adapter has no shader-f16';
  const a = Tensor.fromArray(gpu, new Float32Array(16), [4, 4], 'f16');
  try {
    matmul(gpu, a, a).dispose();
    return 'present, but this case has no f16 line yet: add one';
  } catch (e) {
    return `absent: no f16 matmul in the library (${e.message})`;
  } finally {
    a.dispose();
  }
}

export default async function (ctx) {
  const { gpu } = ctx;
  const sizes = ctx.gpuCheck ? GPU_CHECK_SHAPES[ctx.quick ? 'quick' : 'full'] : ctx.quick ? QUICK_SHAPES : FULL_SHAPES;
  const shapes = sizes.filter((s) => ctx.wants(benchName(s)));
  if (shapes.length === 0) return;
  if (ctx.gpuCheck) ctx.note(`matmul f16: ${f16Matmul(gpu)}`);
  const tf = await tfjsPeer(ctx);
  // --gpu-check --quick (lavapipe): tune on one small product, the default shapes take a minute there.
  const tuned = await ctx.once('tuneMatmul', () => tuneMatmul(gpu, ctx.gpuCheck && ctx.quick ? [[256, 256, 256]] : undefined));
  ctx.note(`our variant: ${tuned.best} (sweep medians ms: ${Object.entries(tuned.times).map(([v, t]) => `${v} ${t.toFixed(1)}`).join(', ')})`);

  for (const [M, K, N] of shapes) {
    const aData = values(M * K, 1);
    const bData = values(K * N, 2);
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
