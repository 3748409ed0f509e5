// conv2d, softmax and layer norm vs tfjs-backend-webgpu on the same device.
// tfjs has no layer-norm op: its users compose it from moments, as here.
// Adapters with shader-f16 (issue 19): the same conv with its weights stored
// as f16 against ours with f32 weights, same run (ratio: f32 time / f16 time).
import { Tensor, conv2d, layerNorm, softmax } from '../../dist/node.js';
import { tfjsPeer } from '../peers/tfjs.js';
import { maxAbsDiff, values } from '../values.js';

/** Checks that both sides computed the same thing before timing them. */
async function agree(ctx, name, ours, theirs, tol) {
  const a = await ours.read();
  const b = await theirs.data();
  theirs.dispose();
  const diff = maxAbsDiff(a, b);
  ctx.note(`${name}: max |ours - tfjs| = ${diff.toExponential(2)}`);
  if (!(diff < tol)) throw new Error(`bench ${name}: results differ from tfjs by ${diff}`);
}

export default async function (ctx) {
  const { gpu } = ctx;
  const tfOnce = () => tfjsPeer(ctx);

  // A ResNet/ConvNeXt-style 3×3 conv (NCHW for us, NHWC for tfjs: each in its native layout).
  const [N, C, H, W, O] = ctx.quick ? [1, 64, 56, 56, 64] : [1, 128, 56, 56, 128];
  const convName = `conv2d 3x3 ${C}->${O} ${H}x${W}`;
  if (ctx.wants(convName)) {
    const tf = await tfOnce();
    const xd = values(N * C * H * W, 1);
    const wd = values(O * C * 9, 2);
    const x = Tensor.fromArray(gpu, xd, [N, C, H, W]);
    const w = Tensor.fromArray(gpu, wd, [O, C, 3, 3]);
    const y = Tensor.empty(gpu, [N, O, H, W]);
    const tx = tf.transpose(tf.tensor4d(xd, [N, C, H, W]), [0, 2, 3, 1]);
    const tw = tf.transpose(tf.tensor4d(wd, [O, C, 3, 3]), [2, 3, 1, 0]);
    const run = () => tf.conv2d(tx, tw, 1, 'same');
    await agree(ctx, convName, conv2d(gpu, x, w, { padding: 1, out: y }), tf.transpose(run(), [0, 3, 1, 2]), 1e-3);
    await ctx.bench({
      name: convName,
      shape: `x [${N},${C},${H},${W}] w [${O},${C},3,3]`,
      flops: 2 * N * O * H * W * C * 9,
      ours: () => {
        conv2d(gpu, x, w, { padding: 1, out: y });
      },
      peers: { tfjs: () => { const r = run(); return () => r.dispose(); } },
    });
    for (const t of [x, w, y]) t.dispose();
    tf.dispose([tx, tw]);
  }

  const convF16Name = `${convName} f16 weights`;
  if (ctx.wants(convF16Name) && !gpu.hasF16) ctx.note(`${convF16Name}: no line, the adapter lacks shader-f16`);
  else if (ctx.wants(convF16Name)) {
    const x = Tensor.fromArray(gpu, values(N * C * H * W, 1), [N, C, H, W]);
    const wd = values(O * C * 9, 2);
    const w32 = Tensor.fromArray(gpu, wd, [O, C, 3, 3]);
    const w16 = Tensor.fromArray(gpu, wd, [O, C, 3, 3], 'f16');
    const y = Tensor.empty(gpu, [N, O, H, W]);
    const want = await conv2d(gpu, x, w32, { padding: 1, out: y }).read();
    const got = await conv2d(gpu, x, w16, { padding: 1, out: y }).read();
    // Rounding w to f16 moves each by ≤ 2^-12·|w| ≤ 2^-13 here: |Δy| ≤ C·9 · max|x| · 2^-13 (plus f32 noise).
    const diff = maxAbsDiff(got, want);
    const bound = C * 9 * 0.5 * 2 ** -13 + 1e-3;
    ctx.note(`${convF16Name}: max |f16 w - f32 w| = ${diff.toExponential(2)} (bound from rounding w: ${bound.toExponential(2)})`);
    if (!(diff <= bound)) throw new Error(`bench ${convF16Name}: f16 weights differ from f32 weights by ${diff}, over ${bound}`);
    await ctx.bench({
      name: convF16Name,
      shape: `x [${N},${C},${H},${W}] w [${O},${C},3,3] f16`,
      flops: 2 * N * O * H * W * C * 9,
      ours: () => {
        conv2d(gpu, x, w16, { padding: 1, out: y });
      },
      peers: {
        'ours f32 weights': () => {
          conv2d(gpu, x, w32, { padding: 1, out: y });
        },
      },
    });
    for (const t of [x, w32, w16, y]) t.dispose();
  }

  // Attention-score softmax of ViT-B/16 (12 heads × 197 queries, 197 keys) and a long row set.
  const [rows, cols] = ctx.quick ? [12 * 197, 197] : [12 * 197 * 8, 197];
  const softmaxName = `softmax ${rows}x${cols}`;
  if (ctx.wants(softmaxName)) {
    const tf = await tfOnce();
    const xd = values(rows * cols, 3);
    const x = Tensor.fromArray(gpu, xd, [rows, cols]);
    const y = Tensor.empty(gpu, [rows, cols]);
    const tx = tf.tensor2d(xd, [rows, cols]);
    await agree(ctx, softmaxName, softmax(gpu, x, { out: y }), tf.softmax(tx), 1e-5);
    await ctx.bench({
      name: softmaxName,
      shape: `[${rows},${cols}] last axis`,
      flops: 4 * rows * cols,
      ours: () => {
        softmax(gpu, x, { out: y });
      },
      peers: { tfjs: () => { const r = tf.softmax(tx); return () => r.dispose(); } },
    });
    for (const t of [x, y]) t.dispose();
    tx.dispose();
  }

  // Layer norm over CLIP ViT-B width for a batch of 8 images.
  const [lnRows, width] = ctx.quick ? [197, 768] : [8 * 197, 768];
  const lnName = `layerNorm ${lnRows}x${width}`;
  if (ctx.wants(lnName)) {
    const tf = await tfOnce();
    const xd = values(lnRows * width, 4);
    const gd = values(width, 5);
    const bd = values(width, 6);
    const [x, g, b] = [[xd, [lnRows, width]], [gd, [width]], [bd, [width]]].map(([d, s]) => Tensor.fromArray(gpu, d, s));
    const y = Tensor.empty(gpu, [lnRows, width]);
    const [tx, tg, tb] = [tf.tensor2d(xd, [lnRows, width]), tf.tensor1d(gd), tf.tensor1d(bd)];
    const composed = () => tf.tidy(() => {
      const { mean, variance } = tf.moments(tx, -1, true);
      return tf.add(tf.mul(tf.div(tf.sub(tx, mean), tf.sqrt(tf.add(variance, 1e-5))), tg), tb);
    });
    await agree(ctx, lnName, layerNorm(gpu, x, g, b, { out: y }), composed(), 1e-4);
    await ctx.bench({
      name: lnName,
      shape: `[${lnRows},${width}] affine`,
      flops: 8 * lnRows * width,
      ours: () => {
        layerNorm(gpu, x, g, b, { out: y });
      },
      peers: { tfjs: () => { const r = composed(); return () => r.dispose(); } },
    });
    for (const t of [x, g, b, y]) t.dispose();
    tf.dispose([tx, tg, tb]);
  }
}
