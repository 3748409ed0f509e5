// Few-shot training in a page, the Node-side checks (issue 20): the
// page's training set (refusals by name, the CLI's image order), the shared
// training loop (stop at an epoch and resume = one uninterrupted run), and
// WebTrainingRun against `medfocus train`'s own code path on the same
// prepared images and device (trainer.ts trainClassifier + exportHead): the
// same head, tensor for tensor and head.json byte for byte. MobileSAM is
// replaced by a seeded stand-in (an embedding that depends on the image's
// pixels) so this runs in seconds; test/web-train-page.test.ts drives the
// real page with the real MobileSAM against the CLI.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { encodePng, type DecodedImage } from '../src/io/image.js';
import { openSafetensors, bytesSource } from '../src/io/safetensors.js';
import { Tensor } from '../src/tensor.js';
import { AdamW } from '../src/train/optimizer.js';
import { exportHead, writeRunConfig, type RunConfig } from '../src/medfocus/checkpoint.js';
import { MemoryCache, type PreparedImage } from '../src/medfocus/pipeline.js';
import type { EmbeddingSegmenter } from '../src/models/sam/segmenter.js';
import { trainClassifier } from '../src/medfocus/trainer.js';
import { samPoolClassifier, trainEpochs } from '../src/medfocus/train-loop.js';
import { SAM_ENCODER_TRAIN_DEFAULTS, TrainingSet, WebTrainingRun, attentionTrainingProblem, checkWebTrainSettings, mobileSamFileIds, type WebTrainSettings } from '../src/medfocus/web-trainer.js';
import { storageBuffersPerEntry } from '../src/kernels/program.js';
import { assertThrows, gpuSuite, randn } from './util.js';

const test = gpuSuite('web-train');

/**
 * GPU buffer bytes training 200 images may create beyond what training 20
 * created, batches of 10 × 64 KiB of features: one batch's buffer (its size
 * class, 768 KiB), in case a released one comes back from the queue late.
 * Measured: 0 (1,631,744 bytes both; planned 1,362,208).
 */
const MEMORY_GROWTH_TOL = 786_432;

/** A small PNG whose pixels depend on `seed` (so every image has other bytes and another embedding). */
function png(seed: number, side = 24): Uint8Array {
  const values = randn(side * side, seed);
  const rgba = new Uint8Array(side * side * 4);
  for (let i = 0; i < side * side; i++) {
    const v = Math.max(0, Math.min(255, Math.round(128 + 60 * values[i])));
    rgba.set([v, v, 255 - v, 255], 4 * i);
  }
  return encodePng(rgba, side, side);
}

/**
 * MobileSAM's place in the pipeline, seeded: the embedding [1, 256, S/16,
 * S/16] is a fixed random projection of the image's mean colour plus noise
 * seeded by its first pixels; no automatic masks (focus none only).
 */
function standInSam(gpu: Parameters<typeof Tensor.fromArray>[0], samSize: number): EmbeddingSegmenter {
  const g = samSize / 16;
  const basis = randn(256 * g * g, 7);
  let embedding: Tensor | undefined;
  const noMasks = async (): Promise<never> => {
    throw new Error('stand-in SAM: no masks (the test trains with focus none)');
  };
  return {
    name: 'stand-in',
    inputSize: samSize,
    async setImage(image: DecodedImage) {
      let mean = 0;
      for (let i = 0; i < image.data.length; i += 4) mean += image.data[i] / 255;
      mean /= image.data.length / 4;
      const noise = randn(256 * g * g, image.data[0] * 65536 + image.data[4] * 256 + image.data[8]);
      embedding?.dispose();
      embedding = Tensor.fromArray(gpu, basis.map((b, i) => b * mean + 0.3 * noise[i]), [1, 256, g, g]);
    },
    imageEmbedding() {
      if (!embedding) throw new Error('stand-in SAM: no image');
      return embedding;
    },
    predict: noMasks,
    generateMasks: noMasks,
    dispose() {
      embedding?.dispose();
    },
  };
}

test('TrainingSet: refuses undecodable files, missing class names and repeated bytes by name; orders classes and images as medfocus train lists an ImageFolder', async () => {
  const set = new TrainingSet();
  assert.equal(set.problems(), ['no images: add a folder per class, or pick images and type their class'], 'an empty set cannot train');
  assert.ok(await set.add('spiculated', 'spiculated/b.png', png(1)));
  assert.ok(await set.add('spiculated', 'spiculated/a.png', png(2)));
  assert.equal(set.problems(), ["one class ('spiculated'): a classifier needs at least 2"], 'one class cannot train');
  assert.not.ok(await set.add('round', 'round/broken.png', new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3])), 'a truncated PNG is refused');
  assert.not.ok(await set.add('  ', 'loose.png', png(3)), 'a file without a class is refused');
  assert.not.ok(await set.add('round', 'round/copy.png', png(1)), 'the same bytes twice are refused');
  assert.is(set.refused.length, 3);
  assert.equal(set.refused.map((r) => r.name), ['round/broken.png', 'loose.png', 'round/copy.png']);
  assert.match(set.refused[0].reason, /broken\.png/, `the decoder's error names the file: ${set.refused[0].reason}`);
  assert.match(set.refused[1].reason, /no class name/);
  assert.match(set.refused[2].reason, /same bytes as spiculated\/b\.png/);
  // Every file of 'round' was refused: that class is named as having nothing to train on.
  assert.ok(set.problems().some((p) => p === "class 'round' has no usable image (every file of it was refused)"), set.problems().join('; '));
  assert.ok(await set.add('round', 'round/z.png', png(4)));
  assert.ok(await set.add('Round', 'Round/m.png', png(5)));
  assert.equal(set.problems(), [], 'two classes with images can train');
  // Code-unit order, as dataset.ts sorts folders: 'Round' < 'round' < 'spiculated'; by name within a class.
  assert.equal(set.counts(), [
    { className: 'Round', count: 1 },
    { className: 'round', count: 1 },
    { className: 'spiculated', count: 2 },
  ]);
  assert.equal(set.ordered().map((im) => [im.label, im.name]), [
    [0, 'Round/m.png'],
    [1, 'round/z.png'],
    [2, 'spiculated/a.png'],
    [2, 'spiculated/b.png'],
  ]);
});

test('checkWebTrainSettings names the bad setting, what it must be and what came', async () => {
  const ok: WebTrainSettings = { ...SAM_ENCODER_TRAIN_DEFAULTS };
  assert.equal(checkWebTrainSettings(ok), ok);
  await assertThrows(() => checkWebTrainSettings({ ...ok, focus: 'blur' as never }), /'focus' must be one of none, overlay, attention, both, learned/, /"blur"/);
  await assertThrows(() => checkWebTrainSettings({ ...ok, epochs: 0 }), /'epochs' must be an integer from 1/, /got 0/);
  await assertThrows(() => checkWebTrainSettings({ ...ok, samSize: 250 }), /'samSize' must be a multiple of 16/, /got 250/);
  await assertThrows(() => checkWebTrainSettings({ ...ok, lr: -1 }), /'lr' must be a number in \(0, 1000\)/);
});

test("attentionTrainingProblem: a browser's 10 storage buffers per stage train an attention focus; a device with fewer than an attention backward entry point binds cannot, and prepare says so before any work", async ({ gpu }) => {
  // The most one entry point binds, read from the shader (test/program.test.ts: every kernel's entry points ≤ 10).
  const needed = Math.max(...storageBuffersPerEntry('attention_backward').values());
  assert.ok(needed >= 4 && needed <= 10, `an attention backward entry point binds q, k, v and a gradient, and at most the 10 storage buffers Chromium's SwiftShader allows (counted ${needed})`);
  const withLimit = (limit: number) => ({ limits: { maxStorageBuffersPerShaderStage: limit } }) as unknown as typeof gpu;
  assert.is(attentionTrainingProblem(withLimit(10)), undefined, 'SwiftShader in Chromium trains an attention focus');
  assert.is(attentionTrainingProblem(withLimit(needed)), undefined);
  const problem = attentionTrainingProblem(withLimit(needed - 1));
  assert.match(problem ?? '', new RegExp(`needs ${needed} storage buffers per shader stage .*this device allows ${needed - 1}; train with focus none or overlay`));
  // A CLIP head trains its prompts through the tower's attention whatever the focus: the advice is the other backbone.
  assert.match(attentionTrainingProblem(withLimit(needed - 1), 'clip') ?? '', new RegExp(`^training a CLIP head .* needs ${needed} storage buffers .*; train the sam-encoder backbone with focus none or overlay here`));
  const set = new TrainingSet();
  await set.add('a', 'a/0.png', png(1));
  await set.add('b', 'b/0.png', png(2));
  const small = Object.create(gpu, { limits: { value: { ...gpu.limits, maxStorageBuffersPerShaderStage: needed - 1 } } }) as typeof gpu;
  const settings = { ...SAM_ENCODER_TRAIN_DEFAULTS, focus: 'both' as const, samSize: 64, featureGrid: 4 };
  await assertThrows(() => WebTrainingRun.prepare(set, settings, { gpu: small, sam: standInSam(gpu, 64), cache: new MemoryCache() }), /web training: focus both: training with an attention focus needs/);
});

test('trainEpochs: stopping after an epoch and resuming trains exactly the parameters of one uninterrupted run', async ({ gpu }) => {
  const L = 4;
  const images: PreparedImage[] = Array.from({ length: 7 }, (_, i) => ({ path: `${i}`, label: i % 2, hash: `${i}`, input: randn(L * 256, 100 + i) }));
  const config = { classes: ['a', 'b'], focus: 'none' as const, prompts: 4, seed: 5, featureGrid: 2, strength: 4 };
  const settings = { epochs: 4, seed: 5, batch: 3 };
  async function run(stops: number): Promise<{ params: Float32Array[]; losses: number[] }> {
    const classifier = samPoolClassifier(gpu, config);
    const optimizer = new AdamW(gpu, [...classifier.params].map(([name, param]) => ({ name, param })), { lr: 3e-2, weightDecay: 1e-4 });
    let progress = { epoch: 0, step: 0, losses: [] as number[] };
    let calls = 0;
    while (progress.epoch < settings.epochs) {
      calls++;
      const before = progress.epoch;
      progress = await trainEpochs({ classifier, optimizer, images, settings, progress, shouldStop: () => calls <= stops });
      assert.is(progress.epoch, calls <= stops ? before + 1 : settings.epochs, 'a stop ends training at the next epoch boundary');
    }
    assert.is(calls, stops + 1);
    assert.is(progress.step, settings.epochs * Math.ceil(images.length / settings.batch));
    const params = await Promise.all([...classifier.params.values()].map(async (t) => Float32Array.from((await t.read()) as Float32Array)));
    optimizer.dispose();
    classifier.dispose();
    return { params, losses: progress.losses };
  }
  const straight = await run(0);
  const stopped = await run(2);
  assert.equal(stopped.losses, straight.losses, 'the same loss every epoch');
  stopped.params.forEach((p, i) => assert.equal(Array.from(p), Array.from(straight.params[i]), `parameter ${i} bit for bit`));
  assert.ok(straight.losses.at(-1)! < straight.losses[0], `the loss falls (${straight.losses.map((l) => l.toFixed(4)).join(' → ')})`);
});

test('WebTrainingRun trains the head medfocus train trains from the same images (trainClassifier + exportHead on this device): the same tensors and head.json', async ({ gpu }) => {
  const dir = mkdtempSync(join(tmpdir(), 'medfocus-web-train-'));
  try {
    const settings: WebTrainSettings = { ...SAM_ENCODER_TRAIN_DEFAULTS, focus: 'none', epochs: 3, batch: 2, seed: 11, samSize: 64, featureGrid: 4 };
    const set = new TrainingSet();
    const files: Array<[string, string, number]> = [
      ['benign', 'benign/1.png', 21],
      ['benign', 'benign/0.png', 20],
      ['malignant', 'malignant/0.png', 30],
      ['malignant', 'malignant/1.png', 31],
      ['malignant', 'malignant/2.png', 32],
    ];
    for (const [cls, name, seed] of files) assert.ok(await set.add(cls, name, png(seed)));
    const sam = standInSam(gpu, settings.samSize);
    const reports: number[] = [];
    const run = await WebTrainingRun.prepare(set, settings, { gpu, sam, cache: new MemoryCache(), onImage: (done, total) => reports.push(done, total) });
    assert.equal(reports, [1, 5, 2, 5, 3, 5, 4, 5, 5, 5], 'onImage reports every image');
    assert.equal(run.classes, ['benign', 'malignant']);
    assert.equal(run.images.map((im) => im.path), ['benign/0.png', 'benign/1.png', 'malignant/0.png', 'malignant/1.png', 'malignant/2.png'], 'the CLI order');
    assert.is(run.epochs, 3);
    // Two epochs, then one more: a finished run continues where it stopped.
    await run.train({ epochs: 2 });
    assert.is(run.progress.epoch, 2);
    await run.train({ epochs: 3 });
    assert.is(run.done, true);
    assert.is(run.progress.epoch, 3);
    // Parameters and both AdamW moments; the training graphs of the batch sizes that ran (2, and 1 for the last of 5 images), each
    // with its intermediates, inputs and outputs (focus none: features [B, 16, 256] and labels in; gradients and loss out); one copy of the outputs.
    const paramBytes = 4 * [...run.classifier.params.values()].reduce((n, t) => n + t.shape.reduce((p, d) => p * d, 1), 0);
    const graphs = [2, 1].map((b) => run.classifier.trainingGraph(b).stats());
    graphs.forEach((g, i) => {
      assert.is(g.inputBytes, [2, 1][i] * (16 * 256 + 1) * 4, 'one batch of features and labels');
      assert.is(g.outputBytes, paramBytes + 4, 'the gradients and the loss');
    });
    assert.is(run.plannedBytes, 3 * paramBytes + graphs.reduce((n, g) => n + g.plannedPeakBytes + g.inputBytes + g.outputBytes, 0) + paramBytes + 4 + graphs[0].inputBytes);
    assert.is(run.hostBytes, files.length * 16 * 256 * 4, 'the features stay on the host');
    const encoder = png(90);
    const decoder = png(91);
    const page = await run.headFiles(await mobileSamFileIds({ name: 'encoder.onnx', bytes: encoder }, { name: 'sam.onnx', bytes: decoder }));

    // The CLI's path on the same prepared images: trainClassifier (checkpoints on disk) and exportHead.
    const runDir = join(dir, 'run');
    const config: RunConfig = {
      version: 1, backbone: 'sam-encoder', focus: settings.focus, data: dir, classes: run.classes, fraction: 1, seed: settings.seed, epochs: settings.epochs,
      lr: settings.lr, weightDecay: settings.weightDecay, batch: settings.batch, prompts: settings.prompts, strength: run.settings.strength, overlayAlpha: settings.overlayAlpha,
      samSize: settings.samSize, pointsPerSide: settings.pointsPerSide, featureGrid: settings.featureGrid, trainImages: run.images.length,
    };
    await writeRunConfig(runDir, config);
    const classifier = samPoolClassifier(gpu, config);
    await trainClassifier({ run: runDir, config, classifier, images: run.images, log: () => {}, progress: null });
    classifier.dispose();
    writeFileSync(join(dir, 'encoder.onnx'), encoder);
    writeFileSync(join(dir, 'sam.onnx'), decoder);
    await exportHead(runDir, config, { mobileSam: { encoder: join(dir, 'encoder.onnx'), decoder: join(dir, 'sam.onnx') } });

    assert.is(page.json, readFileSync(join(runDir, 'head.json'), 'utf8'), 'head.json byte for byte');
    const cli = await openSafetensors(bytesSource(new Uint8Array(readFileSync(join(runDir, 'head.safetensors')))), 'cli head.safetensors');
    const mine = await openSafetensors(bytesSource(page.tensors), 'page head.safetensors');
    assert.equal([...mine.tensors.keys()], [...cli.tensors.keys()], 'the same tensors');
    for (const name of cli.tensors.keys()) assert.equal(Array.from(await mine.read(name)), Array.from(await cli.read(name)), `${name} bit for bit (same device, same code)`);
    assert.equal(run.progress.losses, JSON.parse(readFileSync(join(runDir, 'state.json'), 'utf8')).losses, 'the same loss per epoch');
    run.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('200 dropped images: the features stay on the host and the GPU memory training takes does not grow with the number of images', async ({ gpu }) => {
  // MobileSAM at 128 with an 8 × 8 feature grid: 64 KiB of features per image, 12.5 MiB for 200 if they were kept on the GPU.
  const settings: WebTrainSettings = { ...SAM_ENCODER_TRAIN_DEFAULTS, focus: 'none', epochs: 1, batch: 10, seed: 2, samSize: 128, featureGrid: 8 };
  const featureBytes = 8 * 8 * 256 * 4;
  const sam = standInSam(gpu, settings.samSize);
  async function trainOn(n: number) {
    const set = new TrainingSet();
    for (let i = 0; i < n; i++) assert.ok(await set.add(i % 2 ? 'b' : 'a', `${i % 2 ? 'b' : 'a'}/${i}.png`, png(1000 + i, 16)));
    const run = await WebTrainingRun.prepare(set, settings, { gpu, sam, cache: new MemoryCache() });
    // The pool keeps only the buffers in use: every buffer training needs is created, and shows as growth.
    await gpu.sync();
    gpu.pool.trim();
    const before = gpu.pool.stats().ownedBytes;
    await run.train();
    assert.is(run.progress.step, n / settings.batch);
    const grown = gpu.pool.stats().ownedBytes - before;
    const { plannedBytes, hostBytes } = run;
    run.dispose();
    return { grown, plannedBytes, hostBytes };
  }
  // 20 and 200 images: the same batch shape.
  const few = await trainOn(20);
  const many = await trainOn(200);
  console.log(`  GPU buffers training created: ${few.grown} bytes for 20 images, ${many.grown} for 200 (planned ${many.plannedBytes}); host ${many.hostBytes}`);
  assert.is(many.hostBytes, 200 * featureBytes, 'every feature is on the host');
  assert.is(many.plannedBytes, few.plannedBytes, 'the planned GPU bytes do not depend on the number of images');
  // What training took from a pool that held no free buffer: the plan, each buffer rounded up to its size class.
  assert.ok(few.grown <= 1.5 * few.plannedBytes, `training 20 images created ${few.grown} bytes of GPU buffers, planned ${few.plannedBytes} (at most 1.5× with size classes)`);
  assert.ok(many.grown <= few.grown + MEMORY_GROWTH_TOL, `training 200 images took ${many.grown} bytes of GPU buffers, 20 took ${few.grown} (at most ${MEMORY_GROWTH_TOL} more; their features would be ${200 * featureBytes})`);
});

test('WebTrainingRun.prepare refuses a set that cannot train, naming why, and a MobileSAM at another input side', async ({ gpu }) => {
  const set = new TrainingSet();
  await set.add('only', 'only/0.png', png(1));
  const sam = standInSam(gpu, 64);
  const settings = { ...SAM_ENCODER_TRAIN_DEFAULTS, focus: 'none' as const, samSize: 64, featureGrid: 4 };
  await assertThrows(() => WebTrainingRun.prepare(set, settings, { gpu, sam, cache: new MemoryCache() }), /cannot train: one class \('only'\)/);
  await set.add('other', 'other/0.png', png(2));
  await assertThrows(() => WebTrainingRun.prepare(set, { ...settings, samSize: 128 }, { gpu, sam, cache: new MemoryCache() }), /MobileSAM runs at 64², the settings ask for samSize 128/);
});

test.run();
