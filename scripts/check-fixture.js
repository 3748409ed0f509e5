// Checks the engine against a golden fixture folder (weights.safetensors +
// io.safetensors, e.g. ../shared/fixtures/clip/clip-tiny-p16): builds the model
// from the weights' key names, shapes and metadata alone, runs it on the io
// inputs, and compares EVERY stored result with what the engine produced.
//
// Every tensor of io.safetensors is either an input of its fixture kind
// (INPUTS below), a result (RESULTS: its tolerance kind), or unknown. It is a
// FAIL when
//   - a stored tensor's name is neither an input nor a result of the kind;
//   - a stored result is not produced by the engine (e.g. its inputs are
//     missing, or a SAM2 prompt case has no prompt tensors);
//   - the produced shape differs from the stored one (host-computed results
//     included: their shapes come from the engine's own counts);
//   - the values differ by more than the kind's tolerance (TOLERANCES).
// Model types: CLIP ViT (openai / HF keys) and SAM2 (official SAM2Base keys,
// `image_encoder.trunk.*`).
// Exit: 0 every stored result produced and within tolerance; 1 any FAIL, a
// folder without weights.safetensors / io.safetensors, or a model type the
// engine does not run; 2 usage.
// Usage: npm run build && node scripts/check-fixture.js <fixture dir>

import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { backward, getDevice, Graph, openSafetensorsFile, Tensor } from '../dist/node.js';
import { detectLayout } from '../dist/models/clip/config.js';
import { ClipModel } from '../dist/models/clip/model.js';
import { Sam2ImageEncoder } from '../dist/models/sam2/image-encoder.js';
import { describeSam2Config } from '../dist/models/sam2/config.js';
import { loadSam2DecoderWeights } from '../dist/models/sam/mask-decoder-weights.js';
import { SamMaskDecoder } from '../dist/models/sam/mask-decoder.js';
import { dynamicSingleMask, multimaskTokens, predictSam2, selectTokens } from '../dist/models/sam/mask-selection.js';
import { promptPoints } from '../dist/models/sam/prompt-encoder.js';

/**
 * Tolerances per tensor kind. A rule's error, compared with `tol`:
 *   'max-scaled'  max|ours − ref| / max(1, max|ref|)        (the CLIP README's rule)
 *   'elementwise' max over i of |ours_i − ref_i| / (1 + |ref_i|), i.e. |Δ| ≤ tol + tol·|ref| elementwise
 *   'absolute'    max|ours − ref|
 *   'exact'       number of differing elements (integers)
 * `measured`: the largest error of that kind over ../shared/fixtures (clip-tiny-p16,
 * clip-tiny-p32, sam2-mini; Dawn on lavapipe), in the rule's units, and where (`at`).
 * `tol` is about 10× measured, never looser than the fixture README's suggestion
 * (`readme`, same units). Calibrated on sam2-mini (256 px): the README suggests a few
 * e-3 for the mask logits of hiera-tiny at 1024, which would need a row of its own.
 */
const TOLERANCES = {
  'clip-forward': { rule: 'max-scaled', tol: 2e-5, measured: 1.8e-6, at: 'p32 vision_patch_embed, vision_block0_out', readme: 1e-4, what: 'CLIP features, logits, intermediates, loss' },
  'clip-gradient': { rule: 'max-scaled', tol: 3e-6, measured: 3.1e-7, at: 'p32 grad_wrt_vision_tokens (grad_wrt_image 6.7e-8)', readme: 1e-4, what: 'CLIP gradients' },
  'sam2-feature': { rule: 'elementwise', tol: 2e-5, measured: 1.5e-6, at: 'dense_pe (image_embed 1.4e-6)', readme: 1e-4, what: 'SAM2 image features, embeddings, positional encodings' },
  'sam2-coords': { rule: 'elementwise', tol: 1e-6, measured: 0, at: '*pe_coords', readme: undefined, what: 'SAM2 prompt coordinates in the model frame (f32 rounding of x·S/W)' },
  'sam2-lowres-mask': { rule: 'absolute', tol: 4e-4, measured: 3.8e-5, at: 'ptsmask_low_res_masks_multi', readme: 1e-3, what: 'SAM2 low-res mask logits' },
  'sam2-final-mask': { rule: 'absolute', tol: 1e-3, measured: 1.3e-4, at: 'masks_final', readme: 1e-3, what: 'SAM2 mask logits at the raw image size (10× measured would exceed the README)' },
  'sam2-iou': { rule: 'absolute', tol: 2e-6, measured: 1.8e-7, at: 'box_iou_pred_all', readme: 1e-5, what: 'SAM2 IoU predictions' },
  'sam2-object-score': { rule: 'absolute', tol: 6e-6, measured: 6.0e-7, at: 'boxpts_object_score_logits', readme: 1e-5, what: 'SAM2 object-score logits' },
  'sam2-stability': { rule: 'absolute', tol: 1e-6, measured: 0, at: '*stability_score_token0', readme: undefined, what: 'SAM2 stability score (a ratio of pixel counts: one pixel moves it ≥ 1e-3)' },
  labels: { rule: 'exact', tol: 0, measured: 0, at: '*pe_labels', readme: 0, what: 'integer labels' },
};

for (const [kind, t] of Object.entries(TOLERANCES)) {
  if (t.readme !== undefined && t.tol > t.readme) throw new Error(`check-fixture: the ${kind} tolerance ${t.tol} is looser than the fixture README's ${t.readme}`);
}

/** The input tensors of each fixture kind: everything else stored is a result (or unknown). */
const INPUTS = {
  clip: ['image', 'text_tokens', 'grad_r', 'attn_mask', 'tricky_text_tokens'],
  // Per SAM2 prompt case p (prefix, '' for the main case): `${p}point_coords`, `${p}point_labels`, `${p}box`
  // (the `box_` case stores its box as `box`), `${p}mask_input`.
  sam2: ['raw_image'],
  sam2Prompt: ['point_coords', 'point_labels', 'box', 'mask_input'],
};

/** The result tensors of each fixture kind → tolerance kind. */
const RESULTS = {
  clip: {
    image_features: 'clip-forward',
    text_features: 'clip-forward',
    logits_per_image: 'clip-forward',
    logits_per_text: 'clip-forward',
    vision_patch_embed: 'clip-forward',
    vision_block0_out: 'clip-forward',
    image_features_masked: 'clip-forward',
    vision_ln_post_out: 'clip-forward',
    text_embed: 'clip-forward',
    text_block0_out: 'clip-forward',
    text_pooled: 'clip-forward',
    tricky_text_features: 'clip-forward',
    loss: 'clip-forward',
    grad_wrt_vision_tokens: 'clip-gradient',
    grad_wrt_proj: 'clip-gradient',
    grad_wrt_image: 'clip-gradient',
  },
  // Image path (no prefix); `image` is the preprocessing result (and the encoder's input).
  sam2: [
    [/^(image|trunk_patch_embed|trunk_pos_embed|trunk_block_input|image_embed|dense_pe)$/, 'sam2-feature'],
    [/^(trunk_block|trunk_stage|neck_fpn|backbone_fpn|vision_pos_enc|high_res_feats)_\d+$/, 'sam2-feature'],
  ],
  // Per prompt case: `${p}${suffix}`.
  sam2Case: {
    pe_coords: 'sam2-coords',
    pe_labels: 'labels',
    sparse_embeddings: 'sam2-feature',
    dense_embeddings: 'sam2-feature',
    iou_pred_all: 'sam2-iou',
    iou_pred_multi: 'sam2-iou',
    iou_pred_single: 'sam2-iou',
    object_score_logits: 'sam2-object-score',
    stability_score_token0: 'sam2-stability',
    low_res_masks_token0: 'sam2-lowres-mask',
    low_res_masks_multi: 'sam2-lowres-mask',
    low_res_masks_single: 'sam2-lowres-mask',
    masks_final: 'sam2-final-mask',
    masks_final_single: 'sam2-final-mask',
  },
};

const dir = process.argv[2];
if (!dir || process.argv.length > 3) {
  console.error('usage: node scripts/check-fixture.js <fixture dir with weights.safetensors and io.safetensors>');
  process.exit(2);
}
if (!existsSync(dir) || !statSync(dir).isDirectory()) {
  console.error(`check-fixture: ${dir} is not a folder`);
  process.exit(1);
}
for (const f of ['weights.safetensors', 'io.safetensors']) {
  if (!existsSync(join(dir, f))) {
    console.error(`check-fixture: ${dir} has no ${f}: FAIL (a fixture folder holds weights.safetensors and io.safetensors)`);
    process.exit(1);
  }
}

const weightsFile = await openSafetensorsFile(join(dir, 'weights.safetensors'));
const shapes = new Map([...weightsFile.tensors].map(([k, info]) => [k, info.shape]));
const isSam2 = shapes.has('image_encoder.trunk.patch_embed.proj.weight');
if (!isSam2) {
  try {
    detectLayout(shapes, weightsFile.name);
  } catch (e) {
    console.error(`check-fixture: ${dir}: unknown model type: ${e.message}`);
    console.error('check-fixture runs CLIP ViT and SAM2 checkpoints only, so none of its stored results can be checked: FAIL');
    await weightsFile.close();
    process.exit(1);
  }
}

// A config.json next to the weights (if any) supplies what shapes cannot (head counts); metadata otherwise.
const configPath = join(dir, 'config.json');
const config = existsSync(configPath) ? JSON.parse(readFileSync(configPath, 'utf8')) : undefined;
const io = await openSafetensorsFile(join(dir, 'io.safetensors'));
const has = (name) => io.tensors.has(name);

// ---------------------------------------------------------------------------
// Every stored tensor: input, result (with its tolerance kind) or unknown.

/** name → { role: 'input' | 'result' | 'unknown', kind?, prefix?, suffix? } */
const roles = new Map();
/** SAM2 prompt cases: prefix → { inputs: suffix → stored name }, recognised by their prompt tensors. */
const cases = new Map();
if (isSam2) {
  const caseNames = [...INPUTS.sam2Prompt, ...Object.keys(RESULTS.sam2Case)].sort((a, b) => b.length - a.length);
  const split = (name) => {
    for (const suffix of caseNames) {
      if (name === suffix) return { prefix: '', suffix };
      if (name.endsWith(`_${suffix}`)) return { prefix: name.slice(0, -suffix.length), suffix };
    }
    return undefined;
  };
  // The `box_` case stores its box as `box` (the main case has none): a bare `box` belongs to `box_` when that case has tensors.
  const boxCaseExists = [...io.tensors.keys()].some((k) => k !== 'box' && k.startsWith('box_') && split(k)?.prefix === 'box_');
  for (const name of io.tensors.keys()) {
    if (INPUTS.sam2.includes(name)) {
      roles.set(name, { role: 'input' });
      continue;
    }
    const global = RESULTS.sam2.find(([re]) => re.test(name));
    if (global) {
      roles.set(name, { role: 'result', kind: global[1] });
      continue;
    }
    const parts = split(name);
    if (!parts) {
      roles.set(name, { role: 'unknown' });
      continue;
    }
    let { prefix, suffix } = parts;
    if (name === 'box' && boxCaseExists) prefix = 'box_';
    if (INPUTS.sam2Prompt.includes(suffix)) {
      roles.set(name, { role: 'input', prefix, suffix });
      if (!cases.has(prefix)) cases.set(prefix, { inputs: new Map() });
      cases.get(prefix).inputs.set(suffix, name);
    } else roles.set(name, { role: 'result', kind: RESULTS.sam2Case[suffix], prefix, suffix });
  }
  // Prompt tensors of a case that stores no result are not inputs of anything.
  for (const [prefix, { inputs }] of cases) {
    if ([...roles.values()].some((r) => r.role === 'result' && r.prefix === prefix)) continue;
    for (const name of inputs.values()) roles.set(name, { role: 'unknown', why: `a prompt tensor of case "${prefix}", which stores no result` });
    cases.delete(prefix);
  }
} else {
  for (const name of io.tensors.keys()) {
    if (INPUTS.clip.includes(name)) roles.set(name, { role: 'input' });
    else if (Object.hasOwn(RESULTS.clip, name)) roles.set(name, { role: 'result', kind: RESULTS.clip[name] });
    else roles.set(name, { role: 'unknown' });
  }
}

// ---------------------------------------------------------------------------
// Run the engine. `produced`: name → Tensor, or { shape, data } computed on the host.

const gpu = await getDevice();
const upload = async (name) => Tensor.fromArray(gpu, await io.read(name), io.info(name).shape);
const produced = new Map();
/** name → why the engine did not produce it (a failed prompt case). */
const notProducedWhy = new Map();
const host = (shape, data) => ({ shape, data });
let disposeModel = () => {};
try {
  disposeModel = isSam2 ? await runSam2() : await runClip();
} finally {
  await weightsFile.close();
}

async function runClip() {
  const model = await ClipModel.fromSafetensors(gpu, weightsFile, { config, dtype: 'f32' });
  const c = model.config;
  console.log(`${dir}: CLIP ViT (${c.layout} keys), embed ${c.embedDim}, image ${c.vision.imageResolution}px patch ${c.vision.patchSize}, ` +
    `vision ${c.vision.layers}×${c.vision.width} (${c.vision.heads} heads), text ${c.text.layers}×${c.text.width} (${c.text.heads} heads), exp(logit_scale) ${model.logitScale.toFixed(6)}`);
  if (has('image')) {
    const image = await upload('image');
    for (const [k, t] of Object.entries(model.traceImage(image))) produced.set(k, t);
    if (has('attn_mask')) {
      const mask = await upload('attn_mask');
      produced.set('image_features_masked', model.encodeImage(image, { attnBias: mask }));
      mask.dispose();
    }
    // The backward test: loss = Σ image_features ∘ grad_r.
    if (has('grad_r')) {
      const r = await upload('grad_r');
      const { loss, gradVisionTokens, gradProj } = model.imageGradients(image, r);
      produced.set('loss', loss);
      produced.set('grad_wrt_vision_tokens', gradVisionTokens);
      produced.set('grad_wrt_proj', gradProj);
      produced.set('grad_wrt_image', imageGradient(model, image, r));
      r.dispose();
    }
    image.dispose();
  }
  if (has('text_tokens')) {
    for (const [k, t] of Object.entries(model.traceText(await io.readInt32('text_tokens')))) produced.set(k, t);
    if (produced.has('image_features')) {
      const { logitsPerImage, logitsPerText } = model.logits(produced.get('image_features'), produced.get('text_features'));
      produced.set('logits_per_image', logitsPerImage);
      produced.set('logits_per_text', logitsPerText);
    }
  }
  if (has('tricky_text_tokens')) produced.set('tricky_text_features', model.encodeText(await io.readInt32('tricky_text_tokens')));
  return () => model.dispose();
}

/**
 * ∂loss/∂image for loss = Σ encodeImage(image) ∘ r: the model's image tower in
 * a graph of its own, differentiated by the engine's autograd down to the
 * pixels (through the patch conv's backward).
 */
function imageGradient(model, image, r) {
  const g = new Graph(gpu, 'check-fixture.grad_wrt_image');
  try {
    const images = g.input('images', image.shape);
    const { features } = model.imageTower(g, images);
    const seed = g.input('r', features.shape);
    g.output('grad_wrt_image', backward(g, features, [images], { seed }).get(images));
    g.compile();
    return g.run({ images: image, r }).grad_wrt_image;
  } finally {
    g.dispose();
  }
}

/**
 * SAM2 (SAM2ImagePredictor's single-image path):
 *   1. image encoder: preprocessing of raw_image (→ image), then, from the
 *      stored `image` (so later checks do not inherit preprocessing error),
 *      trunk, neck, backbone_fpn, image_embed, high_res_feats, vision_pos_enc,
 *      and the prompt encoder's dense_pe / no-mask dense_embeddings.
 *   2. prompt encoder + mask decoder, from section 1's image_embed /
 *      high_res_feats, for every prompt case: a prefix p with a prompt tensor
 *      stored (`${p}point_coords` / `${p}point_labels`, `${p}box` — `box` for
 *      the `box_` case —, `${p}mask_input`).
 */
async function runSam2() {
  const encoder = await Sam2ImageEncoder.fromSafetensors(gpu, weightsFile, { config });
  console.log(`${dir}: SAM2 (${describeSam2Config(encoder.config)}; non-shape facts from the ${encoder.config.from})`);
  const toDispose = [encoder];
  const dispose = () => toDispose.forEach((m) => m.dispose());

  // Section 1: image encoder.
  let rawSize;
  if (has('raw_image')) {
    const [height, width] = io.info('raw_image').shape;
    rawSize = { height, width };
    const rgb = await io.readInt32('raw_image');
    const data = new Uint8Array(width * height * 4).fill(255);
    for (let i = 0; i < width * height; i++) for (let ch = 0; ch < 3; ch++) data[4 * i + ch] = rgb[3 * i + ch];
    produced.set('image', encoder.preprocess({ width, height, data, channels: 3 }));
  }
  const input = has('image') ? await upload('image') : produced.get('image');
  if (!input) return dispose;
  for (const [k, t] of Object.entries(encoder.trace(input))) produced.set(k, t);
  if (input !== produced.get('image')) input.dispose();

  const decoderWeights = await loadSam2DecoderWeights(weightsFile, { imageSize: encoder.config.imageSize });
  const decoder = SamMaskDecoder.create(gpu, decoderWeights, weightsFile.name);
  toDispose.push(decoder);
  const imageEmbedding = produced.get('image_embed');
  const features = { imageEmbedding, highRes: [produced.get('high_res_feats_0'), produced.get('high_res_feats_1')] };
  const { side, frame: S, maskSize: s } = decoder.geometry(features);
  const D = decoder.config.embedDim;
  produced.set('dense_pe', host([1, D, side, side], decoder.densePositionalEncoding(side)));
  // Without a mask input the dense prompt is no_mask_embed at every embedding position.
  const noMask = decoderWeights.tensors.get('prompt_encoder.no_mask_embed.weight').data;
  const noMaskDense = host([1, D, side, side], Float32Array.from({ length: D * side * side }, (_, i) => noMask[Math.floor(i / (side * side))]));
  if (!cases.has('')) produced.set('dense_embeddings', noMaskDense);

  // Section 2: prompt encoder + mask decoder, per prompt case.
  for (const [p, { inputs }] of cases) {
    try {
      if (!rawSize) throw new Error('no raw_image: prompts are in raw-image pixels');
      const { width, height } = rawSize;
      const prompt = {};
      if (inputs.has('point_coords') || inputs.has('point_labels')) {
        if (!inputs.has('point_coords') || !inputs.has('point_labels')) throw new Error(`${p}point_coords and ${p}point_labels come together`);
        const xy = await io.read(inputs.get('point_coords'));
        const labels = await io.readInt32(inputs.get('point_labels'));
        prompt.points = Array.from(labels, (_, i) => [xy[2 * i], xy[2 * i + 1]]);
        prompt.labels = [...labels];
      }
      if (inputs.has('box')) prompt.box = [...(await io.read(inputs.get('box')))];
      if (inputs.has('mask_input')) prompt.mask = await io.read(inputs.get('mask_input'));
      const points = promptPoints('check-fixture', prompt, (x, y) => [(x / width) * S, (y / height) * S], 'sam2');
      const { batch: B, count: N } = points;
      // pe_* are what the predictor hands the prompt encoder: without the padding point (the last one).
      const pe = (data, per) => Array.from({ length: B }, (_, b) => [...data.subarray(b * N * per, (b * N + N - 1) * per)]).flat();
      produced.set(`${p}pe_coords`, host([B, N - 1, 2], Float32Array.from(pe(points.coords, 2))));
      produced.set(`${p}pe_labels`, host([B, N - 1], Int32Array.from(pe(points.labels, 1))));
      produced.set(`${p}sparse_embeddings`, host([B, N, D], decoder.encodePoints(points, S)));
      if (prompt.mask) {
        const mask = Tensor.fromArray(gpu, prompt.mask, [B, 1, s, s]);
        produced.set(`${p}dense_embeddings`, decoder.embedMask(mask));
        mask.dispose();
      } else produced.set(`${p}dense_embeddings`, noMaskDense);
      const out = await decoder.decodeToHost(features, points, prompt.mask);
      const selected = (sel) => host([sel.batch, sel.count, sel.size, sel.size], sel.masks);
      produced.set(`${p}iou_pred_all`, host([out.batch, out.tokens], out.iou));
      if (out.objectScore) produced.set(`${p}object_score_logits`, host([out.batch, 1], out.objectScore));
      produced.set(`${p}low_res_masks_token0`, selected(selectTokens(out, () => [0])));
      const multi = multimaskTokens(out);
      produced.set(`${p}low_res_masks_multi`, selected(multi));
      produced.set(`${p}iou_pred_multi`, host([multi.batch, multi.count], multi.iou));
      const rule = decoder.config.dynamicMultimask;
      if (rule) {
        const single = dynamicSingleMask(out, rule);
        produced.set(`${p}stability_score_token0`, host([single.batch, 1], single.stability));
        produced.set(`${p}low_res_masks_single`, selected(single));
        produced.set(`${p}iou_pred_single`, host([single.batch, single.count], single.iou));
      }
      // The predictor's raw-size logits (one more decode each, so only when stored).
      for (const [suffix, multimask] of [['masks_final', true], ['masks_final_single', false]]) {
        if (!has(`${p}${suffix}`)) continue;
        const r = await predictSam2(decoder, features, { ...prompt, multimask }, width, height);
        produced.set(`${p}${suffix}`, host([1, r.count, r.height, r.width], r.masks));
      }
    } catch (e) {
      for (const [name, role] of roles) if (role.role === 'result' && role.prefix === p && !produced.has(name)) notProducedWhy.set(name, `prompt case "${p}": ${e.message}`);
    }
  }
  return dispose;
}

// ---------------------------------------------------------------------------
// Compare every stored tensor.

const FLOAT_DTYPES = ['F32', 'F16'];
let failures = 0;
let checked = 0;
const inputs = [];
const fail = (line) => {
  failures++;
  console.log(line);
};
const cell = (x) => (x === undefined ? '' : x === 0 ? '0' : x.toExponential(2));
console.log(`${'tensor'.padEnd(30)} ${'shape'.padEnd(16)} ${'kind'.padEnd(17)} ${'max abs err'.padStart(11)} ${'error'.padStart(9)} ${'tolerance'.padStart(9)}  result`);
for (const [name, info] of io.tensors) {
  const role = roles.get(name);
  const shape = `[${info.shape.join(',')}]`;
  const row = (kind, maxAbs, err, tol) => `${name.padEnd(30)} ${shape.padEnd(16)} ${(kind ?? '').padEnd(17)} ${cell(maxAbs).padStart(11)} ${cell(err).padStart(9)} ${cell(tol).padStart(9)}  `;
  if (role.role === 'input') {
    inputs.push(name);
    continue;
  }
  if (role.role === 'unknown') {
    fail(`${row()}FAIL: unknown tensor "${name}" (${role.why ?? `neither an input nor a result of a ${isSam2 ? 'SAM2' : 'CLIP'} fixture`})`);
    continue;
  }
  const { rule, tol } = TOLERANCES[role.kind];
  const ours = produced.get(name);
  if (!ours) {
    const why = notProducedWhy.get(name) ?? (role.prefix !== undefined && !cases.has(role.prefix) ? `prompt case "${role.prefix}" has no prompt tensors (${INPUTS.sam2Prompt.join(' / ')} with that prefix)` : 'its inputs are not stored');
    fail(`${row(role.kind)}FAIL: stored result "${name}" not produced by the engine (${why})`);
    continue;
  }
  checked++;
  const expectInt = rule === 'exact';
  if (expectInt ? info.dtype !== 'I32' : !FLOAT_DTYPES.includes(info.dtype)) {
    fail(`${row(role.kind)}FAIL: stored as ${info.dtype}, a ${role.kind} result is ${expectInt ? 'I32' : 'F32'}`);
    continue;
  }
  const oursShape = ours.shape;
  if (oursShape.length !== info.shape.length || oursShape.some((d, i) => d !== info.shape[i])) {
    fail(`${row(role.kind)}FAIL: shape: ours [${oursShape.join(',')}], stored ${shape}`);
    continue;
  }
  const ref = expectInt ? await io.readInt32(name) : await io.read(name);
  const got = ours instanceof Tensor ? await ours.read() : ours.data;
  // A reference stored as F16 (SAM2 tiny's model input) carries its own rounding: half an f16 ulp.
  const rounding = info.dtype === 'F16' ? 2 ** -11 : 0;
  let maxAbs = 0;
  let maxRef = 0;
  let worst = 0; // 'elementwise': max |Δ|/(1+|ref|); 'exact': mismatches
  for (let i = 0; i < ref.length; i++) {
    let d = Math.abs(got[i] - ref[i]);
    if (Number.isNaN(d)) d = Infinity;
    maxAbs = Math.max(maxAbs, d);
    maxRef = Math.max(maxRef, Math.abs(ref[i]));
    if (rule === 'elementwise') worst = Math.max(worst, Math.max(0, d - rounding * Math.abs(ref[i])) / (1 + Math.abs(ref[i])));
    else if (rule === 'exact' && got[i] !== ref[i]) worst++;
  }
  const err = rule === 'max-scaled' ? maxAbs / Math.max(1, maxRef) : rule === 'absolute' ? maxAbs : worst;
  if (err <= tol) console.log(`${row(role.kind, maxAbs, err, tol)}PASS`);
  else fail(`${row(role.kind, maxAbs, err, tol)}FAIL${rule === 'exact' ? ` (${err} of ${ref.length} differ)` : ''}`);
}
console.log(`inputs: ${inputs.join(', ') || 'none'}`);
const results = [...roles.values()].filter((r) => r.role !== 'input').length;
if (results === 0) fail(`FAIL: ${join(dir, 'io.safetensors')} stores no result, so nothing was checked`);
console.log(failures === 0
  ? `all ${checked} stored results produced and PASS`
  : `${failures} FAIL of ${results} stored non-input tensors (${checked} produced and compared)`);
for (const t of produced.values()) if (t instanceof Tensor) t.dispose();
disposeModel();
await io.close();
gpu.destroy();
process.exit(failures === 0 ? 0 : 1);
