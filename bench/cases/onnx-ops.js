// Single-op ONNX graphs on onnxruntime-web's WebGPU EP vs our kernels, same
// shapes, same device and queue: MatMul, Softmax, LayerNormalization and a
// 3×3 Conv (the shapes of matmul.js and ops.js). Each model is written by
// bench/onnx-writer.js (one node, weights as initializers); the input stays on
// the GPU (ORT reads our buffer) and so does ORT's output, so a timed run is
// the op alone on both sides. --quick: MatMul and Softmax only (an ORT session
// of one op is created in a fraction of a second; the runs are the cost).
import { Tensor, conv2d, layerNorm, matmul, softmax } from '../../dist/node.js';
import { singleOpModel } from '../onnx-writer.js';
import { ortWebPeer } from '../peers/ort-web.js';
import { maxAbsDiff, values } from '../values.js';

const PEER = 'ort-web webgpu';

/** The benchmarks: our kernel on our tensors, and the same op as an ONNX model. */
function cases(quick) {
  const matmulCase = () => {
    const [M, K, N] = [1024, 1024, 1024];
    return {
      name: `onnx MatMul ${M}x${K}x${N}`,
      shape: `[${M},${K}]x[${K},${N}] f32`,
      flops: 2 * M * K * N,
      inputs: { a: [[M, K], 1], b: [[K, N], 2] },
      model: { op: 'MatMul', outputs: [['y', [M, N]]] },
      ours: (gpu, { a, b }, y) => matmul(gpu, a, b, { out: y }),
    };
  };
  const softmaxCase = () => {
    // Attention scores of ViT-B/16: 12 heads × 197 queries (× 8 images in full).
    const [rows, cols] = quick ? [12 * 197, 197] : [12 * 197 * 8, 197];
    return {
      name: `onnx Softmax ${rows}x${cols}`,
      shape: `[${rows},${cols}] last axis`,
      flops: 4 * rows * cols,
      inputs: { x: [[rows, cols], 3] },
      model: { op: 'Softmax', outputs: [['y', [rows, cols]]], attributes: { axis: -1 } },
      ours: (gpu, { x }, y) => softmax(gpu, x, { out: y }),
    };
  };
  const layerNormCase = () => {
    const [rows, width] = [8 * 197, 768];
    const [gamma, beta] = [values(width, 5), values(width, 6)];
    return {
      name: `onnx LayerNormalization ${rows}x${width}`,
      shape: `[${rows},${width}] affine`,
      flops: 8 * rows * width,
      inputs: { x: [[rows, width], 4] },
      weights: { gamma: [[width], gamma], beta: [[width], beta] },
      model: { op: 'LayerNormalization', outputs: [['y', [rows, width]]], attributes: { axis: -1, epsilon: 1e-5 } },
      ours: (gpu, { x, gamma: g, beta: b }, y) => layerNorm(gpu, x, g, b, { eps: 1e-5, out: y }),
    };
  };
  const convCase = () => {
    const [N, C, H, W, O] = [1, 128, 56, 56, 128];
    return {
      name: `onnx Conv 3x3 ${C}->${O} ${H}x${W}`,
      shape: `x [${N},${C},${H},${W}] w [${O},${C},3,3] NCHW`,
      flops: 2 * N * O * H * W * C * 9,
      inputs: { x: [[N, C, H, W], 1] },
      weights: { w: [[O, C, 3, 3], values(O * C * 9, 2)] },
      model: { op: 'Conv', outputs: [['y', [N, O, H, W]]], attributes: { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [1, 1] } },
      ours: (gpu, { x, w }, y) => conv2d(gpu, x, w, { padding: 1, out: y }),
    };
  };
  return quick ? [matmulCase(), softmaxCase()] : [matmulCase(), softmaxCase(), layerNormCase(), convCase()];
}

export default async function (ctx) {
  const { gpu } = ctx;
  const chosen = cases(ctx.quick).filter((c) => ctx.wants(c.name));
  if (chosen.length === 0) return;
  const ortWeb = await ortWebPeer(ctx);

  for (const c of chosen) {
    const ours = {};
    for (const [name, [shape, seed]] of Object.entries(c.inputs)) ours[name] = Tensor.fromArray(gpu, values(shape.reduce((a, b) => a * b, 1), seed), shape);
    for (const [name, [shape, data]] of Object.entries(c.weights ?? {})) ours[name] = Tensor.fromArray(gpu, data, shape);
    const [[, outShape]] = c.model.outputs;
    const y = Tensor.empty(gpu, outShape);

    const bytes = singleOpModel({
      ...c.model,
      inputs: Object.entries(c.inputs).map(([name, [shape]]) => [name, shape]),
      initializers: Object.entries(c.weights ?? {}).map(([name, [shape, data]]) => [name, shape, data]),
    });
    const t0 = performance.now();
    const session = await ortWeb.session(bytes);
    const createMs = performance.now() - t0;
    const feeds = Object.fromEntries(Object.keys(c.inputs).map((name) => [name, ortWeb.gpuTensor(ours[name])]));

    // Both sides must compute the same thing before their times mean anything.
    const t1 = performance.now();
    const first = await session.run(feeds);
    const theirs = await ortWeb.read(first.y);
    const firstRunMs = performance.now() - t1;
    ortWeb.dispose(first);
    const mine = await c.ours(gpu, ours, y).read();
    const diff = maxAbsDiff(mine, theirs);
    ctx.note(`${c.name}: max |ours - ort-web| = ${diff.toExponential(2)}; ORT session created in ${createMs.toFixed(0)} ms, first run (shader compiles) ${firstRunMs.toFixed(0)} ms`);
    if (!(diff < 1e-3)) throw new Error(`bench ${c.name}: results differ from onnxruntime-web by ${diff}`);

    await ctx.bench({
      name: c.name,
      shape: c.shape,
      flops: c.flops,
      ours: () => {
        c.ours(gpu, ours, y);
      },
      peers: {
        [PEER]: async () => {
          const out = await session.run(feeds);
          return () => ortWeb.dispose(out);
        },
      },
    });
    await session.release();
    for (const t of [...Object.values(ours), y]) t.dispose();
  }
}
