// Sam2Predictor end to end on the sam2-mini golden fixture (official
// SAM2ImagePredictor outputs): raw image → preprocessing → Hiera + neck →
// prompt encoder + mask decoder → masks at the raw image size.

import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Sam2Predictor, openSafetensorsFile, type SafetensorsFile, type SegmentPrompt } from '../src/node.js';
import { assertClose, assertThrows, gpuSuite } from './util.js';

const SAM2_MINI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'shared', 'fixtures', 'sam2', 'sam2-mini');
const test = gpuSuite('Sam2Predictor');

let ctx: { predictor: Sam2Predictor; io: SafetensorsFile; width: number; height: number } | null = null;

test.before(async ({ gpu }) => {
  if (!existsSync(SAM2_MINI)) {
    console.log(`skip: ${SAM2_MINI} is absent (SAM2 golden fixture)`);
    return;
  }
  const file = await openSafetensorsFile(join(SAM2_MINI, 'weights.safetensors'));
  const predictor = await Sam2Predictor.fromSafetensors(gpu, file);
  await file.close();
  const io = await openSafetensorsFile(join(SAM2_MINI, 'io.safetensors'));
  const [height, width] = io.info('raw_image').shape;
  const rgb = await io.readInt32('raw_image');
  const data = new Uint8Array(width * height * 4).fill(255);
  for (let i = 0; i < width * height; i++) for (let c = 0; c < 3; c++) data[4 * i + c] = rgb[3 * i + c];
  await predictor.setImage({ width, height, data, channels: 3 });
  ctx = { predictor, io, width, height };
});

test.after(async () => {
  ctx?.predictor.dispose();
  await ctx?.io.close();
});

test('predict from the raw image matches the official single and multimask outputs', async () => {
  if (!ctx) return;
  const { predictor, io } = ctx;
  assert.is(predictor.name, 'sam2-custom');
  const prompt: SegmentPrompt = { points: [], labels: [] };
  const xy = await io.read('point_coords');
  const labels = await io.readInt32('point_labels');
  const points = Array.from(labels, (_, i) => [xy[2 * i], xy[2 * i + 1]] as const);
  Object.assign(prompt, { points, labels: [...labels] });
  // The whole chain from uint8 pixels (preprocessing included) in f32: the
  // fixture README's 1e-4 relative rule on logits of magnitude ~50 (measured
  // ≤ 1e-4 absolute on the decoder alone; preprocessing adds ~1e-6 per pixel).
  const single = await predictor.predict({ ...prompt, multimask: false });
  const ref = await io.read('masks_final_single');
  const scale = ref.reduce((m, v) => Math.max(m, Math.abs(v)), 1);
  assertClose(single.masks, ref, { atol: 1e-4 * scale, rtol: 0 }, 'masks_final_single');
  assertClose(single.iouPredictions, await io.read('iou_pred_single'), { atol: 1e-4, rtol: 0 }, 'iou_pred_single');
  const multi = await predictor.predict(prompt);
  assert.is(multi.count, 3);
  assertClose(multi.masks, await io.read('masks_final'), { atol: 1e-4 * scale, rtol: 0 }, 'masks_final');
});

test('predictBatch and automatic masks run on the SAM2 decoder', async () => {
  if (!ctx) return;
  const { predictor, width, height } = ctx;
  const { lowResMasks, iouPredictions } = await predictor.predictBatch([[10, 20], [150, 80], [290, 150]], [1, 1, 1]);
  assert.equal([...lowResMasks.shape], [3, 3, 64, 64]);
  assert.is(iouPredictions.length, 9);
  // Each batched prompt equals the same click decoded alone (multimask tokens 1..3).
  const one = await predictor.predict({ points: [[150, 80]], labels: [1] });
  const all = (await lowResMasks.read()) as Float32Array;
  // predict returns the low-res logits clamped to [−32, 32], as SAM2ImagePredictor does.
  const clamp = (v: number) => Math.min(32, Math.max(-32, v));
  assertClose(all.subarray(3 * 64 * 64, 6 * 64 * 64).map(clamp), one.lowResMasks, { atol: 1e-4, rtol: 1e-4 }, 'batched = single');
  const masks = await predictor.generateMasks({ pointsPerSide: 2, predIouThresh: 0, stabilityScoreThresh: 0 });
  assert.ok(masks.length > 0, 'random weights still give some masks with the filters off');
  for (const m of masks) {
    assert.is(m.mask.length, width * height);
    assert.ok(m.area > 0 && m.area <= width * height);
  }
});

test('bad use throws errors naming the predictor', async ({ gpu }) => {
  if (!ctx) return;
  await assertThrows(() => ctx!.predictor.predictBatch([[1, 2]], [1, 1]), /Sam2Predictor\.predictBatch/, /1 points but 2 labels/);
  const file = await openSafetensorsFile(join(SAM2_MINI, 'weights.safetensors'));
  const fresh = await Sam2Predictor.fromSafetensors(gpu, file);
  await file.close();
  await assertThrows(() => fresh.predict({ points: [[1, 1]], labels: [1] }), /Sam2Predictor\.predict/, /no image set/);
  fresh.dispose();
  await assertThrows(() => fresh.setImage({ width: 1, height: 1, data: new Uint8Array(4), channels: 3 }), /Sam2Predictor\.setImage/, /disposed/);
});

test.run();
