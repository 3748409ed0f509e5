// Checks the engine against a golden fixture folder (weights.safetensors +
// io.safetensors, e.g. ../shared/fixtures/clip/clip-tiny-p16): builds the model
// from the weights' key names, shapes and metadata alone, runs it on the io
// inputs and prints, per expected tensor it can produce, the max abs and max
// relative error and PASS/FAIL against the fixtures' rule
//   max|ours − ref| ≤ 1e-4 · max(1, max|ref|).
// Exit: 0 all pass, 1 any failure, 2 a model type the engine does not run yet.
// Usage: npm run build && node scripts/check-fixture.js <fixture dir>

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { getDevice, openSafetensorsFile, Tensor } from '../dist/node.js';
import { detectLayout } from '../dist/models/clip/config.js';
import { ClipModel } from '../dist/models/clip/model.js';

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
try {
  detectLayout(new Map([...weightsFile.tensors].map(([k, info]) => [k, info.shape])), weightsFile.name);
} catch (e) {
  console.error(`unknown model type: ${e.message}`);
  console.error('check-fixture runs CLIP ViT checkpoints only for now.');
  await weightsFile.close();
  process.exit(2);
}

// A config.json next to the weights (if any) supplies what shapes cannot (head counts); metadata otherwise.
const configPath = join(dir, 'config.json');
const config = existsSync(configPath) ? JSON.parse(readFileSync(configPath, 'utf8')) : undefined;
const gpu = await getDevice();
const io = await openSafetensorsFile(join(dir, 'io.safetensors'));
let model;
try {
  model = await ClipModel.fromSafetensors(gpu, weightsFile, { config });
} finally {
  await weightsFile.close();
}
const c = model.config;
console.log(`${dir}: CLIP ViT (${c.layout} keys), embed ${c.embedDim}, image ${c.vision.imageResolution}px patch ${c.vision.patchSize}, ` +
  `vision ${c.vision.layers}×${c.vision.width} (${c.vision.heads} heads), text ${c.text.layers}×${c.text.width} (${c.text.heads} heads), exp(logit_scale) ${model.logitScale.toFixed(6)}`);

const has = (name) => io.tensors.has(name);
const upload = async (name) => Tensor.fromArray(gpu, await io.read(name), io.info(name).shape);
/** name → produced Tensor */
const produced = new Map();
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

let failures = 0;
const skipped = [];
console.log(`${'tensor'.padEnd(24)} ${'shape'.padEnd(16)} ${'max abs err'.padStart(12)} ${'max rel err'.padStart(12)} ${'tolerance'.padStart(10)}  result`);
for (const [name, info] of io.tensors) {
  const ours = produced.get(name);
  if (!ours) {
    if (info.dtype === 'F32' && !['image', 'attn_mask', 'grad_r'].includes(name)) skipped.push(name);
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
model.dispose();
await io.close();
gpu.destroy();
process.exit(failures === 0 ? 0 : 1);
