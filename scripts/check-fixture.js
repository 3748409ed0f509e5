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
import { SamMaskDecoder, dynamicSingleMask, loadSam2DecoderWeights, multimaskTokens, predictSam2 } from '../dist/models/sam/mask-decoder.js';
import { promptPoints } from '../dist/models/sam/prompt-encoder.js';

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
 *   2. prompt encoder + mask decoder, from section 1's image_embed /
 *      high_res_feats_0 / high_res_feats_1, for every stored prompt case: a
 *      case is a prefix p with `${p}iou_pred_all` stored; its prompt is
 *      `${p}point_coords` / `${p}point_labels`, the box `${p}box` (the `box_`
 *      case keeps it as `box`) and `${p}mask_input`, all optional.
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

  // Section 2: prompt encoder + mask decoder.
  const imageEmbedding = produced.get('image_embed');
  const highRes = [produced.get('high_res_feats_0'), produced.get('high_res_feats_1')];
  if (imageEmbedding && highRes.every(Boolean) && has('raw_image')) {
    const decoderWeights = await loadSam2DecoderWeights(weightsFile, { imageSize: encoder.config.imageSize });
    const decoder = SamMaskDecoder.create(gpu, decoderWeights, weightsFile.name);
    toDispose.push(decoder);
    const features = { imageEmbedding, highRes };
    const [height, width] = io.info('raw_image').shape;
    const S = encoder.config.imageSize;
    /** A host result as a tensor: the stored shape when the sizes agree, else flat (the shape check then fails). */
    const hostResult = (name, data) => {
      if (!has(name)) return;
      const shape = io.info(name).shape;
      produced.set(name, Tensor.fromArray(gpu, data, data.length === shape.reduce((a, b) => a * b, 1) ? shape : [data.length]));
    };
    hostResult('dense_pe', decoder.densePositionalEncoding());
    // Without a mask input the dense prompt is no_mask_embed at every embedding position.
    const noMask = decoderWeights.tensors.get('prompt_encoder.no_mask_embed.weight').data;
    const [, , eh, ew] = imageEmbedding.shape;
    hostResult('dense_embeddings', Float32Array.from({ length: noMask.length * eh * ew }, (_, i) => noMask[Math.floor(i / (eh * ew))]));
    const prefixes = [...io.tensors.keys()].filter((k) => k.endsWith('iou_pred_all')).map((k) => k.slice(0, -'iou_pred_all'.length));
    for (const p of prefixes) {
      const prompt = {};
      if (has(`${p}point_coords`)) {
        const xy = await io.read(`${p}point_coords`);
        const labels = await io.readInt32(`${p}point_labels`);
        prompt.points = Array.from(labels, (_, i) => [xy[2 * i], xy[2 * i + 1]]);
        prompt.labels = [...labels];
      }
      // The `box_` case stores its box as `box`; the case without a prefix has none.
      const boxKey = p === 'box_' ? 'box' : p !== '' && has(`${p}box`) ? `${p}box` : undefined;
      if (boxKey) prompt.box = [...(await io.read(boxKey))];
      if (has(`${p}mask_input`)) prompt.mask = await io.read(`${p}mask_input`);
      const points = promptPoints('check-fixture', prompt, (x, y) => [(x / width) * S, (y / height) * S], 'sam2');
      hostResult(`${p}pe_coords`, points.coords.subarray(0, 2 * (points.count - 1))); // without the padding point
      hostResult(`${p}sparse_embeddings`, decoder.encodePoints(points));
      if (prompt.mask && has(`${p}dense_embeddings`)) {
        const mask = await upload(`${p}mask_input`);
        produced.set(`${p}dense_embeddings`, decoder.embedMask(mask));
        mask.dispose();
      }
      const out = await decoder.decodeToHost(features, points, prompt.mask);
      hostResult(`${p}iou_pred_all`, out.iou);
      if (out.objectScore) hostResult(`${p}object_score_logits`, out.objectScore);
      const s = decoder.maskSize;
      hostResult(`${p}low_res_masks_token0`, out.masks.subarray(0, s * s));
      const multi = multimaskTokens(out);
      hostResult(`${p}low_res_masks_multi`, multi.masks);
      hostResult(`${p}iou_pred_multi`, multi.iou);
      const rule = decoder.config.dynamicMultimask;
      if (rule) {
        const single = dynamicSingleMask(out, rule);
        hostResult(`${p}stability_score_token0`, single.stability);
        hostResult(`${p}low_res_masks_single`, single.masks);
        hostResult(`${p}iou_pred_single`, single.iou);
      }
      hostResult(`${p}masks_final_single`, (await predictSam2(decoder, features, { ...prompt, multimask: false }, width, height)).masks);
      if (has(`${p}masks_final`)) hostResult(`${p}masks_final`, (await predictSam2(decoder, features, prompt, width, height)).masks);
    }
  }

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
