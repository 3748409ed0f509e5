// Fused attention (one kernel, online softmax) vs tfjs-backend-webgpu's
// composed matMul + softmax + matMul on the same device: the ViT-B/16 shape
// (12 heads, 197 tokens, d 64) and SAM2's global attention at 1024² input
// (one head of 64×64 = 4096 tokens, d 96). --gpu-check: 8 heads of 4096
// tokens at d 64 (--quick: 2 heads of 1024), enough workgroups to fill a GPU.
import { Tensor, attention, tuneAttention } from '../../dist/node.js';
import { tfjsPeer } from '../peers/tfjs.js';
import { maxAbsDiff, values } from '../values.js';

/** [B, H, L, D] */
const QUICK_SHAPES = [
  [1, 12, 197, 64],
  [1, 1, 1024, 96],
];
const FULL_SHAPES = [
  [1, 12, 197, 64],
  [1, 1, 4096, 96],
];
/** --gpu-check: [B, H, L, D] */
const GPU_CHECK_SHAPES = { full: [[1, 8, 4096, 64]], quick: [[1, 2, 1024, 64]] };

const benchName = ([B, H, L, D]) => `attention B${B} H${H} L${L} d${D}`;

export default async function (ctx) {
  const { gpu } = ctx;
  const sizes = ctx.gpuCheck ? GPU_CHECK_SHAPES[ctx.quick ? 'quick' : 'full'] : ctx.quick ? QUICK_SHAPES : FULL_SHAPES;
  const shapes = sizes.filter((s) => ctx.wants(benchName(s)));
  if (shapes.length === 0) return;
  const tf = await tfjsPeer(ctx);
  // --gpu-check: the head dim of its line only.
  const tuned = await ctx.once('tuneAttention', () => tuneAttention(gpu, ctx.gpuCheck ? { headDims: [64] } : {}));
  ctx.note(`attention variants: ${Object.entries(tuned).map(([key, r]) => `${key} → ${r.best}`).join('; ')}`);

  for (const [B, H, L, D] of shapes) {
    const n = B * H * L * D;
    const [qd, kd, vd] = [values(n, 1), values(n, 2), values(n, 3)];
    const [q, k, v] = [qd, kd, vd].map((d) => Tensor.fromArray(gpu, d, [B, H, L, D]));
    const y = Tensor.empty(gpu, [B, H, L, D]);
    const [tq, tk, tv] = [qd, kd, vd].map((d) => tf.tensor4d(d, [B, H, L, D]));
    const scale = 1 / Math.sqrt(D);
    // The composed form a tfjs user writes: the full [B, H, L, L] scores go through memory.
    const composed = () => tf.tidy(() => tf.matMul(tf.softmax(tf.mul(tf.matMul(tq, tk, false, true), scale)), tv));

    const ours = await attention(gpu, q, k, v, { out: y }).read();
    const tc = composed();
    const theirs = await tc.data();
    tc.dispose();
    const diff = maxAbsDiff(ours, theirs);
    ctx.note(`${benchName([B, H, L, D])}: max |ours - tfjs| = ${diff.toExponential(2)}`);
    if (!(diff < 1e-3)) throw new Error(`bench attention: results differ from tfjs by ${diff} at ${benchName([B, H, L, D])}`);

    await ctx.bench({
      name: benchName([B, H, L, D]),
      shape: `q,k,v [${B},${H},${L},${D}] f32`,
      flops: 4 * B * H * L * L * D,
      ours: () => {
        attention(gpu, q, k, v, { out: y });
      },
      peers: {
        tfjs: () => {
          const c = composed();
          return () => c.dispose();
        },
      },
    });
    for (const t of [q, k, v, y]) t.dispose();
    tf.dispose([tq, tk, tv]);
  }
}
