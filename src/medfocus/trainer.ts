// MedFocus training loop, and the per-image pipeline on image files.
//
// The pipeline itself (work image → automatic masks → salient coverage →
// CLIP pixels or pooled MobileSAM features + key bias, cached by content
// hash) is browser-safe and lives in pipeline.ts, so that a web head
// (head.ts) runs the very same code; FocusPipeline here adds reading image
// files (regular files only, sha256 of the bytes as the cache key, decoded).
// Only small per-image arrays stay in memory.
//
// Training (trainClassifier): seeded shuffle per epoch (the order depends
// only on the seed and the epoch, so a resumed run sees the same batches),
// AdamW on the GPU, a checkpoint written atomically after every epoch.

import type { Gpu } from '../device.js';
import { decodeImage, type DecodedImage } from '../io/image.js';
import { readRegularFile } from '../io/node-files.js';
import { AdamW } from '../train/optimizer.js';
import { ProgressBar, type ProgressStream } from '../util/progress.js';
import { contentHash } from './cache.js';
import { mixSeed, seededRandom } from './dataset.js';
import type { Classifier } from './classifier.js';
import { loadParams, readCheckpoint, writeCheckpoint, type RunConfig, type RunProgress } from './checkpoint.js';
import { FocusPipeline as ImagePipeline, makeBatch, type PreparedImage } from './pipeline.js';

export {
  SAM_CHANNELS,
  MemoryCache,
  argmax,
  makeBatch,
  mobileSamParts,
  pipelineMaskFilters,
  predictImages,
  workImage,
  type FocusSettings,
  type FocusView,
  type MaskFilters,
  type MaskSource,
  type PipelineCache,
  type PipelineModels,
  type PreparedDetails,
  type PreparedImage,
  type SamParts,
} from './pipeline.js';

/** The pipeline on image files: each read (regular files only), hashed (sha256 of its bytes: the cache key) and decoded. */
export class FocusPipeline extends ImagePipeline {
  protected override async readImage(path: string): Promise<{ hash: string; image: DecodedImage }> {
    const bytes = await readRegularFile(path);
    return { hash: contentHash(bytes), image: decodeImage(bytes, path) };
  }
}

export interface TrainOptions {
  run: string;
  config: RunConfig;
  classifier: Classifier;
  images: PreparedImage[];
  clipResolution?: number;
  log: (line: string) => void;
  progress?: ProgressStream | null;
}

/** Trains (or resumes) to config.epochs, checkpointing every epoch; returns the final progress. */
export async function trainClassifier(opts: TrainOptions): Promise<RunProgress> {
  const { run, config, classifier, images, log } = opts;
  const gpu = (classifier as unknown as { gpu: Gpu }).gpu;
  if (images.length === 0) throw new Error('train: no training images left (all failed to load)');
  const params = [...classifier.params].map(([name, param]) => ({ name, param }));
  const optimizer = new AdamW(gpu, params, { lr: config.lr, weightDecay: config.weightDecay });
  let progress: RunProgress = { epoch: 0, step: 0, losses: [] };
  const ckpt = await readCheckpoint(run);
  if (ckpt) {
    loadParams(ckpt, classifier.params, `train: ${run}`);
    optimizer.load(ckpt.optimizer);
    progress = ckpt.progress;
    log(`resuming ${run} after epoch ${progress.epoch} (step ${progress.step})`);
  }
  const stepsPerEpoch = Math.ceil(images.length / config.batch);
  // One bar for the whole run (a log shows it every tenth, not a line per epoch); the checkpoint still follows every epoch.
  const bar = new ProgressBar('train', (config.epochs - progress.epoch) * stepsPerEpoch, { stream: opts.progress });
  try {
    for (let epoch = progress.epoch; epoch < config.epochs; epoch++) {
      const random = seededRandom(mixSeed(config.seed, epoch, 0x7a11));
      const order = images.map((_, i) => i);
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [order[i], order[j]] = [order[j], order[i]];
      }
      let lossSum = 0;
      for (let s = 0; s < stepsPerEpoch; s++) {
        const batch = makeBatch(gpu, order.slice(s * config.batch, (s + 1) * config.batch).map((i) => images[i]), opts.clipResolution, true);
        const { loss, grads } = classifier.lossAndGradients(batch);
        optimizer.step(grads);
        const value = ((await loss.read()) as Float32Array)[0];
        loss.dispose();
        for (const t of grads.values()) t.dispose();
        batch.inputs.dispose();
        if (!Number.isFinite(value)) throw new Error(`train: the loss became ${value} at epoch ${epoch + 1}, step ${s + 1}; lower --lr`);
        lossSum += value;
        bar.tick(1, `epoch ${epoch + 1}/${config.epochs} loss ${value.toFixed(4)}`);
      }
      progress = { epoch: epoch + 1, step: progress.step + stepsPerEpoch, losses: [...progress.losses, lossSum / stepsPerEpoch] };
      const saved = new Map<string, { shape: number[]; data: Float32Array }>();
      for (const [name, t] of classifier.params) saved.set(name, { shape: [...t.shape], data: Float32Array.from((await t.read()) as Float32Array) });
      await writeCheckpoint(run, { params: saved, optimizer: await optimizer.state(), progress });
    }
    bar.done();
  } finally {
    optimizer.dispose();
  }
  return progress;
}

