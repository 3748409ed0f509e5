// MedFocus training loop, and the per-image pipeline on image files.
//
// The pipeline itself (work image → automatic masks → salient coverage →
// CLIP pixels or pooled MobileSAM features + key bias, cached by content
// hash) is browser-safe and lives in pipeline.ts, so that a web head
// (head.ts) runs the very same code; FocusPipeline here adds reading image
// files (regular files only, sha256 of the bytes as the cache key, decoded).
// Only small per-image arrays stay in memory.
//
// Training (trainClassifier): the shared loop (train-loop.ts trainEpochs:
// seeded shuffle per epoch, AdamW on the GPU; the demo page runs it too),
// resumed from the run's checkpoint, which is written atomically after every
// epoch.

import type { Gpu } from '../device.js';
import { decodeImage, type DecodedImage } from '../io/image.js';
import { readRegularFile } from '../io/node-files.js';
import { AdamW } from '../train/optimizer.js';
import { ProgressBar, type ProgressStream } from '../util/progress.js';
import { contentHash } from './cache.js';
import type { Classifier } from './classifier.js';
import { loadParams, readCheckpoint, writeCheckpoint, type RunConfig, type RunProgress } from './checkpoint.js';
import { FocusPipeline as ImagePipeline, type PreparedImage } from './pipeline.js';
import { trainEpochs } from './train-loop.js';

export {
  SAM_CHANNELS,
  MemoryCache,
  argmax,
  makeBatch,
  mobileSamSegmenter,
  pipelineMaskFilters,
  predictImages,
  workImage,
  type FocusSettings,
  type FocusView,
  type MaskFilters,
  type PipelineCache,
  type PipelineModels,
  type PreparedDetails,
  type PreparedImage,
} from './pipeline.js';

/** The pipeline on image files: each read (regular files only), hashed (sha256 of its bytes: the cache key) and decoded. */
export class FocusPipeline extends ImagePipeline {
  override async readImage(path: string): Promise<{ hash: string; image: DecodedImage }> {
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
    progress = await trainEpochs({
      classifier,
      optimizer,
      images,
      settings: config,
      progress,
      clipResolution: opts.clipResolution,
      onStep: ({ epoch, loss }) => bar.tick(1, `epoch ${epoch + 1}/${config.epochs} loss ${loss.toFixed(4)}`),
      onEpoch: async (reached) => {
        const saved = new Map<string, { shape: number[]; data: Float32Array }>();
        for (const [name, t] of classifier.params) saved.set(name, { shape: [...t.shape], data: Float32Array.from((await t.read()) as Float32Array) });
        await writeCheckpoint(run, { params: saved, optimizer: await optimizer.state(), progress: reached });
      },
    });
    bar.done();
  } finally {
    optimizer.dispose();
  }
  return progress;
}
