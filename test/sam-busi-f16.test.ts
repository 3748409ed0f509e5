// MobileSAM with f16 matmul and conv weights on real ultrasound (issue 19):
// scripts/check-sam-busi.js --f16's check on its first 2 BUSI images — a box
// around the ground-truth lesion, the encoder with f16 weights and with f32
// weights on the same input, the same decoder. The full 20-image table:
// node scripts/check-sam-busi.js --f16 (20 images: mean IoU 0.7466 f32,
// 0.7464 f16, the two masks at IoU ≥ 0.9959 on every image).

import * as assert from 'uvu/assert';
import * as lib from '../src/node.js';
// @ts-expect-error: a plain ESM script without type declarations
import { BUSI_IMAGES, busiF16Failures, checkBusiF16 } from '../scripts/check-sam-busi.js';
import { NO_SHARED, gpuSuite, sharedPath, skip } from './util.js';

const BUSI = sharedPath('datasets', 'busi3');
sharedPath('datasets', 'busi3', 'test');
sharedPath('datasets', 'busi3', 'masks', 'test');

const test = gpuSuite('sam-busi f16');

test('MobileSAM box prompts on 2 BUSI images: f16 weights give the f32 masks (issue 19 criteria)', async ({ gpu }) => {
  if (!BUSI) return skip(NO_SHARED);
  const result = await checkBusiF16(lib, gpu, { ids: BUSI_IMAGES.slice(0, 2), root: BUSI });
  assert.is(result.rows.length, 2);
  assert.is(result.weightDtype, 'f16');
  // With matmul and conv weights as halves: IoU f32 / f16 0.8335 / 0.8321 and 0.5830 / 0.5829, agreement 0.9983 and 0.9994.
  assert.equal(busiF16Failures(result), []);
});

test.run();
