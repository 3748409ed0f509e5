// Few-shot training in a web page (browser-safe): labelled images the user
// dropped or picked → the CLI's per-image pipeline (pipeline.ts
// FocusPipeline.prepareImage: automatic masks and frozen MobileSAM features
// or CLIP's input pixels and key bias, once per image, cached by content
// hash) → the CLI's classifier and training loop (train-loop.ts:
// samPoolClassifier or clipPromptClassifier, trainEpochs, AdamW on the GPU)
// → a head exported in the format `medfocus train` writes (head-export.ts),
// which MedFocusHead loads.
//
// Images are ordered as `medfocus train` lists an ImageFolder (classes by
// name, images by name within a class), so the same files, seed and settings
// train the same head in the page as in Node. Features and key biases stay
// on the host; each batch is uploaded, used and freed.
//
// Both backbones train here, with every focus mode (none, overlay,
// attention, both, learned): sam-encoder over MobileSAM's features, CLIP
// (weights and tokenizer the page loaded) with VPT prompts and the head
// initialised from the class names' text embeddings, as `medfocus train`
// does. Training through the fused attention backward — sam-encoder's
// attention pooling (attention, both, learned), and every CLIP run (the
// prompts' gradient crosses the tower's attention) — needs a device that
// binds as many storage buffers per shader stage as that kernel's entry
// points do (attentionTrainingProblem: 10, which Chromium's SwiftShader allows).

import type { Gpu } from '../device.js';
import type { Graph } from '../graph/graph.js';
import { decodeImage } from '../io/image.js';
import type { ClipModel } from '../models/clip/model.js';
import type { ClipTokenizer } from '../models/clip/tokenizer.js';
import { AdamW } from '../train/optimizer.js';
import type { RunConfig, RunProgress } from './checkpoint.js';
import { storageBuffersPerEntry } from '../kernels/program.js';
import { RUN_FOCUS_MODES, focusStrength, usesAttention, type RunFocusMode } from './focus.js';
import { sha256Hex } from './head.js';
import { clipHeadSpec, headJsonText, headNeedsMobileSam, headTensorsBytes, samHeadSpec } from './head-export.js';
import type { MobileSamFileIds } from './head-spec.js';
import { FocusPipeline, type PipelineCache, type PreparedImage } from './pipeline.js';
import type { EmbeddingSegmenter } from '../models/sam/segmenter.js';
import { ClipPromptClassifier, type SamPoolClassifier } from './backbones.js';
import type { Classifier } from './classifier.js';
import { classTextFeatures, clipPromptClassifier, samPoolClassifier, trainEpochs, type TrainStep } from './train-loop.js';

/** What the page trains with: a run's settings (RunConfig's names and meanings). */
export interface WebTrainSettings extends Pick<RunConfig, 'backbone' | 'seed' | 'epochs' | 'lr' | 'weightDecay' | 'batch' | 'prompts' | 'overlayAlpha' | 'samSize' | 'pointsPerSide'> {
  focus: RunFocusMode;
  /** MobileSAM's embedding pooled to featureGrid²: sam-encoder's features, the learned focus' region tokens. */
  featureGrid: number;
  /** clip: deep VPT over the first `deep` blocks (absent or 0: shallow). */
  deep?: number;
  /** The focus strength; absent: the focus mode's default (focus.ts focusStrength), as for `medfocus train`. */
  strength?: number;
}

/** Settings with the focus strength resolved: what a run trains and exports with. */
export type WebRunSettings = WebTrainSettings & { strength: number };

/**
 * The sam-encoder backbone's training defaults, for the page and for
 * `medfocus train` alike (settings.ts trainSettings and SAM_SIZE_DEFAULT,
 * runs.ts trainRun read them: lr, epochs, batch, queries, points,
 * overlay opacity, feature grid, MobileSAM's input side).
 */
export const SAM_ENCODER_TRAIN_DEFAULTS: Readonly<WebTrainSettings> = {
  backbone: 'sam-encoder',
  focus: 'attention',
  seed: 0,
  epochs: 30,
  lr: 3e-3,
  weightDecay: 1e-4,
  batch: 16,
  prompts: 4,
  overlayAlpha: 0.5,
  samSize: 512,
  pointsPerSide: 8,
  featureGrid: 16,
};

/**
 * The CLIP backbone's training defaults, for the page and `medfocus train`
 * alike: sam-encoder's, but fewer epochs at a lower rate (the tower is
 * pretrained and its head starts from the class names' text embeddings),
 * shallow prompts (`prompts` VPT tokens).
 */
export const CLIP_TRAIN_DEFAULTS: Readonly<WebTrainSettings> = {
  ...SAM_ENCODER_TRAIN_DEFAULTS,
  backbone: 'clip',
  epochs: 10,
  lr: 1e-3,
  deep: 0,
};

/** Class names: what a head.json accepts (1 to 256 characters), without surrounding spaces. */
const MAX_CLASS_NAME = 256;

/** One image the page may train on. */
export interface TrainingImage {
  className: string;
  /** Where it came from (a folder-relative path or a file name): the order within its class and the name in messages. */
  name: string;
  /** sha256 of the bytes (hex): the pipeline's cache key. */
  hash: string;
  bytes: Uint8Array;
}

/** A file the training set refused, and why. */
export interface RefusedFile {
  name: string;
  className: string;
  reason: string;
}

/** Labelled images gathered in the page: every file is decoded when added, so what cannot train is refused by name then. */
export class TrainingSet {
  private readonly images: TrainingImage[] = [];
  readonly refused: RefusedFile[] = [];

  /** Adds one file under `className`; returns false (and records why in `refused`) when training cannot use it. */
  async add(className: string, name: string, bytes: Uint8Array): Promise<boolean> {
    const cls = className.trim();
    const refuse = (reason: string) => (this.refused.push({ name, className: cls, reason }), false);
    if (cls.length === 0) return refuse('no class name (type one, or add a folder per class)');
    if (cls.length > MAX_CLASS_NAME) return refuse(`class name of ${cls.length} characters (at most ${MAX_CLASS_NAME})`);
    try {
      decodeImage(bytes, name);
    } catch (e) {
      return refuse((e as Error).message);
    }
    const hash = await sha256Hex(bytes);
    const twin = this.images.find((im) => im.hash === hash);
    if (twin) return refuse(`the same bytes as ${twin.name} (class '${twin.className}'), already added`);
    this.images.push({ className: cls, name, hash, bytes });
    return true;
  }

  /** Removes every image and refusal. */
  clear(): void {
    this.images.length = 0;
    this.refused.length = 0;
  }

  /** Class names in the order labels follow: sorted by code unit, as `medfocus train` sorts class folders. */
  get classes(): string[] {
    return [...new Set(this.images.map((im) => im.className))].sort(byName);
  }

  /** Images per class, in class order. */
  counts(): Array<{ className: string; count: number }> {
    return this.classes.map((className) => ({ className, count: this.images.filter((im) => im.className === className).length }));
  }

  /** Why this set cannot train a classifier (empty when it can). */
  problems(): string[] {
    const problems: string[] = [];
    const classes = this.classes;
    if (this.images.length === 0) problems.push('no images: add a folder per class, or pick images and type their class');
    else if (classes.length < 2) problems.push(`one class ('${classes[0]}'): a classifier needs at least 2`);
    const empty = [...new Set(this.refused.map((r) => r.className))].filter((c) => c && !classes.includes(c));
    for (const c of empty) problems.push(`class '${c}' has no usable image (every file of it was refused)`);
    return problems;
  }

  /** The images in training order: by class, then by name (as `medfocus train` lists an ImageFolder), with their labels. */
  ordered(): Array<TrainingImage & { label: number }> {
    const classes = this.classes;
    return this.images
      .map((im) => ({ ...im, label: classes.indexOf(im.className) }))
      .sort((a, b) => a.label - b.label || byName(a.name, b.name));
  }
}

/** Code-unit order (dataset.ts sorts folder and file names so). */
function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Checks the settings a page hands in; an Error names the setting, what it must be and what came. */
export function checkWebTrainSettings(s: WebTrainSettings): WebTrainSettings {
  const bad = (field: string, expected: string, got: unknown) => new Error(`web training: '${field}' must be ${expected}, got ${JSON.stringify(got)}`);
  if (s.backbone !== 'sam-encoder' && s.backbone !== 'clip') throw bad('backbone', "'sam-encoder' or 'clip'", s.backbone);
  if (!RUN_FOCUS_MODES.includes(s.focus)) throw bad('focus', `one of ${RUN_FOCUS_MODES.join(', ')}`, s.focus);
  const int = (field: keyof WebTrainSettings, lo: number, hi: number) => {
    const v = s[field];
    if (!(Number.isInteger(v) && (v as number) >= lo && (v as number) <= hi)) throw bad(field, `an integer from ${lo} to ${hi}`, v);
  };
  int('epochs', 1, 1e6);
  int('seed', 0, Number.MAX_SAFE_INTEGER);
  int('batch', 1, 1e5);
  int('prompts', 0, 1024);
  int('pointsPerSide', 1, 256);
  if (s.deep !== undefined) int('deep', 0, 1024);
  if (!(Number.isInteger(s.samSize) && s.samSize % 16 === 0 && s.samSize >= 64 && s.samSize <= 1024)) throw bad('samSize', 'a multiple of 16 from 64 to 1024', s.samSize);
  int('featureGrid', 1, s.samSize / 16);
  if (!(s.lr > 0 && s.lr < 1e3)) throw bad('lr', 'a number in (0, 1000)', s.lr);
  if (!(s.weightDecay >= 0 && s.weightDecay <= 1e3)) throw bad('weightDecay', 'a number from 0 to 1000', s.weightDecay);
  if (s.strength !== undefined && !(s.strength >= 0 && s.strength <= 1e3)) throw bad('strength', 'a number from 0 to 1000', s.strength);
  if (!(s.overlayAlpha >= 0 && s.overlayAlpha <= 1)) throw bad('overlayAlpha', 'a number in [0, 1]', s.overlayAlpha);
  return s;
}

/**
 * Why this device cannot train a head through the fused attention backward,
 * or undefined when it can: sam-encoder with an attention focus (attention,
 * both, learned: attention pooling), and CLIP with any focus (the prompts'
 * gradient crosses the tower's attention). The most storage buffers one of
 * that kernel's entry points binds, read from the shader, against the
 * device's maxStorageBuffersPerShaderStage (the WebGPU spec guarantees 8;
 * Chromium's SwiftShader allows 10).
 */
export function attentionTrainingProblem(gpu: Gpu, backbone: RunConfig['backbone'] = 'sam-encoder'): string | undefined {
  const needed = Math.max(...storageBuffersPerEntry('attention_backward').values());
  const limit = gpu.limits.maxStorageBuffersPerShaderStage;
  if (limit >= needed) return undefined;
  const what = backbone === 'clip' ? "training a CLIP head (its prompts' gradient crosses the tower's attention)" : 'training with an attention focus';
  const instead = backbone === 'clip' ? 'train the sam-encoder backbone with focus none or overlay here' : 'train with focus none or overlay here';
  return `${what} needs ${needed} storage buffers per shader stage (the attention backward kernel), this device allows ${limit}; ${instead}, or with medfocus train`;
}

/** Whether a run of `settings` trains through the attention backward (attentionTrainingProblem). */
export function trainsThroughAttention(settings: Pick<WebTrainSettings, 'backbone' | 'focus'>): boolean {
  return settings.backbone === 'clip' || usesAttention(settings.focus) || settings.focus === 'learned';
}

export interface PrepareOptions {
  gpu: Gpu;
  /** MobileSAM at settings.samSize (the caller owns it): sam-encoder's features; the automatic masks of any focus (headNeedsMobileSam). */
  sam?: EmbeddingSegmenter;
  /** Backbone clip: the CLIP model and its tokenizer (the head's text initialisation); the caller owns them. */
  clip?: { model: ClipModel; tokenizer: ClipTokenizer };
  /** Where masks and features are kept (a MemoryCache, or one backed by IndexedDB across reloads). */
  cache: PipelineCache;
  /** After each image, with how many are done. */
  onImage?: (done: number, total: number, name: string) => void;
}

/**
 * The peak GPU bytes training `images` images in batches of `batch` plans
 * besides MobileSAM, known before the first step: every parameter and
 * AdamW's two moments, and for each batch size a step runs at (the full
 * batch, and the last one when shorter) the training graph's planned
 * intermediates, inputs (one batch) and outputs (gradients and loss), which
 * it keeps between steps, plus the copy of the outputs a step hands back and
 * a second batch of inputs: the next batch is uploaded while the buffer of
 * the one before still waits for the queue (src/pool.ts). It does not grow
 * with the number of images: they stay on the host. The buffer pool rounds
 * each buffer up to its size class (at most by half).
 */
export function plannedTrainingBytes(classifier: TrainableClassifier, images: number, batch: number): number {
  let params = 0;
  for (const t of classifier.params.values()) params += 4 * t.shape.reduce((p, d) => p * d, 1);
  let bytes = 3 * params;
  let outputs = 0;
  let inputs = 0;
  for (const size of new Set([Math.min(batch, images), images % batch || Math.min(batch, images)])) {
    const stats = classifier.trainingGraph(size).stats();
    bytes += stats.plannedPeakBytes + stats.inputBytes + stats.outputBytes;
    outputs = Math.max(outputs, stats.outputBytes);
    inputs = Math.max(inputs, stats.inputBytes);
  }
  return bytes + outputs + inputs;
}

/** The classifiers the page trains: their parameters and per-batch-size training graphs. */
export type TrainableClassifier = (SamPoolClassifier | ClipPromptClassifier) & Classifier & { trainingGraph(B: number): Graph };

/** One training run in the page: prepared images, the classifier, its AdamW state and the progress; train() again resumes. */
export class WebTrainingRun {
  private constructor(
    readonly gpu: Gpu,
    readonly settings: WebRunSettings,
    readonly classes: string[],
    readonly images: PreparedImage[],
    readonly classifier: TrainableClassifier,
    private readonly optimizer: AdamW,
    public progress: RunProgress,
  ) {
    this.epochs = settings.epochs;
  }

  /** The epochs training goes to (settings.epochs, or more after train({ epochs })). */
  epochs: number;

  /**
   * Prepares every image of `set` with the CLI's pipeline (masks and features
   * once per image, through `opts.cache`) and builds the classifier and AdamW
   * as `medfocus train` does. A set that cannot train is refused with its problems.
   */
  static async prepare(set: TrainingSet, requested: WebTrainSettings, opts: PrepareOptions): Promise<WebTrainingRun> {
    checkWebTrainSettings(requested);
    const settings: WebRunSettings = { ...requested, strength: focusStrength(requested.focus, requested.strength) };
    const problems = set.problems();
    if (problems.length > 0) throw new Error(`web training: cannot train: ${problems.join('; ')}`);
    const { backbone, focus } = settings;
    const attention = trainsThroughAttention(settings) ? attentionTrainingProblem(opts.gpu, backbone) : undefined;
    if (attention) throw new Error(`web training: ${backbone === 'clip' ? 'backbone clip' : `focus ${focus}`}: ${attention}`);
    const clip = backbone === 'clip' ? opts.clip : undefined;
    if (backbone === 'clip' && !clip) throw new Error('web training: backbone clip needs the CLIP weights and their tokenizer (opts.clip: { model, tokenizer })');
    const sam = opts.sam;
    if (headNeedsMobileSam(backbone, focus)) {
      if (!sam) throw new Error(`web training: backbone ${backbone}, focus ${focus} needs MobileSAM (opts.sam)${backbone === 'clip' ? ' for its automatic masks' : ''}`);
      if (sam.inputSize !== settings.samSize) throw new Error(`web training: MobileSAM runs at ${sam.inputSize}², the settings ask for samSize ${settings.samSize}`);
    }
    const vision = clip?.model.config.vision;
    const pipeline = new FocusPipeline(
      {
        gpu: opts.gpu,
        cache: opts.cache,
        sam: async () => {
          if (!sam) throw new Error(`web training: internal: the pipeline asked for MobileSAM, which backbone ${backbone} with focus ${focus} does not use`);
          return sam;
        },
        clip: vision && { resolution: vision.imageResolution, grid: vision.grid },
        featureGrid: settings.featureGrid,
        progress: null,
      },
      { focus, samSize: settings.samSize, strength: settings.strength, overlayAlpha: settings.overlayAlpha, pointsPerSide: settings.pointsPerSide },
    );
    const items = set.ordered();
    const images: PreparedImage[] = [];
    for (const item of items) {
      let prepared;
      try {
        prepared = await pipeline.prepareImage({ path: item.name, label: item.label }, item.hash, decodeImage(item.bytes, item.name));
      } catch (e) {
        throw new Error(`web training: preparing ${item.name} (class '${item.className}') failed: ${(e as Error).message}`);
      }
      // Only the small per-image arrays stay (as the CLI's prepare keeps them).
      const { work: _work, masks: _masks, shown: _shown, coverage: _coverage, ...kept } = prepared;
      images.push(kept);
      opts.onImage?.(images.length, items.length, item.name);
    }
    const classes = set.classes;
    const config = { ...settings, classes };
    const classifier: TrainableClassifier = clip ? clipPromptClassifier(opts.gpu, clip.model, await classTextFeatures(clip.model, clip.tokenizer, classes), config) : samPoolClassifier(opts.gpu, config);
    const params = [...classifier.params].map(([name, param]) => ({ name, param }));
    const optimizer = new AdamW(opts.gpu, params, { lr: settings.lr, weightDecay: settings.weightDecay });
    return new WebTrainingRun(opts.gpu, settings, classes, images, classifier, optimizer, { epoch: 0, step: 0, losses: [] });
  }

  /** Whether training has reached settings.epochs. */
  get done(): boolean {
    return this.progress.epoch >= this.epochs;
  }

  /** Trains from where the run stands to `epochs` (default: this.epochs; more continues a finished run); `shouldStop` ends it at the next epoch boundary. */
  async train(opts: { epochs?: number; onStep?: (step: TrainStep) => void; onEpoch?: (progress: RunProgress) => void; shouldStop?: () => boolean } = {}): Promise<RunProgress> {
    const epochs = opts.epochs ?? this.epochs;
    if (!(Number.isInteger(epochs) && epochs >= this.progress.epoch)) throw new Error(`web training: epochs must be an integer >= the ${this.progress.epoch} already trained, got ${epochs}`);
    this.epochs = epochs;
    this.progress = await trainEpochs({
      classifier: this.classifier,
      optimizer: this.optimizer,
      images: this.images,
      settings: { epochs, seed: this.settings.seed, batch: this.settings.batch },
      progress: this.progress,
      clipResolution: this.classifier instanceof ClipPromptClassifier ? this.classifier.resolution : undefined,
      onStep: opts.onStep,
      onEpoch: async (p) => {
        this.progress = p;
        opts.onEpoch?.(p);
      },
      shouldStop: opts.shouldStop,
    });
    return this.progress;
  }

  /** The peak GPU bytes training plans besides MobileSAM (plannedTrainingBytes for this run's images and batch). */
  get plannedBytes(): number {
    return plannedTrainingBytes(this.classifier, this.images.length, this.settings.batch);
  }

  /** Host bytes of the prepared features and key biases. */
  get hostBytes(): number {
    return this.images.reduce((sum, im) => sum + im.input.byteLength + (im.keyBias?.byteLength ?? 0), 0);
  }

  /**
   * head.json (text) and head.safetensors (bytes) as `medfocus train` exports
   * them; `mobileSam` names the ONNX files the masks and features came from
   * (undefined where the head runs no MobileSAM: a CLIP head without focus).
   */
  async headFiles(mobileSam: MobileSamFileIds | undefined): Promise<{ json: string; tensors: Uint8Array }> {
    const { backbone, focus } = this.settings;
    if (headNeedsMobileSam(backbone, focus) !== (mobileSam !== undefined)) {
      throw new Error(`web training: a ${backbone} head with focus ${focus} ${mobileSam ? 'runs no MobileSAM: give no' : 'runs MobileSAM: give the ids of'} MobileSAM's files`);
    }
    const params: Array<[string, { shape: number[]; data: Float32Array }]> = [];
    for (const [name, t] of this.classifier.params) params.push([name, { shape: [...t.shape], data: Float32Array.from((await t.read()) as Float32Array) }]);
    const settings = { ...this.settings, classes: this.classes };
    const queries = params.find(([name]) => name === 'queries')?.[1].shape[0];
    const spec = backbone === 'clip' ? clipHeadSpec(settings, mobileSam) : samHeadSpec(settings, queries, mobileSam!);
    return { json: headJsonText(spec), tensors: headTensorsBytes(params) };
  }

  dispose(): void {
    this.optimizer.dispose();
    this.classifier.dispose();
  }
}

/** The ids head.json records for MobileSAM's ONNX files: their names and the sha256 of the bytes the page loaded. */
export async function mobileSamFileIds(encoder: { name: string; bytes: Uint8Array }, decoder: { name: string; bytes: Uint8Array }): Promise<MobileSamFileIds> {
  return { encoder: encoder.name, decoder: decoder.name, encoderSha256: await sha256Hex(encoder.bytes), decoderSha256: await sha256Hex(decoder.bytes) };
}
