// Checks the engine against a golden fixture folder (weights.safetensors +
// io.safetensors, e.g. ../shared/fixtures/clip/clip-tiny-p16): builds the model
// from the weights' key names, shapes and metadata alone, runs it on the io
// inputs and prints, per expected tensor it can produce, the max abs and max
// relative error and PASS/FAIL against the fixtures' rule
//   max|ours − ref| ≤ 1e-4 · max(1, max|ref|).
// Model types: CLIP ViT (openai / HF keys) and SAM2 (official SAM2Base keys,
// `image_encoder.trunk.*`; checks run in sections, see checkSam2).
// Exit: 0 all pass, 1 any failure, 2 a model type the engine does not run yet.
// Usage: npm run build && node scripts/check-fixture.js <fixture dir>

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { getDevice, openSafetensorsFile, Tensor } from '../dist/node.js';
import { detectLayout } from '../dist/models/clip/config.js';
import { ClipModel } from '../dist/models/clip/model.js';
import { Sam2ImageEncoder } from '../dist/models/sam2/image-encoder.js';
import { describeSam2Config } from '../dist/models/sam2/config.js';

/** The fixtures' suggested f32 tolerance, relative to the reference's magnitude. */
const RELATIVE_TOLERANCE = 1e-4;

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node scripts/check-fixture.js <fixture dir with weights.safetensors and io.safetensors>');
  process.exit(2);
}
for (const f of ['weights.safetensors', 'io.safetensors']) {
  if (!existsSync(join(dir, f))) {
    console.error(`${dir}: no ${f}`);
    process.exit(2);
  }
}

const weightsFile = await openSafetensorsFile(join(dir, 'weights.safetensors'));
const shapes = new Map([...weightsFile.tensors].map(([k, info]) => [k, info.shape]));
const isSam2 = shapes.has('image_encoder.trunk.patch_embed.proj.weight');
if (!isSam2) {
  try {
    detectLayout(shapes, weightsFile.name);
  } catch (e) {
    console.error(`unknown model type: ${e.message}`);
    console.error('check-fixture runs CLIP ViT and SAM2 checkpoints only for now.');
    await weightsFile.close();
    process.exit(2);
  }
}

// A config.json next to the weights (if any) supplies what shapes cannot (head counts); metadata otherwise.
const configPath = join(dir, 'config.json');
const config = existsSync(configPath) ? JSON.parse(readFileSync(configPath, 'utf8')) : undefined;
const gpu = await getDevice();
const io = await openSafetensorsFile(join(dir, 'io.safetensors'));
const has = (name) => io.tensors.has(name);
const upload = async (name) => Tensor.fromArray(gpu, await io.read(name), io.info(name).shape);
/** name → produced Tensor */
const produced = new Map();
/** Stored f32 tensors that are inputs, not results (not listed as unchecked). */
let inputs;
/** Frees the model after the report. */
let disposeModel;
try {
  ({ inputs, dispose: disposeModel } = isSam2 ? await checkSam2() : await checkClip());
} finally {
  await weightsFile.close();
}

async function checkClip() {
  const model = await ClipModel.fromSafetensors(gpu, weightsFile, { config });
  const c = model.config;
  console.log(`${dir}: CLIP ViT (${c.layout} keys), embed ${c.embedDim}, image ${c.vision.imageResolution}px patch ${c.vision.patchSize}, ` +
    `vision ${c.vision.layers}×${c.vision.width} (${c.vision.heads} heads), text ${c.text.layers}×${c.text.width} (${c.text.heads} heads), exp(logit_scale) ${model.logitScale.toFixed(6)}`);
  if (has('image')) {
    const image = await upload('image');
    const trace = model.traceImage(image);
    for (const [k, t] of Object.entries(trace)) produced.set(k, t);
    if (has('attn_mask') && has('image_features_masked')) {
      const mask = await upload('attn_mask');
      produced.set('image_features_masked', model.encodeImage(image, { attnBias: mask }));
    }
    // The backward test: loss = Σ image_features ∘ grad_r.
    if (has('grad_r')) {
      const { loss, gradVisionTokens, gradProj } = model.imageGradients(image, await upload('grad_r'));
      produced.set('loss', loss);
      produced.set('grad_wrt_vision_tokens', gradVisionTokens);
      produced.set('grad_wrt_proj', gradProj);
    }
  }
  if (has('text_tokens')) {
    const trace = model.traceText(await io.readInt32('text_tokens'));
    for (const [k, t] of Object.entries(trace)) produced.set(k, t);
    if (produced.has('image_features')) {
      const { logitsPerImage, logitsPerText } = model.logits(produced.get('image_features'), produced.get('text_features'));
      produced.set('logits_per_image', logitsPerImage);
      produced.set('logits_per_text', logitsPerText);
    }
  }
  if (has('tricky_text_tokens')) produced.set('tricky_text_features', model.encodeText(await io.readInt32('tricky_text_tokens')));
  return { inputs: ['image', 'attn_mask', 'grad_r'], dispose: () => model.dispose() };
}

/**
 * SAM2 (SAM2ImagePredictor's single-image path), in sections that each add
 * tensors to `produced` under the fixture's names:
 *   1. image encoder: preprocessing of raw_image (→ image), then, from the
 *      stored `image` (so later checks do not inherit preprocessing error),
 *      trunk, neck, backbone_fpn, image_embed, high_res_feats, vision_pos_enc.
 *   2. prompt encoder + mask decoder: not wired yet; it goes below section 1,
 *      reading section 1's image_embed / high_res_feats_0 / high_res_feats_1.
 */
async function checkSam2() {
  const encoder = await Sam2ImageEncoder.fromSafetensors(gpu, weightsFile, { config });
  console.log(`${dir}: SAM2 (${describeSam2Config(encoder.config)}; non-shape facts from the ${encoder.config.from})`);
  const toDispose = [encoder];

  // Section 1: image encoder.
  if (has('raw_image')) {
    const [height, width] = io.info('raw_image').shape;
    const rgb = await io.readInt32('raw_image');
    const data = new Uint8Array(width * height * 4).fill(255);
    for (let i = 0; i < width * height; i++) for (let ch = 0; ch < 3; ch++) data[4 * i + ch] = rgb[3 * i + ch];
    produced.set('image', encoder.preprocess({ width, height, data, channels: 3 }));
  }
  if (has('image')) {
    const image = await upload('image');
    for (const [k, t] of Object.entries(encoder.trace(image))) produced.set(k, t);
    image.dispose();
  }

  // Section 2: prompt encoder + mask decoder (to be added).

  return {
    // Prompt inputs (raw-image points, boxes, mask inputs) are fixture inputs, not results.
    inputs: [...io.tensors.keys()].filter((k) => /(^|_)(point_coords|box|mask_input)$/.test(k)),
    dispose: () => toDispose.forEach((m) => m.dispose()),
  };
}

let failures = 0;
const skipped = [];
console.log(`${'tensor'.padEnd(24)} ${'shape'.padEnd(16)} ${'max abs err'.padStart(12)} ${'max rel err'.padStart(12)} ${'tolerance'.padStart(10)}  result`);
for (const [name, info] of io.tensors) {
  const ours = produced.get(name);
  if (!ours) {
    if (info.dtype === 'F32' && !inputs.includes(name)) skipped.push(name);
    continue;
  }
  const ref = await io.read(name);
  const got = await ours.read();
  let maxAbs = 0;
  let maxRel = 0;
  let maxRef = 0;
  const sameShape = ours.shape.length === info.shape.length && ours.shape.every((d, i) => d === info.shape[i]);
  for (let i = 0; i < ref.length; i++) {
    const err = Math.abs(got[i] - ref[i]);
    maxAbs = Math.max(maxAbs, Number.isNaN(err) ? Infinity : err);
    maxRel = Math.max(maxRel, err / Math.max(Math.abs(ref[i]), 1e-6));
    maxRef = Math.max(maxRef, Math.abs(ref[i]));
  }
  const tolerance = RELATIVE_TOLERANCE * Math.max(1, maxRef);
  const pass = sameShape && maxAbs <= tolerance;
  if (!pass) failures++;
  const shape = `[${info.shape.join(',')}]`;
  console.log(`${name.padEnd(24)} ${shape.padEnd(16)} ${maxAbs.toExponential(2).padStart(12)} ${maxRel.toExponential(2).padStart(12)} ${tolerance.toExponential(1).padStart(10)}  ${pass ? 'PASS' : sameShape ? 'FAIL' : `FAIL (shape [${ours.shape.join(',')}])`}`);
}
if (skipped.length > 0) console.log(`not checked (the engine does not produce them yet): ${skipped.join(', ')}`);
console.log(failures === 0 ? 'all checked tensors PASS' : `${failures} tensor(s) FAIL`);
for (const t of produced.values()) t.dispose();
disposeModel();
await io.close();
gpu.destroy();
process.exit(failures === 0 ? 0 : 1);
