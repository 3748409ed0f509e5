// The MedFocus training loop, browser-safe (no Node built-ins): what
// `medfocus train` (trainer.ts, which adds checkpoint files) and the demo
// page (web-trainer.ts) both run, so the same prepared images, seed and
// settings train the same head in Node and in a page.
//
// Per epoch a seeded shuffle (the order depends only on the seed and the
// epoch, so a run resumed at an epoch boundary sees the same batches), then
// for each batch forward + loss + backward on the GPU and one AdamW step.
// The prepared images (features, key biases) stay on the host; each batch is
// uploaded, used and freed, so GPU memory does not grow with the data set.

import type { Gpu } from '../device.js';
import type { ClipModel } from '../models/clip/model.js';
import type { ClipTokenizer } from '../models/clip/tokenizer.js';
import type { AdamW } from '../train/optimizer.js';
import { ClipPromptClassifier, SamPoolClassifier } from './backbones.js';
import type { Classifier } from './classifier.js';
import type { RunConfig, RunProgress } from './checkpoint.js';
import { mixSeed, seededRandom } from '../util/random.js';
import { usesAttention } from './focus.js';
import { LEARNED_MAX_REGIONS, SAM_CHANNELS, makeBatch, type PreparedImage } from './pipeline.js';
import { REGION_META, type RegionFocusOptions } from './region-focus.js';

/** One optimizer step's report. */
export interface TrainStep {
  /** The epoch it belongs to (0-based). */
  epoch: number;
  /** The step within the epoch (0-based) and how many an epoch has. */
  step: number;
  stepsPerEpoch: number;
  loss: number;
}

export interface TrainLoopOptions {
  classifier: Classifier;
  /** AdamW over the classifier's parameters, in the state `progress` left it (fresh, or loaded from a checkpoint). */
  optimizer: AdamW;
  images: readonly PreparedImage[];
  /** Epochs to reach (`progress.epoch` are done), the shuffle's seed and the batch size. */
  settings: Pick<RunConfig, 'epochs' | 'seed' | 'batch'>;
  /** Where training starts: { epoch: 0, step: 0, losses: [] } for a fresh run. */
  progress: RunProgress;
  /** clip backbone: the tower's input side (the batches are preprocessed pixels). */
  clipResolution?: number;
  /** After every step. */
  onStep?: (step: TrainStep) => void;
  /** After every epoch, with the progress so far (the CLI writes its checkpoint here); training waits for it. */
  onEpoch?: (progress: RunProgress) => Promise<void>;
  /** Asked after every epoch: true ends training there, resumable by another call with the returned progress. */
  shouldStop?: () => boolean;
}

/** The order of the training images in `epoch`: a Fisher–Yates shuffle seeded by the run's seed and the epoch. */
export function epochOrder(count: number, seed: number, epoch: number): number[] {
  const random = seededRandom(mixSeed(seed, epoch, 0x7a11));
  const order = Array.from({ length: count }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** Trains from `progress` to settings.epochs (or until shouldStop); returns the progress reached. */
export async function trainEpochs(opts: TrainLoopOptions): Promise<RunProgress> {
  const { classifier, optimizer, images, settings } = opts;
  if (images.length === 0) throw new Error('train: no training images left (all failed to load)');
  const gpu = (classifier as unknown as { gpu: Gpu }).gpu;
  const stepsPerEpoch = Math.ceil(images.length / settings.batch);
  let progress = opts.progress;
  for (let epoch = progress.epoch; epoch < settings.epochs; epoch++) {
    const order = epochOrder(images.length, settings.seed, epoch);
    let lossSum = 0;
    for (let s = 0; s < stepsPerEpoch; s++) {
      const batch = makeBatch(gpu, order.slice(s * settings.batch, (s + 1) * settings.batch).map((i) => images[i]), opts.clipResolution, true);
      const { loss, grads } = classifier.lossAndGradients(batch);
      optimizer.step(grads);
      const value = ((await loss.read()) as Float32Array)[0];
      loss.dispose();
      for (const t of grads.values()) t.dispose();
      batch.inputs.dispose();
      if (!Number.isFinite(value)) throw new Error(`train: the loss became ${value} at epoch ${epoch + 1}, step ${s + 1}; lower --lr`);
      lossSum += value;
      opts.onStep?.({ epoch, step: s, stepsPerEpoch, loss: value });
    }
    progress = { epoch: epoch + 1, step: progress.step + stepsPerEpoch, losses: [...progress.losses, lossSum / stepsPerEpoch] };
    await opts.onEpoch?.(progress);
    if (opts.shouldStop?.()) break;
  }
  return progress;
}

/**
 * The sam-encoder classifier of a run: mean pooling, or attention pooling
 * with max(1, prompts) queries where the focus is an attention bias (fixed,
 * or learned from the region tokens: regionFocus); initialised from the
 * run's seed.
 */
export function samPoolClassifier(gpu: Gpu, config: Pick<RunConfig, 'classes' | 'focus' | 'prompts' | 'seed' | 'featureGrid' | 'strength'>): SamPoolClassifier {
  const g = config.featureGrid!;
  const pooling = usesAttention(config.focus) || config.focus === 'learned' ? 'attention' : 'mean';
  return new SamPoolClassifier(gpu, g * g, SAM_CHANNELS, config.classes.length, { pooling, queries: Math.max(1, config.prompts), regions: regionFocus(config), seed: config.seed });
}

/**
 * The CLIP text embeddings of "This is a photo of {class}" [K, E] (class
 * names with '_' and '-' as spaces): what a CLIP run's head starts from and
 * its contrastive term anchors to.
 */
export async function classTextFeatures(model: ClipModel, tokenizer: ClipTokenizer, classes: readonly string[]): Promise<Float32Array> {
  const prompts = classes.map((c) => `This is a photo of ${c.replace(/[_-]+/g, ' ')}`);
  const features = model.encodeText(tokenizer.tokenize(prompts, { truncate: true }));
  const text = (await features.read()) as Float32Array;
  features.dispose();
  return text;
}

/**
 * The CLIP classifier of a run: VPT prompts (shallow, or deep), the head
 * from `text` (classTextFeatures; zeros where trained tensors replace it),
 * the key bias of a fixed attention focus or the learned focus' region
 * scorer, the contrastive term; initialised from the run's seed.
 */
export function clipPromptClassifier(
  gpu: Gpu,
  model: ClipModel,
  text: Float32Array,
  config: Pick<RunConfig, 'classes' | 'focus' | 'prompts' | 'deep' | 'contrastive' | 'seed' | 'strength'>,
): ClipPromptClassifier {
  return new ClipPromptClassifier(gpu, model, text, config.classes.length, {
    prompts: config.prompts,
    deep: config.deep,
    attention: usesAttention(config.focus),
    regions: regionFocus(config),
    contrastive: config.contrastive,
    seed: config.seed,
  });
}

/** focus learned: the gated scorer's hidden width (16: results/learned-focus-variants.md). */
const LEARNED_HIDDEN = 16;

/** focus learned: the region scorer's shape (tokens of MobileSAM features + mask meta) and the key bias' strength, on either backbone; else undefined. */
export function regionFocus(config: Pick<RunConfig, 'focus' | 'strength'>): RegionFocusOptions | undefined {
  if (config.focus !== 'learned') return undefined;
  return { dim: SAM_CHANNELS + REGION_META, tokensPerImage: LEARNED_MAX_REGIONS + 1, hidden: LEARNED_HIDDEN, strength: config.strength };
}
