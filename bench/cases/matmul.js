// fp32 matmul, ours (tuned variant) vs tfjs-backend-webgpu's tf.matMul on the same device.
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


const benchName = ([M, K, N]) => `matmul ${M}x${K}x${N}`;

export default async function (ctx) {
  const { gpu } = ctx;
  const shapes = (ctx.quick ? QUICK_SHAPES : FULL_SHAPES).filter((s) => ctx.wants(benchName(s)));
  if (shapes.length === 0) return;
  const tf = await tfjsPeer(ctx);
  const tuned = await ctx.once('tuneMatmul', () => tuneMatmul(gpu));
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
    ctx.note(`${M}x${K}x${N}: max |ours - tfjs| = ${diff.toExponential(2)}`);
    if (!(diff < 1e-3)) throw new Error(`bench matmul: results differ from tfjs by ${diff} at ${M}x${K}x${N}`);

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
