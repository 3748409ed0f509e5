// Sam2Predictor end to end on the sam2-mini golden fixture (official
// SAM2ImagePredictor outputs): raw image → preprocessing → Hiera + neck →
// prompt encoder + mask decoder → masks at the raw image size; the batched
// decode predictBatch and the automatic masks run on (several prompts in one
// decoder run) against the official multimask outputs of two prompt cases.

import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { Sam2Predictor, openSafetensorsFile, type SafetensorsFile, type SegmentPrompt } from '../src/node.js';
import { SharedFixture } from './shared-fixture.js';
import { NO_SHARED, assertClose, assertThrows, gpuSuite, sharedPath, skip } from './util.js';

/** null when ../shared is absent (every test skips); missing there, it throws. */
const SAM2_MINI = sharedPath('fixtures', 'sam2', 'sam2-mini');
const test = gpuSuite('Sam2Predictor');

interface Fixture {
  predictor: Sam2Predictor;
  io: SafetensorsFile;
  width: number;
  height: number;
  data: Uint8Array;
}

const shared = new SharedFixture<Fixture>(SAM2_MINI, 'Sam2Predictor', 'the sam2-mini fixture');

test.before(async ({ gpu }) => {
  if (!SAM2_MINI) return;
  const file = await openSafetensorsFile(join(SAM2_MINI, 'weights.safetensors'));
  const predictor = await Sam2Predictor.fromSafetensors(gpu, file);
  await file.close();
  const io = await openSafetensorsFile(join(SAM2_MINI, 'io.safetensors'));
  const [height, width] = io.info('raw_image').shape;
  const rgb = await io.readInt32('raw_image');
  const data = new Uint8Array(width * height * 4).fill(255);
  for (let i = 0; i < width * height; i++) for (let c = 0; c < 3; c++) data[4 * i + c] = rgb[3 * i + c];
  await predictor.setImage({ width, height, data, channels: 3 });
  shared.state = { predictor, io, width, height, data };
});

test.after(async () => {
  shared.state?.predictor.dispose();
  await shared.state?.io.close();
});

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/**
 * The whole chain from uint8 pixels (preprocessing, encoder, decoder) in f32
 * vs the official f32 outputs. Measured on lavapipe (the tests print it):
 * image-size masks 1.25e-4 of max|ref| 36.6 (3.4e-6), batched low-res masks
 * 3.6e-5 of 66.8 (5.4e-7), IoUs ≤ 1.8e-7. The fixture README's rule would be
 * 1e-4 relative; asserted here: 3e-5 of max|ref| (~9× the worst) and 2e-6 on IoUs.
 */
const CHAIN_RTOL = 3e-5;
const CHAIN_IOU = { atol: 2e-6, rtol: 0 };

test('predict from the raw image matches the official single and multimask outputs', async () => {
  const f = shared.get();
  if (!f) return skip(NO_SHARED);
  const { predictor, io } = f;
  assert.is(predictor.name, 'sam2-custom');
  const prompt: SegmentPrompt = { points: [], labels: [] };
  const xy = await io.read('point_coords');
  const labels = await io.readInt32('point_labels');
  const points = Array.from(labels, (_, i) => [xy[2 * i], xy[2 * i + 1]] as const);
  Object.assign(prompt, { points, labels: [...labels] });
  const single = await predictor.predict({ ...prompt, multimask: false });
  const ref = await io.read('masks_final_single');
  const scale = Math.max(maxAbs(ref), 1);
  const iouRef = await io.read('iou_pred_single');
  const multi = await predictor.predict(prompt);
  const multiRef = await io.read('masks_final');
  console.log(`  max|Δ|: masks_final_single ${maxDiff(single.masks, ref).toExponential(2)}, masks_final ${maxDiff(multi.masks, multiRef).toExponential(2)} (max|ref| ${scale.toFixed(1)}), iou ${maxDiff(single.iouPredictions, iouRef).toExponential(2)}`);
  assertClose(single.masks, ref, { atol: CHAIN_RTOL * scale, rtol: 0 }, 'masks_final_single');
  assertClose(single.iouPredictions, iouRef, CHAIN_IOU, 'iou_pred_single');
  assert.is(multi.count, 3);
  assertClose(multi.masks, multiRef, { atol: CHAIN_RTOL * scale, rtol: 0 }, 'masks_final');
});

test('batched decode (predictBatch / automatic masks): each row matches the official multimask outputs; predictBatch and automatic masks run', async () => {
  const f = shared.get();
  if (!f) return skip(NO_SHARED);
  const { predictor, io, width, height, data } = f;
  // The decoder run predictBatch makes, with two of the fixture's prompt cases as rows: 'points' (a click
  // and a negative click) and 'box' (its two corners), each 2 points + SAM2's padding point, in the
  // model frame as the official predictor mapped them (pe_coords).
  const cases = ['', 'box_'];
  const count = 3;
  const coords = new Float32Array(cases.length * count * 2);
  const labels = new Int32Array(cases.length * count);
  for (const [b, p] of cases.entries()) {
    coords.set(await io.read(`${p}pe_coords`), b * count * 2);
    labels.set([...(await io.readInt32(`${p}pe_labels`)), -1], b * count);
  }
  const input = predictor.encoder.preprocess({ width, height, data, channels: 3 });
  const features = predictor.encoder.encode(input);
  input.dispose();
  try {
    const out = await predictor.decoder.decodeMultimask({ imageEmbedding: features.imageEmbed, highRes: features.highResFeats }, { coords, labels, batch: cases.length, count });
    assert.equal([...out.lowResMasks.shape], [2, 3, 64, 64]);
    const all = (await out.lowResMasks.read()) as Float32Array;
    out.lowResMasks.dispose();
    const area = 3 * 64 * 64;
    for (const [b, p] of cases.entries()) {
      const ref = await io.read(`${p}low_res_masks_multi`);
      const row = all.subarray(b * area, (b + 1) * area);
      const iouRef = await io.read(`${p}iou_pred_multi`);
      const iou = out.iouPredictions.subarray(3 * b, 3 * b + 3);
      console.log(`  batched row ${b} ('${p || 'points'}'): max|Δ| ${maxDiff(row, ref).toExponential(2)} of max|ref| ${maxAbs(ref).toFixed(1)}, iou ${maxDiff(iou, iouRef).toExponential(2)}`);
      assertClose(row, ref, { atol: CHAIN_RTOL * Math.max(maxAbs(ref), 1), rtol: 0 }, `batched row ${b}: ${p}low_res_masks_multi`);
      assertClose(iou, iouRef, CHAIN_IOU, `batched row ${b}: ${p}iou_pred_multi`);
    }
  } finally {
    for (const t of [features.imageEmbed, ...features.highResFeats]) t.dispose();
  }
  // predictBatch itself (one click per row) and the automatic masks on top of it.
  const { lowResMasks, iouPredictions } = await predictor.predictBatch([[10, 20], [150, 80], [290, 150]], [1, 1, 1]);
  assert.equal([...lowResMasks.shape], [3, 3, 64, 64]);
  assert.is(iouPredictions.length, 9);
  const masks = await predictor.generateMasks({ pointsPerSide: 2, predIouThresh: 0, stabilityScoreThresh: 0 });
  assert.ok(masks.length > 0, 'random weights still give some masks with the filters off');
  for (const m of masks) {
    assert.is(m.mask.length, width * height);
    assert.ok(m.area > 0 && m.area <= width * height);
  }
});

test('bad use throws errors naming the predictor', async ({ gpu }) => {
  const f = shared.get();
  if (!f || !SAM2_MINI) return skip(NO_SHARED);
  await assertThrows(() => f.predictor.predictBatch([[1, 2]], [1, 1]), /Sam2Predictor\.predictBatch/, /1 points but 2 labels/);
  const file = await openSafetensorsFile(join(SAM2_MINI, 'weights.safetensors'));
  const fresh = await Sam2Predictor.fromSafetensors(gpu, file);
  await file.close();
  await assertThrows(() => fresh.predict({ points: [[1, 1]], labels: [1] }), /Sam2Predictor\.predict/, /no image set/);
  fresh.dispose();
  await assertThrows(() => fresh.setImage({ width: 1, height: 1, data: new Uint8Array(4), channels: 3 }), /Sam2Predictor\.setImage/, /disposed/);
});

test.run();
