// ClipModel's API beyond the fixtures' forward (test/clip.test.ts): zero-shot
// classify / textEmbeddings end to end from PNG and JPEG bytes, the MLP
// activation from the config, deep VPT (forward and prompt gradients against
// float64 finite differences), positional-embedding interpolation for other
// input sizes, and real-size (ViT-B/32, B/16, L/14) checkpoints in both key
// layouts, built as shape-only safetensors with a synthetic fill (B/32 runs
// one image, checked against float64 through block 0 and the projection).
// The float64 references: test/ref/clip.ts (image tower) and clipTextRef
// below (text tower), on the tiny fixture weights, both checked against the
// fixture's outputs; test/ref/preprocess.ts for classify's pixels.

import * as assert from 'uvu/assert';
import { encode as encodeJpeg } from 'jpeg-js';
import { Tensor } from '../src/tensor.js';
import { openSafetensors, syntheticSafetensors, type SafetensorsFile } from '../src/io/safetensors.js';
import { openSafetensorsFile } from '../src/io/node-files.js';
import { decodeImage, encodePng } from '../src/io/image.js';
import { clipPreprocess } from '../src/kernels/preprocess.js';
import { loadClipTokenizer } from '../src/models/clip/tokenizer-node.js';
import { ClipModel } from '../src/models/clip/model.js';
import { inferClipConfig, type ClipConfig } from '../src/models/clip/config.js';
import { clipImageRef, interpolatePosRef, type ClipRefParams, type ClipRefSizes } from './ref/clip.js';
import { centralDifference, dot } from './ref/backward.js';
import { clipPreprocessRef } from './ref/preprocess.js';
import { attentionRef } from './ref/attention.js';
import { matmulRef } from './ref/matmul.js';
import { layerNorm } from './ref/norm.js';
import { assertClose, assertThrows, gpuSuite, NO_SHARED, randn, sharedPath, skip, type Tolerance } from './util.js';

/** The tiny p16 fixture's files and the BPE vocabulary: null when ../shared is absent; a missing file fails this file here. */
const WEIGHTS = sharedPath('fixtures', 'clip', 'clip-tiny-p16', 'weights.safetensors');
const IO = sharedPath('fixtures', 'clip', 'clip-tiny-p16', 'io.safetensors');
const VOCAB = sharedPath('clip-vocab', 'bpe_simple_vocab_16e6.txt.gz');
/** openai/CLIP's Normalize constants (clip/clip.py _transform), written out here rather than taken from src/. */
const OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073];
const OPENAI_STD = [0.26862954, 0.26130258, 0.27577711];

/**
 * f32 engine vs float64 reference: max |ours − ref| ≤ 1e-4 · max(1, max|ref|),
 * the fixtures' rule (a correct f32 forward lands at 1e-6…1e-5; a wrong
 * activation, prompt position or interpolation weight gives ≥ 1e-2).
 */
const RELATIVE_TOLERANCE = 1e-4;
/** Probabilities from f32 logits of magnitude ≤ exp(3.3) ≈ 27: an f32 logit error ~1e-5 moves a probability by < 1e-5. */
const PROB_TOLERANCE = 1e-4;

const test = gpuSuite('clip-api');

/** Fresh N(0, 1) data per call (deterministic: the seeds count up). */
let nextSeed = 100;
const rnd = (n: number) => randn(n, nextSeed++);

interface Tiny {
  file: SafetensorsFile;
  model: ClipModel;
  params: (key: string) => Float64Array;
  sizes: ClipRefSizes;
}
let tiny: Tiny | null = null;

test.before(async (ctx) => {
  if (!WEIGHTS) return;
  const file = await openSafetensorsFile(WEIGHTS);
  const model = await ClipModel.fromSafetensors(ctx.gpu, file, { dtype: 'f32' });
  const cache = new Map<string, Float64Array>();
  for (const key of file.tensors.keys()) cache.set(key, Float64Array.from(await file.read(key)));
  const params = (key: string) => {
    const v = cache.get(key);
    if (!v) throw new Error(`no tensor ${key}`);
    return v;
  };
  const v = model.config.vision;
  tiny = { file, model, params, sizes: { width: v.width, layers: v.layers, heads: v.heads, patch: v.patchSize, grid: v.grid, embed: model.config.embedDim } };
});

test.after(async () => {
  tiny?.model.dispose();
  await tiny?.file.close();
});

/** The loaded fixture, or null after marking the test skipped (../shared is absent). */
function fixture(): Tiny | null {
  if (!tiny) skip(NO_SHARED);
  return tiny;
}

function expectRef(got: Float32Array, ref: Float64Array, what: string): void {
  const maxRef = ref.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
  assertClose(got, ref, { atol: RELATIVE_TOLERANCE * Math.max(1, maxRef), rtol: 0 }, what);
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);

async function readAndDispose(t: Tensor): Promise<Float32Array> {
  const data = (await t.read()) as Float32Array;
  t.dispose();
  return data;
}

// ---------------------------------------------------------------- activation

test('activation: inferred from config forms (HF hidden_act, OpenCLIP quick_gelu / vision_cfg), overridable, bad values throw', async () => {
  const f = fixture();
  if (!f) return;
  const shapes = new Map([...f.file.tensors].map(([k, info]) => [k, info.shape] as const));
  const act = (config?: Record<string, unknown>, override?: 'gelu' | 'quickGelu') => {
    const c = inferClipConfig(shapes, 'w.safetensors', config, override);
    return `${c.activation}/${c.activationFrom}`;
  };
  assert.is(act(), 'quickGelu/default');
  assert.is(act({ vision_config: { hidden_act: 'quick_gelu' }, text_config: { hidden_act: 'quick_gelu' } }), 'quickGelu/config');
  assert.is(act({ vision_config: { hidden_act: 'gelu' }, text_config: { hidden_act: 'gelu' } }), 'gelu/config');
  assert.is(act({ embed_dim: 512, vision_cfg: { width: 768 }, text_cfg: {} }), 'gelu/config');
  assert.is(act({ embed_dim: 512, quick_gelu: true, vision_cfg: { width: 768 } }), 'quickGelu/config');
  assert.is(act({ vision_config: { hidden_act: 'gelu' } }, 'quickGelu'), 'quickGelu/option');
  await assertThrows(() => act({ vision_config: { hidden_act: 'relu' } }), /w\.safetensors/, /hidden_act "relu" is not supported/);
  await assertThrows(() => act({ vision_config: { hidden_act: 'gelu' }, text_config: { hidden_act: 'quick_gelu' } }), /different activations/);
  await assertThrows(() => act(undefined, 'swish' as 'gelu'), /activation must be 'quickGelu' or 'gelu', got "swish"/);
});

test('activation: the float64 reference reproduces the fixture (QuickGELU); a GELU model matches the reference with GELU', async (ctx) => {
  const f = fixture();
  if (!f) return;
  const io = await openSafetensorsFile(IO!);
  const imageData = await io.read('image');
  const shape = io.info('image').shape;
  const quick = clipImageRef(f.params, f.sizes, imageData, shape, { activation: 'quickGelu' }).features;
  expectRef(await io.read('image_features'), quick, 'reference vs fixture image_features');
  await io.close();

  const weights = await openSafetensorsFile(WEIGHTS!);
  const gelu = await ClipModel.fromSafetensors(ctx.gpu, weights, { activation: 'gelu', dtype: 'f32' });
  await weights.close();
  assert.is(gelu.config.activation, 'gelu');
  const image = Tensor.fromArray(ctx.gpu, imageData, shape);
  const got = await readAndDispose(gelu.encodeImage(image));
  const ref = clipImageRef(f.params, f.sizes, imageData, shape, { activation: 'gelu' }).features;
  expectRef(got, ref, 'GELU image features');
  assert.ok(maxDiff(ref, quick) > 1e-3, 'GELU and QuickGELU must differ on this model');
  image.dispose();
  gelu.dispose();
});

// ---------------------------------------------------------------- deep VPT

test('deep VPT: per-block prompts match the float64 reference; k = 1 and shallow prompts match the shallow reference', async (ctx) => {
  const f = fixture();
  if (!f) return;
  const { width: W, layers } = f.sizes;
  const P = 3;
  const imageData = rnd(2 * 3 * 64 * 64);
  const image = Tensor.fromArray(ctx.gpu, imageData, [2, 3, 64, 64]);
  const deepData = rnd(layers * P * W);
  const deep = Tensor.fromArray(ctx.gpu, deepData, [layers, P, W]);
  const got = await readAndDispose(f.model.encodeImage(image, { deepPrompts: deep }));
  const ref = clipImageRef(f.params, f.sizes, imageData, [2, 3, 64, 64], { activation: 'quickGelu', prompts: { data: deepData, shape: [layers, P, W] } }).features;
  expectRef(got, ref, 'deep VPT features');
  const shallowRef = clipImageRef(f.params, f.sizes, imageData, [2, 3, 64, 64], { activation: 'quickGelu', prompts: { data: deepData.subarray(0, P * W), shape: [P, W] } }).features;
  assert.ok(maxDiff(ref, shallowRef) > 1e-3, 'the second block prompts must matter');

  const first = Tensor.fromArray(ctx.gpu, deepData.subarray(0, P * W), [1, P, W]);
  const shallow = first.reshape([P, W]);
  expectRef(await readAndDispose(f.model.encodeImage(image, { deepPrompts: first })), shallowRef, 'deep VPT k = 1 vs the shallow reference');
  expectRef(await readAndDispose(f.model.encodeImage(image, { prompts: shallow })), shallowRef, 'shallow VPT vs the shallow reference');

  await assertThrows(() => f.model.encodeImage(image, { prompts: shallow, deepPrompts: deep }), /prompts \(shallow VPT\) or deepPrompts/);
  const tooDeep = Tensor.empty(ctx.gpu, [layers + 1, P, W]);
  await assertThrows(() => f.model.encodeImage(image, { deepPrompts: tooDeep }), /deepPrompts must be f32 \[k, P, 64\] with 1 <= k <= 2/, /\[3, 3, 64\]/);
  for (const t of [image, deep, first, tooDeep]) t.dispose();
});

test('prompt gradients (deep and shallow) through imageGradients match float64 finite differences', async (ctx) => {
  const f = fixture();
  if (!f) return;
  const { width: W, layers, embed: E } = f.sizes;
  const P = 2;
  const imageData = rnd(3 * 64 * 64);
  const rData = rnd(E);
  const image = Tensor.fromArray(ctx.gpu, imageData, [1, 3, 64, 64]);
  const seed = Tensor.fromArray(ctx.gpu, rData, [1, E]);
  for (const shape of [[layers, P, W], [P, W]]) {
    const promptData = rnd(shape.reduce((a, b) => a * b, 1));
    const prompts = Tensor.fromArray(ctx.gpu, promptData, shape);
    const grads = f.model.imageGradients(image, seed, shape.length === 3 ? { deepPrompts: prompts } : { prompts });
    assert.equal([...grads.gradPrompts!.shape], shape);
    const got = await readAndDispose(grads.gradPrompts!);
    for (const t of [grads.loss, grads.gradProj, grads.gradVisionTokens]) t.dispose();
    const loss = (x: Float64Array) => dot(clipImageRef(f.params, f.sizes, imageData, [1, 3, 64, 64], { activation: 'quickGelu', prompts: { data: x, shape } }).features, rData);
    // A few coordinates per prompt block (every coordinate would take 2 float64 forwards each).
    const coords = shape.length === 3 ? [0, 5, W + 7, P * W + 3, P * W + W + 63] : [0, 9, W + 40];
    const fd = coords.map((i) => centralDifference((x) => loss(Float64Array.from(promptData, (v, j) => (j === i ? x[0] : v))), [promptData[i]])[0]);
    const picked = coords.map((i) => got[i]);
    const scale = Math.max(1, ...fd.map(Math.abs));
    assertClose(Float32Array.from(picked), Float64Array.from(fd), { atol: RELATIVE_TOLERANCE * scale * 10, rtol: 0 }, `∂loss/∂prompts ${shape.join('×')}`);
    assert.ok(fd.some((g) => Math.abs(g) > 1e-3), 'the gradients must not all vanish');
    prompts.dispose();
  }
  image.dispose();
  seed.dispose();
});

// ---------------------------------------------------------------- positional interpolation

test('positional interpolation: the resampled grid (class row kept) and the features match float64, both modes, up and down', async (ctx) => {
  const f = fixture();
  if (!f) return;
  const { width: W, grid: G } = f.sizes;
  const cases: [number, number, 'bicubic' | 'bicubic-antialias'][] = [[96, 80, 'bicubic-antialias'], [96, 80, 'bicubic'], [32, 48, 'bicubic-antialias'], [112, 112, 'bicubic']];
  for (const [H, Wpx, mode] of cases) {
    const zeros = Tensor.fromArray(ctx.gpu, new Float32Array(3 * H * Wpx), [1, 3, H, Wpx]);
    const trace = f.model.traceImage(zeros, { posInterpolation: mode });
    const embed = await readAndDispose(trace.vision_patch_embed);
    for (const t of Object.values(trace)) if (t !== trace.vision_patch_embed) t.dispose();
    // A zero image: the conv (no bias) gives 0, so the ln_pre input is [cls + pos₀, pos_interp].
    const pos = interpolatePosRef(f.params('visual.positional_embedding'), G, W, H / 16, Wpx / 16, mode);
    const cls = f.params('visual.class_embedding');
    for (let c = 0; c < W; c++) pos[c] += cls[c];
    expectRef(embed, pos, `${mode} ${H}×${Wpx} positional grid`);
    zeros.dispose();

    const imageData = rnd(3 * H * Wpx);
    const image = Tensor.fromArray(ctx.gpu, imageData, [1, 3, H, Wpx]);
    const ref = clipImageRef(f.params, f.sizes, imageData, [1, 3, H, Wpx], { activation: 'quickGelu', posInterpolation: mode }).features;
    expectRef(await readAndDispose(f.model.encodeImage(image, { posInterpolation: mode })), ref, `${mode} ${H}×${Wpx} features`);
    image.dispose();
  }
  // The two modes differ (a = −0.5 with renormalised windows vs a = −0.75 with clamped taps).
  const a = interpolatePosRef(f.params('visual.positional_embedding'), G, W, 6, 5, 'bicubic');
  const b = interpolatePosRef(f.params('visual.positional_embedding'), G, W, 6, 5, 'bicubic-antialias');
  assert.ok(maxDiff(a, b) > 1e-3);
  // The checkpoint's own size: unchanged, with or without the option.
  const io = await openSafetensorsFile(IO!);
  const image = Tensor.fromArray(ctx.gpu, await io.read('image'), io.info('image').shape);
  expectRef(await readAndDispose(f.model.encodeImage(image, { posInterpolation: 'bicubic' })), Float64Array.from(await io.read('image_features')), 'native size');
  await io.close();
  image.dispose();

  const odd = Tensor.empty(ctx.gpu, [1, 3, 96, 72]);
  await assertThrows(() => f.model.encodeImage(odd), /encodeImage/, /\[N, 3, 64, 64\]/, /\[1, 3, 96, 72\]/, /posInterpolation/);
  await assertThrows(() => f.model.encodeImage(odd, { posInterpolation: 'bicubic' }), /multiples of the patch size 16/, /\[1, 3, 96, 72\]/);
  await assertThrows(() => f.model.encodeImage(odd, { posInterpolation: 'bilinear' as 'bicubic' }), /posInterpolation must be 'bicubic-antialias' or 'bicubic', got "bilinear"/);
  odd.dispose();
});

// ---------------------------------------------------------------- zero-shot

/** A 90×70 RGBA test picture: gradients and a disc, different per seed. */
function picture(seed: number): { width: number; height: number; data: Uint8Array } {
  const width = 90;
  const height = 70;
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      const disc = (x - 30 - seed * 20) ** 2 + (y - 35) ** 2 < 300 ? 120 : 0;
      data[i] = (x * 3 + seed * 50 + disc) % 256;
      data[i + 1] = (y * 3 + disc) % 256;
      data[i + 2] = ((x + y) * (seed + 1)) % 256;
      data[i + 3] = 255;
    }
  }
  return { width, height, data };
}

function softmaxCosine(img: ArrayLike<number>, txt: ArrayLike<number>, N: number, K: number, E: number, scale: number): Float64Array {
  const norm = (v: ArrayLike<number>, off: number) => Math.sqrt(Array.from({ length: E }, (_, e) => v[off + e] ** 2).reduce((a, b) => a + b, 0));
  const probs = new Float64Array(N * K);
  for (let n = 0; n < N; n++) {
    const logits = Array.from({ length: K }, (_, k) => {
      let d = 0;
      for (let e = 0; e < E; e++) d += img[n * E + e] * txt[k * E + e];
      return (scale * d) / (norm(img, n * E) * norm(txt, k * E));
    });
    const max = Math.max(...logits);
    const z = logits.reduce((s, l) => s + Math.exp(l - max), 0);
    logits.forEach((l, k) => (probs[n * K + k] = Math.exp(l - max) / z));
  }
  return probs;
}

/**
 * Float64 text tower (OpenAI keys) from the per-op references: token +
 * positional embedding, pre-LN blocks with the causal mask and QuickGELU,
 * ln_final, the row at argmax(ids) (the first EOT), then text_projection.
 */
function clipTextRef(p: ClipRefParams, ids: Int32Array, { width: W, layers, heads }: { width: number; layers: number; heads: number }): Float64Array {
  const C = 77;
  const N = ids.length / C;
  const E = p('text_projection').length / W;
  const tok = p('token_embedding.weight');
  const pos = p('positional_embedding');
  let x: Float64Array = new Float64Array(N * C * W);
  for (let r = 0; r < N * C; r++) for (let c = 0; c < W; c++) x[r * W + c] = tok[ids[r] * W + c] + pos[(r % C) * W + c];
  for (let i = 0; i < layers; i++) {
    const b = `transformer.resblocks.${i}.`;
    const h = layerNorm(x, N * C, W, p(`${b}ln_1.weight`), p(`${b}ln_1.bias`), 1e-5).y;
    const qkv = matmulRef(h, [N * C, W], p(`${b}attn.in_proj_weight`), [3 * W, W], { transB: true, bias: p(`${b}attn.in_proj_bias`) }).data;
    const part = (j: number) => Float64Array.from({ length: N * C * W }, (_, e) => qkv[Math.floor(e / W) * 3 * W + j * W + (e % W)]);
    const att = attentionRef({ q: part(0), k: part(1), v: part(2), B: N, H: heads, Lq: C, Lk: C, D: W / heads, Dv: W / heads, layout: 'blhd', causal: true }).out;
    const x1 = matmulRef(att, [N * C, W], p(`${b}attn.out_proj.weight`), [W, W], { transB: true, bias: p(`${b}attn.out_proj.bias`), residual: x }).data;
    const h2 = layerNorm(x1, N * C, W, p(`${b}ln_2.weight`), p(`${b}ln_2.bias`), 1e-5).y;
    const fc = matmulRef(h2, [N * C, W], p(`${b}mlp.c_fc.weight`), [4 * W, W], { transB: true, bias: p(`${b}mlp.c_fc.bias`), activation: 'quickGelu' }).data;
    x = matmulRef(fc, [N * C, 4 * W], p(`${b}mlp.c_proj.weight`), [W, 4 * W], { transB: true, bias: p(`${b}mlp.c_proj.bias`), residual: x1 }).data;
  }
  const pooled = new Float64Array(N * W);
  for (let n = 0; n < N; n++) {
    const row = Array.from(ids.subarray(n * C, (n + 1) * C));
    const t = row.indexOf(Math.max(...row));
    pooled.set(x.subarray((n * C + t) * W, (n * C + t + 1) * W), n * W);
  }
  const ln = layerNorm(pooled, N, W, p('ln_final.weight'), p('ln_final.bias'), 1e-5).y;
  return matmulRef(ln, [N, W], p('text_projection'), [W, E]).data;
}

test('classify: PNG and JPEG bytes → decode → preprocess → probabilities = float64 softmax of scaled cosines (single and ensembled templates)', async (ctx) => {
  const f = fixture();
  if (!f) return;
  const m = f.model;
  const E = m.config.embedDim;
  const S = m.config.vision.imageResolution;
  const images = [picture(0), picture(1)];
  const png = encodePng(images[0].data, images[0].width, images[0].height);
  const jpeg = encodeJpeg({ width: images[1].width, height: images[1].height, data: images[1].data }, 90).data;
  const decoded = [decodeImage(png, 'a.png'), decodeImage(new Uint8Array(jpeg), 'b.jpg')];
  const classes = ['cat', 'dog', 'chest x-ray'];

  await assertThrows(() => m.classify(decoded, classes), /classify|textEmbeddings/, /no tokenizer/);
  m.tokenizer = await loadClipTokenizer(VOCAB!);

  // The reference, all float64 and none of it the engine: the decoded pixels through
  // test/ref/preprocess.ts (PIL bicubic, openai/CLIP's mean/std) and the image tower
  // reference; the prompts' ids (the tokenizer matches the official oracle,
  // test/tokenizer.test.ts) through the text tower reference, itself checked here
  // against the fixture's text_features.
  const io = await openSafetensorsFile(IO!);
  expectRef(await io.read('text_features'), clipTextRef(f.params, await io.readInt32('text_tokens'), m.config.text), 'text tower reference vs fixture text_features');
  await io.close();
  const pixelsRef = new Float64Array(2 * 3 * S * S);
  decoded.forEach((d, i) => pixelsRef.set(clipPreprocessRef(d, S, OPENAI_MEAN, OPENAI_STD, 'bicubic'), i * 3 * S * S));
  const img = clipImageRef(f.params, f.sizes, pixelsRef, [2, 3, S, S], { activation: 'quickGelu' }).features;
  const textOf = (prompts: string[]) => clipTextRef(f.params, m.tokenizer!.tokenize(prompts), m.config.text);
  const txt = textOf(classes.map((c) => `a photo of a ${c}.`));
  const probs = softmaxCosine(img, txt, 2, 3, E, m.logitScale);

  const result = await m.classify(decoded, classes);
  assert.equal(result.shape, [2, 3]);
  assertClose(result.probs, probs, { atol: PROB_TOLERANCE, rtol: 0 }, 'classify probs');
  for (let n = 0; n < 2; n++) {
    const row = Array.from(probs.subarray(n * 3, n * 3 + 3));
    assert.is(result.indices[n], row.indexOf(Math.max(...row)));
    assert.is(result.labels[n], classes[result.indices[n]]);
  }
  // A preprocessed tensor (second call: the cached class embeddings) gives the same.
  const pixels = clipPreprocess(ctx.gpu, decoded, { size: S });
  assertClose((await m.classify(pixels, classes)).probs, probs, { atol: PROB_TOLERANCE, rtol: 0 }, 'tensor input');

  // Ensembled templates: mean of the normalised embeddings, renormalised (renormalising is what softmaxCosine's division does).
  const templates = ['a photo of a {}.', 'an x-ray showing {}'];
  const a = txt;
  const b = textOf(classes.map((c) => `an x-ray showing ${c}`));
  const mean = new Float64Array(3 * E);
  for (let k = 0; k < 3; k++) {
    const na = Math.hypot(...a.subarray(k * E, (k + 1) * E));
    const nb = Math.hypot(...b.subarray(k * E, (k + 1) * E));
    for (let e = 0; e < E; e++) mean[k * E + e] = (a[k * E + e] / na + b[k * E + e] / nb) / 2;
  }
  const ensembledRef = softmaxCosine(img, mean, 2, 3, E, m.logitScale);
  const ensembled = await m.classify(pixels, classes, { template: templates });
  assertClose(ensembled.probs, ensembledRef, { atol: PROB_TOLERANCE, rtol: 0 }, 'ensembled probs');
  assert.ok(maxDiff(ensembledRef, probs) > 10 * PROB_TOLERANCE, 'the second template must change the probabilities');

  // textEmbeddings: the normalised text features.
  const emb = await readAndDispose(m.textEmbeddings(['a photo of a cat.']));
  const n0 = Math.hypot(...txt.subarray(0, E));
  assertClose(emb, txt.subarray(0, E).map((v) => v / n0), { atol: 1e-5, rtol: 0 }, 'textEmbeddings');

  await assertThrows(() => m.classify(pixels, []), /classNames must be a non-empty array/);
  await assertThrows(() => m.classify(pixels, classes, { template: 'a photo' }), /template must be a string .* containing "\{\}"/);
  await assertThrows(() => m.classify(pixels, [('x ').repeat(100)]), /too long for context length 77/);
  pixels.dispose();
  m.tokenizer = undefined;
});

// ---------------------------------------------------------------- real sizes

interface Arch {
  name: string;
  vision: { width: number; layers: number; patch: number; grid: number };
  text: { width: number; layers: number };
  embed: number;
}
const ARCHS: Arch[] = [
  { name: 'ViT-B/32', vision: { width: 768, layers: 12, patch: 32, grid: 7 }, text: { width: 512, layers: 12 }, embed: 512 },
  { name: 'ViT-B/16', vision: { width: 768, layers: 12, patch: 16, grid: 14 }, text: { width: 512, layers: 12 }, embed: 512 },
  { name: 'ViT-L/14', vision: { width: 1024, layers: 24, patch: 14, grid: 16 }, text: { width: 768, layers: 12 }, embed: 768 },
];
type Entry = [key: string, shape: number[], dtype?: 'F32' | 'I64'];

/** The official state_dict keys of openai/CLIP's model.py (as OpenCLIP writes them too). */
function openaiKeys(a: Arch): Entry[] {
  const block = (p: string, D: number): Entry[] => [
    [`${p}attn.in_proj_weight`, [3 * D, D]], [`${p}attn.in_proj_bias`, [3 * D]], [`${p}attn.out_proj.weight`, [D, D]], [`${p}attn.out_proj.bias`, [D]],
    [`${p}ln_1.weight`, [D]], [`${p}ln_1.bias`, [D]], [`${p}mlp.c_fc.weight`, [4 * D, D]], [`${p}mlp.c_fc.bias`, [4 * D]],
    [`${p}mlp.c_proj.weight`, [D, 4 * D]], [`${p}mlp.c_proj.bias`, [D]], [`${p}ln_2.weight`, [D]], [`${p}ln_2.bias`, [D]],
  ];
  const { width: V, layers: LV, patch, grid } = a.vision;
  const { width: T, layers: LT } = a.text;
  return [
    ['positional_embedding', [77, T]], ['text_projection', [T, a.embed]], ['logit_scale', []],
    ['visual.class_embedding', [V]], ['visual.positional_embedding', [grid * grid + 1, V]], ['visual.proj', [V, a.embed]],
    ['visual.conv1.weight', [V, 3, patch, patch]], ['visual.ln_pre.weight', [V]], ['visual.ln_pre.bias', [V]],
    ...Array.from({ length: LV }, (_, i) => block(`visual.transformer.resblocks.${i}.`, V)).flat(),
    ['visual.ln_post.weight', [V]], ['visual.ln_post.bias', [V]],
    ['token_embedding.weight', [49408, T]],
    ...Array.from({ length: LT }, (_, i) => block(`transformer.resblocks.${i}.`, T)).flat(),
    ['ln_final.weight', [T]], ['ln_final.bias', [T]],
  ];
}

/** The state_dict keys of transformers' CLIPModel. */
function hfKeys(a: Arch): Entry[] {
  const layer = (p: string, D: number): Entry[] => [
    ...['k', 'v', 'q', 'out'].flatMap((n): Entry[] => [[`${p}self_attn.${n}_proj.weight`, [D, D]], [`${p}self_attn.${n}_proj.bias`, [D]]]),
    [`${p}layer_norm1.weight`, [D]], [`${p}layer_norm1.bias`, [D]], [`${p}mlp.fc1.weight`, [4 * D, D]], [`${p}mlp.fc1.bias`, [4 * D]],
    [`${p}mlp.fc2.weight`, [D, 4 * D]], [`${p}mlp.fc2.bias`, [D]], [`${p}layer_norm2.weight`, [D]], [`${p}layer_norm2.bias`, [D]],
  ];
  const { width: V, layers: LV, patch, grid } = a.vision;
  const { width: T, layers: LT } = a.text;
  return [
    ['logit_scale', []],
    ['text_model.embeddings.position_ids', [1, 77], 'I64'], ['text_model.embeddings.token_embedding.weight', [49408, T]], ['text_model.embeddings.position_embedding.weight', [77, T]],
    ...Array.from({ length: LT }, (_, i) => layer(`text_model.encoder.layers.${i}.`, T)).flat(),
    ['text_model.final_layer_norm.weight', [T]], ['text_model.final_layer_norm.bias', [T]],
    ['vision_model.embeddings.class_embedding', [V]], ['vision_model.embeddings.position_ids', [1, grid * grid + 1], 'I64'],
    ['vision_model.embeddings.patch_embedding.weight', [V, 3, patch, patch]], ['vision_model.embeddings.position_embedding.weight', [grid * grid + 1, V]],
    ['vision_model.pre_layrnorm.weight', [V]], ['vision_model.pre_layrnorm.bias', [V]],
    ...Array.from({ length: LV }, (_, i) => layer(`vision_model.encoder.layers.${i}.`, V)).flat(),
    ['vision_model.post_layernorm.weight', [V]], ['vision_model.post_layernorm.bias', [V]],
    ['visual_projection.weight', [a.embed, V]], ['text_projection.weight', [a.embed, T]],
  ];
}

test('real sizes: B/32, B/16, L/14 in both layouts infer their config; missing and mis-shaped keys are Errors naming the key', async (ctx) => {
  for (const a of ARCHS) {
    for (const [layout, keys] of [['openai', openaiKeys(a)], ['hf', hfKeys(a)]] as const) {
      const file = await openSafetensors(syntheticSafetensors(keys, `${a.name}-${layout}.safetensors`));
      const c: ClipConfig = inferClipConfig(new Map([...file.tensors].map(([k, i]) => [k, i.shape] as const)), file.name);
      const got = [c.layout, c.embedDim, c.vision.width, c.vision.layers, c.vision.heads, c.vision.patchSize, c.vision.grid, c.vision.imageResolution, c.text.width, c.text.layers, c.text.heads, c.activation];
      assert.equal(got, [layout, a.embed, a.vision.width, a.vision.layers, a.vision.width / 64, a.vision.patch, a.vision.grid, 224, a.text.width, a.text.layers, a.text.width / 64, 'quickGelu'], `${a.name} ${layout}`);
      // Both checks run before any upload, so they cost nothing at real sizes.
      // The last vision block's MLP input weight (not a key the layout detection or the config inference reads).
      const last = a.vision.layers - 1;
      const victim = keys.find(([k]) => k === (layout === 'openai' ? `visual.transformer.resblocks.${last}.mlp.c_fc.weight` : `vision_model.encoder.layers.${last}.mlp.fc1.weight`))!;
      const without = await openSafetensors(syntheticSafetensors(keys.filter((e) => e !== victim), `missing-${layout}.safetensors`));
      const quoted = victim[0].replace(/\./g, '\\.');
      await assertThrows(() => ClipModel.fromSafetensors(ctx.gpu, without), /missing-/, new RegExp(`missing tensor "${quoted}" \\(expected shape \\[${victim[1].join(', ')}\\]\\)`));
      const bent = keys.map((e): Entry => (e === victim ? [e[0], [...e[1].slice(0, -1), e[1].at(-1)! + 1]] : e));
      const misshaped = await openSafetensors(syntheticSafetensors(bent, `bent-${layout}.safetensors`));
      await assertThrows(() => ClipModel.fromSafetensors(ctx.gpu, misshaped), /bent-/, new RegExp(`tensor "${quoted}" has shape \\[${bent.find((e) => e[0] === victim[0])![1].join(', ')}\\], expected \\[${victim[1].join(', ')}\\]`));
    }
  }
});

/** The OpenAI-keyed tensors the float64 reference of the embedding, block 0 and the projection reads, from either layout (HF q/k/v concatenated, visual_projection transposed back). */
async function visionRefParams(file: SafetensorsFile, layout: 'openai' | 'hf'): Promise<ClipRefParams> {
  const read = async (key: string) => Float64Array.from(await file.read(key));
  const params = new Map<string, Float64Array>();
  const b0 = 'visual.transformer.resblocks.0.';
  const hf: Record<string, string> = {
    'visual.conv1.weight': 'vision_model.embeddings.patch_embedding.weight',
    'visual.class_embedding': 'vision_model.embeddings.class_embedding',
    'visual.positional_embedding': 'vision_model.embeddings.position_embedding.weight',
    'visual.ln_pre.weight': 'vision_model.pre_layrnorm.weight',
    'visual.ln_pre.bias': 'vision_model.pre_layrnorm.bias',
    'visual.ln_post.weight': 'vision_model.post_layernorm.weight',
    'visual.ln_post.bias': 'vision_model.post_layernorm.bias',
    [`${b0}ln_1.weight`]: 'vision_model.encoder.layers.0.layer_norm1.weight',
    [`${b0}ln_1.bias`]: 'vision_model.encoder.layers.0.layer_norm1.bias',
    [`${b0}attn.out_proj.weight`]: 'vision_model.encoder.layers.0.self_attn.out_proj.weight',
    [`${b0}attn.out_proj.bias`]: 'vision_model.encoder.layers.0.self_attn.out_proj.bias',
    [`${b0}ln_2.weight`]: 'vision_model.encoder.layers.0.layer_norm2.weight',
    [`${b0}ln_2.bias`]: 'vision_model.encoder.layers.0.layer_norm2.bias',
    [`${b0}mlp.c_fc.weight`]: 'vision_model.encoder.layers.0.mlp.fc1.weight',
    [`${b0}mlp.c_fc.bias`]: 'vision_model.encoder.layers.0.mlp.fc1.bias',
    [`${b0}mlp.c_proj.weight`]: 'vision_model.encoder.layers.0.mlp.fc2.weight',
    [`${b0}mlp.c_proj.bias`]: 'vision_model.encoder.layers.0.mlp.fc2.bias',
  };
  for (const [key, hfKey] of Object.entries(hf)) params.set(key, await read(layout === 'openai' ? key : hfKey));
  if (layout === 'openai') {
    for (const key of [`${b0}attn.in_proj_weight`, `${b0}attn.in_proj_bias`, 'visual.proj']) params.set(key, await read(key));
  } else {
    for (const kind of ['weight', 'bias']) {
      const parts = await Promise.all(['q', 'k', 'v'].map((n) => read(`vision_model.encoder.layers.0.self_attn.${n}_proj.${kind}`)));
      const joined = new Float64Array(3 * parts[0].length);
      parts.forEach((part, j) => joined.set(part, j * part.length));
      params.set(`${b0}attn.in_proj_${kind}`, joined);
    }
    const [E, W] = file.info('visual_projection.weight').shape;
    const t = await read('visual_projection.weight');
    params.set('visual.proj', Float64Array.from({ length: W * E }, (_, i) => t[(i % E) * W + Math.floor(i / E)]));
  }
  return (key) => {
    const v = params.get(key);
    if (!v) throw new Error(`visionRefParams: no ${key}`);
    return v;
  };
}

/**
 * Float64 output of vision block 0 (pre-LN attention + QuickGELU MLP, both
 * residual) at token rows `rows` of x [L, W] (one image): keys and values for
 * every token, the rest only for those rows (a fraction of the full block's cost).
 */
function visionBlock0Ref(p: ClipRefParams, x: Float64Array, L: number, W: number, heads: number, rows: readonly number[]): Float64Array {
  const b = 'visual.transformer.resblocks.0.';
  const R = rows.length;
  const inW = p(`${b}attn.in_proj_weight`);
  const inB = p(`${b}attn.in_proj_bias`);
  const h = layerNorm(x, L, W, p(`${b}ln_1.weight`), p(`${b}ln_1.bias`), 1e-5).y;
  const kv = matmulRef(h, [L, W], inW.subarray(W * W), [2 * W, W], { transB: true, bias: inB.subarray(W) }).data;
  const pick = (src: Float64Array, stride: number, offset: number, n: number) => Float64Array.from({ length: n * W }, (_, e) => src[Math.floor(e / W) * stride + offset + (e % W)]);
  const hRows = Float64Array.from({ length: R * W }, (_, e) => h[rows[Math.floor(e / W)] * W + (e % W)]);
  const xRows = Float64Array.from({ length: R * W }, (_, e) => x[rows[Math.floor(e / W)] * W + (e % W)]);
  const q = matmulRef(hRows, [R, W], inW.subarray(0, W * W), [W, W], { transB: true, bias: inB.subarray(0, W) }).data;
  // Queries as a [1, L, W] tensor whose rows outside `rows` are never read (attentionRef computes only `queries`).
  const qFull = new Float64Array(L * W);
  rows.forEach((t, i) => qFull.set(q.subarray(i * W, (i + 1) * W), t * W));
  const att = attentionRef({ q: qFull, k: pick(kv, 2 * W, 0, L), v: pick(kv, 2 * W, W, L), B: 1, H: heads, Lq: L, Lk: L, D: W / heads, Dv: W / heads, layout: 'blhd', queries: rows }).out;
  const x1 = matmulRef(att, [R, W], p(`${b}attn.out_proj.weight`), [W, W], { transB: true, bias: p(`${b}attn.out_proj.bias`), residual: xRows }).data;
  const h2 = layerNorm(x1, R, W, p(`${b}ln_2.weight`), p(`${b}ln_2.bias`), 1e-5).y;
  const fc = matmulRef(h2, [R, W], p(`${b}mlp.c_fc.weight`), [4 * W, W], { transB: true, bias: p(`${b}mlp.c_fc.bias`), activation: 'quickGelu' }).data;
  return matmulRef(fc, [R, 4 * W], p(`${b}mlp.c_proj.weight`), [W, 4 * W], { transB: true, bias: p(`${b}mlp.c_proj.bias`), residual: x1 }).data;
}

/**
 * Amplitude of the synthetic fill in the real-size forward: uniform ±0.3 for
 * every tensor (LayerNorm gains too), so attention scores are O(1). At the
 * default ±0.02 they are ~1e-5, the softmax is uniform and exchanging q and k
 * changed block 0 by 1e-6, below any tolerance; at ±0.3 by 27 (openai) and
 * 0.1 (hf layout).
 */
const REAL_SIZE_FILL = 0.3;

/**
 * The real-size checks against float64 on the synthetic ViT-B/32 weights, as
 * a fraction of max|ref|: ~10× the errors measured on lavapipe (openai / hf
 * layout): the ln_pre input (a 3072-term conv sum) 9.0e-5 / 9.2e-5 at max|ref|
 * 36 (2.6e-6 of it); block 0's rows 1.6e-4 / 7.6e-5 at max|ref| 77 / 71
 * (2.1e-6); the features 7.0e-7 / 1.1e-5 at max|ref| 1.4 / 23 (5.0e-7).
 */
const REAL_SIZE_TOL = { embed: 3e-5, block0: 2e-5, features: 5e-6 };
const scaled = (ref: ArrayLike<number>, fraction: number): Tolerance => ({ atol: fraction * Array.from(ref).reduce((m, x) => Math.max(m, Math.abs(x)), 0), rtol: 0 });

test('real sizes: ViT-B/32 in both layouts runs one 224² image: embedding, block 0 and projection match float64; B/16 (HF) loads', async (ctx) => {
  const imageData = randn(3 * 224 * 224, 3);
  const image = Tensor.fromArray(ctx.gpu, imageData, [1, 3, 224, 224]);
  for (const [a, layout, forward] of [[ARCHS[0], 'openai', true], [ARCHS[0], 'hf', true], [ARCHS[1], 'hf', false]] as const) {
    const t0 = Date.now();
    const file = await openSafetensors(syntheticSafetensors(layout === 'openai' ? openaiKeys(a) : hfKeys(a), `${a.name}-${layout}`, REAL_SIZE_FILL));
    const model = await ClipModel.fromSafetensors(ctx.gpu, file, { dtype: 'f32' });
    if (forward) {
      const trace = model.traceImage(image);
      const got = {
        embed: await readAndDispose(trace.vision_patch_embed),
        block0: await readAndDispose(trace.vision_block0_out),
        lnPost: await readAndDispose(trace.vision_ln_post_out),
        features: await readAndDispose(trace.image_features),
      };
      const t1 = Date.now();
      // The reference on the same synthetic weights, read back from the file (and, for HF, mapped back to OpenAI keys).
      const { width: W, patch, grid } = a.vision;
      const heads = W / 64;
      const L = grid * grid + 1;
      const p = await visionRefParams(file, layout);
      const sizes: ClipRefSizes = { width: W, layers: 0, heads, patch, grid, embed: a.embed };
      const embed = clipImageRef(p, sizes, imageData, [1, 3, 224, 224], { activation: 'quickGelu' }).embed;
      const x0 = layerNorm(embed, L, W, p('visual.ln_pre.weight'), p('visual.ln_pre.bias'), 1e-5).y;
      const rows = [0, 1, L >> 1, L - 1];
      const block0 = visionBlock0Ref(p, x0, L, W, heads, rows);
      const pickRows = (v: ArrayLike<number>) => Float64Array.from({ length: rows.length * W }, (_, e) => v[rows[Math.floor(e / W)] * W + (e % W)]);
      const features = matmulRef(got.lnPost, [1, W], p('visual.proj'), [W, a.embed]).data;
      const label = `${a.name} ${layout}`;
      assertClose(got.embed, embed, scaled(embed, REAL_SIZE_TOL.embed), `${label}: ln_pre input (conv, class token, positional)`);
      const block0Tol = scaled(block0, REAL_SIZE_TOL.block0);
      assertClose(pickRows(got.block0), block0, block0Tol, `${label}: block 0 output, tokens ${rows.join(', ')}`);
      assertClose(got.features, features, scaled(features, REAL_SIZE_TOL.features), `${label}: image features = ln_post output · proj`);
      assert.ok(maxDiff(block0, pickRows(x0)) > 1000 * block0Tol.atol, `${label}: block 0 must change its input`);
      console.log(`  ${label}: float64 reference ${Date.now() - t1} ms`);
    }
    model.dispose();
    console.log(`  ${a.name} ${layout}: load${forward ? ' + forward' : ''} ${Date.now() - t0} ms`);
  }
  image.dispose();
});

test.run();
