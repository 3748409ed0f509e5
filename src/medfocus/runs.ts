// The commands on one run folder: train (trainRun: subset → config.json →
// pipeline → training → web head), eval (evalRun: test split → accuracy,
// eval.json, confusion and loss charts), predict (predictRun) and explain
// (explainImage: image | masks | attention heat map). Each builds the
// run's classifier (makeClassifier) and its per-image pipeline (pipelineFor,
// with the session's segmenters), so an image goes file → pipeline.ts →
// classifier without passing through the CLI.

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { encodePng } from '../io/image.js';
import { pathExists, withSafetensorsFile } from '../io/node-files.js';
import { ClipModel } from '../models/clip/model.js';
import { loadClipTokenizer } from '../models/clip/tokenizer-node.js';
import { captionBelow, renderConfusionPng, renderCurvePng } from '../render/charts.js';
import { COLORMAPS, renderHeatmap, renderOverlay, sideBySide } from '../render/overlay.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { ProgressBar } from '../util/progress.js';
import { capPerClass, loadImageFolder, loadSplits, stratifiedSample, type DatasetItem, type ImageFolder } from './dataset.js';
import { evaluatePredictions, type EvaluationResult } from './metrics.js';
import type { Classifier } from './classifier.js';
import { configDifferences, exportHead, loadParams, readCheckpoint, readRunConfig, webHeadProblem, writeRunConfig, type RunConfig } from './checkpoint.js';
import { focusStrength, type RunFocusMode } from './focus.js';
import { argmax, isUnreadableImage, learnedCellWeights, learnedRegions, predictImages, type PreparedImage } from './pipeline.js';
import { minisamDir, sessionSam, sessionSam2 } from './segmenters.js';
import type { Session } from './session.js';
import type { TrainSettings } from './settings.js';
import { FocusPipeline, trainClassifier } from './trainer.js';
import { classTextFeatures, clipPromptClassifier, samPoolClassifier } from './train-loop.js';
import { SAM_ENCODER_TRAIN_DEFAULTS } from './web-trainer.js';

/** The tokenizer for the head's text initialisation: --tokenizer, next to the weights, or $MEDFOCUS_CLIP_VOCAB. */
async function findTokenizer(weights: string, given?: string): Promise<string> {
  if (given) return given;
  const candidates = [dirname(weights), process.env.MEDFOCUS_CLIP_VOCAB].filter((p): p is string => !!p);
  for (const dir of candidates) {
    for (const f of ['bpe_simple_vocab_16e6.txt.gz', 'vocab.json']) if (await pathExists(join(dir, f))) return dir;
    if (dir.endsWith('.gz') && (await pathExists(dir))) return dir;
  }
  throw new Error(`clip: the head is initialised from the text embeddings of "This is a photo of {class}", which needs the CLIP tokenizer; pass --tokenizer PATH (bpe_simple_vocab_16e6.txt.gz or a folder with vocab.json + merges.txt), put it next to ${weights}, or set MEDFOCUS_CLIP_VOCAB`);
}

/**
 * The session's CLIP, loaded once (a process runs one dtype: the run's, or the
 * protocol's). Runs are f32 unless --dtype f16 says otherwise (not the
 * library's per-adapter default): a run, its cache keys and its web head must
 * mean the same on every adapter, the browser's without shader-f16 included.
 */
async function sessionClip(s: Session, weights: string, dtype: 'f16' | undefined): Promise<ClipModel> {
  if (!s.clip) {
    s.clip = await withSafetensorsFile(weights, (file) => ClipModel.fromSafetensors(s.gpu, file, { dtype: dtype ?? 'f32' }));
    if (s.clip.weightDtypeNote) s.err(s.clip.weightDtypeNote);
  }
  return s.clip;
}

/** The classifier of a config; `init` (training from scratch) sets the CLIP head from text embeddings. */
async function makeClassifier(s: Session, config: RunConfig, init: boolean): Promise<Classifier> {
  if (config.backbone === 'clip') {
    const model = s.clip!;
    // The text embeddings initialise the head (a fresh run) and anchor the contrastive term (always).
    const text = init || (config.contrastive ?? 0) > 0 ? await classTextFeatures(model, await loadClipTokenizer(config.tokenizer!), config.classes) : new Float32Array(config.classes.length * model.config.embedDim);
    return clipPromptClassifier(s.gpu, model, text, config);
  }
  return samPoolClassifier(s.gpu, config);
}

/** What a run's pipeline reads (its cache keys among them), from the train settings and the focus: trainRun's config and preparePool share it. */
function pipelineSettings(st: TrainSettings, focus: RunFocusMode) {
  return {
    strength: focusStrength(focus, st.strength),
    overlayAlpha: SAM_ENCODER_TRAIN_DEFAULTS.overlayAlpha,
    samSize: st.samSize,
    pointsPerSide: st.pointsPerSide,
    ...(st.sam2 ? { sam2: st.sam2 } : {}),
    // MobileSAM features: sam-encoder's input, and the learned focus' region tokens on either backbone.
    ...((st.backbone !== 'clip' || focus === 'learned') && { featureGrid: SAM_ENCODER_TRAIN_DEFAULTS.featureGrid }),
    ...(st.dtype && { dtype: st.dtype }),
  };
}

type PipelineConfig = Pick<RunConfig, 'backbone' | 'focus' | 'samSize' | 'strength' | 'overlayAlpha' | 'pointsPerSide' | 'sam2' | 'featureGrid' | 'dtype'>;

async function pipelineFor(s: Session, config: PipelineConfig): Promise<FocusPipeline> {
  const v = s.clip?.config.vision;
  return new FocusPipeline(
    {
      gpu: s.gpu,
      cache: s.cache,
      sam: () => sessionSam(s, config.samSize, config.dtype),
      ...(config.sam2 ? { segmenter: await sessionSam2(s, config.sam2) } : {}),
      clip: config.backbone === 'clip' ? { resolution: v!.imageResolution, grid: v!.grid } : undefined,
      featureGrid: config.featureGrid ?? 16,
    },
    { focus: config.focus, samSize: config.samSize, strength: config.strength, overlayAlpha: config.overlayAlpha, pointsPerSide: config.pointsPerSide, ...(config.dtype && { dtype: config.dtype }) },
  );
}

/** How many images the focus changed (focus none: nothing to say); returns "k/n" for the JSON outputs. */
function reportFocus(s: Session, focus: RunFocusMode, images: readonly PreparedImage[]): string | undefined {
  if (focus === 'none') return undefined;
  const active = images.filter((im) => im.focusActive).length;
  const what = focus === 'learned' ? 'automatic masks as region tokens (the rest: the whole-image token only)' : focus === 'overlay' ? 'automatic masks to paint' : 'a salient mask (the rest: no mask survived the filters, so the coverage is the whole image)';
  s.log(`focus ${focus}: ${active} of ${images.length} images had ${what}`);
  return `${active}/${images.length}`;
}

/** Logs what a prepareAll computed (cache misses: seconds per encoder pass and per mask set) and adds it to the session's total. */
function reportPreprocessing(s: Session, pipeline: FocusPipeline, label: string): void {
  const { embeddings, masks } = pipeline.computed;
  const { encoder, masks: maskSeconds } = pipeline.seconds;
  if (embeddings + masks === 0) return;
  const each = (seconds: number, n: number) => (n > 0 ? ` (${(seconds / n).toFixed(2)} s each)` : '');
  s.log(`${label}: computed ${embeddings} MobileSAM encoder passes${each(encoder, embeddings)} and ${masks} automatic-mask sets${each(maskSeconds, masks)}; the rest came from the cache`);
  s.prep ??= { encoderPasses: 0, encoderSeconds: 0, maskSets: 0, maskSeconds: 0 };
  s.prep.encoderPasses += embeddings;
  s.prep.encoderSeconds += encoder;
  s.prep.maskSets += masks;
  s.prep.maskSeconds += maskSeconds;
}

function reportFailures(s: Session, failures: Array<{ path: string; error: string }>, total: number): void {
  if (failures.length === 0) return;
  s.err(`${failures.length} of ${total} images could not be read and were left out:`);
  for (const f of failures) s.err(`  ${f.path}: ${f.error}`);
}

async function restoreClassifier(s: Session, run: string, config: RunConfig): Promise<Classifier> {
  const ckpt = await readCheckpoint(run);
  if (!ckpt) throw new Error(`run ${run} has no checkpoint yet; train it first (medfocus train --out ${run} ...)`);
  if (config.backbone === 'clip') await sessionClip(s, config.weights!, config.dtype);
  const classifier = await makeClassifier(s, config, false);
  loadParams(ckpt, classifier.params, `run ${run}`);
  return classifier;
}

async function runConfigOf(run: string): Promise<RunConfig> {
  const config = await readRunConfig(run);
  if (!config) throw new Error(`${run} is not a medfocus run (no config.json); create one with medfocus train --out ${run}`);
  return config;
}

interface TrainRequest {
  data: string;
  out: string;
  fraction: number;
  seed: number;
  focus: RunFocusMode;
  settings: TrainSettings;
  maxPerClass?: number;
}

/** Which images a run trains on (RunConfig.trainSet) or was evaluated on (eval.json's testSet), by their paths under the data folder. */
export function imageSetHash(data: string, items: DatasetItem[]): string {
  const paths = items.map((it) => relative(resolve(data), it.path).split(sep).join('/')).sort();
  return createHash('sha256').update(paths.join('\n')).digest('hex').slice(0, 16);
}

/** The config a train request makes, and the images it trains on. */
async function planRun(req: TrainRequest): Promise<{ config: RunConfig; items: DatasetItem[]; train: ImageFolder }> {
  const { train } = await loadSplits(req.data);
  const items = stratifiedSample(capPerClass(train.items, train.classes, req.maxPerClass), req.fraction, req.seed, train.classes);
  const st = req.settings;
  const config: RunConfig = {
    version: 1,
    backbone: st.backbone,
    focus: req.focus,
    data: resolve(req.data),
    classes: train.classes,
    fraction: req.fraction,
    seed: req.seed,
    epochs: st.epochs,
    lr: st.lr,
    weightDecay: st.weightDecay,
    batch: st.batch,
    prompts: st.prompts,
    ...pipelineSettings(st, req.focus),
    trainImages: items.length,
    trainSet: imageSetHash(req.data, items),
    ...(req.maxPerClass !== undefined ? { maxPerClass: req.maxPerClass } : {}),
    ...(st.backbone === 'clip' && { deep: st.deep, ...(st.contrastive > 0 ? { contrastive: st.contrastive } : {}), weights: st.weights, tokenizer: await findTokenizer(st.weights!, st.tokenizer) }),
  };
  return { config, items, train };
}

/**
 * The evaluation of a run that is already finished with this very request:
 * its folder holds the same config (epochs included), progress at the last
 * epoch (state.json) and an eval.json on the same test images (`testSet`); null
 * otherwise. The protocol reuses it instead of training and evaluating again,
 * so a finished cell is never recomputed, cache or no cache: these three small
 * files are all a run folder needs to carry a protocol across machines.
 */
export async function finishedRun(req: TrainRequest, testSet: string): Promise<{ config: RunConfig; result: RunEvaluation } | null> {
  // Most runs of a fresh protocol have no folder yet: only a run with a config reads the data set to plan its own.
  const previous = await readRunConfig(req.out);
  if (!previous) return null;
  const { config } = await planRun(req);
  if (previous.epochs !== config.epochs || configDifferences(previous, config).length > 0) return null;
  // state.json (the checkpoint's progress, written after it) and eval.json are written atomically: absent, not half-written.
  const readJson = (name: string) => readFile(join(req.out, name), 'utf8').then(JSON.parse, () => null);
  const [state, stored] = (await Promise.all([readJson('state.json'), readJson('eval.json')])) as [{ epoch?: number } | null, (RunEvaluation & { testSet?: string }) | null];
  if (state?.epoch !== config.epochs || stored?.testSet !== testSet) return null;
  return { config, result: stored };
}

export async function trainRun(s: Session, req: TrainRequest): Promise<RunConfig> {
  const { config, items, train } = await planRun(req);
  const st = req.settings;
  if (st.backbone === 'clip') await sessionClip(s, st.weights!, st.dtype);
  const previous = await readRunConfig(req.out);
  if (previous) {
    const diff = configDifferences(previous, config);
    if (diff.length > 0) throw new Error(`${req.out} already holds a different run (${diff.join('; ')}); choose another --out`);
  }
  await writeRunConfig(req.out, config);
  const pool = req.maxPerClass !== undefined ? `${capPerClass(train.items, train.classes, req.maxPerClass).length} images (the ${train.items.length} capped at ${req.maxPerClass} per class)` : `${train.items.length} images`;
  s.log(`train: ${items.length} of ${pool} (fraction ${req.fraction}, seed ${req.seed}), ${train.classes.length} classes, focus ${req.focus}, backbone ${config.backbone}`);
  const pipeline = await pipelineFor(s, config);
  const prepared = await pipeline.prepareAll(items, 'prepare train');
  reportPreprocessing(s, pipeline, 'prepare train');
  reportFailures(s, prepared.failures, items.length);
  reportFocus(s, config.focus, prepared.images);
  const classifier = await makeClassifier(s, config, (await readCheckpoint(req.out)) === null);
  try {
    const progress = await trainClassifier({
      run: req.out,
      config,
      classifier,
      images: prepared.images,
      clipResolution: s.clip && config.backbone === 'clip' ? s.clip.config.vision.imageResolution : undefined,
      log: s.log,
    });
    s.log(`trained ${req.out}: ${progress.epoch} epochs, ${progress.step} steps, final loss ${progress.losses.at(-1)?.toFixed(4) ?? '-'}`);
    const noWebHead = webHeadProblem(config);
    if (noWebHead) s.log(`no web head for ${req.out}: ${noWebHead}`);
    else {
      await exportHead(req.out, config, { mobileSam: { encoder: join(minisamDir(), 'encoder.onnx'), decoder: join(minisamDir(), 'sam.onnx') } });
      s.log(`web head: ${join(req.out, 'head.json')} (serve it with: node scripts/serve.js --run ${req.out}, then load /run/head.json in the demo)`);
    }
  } finally {
    classifier.dispose();
  }
  return config;
}

/**
 * Fills the cache with the masks and features that runs with `modes` will
 * read for `items` (the protocol's preprocessing stage, its longest): image
 * by image, every mode, under one progress bar, so the whole stage has one
 * rate and ETA; the runs after it only read the cache. An image that cannot
 * be read is left to the runs, which name it.
 */
export async function preparePool(s: Session, settings: TrainSettings, modes: readonly RunFocusMode[], items: readonly DatasetItem[]): Promise<void> {
  if (settings.backbone === 'clip') await sessionClip(s, settings.weights!, settings.dtype);
  const pipelines: FocusPipeline[] = [];
  for (const focus of modes) pipelines.push(await pipelineFor(s, { backbone: settings.backbone, focus, ...pipelineSettings(settings, focus) }));
  const bar = new ProgressBar(`preprocess (${modes.join(', ')})`, items.length);
  for (const item of items) {
    try {
      // One read, hash and decode per image serves every mode's pipeline.
      const { hash, image } = await pipelines[0].readImage(item.path);
      for (const pipeline of pipelines) await pipeline.prepareImage(item, hash, image);
    } catch (e) {
      if (!isUnreadableImage(e)) throw e;
    }
    bar.tick(1);
  }
  bar.done();
  pipelines.forEach((pipeline, i) => reportPreprocessing(s, pipeline, `preprocess (${modes[i]})`));
}

/** An evaluation, plus on how many test images the focus did anything ("k/n"; undefined for focus none). */
type RunEvaluation = EvaluationResult & { focusActive?: string };

export async function evalRun(s: Session, run: string, data: string, testPerClass?: number): Promise<RunEvaluation> {
  const config = await runConfigOf(run);
  const folder = await loadImageFolder(data, 'test');
  const test = { ...folder, items: capPerClass(folder.items, folder.classes, testPerClass) };
  if (test.classes.join('\n') !== config.classes.join('\n')) {
    throw new Error(`eval: ${data} has classes [${test.classes.join(', ')}], the run was trained on [${config.classes.join(', ')}]`);
  }
  const classifier = await restoreClassifier(s, run, config);
  const pipeline = await pipelineFor(s, config);
  try {
    const prepared = await pipeline.prepareAll(test.items, 'prepare test');
    reportPreprocessing(s, pipeline, 'prepare test');
    reportFailures(s, prepared.failures, test.items.length);
    const focusActive = reportFocus(s, config.focus, prepared.images);
    if (prepared.images.length === 0) throw new Error(`eval: no test image of ${data} could be read`);
    const { probs } = await predictImages(classifier, prepared.images, config.batch, clipResolution(s, config));
    const result = evaluatePredictions(prepared.images.map((im) => im.label), probs.map(argmax), config.classes);
    const testSet = imageSetHash(data, test.items);
    await writeFileAtomic(join(run, 'eval.json'), `${JSON.stringify({ ...result, ...(focusActive && { focusActive }), failures: prepared.failures, testSet }, null, 2)}\n`);
    const png = renderConfusionPng(result, `${config.focus} / ${config.backbone}: accuracy ${(100 * result.accuracy).toFixed(1)}%`);
    await writeFileAtomic(join(run, 'confusion.png'), encodePng(png.rgba, png.width, png.height));
    const ckpt = await readCheckpoint(run);
    if (ckpt && ckpt.progress.losses.length > 1) {
      const curve = renderCurvePng([{ name: 'train loss', values: ckpt.progress.losses }], 'loss per epoch');
      await writeFileAtomic(join(run, 'loss.png'), encodePng(curve.rgba, curve.width, curve.height));
    }
    return { ...result, focusActive };
  } finally {
    classifier.dispose();
  }
}

const clipResolution = (s: Session, config: RunConfig) => (config.backbone === 'clip' ? s.clip!.config.vision.imageResolution : undefined);

export async function predictRun(s: Session, run: string, images: string[]): Promise<Array<{ image: string; class: string; probabilities: Record<string, number> }>> {
  const config = await runConfigOf(run);
  const classifier = await restoreClassifier(s, run, config);
  const pipeline = await pipelineFor(s, config);
  try {
    const prepared = [];
    for (const path of images) prepared.push(await pipeline.prepare({ path, label: 0 }));
    const { probs } = await predictImages(classifier, prepared, config.batch, clipResolution(s, config));
    return probs.map((p, i) => ({
      image: images[i],
      class: config.classes[argmax(p)],
      probabilities: Object.fromEntries(config.classes.map((c, k) => [c, Number(p[k].toFixed(6))])),
    }));
  } finally {
    classifier.dispose();
  }
}

/**
 * image | mask overlay | attention heat map, side by side, as PNG bytes; the
 * prediction; the automatic mask count and the salient fraction of the image
 * (1: no salient mask survived the filters, so the focus left the image as it was).
 */
/**
 * The explanation picture of one image: the image, its automatic masks, and
 * the head's attention as a heat map, side by side, with a caption saying
 * what was predicted (and the true class when the image sits in a folder
 * named after a class), the focus, and what each panel shows.
 */
export async function explainImage(s: Session, run: string, image: string): Promise<{ png: Uint8Array; class: string; probability: number; masks: number; salient: number }> {
  const config = await runConfigOf(run);
  const classifier = await restoreClassifier(s, run, config);
  const pipeline = await pipelineFor(s, config);
  try {
    const view = await pipeline.view(image);
    const prepared = await pipeline.prepare({ path: image, label: 0 });
    const { probs, weights } = await predictImages(classifier, [prepared], 1, clipResolution(s, config));
    let grid = Math.round(Math.sqrt(weights[0].length));
    let cells = weights[0];
    let middle = view.overlay;
    let regionsLine = '';
    if (config.focus === 'learned') {
      // Region weights spread over the feature grid: the whole-image token's weight everywhere, each region's over the cells its mask covers;
      // the middle panel outlines the regions in the heat map's colours by their learned weight.
      grid = config.featureGrid!;
      const w = weights[0];
      const regions = learnedRegions(view.masks, grid);
      cells = learnedCellWeights(w, regions, grid);
      const top = Math.max(...w.subarray(0, regions.length + 1));
      const order = regions.map((_, k) => k).sort((a, b) => w[a + 1] - w[b + 1]); // heaviest drawn last, on top
      middle = renderOverlay(view.work, order.map((k) => ({ mask: regions[k].mask.mask, color: COLORMAPS.jet(w[k + 1] / top) })), { alpha: 0.12, outline: true });
      regionsLine = `learned weights: whole image ${w[0].toFixed(2)}, regions ${regions.map((_, k) => w[k + 1].toFixed(2)).join(' ') || 'none'}`;
    }
    const heat = renderHeatmap(view.work, cells, grid, grid, { alpha: 0.55, colormap: 'jet' });
    const panel = sideBySide([view.work, middle, heat]);
    const salient = view.coverage.reduce((a, c) => a + c, 0) / view.coverage.length;
    const best = argmax(probs[0]);
    const folder = basename(dirname(resolve(image)));
    const truth = config.classes.includes(folder) ? `, true: ${folder} (its folder), ${folder === config.classes[best] ? 'right' : 'wrong'}` : '';
    const captioned = captionBelow({ rgba: panel.data, width: panel.width, height: panel.height }, [
      `predicted: ${config.classes[best]} (p ${probs[0][best].toFixed(2)})${truth}`,
      // The bitmap font has no ';': commas and full stops only.
      `focus: ${config.focus}, backbone ${config.backbone}, ${view.masks.length} automatic masks, salient region ${(100 * salient).toFixed(0)}%`,
      ...(regionsLine ? [regionsLine, 'left: the image. middle: the regions, outlined by learned weight (red most). right: where the head looks (red most)'] : ['left: the image. middle: automatic masks. right: where the head looks (red most)']),
    ]);
    return {
      png: encodePng(captioned.rgba, captioned.width, captioned.height),
      class: config.classes[best],
      probability: Number(probs[0][best].toFixed(4)),
      masks: view.masks.length,
      salient: Number(salient.toFixed(4)),
    };
  } finally {
    classifier.dispose();
  }
}
