// MedFocus data pipeline and training loop.
//
// Per image (prepareImages): bytes → sha256 → decode → a square "work image"
// (WORK_SIDE², the frame masks, coverage and overlay live in) → automatic SAM
// masks (disk-cached: content hash + segmenter + its input side + options) → salient coverage
// → what the classifier reads: CLIP pixels [R, R] (overlaid for overlay/both)
// or MobileSAM encoder embeddings pooled to featureGrid² (disk-cached:
// content hash + encoder + its input side + grid + focus variant), plus, for
// attention/both, the per-patch key bias. Only small per-image arrays stay in
// memory. Whenever the raw work image is encoded, both its features and (when
// the focus needs them) its masks are cached from that one pass, so a protocol
// over several focus modes encodes each raw image once.
//
// Training (trainClassifier): seeded shuffle per epoch (the order depends
// only on the seed and the epoch, so a resumed run sees the same batches),
// AdamW on the GPU, a checkpoint written atomically after every epoch.

import type { Gpu } from '../device.js';
import { Tensor } from '../tensor.js';
import { decodeImage, type DecodedImage } from '../io/image.js';
import { readRegularFile } from '../io/node-files.js';
import { clipPreprocess } from '../kernels/preprocess.js';
import { AdamW } from '../train/optimizer.js';
import type { AutoMask, AutoMaskOptions } from '../models/sam/segmenter.js';
import { ProgressBar, type ProgressStream } from '../util/progress.js';
import { contentHash, type DiskCache } from './cache.js';
import { mixSeed, seededRandom, type DatasetItem } from './dataset.js';
import { FOCUS_MASK_FILTERS_1024, WORK_SIDE, decodeMasks, encodeMasks, focusMaskFilters, focusOverlay, patchKeyBias, resizeRgba, salientCoverage, usesAttention, usesOverlay, type FocusMode } from './focus.js';
import type { Batch, Classifier } from './backbones.js';
import { loadParams, readCheckpoint, writeCheckpoint, type RunConfig, type RunProgress } from './checkpoint.js';

/** MobileSAM embedding channels. */
export const SAM_CHANNELS = 256;

export interface FocusSettings {
  focus: FocusMode;
  /** MobileSAM's input side (a multiple of 16; masks and features are computed at it). */
  samSize: number;
  strength: number;
  overlayAlpha: number;
  pointsPerSide: number;
}

/**
 * MobileSAM as the pipeline uses it: one encoder pass per image serves both
 * the automatic masks and the sam-encoder features.
 */
export interface SamParts {
  /** Segmenter id in cache keys ('mobilesam'). */
  readonly name: string;
  /** The encoder's input side S (cache keys include it). */
  readonly samSize: number;
  /** The image embedding [1, 256, S/16, S/16] (caller owns). */
  embed(image: DecodedImage): Tensor;
  /** Automatic masks of a width×height image from its embedding (takes ownership of it). */
  masks(embedding: Tensor, width: number, height: number, options: AutoMaskOptions): Promise<AutoMask[]>;
  dispose(): void;
}

/** A segmenter other than MobileSAM for the automatic masks (SAM2 from its checkpoint). */
export interface MaskSource {
  /** Segmenter id in logs ('sam2-tiny'). */
  readonly name: string;
  /** The model's input side (the focus' stability offset scales with it). */
  readonly inputSize: number;
  /** Automatic masks of an image (one encoder pass of its own). */
  masksOf(image: DecodedImage, options: AutoMaskOptions): Promise<AutoMask[]>;
  dispose(): void;
}

/** What the pipeline needs: SAM is created lazily, only when a cache miss needs it. */
export interface PipelineModels {
  gpu: Gpu;
  cache: DiskCache;
  /** MobileSAM at the settings' samSize; the caller owns it (it may serve several pipelines). */
  sam: () => Promise<SamParts>;
  /**
   * Where the masks come from when not MobileSAM: `id` names the checkpoint
   * in cache keys (content hash), `load` creates it on the first cache miss
   * (the caller owns it). sam-encoder features still come from MobileSAM.
   */
  segmenter?: { id: string; load: () => Promise<MaskSource> };
  /** clip: the tower's input side and patch grid; sam-encoder: undefined. */
  clip?: { resolution: number; grid: number };
  /** sam-encoder: the embedding grid kept (the 64² embedding is average-pooled to it). */
  featureGrid: number;
  /** Where progress bars go (null: nowhere; default stderr). */
  progress?: ProgressStream | null;
}

export interface PreparedImage extends DatasetItem {
  hash: string;
  /** clip: RGBA8 [R, R, 4]; sam-encoder: features [L, C] (position-major). */
  input: Uint8Array | Float32Array;
  /** attention/both: the additive key bias per patch/position [L]. */
  keyBias?: Float32Array;
  /**
   * Whether the focus did anything to this image (undefined for focus none):
   * attention/both — some automatic mask survived salientCoverage's filters
   * (else the coverage is the whole image and the bias is zero); overlay —
   * there were masks to paint.
   */
  focusActive?: boolean;
}

/** The work image and everything derived from it, for one image (explain uses it). */
export interface FocusView {
  work: DecodedImage;
  masks: AutoMask[];
  coverage: Float32Array;
  overlay: DecodedImage;
}

async function readImage(path: string): Promise<{ bytes: Uint8Array; image: DecodedImage }> {
  const bytes = await readRegularFile(path);
  return { bytes, image: decodeImage(bytes, path) };
}

/** The square work image: the whole image resized (aspect not kept, nothing cropped away). */
export function workImage(image: DecodedImage): DecodedImage {
  return resizeRgba(image, WORK_SIDE, WORK_SIDE);
}

export class FocusPipeline {
  /** Encoder passes and mask generations run in this process (cache misses). */
  readonly computed = { embeddings: 0, masks: 0 };

  constructor(readonly models: PipelineModels, readonly settings: FocusSettings) {}

  private maskOptions(inputSize = this.settings.samSize): AutoMaskOptions {
    return { pointsPerSide: this.settings.pointsPerSide, ...focusMaskFilters(inputSize) };
  }

  private async sam(): Promise<SamParts> {
    const sam = await this.models.sam();
    if (sam.samSize !== this.settings.samSize) throw new Error(`FocusPipeline: internal: MobileSAM runs at ${sam.samSize}, the run asks for ${this.settings.samSize}`);
    return sam;
  }

  private maskKey(hash: string): string {
    const other = this.models.segmenter;
    // Another segmenter's input side is known only once it is loaded, so the key names the filters at 1024² (they scale with the side).
    if (other) return this.models.cache.key([hash, other.id, `work=${WORK_SIDE}`, `points=${this.settings.pointsPerSide}`, `filters@1024=${JSON.stringify(FOCUS_MASK_FILTERS_1024)}`]);
    return this.models.cache.key([hash, 'mobilesam', `sam=${this.settings.samSize}`, `work=${WORK_SIDE}`, JSON.stringify(this.maskOptions())]);
  }

  private featureKey(hash: string, variant: string): string {
    return this.models.cache.key([hash, 'mobilesam-encoder', `sam=${this.settings.samSize}`, `work=${WORK_SIDE}`, `grid=${this.models.featureGrid}`, variant]);
  }

  private async embed(image: DecodedImage): Promise<Tensor> {
    const sam = await this.sam();
    this.computed.embeddings++;
    return sam.embed(image);
  }

  /** Masks from the other segmenter (models.segmenter), cached under `key`. */
  private async segment(key: string, work: DecodedImage): Promise<AutoMask[]> {
    const source = await this.models.segmenter!.load();
    const masks = await source.masksOf(work, this.maskOptions(source.inputSize));
    this.computed.masks++;
    await this.models.cache.put(key, 'masks', encodeMasks(masks, WORK_SIDE, WORK_SIDE));
    return masks;
  }

  private async masksFrom(key: string, embedding: Tensor): Promise<AutoMask[]> {
    const masks = await (await this.sam()).masks(embedding, WORK_SIDE, WORK_SIDE, this.maskOptions());
    this.computed.masks++;
    await this.models.cache.put(key, 'masks', encodeMasks(masks, WORK_SIDE, WORK_SIDE));
    return masks;
  }

  /** Pools an embedding [1, C, H, W] to featureGrid² and caches it as [L, C]. */
  private async featuresFrom(key: string, embedding: Tensor): Promise<Float32Array> {
    const [, C, H, W] = embedding.shape;
    const data = (await embedding.read()) as Float32Array;
    const g = this.models.featureGrid;
    const features = new Float32Array(g * g * C);
    // The work image is square and fills the frame, so the whole H×W grid is image.
    const span = (i: number, n: number) => [Math.floor((i * n) / g), Math.floor(((i + 1) * n) / g)];
    for (let gy = 0; gy < g; gy++) {
      const [y0, y1] = span(gy, H);
      for (let gx = 0; gx < g; gx++) {
        const [x0, x1] = span(gx, W);
        const out = (gy * g + gx) * C;
        for (let c = 0; c < C; c++) {
          let sum = 0;
          for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) sum += data[(c * H + y) * W + x];
          features[out + c] = sum / ((y1 - y0) * (x1 - x0));
        }
      }
    }
    await this.models.cache.put(key, 'features', new Uint8Array(features.buffer));
    return features;
  }

  private async cachedFeatures(key: string): Promise<Float32Array | null> {
    const hit = await this.models.cache.get(key, 'features');
    return hit ? new Float32Array(hit.buffer.slice(hit.byteOffset, hit.byteOffset + hit.byteLength)) : null;
  }

  /** Automatic masks of the work image (cached; MobileSAM with sam-encoder: the raw features of that encoder pass too). */
  async masks(hash: string, work: DecodedImage): Promise<AutoMask[]> {
    const key = this.maskKey(hash);
    const hit = await this.models.cache.get(key, 'masks');
    if (hit) return decodeMasks(hit).masks;
    if (this.models.segmenter) return this.segment(key, work);
    const embedding = await this.embed(work);
    if (!this.models.clip) {
      const featureKey = this.featureKey(hash, 'raw');
      if (!(await this.cachedFeatures(featureKey))) await this.featuresFrom(featureKey, embedding);
    }
    return this.masksFrom(key, embedding);
  }

  /** Everything the focus derives from one image (for explanations). */
  async view(path: string): Promise<FocusView & { hash: string }> {
    const { bytes, image } = await readImage(path);
    const hash = contentHash(bytes);
    const work = workImage(image);
    const masks = await this.masks(hash, work);
    const coverage = salientCoverage(masks, WORK_SIDE, WORK_SIDE);
    return { hash, work, masks, coverage, overlay: focusOverlay(work, masks, this.settings.overlayAlpha) };
  }

  /** One image prepared for the classifier. */
  async prepare(item: DatasetItem): Promise<PreparedImage> {
    const { focus, strength, overlayAlpha } = this.settings;
    const { bytes, image } = await readImage(item.path);
    const hash = contentHash(bytes);
    const work = workImage(image);
    const clip = this.models.clip;
    let masks: AutoMask[] = [];
    let features: Float32Array | null = null;
    if (!clip && !usesOverlay(focus)) {
      // Raw-image features; one MobileSAM encoder pass serves its masks too when both are missing.
      const featureKey = this.featureKey(hash, 'raw');
      const maskKey = this.maskKey(hash);
      features = await this.cachedFeatures(featureKey);
      const maskHit = focus === 'none' ? null : await this.models.cache.get(maskKey, 'masks');
      if (maskHit) masks = decodeMasks(maskHit).masks;
      const wantMasks = focus !== 'none' && !maskHit;
      const other = this.models.segmenter;
      if (!features || (wantMasks && !other)) {
        const embedding = await this.embed(work);
        if (!features) features = await this.featuresFrom(featureKey, embedding);
        if (wantMasks && !other) masks = await this.masksFrom(maskKey, embedding);
        else embedding.dispose();
      }
      if (wantMasks && other) masks = await this.segment(maskKey, work);
    } else if (focus !== 'none') masks = await this.masks(hash, work);
    const shown = usesOverlay(focus) ? focusOverlay(work, masks, overlayAlpha) : work;
    const grid = clip ? clip.grid : this.models.featureGrid;
    const coverage = usesAttention(focus) ? salientCoverage(masks, WORK_SIDE, WORK_SIDE) : undefined;
    const keyBias = coverage && patchKeyBias(coverage, WORK_SIDE, WORK_SIDE, grid, strength);
    const focusActive = focus === 'none' ? undefined : coverage ? coverage.some((c) => c < 1) : masks.length > 0;
    let input: Uint8Array | Float32Array;
    if (clip) input = resizeRgba(shown, clip.resolution, clip.resolution).data;
    else if (features) input = features;
    else {
      const key = this.featureKey(hash, `overlay:${overlayAlpha}:${this.maskKey(hash)}`);
      input = (await this.cachedFeatures(key)) ?? (await this.featuresFrom(key, await this.embed(shown)));
    }
    return { path: item.path, label: item.label, hash, input, keyBias, focusActive };
  }

  /** Prepares every item (a progress bar with rate and ETA); files that fail to read or decode are reported by name and counted. */
  async prepareAll(items: DatasetItem[], label: string): Promise<{ images: PreparedImage[]; failures: Array<{ path: string; error: string }> }> {
    const bar = new ProgressBar(label, items.length, { stream: this.models.progress });
    const images: PreparedImage[] = [];
    const failures: Array<{ path: string; error: string }> = [];
    for (const item of items) {
      try {
        images.push(await this.prepare(item));
      } catch (e) {
        const error = (e as Error).message;
        if (!/decodeImage|ENOENT|EACCES|EISDIR/.test(error)) throw e;
        failures.push({ path: item.path, error });
      }
      bar.tick(1);
    }
    bar.done();
    return { images, failures };
  }
}

/** The GPU batch of some prepared images. */
export function makeBatch(gpu: Gpu, images: readonly PreparedImage[], clipResolution: number | undefined, withLabels: boolean): Batch {
  let inputs: Tensor;
  if (clipResolution !== undefined) {
    inputs = clipPreprocess(
      gpu,
      images.map((im) => ({ width: clipResolution, height: clipResolution, data: im.input as Uint8Array })),
      { size: clipResolution },
    );
  } else {
    const per = images[0].input.length;
    const all = new Float32Array(per * images.length);
    images.forEach((im, i) => all.set(im.input as Float32Array, i * per));
    inputs = Tensor.fromArray(gpu, all, [images.length, per / SAM_CHANNELS, SAM_CHANNELS]);
  }
  let keyBias: Float32Array | undefined;
  if (images[0].keyBias) {
    const L = images[0].keyBias.length;
    keyBias = new Float32Array(L * images.length);
    images.forEach((im, i) => keyBias!.set(im.keyBias!, i * L));
  }
  return { size: images.length, inputs, keyBias, labels: withLabels ? Int32Array.from(images, (im) => im.label) : undefined };
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

/** Class probabilities [n, K] and focus weights [n, L] of prepared images, in batches. */
export async function predictImages(classifier: Classifier, images: readonly PreparedImage[], batchSize: number, clipResolution?: number): Promise<{ probs: Float32Array[]; weights: Float32Array[] }> {
  const gpu = (classifier as unknown as { gpu: Gpu }).gpu;
  const probs: Float32Array[] = [];
  const weights: Float32Array[] = [];
  for (let s = 0; s < images.length; s += batchSize) {
    const part = images.slice(s, s + batchSize);
    const batch = makeBatch(gpu, part, clipResolution, false);
    const out = classifier.predict(batch);
    const p = (await out.probs.read()) as Float32Array;
    const w = (await out.weights.read()) as Float32Array;
    out.probs.dispose();
    out.weights.dispose();
    batch.inputs.dispose();
    const K = p.length / part.length;
    const L = w.length / part.length;
    part.forEach((_, i) => {
      probs.push(p.slice(i * K, (i + 1) * K));
      weights.push(w.slice(i * L, (i + 1) * L));
    });
  }
  return { probs, weights };
}

export const argmax = (v: Float32Array) => v.reduce((best, x, i) => (x > v[best] ? i : best), 0);
